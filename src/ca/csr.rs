//! PKCS#10 parsing and proof of possession: the CSR's signature must verify
//! under the key it carries, and that key must be one estd accepts at all.

use aws_lc_rs::signature::{self as sig, VerificationAlgorithm};
use const_oid::db::{rfc5912, rfc8410};
use const_oid::ObjectIdentifier;
use der::asn1::{Ia5StringRef, PrintableStringRef, TeletexStringRef, UintRef, Utf8StringRef};
use der::{Decode, Encode, Reader, SliceReader, Tag, Tagged};
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::ext::Extension;
use x509_cert::name::Name;
use x509_cert::request::{CertReq, ExtensionReq};

use crate::model::KeyAlgorithm;

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
    /// A key encoded other than its standard's canonical way (RFC 8410,
    /// RFC 3279/4055, RFC 5480), which would make the certificate unreadable.
    #[error("subject key not canonically encoded: {0}")]
    NonCanonicalKey(String),
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
    /// The challengePassword attribute (its first value), if any: its text,
    /// or why it could not be read as text. Profiles requiring
    /// proof-of-possession linking compare it with the connection's channel
    /// binding ([`crate::policy::check_pop_linking`]); others ignore it,
    /// whatever its form.
    pub challenge_password: Option<Result<String, String>>,
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
    require_canonical_spki(&req.info.public_key, info_der)?;
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
                challenge_password = Some(challenge_password_text(v));
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

/// Decides the key type; refuses curves and sizes estd never accepts, and
/// encodings other than the canonical one of each key type, which a CA must
/// not copy into a certificate (OpenSSL and others then cannot read it):
/// - Ed25519 (RFC 8410 3): no parameters, a 32-byte key;
/// - rsaEncryption (RFC 3279 2.3.1): NULL parameters, the key a DER
///   RSAPublicKey with positive, minimally encoded integers;
/// - id-ecPublicKey (RFC 5480 2.1.1, 2.2): a namedCurve, an uncompressed point
///   (0x04, then both coordinates) on that curve;
/// - and always a BIT STRING without unused bits.
pub fn classify_key(spki: &SubjectPublicKeyInfoOwned) -> Result<SubjectKey, CsrError> {
    let bad = |why: &str| CsrError::NonCanonicalKey(why.to_owned());
    if spki.subject_public_key.unused_bits() != 0 {
        return Err(bad("the public key BIT STRING has unused bits"));
    }
    let raw = spki.subject_public_key.raw_bytes();
    let oid = spki.algorithm.oid;
    if oid == rfc5912::ID_EC_PUBLIC_KEY {
        let curve: ObjectIdentifier = spki
            .algorithm
            .parameters
            .as_ref()
            .ok_or_else(|| CsrError::UnsupportedKey("EC key without a named curve".into()))?
            .decode_as()
            .map_err(|_| CsrError::UnsupportedKey("EC key without a named curve".into()))?;
        let (key, alg, point_len): (_, &'static dyn VerificationAlgorithm, _) = match curve {
            SECP256R1 => (SubjectKey::P256, &sig::ECDSA_P256_SHA256_ASN1, 65),
            SECP384R1 => (SubjectKey::P384, &sig::ECDSA_P384_SHA384_ASN1, 97),
            other => {
                return Err(CsrError::UnsupportedKey(format!(
                    "EC curve {other} (accepted: P-256, P-384)"
                )))
            }
        };
        if raw.first() != Some(&0x04) || raw.len() != point_len {
            return Err(bad(
                "the EC point must be uncompressed (RFC 5480 2.2: 0x04, then X and Y)",
            ));
        }
        sig::ParsedPublicKey::new(alg, raw).map_err(|_| bad("the EC point is not on the curve"))?;
        return Ok(key);
    }
    if oid == rfc5912::RSA_ENCRYPTION {
        if !spki.algorithm.parameters.as_ref().is_some_and(is_null) {
            return Err(bad(
                "rsaEncryption parameters must be NULL (RFC 3279 2.3.1)",
            ));
        }
        let rsa = RsaPublicKey::from_der(raw)
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
        if spki.algorithm.parameters.is_some() {
            return Err(bad("Ed25519 parameters must be absent (RFC 8410 3)"));
        }
        if raw.len() != 32 {
            return Err(bad("an Ed25519 key is 32 bytes (RFC 8410 4)"));
        }
        return Ok(SubjectKey::Ed25519);
    }
    Err(CsrError::UnsupportedKey(format!("algorithm {oid}")))
}

