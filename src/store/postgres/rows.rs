//! Parameters and paged lists: the owned values that cross to the engine's
//! runtime, and iterators that read a list a page at a time (so a list of a
//! million certificates never sits in memory at once).

use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};
use tokio_postgres::Row;

use super::{db_error, PgStore};
use crate::model::CertRecord;
use crate::store::record::decode;
use crate::store::StoreError;

/// A key: what a list continues after, or what a look-up finds.
#[derive(Debug, Clone)]
pub(super) enum Key {
    Bytes(Vec<u8>),
    Text(String),
    Int(i64),
    Bool(bool),
}

/// A statement parameter (owned, so that it can cross to the runtime).
pub(super) type Param = Key;

impl From<String> for Key {
    fn from(s: String) -> Key {
        Key::Text(s)
    }
}

impl From<Vec<u8>> for Key {
    fn from(b: Vec<u8>) -> Key {
        Key::Bytes(b)
    }
}

impl ToSql for Key {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Key::Bytes(b) => b.to_sql(ty, out),
            Key::Text(s) => s.to_sql(ty, out),
            Key::Int(i) => i.to_sql(ty, out),
            Key::Bool(b) => b.to_sql(ty, out),
        }
    }

    fn accepts(ty: &Type) -> bool {
        <Vec<u8> as ToSql>::accepts(ty)
            || <String as ToSql>::accepts(ty)
            || <i64 as ToSql>::accepts(ty)
            || <bool as ToSql>::accepts(ty)
    }

    to_sql_checked!();
}

/// The key of a row of a list (its first column), to continue after.
fn row_key(row: &Row, like: &Key) -> Key {
    match like {
        Key::Bytes(_) => Key::Bytes(row.get::<_, Vec<u8>>(0)),
        Key::Text(_) => Key::Text(row.get::<_, String>(0)),
        Key::Int(_) => Key::Int(row.get::<_, i64>(0)),
        Key::Bool(_) => Key::Bool(row.get::<_, bool>(0)),
    }
}

/// A list read in pages by a statement of the form
/// `SELECT key, … WHERE key > $1 ORDER BY key LIMIT n`.
pub(super) struct Paged<'a, T> {
    store: &'a PgStore,
    sql: &'static str,
    after: Option<Key>,
    buffer: std::vec::IntoIter<Result<T, StoreError>>,
    decode: fn(&Row) -> Result<T, StoreError>,
}

impl<'a, T: Send + 'static> Paged<'a, T> {
    pub(super) fn new(
        store: &'a PgStore,
        sql: &'static str,
        first: Key,
        decode: fn(&Row) -> Result<T, StoreError>,
    ) -> Paged<'a, T> {
        Paged {
            store,
            sql,
            after: Some(first),
            buffer: Vec::new().into_iter(),
            decode,
        }
    }
}

impl<T: Send + 'static> Iterator for Paged<'_, T> {
    type Item = Result<T, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(item) = self.buffer.next() {
            return Some(item);
        }
        let after = self.after.take()?;
        let sql = self.sql;
        let decode = self.decode;
        let page = self.store.with(move |c| async move {
            let stmt = c.prepare_cached(sql).await.map_err(db_error)?;
            let rows = c.query(&stmt, &[&after]).await.map_err(db_error)?;
            let last = rows.last().map(|r| row_key(r, &after));
            let items: Vec<Result<T, StoreError>> = rows.iter().map(decode).collect();
            Ok((items, last))
        });
        match page {
            Err(e) => Some(Err(e)),
            Ok((items, last)) => {
                // A short page is the last one.
                self.after = last.filter(|_| items.len() as i64 >= super::PAGE);
                self.buffer = items.into_iter();
                self.buffer.next()
            }
        }
    }
}

/// Certificates expiring in a range, soonest first, read in pages through
/// the expiry index.
pub(super) struct Expiring<'a> {
    store: &'a PgStore,
    to: i64,
    after: Option<(i64, Vec<u8>)>,
    buffer: std::vec::IntoIter<Result<CertRecord, StoreError>>,
}

impl<'a> Expiring<'a> {
    pub(super) fn new(store: &'a PgStore, from: i64, to: i64) -> Expiring<'a> {
        Expiring {
            store,
            to,
            after: Some((from, Vec::new())),
            buffer: Vec::new().into_iter(),
        }
    }
}

impl Iterator for Expiring<'_> {
    type Item = Result<CertRecord, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(item) = self.buffer.next() {
            return Some(item);
        }
        let (at, serial) = self.after.take()?;
        let to = self.to;
        let page = self.store.with(move |c| async move {
            let stmt = c
                .prepare_cached(
                    "SELECT not_after, serial, rec FROM certs
                     WHERE (not_after, serial) > ($1, $2) AND not_after < $3
                     ORDER BY not_after, serial LIMIT 500",
                )
                .await
                .map_err(db_error)?;
            let rows = c
                .query(&stmt, &[&at, &serial, &to])
                .await
                .map_err(db_error)?;
            let last = rows
                .last()
                .map(|r| (r.get::<_, i64>(0), r.get::<_, Vec<u8>>(1)));
            let items: Vec<_> = rows
                .iter()
                .map(|r| decode::<CertRecord>(r.get::<_, &[u8]>(2)))
                .collect();
            Ok((items, last))
        });
        match page {
            Err(e) => Some(Err(e)),
            Ok((items, last)) => {
                self.after = last.filter(|_| items.len() as i64 >= super::PAGE);
                self.buffer = items.into_iter();
                self.buffer.next()
            }
        }
    }
}
