//! The outcome of the last write, shared by the committer and readers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::store::{StoreError, StoreHealth};

/// Why the store cannot write (if it cannot), and how often writes failed.
#[derive(Default)]
pub(super) struct Health {
    error: Mutex<Option<StoreError>>,
    write_errors: AtomicU64,
}

impl Health {
    /// Why the store cannot write, or `None` while it can.
    pub(super) fn error(&self) -> Option<StoreError> {
        self.error.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// A write succeeded.
    pub(super) fn succeeded(&self) {
        let mut error = self.error.lock().unwrap_or_else(|p| p.into_inner());
        if error.take().is_some() {
            tracing::warn!("the store can write again");
        }
    }

    /// A write failed.
    pub(super) fn failed(&self, why: &StoreError) {
        self.write_errors.fetch_add(1, Ordering::AcqRel);
        self.still_failing(why);
    }

    /// A recovery attempt failed (not counted as a failed write).
    pub(super) fn still_failing(&self, why: &StoreError) {
        *self.error.lock().unwrap_or_else(|p| p.into_inner()) = Some(why.clone());
    }

    pub(super) fn snapshot(&self) -> StoreHealth {
        let error = self.error();
        StoreHealth {
            writable: error.is_none(),
            write_errors: self.write_errors.load(Ordering::Acquire),
            error: error.map(|e| e.to_string()),
        }
    }
}
