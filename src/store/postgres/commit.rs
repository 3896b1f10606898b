//! Group commit on PostgreSQL: concurrent issuances share one transaction.
//!
//! Each issuance writes a certificate, its order and an audit record, and is
//! answered only once they are committed. Committers (a few tasks, each with
//! its own connection) take whatever issuances are waiting, lock the orders
//! and certificates they touch (in key order, so two batches never wait on
//! each other in a circle), apply the rules in memory in arrival order (so a
//! second collection of one code in the same batch sees the first), and write
//! everything with one statement per table. While one committer waits for
//! its commit, the next gathers a batch.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool_postgres::{Pool, Transaction};
use tokio::sync::{mpsc, oneshot, Mutex};

use super::{db_error, pool_error, Health};
use crate::model::{CertRecord, CertStatus, Order, Serial};
use crate::store::record::{bounded_event, decode, encode};
use crate::store::{
    BoxFuture, Issuance, IssueOutcome, OrderCheck, OrderWrite, PendingIssuance, StoreError,
};

/// Committers working at once (each holds a connection while it writes).
const COMMITTERS: usize = 3;

/// The most issuances in one transaction.
const MAX_BATCH: usize = 256;

/// How long a committer waits for issuances that were announced (being
/// signed) before it writes without them.
const MAX_LINGER: Duration = Duration::from_millis(1);

/// Times a batch is tried again after another writer took a key it was
/// about to insert (a serial or a reference number, both drawn at random).
const RETRIES: usize = 3;

type Reply = oneshot::Sender<Result<IssueOutcome, StoreError>>;

struct Job {
    cert: CertRecord,
    cert_value: Vec<u8>,
    order: OrderWrite,
    link_renewal: Option<Serial>,
    audit_at_ms: i64,
    audit: Vec<u8>,
    reply: Reply,
}

/// Counts an issuance announced and not yet handed over.
struct Announced(Arc<AtomicUsize>);

impl Drop for Announced {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The handle the store keeps.
pub(super) struct Committer {
    jobs: mpsc::UnboundedSender<Job>,
    announced: Arc<AtomicUsize>,
}

impl Committer {
    /// Starts the committers on `handle`.
    pub(super) fn start(
        handle: &tokio::runtime::Handle,
        pool: Pool,
        health: Arc<Health>,
    ) -> Committer {
        let (jobs, rx) = mpsc::unbounded_channel();
        let rx = Arc::new(Mutex::new(rx));
        let announced = Arc::new(AtomicUsize::new(0));
        let first_shard = random_shard();
        for k in 0..COMMITTERS {
            handle.spawn(run(
                rx.clone(),
                pool.clone(),
                announced.clone(),
                health.clone(),
                format!("certs/{}", (first_shard + k) % super::CERT_COUNT_SHARDS),
            ));
        }
        Committer { jobs, announced }
    }

    pub(super) fn expect(&self) -> PendingIssuance {
        self.announced.fetch_add(1, Ordering::AcqRel);
        PendingIssuance::new(Box::new(Announced(self.announced.clone())))
    }

    pub(super) fn submit(
        &self,
        issuance: Issuance,
        ticket: PendingIssuance,
    ) -> BoxFuture<'static, Result<IssueOutcome, StoreError>> {
        let (reply, answer) = oneshot::channel();
        let prepared = (|| {
            Ok::<_, StoreError>(Job {
                cert_value: encode(&issuance.cert)?,
                audit_at_ms: super::bigint(issuance.audit.at_ms),
                audit: encode(&bounded_event(&issuance.audit))?,
                cert: issuance.cert,
                order: issuance.order,
                link_renewal: issuance.link_renewal,
                reply,
            })
        })();
        let sent = prepared.and_then(|job| self.jobs.send(job).map_err(|_| StoreError::Closed));
        // Handed over (or failed): the committer need not wait for it.
        drop(ticket);
        Box::pin(async move {
            sent?;
            answer.await.unwrap_or(Err(StoreError::Closed))
        })
    }
}

