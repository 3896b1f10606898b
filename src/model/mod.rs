//! The domain model: organisations, profiles, orders, certificates, tokens and
//! audit events, with their states and the moves between them. No I/O.
//!
//! Records are plain data; the rules that move them between states live here as
//! methods, so that no other module can put a record in an illegal state.

use std::fmt;

mod actor;

pub use actor::{Actor, ActorId};

use serde::{Deserialize, Serialize};

/// Seconds since the Unix epoch.
pub type UnixSeconds = u64;

/// RFC 3339 in UTC, whole seconds (`2026-05-01T12:00:00Z`), as the admin
/// API and the audit log write times.
pub fn rfc3339(secs: UnixSeconds) -> String {
    let t = i64::try_from(secs)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// The current time in seconds since the Unix epoch.
pub fn now_unix() -> UnixSeconds {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// What a valid CVR number is, for error messages.
pub const CVR_RULE: &str = "must be a CVR number: 8 digits, not starting with 0, modulus-11 check";

/// Whether `s` is a CVR number: 8 ASCII digits, the first not 0, whose
/// weighted sum (weights 2, 7, 6, 5, 4, 3, 2, 1) is divisible by 11 (the
/// CVR register's check, which also catches one mistyped or two swapped digits).
pub fn is_valid_cvr(s: &str) -> bool {
    const WEIGHTS: [u32; 8] = [2, 7, 6, 5, 4, 3, 2, 1];
    let b = s.as_bytes();
    if b.len() != 8 || !b.iter().all(u8::is_ascii_digit) || b[0] == b'0' {
        return false;
    }
    let sum: u32 = b
        .iter()
        .zip(WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    sum % 11 == 0
}

/// The subject attribute value that names an organisation by CVR
/// (ETSI EN 319 412-1 semantics identifier, as in Danish OCES certificates).
pub fn organization_identifier(cvr: &str) -> String {
    format!("NTRDK-{cvr}")
}

/// The value of one hex digit, `[0-9A-Fa-f]` only.
fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The byte two hex digits spell, or `None` for anything else. Unlike
/// `u8::from_str_radix`, which takes a sign (`"+B"` is 11), only digits pass.
pub fn hex_byte(pair: &[u8]) -> Option<u8> {
    match pair {
        [hi, lo] => Some(hex_digit(*hi)? << 4 | hex_digit(*lo)?),
        _ => None,
    }
}

/// A certificate serial number: 16 bytes, positive, never starting with a zero byte.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Serial(pub [u8; 16]);

impl Serial {
    /// Parses the hex form (as printed by `openssl x509 -serial`): exactly 32
    /// hex digits, either case. Surrounding whitespace is tolerated (URLs and
    /// pasted text), nothing inside it: no sign, no separators.
    pub fn from_hex(s: &str) -> Option<Serial> {
        let s = s.trim().as_bytes();
        if s.len() != 32 {
            return None;
        }
        let mut out = [0u8; 16];
        for (i, pair) in s.chunks(2).enumerate() {
            out[i] = hex_byte(pair)?;
        }
        Some(Serial(out))
    }

    /// From the big-endian content bytes of a DER INTEGER, if it has our shape.
    pub fn from_der_bytes(bytes: &[u8]) -> Option<Serial> {
        <[u8; 16]>::try_from(bytes).ok().map(Serial)
    }
}

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Serial({self})")
    }
}

/// An organisation, known by its CVR number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Organisation {
    /// 8-digit CVR number.
    pub cvr: String,
    /// Legal name; it is the O attribute of every certificate.
    pub name: String,
    /// Whether user certificates may be ordered.
    pub allow_user_certs: bool,
    /// Whether profiles may enable seal generation.
    pub allow_seal: bool,
    /// Production unit numbers (P numbers).
    pub p_numbers: Vec<String>,
    /// SE numbers.
    pub se_numbers: Vec<String>,
}

/// A contact person, who receives notices about a profile's certificates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Contact {
    /// Name.
    pub name: String,
    /// E-mail address.
    pub email: String,
}

/// The Unicode format characters (general category Cf) as inclusive ranges,
/// from Unicode's DerivedGeneralCategory.txt (Unicode 14.0 as Python's
/// unicodedata lists it, plus U+13439 to U+1343F added in 15.0): the soft hyphen,
/// bidirectional controls (U+202A to U+202E, U+2066 to U+2069), zero-width
/// characters (U+200B to U+200F, U+2060 to U+2064, U+FEFF), tags and the
/// like. They are invisible or reorder text, so a name holding one can look
/// like another.
const FORMAT_CHARACTERS: &[(u32, u32)] = &[
    (0x00AD, 0x00AD),
    (0x0600, 0x0605),
    (0x061C, 0x061C),
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x0890, 0x0891),
    (0x08E2, 0x08E2),
    (0x180E, 0x180E),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x2064),
    (0x2066, 0x206F),
    (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB),
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
];

