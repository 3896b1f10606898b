//! `estd store verify`: whether a store is whole. Every certificate record
//! must parse, say what its DER says, and carry a valid signature of one of
//! the CA generations; the indexes an engine keeps beside the records must
//! agree with them (the serial lookup, the expiry index, the revoked set);
//! each generation's current CRL must verify and list exactly the revoked
//! certificates it should; and the counts must agree.
//!
//! It reads through the store traits only, so it checks every engine alike.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use der::{Decode, Encode};
use x509_cert::crl::CertificateList;
use x509_cert::Certificate;

use crate::ca::ceremony::signature_verifies;
use crate::ca::rollover::{generation_dir, later_generations};
use crate::ca::{layout, CaError};
use crate::model::{CertStatus, Serial, UnixSeconds};
use crate::store::{Store, StoreError};

/// One thing wrong with a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// A certificate record's DER does not parse.
    Unparseable {
        /// The record's serial.
        serial: Serial,
        /// The parser's complaint.
        error: String,
    },
    /// The record and its DER disagree.
    RecordDisagrees {
        /// The record's serial.
        serial: Serial,
        /// Which field.
        field: &'static str,
    },
    /// No CA generation's key made the signature.
    SignatureInvalid {
        /// The serial.
        serial: Serial,
    },
    /// The serial lookup does not find the record the scan found.
    SerialIndex {
        /// The serial.
        serial: Serial,
    },
    /// The expiry index and the records disagree.
    ExpiryIndex {
        /// The serial.
        serial: Serial,
        /// In the index but not among the records, or the other way.
        missing_from: &'static str,
    },
    /// The revoked set and the records' statuses disagree.
    RevokedSet {
        /// The serial.
        serial: Serial,
        /// What is wrong.
        problem: &'static str,
    },
    /// A generation's CRL is missing, does not parse or does not verify.
    Crl {
        /// The generation.
        generation: u32,
        /// What is wrong.
        problem: String,
    },
    /// A CRL and the revoked set disagree.
    CrlEntry {
        /// The generation.
        generation: u32,
        /// The serial.
        serial: Serial,
        /// On the CRL but not revoked, or revoked but not on the CRL.
        problem: &'static str,
    },
    /// The counts disagree.
    Count {
        /// What was counted.
        what: &'static str,
        /// By scanning.
        scanned: u64,
        /// As the store reports it.
        reported: u64,
    },
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::Unparseable { serial, error } => {
                write!(f, "certificate {serial}: its DER does not parse: {error}")
            }
            Finding::RecordDisagrees { serial, field } => {
                write!(
                    f,
                    "certificate {serial}: the record's {field} is not the certificate's"
                )
            }
            Finding::SignatureInvalid { serial } => write!(
                f,
                "certificate {serial}: its signature verifies under no CA generation's key"
            ),
            Finding::SerialIndex { serial } => write!(
                f,
                "certificate {serial}: the serial lookup does not return the stored record"
            ),
            Finding::ExpiryIndex {
                serial,
                missing_from,
            } => write!(f, "certificate {serial}: missing from {missing_from}"),
            Finding::RevokedSet { serial, problem } => {
                write!(f, "certificate {serial}: {problem}")
            }
            Finding::Crl {
                generation,
                problem,
            } => write!(f, "CRL of CA generation {generation}: {problem}"),
            Finding::CrlEntry {
                generation,
                serial,
                problem,
            } => write!(f, "CRL of CA generation {generation}: {serial} {problem}"),
            Finding::Count {
                what,
                scanned,
                reported,
            } => write!(
                f,
                "{what}: {scanned} found by scanning, {reported} reported by the store"
            ),
        }
    }
}

/// What a check found.
#[derive(Debug, Default)]
pub struct Report {
    /// Certificates checked.
    pub certificates: u64,
    /// Of those, revoked.
    pub revoked: u64,
    /// CRLs checked (one per generation).
    pub crls: u64,
    /// Records per kind, as the store exports them.
    pub records: BTreeMap<&'static str, u64>,
    /// Everything wrong; empty when the store is whole.
    pub findings: Vec<Finding>,
}

/// Why the check could not run to the end.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The CA certificates could not be read.
    #[error(transparent)]
    Ca(#[from] CaError),
}

