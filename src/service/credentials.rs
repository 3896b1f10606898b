//! Login credentials of people (administrators and users): a local password
//! hashed with argon2id, a TOTP second factor (RFC 6238), and random tokens
//! for invitation links and sessions.
//!
//! Everything here is a pure function of its inputs apart from the OS random
//! source (through aws-lc-rs, the server's one crypto provider). The caller
//! reads the clock, stores hashes and the last used TOTP step, and decides what
//! to tell the person; these functions only compute and compare.

use std::fmt::{self, Write as _};

use argon2::password_hash::PasswordVerifier as _;
use argon2::{
    Algorithm as Argon2Algorithm, Argon2, Params, PasswordHash, PasswordHasher as _, Version,
    ARGON2ID_IDENT,
};
use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::digest::{digest, SHA256};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use totp_rs::{Algorithm as TotpAlgorithm, Builder as TotpBuilder, Secret, Totp};
use unicode_normalization::UnicodeNormalization as _;
use zeroize::{Zeroize as _, Zeroizing};

/// Why a credential could not be made or accepted. The password messages are
/// written to be shown to the person choosing the password as they are.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// A new password has fewer characters than [`PASSWORD_MIN_CHARS`].
    #[error("the password is too short: it has {chars} characters and needs at least {min}")]
    PasswordTooShort {
        /// Characters the password has.
        chars: usize,
        /// Characters it needs at least.
        min: usize,
    },
    /// A new password has more characters than [`PASSWORD_MAX_CHARS`].
    #[error("the password is too long: it has {chars} characters and may have at most {max}")]
    PasswordTooLong {
        /// Characters the password has.
        chars: usize,
        /// Characters it may have at most.
        max: usize,
    },
    /// A new password is empty or whitespace only.
    #[error("the password is empty or only spaces; choose one with other characters too")]
    PasswordBlank,
    /// Not expected with the fixed parameters; kept as an error, not a panic.
    #[error("the password could not be hashed: {0}")]
    Hash(String),
    /// The OS random source failed; nothing secret can be made without it.
    #[error("the system random number generator failed")]
    Random,
}

// ---------------------------------------------------------------------------
// Passwords
// ---------------------------------------------------------------------------

/// Fewest characters (Unicode scalar values) of a new password. NIST SP 800-63B
/// asks for at least 8 and length is what makes a password strong, so 12.
pub const PASSWORD_MIN_CHARS: usize = 12;
/// Most characters of a new password: long passphrases are welcome, but an
/// upper bound keeps hashing cost and request sizes predictable.
pub const PASSWORD_MAX_CHARS: usize = 128;

/// OWASP's argon2id recommendation (Password Storage Cheat Sheet): 19 MiB,
/// two passes, one lane. Also the argon2 crate's defaults, spelled out so a
/// crate upgrade cannot change them unnoticed.
const ARGON2_M_COST_KIB: u32 = 19 * 1024;
const ARGON2_T_COST: u32 = 2;
const ARGON2_P_COST: u32 = 1;

/// Salt length in bytes: the 16 bytes the PHC format and RFC 9106 recommend.
const SALT_LEN: usize = 16;

/// Stored hashes asking for more than this are refused unverified, so that a
/// corrupted or planted hash cannot make one login allocate gigabytes or spin
/// for minutes. Generous, to leave room for raising the parameters later.
const MAX_ACCEPTED_M_COST_KIB: u32 = 256 * 1024;
const MAX_ACCEPTED_T_COST: u32 = 16;
const MAX_ACCEPTED_P_COST: u32 = 8;

/// The hash an unknown account is checked against (see [`burn_password_check`]).
/// Made with the parameters above from a random password nobody knows; a test
/// checks its parameters still match, so its cost stays that of a real check.
const DUMMY_PHC: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$z/Ug7P5dVPaC4YG8wMU0Aw$Xt2vv0V7o3P5+QJeBDRogbwyYFB9KO2yOLKYZ3SNuG4";