/// Whether `c` is a Unicode format character (general category Cf).
pub fn is_format_character(c: char) -> bool {
    let c = u32::from(c);
    FORMAT_CHARACTERS
        .iter()
        .any(|&(first, last)| (first..=last).contains(&c))
}

/// Why a name that goes into a certificate's subject (and so into logs, the
/// audit log, the admin API and CSV exports) is refused, or `None`: no
/// control characters, no line or paragraph separators, no format characters
/// (right-to-left overrides, zero-width spaces: display spoofing), and no
/// spaces before or after it.
pub fn subject_text_problem(v: &str) -> Option<&'static str> {
    if v.chars().any(char::is_control) {
        return Some("contains a control character");
    }
    if v.chars()
        .any(|c| is_format_character(c) || matches!(c, '\u{2028}' | '\u{2029}'))
    {
        return Some(
            "contains an invisible formatting character (Unicode category Cf, such as U+202E \
             or U+200B, or a line separator)",
        );
    }
    if v.trim() != v {
        return Some("has leading or trailing spaces");
    }
    None
}

/// Whether `c` is one of the Danish letters Æ, Ø or Å (either case).
fn is_danish_letter(c: char) -> bool {
    matches!(c, 'æ' | 'ø' | 'å' | 'Æ' | 'Ø' | 'Å')
}

/// Why an e-mail address is refused, or `None` if it is acceptable.
///
/// Addresses with Æ, Ø or Å (either case) are refused for any certificate:
/// they must be changed first. That holds for a domain spelt as IDNA A-labels
/// too (`xn--blbr-roah.dk` is blåbær.dk), so those are decoded first. The
/// domain must be a host name (RFC 1034 3.5): labels of 1 to 63 letters,
/// digits and inner hyphens, at least two of them, at most 253 characters.
pub fn email_problem(email: &str) -> Option<&'static str> {
    const CHANGE_FIRST: &str = "contains Æ, Ø or Å; the e-mail address must be changed first";
    if email.chars().any(is_danish_letter) {
        return Some(CHANGE_FIRST);
    }
    let Some((local, domain)) = email.split_once('@') else {
        return Some("is not an e-mail address");
    };
    let ok_char = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c);
    if local.is_empty() || local.len() > 64 || !local.chars().all(ok_char) {
        return Some("is not a valid e-mail address");
    }
    let labels_ok = domain.split('.').all(|label| {
        (1..=63).contains(&label.len())
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    });
    if domain.len() > 253 || !domain.contains('.') || !labels_ok {
        return Some(
            "is not a valid e-mail address: the domain must be labels of 1 to 63 letters, \
             digits and inner hyphens, separated by dots, at most 253 characters",
        );
    }
    let has_a_label = domain
        .split('.')
        .any(|l| l.len() >= 4 && l[..4].eq_ignore_ascii_case("xn--"));
    if has_a_label {
        let (unicode, result) = idna::domain_to_unicode(domain);
        if result.is_err() {
            return Some("is not a valid e-mail address: the domain has an invalid xn-- label");
        }
        if unicode.chars().any(is_danish_letter) {
            return Some(CHANGE_FIRST);
        }
    }
    None
}

/// What a certificate is for; decides key usage and extended key usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CertKind {
    /// Organisation certificate (signing on behalf of the organisation).
    Organisation,
    /// System certificate (an IdM system, device or service).
    System,
    /// User certificate (a person employed by the organisation).
    User,
}

/// A right that a system certificate carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub enum SystemRight {
    /// May enrol certificates over EST on behalf of its organisation.
    #[serde(rename = "est-enroll")]
    EstEnroll,
    /// May use the admin API.
    #[serde(rename = "admin-api")]
    AdminApi,
}

impl SystemRight {
    /// Parses the configuration/API name.
    pub fn parse(s: &str) -> Option<SystemRight> {
        match s {
            "est-enroll" => Some(SystemRight::EstEnroll),
            "admin-api" => Some(SystemRight::AdminApi),
            _ => None,
        }
    }
}

