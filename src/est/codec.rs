//! Wire encoding for EST (RFC 7030 with RFC 8951): base64 bodies in and out,
//! PKCS#7 certs-only responses, and CSR attributes. No protocol logic here.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{DigestAlgorithmIdentifiers, EncapsulatedContentInfo, SignerInfos};
use const_oid::db::rfc5911::{ID_DATA, ID_SIGNED_DATA};
use const_oid::ObjectIdentifier;
use der::asn1::SetOfVec;
use der::{Any, AnyRef, Decode, Encode};

/// Why a body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// Not valid base64 (after removing white space and any PEM armour).
    #[error("body is not valid base64")]
    Base64,
    /// Empty body.
    #[error("empty body")]
    Empty,
}

/// Accepts padded and unpadded input.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Decodes an EST request body to DER.
///
/// `binary` is true when the client said `Content-Transfer-Encoding: binary`;
/// otherwise the body is base64, with or without line breaks (LF or CRLF) and
/// with or without PEM armour, whether or not the header is present (RFC 8951).
pub fn decode_body(body: &[u8], binary: bool) -> Result<Vec<u8>, CodecError> {
    if binary {
        if body.is_empty() {
            return Err(CodecError::Empty);
        }
        return Ok(body.to_vec());
    }
    let mut clean = Vec::with_capacity(body.len());
    for line in body.split(|&b| b == b'\n') {
        let line = line.trim_ascii();
        if line.starts_with(b"-----") {
            continue; // PEM armour: BEGIN/END lines
        }
        clean.extend(line.iter().filter(|b| !b.is_ascii_whitespace()));
    }
    if clean.is_empty() {
        return Err(CodecError::Empty);
    }
    LENIENT.decode(&clean).map_err(|_| CodecError::Base64)
}

/// Base64 with a line break every 64 characters, as EST clients expect.
pub fn encode_base64_wrapped(der: &[u8]) -> Vec<u8> {
    let flat = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = Vec::with_capacity(flat.len() + flat.len() / 64 + 2);
    for chunk in flat.as_bytes().chunks(64) {
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// A CMS SignedData with no signers that carries `certs` (the "certs-only"
/// PKCS#7 of RFC 7030 4.1.3 and 4.2.3), DER.
pub fn certs_only(certs: &[&[u8]]) -> Result<Vec<u8>, der::Error> {
    // DER's order for SET OF: by encoding.
    let mut sorted = certs.to_vec();
    sorted.sort_unstable();
    let mut certificates = Vec::with_capacity(sorted.len());
    for der in sorted {
        certificates.push(AnyRef::from_der(der)?);
    }
    let signed = CertsOnlySignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::new(),
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: ID_DATA,
            econtent: None,
        },
        certificates,
        signer_infos: SignerInfos(SetOfVec::new()),
    };
    ContentInfo {
        content_type: ID_SIGNED_DATA,
        content: Any::encode_from(&signed)?,
    }
    .to_der()
}

/// RFC 5652's SignedData with certificates and nothing to sign, the
/// certificates kept as the DER they are: `cms::SignedData` takes them
/// decoded, and decoding each only to encode it again was 5% of an
/// enrolment's CPU.
#[derive(der::Sequence)]
struct CertsOnlySignedData<'a> {
    version: CmsVersion,
    digest_algorithms: DigestAlgorithmIdentifiers,
    encap_content_info: EncapsulatedContentInfo,
    /// `certificates [0] IMPLICIT CertificateSet`: with the tag replaced, a
    /// SET OF and a SEQUENCE OF encode alike; the order is the caller's.
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", constructed = "true")]
    certificates: Vec<AnyRef<'a>>,
    signer_infos: SignerInfos,
}

/// One entry of a CSR attributes response (RFC 7030 4.5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttrOrOid {
    /// A bare OID: "please include this".
    Oid(ObjectIdentifier),
    /// An attribute type with values, e.g. id-ecPublicKey with a curve.
    Attribute(ObjectIdentifier, Vec<Any>),
}

/// `CsrAttrs ::= SEQUENCE SIZE (0..MAX) OF AttrOrOID`, DER.
pub fn csr_attrs(entries: &[AttrOrOid]) -> Result<Vec<u8>, der::Error> {
    let mut seq: Vec<Any> = Vec::with_capacity(entries.len());
    for e in entries {
        seq.push(match e {
            AttrOrOid::Oid(oid) => Any::encode_from(oid)?,
            AttrOrOid::Attribute(oid, values) => {
                let attr = x509_cert::attr::Attribute {
                    oid: *oid,
                    values: SetOfVec::try_from(values.clone())?,
                };
                Any::encode_from(&attr)?
            }
        });
    }
    seq.to_der()
}

/// id-aa-certificationRequestInfoTemplate (RFC 9908 3.4, IANA's SMI
/// Security for S/MIME Attributes registry, 1.2.840.113549.1.9.16.2.61).
pub const ID_AA_CERTIFICATION_REQUEST_INFO_TEMPLATE: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.61");

/// id-aa-extensionReqTemplate (RFC 9908 3.4, 1.2.840.113549.1.9.16.2.62):
/// extensions some of whose values the client fills in.
pub const ID_AA_EXTENSION_REQ_TEMPLATE: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.62");

