//! The several-nodes part of the seam, for the one node sled serves: the
//! event feed carries this node's own revocations, exclusive work is a
//! process lock, the CRL number a counter in `meta`, and notice claims are
//! leases kept in memory (a restart forgets them, which only lets a notice
//! be tried again).

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use super::codec::decode;
use super::migrate::CRL_KEY;
use super::trees::read_count;
use super::SledStore;
use crate::model::{Notification, UnixSeconds};
use crate::store::{Exclusive, ExclusiveGuard, StoreError, StoredCrl};

pub(super) const CRL_NUMBER_KEY: &[u8] = b"crl_number";

/// Local state for the several-nodes methods.
#[derive(Default)]
pub(super) struct Local {
    busy: Arc<(Mutex<Vec<Exclusive>>, Condvar)>,
    leases: Mutex<HashMap<u64, UnixSeconds>>,
}

/// Releases one [`Exclusive`] kind of work when dropped.
struct Held {
    busy: Arc<(Mutex<Vec<Exclusive>>, Condvar)>,
    work: Exclusive,
}

impl Drop for Held {
    fn drop(&mut self) {
        let (lock, freed) = &*self.busy;
        lock.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|w| *w != self.work);
        freed.notify_all();
    }
}

impl SledStore {
    pub(super) fn exclusive(&self, work: Exclusive) -> Result<ExclusiveGuard, StoreError> {
        let busy = self.local.busy.clone();
        {
            let (lock, freed) = &*busy;
            let mut held = lock.lock().unwrap_or_else(PoisonError::into_inner);
            while held.contains(&work) {
                held = freed.wait(held).unwrap_or_else(PoisonError::into_inner);
            }
            held.push(work);
        }
        Ok(ExclusiveGuard::new(Box::new(Held { busy, work })))
    }

    /// One more than the last number handed out or stored (a store from
    /// before the counter starts after its CRL's number).
    pub(super) fn next_crl_number(&self) -> Result<u64, StoreError> {
        let t = self.trees()?;
        let stored = match t.meta.get(CRL_KEY)? {
            Some(v) => decode::<StoredCrl>(&v)?.number,
            None => 0,
        };
        let _w = self.shared.snapshots.write();
        let v = t.meta.update_and_fetch(CRL_NUMBER_KEY, |v| {
            let next = read_count(v).max(stored) + 1;
            Some(next.to_be_bytes().to_vec())
        })?;
        Ok(read_count(v.as_deref()))
    }

    pub(super) fn claim_notifications(
        &self,
        now: UnixSeconds,
        lease_secs: u64,
        max: usize,
    ) -> Result<Vec<Notification>, StoreError> {
        let mut leases = self
            .local
            .leases
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        leases.retain(|_, until| *until > now);
        let mut claimed = Vec::new();
        for n in crate::store::Store::notifications(self) {
            let n = n?;
            if claimed.len() >= max {
                break;
            }
            if n.delivered_at.is_some() || leases.contains_key(&n.id) {
                continue;
            }
            leases.insert(n.id, now.saturating_add(lease_secs));
            claimed.push(n);
        }
        Ok(claimed)
    }
}

impl SledStore {
    /// Ends this node's claim on a notice (it was written back).
    pub(super) fn release_claim(&self, id: u64) {
        self.local
            .leases
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
    }
}
