//! The shared engine: PostgreSQL, for several estd nodes over one database.
//!
//! Every record is stored in the engine-neutral encoding (`store/record.rs`)
//! beside the columns that carry its keys; the invariants that must hold
//! across nodes are the database's: primary keys (serial, CVR, order
//! reference), unique indexes (EST label without case, profile name per
//! organisation, one default profile), a sequence for CRL numbers, advisory
//! locks for exclusive work, `FOR UPDATE SKIP LOCKED` for the outbox, and
//! `LISTEN/NOTIFY` for the events that caches follow (see `events.rs`).
//!
//! The engine runs its own small tokio runtime, which owns the connection
//! pool, the committers (`commit.rs`) and the listener. The trait's
//! synchronous methods hand their query to that runtime and wait for it
//! (inside `block_in_place` on a multi-threaded runtime, so that the caller's
//! other tasks move on); every write is committed, synchronously, before the
//! method returns, so [`Store::durable`] has nothing left to do.
//!
//! Schema migrations are refinery's (`migrations/`), run at start-up under an
//! advisory lock, so nodes starting together migrate once.

mod cache;
mod commit;
mod events;
mod moving;
mod rows;

use std::future::Future;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use tokio::sync::broadcast;
use tokio_postgres::error::SqlState;
use tokio_postgres::NoTls;

use crate::model::{
    AuditEvent, CertRecord, EmailValidation, IllegalTransition, Notification, Order, Organisation,
    Person, Profile, RevocationReason, Serial, Session, TokenRecord, UnixSeconds,
};
use crate::store::record::{bounded_event, decode, encode};
use crate::store::{
    AuditPage, BoxFuture, BoxIter, Exclusive, ExclusiveGuard, Issuance, IssueOutcome,
    PendingIssuance, RevokedEntry, Store, StoreError, StoreEvent, StoreHealth, StoredCrl,
};
use rows::{Key, Paged};

refinery::embed_migrations!("src/store/postgres/migrations");

/// How long a request waits for a connection, or for a new one to be made,
/// before the store counts as unreachable (and EST answers 503).
const CONNECT_WAIT: Duration = Duration::from_secs(2);

/// Rows fetched per round trip when a list is read.
const PAGE: i64 = 500;

/// The lists, a page at a time (also read in one snapshot by `moving.rs`).
const LIST_CERTS: &str =
    "SELECT serial, rec FROM certs WHERE serial > $1 ORDER BY serial LIMIT 500";
const LIST_REVOKED: &str =
    "SELECT serial, rec FROM revoked WHERE serial > $1 ORDER BY serial LIMIT 500";
const LIST_ORGS: &str = "SELECT cvr, rec FROM orgs WHERE cvr > $1 ORDER BY cvr LIMIT 500";
const LIST_PROFILES: &str = "SELECT id, rec FROM profiles WHERE id > $1 ORDER BY id LIMIT 500";
const LIST_ORDERS: &str = "SELECT id, rec FROM orders WHERE id > $1 ORDER BY id LIMIT 500";
const LIST_EMAIL_VALIDATIONS: &str =
    "SELECT key, rec FROM email_validations WHERE key > $1 ORDER BY key LIMIT 500";
const LIST_PEOPLE: &str = "SELECT key, rec FROM people WHERE key > $1 ORDER BY key LIMIT 500";
const LIST_NOTIFICATIONS: &str = "SELECT id, rec FROM outbox WHERE id > $1 ORDER BY id LIMIT 500";
const LIST_TOKENS: &str = "SELECT hash, rec FROM tokens WHERE hash > $1 ORDER BY hash LIMIT 500";

/// A row of [`LIST_TOKENS`].
fn token_row(row: &tokio_postgres::Row) -> Result<([u8; 32], TokenRecord), StoreError> {
    let hash: [u8; 32] = row
        .get::<_, &[u8]>(0)
        .try_into()
        .map_err(|_| StoreError::Conflict("malformed token key".into()))?;
    Ok((hash, decode(row.get::<_, &[u8]>(1))?))
}

/// The advisory lock held while migrating (any fixed 64-bit key).
const MIGRATION_LOCK: i64 = 0x6573_7464_0001;

/// The channel of [`StoreEvent`]s.
const EVENTS_CHANNEL: &str = "estd_events";

/// Rows the stored-certificate count is spread over (`certs`, `certs/0`…):
/// writers add to one row each, readers add them up.
const CERT_COUNT_SHARDS: usize = 64;

/// Adds `$2` to the count row `$1`, creating it.
const ADD_TO_CERT_COUNT: &str = "INSERT INTO counters (name, value) VALUES ($1, $2)
     ON CONFLICT (name) DO UPDATE SET value = counters.value + EXCLUDED.value";

/// The stored-certificate count.
const CERT_COUNT: &str = "SELECT coalesce(sum(value), 0)::int8 FROM counters
     WHERE name = 'certs' OR name LIKE 'certs/%'";

