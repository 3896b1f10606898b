//! CA material on disk: created on first start (a development root and an
//! issuing CA under it, and estd's TLS server certificate), loaded afterwards.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use der::pem::LineEnding;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::ext::pkix::name::GeneralName;

use super::csr::classify_key;
use super::keyfile::{ca_key_pem, configured_passphrase, read_ca_key, Passphrase};
use super::{Ca, CaError, CertTemplate, CertUsage, IssuedCert};
use crate::config::{CaConfig, CaKeyAlgorithm};

/// File names under `certs/`.
pub mod files {
    /// Root CA certificate: the trust anchor clients pin.
    pub const ROOT_CERT: &str = "root-ca.pem";
    /// Root CA key.
    pub const ROOT_KEY: &str = "root-ca.key";
    /// Issuing CA certificate.
    pub const ISSUING_CERT: &str = "issuing-ca.pem";
    /// Issuing CA key.
    pub const ISSUING_KEY: &str = "issuing-ca.key";
    /// Issuing CA then root.
    pub const CHAIN: &str = "ca-chain.pem";
    /// TLS server certificate and its chain.
    pub const TLS_CERT: &str = "tls-server.pem";
    /// TLS server key.
    pub const TLS_KEY: &str = "tls-server.key";
    /// Demo IdM system certificate.
    pub const DEMO_CERT: &str = "demo-idm.pem";
    /// Demo IdM system key.
    pub const DEMO_KEY: &str = "demo-idm.key";
    /// Delegated OCSP responder certificate.
    pub const OCSP_CERT: &str = "ocsp-signer.pem";
    /// Delegated OCSP responder key.
    pub const OCSP_KEY: &str = "ocsp-signer.key";
}

/// Lifetime of the delegated OCSP responder certificate.
pub const OCSP_VALIDITY_DAYS: u32 = 90;
/// It is replaced when fewer days than this remain.
pub const OCSP_RENEW_DAYS: u64 = 30;

/// Issues a new delegated OCSP responder certificate and key and writes them.
pub fn create_ocsp_signer(dir: &Path, ca: &Ca) -> Result<IssuedCert, CaError> {
    let (pkcs8, spki) = generate_p256_key()?;
    let key = classify_key(&spki).map_err(|e| CaError::Generate(e.to_string()))?;
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
    write_file(&dir.join(files::OCSP_KEY), key_pem(&pkcs8).as_bytes(), true)?;
    write_file(
        &dir.join(files::OCSP_CERT),
        cert_pem(&cert.der).as_bytes(),
        false,
    )?;
    Ok(cert)
}

/// A certificate (DER) and its key (PKCS#8 DER).
pub type CertAndKey = (Vec<u8>, Vec<u8>);

/// Reads the delegated OCSP responder's certificate (DER) and key (PKCS#8), if present.
pub fn read_ocsp_signer(dir: &Path) -> Result<Option<CertAndKey>, CaError> {
    let cert_path = dir.join(files::OCSP_CERT);
    let key_path = dir.join(files::OCSP_KEY);
    if !cert_path.exists() || !key_path.exists() {
        return Ok(None);
    }
    let cert = read_certs(&cert_path)?.remove(0).to_vec();
    let key = read_private_key(&key_path)?;
    Ok(Some((cert, key)))
}

/// What [`load_or_create_ca`] found.
pub struct CaMaterial {
    /// The ready CA.
    pub ca: Ca,
    /// Whether it was created just now.
    pub created: bool,
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> CaError {
    CaError::Io(format!("{}: {e}", path.display()))
}

/// Writes `contents` to `path` atomically and durably (the file, then the
/// rename in its directory); private files get mode 0600 from the start.
pub fn write_file(path: &Path, contents: &[u8], private: bool) -> Result<(), CaError> {
    let tmp = path.with_extension("tmp");
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(if private { 0o600 } else { 0o644 });
    }
    let mut f = opts.open(&tmp).map_err(|e| io_err(&tmp, e))?;
    // The mode above applies only to a new file; a temp file left by a crash keeps its own.
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(|e| io_err(&tmp, e))?;
    }
    f.write_all(contents).map_err(|e| io_err(&tmp, e))?;
    f.sync_all().map_err(|e| io_err(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| io_err(path, e))?;
    // Without this the rename may be lost in a power cut, leaving the old file or none.
    #[cfg(unix)]
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_err(parent, e))?;
    }
    Ok(())
}

