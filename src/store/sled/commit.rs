//! The committer thread: group commit, and issuance written in batches.
//!
//! Every enrolment writes a certificate, its order and an audit record, and
//! must be durable before it is answered. Doing that as one sled transaction
//! per request serialises every request on sled's global write lock and on
//! a thread hop each; instead, requests hand their writes to this thread,
//! which applies everything waiting as one transaction, flushes once, and
//! answers the whole batch. A batch is as large as the load makes it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use sled::Transactional;
use tokio::sync::oneshot;

use super::codec::{bounded_event, decode, encode};
use super::recovery;
use super::snapshot::{Kept, Snapshots};
use super::trees::{expiry_key, flush, read_count, Shared, Trees, CERT_COUNT_KEY};
use crate::model::{CertRecord, CertStatus, Order, Serial};
use crate::store::{Issuance, IssueOutcome, OrderCheck, OrderWrite, StoreError};

/// Most jobs taken into one batch; the rest ride on the next flush.
const MAX_BATCH: usize = 512;

/// Longest a batch waits for issuances that are being signed right now.
/// Waiting a little for them costs less than a flush of their own each.
const MAX_LINGER: Duration = Duration::from_millis(1);

/// sled's guard behind a [`crate::store::PendingIssuance`]: while any exist,
/// the committer waits (up to `MAX_LINGER`, 1 ms) so that they share the
/// next flush.
pub(super) struct PendingTicket(Arc<AtomicUsize>);

impl PendingTicket {
    pub(super) fn new(counter: &Arc<AtomicUsize>) -> PendingTicket {
        counter.fetch_add(1, Ordering::AcqRel);
        PendingTicket(counter.clone())
    }
}

