//! Policy: what a profile allows a CSR to ask for, and the certificate template
//! that results. The CSR proposes; the profile decides.

use const_oid::db::rfc4519;
use const_oid::{AssociatedOid, ObjectIdentifier};
use der::asn1::Ia5String;
use der::Decode;
use x509_cert::certificate::Certificate;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{
    BasicConstraints, CertificatePolicies, ExtendedKeyUsage, KeyUsage, SubjectAltName,
};
use x509_cert::name::Name;

use crate::ca::csr::{directory_string, SubjectKey, VerifiedCsr};
use crate::ca::{self, CertTemplate, CertUsage, LeafUsage};
use crate::config::CertificatePoliciesConfig;
use crate::model::{
    email_problem, organization_identifier, subject_text_problem, CertKind, KeyAlgorithm,
    OrderHolder, Organisation, Profile,
};
use crate::tls::ChannelBinding;

/// OID of organizationIdentifier (X.520, 2.5.4.97).
pub const ORGANIZATION_IDENTIFIER: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.97");
/// OID of the PKCS#9 emailAddress attribute.
pub const EMAIL_ADDRESS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.1");

/// Why the profile refuses a CSR. Shown to the client, so it names the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The key type or size is not allowed by this profile.
    #[error("key not allowed by the profile: {0}")]
    Key(String),
    /// The subject breaks the profile's rules.
    #[error("subject not allowed: {0}")]
    Subject(String),
    /// The CSR names an organisation other than the caller's.
    #[error("the CSR names another organisation")]
    ForeignOrganisation,
    /// A subject alternative name is not allowed.
    #[error("subject alternative name not allowed: {0}")]
    San(String),
    /// A requested extension asks for more than the profile gives.
    #[error("requested extension not allowed: {0}")]
    Extension(String),
    /// Re-enrolment must keep Subject and SubjectAltName (RFC 7030 4.2.2).
    #[error("re-enrolment must keep the certificate's {0} unchanged")]
    ReenrollMismatch(&'static str),
    /// The profile or organisation changed since issuance and no longer
    /// allows a name the certificate carries; re-enrolment keeps every name,
    /// so it cannot renew this certificate.
    #[error(
        "the profile no longer allows the certificate's {0}; re-enrolment keeps the \
         certificate's names (RFC 7030 4.2.2), so this certificate cannot be renewed: \
         enrol a new one"
    )]
    NoLongerAllowed(String),
    /// A profile of another kind than organisation has seal on (stored
    /// before the admin API refused it): a seal is an organisation's.
    #[error(
        "the profile has seal on, but only organisation certificates can be seals; \
         turn seal off on this profile or make it an organisation profile"
    )]
    SealNotOrganisation,
}

/// Why a CSR fails proof-of-possession linking (RFC 7030 3.5). A client error
/// (400): the request can be made right on a TLS 1.3 connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkingError {
    /// The connection is TLS 1.2, whose binding estd cannot check.
    #[error(
        "this profile requires proof-of-possession linking (RFC 7030 3.5), which estd checks \
         only on TLS 1.3 connections (RFC 9266 tls-exporter); TLS 1.2's tls-unique is not \
         available: connect with TLS 1.3"
    )]
    Tls12,
    /// No TLS channel binding exists for the connection.
    #[error(
        "this profile requires proof-of-possession linking (RFC 7030 3.5), and this connection \
         has no TLS channel binding"
    )]
    Unavailable,
    /// The CSR carries no challengePassword.
    #[error(
        "this profile requires proof-of-possession linking (RFC 7030 3.5): the CSR must carry \
         the base64 tls-exporter channel binding (RFC 9266) of this TLS connection in its \
         challengePassword attribute, and it has none"
    )]
    Missing,
    /// The challengePassword is not this connection's binding.
    #[error(
        "the CSR's challengePassword is not the channel binding of this TLS connection \
         (proof-of-possession linking, RFC 7030 3.5: base64 of the RFC 9266 tls-exporter value, \
         read on the connection that sends the CSR)"
    )]
    Mismatch,
}

/// Proof-of-possession linking (RFC 7030 3.5): when the profile requires it,
/// the CSR's challengePassword must be the base64 channel binding of the TLS
/// connection it arrived on, so the CSR was made for this authenticated
/// session and not relayed from another. Other profiles ignore the attribute.
pub fn check_pop_linking(
    profile: &Profile,
    csr: &VerifiedCsr,
    binding: &ChannelBinding,
) -> Result<(), LinkingError> {
    if !profile.require_pop_linking {
        return Ok(());
    }
    let expected = match binding {
        ChannelBinding::TlsExporter(v) => v,
        ChannelBinding::Tls12 => return Err(LinkingError::Tls12),
        ChannelBinding::Unavailable => return Err(LinkingError::Unavailable),
    };
    let given = match &csr.challenge_password {
        None => return Err(LinkingError::Missing),
        Some(Ok(text)) => text.as_str(),
        Some(Err(_)) => return Err(LinkingError::Mismatch),
    };
    // Padding is optional: RFC 7030 says only "base64".
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let decoded =
        base64::Engine::decode(&engine, given.trim()).map_err(|_| LinkingError::Mismatch)?;
    aws_lc_rs::constant_time::verify_slices_are_equal(&decoded, expected)
        .map_err(|_| LinkingError::Mismatch)
}

/// The attribute types a subject may carry, with display names for errors.
fn attr_name(oid: &ObjectIdentifier) -> Option<&'static str> {
    Some(match *oid {
        rfc4519::CN => "CN",
        rfc4519::O => "O",
        rfc4519::C => "C",
        rfc4519::SERIAL_NUMBER => "serialNumber",
        ORGANIZATION_IDENTIFIER => "organizationIdentifier",
        EMAIL_ADDRESS => "emailAddress",
        _ => return None,
    })
}

/// A name as (attribute type, text value) pairs, one per single-valued RDN.
pub fn name_values(name: &Name) -> Result<Vec<(ObjectIdentifier, String)>, PolicyError> {
    let mut out = Vec::with_capacity(name.0.len());
    for rdn in name.0.iter() {
        if rdn.0.len() != 1 {
            return Err(PolicyError::Subject(
                "multi-valued RDNs are not allowed".into(),
            ));
        }
        for atv in rdn.0.iter() {
            let v =
                directory_string(&atv.value).map_err(|e| PolicyError::Subject(e.to_string()))?;
            out.push((atv.oid, v));
        }
    }
    Ok(out)
}

/// A name for people: `C=DK, O=..., organizationIdentifier=..., CN=...`, in
/// certificate order, with attribute names spelled out.
pub fn display_name(name: &Name) -> String {
    let mut out = String::new();
    for rdn in name.0.iter() {
        for atv in rdn.0.iter() {
            if !out.is_empty() {
                out.push_str(", ");
            }
            match attr_name(&atv.oid) {
                Some(n) => out.push_str(n),
                None => out.push_str(&atv.oid.to_string()),
            }
            out.push('=');
            match directory_string(&atv.value) {
                Ok(v) => out.push_str(&v),
                Err(_) => out.push_str("<binary>"),
            }
        }
    }
    out
}

fn check_key(profile: &Profile, key: SubjectKey) -> Result<(), PolicyError> {
    let alg = key.algorithm();
    if !profile.key_policy.allowed.contains(&alg) {
        return Err(PolicyError::Key(format!(
            "{alg:?} (the profile accepts {:?})",
            profile.key_policy.allowed
        )));
    }
    if let SubjectKey::Rsa { bits } = key {
        let min = profile.key_policy.min_rsa_bits.max(2048);
        if bits < min {
            return Err(PolicyError::Key(format!(
                "RSA-{bits} is below the profile's {min} bits"
            )));
        }
    }
    debug_assert!(alg != KeyAlgorithm::Rsa || matches!(key, SubjectKey::Rsa { .. }));
    Ok(())
}

/// Why a CSR with an emailAddress in its subject is refused.
const EMAIL_IN_SUBJECT: &str = "emailAddress is not allowed in the subject; the certificate \
     carries the profile's e-mail address in its subjectAltName (rfc822Name)";

