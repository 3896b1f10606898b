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

use std::path::{Path, PathBuf};

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

use super::bootstrap::{append_rdn, write_ca_key};
use super::keyfile::configured_passphrase;
use super::layout;
use super::pkcs11::{
    configured_pin, generate_key, key_attributes, Pkcs11Signer, TokenKeyAlgorithm,
};
use super::provider::IssuingKey;
use super::rollover::{
    begin_generation, generation_common_name, in_ceremony, later_generations, write_switch_at,
};
use super::signer::Signer;
use super::CaError;
use crate::config::{CaConfig, Pkcs11KeyConfig};
use crate::files::{cert_pem, create_dir_all, read_cert, read_certs, write_file};
use crate::model::UnixSeconds;

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

/// Step 1 of a rollover: starts the next generation's folder and generates
/// its key: in the token of `[ca.key] pkcs11` under `key_label`, or, without
/// one, a key file in the folder (encrypted with the configured passphrase).
pub fn init_next(
    cfg: &CaConfig,
    certs_dir: &Path,
    key_label: Option<&str>,
    algorithm: TokenKeyAlgorithm,
) -> Result<String, CaError> {
    let (number, dir) = begin_generation(certs_dir)?;
    let result = init_next_into(cfg, &dir, number, key_label, algorithm);
    if result.is_err() {
        // Leave no half-started generation behind.
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

fn init_next_into(
    cfg: &CaConfig,
    dir: &Path,
    number: u32,
    key_label: Option<&str>,
    algorithm: TokenKeyAlgorithm,
) -> Result<String, CaError> {
    let mut report = match key_label {
        Some(label) => {
            let p11 = Pkcs11KeyConfig {
                key_label: label.to_owned(),
                ..token_config(cfg)?.clone()
            };
            let pin = configured_pin(&p11)?;
            generate_key(&p11, &pin, algorithm)?;
            write_file(
                &dir.join(layout::TOKEN_KEY_LABEL),
                format!("{label}\n").as_bytes(),
                false,
            )?;
            let mut report = format!(
                "estd: generated a {algorithm:?} key pair labelled {label:?} in token {:?} for CA generation {number} ({})\n",
                p11.token_label,
                dir.display()
            );
            for (name, value) in key_attributes(&p11, &pin)? {
                report.push_str(&format!("  {name} = {value}\n"));
            }
            report
        }
        None => {
            let alg = match algorithm {
                TokenKeyAlgorithm::P256 => &rcgen::PKCS_ECDSA_P256_SHA256,
                TokenKeyAlgorithm::P384 => &rcgen::PKCS_ECDSA_P384_SHA384,
                TokenKeyAlgorithm::Rsa2048 => &rcgen::PKCS_RSA_SHA256,
                other => {
                    return Err(key_err(format!(
                        "a key file can be P-256, P-384 or RSA 2048, not {other:?}"
                    )))
                }
            };
            let key = rcgen::KeyPair::generate_for(alg)?;
            let passphrase = configured_passphrase(cfg)?;
            write_ca_key(&dir.join(layout::ISSUING_KEY), &key, passphrase.as_ref())?;
            format!(
                "estd: generated a {algorithm:?} key for CA generation {number} in {}\n",
                dir.join(layout::ISSUING_KEY).display()
            )
        }
    };
    report.push_str("next: estd ca csr --next --out issuing-ca-next.csr\n");
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
///
/// With `next`, the request is for the generation being prepared (see
/// [`init_next`]), named `<issuing_common_name> G<number>`.
pub fn csr(cfg: &CaConfig, certs_dir: &Path, next: bool) -> Result<String, CaError> {
    let (signer, common_name): (std::sync::Arc<dyn Signer>, String) = if next {
        let (number, dir) = in_ceremony(certs_dir)?;
        (
            IssuingKey::for_generation(&dir, cfg)?.load()?,
            generation_common_name(&cfg.issuing_common_name, number),
        )
    } else {
        let p11 = token_config(cfg)?;
        (
            std::sync::Arc::new(Pkcs11Signer::open(p11, configured_pin(p11)?)?),
            cfg.issuing_common_name.clone(),
        )
    };
    let mut subject = x509_cert::name::Name::default();
    subject = append_rdn(subject, rfc4519::C, "DK")?;
    subject = append_rdn(subject, rfc4519::O, "estd")?;
    subject = append_rdn(subject, rfc4519::CN, &common_name)?;
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

/// Whether `signature` over `signed`, of the algorithm `signature_oid`,
/// verifies under the key `issuer`; `None` when estd cannot verify that
/// algorithm with that key.
pub fn signature_verifies(
    signature_oid: &const_oid::ObjectIdentifier,
    issuer: &spki::SubjectPublicKeyInfoOwned,
    signed: &[u8],
    signature: &BitString,
) -> Option<bool> {
    let alg = verifier(signature_oid, issuer)?;
    Some(
        UnparsedPublicKey::new(alg, issuer.subject_public_key.raw_bytes())
            .verify(signed, signature.raw_bytes())
            .is_ok(),
    )
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

/// What `estd ca import --next` adds for the next generation.
#[derive(Debug, Default)]
pub struct NextGeneration {
    /// NewWithOld and OldWithNew (PEM, either order), when the root is new.
    pub root_rollover: Option<PathBuf>,
    /// When it starts to issue.
    pub switch_at: Option<UnixSeconds>,
}

/// Step 3: installs the issuing CA certificate `cert_file` and its chain
/// `chain_file` (any intermediates, then the root) into `certs_dir`, after
/// checking that the certificate's public key is the key's, that every
/// certificate is a CA certificate signed by the next one, and that the
/// root is self-signed. Refuses to replace an installed issuing CA.
///
/// With `next`, installs the generation being prepared instead; a new
/// root there should come with its rollover certificates, which are
/// checked against both roots.
pub fn import(
    cfg: &CaConfig,
    certs_dir: &Path,
    cert_file: &Path,
    chain_file: &Path,
    next: Option<NextGeneration>,
) -> Result<String, CaError> {
    let (dir, key, what) = match &next {
        Some(_) => {
            let (number, dir) = in_ceremony(certs_dir)?;
            let key = IssuingKey::for_generation(&dir, cfg)?;
            (dir, key, format!("CA generation {number}"))
        }
        None => {
            let p11 = token_config(cfg)?;
            let installed = certs_dir.join(layout::ISSUING_CERT);
            if installed.exists() {
                return Err(key_err(format!(
                    "{} already exists; estd does not replace an installed issuing CA. \
                     To roll over to a new one, prepare it with --next (estd ca init --next, \
                     estd ca csr --next, estd ca import --next)",
                    installed.display()
                )));
            }
            let key = IssuingKey::Pkcs11 {
                pin: configured_pin(p11)?,
                config: p11.clone(),
            };
            (certs_dir.to_owned(), key, "the issuing CA".to_owned())
        }
    };
    let issuing_der = read_certs(cert_file)?
        .into_iter()
        .next()
        .map(|c| c.to_vec())
        .ok_or_else(|| key_err(format!("{} holds no certificate", cert_file.display())))?;
    let chain: Vec<Vec<u8>> = read_certs(chain_file)?
        .into_iter()
        .map(|c| c.to_vec())
        .collect();
    let issuing = parse(&issuing_der, "the issuing CA certificate")?;
    let signer = key.load()?;
    if issuing
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        != signer.public_key().subject_public_key
    {
        return Err(key_err(format!(
            "the certificate in {} is not for {what}'s key: its public key differs",
            cert_file.display(),
        )));
    }
    let root = check_chain(&issuing, &chain, cert_file, chain_file)?;
    let root_der = chain.last().map(Vec::as_slice).unwrap_or_default();

    let mut notes = String::new();
    let rollover = match &next {
        Some(n) => {
            let previous_root = previous_root(certs_dir)?;
            rollover_certs(
                n.root_rollover.as_deref(),
                &previous_root,
                &root,
                &mut notes,
            )?
        }
        None => Vec::new(),
    };

    create_dir_all(&dir)?;
    let file = |name: &str, pem: String| write_file(&dir.join(name), pem.as_bytes(), false);
    file(layout::ROOT_CERT, cert_pem(root_der))?;
    let mut chain_pem = cert_pem(&issuing_der);
    for der in &chain {
        chain_pem.push_str(&cert_pem(der));
    }
    file(layout::CHAIN, chain_pem)?;
    if !rollover.is_empty() {
        file(
            layout::ROOT_ROLLOVER,
            rollover.iter().map(|d| cert_pem(d)).collect(),
        )?;
    }
    if let Some(n) = &next {
        write_switch_at(&dir, n.switch_at)?;
    }
    // Last: its presence means the CA is installed.
    file(layout::ISSUING_CERT, cert_pem(&issuing_der))?;
    Ok(format!(
        "estd: installed {what}: {} under the root {} in {}{notes}",
        issuing.tbs_certificate.subject,
        root.tbs_certificate.subject,
        dir.display()
    ))
}

/// Checks that `issuing` is a CA certificate signed by the first of
/// `chain`, each of those by the next, and that the last is a self-signed
/// root. Returns the root.
fn check_chain(
    issuing: &Certificate,
    chain: &[Vec<u8>],
    cert_file: &Path,
    chain_file: &Path,
) -> Result<Certificate, CaError> {
    if !is_ca(issuing)? {
        return Err(key_err(format!(
            "the certificate in {} is not a CA certificate (basicConstraints cA is not set)",
            cert_file.display()
        )));
    }
    let mut below = issuing.clone();
    for (i, der) in chain.iter().enumerate() {
        let above = parse(
            der,
            &format!("certificate {} of {}", i + 1, chain_file.display()),
        )?;
        if below.tbs_certificate.issuer != above.tbs_certificate.subject
            || !signed_by(&below, &above)?
        {
            return Err(key_err(format!(
                "{} is not signed by certificate {} of {} (it must hold the issuing CA's issuers in order, ending with the root)",
                if i == 0 {
                    "the issuing CA certificate".to_owned()
                } else {
                    format!("certificate {i} of the chain")
                },
                i + 1,
                chain_file.display()
            )));
        }
        if !is_ca(&above)? {
            return Err(key_err(format!(
                "certificate {} of {} is not a CA certificate",
                i + 1,
                chain_file.display()
            )));
        }
        below = above;
    }
    if chain.is_empty()
        || below.tbs_certificate.issuer != below.tbs_certificate.subject
        || !signed_by(&below, &below)?
    {
        return Err(key_err(format!(
            "{} does not end with a self-signed root",
            chain_file.display()
        )));
    }
    Ok(below)
}

/// The root of the newest complete generation before the one being installed.
fn previous_root(certs_dir: &Path) -> Result<Certificate, CaError> {
    let mut dir = certs_dir.to_owned();
    for number in later_generations(certs_dir)? {
        let d = super::rollover::generation_dir(certs_dir, number);
        if d.join(layout::ISSUING_CERT).exists() {
            dir = d;
        }
    }
    parse(
        &read_cert(&dir.join(layout::ROOT_CERT))?,
        "the current root certificate",
    )
}

/// The root rollover certificates for a generation under `new_root`: none
/// when the root stays; else NewWithOld and OldWithNew from `file`,
/// checked against both roots. Without a file, `notes` says what clients
/// then need.
fn rollover_certs(
    file: Option<&Path>,
    old_root: &Certificate,
    new_root: &Certificate,
    notes: &mut String,
) -> Result<Vec<Vec<u8>>, CaError> {
    let key = |c: &Certificate| c.tbs_certificate.subject_public_key_info.clone();
    if key(old_root) == key(new_root) {
        if let Some(f) = file {
            return Err(key_err(format!(
                "{} holds root rollover certificates, but the root does not change",
                f.display()
            )));
        }
        return Ok(Vec::new());
    }
    let Some(file) = file else {
        notes.push_str(
            "\nnote: the root changes and no --root-rollover certificates were given; clients that \
             trust only the old root must get the new root another way",
        );
        return Ok(Vec::new());
    };
    let certs: Vec<Vec<u8>> = read_certs(file)?.into_iter().map(|c| c.to_vec()).collect();
    let mut new_with_old = None;
    let mut old_with_new = None;
    for der in &certs {
        let c = parse(der, &format!("a certificate in {}", file.display()))?;
        if key(&c) == key(new_root) && signed_by(&c, old_root)? {
            new_with_old = Some(der.clone());
        } else if key(&c) == key(old_root) && signed_by(&c, new_root)? {
            old_with_new = Some(der.clone());
        }
    }
    match (new_with_old, old_with_new, certs.len()) {
        (Some(nwo), Some(own), 2) => Ok(vec![nwo, own]),
        _ => Err(key_err(format!(
            "{} must hold exactly NewWithOld (the new root's key, signed by the old root) and \
             OldWithNew (the old root's key, signed by the new root)",
            file.display()
        ))),
    }
}