/// One CA generation's certificate, as the checks use it.
struct Generation {
    number: u32,
    cert: Certificate,
}

/// The CA certificate of every generation in `certs_dir` (no keys needed).
fn generations(certs_dir: &Path) -> Result<Vec<Generation>, CheckError> {
    let mut numbers = vec![1];
    numbers.extend(later_generations(certs_dir)?);
    let mut out = Vec::new();
    for number in numbers {
        let path = generation_dir(certs_dir, number).join(layout::ISSUING_CERT);
        if !path.exists() {
            continue;
        }
        let der = crate::files::read_certs(&path)
            .map_err(CaError::from)?
            .into_iter()
            .next()
            .map(|c| c.to_vec())
            .unwrap_or_default();
        let cert = Certificate::from_der(&der).map_err(CaError::from)?;
        out.push(Generation { number, cert });
    }
    if out.is_empty() {
        return Err(CaError::Key(format!(
            "no CA certificate ({}) in {}",
            layout::ISSUING_CERT,
            certs_dir.display()
        ))
        .into());
    }
    Ok(out)
}

/// The generation whose key signed `tbs` with `signature`, if any.
fn signer_of(
    generations: &[Generation],
    alg: &const_oid::ObjectIdentifier,
    tbs: &[u8],
    signature: &der::asn1::BitString,
) -> Option<u32> {
    generations.iter().find_map(|g| {
        signature_verifies(
            alg,
            &g.cert.tbs_certificate.subject_public_key_info,
            tbs,
            signature,
        )
        .unwrap_or(false)
        .then_some(g.number)
    })
}

