//! sled's handles, the keys of `meta`, opening the database, and the flush
//! that makes writes durable.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::{Arc, RwLock};

use super::codec::decode;
use super::health::Health;
use super::snapshot::Snapshots;
use super::{labels, migrate};
use crate::model::{CertRecord, Serial};
use crate::store::StoreError;

/// Key in `meta` of the number of stored certificates (kept so that start-up
/// need not count a large tree).
pub(super) const CERT_COUNT_KEY: &[u8] = b"cert_count";

/// Key in `meta` marking that the `expiry` index is complete.
const EXPIRY_INDEX_KEY: &[u8] = b"expiry_index";

/// Key in the `expiry` index: notAfter (big-endian, so keys sort by time), then serial.
pub(super) fn expiry_key(not_after: u64, serial: &Serial) -> [u8; 24] {
    let mut k = [0u8; 24];
    k[..8].copy_from_slice(&not_after.to_be_bytes());
    k[8..].copy_from_slice(&serial.0);
    k
}

/// A big-endian count kept in `meta` (0 if missing or malformed).
pub(super) fn read_count(v: Option<&[u8]>) -> u64 {
    v.and_then(|v| <[u8; 8]>::try_from(v).ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0)
}

/// sled's errors, as the seam's.
impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> StoreError {
        StoreError::engine(e)
    }
}

/// sled's handles: replaced as a whole when the store is reopened.
pub(super) struct Trees {
    pub(super) db: sled::Db,
    pub(super) certs: sled::Tree,
    pub(super) orgs: sled::Tree,
    pub(super) profiles: sled::Tree,
    pub(super) labels: sled::Tree,
    pub(super) audit: sled::Tree,
    pub(super) orders: sled::Tree,
    pub(super) held: sled::Tree,
    pub(super) tokens: sled::Tree,
    pub(super) outbox: sled::Tree,
    pub(super) email_validations: sled::Tree,
    pub(super) people: sled::Tree,
    pub(super) sessions: sled::Tree,
    pub(super) revoked: sled::Tree,
    pub(super) expiry: sled::Tree,
    pub(super) meta: sled::Tree,
    /// sled's log file, for `fdatasync` after a flush.
    log: File,
}

/// What the store's handles and its committer thread share.
pub(super) struct Shared {
    pub(super) dir: PathBuf,
    pub(super) cache_bytes: u64,
    /// `None` only while sled is being reopened.
    pub(super) trees: RwLock<Option<Arc<Trees>>>,
    /// Issuances announced and not yet handed over (see `PendingTicket`).
    pub(super) pending: Arc<AtomicUsize>,
    /// Stored certificates; mirrors `meta/cert_count`.
    pub(super) cert_count: AtomicU64,
    pub(super) health: Health,
    /// Open snapshots (a backup or copy under way), which writes keep for.
    pub(super) snapshots: Snapshots,
}

impl Shared {
    /// The current handles.
    pub(super) fn trees(&self) -> Result<Arc<Trees>, StoreError> {
        self.trees
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or(StoreError::Reopening)
    }
}

/// Makes sled's writes durable: its flush, then `fdatasync` of its log
/// (sled's flush ends in `sync_file_range`, which does not persist the
/// metadata of its growing log file).
pub(super) fn flush(trees: &Trees) -> Result<(), StoreError> {
    trees.db.flush()?;
    trees.log.sync_data().map_err(StoreError::engine)
}