/// The hasher with the parameters above.
fn argon2_hasher() -> Result<Argon2<'static>, CredentialError> {
    let params = Params::new(ARGON2_M_COST_KIB, ARGON2_T_COST, ARGON2_P_COST, None)
        .map_err(|e| CredentialError::Hash(e.to_string()))?;
    Ok(Argon2::new(
        Argon2Algorithm::Argon2id,
        Version::V0x13,
        params,
    ))
}

/// The form of a password that is counted and hashed: Unicode NFKC, as NIST
/// SP 800-63B advises, so that the same password typed on two devices (say
/// "Å" as one code point or as "A" and a combining ring) is the same password.
/// Zeroized when dropped, like the caller's copy should be.
fn normalized(password: &str) -> Zeroizing<String> {
    Zeroizing::new(password.nfkc().collect())
}

/// Hashes a password with argon2id and a fresh random salt, giving the PHC
/// string (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`) to store. The string
/// carries its own parameters, so they can be raised later without breaking
/// stored hashes. Does not apply [`check_new_password`]; call that first when
/// the password is being chosen.
pub fn hash_password(password: &str) -> Result<String, CredentialError> {
    let password = normalized(password);
    let mut salt = [0u8; SALT_LEN];
    aws_lc_rs::rand::fill(&mut salt).map_err(|_| CredentialError::Random)?;
    let hash = argon2_hasher()?
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map_err(|e| CredentialError::Hash(e.to_string()))?;
    Ok(hash.to_string())
}

/// Parses a stored PHC string, accepting only argon2id within the cost limits
/// above. `None` for anything else, so a bad row fails closed.
fn acceptable_hash(phc: &str) -> Option<PasswordHash> {
    let hash = PasswordHash::new(phc).ok()?;
    if hash.algorithm != ARGON2ID_IDENT {
        return None;
    }
    let params = Params::try_from(&hash).ok()?;
    if params.m_cost() > MAX_ACCEPTED_M_COST_KIB
        || params.t_cost() > MAX_ACCEPTED_T_COST
        || params.p_cost() > MAX_ACCEPTED_P_COST
    {
        return None;
    }
    Some(hash)
}

/// Whether `password` is the one `phc` was made from. The argon2 crate
/// compares the outputs in constant time. A malformed, non-argon2id or
/// absurdly costly hash gives `false` (quickly: there is nothing to time).
#[must_use]
pub fn verify_password(phc: &str, password: &str) -> bool {
    let Some(hash) = acceptable_hash(phc) else {
        return false;
    };
    let password = normalized(password);
    // The parameters, salt and variant come from `hash`, not from the hasher.
    Argon2::default()
        .verify_password(password.as_bytes(), &hash)
        .is_ok()
}

/// Spends the time of one password check for a login whose account does not
/// exist (or has no password yet), so the response time does not tell which
/// account names exist. The result is always thrown away.
pub fn burn_password_check(password: &str) {
    let _ = verify_password(DUMMY_PHC, password);
}

/// Whether a hash was made with other parameters than today's, so the login
/// that just verified it can store a fresh [`hash_password`] of the password.
#[must_use]
pub fn password_needs_rehash(phc: &str) -> bool {
    let Some(hash) = acceptable_hash(phc) else {
        return true;
    };
    match Params::try_from(&hash) {
        Ok(p) => {
            hash.version != Some(u32::from(Version::V0x13))
                || p.output_len() != Some(Params::DEFAULT_OUTPUT_LEN)
                || p.m_cost() != ARGON2_M_COST_KIB
                || p.t_cost() != ARGON2_T_COST
                || p.p_cost() != ARGON2_P_COST
        }
        Err(_) => true,
    }
}

