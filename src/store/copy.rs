//! Moving an installation between engines (`estd store copy`): every record
//! is exported from one store and imported into another, in batches; then
//! both are summarised (records per kind, and a checksum over every record)
//! and must agree.

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_lc_rs::digest;

use super::{Record, Store, StoreError};

/// Records imported per transaction.
const BATCH: usize = 2000;

/// What a store holds, kind by kind, and a checksum over all of it that does
/// not depend on the order in which an engine lists its records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Records per kind.
    pub counts: BTreeMap<&'static str, u64>,
    /// SHA-256 over the sorted SHA-256 of each record's encoding.
    pub checksum: [u8; 32],
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (kind, n) in &self.counts {
            write!(f, "{kind}={n} ")?;
        }
        write!(f, "checksum=")?;
        for b in self.checksum {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Why a copy failed.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// Reading or writing a store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The target already holds records; copying would mix two installations.
    #[error("the target store is not empty ({0}); copy into a new, empty one")]
    NotEmpty(Summary),
    /// The stores disagree after the copy.
    #[error("verification failed: the source has {source_summary}, the target {target}")]
    Mismatch {
        /// The source's summary.
        source_summary: Summary,
        /// The target's summary.
        target: Summary,
    },
}

/// The kind of a record, for counts.
pub fn kind(r: &Record) -> &'static str {
    match r {
        Record::Cert(_) => "certs",
        Record::Revoked(_) => "revoked",
        Record::Org(_) => "orgs",
        Record::Profile(_) => "profiles",
        Record::Order(_) => "orders",
        Record::Held { .. } => "held",
        Record::Token { .. } => "tokens",
        Record::Notification(_) => "notifications",
        Record::EmailValidation(_) => "email_validations",
        Record::Person(_) => "people",
        Record::Audit { .. } => "audit",
        Record::Crl { .. } => "crl",
        Record::Counter { .. } => "counters",
    }
}

/// Accumulates a [`Summary`].
#[derive(Default)]
struct Summing {
    counts: BTreeMap<&'static str, u64>,
    digests: Vec<[u8; 32]>,
}

impl Summing {
    fn add(&mut self, r: &Record) -> Result<(), StoreError> {
        *self.counts.entry(kind(r)).or_default() += 1;
        let bytes = postcard::to_stdvec(r).map_err(StoreError::codec)?;
        let d = digest::digest(&digest::SHA256, &bytes);
        let mut one = [0u8; 32];
        one.copy_from_slice(d.as_ref());
        self.digests.push(one);
        Ok(())
    }

    fn finish(mut self) -> Summary {
        self.digests.sort_unstable();
        let mut ctx = digest::Context::new(&digest::SHA256);
        for d in &self.digests {
            ctx.update(d);
        }
        let mut checksum = [0u8; 32];
        checksum.copy_from_slice(ctx.finish().as_ref());
        Summary {
            counts: self.counts,
            checksum,
        }
    }
}

/// Summarises every record of `store`. Counters at zero are left out, so an
/// empty store of either engine has an empty summary.
pub fn summary(store: &dyn Store) -> Result<Summary, StoreError> {
    let mut s = Summing::default();
    for r in store.export() {
        let r = r?;
        if matches!(r, Record::Counter { value: 0, .. }) {
            continue;
        }
        s.add(&r)?;
    }
    Ok(s.finish())
}

/// Copies every record of `from` into the empty store `to`, then checks that
/// both hold the same. `progress` is told how many records went so far.
pub fn copy(
    from: &Arc<dyn Store>,
    to: &Arc<dyn Store>,
    progress: &mut dyn FnMut(u64),
) -> Result<Summary, CopyError> {
    let existing = summary(to.as_ref())?;
    if !existing.counts.is_empty() {
        return Err(CopyError::NotEmpty(existing));
    }
    let mut source = Summing::default();
    let mut batch = Vec::with_capacity(BATCH);
    let mut copied = 0u64;
    for r in from.export() {
        let r = r?;
        if !matches!(r, Record::Counter { value: 0, .. }) {
            source.add(&r)?;
        }
        batch.push(r);
        if batch.len() >= BATCH {
            copied += batch.len() as u64;
            to.import(std::mem::take(&mut batch))?;
            progress(copied);
        }
    }
    copied += batch.len() as u64;
    to.import(batch)?;
    progress(copied);
    let source_summary = source.finish();
    let target = summary(to.as_ref())?;
    if source_summary != target {
        return Err(CopyError::Mismatch {
            source_summary,
            target,
        });
    }
    Ok(target)
}
