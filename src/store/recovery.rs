//! Surviving a failed write (a full disk) without a restart.
//!
//! sled 0.34 keeps the first I/O error of its log writer as a "global
//! error" and returns it from every later write and flush; only opening
//! the database again clears it (`PageCache::start` resets it). So after a
//! failed write the committer, on its next batch (or every
//! [`RETRY_EVERY`] when idle, or when readiness asks):
//!
//! 1. checks that space is back, by writing and syncing a probe file of
//!    [`PROBE_BYTES`] beside the store (cheap, and it fails at once while
//!    the disk is full, without touching sled);
//! 2. drops sled's handles and opens the database again in place. Opening
//!    recovers from the log as after a crash: what a failed batch left in
//!    memory is gone, and it was never answered as stored. sled locks its
//!    file, so the open waits (up to [`REOPEN_WAIT`]) for requests still
//!    holding the old handles to let go;
//! 3. makes a small durable write, and only then calls the store writable.
//!
//! Until then writes are answered with the stored error at once, reads go
//! on from the old handles, and readiness (`/readyz`) fails with the reason.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{commit, open_trees, Shared, StoreError};

/// How often an idle committer retries after a failed write.
pub(super) const RETRY_EVERY: Duration = Duration::from_secs(5);

/// Size of the probe file that shows space is back: two of sled's 512 KiB
/// segments, enough for it to reopen and write its next batch.
const PROBE_BYTES: usize = 1 << 20;

/// Longest the reopen waits for old handles (in requests) to be dropped.
const REOPEN_WAIT: Duration = Duration::from_secs(2);

/// Key in `meta` of the probe write made after a reopen.
const WRITE_PROBE_KEY: &[u8] = b"write_probe";

/// The store's health, for readiness and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreHealth {
    /// Whether the last write succeeded.
    pub writable: bool,
    /// Writes (batches) that failed since start.
    pub write_errors: u64,
    /// Why the store cannot write, while it cannot.
    pub error: Option<String>,
}

/// The outcome of the last write, shared by the committer and readers.
#[derive(Default)]
pub(super) struct Health {
    error: Mutex<Option<String>>,
    write_errors: AtomicU64,
}

impl Health {
    /// Why the store cannot write, or `None` while it can.
    pub(super) fn error(&self) -> Option<String> {
        self.error.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(super) fn succeeded(&self) {
        let mut error = self.error.lock().unwrap_or_else(|p| p.into_inner());
        if error.take().is_some() {
            tracing::warn!("the store can write again");
        }
    }

    /// A write failed.
    pub(super) fn failed(&self, why: &str) {
        self.write_errors.fetch_add(1, Ordering::AcqRel);
        self.still_failing(why);
    }

    /// A recovery attempt failed (not counted as a failed write).
    fn still_failing(&self, why: &str) {
        *self.error.lock().unwrap_or_else(|p| p.into_inner()) = Some(why.to_owned());
    }

    pub(super) fn snapshot(&self) -> StoreHealth {
        let error = self.error();
        StoreHealth {
            writable: error.is_none(),
            write_errors: self.write_errors.load(Ordering::Acquire),
            error,
        }
    }
}

/// Tries to make the store writable again; records the outcome.
pub(super) fn recover(shared: &Shared) {
    match try_recover(shared) {
        Ok(()) => {
            tracing::warn!("the store was reopened after a failed write");
            shared.health.succeeded();
        }
        Err(e) => {
            tracing::debug!(error = %e, "the store cannot write yet");
            shared.health.still_failing(&e);
        }
    }
}

fn try_recover(shared: &Shared) -> Result<(), String> {
    probe_space(shared).map_err(|e| format!("no space to write: {e}"))?;
    reopen(shared).map_err(|e| format!("reopening the store: {e}"))?;
    let trees = shared.trees().map_err(|e| e.to_string())?;
    let now = crate::model::now_unix();
    trees
        .meta
        .insert(WRITE_PROBE_KEY, &now.to_be_bytes())
        .map_err(|e| e.to_string())?;
    commit::flush(&trees)
}

/// Writes and syncs a probe file beside the store, then removes it.
fn probe_space(shared: &Shared) -> std::io::Result<()> {
    let path = shared.dir.join("write-probe");
    let result = (|| {
        let mut f = std::fs::File::create(&path)?;
        f.write_all(&vec![0u8; PROBE_BYTES])?;
        f.sync_all()
    })();
    let _ = std::fs::remove_file(&path);
    result
}

/// Drops sled's handles and opens the database again in the same place.
fn reopen(shared: &Shared) -> Result<(), StoreError> {
    let old = shared
        .trees
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    // The last handle dropped closes sled (and its file lock). Ours may not be
    // the last: a request may still hold the old handles for a moment.
    drop(old);
    let deadline = Instant::now() + REOPEN_WAIT;
    loop {
        match open_trees(&shared.dir, shared.cache_bytes) {
            Ok((trees, count)) => {
                // The kept count as stored: writes that were lost were never counted.
                shared.cert_count.store(count, Ordering::Release);
                *shared.trees.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(trees));
                return Ok(());
            }
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}
