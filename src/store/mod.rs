//! The sled store: certificates, organisations, profiles and the audit log.
//!
//! Trees:
//! - `certs`: serial (16 bytes) → [`CertRecord`]
//! - `orgs`: CVR → [`Organisation`]
//! - `profiles`: UUID → [`Profile`]; `labels`: EST label in lower case → UUID (see `labels.rs`)
//! - `audit`: monotonic id (u64, big-endian) → [`AuditEvent`]
//! - `orders`: reference number → [`crate::model::Order`]; `held`: SHA-256 of a held CSR → reference number
//! - `tokens`: SHA-256 of an admin token → [`crate::model::TokenRecord`]
//! - `outbox`: monotonic id → [`crate::model::Notification`]
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
//!
//! A write that fails (a full disk) leaves sled refusing every later write
//! until it is opened again: it keeps the first I/O error and returns it
//! from then on. So the handles live behind [`Store::trees`], and the
//! committer reopens sled in place once space is back (see `recovery.rs`);
//! until then writes fail, readiness says why, and reads go on.

mod admin_queries;
mod commit;
mod labels;

mod orders;
mod recovery;
pub mod revocation;
mod tokens;

pub use commit::{Issuance, IssueOutcome, OrderCheck, OrderWrite, PendingIssuance};
pub use recovery::StoreHealth;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::{mpsc, Arc, RwLock};

use crate::model::{AuditEvent, CertRecord, Organisation, Profile, Serial};
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
    /// A write failed (e.g. the disk is full), or the store is being reopened after one.
    #[error("the store cannot write: {0}")]
    Unavailable(String),
    /// A transaction was aborted.
    #[error("transaction aborted")]
    Aborted,
}

/// Audit events with their ids, oldest first, and the cursor for the
/// page before them (see [`Store::audit_page`]).
pub type AuditPage = (Vec<(u64, AuditEvent)>, Option<u64>);

/// A handle to the store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

/// sled's handles: replaced as a whole when the store is reopened.
pub(crate) struct Trees {
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
}

/// What the store's handles and its committer thread share.
pub(crate) struct Shared {
    dir: PathBuf,
    cache_bytes: u64,
    /// `None` only while sled is being reopened.
    trees: RwLock<Option<Arc<Trees>>>,
    /// See [`PendingIssuance`].
    pending: Arc<AtomicUsize>,
    /// Stored certificates; mirrors `meta/cert_count`.
    cert_count: AtomicU64,
    health: recovery::Health,
}

impl Shared {
    /// The current handles.
    fn trees(&self) -> Result<Arc<Trees>, StoreError> {
        self.trees
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| StoreError::Unavailable("the store is being reopened".into()))
    }
}

