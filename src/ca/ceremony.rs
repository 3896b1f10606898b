//! The issuing CA's key ceremony with the key in a PKCS#11 token: the steps
//! behind `estd ca init --pkcs11`, `estd ca csr` and `estd ca import`.
//!
//! 1. [`init`] generates the key pair inside the token: sensitive, not
//!    extractable, a token object. The private key never leaves it.
//! 2. [`csr`] writes a PKCS#10 request for the issuing CA, signed by the
//!    token, for an external (offline) root to sign.
//! 3. [`import`] checks the certificate the root returned (its public key is
//!    the token's, it is a CA certificate, the root's signature verifies)
//!    and installs it with the root into the certificate folder.
//!
//! `estd serve` then loads only certificates from `certs/` and the key from
//! the token; no root key is ever needed at run time.

use std::path::Path;

use aws_lc_rs::signature::{self as sig, UnparsedPublicKey, VerificationAlgorithm};
use const_oid::db::{rfc4519, rfc5912};
use const_oid::AssociatedOid;
use der::asn1::{BitString, OctetString, SetOfVec};
use der::{Any, Decode, Encode};
use x509_cert::attr::Attribute;
use x509_cert::certificate::Certificate;
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage, KeyUsages};
use x509_cert::ext::Extension;
use x509_cert::request::{CertReq, CertReqInfo, ExtensionReq, Version};

use super::bootstrap::append_rdn;
use super::layout;
use super::pkcs11::{
    configured_pin, generate_key, key_attributes, Pkcs11Signer, TokenKeyAlgorithm,
};
use super::signer::Signer;
use super::CaError;
use crate::config::{CaConfig, Pkcs11KeyConfig};
use crate::files::{cert_pem, create_dir_all, read_certs, write_file};

fn key_err(msg: String) -> CaError {
    CaError::Key(msg)
}

fn token_config(cfg: &CaConfig) -> Result<&Pkcs11KeyConfig, CaError> {
    cfg.key.pkcs11.as_ref().ok_or_else(|| {
        key_err(
            "no token configured: set [ca.key] pkcs11 = { module, token_label, key_label, pin_env | pin_file }"
                .into(),
        )
    })
}

/// Step 1: generates the issuing key in the token. Returns a report of the
/// key's protection attributes as the token states them.
pub fn init(cfg: &CaConfig, algorithm: TokenKeyAlgorithm) -> Result<String, CaError> {
    let p11 = token_config(cfg)?;
    let pin = configured_pin(p11)?;
    let spki = generate_key(p11, &pin, algorithm)?;
    let attrs = key_attributes(p11, &pin)?;
    let mut report = format!(
        "estd: generated a {algorithm:?} key pair labelled {:?} in token {:?} ({} bytes of public key)\n",
        p11.key_label,
        p11.token_label,
        spki.subject_public_key.raw_bytes().len()
    );
    for (name, value) in attrs {
        report.push_str(&format!("  {name} = {value}\n"));
    }
    report.push_str("next: estd ca csr --out issuing-ca.csr\n");
    Ok(report)
}

fn extension<T: AssociatedOid + Encode>(value: &T, critical: bool) -> Result<Extension, CaError> {
    Ok(Extension {
        extn_id: T::OID,
        critical,
        extn_value: OctetString::new(value.to_der()?)?,
    })
}

/// Step 2: the issuing CA's CSR (PEM), signed by the token: subject
/// C=DK, O=estd, CN=`[ca] issuing_common_name`, asking for a CA certificate
/// (basicConstraints cA, pathLen 0; keyCertSign, cRLSign, digitalSignature).
/// The root decides what it signs; these are what estd needs.
pub fn csr(cfg: &CaConfig) -> Result<String, CaError> {
    let p11 = token_config(cfg)?;
    let signer = Pkcs11Signer::open(p11, configured_pin(p11)?)?;
    let mut subject = x509_cert::name::Name::default();
    subject = append_rdn(subject, rfc4519::C, "DK")?;
    subject = append_rdn(subject, rfc4519::O, "estd")?;
    subject = append_rdn(subject, rfc4519::CN, &cfg.issuing_common_name)?;
    let extensions = ExtensionReq(vec![
        extension(
            &BasicConstraints {
                ca: true,
                path_len_constraint: Some(0),
            },
            true,
        )?,
        extension(
            &KeyUsage(KeyUsages::KeyCertSign | KeyUsages::CRLSign | KeyUsages::DigitalSignature),
            true,
        )?,
    ]);
    let mut values = SetOfVec::new();
    values.insert(Any::encode_from(&extensions)?)?;
    let mut attributes = SetOfVec::new();
    attributes.insert(Attribute {
        oid: ExtensionReq::OID,
        values,
    })?;
    let info = CertReqInfo {
        version: Version::V1,
        subject,
        public_key: signer.public_key().clone(),
        attributes,
    };
    let signature = signer.sign(&info.to_der()?)?;
    let req = CertReq {
        info,
        algorithm: signer.algorithm().clone(),
        signature: BitString::from_bytes(&signature)?,
    };
    der::pem::encode_string(
        "CERTIFICATE REQUEST",
        der::pem::LineEnding::LF,
        &req.to_der()?,
    )
    .map_err(|e| key_err(format!("encoding the CSR as PEM: {e}")))
}