/// A subject key algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum KeyAlgorithm {
    /// ECDSA on P-256.
    P256,
    /// ECDSA on P-384.
    P384,
    /// RSA, size bounded by the key policy.
    Rsa,
    /// Ed25519.
    Ed25519,
}

/// Which subject keys a profile accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct KeyPolicy {
    /// Accepted algorithms.
    pub allowed: Vec<KeyAlgorithm>,
    /// Smallest RSA modulus, bits (never below 2048).
    pub min_rsa_bits: u32,
}

impl Default for KeyPolicy {
    fn default() -> Self {
        KeyPolicy {
            allowed: vec![
                KeyAlgorithm::P256,
                KeyAlgorithm::P384,
                KeyAlgorithm::Rsa,
                KeyAlgorithm::Ed25519,
            ],
            min_rsa_bits: 2048,
        }
    }
}

/// How the holder is identified before issuance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Identification {
    /// A person logs in to a portal outside estd.
    UserLogin,
    /// A program presents a reference number and one-time code.
    OneTimeCode,
    /// An IdM system with `est-enroll` enrols without a prior order.
    Api,
}

/// How the certificate is delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Issuance {
    /// Key and certificate generated for the holder (EST `/serverkeygen`).
    Browser,
    /// On a hardware token, outside estd.
    Hardware,
    /// The holder's program enrols over EST.
    Est,
}

/// Whether an identification/issuance pair is one the service offers.
pub fn is_allowed_method_pair(id: Identification, iss: Issuance) -> bool {
    matches!(
        (id, iss),
        (Identification::UserLogin, Issuance::Browser)
            | (Identification::UserLogin, Issuance::Hardware)
            | (Identification::OneTimeCode, Issuance::Browser)
            | (Identification::OneTimeCode, Issuance::Est)
            | (Identification::Api, Issuance::Est)
    )
}

/// A certificate profile of an organisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Profile {
    /// UUID, hyphenated lower case.
    pub id: String,
    /// Owning organisation's CVR.
    pub cvr: String,
    /// Name, unique within the organisation.
    pub name: String,
    /// Certificate kind.
    pub kind: CertKind,
    /// EST label, unique across the server (`/.well-known/est/<label>/`).
    pub est_label: String,
    /// Whether this is the organisation's profile for EST requests without a label.
    pub org_default: bool,
    /// System rights that certificates of this profile carry.
    pub rights: Vec<SystemRight>,
    /// Accepted subject keys.
    pub key_policy: KeyPolicy,
    /// Certificate lifetime in days.
    pub validity_days: u32,
    /// Identification method.
    pub identification: Identification,
    /// Issuance method.
    pub issuance: Issuance,
    /// E-mail address that may appear in the certificate (SAN rfc822Name).
    pub email: Option<String>,
    /// DNS names allowed in the SAN: an entry `example.com` allows exactly that
    /// name, `.example.com` any name below it.
    pub dns_names: Vec<String>,
    /// Whether IP addresses may appear in the SAN.
    pub allow_ip_sans: bool,
    /// Who receives notices about this profile's certificates.
    pub contact: Option<Contact>,
    /// P number, when the organisation has several.
    pub p_number: Option<String>,
    /// SE number, when the organisation has several.
    pub se_number: Option<String>,
    /// Seal generation (only if the organisation allows it).
    pub seal: bool,
    /// Publish certificates to the public certificate database.
    pub publish: bool,
    /// Hold API enrolments until an administrator approves them.
    pub approval_required: bool,
    /// Require proof-of-possession linking (RFC 7030 3.5): a CSR sent to
    /// `simpleenroll`/`simplereenroll` must carry the TLS channel binding of
    /// its connection in challengePassword. Records stored before the field
    /// existed read as `false` (see the store's profile decoding).
    #[serde(default)]
    pub require_pop_linking: bool,
}

impl Profile {
    /// A plain system profile of organisation `cvr`, enrolled over EST by
    /// API: a fresh id, no rights, the default key policy, one year's
    /// validity, no SANs, and every option off. Callers set what differs
    /// with struct update syntax.
    pub fn system(cvr: &str, name: &str, est_label: &str) -> Profile {
        Profile {
            id: uuid::Uuid::new_v4().to_string(),
            cvr: cvr.into(),
            name: name.into(),
            kind: CertKind::System,
            est_label: est_label.into(),
            org_default: false,
            rights: vec![],
            key_policy: KeyPolicy::default(),
            validity_days: 365,
            identification: Identification::Api,
            issuance: Issuance::Est,
            email: None,
            dns_names: vec![],
            allow_ip_sans: false,
            contact: None,
            p_number: None,
            se_number: None,
            seal: false,
            publish: false,
            approval_required: false,
            require_pop_linking: false,
        }
    }