/// PEM of a certificate.
pub fn cert_pem(der: &[u8]) -> String {
    der::pem::encode_string("CERTIFICATE", LineEnding::LF, der).unwrap_or_default()
}

/// PEM of a PKCS#8 key.
pub fn key_pem(pkcs8: &[u8]) -> String {
    der::pem::encode_string("PRIVATE KEY", LineEnding::LF, pkcs8).unwrap_or_default()
}

/// Refuses a secret file that group or others can read.
pub fn check_private_mode(path: &Path) -> Result<(), CaError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(path)
            .map_err(|e| io_err(path, e))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(CaError::Key(format!(
                "{} is readable by group or others (mode {:o}); run chmod 600 on it",
                path.display(),
                mode & 0o777
            )));
        }
    }
    Ok(())
}

/// Reads a private key, refusing one that group or others can read.
pub fn read_private_key(path: &Path) -> Result<Vec<u8>, CaError> {
    check_private_mode(path)?;
    match PrivateKeyDer::from_pem_file(path).map_err(|e| io_err(path, e))? {
        PrivateKeyDer::Pkcs8(k) => Ok(k.secret_pkcs8_der().to_vec()),
        _ => Err(CaError::Key(format!(
            "{} is not a PKCS#8 key",
            path.display()
        ))),
    }
}

/// Reads every certificate in a PEM file.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, CaError> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_file_iter(path)
        .map_err(|e| io_err(path, e))?
        .collect();
    let certs = certs.map_err(|e| io_err(path, e))?;
    if certs.is_empty() {
        return Err(io_err(path, "no certificate in file"));
    }
    Ok(certs)
}

fn rcgen_alg(a: CaKeyAlgorithm) -> &'static rcgen::SignatureAlgorithm {
    match a {
        CaKeyAlgorithm::P256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        CaKeyAlgorithm::P384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        CaKeyAlgorithm::Rsa2048 => &rcgen::PKCS_RSA_SHA256,
    }
}

fn gen_err(e: rcgen::Error) -> CaError {
    CaError::Generate(e.to_string())
}

/// Loads the CA from `dir`, creating a development root and issuing CA if none
/// exists. With a passphrase configured, the issuing key must be encrypted, and
/// new CA keys are written encrypted.
pub fn load_or_create_ca(dir: &Path, cfg: &CaConfig) -> Result<CaMaterial, CaError> {
    fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    let passphrase = configured_passphrase(cfg)?;
    let p = |f: &str| -> PathBuf { dir.join(f) };
    let wanted = [files::ROOT_CERT, files::ISSUING_CERT, files::ISSUING_KEY];
    let present = wanted.iter().filter(|f| p(f).exists()).count();
    let created = match present {
        0 => {
            create_ca(dir, cfg, passphrase.as_ref())?;
            true
        }
        3 => false,
        _ => {
            return Err(CaError::Io(format!(
                "{} holds only part of the CA ({}); restore the missing files or empty the folder",
                dir.display(),
                wanted.join(", ")
            )))
        }
    };
    // The root key is not needed to run, but a readable one is as bad as a
    // readable issuing key: refuse to start until it is fixed (or moved away).
    if p(files::ROOT_KEY).exists() {
        check_private_mode(&p(files::ROOT_KEY))?;
    }
    let root = read_certs(&p(files::ROOT_CERT))?.remove(0);
    let issuing = read_certs(&p(files::ISSUING_CERT))?.remove(0);
    let key = read_ca_key(&p(files::ISSUING_KEY), passphrase.as_ref())?;
    let ca = Ca::new(
        issuing.to_vec(),
        &key,
        root.to_vec(),
        &cfg.crl_url,
        &cfg.ocsp_url,
    )?;
    Ok(CaMaterial { ca, created })
}