struct Inner {
    shared: Arc<Shared>,
    /// `None` only while dropping.
    commits: Option<mpsc::Sender<commit::Job>>,
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

/// Opens sled in `dir` and its trees; returns them with the kept certificate count.
fn open_trees(dir: &Path, cache_bytes: u64) -> Result<(Trees, u64), StoreError> {
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
    let log = File::open(dir.join("db")).map_err(|e| StoreError::Sled(sled::Error::Io(e)))?;
    let certs = db.open_tree("certs")?;
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
    let trees = Trees {
        certs,
        orgs: db.open_tree("orgs")?,
        profiles: db.open_tree("profiles")?,
        labels: {
            let labels = db.open_tree("labels")?;
            labels::fold_label_index(&labels)?;
            labels
        },
        audit: db.open_tree("audit")?,
        orders: db.open_tree("orders")?,
        held: db.open_tree("held")?,
        tokens: db.open_tree("tokens")?,
        outbox: db.open_tree("outbox")?,
        revoked: db.open_tree("revoked")?,
        expiry,
        meta,
        log,
        db,
    };
    Ok((trees, count))
}

impl Store {
    /// Opens (or creates) the store in `dir` with a page cache of
    /// `cache_bytes`.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Store, StoreError> {
        let (trees, count) = open_trees(dir, cache_bytes)?;
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            cache_bytes,
            trees: RwLock::new(Some(Arc::new(trees))),
            pending: Arc::new(AtomicUsize::new(0)),
            cert_count: AtomicU64::new(count),
            health: recovery::Health::default(),
        });
        let (tx, rx) = mpsc::channel::<commit::Job>();
        let committer_shared = shared.clone();
        let committer = std::thread::Builder::new()
            .name("estd-commit".into())
            .spawn(move || commit::run(committer_shared, rx))
            .map_err(|e| StoreError::Sled(sled::Error::Io(e)))?;
        Ok(Store {
            inner: Arc::new(Inner {
                shared,
                commits: Some(tx),
                committer: Some(committer),
            }),
        })
    }

    /// The current sled handles (an error while the store is being reopened).
    fn trees(&self) -> Result<Arc<Trees>, StoreError> {
        self.inner.shared.trees()
    }

    /// Every value of one tree, decoded, in key order.
    fn values<T: 'static>(
        &self,
        tree: fn(&Trees) -> &sled::Tree,
        decode: fn(&[u8]) -> Result<T, StoreError>,
    ) -> impl Iterator<Item = Result<T, StoreError>> + 'static {
        let (iter, unavailable) = match self.trees() {
            Ok(t) => (Some(tree(&t).iter()), None),
            Err(e) => (None, Some(Err(e))),
        };
        unavailable.into_iter().chain(
            iter.into_iter()
                .flatten()
                .map(move |r| r.map_err(StoreError::from).and_then(|(_, v)| decode(&v))),
        )
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
            Ok(Err(e)) => Err(StoreError::Unavailable(e)),
            Err(_) => Err(StoreError::CommitterGone),
        }
    }

    /// Announces an issuance that is about to be signed, so that the
    /// committer can wait for it to share a flush (see [`PendingIssuance`]).
    pub fn expect_issuance(&self) -> PendingIssuance {
        PendingIssuance::new(&self.inner.shared.pending)
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
            Ok(Err(e)) => Err(StoreError::Unavailable(e)),
            Err(_) => Err(StoreError::CommitterGone),
        }
    }

    /// Flushes synchronously (for start-up and shutdown). After a write
    /// failed, sled may have nothing left it could write and report
    /// success; the store's own record of the failure is reported instead.
    pub fn flush(&self) -> Result<(), StoreError> {
        let t = self.trees()?;
        let flushed = commit::flush(&t);
        let health = &self.inner.shared.health;
        match flushed {
            Ok(()) => match health.error() {
                Some(e) => Err(StoreError::Unavailable(e)),
                None => Ok(()),
            },
            Err(e) => {
                health.failed(&e);
                Err(StoreError::Unavailable(e))
            }
        }
    }

    /// Whether the store can write, by its last write (no I/O).
    pub fn health(&self) -> StoreHealth {
        self.inner.shared.health.snapshot()
    }

    /// Readiness: `Ok` while the last write succeeded; after a failure, the
    /// committer first tries to recover (space back, sled reopened, a small
    /// durable write) and the answer is that attempt's outcome.
    pub async fn readiness(&self) -> Result<(), String> {
        if self.inner.shared.health.error().is_none() {
            return Ok(());
        }
        let (tx, rx) = oneshot::channel();
        self.send(commit::Job::Probe(tx))
            .map_err(|e| e.to_string())?;
        rx.await
            .unwrap_or_else(|_| Err(StoreError::CommitterGone.to_string()))
    }

    /// Inserts a new certificate; fails with [`StoreError::SerialTaken`] if the serial exists.
    pub fn insert_new_cert(&self, rec: &CertRecord) -> Result<(), StoreError> {
        let value = encode(rec)?;
        match self.trees()?.certs.compare_and_swap(
            rec.serial.0,
            None as Option<&[u8]>,
            Some(value),
        )? {
            Ok(()) => {
                self.trees()?
                    .expiry
                    .insert(&expiry_key(rec.not_after, &rec.serial)[..], &[])?;
                self.trees()?
                    .meta
                    .update_and_fetch(commit::CERT_COUNT_KEY, |v| {
                        let n = v
                            .and_then(|v| <[u8; 8]>::try_from(v).ok())
                            .map(u64::from_be_bytes)
                            .unwrap_or(0);
                        Some((n + 1).to_be_bytes().to_vec())
                    })?;
                self.inner
                    .shared
                    .cert_count
                    .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
                Ok(())
            }
            Err(_) => Err(StoreError::SerialTaken),
        }
    }

    /// Looks a certificate up by serial.
    pub fn cert(&self, serial: &Serial) -> Result<Option<CertRecord>, StoreError> {
        match self.trees()?.certs.get(serial.0)? {
            Some(v) => Ok(Some(decode(&v)?)),
            None => Ok(None),
        }
    }

    /// Whether a serial is in the store.
    pub fn contains_serial(&self, serial: &Serial) -> Result<bool, StoreError> {
        Ok(self.trees()?.certs.contains_key(serial.0)?)
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
            let Some(old) = self.trees()?.certs.get(serial.0)? else {
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
                .trees()?
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
            .shared
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
        let (range, unavailable) = match self.trees() {
            Ok(t) => (Some(t.expiry.range(start..end)), None),
            Err(e) => (None, Some(Err(e))),
        };
        unavailable
            .into_iter()
            .chain(range.into_iter().flatten().filter_map(move |item| {
                let key = match item {
                    Ok((k, _)) => k,
                    Err(e) => return Some(Err(e.into())),
                };
                let mut serial = [0u8; 16];
                serial.copy_from_slice(key.get(8..24)?);
                self.cert(&Serial(serial)).transpose()
            }))
    }

    /// Iterates over all certificates (admin and export use).
    pub fn certs(&self) -> impl Iterator<Item = Result<CertRecord, StoreError>> + '_ {
        self.values(|t| &t.certs, decode)
    }

    /// All organisations.
    pub fn orgs(&self) -> impl Iterator<Item = Result<Organisation, StoreError>> + '_ {
        self.values(|t| &t.orgs, decode)
    }

    /// All profiles.
    pub fn profiles(&self) -> impl Iterator<Item = Result<Profile, StoreError>> + '_ {
        self.values(|t| &t.profiles, decode_profile)
    }

    /// Creates or replaces an organisation.
    pub fn put_org(&self, org: &Organisation) -> Result<(), StoreError> {
        self.trees()?
            .orgs
            .insert(org.cvr.as_bytes(), encode(org)?)?;
        Ok(())
    }

    /// Looks an organisation up by CVR.
    pub fn org(&self, cvr: &str) -> Result<Option<Organisation>, StoreError> {
        match self.trees()?.orgs.get(cvr.as_bytes())? {
            Some(v) => Ok(Some(decode(&v)?)),
            None => Ok(None),
        }
    }

    /// Creates or replaces a profile, keeping EST labels unique.
    pub fn put_profile(&self, p: &Profile) -> Result<(), StoreError> {
        use sled::Transactional;
        let value = encode(p)?;
        let id = p.id.as_bytes();
        let trees = self.trees()?;
        let res = (&trees.profiles, &trees.labels).transaction(|(profiles, labels)| {
            // The key this profile's label has: folded, unless it is an old
            // label kept under its exact spelling (see labels.rs).
            let key_of = |label: &str| -> sled::transaction::ConflictableTransactionResult<_, StoreError> {
                let exact = label.as_bytes();
                Ok(match labels.get(exact)? {
                    Some(owner) if owner.as_ref() == id => exact.to_vec(),
                    _ => labels::label_key(label),
                })
            };
            let key = key_of(&p.est_label)?;
            if let Some(owner) = labels.get(&key)? {
                if owner.as_ref() != id {
                    return sled::transaction::abort(StoreError::Conflict(format!(
                        "EST label {:?} is already in use (labels are compared without regard to case)",
                        p.est_label
                    )));
                }
            }
            if let Some(old) = profiles.get(id)? {
                let old = decode_profile(&old)
                    .map_err(sled::transaction::ConflictableTransactionError::Abort)?;
                let old_key = key_of(&old.est_label)?;
                if old_key != key && labels.get(&old_key)?.is_some_and(|o| o.as_ref() == id) {
                    labels.remove(old_key)?;
                }
            }
            labels.insert(key, id)?;
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
        match self.trees()?.profiles.get(id.as_bytes())? {
            Some(v) => Ok(Some(decode_profile(&v)?)),
            None => Ok(None),
        }
    }

    /// Looks a profile up by EST label.
    /// Case does not matter (see `labels.rs`).
    pub fn profile_by_label(&self, label: &str) -> Result<Option<Profile>, StoreError> {
        let id = match self.trees()?.labels.get(label.as_bytes())? {
            Some(id) => Some(id),
            None => self.trees()?.labels.get(labels::label_key(label))?,
        };
        match id {
            Some(id) => match self.trees()?.profiles.get(id)? {
                Some(v) => Ok(Some(decode_profile(&v)?)),
                None => Ok(None),
            },
            None => Ok(None),
        }
    }

    /// The organisation's profile for EST requests without a label.
    pub fn default_profile(&self, cvr: &str) -> Result<Option<Profile>, StoreError> {
        for item in self.trees()?.profiles.iter() {
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
        let t = self.trees()?;
        // Audit ids come from sled's monotonic counter, so the key order is
        // the order of writing, and so (clock steps aside) of `at_ms`.
        let id = t.db.generate_id()?;
        t.audit
            .insert(id.to_be_bytes(), encode(&bounded_event(event))?)?;
        Ok(())
    }

    /// Reads the audit log in order.
    pub fn audit_events(&self) -> impl Iterator<Item = Result<AuditEvent, StoreError>> + '_ {
        self.values(|t| &t.audit, decode)
    }

    /// The newest audit events that `keep` accepts, at most `limit`, older
    /// than id `before` if given, oldest first, each with its id. Reads the
    /// log backwards from its end and stops when the page is full, so a page
    /// costs what it skips and returns, not the whole log. The second value
    /// is the cursor for the page before (the oldest id returned) when the
    /// page is full, else `None`.
    pub fn audit_page(
        &self,
        before: Option<u64>,
        limit: usize,
        keep: impl Fn(&AuditEvent) -> bool,
    ) -> Result<AuditPage, StoreError> {
        let t = self.trees()?;
        let range = match before {
            Some(id) => t.audit.range(..id.to_be_bytes()),
            None => t.audit.iter(),
        };
        let mut page = Vec::new();
        for item in range.rev() {
            if page.len() >= limit {
                break;
            }
            let (k, v) = item?;
            let event: AuditEvent = decode(&v)?;
            if keep(&event) {
                page.push((audit_id(&k)?, event));
            }
        }
        page.reverse();
        let cursor = match page.first() {
            Some((id, _)) if page.len() >= limit => Some(*id),
            _ => None,
        };
        Ok((page, cursor))
    }

    /// Removes up to `max` of the oldest audit records, as long as they were
    /// written before `cutoff_ms`; returns how many went. Keys are in the
    /// order of writing (see [`Store::audit`]), so the old records are the
    /// first ones: the scan stops at the first record inside the retention
    /// and never reads the rest. A record dated later than one after it (the
    /// clock stepped back) only delays the pruning of those behind it.
    pub fn prune_audit(&self, cutoff_ms: u64, max: usize) -> Result<usize, StoreError> {
        let t = self.trees()?;
        let mut batch = sled::Batch::default();
        let mut removed = 0;
        for item in t.audit.iter().take(max) {
            let (k, v) = item?;
            // `at_ms` is the record's first field: no need to decode the rest.
            let (at_ms, _) = postcard::take_from_bytes::<u64>(&v)?;
            if at_ms >= cutoff_ms {
                break;
            }
            batch.remove(k);
            removed += 1;
        }
        if removed > 0 {
            t.audit.apply_batch(batch)?;
        }
        Ok(removed)
    }

    /// Bytes the store occupies on disk.
    pub fn size_on_disk(&self) -> u64 {
        self.trees()
            .ok()
            .and_then(|t| t.db.size_on_disk().ok())
            .unwrap_or(0)
    }
}

/// An audit key back to its id.
fn audit_id(key: &[u8]) -> Result<u64, StoreError> {
    <[u8; 8]>::try_from(key)
        .map(u64::from_be_bytes)
        .map_err(|_| StoreError::Conflict("malformed audit key".into()))
}

/// The event with every text cut to [`crate::clip::MAX_CHARS`]: much of it
/// comes from clients (error texts quoting their input, names, subjects).
fn bounded_event(event: &AuditEvent) -> AuditEvent {
    use crate::clip::clip_in_place;
    let mut e = event.clone();
    clip_in_place(&mut e.actor);
    clip_in_place(&mut e.detail);
    for s in [&mut e.cvr, &mut e.profile_id, &mut e.order_id]
        .into_iter()
        .flatten()
    {
        clip_in_place(s);
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{
        CertKind, Contact, Identification, Issuance, KeyPolicy, Profile, SystemRight,
    };

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