/// The PostgreSQL store; the crate sees it only as `dyn Store`.
pub(super) struct PgStore {
    /// `None` only while dropping.
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
    pool: Pool,
    commits: commit::Committer,
    events: broadcast::Sender<StoreEvent>,
    health: Arc<Health>,
    catalogue: Arc<cache::Catalogue>,
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // Dropping a runtime may not block inside another runtime.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// The last outcome of talking to the database.
#[derive(Default)]
pub(super) struct Health {
    failures: AtomicUsize,
    last_error: Mutex<Option<String>>,
}

impl Health {
    fn record<T>(&self, r: &Result<T, StoreError>) {
        let mut last = self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match r {
            Ok(_) => *last = None,
            Err(e @ (StoreError::Unreachable(_) | StoreError::Engine(_))) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                *last = Some(e.to_string());
            }
            Err(_) => {}
        }
    }
}

/// A database error as a store error: a broken connection or a pool that
/// cannot connect is [`StoreError::Unreachable`], a broken unique rule a
/// [`StoreError::Conflict`].
pub(super) fn db_error(e: tokio_postgres::Error) -> StoreError {
    if let Some(db) = e.as_db_error() {
        if *db.code() == SqlState::UNIQUE_VIOLATION {
            return StoreError::Conflict(conflict_text(db.constraint()));
        }
        if matches!(
            db.code().code().get(..2),
            Some("08") | Some("57") | Some("53")
        ) {
            // Connection exception, operator intervention (shutdown), insufficient resources.
            return StoreError::Unreachable(Arc::new(e));
        }
        return StoreError::engine(e);
    }
    // No SQLSTATE: the connection itself failed.
    StoreError::Unreachable(Arc::new(e))
}

/// A u64 as a BIGINT parameter. Values past `i64::MAX` (an open upper
/// bound such as `u64::MAX`) saturate rather than wrap negative, which
/// would turn "everything" into "nothing".
pub(super) fn bigint(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn conflict_text(constraint: Option<&str>) -> String {
    match constraint {
        Some("profiles_label") => {
            "this EST label is already in use (labels are compared without regard to case)".into()
        }
        Some("profiles_name") => {
            "a profile of this name already exists in the organisation; profile names are unique within an organisation".into()
        }
        Some("profiles_default") => {
            "the organisation already has a default profile; clear org_default there first".into()
        }
        Some(other) => format!("already exists ({other})"),
        None => "already exists".into(),
    }
}

pub(super) fn pool_error(e: deadpool_postgres::PoolError) -> StoreError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => db_error(e),
        other => StoreError::Unreachable(Arc::new(other)),
    }
}

