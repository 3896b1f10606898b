//! Certificates: inserting, reading, changing, counting, and the expiry index.

use std::sync::atomic::Ordering;

use super::codec::{decode, encode};
use super::snapshot::Kept;
use super::trees::{expiry_key, read_count, CERT_COUNT_KEY};
use super::SledStore;
use crate::model::{CertRecord, Serial};
use crate::store::{BoxIter, StoreError};

impl SledStore {
    /// Inserts a new certificate; fails with [`StoreError::SerialTaken`] if the serial exists.
    pub(super) fn insert_new_cert(&self, rec: &CertRecord) -> Result<(), StoreError> {
        let value = encode(rec)?;
        let t = self.trees()?;
        let _w = self
            .shared
            .snapshots
            .changing(Kept::Certs, &t.certs, &rec.serial.0)?;
        if t.certs
            .compare_and_swap(rec.serial.0, None as Option<&[u8]>, Some(value))?
            .is_err()
        {
            return Err(StoreError::SerialTaken);
        }
        t.expiry
            .insert(&expiry_key(rec.not_after, &rec.serial)[..], &[])?;
        t.meta.update_and_fetch(CERT_COUNT_KEY, |v| {
            Some((read_count(v) + 1).to_be_bytes().to_vec())
        })?;
        self.shared.cert_count.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// Looks a certificate up by serial.
    pub(super) fn cert(&self, serial: &Serial) -> Result<Option<CertRecord>, StoreError> {
        match self.trees()?.certs.get(serial.0)? {
            Some(v) => Ok(Some(decode(&v)?)),
            None => Ok(None),
        }
    }

    /// Whether a serial is in the store.
    pub(super) fn contains_serial(&self, serial: &Serial) -> Result<bool, StoreError> {
        Ok(self.trees()?.certs.contains_key(serial.0)?)
    }

    /// See [`crate::store::Store::change_cert`].
    pub(super) fn change_cert(
        &self,
        serial: &Serial,
        change: &mut dyn FnMut(&mut CertRecord) -> bool,
    ) -> Result<Option<CertRecord>, StoreError> {
        loop {
            let t = self.trees()?;
            let Some(old) = t.certs.get(serial.0)? else {
                return Err(StoreError::Conflict(format!(
                    "no certificate with serial {serial}"
                )));
            };
            let mut rec: CertRecord = decode(&old)?;
            if !change(&mut rec) {
                return Ok(None);
            }
            let new = encode(&rec)?;
            let _w = self
                .shared
                .snapshots
                .changing(Kept::Certs, &t.certs, &serial.0)?;
            if t.certs
                .compare_and_swap(serial.0, Some(old), Some(new))?
                .is_ok()
            {
                return Ok(Some(rec));
            }
        }
    }

    /// Number of stored certificates (a kept count, not a scan).
    pub(super) fn cert_count(&self) -> usize {
        self.shared.cert_count.load(Ordering::Acquire) as usize
    }

    /// Certificates whose notAfter is in `from..to`, soonest first, through
    /// the expiry index (so an expiry scan reads only what expires).
    pub(super) fn certs_expiring(&self, from: u64, to: u64) -> BoxIter<'_, CertRecord> {
        let start = expiry_key(from, &Serial([0; 16]));
        let end = expiry_key(to, &Serial([0; 16]));
        let (range, unavailable) = match self.trees() {
            Ok(t) => (Some(t.expiry.range(start..end)), None),
            Err(e) => (None, Some(Err(e))),
        };
        Box::new(
            unavailable
                .into_iter()
                .chain(range.into_iter().flatten().filter_map(move |item| {
                    let key = match item {
                        Ok((k, _)) => k,
                        Err(e) => return Some(Err(e.into())),
                    };
                    let mut serial = [0u8; 16];
                    serial.copy_from_slice(key.get(8..24)?);
                    self.cert(&Serial(serial)).transpose()
                })),
        )
    }
}
