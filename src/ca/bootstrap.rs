//! CA material on disk: created on first start (a development root and an
//! issuing CA under it, and estd's TLS server certificate), loaded afterwards.

use std::path::Path;
use std::sync::Arc;

use der::Decode;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::certificate::Certificate;
use x509_cert::ext::pkix::name::GeneralName;

use super::csr::classify_key;
use super::keyfile::{ca_key_pem, Passphrase};
use super::layout;
use super::ocsp::OcspResponder;
use super::provider::IssuingKey;
use super::set::generation_urls;
use super::signer::{Signer, SoftwareSigner};
use super::{Ca, CaError, CertTemplate, CertUsage, IssuedCert, PublicUrls};
use crate::config::{CaConfig, CaKeyAlgorithm, ServerName};
use crate::files::{
    cert_pem, check_private_mode, create_dir_all, key_pem, read_cert, read_certs, read_private_key,
    write_file,
};

/// Lifetime of the delegated OCSP responder certificate.
pub const OCSP_VALIDITY_DAYS: u32 = 90;
/// It is replaced when fewer days than this remain.
pub const OCSP_RENEW_DAYS: u64 = 30;

/// Issues a new delegated OCSP responder certificate and key, writes them to
/// `dir`, and returns the responder ready to sign with the certificate.
pub fn create_ocsp_responder(dir: &Path, ca: &Ca) -> Result<(OcspResponder, IssuedCert), CaError> {
    let (pkcs8, spki) = generate_p256_key()?;
    let key = classify_key(&spki).map_err(CaError::GeneratedKey)?;
    let mut subject = x509_cert::name::Name::default();
    subject = append_rdn(subject, const_oid::db::rfc4519::O, "estd")?;
    subject = append_rdn(subject, const_oid::db::rfc4519::CN, "estd OCSP Responder")?;
    let template = CertTemplate {
        subject,
        spki,
        key,
        usage: CertUsage::OcspSigning,
        sans: vec![],
        validity_days: OCSP_VALIDITY_DAYS,
    };
    let cert = ca.issue(&template)?;
    write_file(
        &dir.join(layout::OCSP_KEY),
        key_pem(&pkcs8).as_bytes(),
        true,
    )?;
    write_file(
        &dir.join(layout::OCSP_CERT),
        cert_pem(&cert.der).as_bytes(),
        false,
    )?;
    let responder = ocsp_responder(&pkcs8, &cert.der, ca)?;
    Ok((responder, cert))
}

/// The delegated OCSP responder whose certificate and key are in `dir`, if both are.
pub fn read_ocsp_responder(dir: &Path, ca: &Ca) -> Result<Option<OcspResponder>, CaError> {
    let cert_path = dir.join(layout::OCSP_CERT);
    let key_path = dir.join(layout::OCSP_KEY);
    if !cert_path.exists() || !key_path.exists() {
        return Ok(None);
    }
    let cert = read_cert(&cert_path)?;
    let key = zeroize::Zeroizing::new(read_private_key(&key_path)?);
    Ok(Some(ocsp_responder(&key, &cert, ca)?))
}

/// The responder for a software key (PKCS#8) and its certificate.
fn ocsp_responder(pkcs8: &[u8], cert_der: &[u8], ca: &Ca) -> Result<OcspResponder, CaError> {
    let issuing = Certificate::from_der(ca.issuing_der())?;
    let signer: Arc<dyn Signer> = Arc::new(SoftwareSigner::from_pkcs8(pkcs8)?);
    OcspResponder::new(signer, cert_der, &issuing)
}

/// What [`load_or_create_ca`] found.
pub struct CaMaterial {
    /// The ready CA of generation 1 (the certificate folder's own; later
    /// generations are added by [`super::rollover::load_generations`]).
    pub ca: Ca,
    /// Whether it was created just now.
    pub created: bool,
}

pub(super) fn rcgen_alg(a: CaKeyAlgorithm) -> &'static rcgen::SignatureAlgorithm {
    match a {
        CaKeyAlgorithm::P256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        CaKeyAlgorithm::P384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        CaKeyAlgorithm::Rsa2048 => &rcgen::PKCS_RSA_SHA256,
    }
}