async fn run(
    rx: Arc<Mutex<mpsc::UnboundedReceiver<Job>>>,
    pool: Pool,
    announced: Arc<AtomicUsize>,
    health: Arc<Health>,
    count_row: String,
) {
    loop {
        let batch = {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else {
                return;
            };
            gather(&mut rx, first, &announced).await
        };
        let (jobs, replies): (Vec<_>, Vec<_>) = batch
            .into_iter()
            .map(|mut j| {
                let (dummy, _) = oneshot::channel();
                let reply = std::mem::replace(&mut j.reply, dummy);
                (j, reply)
            })
            .unzip();
        let written = write_batch(&pool, &jobs, &count_row).await;
        health.record(&written);
        match written {
            Ok(outcomes) => {
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(outcome);
                }
            }
            Err(e) => {
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// Takes what is waiting, and waits briefly for issuances still being signed.
async fn gather(
    rx: &mut mpsc::UnboundedReceiver<Job>,
    first: Job,
    announced: &AtomicUsize,
) -> Vec<Job> {
    let started = Instant::now();
    let mut batch = vec![first];
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(more) => {
                batch.push(more);
                continue;
            }
            Err(mpsc::error::TryRecvError::Disconnected) => break,
            Err(mpsc::error::TryRecvError::Empty) => {}
        }
        let left = MAX_LINGER.saturating_sub(started.elapsed());
        if announced.load(Ordering::Acquire) == 0 || left.is_zero() {
            break;
        }
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Some(more)) => batch.push(more),
            Ok(None) | Err(_) => break,
        }
    }
    batch
}

/// What the batch's rules decided for one issuance.
struct Decided {
    outcome: IssueOutcome,
}

/// One transaction for the batch; each issuance gets its own outcome.
async fn write_batch(
    pool: &Pool,
    jobs: &[Job],
    count_row: &str,
) -> Result<Vec<Result<IssueOutcome, StoreError>>, StoreError> {
    let mut client = pool.get().await.map_err(pool_error)?;
    // A batch of plain enrolments (new orders, no renewals) has nothing to
    // lock: its inserts meet any concurrent key themselves. After such a
    // meeting the batch reads, to tell which issuance it was.
    let mut read_first = !jobs
        .iter()
        .all(|j| matches!(j.order, OrderWrite::New(_)) && j.link_renewal.is_none());
    for _ in 0..RETRIES {
        let tx = client.transaction().await.map_err(db_error)?;
        let tried = try_batch(&tx, jobs, count_row, read_first).await?;
        read_first = true;
        match tried {
            Some(outcomes) => {
                tx.commit().await.map_err(db_error)?;
                return Ok(outcomes);
            }
            // Another writer inserted a key of ours meanwhile: read again.
            None => tx.rollback().await.map_err(db_error)?,
        }
    }
    Err(StoreError::Conflict(
        "issuance kept colliding with concurrent writes".into(),
    ))
}

/// The statements of a batch, prepared once per connection.
const LOCK_ORDERS: &str = "SELECT id, rec FROM orders WHERE id = ANY($1) ORDER BY id FOR UPDATE";
const LOCK_CERTS: &str = "SELECT rec FROM certs WHERE serial = ANY($1) ORDER BY serial FOR UPDATE";
const READ_CERTS: &str = "SELECT rec FROM certs WHERE serial = ANY($1)";
const INSERT_CERTS: &str = "INSERT INTO certs (serial, not_after, rec)
     SELECT * FROM UNNEST($1::bytea[], $2::int8[], $3::bytea[])
     ON CONFLICT DO NOTHING";
const INSERT_ORDERS: &str = "INSERT INTO orders (id, rec)
     SELECT * FROM UNNEST($1::text[], $2::bytea[])
     ON CONFLICT DO NOTHING";
const UPDATE_ORDERS: &str = "UPDATE orders SET rec = v.rec
     FROM UNNEST($1::text[], $2::bytea[]) AS v(id, rec)
     WHERE orders.id = v.id";
const UPDATE_CERTS: &str = "UPDATE certs SET rec = v.rec
     FROM UNNEST($1::bytea[], $2::bytea[]) AS v(serial, rec)
     WHERE certs.serial = v.serial";
const INSERT_AUDIT: &str =
    "INSERT INTO audit (at_ms, rec) SELECT * FROM UNNEST($1::int8[], $2::bytea[])";