fn is_null(any: &der::Any) -> bool {
    any.tag() == Tag::Null && any.value().is_empty()
}

/// The canonical DER of a key [`classify_key`] accepted, built afresh from
/// its parts: what the certificate will carry.
fn canonical_spki(spki: &SubjectPublicKeyInfoOwned) -> Result<Vec<u8>, CsrError> {
    let encode = |e: der::Error| CsrError::NonCanonicalKey(format!("cannot re-encode: {e}"));
    let raw = spki.subject_public_key.raw_bytes();
    let oid = spki.algorithm.oid;
    let (parameters, key) = if oid == rfc5912::RSA_ENCRYPTION {
        let rsa = RsaPublicKey::from_der(raw).map_err(encode)?;
        (
            Some(der::Any::encode_from(&der::asn1::Null).map_err(encode)?),
            rsa.to_der().map_err(encode)?,
        )
    } else if oid == rfc5912::ID_EC_PUBLIC_KEY {
        let curve: ObjectIdentifier = spki
            .algorithm
            .parameters
            .as_ref()
            .map(|p| p.decode_as())
            .transpose()
            .map_err(encode)?
            .ok_or_else(|| CsrError::UnsupportedKey("EC key without a named curve".into()))?;
        (
            Some(der::Any::encode_from(&curve).map_err(encode)?),
            raw.to_vec(),
        )
    } else {
        (None, raw.to_vec())
    };
    SubjectPublicKeyInfoOwned {
        algorithm: spki::AlgorithmIdentifierOwned { oid, parameters },
        subject_public_key: der::asn1::BitString::from_bytes(&key).map_err(encode)?,
    }
    .to_der()
    .map_err(encode)
}