impl PgStore {
    /// Connects to `url` with a pool of `pool_size`, migrates the schema
    /// under a lock, and starts the committers and the event listener.
    pub(super) fn open(url: &str, pool_size: usize) -> Result<PgStore, StoreError> {
        let pg_config = tokio_postgres::Config::from_str(url).map_err(StoreError::engine)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("estd-pg")
            .enable_all()
            .build()
            .map_err(StoreError::engine)?;
        let handle = runtime.handle().clone();
        let manager = Manager::from_config(
            pg_config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(pool_size)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(CONNECT_WAIT))
            .create_timeout(Some(CONNECT_WAIT))
            .recycle_timeout(Some(CONNECT_WAIT))
            .build()
            .map_err(StoreError::engine)?;
        let (events, _) = broadcast::channel(4096);
        let health = Arc::new(Health::default());
        let commits = {
            let _entered = handle.enter();
            commit::Committer::start(&handle, pool.clone(), health.clone())
        };
        let store = PgStore {
            runtime: Some(runtime),
            handle,
            pool,
            commits,
            events,
            health,
            catalogue: Arc::new(cache::Catalogue::default()),
        };
        store.block({
            let pool = store.pool.clone();
            async move { migrate(&pool).await }
        })?;
        // The feed is live before the store is handed out: an event between
        // opening and the first LISTEN would otherwise be lost without a
        // resync (a revocation on another node, unseen by this node's OCSP
        // cache).
        let (listening, live) = tokio::sync::oneshot::channel();
        events::listen(
            &store.handle,
            pg_config,
            store.events.clone(),
            store.catalogue.clone(),
            listening,
        );
        store.block(async move {
            match tokio::time::timeout(CONNECT_WAIT * 2, live).await {
                Ok(Ok(())) => Ok(()),
                _ => Err(StoreError::Unreachable(Arc::new(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the store event listener could not LISTEN in time",
                )))),
            }
        })?;
        Ok(store)
    }

    /// Runs `work` on the engine's runtime and waits for it.
    fn block<T: Send + 'static>(
        &self,
        work: impl Future<Output = Result<T, StoreError>> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let _ = tx.send(work.await);
        });
        let wait = move || rx.recv().unwrap_or(Err(StoreError::Closed));
        let r = match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(wait)
            }
            _ => wait(),
        };
        self.health.record(&r);
        r
    }

    /// Runs `work` with a pooled connection on the engine's runtime and waits.
    fn with<T, F, Fut>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(Object) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, StoreError>> + Send,
    {
        let pool = self.pool.clone();
        self.block(async move {
            let client = pool.get().await.map_err(pool_error)?;
            work(client).await
        })
    }

    /// Runs `work` on the engine's runtime without blocking the caller.
    fn spawn<T, F, Fut>(&self, work: F) -> BoxFuture<'_, Result<T, StoreError>>
    where
        T: Send + 'static,
        F: FnOnce(Pool) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let pool = self.pool.clone();
        let task = self.handle.spawn(work(pool));
        let health = self.health.clone();
        Box::pin(async move {
            let r = task.await.unwrap_or(Err(StoreError::Closed));
            health.record(&r);
            r
        })
    }

    /// One record by key, decoded.
    fn get<T: serde::de::DeserializeOwned + Send + 'static>(
        &self,
        sql: &'static str,
        key: Key,
    ) -> Result<Option<T>, StoreError> {
        let row = self.with(move |c| async move {
            let stmt = c.prepare_cached(sql).await.map_err(db_error)?;
            c.query_opt(&stmt, &[&key]).await.map_err(db_error)
        })?;
        row.map(|r| decode(r.get::<_, &[u8]>(0))).transpose()
    }

    /// One statement with owned parameters; the number of rows it touched.
    fn exec(&self, sql: &'static str, params: Vec<rows::Param>) -> Result<u64, StoreError> {
        self.with(move |c| async move {
            let stmt = c.prepare_cached(sql).await.map_err(db_error)?;
            let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
                params.iter().map(|p| p as _).collect();
            c.execute(&stmt, &refs).await.map_err(db_error)
        })
    }

    /// One statement that changes profiles or organisations, announced to
    /// every node's copy of them in the same transaction; the number of rows
    /// it touched.
    fn exec_announced(
        &self,
        sql: &'static str,
        params: Vec<rows::Param>,
    ) -> Result<u64, StoreError> {
        let n = self.with(move |mut c| async move {
            let tx = c.transaction().await.map_err(db_error)?;
            let stmt = tx.prepare_cached(sql).await.map_err(db_error)?;
            let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
                params.iter().map(|p| p as _).collect();
            let n = tx.execute(&stmt, &refs).await.map_err(db_error)?;
            tx.execute(
                "SELECT pg_notify($1, $2)",
                &[&EVENTS_CHANNEL, &cache::CATALOGUE_PAYLOAD],
            )
            .await
            .map_err(db_error)?;
            tx.commit().await.map_err(db_error)?;
            Ok(n)
        });
        // Whatever the outcome, this node reads its own write from now on.
        self.catalogue.forget();
        n
    }

    /// Every record of a list, decoded, in key order, read a page at a time.
    fn list<T: serde::de::DeserializeOwned + Send + 'static>(
        &self,
        sql: &'static str,
        first: Key,
    ) -> BoxIter<'_, T> {
        Box::new(Paged::new(self, sql, first, |row| {
            decode::<T>(row.get::<_, &[u8]>(1))
        }))
    }

    /// Reads, changes and writes back a record with compare-and-swap, as
    /// often as another writer got in between.
    fn change<T>(
        &self,
        read: &'static str,
        write: &'static str,
        key: Key,
        change: &mut dyn FnMut(&mut T) -> bool,
    ) -> Result<Option<Option<T>>, StoreError>
    where
        T: serde::Serialize + serde::de::DeserializeOwned,
    {
        loop {
            let k = key.clone();
            let Some(old) = self.with(move |c| async move {
                let stmt = c.prepare_cached(read).await.map_err(db_error)?;
                let row = c.query_opt(&stmt, &[&k]).await.map_err(db_error)?;
                Ok(row.map(|r| r.get::<_, Vec<u8>>(0)))
            })?
            else {
                return Ok(None);
            };
            let mut rec: T = decode(&old)?;
            if !change(&mut rec) {
                return Ok(Some(None));
            }
            let new = encode(&rec)?;
            let written = self.exec(
                write,
                vec![
                    key.clone(),
                    rows::Param::Bytes(new),
                    rows::Param::Bytes(old),
                ],
            )?;
            if written == 1 {
                return Ok(Some(Some(rec)));
            }
        }
    }
}

/// Runs refinery's migrations under an advisory lock, so that nodes starting
/// together migrate once and the others wait for it.
async fn migrate(pool: &Pool) -> Result<(), StoreError> {
    let mut client = pool.get().await.map_err(pool_error)?;
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(db_error)?;
    let client_ref: &mut tokio_postgres::Client = &mut client;
    let done = migrations::runner()
        .run_async(client_ref)
        .await
        .map_err(StoreError::engine);
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(db_error);
    done?;
    unlocked?;
    Ok(())
}

/// The key of an EST label or a profile name: ASCII lower case.
fn fold(s: &str) -> String {
    s.to_ascii_lowercase()
}

/// Releases an advisory lock when dropped; a connection that cannot say so
/// is closed instead, which releases it too.
struct AdvisoryLock {
    client: Option<Object>,
    key: i64,
    handle: tokio::runtime::Handle,
}

impl Drop for AdvisoryLock {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            let key = self.key;
            self.handle.spawn(async move {
                if client
                    .execute("SELECT pg_advisory_unlock($1)", &[&key])
                    .await
                    .is_err()
                {
                    drop(Object::take(client));
                }
            });
        }
    }
}

/// Writes a person, new or changed (also `store copy`'s row).
pub(super) const PUT_PERSON: &str = "INSERT INTO people (key, rec) VALUES ($1, $2)
     ON CONFLICT (key) DO UPDATE SET rec = EXCLUDED.rec";

