//! Export and import of every record (`estd store copy`), keys and ids kept.
//! An import is one transaction, with one statement per kind of record.

use std::sync::Arc;

use tokio_postgres::Row;

use super::rows::{Key, Paged, Pinned};
use super::PUT_PERSON;
use super::{db_error, fold, PgStore};
use super::{token_row, LIST_CERTS, LIST_EMAIL_VALIDATIONS, LIST_NOTIFICATIONS, LIST_ORDERS};
use super::{LIST_ORGS, LIST_PEOPLE, LIST_PROFILES, LIST_REVOKED, LIST_TOKENS};
use crate::store::record::{bounded_event, decode, encode};
use crate::store::{BoxIter, Counter, Record, StoreError, StoredCrl};

impl PgStore {
    /// Every record, read in one snapshot (a `REPEATABLE READ` transaction
    /// on one connection, taken before this returns): records committed
    /// later, on this node or another, are not in it, and every record in it
    /// has the records written with it.
    pub(super) fn export_all(&self) -> BoxIter<'_, Record> {
        let snap = match Pinned::begin(self) {
            Ok(snap) => snap,
            Err(e) => return Box::new(std::iter::once(Err(e))),
        };
        fn list<'a, T: Send + 'static>(
            store: &'a PgStore,
            snap: &Arc<Pinned>,
            sql: &'static str,
            first: Key,
            row: fn(&Row) -> Result<T, StoreError>,
        ) -> Paged<'a, T> {
            Paged::new(store, sql, first, row).in_snapshot(snap)
        }
        let text = || Key::Text(String::new());
        let bytes = || Key::Bytes(Vec::new());
        let tail_snap = snap.clone();
        let tail = std::iter::once(()).flat_map(move |()| {
            let crls = crate::store::crl_records(self.crls(&tail_snap));
            let counters: Vec<Result<Record, StoreError>> = match self.counters(&tail_snap) {
                Ok(c) => c
                    .into_iter()
                    .map(|(name, value)| Ok(Record::Counter { name, value }))
                    .collect(),
                Err(e) => vec![Err(e)],
            };
            crls.into_iter().chain(counters)
        });
        Box::new(
            list(self, &snap, LIST_CERTS, bytes(), |row| {
                decode(row.get::<_, &[u8]>(1)).map(Record::Cert)
            })
            .chain(list(self, &snap, LIST_REVOKED, bytes(), |row| {
                decode(row.get::<_, &[u8]>(1)).map(Record::Revoked)
            }))
            .chain(list(self, &snap, LIST_ORGS, text(), |row| {
                decode(row.get::<_, &[u8]>(1)).map(Record::Org)
            }))
            .chain(list(self, &snap, LIST_PROFILES, text(), |row| {
                decode(row.get::<_, &[u8]>(1)).map(Record::Profile)
            }))
            .chain(list(self, &snap, LIST_ORDERS, text(), |row| {
                decode(row.get::<_, &[u8]>(1)).map(Record::Order)
            }))
            .chain(list(
                self,
                &snap,
                "SELECT csr_hash, order_id FROM held WHERE csr_hash > $1 ORDER BY csr_hash LIMIT 500",
                bytes(),
                |row| {
                    let csr_hash: [u8; 32] = row
                        .get::<_, &[u8]>(0)
                        .try_into()
                        .map_err(|_| StoreError::Conflict("malformed held-CSR key".into()))?;
                    Ok(Record::Held {
                        csr_hash,
                        order_id: row.get(1),
                    })
                },
            ))
            .chain(list(self, &snap, LIST_TOKENS, bytes(), |row| {
                token_row(row).map(|(hash, rec)| Record::Token { hash, rec })
            }))
            .chain(list(self, &snap, LIST_NOTIFICATIONS, Key::Int(-1), |row| {
                decode(row.get::<_, &[u8]>(1)).map(Record::Notification)
            }))
            .chain(list(self, &snap, LIST_EMAIL_VALIDATIONS, text(), |row| {
                decode(row.get::<_, &[u8]>(1)).map(Record::EmailValidation)
            }))
            .chain(list(self, &snap, LIST_PEOPLE, text(), |row| {
                decode(row.get::<_, &[u8]>(1)).map(Record::Person)
            }))
            .chain(list(
                self,
                &snap,
                "SELECT id, rec FROM audit WHERE id > $1 ORDER BY id LIMIT 500",
                Key::Int(-1),
                |row| {
                    Ok(Record::Audit {
                        id: row.get::<_, i64>(0) as u64,
                        event: decode(row.get::<_, &[u8]>(1))?,
                    })
                },
            ))
            .chain(tail),
        )
    }

    /// Every stored CRL with its CA generation, oldest generation first.
    fn crls(&self, snap: &Arc<Pinned>) -> Result<Vec<(u32, StoredCrl)>, StoreError> {
        let snap = snap.clone();
        let rows = self.block(async move {
            snap.query("SELECT generation, rec FROM crls ORDER BY generation", &[])
                .await
        })?;
        rows.iter()
            .map(|row| {
                let generation = u32::try_from(row.get::<_, i64>(0))
                    .map_err(|_| StoreError::Conflict("CRL generation out of range".into()))?;
                Ok((generation, decode(row.get::<_, &[u8]>(1))?))
            })
            .collect()
    }

    /// The counters. The CRL number is a sequence, which no snapshot holds
    /// still: it may be ahead of the CRLs read, which only skips numbers.
    fn counters(&self, snap: &Arc<Pinned>) -> Result<Vec<(Counter, u64)>, StoreError> {
        let snap = snap.clone();
        let rows = self.block(async move {
            snap.query(
                "SELECT (SELECT value FROM counters WHERE name = 'unmatched_codes'),
                        (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM crl_number)",
                &[],
            )
            .await
        })?;
        let row = rows
            .first()
            .ok_or_else(|| StoreError::Conflict("no counters row".into()))?;
        Ok(vec![
            (
                Counter::UnmatchedCodes,
                row.get::<_, Option<i64>>(0).unwrap_or(0).max(0) as u64,
            ),
            (Counter::CrlNumber, row.get::<_, i64>(1).max(0) as u64),
        ])
    }

    pub(super) fn import_all(&self, records: Vec<Record>) -> Result<(), StoreError> {
        let batch = Batch::of(records)?;
        self.with(move |mut c| async move {
            let tx = c.transaction().await.map_err(db_error)?;
            if !batch.cert_serials.is_empty() {
                // Counts the rows that are new (xmax = 0), not the ones
                // replaced, so the count needs no full scan afterwards.
                let fresh: i64 = tx
                    .query_one(
                        "WITH written AS (
                             INSERT INTO certs (serial, not_after, rec)
                             SELECT * FROM UNNEST($1::bytea[], $2::int8[], $3::bytea[])
                             ON CONFLICT (serial) DO UPDATE
                                 SET not_after = EXCLUDED.not_after, rec = EXCLUDED.rec
                             RETURNING (xmax = 0) AS fresh)
                         SELECT count(*) FILTER (WHERE fresh) FROM written",
                        &[
                            &batch.cert_serials,
                            &batch.cert_not_after,
                            &batch.cert_values,
                        ],
                    )
                    .await
                    .map_err(db_error)?
                    .get(0);
                tx.execute(super::ADD_TO_CERT_COUNT, &[&"certs", &fresh])
                    .await
                    .map_err(db_error)?;
            }
            if !batch.audit_ids.is_empty() {
                tx.execute(
                    "INSERT INTO audit (id, at_ms, rec)
                     SELECT * FROM UNNEST($1::int8[], $2::int8[], $3::bytea[])
                     ON CONFLICT (id) DO UPDATE SET at_ms = EXCLUDED.at_ms, rec = EXCLUDED.rec",
                    &[&batch.audit_ids, &batch.audit_at, &batch.audit_values],
                )
                .await
                .map_err(db_error)?;
            }
            for (sql, params) in &batch.rows {
                let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
                    params.iter().map(|p| p as _).collect();
                tx.execute(*sql, &refs).await.map_err(db_error)?;
            }
            // Sequences follow what is now stored.
            tx.batch_execute(
                "SELECT setval(pg_get_serial_sequence('audit', 'id'),
                               GREATEST((SELECT max(id) FROM audit), 1));
                 SELECT setval(pg_get_serial_sequence('outbox', 'id'),
                               GREATEST((SELECT max(id) FROM outbox), 1));",
            )
            .await
            .map_err(db_error)?;
            tx.execute(
                "SELECT pg_notify($1, $2)",
                &[&super::EVENTS_CHANNEL, &super::cache::CATALOGUE_PAYLOAD],
            )
            .await
            .map_err(db_error)?;
            tx.commit().await.map_err(db_error)
        })
        .inspect(|_| self.catalogue.forget())
    }
}