/// Refuses a SubjectPublicKeyInfo whose bytes, as sent in the
/// CertificationRequestInfo, differ from the canonical encoding of the key
/// they carry: whatever [`classify_key`] does not name, nothing but the
/// canonical form reaches a certificate.
fn require_canonical_spki(
    spki: &SubjectPublicKeyInfoOwned,
    info_der: &[u8],
) -> Result<(), CsrError> {
    let malformed = |e: der::Error| CsrError::Malformed(e.to_string());
    // CertificationRequestInfo ::= SEQUENCE { version, subject, subjectPKInfo, attributes }
    let mut reader = SliceReader::new(info_der).map_err(malformed)?;
    der::Header::decode(&mut reader).map_err(malformed)?;
    reader.tlv_bytes().map_err(malformed)?;
    reader.tlv_bytes().map_err(malformed)?;
    let sent = reader.tlv_bytes().map_err(malformed)?;
    if sent != canonical_spki(spki)?.as_slice() {
        return Err(CsrError::NonCanonicalKey(
            "the SubjectPublicKeyInfo is not in its canonical DER encoding".into(),
        ));
    }
    Ok(())
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

/// Reads a challengePassword value (PKCS#9: a DirectoryString, of which
/// PrintableString, UTF8String and BMPString occur in practice; Windows and
/// some HSM tools write BMPString) as text, or says why it cannot be read.
/// Subjects stay with [`directory_string`]: RFC 5280 4.1.2.6 wants
/// PrintableString or UTF8String in new certificates.
pub fn challenge_password_text(v: &der::Any) -> Result<String, String> {
    if v.tag() == Tag::BmpString {
        return v
            .decode_as::<der::asn1::BmpString>()
            .map(|s| s.to_string())
            .map_err(|e| format!("BMPString: {e}"));
    }
    directory_string(v).map_err(|e| e.to_string())
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

    /// A CSR for `key` whose SubjectPublicKeyInfo `change` edited, signed
    /// again with `key`, so that its signature verifies.
    fn csr_with_spki(
        key: &rcgen::KeyPair,
        change: impl FnOnce(&mut SubjectPublicKeyInfoOwned),
    ) -> Vec<u8> {
        use rcgen::SigningKey;
        let mut params = rcgen::CertificateParams::new(vec![]).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "dev");
        let der = params.serialize_request(key).expect("csr").der().to_vec();
        let mut req = CertReq::from_der(&der).expect("csr");
        change(&mut req.info.public_key);
        let info = req.info.to_der().expect("info");
        let signature = key.sign(&info).expect("sign");
        req.signature = der::asn1::BitString::from_bytes(&signature).expect("bits");
        req.to_der().expect("der")
    }

    fn key(alg: &'static rcgen::SignatureAlgorithm) -> rcgen::KeyPair {
        rcgen::KeyPair::generate_for(alg).expect("key")
    }

    fn any(v: &(impl der::EncodeValue + Tagged)) -> der::Any {
        der::Any::encode_from(v).expect("any")
    }

    #[track_caller]
    fn assert_key_refused(der: &[u8], why: &str) {
        match parse_and_verify(der) {
            Err(CsrError::NonCanonicalKey(m)) | Err(CsrError::UnsupportedKey(m)) => {
                assert!(m.contains(why), "expected {why:?} in {m:?}")
            }
            other => panic!("expected a refused key ({why}), got {other:?}"),
        }
    }

    /// The helper keeps what it does not change: an unchanged SPKI still verifies.
    #[test]
    fn resigned_csrs_verify() {
        for alg in [
            &rcgen::PKCS_ED25519,
            &rcgen::PKCS_ECDSA_P256_SHA256,
            &rcgen::PKCS_RSA_SHA256,
        ] {
            assert!(parse_and_verify(&csr_with_spki(&key(alg), |_| {})).is_ok());
        }
    }

    /// Found by the outside test: each of these was issued, and OpenSSL could
    /// not read the certificate.
    #[test]
    fn ed25519_must_be_canonical() {
        let k = key(&rcgen::PKCS_ED25519);
        let der = csr_with_spki(&k, |s| s.algorithm.parameters = Some(any(&der::asn1::Null)));
        assert_key_refused(&der, "Ed25519 parameters must be absent");
        let der = csr_with_spki(&k, |s| {
            let bytes = s.subject_public_key.raw_bytes().to_vec();
            s.subject_public_key = der::asn1::BitString::new(1, bytes).expect("bits");
        });
        assert_key_refused(&der, "unused bits");
        let der = csr_with_spki(&k, |s| {
            let mut bytes = s.subject_public_key.raw_bytes().to_vec();
            bytes.push(0);
            s.subject_public_key = der::asn1::BitString::from_bytes(&bytes).expect("bits");
        });
        assert_key_refused(&der, "32 bytes");
    }

    #[test]
    fn rsa_must_be_canonical() {
        let k = key(&rcgen::PKCS_RSA_SHA256);
        let der = csr_with_spki(&k, |s| s.algorithm.parameters = None);
        assert_key_refused(&der, "parameters must be NULL");
        let der = csr_with_spki(&k, |s| {
            s.algorithm.parameters = Some(any(&der::asn1::OctetString::new(vec![1]).expect("o")))
        });
        assert_key_refused(&der, "parameters must be NULL");
        let der = csr_with_spki(&k, |s| {
            s.algorithm.parameters = Some(der::Any::new(Tag::Null, vec![0]).expect("any"))
        });
        assert_key_refused(&der, "parameters must be NULL");
        let der = csr_with_spki(&k, |s| {
            let bytes = s.subject_public_key.raw_bytes().to_vec();
            s.subject_public_key = der::asn1::BitString::new(3, bytes).expect("bits");
        });
        assert_key_refused(&der, "unused bits");
        // A modulus with a surplus leading zero, and a negative one.
        let rsa_with = |modulus: Vec<u8>| {
            csr_with_spki(&k, |s| {
                let rsa = RsaPublicKey::from_der(s.subject_public_key.raw_bytes()).expect("rsa");
                let e = rsa.public_exponent.as_bytes().to_vec();
                // Raw TLVs: der's own integer types would tidy the bytes up.
                let tlv = |tag, v: Vec<u8>| der::Any::new(tag, v).expect("any").to_der();
                let mut body = tlv(Tag::Integer, modulus.clone()).expect("n");
                body.extend(tlv(Tag::Integer, e).expect("e"));
                let key = tlv(Tag::Sequence, body).expect("key");
                s.subject_public_key = der::asn1::BitString::from_bytes(&key).expect("bits");
            })
        };
        let n = {
            let spki = SubjectPublicKeyInfoOwned::from_der(
                &rcgen::PublicKeyData::subject_public_key_info(&k),
            )
            .expect("spki");
            let rsa = RsaPublicKey::from_der(spki.subject_public_key.raw_bytes()).expect("rsa");
            rsa.modulus.as_bytes().to_vec()
        };
        let mut surplus = vec![0, 0];
        surplus.extend(&n);
        assert_key_refused(&rsa_with(surplus), "RSA key");
        assert_key_refused(&rsa_with(n.clone()), "RSA key");
        // Control: the same construction with the canonical modulus passes.
        let mut canonical = vec![0];
        canonical.extend(&n);
        assert!(parse_and_verify(&rsa_with(canonical)).is_ok());
    }

    #[test]
    fn ec_must_be_canonical() {
        for (alg, len) in [
            (&rcgen::PKCS_ECDSA_P256_SHA256, 32),
            (&rcgen::PKCS_ECDSA_P384_SHA384, 48),
        ] {
            let k = key(alg);
            let point = k.public_key_raw().to_vec();
            assert_eq!(point.len(), 1 + 2 * len);
            let compressed = {
                let mut c = vec![2 + (point[2 * len] & 1)];
                c.extend(&point[1..=len]);
                c
            };
            let der = csr_with_spki(&k, |s| {
                s.subject_public_key = der::asn1::BitString::from_bytes(&compressed).expect("b")
            });
            assert_key_refused(&der, "uncompressed");
            let der = csr_with_spki(&k, |s| {
                let mut hybrid = point.clone();
                hybrid[0] = 6 + (point[2 * len] & 1);
                s.subject_public_key = der::asn1::BitString::from_bytes(&hybrid).expect("b")
            });
            assert_key_refused(&der, "uncompressed");
            let der = csr_with_spki(&k, |s| {
                let mut off = point.clone();
                off[len] ^= 1;
                s.subject_public_key = der::asn1::BitString::from_bytes(&off).expect("b")
            });
            assert_key_refused(&der, "not on the curve");
            let der = csr_with_spki(&k, |s| {
                s.subject_public_key = der::asn1::BitString::new(1, point.clone()).expect("b")
            });
            assert_key_refused(&der, "unused bits");
            let der = csr_with_spki(&k, |s| s.algorithm.parameters = None);
            assert_key_refused(&der, "without a named curve");
        }
    }

    /// What classify_key does not name still cannot pass: the bytes sent
    /// must be the canonical encoding.
    #[test]
    fn the_sent_spki_must_equal_its_canonical_encoding() {
        let k = key(&rcgen::PKCS_ED25519);
        let good = csr_with_spki(&k, |_| {});
        let req = CertReq::from_der(&good).expect("csr");
        let info = signed_portion(&good).expect("info");
        assert!(require_canonical_spki(&req.info.public_key, info).is_ok());
        // Bytes sent that differ from the key's canonical encoding are refused.
        let mut other = req.info.public_key.clone();
        other.algorithm.parameters = Some(der::Any::new(Tag::Sequence, vec![]).expect("any"));
        assert!(matches!(
            require_canonical_spki(&req.info.public_key, &{
                let mut info = req.info.clone();
                info.public_key = other;
                info.to_der().expect("info")
            }),
            Err(CsrError::NonCanonicalKey(_))
        ));
    }

    #[test]
    fn challenge_password_forms() {
        fn with_challenge(value: der::Any) -> Vec<u8> {
            let set = der::asn1::SetOfVec::try_from(vec![value]).expect("set");
            let k = key(&rcgen::PKCS_ECDSA_P256_SHA256);
            let mut params = rcgen::CertificateParams::new(vec![]).expect("params");
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, "dev");
            let attr = rcgen::Attribute {
                oid: &[1, 2, 840, 113549, 1, 9, 7],
                values: set.to_der().expect("der"),
            };
            params
                .serialize_request_with_attributes(&k, vec![attr])
                .expect("csr")
                .der()
                .to_vec()
        }
        let text = |d: &[u8]| parse_and_verify(d).expect("csr").challenge_password;
        let bmp = der::asn1::BmpString::from_utf8("Æblegrød-1").expect("bmp");
        assert_eq!(
            text(&with_challenge(any(&bmp))),
            Some(Ok("Æblegrød-1".into()))
        );
        let printable = der::asn1::PrintableStringRef::new("abc").expect("p");
        assert_eq!(
            text(&with_challenge(any(&printable))),
            Some(Ok("abc".into()))
        );
        // Unreadable as text: accepted here, refused only where it is used.
        let odd_bmp = der::Any::new(Tag::BmpString, vec![0, 0x41, 0]).expect("any");
        assert!(matches!(text(&with_challenge(odd_bmp)), Some(Err(_))));
        let octets = any(&der::asn1::OctetString::new(vec![1, 2]).expect("o"));
        assert!(matches!(text(&with_challenge(octets)), Some(Err(_))));
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
