//! The sled store: certificates, organisations, profiles and the audit log.
//!
//! Trees:
//! - `certs`: serial (16 bytes) → [`CertRecord`]
//! - `orgs`: CVR → [`Organisation`]
//! - `profiles`: UUID → [`Profile`]; `labels`: EST label → UUID
//! - `audit`: monotonic id (u64, big-endian) → [`AuditEvent`]
//! - `orders`: reference number → [`model::Order`]; `held`: SHA-256 of a held CSR → reference number
//! - `tokens`: SHA-256 of an admin token → [`model::TokenRecord`]
//! - `outbox`: monotonic id → [`model::Notification`]
//! - `revoked`: serial → revocation time and reason (the CRL's source, kept small)
//! - `expiry`: notAfter (u64, big-endian) ‖ serial → empty (the expiry scan's index)
//! - `meta`: schema version, the current CRL and its number, the certificate count
//!
//! Writes land in sled's memory first; [`Store::commit`] makes them durable.
//! Concurrent commits share one flush (group commit), so a burst of enrolments
//! pays for one fsync, not one each. Issuance goes through [`Store::issue`],
//! which the committer thread applies in batches (see `commit.rs`).
//! sled's own flush ends in `sync_file_range`, which does not persist the
//! metadata of its growing log file (nor flush the drive's cache), so each
//! commit also `fdatasync`s the log.

mod admin_queries;
mod commit;
pub mod model;
mod orders;
pub mod revocation;
mod tokens;

pub use commit::{Issuance, IssueOutcome, OrderCheck, OrderWrite, PendingIssuance};

use std::fs::File;
use std::path::Path;
use std::sync::{mpsc, Arc};

use model::{AuditEvent, CertRecord, Organisation, Profile, Serial};
use serde::{de::DeserializeOwned, Serialize};
use tokio::sync::oneshot;

const SCHEMA_VERSION: &[u8] = b"2";

/// Key in `meta` marking that the `expiry` index is complete.
const EXPIRY_INDEX_KEY: &[u8] = b"expiry_index";

/// Key in the `expiry` index: notAfter (big-endian, so keys sort by time), then serial.
fn expiry_key(not_after: u64, serial: &Serial) -> [u8; 24] {
    let mut k = [0u8; 24];
    k[..8].copy_from_slice(&not_after.to_be_bytes());
    k[8..].copy_from_slice(&serial.0);
    k
}

/// Errors from the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled failed.
    #[error("storage error: {0}")]
    Sled(#[from] sled::Error),
    /// A record could not be encoded or decoded.
    #[error("record codec error: {0}")]
    Codec(#[from] postcard::Error),
    /// The serial is already in the store.
    #[error("serial already taken")]
    SerialTaken,
    /// A uniqueness rule was broken (e.g. an EST label in use).
    #[error("{0}")]
    Conflict(String),
    /// The store on disk has another schema.
    #[error("store schema {found:?} is not the supported one; a development store can be deleted and recreated")]
    Schema {
        /// The version found.
        found: String,
    },
    /// The group-commit thread is gone.
    #[error("store committer stopped")]
    CommitterGone,
    /// A transaction was aborted.
    #[error("transaction aborted")]
    Aborted,
}

/// A handle to the store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    db: sled::Db,
    certs: sled::Tree,
    orgs: sled::Tree,
    profiles: sled::Tree,
    labels: sled::Tree,
    audit: sled::Tree,
    orders: sled::Tree,
    held: sled::Tree,
    tokens: sled::Tree,
    outbox: sled::Tree,
    revoked: sled::Tree,
    expiry: sled::Tree,
    meta: sled::Tree,
    /// sled's log file, for `fdatasync` after a flush.
    log: File,
    /// `None` only while dropping.
    commits: Option<mpsc::Sender<commit::Job>>,
    /// See [`PendingIssuance`].
    pending: Arc<std::sync::atomic::AtomicUsize>,
    /// Stored certificates; mirrors `meta/cert_count`.
    cert_count: Arc<std::sync::atomic::AtomicU64>,
    committer: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel ends the committer, which drops its handle on the
        // database; joining it means the store is really closed (lock released)
        // when the last Store handle goes.
        self.commits.take();
        if let Some(h) = self.committer.take() {
            let _ = h.join();
        }
    }
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    Ok(postcard::to_stdvec(v)?)
}