    /// Whether certificates of this profile carry `right`.
    pub fn has_right(&self, right: SystemRight) -> bool {
        self.rights.contains(&right)
    }
}

/// Why a certificate was revoked (RFC 5280 CRLReason values in brackets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RevocationReason {
    /// The organisation no longer exists (cessationOfOperation).
    OrganisationCeased,
    /// Suspected misuse (keyCompromise).
    SuspectedMisuse,
    /// Information no longer correct (affiliationChanged).
    InformationChanged,
    /// Superseded (superseded).
    Superseded,
    /// Other (unspecified).
    Other,
    /// Blocked by its holder (certificateHold is not used: a block is final;
    /// it is listed as privilegeWithdrawn).
    Blocked,
}

impl RevocationReason {
    /// The RFC 5280 CRLReason code.
    pub fn crl_reason_code(self) -> u8 {
        match self {
            RevocationReason::Other => 0,
            RevocationReason::SuspectedMisuse => 1,
            RevocationReason::InformationChanged => 3,
            RevocationReason::Superseded => 4,
            RevocationReason::OrganisationCeased => 5,
            RevocationReason::Blocked => 9,
        }
    }

    /// The CRL reason, or `None` for "unspecified" (which RFC 5280 says to omit).
    pub fn crl_reason(self) -> Option<x509_cert::ext::pkix::CrlReason> {
        use x509_cert::ext::pkix::CrlReason;
        Some(match self {
            RevocationReason::Other => return None,
            RevocationReason::SuspectedMisuse => CrlReason::KeyCompromise,
            RevocationReason::InformationChanged => CrlReason::AffiliationChanged,
            RevocationReason::Superseded => CrlReason::Superseded,
            RevocationReason::OrganisationCeased => CrlReason::CessationOfOperation,
            RevocationReason::Blocked => CrlReason::PrivilegeWithdrawn,
        })
    }
}

/// A certificate's stored status. Expiry is derived from `not_after`, not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CertStatus {
    /// Valid (unless expired).
    Issued,
    /// Revoked or blocked, for good.
    Revoked {
        /// When.
        at: UnixSeconds,
        /// Why.
        reason: RevocationReason,
    },
}

/// An illegal state change, naming the current state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("certificate is {current}; {attempted} is not possible")]
pub struct IllegalTransition {
    /// The state it is in.
    pub current: &'static str,
    /// What was attempted.
    pub attempted: &'static str,
}

/// A certificate issued by this CA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertRecord {
    /// Serial number (the key).
    pub serial: Serial,
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// Subject, RFC 4514 string, for display and search.
    pub subject: String,
    /// Profile it was issued under.
    pub profile_id: String,
    /// Organisation.
    pub cvr: String,
    /// Kind, fixed at issuance.
    pub kind: CertKind,
    /// System rights, fixed at issuance: a profile change affects only later certificates.
    pub rights: Vec<SystemRight>,
    /// Issued at.
    pub issued_at: UnixSeconds,
    /// notAfter.
    pub not_after: UnixSeconds,
    /// Stored status.
    pub status: CertStatus,
    /// The certificate this one renews.
    pub renews: Option<Serial>,
    /// The certificate that renewed this one.
    pub renewed_by: Option<Serial>,
    /// The order it was issued for.
    pub order_id: Option<String>,
    /// Whether it is in the public certificate database (fixed at issuance).
    pub published: bool,
    /// E-mail address in the certificate, if any.
    pub email: Option<String>,
}

impl CertRecord {
    /// Whether `notAfter` has passed at `now`.
    pub fn is_expired(&self, now: UnixSeconds) -> bool {
        now > self.not_after
    }

    /// Whether it carries `right`.
    pub fn has_right(&self, right: SystemRight) -> bool {
        self.rights.contains(&right)
    }

    /// Display name of the current state.
    pub fn state_name(&self, now: UnixSeconds) -> &'static str {
        match self.status {
            CertStatus::Revoked {
                reason: RevocationReason::Blocked,
                ..
            } => "blocked",
            CertStatus::Revoked { .. } => "revoked",
            CertStatus::Issued if self.is_expired(now) => "expired",
            CertStatus::Issued => "issued",
        }
    }

    /// Issued → Revoked (or Blocked). A revoked certificate stays revoked.
    pub fn revoke(
        &mut self,
        reason: RevocationReason,
        at: UnixSeconds,
    ) -> Result<(), IllegalTransition> {
        match self.status {
            CertStatus::Issued => {
                self.status = CertStatus::Revoked { at, reason };
                Ok(())
            }
            CertStatus::Revoked { .. } => Err(IllegalTransition {
                current: self.state_name(at),
                attempted: "revocation",
            }),
        }
    }
}

