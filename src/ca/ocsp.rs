//! OCSP (RFC 6960) wire work: parsing requests, and building responses signed
//! by estd's delegated OCSP-signing certificate. No status decisions here: the
//! caller says good, revoked or unknown.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use aws_lc_rs::digest;
use const_oid::ObjectIdentifier;
use der::asn1::{BitString, GeneralizedTime, OctetString};
use der::{Decode, Encode};
use x509_cert::certificate::Certificate;
use x509_cert::ext::pkix::CrlReason;
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspGeneralizedTime, OcspRequest, OcspResponse,
    ResponderId, ResponseData, RevokedInfo, SingleResponse, Version,
};

use super::{extension, CaError, Signer};
use crate::model::{Serial, UnixSeconds};

const SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");

/// Most CertIDs answered in one request.
pub const MAX_REQUESTS: usize = 16;

/// The status the caller decided for one certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// Issued here and not revoked.
    Good,
    /// Revoked, with time and reason.
    Revoked {
        /// When.
        at: UnixSeconds,
        /// RFC 5280 reason, if not unspecified.
        reason: Option<CrlReason>,
    },
    /// Not issued by this CA.
    Unknown,
}

/// One CertID of a request.
#[derive(Debug, Clone)]
pub struct Item {
    /// As the client sent it (echoed in the response).
    pub cert_id: CertId,
    /// Our serial, if the CertID names our issuing CA and a serial of our shape.
    pub serial: Option<Serial>,
    /// Hash algorithm index (0 SHA-1, 1 SHA-256), for caching.
    pub hash_index: u8,
}

impl Item {
    /// Whether its CertID names the issuing CA this responder answers for
    /// (whatever its serial).
    pub fn names_issuer(&self) -> bool {
        self.hash_index != u8::MAX
    }
}

/// A parsed request.
#[derive(Debug, Clone)]
pub struct Parsed {
    /// The CertIDs.
    pub items: Vec<Item>,
    /// The nonce extension's value, echoed when present.
    pub nonce: Option<x509_ocsp::ext::Nonce>,
}

struct IssuerHashes {
    alg: ObjectIdentifier,
    name: Vec<u8>,
    key: Vec<u8>,
}

/// The delegated OCSP responder's key and certificate, with the issuer hashes
/// that CertIDs are matched against, all prepared once.
pub struct OcspResponder {
    signer: Arc<dyn Signer>,
    cert: Certificate,
    responder_id: ResponderId,
    issuers: Vec<IssuerHashes>,
    /// notAfter of the responder certificate.
    pub not_after: UnixSeconds,
}

fn hash(alg: &'static digest::Algorithm, data: &[u8]) -> Vec<u8> {
    digest::digest(alg, data).as_ref().to_vec()
}

fn gtime(secs: UnixSeconds) -> Result<OcspGeneralizedTime, CaError> {
    Ok(OcspGeneralizedTime(GeneralizedTime::from_unix_duration(
        Duration::from_secs(secs),
    )?))
}

impl OcspResponder {
    /// Prepares the responder from its key and certificate and the issuing CA.
    pub fn new(
        signer: Arc<dyn Signer>,
        cert_der: &[u8],
        issuing: &Certificate,
    ) -> Result<OcspResponder, CaError> {
        let cert = Certificate::from_der(cert_der)?;
        let responder_key = &cert
            .tbs_certificate
            .subject_public_key_info
            .subject_public_key;
        if *responder_key != signer.public_key().subject_public_key {
            return Err(CaError::KeyMismatch { which: "OCSP" });
        }
        let responder_id = ResponderId::ByKey(OctetString::new(hash(
            &digest::SHA1_FOR_LEGACY_USE_ONLY,
            responder_key.raw_bytes(),
        ))?);
        let name_der = issuing.tbs_certificate.subject.to_der()?;
        let key = issuing
            .tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes();
        let issuers = vec![
            IssuerHashes {
                alg: SHA1,
                name: hash(&digest::SHA1_FOR_LEGACY_USE_ONLY, &name_der),
                key: hash(&digest::SHA1_FOR_LEGACY_USE_ONLY, key),
            },
            IssuerHashes {
                alg: SHA256,
                name: hash(&digest::SHA256, &name_der),
                key: hash(&digest::SHA256, key),
            },
        ];
        let not_after = cert
            .tbs_certificate
            .validity
            .not_after
            .to_system_time()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Ok(OcspResponder {
            signer,
            cert,
            responder_id,
            issuers,
            not_after,
        })
    }

    /// Parses a DER OCSPRequest; `None` means malformedRequest.
    pub fn parse(&self, der: &[u8]) -> Option<Parsed> {
        let req = OcspRequest::from_der(der).ok()?;
        let list = &req.tbs_request.request_list;
        if list.is_empty() || list.len() > MAX_REQUESTS {
            return None;
        }
        let items = list
            .iter()
            .map(|r| {
                let id = &r.req_cert;
                let matched = self.issuers.iter().position(|h| {
                    h.alg == id.hash_algorithm.oid
                        && h.name == id.issuer_name_hash.as_bytes()
                        && h.key == id.issuer_key_hash.as_bytes()
                });
                Item {
                    cert_id: id.clone(),
                    serial: matched
                        .and_then(|_| Serial::from_der_bytes(id.serial_number.as_bytes())),
                    hash_index: matched.map(|i| i as u8).unwrap_or(u8::MAX),
                }
            })
            .collect();
        Some(Parsed {
            items,
            nonce: req.nonce(),
        })
    }

    /// A signed successful response for `answers`, echoing `nonce`.
    pub fn sign(
        &self,
        answers: &[(CertId, Lookup)],
        nonce: Option<&x509_ocsp::ext::Nonce>,
        now: UnixSeconds,
        next_update: UnixSeconds,
    ) -> Result<Vec<u8>, CaError> {
        let mut responses = Vec::with_capacity(answers.len());
        for (cert_id, lookup) in answers {
            let cert_status = match lookup {
                Lookup::Good => CertStatus::good(),
                Lookup::Unknown => CertStatus::unknown(),
                Lookup::Revoked { at, reason } => CertStatus::revoked(RevokedInfo {
                    revocation_time: gtime(*at)?,
                    revocation_reason: *reason,
                }),
            };
            responses.push(SingleResponse {
                cert_id: cert_id.clone(),
                cert_status,
                this_update: gtime(now)?,
                next_update: Some(gtime(next_update)?),
                single_extensions: None,
            });
        }
        let response_extensions = match nonce {
            Some(n) => Some(vec![extension(n, false)?]),
            None => None,
        };
        let data = ResponseData {
            version: Version::V1,
            responder_id: self.responder_id.clone(),
            produced_at: gtime(now)?,
            responses,
            response_extensions,
        };
        let signature = self.signer.sign(&data.to_der()?)?;
        let basic = BasicOcspResponse {
            tbs_response_data: data,
            signature_algorithm: self.signer.algorithm().clone(),
            signature: BitString::from_bytes(&signature)?,
            certs: Some(vec![self.cert.clone()]),
        };
        Ok(OcspResponse::successful(basic)?.to_der()?)
    }
}

/// The `malformedRequest` response.
pub fn malformed() -> Vec<u8> {
    OcspResponse::malformed_request()
        .to_der()
        .unwrap_or_default()
}

/// The `internalError` response.
pub fn internal_error() -> Vec<u8> {
    OcspResponse::internal_error().to_der().unwrap_or_default()
}
