//! The certificate authority: loads the issuing CA once and signs certificates
//! whose every extension comes from the certificate's kind and profile.
//!
//! The EST layer reaches the CA only through [`Ca::issue`] with a
//! [`CertTemplate`]; it never hands over CSR extensions.

pub mod bootstrap;
pub mod ceremony;
pub mod crl;
pub mod csr;
pub mod keyfile;
pub mod layout;
pub mod ocsp;
pub mod pkcs11;
pub mod pkcs12;
pub mod provider;
pub mod rollover;
pub mod set;
pub mod signer;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::digest;
use const_oid::db::rfc5280;
use const_oid::{AssociatedOid, ObjectIdentifier};
use der::asn1::{BitString, Ia5String, OctetString};
use der::{Decode, Encode, Header, Length, Tag};
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::certificate::{Certificate, TbsCertificate, Version};
use x509_cert::ext::pkix::certpolicy::PolicyInformation;
use x509_cert::ext::pkix::crl::dp::DistributionPoint;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{
    AccessDescription, AuthorityInfoAccessSyntax, AuthorityKeyIdentifier, BasicConstraints,
    CertificatePolicies, CrlDistributionPoints, ExtendedKeyUsage, KeyUsage, KeyUsages,
    SubjectAltName, SubjectKeyIdentifier,
};
use x509_cert::ext::Extension;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};

use crate::files::FileError;
use crate::model::{CertKind, Serial, UnixSeconds};
use csr::{CsrError, SubjectKey};
pub use set::{CaSet, Generation};
pub use signer::{KeyError, SignCost, SignError, Signer, SoftwareSigner};