/// Who an order is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderHolder {
    /// A certificate of a profile (organisation or system certificate).
    Profile,
    /// A user certificate for a person.
    User {
        /// Name.
        name: String,
        /// E-mail address.
        email: String,
    },
}

/// A one-time code's stored state: only its hash is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeState {
    /// SHA-256 of the reference number and the code.
    pub hash: [u8; 32],
    /// When it stops working.
    pub expires_at: UnixSeconds,
    /// Wrong codes presented since it was issued.
    pub failures: u32,
}

/// Wrong codes allowed before an order is locked.
pub const MAX_CODE_FAILURES: u32 = 5;

/// The state of an order. Only the transitions below exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderStatus {
    /// Waiting to be collected (or, with approval, to be decided).
    Pending,
    /// Approved by an administrator; the held request can collect it.
    Approved,
    /// Rejected by an administrator.
    Rejected,
    /// Collected: a certificate was issued.
    Issued {
        /// The certificate.
        serial: Serial,
    },
    /// Deleted before issue. Kept for history, hidden from lists.
    Deleted,
}

impl OrderStatus {
    /// Display name.
    pub fn name(self) -> &'static str {
        match self {
            OrderStatus::Pending => "pending",
            OrderStatus::Approved => "approved",
            OrderStatus::Rejected => "rejected",
            OrderStatus::Issued { .. } => "issued",
            OrderStatus::Deleted => "deleted",
        }
    }
}

/// A certificate order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// Reference number (the EST user name for one-time codes).
    pub id: String,
    /// Organisation.
    pub cvr: String,
    /// Profile.
    pub profile_id: String,
    /// Profile or user.
    pub holder: OrderHolder,
    /// Identification method.
    pub identification: Identification,
    /// Issuance method.
    pub issuance: Issuance,
    /// State.
    pub status: OrderStatus,
    /// Created at.
    pub created_at: UnixSeconds,
    /// Who created it.
    pub created_by: String,
    /// The one-time code, while one is outstanding.
    pub code: Option<CodeState>,
    /// The certificate this order renews.
    pub renews: Option<Serial>,
    /// SHA-256 of a held CSR (approval-required API enrolments).
    pub held_csr: Option<[u8; 32]>,
}

impl Order {
    fn illegal(&self, attempted: &'static str) -> IllegalTransition {
        IllegalTransition {
            current: self.status.name(),
            attempted,
        }
    }

    /// Pending or Approved → Issued.
    pub fn mark_issued(&mut self, serial: Serial) -> Result<(), IllegalTransition> {
        match self.status {
            OrderStatus::Pending | OrderStatus::Approved => {
                self.status = OrderStatus::Issued { serial };
                self.code = None;
                Ok(())
            }
            _ => Err(self.illegal("issuing")),
        }
    }

    /// Pending → Deleted ("Delete certificate order"), only before issue.
    pub fn delete(&mut self) -> Result<(), IllegalTransition> {
        match self.status {
            OrderStatus::Pending | OrderStatus::Approved | OrderStatus::Rejected => {
                self.status = OrderStatus::Deleted;
                self.code = None;
                Ok(())
            }
            _ => Err(self.illegal("deletion")),
        }
    }

    /// Pending → Approved.
    pub fn approve(&mut self) -> Result<(), IllegalTransition> {
        match self.status {
            OrderStatus::Pending if self.held_csr.is_some() => {
                self.status = OrderStatus::Approved;
                Ok(())
            }
            _ => Err(self.illegal("approval")),
        }
    }

    /// Pending → Rejected.
    pub fn reject(&mut self) -> Result<(), IllegalTransition> {
        match self.status {
            OrderStatus::Pending if self.held_csr.is_some() => {
                self.status = OrderStatus::Rejected;
                Ok(())
            }
            _ => Err(self.illegal("rejection")),
        }
    }

    /// Replaces the one-time code of a pending order (also unlocks it).
    pub fn set_code(&mut self, code: CodeState) -> Result<(), IllegalTransition> {
        match self.status {
            OrderStatus::Pending if self.identification == Identification::OneTimeCode => {
                self.code = Some(code);
                Ok(())
            }
            _ => Err(self.illegal("a new one-time code")),
        }
    }