/// An import sorted into statements.
#[derive(Default)]
struct Batch {
    cert_serials: Vec<Vec<u8>>,
    cert_not_after: Vec<i64>,
    cert_values: Vec<Vec<u8>>,
    audit_ids: Vec<i64>,
    audit_at: Vec<i64>,
    audit_values: Vec<Vec<u8>>,
    rows: Vec<(&'static str, Vec<Key>)>,
}

impl Batch {
    fn of(records: Vec<Record>) -> Result<Batch, StoreError> {
        let mut b = Batch::default();
        for record in records {
            match record {
                Record::Cert(rec) => {
                    b.cert_serials.push(rec.serial.0.to_vec());
                    b.cert_not_after.push(super::bigint(rec.not_after));
                    b.cert_values.push(encode(&rec)?);
                }
                Record::Audit { id, event } => {
                    b.audit_ids.push(super::bigint(id));
                    b.audit_at.push(super::bigint(event.at_ms));
                    b.audit_values.push(encode(&bounded_event(&event))?);
                }
                Record::Revoked(e) => b.rows.push((
                    "INSERT INTO revoked (serial, rec) VALUES ($1, $2)
                     ON CONFLICT (serial) DO UPDATE SET rec = EXCLUDED.rec",
                    vec![e.serial.0.to_vec().into(), encode(&e)?.into()],
                )),
                Record::Org(o) => b.rows.push((
                    "INSERT INTO orgs (cvr, rec) VALUES ($1, $2)
                     ON CONFLICT (cvr) DO UPDATE SET rec = EXCLUDED.rec",
                    vec![o.cvr.clone().into(), encode(&o)?.into()],
                )),
                Record::Profile(p) => b.rows.push((
                    "INSERT INTO profiles (id, cvr, name_key, label_key, org_default, rec)
                     VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (id) DO UPDATE SET cvr = EXCLUDED.cvr, name_key = EXCLUDED.name_key,
                         label_key = EXCLUDED.label_key, org_default = EXCLUDED.org_default,
                         rec = EXCLUDED.rec",
                    vec![
                        p.id.clone().into(),
                        p.cvr.clone().into(),
                        fold(&p.name).into(),
                        fold(&p.est_label).into(),
                        Key::Bool(p.org_default),
                        encode(&p)?.into(),
                    ],
                )),
                Record::Order(o) => b.rows.push((
                    "INSERT INTO orders (id, rec) VALUES ($1, $2)
                     ON CONFLICT (id) DO UPDATE SET rec = EXCLUDED.rec",
                    vec![o.id.clone().into(), encode(&o)?.into()],
                )),
                Record::Held { csr_hash, order_id } => b.rows.push((
                    "INSERT INTO held (csr_hash, order_id) VALUES ($1, $2)
                     ON CONFLICT (csr_hash) DO UPDATE SET order_id = EXCLUDED.order_id",
                    vec![csr_hash.to_vec().into(), order_id.into()],
                )),
                Record::Token { hash, rec } => b.rows.push((
                    "INSERT INTO tokens (hash, operator, rec) VALUES ($1, $2, $3)
                     ON CONFLICT (hash) DO UPDATE SET operator = EXCLUDED.operator, rec = EXCLUDED.rec",
                    vec![
                        hash.to_vec().into(),
                        Key::Bool(rec.cvr.is_none()),
                        encode(&rec)?.into(),
                    ],
                )),
                Record::Notification(n) => b.rows.push((
                    "INSERT INTO outbox (id, delivered, rec) VALUES ($1, $2, $3)
                     ON CONFLICT (id) DO UPDATE SET delivered = EXCLUDED.delivered, rec = EXCLUDED.rec",
                    vec![
                        Key::Int(super::bigint(n.id)),
                        Key::Bool(n.delivered_at.is_some()),
                        encode(&n)?.into(),
                    ],
                )),
                Record::EmailValidation(v) => b.rows.push((
                    "INSERT INTO email_validations (key, rec) VALUES ($1, $2)
                     ON CONFLICT (key) DO UPDATE SET rec = EXCLUDED.rec",
                    vec![
                        crate::store::email_validation_key(&v.cvr, &v.address).into(),
                        encode(&v)?.into(),
                    ],
                )),
                Record::Person(p) => b.rows.push((
                    PUT_PERSON,
                    vec![p.key().into(), encode(&p)?.into()],
                )),
                Record::Crl { generation, crl } => b.rows.push((
                    "INSERT INTO crls (generation, rec) VALUES ($1, $2)
                     ON CONFLICT (generation) DO UPDATE SET rec = EXCLUDED.rec",
                    vec![Key::Int(i64::from(generation)), encode(&crl)?.into()],
                )),
                Record::Counter {
                    name: Counter::UnmatchedCodes,
                    value,
                } => b.rows.push((
                    "UPDATE counters SET value = $1 WHERE name = 'unmatched_codes'",
                    vec![Key::Int(super::bigint(value))],
                )),
                Record::Counter {
                    name: Counter::CrlNumber,
                    value,
                } => {
                    if value > 0 {
                        b.rows.push((
                            "SELECT setval('crl_number', $1)",
                            vec![Key::Int(super::bigint(value))],
                        ));
                    }
                }
            }
        }
        Ok(b)
    }
}
