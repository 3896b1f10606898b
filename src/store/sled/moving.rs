//! Export and import of every record (`estd store copy`), keys and ids kept.

use std::sync::atomic::Ordering;

use super::codec::{decode, decode_profile, decode_token, encode};
use super::nodes::CRL_NUMBER_KEY;
use super::orders::UNMATCHED_CODE_KEY;
use super::snapshot::Kept;
use super::trees::{expiry_key, read_count, CERT_COUNT_KEY};
use super::SledStore;
use crate::model::CertRecord;
use crate::store::{BoxIter, Counter, Record, Store, StoreError};

impl SledStore {
    /// Every record as the store held it at one moment, taken before this
    /// returns, while writes go on (see `snapshot.rs`).
    pub(super) fn export_all(&self) -> BoxIter<'_, Record> {
        let t = match self.trees() {
            Ok(t) => t,
            Err(e) => return Box::new(std::iter::once(Err(e))),
        };
        // The CRLs and counters are few: read whole at the start.
        let (open, (crls, counters)) = self
            .shared
            .snapshots
            .begin(|| (crate::store::crl_records(self.crls()), self.counters()));
        let snap = open.snapshot.clone();
        let read = |kept: Kept,
                    tree: &sled::Tree,
                    make: fn(&[u8], &[u8]) -> Result<Record, StoreError>| {
            snap.read(kept, tree)
                .map(move |item| item.and_then(|(k, v)| make(&k, &v)))
        };
        let counters: Vec<Result<Record, StoreError>> = match counters {
            Ok(c) => c
                .into_iter()
                .map(|(name, value)| Ok(Record::Counter { name, value }))
                .collect(),
            Err(e) => vec![Err(e)],
        };
        // The snapshot stays open until the last record has been read.
        let close = std::iter::once(open).filter_map(|open| {
            drop(open);
            None
        });
        Box::new(
            read(Kept::Certs, &t.certs, |_, v| decode(v).map(Record::Cert))
                .chain(read(Kept::Revoked, &t.revoked, |_, v| {
                    decode(v).map(Record::Revoked)
                }))
                .chain(read(Kept::Orgs, &t.orgs, |_, v| decode(v).map(Record::Org)))
                .chain(read(Kept::Profiles, &t.profiles, |_, v| {
                    decode_profile(v).map(Record::Profile)
                }))
                .chain(read(Kept::Orders, &t.orders, |_, v| {
                    decode(v).map(Record::Order)
                }))
                .chain(read(Kept::Held, &t.held, |k, v| {
                    let csr_hash: [u8; 32] = k
                        .try_into()
                        .map_err(|_| StoreError::Conflict("malformed held-CSR key".into()))?;
                    Ok(Record::Held {
                        csr_hash,
                        order_id: String::from_utf8_lossy(v).into_owned(),
                    })
                }))
                .chain(read(Kept::Tokens, &t.tokens, |k, v| {
                    Ok(Record::Token {
                        hash: SledStore::hash_key(k, "token")?,
                        rec: decode_token(v)?,
                    })
                }))
                .chain(read(Kept::Outbox, &t.outbox, |_, v| {
                    decode(v).map(Record::Notification)
                }))
                .chain(read(
                    Kept::EmailValidations,
                    &t.email_validations,
                    |_, v| decode(v).map(Record::EmailValidation),
                ))
                .chain(read(Kept::People, &t.people, |_, v| {
                    decode(v).map(Record::Person)
                }))
                .chain(read(Kept::Audit, &t.audit, |k, v| {
                    let id = <[u8; 8]>::try_from(k)
                        .map(u64::from_be_bytes)
                        .map_err(|_| StoreError::Conflict("malformed audit key".into()))?;
                    Ok(Record::Audit {
                        id,
                        event: decode(v)?,
                    })
                }))
                .chain(crls)
                .chain(counters)
                .chain(close),
        )
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