/// Checks the subject of a CSR for an organisation's profile.
fn check_subject(subject: &Name, org: &Organisation) -> Result<(), PolicyError> {
    let values = name_values(subject)?;
    let mut seen: Vec<ObjectIdentifier> = Vec::with_capacity(values.len());
    let (mut cn, mut o, mut oi) = (false, false, false);
    for (oid, v) in &values {
        let Some(attr) = attr_name(oid) else {
            return Err(PolicyError::Subject(format!(
                "attribute {oid} is not allowed by the profile"
            )));
        };
        if seen.contains(oid) {
            return Err(PolicyError::Subject(format!("{attr} appears twice")));
        }
        seen.push(*oid);
        // Subject values end up in logs, the audit log, the admin API and
        // CSV: no control or invisible formatting characters, no padding.
        if let Some(problem) = subject_text_problem(v) {
            return Err(PolicyError::Subject(format!("{attr} {problem}")));
        }
        match *oid {
            rfc4519::CN => {
                // X.520's bound is in characters, so Æ, Ø and Å count as one.
                if v.trim().is_empty() || v.chars().count() > 64 {
                    return Err(PolicyError::Subject("CN must be 1 to 64 characters".into()));
                }
                cn = true;
            }
            rfc4519::O => {
                if v != &org.name {
                    return Err(PolicyError::ForeignOrganisation);
                }
                o = true;
            }
            ORGANIZATION_IDENTIFIER => {
                if v != &organization_identifier(&org.cvr) {
                    return Err(PolicyError::ForeignOrganisation);
                }
                oi = true;
            }
            rfc4519::C if v != "DK" => {
                return Err(PolicyError::Subject("C must be DK".into()));
            }
            rfc4519::SERIAL_NUMBER if v.is_empty() || v.chars().count() > 64 => {
                return Err(PolicyError::Subject(
                    "serialNumber must be 1 to 64 characters".into(),
                ));
            }
            // RFC 5280 4.1.2.6: e-mail addresses belong in the
            // subjectAltName, where the profile's e-mail is put; the
            // legacy subject attribute is never copied.
            EMAIL_ADDRESS => return Err(PolicyError::Subject(EMAIL_IN_SUBJECT.into())),
            _ => {}
        }
    }
    if !cn {
        return Err(PolicyError::Subject("CN is required".into()));
    }
    if !o || !oi {
        return Err(PolicyError::Subject(format!(
            "O={:?} and organizationIdentifier={:?} are required",
            org.name,
            organization_identifier(&org.cvr)
        )));
    }
    Ok(())
}

/// Whether `name` is a host name in preferred name syntax (RFC 1034 3.5, as
/// RFC 5280 4.2.1.6 requires of a dNSName): labels of 1 to 63 letters, digits
/// and inner hyphens, at most 253 characters in all. No wildcards.
pub fn is_host_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn dns_allowed(profile: &Profile, name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    profile.dns_names.iter().any(|rule| {
        let rule = rule.to_ascii_lowercase();
        if let Some(suffix) = rule.strip_prefix('.') {
            name.len() > suffix.len() + 1
                && name.ends_with(&rule)
                && !name[..name.len() - rule.len()].is_empty()
        } else {
            name == rule
        }
    })
}

/// The SANs the certificate will carry: the CSR's, each checked, plus the profile's e-mail.
fn decide_sans(
    requested: &[GeneralName],
    profile: &Profile,
) -> Result<Vec<GeneralName>, PolicyError> {
    let mut out: Vec<GeneralName> = Vec::with_capacity(requested.len() + 1);
    for gn in requested {
        match gn {
            GeneralName::DnsName(n) => {
                // A profile rule allows names, not patterns: a wildcard or a
                // name with spaces or slashes is refused even below the suffix.
                if !is_host_name(n.as_str()) || !dns_allowed(profile, n.as_str()) {
                    return Err(PolicyError::San(format!("DNS name {}", n.as_str())));
                }
            }
            GeneralName::IpAddress(ip) => {
                if !profile.allow_ip_sans || !matches!(ip.as_bytes().len(), 4 | 16) {
                    return Err(PolicyError::San("IP address".into()));
                }
            }
            GeneralName::Rfc822Name(m) => match &profile.email {
                Some(e) if e.eq_ignore_ascii_case(m.as_str()) => continue, // added below
                _ => return Err(PolicyError::San(format!("e-mail {}", m.as_str()))),
            },
            _ => {
                return Err(PolicyError::San(
                    "only DNS, IP and e-mail names are allowed".into(),
                ))
            }
        }
        if !out.contains(gn) {
            out.push(gn.clone());
        }
    }
    if let Some(e) = &profile.email {
        // Checked again here for addresses stored before the rules tightened.
        if let Some(problem) = email_problem(e) {
            return Err(PolicyError::San(format!(
                "the e-mail address {e:?} {problem}"
            )));
        }
        let email = Ia5String::new(e.as_str())
            .map_err(|_| PolicyError::San("profile e-mail is not ASCII".into()))?;
        out.push(GeneralName::Rfc822Name(email));
    }
    Ok(out)
}

/// What a certificate of `profile` is for: its kind, and for an organisation
/// certificate whether it is a seal. Seal on any other kind is refused (the
/// admin API refuses to set it; a profile stored before may have it).
pub fn leaf_usage(profile: &Profile) -> Result<LeafUsage, PolicyError> {
    match (profile.kind, profile.seal) {
        (CertKind::Organisation, true) => Ok(LeafUsage::Seal),
        (CertKind::Organisation, false) => Ok(LeafUsage::Organisation),
        (CertKind::System, false) => Ok(LeafUsage::System),
        (CertKind::User, false) => Ok(LeafUsage::User),
        (CertKind::System | CertKind::User, true) => Err(PolicyError::SealNotOrganisation),
    }
}

/// The certificate policy OID of `usage`, from `[certificate_policies]`.
pub fn policy_oid(usage: LeafUsage, policies: &CertificatePoliciesConfig) -> ObjectIdentifier {
    match usage {
        LeafUsage::System => policies.system,
        LeafUsage::Organisation => policies.organisation,
        LeafUsage::Seal => policies.seal,
        LeafUsage::User => policies.user,
    }
}

/// The usage of `profile`'s certificates, with their policy: what decides
/// every extension [`ca::Ca::issue`] writes and `/csrattrs` announces.
pub fn cert_usage(
    profile: &Profile,
    policies: &CertificatePoliciesConfig,
) -> Result<CertUsage, PolicyError> {
    let usage = leaf_usage(profile)?;
    Ok(CertUsage::Leaf {
        usage,
        policy: policy_oid(usage, policies),
    })
}