impl Drop for PendingTicket {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A waiter's answer.
type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// Work for the committer thread.
pub(super) enum Job {
    /// Make everything written so far durable.
    Flush(Reply<()>),
    /// Write an issuance, make it durable, then answer.
    Issue(Box<PreparedIssuance>),
    /// Readiness after a failed write: try to recover, then answer whether
    /// the store can write.
    Probe(Reply<()>),
}

/// An [`Issuance`] encoded on the caller's thread, so the committer only writes.
pub(super) struct PreparedIssuance {
    serial: Serial,
    not_after: u64,
    cert: Vec<u8>,
    order_id: String,
    order: PreparedOrder,
    link_renewal: Option<Serial>,
    audit: Vec<u8>,
    reply: Reply<IssueOutcome>,
}

enum PreparedOrder {
    New(Vec<u8>),
    Change(OrderCheck),
}

impl PreparedIssuance {
    /// Encodes an issuance for the committer.
    pub(super) fn new(
        issuance: Issuance,
        reply: Reply<IssueOutcome>,
    ) -> Result<PreparedIssuance, StoreError> {
        let (order_id, order) = match issuance.order {
            OrderWrite::New(o) => (o.id.clone(), PreparedOrder::New(encode(&o)?)),
            OrderWrite::Change { id, check } => (id, PreparedOrder::Change(check)),
        };
        Ok(PreparedIssuance {
            serial: issuance.cert.serial,
            not_after: issuance.cert.not_after,
            cert: encode(&issuance.cert)?,
            order_id,
            order,
            link_renewal: issuance.link_renewal,
            audit: encode(&bounded_event(&issuance.audit))?,
            reply,
        })
    }
}

/// One batch, sorted by kind.
#[derive(Default)]
struct Batch {
    flushes: Vec<Reply<()>>,
    issues: Vec<PreparedIssuance>,
    probes: Vec<Reply<()>>,
}

impl Batch {
    fn sort(jobs: &mut Vec<Job>) -> Batch {
        let mut batch = Batch::default();
        for job in jobs.drain(..) {
            match job {
                Job::Flush(w) => batch.flushes.push(w),
                Job::Issue(i) => batch.issues.push(*i),
                Job::Probe(w) => batch.probes.push(w),
            }
        }
        batch
    }
}

/// Outcomes of a batch's issuances, one each.
type Outcomes = Vec<Result<IssueOutcome, StoreError>>;

/// Waits for jobs and answers each batch after one flush.
pub(super) fn run(shared: Arc<Shared>, rx: mpsc::Receiver<Job>) {
    let mut jobs: Vec<Job> = Vec::with_capacity(64);
    while let Some(first) = next_job(&shared, &rx) {
        jobs.push(first);
        gather(&shared.pending, &rx, &mut jobs);
        let batch = Batch::sort(&mut jobs);
        if shared.health.error().is_some() {
            recovery::recover(&shared);
        }
        let written = write_batch(&shared, &batch.issues);
        answer(&shared, batch, written);
    }
}

/// The next job; `None` when every store handle is gone. After a failed
/// write, tries to recover now and then even when idle.
fn next_job(shared: &Shared, rx: &mpsc::Receiver<Job>) -> Option<Job> {
    loop {
        if shared.health.error().is_none() {
            return rx.recv().ok();
        }
        match rx.recv_timeout(recovery::RETRY_EVERY) {
            Ok(job) => return Some(job),
            Err(mpsc::RecvTimeoutError::Timeout) => recovery::recover(shared),
            Err(mpsc::RecvTimeoutError::Disconnected) => return None,
        }
    }
}

/// Writes a batch's issuances and flushes; records the store's health.
fn write_batch(shared: &Shared, issues: &[PreparedIssuance]) -> Result<Outcomes, StoreError> {
    // Not recovered: sled would refuse anyway; answer at once.
    if let Some(e) = shared.health.error() {
        return Err(e.unavailable());
    }
    let written = shared.trees().and_then(|trees| {
        let outcomes = if issues.is_empty() {
            Ok(Vec::new())
        } else {
            write_issuances(&trees, &shared.snapshots, issues)
        };
        // Flushed even after a failed transaction, so that the failure is
        // sled's to report for the whole batch.
        let flushed = flush(&trees);
        outcomes.and_then(|o| flushed.map(|()| o))
    });
    match &written {
        Ok(_) => shared.health.succeeded(),
        Err(e) => {
            shared.health.failed(e);
            tracing::error!(error = %e, "the store failed to write; answering the batch with an error");
        }
    }
    written.map_err(StoreError::unavailable)
}

/// Answers everyone in the batch.
fn answer(shared: &Shared, batch: Batch, written: Result<Outcomes, StoreError>) {
    let flushed = written.as_ref().map(|_| ()).map_err(Clone::clone);
    for waiter in batch.flushes.into_iter().chain(batch.probes) {
        let _ = waiter.send(flushed.clone());
    }
    match written {
        Ok(outcomes) => {
            let stored = outcomes
                .iter()
                .filter(|o| matches!(o, Ok(IssueOutcome::Stored)))
                .count() as u64;
            shared.cert_count.fetch_add(stored, Ordering::AcqRel);
            for (job, outcome) in batch.issues.into_iter().zip(outcomes) {
                let _ = job.reply.send(outcome);
            }
        }
        Err(e) => {
            // Nothing of this batch is answered as stored: a certificate
            // is never handed out unless it is durable.
            for job in batch.issues {
                let _ = job.reply.send(Err(e.clone()));
            }
        }
    }
}

/// Adds to the batch everyone who asked while the previous flush ran, and
/// waits briefly for issuances that are being signed at this moment.
fn gather(pending: &AtomicUsize, rx: &mpsc::Receiver<Job>, batch: &mut Vec<Job>) {
    let started = Instant::now();
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(more) => {
                batch.push(more);
                continue;
            }
            Err(mpsc::TryRecvError::Disconnected) => return,
            Err(mpsc::TryRecvError::Empty) => {}
        }
        let left = MAX_LINGER.saturating_sub(started.elapsed());
        if pending.load(Ordering::Acquire) == 0 || left.is_zero() {
            // A job handed over just before its ticket was dropped is
            // already in the channel; take it along.
            while let (true, Ok(more)) = (batch.len() < MAX_BATCH, rx.try_recv()) {
                batch.push(more);
            }
            return;
        }
        match rx.recv_timeout(left.min(Duration::from_micros(100))) {
            Ok(more) => batch.push(more),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// The trees an issuance writes, inside the batch's transaction.
struct Tx<'a> {
    certs: &'a TransactionalTree,
    orders: &'a TransactionalTree,
    audit: &'a TransactionalTree,
    expiry: &'a TransactionalTree,
}

/// A transaction step: an abort carries the store's error.
type Step<T> = Result<T, ConflictableTransactionError<StoreError>>;

/// One transaction for the whole batch; each issuance gets its own outcome.
fn write_issuances(
    trees: &Trees,
    snapshots: &Snapshots,
    issues: &[PreparedIssuance],
) -> Result<Outcomes, StoreError> {
    // Ids are taken outside the transaction, which may run more than once.
    let audit_ids = issues
        .iter()
        .map(|_| trees.db.generate_id())
        .collect::<Result<Vec<u64>, _>>()?;
    // Every key the batch may change, kept for an open snapshot.
    let w = snapshots.write();
    for (job, audit_id) in issues.iter().zip(&audit_ids) {
        w.before(Kept::Certs, &trees.certs, &job.serial.0)?;
        w.before(Kept::Orders, &trees.orders, job.order_id.as_bytes())?;
        w.before(Kept::Audit, &trees.audit, &audit_id.to_be_bytes())?;
        if let Some(old) = job.link_renewal {
            w.before(Kept::Certs, &trees.certs, &old.0)?;
        }
    }
    let res = (
        &trees.certs,
        &trees.orders,
        &trees.audit,
        &trees.meta,
        &trees.expiry,
    )
        .transaction(|(certs, orders, audit, meta, expiry)| {
            let tx = Tx {
                certs,
                orders,
                audit,
                expiry,
            };
            let mut outcomes = Vec::with_capacity(issues.len());
            for (job, audit_id) in issues.iter().zip(&audit_ids) {
                outcomes.push(write_one(&tx, job, *audit_id)?);
            }
            let stored = outcomes
                .iter()
                .filter(|o| matches!(o, Ok(IssueOutcome::Stored)))
                .count() as u64;
            if stored > 0 {
                let count = read_count(meta.get(CERT_COUNT_KEY)?.as_deref());
                meta.insert(CERT_COUNT_KEY, &(count + stored).to_be_bytes())?;
            }
            Ok(outcomes)
        });
    match res {
        Ok(o) => Ok(o),
        Err(TransactionError::Abort(e)) => Err(e),
        Err(TransactionError::Storage(e)) => Err(e.into()),
    }
}

/// One issuance of a batch. Reads inside the transaction see earlier jobs of
/// the batch. A refusal or a broken record is this job's outcome only.
fn write_one(
    tx: &Tx<'_>,
    job: &PreparedIssuance,
    audit_id: u64,
) -> Step<Result<IssueOutcome, StoreError>> {
    if tx.certs.get(job.serial.0)?.is_some() {
        return Ok(Ok(IssueOutcome::SerialTaken));
    }
    let order_value = match order_value(tx.orders, job)? {
        Ok(Ok(v)) => v,
        Ok(Err(refused)) => return Ok(Ok(refused)),
        Err(e) => return Ok(Err(e)),
    };
    if let Some(old_serial) = job.link_renewal {
        if let Some(old) = tx.certs.get(old_serial.0)? {
            // At most one successor, checked in the write that links it, so
            // simultaneous renewals cannot both land.
            match renewal_link(tx.certs, &old, job.serial)? {
                RenewalLink::Linked(v) => {
                    tx.certs.insert(&old_serial.0, v)?;
                }
                RenewalLink::Taken(successor) => {
                    return Ok(Ok(IssueOutcome::AlreadyRenewed(successor)))
                }
                RenewalLink::Broken(e) => return Ok(Err(e)),
            }
        }
    }
    tx.orders.insert(job.order_id.as_bytes(), order_value)?;
    tx.certs.insert(&job.serial.0, job.cert.clone())?;
    tx.expiry
        .insert(&expiry_key(job.not_after, &job.serial)[..], &[])?;
    tx.audit
        .insert(&audit_id.to_be_bytes(), job.audit.clone())?;
    Ok(Ok(IssueOutcome::Stored))
}

/// The order's new value, or the refusal to answer with (a reference number
/// taken, no such order, the check's own refusal).
fn order_value(
    orders: &TransactionalTree,
    job: &PreparedIssuance,
) -> Step<Result<Result<Vec<u8>, IssueOutcome>, StoreError>> {
    let existing = orders.get(job.order_id.as_bytes())?;
    Ok(match (&job.order, existing) {
        (PreparedOrder::New(_), Some(_)) => Ok(Err(IssueOutcome::OrderRefused(
            "reference number taken".into(),
        ))),
        (PreparedOrder::New(v), None) => Ok(Ok(v.clone())),
        (PreparedOrder::Change(_), None) => {
            Ok(Err(IssueOutcome::OrderRefused("no such order".into())))
        }
        (PreparedOrder::Change(check), Some(old)) => {
            decode::<Order>(&old).and_then(|mut order| match check(&mut order) {
                Ok(()) => encode(&order).map(Ok),
                Err(why) => Ok(Err(IssueOutcome::OrderRefused(why))),
            })
        }
    })
}

/// What linking a renewed certificate to its successor found.
enum RenewalLink {
    /// The renewed certificate's record, now naming the new successor.
    Linked(Vec<u8>),
    /// It already has this successor, which is not revoked.
    Taken(Serial),
    /// A record could not be decoded or encoded.
    Broken(StoreError),
}

/// Links the renewed certificate's record `old` to its successor `serial`,
/// unless it already has a successor that is not revoked (a revoked one is
/// replaced by the new certificate).
fn renewal_link(certs: &TransactionalTree, old: &[u8], serial: Serial) -> Step<RenewalLink> {
    let mut rec = match decode::<CertRecord>(old) {
        Ok(r) => r,
        Err(e) => return Ok(RenewalLink::Broken(e)),
    };
    if let Some(successor) = rec.renewed_by.filter(|s| *s != serial) {
        if let Some(v) = certs.get(successor.0)? {
            match decode::<CertRecord>(&v) {
                Ok(s) if s.status == CertStatus::Issued => {
                    return Ok(RenewalLink::Taken(successor))
                }
                Ok(_) => {}
                Err(e) => return Ok(RenewalLink::Broken(e)),
            }
        }
    }
    rec.renewed_by = Some(serial);
    Ok(match encode(&rec) {
        Ok(v) => RenewalLink::Linked(v),
        Err(e) => RenewalLink::Broken(e),
    })
}