/// Applies the batch inside `tx`; `None` if an insert met a key that a
/// concurrent transaction committed after this one read (try again).
///
/// Independent statements are sent together (tokio-postgres pipelines the
/// futures of one connection): a batch of plain enrolments costs one round
/// trip besides its begin and commit (the writes); one that changes orders
/// or renews certificates first locks and reads them (one more, and rarely
/// another for the successors).
async fn try_batch(
    tx: &Transaction<'_>,
    jobs: &[Job],
    count_row: &str,
    read_first: bool,
) -> Result<Option<Vec<Result<IssueOutcome, StoreError>>>, StoreError> {
    let mut orders: HashMap<String, Order> = HashMap::new();
    let mut certs: HashMap<Serial, CertRecord> = HashMap::new();
    if read_first {
        lock_and_read(tx, jobs, &mut orders, &mut certs).await?;
    }
    // The rules, in arrival order, on the records as the batch leaves them.
    let existing_orders: HashSet<String> = orders.keys().cloned().collect();
    let mut new_serials: HashSet<Serial> = HashSet::new();
    let mut changed_orders: Vec<String> = Vec::new();
    let mut relinked: Vec<Serial> = Vec::new();
    let mut outcomes = Vec::with_capacity(jobs.len());
    let mut stored: Vec<&Job> = Vec::new();
    for job in jobs {
        let decided = decide(job, &mut orders, &mut certs, &new_serials);
        match decided {
            Ok(Decided {
                outcome: IssueOutcome::Stored,
            }) => {
                new_serials.insert(job.cert.serial);
                certs.insert(job.cert.serial, job.cert.clone());
                changed_orders.push(order_id(job).to_string());
                if let Some(old) = job.link_renewal {
                    if certs.contains_key(&old) {
                        relinked.push(old);
                    }
                }
                stored.push(job);
                outcomes.push(Ok(IssueOutcome::Stored));
            }
            Ok(Decided { outcome }) => outcomes.push(Ok(outcome)),
            Err(e) => outcomes.push(Err(e)),
        }
    }
    if stored.is_empty() {
        return Ok(Some(outcomes));
    }

    // The writes: one statement per table, all sent at once.
    let cert_serials: Vec<Vec<u8>> = stored.iter().map(|j| j.cert.serial.0.to_vec()).collect();
    let not_afters: Vec<i64> = stored
        .iter()
        .map(|j| super::bigint(j.cert.not_after))
        .collect();
    let cert_values: Vec<&[u8]> = stored.iter().map(|j| j.cert_value.as_slice()).collect();
    changed_orders.sort();
    changed_orders.dedup();
    let (mut new_ids, mut new_values, mut upd_ids, mut upd_values) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for id in changed_orders {
        let Some(order) = orders.get(&id) else {
            continue;
        };
        let value = encode(order)?;
        if existing_orders.contains(&id) {
            upd_ids.push(id);
            upd_values.push(value);
        } else {
            new_ids.push(id);
            new_values.push(value);
        }
    }
    relinked.sort();
    relinked.dedup();
    let mut relinked_keys = Vec::new();
    let mut relinked_values = Vec::new();
    for s in &relinked {
        if let Some(rec) = certs.get(s) {
            relinked_keys.push(s.0.to_vec());
            relinked_values.push(encode(rec)?);
        }
    }
    let audit_at: Vec<i64> = stored.iter().map(|j| j.audit_at_ms).collect();
    let audit_values: Vec<&[u8]> = stored.iter().map(|j| j.audit.as_slice()).collect();
    let stored_count = stored.len() as i64;

    let (insert_certs, insert_orders, update_orders, update_certs, insert_audit, count) =
        tokio::try_join!(
            tx.prepare_cached(INSERT_CERTS),
            tx.prepare_cached(INSERT_ORDERS),
            tx.prepare_cached(UPDATE_ORDERS),
            tx.prepare_cached(UPDATE_CERTS),
            tx.prepare_cached(INSERT_AUDIT),
            tx.prepare_cached(super::ADD_TO_CERT_COUNT),
        )
        .map_err(db_error)?;
    let skip = || async { Ok::<u64, tokio_postgres::Error>(0) };
    let (inserted, new_orders, _, _, _, _) = tokio::try_join!(
        async {
            tx.execute(&insert_certs, &[&cert_serials, &not_afters, &cert_values])
                .await
        },
        async {
            if new_ids.is_empty() {
                skip().await
            } else {
                tx.execute(&insert_orders, &[&new_ids, &new_values]).await
            }
        },
        async {
            if upd_ids.is_empty() {
                skip().await
            } else {
                tx.execute(&update_orders, &[&upd_ids, &upd_values]).await
            }
        },
        async {
            if relinked_keys.is_empty() {
                skip().await
            } else {
                tx.execute(&update_certs, &[&relinked_keys, &relinked_values])
                    .await
            }
        },
        async { tx.execute(&insert_audit, &[&audit_at, &audit_values]).await },
        async { tx.execute(&count, &[&count_row, &stored_count]).await },
    )
    .map_err(db_error)?;
    // A serial or reference number committed by another writer since the
    // locking reads: the caller rolls back and reads again.
    if inserted as usize != stored.len() || new_orders as usize != new_ids.len() {
        return Ok(None);
    }
    Ok(Some(outcomes))
}