    /// Whether the order is locked after too many wrong codes.
    pub fn is_locked(&self) -> bool {
        self.code
            .as_ref()
            .is_some_and(|c| c.failures >= MAX_CODE_FAILURES)
    }
}

/// What a notification is about (the events MitID Erhverv e-mails about).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum NotificationKind {
    /// A certificate was ordered and is ready to collect.
    Ordered,
    /// A certificate was renewed.
    Renewed,
    /// A certificate was revoked.
    Revoked,
    /// A certificate was blocked.
    Blocked,
    /// A certificate expires within 30 days.
    Expiring,
}

/// A notice in the durable outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// Outbox id.
    pub id: u64,
    /// When it was written.
    pub at: UnixSeconds,
    /// What it is about.
    pub kind: NotificationKind,
    /// Organisation.
    pub cvr: String,
    /// Recipient e-mail address.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// Body text. Never contains a one-time code.
    pub body: String,
    /// Certificate concerned.
    pub serial: Option<Serial>,
    /// Order concerned.
    pub order_id: Option<String>,
    /// When it was delivered by SMTP, if it was.
    pub delivered_at: Option<UnixSeconds>,
    /// Failed delivery attempts.
    pub attempts: u32,
}

/// An admin API token's stored form (the token itself is never stored).
/// Its public id is derived from the key it is stored under, the token's
/// hash (see [`crate::orders::token_id`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Organisation it acts for; `None` for a server operator.
    pub cvr: Option<String>,
    /// A name for people.
    pub name: String,
    /// Created at.
    pub created_at: UnixSeconds,
    /// Refused from this moment on; `None`: never expires (only tokens made
    /// before tokens had an expiry).
    pub expires_at: Option<UnixSeconds>,
    /// When it was revoked; refused from then on.
    pub revoked_at: Option<UnixSeconds>,
}

impl TokenRecord {
    /// Whether it is accepted at `now`: neither revoked nor expired.
    pub fn is_usable(&self, now: UnixSeconds) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|at| now < at)
    }

    /// `active`, `expired` or `revoked`, as the API shows it.
    pub fn state_name(&self, now: UnixSeconds) -> &'static str {
        if self.revoked_at.is_some() {
            "revoked"
        } else if self.is_usable(now) {
            "active"
        } else {
            "expired"
        }
    }
}

/// What an audit event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AuditAction {
    /// A certificate was issued by `simpleenroll`.
    Enroll,
    /// A certificate was renewed by `simplereenroll`.
    Reenroll,
    /// A certificate was revoked.
    Revoke,
    /// An organisation or profile was created or changed.
    Configure,
    /// A certificate was ordered.
    Order,
    /// An order was deleted.
    DeleteOrder,
    /// A certificate was blocked.
    Block,
    /// A held enrolment was approved.
    Approve,
    /// A held enrolment was rejected.
    Reject,
    /// A new one-time code was issued.
    NewCode,
    /// A one-time code was presented.
    Collect,
    /// A key and certificate were generated by the server.
    ServerKeygen,
}

/// Whether the action happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AuditOutcome {
    /// Done.
    Done,
    /// Refused.
    Refused,
}