/// RFC 9908's CertificationRequestInfoTemplate: a PKCS#10
/// CertificationRequestInfo without its signature, whose subject, key and
/// values may be left for the client to fill in. The module uses IMPLICIT
/// tags.
///
/// ```text
/// CertificationRequestInfoTemplate ::= SEQUENCE {
///     version       INTEGER { v1(0) } (v1, ... ),
///     subject       NameTemplate OPTIONAL,
///     subjectPKInfo [0] SubjectPublicKeyInfoTemplate OPTIONAL,
///     attributes    [1] Attributes{{ CRIAttributes }} }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, der::Sequence)]
pub struct CertificationRequestInfoTemplate {
    /// v1(0).
    pub version: u8,
    /// `NameTemplate ::= CHOICE { rdnSequence RDNSequenceTemplate }`, whose
    /// only choice is the SEQUENCE OF RDN templates.
    #[asn1(optional = "true")]
    pub subject: Option<Vec<RdnTemplate>>,
    /// The key type the client is to use.
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    pub subject_pk_info: Option<SubjectPublicKeyInfoTemplate>,
    /// Attributes, here the extension request (or its template).
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT")]
    pub attributes: SetOfVec<x509_cert::attr::Attribute>,
}

/// `RelativeDistinguishedNameTemplate ::= SET SIZE (1..MAX) OF SingleAttributeTemplate`.
pub type RdnTemplate = SetOfVec<SingleAttributeTemplate>;

/// An RDN attribute whose value may be left for the client.
#[derive(Debug, Clone, PartialEq, Eq, der::Sequence, der::ValueOrd)]
pub struct SingleAttributeTemplate {
    /// Attribute type.
    pub attr_type: ObjectIdentifier,
    /// The value the client must use; absent: the client fills it in.
    #[asn1(optional = "true")]
    pub value: Option<Any>,
}

/// A SubjectPublicKeyInfo whose key may be absent (RFC 9908: present only
/// as a dummy key of the wanted RSA modulus length).
#[derive(Debug, Clone, PartialEq, Eq, der::Sequence)]
pub struct SubjectPublicKeyInfoTemplate {
    /// Key algorithm (and curve).
    pub algorithm: spki::AlgorithmIdentifierOwned,
    /// A dummy key, for RSA only.
    #[asn1(optional = "true")]
    pub subject_public_key: Option<der::asn1::BitString>,
}

/// An extension whose value may be left for the client (RFC 9908).
#[derive(Debug, Clone, PartialEq, Eq, der::Sequence)]
pub struct ExtensionTemplate {
    /// Extension type.
    pub extn_id: ObjectIdentifier,
    /// Criticality.
    #[asn1(default = "Default::default")]
    pub critical: bool,
    /// The DER value the client must use; absent: the client fills it in.
    #[asn1(optional = "true")]
    pub extn_value: Option<der::asn1::OctetString>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_forms_all_decode() {
        let want = b"\x30\x03\x02\x01\x05".to_vec();
        for body in [
            &b"MAMCAQU="[..],
            b"MAMCAQU",
            b"MAMC\r\nAQU=\r\n",
            b"MAMC\nAQU=\n",
            b"-----BEGIN CERTIFICATE REQUEST-----\nMAMCAQU=\n-----END CERTIFICATE REQUEST-----\n",
        ] {
            assert_eq!(decode_body(body, false), Ok(want.clone()), "{body:?}");
        }
        assert_eq!(decode_body(&want, true), Ok(want.clone()));
        assert_eq!(decode_body(b"%%%", false), Err(CodecError::Base64));
        assert_eq!(decode_body(b"\r\n", false), Err(CodecError::Empty));
    }

    #[test]
    fn output_is_wrapped_at_64() {
        let out = encode_base64_wrapped(&[7u8; 200]);
        let text = std::str::from_utf8(&out).expect("ascii");
        assert!(text.split("\r\n").all(|l| l.len() <= 64));
        assert_eq!(decode_body(&out, false), Ok(vec![7u8; 200]));
    }

    /// The certs-only PKCS#7 as `cms` encodes it from decoded certificates.
    fn certs_only_by_cms(certs: &[&[u8]]) -> Vec<u8> {
        use cms::cert::CertificateChoices;
        use cms::signed_data::{CertificateSet, SignedData};
        use x509_cert::certificate::Certificate;
        let choices: Vec<CertificateChoices> = certs
            .iter()
            .map(|d| CertificateChoices::Certificate(Certificate::from_der(d).expect("cert")))
            .collect();
        let signed = SignedData {
            version: CmsVersion::V1,
            digest_algorithms: SetOfVec::new(),
            encap_content_info: EncapsulatedContentInfo {
                econtent_type: ID_DATA,
                econtent: None,
            },
            certificates: Some(CertificateSet(SetOfVec::try_from(choices).expect("set"))),
            crls: None,
            signer_infos: SignerInfos(SetOfVec::new()),
        };
        ContentInfo {
            content_type: ID_SIGNED_DATA,
            content: Any::encode_from(&signed).expect("signed data"),
        }
        .to_der()
        .expect("content info")
    }

    fn self_signed(name: &str) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().expect("key");
        let params = rcgen::CertificateParams::new(vec![name.to_owned()]).expect("params");
        params.self_signed(&key).expect("cert").der().to_vec()
    }

    #[test]
    fn certs_only_is_the_encoding_cms_makes_of_the_same_certificates() {
        let a = self_signed("a.example");
        let b = self_signed("a-much-longer-name.example.org");
        let c = self_signed(&format!("{}.example", vec!["c".repeat(60); 3].join(".")));
        for set in [
            vec![&a[..]],
            vec![&a[..], &b[..]],
            vec![&b[..], &a[..]],
            vec![&c[..], &a[..], &b[..]],
        ] {
            assert_eq!(
                certs_only(&set).expect("certs-only"),
                certs_only_by_cms(&set)
            );
        }
        assert!(
            certs_only(&[&b"\x30\x05\x01"[..]]).is_err(),
            "a truncated certificate is refused"
        );
    }
}
