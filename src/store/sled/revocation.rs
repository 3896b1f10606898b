//! Revocation records: a certificate's status and the `revoked` index change
//! in one transaction, so that the CRL (built from the index) and OCSP (which
//! reads the certificate) never disagree. The current CRL and its number live
//! in `meta`, so a restart serves the same CRL and never lowers the number.

use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use super::codec::{decode, encode};
use super::migrate::CRL_KEY;

/// Where a later CA generation's CRL lives in `meta`: this, then the
/// generation's number in decimal. The first generation's stays at
/// [`CRL_KEY`], where stores from before rollovers keep it.
const LATER_CRL_PREFIX: &[u8] = b"crl/";

/// The `meta` key of CA generation `generation`'s CRL.
fn crl_key(generation: u32) -> Vec<u8> {
    if generation <= 1 {
        CRL_KEY.to_vec()
    } else {
        [LATER_CRL_PREFIX, generation.to_string().as_bytes()].concat()
    }
}
use super::snapshot::Kept;
use super::SledStore;
use crate::model::{CertRecord, IllegalTransition, RevocationReason, Serial, UnixSeconds};
use crate::store::{RevokedEntry, StoreError, StoredCrl};

impl SledStore {
    /// Issued → Revoked for good, recording the CRL entry in the same write.
    pub(super) fn revoke_cert(
        &self,
        serial: &Serial,
        reason: RevocationReason,
        at: UnixSeconds,
    ) -> Result<Result<CertRecord, IllegalTransition>, StoreError> {
        let t = self.trees()?;
        let w = self.shared.snapshots.write();
        w.before(Kept::Certs, &t.certs, &serial.0)?;
        w.before(Kept::Revoked, &t.revoked, &serial.0)?;
        let res = (&t.certs, &t.revoked).transaction(|(certs, revoked)| {
            let Some(old) = certs.get(serial.0)? else {
                return Err(ConflictableTransactionError::Abort(StoreError::Conflict(
                    format!("no certificate with serial {serial}"),
                )));
            };
            let mut rec: CertRecord = decode(&old).map_err(ConflictableTransactionError::Abort)?;
            if let Err(e) = rec.revoke(reason, at) {
                return Ok(Err(e));
            }
            let entry = RevokedEntry {
                serial: *serial,
                at,
                reason,
            };
            certs.insert(
                &serial.0,
                encode(&rec).map_err(ConflictableTransactionError::Abort)?,
            )?;
            revoked.insert(
                &serial.0,
                encode(&entry).map_err(ConflictableTransactionError::Abort)?,
            )?;
            Ok(Ok(rec))
        });
        match res {
            Ok(r) => Ok(r),
            Err(TransactionError::Abort(e)) => Err(e),
            Err(TransactionError::Storage(e)) => Err(e.into()),
        }
    }

    /// The stored CRL of CA generation `generation`, if one was made.
    pub(super) fn crl(&self, generation: u32) -> Result<Option<StoredCrl>, StoreError> {
        match self.trees()?.meta.get(crl_key(generation))? {
            Some(v) => Ok(Some(decode(&v)?)),
            None => Ok(None),
        }
    }

    /// Replaces the stored CRL of CA generation `generation` (durable with
    /// the next commit).
    pub(super) fn put_crl(&self, generation: u32, crl: &StoredCrl) -> Result<(), StoreError> {
        let t = self.trees()?;
        let _w = self.shared.snapshots.write();
        t.meta.insert(crl_key(generation), encode(crl)?)?;
        Ok(())
    }

    /// Every stored CRL with its CA generation, oldest generation first.
    pub(super) fn crls(&self) -> Result<Vec<(u32, StoredCrl)>, StoreError> {
        let meta = &self.trees()?.meta;
        let mut crls = Vec::new();
        if let Some(v) = meta.get(CRL_KEY)? {
            crls.push((1, decode(&v)?));
        }
        for item in meta.scan_prefix(LATER_CRL_PREFIX) {
            let (k, v) = item?;
            let generation = std::str::from_utf8(&k[LATER_CRL_PREFIX.len()..])
                .ok()
                .and_then(|n| n.parse::<u32>().ok())
                .ok_or_else(|| StoreError::Conflict("malformed CRL key".into()))?;
            crls.push((generation, decode(&v)?));
        }
        crls.sort_by_key(|(g, _)| *g);
        Ok(crls)
    }
}
