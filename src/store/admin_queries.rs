//! Store operations the admin API needs beyond the core ones: creating an
//! organisation without overwriting one, and undoing a profile creation.

use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use super::{decode_profile, encode, Store, StoreError};
use crate::model::Organisation;

impl Store {
    /// Inserts a new organisation; `Ok(false)` if its CVR number is taken.
    pub fn insert_new_org(&self, org: &Organisation) -> Result<bool, StoreError> {
        let value = encode(org)?;
        Ok(self
            .trees()?
            .orgs
            .compare_and_swap(org.cvr.as_bytes(), None as Option<&[u8]>, Some(value))?
            .is_ok())
    }

    /// Removes a profile and its EST label, atomically (to undo a creation
    /// whose follow-up failed). Removing a missing profile does nothing.
    pub fn remove_profile(&self, id: &str) -> Result<(), StoreError> {
        let trees = self.trees()?;
        let res = (&trees.profiles, &trees.labels).transaction(|(profiles, labels)| {
            if let Some(old) = profiles.remove(id.as_bytes())? {
                let old = decode_profile(&old).map_err(ConflictableTransactionError::Abort)?;
                // Under its folded key, or an old label's exact spelling.
                for key in [
                    old.est_label.as_bytes().to_vec(),
                    super::labels::label_key(&old.est_label),
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
        match res {
            Ok(()) => Ok(()),
            Err(TransactionError::Abort(e)) => Err(e),
            Err(TransactionError::Storage(e)) => Err(e.into()),
        }
    }
}
