//! PKCS#10 parsing and proof of possession: the CSR's signature must verify
//! under the key it carries, and that key must be one estd accepts at all.

use aws_lc_rs::signature::{self as sig, VerificationAlgorithm};
use const_oid::db::{rfc5912, rfc8410};
use const_oid::ObjectIdentifier;
use der::asn1::{Ia5StringRef, PrintableStringRef, TeletexStringRef, UintRef, Utf8StringRef};
use der::{Decode, Reader, SliceReader, Tag, Tagged};
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::ext::Extension;
use x509_cert::name::Name;
use x509_cert::request::{CertReq, ExtensionReq};

use crate::store::model::KeyAlgorithm;

/// OID of the PKCS#9 challengePassword attribute.
pub const CHALLENGE_PASSWORD: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.7");

/// Why a CSR was refused before any policy was applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsrError {
    /// Not a DER PKCS#10 request.
    #[error("malformed CSR: {0}")]
    Malformed(String),
    /// The signature does not verify: no proof of possession.
    #[error("CSR signature does not verify (no proof of possession)")]
    BadSignature,
    /// A key type estd never accepts.
    #[error("unsupported subject key: {0}")]
    UnsupportedKey(String),
    /// A signature algorithm estd never accepts.
    #[error("unsupported CSR signature algorithm {0}")]
    UnsupportedSignature(String),
}

/// The subject key of a CSR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectKey {
    /// ECDSA P-256.
    P256,
    /// ECDSA P-384.
    P384,
    /// RSA with this modulus size in bits.
    Rsa {
        /// Modulus bits.
        bits: u32,
    },
    /// Ed25519.
    Ed25519,
}

impl SubjectKey {
    /// The algorithm family, as profiles name it.
    pub fn algorithm(self) -> KeyAlgorithm {
        match self {
            SubjectKey::P256 => KeyAlgorithm::P256,
            SubjectKey::P384 => KeyAlgorithm::P384,
            SubjectKey::Rsa { .. } => KeyAlgorithm::Rsa,
            SubjectKey::Ed25519 => KeyAlgorithm::Ed25519,
        }
    }
}

/// A CSR whose signature verified.
#[derive(Debug, Clone)]
pub struct VerifiedCsr {
    /// Requested subject.
    pub subject: Name,
    /// Subject public key.
    pub spki: SubjectPublicKeyInfoOwned,
    /// Its type.
    pub key: SubjectKey,
    /// Extensions requested in the extensionRequest attribute (never copied blindly).
    pub requested_extensions: Vec<Extension>,
    /// The challengePassword attribute (its first value), if any. Profiles
    /// requiring proof-of-possession linking compare it with the connection's
    /// channel binding ([`crate::policy::check_pop_linking`]); others ignore it.
    pub challenge_password: Option<String>,
}

const SECP256R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");

#[derive(der::Sequence)]
struct RsaPublicKey<'a> {
    modulus: UintRef<'a>,
    public_exponent: UintRef<'a>,
}

/// Parses a DER CSR and verifies its signature.
pub fn parse_and_verify(der: &[u8]) -> Result<VerifiedCsr, CsrError> {
    let req = CertReq::from_der(der).map_err(|e| CsrError::Malformed(e.to_string()))?;
    let info_der = signed_portion(der)?;

    let key = classify_key(&req.info.public_key)?;
    let alg = verification_algorithm(&req.algorithm.oid, key)?;
    let public_key = req.info.public_key.subject_public_key.raw_bytes();
    let signature = req
        .signature
        .as_bytes()
        .ok_or_else(|| CsrError::Malformed("signature has unused bits".into()))?;
    alg.verify_sig(public_key, info_der, signature)
        .map_err(|_| CsrError::BadSignature)?;

    let mut requested_extensions = Vec::new();
    let mut challenge_password = None;
    for attr in req.info.attributes.iter() {
        if attr.oid == ExtensionReq::OID_VALUE {
            for v in attr.values.iter() {
                let ext: ExtensionReq = v
                    .decode_as()
                    .map_err(|e| CsrError::Malformed(format!("extensionRequest: {e}")))?;
                requested_extensions.extend(ext.0);
            }
        } else if attr.oid == CHALLENGE_PASSWORD {
            if let Some(v) = attr.values.iter().next() {
                challenge_password = Some(directory_string(v)?);
            }
        }
    }
    Ok(VerifiedCsr {
        subject: req.info.subject,
        spki: req.info.public_key,
        key,
        requested_extensions,
        challenge_password,
    })
}

