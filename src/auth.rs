//! Who is calling: a TLS client certificate (checked here, not at the
//! handshake, so that a bad certificate gets an HTTP answer that says why) or
//! HTTP Basic credentials.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use der::Decode;
use rustls::pki_types::{CertificateDer, TrustAnchor, UnixTime};
use x509_cert::certificate::Certificate;

use crate::ca::CaSet;
use crate::config::ClientAnchorConfig;
use crate::files::read_certs;
use crate::model::{
    ActorId, CertRecord, CertStatus, RevocationReason, Serial, SystemRight, UnixSeconds,
};
use std::sync::Arc;

use crate::store::{Store, StoreError};

/// Why a client certificate is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertRejection {
    /// It does not chain to this CA or a configured anchor.
    #[error("client certificate is not issued by a trusted CA")]
    Untrusted,
    /// Its validity has ended.
    #[error("client certificate has expired")]
    Expired,
    /// Its validity has not begun.
    #[error("client certificate is not yet valid")]
    NotYetValid,
    /// It lacks the clientAuth extended key usage.
    #[error("client certificate lacks the clientAuth extended key usage")]
    NotForClientAuth,
    /// It is revoked.
    #[error("client certificate is revoked")]
    Revoked,
    /// It is blocked (user certificates).
    #[error("client certificate is blocked")]
    Blocked,
    /// Issued by this CA but not in the store.
    #[error("client certificate is not known to this server")]
    Unknown,
    /// Unparseable.
    #[error("client certificate is malformed")]
    Malformed,
}

/// A client certificate that chained to a trust anchor.
#[derive(Debug, Clone)]
pub enum ClientCert {
    /// Issued by this CA; the record holds its organisation, profile and rights.
    Issued {
        /// Its serial.
        serial: Serial,
        /// The parsed certificate (re-enrolment compares against it).
        cert: Box<Certificate>,
        /// Its DER, as presented.
        der: Vec<u8>,
        /// notAfter.
        not_after: UnixSeconds,
    },
    /// Issued by a configured foreign CA, bound to one organisation.
    External {
        /// The organisation it acts for.
        cvr: String,
        /// Rights from configuration.
        rights: Vec<SystemRight>,
        /// Subject, for logs.
        subject: String,
        /// notAfter.
        not_after: UnixSeconds,
    },
}

/// An authenticated caller, resolved against the store for this request.
#[derive(Debug, Clone)]
pub enum Principal {
    /// A certificate issued here, valid and not revoked.
    Holder {
        /// The certificate's current record.
        record: CertRecord,
        /// The parsed certificate.
        cert: Box<Certificate>,
    },
    /// A certificate from a configured foreign anchor.
    External {
        /// Organisation.
        cvr: String,
        /// Rights.
        rights: Vec<SystemRight>,
        /// Subject.
        subject: String,
    },
}

impl Principal {
    /// The organisation it acts for.
    pub fn cvr(&self) -> &str {
        match self {
            Principal::Holder { record, .. } => &record.cvr,
            Principal::External { cvr, .. } => cvr,
        }
    }

    /// Whether it carries `right`.
    pub fn has_right(&self, right: SystemRight) -> bool {
        match self {
            Principal::Holder { record, .. } => record.has_right(right),
            Principal::External { rights, .. } => rights.contains(&right),
        }
    }

    /// A short description for logs and the audit log.
    pub fn describe(&self) -> String {
        match self {
            Principal::Holder { record, .. } => ActorId::Cert(record.serial).to_string(),
            Principal::External { subject, .. } => ActorId::External(subject.clone()).to_string(),
        }
    }
}

struct ExternalAnchor {
    subject: Vec<u8>,
    cvr: String,
    rights: Vec<SystemRight>,
}

