//! EST labels are compared without regard to case, so that `DEMO` cannot sit
//! beside another organisation's `demo`. Labels are ASCII (see
//! [`crate::est::is_valid_label`]), so ASCII case folding is complete.
//!
//! The `labels` index is keyed by the label in lower case. A store written
//! when labels were case-sensitive is re-keyed when it is opened
//! ([`fold_label_index`]). Two old labels that differ only in case cannot
//! share the folded key: the first in byte order takes it, and the other
//! stays under its exact spelling, so each keeps working for the clients
//! configured with it (a warning names both). Lookups try the exact spelling
//! first, then the folded one.

use super::StoreError;

/// The index key of `label`: the label in lower case.
pub(super) fn label_key(label: &str) -> Vec<u8> {
    label.to_ascii_lowercase().into_bytes()
}

/// Re-keys entries of the label index that are not in lower case. Runs at
/// every open; a store already folded costs one scan of the (small) index.
/// The writes become durable with the next commit; until then a crash just
/// means the fold runs again.
pub(super) fn fold_label_index(labels: &sled::Tree) -> Result<(), StoreError> {
    let mut mixed = Vec::new();
    for item in labels.iter() {
        let (key, owner) = item?;
        if key.iter().any(u8::is_ascii_uppercase) {
            mixed.push((key, owner));
        }
    }
    for (key, owner) in mixed {
        let folded = key.to_ascii_lowercase();
        match labels.get(&folded)? {
            None => {
                labels.insert(folded, owner)?;
                labels.remove(key)?;
            }
            Some(other) if other == owner => {
                labels.remove(key)?;
            }
            Some(other) => tracing::warn!(
                label = %String::from_utf8_lossy(&key),
                profile = %String::from_utf8_lossy(&owner),
                other_profile = %String::from_utf8_lossy(&other),
                "EST label differs only in case from another profile's; it keeps working \
                 only under its exact spelling (labels are now compared without regard to case)"
            ),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{encode, Store, StoreError};
    use crate::model::Profile;

    /// Writes `p` with its label under its exact spelling, as estd did
    /// before labels were compared without regard to case.
    fn put_as_before(store: &Store, p: &Profile) {
        let inner = store.trees().expect("trees");
        inner
            .profiles
            .insert(p.id.as_bytes(), encode(p).expect("encode"))
            .expect("profile");
        inner
            .labels
            .insert(p.est_label.as_bytes(), p.id.as_bytes())
            .expect("label");
    }

    fn found(store: &Store, label: &str) -> Option<String> {
        store.profile_by_label(label).expect("db").map(|p| p.id)
    }

    #[tokio::test]
    async fn labels_compare_without_case_and_old_stores_keep_working() {
        let dir = tempfile::tempdir().expect("tmp");
        let demo = Profile::system("12345674", "Demo", "demo");
        let shadow = Profile::system("87654311", "Shadow", "DEMO");
        let door = Profile::system("12345674", "Door", "Door");
        {
            let store = Store::open(dir.path(), 1 << 20).expect("open");
            store.put_profile(&demo).expect("demo");
            // New writes: a label differing only in case is a conflict.
            assert!(matches!(
                store.put_profile(&shadow),
                Err(StoreError::Conflict(_))
            ));
            // A store from before: both spellings, and a mixed-case label.
            put_as_before(&store, &shadow);
            put_as_before(&store, &door);
            store.commit().await.expect("commit");
        }
        let store = Store::open(dir.path(), 1 << 20).expect("reopen");
        // A mixed-case label is found in any case.
        for spelling in ["Door", "door", "DOOR"] {
            assert_eq!(found(&store, spelling), Some(door.id.clone()), "{spelling}");
        }
        // Two old labels that differ only in case: each keeps its exact
        // spelling; any other spelling reaches the one in lower case.
        assert_eq!(found(&store, "demo"), Some(demo.id.clone()));
        assert_eq!(found(&store, "DEMO"), Some(shadow.id.clone()));
        assert_eq!(found(&store, "Demo"), Some(demo.id.clone()));
        // Updating an old profile keeps its label; new ones still conflict.
        store.put_profile(&shadow).expect("update shadow");
        store.put_profile(&door).expect("update door");
        assert_eq!(found(&store, "DEMO"), Some(shadow.id.clone()));
        assert_eq!(found(&store, "door"), Some(door.id.clone()));
        let again = Profile::system("12345674", "Door again", "dOOr");
        assert!(matches!(
            store.put_profile(&again),
            Err(StoreError::Conflict(_))
        ));
        // Removing the old profile frees its spelling.
        store.remove_profile(&shadow.id).expect("remove");
        assert_eq!(found(&store, "DEMO"), Some(demo.id.clone()));
        store.remove_profile(&door.id).expect("remove");
        assert_eq!(found(&store, "door"), None);
        assert!(store
            .trees()
            .expect("trees")
            .labels
            .get("Door")
            .expect("db")
            .is_none());
    }
}