/// Loads the CA from `dir`, creating a development root and issuing CA if none
/// exists. With a passphrase configured, the issuing key must be encrypted, and
/// new CA keys are written encrypted.
pub fn load_or_create_ca(dir: &Path, cfg: &CaConfig) -> Result<CaMaterial, CaError> {
    create_dir_all(dir)?;
    let issuing_key = IssuingKey::from_config(dir, cfg)?;
    if issuing_key.is_token() {
        return load_token_ca(dir, cfg, issuing_key);
    }
    let wanted = [layout::ROOT_CERT, layout::ISSUING_CERT, layout::ISSUING_KEY];
    let present = wanted.iter().filter(|f| dir.join(f).exists()).count();
    let created = match present {
        0 => {
            create_ca(dir, cfg, issuing_key.passphrase())?;
            true
        }
        3 => false,
        _ => {
            return Err(CaError::Incomplete {
                dir: dir.to_owned(),
                files: wanted.join(", "),
            })
        }
    };
    let ca = assemble(dir, generation_urls(cfg, 1), issuing_key)?;
    Ok(CaMaterial { ca, created })
}

/// The CA from the certificates in `dir` (a generation's folder) and the
/// issuing key `key`, its certificates carrying `urls`.
pub(super) fn assemble(dir: &Path, urls: PublicUrls, key: IssuingKey) -> Result<Ca, CaError> {
    // The root key is not needed to run, but a readable one is as bad as a
    // readable issuing key: refuse to start until it is fixed (or moved away).
    let root_key = dir.join(layout::ROOT_KEY);
    if root_key.exists() {
        check_private_mode(&root_key)?;
    }
    let issuing = read_cert(&dir.join(layout::ISSUING_CERT))?;
    let chain = read_chain(dir, &issuing)?;
    Ca::new(key.load()?, issuing.to_vec(), chain, urls)
}

/// The certificates above the issuing CA in `dir`: those after it in the
/// chain file (intermediates, then the root), or the root alone.
fn read_chain(dir: &Path, issuing: &[u8]) -> Result<Vec<Vec<u8>>, CaError> {
    let root = read_cert(&dir.join(layout::ROOT_CERT))?.to_vec();
    let chain_file = dir.join(layout::CHAIN);
    if !chain_file.exists() {
        return Ok(vec![root]);
    }
    let chain: Vec<Vec<u8>> = read_certs(&chain_file)?
        .into_iter()
        .map(|c| c.to_vec())
        .collect();
    match chain.split_first() {
        Some((first, above))
            if first.as_slice() == issuing && above.last().is_some_and(|r| *r == root) =>
        {
            Ok(above.to_vec())
        }
        _ => Err(CaError::Key(format!(
            "{} must hold {} first and {} last",
            chain_file.display(),
            layout::ISSUING_CERT,
            layout::ROOT_CERT
        ))),
    }
}

/// Loads a CA whose issuing key is in a PKCS#11 token. Its certificates
/// come from the ceremony (`estd ca init --pkcs11`, `estd ca csr`, the
/// root signs, `estd ca import`); nothing is created here, and an issuing
/// key file beside them is refused, because it cannot be the token's key
/// and is a private key that should not lie there.
fn load_token_ca(dir: &Path, cfg: &CaConfig, key: IssuingKey) -> Result<CaMaterial, CaError> {
    let key_file = dir.join(layout::ISSUING_KEY);
    if key_file.exists() {
        return Err(CaError::Key(format!(
            "the issuing key is configured in a PKCS#11 token ([ca.key] pkcs11), but {} exists; \
             move that key file away (a software key cannot be the token's)",
            key_file.display()
        )));
    }
    for f in [layout::ROOT_CERT, layout::ISSUING_CERT] {
        if !dir.join(f).exists() {
            return Err(CaError::Key(format!(
                "the issuing key is in a PKCS#11 token, but {} is missing; run the ceremony: \
                 `estd ca init --pkcs11`, `estd ca csr --out issuing-ca.csr`, have the root sign it, \
                 then `estd ca import --cert issuing-ca.pem --chain root-ca.pem`",
                dir.join(f).display()
            )));
        }
    }
    let ca = assemble(dir, generation_urls(cfg, 1), key)?;
    Ok(CaMaterial { ca, created: false })
}