/// The trust configuration for client certificates, built once.
pub struct ClientTrust {
    anchors: Vec<TrustAnchor<'static>>,
    /// Every CA generation's root subject.
    own_root_subjects: Vec<Vec<u8>>,
    intermediates: Vec<CertificateDer<'static>>,
    /// Every CA generation's issuing certificate.
    issuing_ders: Vec<Vec<u8>>,
    external: Vec<ExternalAnchor>,
    hints: Vec<rustls::DistinguishedName>,
    verified: VerifiedChains,
}

/// Most chains remembered as verified; past it, the expired are dropped, and
/// if that is not enough, all of them.
const VERIFIED_CHAINS_MAX: usize = 4096;

/// Longest a chain's verdict is reused before its signatures are checked again.
const VERIFIED_CHAIN_TTL: u64 = 600;

/// Chains that verified lately, by the SHA-256 of their end-entity certificate.
///
/// A client connects again and again with one certificate (an IdM system, a
/// device, every resumed session); its chain's signatures are checked once,
/// not on every connection. Only a good verdict is kept, and only while every
/// certificate on the path is within its validity: the anchors are fixed for
/// the process, and revocation and the store's record are looked up on every
/// request all the same ([`principal`]).
struct VerifiedChains(Mutex<HashMap<[u8; 32], VerifiedChain>>);

struct VerifiedChain {
    cert: ClientCert,
    /// Unix seconds after which the chain is verified again.
    good_until: UnixSeconds,
}

impl VerifiedChains {
    fn get(&self, key: &[u8; 32], now: UnixSeconds) -> Option<ClientCert> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(key)
            .filter(|v| now <= v.good_until)
            .map(|v| v.cert.clone())
    }

    fn put(&self, key: [u8; 32], chain: VerifiedChain, now: UnixSeconds) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= VERIFIED_CHAINS_MAX {
            map.retain(|_, v| now <= v.good_until);
            if map.len() >= VERIFIED_CHAINS_MAX {
                map.clear();
            }
        }
        map.insert(key, chain);
    }
}

/// SHA-256 of the end-entity certificate. Not of the whole chain as
/// presented: a holder could then make endless distinct entries by adding
/// certificates webpki ignores. A certificate that chained to an anchor once
/// still does, whatever else is sent with it, as long as its path is valid
/// (`good_until`).
fn chain_key(chain: &[CertificateDer<'static>]) -> Option<[u8; 32]> {
    let ee = chain.first()?;
    let mut key = [0u8; 32];
    key.copy_from_slice(
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, ee.as_ref()).as_ref(),
    );
    Some(key)
}

/// notAfter of a DER certificate; `None` if it does not parse.
fn not_after_of(der: &[u8]) -> Option<UnixSeconds> {
    let cert = Certificate::from_der(der).ok()?;
    Some(unix(
        cert.tbs_certificate.validity.not_after.to_system_time(),
    ))
}

/// Errors building the trust configuration.
#[derive(Debug, thiserror::Error)]
#[error("client trust anchors: {0}")]
pub struct TrustError(String);

