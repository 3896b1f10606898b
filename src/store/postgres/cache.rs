//! A node's copy of what every enrolment reads and almost nothing writes:
//! profiles by EST label, organisations' default profiles, organisations.
//! Every write to them announces `catalogue` with `NOTIFY` in its own
//! transaction, and every node (this one included) empties its copy when it
//! hears it. The copy is used only while the listener is connected (it may
//! miss announcements otherwise), and a value read from the database is kept
//! only if no announcement came while it was being read.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};

use crate::model::{Organisation, Profile};

/// Entries kept per map at most: the keys come from clients (EST labels),
/// so a flood of distinct ones must not grow the map without end.
const MAX_ENTRIES: usize = 4096;

/// The payload that announces a change to profiles or organisations.
pub(super) const CATALOGUE_PAYLOAD: &str = "catalogue";

#[derive(Default)]
pub(super) struct Catalogue {
    listening: AtomicBool,
    epoch: AtomicU64,
    by_label: RwLock<HashMap<String, Profile>>,
    defaults: RwLock<HashMap<String, Profile>>,
    orgs: RwLock<HashMap<String, Organisation>>,
}

/// A read from the database that may be kept when it ends.
pub(super) struct Reading(u64);

impl Catalogue {
    /// The listener is connected (`true`) or lost (`false`); both empty the copy.
    pub(super) fn set_listening(&self, on: bool) {
        self.forget();
        self.listening.store(on, Ordering::SeqCst);
    }

    /// Empties the copy, and keeps reads under way from being kept.
    pub(super) fn forget(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        for_each_clear(&self.by_label);
        for_each_clear(&self.defaults);
        for_each_clear(&self.orgs);
    }

    fn on(&self) -> bool {
        self.listening.load(Ordering::SeqCst)
    }

    pub(super) fn begin(&self) -> Reading {
        Reading(self.epoch.load(Ordering::SeqCst))
    }

    pub(super) fn profile_by_label(&self, key: &str) -> Option<Profile> {
        self.on().then(|| get(&self.by_label, key)).flatten()
    }

    pub(super) fn default_profile(&self, cvr: &str) -> Option<Profile> {
        self.on().then(|| get(&self.defaults, cvr)).flatten()
    }

    pub(super) fn org(&self, cvr: &str) -> Option<Organisation> {
        self.on().then(|| get(&self.orgs, cvr)).flatten()
    }

    pub(super) fn keep_profile_by_label(&self, r: Reading, key: String, p: &Profile) {
        self.keep(r, &self.by_label, key, p.clone());
    }

    pub(super) fn keep_default_profile(&self, r: Reading, cvr: String, p: &Profile) {
        self.keep(r, &self.defaults, cvr, p.clone());
    }

    pub(super) fn keep_org(&self, r: Reading, cvr: String, o: &Organisation) {
        self.keep(r, &self.orgs, cvr, o.clone());
    }

    fn keep<K: Eq + Hash, V>(&self, r: Reading, map: &RwLock<HashMap<K, V>>, k: K, v: V) {
        if !self.on() {
            return;
        }
        let mut m = map.write().unwrap_or_else(PoisonError::into_inner);
        // Checked under the lock that `forget` also takes, so a value read
        // before an announcement can never be kept after it.
        if self.epoch.load(Ordering::SeqCst) != r.0 {
            return;
        }
        if m.len() >= MAX_ENTRIES {
            m.clear();
        }
        m.insert(k, v);
    }
}

fn get<V: Clone>(map: &RwLock<HashMap<String, V>>, k: &str) -> Option<V> {
    map.read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(k)
        .cloned()
}

fn for_each_clear<K, V>(map: &RwLock<HashMap<K, V>>) {
    map.write().unwrap_or_else(PoisonError::into_inner).clear();
}