/// The aws-lc algorithm that verifies a signature of `signature_oid` made
/// by the key `issuer`.
fn verifier(
    signature_oid: &const_oid::ObjectIdentifier,
    issuer: &spki::SubjectPublicKeyInfoOwned,
) -> Option<&'static dyn VerificationAlgorithm> {
    let curve = issuer
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<const_oid::ObjectIdentifier>().ok());
    let p256 = curve == Some(rfc5912::SECP_256_R_1);
    let p384 = curve == Some(rfc5912::SECP_384_R_1);
    let o = *signature_oid;
    Some(match () {
        _ if o == rfc5912::ECDSA_WITH_SHA_256 && p256 => &sig::ECDSA_P256_SHA256_ASN1,
        _ if o == rfc5912::ECDSA_WITH_SHA_384 && p256 => &sig::ECDSA_P256_SHA384_ASN1,
        _ if o == rfc5912::ECDSA_WITH_SHA_256 && p384 => &sig::ECDSA_P384_SHA256_ASN1,
        _ if o == rfc5912::ECDSA_WITH_SHA_384 && p384 => &sig::ECDSA_P384_SHA384_ASN1,
        _ if o == rfc5912::SHA_256_WITH_RSA_ENCRYPTION => &sig::RSA_PKCS1_2048_8192_SHA256,
        _ if o == rfc5912::SHA_384_WITH_RSA_ENCRYPTION => &sig::RSA_PKCS1_2048_8192_SHA384,
        _ if o == rfc5912::SHA_512_WITH_RSA_ENCRYPTION => &sig::RSA_PKCS1_2048_8192_SHA512,
        _ => return None,
    })
}

/// Whether `cert` is signed by the key of `issuer`.
fn signed_by(cert: &Certificate, issuer: &Certificate) -> Result<bool, CaError> {
    let issuer_key = &issuer.tbs_certificate.subject_public_key_info;
    let Some(alg) = verifier(&cert.signature_algorithm.oid, issuer_key) else {
        return Err(key_err(format!(
            "the signature algorithm {} is not one estd can verify",
            cert.signature_algorithm.oid
        )));
    };
    let tbs = cert.tbs_certificate.to_der()?;
    Ok(
        UnparsedPublicKey::new(alg, issuer_key.subject_public_key.raw_bytes())
            .verify(&tbs, cert.signature.raw_bytes())
            .is_ok(),
    )
}

fn is_ca(cert: &Certificate) -> Result<bool, CaError> {
    for e in cert.tbs_certificate.extensions.iter().flatten() {
        if e.extn_id == BasicConstraints::OID {
            return Ok(BasicConstraints::from_der(e.extn_value.as_bytes())?.ca);
        }
    }
    Ok(false)
}

fn parse(der: &[u8], what: &str) -> Result<Certificate, CaError> {
    Certificate::from_der(der).map_err(|e| key_err(format!("{what} is not a certificate: {e}")))
}

/// Step 3: installs the issuing CA certificate `cert_file` and its chain
/// `chain_file` (the root that signed it) into `certs_dir`, after checking
/// that the certificate's public key is the token key's, that it is a CA
/// certificate, that the root signed it and that the root is self-signed.
/// Refuses to replace an installed issuing CA.
pub fn import(
    cfg: &CaConfig,
    certs_dir: &Path,
    cert_file: &Path,
    chain_file: &Path,
) -> Result<String, CaError> {
    let p11 = token_config(cfg)?;
    let installed = certs_dir.join(layout::ISSUING_CERT);
    if installed.exists() {
        return Err(key_err(format!(
            "{} already exists; estd does not replace an installed issuing CA (rollover is not supported yet)",
            installed.display()
        )));
    }
    let issuing_der = read_certs(cert_file)?
        .into_iter()
        .next()
        .map(|c| c.to_vec())
        .ok_or_else(|| key_err(format!("{} holds no certificate", cert_file.display())))?;
    let chain: Vec<Vec<u8>> = read_certs(chain_file)?
        .into_iter()
        .map(|c| c.to_vec())
        .collect();
    let [root_der] = chain.as_slice() else {
        return Err(key_err(format!(
            "{} holds {} certificates; it must hold the one root that signed the issuing CA \
             (an intermediate between them is not supported)",
            chain_file.display(),
            chain.len()
        )));
    };
    let issuing = parse(&issuing_der, "the issuing CA certificate")?;
    let root = parse(root_der, "the root certificate")?;

    let signer = Pkcs11Signer::open(p11, configured_pin(p11)?)?;
    if issuing
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        != signer.public_key().subject_public_key
    {
        return Err(key_err(format!(
            "the certificate in {} is not for key {:?} in token {:?}: its public key differs",
            cert_file.display(),
            p11.key_label,
            p11.token_label
        )));
    }
    if !is_ca(&issuing)? {
        return Err(key_err(format!(
            "the certificate in {} is not a CA certificate (basicConstraints cA is not set)",
            cert_file.display()
        )));
    }
    if issuing.tbs_certificate.issuer != root.tbs_certificate.subject
        || !signed_by(&issuing, &root)?
    {
        return Err(key_err(format!(
            "the issuing CA certificate is not signed by the root in {}",
            chain_file.display()
        )));
    }
    if root.tbs_certificate.issuer != root.tbs_certificate.subject || !signed_by(&root, &root)? {
        return Err(key_err(format!(
            "the certificate in {} is not a self-signed root",
            chain_file.display()
        )));
    }

    create_dir_all(certs_dir)?;
    let file = |name: &str, pem: String| write_file(&certs_dir.join(name), pem.as_bytes(), false);
    file(layout::ROOT_CERT, cert_pem(root_der))?;
    file(
        layout::CHAIN,
        format!("{}{}", cert_pem(&issuing_der), cert_pem(root_der)),
    )?;
    // Last: its presence means the CA is installed.
    file(layout::ISSUING_CERT, cert_pem(&issuing_der))?;
    Ok(format!(
        "estd: installed the issuing CA {} (key {:?} in token {:?}) and its root {} in {}",
        issuing.tbs_certificate.subject,
        p11.key_label,
        p11.token_label,
        root.tbs_certificate.subject,
        certs_dir.display()
    ))
}
