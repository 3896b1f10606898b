//! Export and import of every record (`estd store copy`), keys and ids kept.

use std::sync::atomic::Ordering;

use super::codec::{decode, encode};
use super::nodes::CRL_NUMBER_KEY;
use super::orders::UNMATCHED_CODE_KEY;
use super::trees::{expiry_key, read_count, CERT_COUNT_KEY};
use super::SledStore;
use crate::model::CertRecord;
use crate::store::{BoxIter, Counter, Record, Store, StoreError};

impl SledStore {
    pub(super) fn export_all(&self) -> BoxIter<'_, Record> {
        let held = self.keyed(
            |t| &t.held,
            |k, v| {
                let csr_hash: [u8; 32] = k
                    .try_into()
                    .map_err(|_| StoreError::Conflict("malformed held-CSR key".into()))?;
                Ok(Record::Held {
                    csr_hash,
                    order_id: String::from_utf8_lossy(v).into_owned(),
                })
            },
        );
        let audit = self.keyed(
            |t| &t.audit,
            |k, v| {
                let id = <[u8; 8]>::try_from(k)
                    .map(u64::from_be_bytes)
                    .map_err(|_| StoreError::Conflict("malformed audit key".into()))?;
                Ok(Record::Audit {
                    id,
                    event: decode(v)?,
                })
            },
        );
        let tail = std::iter::once(()).flat_map(move |()| {
            let crls = crate::store::crl_records(self.crls());
            let counters = self.counters().map(|c| {
                c.into_iter()
                    .map(|(name, value)| Record::Counter { name, value })
            });
            let counters: Vec<Result<Record, StoreError>> = match counters {
                Ok(c) => c.map(Ok).collect(),
                Err(e) => vec![Err(e)],
            };
            crls.into_iter().chain(counters)
        });
        Box::new(
            Store::certs(self)
                .map(|r| r.map(Record::Cert))
                .chain(Store::revoked_entries(self).map(|r| r.map(Record::Revoked)))
                .chain(Store::orgs(self).map(|r| r.map(Record::Org)))
                .chain(Store::profiles(self).map(|r| r.map(Record::Profile)))
                .chain(Store::orders(self).map(|r| r.map(Record::Order)))
                .chain(held)
                .chain(
                    Store::tokens(self).map(|r| r.map(|(hash, rec)| Record::Token { hash, rec })),
                )
                .chain(Store::notifications(self).map(|r| r.map(Record::Notification)))
                .chain(Store::email_validations(self).map(|r| r.map(Record::EmailValidation)))
                .chain(Store::people(self).map(|r| r.map(Record::Person)))
                .chain(audit)
                .chain(tail),
        )
    }

    /// Every entry of a tree, turned into a record by `make`.
    fn keyed(
        &self,
        tree: fn(&super::trees::Trees) -> &sled::Tree,
        make: fn(&[u8], &[u8]) -> Result<Record, StoreError>,
    ) -> BoxIter<'static, Record> {
        match self.trees() {
            Ok(t) => Box::new(tree(&t).iter().map(move |item| {
                let (k, v) = item?;
                make(&k, &v)
            })),
            Err(e) => Box::new(std::iter::once(Err(e))),
        }
    }

    fn counters(&self) -> Result<Vec<(Counter, u64)>, StoreError> {
        let t = self.trees()?;
        let crl = self.crl(1)?.map(|c| c.number).unwrap_or(0);
        Ok(vec![
            (
                Counter::UnmatchedCodes,
                read_count(t.meta.get(UNMATCHED_CODE_KEY)?.as_deref()),
            ),
            (
                Counter::CrlNumber,
                read_count(t.meta.get(CRL_NUMBER_KEY)?.as_deref()).max(crl),
            ),
        ])
    }

    pub(super) fn import_all(&self, records: Vec<Record>) -> Result<(), StoreError> {
        let t = self.trees()?;
        let mut added = 0u64;
        for record in records {
            match record {
                Record::Cert(rec) => {
                    if self.put_cert_as_is(&t, &rec)? {
                        added += 1;
                    }
                }
                Record::Revoked(e) => {
                    t.revoked.insert(e.serial.0, encode(&e)?)?;
                }
                Record::Org(o) => self.put_org(&o)?,
                Record::Profile(p) => self.put_profile(&p)?,
                Record::Order(o) => {
                    t.orders.insert(o.id.as_bytes(), encode(&o)?)?;
                }
                Record::Held { csr_hash, order_id } => self.put_held(&csr_hash, &order_id)?,
                Record::Token { hash, rec } => self.put_token(&hash, &rec)?,
                Record::Notification(n) => {
                    // Later ids come from sled's counter: move it past this one.
                    while t.db.generate_id()? < n.id {}
                    t.outbox.insert(n.id.to_be_bytes(), encode(&n)?)?;
                }
                Record::EmailValidation(v) => self.put_email_validation(&v)?,
                Record::Person(p) => self.put_person(&p)?,
                Record::Audit { id, event } => {
                    while t.db.generate_id()? < id {}
                    t.audit.insert(id.to_be_bytes(), encode(&event)?)?;
                }
                Record::Crl { generation, crl } => self.put_crl(generation, &crl)?,
                Record::Counter { name, value } => {
                    let key = match name {
                        Counter::UnmatchedCodes => UNMATCHED_CODE_KEY,
                        Counter::CrlNumber => CRL_NUMBER_KEY,
                    };
                    t.meta.insert(key, &value.to_be_bytes())?;
                }
            }
        }
        if added > 0 {
            let count = t.meta.update_and_fetch(CERT_COUNT_KEY, |v| {
                Some((read_count(v) + added).to_be_bytes().to_vec())
            })?;
            self.shared
                .cert_count
                .store(read_count(count.as_deref()), Ordering::Release);
        }
        self.flush_now()
    }

    /// Stores a certificate record as it is, with its expiry entry; whether
    /// it is new.
    fn put_cert_as_is(
        &self,
        t: &super::trees::Trees,
        rec: &CertRecord,
    ) -> Result<bool, StoreError> {
        let old = t.certs.insert(rec.serial.0, encode(rec)?)?;
        t.expiry
            .insert(&expiry_key(rec.not_after, &rec.serial)[..], &[])?;
        Ok(old.is_none())
    }
}