trait ExtReqOid {
    const OID_VALUE: ObjectIdentifier;
}
impl ExtReqOid for ExtensionReq {
    const OID_VALUE: ObjectIdentifier = <ExtensionReq as const_oid::AssociatedOid>::OID;
}

/// What serverkeygen takes from a CSR (RFC 7030 4.4.1): the server makes the
/// key, so it MUST ignore the CSR's public key and signature. Neither is
/// checked here: a placeholder key (libest's RSA-1024, say) or a signature
/// that does not verify is accepted. Only the structure must be a PKCS#10
/// request, and the subject and requested extensions are checked by policy
/// as for any enrolment.
#[derive(Debug, Clone)]
pub struct KeygenRequest {
    /// Requested subject.
    pub subject: Name,
    /// The type of the CSR's key, if it is one estd knows: the type of key
    /// the client asks the server to make (its size is not looked at).
    pub key_type: Option<KeyAlgorithm>,
    /// Extensions requested in the extensionRequest attribute. (A
    /// challengePassword is not read: serverkeygen does no linking.)
    pub requested_extensions: Vec<Extension>,
}

/// Parses a DER CSR for serverkeygen without verifying its signature or its
/// key (see [`KeygenRequest`]); [`parse_and_verify`] stays the only path
/// that enrols a client's own key.
pub fn parse_for_keygen(der: &[u8]) -> Result<KeygenRequest, CsrError> {
    let req = CertReq::from_der(der).map_err(|e| CsrError::Malformed(e.to_string()))?;
    let alg = &req.info.public_key.algorithm;
    let curve = alg
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
    let key_type = match alg.oid {
        rfc5912::RSA_ENCRYPTION => Some(KeyAlgorithm::Rsa),
        rfc8410::ID_ED_25519 => Some(KeyAlgorithm::Ed25519),
        rfc5912::ID_EC_PUBLIC_KEY if curve == Some(SECP256R1) => Some(KeyAlgorithm::P256),
        rfc5912::ID_EC_PUBLIC_KEY if curve == Some(SECP384R1) => Some(KeyAlgorithm::P384),
        _ => None,
    };
    let mut requested_extensions = Vec::new();
    for attr in req.info.attributes.iter() {
        if attr.oid == ExtensionReq::OID_VALUE {
            for v in attr.values.iter() {
                let ext: ExtensionReq = v
                    .decode_as()
                    .map_err(|e| CsrError::Malformed(format!("extensionRequest: {e}")))?;
                requested_extensions.extend(ext.0);
            }
        }
    }
    Ok(KeygenRequest {
        subject: req.info.subject,
        key_type,
        requested_extensions,
    })
}

#[cfg(test)]
mod keygen_tests {
    use super::*;

    fn csr(alg: &'static rcgen::SignatureAlgorithm) -> Vec<u8> {
        let key = rcgen::KeyPair::generate_for(alg).expect("key");
        let mut params = rcgen::CertificateParams::new(vec![]).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Laptop");
        params.serialize_request(&key).expect("csr").der().to_vec()
    }

    #[test]
    fn the_signature_is_not_checked_and_the_key_type_is_read() {
        for (alg, want) in [
            (&rcgen::PKCS_ECDSA_P256_SHA256, KeyAlgorithm::P256),
            (&rcgen::PKCS_ECDSA_P384_SHA384, KeyAlgorithm::P384),
            (&rcgen::PKCS_ED25519, KeyAlgorithm::Ed25519),
        ] {
            let mut der = csr(alg);
            let n = der.len();
            der[n - 3] ^= 0x5a;
            assert_eq!(parse_and_verify(&der).err(), Some(CsrError::BadSignature));
            let req = parse_for_keygen(&der).expect("still a CSR");
            assert_eq!(req.key_type, Some(want));
            assert_eq!(req.subject.to_string(), "CN=Laptop");
        }
    }

