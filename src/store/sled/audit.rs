//! The audit log: appending, paging backwards, and pruning the oldest.

use super::codec::{audit_at_ms, bounded_event, decode, encode};
use super::snapshot::Kept;
use super::SledStore;
use crate::model::AuditEvent;
use crate::store::{AuditPage, StoreError};

impl SledStore {
    /// Appends an event to the audit log. It becomes durable with the next commit.
    pub(super) fn audit(&self, event: &AuditEvent) -> Result<(), StoreError> {
        let t = self.trees()?;
        // Audit ids come from sled's monotonic counter, so the key order is
        // the order of writing, and so (clock steps aside) of `at_ms`.
        let id = t.db.generate_id()?;
        let _w = self
            .shared
            .snapshots
            .changing(Kept::Audit, &t.audit, &id.to_be_bytes())?;
        t.audit
            .insert(id.to_be_bytes(), encode(&bounded_event(event))?)?;
        Ok(())
    }

    /// See [`crate::store::Store::audit_page`]. Reads the log backwards from
    /// its end and stops when the page is full, so a page costs what it
    /// skips and returns, not the whole log.
    pub(super) fn audit_page(
        &self,
        before: Option<u64>,
        limit: usize,
        keep: &dyn Fn(&AuditEvent) -> bool,
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
    /// order of writing (see [`SledStore::audit`]), so the old records are the
    /// first ones: the scan stops at the first record inside the retention
    /// and never reads the rest. A record dated later than one after it (the
    /// clock stepped back) only delays the pruning of those behind it.
    pub(super) fn prune_audit(&self, cutoff_ms: u64, max: usize) -> Result<usize, StoreError> {
        let t = self.trees()?;
        let mut batch = sled::Batch::default();
        let mut removed = 0;
        let mut keys = Vec::new();
        for item in t.audit.iter().take(max) {
            let (k, v) = item?;
            // `at_ms` is the record's first field: no need to decode the rest.
            if audit_at_ms(&v)? >= cutoff_ms {
                break;
            }
            batch.remove(k.clone());
            keys.push(k);
            removed += 1;
        }
        if removed > 0 {
            let w = self.shared.snapshots.write();
            for k in &keys {
                w.before(Kept::Audit, &t.audit, k)?;
            }
            t.audit.apply_batch(batch)?;
        }
        Ok(removed)
    }
}

/// An audit key back to its id.
fn audit_id(key: &[u8]) -> Result<u64, StoreError> {
    <[u8; 8]>::try_from(key)
        .map(u64::from_be_bytes)
        .map_err(|_| StoreError::Conflict("malformed audit key".into()))
}
