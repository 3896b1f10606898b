//! Stores written by older estd versions, brought to the current format when
//! they are opened.
//!
//! `meta/schema` names the format:
//! - "2": records are bare postcard (estd b1190f4 and earlier; profiles and
//!   admin tokens may be older layouts still, see [`legacy`]);
//! - "3": every record starts with its layout version (see `codec.rs`).
//!
//! Each tree is re-encoded in one transaction that also marks it done in
//! `meta`, so a crash halfway leaves no tree half migrated and the next open
//! goes on where this one stopped; the schema changes last, with the CRL.
//! Writes become durable with the next flush (start-up ends with one);
//! until then a crash just means the migration runs again.

use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use super::codec::{encode, legacy};
use crate::model::{AuditEvent, CertRecord, Notification, Order, Organisation};
use crate::store::{RevokedEntry, StoreError, StoredCrl};

const SCHEMA_KEY: &[u8] = b"schema";

/// The format this estd writes.
const CURRENT: u32 = 3;

/// The oldest format this estd migrates.
const OLDEST: u32 = 2;

/// Key in `meta` of the current CRL (see `revocation.rs`).
pub(super) const CRL_KEY: &[u8] = b"crl";

/// Re-encodes one record from schema 2.
type Upgrade = fn(&[u8]) -> Result<Vec<u8>, StoreError>;

fn upgrade<T: serde::Serialize + serde::de::DeserializeOwned>(
    b: &[u8],
) -> Result<Vec<u8>, StoreError> {
    encode(&legacy::decode::<T>(b)?)
}

fn upgrade_profile(b: &[u8]) -> Result<Vec<u8>, StoreError> {
    encode(&legacy::profile(b)?)
}

fn upgrade_token(b: &[u8]) -> Result<Vec<u8>, StoreError> {
    encode(&legacy::token(b)?)
}

/// The trees of records, and how each record of schema 2 is re-encoded.
/// (`labels`, `held` and `expiry` hold keys and ids, not records.)
const TREES_V2: [(&str, Upgrade); 8] = [
    ("certs", upgrade::<CertRecord>),
    ("orgs", upgrade::<Organisation>),
    ("profiles", upgrade_profile),
    ("audit", upgrade::<AuditEvent>),
    ("orders", upgrade::<Order>),
    ("tokens", upgrade_token),
    ("outbox", upgrade::<Notification>),
    ("revoked", upgrade::<RevokedEntry>),
];

/// Brings the store in `db` to the current format; a new store gets it.
pub(super) fn to_current(db: &sled::Db) -> Result<(), StoreError> {
    let meta = db.open_tree("meta")?;
    let found = match meta.get(SCHEMA_KEY)? {
        None => {
            meta.insert(SCHEMA_KEY, CURRENT.to_string().as_bytes())?;
            return Ok(());
        }
        Some(v) => v,
    };
    let version = std::str::from_utf8(&found)
        .ok()
        .and_then(|s| s.parse::<u32>().ok())
        .filter(|v| (OLDEST..=CURRENT).contains(v))
        .ok_or_else(|| StoreError::Format {
            found: String::from_utf8_lossy(&found).into_owned(),
            supported: CURRENT,
        })?;
    if version == 2 {
        from_v2(db, &meta)?;
    }
    Ok(())
}

fn done_key(tree: &str) -> Vec<u8> {
    format!("migrated_v3:{tree}").into_bytes()
}

/// Schema 2 → 3: every record gets its version byte.
fn from_v2(db: &sled::Db, meta: &sled::Tree) -> Result<(), StoreError> {
    tracing::info!("upgrading the store from format 2 to {CURRENT}");
    for (name, upgrade) in TREES_V2 {
        if meta.get(done_key(name))?.is_none() {
            upgrade_tree(&db.open_tree(name)?, meta, name, upgrade)?;
        }
    }
    let crl = match meta.get(CRL_KEY)? {
        Some(v) => Some(upgrade::<StoredCrl>(&v)?),
        None => None,
    };
    let res = meta.transaction(|meta| {
        if let Some(crl) = &crl {
            meta.insert(CRL_KEY, crl.as_slice())?;
        }
        meta.insert(SCHEMA_KEY, CURRENT.to_string().as_bytes())?;
        for (name, _) in TREES_V2 {
            meta.remove(done_key(name))?;
        }
        Ok::<_, ConflictableTransactionError<StoreError>>(())
    });
    settle(res)
}