    #[test]
    fn what_is_not_a_csr_is_still_refused() {
        assert!(matches!(
            parse_for_keygen(b"\x30\x03abc"),
            Err(CsrError::Malformed(_))
        ));
        assert!(matches!(parse_for_keygen(b""), Err(CsrError::Malformed(_))));
        let mut der = csr(&rcgen::PKCS_ECDSA_P256_SHA256);
        der.push(0);
        assert!(matches!(
            parse_for_keygen(&der),
            Err(CsrError::Malformed(_))
        ));
    }
}

/// The exact bytes of CertificationRequestInfo, which the signature covers.
fn signed_portion(der: &[u8]) -> Result<&[u8], CsrError> {
    let malformed = |e: der::Error| CsrError::Malformed(e.to_string());
    let mut reader = SliceReader::new(der).map_err(malformed)?;
    let header = reader.peek_header().map_err(malformed)?;
    if header.tag != Tag::Sequence {
        return Err(CsrError::Malformed("not a SEQUENCE".into()));
    }
    let _ = der::Header::decode(&mut reader).map_err(malformed)?;
    reader.tlv_bytes().map_err(malformed)
}

/// Decides the key type; refuses curves and sizes estd never accepts.
pub fn classify_key(spki: &SubjectPublicKeyInfoOwned) -> Result<SubjectKey, CsrError> {
    let oid = spki.algorithm.oid;
    if oid == rfc5912::ID_EC_PUBLIC_KEY {
        let curve: ObjectIdentifier = spki
            .algorithm
            .parameters
            .as_ref()
            .ok_or_else(|| CsrError::UnsupportedKey("EC key without a named curve".into()))?
            .decode_as()
            .map_err(|_| CsrError::UnsupportedKey("EC key without a named curve".into()))?;
        return match curve {
            SECP256R1 => Ok(SubjectKey::P256),
            SECP384R1 => Ok(SubjectKey::P384),
            other => Err(CsrError::UnsupportedKey(format!(
                "EC curve {other} (accepted: P-256, P-384)"
            ))),
        };
    }
    if oid == rfc5912::RSA_ENCRYPTION {
        let rsa = RsaPublicKey::from_der(spki.subject_public_key.raw_bytes())
            .map_err(|e| CsrError::UnsupportedKey(format!("RSA key: {e}")))?;
        let m = rsa.modulus.as_bytes();
        let bits = if m.is_empty() {
            0
        } else {
            (m.len() as u32 - 1) * 8 + (8 - m[0].leading_zeros())
        };
        let _ = rsa.public_exponent;
        if !(2048..=4096).contains(&bits) {
            return Err(CsrError::UnsupportedKey(format!(
                "RSA-{bits} (accepted: 2048 to 4096 bits)"
            )));
        }
        return Ok(SubjectKey::Rsa { bits });
    }
    if oid == rfc8410::ID_ED_25519 {
        return Ok(SubjectKey::Ed25519);
    }
    Err(CsrError::UnsupportedKey(format!("algorithm {oid}")))
}