/// Rules for a password being chosen (not for one being checked at login, so
/// rules can change without locking anyone out): 12 to 128 characters,
/// counted as Unicode scalar values after NFKC, and not only whitespace.
/// No composition rules: NIST SP 800-63B advises against them.
pub fn check_new_password(password: &str) -> Result<(), CredentialError> {
    let password = normalized(password);
    if password.chars().all(char::is_whitespace) {
        return Err(CredentialError::PasswordBlank);
    }
    let chars = password.chars().count();
    if chars < PASSWORD_MIN_CHARS {
        return Err(CredentialError::PasswordTooShort {
            chars,
            min: PASSWORD_MIN_CHARS,
        });
    }
    if chars > PASSWORD_MAX_CHARS {
        return Err(CredentialError::PasswordTooLong {
            chars,
            max: PASSWORD_MAX_CHARS,
        });
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// TOTP
// ---------------------------------------------------------------------------

/// The parameters every authenticator app accepts (and many silently assume):
/// HMAC-SHA-1, six digits, 30-second steps.
const TOTP_DIGITS: u8 = 6;
const TOTP_STEP_SECONDS: u64 = 30;
/// 160 bits, the HMAC-SHA-1 block output size RFC 4226 recommends.
const TOTP_SECRET_LEN: usize = 20;
/// RFC 4226 §4: a shared secret MUST be at least 128 bits.
const TOTP_MIN_SECRET_LEN: usize = 16;

/// A person's TOTP shared secret. Its `Debug` prints no byte of it and it is
/// wiped from memory when dropped, so logging a struct holding one, or
/// freeing it, leaks nothing.
#[derive(Clone)]
pub struct TotpSecret(Vec<u8>);

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TotpSecret(<{} bytes hidden>)", self.0.len())
    }
}

impl Drop for TotpSecret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl TotpSecret {
    /// The secret as authenticator apps take it when typed in: RFC 4648
    /// base32, upper case, without padding.
    pub fn base32(&self) -> String {
        Secret::from(self.0.as_slice()).to_base32()
    }

    /// Reads a base32 secret as a person or an app may write it: any case,
    /// with spaces between groups and with or without `=` padding. `None` if
    /// it is not base32 or is shorter than 128 bits (RFC 4226's minimum).
    pub fn from_base32(s: &str) -> Option<Self> {
        let cleaned: Zeroizing<String> = Zeroizing::new(
            s.chars()
                .filter(|c| !c.is_whitespace() && *c != '=')
                .map(|c| c.to_ascii_uppercase())
                .collect(),
        );
        let secret = Secret::try_from_base32(cleaned.as_str()).ok()?;
        let bytes = secret.as_bytes();
        if bytes.len() < TOTP_MIN_SECRET_LEN {
            return None;
        }
        Some(Self(bytes.to_vec()))
    }

    /// The raw bytes, for storage.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// A secret read back from storage. Any length is taken so that loading
    /// never fails; [`verify_totp`] refuses secrets shorter than 128 bits.
    pub fn from_bytes(b: Vec<u8>) -> Self {
        Self(b)
    }
}

/// A fresh random 160-bit TOTP secret.
///
/// Returns a `Result` rather than panicking if the OS random source fails.
pub fn new_totp_secret() -> Result<TotpSecret, CredentialError> {
    let mut bytes = vec![0u8; TOTP_SECRET_LEN];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| CredentialError::Random)?;
    Ok(TotpSecret(bytes))
}

/// Percent-encodes everything but RFC 3986's unreserved characters, so that
/// spaces, `:`, `@`, `&` and non-ASCII letters in names survive in the URI.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The `otpauth://` URI (Google Authenticator's Key URI format) to show as a
/// QR code when a person enrols: label `Issuer:account`, and the issuer again
/// as a parameter, which newer apps prefer. The parameters are spelled out
/// although they are the defaults, so an app that assumes other defaults is
/// still told. An empty issuer leaves out both issuer parts.
pub fn totp_uri(secret: &TotpSecret, issuer: &str, account: &str) -> String {
    let account = percent_encode(account);
    let secret = secret.base32();
    let tail = format!("algorithm=SHA1&digits={TOTP_DIGITS}&period={TOTP_STEP_SECONDS}");
    if issuer.is_empty() {
        format!("otpauth://totp/{account}?secret={secret}&{tail}")
    } else {
        let issuer = percent_encode(issuer);
        format!("otpauth://totp/{issuer}:{account}?secret={secret}&issuer={issuer}&{tail}")
    }
}

