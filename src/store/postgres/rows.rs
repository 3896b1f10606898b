//! Parameters and paged lists: the owned values that cross to the engine's
//! runtime, and iterators that read a list a page at a time (so a list of a
//! million certificates never sits in memory at once).

use std::sync::Arc;

use deadpool_postgres::{ClientWrapper, Object};
use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};
use tokio_postgres::Row;

use super::{db_error, pool_error, PgStore};
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

/// One connection held in a `REPEATABLE READ READ ONLY` transaction, so that
/// every statement run through it sees the database as it was when the
/// transaction took its snapshot (at [`Pinned::begin`]): a backup or a copy
/// reads one moment, not a page of each.
///
/// When the last holder drops it, the connection is taken out of the pool
/// and closed, which ends the transaction; it never goes back to the pool
/// with a transaction open.
pub(super) struct Pinned {
    conn: tokio::sync::Mutex<Option<Object>>,
}

impl Pinned {
    /// Takes a connection from the pool and its snapshot, now.
    pub(super) fn begin(store: &PgStore) -> Result<Arc<Pinned>, StoreError> {
        let pool = store.pool.clone();
        store.block(async move {
            let pinned = Pinned {
                conn: tokio::sync::Mutex::new(Some(pool.get().await.map_err(pool_error)?)),
            };
            {
                let conn = pinned.conn.lock().await;
                let c = conn.as_deref().ok_or(StoreError::Closed)?;
                // The snapshot is taken by the first statement after BEGIN.
                c.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SELECT 1")
                    .await
                    .map_err(db_error)?;
            }
            Ok(Arc::new(pinned))
        })
    }

    /// Runs `sql` with `params` in the snapshot.
    pub(super) async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        let conn = self.conn.lock().await;
        let c = conn.as_deref().ok_or(StoreError::Closed)?;
        query(c, sql, params).await
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.get_mut().take() {
            drop(Object::take(conn));
        }
    }
}

/// Runs a statement, prepared once per connection.
async fn query(
    c: &ClientWrapper,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>, StoreError> {
    let stmt = c.prepare_cached(sql).await.map_err(db_error)?;
    c.query(&stmt, params).await.map_err(db_error)
}

/// A list read in pages by a statement of the form
/// `SELECT key, … WHERE key > $1 ORDER BY key LIMIT n`: through pooled
/// connections, or all in one snapshot.
pub(super) struct Paged<'a, T> {
    store: &'a PgStore,
    pinned: Option<Arc<Pinned>>,
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
            pinned: None,
            sql,
            after: Some(first),
            buffer: Vec::new().into_iter(),
            decode,
        }
    }
}

impl<T> Paged<'_, T> {
    /// The same list, read in `pinned`'s snapshot.
    pub(super) fn in_snapshot(mut self, pinned: &Arc<Pinned>) -> Self {
        self.pinned = Some(pinned.clone());
        self
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
        let rows = match self.pinned.clone() {
            None => self.store.with(move |c| async move {
                let rows = query(&c, sql, &[&after]).await?;
                Ok((rows, after))
            }),
            Some(pinned) => self.store.block(async move {
                let rows = pinned.query(sql, &[&after]).await?;
                Ok((rows, after))
            }),
        };
        let page = rows.map(|(rows, after)| {
            let last = rows.last().map(|r| row_key(r, &after));
            let items: Vec<Result<T, StoreError>> = rows.iter().map(decode).collect();
            (items, last)
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
