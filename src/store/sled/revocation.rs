//! Revocation records: a certificate's status and the `revoked` index change
//! in one transaction, so that the CRL (built from the index) and OCSP (which
//! reads the certificate) never disagree. The current CRL and its number live
//! in `meta`, so a restart serves the same CRL and never lowers the number.

use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use super::codec::{decode, encode};
use super::migrate::CRL_KEY;
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

    /// The stored CRL, if one was made.
    pub(super) fn crl(&self) -> Result<Option<StoredCrl>, StoreError> {
        match self.trees()?.meta.get(CRL_KEY)? {
            Some(v) => Ok(Some(decode(&v)?)),
            None => Ok(None),
        }
    }

    /// Replaces the stored CRL (durable with the next commit).
    pub(super) fn put_crl(&self, crl: &StoredCrl) -> Result<(), StoreError> {
        self.trees()?.meta.insert(CRL_KEY, encode(crl)?)?;
        Ok(())
    }
}