/// A CA certificate's subject: C=DK, O=estd, CN=`common_name`.
fn ca_name(common_name: &str) -> rcgen::DistinguishedName {
    use rcgen::DnType;
    let mut name = rcgen::DistinguishedName::new();
    name.push(DnType::CountryName, "DK");
    name.push(DnType::OrganizationName, "estd");
    name.push(DnType::CommonName, common_name);
    name
}

/// The parameters every CA certificate here shares, valid from an hour ago for `years`.
fn ca_params(common_name: &str, years: i64) -> Result<rcgen::CertificateParams, CaError> {
    let now = time::OffsetDateTime::now_utc();
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = ca_name(common_name);
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(years * 365);
    params.serial_number = Some(rcgen::SerialNumber::from_slice(
        &super::new_serial(std::time::SystemTime::now())?.0,
    ));
    Ok(params)
}

/// A root CA's parameters: `common_name`, 20 years, no path length limit.
pub(super) fn root_params(common_name: &str) -> Result<rcgen::CertificateParams, CaError> {
    use rcgen::{BasicConstraints, IsCa, KeyUsagePurpose};
    let mut root = ca_params(common_name, 20)?;
    root.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    root.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Ok(root)
}

/// An issuing CA's parameters: `common_name`, 10 years, no CA below it.
pub(super) fn issuing_params(common_name: &str) -> Result<rcgen::CertificateParams, CaError> {
    use rcgen::{BasicConstraints, IsCa, KeyUsagePurpose};
    let mut issuing = ca_params(common_name, 10)?;
    issuing.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    issuing.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    issuing.use_authority_key_identifier_extension = true;
    Ok(issuing)
}

/// Writes a CA key to `path` (0600), encrypted with `passphrase` if there is one.
pub(super) fn write_ca_key(
    path: &Path,
    key: &rcgen::KeyPair,
    passphrase: Option<&Passphrase>,
) -> Result<(), CaError> {
    let der = zeroize::Zeroizing::new(key.serialize_der());
    let pem = ca_key_pem(&der, passphrase)?;
    Ok(write_file(path, pem.as_bytes(), true)?)
}

/// Writes a generation's certificates into `dir`: the root, the issuing
/// CA, and the chain (issuing CA, then root). The issuing certificate comes
/// last: its presence means the generation is complete.
pub(super) fn write_ca_certs(
    dir: &Path,
    issuing_der: &[u8],
    root_der: &[u8],
) -> Result<(), CaError> {
    let cert_file = |name: &str, pem: String| write_file(&dir.join(name), pem.as_bytes(), false);
    cert_file(layout::ROOT_CERT, cert_pem(root_der))?;
    cert_file(
        layout::CHAIN,
        format!("{}{}", cert_pem(issuing_der), cert_pem(root_der)),
    )?;
    cert_file(layout::ISSUING_CERT, cert_pem(issuing_der))?;
    Ok(())
}

/// Creates a development root and an issuing CA under it, and writes their
/// keys (encrypted with `passphrase` if there is one), certificates and chain.
fn create_ca(dir: &Path, cfg: &CaConfig, passphrase: Option<&Passphrase>) -> Result<(), CaError> {
    let alg = rcgen_alg(cfg.key_algorithm);
    let root_key = rcgen::KeyPair::generate_for(alg)?;
    let root = root_params(&cfg.root_common_name)?;
    let root_cert = root.self_signed(&root_key)?;
    let root_issuer = rcgen::Issuer::new(root, &root_key);

    let issuing_key = rcgen::KeyPair::generate_for(alg)?;
    let issuing_cert =
        issuing_params(&cfg.issuing_common_name)?.signed_by(&issuing_key, &root_issuer)?;

    write_ca_key(&dir.join(layout::ROOT_KEY), &root_key, passphrase)?;
    write_ca_key(&dir.join(layout::ISSUING_KEY), &issuing_key, passphrase)?;
    write_ca_certs(dir, issuing_cert.der(), root_cert.der())
}

/// A new P-256 key, PKCS#8 DER, and its SubjectPublicKeyInfo.
pub fn generate_p256_key() -> Result<(Vec<u8>, SubjectPublicKeyInfoOwned), CaError> {
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let spki =
        SubjectPublicKeyInfoOwned::from_der(&rcgen::PublicKeyData::subject_public_key_info(&kp))?;
    Ok((kp.serialize_der(), spki))
}

