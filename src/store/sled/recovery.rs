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
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::trees::{flush, open_trees, Shared};
use crate::store::StoreError;

/// How often an idle committer retries after a failed write.
pub(super) const RETRY_EVERY: Duration = Duration::from_secs(5);

/// Size of the probe file that shows space is back: two of sled's 512 KiB
/// segments, enough for it to reopen and write its next batch.
const PROBE_BYTES: usize = 1 << 20;

/// Longest the reopen waits for old handles (in requests) to be dropped.
const REOPEN_WAIT: Duration = Duration::from_secs(2);

/// Key in `meta` of the probe write made after a reopen.
const WRITE_PROBE_KEY: &[u8] = b"write_probe";

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

fn try_recover(shared: &Shared) -> Result<(), StoreError> {
    probe_space(shared).map_err(|e| StoreError::NoSpace(Arc::new(e)))?;
    reopen(shared).map_err(|e| StoreError::Reopen(Arc::new(e)))?;
    let trees = shared.trees()?;
    let now = crate::model::now_unix();
    trees.meta.insert(WRITE_PROBE_KEY, &now.to_be_bytes())?;
    flush(&trees)
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