/// Re-encodes every record of one tree, and marks it done, in one transaction.
fn upgrade_tree(
    tree: &sled::Tree,
    meta: &sled::Tree,
    name: &str,
    upgrade: Upgrade,
) -> Result<(), StoreError> {
    let mut upgraded = Vec::new();
    for item in tree.iter() {
        let (k, v) = item?;
        upgraded.push((k, upgrade(&v)?));
    }
    let res = (tree, meta).transaction(|(tree, meta)| {
        for (k, v) in &upgraded {
            tree.insert(k, v.as_slice())?;
        }
        meta.insert(done_key(name), &[1])?;
        Ok::<_, ConflictableTransactionError<StoreError>>(())
    });
    settle(res)
}

fn settle(res: Result<(), TransactionError<StoreError>>) -> Result<(), StoreError> {
    match res {
        Ok(()) => Ok(()),
        Err(TransactionError::Abort(e)) => Err(e),
        Err(TransactionError::Storage(e)) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Profile, TokenRecord};
    use crate::store::sled::codec::decode;

    fn org(cvr: &str) -> Organisation {
        Organisation {
            cvr: cvr.into(),
            name: "Demo".into(),
            allow_user_certs: false,
            allow_seal: false,
            p_numbers: vec![],
            se_numbers: vec![],
        }
    }

    /// A store of schema 2, interrupted after its `orgs` were migrated:
    /// the migration goes on from there, and a second run changes nothing.
    #[test]
    fn schema_2_is_migrated_and_resumes_after_a_crash() {
        let dir = tempfile::tempdir().expect("tmp");
        let db = sled::open(dir.path()).expect("open");
        let meta = db.open_tree("meta").expect("meta");
        meta.insert(SCHEMA_KEY, b"2").expect("schema");
        let profile = Profile::system("12345674", "Demo", "demo");
        db.open_tree("profiles")
            .expect("profiles")
            .insert(
                profile.id.as_bytes(),
                postcard::to_stdvec(&profile).expect("encode"),
            )
            .expect("profile");
        let token = TokenRecord {
            cvr: None,
            name: "operator".into(),
            created_at: 1,
            expires_at: None,
            revoked_at: None,
        };
        db.open_tree("tokens")
            .expect("tokens")
            .insert([7u8; 32], postcard::to_stdvec(&token).expect("encode"))
            .expect("token");
        // Already migrated before the "crash": read as schema 2 it would fail.
        db.open_tree("orgs")
            .expect("orgs")
            .insert("12345674", encode(&org("12345674")).expect("encode"))
            .expect("org");
        meta.insert(done_key("orgs"), &[1]).expect("marker");

        for _ in 0..2 {
            to_current(&db).expect("migrate");
            assert_eq!(
                meta.get(SCHEMA_KEY).expect("get").as_deref(),
                Some(&b"3"[..])
            );
            let got: Profile = decode(
                &db.open_tree("profiles")
                    .expect("t")
                    .get(profile.id.as_bytes())
                    .expect("get")
                    .expect("there"),
            )
            .expect("decode");
            assert_eq!(got, profile);
            let got: TokenRecord = decode(
                &db.open_tree("tokens")
                    .expect("t")
                    .get([7u8; 32])
                    .expect("get")
                    .expect("there"),
            )
            .expect("decode");
            assert_eq!(got, token);
            let got: Organisation = decode(
                &db.open_tree("orgs")
                    .expect("t")
                    .get("12345674")
                    .expect("get")
                    .expect("there"),
            )
            .expect("decode");
            assert_eq!(got, org("12345674"));
            for (name, _) in TREES_V2 {
                assert!(meta.get(done_key(name)).expect("get").is_none(), "{name}");
            }
        }
    }

    #[test]
    fn a_newer_format_is_refused() {
        let dir = tempfile::tempdir().expect("tmp");
        let db = sled::open(dir.path()).expect("open");
        db.open_tree("meta")
            .expect("meta")
            .insert(SCHEMA_KEY, b"4")
            .expect("schema");
        assert!(matches!(to_current(&db), Err(StoreError::Format { .. })));
    }
}