fn create_ca(dir: &Path, cfg: &CaConfig, passphrase: Option<&Passphrase>) -> Result<(), CaError> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let alg = rcgen_alg(cfg.key_algorithm);
    let now = time::OffsetDateTime::now_utc();
    let serial = || -> Result<rcgen::SerialNumber, CaError> {
        Ok(rcgen::SerialNumber::from_slice(
            &super::new_serial(std::time::SystemTime::now())?.0,
        ))
    };

    let root_key = KeyPair::generate_for(alg).map_err(gen_err)?;
    let mut root = CertificateParams::default();
    root.distinguished_name = rcgen::DistinguishedName::new();
    root.distinguished_name.push(DnType::CountryName, "DK");
    root.distinguished_name
        .push(DnType::OrganizationName, "estd");
    root.distinguished_name
        .push(DnType::CommonName, cfg.root_common_name.as_str());
    root.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    root.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    root.not_before = now - time::Duration::hours(1);
    root.not_after = now + time::Duration::days(20 * 365);
    root.serial_number = Some(serial()?);
    let root_cert = root.self_signed(&root_key).map_err(gen_err)?;
    let root_issuer = rcgen::Issuer::new(root, &root_key);

    let issuing_key = KeyPair::generate_for(alg).map_err(gen_err)?;
    let mut issuing = CertificateParams::default();
    issuing.distinguished_name = rcgen::DistinguishedName::new();
    issuing.distinguished_name.push(DnType::CountryName, "DK");
    issuing
        .distinguished_name
        .push(DnType::OrganizationName, "estd");
    issuing
        .distinguished_name
        .push(DnType::CommonName, cfg.issuing_common_name.as_str());
    issuing.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    issuing.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    issuing.use_authority_key_identifier_extension = true;
    issuing.not_before = now - time::Duration::hours(1);
    issuing.not_after = now + time::Duration::days(10 * 365);
    issuing.serial_number = Some(serial()?);
    let issuing_cert = issuing
        .signed_by(&issuing_key, &root_issuer)
        .map_err(gen_err)?;

    let root_der = zeroize::Zeroizing::new(root_key.serialize_der());
    let issuing_der = zeroize::Zeroizing::new(issuing_key.serialize_der());
    write_file(
        &dir.join(files::ROOT_KEY),
        ca_key_pem(&root_der, passphrase)?.as_bytes(),
        true,
    )?;
    write_file(
        &dir.join(files::ISSUING_KEY),
        ca_key_pem(&issuing_der, passphrase)?.as_bytes(),
        true,
    )?;
    write_file(
        &dir.join(files::ROOT_CERT),
        root_cert.pem().as_bytes(),
        false,
    )?;
    write_file(
        &dir.join(files::ISSUING_CERT),
        issuing_cert.pem().as_bytes(),
        false,
    )?;
    let chain = format!("{}{}", issuing_cert.pem(), root_cert.pem());
    write_file(&dir.join(files::CHAIN), chain.as_bytes(), false)?;
    Ok(())
}

/// A new P-256 key, PKCS#8 DER, and its SubjectPublicKeyInfo.
pub fn generate_p256_key() -> Result<(Vec<u8>, SubjectPublicKeyInfoOwned), CaError> {
    use der::Decode;
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(gen_err)?;
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

/// Loads the TLS server certificate, or issues one for localhost and 127.0.0.1.
pub fn load_or_create_tls(dir: &Path, ca: &Ca) -> Result<TlsMaterial, CaError> {
    let cert_path = dir.join(files::TLS_CERT);
    let key_path = dir.join(files::TLS_KEY);
    let mut issued = None;
    if !cert_path.exists() || !key_path.exists() {
        let (pkcs8, spki) = generate_p256_key()?;
        let key = classify_key(&spki).map_err(|e| CaError::Generate(e.to_string()))?;
        let mut subject = x509_cert::name::Name::default();
        subject = append_rdn(subject, const_oid::db::rfc4519::CN, "localhost")?;
        let template = CertTemplate {
            subject,
            spki,
            key,
            usage: CertUsage::TlsServer,
            sans: vec![
                GeneralName::DnsName(der::asn1::Ia5String::new("localhost")?),
                GeneralName::IpAddress(der::asn1::OctetString::new(vec![127, 0, 0, 1])?),
            ],
            validity_days: 397,
        };
        let cert = ca.issue(&template)?;
        write_file(&key_path, key_pem(&pkcs8).as_bytes(), true)?;
        let pem = format!("{}{}", cert_pem(&cert.der), cert_pem(ca.issuing_der()));
        write_file(&cert_path, pem.as_bytes(), false)?;
        issued = Some(cert);
    }
    let chain = read_certs(&cert_path)?;
    let key = read_private_key(&key_path)?;
    Ok(TlsMaterial {
        chain,
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
        issued,
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
