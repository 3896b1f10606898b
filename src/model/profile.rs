//! Certificate profiles: what an organisation may be issued, and how.

use serde::{Deserialize, Serialize};

use super::Contact;

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
    /// Seal generation (only if the organisation allows it; organisation
    /// profiles only): certificates carry contentCommitment (nonRepudiation)
    /// with digitalSignature, no encryption usage, and the seal policy OID.
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

/// Where a profile stands, derived from its certificates and orders when it
/// is asked for (profiles have no stored state): the profile search filters
/// on it and the profile export shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProfileState {
    /// At least one of its certificates is valid now (issued, not expired,
    /// not revoked or blocked).
    Active,
    /// None is valid, but an order for it is open (pending or approved).
    Ordered,
    /// Neither: no certificate yet, or all expired, revoked or blocked.
    Inactive,
}

impl ProfileState {
    /// Every state, in the order the API lists them.
    pub const ALL: [ProfileState; 3] = [
        ProfileState::Active,
        ProfileState::Ordered,
        ProfileState::Inactive,
    ];

    /// The state of a profile with `valid_certs` valid certificates and
    /// `open_orders` open orders.
    pub fn of(valid_certs: usize, open_orders: usize) -> ProfileState {
        match (valid_certs, open_orders) {
            (0, 0) => ProfileState::Inactive,
            (0, _) => ProfileState::Ordered,
            _ => ProfileState::Active,
        }
    }

    /// The name the API, CSV exports and messages use.
    pub fn as_str(self) -> &'static str {
        match self {
            ProfileState::Active => "active",
            ProfileState::Ordered => "ordered",
            ProfileState::Inactive => "inactive",
        }
    }

    /// Parses [`ProfileState::as_str`]'s names (exactly).
    pub fn parse(s: &str) -> Option<ProfileState> {
        ProfileState::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn profile_states() {
        assert_eq!(ProfileState::of(0, 0), ProfileState::Inactive);
        assert_eq!(ProfileState::of(0, 2), ProfileState::Ordered);
        assert_eq!(ProfileState::of(1, 0), ProfileState::Active);
        assert_eq!(ProfileState::of(3, 1), ProfileState::Active);
        for st in ProfileState::ALL {
            assert_eq!(ProfileState::parse(st.as_str()), Some(st));
            assert_eq!(serde_json::to_value(st).ok(), Some(st.as_str().into()));
        }
        assert_eq!(ProfileState::parse("Active"), None);
        assert_eq!(ProfileState::parse(""), None);
    }
}