fn decode<T: DeserializeOwned>(b: &[u8]) -> Result<T, StoreError> {
    Ok(postcard::from_bytes(b)?)
}

/// Decodes a profile, also one stored before `require_pop_linking` existed.
/// postcard writes a struct as its fields in order, without names or a count,
/// so an older record is a newer one cut short; serde's `default` does not
/// help, since postcard asks for every field. The missing tail is supplied as
/// the encoding of its default value. (A field added to [`Profile`] later
/// needs its default appended here too.)
fn decode_profile(b: &[u8]) -> Result<Profile, StoreError> {
    match postcard::from_bytes::<Profile>(b) {
        Err(postcard::Error::DeserializeUnexpectedEnd) => {
            let mut padded = b.to_vec();
            // require_pop_linking: off for profiles made before it existed.
            padded.extend(encode(&false)?);
            decode(&padded)
        }
        other => Ok(other?),
    }
}

impl Store {
    /// Opens (or creates) the store in `dir` with a page cache of
    /// `cache_bytes`.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Store, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            // Durability comes from explicit group commits, not a timer.
            .flush_every_ms(None)
            .open()?;
        let meta = db.open_tree("meta")?;
        match meta.get("schema")? {
            None => {
                meta.insert("schema", SCHEMA_VERSION)?;
            }
            Some(v) if v.as_ref() == SCHEMA_VERSION => {}
            Some(v) => {
                return Err(StoreError::Schema {
                    found: String::from_utf8_lossy(&v).into_owned(),
                })
            }
        }
        // sled keeps its log in the file `db`; any descriptor of it can sync it.
        let io = |e| StoreError::Sled(sled::Error::Io(e));
        let log = File::open(dir.join("db")).map_err(io)?;
        let committer_log = log.try_clone().map_err(io)?;
        let certs = db.open_tree("certs")?;
        let orders = db.open_tree("orders")?;
        let audit = db.open_tree("audit")?;
        let expiry = db.open_tree("expiry")?;
        if meta.get(EXPIRY_INDEX_KEY)?.is_none() {
            // A store from before the index: build it once.
            for item in certs.iter() {
                let (_, v) = item?;
                let rec: CertRecord = decode(&v)?;
                expiry.insert(&expiry_key(rec.not_after, &rec.serial)[..], &[])?;
            }
            meta.insert(EXPIRY_INDEX_KEY, &[1])?;
        }
        let count = match meta.get(commit::CERT_COUNT_KEY)? {
            Some(v) => <[u8; 8]>::try_from(v.as_ref()).map(u64::from_be_bytes).ok(),
            None => None,
        };
        let count = match count {
            Some(n) => n,
            None => {
                // A store from before the kept count: count once.
                let n = certs.len() as u64;
                meta.insert(commit::CERT_COUNT_KEY, &n.to_be_bytes())?;
                n
            }
        };
        let cert_count = Arc::new(std::sync::atomic::AtomicU64::new(count));
        let (tx, rx) = mpsc::channel::<commit::Job>();
        let pending = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let trees = commit::Trees {
            pending: pending.clone(),
            cert_count: cert_count.clone(),
            db: db.clone(),
            certs: certs.clone(),
            orders: orders.clone(),
            audit: audit.clone(),
            expiry: expiry.clone(),
            meta: meta.clone(),
            log: committer_log,
        };
        let committer = std::thread::Builder::new()
            .name("estd-commit".into())
            .spawn(move || commit::run(trees, rx))
            .map_err(|e| StoreError::Sled(sled::Error::Io(e)))?;
        let inner = Inner {
            certs,
            orgs: db.open_tree("orgs")?,
            profiles: db.open_tree("profiles")?,
            labels: db.open_tree("labels")?,
            audit,
            orders,
            held: db.open_tree("held")?,
            tokens: db.open_tree("tokens")?,
            outbox: db.open_tree("outbox")?,
            revoked: db.open_tree("revoked")?,
            expiry,
            meta,
            log,
            db,
            commits: Some(tx),
            pending,
            cert_count,
            committer: Some(committer),
        };
        Ok(Store {
            inner: Arc::new(inner),
        })
    }

    fn send(&self, job: commit::Job) -> Result<(), StoreError> {
        self.inner
            .commits
            .as_ref()
            .ok_or(StoreError::CommitterGone)?
            .send(job)
            .map_err(|_| StoreError::CommitterGone)
    }

    /// Makes every write made before this call durable. Concurrent callers share a flush.
    pub async fn commit(&self) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.send(commit::Job::Flush(tx))?;
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(StoreError::Sled(sled::Error::ReportableBug(e))),
            Err(_) => Err(StoreError::CommitterGone),
        }
    }

    /// Announces an issuance that is about to be signed, so that the
    /// committer can wait for it to share a flush (see [`PendingIssuance`]).
    pub fn expect_issuance(&self) -> PendingIssuance {
        PendingIssuance::new(&self.inner.pending)
    }

    /// Stores a new certificate with its order and audit record, atomically,
    /// and returns once that is durable. Concurrent issuances share one
    /// transaction and one flush. `ticket` is given up once the job is handed over.
    pub async fn issue(
        &self,
        issuance: Issuance,
        ticket: PendingIssuance,
    ) -> Result<IssueOutcome, StoreError> {
        let (tx, rx) = oneshot::channel();
        let job = commit::PreparedIssuance::new(issuance, tx)?;
        self.send(commit::Job::Issue(Box::new(job)))?;
        drop(ticket);
        match rx.await {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(e)) => Err(StoreError::Sled(sled::Error::ReportableBug(e))),
            Err(_) => Err(StoreError::CommitterGone),
        }
    }

    /// Flushes synchronously (for start-up and shutdown).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.inner.db.flush()?;
        self.inner
            .log
            .sync_data()
            .map_err(|e| StoreError::Sled(sled::Error::Io(e)))
    }

    /// Inserts a new certificate; fails with [`StoreError::SerialTaken`] if the serial exists.
    pub fn insert_new_cert(&self, rec: &CertRecord) -> Result<(), StoreError> {
        let value = encode(rec)?;
        match self
            .inner
            .certs
            .compare_and_swap(rec.serial.0, None as Option<&[u8]>, Some(value))?
        {
            Ok(()) => {
                self.inner
                    .expiry
                    .insert(&expiry_key(rec.not_after, &rec.serial)[..], &[])?;
                self.inner
                    .meta
                    .update_and_fetch(commit::CERT_COUNT_KEY, |v| {
                        let n = v
                            .and_then(|v| <[u8; 8]>::try_from(v).ok())
                            .map(u64::from_be_bytes)
                            .unwrap_or(0);
                        Some((n + 1).to_be_bytes().to_vec())
                    })?;
                self.inner
                    .cert_count
                    .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
                Ok(())
            }
            Err(_) => Err(StoreError::SerialTaken),
        }
    }

    /// Looks a certificate up by serial.
    pub fn cert(&self, serial: &Serial) -> Result<Option<CertRecord>, StoreError> {
        match self.inner.certs.get(serial.0)? {
            Some(v) => Ok(Some(decode(&v)?)),
            None => Ok(None),
        }
    }

    /// Whether a serial is in the store.
    pub fn contains_serial(&self, serial: &Serial) -> Result<bool, StoreError> {
        Ok(self.inner.certs.contains_key(serial.0)?)
    }

    /// Applies `change` to a stored certificate atomically (retrying on concurrent change).
    /// `change` returns an error to leave the record untouched.
    pub fn update_cert<E, F>(
        &self,
        serial: &Serial,
        mut change: F,
    ) -> Result<Result<CertRecord, E>, StoreError>
    where
        F: FnMut(&mut CertRecord) -> Result<(), E>,
    {
        loop {
            let Some(old) = self.inner.certs.get(serial.0)? else {
                return Err(StoreError::Conflict(format!(
                    "no certificate with serial {serial}"
                )));
            };
            let mut rec: CertRecord = decode(&old)?;
            if let Err(e) = change(&mut rec) {
                return Ok(Err(e));
            }
            let new = encode(&rec)?;
            if self
                .inner
                .certs
                .compare_and_swap(serial.0, Some(old), Some(new))?
                .is_ok()
            {
                return Ok(Ok(rec));
            }
        }
    }

    /// Number of stored certificates (a kept count, not a scan).
    pub fn cert_count(&self) -> usize {
        self.inner
            .cert_count
            .load(std::sync::atomic::Ordering::Acquire) as usize
    }

    /// Certificates whose notAfter is in `from..to`, soonest first, through
    /// the expiry index (so an expiry scan reads only what expires).
    pub fn certs_expiring(
        &self,
        from: u64,
        to: u64,
    ) -> impl Iterator<Item = Result<CertRecord, StoreError>> + '_ {
        let start = expiry_key(from, &Serial([0; 16]));
        let end = expiry_key(to, &Serial([0; 16]));
        self.inner.expiry.range(start..end).filter_map(move |item| {
            let key = match item {
                Ok((k, _)) => k,
                Err(e) => return Some(Err(e.into())),
            };
            let mut serial = [0u8; 16];
            serial.copy_from_slice(key.get(8..24)?);
            self.cert(&Serial(serial)).transpose()
        })
    }

    /// Iterates over all certificates (admin and export use).
    pub fn certs(&self) -> impl Iterator<Item = Result<CertRecord, StoreError>> + '_ {
        self.inner
            .certs
            .iter()
            .map(|r| r.map_err(StoreError::from).and_then(|(_, v)| decode(&v)))
    }

    /// All organisations.
    pub fn orgs(&self) -> impl Iterator<Item = Result<Organisation, StoreError>> + '_ {
        self.inner
            .orgs
            .iter()
            .map(|r| r.map_err(StoreError::from).and_then(|(_, v)| decode(&v)))
    }

    /// All profiles.
    pub fn profiles(&self) -> impl Iterator<Item = Result<Profile, StoreError>> + '_ {
        self.inner.profiles.iter().map(|r| {
            r.map_err(StoreError::from)
                .and_then(|(_, v)| decode_profile(&v))
        })
    }

    /// Creates or replaces an organisation.
    pub fn put_org(&self, org: &Organisation) -> Result<(), StoreError> {
        self.inner.orgs.insert(org.cvr.as_bytes(), encode(org)?)?;
        Ok(())
    }

    /// Looks an organisation up by CVR.
    pub fn org(&self, cvr: &str) -> Result<Option<Organisation>, StoreError> {
        match self.inner.orgs.get(cvr.as_bytes())? {
            Some(v) => Ok(Some(decode(&v)?)),
            None => Ok(None),
        }
    }

    /// Creates or replaces a profile, keeping EST labels unique.
    pub fn put_profile(&self, p: &Profile) -> Result<(), StoreError> {
        use sled::Transactional;
        let value = encode(p)?;
        let res = (&self.inner.profiles, &self.inner.labels).transaction(|(profiles, labels)| {
            if let Some(owner) = labels.get(p.est_label.as_bytes())? {
                if owner.as_ref() != p.id.as_bytes() {
                    return sled::transaction::abort(StoreError::Conflict(format!(
                        "EST label {:?} is already in use",
                        p.est_label
                    )));
                }
            }
            if let Some(old) = profiles.get(p.id.as_bytes())? {
                let old = decode_profile(&old)
                    .map_err(sled::transaction::ConflictableTransactionError::Abort)?;
                if old.est_label != p.est_label {
                    labels.remove(old.est_label.as_bytes())?;
                }
            }
            labels.insert(p.est_label.as_bytes(), p.id.as_bytes())?;
            profiles.insert(p.id.as_bytes(), value.clone())?;
            Ok(())
        });
        match res {
            Ok(()) => Ok(()),
            Err(sled::transaction::TransactionError::Abort(e)) => Err(e),
            Err(sled::transaction::TransactionError::Storage(e)) => Err(e.into()),
        }
    }

    /// Looks a profile up by UUID.
    pub fn profile(&self, id: &str) -> Result<Option<Profile>, StoreError> {
        match self.inner.profiles.get(id.as_bytes())? {
            Some(v) => Ok(Some(decode_profile(&v)?)),
            None => Ok(None),
        }
    }

    /// Looks a profile up by EST label.
    pub fn profile_by_label(&self, label: &str) -> Result<Option<Profile>, StoreError> {
        match self.inner.labels.get(label.as_bytes())? {
            Some(id) => match self.inner.profiles.get(id)? {
                Some(v) => Ok(Some(decode_profile(&v)?)),
                None => Ok(None),
            },
            None => Ok(None),
        }
    }

    /// The organisation's profile for EST requests without a label.
    pub fn default_profile(&self, cvr: &str) -> Result<Option<Profile>, StoreError> {
        for item in self.inner.profiles.iter() {
            let (_, v) = item?;
            let p = decode_profile(&v)?;
            if p.cvr == cvr && p.org_default {
                return Ok(Some(p));
            }
        }
        Ok(None)
    }

    /// Appends an event to the audit log. It becomes durable with the next commit.
    pub fn audit(&self, event: &AuditEvent) -> Result<(), StoreError> {
        let id = self.inner.db.generate_id()?;
        self.inner.audit.insert(id.to_be_bytes(), encode(event)?)?;
        Ok(())
    }

    /// Reads the audit log in order.
    pub fn audit_events(&self) -> impl Iterator<Item = Result<AuditEvent, StoreError>> + '_ {
        self.inner
            .audit
            .iter()
            .map(|r| r.map_err(StoreError::from).and_then(|(_, v)| decode(&v)))
    }

    /// Bytes the store occupies on disk.
    pub fn size_on_disk(&self) -> u64 {
        self.inner.db.size_on_disk().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::model::{
        CertKind, Contact, Identification, Issuance, KeyPolicy, Profile, SystemRight,
    };
    use super::*;

    /// `Profile` as it was before `require_pop_linking`, field for field.
    #[derive(Serialize)]
    struct ProfileBeforePopLinking<'a> {
        id: &'a str,
        cvr: &'a str,
        name: &'a str,
        kind: CertKind,
        est_label: &'a str,
        org_default: bool,
        rights: &'a [SystemRight],
        key_policy: &'a KeyPolicy,
        validity_days: u32,
        identification: Identification,
        issuance: Issuance,
        email: &'a Option<String>,
        dns_names: &'a [String],
        allow_ip_sans: bool,
        contact: &'a Option<Contact>,
        p_number: &'a Option<String>,
        se_number: &'a Option<String>,
        seal: bool,
        publish: bool,
        approval_required: bool,
    }

    #[test]
    fn profiles_stored_before_pop_linking_still_read() {
        let p = Profile {
            id: "0b0b7a3e-1111-4222-8333-944445555666".into(),
            cvr: "12345674".into(),
            name: "Old profile".into(),
            kind: CertKind::System,
            est_label: "old".into(),
            org_default: true,
            rights: vec![SystemRight::EstEnroll],
            key_policy: KeyPolicy::default(),
            validity_days: 365,
            identification: Identification::Api,
            issuance: Issuance::Est,
            email: Some("ops@demo.example".into()),
            dns_names: vec![".devices.example".into()],
            allow_ip_sans: true,
            contact: Some(Contact {
                name: "Kontakt".into(),
                email: "kontakt@demo.example".into(),
            }),
            p_number: None,
            se_number: Some("87654311".into()),
            seal: false,
            publish: true,
            approval_required: true,
            require_pop_linking: false,
        };
        let old = encode(&ProfileBeforePopLinking {
            id: &p.id,
            cvr: &p.cvr,
            name: &p.name,
            kind: p.kind,
            est_label: &p.est_label,
            org_default: p.org_default,
            rights: &p.rights,
            key_policy: &p.key_policy,
            validity_days: p.validity_days,
            identification: p.identification,
            issuance: p.issuance,
            email: &p.email,
            dns_names: &p.dns_names,
            allow_ip_sans: p.allow_ip_sans,
            contact: &p.contact,
            p_number: &p.p_number,
            se_number: &p.se_number,
            seal: p.seal,
            publish: p.publish,
            approval_required: p.approval_required,
        })
        .expect("encode");
        // serde's default alone does not make postcard accept the short record.
        assert!(decode::<Profile>(&old).is_err());
        assert_eq!(decode_profile(&old).expect("old record"), p);

        // New records round-trip, with the flag either way.
        for flag in [false, true] {
            let q = Profile {
                require_pop_linking: flag,
                ..p.clone()
            };
            assert_eq!(
                decode_profile(&encode(&q).expect("encode")).expect("new"),
                q
            );
        }
        // A record cut anywhere else is still an error, not a default.
        let new = encode(&p).expect("encode");
        assert!(decode_profile(&new[..new.len() / 2]).is_err());
    }
}
