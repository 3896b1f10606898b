//! Organisations and profiles, with the EST label index kept unique.

use sled::transaction::{
    ConflictableTransactionError, ConflictableTransactionResult, TransactionError,
};
use sled::Transactional;

use super::codec::{decode, decode_profile, encode};
use super::snapshot::Kept;
use super::{labels, SledStore};
use crate::model::{Organisation, Profile};
use crate::store::StoreError;

fn settle<T>(res: Result<T, TransactionError<StoreError>>) -> Result<T, StoreError> {
    match res {
        Ok(v) => Ok(v),
        Err(TransactionError::Abort(e)) => Err(e),
        Err(TransactionError::Storage(e)) => Err(e.into()),
    }
}

impl SledStore {
    /// Creates or replaces an organisation.
    pub(super) fn put_org(&self, org: &Organisation) -> Result<(), StoreError> {
        let t = self.trees()?;
        let _w = self
            .shared
            .snapshots
            .changing(Kept::Orgs, &t.orgs, org.cvr.as_bytes())?;
        t.orgs.insert(org.cvr.as_bytes(), encode(org)?)?;
        Ok(())
    }

    /// Inserts a new organisation; `Ok(false)` if its CVR number is taken.
    pub(super) fn insert_new_org(&self, org: &Organisation) -> Result<bool, StoreError> {
        let value = encode(org)?;
        let t = self.trees()?;
        let _w = self
            .shared
            .snapshots
            .changing(Kept::Orgs, &t.orgs, org.cvr.as_bytes())?;
        Ok(t.orgs
            .compare_and_swap(org.cvr.as_bytes(), None as Option<&[u8]>, Some(value))?
            .is_ok())
    }

    /// Looks an organisation up by CVR.
    pub(super) fn org(&self, cvr: &str) -> Result<Option<Organisation>, StoreError> {
        match self.trees()?.orgs.get(cvr.as_bytes())? {
            Some(v) => Ok(Some(decode(&v)?)),
            None => Ok(None),
        }
    }

    /// Creates or replaces a profile, keeping EST labels unique.
    pub(super) fn put_profile(&self, p: &Profile) -> Result<(), StoreError> {
        let value = encode(p)?;
        let id = p.id.as_bytes();
        let trees = self.trees()?;
        let _w = self
            .shared
            .snapshots
            .changing(Kept::Profiles, &trees.profiles, id)?;
        let res = (&trees.profiles, &trees.labels).transaction(|(profiles, labels)| {
            // The key this profile's label has: folded, unless it is an old
            // label kept under its exact spelling (see labels.rs).
            let key_of = |label: &str| -> ConflictableTransactionResult<_, StoreError> {
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
                let old = decode_profile(&old).map_err(ConflictableTransactionError::Abort)?;
                let old_key = key_of(&old.est_label)?;
                if old_key != key && labels.get(&old_key)?.is_some_and(|o| o.as_ref() == id) {
                    labels.remove(old_key)?;
                }
            }
            labels.insert(key, id)?;
            profiles.insert(p.id.as_bytes(), value.clone())?;
            Ok(())
        });
        settle(res)
    }

    /// Removes a profile and its EST label, atomically (to undo a creation
    /// whose follow-up failed). Removing a missing profile does nothing.
    pub(super) fn remove_profile(&self, id: &str) -> Result<(), StoreError> {
        let trees = self.trees()?;
        let _w = self
            .shared
            .snapshots
            .changing(Kept::Profiles, &trees.profiles, id.as_bytes())?;
        let res = (&trees.profiles, &trees.labels).transaction(|(profiles, labels)| {
            if let Some(old) = profiles.remove(id.as_bytes())? {
                let old = decode_profile(&old).map_err(ConflictableTransactionError::Abort)?;
                // Under its folded key, or an old label's exact spelling.
                for key in [
                    old.est_label.as_bytes().to_vec(),
                    labels::label_key(&old.est_label),
                ] {
                    if labels
                        .get(&key)?
                        .is_some_and(|owner| owner.as_ref() == id.as_bytes())
                    {
                        labels.remove(key)?;
                    }
                }
            }
            Ok(())
        });
        settle(res)
    }

    /// Looks a profile up by UUID.
    pub(super) fn profile(&self, id: &str) -> Result<Option<Profile>, StoreError> {
        match self.trees()?.profiles.get(id.as_bytes())? {
            Some(v) => Ok(Some(decode_profile(&v)?)),
            None => Ok(None),
        }
    }

    /// Looks a profile up by EST label.
    /// Case does not matter (see `labels.rs`).
    pub(super) fn profile_by_label(&self, label: &str) -> Result<Option<Profile>, StoreError> {
        let t = self.trees()?;
        let id = match t.labels.get(label.as_bytes())? {
            Some(id) => Some(id),
            None => t.labels.get(labels::label_key(label))?,
        };
        match id {
            Some(id) => match t.profiles.get(id)? {
                Some(v) => Ok(Some(decode_profile(&v)?)),
                None => Ok(None),
            },
            None => Ok(None),
        }
    }

    /// The organisation's profile for EST requests without a label.
    pub(super) fn default_profile(&self, cvr: &str) -> Result<Option<Profile>, StoreError> {
        for item in self.trees()?.profiles.iter() {
            let (_, v) = item?;
            let p = decode_profile(&v)?;
            if p.cvr == cvr && p.org_default {
                return Ok(Some(p));
            }
        }
        Ok(None)
    }
}