/// Checks `store` against the CA certificates in `certs_dir`. `now` decides
/// which revoked certificates a CRL must still list (the unexpired ones).
pub fn verify(store: &dyn Store, certs_dir: &Path, now: UnixSeconds) -> Result<Report, CheckError> {
    let generations = generations(certs_dir)?;
    let mut report = Report::default();
    let mut findings = Vec::new();

    // The records, one by one.
    let mut by_serial: BTreeMap<Serial, (UnixSeconds, Option<(UnixSeconds, u32)>)> =
        BTreeMap::new();
    for rec in store.certs() {
        let rec = rec?;
        report.certificates += 1;
        let serial = rec.serial;
        let cert = match Certificate::from_der(&rec.der) {
            Ok(c) => c,
            Err(e) => {
                findings.push(Finding::Unparseable {
                    serial,
                    error: e.to_string(),
                });
                continue;
            }
        };
        let tbs = &cert.tbs_certificate;
        if tbs.serial_number.as_bytes() != serial.0.as_slice() {
            findings.push(Finding::RecordDisagrees {
                serial,
                field: "serial",
            });
        }
        if tbs.validity.not_after.to_unix_duration().as_secs() != rec.not_after {
            findings.push(Finding::RecordDisagrees {
                serial,
                field: "notAfter",
            });
        }
        let generation = match tbs.to_der() {
            Ok(der) => signer_of(
                &generations,
                &cert.signature_algorithm.oid,
                &der,
                &cert.signature,
            ),
            Err(_) => None,
        };
        if generation.is_none() {
            findings.push(Finding::SignatureInvalid { serial });
        }
        match store.cert(&serial) {
            Ok(Some(found)) if found == rec => {}
            _ => findings.push(Finding::SerialIndex { serial }),
        }
        let revoked = match rec.status {
            CertStatus::Revoked { at, .. } => {
                report.revoked += 1;
                Some((at, generation.unwrap_or(0)))
            }
            CertStatus::Issued => None,
        };
        by_serial.insert(serial, (rec.not_after, revoked));
    }

    // The expiry index must list every record, and nothing else.
    let mut in_expiry = BTreeSet::new();
    for rec in store.certs_expiring(0, u64::MAX) {
        let rec = rec?;
        if !by_serial.contains_key(&rec.serial) {
            findings.push(Finding::ExpiryIndex {
                serial: rec.serial,
                missing_from: "the records (the expiry index names it)",
            });
        }
        in_expiry.insert(rec.serial);
    }
    for serial in by_serial.keys() {
        if !in_expiry.contains(serial) {
            findings.push(Finding::ExpiryIndex {
                serial: *serial,
                missing_from: "the expiry index",
            });
        }
    }

    // The revoked set against the statuses.
    let mut revoked_entries = BTreeMap::new();
    for e in store.revoked_entries() {
        let e = e?;
        match by_serial.get(&e.serial) {
            Some((_, Some(_))) => {}
            Some((_, None)) => findings.push(Finding::RevokedSet {
                serial: e.serial,
                problem: "in the revoked set, but its record says issued",
            }),
            None => findings.push(Finding::RevokedSet {
                serial: e.serial,
                problem: "in the revoked set, but there is no such certificate",
            }),
        }
        revoked_entries.insert(e.serial, e.at);
    }
    for (serial, (_, revoked)) in &by_serial {
        if revoked.is_some() && !revoked_entries.contains_key(serial) {
            findings.push(Finding::RevokedSet {
                serial: *serial,
                problem: "revoked, but missing from the revoked set",
            });
        }
    }

    // Each live generation's CRL: it verifies, and lists exactly the
    // revoked, unexpired certificates of that generation revoked before it.
    for g in &generations {
        let ca_expired = g
            .cert
            .tbs_certificate
            .validity
            .not_after
            .to_unix_duration()
            .as_secs()
            < now;
        let stored = match store.crl(g.number)? {
            Some(c) => c,
            None if ca_expired => continue,
            None => {
                findings.push(Finding::Crl {
                    generation: g.number,
                    problem: "none stored".into(),
                });
                continue;
            }
        };
        report.crls += 1;
        let crl = match CertificateList::from_der(&stored.der) {
            Ok(c) => c,
            Err(e) => {
                findings.push(Finding::Crl {
                    generation: g.number,
                    problem: format!("does not parse: {e}"),
                });
                continue;
            }
        };
        let verifies = crl.tbs_cert_list.to_der().ok().and_then(|tbs| {
            signature_verifies(
                &crl.signature_algorithm.oid,
                &g.cert.tbs_certificate.subject_public_key_info,
                &tbs,
                &crl.signature,
            )
        });
        if verifies != Some(true) {
            findings.push(Finding::Crl {
                generation: g.number,
                problem: "its signature does not verify under the generation's key".into(),
            });
        }
        let mut listed = BTreeSet::new();
        for entry in crl.tbs_cert_list.revoked_certificates.iter().flatten() {
            match Serial::from_der_bytes(entry.serial_number.as_bytes()) {
                Some(serial) if by_serial.contains_key(&serial) => {
                    listed.insert(serial);
                }
                _ => findings.push(Finding::Crl {
                    generation: g.number,
                    problem: format!(
                        "lists serial {:02X?}, which is no certificate in the store",
                        entry.serial_number.as_bytes()
                    ),
                }),
            }
        }
        for (serial, (not_after, revoked)) in &by_serial {
            let on_crl = listed.contains(serial);
            match revoked {
                Some((at, generation)) if *generation == g.number => {
                    let due = *at < stored.this_update && *not_after >= stored.this_update;
                    if due && !on_crl {
                        findings.push(Finding::CrlEntry {
                            generation: g.number,
                            serial: *serial,
                            problem: "is revoked, unexpired, but not on the current CRL",
                        });
                    }
                }
                _ if on_crl => findings.push(Finding::CrlEntry {
                    generation: g.number,
                    serial: *serial,
                    problem: "is on the CRL, but is not a revoked certificate of this generation",
                }),
                _ => {}
            }
        }
    }

    // The counts.
    let reported = store.cert_count() as u64;
    if reported != report.certificates {
        findings.push(Finding::Count {
            what: "certificates",
            scanned: report.certificates,
            reported,
        });
    }
    for r in store.export() {
        *report
            .records
            .entry(crate::store::copy::kind(&r?))
            .or_default() += 1;
    }
    let exported = report.records.get("certs").copied().unwrap_or(0);
    if exported != report.certificates {
        findings.push(Finding::Count {
            what: "certificates exported",
            scanned: report.certificates,
            reported: exported,
        });
    }
    report.findings = findings;
    Ok(report)
}
