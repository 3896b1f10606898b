//! A consistent export while sled serves.
//!
//! sled has no snapshots, and its iterators see writes made while they run,
//! so an export read tree by tree could hold an order without the
//! certificate written with it. estd keeps the part of a snapshot an export
//! needs, copy-on-write:
//!
//! - Every write to a store takes a [`WriteGuard`] before its first change
//!   and holds it past its last. A snapshot begins (and ends) only while no
//!   guard is held, so no write straddles its start.
//! - While a snapshot is open, a write first keeps the value each key it
//!   changes had (or that it had none) — unless the export has already read
//!   past that key, or has kept it already.
//! - The export reads each tree live, and for a kept key gives the kept value
//!   instead; at a tree's end it adds the kept keys that have since been
//!   removed.
//!
//! What is kept is what changed during the export, not a copy of the store,
//! and a write waits for nothing longer than the start or end of a snapshot.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard};

use sled::IVec;

use crate::store::StoreError;

/// The trees an export reads, whose keys a write keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Kept {
    Certs,
    Revoked,
    Orgs,
    Profiles,
    Orders,
    Held,
    Tokens,
    Outbox,
    EmailValidations,
    People,
    Audit,
}

/// How far an export has read one tree.
#[derive(Debug, Clone, Default)]
enum Progress {
    /// Not begun: every change must be kept.
    #[default]
    NotYet,
    /// Read up to and including this key: changes at or before it are not
    /// the export's concern any more.
    Upto(IVec),
    /// Read to the end.
    Done,
}

impl Progress {
    fn passed(&self, key: &[u8]) -> bool {
        match self {
            Progress::NotYet => false,
            Progress::Upto(last) => key <= last.as_ref(),
            Progress::Done => true,
        }
    }
}

/// What one open snapshot has kept.
#[derive(Default)]
struct Keeping {
    progress: HashMap<Kept, Progress>,
    /// The value at the snapshot of each key changed since, not yet read by
    /// the export; `None` where the key did not exist.
    before: HashMap<Kept, BTreeMap<IVec, Option<IVec>>>,
}

/// One open snapshot, shared by its export and the writers.
#[derive(Default)]
pub(super) struct Snapshot {
    kept: Mutex<Keeping>,
}

impl Snapshot {
    fn lock(&self) -> MutexGuard<'_, Keeping> {
        self.kept.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `tree` as the snapshot saw it, in key order (with removed keys added
    /// at the end), read live underneath.
    pub(super) fn read(
        self: &Arc<Self>,
        kept: Kept,
        tree: &sled::Tree,
    ) -> impl Iterator<Item = Result<(IVec, IVec), StoreError>> + Send + 'static {
        let snapshot = self.clone();
        let mut live = tree.iter();
        let mut removed: Option<std::vec::IntoIter<(IVec, IVec)>> = None;
        std::iter::from_fn(move || loop {
            if let Some(rest) = removed.as_mut() {
                return rest.next().map(Ok);
            }
            match live.next() {
                Some(Err(e)) => return Some(Err(e.into())),
                Some(Ok((key, value))) => {
                    // The value was read before this look-up: a write that
                    // changed it since has kept the old one already.
                    let mut k = snapshot.lock();
                    let before = k.before.get_mut(&kept).and_then(|b| b.remove(&key));
                    k.progress.insert(kept, Progress::Upto(key.clone()));
                    match before {
                        None => return Some(Ok((key, value))),
                        Some(Some(old)) => return Some(Ok((key, old))),
                        // Written after the snapshot began.
                        Some(None) => continue,
                    }
                }
                None => {
                    let mut k = snapshot.lock();
                    k.progress.insert(kept, Progress::Done);
                    let rest: Vec<(IVec, IVec)> = k
                        .before
                        .remove(&kept)
                        .unwrap_or_default()
                        .into_iter()
                        .filter_map(|(key, old)| old.map(|v| (key, v)))
                        .collect();
                    removed = Some(rest.into_iter());
                }
            }
        })
    }
}

/// The open snapshots of one store.
#[derive(Default)]
pub(super) struct Snapshots {
    open: RwLock<Vec<Arc<Snapshot>>>,
}

impl Snapshots {
    /// Held by a write from before its first change to after its last.
    pub(super) fn write(&self) -> WriteGuard<'_> {
        WriteGuard {
            open: self.open.read().unwrap_or_else(PoisonError::into_inner),
        }
    }

    /// [`Snapshots::write`] for a write that changes one key: keeps the
    /// key's value for every open snapshot, and returns the guard to hold
    /// until the change is made.
    pub(super) fn changing(
        &self,
        kept: Kept,
        tree: &sled::Tree,
        key: &[u8],
    ) -> Result<WriteGuard<'_>, StoreError> {
        let guard = self.write();
        guard.before(kept, tree, key)?;
        Ok(guard)
    }

    /// Opens a snapshot once no write is under way; `at_start` runs then,
    /// with no write under way, for what is read whole at the start.
    pub(super) fn begin<T>(&self, at_start: impl FnOnce() -> T) -> (OpenSnapshot<'_>, T) {
        let mut open = self.open.write().unwrap_or_else(PoisonError::into_inner);
        let snapshot = Arc::new(Snapshot::default());
        open.push(snapshot.clone());
        let read = at_start();
        (
            OpenSnapshot {
                snapshots: self,
                snapshot,
            },
            read,
        )
    }
}

/// An open snapshot: closed when dropped.
pub(super) struct OpenSnapshot<'a> {
    snapshots: &'a Snapshots,
    pub(super) snapshot: Arc<Snapshot>,
}

impl Drop for OpenSnapshot<'_> {
    fn drop(&mut self) {
        let mut open = self
            .snapshots
            .open
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        open.retain(|s| !Arc::ptr_eq(s, &self.snapshot));
    }
}

/// A write under way: no snapshot begins or ends while it is held.
pub(super) struct WriteGuard<'a> {
    open: RwLockReadGuard<'a, Vec<Arc<Snapshot>>>,
}

impl WriteGuard<'_> {
    /// Keeps, for every open snapshot, the value `key` of `tree` has now,
    /// before this write changes it.
    pub(super) fn before(
        &self,
        kept: Kept,
        tree: &sled::Tree,
        key: &[u8],
    ) -> Result<(), StoreError> {
        for snapshot in self.open.iter() {
            let mut k = snapshot.lock();
            if k.progress.get(&kept).is_some_and(|p| p.passed(key)) {
                continue;
            }
            let before = k.before.entry(kept).or_default();
            if !before.contains_key(key) {
                // Read under the lock: no other write to this key can keep a
                // later value first.
                before.insert(IVec::from(key), tree.get(key)?);
            }
        }
        Ok(())
    }
}