/// Refuses requested extensions that ask for more than the profile gives; the
/// rest are ignored, never copied. A CSR may ask for the key usage, extended
/// key usage and certificate policy the profile gives (as a CSR built from
/// the `/csrattrs` template does), or less of them.
fn check_requested_extensions(
    csr: &VerifiedCsr,
    usage: CertUsage,
) -> Result<Vec<GeneralName>, PolicyError> {
    let mut sans = Vec::new();
    let bad = |what: &str| PolicyError::Extension(format!("malformed {what}"));
    for ext in &csr.requested_extensions {
        let value = ext.extn_value.as_bytes();
        match ext.extn_id {
            BasicConstraints::OID => {
                let bc = BasicConstraints::from_der(value).map_err(|_| bad("basicConstraints"))?;
                if bc.ca {
                    return Err(PolicyError::Extension("CA:true".into()));
                }
            }
            KeyUsage::OID => {
                let asked = KeyUsage::from_der(value).map_err(|_| bad("keyUsage"))?;
                let given = ca::key_usage(usage, csr.key);
                if (asked.0 | given.0) != given.0 {
                    return Err(PolicyError::Extension(
                        "keyUsage beyond the profile's".into(),
                    ));
                }
            }
            ExtendedKeyUsage::OID => {
                let asked =
                    ExtendedKeyUsage::from_der(value).map_err(|_| bad("extendedKeyUsage"))?;
                let given = ca::extended_key_usage(usage);
                if let Some(o) = asked.0.iter().find(|o| !given.0.contains(o)) {
                    return Err(PolicyError::Extension(format!("extendedKeyUsage {o}")));
                }
            }
            CertificatePolicies::OID => {
                // Asking for the profile's own policy is asking for what the
                // certificate carries anyway; another policy is a claim the
                // profile does not make, and silently dropping it would
                // issue a certificate the client did not ask for.
                let asked =
                    CertificatePolicies::from_der(value).map_err(|_| bad("certificatePolicies"))?;
                let given: Vec<ObjectIdentifier> = ca::certificate_policies(usage)
                    .map(|p| p.0.into_iter().map(|i| i.policy_identifier).collect())
                    .unwrap_or_default();
                if let Some(other) = asked
                    .0
                    .iter()
                    .map(|i| i.policy_identifier)
                    .find(|o| !given.contains(o))
                {
                    return Err(PolicyError::Extension(format!(
                        "certificatePolicies {other} (the profile's certificates carry {})",
                        given
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
            }
            SubjectAltName::OID => {
                let san = SubjectAltName::from_der(value).map_err(|_| bad("subjectAltName"))?;
                sans.extend(san.0);
            }
            _ => {}
        }
    }
    Ok(sans)
}

/// The template for a first enrolment of `csr` under `profile` of `org`,
/// its certificate carrying its kind's policy from `policies`.
pub fn enroll_template(
    csr: &VerifiedCsr,
    org: &Organisation,
    profile: &Profile,
    policies: &CertificatePoliciesConfig,
) -> Result<CertTemplate, PolicyError> {
    let usage = cert_usage(profile, policies)?;
    check_key(profile, csr.key)?;
    check_subject(&csr.subject, org)?;
    let requested_sans = check_requested_extensions(csr, usage)?;
    let sans = decide_sans(&requested_sans, profile)?;
    Ok(CertTemplate {
        subject: csr.subject.clone(),
        spki: csr.spki.clone(),
        key: csr.key,
        usage,
        sans,
        validity_days: profile.validity_days,
    })
}

/// The CSR a profile wants, as `/csrattrs` announces it in the template
/// format of RFC 9908. Built from the functions that decide the certificate
/// ([`cert_usage`], [`ca::key_usage`], [`ca::extended_key_usage`],
/// [`ca::certificate_policies`]), so that the announcement and what
/// [`ca::Ca::issue`] writes cannot drift apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsrTemplate {
    /// The subject's attributes in certificate order, each with the value
    /// the CSR must carry, or `None` where the client fills it in.
    pub subject: Vec<(ObjectIdentifier, Option<String>)>,
    /// The key the client is asked to make (for RSA, of the profile's
    /// minimum size), and what the certificate's extensions are for. `None`
    /// when no profile applies.
    pub key: Option<SubjectKey>,
    /// The extensions the certificate will carry with these values, which
    /// a CSR may therefore ask for: key usage, extended key usage, policy.
    pub extensions: Option<TemplateExtensions>,
    /// Whether the client fills in a subjectAltName (the profile allows DNS
    /// names or IP addresses; the profile's e-mail the server adds itself).
    pub san_to_fill_in: bool,
}

/// The extension values of a [`CsrTemplate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateExtensions {
    /// keyUsage, for the template's key.
    pub key_usage: KeyUsage,
    /// extKeyUsage.
    pub extended_key_usage: ExtendedKeyUsage,
    /// certificatePolicies: the profile's one policy.
    pub policies: CertificatePolicies,
}

/// The subject convention: C=DK, O, organizationIdentifier, CN. The values
/// of O and organizationIdentifier are given when `org` is (the caller's own
/// organisation), and left to the client otherwise.
fn subject_template(org: Option<&Organisation>) -> Vec<(ObjectIdentifier, Option<String>)> {
    vec![
        (rfc4519::C, Some("DK".to_owned())),
        (rfc4519::O, org.map(|o| o.name.clone())),
        (
            ORGANIZATION_IDENTIFIER,
            org.map(|o| organization_identifier(&o.cvr)),
        ),
        (rfc4519::CN, None),
    ]
}

/// The template for `profile`: the subject convention (with `org`'s values
/// when the caller belongs to it), the profile's first accepted key type,
/// and the extensions its certificates carry for that key.
pub fn csr_template(
    profile: &Profile,
    org: Option<&Organisation>,
    policies: &CertificatePoliciesConfig,
) -> Result<CsrTemplate, PolicyError> {
    let usage = cert_usage(profile, policies)?;
    // A template names one key; the profile's first choice is one it accepts.
    let key = match profile.key_policy.allowed.first() {
        Some(KeyAlgorithm::P256) => SubjectKey::P256,
        Some(KeyAlgorithm::P384) => SubjectKey::P384,
        Some(KeyAlgorithm::Ed25519) => SubjectKey::Ed25519,
        Some(KeyAlgorithm::Rsa) => SubjectKey::Rsa {
            bits: profile.key_policy.min_rsa_bits.max(2048),
        },
        None => return Err(PolicyError::Key("the profile accepts no key type".into())),
    };
    let policies = ca::certificate_policies(usage)
        .ok_or_else(|| PolicyError::Extension("a profile's certificates carry a policy".into()))?;
    Ok(CsrTemplate {
        subject: subject_template(org),
        key: Some(key),
        extensions: Some(TemplateExtensions {
            key_usage: ca::key_usage(usage, key),
            extended_key_usage: ca::extended_key_usage(usage),
            policies,
        }),
        san_to_fill_in: !profile.dns_names.is_empty() || profile.allow_ip_sans,
    })
}

/// The template when no profile applies (anonymous, without a label): the
/// subject convention only.
pub fn common_csr_template() -> CsrTemplate {
    CsrTemplate {
        subject: subject_template(None),
        key: None,
        extensions: None,
        san_to_fill_in: false,
    }
}

/// The user a CSR for an API profile names: its CN and the e-mail address
/// it asks for as a subjectAltName rfc822Name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedUser {
    /// The CSR's CN: the user's name as ordered.
    pub name: String,
    /// The requested rfc822Name: the user's e-mail address as ordered.
    pub email: String,
}

/// Whether a CSR sent to an API profile asks for a user certificate: it
/// does when it requests an e-mail address (subjectAltName rfc822Name) other
/// than the profile's own. Such a CSR is issued only for a pending order of
/// that user, never as the profile's certificate, which would carry
/// somebody's e-mail without an order. `None`: an organisation or system
/// certificate's CSR, judged by [`enroll_template`] as before.
pub fn named_user(csr: &VerifiedCsr, profile: &Profile) -> Result<Option<NamedUser>, PolicyError> {
    // Only the e-mail addresses are read here; every other requested
    // extension is judged as before by the template of whichever
    // certificate this turns out to be (a malformed one is refused there).
    let requested: Vec<GeneralName> = csr
        .requested_extensions
        .iter()
        .filter(|e| e.extn_id == SubjectAltName::OID)
        .filter_map(|e| SubjectAltName::from_der(e.extn_value.as_bytes()).ok())
        .flat_map(|san| san.0)
        .collect();
    let mut email: Option<&str> = None;
    for gn in &requested {
        let GeneralName::Rfc822Name(m) = gn else {
            continue;
        };
        let m = m.as_str();
        if profile
            .email
            .as_deref()
            .is_some_and(|own| own.eq_ignore_ascii_case(m))
        {
            continue;
        }
        match email {
            None => email = Some(m),
            Some(first) if first.eq_ignore_ascii_case(m) => {}
            Some(_) => {
                return Err(PolicyError::San(
                    "a user certificate carries one e-mail address (rfc822Name), the user's".into(),
                ))
            }
        }
    }
    let Some(email) = email else {
        return Ok(None);
    };
    if let Some(problem) = email_problem(email) {
        return Err(PolicyError::San(format!("the e-mail address {problem}")));
    }
    let name = name_values(&csr.subject)?
        .into_iter()
        .find(|(oid, _)| *oid == rfc4519::CN)
        .map(|(_, v)| v)
        .ok_or_else(|| PolicyError::Subject("CN is required: the user's name".into()))?;
    if let Some(problem) = subject_text_problem(&name) {
        return Err(PolicyError::Subject(format!("CN {problem}")));
    }
    Ok(Some(NamedUser {
        name,
        email: email.to_owned(),
    }))
}

/// The profile as it applies to an order: a user order becomes a user
/// certificate carrying the user's e-mail address, no system rights and no seal.
pub fn effective_profile(profile: &Profile, holder: &OrderHolder) -> Profile {
    match holder {
        OrderHolder::Profile => profile.clone(),
        OrderHolder::User { email, .. } => {
            let mut p = profile.clone();
            p.kind = CertKind::User;
            p.email = Some(email.clone());
            p.rights = Vec::new();
            // A user certificate names a person: it is never a seal.
            p.seal = false;
            p
        }
    }
}

/// The template for collecting an order: the CSR must match what was ordered,
/// i.e. CN is the profile's name (or the user's name) and the organisation is
/// the order's. `profile` is the [`effective_profile`].
pub fn collect_template(
    csr: &VerifiedCsr,
    org: &Organisation,
    profile: &Profile,
    holder: &OrderHolder,
    policies: &CertificatePoliciesConfig,
) -> Result<CertTemplate, PolicyError> {
    let template = enroll_template(csr, org, profile, policies)?;
    let expected_cn = match holder {
        OrderHolder::Profile => profile.name.as_str(),
        OrderHolder::User { name, .. } => name.as_str(),
    };
    let cn = name_values(&csr.subject)?
        .into_iter()
        .find(|(oid, _)| *oid == rfc4519::CN)
        .map(|(_, v)| v);
    if cn.as_deref() != Some(expected_cn) {
        return Err(PolicyError::Subject(format!(
            "CN must be {expected_cn:?}, as ordered"
        )));
    }
    Ok(template)
}

/// The SANs of a certificate, empty if it has none.
pub fn cert_sans(cert: &Certificate) -> Vec<GeneralName> {
    cert.tbs_certificate
        .extensions
        .iter()
        .flatten()
        .find(|e| e.extn_id == SubjectAltName::OID)
        .and_then(|e| SubjectAltName::from_der(e.extn_value.as_bytes()).ok())
        .map(|s| s.0)
        .unwrap_or_default()
}

fn same_names(a: &[GeneralName], b: &[GeneralName]) -> bool {
    a.len() == b.len() && a.iter().all(|x| b.contains(x))
}

/// The template for renewing `old` (issued under `profile`) with `csr`: same
/// subject and SANs, possibly a new key, the profile's current extensions
/// (and so its current seal setting and policy).
pub fn reenroll_template(
    csr: &VerifiedCsr,
    old: &Certificate,
    profile: &Profile,
    policies: &CertificatePoliciesConfig,
) -> Result<CertTemplate, PolicyError> {
    let usage = cert_usage(profile, policies)?;
    check_key(profile, csr.key)?;
    if name_values(&csr.subject)? != name_values(&old.tbs_certificate.subject)? {
        return Err(PolicyError::ReenrollMismatch("Subject"));
    }
    let requested_sans = check_requested_extensions(csr, usage)?;
    let old_sans = cert_sans(old);
    if !same_names(&requested_sans, &old_sans) {
        // A CSR that leaves out only the profile's e-mail still asks for the same names.
        let without_email: Vec<GeneralName> = old_sans
            .iter()
            .filter(|g| !matches!(g, GeneralName::Rfc822Name(_)))
            .cloned()
            .collect();
        if !same_names(&requested_sans, &without_email) {
            return Err(PolicyError::ReenrollMismatch("SubjectAltName"));
        }
    }
    Ok(CertTemplate {
        subject: old.tbs_certificate.subject.clone(),
        spki: csr.spki.clone(),
        key: csr.key,
        usage,
        sans: old_sans,
        validity_days: profile.validity_days,
    })
}

/// Checks the names of `old` against the profile and organisation as they
/// are now, for its re-enrolment: the subject must still fit them, and each
/// SAN must still be allowed. Names are never dropped silently: a name the
/// profile no longer allows refuses the renewal, naming it. `profile` is the
/// [`effective_profile`].
pub fn check_names_still_allowed(
    old: &Certificate,
    org: &Organisation,
    profile: &Profile,
) -> Result<(), PolicyError> {
    check_subject(&old.tbs_certificate.subject, org)
        .map_err(|e| PolicyError::NoLongerAllowed(format!("subject ({e})")))?;
    for gn in cert_sans(old) {
        let refused = match &gn {
            GeneralName::DnsName(n) => (!is_host_name(n.as_str())
                || !dns_allowed(profile, n.as_str()))
            .then(|| format!("DNS name {}", n.as_str())),
            GeneralName::IpAddress(ip) => (!profile.allow_ip_sans).then(|| {
                let b = ip.as_bytes();
                let shown = match (<[u8; 4]>::try_from(b), <[u8; 16]>::try_from(b)) {
                    (Ok(v4), _) => std::net::Ipv4Addr::from(v4).to_string(),
                    (_, Ok(v6)) => std::net::Ipv6Addr::from(v6).to_string(),
                    _ => "of unknown form".into(),
                };
                format!("IP address {shown}")
            }),
            GeneralName::Rfc822Name(m) => (!profile
                .email
                .as_ref()
                .is_some_and(|e| e.eq_ignore_ascii_case(m.as_str())))
            .then(|| format!("e-mail {}", m.as_str())),
            _ => Some("subject alternative name of another type".into()),
        };
        if let Some(name) = refused {
            return Err(PolicyError::NoLongerAllowed(name));
        }
    }
    Ok(())
}

/// The e-mail address a certificate with `sans` carries (its first rfc822Name).
pub fn email_of(sans: &[GeneralName]) -> Option<String> {
    sans.iter().find_map(|g| match g {
        GeneralName::Rfc822Name(m) => Some(m.as_str().to_owned()),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use der::asn1::OctetString;
    use der::Encode;
    use spki::SubjectPublicKeyInfoOwned;
    use x509_cert::ext::Extension;

    /// The shipped `[certificate_policies]`.
    fn policies() -> &'static CertificatePoliciesConfig {
        static POLICIES: std::sync::OnceLock<CertificatePoliciesConfig> =
            std::sync::OnceLock::new();
        POLICIES.get_or_init(|| {
            crate::config::Config::embedded()
                .expect("embedded config")
                .certificate_policies
        })
    }

    // The template functions under the shipped policies (shadowing the glob import).
    fn enroll_template(
        csr: &VerifiedCsr,
        org: &Organisation,
        profile: &Profile,
    ) -> Result<CertTemplate, PolicyError> {
        super::enroll_template(csr, org, profile, policies())
    }

    fn collect_template(
        csr: &VerifiedCsr,
        org: &Organisation,
        profile: &Profile,
        holder: &OrderHolder,
    ) -> Result<CertTemplate, PolicyError> {
        super::collect_template(csr, org, profile, holder, policies())
    }

    fn reenroll_template(
        csr: &VerifiedCsr,
        old: &Certificate,
        profile: &Profile,
    ) -> Result<CertTemplate, PolicyError> {
        super::reenroll_template(csr, old, profile, policies())
    }

    fn org() -> Organisation {
        Organisation {
            cvr: "12345674".into(),
            name: "Demo Organisation ApS".into(),
            allow_user_certs: true,
            allow_seal: false,
            p_numbers: vec![],
            se_numbers: vec![],
        }
    }

    fn profile() -> Profile {
        Profile {
            org_default: true,
            dns_names: vec![".devices.demo.example".into()],
            ..Profile::system("12345674", "Demo devices", "demo")
        }
    }

    /// A verified CSR of the demo organisation asking for `dns` names.
    fn csr(dns: &[&str]) -> VerifiedCsr {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let spki = SubjectPublicKeyInfoOwned::from_der(
            &rcgen::PublicKeyData::subject_public_key_info(&key),
        )
        .expect("spki");
        let names = dns
            .iter()
            .map(|n| GeneralName::DnsName(Ia5String::new(n).expect("ascii")))
            .collect();
        let san = SubjectAltName(names).to_der().expect("san");
        VerifiedCsr {
            subject: crate::seed::system_subject(&org(), "device-1").expect("subject"),
            spki,
            key: SubjectKey::P256,
            requested_extensions: vec![Extension {
                extn_id: SubjectAltName::OID,
                critical: false,
                extn_value: OctetString::new(san).expect("octets"),
            }],
            challenge_password: None,
        }
    }

    /// A verified CSR of the demo organisation named `cn`, without SANs.
    fn csr_named(cn: &str) -> VerifiedCsr {
        let mut c = csr(&[]);
        c.subject = crate::seed::system_subject(&org(), cn).expect("subject");
        c.requested_extensions.clear();
        c
    }

    /// A CSR of the demo organisation named `cn` asking for `emails` (and a DNS name).
    fn csr_with_emails(cn: &str, emails: &[&str]) -> VerifiedCsr {
        let mut c = csr_named(cn);
        let mut names: Vec<GeneralName> = vec![GeneralName::DnsName(
            Ia5String::new("a.devices.demo.example").expect("ascii"),
        )];
        names.extend(
            emails
                .iter()
                .map(|e| GeneralName::Rfc822Name(Ia5String::new(e).expect("ascii"))),
        );
        c.requested_extensions = vec![Extension {
            extn_id: SubjectAltName::OID,
            critical: false,
            extn_value: OctetString::new(SubjectAltName(names).to_der().expect("san"))
                .expect("octets"),
        }];
        c
    }

    /// An e-mail address other than the profile's makes a CSR a user's; the
    /// profile's own address, or none, leaves it the profile's.
    #[test]
    fn a_csr_names_a_user_by_an_email_address_not_the_profiles() {
        let mut p = profile();
        assert_eq!(
            named_user(&csr_with_emails("Jens Jensen", &[]), &p),
            Ok(None)
        );
        p.email = Some("drift@demo.example".into());
        assert_eq!(
            named_user(&csr_with_emails("device-1", &["DRIFT@demo.example"]), &p),
            Ok(None)
        );
        assert_eq!(
            named_user(
                &csr_with_emails("Jens Jensen", &["jens@demo.example", "drift@demo.example"]),
                &p
            ),
            Ok(Some(NamedUser {
                name: "Jens Jensen".into(),
                email: "jens@demo.example".into(),
            }))
        );
        assert_eq!(
            named_user(
                &csr_with_emails("Jens Jensen", &["jens@demo.example", "JENS@demo.example"]),
                &p
            )
            .map(|u| u.map(|u| u.email)),
            Ok(Some("jens@demo.example".into())),
            "one address in two spellings is one user"
        );
        assert!(matches!(
            named_user(
                &csr_with_emails("Jens Jensen", &["jens@demo.example", "jens@other.example"]),
                &p
            ),
            Err(PolicyError::San(_))
        ));
        assert!(matches!(
            named_user(&csr_with_emails("Jens Jensen", &["not-an-address"]), &p),
            Err(PolicyError::San(_))
        ));
    }

    /// Found by the csr fuzz target: a CN with CR and NULs was accepted.
    #[test]
    fn subject_values_have_no_control_characters() {
        for bad in ["de\r\0\0\0-4", "a\nb", "tab\there", "\u{7f}"] {
            assert!(
                matches!(
                    enroll_template(&csr_named(bad), &org(), &profile()),
                    Err(PolicyError::Subject(_))
                ),
                "{bad:?} was accepted"
            );
        }
        let long_danish = "Æ".repeat(64);
        assert!(enroll_template(&csr_named(&long_danish), &org(), &profile()).is_ok());
        let too_long = "Æ".repeat(65);
        assert!(enroll_template(&csr_named(&too_long), &org(), &profile()).is_err());
    }

    /// Found by the outside test: display spoofing through the subject.
    #[test]
    fn subject_values_have_no_format_characters_or_padding() {
        for bad in [
            "device\u{202E}1-ved",
            "dev\u{200B}ice",
            "\u{FEFF}device",
            "device\u{2064}",
            "de\u{AD}vice",
            " device",
            "device ",
        ] {
            assert!(
                matches!(
                    enroll_template(&csr_named(bad), &org(), &profile()),
                    Err(PolicyError::Subject(_))
                ),
                "{bad:?} was accepted"
            );
        }
        assert!(enroll_template(&csr_named("device 1"), &org(), &profile()).is_ok());
        // The other attributes too: serialNumber with a trailing space.
        let mut c = csr_named("device");
        c.subject =
            ca::bootstrap::append_rdn(c.subject, rfc4519::SERIAL_NUMBER, "42 ").expect("name");
        assert!(matches!(
            enroll_template(&c, &org(), &profile()),
            Err(PolicyError::Subject(m)) if m.contains("serialNumber has leading or trailing")
        ));
    }

    /// The README's subject convention: emailAddress is refused, even when it
    /// is the profile's own e-mail (which goes in the subjectAltName instead).
    #[test]
    fn email_address_in_the_subject_is_refused() {
        let p = Profile {
            email: Some("ops@demo.example".into()),
            ..profile()
        };
        let mut c = csr_named("device");
        c.subject =
            ca::bootstrap::append_rdn(c.subject, EMAIL_ADDRESS, "ops@demo.example").expect("name");
        assert_eq!(
            enroll_template(&c, &org(), &p).err(),
            Some(PolicyError::Subject(EMAIL_IN_SUBJECT.into()))
        );
        // Without it, the certificate carries the e-mail as an rfc822Name.
        let t = enroll_template(&csr_named("device"), &org(), &p).expect("template");
        assert!(
            matches!(&t.sans[..], [GeneralName::Rfc822Name(m)] if m.as_str() == "ops@demo.example")
        );
    }

    /// An address stored before the e-mail rules tightened is not issued.
    #[test]
    fn stored_bad_email_is_not_issued() {
        for bad in ["a@b..dk", "a@-b.dk", "x@xn--blbr-roah.dk"] {
            let p = Profile {
                email: Some(bad.into()),
                ..profile()
            };
            assert!(
                matches!(
                    enroll_template(&csr_named("device"), &org(), &p),
                    Err(PolicyError::San(_))
                ),
                "{bad} was issued"
            );
        }
    }

    /// Found by the csr fuzz target: a wildcard (or any non-host name) below
    /// an allowed suffix was copied into the certificate.
    #[test]
    fn dns_sans_must_be_host_names() {
        for bad in [
            "*.devices.demo.example",
            "a b.devices.demo.example",
            "a/b.devices.demo.example",
            "x..devices.demo.example",
            "-x.devices.demo.example",
        ] {
            assert!(
                matches!(
                    enroll_template(&csr(&[bad]), &org(), &profile()),
                    Err(PolicyError::San(_))
                ),
                "{bad} was accepted"
            );
        }
        for good in ["dev-1.devices.demo.example", "A.B.Devices.Demo.Example"] {
            let t = enroll_template(&csr(&[good]), &org(), &profile()).expect(good);
            assert_eq!(t.sans.len(), 1);
        }
        assert!(!is_host_name(""));
        assert!(!is_host_name(&format!("{}.example", "a".repeat(64))));
        assert!(is_host_name(&format!("{}.example", "a".repeat(63))));
    }
    // ---- The rule tables, called directly. Each table also keeps an
    // end-to-end test in tests/it that checks it is wired to the server. ----

    /// A requested extension holding `value`.
    fn ext<T: AssociatedOid + Encode>(value: &T) -> Extension {
        Extension {
            extn_id: T::OID,
            critical: false,
            extn_value: OctetString::new(value.to_der().expect("der")).expect("octets"),
        }
    }

    /// A CSR named "device" asking for the extension `e`.
    fn csr_asking(e: Extension) -> VerifiedCsr {
        let mut c = csr_named("device");
        c.requested_extensions = vec![e];
        c
    }

    /// A CSR named "device" asking for the SANs `names`.
    fn csr_with_sans(names: Vec<GeneralName>) -> VerifiedCsr {
        csr_asking(ext(&SubjectAltName(names)))
    }

    fn dns(name: &str) -> GeneralName {
        GeneralName::DnsName(Ia5String::new(name).expect("ascii"))
    }

    fn email(address: &str) -> GeneralName {
        GeneralName::Rfc822Name(Ia5String::new(address).expect("ascii"))
    }

    fn ip(octets: &[u8]) -> GeneralName {
        GeneralName::IpAddress(OctetString::new(octets).expect("octets"))
    }

    /// A name of single-valued RDNs with UTF8String values.
    fn name(rdns: &[&[(ObjectIdentifier, &str)]]) -> Name {
        use x509_cert::attr::AttributeTypeAndValue;
        use x509_cert::name::RelativeDistinguishedName;
        let mut n = Name::default();
        for rdn in rdns {
            let atvs: Vec<AttributeTypeAndValue> = rdn
                .iter()
                .map(|(oid, v)| AttributeTypeAndValue {
                    oid: *oid,
                    value: der::Any::new(der::Tag::Utf8String, v.as_bytes()).expect("value"),
                })
                .collect();
            n.0.push(RelativeDistinguishedName::try_from(atvs).expect("rdn"));
        }
        n
    }

    /// C, O, organizationIdentifier and CN of the demo organisation, then `more`.
    fn demo_subject(cn: &str, more: &[(ObjectIdentifier, &str)]) -> Name {
        let oi = organization_identifier(&org().cvr);
        let mut rdns: Vec<&[(ObjectIdentifier, &str)]> = Vec::new();
        let base = [
            (rfc4519::C, "DK"),
            (rfc4519::O, "Demo Organisation ApS"),
            (ORGANIZATION_IDENTIFIER, oi.as_str()),
            (rfc4519::CN, cn),
        ];
        for a in base.iter().chain(more) {
            rdns.push(std::slice::from_ref(a));
        }
        name(&rdns)
    }

    /// The subject check's answer for a CSR with `subject`.
    fn subject_answer(subject: Name) -> Result<CertTemplate, PolicyError> {
        let mut c = csr_named("device");
        c.subject = subject;
        enroll_template(&c, &org(), &profile())
    }

    /// A certificate of the demo organisation named `cn` with `sans`, as
    /// re-enrolment finds it (self-signed: policy reads only its names).
    fn old_cert(cn: &str, sans: Vec<rcgen::SanType>) -> Certificate {
        let mut p = rcgen::CertificateParams::default();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(rcgen::DnType::CountryName, "DK");
        p.distinguished_name
            .push(rcgen::DnType::OrganizationName, "Demo Organisation ApS");
        p.distinguished_name.push(
            rcgen::DnType::CustomDnType(vec![2, 5, 4, 97]),
            organization_identifier(&org().cvr),
        );
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        p.subject_alt_names = sans;
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let cert = p.self_signed(&key).expect("certificate");
        Certificate::from_der(cert.der()).expect("parse")
    }

    fn ia5(s: &str) -> rcgen::string::Ia5String {
        rcgen::string::Ia5String::try_from(s).expect("ascii")
    }

    /// As tests/it/security.rs `csr_asking_for_more_than_the_profile_is_refused`:
    /// basicConstraints, keyUsage and extendedKeyUsage beyond what the
    /// certificate kind gets are refused; within it they are accepted.
    #[test]
    fn requested_extensions_may_not_ask_for_more_than_the_profile() {
        use const_oid::db::rfc5280::{
            ID_KP_CLIENT_AUTH, ID_KP_CODE_SIGNING, ID_KP_EMAIL_PROTECTION, ID_KP_OCSP_SIGNING,
            ID_KP_SERVER_AUTH,
        };
        use x509_cert::ext::pkix::KeyUsages;
        let ca = |path_len_constraint| BasicConstraints {
            ca: true,
            path_len_constraint,
        };
        let ku = |f: der::flagset::FlagSet<KeyUsages>| ext(&KeyUsage(f));
        let eku = |oids: &[ObjectIdentifier]| ext(&ExtendedKeyUsage(oids.to_vec()));
        let refused = [
            (ext(&ca(None)), "CA:true"),
            (ext(&ca(Some(0))), "CA:true"),
            (
                ku(KeyUsages::DigitalSignature | KeyUsages::KeyCertSign),
                "keyUsage beyond the profile's",
            ),
            (
                ku(KeyUsages::CRLSign.into()),
                "keyUsage beyond the profile's",
            ),
            // keyEncipherment is for RSA keys; this CSR's key is P-256.
            (
                ku(KeyUsages::KeyEncipherment.into()),
                "keyUsage beyond the profile's",
            ),
            (
                eku(&[ID_KP_CLIENT_AUTH, ID_KP_CODE_SIGNING]),
                "extendedKeyUsage 1.3.6.1.5.5.7.3.3",
            ),
            (
                eku(&[ID_KP_OCSP_SIGNING]),
                "extendedKeyUsage 1.3.6.1.5.5.7.3.9",
            ),
            (
                eku(&[ID_KP_EMAIL_PROTECTION]),
                "extendedKeyUsage 1.3.6.1.5.5.7.3.4",
            ),
        ];
        for (e, why) in refused {
            assert_eq!(
                enroll_template(&csr_asking(e), &org(), &profile()).err(),
                Some(PolicyError::Extension(why.into())),
                "{why}"
            );
        }
        // A malformed value is refused, naming the extension.
        let mut garbage = ext(&ca(None));
        garbage.extn_value = OctetString::new(vec![0xff, 0x00]).expect("octets");
        assert_eq!(
            enroll_template(&csr_asking(garbage), &org(), &profile()).err(),
            Some(PolicyError::Extension("malformed basicConstraints".into()))
        );
        // Within the profile: accepted (and never copied: the CA decides).
        let allowed = [
            ext(&BasicConstraints {
                ca: false,
                path_len_constraint: None,
            }),
            ku(KeyUsages::DigitalSignature.into()),
            eku(&[ID_KP_CLIENT_AUTH, ID_KP_SERVER_AUTH]),
        ];
        for e in allowed {
            let id = e.extn_id;
            assert!(
                enroll_template(&csr_asking(e), &org(), &profile()).is_ok(),
                "{id}"
            );
        }
        // What a kind gets decides: keyEncipherment for an RSA key, and
        // emailProtection for an organisation certificate.
        let mut rsa = csr_asking(ku(KeyUsages::KeyEncipherment.into()));
        rsa.key = SubjectKey::Rsa { bits: 2048 };
        assert!(enroll_template(&rsa, &org(), &profile()).is_ok());
        let organisation = Profile {
            kind: CertKind::Organisation,
            ..profile()
        };
        let c = csr_asking(eku(&[ID_KP_EMAIL_PROTECTION]));
        assert!(enroll_template(&c, &org(), &organisation).is_ok());
    }

    /// As tests/it/cert_contents.rs: the profile's kind and seal decide the
    /// usage and its policy; seal exists only on organisation certificates,
    /// and a user order from a seal profile is a user certificate.
    #[test]
    fn seal_is_an_organisation_certificates_and_picks_the_seal_policy() {
        let with = |kind, seal| Profile {
            kind,
            seal,
            ..profile()
        };
        let usage = |kind, seal| cert_usage(&with(kind, seal), policies());
        let leaf = |usage, policy| CertUsage::Leaf { usage, policy };
        let p = policies();
        assert_eq!(
            usage(CertKind::Organisation, true),
            Ok(leaf(LeafUsage::Seal, p.seal))
        );
        assert_eq!(
            usage(CertKind::Organisation, false),
            Ok(leaf(LeafUsage::Organisation, p.organisation))
        );
        assert_eq!(
            usage(CertKind::System, false),
            Ok(leaf(LeafUsage::System, p.system))
        );
        assert_eq!(
            usage(CertKind::User, false),
            Ok(leaf(LeafUsage::User, p.user))
        );
        for kind in [CertKind::System, CertKind::User] {
            assert_eq!(usage(kind, true), Err(PolicyError::SealNotOrganisation));
        }
        let seal_profile = with(CertKind::Organisation, true);
        let user = OrderHolder::User {
            name: "Jens Jensen".into(),
            email: "jens@demo.example".into(),
            publish: None,
        };
        let effective = effective_profile(&seal_profile, &user);
        assert!(!effective.seal);
        assert_eq!(
            leaf_usage(&effective),
            Ok(LeafUsage::User),
            "a user certificate, not a seal"
        );
    }

    /// A CSR may ask for its kind's policy, not another's.
    #[test]
    fn a_requested_policy_must_be_the_profiles() {
        use x509_cert::ext::pkix::certpolicy::PolicyInformation;
        let asking = |oids: &[ObjectIdentifier]| {
            csr_asking(ext(&CertificatePolicies(
                oids.iter()
                    .map(|o| PolicyInformation {
                        policy_identifier: *o,
                        policy_qualifiers: None,
                    })
                    .collect(),
            )))
        };
        let p = policies();
        assert!(enroll_template(&asking(&[p.system]), &org(), &profile()).is_ok());
        assert_eq!(
            enroll_template(&asking(&[p.system, p.seal]), &org(), &profile()).err(),
            Some(PolicyError::Extension(format!(
                "certificatePolicies {} (the profile's certificates carry {})",
                p.seal, p.system
            )))
        );
    }

    /// The template announces what the CA will write: the same table
    /// functions, for the profile's first key type.
    #[test]
    fn the_csr_template_is_what_the_certificate_will_carry() {
        let seal = Profile {
            kind: CertKind::Organisation,
            seal: true,
            key_policy: crate::model::KeyPolicy {
                allowed: vec![KeyAlgorithm::Rsa, KeyAlgorithm::P256],
                min_rsa_bits: 3072,
            },
            ..profile()
        };
        let t = csr_template(&seal, Some(&org()), policies()).expect("template");
        let usage = cert_usage(&seal, policies()).expect("usage");
        assert_eq!(t.key, Some(SubjectKey::Rsa { bits: 3072 }));
        let ext = t.extensions.expect("extensions");
        assert_eq!(
            ext.key_usage,
            ca::key_usage(usage, SubjectKey::Rsa { bits: 3072 })
        );
        assert_eq!(ext.extended_key_usage, ca::extended_key_usage(usage));
        assert_eq!(ext.policies.0.len(), 1);
        assert_eq!(ext.policies.0[0].policy_identifier, policies().seal);
        assert!(t.san_to_fill_in, "the profile allows DNS names");
        assert_eq!(
            t.subject,
            vec![
                (rfc4519::C, Some("DK".into())),
                (rfc4519::O, Some(org().name)),
                (
                    ORGANIZATION_IDENTIFIER,
                    Some(organization_identifier(&org().cvr))
                ),
                (rfc4519::CN, None),
            ]
        );
        // Without the organisation, its values are the client's.
        let anonymous = csr_template(&seal, None, policies()).expect("template");
        assert_eq!(anonymous.subject[1], (rfc4519::O, None));
        let none = Profile {
            key_policy: crate::model::KeyPolicy {
                allowed: vec![],
                min_rsa_bits: 2048,
            },
            ..profile()
        };
        assert!(matches!(
            csr_template(&none, None, policies()),
            Err(PolicyError::Key(_))
        ));
    }

    /// As tests/it/security.rs `csr_asking_for_more_than_the_profile_is_refused`
    /// (its SAN cases): DNS names below the profile's suffix only, IP
    /// addresses only where the profile allows them, the profile's own e-mail
    /// only, and no other kind of name.
    #[test]
    fn subject_alt_names_follow_the_profile() {
        let refused = [
            (dns("www.bank.example"), "DNS name www.bank.example"),
            (dns("devices.demo.example"), "DNS name devices.demo.example"),
            (
                dns("x.evildevices.demo.example"),
                "DNS name x.evildevices.demo.example",
            ),
            (ip(&[10, 0, 0, 1]), "IP address"),
            (email("ceo@demo.example"), "e-mail ceo@demo.example"),
            (
                GeneralName::UniformResourceIdentifier(
                    Ia5String::new("https://demo.example/").expect("ascii"),
                ),
                "only DNS, IP and e-mail names are allowed",
            ),
        ];
        for (gn, why) in refused {
            assert_eq!(
                enroll_template(&csr_with_sans(vec![gn]), &org(), &profile()).err(),
                Some(PolicyError::San(why.into())),
                "{why}"
            );
        }
        // A rule without the leading dot is one exact name (any case).
        let exact = Profile {
            dns_names: vec!["gw.demo.example".into()],
            ..profile()
        };
        let t = enroll_template(&csr_with_sans(vec![dns("GW.demo.example")]), &org(), &exact);
        assert_eq!(t.expect("exact name").sans, vec![dns("GW.demo.example")]);
        for below in ["a.gw.demo.example", "gw.demo.example.evil"] {
            let c = csr_with_sans(vec![dns(below)]);
            assert!(enroll_template(&c, &org(), &exact).is_err(), "{below}");
        }
        // IP addresses where the profile allows them: 4 or 16 bytes only.
        let with_ip = Profile {
            allow_ip_sans: true,
            ..profile()
        };
        for octets in [
            &[10, 0, 0, 1][..],
            &[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        ] {
            let c = csr_with_sans(vec![ip(octets)]);
            assert!(enroll_template(&c, &org(), &with_ip).is_ok(), "{octets:?}");
        }
        let c = csr_with_sans(vec![ip(&[10, 0, 0, 1, 0])]);
        assert_eq!(
            enroll_template(&c, &org(), &with_ip).err(),
            Some(PolicyError::San("IP address".into()))
        );
        // The profile's own e-mail, in any case, is carried once, as the profile spells it.
        let with_email = Profile {
            email: Some("ops@demo.example".into()),
            ..profile()
        };
        let c = csr_with_sans(vec![
            email("OPS@demo.example"),
            dns("a.devices.demo.example"),
            dns("a.devices.demo.example"),
        ]);
        let t = enroll_template(&c, &org(), &with_email).expect("template");
        assert_eq!(
            t.sans,
            vec![dns("a.devices.demo.example"), email("ops@demo.example")]
        );
        assert_eq!(email_of(&t.sans).as_deref(), Some("ops@demo.example"));
    }

    /// As tests/it/security.rs `weak_keys_are_refused` (its profile cases) and
    /// tests/it/serverkeygen_csrattrs.rs: the profile's key types, and its
    /// RSA floor, which is never below 2048 bits.
    #[test]
    fn the_key_policy_decides_key_type_and_rsa_size() {
        let with_keys = |allowed: Vec<KeyAlgorithm>, min_rsa_bits| Profile {
            key_policy: crate::model::KeyPolicy {
                allowed,
                min_rsa_bits,
            },
            ..profile()
        };
        let answer = |p: &Profile, key| {
            let mut c = csr_named("device");
            c.key = key;
            enroll_template(&c, &org(), p)
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        let p256_only = with_keys(vec![KeyAlgorithm::P256], 2048);
        assert_eq!(answer(&p256_only, SubjectKey::P256), Ok(()));
        assert_eq!(
            answer(&p256_only, SubjectKey::P384),
            Err("key not allowed by the profile: P384 (the profile accepts [P256])".into())
        );
        let strong_rsa = with_keys(vec![KeyAlgorithm::Rsa, KeyAlgorithm::P256], 3072);
        assert_eq!(
            answer(&strong_rsa, SubjectKey::Rsa { bits: 2048 }),
            Err("key not allowed by the profile: RSA-2048 is below the profile's 3072 bits".into())
        );
        assert_eq!(answer(&strong_rsa, SubjectKey::Rsa { bits: 3072 }), Ok(()));
        assert!(answer(&strong_rsa, SubjectKey::Ed25519).is_err());
        // A floor stored below 2048 still means 2048.
        let low_floor = with_keys(vec![KeyAlgorithm::Rsa], 1024);
        assert_eq!(
            answer(&low_floor, SubjectKey::Rsa { bits: 1024 }),
            Err("key not allowed by the profile: RSA-1024 is below the profile's 2048 bits".into())
        );
        // The default policy takes every type estd issues for.
        for key in [
            SubjectKey::P256,
            SubjectKey::P384,
            SubjectKey::Rsa { bits: 4096 },
            SubjectKey::Ed25519,
        ] {
            assert_eq!(answer(&profile(), key), Ok(()), "{key:?}");
        }
    }

    /// As tests/it/est_core.rs `organisations_are_isolated` and
    /// tests/it/validation.rs `subject_text_is_refused_over_est_and_the_admin_api`:
    /// the subject convention C=DK, O, organizationIdentifier of the caller's
    /// organisation, a CN, and nothing else.
    #[test]
    fn the_subject_follows_the_convention() {
        let oi = organization_identifier(&org().cvr);
        let subject = |rdns: &[(ObjectIdentifier, &str)]| {
            let one: Vec<&[(ObjectIdentifier, &str)]> =
                rdns.iter().map(std::slice::from_ref).collect();
            subject_answer(name(&one)).err()
        };
        fn org_only<'a>(oi: &'a str, cn: &'a str) -> Vec<(ObjectIdentifier, &'a str)> {
            vec![
                (rfc4519::C, "DK"),
                (rfc4519::O, "Demo Organisation ApS"),
                (ORGANIZATION_IDENTIFIER, oi),
                (rfc4519::CN, cn),
            ]
        }
        // Another organisation's name or number.
        let mut other_o = org_only(&oi, "device");
        other_o[1].1 = "Other ApS";
        assert_eq!(subject(&other_o), Some(PolicyError::ForeignOrganisation));
        let mut other_oi = org_only(&oi, "device");
        other_oi[2].1 = "NTRDK-87654321";
        assert_eq!(subject(&other_oi), Some(PolicyError::ForeignOrganisation));
        let bad = |why: &str| Some(PolicyError::Subject(why.into()));
        let mut sweden = org_only(&oi, "device");
        sweden[0].1 = "SE";
        assert_eq!(subject(&sweden), bad("C must be DK"));
        let long = "a".repeat(65);
        for cn in ["", long.as_str()] {
            assert_eq!(
                subject(&org_only(&oi, cn)),
                bad("CN must be 1 to 64 characters"),
                "{cn:?}"
            );
        }
        assert_eq!(
            subject(&org_only(&oi, "device")[..3]),
            bad("CN is required")
        );
        assert_eq!(
            subject(&[(rfc4519::C, "DK"), (rfc4519::CN, "device")]),
            bad(&format!(
                "O={:?} and organizationIdentifier={:?} are required",
                org().name,
                oi
            ))
        );
        let mut twice = org_only(&oi, "device");
        twice.push((rfc4519::CN, "device"));
        assert_eq!(subject(&twice), bad("CN appears twice"));
        let mut ou = org_only(&oi, "device");
        ou.push((rfc4519::OU, "IT"));
        assert_eq!(
            subject(&ou),
            bad("attribute 2.5.4.11 is not allowed by the profile")
        );
        let mut empty_serial = org_only(&oi, "device");
        empty_serial.push((rfc4519::SERIAL_NUMBER, ""));
        assert_eq!(
            subject(&empty_serial),
            bad("serialNumber must be 1 to 64 characters")
        );
        // One RDN with two values.
        let multi = name(&[
            &[(rfc4519::C, "DK")],
            &[
                (rfc4519::O, "Demo Organisation ApS"),
                (ORGANIZATION_IDENTIFIER, oi.as_str()),
            ],
            &[(rfc4519::CN, "device")],
        ]);
        assert_eq!(
            subject_answer(multi).err(),
            bad("multi-valued RDNs are not allowed")
        );
        // Control: a serialNumber is allowed, and display_name spells the names out.
        let ok = demo_subject("device", &[(rfc4519::SERIAL_NUMBER, "42")]);
        assert!(subject_answer(ok.clone()).is_ok());
        assert_eq!(
            display_name(&ok),
            format!(
                "C=DK, O=Demo Organisation ApS, organizationIdentifier={oi}, CN=device, \
                 serialNumber=42"
            )
        );
    }

    /// As tests/it/est_orders.rs and tests/it/lifecycle.rs (order collection):
    /// a collected CSR must name what was ordered, and a user order becomes a
    /// user certificate with the user's e-mail and no system rights.
    #[test]
    fn a_collected_csr_names_what_was_ordered() {
        let p = Profile {
            rights: vec![crate::model::SystemRight::EstEnroll],
            ..profile()
        };
        let holder = OrderHolder::Profile;
        assert!(collect_template(&csr_named("Demo devices"), &org(), &p, &holder).is_ok());
        assert_eq!(
            collect_template(&csr_named("someone else"), &org(), &p, &holder).err(),
            Some(PolicyError::Subject(
                "CN must be \"Demo devices\", as ordered".into()
            ))
        );
        let user = OrderHolder::User {
            name: "Jens Jensen".into(),
            email: "jens@demo.example".into(),
            publish: None,
        };
        let effective = effective_profile(&p, &user);
        assert_eq!(effective.kind, CertKind::User);
        assert_eq!(effective.email.as_deref(), Some("jens@demo.example"));
        assert!(effective.rights.is_empty());
        assert_eq!(effective_profile(&p, &holder), p);
        let t = collect_template(&csr_named("Jens Jensen"), &org(), &effective, &user)
            .expect("user template");
        assert_eq!(t.sans, vec![email("jens@demo.example")]);
        assert!(matches!(
            t.usage,
            CertUsage::Leaf {
                usage: LeafUsage::User,
                ..
            }
        ));
        assert!(collect_template(&csr_named("Demo devices"), &org(), &effective, &user).is_err());
    }

    /// As tests/it/security.rs `reenrolment_must_keep_subject_and_subject_alt_name`:
    /// a renewal keeps the subject and the SANs (RFC 7030 4.2.2); a CSR may
    /// leave out only the profile's e-mail.
    #[test]
    fn reenrolment_keeps_subject_and_names() {
        let p = Profile {
            email: Some("ops@demo.example".into()),
            ..profile()
        };
        let old = old_cert(
            "device-1",
            vec![
                rcgen::SanType::DnsName(ia5("a.devices.demo.example")),
                rcgen::SanType::Rfc822Name(ia5("ops@demo.example")),
            ],
        );
        let renewal = |cn: &str, sans: Vec<GeneralName>| {
            let mut c = csr_with_sans(sans);
            c.subject = crate::seed::system_subject(&org(), cn).expect("subject");
            reenroll_template(&c, &old, &p)
        };
        let t = renewal(
            "device-1",
            vec![dns("a.devices.demo.example"), email("ops@demo.example")],
        )
        .expect("same names");
        assert_eq!(t.subject, old.tbs_certificate.subject);
        assert_eq!(t.sans, cert_sans(&old));
        // Leaving out the e-mail still asks for the same names; it stays.
        let t = renewal("device-1", vec![dns("a.devices.demo.example")]).expect("without e-mail");
        assert_eq!(t.sans, cert_sans(&old));
        assert_eq!(
            renewal("device-2", vec![dns("a.devices.demo.example")]).err(),
            Some(PolicyError::ReenrollMismatch("Subject"))
        );
        for sans in [
            vec![],
            vec![dns("b.devices.demo.example")],
            vec![dns("a.devices.demo.example"), dns("b.devices.demo.example")],
        ] {
            assert_eq!(
                renewal("device-1", sans.clone()).err(),
                Some(PolicyError::ReenrollMismatch("SubjectAltName")),
                "{sans:?}"
            );
        }
    }

    /// As tests/it/lifecycle.rs `reenrolment_refuses_names_the_profile_no_longer_allows`:
    /// every name of the old certificate is checked against the profile and
    /// organisation as they are now, and the first one refused is named.
    #[test]
    fn a_name_no_longer_allowed_refuses_the_renewal() {
        let then = Profile {
            allow_ip_sans: true,
            email: Some("ops@demo.example".into()),
            ..profile()
        };
        let old = old_cert(
            "device-1",
            vec![
                rcgen::SanType::DnsName(ia5("a.devices.demo.example")),
                rcgen::SanType::IpAddress(std::net::IpAddr::from([10, 0, 0, 1])),
                rcgen::SanType::Rfc822Name(ia5("ops@demo.example")),
            ],
        );
        assert_eq!(check_names_still_allowed(&old, &org(), &then), Ok(()));
        let gone = |why: &str| Some(PolicyError::NoLongerAllowed(why.into()));
        let other_suffix = Profile {
            dns_names: vec![".other.demo.example".into()],
            ..then.clone()
        };
        assert_eq!(
            check_names_still_allowed(&old, &org(), &other_suffix).err(),
            gone("DNS name a.devices.demo.example")
        );
        let no_ip = Profile {
            allow_ip_sans: false,
            ..then.clone()
        };
        assert_eq!(
            check_names_still_allowed(&old, &org(), &no_ip).err(),
            gone("IP address 10.0.0.1")
        );
        let new_email = Profile {
            email: Some("it@demo.example".into()),
            ..then.clone()
        };
        assert_eq!(
            check_names_still_allowed(&old, &org(), &new_email).err(),
            gone("e-mail ops@demo.example")
        );
        let renamed = Organisation {
            name: "Demo Holding ApS".into(),
            ..org()
        };
        assert!(matches!(
            check_names_still_allowed(&old, &renamed, &then),
            Err(PolicyError::NoLongerAllowed(m)) if m.starts_with("subject (")
        ));
    }

    /// As tests/it/est_pop.rs: with the profile's option, the challengePassword
    /// must be the base64 tls-exporter binding of the connection; without
    /// it, the attribute is ignored whatever it holds.
    #[test]
    fn pop_linking_compares_the_challenge_password_with_the_binding() {
        use base64::Engine as _;
        let exporter = [7u8; crate::tls::TLS_EXPORTER_LEN];
        let binding = ChannelBinding::TlsExporter(exporter);
        let padded = base64::engine::general_purpose::STANDARD.encode(exporter);
        let unpadded = base64::engine::general_purpose::STANDARD_NO_PAD.encode(exporter);
        let with_password = |pw: Option<Result<String, String>>| {
            let mut c = csr_named("device");
            c.challenge_password = pw;
            c
        };
        let linking = Profile {
            require_pop_linking: true,
            ..profile()
        };
        let check = |p: &Profile, pw: Option<Result<String, String>>, b: &ChannelBinding| {
            check_pop_linking(p, &with_password(pw), b)
        };
        // Not required: anything goes, even on TLS 1.2.
        assert_eq!(
            check(
                &profile(),
                Some(Err("binary".into())),
                &ChannelBinding::Tls12
            ),
            Ok(())
        );
        assert_eq!(
            check(&profile(), None, &ChannelBinding::Unavailable),
            Ok(())
        );
        // Required.
        for right in [padded.clone(), unpadded, format!(" {padded}\n")] {
            assert_eq!(
                check(&linking, Some(Ok(right.clone())), &binding),
                Ok(()),
                "{right:?}"
            );
        }
        assert_eq!(
            check(&linking, Some(Ok(padded.clone())), &ChannelBinding::Tls12),
            Err(LinkingError::Tls12)
        );
        assert_eq!(
            check(&linking, Some(Ok(padded)), &ChannelBinding::Unavailable),
            Err(LinkingError::Unavailable)
        );
        assert_eq!(check(&linking, None, &binding), Err(LinkingError::Missing));
        let other = base64::engine::general_purpose::STANDARD.encode([8u8; 32]);
        for wrong in [
            Some(Ok(other)),
            Some(Ok("not base64!".into())),
            Some(Ok(String::new())),
            Some(Err("not text".into())),
        ] {
            assert_eq!(
                check(&linking, wrong.clone(), &binding),
                Err(LinkingError::Mismatch),
                "{wrong:?}"
            );
        }
    }
}
