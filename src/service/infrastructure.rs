//! estd's own certificates: its TLS server identity and its OCSP responders.
//! Each is a certificate of its CA like any other, recorded in the store so
//! that serial uniqueness and OCSP cover it.
//!
//! The TLS identity comes from one of two places ([`TlsIdentitySource`]):
//! estd issues it itself, for the configured server names, and renews it
//! before it expires; or the operator names a certificate and key from
//! another CA, which estd reloads whenever the files change. Either way the
//! new identity is presented from the next handshake on, without a restart.

use std::path::Path;
use std::sync::Arc;

use x509_cert::der::Decode;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::SubjectAltName;

use crate::ca::{bootstrap, CaError, IssuedCert};
use crate::config::{ServerName, TlsConfig, TlsIdentitySource};
use crate::files::FileError;
use crate::model::{now_unix, CertKind, CertRecord, CertStatus, UnixSeconds};
use crate::store::{Store, StoreError};
use crate::tls::LiveTls;

/// The profile id under which estd records its TLS server certificates.
pub const TLS_SERVER_ROLE: &str = "estd-tls-server";

/// Why the TLS identity could not be loaded or renewed. The identity in
/// force stays.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The configuration cannot be followed.
    #[error("[tls]: {0}")]
    Config(String),
    /// Issuing the certificate.
    #[error(transparent)]
    Ca(#[from] CaError),
    /// Reading or writing a file.
    #[error(transparent)]
    File(#[from] FileError),
    /// The chain and key do not make an identity (no certificate, a key
    /// that is not the certificate's).
    #[error("TLS certificate and key: {0}")]
    Tls(#[from] rustls::Error),
    /// The certificate cannot be read.
    #[error("TLS certificate: {0}")]
    Der(#[from] der::Error),
    /// Recording the new certificate.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a look at the TLS identity did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refreshed {
    /// Nothing was due.
    Unchanged,
    /// estd issued itself a new certificate.
    Renewed {
        /// Why: the names changed, the old one nears expiry, …
        reason: &'static str,
        /// The new certificate's notAfter.
        not_after: UnixSeconds,
    },
    /// The operator's files changed and were loaded.
    Reloaded {
        /// The new certificate's notAfter.
        not_after: UnixSeconds,
    },
}

/// The identity estd starts with, from `certs_dir` or the operator's files:
/// what [`LiveTls::new`] takes, and what [`refresh`] compares against later.
pub fn initial(
    store: &Arc<dyn Store>,
    ca: &crate::ca::Ca,
    tls: &TlsConfig,
    certs_dir: &Path,
) -> Result<(rustls::sign::CertifiedKey, Option<[u8; 32]>), IdentityError> {
    match tls.identity_source().map_err(IdentityError::Config)? {
        TlsIdentitySource::Files { certificate, key } => {
            let (identity, digest) = load_files(&certificate, &key)?;
            Ok((identity, Some(digest)))
        }
        TlsIdentitySource::OwnCa => {
            if let Some(m) = bootstrap::load_tls(certs_dir)? {
                match crate::tls::certified_key(m.chain, m.key) {
                    Ok(identity) => return Ok((identity, None)),
                    // A crash between writing the certificate and its key.
                    Err(e) => {
                        tracing::warn!(error = %e, "estd's TLS certificate and key in the certificate folder do not match; issuing a new pair")
                    }
                }
            }
            let names = tls.names().map_err(IdentityError::Config)?;
            let m = bootstrap::issue_tls(certs_dir, ca, &names, tls.certificate_days)?;
            if let Some(issued) = &m.issued {
                record_own_certificate(store, issued, &subject_text(&names), TLS_SERVER_ROLE)?;
            }
            Ok((crate::tls::certified_key(m.chain, m.key)?, None))
        }
    }
}

/// Looks whether the identity in force is still the one `tls` asks for, and
/// replaces it when it is not: a certificate of estd's own that nears expiry
/// or names other names is renewed; files that changed are loaded. Durable
/// when it returns: a new certificate is recorded and flushed before any
/// client sees it.
pub fn refresh(
    store: &Arc<dyn Store>,
    ca: &crate::ca::Ca,
    live: &LiveTls,
    tls: &TlsConfig,
    certs_dir: &Path,
) -> Result<Refreshed, IdentityError> {
    match tls.identity_source().map_err(IdentityError::Config)? {
        TlsIdentitySource::Files { certificate, key } => {
            let digest = files_digest(&certificate, &key)?;
            if live.loaded_from() == Some(digest) {
                return Ok(Refreshed::Unchanged);
            }
            let (identity, digest) = load_files(&certificate, &key)?;
            let not_after = leaf_facts(&identity)?.not_after;
            live.set_identity(identity, Some(digest));
            Ok(Refreshed::Reloaded { not_after })
        }
        TlsIdentitySource::OwnCa => {
            let names = tls.names().map_err(IdentityError::Config)?;
            let now = now_unix();
            let reason = if live.loaded_from().is_some() {
                Some("the operator's certificate files are no longer configured")
            } else {
                let facts = leaf_facts_of(&live.chain())?;
                if facts.names != names {
                    Some("the configured server names changed")
                } else if facts.not_after
                    <= now.saturating_add(u64::from(tls.renew_before_days) * 86_400)
                {
                    Some("fewer than tls.renew_before_days remain")
                } else {
                    None
                }
            };
            let Some(reason) = reason else {
                return Ok(Refreshed::Unchanged);
            };
            let m = bootstrap::issue_tls(certs_dir, ca, &names, tls.certificate_days)?;
            let not_after = match &m.issued {
                Some(issued) => {
                    record_own_certificate(store, issued, &subject_text(&names), TLS_SERVER_ROLE)?;
                    store.flush()?;
                    issued.not_after
                }
                None => 0,
            };
            live.set_identity(crate::tls::certified_key(m.chain, m.key)?, None);
            Ok(Refreshed::Renewed { reason, not_after })
        }
    }
}

/// Records one of estd's own certificates (TLS server, OCSP responder) in the
/// store, so that OCSP and serial uniqueness cover it like any other.
pub fn record_own_certificate(
    store: &Arc<dyn Store>,
    issued: &IssuedCert,
    subject: &str,
    role: &str,
) -> Result<(), StoreError> {
    store.insert_new_cert(&CertRecord {
        serial: issued.serial,
        der: issued.der.clone(),
        subject: subject.into(),
        profile_id: role.into(),
        cvr: String::new(),
        kind: CertKind::System,
        rights: vec![],
        issued_at: now_unix(),
        not_after: issued.not_after,
        status: CertStatus::Issued,
        renews: None,
        renewed_by: None,
        order_id: None,
        published: false,
        email: None,
    })
}

fn subject_text(names: &[ServerName]) -> String {
    let cn = names
        .iter()
        .find(|n| matches!(n, ServerName::Dns(_)))
        .or(names.first())
        .map(ToString::to_string)
        .unwrap_or_else(|| "estd".into());
    format!("CN={cn}")
}

/// The SHA-256 of the two files, so that a change to either is seen
/// whatever their timestamps say.
fn files_digest(certificate: &Path, key: &Path) -> Result<[u8; 32], IdentityError> {
    use aws_lc_rs::digest;
    let read = |p: &Path| std::fs::read(p).map_err(|e| FileError::io(p, e));
    let mut h = digest::Context::new(&digest::SHA256);
    let cert = read(certificate)?;
    h.update(&(cert.len() as u64).to_be_bytes());
    h.update(&cert);
    h.update(&read(key)?);
    let mut out = [0u8; 32];
    out.copy_from_slice(h.finish().as_ref());
    Ok(out)
}

fn load_files(
    certificate: &Path,
    key: &Path,
) -> Result<(rustls::sign::CertifiedKey, [u8; 32]), IdentityError> {
    // The digest first: a file replaced while it is read is read again at the next look.
    let digest = files_digest(certificate, key)?;
    let chain = crate::files::read_certs(certificate)?;
    let key = crate::files::read_any_private_key(key)?;
    let identity = crate::tls::certified_key(chain, key)?;
    leaf_facts(&identity)?;
    Ok((identity, digest))
}

/// What estd compares of its own certificate.
struct LeafFacts {
    not_after: UnixSeconds,
    names: Vec<ServerName>,
}

fn leaf_facts(identity: &rustls::sign::CertifiedKey) -> Result<LeafFacts, IdentityError> {
    leaf_facts_of(&identity.cert)
}

fn leaf_facts_of(
    chain: &[rustls::pki_types::CertificateDer<'static>],
) -> Result<LeafFacts, IdentityError> {
    let Some(leaf) = chain.first() else {
        return Err(IdentityError::Config("no certificate in the chain".into()));
    };
    let cert = x509_cert::Certificate::from_der(leaf)?;
    let not_after = cert
        .tbs_certificate
        .validity
        .not_after
        .to_unix_duration()
        .as_secs();
    let mut names = Vec::new();
    if let Some((_, san)) = cert.tbs_certificate.get::<SubjectAltName>()? {
        for n in san.0 {
            match n {
                GeneralName::DnsName(d) => {
                    names.push(ServerName::Dns(d.as_str().to_ascii_lowercase()))
                }
                GeneralName::IpAddress(ip) => {
                    let b = ip.as_bytes();
                    if let Ok(v4) = <[u8; 4]>::try_from(b) {
                        names.push(ServerName::Ip(std::net::IpAddr::from(v4)));
                    } else if let Ok(v6) = <[u8; 16]>::try_from(b) {
                        names.push(ServerName::Ip(std::net::IpAddr::from(v6)));
                    }
                }
                _ => {}
            }
        }
    }
    names.sort();
    names.dedup();
    Ok(LeafFacts { not_after, names })
}

/// When estd's TLS certificate in force expires (Unix seconds), for the metric.
pub fn tls_not_after(live: &LiveTls) -> Option<UnixSeconds> {
    leaf_facts_of(&live.chain()).ok().map(|f| f.not_after)
}