/// The totp-rs generator with this module's fixed parameters. Built without
/// the crate's RFC checks (those only concern the secret length, checked in
/// [`verify_totp`]); with these fixed digits and step nothing in it can panic.
fn totp_for(secret: &TotpSecret) -> Totp {
    TotpBuilder::new()
        .with_algorithm(TotpAlgorithm::SHA1)
        .with_digits(TOTP_DIGITS)
        .with_step_duration(TOTP_STEP_SECONDS)
        .with_skew(0)
        .with_secret(secret.as_bytes())
        .build_noncompliant()
}

/// The six-digit code for the step holding `unix_seconds`, zero-padded.
/// For tests and for clients (e.g. an end-to-end test logging in).
pub fn totp_code(secret: &TotpSecret, unix_seconds: u64) -> String {
    totp_for(secret).generate(unix_seconds).to_string()
}

/// Exactly six ASCII digits: the only form a code can have.
fn is_six_digits(code: &str) -> bool {
    code.len() == usize::from(TOTP_DIGITS) && code.bytes().all(|b| b.is_ascii_digit())
}

/// The time step a code matches, within one step either side of `now`, and only if later than `last_used_step` (replay refused).
///
/// One step of slack either way covers clock drift and the seconds it takes
/// to type a code. Refusing steps at or before the last one used is RFC 6238
/// §5.2's "accept a code once", and also refuses an older code after a newer
/// one. The caller stores the returned step as the new `last_used_step`.
/// All candidate steps are computed and compared in constant time, whichever
/// matches; codes that are not six ASCII digits, and secrets shorter than
/// 128 bits, are refused before any work.
#[must_use]
pub fn verify_totp(
    secret: &TotpSecret,
    code: &str,
    now: u64,
    last_used_step: Option<u64>,
) -> Option<u64> {
    if !is_six_digits(code) || secret.as_bytes().len() < TOTP_MIN_SECRET_LEN {
        return None;
    }
    let totp = totp_for(secret);
    let current = now / TOTP_STEP_SECONDS;
    let mut matched = None;
    for step in current.saturating_sub(1)..=current.saturating_add(1) {
        // Steps past the end of u64 seconds cannot be asked for; skip them.
        let Some(start) = step.checked_mul(TOTP_STEP_SECONDS) else {
            continue;
        };
        let expected = Zeroizing::new(totp.generate(start).to_string());
        let equal = verify_slices_are_equal(expected.as_bytes(), code.as_bytes()).is_ok();
        let fresh = last_used_step.is_none_or(|last| step > last);
        // The latest matching step wins, so a replay is refused as long as possible.
        if equal && fresh {
            matched = Some(step);
        }
    }
    matched
}

// ---------------------------------------------------------------------------
// Tokens for links and sessions
// ---------------------------------------------------------------------------

/// Bytes of randomness in a token: 256 bits, beyond any guessing.
const TOKEN_BYTES: usize = 32;

/// A random token for an invitation or reset link or a session cookie:
/// 32 random bytes as base64url without padding (43 characters, safe in URLs
/// and cookies). Store only its [`token_hash`].
///
/// Returns a `Result` rather than panicking if the OS random source fails.
pub fn random_token() -> Result<String, CredentialError> {
    let mut bytes = Zeroizing::new([0u8; TOKEN_BYTES]);
    aws_lc_rs::rand::fill(bytes.as_mut()).map_err(|_| CredentialError::Random)?;
    Ok(URL_SAFE_NO_PAD.encode(&bytes[..]))
}

