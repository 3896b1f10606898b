//! The HTTP Basic parser, `auth::parse_basic`, on any `Authorization` value.
//!
//! Input: the header value's bytes.
//!
//! Checks: no panic; credentials it returns are not both empty, and the user
//! has no colon; whatever it returns, sent again in canonical form, parses to
//! the same credentials; the Debug form never shows the password.

#![no_main]

use base64::Engine;
use estd::auth::parse_basic;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(creds) = parse_basic(data) else {
        return;
    };
    assert!(!(creds.user.is_empty() && creds.password.is_empty()));
    assert!(!creds.user.contains(':'));
    let canonical = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", creds.user, creds.password))
    );
    assert_eq!(parse_basic(canonical.as_bytes()).as_ref(), Some(&creds));
    assert_eq!(
        format!("{creds:?}"),
        format!(
            "BasicCredentials {{ user: {:?}, password: \"<redacted>\" }}",
            creds.user
        )
    );
});
