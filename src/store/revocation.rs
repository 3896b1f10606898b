//! Revocation records: a certificate's status and the `revoked` index change
//! in one transaction, so that the CRL (built from the index) and OCSP (which
//! reads the certificate) never disagree. The current CRL and its number live
//! in `meta`, so a restart serves the same CRL and never lowers the number.

use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use super::{decode, encode, Store, StoreError};
use crate::model::{CertRecord, IllegalTransition, RevocationReason, Serial, UnixSeconds};

const CRL_KEY: &[u8] = b"crl";

/// One revoked certificate, as the CRL lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RevokedEntry {
    /// Serial.
    pub serial: Serial,
    /// When.
    pub at: UnixSeconds,
    /// Why.
    pub reason: RevocationReason,
}

/// The current CRL.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredCrl {
    /// CRL number.
    pub number: u64,
    /// thisUpdate.
    pub this_update: UnixSeconds,
    /// nextUpdate.
    pub next_update: UnixSeconds,
    /// DER.
    pub der: Vec<u8>,
}

impl Store {
    /// Issued → Revoked for good, recording the CRL entry in the same write.
    pub fn revoke_cert(
        &self,
        serial: &Serial,
        reason: RevocationReason,
        at: UnixSeconds,
    ) -> Result<Result<CertRecord, IllegalTransition>, StoreError> {
        let res = (&self.trees()?.certs, &self.trees()?.revoked).transaction(|(certs, revoked)| {
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

    /// Every revoked certificate, in serial order.
    pub fn revoked_entries(&self) -> impl Iterator<Item = Result<RevokedEntry, StoreError>> + '_ {
        self.values(|t| &t.revoked, decode)
    }

    /// The stored CRL, if one was made.
    pub fn crl(&self) -> Result<Option<StoredCrl>, StoreError> {
        match self.trees()?.meta.get(CRL_KEY)? {
            Some(v) => Ok(Some(decode(&v)?)),
            None => Ok(None),
        }
    }

    /// Replaces the stored CRL (durable with the next commit).
    pub fn put_crl(&self, crl: &StoredCrl) -> Result<(), StoreError> {
        self.trees()?.meta.insert(CRL_KEY, encode(crl)?)?;
        Ok(())
    }
}