/// Locks the orders and certificates the batch touches, in key order
/// (orders, then certificates), and reads them with the successors of
/// renewed certificates.
async fn lock_and_read(
    tx: &Transaction<'_>,
    jobs: &[Job],
    orders: &mut HashMap<String, Order>,
    certs: &mut HashMap<Serial, CertRecord>,
) -> Result<(), StoreError> {
    // Lock what the batch reads, in key order: orders, then certificates.
    let mut order_ids: Vec<String> = jobs.iter().map(|j| order_id(j).to_string()).collect();
    order_ids.sort();
    order_ids.dedup();
    let mut serials: Vec<Vec<u8>> = jobs
        .iter()
        .flat_map(|j| std::iter::once(j.cert.serial).chain(j.link_renewal))
        .map(|s| s.0.to_vec())
        .collect();
    serials.sort();
    serials.dedup();
    let (lock_orders, lock_certs) = tokio::try_join!(
        tx.prepare_cached(LOCK_ORDERS),
        tx.prepare_cached(LOCK_CERTS)
    )
    .map_err(db_error)?;
    // Orders are locked before certificates in every batch; both reads
    // travel together but run in this order on the server.
    let (order_rows, cert_rows) = tokio::try_join!(
        async { tx.query(&lock_orders, &[&order_ids]).await },
        async { tx.query(&lock_certs, &[&serials]).await }
    )
    .map_err(db_error)?;
    for row in order_rows {
        orders.insert(row.get(0), decode(row.get::<_, &[u8]>(1))?);
    }
    for row in cert_rows {
        let rec: CertRecord = decode(row.get::<_, &[u8]>(0))?;
        certs.insert(rec.serial, rec);
    }
    // Successors of renewed certificates, to see whether they still stand.
    let successors: Vec<Vec<u8>> = certs
        .values()
        .filter_map(|c| c.renewed_by)
        .filter(|s| !certs.contains_key(s))
        .map(|s| s.0.to_vec())
        .collect();
    if !successors.is_empty() {
        let read = tx.prepare_cached(READ_CERTS).await.map_err(db_error)?;
        for row in tx.query(&read, &[&successors]).await.map_err(db_error)? {
            let rec: CertRecord = decode(row.get::<_, &[u8]>(0))?;
            certs.insert(rec.serial, rec);
        }
    }

    Ok(())
}

/// Where this node's committers start in the rows of the certificate
/// count: each committer adds to a row of its own, and nodes pick at random,
/// so that no committer waits on another's row lock until its commit;
/// `cert_count` adds the rows up.
fn random_shard() -> usize {
    let mut pick = [0u8; 1];
    // Any row will do; a failed draw only means sharing row 0's neighbours.
    let _ = aws_lc_rs::rand::fill(&mut pick);
    usize::from(pick[0]) % super::CERT_COUNT_SHARDS
}

fn order_id(job: &Job) -> &str {
    match &job.order {
        OrderWrite::New(o) => &o.id,
        OrderWrite::Change { id, .. } => id,
    }
}

/// The rules of one issuance against the records as the batch has left
/// them; on `Stored`, the order and the renewed certificate are updated in
/// the maps (the caller adds the new certificate).
fn decide(
    job: &Job,
    orders: &mut HashMap<String, Order>,
    certs: &mut HashMap<Serial, CertRecord>,
    new_serials: &HashSet<Serial>,
) -> Result<Decided, StoreError> {
    let refused = |outcome| Ok(Decided { outcome });
    if certs.contains_key(&job.cert.serial) || new_serials.contains(&job.cert.serial) {
        return refused(IssueOutcome::SerialTaken);
    }
    let order = match &job.order {
        OrderWrite::New(o) => {
            if orders.contains_key(&o.id) {
                return refused(IssueOutcome::OrderRefused("reference number taken".into()));
            }
            o.clone()
        }
        OrderWrite::Change { id, check } => {
            let Some(current) = orders.get(id) else {
                return refused(IssueOutcome::OrderRefused("no such order".into()));
            };
            let mut changed = current.clone();
            if let Err(why) = apply(check, &mut changed) {
                return refused(IssueOutcome::OrderRefused(why));
            }
            changed
        }
    };
    let mut relinked = None;
    if let Some(old_serial) = job.link_renewal {
        if let Some(old) = certs.get(&old_serial) {
            if let Some(successor) = old.renewed_by.filter(|s| *s != job.cert.serial) {
                let stands = certs
                    .get(&successor)
                    .is_some_and(|s| s.status == CertStatus::Issued);
                if stands {
                    return refused(IssueOutcome::AlreadyRenewed(successor));
                }
            }
            let mut old = old.clone();
            old.renewed_by = Some(job.cert.serial);
            relinked = Some(old);
        }
    }
    orders.insert(order.id.clone(), order);
    if let Some(old) = relinked {
        certs.insert(old.serial, old);
    }
    Ok(Decided {
        outcome: IssueOutcome::Stored,
    })
}

fn apply(check: &OrderCheck, order: &mut Order) -> Result<(), String> {
    check(order)
}