/// How long opening waits for the file lock that a handle of the same store,
/// just dropped in this process, still holds.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Opens the sled database in `dir`.
///
/// sled releases its file lock only when its I/O threads have let go of a
/// dropped handle, a moment after the drop (spacejam/sled#1234), and its
/// error for a held lock has no kind of its own. So a lock held when opening
/// is retried for [`LOCK_WAIT`]; a store held longer, by another process,
/// is then refused by name.
fn open_db(dir: &Path, cache_bytes: u64) -> Result<sled::Db, StoreError> {
    let config = sled::Config::new()
        .path(dir)
        .cache_capacity(cache_bytes)
        // Durability comes from explicit group commits, not a timer.
        .flush_every_ms(None);
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        match config.open() {
            Ok(db) => return Ok(db),
            Err(e) if is_lock_held(&e) => {
                if std::time::Instant::now() >= deadline {
                    return Err(StoreError::engine(std::io::Error::other(format!(
                        "the store in {} is in use by another process ({e})",
                        dir.display()
                    ))));
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

fn is_lock_held(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(io) if io.to_string().starts_with("could not acquire lock"))
}

/// Opens sled in `dir` and its trees, migrating older formats; returns them
/// with the kept certificate count.
pub(super) fn open_trees(dir: &Path, cache_bytes: u64) -> Result<(Trees, u64), StoreError> {
    let db = open_db(dir, cache_bytes)?;
    migrate::to_current(&db)?;
    // sled keeps its log in the file `db`; any descriptor of it can sync it.
    let log = File::open(dir.join("db")).map_err(StoreError::engine)?;
    let meta = db.open_tree("meta")?;
    let certs = db.open_tree("certs")?;
    let expiry = db.open_tree("expiry")?;
    build_expiry_index(&meta, &certs, &expiry)?;
    let count = kept_count(&meta, &certs)?;
    let labels = db.open_tree("labels")?;
    labels::fold_label_index(&labels)?;
    let trees = Trees {
        certs,
        orgs: db.open_tree("orgs")?,
        profiles: db.open_tree("profiles")?,
        labels,
        audit: db.open_tree("audit")?,
        orders: db.open_tree("orders")?,
        held: db.open_tree("held")?,
        tokens: db.open_tree("tokens")?,
        outbox: db.open_tree("outbox")?,
        // Opened (created empty) in a store from before e-mail validation.
        email_validations: db.open_tree("email_validations")?,
        // Likewise in a store from before people.
        people: db.open_tree("people")?,
        sessions: db.open_tree("sessions")?,
        revoked: db.open_tree("revoked")?,
        expiry,
        meta,
        log,
        db,
    };
    Ok((trees, count))
}

/// Builds the `expiry` index once for a store from before it.
fn build_expiry_index(
    meta: &sled::Tree,
    certs: &sled::Tree,
    expiry: &sled::Tree,
) -> Result<(), StoreError> {
    if meta.get(EXPIRY_INDEX_KEY)?.is_some() {
        return Ok(());
    }
    for item in certs.iter() {
        let (_, v) = item?;
        let rec: CertRecord = decode(&v)?;
        expiry.insert(&expiry_key(rec.not_after, &rec.serial)[..], &[])?;
    }
    meta.insert(EXPIRY_INDEX_KEY, &[1])?;
    Ok(())
}

/// The kept certificate count; counted once for a store from before it.
fn kept_count(meta: &sled::Tree, certs: &sled::Tree) -> Result<u64, StoreError> {
    let kept = meta
        .get(CERT_COUNT_KEY)?
        .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
        .map(u64::from_be_bytes);
    match kept {
        Some(n) => Ok(n),
        None => {
            let n = certs.len() as u64;
            meta.insert(CERT_COUNT_KEY, &n.to_be_bytes())?;
            Ok(n)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store dropped and at once reopened in the same process opens (sled
    /// lets go of its lock a moment after the drop); a store still open is
    /// refused by name once the wait is over.
    #[test]
    fn reopening_waits_for_a_dropped_handle_and_refuses_a_held_one() {
        let dir = tempfile::tempdir().expect("tmp");
        for round in 0..20 {
            let db = open_db(dir.path(), 1 << 20).unwrap_or_else(|e| panic!("round {round}: {e}"));
            db.insert(b"k", &[round as u8]).expect("write");
            db.flush().expect("flush");
        }
        let held = open_db(dir.path(), 1 << 20).expect("open");
        let refused = open_db(dir.path(), 1 << 20).expect_err("refused while held");
        assert!(
            refused.to_string().contains("in use by another process"),
            "{refused}"
        );
        drop(held);
    }
}