/// Material for estd's own TLS listener.
pub struct TlsMaterial {
    /// Server certificate then the issuing CA.
    pub chain: Vec<CertificateDer<'static>>,
    /// The server key.
    pub key: PrivateKeyDer<'static>,
    /// The certificate just issued, if it was created now (to be recorded in the store).
    pub issued: Option<IssuedCert>,
}

/// estd's own TLS certificate and key in `dir`, if both files are there.
pub fn load_tls(dir: &Path) -> Result<Option<TlsMaterial>, CaError> {
    let cert_path = dir.join(layout::TLS_CERT);
    let key_path = dir.join(layout::TLS_KEY);
    if !cert_path.exists() || !key_path.exists() {
        return Ok(None);
    }
    let chain = read_certs(&cert_path)?;
    let key = read_private_key(&key_path)?;
    Ok(Some(TlsMaterial {
        chain,
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
        issued: None,
    }))
}

/// Issues estd a new TLS server certificate for `names` (the first DNS name,
/// else the first address, is its CN), valid `days`, with a new key; writes
/// both into `dir` (the key 0600), each file replaced whole.
pub fn issue_tls(
    dir: &Path,
    ca: &Ca,
    names: &[ServerName],
    days: u32,
) -> Result<TlsMaterial, CaError> {
    let (pkcs8, spki) = generate_p256_key()?;
    let key = classify_key(&spki).map_err(CaError::GeneratedKey)?;
    let common_name = names
        .iter()
        .find_map(|n| match n {
            ServerName::Dns(d) => Some(d.clone()),
            ServerName::Ip(_) => None,
        })
        .or_else(|| names.first().map(|n| n.to_string()))
        .unwrap_or_else(|| "estd".into());
    let subject = append_rdn(
        x509_cert::name::Name::default(),
        const_oid::db::rfc4519::CN,
        &common_name,
    )?;
    let sans = names
        .iter()
        .map(|n| match n {
            ServerName::Dns(d) => Ok(GeneralName::DnsName(der::asn1::Ia5String::new(d)?)),
            ServerName::Ip(std::net::IpAddr::V4(v4)) => Ok(GeneralName::IpAddress(
                der::asn1::OctetString::new(v4.octets().to_vec())?,
            )),
            ServerName::Ip(std::net::IpAddr::V6(v6)) => Ok(GeneralName::IpAddress(
                der::asn1::OctetString::new(v6.octets().to_vec())?,
            )),
        })
        .collect::<Result<Vec<_>, der::Error>>()?;
    let template = CertTemplate {
        subject,
        spki,
        key,
        usage: CertUsage::TlsServer,
        sans,
        validity_days: days,
    };
    let cert = ca.issue(&template)?;
    // The certificate first: a crash between the two writes leaves a key
    // that does not match, which the next start notices and mends by
    // issuing again, never a key without its certificate on disk.
    let pem = format!("{}{}", cert_pem(&cert.der), cert_pem(ca.issuing_der()));
    write_file(&dir.join(layout::TLS_CERT), pem.as_bytes(), false)?;
    write_file(&dir.join(layout::TLS_KEY), key_pem(&pkcs8).as_bytes(), true)?;
    let chain = vec![
        CertificateDer::from(cert.der.clone()),
        CertificateDer::from(ca.issuing_der().to_vec()),
    ];
    Ok(TlsMaterial {
        chain,
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pkcs8)),
        issued: Some(cert),
    })
}

/// Appends a single-valued RDN with a UTF8String value.
pub fn append_rdn(
    mut name: x509_cert::name::Name,
    oid: const_oid::ObjectIdentifier,
    value: &str,
) -> Result<x509_cert::name::Name, CaError> {
    use x509_cert::attr::AttributeTypeAndValue;
    use x509_cert::name::RelativeDistinguishedName;
    let value = der::Any::new(der::Tag::Utf8String, value.as_bytes())?;
    let atv = AttributeTypeAndValue { oid, value };
    let rdn = RelativeDistinguishedName::try_from(vec![atv])?;
    name.0.push(rdn);
    Ok(name)
}