fn unix(t: SystemTime) -> UnixSeconds {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl ClientTrust {
    /// This CA's roots and issuing CAs (every generation, so that a
    /// certificate of an older one can still re-enrol), plus foreign
    /// anchors from configuration.
    pub fn new(ca: &CaSet, extra: &[ClientAnchorConfig]) -> Result<ClientTrust, TrustError> {
        let anchor = |der: &[u8]| -> Result<TrustAnchor<'static>, TrustError> {
            let c = CertificateDer::from(der.to_vec());
            webpki::anchor_from_trusted_cert(&c)
                .map(|a| a.to_owned())
                .map_err(|e| TrustError(format!("{e:?}")))
        };
        let mut anchors = Vec::new();
        let mut own_root_subjects = Vec::new();
        let mut hinted: Vec<Vec<u8>> = Vec::new();
        for der in ca.roots() {
            let root = anchor(der)?;
            own_root_subjects.push(root.subject.as_ref().to_vec());
            hinted.push(root.subject.as_ref().to_vec());
            anchors.push(root);
        }
        for der in ca.below_roots() {
            hinted.push(anchor(der)?.subject.as_ref().to_vec());
        }
        // Generations may share names; each is hinted once.
        let mut seen = std::collections::HashSet::new();
        hinted.retain(|s| seen.insert(s.clone()));
        let mut hints: Vec<rustls::DistinguishedName> = hinted
            .iter()
            .map(|s| rustls::DistinguishedName::in_sequence(s))
            .collect();
        let mut external = Vec::new();
        for a in extra {
            let mut rights = Vec::new();
            for r in &a.rights {
                rights.push(
                    SystemRight::parse(r)
                        .ok_or_else(|| TrustError(format!("unknown right {r:?}")))?,
                );
            }
            for der in read_certs(&a.certificate).map_err(|e| TrustError(e.to_string()))? {
                let ta = anchor(&der)?;
                hints.push(rustls::DistinguishedName::in_sequence(ta.subject.as_ref()));
                external.push(ExternalAnchor {
                    subject: ta.subject.as_ref().to_vec(),
                    cvr: a.cvr.clone(),
                    rights: rights.clone(),
                });
                anchors.push(ta);
            }
        }
        Ok(ClientTrust {
            anchors,
            own_root_subjects,
            intermediates: ca
                .below_roots()
                .into_iter()
                .map(|d| CertificateDer::from(d.to_vec()))
                .collect(),
            issuing_ders: ca.issuing_certs().into_iter().map(<[u8]>::to_vec).collect(),
            external,
            hints,
            verified: VerifiedChains(Mutex::new(HashMap::new())),
        })
    }

    /// Subjects to hint in the TLS CertificateRequest.
    pub fn hints(&self) -> &[rustls::DistinguishedName] {
        &self.hints
    }

    /// Verifies a client chain (end entity first) against the anchors, now;
    /// a chain that verified lately is not verified again ([`VerifiedChains`]).
    pub fn verify(&self, chain: &[CertificateDer<'static>]) -> Result<ClientCert, CertRejection> {
        let key = chain_key(chain).ok_or(CertRejection::Untrusted)?;
        self.verify_keyed(chain, &key)
    }

    /// [`ClientTrust::verify`], for a caller that already holds the SHA-256
    /// of the end-entity certificate (the connection does, for rate limits).
    pub fn verify_keyed(
        &self,
        chain: &[CertificateDer<'static>],
        ee_sha256: &[u8; 32],
    ) -> Result<ClientCert, CertRejection> {
        let now = unix(SystemTime::now());
        let key = *ee_sha256;
        if let Some(cert) = self.verified.get(&key, now) {
            return Ok(cert);
        }
        let (cert, path_not_after) = self.verify_now(chain)?;
        let good_until = path_not_after.min(now.saturating_add(VERIFIED_CHAIN_TTL));
        if good_until > now {
            self.verified.put(
                key,
                VerifiedChain {
                    cert: cert.clone(),
                    good_until,
                },
                now,
            );
        }
        Ok(cert)
    }

    /// Verifies a chain's signatures, validity and key usage; with the
    /// verdict, the earliest notAfter on the path (end entity and
    /// intermediates).
    fn verify_now(
        &self,
        chain: &[CertificateDer<'static>],
    ) -> Result<(ClientCert, UnixSeconds), CertRejection> {
        let Some((ee_der, rest)) = chain.split_first() else {
            return Err(CertRejection::Untrusted);
        };
        let ee = webpki::EndEntityCert::try_from(ee_der).map_err(|_| CertRejection::Malformed)?;
        let mut intermediates: Vec<CertificateDer<'static>> = rest.to_vec();
        intermediates.extend(self.intermediates.iter().cloned());
        let algs = rustls::crypto::aws_lc_rs::default_provider()
            .signature_verification_algorithms
            .all;
        let path = ee
            .verify_for_usage(
                algs,
                &self.anchors,
                &intermediates,
                UnixTime::now(),
                webpki::KeyUsage::client_auth(),
                None,
                None,
            )
            .map_err(|e| match e {
                webpki::Error::CertExpired { .. } => CertRejection::Expired,
                webpki::Error::CertNotValidYet { .. } => CertRejection::NotYetValid,
                webpki::Error::RequiredEkuNotFoundContext(_) => CertRejection::NotForClientAuth,
                _ => CertRejection::Untrusted,
            })?;
        let anchor_subject = path.anchor().subject.as_ref();
        let cert = Certificate::from_der(ee_der).map_err(|_| CertRejection::Malformed)?;
        let not_after = unix(cert.tbs_certificate.validity.not_after.to_system_time());
        // An intermediate x509-cert cannot read (webpki is more lenient)
        // leaves nothing to remember: 0 makes the verdict good for now only.
        let path_not_after = path
            .intermediate_certificates()
            .map(|i| not_after_of(i.der().as_ref()).unwrap_or(0))
            .fold(not_after, u64::min);
        if self
            .own_root_subjects
            .iter()
            .any(|s| s.as_slice() == anchor_subject)
        {
            let via_issuing = path.intermediate_certificates().next().is_some_and(|i| {
                self.issuing_ders
                    .iter()
                    .any(|d| d.as_slice() == i.der().as_ref())
            });
            if !via_issuing {
                return Err(CertRejection::Untrusted);
            }
            let serial = Serial::from_der_bytes(cert.tbs_certificate.serial_number.as_bytes())
                .ok_or(CertRejection::Unknown)?;
            return Ok((
                ClientCert::Issued {
                    serial,
                    cert: Box::new(cert),
                    der: ee_der.to_vec(),
                    not_after,
                },
                path_not_after,
            ));
        }
        let ext = self
            .external
            .iter()
            .find(|a| a.subject.as_slice() == anchor_subject)
            .ok_or(CertRejection::Untrusted)?;
        Ok((
            ClientCert::External {
                cvr: ext.cvr.clone(),
                rights: ext.rights.clone(),
                subject: crate::policy::display_name(&cert.tbs_certificate.subject),
                not_after,
            },
            path_not_after,
        ))
    }
}

/// Resolves a verified client certificate to a principal for this request:
/// still valid now, in the store, and not revoked.
pub async fn principal(
    cert: &ClientCert,
    store: &Arc<dyn Store>,
    now: UnixSeconds,
) -> Result<Result<Principal, CertRejection>, StoreError> {
    let stored = match cert {
        ClientCert::Issued { serial, .. } => Some(store.fetch_cert(serial).await?),
        ClientCert::External { .. } => None,
    };
    Ok(judge(cert, stored, now))
}

/// The principal a client certificate stands for, given what the store
/// holds under its serial (`stored`, for certificates estd issued).
fn judge(
    cert: &ClientCert,
    stored: Option<Option<CertRecord>>,
    now: UnixSeconds,
) -> Result<Principal, CertRejection> {
    match cert {
        ClientCert::Issued {
            serial,
            cert,
            der,
            not_after,
        } => {
            if now > *not_after {
                return Err(CertRejection::Expired);
            }
            let Some(record) = stored.flatten().filter(|r| r.serial == *serial) else {
                return Err(CertRejection::Unknown);
            };
            // Same serial is not enough: it must be the very certificate we issued.
            if record.der != *der {
                return Err(CertRejection::Unknown);
            }
            match record.status {
                CertStatus::Issued if record.is_expired(now) => return Err(CertRejection::Expired),
                CertStatus::Issued => {}
                CertStatus::Revoked {
                    reason: RevocationReason::Blocked,
                    ..
                } => return Err(CertRejection::Blocked),
                CertStatus::Revoked { .. } => return Err(CertRejection::Revoked),
            }
            Ok(Principal::Holder {
                record,
                cert: cert.clone(),
            })
        }
        ClientCert::External {
            cvr,
            rights,
            subject,
            not_after,
        } => {
            if now > *not_after {
                return Err(CertRejection::Expired);
            }
            Ok(Principal::External {
                cvr: cvr.clone(),
                rights: rights.clone(),
                subject: subject.clone(),
            })
        }
    }
}

/// HTTP Basic credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct BasicCredentials {
    /// User name (for one-time codes: the reference number).
    pub user: String,
    /// Password (for one-time codes: the code). Never logged.
    pub password: String,
}

impl std::fmt::Debug for BasicCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicCredentials")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Parses an `Authorization` header value. Returns `None` for anything that
/// is not Basic, and for empty Basic credentials (`Basic Og==`), which some
/// clients send beside a client certificate and which mean "no credentials".
pub fn parse_basic(header: &[u8]) -> Option<BasicCredentials> {
    let text = std::str::from_utf8(header).ok()?.trim();
    let (scheme, rest) = text.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    if user.is_empty() && password.is_empty() {
        return None;
    }
    Some(BasicCredentials {
        user: user.to_owned(),
        password: password.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_parsing() {
        let c = parse_basic(b"Basic dXNlcjpwYXNz").expect("creds");
        assert_eq!(c.user, "user");
        assert_eq!(c.password, "pass");
        assert_eq!(parse_basic(b"Basic Og=="), None);
        assert_eq!(parse_basic(b"Bearer abc"), None);
        assert_eq!(parse_basic(b"Basic !!!"), None);
        assert_eq!(parse_basic(b"Basic"), None);
        assert_eq!(parse_basic(&[0xff, 0xfe]), None);
        assert!(!format!("{c:?}").contains("pass\""));
    }

    fn external(n: u64) -> VerifiedChain {
        VerifiedChain {
            cert: ClientCert::External {
                cvr: format!("{n}"),
                rights: Vec::new(),
                subject: String::new(),
                not_after: n,
            },
            good_until: n,
        }
    }

    #[test]
    fn a_verified_chain_is_reused_until_its_good_until_and_no_longer() {
        let chains = VerifiedChains(Mutex::new(HashMap::new()));
        chains.put([1; 32], external(100), 50);
        assert!(
            matches!(chains.get(&[1; 32], 100), Some(ClientCert::External { cvr, .. }) if cvr == "100")
        );
        assert!(chains.get(&[1; 32], 101).is_none());
        assert!(chains.get(&[2; 32], 50).is_none());
    }

    #[test]
    fn verified_chains_stay_bounded() {
        let chains = VerifiedChains(Mutex::new(HashMap::new()));
        for i in 0..(VERIFIED_CHAINS_MAX as u64 * 2) {
            let mut key = [0u8; 32];
            key[..8].copy_from_slice(&i.to_be_bytes());
            chains.put(key, external(1_000 + i), 10);
        }
        let len = chains.0.lock().map(|m| m.len()).unwrap_or(usize::MAX);
        assert!(len <= VERIFIED_CHAINS_MAX, "{len} remembered");
        assert!(len > 0);
    }

    #[test]
    fn the_chain_key_is_the_end_entity_whatever_comes_with_it() {
        let ee = CertificateDer::from(vec![1u8, 2, 3]);
        let junk = CertificateDer::from(vec![4u8]);
        let other = CertificateDer::from(vec![1u8, 2, 4]);
        let alone = chain_key(std::slice::from_ref(&ee));
        assert!(alone.is_some());
        assert_eq!(alone, chain_key(&[ee.clone(), junk.clone()]));
        assert_ne!(alone, chain_key(&[other, junk.clone()]));
        assert_ne!(alone, chain_key(&[junk, ee]));
        assert_eq!(chain_key(&[]), None);
    }
}