/// Errors from the CA.
///
/// Messages include their source's message, because start-up prints only
/// the top error; the source is kept as well for callers that walk it.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// CA material could not be read or written.
    #[error("CA material: {0}")]
    File(#[from] FileError),
    /// The certificate folder holds some of the CA's files but not all.
    #[error(
        "CA material: {} holds only part of the CA ({files}); restore the missing files or empty the folder",
        dir.display()
    )]
    Incomplete {
        /// The certificate folder.
        dir: PathBuf,
        /// The files a CA needs.
        files: String,
    },
    /// The passphrase file could not be read.
    #[error("CA key: cannot read the CA key passphrase file {}: {source}", path.display())]
    PassphraseFile {
        /// The file named in `[ca] key_passphrase_file`.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// A key file or passphrase is unusable; the message says why and how to fix it.
    #[error("CA key: {0}")]
    Key(String),
    /// A key is not one the CA can sign with.
    #[error("CA key: {0}")]
    UnusableKey(#[from] KeyError),
    /// A key is not the one its certificate names (`which`: issuing CA, OCSP).
    #[error("CA key: {which} key does not match the {which} certificate")]
    KeyMismatch {
        /// Whose key.
        which: &'static str,
    },
    /// Encoding failed.
    #[error("certificate encoding: {0}")]
    Encoding(#[from] der::Error),
    /// The signing operation failed.
    #[error(transparent)]
    Sign(#[from] SignError),
    /// rcgen could not generate a key or certificate.
    #[error("generating CA material: {0}")]
    Generate(#[from] rcgen::Error),
    /// A key just generated is not one a certificate can be issued for.
    #[error("generating CA material: {0}")]
    GeneratedKey(#[source] CsrError),
    /// Encrypting a new CA key failed.
    #[error("generating CA material: encrypting the CA key: {0}")]
    Encrypt(#[source] pkcs8::Error),
    /// The system's random generator failed.
    #[error("generating CA material: no randomness")]
    Random(#[source] aws_lc_rs::error::Unspecified),
    /// The clock is before 1970, so no serial can be made.
    #[error("generating CA material: the clock is before 1970")]
    Clock(#[source] std::time::SystemTimeError),
}

impl CaError {
    /// Whether the issuing key cannot be reached for now (a PKCS#11 token
    /// that is gone): the request may succeed later.
    pub fn is_key_unavailable(&self) -> bool {
        matches!(self, CaError::Sign(SignError::KeyUnavailable(_)))
    }
}

/// What a certificate of a profile is for. The profile's kind decides it,
/// and for an organisation certificate also its seal setting: a seal lets the
/// organisation sign without a person's name, so it is told apart from a
/// plain organisation certificate by its key usage and its policy. Only an
/// organisation certificate can be a seal (a user certificate names a person,
/// a system certificate a system), so the seal is a usage of its own rather
/// than a flag that could be set on any kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeafUsage {
    /// A system certificate (an IdM system, device or service).
    System,
    /// An organisation certificate without seal.
    Organisation,
    /// An organisation certificate with seal.
    Seal,
    /// A user certificate (a person employed by the organisation).
    User,
}

impl LeafUsage {
    /// The certificate kind a certificate of this usage is recorded as.
    pub fn kind(self) -> CertKind {
        match self {
            LeafUsage::System => CertKind::System,
            LeafUsage::Organisation | LeafUsage::Seal => CertKind::Organisation,
            LeafUsage::User => CertKind::User,
        }
    }
}

/// What a certificate will be used for; decides key usage, extended key
/// usage and the certificate policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertUsage {
    /// A certificate of a profile. Every one carries exactly one
    /// certificatePolicies OID, its usage's (`[certificate_policies]`).
    Leaf {
        /// What it is for.
        usage: LeafUsage,
        /// Its certificate policy.
        policy: ObjectIdentifier,
    },
    /// estd's own TLS server certificate.
    TlsServer,
    /// estd's delegated OCSP responder (id-kp-OCSPSigning, with ocsp-nocheck).
    OcspSigning,
}

/// Everything the CA needs to issue one certificate. Built by policy from a
/// verified CSR and a profile.
#[derive(Debug, Clone)]
pub struct CertTemplate {
    /// Subject name, already checked against the profile.
    pub subject: Name,
    /// Subject public key, from the verified CSR.
    pub spki: SubjectPublicKeyInfoOwned,
    /// Its type (decides the key usage: see [`key_usage`]).
    pub key: SubjectKey,
    /// Usage.
    pub usage: CertUsage,
    /// Subject alternative names, already checked against the profile.
    pub sans: Vec<GeneralName>,
    /// Lifetime.
    pub validity_days: u32,
}

/// A freshly signed certificate.
#[derive(Debug, Clone)]
pub struct IssuedCert {
    /// Its serial.
    pub serial: Serial,
    /// DER.
    pub der: Vec<u8>,
    /// notBefore.
    pub not_before: UnixSeconds,
    /// notAfter.
    pub not_after: UnixSeconds,
}

/// One issuing CA, ready to sign. Built once at start-up; a [`CaSet`]
/// holds one per generation.
pub struct Ca {
    signer: Arc<dyn Signer>,
    issuer: Name,
    issuer_not_after: SystemTime,
    issuing_der: Vec<u8>,
    /// The certificates above the issuing CA: intermediates, then the root.
    chain: Vec<Vec<u8>>,
    /// The issuing CA's key identifier (its SKI), as its certificates' AKI carries it.
    key_id: Vec<u8>,
    /// Where its CRL and certificate are published, as its certificates say.
    urls: PublicUrls,
    /// AKI, CRL DP and AIA: the same in every certificate, encoded once.
    common_extensions: Vec<Extension>,
    /// The AKI alone, for CRLs.
    aki: Extension,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca")
            .field("signer", &self.signer)
            .finish_non_exhaustive()
    }
}

/// id-pkix-ocsp-nocheck (RFC 6960 4.2.2.2.1).
pub const OCSP_NOCHECK: const_oid::ObjectIdentifier =
    const_oid::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.5");

/// Whether the key usage extension is critical (RFC 5280 4.2.1.3 says it
/// SHOULD be); `/csrattrs` templates announce it the same way.
pub const KEY_USAGE_CRITICAL: bool = true;

/// How far notBefore is set back, for clients whose clocks run slow.
const BACKDATE: Duration = Duration::from_secs(300);

fn extension<T: AssociatedOid + Encode>(value: &T, critical: bool) -> Result<Extension, CaError> {
    Ok(Extension {
        extn_id: T::OID,
        critical,
        extn_value: OctetString::new(value.to_der()?)?,
    })
}

/// RFC 5280 method 1 key identifier: SHA-1 of the subjectPublicKey bits.
pub fn key_identifier(subject_public_key: &[u8]) -> Vec<u8> {
    digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, subject_public_key)
        .as_ref()
        .to_vec()
}

fn uri(u: &str) -> Result<GeneralName, CaError> {
    Ok(GeneralName::UniformResourceIdentifier(Ia5String::new(u)?))
}

/// The CRL distribution point extension naming `crl_url`.
fn crl_dp(crl_url: &str) -> Result<Extension, CaError> {
    let dp = CrlDistributionPoints(vec![DistributionPoint {
        distribution_point: Some(DistributionPointName::FullName(vec![uri(crl_url)?])),
        reasons: None,
        crl_issuer: None,
    }]);
    extension(&dp, false)
}

/// The authority information access extension naming the OCSP responder and
/// where the issuing CA certificate is (caIssuers), so that a relying party
/// holding only the root can build the path.
fn aia(urls: &PublicUrls) -> Result<Extension, CaError> {
    let aia = AuthorityInfoAccessSyntax(vec![
        AccessDescription {
            access_method: rfc5280::ID_AD_OCSP,
            access_location: uri(&urls.ocsp)?,
        },
        AccessDescription {
            access_method: rfc5280::ID_AD_CA_ISSUERS,
            access_location: uri(&urls.ca_issuers)?,
        },
    ]);
    extension(&aia, false)
}

/// Where relying parties find one CA generation's revocation status and
/// certificate: the URLs its certificates carry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublicUrls {
    /// The CRL distribution point.
    pub crl: String,
    /// The OCSP responder.
    pub ocsp: String,
    /// The issuing CA certificate (AIA caIssuers), served DER.
    pub ca_issuers: String,
}

fn unix(t: SystemTime) -> UnixSeconds {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Ca {
    /// Builds the CA from the issuing CA's signer and certificate, and the
    /// certificates above it (intermediates, then the root; at least the
    /// root). Refuses a signer whose public key is not the certificate's.
    pub fn new(
        signer: Arc<dyn Signer>,
        issuing_der: Vec<u8>,
        chain: Vec<Vec<u8>>,
        urls: PublicUrls,
    ) -> Result<Ca, CaError> {
        if chain.is_empty() {
            return Err(CaError::Key(
                "the issuing CA needs its chain up to the root".into(),
            ));
        }
        let issuing = Certificate::from_der(&issuing_der)?;
        let tbs = &issuing.tbs_certificate;
        if tbs.subject_public_key_info.subject_public_key != signer.public_key().subject_public_key
        {
            return Err(CaError::KeyMismatch {
                which: "issuing CA",
            });
        }
        // The AKI must equal the issuing CA's SKI, whatever method made it.
        let issuer_ski = tbs
            .extensions
            .iter()
            .flatten()
            .find(|e| e.extn_id == SubjectKeyIdentifier::OID)
            .map(|e| SubjectKeyIdentifier::from_der(e.extn_value.as_bytes()))
            .transpose()?
            .map(|ski| ski.0.as_bytes().to_vec())
            .unwrap_or_else(|| key_identifier(signer.public_key().subject_public_key.raw_bytes()));
        let aki = extension(
            &AuthorityKeyIdentifier {
                key_identifier: Some(OctetString::new(issuer_ski.clone())?),
                authority_cert_issuer: None,
                authority_cert_serial_number: None,
            },
            false,
        )?;
        let common_extensions = vec![aki.clone(), crl_dp(&urls.crl)?, aia(&urls)?];
        Ok(Ca {
            issuer: tbs.subject.clone(),
            issuer_not_after: tbs.validity.not_after.to_system_time(),
            signer,
            issuing_der,
            chain,
            key_id: issuer_ski,
            urls,
            common_extensions,
            aki,
        })
    }

    /// The issuing CA certificate, DER.
    pub fn issuing_der(&self) -> &[u8] {
        &self.issuing_der
    }

    /// The root CA certificate, DER.
    pub fn root_der(&self) -> &[u8] {
        // `new` refuses an empty chain.
        self.chain.last().map(Vec::as_slice).unwrap_or_default()
    }

    /// The certificates above the issuing CA: intermediates, then the root.
    pub fn chain(&self) -> &[Vec<u8>] {
        &self.chain
    }

    /// The issuing CA's key identifier.
    pub fn key_id(&self) -> &[u8] {
        &self.key_id
    }

    /// Where its CRL is published.
    pub fn crl_url(&self) -> &str {
        &self.urls.crl
    }

    /// Where its certificate is published (AIA caIssuers).
    pub fn ca_issuers_url(&self) -> &str {
        &self.urls.ca_issuers
    }

    /// When the issuing CA certificate expires.
    pub fn not_after(&self) -> UnixSeconds {
        unix(self.issuer_not_after)
    }

    /// Whether `cert` names this CA as its issuer: by its AKI's key
    /// identifier, or, without one, by the issuer name. Two generations may
    /// share a name, never a key.
    pub fn is_issuer_of(&self, cert: &Certificate) -> bool {
        let tbs = &cert.tbs_certificate;
        let aki = tbs
            .extensions
            .iter()
            .flatten()
            .find(|e| e.extn_id == AuthorityKeyIdentifier::OID)
            .and_then(|e| AuthorityKeyIdentifier::from_der(e.extn_value.as_bytes()).ok())
            .and_then(|a| a.key_identifier);
        match aki {
            Some(id) => id.as_bytes() == self.key_id.as_slice(),
            None => tbs.issuer == self.issuer,
        }
    }

    /// The issuing CA's subject name.
    pub fn issuer_name(&self) -> &Name {
        &self.issuer
    }

    /// What one signature by the issuing CA costs: decides whether issuance
    /// runs in place on the async worker or on the blocking pool.
    pub fn sign_cost(&self) -> SignCost {
        self.signer.cost()
    }

    /// Signs `tbs` (a certificate's or CRL's TBS) with the issuing CA's key
    /// and gives the signed structure's DER: `SEQUENCE { tbs, algorithm,
    /// signature }`. Built from the TBS bytes that were signed, so the
    /// structure is not encoded a second time (a certificate's encoding was
    /// about a third of the instructions of building it).
    fn sign_tbs(&self, tbs: &impl Encode) -> Result<Vec<u8>, CaError> {
        let tbs = tbs.to_der()?;
        let signature = BitString::from_bytes(&self.signer.sign(&tbs)?)?;
        let algorithm = self.signer.algorithm();
        let body_len = ((Length::try_from(tbs.len())? + algorithm.encoded_len()?)?
            + signature.encoded_len()?)?;
        let header = Header::new(Tag::Sequence, body_len)?;
        let mut der = Vec::with_capacity(usize::try_from((header.encoded_len()? + body_len)?)?);
        header.encode_to_vec(&mut der)?;
        der.extend_from_slice(&tbs);
        algorithm.encode_to_vec(&mut der)?;
        signature.encode_to_vec(&mut der)?;
        Ok(der)
    }

    /// Signs a certificate for `template` with a fresh serial (see [`new_serial`]).
    ///
    /// The serial is time-ordered with 80 random bits; the caller stores the
    /// certificate with an insert-if-absent and asks again on the
    /// (astronomically unlikely) collision, so serials stay unique forever.
    pub fn issue(&self, template: &CertTemplate) -> Result<IssuedCert, CaError> {
        let now = SystemTime::now();
        let serial = new_serial(now)?;
        let not_before = now - BACKDATE;
        let wanted = now + Duration::from_secs(u64::from(template.validity_days) * 86_400);
        // Never outlive the issuing CA.
        let not_after = wanted.min(self.issuer_not_after);

        let mut extensions = Vec::with_capacity(8);
        extensions.push(extension(
            &BasicConstraints {
                ca: false,
                path_len_constraint: None,
            },
            true,
        )?);
        extensions.push(extension(
            &key_usage(template.usage, template.key),
            KEY_USAGE_CRITICAL,
        )?);
        extensions.push(extension(&extended_key_usage(template.usage), false)?);
        if let Some(policies) = certificate_policies(template.usage) {
            extensions.push(extension(&policies, false)?);
        }
        let ski = SubjectKeyIdentifier(OctetString::new(key_identifier(
            template.spki.subject_public_key.raw_bytes(),
        ))?);
        extensions.push(extension(&ski, false)?);
        if !template.sans.is_empty() {
            // Critical when the subject is empty, as RFC 5280 4.2.1.6 requires.
            let critical = template.subject.0.is_empty();
            extensions.push(extension(&SubjectAltName(template.sans.clone()), critical)?);
        }
        if template.usage == CertUsage::OcspSigning {
            // id-pkix-ocsp-nocheck: relying parties need not check the responder's own status.
            extensions.push(Extension {
                extn_id: OCSP_NOCHECK,
                critical: false,
                extn_value: OctetString::new(der::asn1::Null.to_der()?)?,
            });
        }
        extensions.extend(self.common_extensions.iter().cloned());

        let tbs = TbsCertificate {
            version: Version::V3,
            serial_number: SerialNumber::new(&serial.0)?,
            signature: self.signer.algorithm().clone(),
            issuer: self.issuer.clone(),
            validity: Validity {
                not_before: Time::try_from(not_before)?,
                not_after: Time::try_from(not_after)?,
            },
            subject: template.subject.clone(),
            subject_public_key_info: template.spki.clone(),
            issuer_unique_id: None,
            subject_unique_id: None,
            extensions: Some(extensions),
        };
        Ok(IssuedCert {
            serial,
            der: self.sign_tbs(&tbs)?,
            not_before: unix(not_before),
            not_after: unix(not_after),
        })
    }
}

impl Ca {
    /// Certifies the subject and key of another CA certificate under this
    /// CA (a root rollover certificate of RFC 7030 §4.1.3: NewWithOld when
    /// the old root certifies the new one, OldWithNew the other way). Keeps
    /// its subject, key and extensions, except that the authority key
    /// identifier becomes this CA's; valid while both are.
    pub fn cross_certify(&self, subject: &Certificate) -> Result<Vec<u8>, CaError> {
        let now = SystemTime::now();
        let theirs = &subject.tbs_certificate;
        let not_after = theirs
            .validity
            .not_after
            .to_system_time()
            .min(self.issuer_not_after);
        let mut extensions: Vec<Extension> = theirs
            .extensions
            .iter()
            .flatten()
            .filter(|e| e.extn_id != AuthorityKeyIdentifier::OID)
            .cloned()
            .collect();
        extensions.push(self.aki.clone());
        let tbs = TbsCertificate {
            version: Version::V3,
            serial_number: SerialNumber::new(&new_serial(now)?.0)?,
            signature: self.signer.algorithm().clone(),
            issuer: self.issuer.clone(),
            validity: Validity {
                not_before: Time::try_from(now - BACKDATE)?,
                not_after: Time::try_from(not_after)?,
            },
            subject: theirs.subject.clone(),
            subject_public_key_info: theirs.subject_public_key_info.clone(),
            issuer_unique_id: None,
            subject_unique_id: None,
            extensions: Some(extensions),
        };
        self.sign_tbs(&tbs)
    }
}

/// A fresh positive 16-byte serial: `now` in milliseconds (6 bytes) and then
/// 80 random bits.
///
/// The time prefix makes new serials sort after older ones, so the store's
/// certificate tree grows at its right edge: an issuance touches pages that
/// are already cached instead of a random page of a tree that may be far
/// larger than the cache. The random part is more than the 64 bits of CSPRNG
/// output that the CA/Browser Forum asks for, so serials stay unpredictable.
/// The first byte is 0x40 or more, so the DER INTEGER is always exactly 16
/// bytes and never negative.
pub fn new_serial(now: SystemTime) -> Result<Serial, CaError> {
    let mut b = [0u8; 16];
    aws_lc_rs::rand::fill(&mut b[6..]).map_err(CaError::Random)?;
    let millis = now
        .duration_since(UNIX_EPOCH)
        .map_err(CaError::Clock)?
        .as_millis() as u64;
    b[..6].copy_from_slice(&millis.to_be_bytes()[2..]);
    // 0x40 in the first byte keeps the serial positive and 16 bytes long;
    // the 46 bits of milliseconds left keep serials ordered until 4199.
    b[0] = (b[0] & 0x3f) | 0x40;
    Ok(Serial(b))
}

/// The key usage a certificate of `usage` with `key` gets.
///
/// | usage | EC (P-256, P-384) | RSA | Ed25519 |
/// |---|---|---|---|
/// | system | digitalSignature | + keyEncipherment | digitalSignature |
/// | organisation, user | + keyAgreement | + keyEncipherment | digitalSignature |
/// | seal | digitalSignature, contentCommitment | same | same |
/// | TLS server | digitalSignature | + keyEncipherment | digitalSignature |
/// | OCSP responder | digitalSignature | same | same |
///
/// Why: organisation and user certificates are also for encryption
/// (S/MIME), which an EC key does by key agreement (ECDH) and an RSA key by
/// key transport (keyEncipherment). An Ed25519 key cannot encrypt (X25519 is
/// another key), so it gets signature usage only. A seal commits the
/// organisation to content without a person's name: contentCommitment
/// (nonRepudiation) with digitalSignature, and no encryption, so a seal key
/// is never also a decryption key. A system certificate keeps
/// keyEncipherment for RSA, which TLS 1.2 servers with RSA key exchange
/// need; ECDHE needs no keyAgreement bit. keyAgreement on a certificate also
/// used for TLS client authentication is harmless: TLS checks digitalSignature.
pub fn key_usage(usage: CertUsage, key: SubjectKey) -> KeyUsage {
    let rsa = matches!(key, SubjectKey::Rsa { .. });
    let ec = matches!(key, SubjectKey::P256 | SubjectKey::P384);
    let mut ku = KeyUsages::DigitalSignature.into();
    match usage {
        CertUsage::Leaf {
            usage: LeafUsage::Seal,
            ..
        } => ku |= KeyUsages::NonRepudiation,
        CertUsage::Leaf {
            usage: LeafUsage::Organisation | LeafUsage::User,
            ..
        } => {
            if ec {
                ku |= KeyUsages::KeyAgreement;
            }
            if rsa {
                ku |= KeyUsages::KeyEncipherment;
            }
        }
        CertUsage::Leaf {
            usage: LeafUsage::System,
            ..
        }
        | CertUsage::TlsServer => {
            if rsa {
                ku |= KeyUsages::KeyEncipherment;
            }
        }
        CertUsage::OcspSigning => {}
    }
    KeyUsage(ku)
}

/// The extended key usage a certificate of `usage` gets.
pub fn extended_key_usage(usage: CertUsage) -> ExtendedKeyUsage {
    // clientAuth on every leaf: without it a certificate cannot re-enrol over mTLS.
    ExtendedKeyUsage(match usage {
        CertUsage::Leaf {
            usage: LeafUsage::System,
            ..
        } => vec![rfc5280::ID_KP_CLIENT_AUTH, rfc5280::ID_KP_SERVER_AUTH],
        CertUsage::Leaf {
            usage: LeafUsage::Organisation | LeafUsage::Seal | LeafUsage::User,
            ..
        } => vec![rfc5280::ID_KP_CLIENT_AUTH, rfc5280::ID_KP_EMAIL_PROTECTION],
        CertUsage::TlsServer => vec![rfc5280::ID_KP_SERVER_AUTH],
        CertUsage::OcspSigning => vec![rfc5280::ID_KP_OCSP_SIGNING],
    })
}

/// The certificate policies a certificate of `usage` carries: a leaf its
/// one policy OID, without qualifiers; estd's own certificates none.
pub fn certificate_policies(usage: CertUsage) -> Option<CertificatePolicies> {
    match usage {
        CertUsage::Leaf { policy, .. } => Some(CertificatePolicies(vec![PolicyInformation {
            policy_identifier: policy,
            policy_qualifiers: None,
        }])),
        CertUsage::TlsServer | CertUsage::OcspSigning => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::signature::{self as sig, UnparsedPublicKey, VerificationAlgorithm};

    /// id-TEST-certPolicyOne (RFC 7229).
    const TEST_POLICY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.13.1");

    fn leaf(usage: LeafUsage) -> CertUsage {
        CertUsage::Leaf {
            usage,
            policy: TEST_POLICY,
        }
    }

    /// The key usage table of [`key_usage`], row by row: a seal signs with
    /// commitment and never encrypts; organisation and user certificates
    /// encrypt by key agreement (EC) or key transport (RSA); Ed25519 only signs.
    #[test]
    fn key_usage_follows_the_usage_and_the_key() {
        use KeyUsages::{
            DigitalSignature as Ds, KeyAgreement as Ka, KeyEncipherment as Ke, NonRepudiation as Cc,
        };
        let rsa = SubjectKey::Rsa { bits: 2048 };
        let cases = [
            (leaf(LeafUsage::System), SubjectKey::P256, Ds.into()),
            (leaf(LeafUsage::System), rsa, Ds | Ke),
            (leaf(LeafUsage::System), SubjectKey::Ed25519, Ds.into()),
            (leaf(LeafUsage::Organisation), SubjectKey::P256, Ds | Ka),
            (leaf(LeafUsage::Organisation), SubjectKey::P384, Ds | Ka),
            (leaf(LeafUsage::Organisation), rsa, Ds | Ke),
            (
                leaf(LeafUsage::Organisation),
                SubjectKey::Ed25519,
                Ds.into(),
            ),
            (leaf(LeafUsage::User), SubjectKey::P256, Ds | Ka),
            (leaf(LeafUsage::User), rsa, Ds | Ke),
            (leaf(LeafUsage::User), SubjectKey::Ed25519, Ds.into()),
            (leaf(LeafUsage::Seal), SubjectKey::P256, Ds | Cc),
            (leaf(LeafUsage::Seal), rsa, Ds | Cc),
            (leaf(LeafUsage::Seal), SubjectKey::Ed25519, Ds | Cc),
            (CertUsage::TlsServer, SubjectKey::P256, Ds.into()),
            (CertUsage::TlsServer, rsa, Ds | Ke),
            (CertUsage::OcspSigning, rsa, Ds.into()),
        ];
        for (usage, key, want) in cases {
            assert_eq!(key_usage(usage, key).0, want, "{usage:?} {key:?}");
        }
        // Seal and organisation differ in more than the key usage: EKU stays,
        // and every leaf keeps clientAuth for re-enrolment.
        for usage in [
            LeafUsage::System,
            LeafUsage::Organisation,
            LeafUsage::Seal,
            LeafUsage::User,
        ] {
            assert!(extended_key_usage(leaf(usage))
                .0
                .contains(&rfc5280::ID_KP_CLIENT_AUTH));
        }
    }

    /// What [`Ca::issue`] writes is what the table functions answer: the key
    /// usage, and exactly one certificate policy for a leaf, none for estd's own.
    #[test]
    fn issued_certificates_carry_the_tables_key_usage_and_one_policy() {
        let (ca, _) = test_ca(&rcgen::PKCS_ECDSA_P256_SHA256);
        let find = |cert: &Certificate, oid: ObjectIdentifier| {
            cert.tbs_certificate
                .extensions
                .iter()
                .flatten()
                .find(|e| e.extn_id == oid)
                .cloned()
        };
        for usage in [leaf(LeafUsage::Seal), leaf(LeafUsage::User)] {
            let mut t = leaf_template();
            t.usage = usage;
            let cert = Certificate::from_der(&ca.issue(&t).expect("issue").der).expect("parse");
            let ku = find(&cert, KeyUsage::OID).expect("key usage");
            assert!(ku.critical);
            assert_eq!(
                KeyUsage::from_der(ku.extn_value.as_bytes()).expect("ku"),
                key_usage(usage, t.key)
            );
            let policies = find(&cert, CertificatePolicies::OID).expect("policies");
            let policies =
                CertificatePolicies::from_der(policies.extn_value.as_bytes()).expect("policies");
            assert_eq!(policies.0.len(), 1);
            assert_eq!(policies.0[0].policy_identifier, TEST_POLICY);
        }
        let mut t = leaf_template();
        t.usage = CertUsage::TlsServer;
        let cert = Certificate::from_der(&ca.issue(&t).expect("issue").der).expect("parse");
        assert!(find(&cert, CertificatePolicies::OID).is_none());
    }

    /// A self-signed CA of `alg` (standing in for root and issuing CA) and its certificate.
    fn test_ca(alg: &'static rcgen::SignatureAlgorithm) -> (Ca, Certificate) {
        let kp = rcgen::KeyPair::generate_for(alg).expect("key");
        let mut params = rcgen::CertificateParams::default();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "test issuing CA");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
        let cert = params.self_signed(&kp).expect("CA certificate");
        let signer = Arc::new(SoftwareSigner::from_pkcs8(&kp.serialize_der()).expect("signer"));
        let der = cert.der().to_vec();
        let ca = Ca::new(signer, der.clone(), vec![der.clone()], test_urls()).expect("CA");
        (ca, Certificate::from_der(&der).expect("parse"))
    }

    fn test_urls() -> PublicUrls {
        PublicUrls {
            crl: "http://ca.example/crl".into(),
            ocsp: "http://ca.example/ocsp".into(),
            ca_issuers: "http://ca.example/ca.crt".into(),
        }
    }

    fn leaf_template() -> CertTemplate {
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let spki = SubjectPublicKeyInfoOwned::from_der(
            &rcgen::PublicKeyData::subject_public_key_info(&kp),
        )
        .expect("spki");
        CertTemplate {
            subject: bootstrap::append_rdn(Name::default(), const_oid::db::rfc4519::CN, "dev1")
                .expect("name"),
            key: csr::classify_key(&spki).expect("key type"),
            spki,
            usage: CertUsage::Leaf {
                usage: LeafUsage::System,
                policy: TEST_POLICY,
            },
            sans: vec![],
            validity_days: 30,
        }
    }

    /// Checks that `signature` over `signed` verifies under the CA certificate's key.
    fn verifies_under(
        ca_cert: &Certificate,
        verify: &'static dyn VerificationAlgorithm,
        signed: &[u8],
        signature: &BitString,
    ) {
        let key = ca_cert
            .tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes();
        UnparsedPublicKey::new(verify, key)
            .verify(signed, signature.raw_bytes())
            .expect("the signature verifies under the CA's key");
    }

    fn issues_and_signs_crls(
        alg: &'static rcgen::SignatureAlgorithm,
        verify: &'static dyn VerificationAlgorithm,
        cost: SignCost,
    ) {
        let (ca, ca_cert) = test_ca(alg);
        assert_eq!(ca.sign_cost(), cost);
        let issued = ca.issue(&leaf_template()).expect("issue");
        let cert = Certificate::from_der(&issued.der).expect("parse");
        // Assembled from the signed TBS bytes: the same DER as the structure's own encoding.
        assert_eq!(cert.to_der().expect("encode"), issued.der);
        assert_eq!(cert.tbs_certificate.issuer, ca_cert.tbs_certificate.subject);
        assert_eq!(cert.signature_algorithm, cert.tbs_certificate.signature);
        assert_eq!(
            cert.signature_algorithm.oid,
            ca_cert.signature_algorithm.oid
        );
        let tbs = cert.tbs_certificate.to_der().expect("tbs");
        verifies_under(&ca_cert, verify, &tbs, &cert.signature);

        let now = SystemTime::now();
        let crl = ca
            .sign_crl(1, now, now + Duration::from_secs(3600), &[])
            .expect("CRL");
        let crl_der = crl;
        let crl = x509_cert::crl::CertificateList::from_der(&crl_der).expect("parse CRL");
        assert_eq!(crl.to_der().expect("encode"), crl_der);
        let tbs = crl.tbs_cert_list.to_der().expect("tbs");
        verifies_under(&ca_cert, verify, &tbs, &crl.signature);
    }

    #[test]
    fn a_p256_ca_issues_certificates_and_crls_that_verify_under_its_key() {
        issues_and_signs_crls(
            &rcgen::PKCS_ECDSA_P256_SHA256,
            &sig::ECDSA_P256_SHA256_ASN1,
            SignCost::Cheap,
        );
    }

    #[test]
    fn an_rsa_ca_issues_certificates_and_crls_that_verify_under_its_key() {
        issues_and_signs_crls(
            &rcgen::PKCS_RSA_SHA256,
            &sig::RSA_PKCS1_2048_8192_SHA256,
            SignCost::Expensive,
        );
    }

    #[test]
    fn a_signer_whose_key_is_not_the_certificates_is_refused() {
        let (ca, _) = test_ca(&rcgen::PKCS_ECDSA_P256_SHA256);
        let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let signer = Arc::new(SoftwareSigner::from_pkcs8(&other.serialize_der()).expect("signer"));
        let refused = Ca::new(
            signer,
            ca.issuing_der().to_vec(),
            vec![ca.root_der().to_vec()],
            test_urls(),
        )
        .expect_err("another key");
        assert!(matches!(refused, CaError::KeyMismatch { .. }), "{refused}");
    }

    #[test]
    fn serials_are_positive_distinct_and_ordered_by_time() {
        let first = new_serial(SystemTime::now()).expect("serial");
        std::thread::sleep(Duration::from_millis(2));
        let later: Vec<Serial> = (0..1000)
            .map(|_| new_serial(SystemTime::now()).expect("serial"))
            .collect();
        for s in &later {
            assert!(s.0[0] >= 0x40 && s.0[0] < 0x80, "positive, 16 bytes: {s}");
            assert!(s.0 > first.0, "a later serial sorts after an earlier one");
        }
        let mut distinct = later.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(
            distinct.len(),
            later.len(),
            "80 random bits never collide here"
        );
        // The random part varies within one millisecond.
        assert!(later
            .windows(2)
            .any(|w| w[0].0[..6] == w[1].0[..6] && w[0] != w[1]));
    }
}