fn verification_algorithm(
    sig_oid: &ObjectIdentifier,
    key: SubjectKey,
) -> Result<&'static dyn VerificationAlgorithm, CsrError> {
    let alg: &'static dyn VerificationAlgorithm = match (key, *sig_oid) {
        (SubjectKey::P256, rfc5912::ECDSA_WITH_SHA_256) => &sig::ECDSA_P256_SHA256_ASN1,
        (SubjectKey::P256, rfc5912::ECDSA_WITH_SHA_384) => &sig::ECDSA_P256_SHA384_ASN1,
        (SubjectKey::P256, rfc5912::ECDSA_WITH_SHA_512) => &sig::ECDSA_P256_SHA512_ASN1,
        (SubjectKey::P384, rfc5912::ECDSA_WITH_SHA_256) => &sig::ECDSA_P384_SHA256_ASN1,
        (SubjectKey::P384, rfc5912::ECDSA_WITH_SHA_384) => &sig::ECDSA_P384_SHA384_ASN1,
        (SubjectKey::P384, rfc5912::ECDSA_WITH_SHA_512) => &sig::ECDSA_P384_SHA512_ASN1,
        (SubjectKey::Rsa { .. }, rfc5912::SHA_256_WITH_RSA_ENCRYPTION) => {
            &sig::RSA_PKCS1_2048_8192_SHA256
        }
        (SubjectKey::Rsa { .. }, rfc5912::SHA_384_WITH_RSA_ENCRYPTION) => {
            &sig::RSA_PKCS1_2048_8192_SHA384
        }
        (SubjectKey::Rsa { .. }, rfc5912::SHA_512_WITH_RSA_ENCRYPTION) => {
            &sig::RSA_PKCS1_2048_8192_SHA512
        }
        (SubjectKey::Ed25519, rfc8410::ID_ED_25519) => &sig::ED25519,
        (_, other) => return Err(CsrError::UnsupportedSignature(other.to_string())),
    };
    Ok(alg)
}

/// Reads a DirectoryString-like value (UTF8, Printable, IA5 or Teletex) as text.
pub fn directory_string(v: &der::Any) -> Result<String, CsrError> {
    let bad = |e: der::Error| CsrError::Malformed(format!("string attribute: {e}"));
    Ok(match v.tag() {
        Tag::Utf8String => Utf8StringRef::try_from(v).map_err(bad)?.as_str().to_owned(),
        Tag::PrintableString => PrintableStringRef::try_from(v)
            .map_err(bad)?
            .as_str()
            .to_owned(),
        Tag::Ia5String => Ia5StringRef::try_from(v).map_err(bad)?.as_str().to_owned(),
        Tag::TeletexString => TeletexStringRef::try_from(v)
            .map_err(bad)?
            .as_str()
            .to_owned(),
        other => {
            return Err(CsrError::Malformed(format!(
                "unsupported string type {other}"
            )))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csr(alg: &'static rcgen::SignatureAlgorithm) -> Vec<u8> {
        let key = rcgen::KeyPair::generate_for(alg).expect("key");
        let mut params = rcgen::CertificateParams::new(vec!["dev.example".into()]).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "dev");
        params.serialize_request(&key).expect("csr").der().to_vec()
    }

    #[test]
    fn accepts_each_supported_key() {
        assert_eq!(
            parse_and_verify(&csr(&rcgen::PKCS_ECDSA_P256_SHA256)).map(|c| c.key),
            Ok(SubjectKey::P256)
        );
        assert_eq!(
            parse_and_verify(&csr(&rcgen::PKCS_ECDSA_P384_SHA384)).map(|c| c.key),
            Ok(SubjectKey::P384)
        );
        assert_eq!(
            parse_and_verify(&csr(&rcgen::PKCS_ED25519)).map(|c| c.key),
            Ok(SubjectKey::Ed25519)
        );
        assert_eq!(
            parse_and_verify(&csr(&rcgen::PKCS_RSA_SHA256)).map(|c| c.key),
            Ok(SubjectKey::Rsa { bits: 2048 })
        );
    }

    #[test]
    fn tampered_signature_is_refused() {
        let mut der = csr(&rcgen::PKCS_ECDSA_P256_SHA256);
        let n = der.len();
        der[n - 5] ^= 0x01;
        assert!(matches!(
            parse_and_verify(&der),
            Err(CsrError::BadSignature) | Err(CsrError::Malformed(_))
        ));
    }

    #[test]
    fn tampered_subject_is_refused() {
        let mut der = csr(&rcgen::PKCS_ECDSA_P256_SHA256);
        let pos = der.windows(3).position(|w| w == b"dev").expect("CN in CSR");
        der[pos] = b'x';
        assert_eq!(parse_and_verify(&der).err(), Some(CsrError::BadSignature));
    }

    #[test]
    fn garbage_is_malformed() {
        assert!(matches!(
            parse_and_verify(b"\x30\x03abc"),
            Err(CsrError::Malformed(_))
        ));
        assert!(matches!(parse_and_verify(b""), Err(CsrError::Malformed(_))));
    }
}