/// One entry of the append-only audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// When, milliseconds since the epoch.
    pub at_ms: u64,
    /// Who: a principal description such as `cert:<serial>` or `anonymous@<ip>`.
    pub actor: String,
    /// What.
    pub action: AuditAction,
    /// Done or refused.
    pub outcome: AuditOutcome,
    /// Organisation concerned, if known.
    pub cvr: Option<String>,
    /// Profile concerned, if known.
    pub profile_id: Option<String>,
    /// Certificate concerned, if any.
    pub serial: Option<Serial>,
    /// Order concerned, if any.
    pub order_id: Option<String>,
    /// Why, or further detail. Never a secret.
    pub detail: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cvr_validation() {
        assert!(is_valid_cvr("12345674"));
        assert!(is_valid_cvr("87654311"));
        // Fails the modulus-11 check (the old demo CVR).
        assert!(!is_valid_cvr("12345678"));
        // Passes modulus 11 trivially, but no CVR number starts with 0.
        assert!(!is_valid_cvr("00000000"));
        assert!(!is_valid_cvr("01234567"));
        assert!(!is_valid_cvr("1234567"));
        assert!(!is_valid_cvr("1234567a"));
        assert!(!is_valid_cvr("123456789"));
    }

    #[test]
    fn serial_hex_round_trip() {
        let s = Serial([0x4a; 16]);
        assert_eq!(Serial::from_hex(&s.to_string()), Some(s));
        assert_eq!(Serial::from_hex("zz"), None);
        let lower = s.to_string().to_ascii_lowercase();
        assert_eq!(Serial::from_hex(&lower), Some(s));
        assert_eq!(Serial::from_hex(&format!(" {s}\n")), Some(s));
    }

    /// Found by the outside test: `+B` was read as `0B` (from_str_radix takes a sign).
    #[test]
    fn serial_hex_is_strict() {
        let s = "4A4A4A4A4A4A4A4A4A4A4A4A4A4A4A0B";
        assert!(Serial::from_hex(s).is_some());
        for bad in [
            "4A4A4A4A4A4A4A4A4A4A4A4A4A4A4A+B",
            "+A4A4A4A4A4A4A4A4A4A4A4A4A4A4A0B",
            "4A4A4A4A4A4A4A4A4A4A4A4A4A4A4A-0",
            "-04A4A4A4A4A4A4A4A4A4A4A4A4A4A0B",
            "4A4A4A4A4A4A4A4A4A4A4A4A4A4A4A 0B",
            "4A4A4A4A4A4A4A4A4A4A4A4A4A4A4A B",
            "4A4A4A4A4A4A4A4A4A4A4A4A4A4A4A\tB",
            "4A4A4A4A4A4A4A4A4A4A4A4A4A4A4A0x",
            "4A:4A:4A:4A:4A:4A:4A:4A:4A:4A:4A:4A:4A:4A:4A:0B",
        ] {
            assert_eq!(Serial::from_hex(bad), None, "{bad:?} was accepted");
        }
        assert_eq!(hex_byte(b"+B"), None);
        assert_eq!(hex_byte(b"-0"), None);
        assert_eq!(hex_byte(b" B"), None);
        assert_eq!(hex_byte(b"0B"), Some(0x0b));
        assert_eq!(hex_byte(b"fF"), Some(0xff));
        assert_eq!(hex_byte(b"F"), None);
    }

    #[test]
    fn email_rules() {
        assert_eq!(email_problem("a@b.dk"), None);
        assert!(email_problem("søren@b.dk").is_some_and(|m| m.contains("changed first")));
        assert!(email_problem("x@ÆBLE.dk").is_some_and(|m| m.contains("changed first")));
        assert!(email_problem("åse@b.dk").is_some());
        assert!(email_problem("nope").is_some());
        assert!(email_problem("a@b").is_some());
    }

    /// Spot checks of the table, and its shape.
    #[test]
    fn format_character_table() {
        for c in [
            '\u{AD}',
            '\u{600}',
            '\u{61C}',
            '\u{200B}',
            '\u{200C}',
            '\u{200D}',
            '\u{200E}',
            '\u{200F}',
            '\u{202A}',
            '\u{202E}',
            '\u{2060}',
            '\u{2064}',
            '\u{2066}',
            '\u{2069}',
            '\u{206F}',
            '\u{FEFF}',
            '\u{FFF9}',
            '\u{FFFB}',
            '\u{110BD}',
            '\u{1343F}',
            '\u{1D173}',
            '\u{E0001}',
            '\u{E0020}',
            '\u{E007F}',
        ] {
            assert!(is_format_character(c), "U+{:04X}", u32::from(c));
        }
        for c in [
            'a',
            'Æ',
            ' ',
            '\u{A0}',
            '\u{2065}',
            '\u{2010}',
            '\u{FFFC}',
            '\u{E0080}',
        ] {
            assert!(!is_format_character(c), "U+{:04X}", u32::from(c));
        }
        let mut last = 0;
        for &(first, end) in FORMAT_CHARACTERS {
            assert!(first > last && end >= first, "sorted and disjoint");
            last = end;
        }
    }

    /// Found by the outside test: a CN with U+202E, zero-width characters or
    /// surrounding spaces was accepted.
    #[test]
    fn subject_text_rules() {
        assert_eq!(subject_text_problem("Jens Jensen"), None);
        assert_eq!(subject_text_problem("Ærø Åbenrå"), None);
        assert_eq!(subject_text_problem("a b"), None);
        for bad in [
            "evil\u{202E}gpj.exe",
            "ad\u{200B}min",
            "\u{FEFF}admin",
            "soft\u{AD}hyphen",
            "word\u{2060}joiner",
            "a\u{2028}b",
        ] {
            assert!(
                subject_text_problem(bad).is_some_and(|m| m.contains("formatting")),
                "{bad:?}"
            );
        }
        for bad in [" admin", "admin ", "\u{A0}admin", "admin\u{3000}"] {
            assert_eq!(
                subject_text_problem(bad),
                Some("has leading or trailing spaces"),
                "{bad:?}"
            );
        }
        assert_eq!(
            subject_text_problem("a\nb"),
            Some("contains a control character")
        );
    }

    /// Found by the outside test: these were issued as rfc822Name SANs.
    #[test]
    fn email_domains_are_host_names() {
        let long_label = "a".repeat(63);
        assert_eq!(email_problem(&format!("a@{long_label}.dk")), None);
        let three = vec!["b".repeat(62); 3].join(".");
        let near_limit = format!("a@{three}.{}.dk", "b".repeat(61));
        assert_eq!(near_limit.len() - 2, 253);
        assert_eq!(email_problem(&near_limit), None);
        assert_eq!(email_problem("a@b-c.d-e.dk"), None);
        let too_long_label = format!("a@{}.dk", "a".repeat(64));
        let three_hundred = format!("a@{}.dk", vec!["c".repeat(59); 5].join("."));
        assert!(three_hundred.len() > 300);
        let over_limit = format!("a@{three}.{}.dk", "b".repeat(62));
        for bad in [
            "a@b..dk",
            "a@-b.dk",
            "a@-b-.dk",
            "a@b-.dk",
            "a@.b.dk",
            "a@b.dk.",
            "a@b_c.dk",
            "a@b.dk@c.dk",
            too_long_label.as_str(),
            three_hundred.as_str(),
            over_limit.as_str(),
        ] {
            assert!(
                email_problem(bad).is_some_and(|m| m.contains("not a valid e-mail")),
                "{bad} was accepted"
            );
        }
    }

    /// Found by the outside test: the punycode form of blåbær.dk passed the Æ/Ø/Å rule.
    #[test]
    fn email_domains_are_decoded_before_the_danish_letter_rule() {
        for bad in [
            "x@xn--blbr-roah.dk",
            "x@XN--BLBR-ROAH.DK",
            "x@mail.xn--blbr-roah.dk",
            "x@xn--rr-lka.dk",
            "x@xn--r-3fa9c.dk",
        ] {
            assert!(
                email_problem(bad).is_some_and(|m| m.contains("changed first")),
                "{bad} was accepted: {:?}",
                email_problem(bad)
            );
        }
        // Other IDNs are fine, and so is "xn" that is not an A-label.
        assert_eq!(email_problem("x@xn--mller-kva.de"), None, "müller.de");
        assert_eq!(email_problem("x@xnet.dk"), None);
        assert!(email_problem("x@xn--.dk").is_some(), "an empty A-label");
        assert!(
            email_problem("x@xn--a-99999999999.dk").is_some(),
            "not punycode"
        );
    }

    #[test]
    fn order_transitions() {
        let mut o = Order {
            id: "R1".into(),
            cvr: "12345674".into(),
            profile_id: "p".into(),
            holder: OrderHolder::Profile,
            identification: Identification::OneTimeCode,
            issuance: Issuance::Est,
            status: OrderStatus::Pending,
            created_at: 0,
            created_by: "t".into(),
            code: None,
            renews: None,
            held_csr: None,
        };
        assert!(o.approve().is_err(), "nothing held to approve");
        o.mark_issued(Serial([0x40; 16])).expect("issue");
        let e = o.delete().unwrap_err();
        assert_eq!(e.current, "issued");
        assert!(o.mark_issued(Serial([0x41; 16])).is_err());
    }

    #[test]
    fn method_pairs() {
        assert!(is_allowed_method_pair(Identification::Api, Issuance::Est));
        assert!(!is_allowed_method_pair(
            Identification::Api,
            Issuance::Browser
        ));
        assert!(!is_allowed_method_pair(
            Identification::UserLogin,
            Issuance::Est
        ));
    }

    #[test]
    fn revoked_is_final() {
        let mut r = CertRecord {
            serial: Serial([0x40; 16]),
            der: vec![],
            subject: String::new(),
            profile_id: String::new(),
            cvr: "12345674".into(),
            kind: CertKind::System,
            rights: vec![],
            issued_at: 0,
            not_after: 100,
            status: CertStatus::Issued,
            renews: None,
            renewed_by: None,
            order_id: None,
            published: false,
            email: None,
        };
        assert!(r.revoke(RevocationReason::Superseded, 1).is_ok());
        let e = r.revoke(RevocationReason::Other, 2).unwrap_err();
        assert_eq!(e.current, "revoked");
    }
}