impl Store for PgStore {
    fn durable(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        // Every write was committed before its method returned.
        Box::pin(async { Ok(()) })
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn health(&self) -> StoreHealth {
        let error = self
            .health
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        StoreHealth {
            writable: error.is_none(),
            write_errors: self.health.failures.load(Ordering::Relaxed) as u64,
            error,
        }
    }

    fn readiness(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        let health = self.health.clone();
        let probe = self.spawn(|pool| async move {
            let c = pool.get().await.map_err(pool_error)?;
            c.simple_query("SELECT 1").await.map_err(db_error)?;
            Ok(())
        });
        Box::pin(async move {
            let r = match tokio::time::timeout(CONNECT_WAIT * 2, probe).await {
                Ok(r) => r,
                Err(_) => Err(StoreError::Unreachable(Arc::new(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the database did not answer in time",
                )))),
            };
            health.record(&r);
            r
        })
    }

    fn size_on_disk(&self) -> u64 {
        self.with(|c| async move {
            let row = c
                .query_one("SELECT pg_database_size(current_database())", &[])
                .await
                .map_err(db_error)?;
            Ok(row.get::<_, i64>(0).max(0) as u64)
        })
        .unwrap_or(0)
    }

    fn events(&self) -> broadcast::Receiver<StoreEvent> {
        self.events.subscribe()
    }

    fn exclusive(&self, work: Exclusive) -> Result<ExclusiveGuard, StoreError> {
        let key: i64 = match work {
            Exclusive::CrlSigning => 0x6573_7464_0002,
            Exclusive::ExpiryScan => 0x6573_7464_0003,
        };
        let client = self.with(move |c| async move {
            c.execute("SELECT pg_advisory_lock($1)", &[&key])
                .await
                .map_err(db_error)?;
            Ok(c)
        })?;
        Ok(ExclusiveGuard::new(Box::new(AdvisoryLock {
            client: Some(client),
            key,
            handle: self.handle.clone(),
        })))
    }

    fn next_crl_number(&self) -> Result<u64, StoreError> {
        self.with(|c| async move {
            let row = c
                .query_one("SELECT nextval('crl_number')", &[])
                .await
                .map_err(db_error)?;
            Ok(row.get::<_, i64>(0) as u64)
        })
    }

    fn expect_issuance(&self) -> PendingIssuance {
        self.commits.expect()
    }