/// SHA-256 of a token, the form kept in storage: a leaked database then holds
/// no usable link or session. A plain hash suffices (no argon2) because the
/// token has 256 random bits and cannot be guessed.
pub fn token_hash(token: &str) -> [u8; 32] {
    let d = digest(&SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    for (o, b) in out.iter_mut().zip(d.as_ref()) {
        *o = *b;
    }
    out
}

/// Constant-time equality of two token hashes, so the time a lookup takes
/// does not tell how much of a hash matched.
#[must_use]
pub fn same_hash(a: &[u8; 32], b: &[u8; 32]) -> bool {
    verify_slices_are_equal(a, b).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B's SHA-1 seed.
    fn rfc_secret() -> TotpSecret {
        TotpSecret::from_bytes(b"12345678901234567890".to_vec())
    }

    // --- passwords ---

    #[test]
    fn hash_verify_round_trip_and_wrong_password() {
        let phc = hash_password("correct horse battery staple").unwrap();
        assert!(
            phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "unexpected PHC: {phc}"
        );
        assert!(verify_password(&phc, "correct horse battery staple"));
        assert!(!verify_password(&phc, "correct horse battery stapler"));
        assert!(!verify_password(&phc, ""));
        assert!(!password_needs_rehash(&phc));
    }

    #[test]
    fn salts_differ() {
        let a = hash_password("same password here").unwrap();
        let b = hash_password("same password here").unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn password_is_normalized_before_hashing() {
        // "Å" precomposed (U+00C5) and decomposed (A + U+030A) are one password.
        let phc = hash_password("bl\u{e5}b\u{e6}rsyltet\u{c5}y").unwrap();
        assert!(verify_password(&phc, "bl\u{e5}b\u{e6}rsyltetA\u{30a}y"));
        assert!(!verify_password(&phc, "blabaersyltetAy"));
    }

    #[test]
    fn malformed_or_foreign_phc_is_false() {
        // Fixed strings, so each run tests the same thing.
        let good = DUMMY_PHC;
        let truncated = &good[..good.len() - 4];
        let bad_b64 = format!("{}!!", &good[..good.len() - 2]);
        for phc in [
            "",
            "not a hash",
            "$argon2id$",
            "$argon2id$v=19$m=19456,t=2,p=1$",
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$",
            truncated,
            bad_b64.as_str(),
            // A bcrypt string.
            "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
        ] {
            assert!(!verify_password(phc, "a fine long password"), "{phc:?}");
            assert!(!verify_password(phc, ""), "{phc:?}");
            assert!(password_needs_rehash(phc), "{phc:?}");
        }
    }

    #[test]
    fn other_argon2_variant_is_refused() {
        // The same password hashed with argon2i must not verify.
        let params = Params::new(ARGON2_M_COST_KIB, ARGON2_T_COST, ARGON2_P_COST, None).unwrap();
        let argon2i = Argon2::new(Argon2Algorithm::Argon2i, Version::V0x13, params);
        let phc = argon2i
            .hash_password_with_salt(b"a fine long password", b"0123456789abcdef")
            .unwrap()
            .to_string();
        assert!(phc.starts_with("$argon2i$"));
        assert!(!verify_password(&phc, "a fine long password"));
    }

    #[test]
    fn absurd_cost_is_refused_without_hashing() {
        let phc = |m: u32, t: u32, p: u32| {
            format!(
                "$argon2id$v=19$m={m},t={t},p={p}$MDEyMzQ1Njc4OWFiY2RlZg$\
                 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
            )
        };
        // At the limits: parsed (and would be verified).
        assert!(acceptable_hash(&phc(256 * 1024, 16, 8)).is_some());
        // One over any limit: refused before argon2 is asked to allocate or run.
        assert!(acceptable_hash(&phc(256 * 1024 + 1, 2, 1)).is_none());
        assert!(acceptable_hash(&phc(19456, 17, 1)).is_none());
        assert!(acceptable_hash(&phc(19456, 2, 9)).is_none());
        // 4 TiB of memory: false at once.
        let started = std::time::Instant::now();
        assert!(!verify_password(&phc(u32::MAX, 2, 1), "whatever password"));
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn older_parameters_verify_but_need_rehash() {
        let params = Params::new(8 * 1024, 1, 1, None).unwrap();
        let weaker = Argon2::new(Argon2Algorithm::Argon2id, Version::V0x13, params);
        let phc = weaker
            .hash_password_with_salt(b"a fine long password", b"0123456789abcdef")
            .unwrap()
            .to_string();
        assert!(verify_password(&phc, "a fine long password"));
        assert!(password_needs_rehash(&phc));
        // Today's costs but a shorter output: verifies, and is renewed too.
        let params = Params::new(ARGON2_M_COST_KIB, ARGON2_T_COST, ARGON2_P_COST, Some(28));
        let shorter = Argon2::new(Argon2Algorithm::Argon2id, Version::V0x13, params.unwrap());
        let phc = shorter
            .hash_password_with_salt(b"a fine long password", b"0123456789abcdef")
            .unwrap()
            .to_string();
        assert!(verify_password(&phc, "a fine long password"));
        assert!(password_needs_rehash(&phc));
    }

    #[test]
    fn dummy_hash_costs_what_a_real_one_does() {
        let hash = acceptable_hash(DUMMY_PHC).expect("dummy hash must parse");
        let params = Params::try_from(&hash).unwrap();
        assert_eq!(params.m_cost(), ARGON2_M_COST_KIB);
        assert_eq!(params.t_cost(), ARGON2_T_COST);
        assert_eq!(params.p_cost(), ARGON2_P_COST);
        assert!(!password_needs_rehash(DUMMY_PHC));
        // It really runs argon2 (a malformed dummy would return at once).
        let started = std::time::Instant::now();
        burn_password_check("any password at all");
        let burned = started.elapsed();
        let started = std::time::Instant::now();
        let _ = verify_password(&hash_password("x").unwrap(), "y");
        let real = started.elapsed() / 2; // hash + verify
        assert!(
            burned * 10 > real,
            "burn {burned:?} vs one real check {real:?}"
        );
    }

    #[test]
    fn new_password_length_rules() {
        assert!(matches!(
            check_new_password("elevenchars"),
            Err(CredentialError::PasswordTooShort { chars: 11, min: 12 })
        ));
        assert!(check_new_password("twelve chars").is_ok());
        assert!(check_new_password(&"x".repeat(128)).is_ok());
        assert!(matches!(
            check_new_password(&"x".repeat(129)),
            Err(CredentialError::PasswordTooLong {
                chars: 129,
                max: 128
            })
        ));
        // Counted in characters, not bytes: 12 "ø" are 24 bytes but 12 characters.
        assert!(check_new_password(&"ø".repeat(12)).is_ok());
        assert!(check_new_password(&"ø".repeat(11)).is_err());
        assert!(check_new_password(&"ø".repeat(128)).is_ok());
        assert!(matches!(
            check_new_password(""),
            Err(CredentialError::PasswordBlank)
        ));
        assert!(matches!(
            check_new_password(&" \t\u{a0}\u{3000}".repeat(10)),
            Err(CredentialError::PasswordBlank)
        ));
        // Spaces inside a passphrase are fine.
        assert!(check_new_password("  spaces are fine  ").is_ok());
        let msg = check_new_password("short").unwrap_err().to_string();
        assert!(msg.contains('5') && msg.contains("12"), "{msg}");
        let msg = check_new_password(&"x".repeat(200))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("200") && msg.contains("128"), "{msg}");
    }

    // --- TOTP ---

    #[test]
    fn rfc6238_sha1_vectors() {
        let s = rfc_secret();
        // Appendix B, last six digits of the eight-digit values.
        for (t, code) in [
            (59, "287082"),             // 94287082
            (1_111_111_109, "081804"),  // 07081804: leading zero kept
            (1_111_111_111, "050471"),  // 14050471
            (1_234_567_890, "005924"),  // 89005924: two leading zeros
            (2_000_000_000, "279037"),  // 69279037
            (20_000_000_000, "353130"), // 65353130
        ] {
            assert_eq!(totp_code(&s, t), code, "T={t}");
            assert_eq!(verify_totp(&s, code, t, None), Some(t / 30), "T={t}");
        }
    }

    #[test]
    fn window_is_one_step_either_side() {
        let s = rfc_secret();
        let now = 1_700_000_015; // middle of step 56_666_667
        let step = now / 30;
        for (offset, ok) in [(-2i64, false), (-1, true), (0, true), (1, true), (2, false)] {
            let t = (now as i64 + offset * 30) as u64;
            let got = verify_totp(&s, &totp_code(&s, t), now, None);
            let want = ok.then_some((step as i64 + offset) as u64);
            assert_eq!(got, want, "offset {offset}");
        }
        // At the very start of time there is no earlier step to wrap into.
        assert_eq!(verify_totp(&s, &totp_code(&s, 0), 0, None), Some(0));
        assert_eq!(verify_totp(&s, &totp_code(&s, 30), 0, None), Some(1));
        // At the very end of u64 time nothing overflows.
        let _ = verify_totp(&s, "123456", u64::MAX, None);
    }

    #[test]
    fn replay_is_refused() {
        let s = rfc_secret();
        let now = 1_700_000_015;
        let code = totp_code(&s, now);
        let step = verify_totp(&s, &code, now, None).unwrap();
        assert_eq!(step, now / 30);
        // The same code again, same moment or a few seconds later: refused.
        assert_eq!(verify_totp(&s, &code, now, Some(step)), None);
        assert_eq!(verify_totp(&s, &code, now + 10, Some(step)), None);
        // An older code after a newer one: refused too.
        let previous = totp_code(&s, now - 30);
        assert_eq!(verify_totp(&s, &previous, now, Some(step)), None);
        // The next step's code is fine.
        let next = totp_code(&s, now + 30);
        assert_eq!(verify_totp(&s, &next, now + 30, Some(step)), Some(step + 1));
        // A last step earlier than the match does not get in the way.
        assert_eq!(verify_totp(&s, &code, now, Some(step - 1)), Some(step));
    }

    #[test]
    fn latest_matching_step_wins() {
        // With the RFC seed, steps 910737 and 910738 happen to share a code
        // (found by search). The later step is the one returned and used up,
        // and once it is used the earlier one is not accepted either.
        let s = rfc_secret();
        assert_eq!(totp_code(&s, 910_737 * 30), "911617");
        assert_eq!(totp_code(&s, 910_738 * 30), "911617");
        let now = 910_738 * 30 + 5;
        assert_eq!(verify_totp(&s, "911617", now, None), Some(910_738));
        assert_eq!(verify_totp(&s, "911617", now, Some(910_736)), Some(910_738));
        assert_eq!(verify_totp(&s, "911617", now, Some(910_738)), None);
    }

    #[test]
    fn malformed_codes_are_refused() {
        let s = rfc_secret();
        assert_eq!(verify_totp(&s, "287082", 59, None), Some(1)); // control
        for code in [
            "",
            "28708",
            "2870820",
            "28708a",
            " 287082",
            "287082 ",
            "287 082",
            "+87082",
            "-87082",
            "２８７０８２",
            "94287082",
            "0x1234",
        ] {
            assert_eq!(verify_totp(&s, code, 59, None), None, "{code:?}");
        }
    }

    #[test]
    fn short_secret_is_refused() {
        let short = TotpSecret::from_bytes(vec![1; 10]);
        let code = totp_code(&short, 59);
        assert_eq!(verify_totp(&short, &code, 59, None), None);
        let empty = TotpSecret::from_bytes(Vec::new());
        assert_eq!(verify_totp(&empty, &totp_code(&empty, 59), 59, None), None);
    }

    #[test]
    fn wrong_secret_is_refused() {
        let other = TotpSecret::from_bytes(b"12345678901234567891".to_vec());
        assert_eq!(verify_totp(&other, "287082", 59, None), None);
    }

    #[test]
    fn secrets_are_random_and_round_trip() {
        let a = new_totp_secret().unwrap();
        let b = new_totp_secret().unwrap();
        assert_eq!(a.as_bytes().len(), 20);
        assert_ne!(a.as_bytes(), b.as_bytes());
        let b32 = a.base32();
        assert_eq!(b32.len(), 32);
        assert!(!b32.contains('='));
        assert_eq!(
            TotpSecret::from_base32(&b32).unwrap().as_bytes(),
            a.as_bytes()
        );
    }

    #[test]
    fn base32_forms() {
        let s = rfc_secret();
        assert_eq!(s.base32(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        for form in [
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
            "gezdgnbvgy3tqojqgezdgnbvgy3tqojq",
            "gezd gnbv gy3t qojq gezd gnbv gy3t qojq",
        ] {
            let parsed = TotpSecret::from_base32(form).unwrap();
            assert_eq!(parsed.as_bytes(), b"12345678901234567890", "{form}");
        }
        // 16 bytes with padding: accepted; 10 bytes: below the RFC minimum.
        let sixteen = TotpSecret::from_bytes(vec![0xAB; 16]);
        let padded = format!("{}======", sixteen.base32());
        assert_eq!(
            TotpSecret::from_base32(&padded).unwrap().as_bytes(),
            &[0xAB; 16]
        );
        assert!(TotpSecret::from_base32("GEZDGNBVGY3TQOJQ").is_none());
        assert!(TotpSecret::from_base32("").is_none());
        assert!(TotpSecret::from_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJ1").is_none());
        assert!(TotpSecret::from_base32("ÆØÅÆØÅÆØÅÆØÅÆØÅÆØÅÆØÅÆØÅÆØÅÆØÅ").is_none());
    }

    #[test]
    fn debug_hides_secret() {
        let s = rfc_secret();
        let shown = format!("{s:?} {s:#?}");
        assert!(!shown.contains("12345678901234567890"), "{shown}");
        assert!(!shown.contains("49, 50, 51"), "{shown}");
        assert!(!shown.contains("GEZDGNBV"), "{shown}");
        assert!(!shown.contains("3132333435"), "{shown}");
        assert!(shown.contains("TotpSecret"), "{shown}");
    }

    #[test]
    fn uri_format() {
        let s = rfc_secret();
        assert_eq!(
            totp_uri(&s, "Example CA", "alice@example.com"),
            "otpauth://totp/Example%20CA:alice%40example.com\
             ?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Example%20CA\
             &algorithm=SHA1&digits=6&period=30"
        );
        // Reserved and non-ASCII characters are encoded, never passed through.
        assert_eq!(
            totp_uri(&s, "Ørsted: EST&CA", "bjørn?x=1#y"),
            "otpauth://totp/%C3%98rsted%3A%20EST%26CA:bj%C3%B8rn%3Fx%3D1%23y\
             ?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=%C3%98rsted%3A%20EST%26CA\
             &algorithm=SHA1&digits=6&period=30"
        );
        assert_eq!(
            totp_uri(&s, "", "alice"),
            "otpauth://totp/alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &algorithm=SHA1&digits=6&period=30"
        );
    }

    // --- tokens ---

    #[test]
    fn tokens_are_random_base64url() {
        let a = random_token().unwrap();
        let b = random_token().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        assert_eq!(URL_SAFE_NO_PAD.decode(&a).unwrap().len(), 32);
    }

    #[test]
    fn token_hash_is_sha256() {
        // FIPS 180-2 example: SHA-256("abc").
        let want: [u8; 32] = [
            0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae,
            0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61,
            0xf2, 0x00, 0x15, 0xad,
        ];
        assert_eq!(token_hash("abc"), want);
        assert!(same_hash(&token_hash("abc"), &want));
        let mut other = want;
        other[31] ^= 1;
        assert!(!same_hash(&want, &other));
        assert!(!same_hash(&token_hash("abd"), &want));
    }
}
