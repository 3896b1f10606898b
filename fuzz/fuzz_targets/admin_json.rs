//! The admin API's JSON request bodies: `admin::check_body` parses the body
//! as each call's type and makes every check the handler makes before the
//! store (organisation, token, profile with or without an order, profile
//! change, order, revocation, empty bodies), against the demo organisation
//! and profile. The query-string parser is fed the same bytes.
//!
//! Input: a request body (normally JSON).
//!
//! Checks: no panic; every refusal is a 4xx problem document, never a 5xx.

#![no_main]

use std::sync::OnceLock;

use estd::admin::{check_body, BodyKind, Query};
use estd::model::{Organisation, Profile};
use estd_fuzz::{demo_org, strict_profile};
use libfuzzer_sys::fuzz_target;

fn fixture() -> &'static (Organisation, Profile) {
    static F: OnceLock<(Organisation, Profile)> = OnceLock::new();
    F.get_or_init(|| (demo_org(), strict_profile()))
}

fuzz_target!(|data: &[u8]| {
    let (org, profile) = fixture();
    for kind in BodyKind::ALL {
        if let Err(e) = check_body(kind, data, org, profile) {
            assert!(e.status().is_client_error(), "{kind:?}: {e:?}");
            let _ = e.into_response();
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(q) = Query::parse(Some(text)) {
            let _ = q.only(&["q", "cvr", "page", "per_page"]);
            let _ = q.number("page", 1, 1, 1000);
        }
    }
});