    fn issue(
        &self,
        issuance: Issuance,
        ticket: PendingIssuance,
    ) -> BoxFuture<'_, Result<IssueOutcome, StoreError>> {
        let submitted = self.commits.submit(issuance, ticket);
        let health = self.health.clone();
        Box::pin(async move {
            let r = submitted.await;
            health.record(&r);
            r
        })
    }

    fn insert_new_cert(&self, rec: &CertRecord) -> Result<(), StoreError> {
        let serial = rec.serial.0.to_vec();
        let not_after = bigint(rec.not_after);
        let value = encode(rec)?;
        self.with(move |mut c| async move {
            let tx = c.transaction().await.map_err(db_error)?;
            let n = tx
                .execute(
                    "INSERT INTO certs (serial, not_after, rec) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                    &[&serial, &not_after, &value],
                )
                .await
                .map_err(db_error)?;
            if n == 0 {
                return Err(StoreError::SerialTaken);
            }
            tx.execute(ADD_TO_CERT_COUNT, &[&"certs", &1i64])
                .await
                .map_err(db_error)?;
            tx.commit().await.map_err(db_error)
        })
    }

    fn cert(&self, serial: &Serial) -> Result<Option<CertRecord>, StoreError> {
        self.get(
            "SELECT rec FROM certs WHERE serial = $1",
            Key::Bytes(serial.0.to_vec()),
        )
    }

    fn fetch_cert(&self, serial: &Serial) -> BoxFuture<'_, Result<Option<CertRecord>, StoreError>> {
        let key = serial.0.to_vec();
        self.spawn(move |pool| async move {
            let c = pool.get().await.map_err(pool_error)?;
            let stmt = c
                .prepare_cached("SELECT rec FROM certs WHERE serial = $1")
                .await
                .map_err(db_error)?;
            let row = c.query_opt(&stmt, &[&key]).await.map_err(db_error)?;
            row.map(|r| decode(r.get::<_, &[u8]>(0))).transpose()
        })
    }

    fn contains_serial(&self, serial: &Serial) -> Result<bool, StoreError> {
        let key = serial.0.to_vec();
        self.with(move |c| async move {
            let stmt = c
                .prepare_cached("SELECT 1 FROM certs WHERE serial = $1")
                .await
                .map_err(db_error)?;
            let row = c.query_opt(&stmt, &[&key]).await.map_err(db_error)?;
            Ok(row.is_some())
        })
    }

    fn change_cert(
        &self,
        serial: &Serial,
        change: &mut dyn FnMut(&mut CertRecord) -> bool,
    ) -> Result<Option<CertRecord>, StoreError> {
        match self.change(
            "SELECT rec FROM certs WHERE serial = $1",
            "UPDATE certs SET rec = $2 WHERE serial = $1 AND rec = $3",
            Key::Bytes(serial.0.to_vec()),
            change,
        )? {
            None => Err(StoreError::Conflict(format!(
                "no certificate with serial {serial}"
            ))),
            Some(changed) => Ok(changed),
        }
    }

    fn cert_count(&self) -> usize {
        self.with(|c| async move {
            let row = c.query_one(CERT_COUNT, &[]).await.map_err(db_error)?;
            Ok(row.get::<_, i64>(0).max(0) as usize)
        })
        .unwrap_or(0)
    }

    fn certs_expiring(&self, from: u64, to: u64) -> BoxIter<'_, CertRecord> {
        Box::new(rows::Expiring::new(self, bigint(from), bigint(to)))
    }

    fn certs(&self) -> BoxIter<'_, CertRecord> {
        self.list(LIST_CERTS, Key::Bytes(Vec::new()))
    }

    fn revoke_cert(
        &self,
        serial: &Serial,
        reason: RevocationReason,
        at: UnixSeconds,
    ) -> Result<Result<CertRecord, IllegalTransition>, StoreError> {
        loop {
            let key = serial.0.to_vec();
            let Some(old) = self.with({
                let key = key.clone();
                move |c| async move {
                    let row = c
                        .query_opt("SELECT rec FROM certs WHERE serial = $1", &[&key])
                        .await
                        .map_err(db_error)?;
                    Ok(row.map(|r| r.get::<_, Vec<u8>>(0)))
                }
            })?
            else {
                return Err(StoreError::Conflict(format!(
                    "no certificate with serial {serial}"
                )));
            };
            let mut rec: CertRecord = decode(&old)?;
            if let Err(e) = rec.revoke(reason, at) {
                return Ok(Err(e));
            }
            let entry = encode(&RevokedEntry {
                serial: *serial,
                at,
                reason,
            })?;
            let new = encode(&rec)?;
            let payload = events::revoked_payload(serial);
            let written = self.with(move |mut c| async move {
                let tx = c.transaction().await.map_err(db_error)?;
                let n = tx
                    .execute(
                        "UPDATE certs SET rec = $2 WHERE serial = $1 AND rec = $3",
                        &[&key, &new, &old],
                    )
                    .await
                    .map_err(db_error)?;
                if n == 0 {
                    return Ok(false);
                }
                tx.execute(
                    "INSERT INTO revoked (serial, rec) VALUES ($1, $2)
                     ON CONFLICT (serial) DO UPDATE SET rec = EXCLUDED.rec",
                    &[&key, &entry],
                )
                .await
                .map_err(db_error)?;
                tx.execute("SELECT pg_notify($1, $2)", &[&EVENTS_CHANNEL, &payload])
                    .await
                    .map_err(db_error)?;
                tx.commit().await.map_err(db_error)?;
                Ok(true)
            })?;
            if written {
                return Ok(Ok(rec));
            }
        }
    }

    fn revoked_entries(&self) -> BoxIter<'_, RevokedEntry> {
        self.list(LIST_REVOKED, Key::Bytes(Vec::new()))
    }

    fn crl(&self, generation: u32) -> Result<Option<StoredCrl>, StoreError> {
        self.get(
            "SELECT rec FROM crls WHERE generation = $1",
            Key::Int(i64::from(generation)),
        )
    }

    fn put_crl(&self, generation: u32, crl: &StoredCrl) -> Result<(), StoreError> {
        let value = encode(crl)?;
        let generation = i64::from(generation);
        self.with(move |mut c| async move {
            let tx = c.transaction().await.map_err(db_error)?;
            tx.execute(
                "INSERT INTO crls (generation, rec) VALUES ($1, $2)
                 ON CONFLICT (generation) DO UPDATE SET rec = EXCLUDED.rec",
                &[&generation, &value],
            )
            .await
            .map_err(db_error)?;
            tx.execute(
                "SELECT pg_notify($1, $2)",
                &[&EVENTS_CHANNEL, &events::CRL_PAYLOAD],
            )
            .await
            .map_err(db_error)?;
            tx.commit().await.map_err(db_error)
        })
    }

    fn orgs(&self) -> BoxIter<'_, Organisation> {
        self.list(LIST_ORGS, Key::Text(String::new()))
    }

    fn put_org(&self, org: &Organisation) -> Result<(), StoreError> {
        self.exec_announced(
            "INSERT INTO orgs (cvr, rec) VALUES ($1, $2)
             ON CONFLICT (cvr) DO UPDATE SET rec = EXCLUDED.rec",
            vec![org.cvr.clone().into(), encode(org)?.into()],
        )
        .map(drop)
    }

    fn insert_new_org(&self, org: &Organisation) -> Result<bool, StoreError> {
        Ok(self.exec_announced(
            "INSERT INTO orgs (cvr, rec) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            vec![org.cvr.clone().into(), encode(org)?.into()],
        )? == 1)
    }

    fn org(&self, cvr: &str) -> Result<Option<Organisation>, StoreError> {
        if let Some(o) = self.catalogue.org(cvr) {
            return Ok(Some(o));
        }
        let reading = self.catalogue.begin();
        let found: Option<Organisation> = self.get(
            "SELECT rec FROM orgs WHERE cvr = $1",
            Key::Text(cvr.to_string()),
        )?;
        if let Some(o) = &found {
            self.catalogue.keep_org(reading, cvr.to_string(), o);
        }
        Ok(found)
    }

    fn profiles(&self) -> BoxIter<'_, Profile> {
        self.list(LIST_PROFILES, Key::Text(String::new()))
    }

    fn put_profile(&self, p: &Profile) -> Result<(), StoreError> {
        self.exec_announced(
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
                rows::Param::Bool(p.org_default),
                encode(p)?.into(),
            ],
        )
        .map_err(|e| match e {
            StoreError::Conflict(m) if m.contains("EST label") => StoreError::Conflict(format!(
                "EST label {:?} is already in use (labels are compared without regard to case)",
                p.est_label
            )),
            other => other,
        })
        .map(drop)
    }

    fn remove_profile(&self, id: &str) -> Result<(), StoreError> {
        self.exec_announced(
            "DELETE FROM profiles WHERE id = $1",
            vec![id.to_string().into()],
        )
        .map(drop)
    }

    fn profile(&self, id: &str) -> Result<Option<Profile>, StoreError> {
        self.get(
            "SELECT rec FROM profiles WHERE id = $1",
            Key::Text(id.to_string()),
        )
    }

    fn profile_by_label(&self, label: &str) -> Result<Option<Profile>, StoreError> {
        let key = fold(label);
        if let Some(p) = self.catalogue.profile_by_label(&key) {
            return Ok(Some(p));
        }
        let reading = self.catalogue.begin();
        let found: Option<Profile> = self.get(
            "SELECT rec FROM profiles WHERE label_key = $1",
            Key::Text(key.clone()),
        )?;
        if let Some(p) = &found {
            self.catalogue.keep_profile_by_label(reading, key, p);
        }
        Ok(found)
    }

    fn default_profile(&self, cvr: &str) -> Result<Option<Profile>, StoreError> {
        if let Some(p) = self.catalogue.default_profile(cvr) {
            return Ok(Some(p));
        }
        let reading = self.catalogue.begin();
        let found: Option<Profile> = self.get(
            "SELECT rec FROM profiles WHERE cvr = $1 AND org_default",
            Key::Text(cvr.to_string()),
        )?;
        if let Some(p) = &found {
            self.catalogue
                .keep_default_profile(reading, cvr.to_string(), p);
        }
        Ok(found)
    }

    fn insert_new_order(&self, order: &Order) -> Result<bool, StoreError> {
        Ok(self.exec(
            "INSERT INTO orders (id, rec) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            vec![order.id.clone().into(), encode(order)?.into()],
        )? == 1)
    }

    fn order(&self, id: &str) -> Result<Option<Order>, StoreError> {
        self.get(
            "SELECT rec FROM orders WHERE id = $1",
            Key::Text(id.to_string()),
        )
    }

    fn change_order(
        &self,
        id: &str,
        change: &mut dyn FnMut(&mut Order) -> bool,
    ) -> Result<Option<Option<Order>>, StoreError> {
        self.change(
            "SELECT rec FROM orders WHERE id = $1",
            "UPDATE orders SET rec = $2 WHERE id = $1 AND rec = $3",
            Key::Text(id.to_string()),
            change,
        )
    }

    fn orders(&self) -> BoxIter<'_, Order> {
        self.list(LIST_ORDERS, Key::Text(String::new()))
    }

    fn count_unmatched_code(&self) -> Result<u64, StoreError> {
        self.with(|c| async move {
            let row = c
                .query_one(
                    "UPDATE counters SET value = value + 1 WHERE name = 'unmatched_codes' RETURNING value",
                    &[],
                )
                .await
                .map_err(db_error)?;
            Ok(row.get::<_, i64>(0).max(0) as u64)
        })
    }

    fn unmatched_code_attempts(&self) -> Result<u64, StoreError> {
        self.with(|c| async move {
            let row = c
                .query_one(
                    "SELECT value FROM counters WHERE name = 'unmatched_codes'",
                    &[],
                )
                .await
                .map_err(db_error)?;
            Ok(row.get::<_, i64>(0).max(0) as u64)
        })
    }

    fn put_held(&self, csr_hash: &[u8; 32], order_id: &str) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO held (csr_hash, order_id) VALUES ($1, $2)
             ON CONFLICT (csr_hash) DO UPDATE SET order_id = EXCLUDED.order_id",
            vec![csr_hash.to_vec().into(), order_id.to_string().into()],
        )
        .map(drop)
    }

    fn held_order(&self, csr_hash: &[u8; 32]) -> Result<Option<Order>, StoreError> {
        self.get(
            "SELECT o.rec FROM held h JOIN orders o ON o.id = h.order_id WHERE h.csr_hash = $1",
            Key::Bytes(csr_hash.to_vec()),
        )
    }

    fn put_token(&self, hash: &[u8; 32], rec: &TokenRecord) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO tokens (hash, operator, rec) VALUES ($1, $2, $3)
             ON CONFLICT (hash) DO UPDATE SET operator = EXCLUDED.operator, rec = EXCLUDED.rec",
            vec![
                hash.to_vec().into(),
                rows::Param::Bool(rec.cvr.is_none()),
                encode(rec)?.into(),
            ],
        )
        .map(drop)
    }

    fn token(&self, hash: &[u8; 32]) -> Result<Option<TokenRecord>, StoreError> {
        self.get(
            "SELECT rec FROM tokens WHERE hash = $1",
            Key::Bytes(hash.to_vec()),
        )
    }

    fn tokens(&self) -> BoxIter<'_, ([u8; 32], TokenRecord)> {
        Box::new(Paged::new(
            self,
            LIST_TOKENS,
            Key::Bytes(Vec::new()),
            token_row,
        ))
    }

    fn has_usable_operator_token(&self, now: UnixSeconds) -> Result<bool, StoreError> {
        let records = self.with(|c| async move {
            let rows = c
                .query("SELECT rec FROM tokens WHERE operator", &[])
                .await
                .map_err(db_error)?;
            Ok(rows
                .iter()
                .map(|r| r.get::<_, Vec<u8>>(0))
                .collect::<Vec<_>>())
        })?;
        for v in records {
            let rec: TokenRecord = decode(&v)?;
            if rec.is_usable(now) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn put_email_validation(&self, rec: &EmailValidation) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO email_validations (key, rec) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET rec = EXCLUDED.rec",
            vec![
                crate::store::email_validation_key(&rec.cvr, &rec.address).into(),
                encode(rec)?.into(),
            ],
        )
        .map(drop)
    }

    fn email_validation(
        &self,
        cvr: &str,
        address: &str,
    ) -> Result<Option<EmailValidation>, StoreError> {
        self.get(
            "SELECT rec FROM email_validations WHERE key = $1",
            Key::Text(crate::store::email_validation_key(cvr, address)),
        )
    }

    fn email_validations(&self) -> BoxIter<'_, EmailValidation> {
        self.list(LIST_EMAIL_VALIDATIONS, Key::Text(String::new()))
    }

    fn insert_new_person(&self, p: &Person) -> Result<bool, StoreError> {
        Ok(self.exec(
            "INSERT INTO people (key, rec) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            vec![p.key().into(), encode(p)?.into()],
        )? == 1)
    }

    fn put_person(&self, p: &Person) -> Result<(), StoreError> {
        self.exec(PUT_PERSON, vec![p.key().into(), encode(p)?.into()])
            .map(drop)
    }

    fn person(&self, key: &str) -> Result<Option<Person>, StoreError> {
        self.get(
            "SELECT rec FROM people WHERE key = $1",
            Key::Text(key.to_owned()),
        )
    }

    fn people(&self) -> BoxIter<'_, Person> {
        self.list(LIST_PEOPLE, Key::Text(String::new()))
    }

    fn put_session(&self, hash: &[u8; 32], s: &Session) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO sessions (hash, rec) VALUES ($1, $2)
             ON CONFLICT (hash) DO UPDATE SET rec = EXCLUDED.rec",
            vec![hash.to_vec().into(), encode(s)?.into()],
        )
        .map(drop)
    }

    fn session(&self, hash: &[u8; 32]) -> Result<Option<Session>, StoreError> {
        self.get(
            "SELECT rec FROM sessions WHERE hash = $1",
            Key::Bytes(hash.to_vec()),
        )
    }

    fn touch_session(&self, hash: &[u8; 32], s: &Session) -> Result<(), StoreError> {
        // Never inserts: a session removed meanwhile stays removed.
        self.exec(
            "UPDATE sessions SET rec = $2 WHERE hash = $1",
            vec![hash.to_vec().into(), encode(s)?.into()],
        )
        .map(drop)
    }

    fn remove_session(&self, hash: &[u8; 32]) -> Result<(), StoreError> {
        self.exec(
            "DELETE FROM sessions WHERE hash = $1",
            vec![hash.to_vec().into()],
        )
        .map(drop)
    }

    fn sessions(&self) -> BoxIter<'_, ([u8; 32], Session)> {
        Box::new(Paged::new(
            self,
            "SELECT hash, rec FROM sessions WHERE hash > $1 ORDER BY hash LIMIT 500",
            Key::Bytes(Vec::new()),
            |row| {
                let hash: [u8; 32] = row
                    .get::<_, &[u8]>(0)
                    .try_into()
                    .map_err(|_| StoreError::Conflict("malformed session key".into()))?;
                Ok((hash, decode(row.get::<_, &[u8]>(1))?))
            },
        ))
    }

    fn push_notification(&self, mut n: Notification) -> Result<u64, StoreError> {
        self.with(move |mut c| async move {
            let tx = c.transaction().await.map_err(db_error)?;
            let row = tx
                .query_one(
                    "SELECT nextval(pg_get_serial_sequence('outbox', 'id'))",
                    &[],
                )
                .await
                .map_err(db_error)?;
            let id = row.get::<_, i64>(0);
            n.id = id as u64;
            let value = encode(&n)?;
            tx.execute(
                "INSERT INTO outbox (id, delivered, rec) VALUES ($1, $2, $3)",
                &[&id, &n.delivered_at.is_some(), &value],
            )
            .await
            .map_err(db_error)?;
            tx.commit().await.map_err(db_error)?;
            Ok(id as u64)
        })
    }

    fn put_notification(&self, n: &Notification) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO outbox (id, delivered, rec) VALUES ($1, $2, $3)
             ON CONFLICT (id) DO UPDATE SET delivered = EXCLUDED.delivered, rec = EXCLUDED.rec,
                 claimed_until = 0",
            vec![
                rows::Param::Int(bigint(n.id)),
                rows::Param::Bool(n.delivered_at.is_some()),
                encode(n)?.into(),
            ],
        )
        .map(drop)
    }

    fn notifications(&self) -> BoxIter<'_, Notification> {
        self.list(LIST_NOTIFICATIONS, Key::Int(-1))
    }

    fn claim_notifications(
        &self,
        now: UnixSeconds,
        lease_secs: u64,
        max: usize,
    ) -> Result<Vec<Notification>, StoreError> {
        let now = bigint(now);
        let until = now.saturating_add(bigint(lease_secs));
        let max = max as i64;
        let values = self.with(move |c| async move {
            let rows = c
                .query(
                    "UPDATE outbox SET claimed_until = $2 WHERE id IN (
                         SELECT id FROM outbox
                         WHERE NOT delivered AND claimed_until <= $1
                         ORDER BY id LIMIT $3
                         FOR UPDATE SKIP LOCKED)
                     RETURNING id, rec",
                    &[&now, &until, &max],
                )
                .await
                .map_err(db_error)?;
            Ok(rows
                .iter()
                .map(|r| (r.get::<_, i64>(0), r.get::<_, Vec<u8>>(1)))
                .collect::<Vec<_>>())
        })?;
        let mut claimed = values
            .into_iter()
            .map(|(id, v)| decode::<Notification>(&v).map(|n| (id, n)))
            .collect::<Result<Vec<_>, _>>()?;
        claimed.sort_by_key(|(id, _)| *id);
        Ok(claimed.into_iter().map(|(_, n)| n).collect())
    }

    fn audit(&self, event: &AuditEvent) -> Result<(), StoreError> {
        let event = bounded_event(event);
        self.exec(
            "INSERT INTO audit (at_ms, rec) VALUES ($1, $2)",
            vec![
                rows::Param::Int(bigint(event.at_ms)),
                encode(&event)?.into(),
            ],
        )
        .map(drop)
    }

    fn audit_events(&self) -> BoxIter<'_, AuditEvent> {
        self.list(
            "SELECT id, rec FROM audit WHERE id > $1 ORDER BY id LIMIT 500",
            Key::Int(-1),
        )
    }

    fn audit_page(
        &self,
        before: Option<u64>,
        limit: usize,
        keep: &dyn Fn(&AuditEvent) -> bool,
    ) -> Result<AuditPage, StoreError> {
        // Backwards from `before` (or the end), a database page at a time,
        // until the page is full: a page costs what it skips and returns.
        let mut page = Vec::new();
        let mut cursor = before.map(bigint).unwrap_or(i64::MAX);
        'pages: while page.len() < limit {
            let rows = self.with(move |c| async move {
                let stmt = c
                    .prepare_cached(
                        "SELECT id, rec FROM audit WHERE id < $1 ORDER BY id DESC LIMIT $2",
                    )
                    .await
                    .map_err(db_error)?;
                let rows = c.query(&stmt, &[&cursor, &PAGE]).await.map_err(db_error)?;
                Ok(rows
                    .iter()
                    .map(|r| (r.get::<_, i64>(0), r.get::<_, Vec<u8>>(1)))
                    .collect::<Vec<_>>())
            })?;
            if rows.is_empty() {
                break;
            }
            for (id, v) in rows {
                cursor = id;
                let event: AuditEvent = decode(&v)?;
                if keep(&event) {
                    page.push((id as u64, event));
                    if page.len() >= limit {
                        break 'pages;
                    }
                }
            }
        }
        page.reverse();
        let next = match page.first() {
            Some((id, _)) if page.len() >= limit => Some(*id),
            _ => None,
        };
        Ok((page, next))
    }

    fn prune_audit(&self, cutoff_ms: u64, max: usize) -> Result<usize, StoreError> {
        // The oldest records first, stopping at the first one inside the
        // retention (as the embedded engine does).
        let cutoff = bigint(cutoff_ms);
        let max = max as i64;
        let n = self.with(move |c| async move {
            c.execute(
                "DELETE FROM audit WHERE id IN (
                     SELECT id FROM audit
                     WHERE id < COALESCE(
                         (SELECT min(id) FROM (SELECT id, at_ms FROM audit ORDER BY id LIMIT $2) o
                          WHERE o.at_ms >= $1),
                         (SELECT COALESCE(max(id), 0) + 1 FROM (SELECT id FROM audit ORDER BY id LIMIT $2) o2))
                     ORDER BY id LIMIT $2)",
                &[&cutoff, &max],
            )
            .await
            .map_err(db_error)
        })?;
        Ok(n as usize)
    }

    fn export(&self) -> BoxIter<'_, crate::store::Record> {
        self.export_all()
    }

    fn import(&self, records: Vec<crate::store::Record>) -> Result<(), StoreError> {
        self.import_all(records)
    }
}
