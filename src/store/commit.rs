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

use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;
use tokio::sync::oneshot;

use super::{decode, encode, recovery, Shared, StoreError, Trees};
use crate::model::{CertRecord, CertStatus, Order, Serial};

/// Key in `meta` of the number of stored certificates (kept so that start-up
/// need not count a large tree).
pub(super) const CERT_COUNT_KEY: &[u8] = b"cert_count";

/// Most jobs taken into one batch; the rest ride on the next flush.
const MAX_BATCH: usize = 512;

/// Longest a batch waits for issuances that are being signed right now.
/// Waiting a little for them costs less than a flush of their own each.
const MAX_LINGER: Duration = Duration::from_millis(1);

/// A request on its way to [`super::Store::issue`]: while any exist, the
/// committer waits (up to `MAX_LINGER`, 1 ms) so that they share the next flush.
/// Dropped when the issuance is handed over, or when the request fails.
#[must_use]
pub struct PendingIssuance(Arc<AtomicUsize>);

impl PendingIssuance {
    pub(super) fn new(counter: &Arc<AtomicUsize>) -> PendingIssuance {
        counter.fetch_add(1, Ordering::AcqRel);
        PendingIssuance(counter.clone())
    }
}

impl Drop for PendingIssuance {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What [`super::Store::issue`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssueOutcome {
    /// Certificate, order and audit record are stored and durable.
    Stored,
    /// The serial was taken; sign again with a fresh one. Nothing was written.
    SerialTaken,
    /// The order refused the issuance (e.g. a code already spent, or a new
    /// order's reference number taken). Nothing was written.
    OrderRefused(String),
    /// The certificate this one renews already has this successor, which is
    /// not revoked: a certificate has at most one. Nothing was written.
    AlreadyRenewed(Serial),
}

/// A check applied to the stored order, in the write that stores the certificate.
pub type OrderCheck = Box<dyn Fn(&mut Order) -> Result<(), String> + Send>;

/// How an issuance touches its order.
pub enum OrderWrite {
    /// A new order (API enrolment); refused if its reference number exists.
    New(Order),
    /// An existing order, changed by the check (which refuses by returning an error).
    Change {
        /// The order's reference number.
        id: String,
        /// Applied to the current stored order.
        check: OrderCheck,
    },
}

/// Everything one issuance writes, atomically.
pub struct Issuance {
    /// The new certificate.
    pub cert: CertRecord,
    /// Its order.
    pub order: OrderWrite,
    /// A certificate this one renews, to be linked to it (`renewed_by`).
    pub link_renewal: Option<Serial>,
    /// The audit record (`serial` already set).
    pub audit: crate::model::AuditEvent,
}

/// Work for the committer thread.
pub(super) enum Job {
    /// Make everything written so far durable.
    Flush(oneshot::Sender<Result<(), String>>),
    /// Write an issuance, make it durable, then answer.
    Issue(Box<PreparedIssuance>),
    /// Readiness after a failed write: try to recover, then answer whether
    /// the store can write.
    Probe(oneshot::Sender<Result<(), String>>),
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
    reply: oneshot::Sender<Result<IssueOutcome, String>>,
}

enum PreparedOrder {
    New(Vec<u8>),
    Change(OrderCheck),
}

impl PreparedIssuance {
    /// Encodes an issuance for the committer.
    pub(super) fn new(
        issuance: Issuance,
        reply: oneshot::Sender<Result<IssueOutcome, String>>,
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
            audit: encode(&super::bounded_event(&issuance.audit))?,
            reply,
        })
    }
}

/// Makes sled's writes durable: its flush, then `fdatasync` of its log
/// (see the store's docs).
pub(super) fn flush(trees: &Trees) -> Result<(), String> {
    trees
        .db
        .flush()
        .map_err(|e| e.to_string())
        .and_then(|_| trees.log.sync_data().map_err(|e| e.to_string()))
}

/// Waits for jobs and answers each batch after one flush.
pub(super) fn run(shared: Arc<Shared>, rx: mpsc::Receiver<Job>) {
    let mut batch: Vec<Job> = Vec::with_capacity(64);
    loop {
        // After a failed write, try to recover now and then even when idle.
        let first = if shared.health.error().is_none() {
            match rx.recv() {
                Ok(job) => job,
                Err(_) => break,
            }
        } else {
            match rx.recv_timeout(recovery::RETRY_EVERY) {
                Ok(job) => job,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    recovery::recover(&shared);
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        };
        batch.push(first);
        gather(&shared.pending, &rx, &mut batch);
        let mut flushes = Vec::new();
        let mut issues = Vec::new();
        let mut probes = Vec::new();
        for job in batch.drain(..) {
            match job {
                Job::Flush(w) => flushes.push(w),
                Job::Issue(i) => issues.push(i),
                Job::Probe(w) => probes.push(w),
            }
        }
        if shared.health.error().is_some() {
            recovery::recover(&shared);
        }
        let written = match shared.health.error() {
            // Not recovered: sled would refuse anyway; answer at once.
            Some(e) => Err(e),
            None => {
                let written = shared.trees().map_err(|e| e.to_string()).and_then(|trees| {
                    let outcomes = if issues.is_empty() {
                        Ok(Vec::new())
                    } else {
                        write_issuances(&trees, &issues)
                    };
                    // Flushed even after a failed transaction, so that the
                    // failure is sled's to report for the whole batch.
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
                written
            }
        };
        let flushed = written.as_ref().map(|_| ()).map_err(Clone::clone);
        for waiter in flushes {
            let _ = waiter.send(flushed.clone());
        }
        for waiter in probes {
            let _ = waiter.send(flushed.clone());
        }
        match written {
            Ok(outcomes) => {
                let stored = outcomes
                    .iter()
                    .filter(|o| matches!(o, Ok(IssueOutcome::Stored)))
                    .count() as u64;
                shared.cert_count.fetch_add(stored, Ordering::AcqRel);
                for (job, outcome) in issues.into_iter().zip(outcomes) {
                    let _ = job.reply.send(outcome);
                }
            }
            Err(e) => {
                // Nothing of this batch is answered as stored: a certificate
                // is never handed out unless it is durable.
                for job in issues {
                    let _ = job.reply.send(Err(e.clone()));
                }
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

/// One transaction for the whole batch; each issuance gets its own outcome.
fn write_issuances(
    trees: &Trees,
    issues: &[Box<PreparedIssuance>],
) -> Result<Vec<Result<IssueOutcome, String>>, String> {
    // Ids are taken outside the transaction, which may run more than once.
    let audit_ids = issues
        .iter()
        .map(|_| trees.db.generate_id())
        .collect::<Result<Vec<u64>, _>>()
        .map_err(|e| e.to_string())?;
    let res = (
        &trees.certs,
        &trees.orders,
        &trees.audit,
        &trees.meta,
        &trees.expiry,
    )
        .transaction(|(certs, orders, audit, meta, expiry)| {
            let mut outcomes = Vec::with_capacity(issues.len());
            let mut stored: u64 = 0;
            for (job, audit_id) in issues.iter().zip(&audit_ids) {
                // Reads inside the transaction see earlier jobs of this batch.
                if certs.get(job.serial.0)?.is_some() {
                    outcomes.push(Ok(IssueOutcome::SerialTaken));
                    continue;
                }
                let order_value = match &job.order {
                    PreparedOrder::New(v) => {
                        if orders.get(job.order_id.as_bytes())?.is_some() {
                            outcomes.push(Ok(IssueOutcome::OrderRefused(
                                "reference number taken".into(),
                            )));
                            continue;
                        }
                        v.clone()
                    }
                    PreparedOrder::Change(check) => {
                        let Some(old) = orders.get(job.order_id.as_bytes())? else {
                            outcomes.push(Ok(IssueOutcome::OrderRefused("no such order".into())));
                            continue;
                        };
                        let changed = decode::<Order>(&old)
                            .and_then(|mut order| Ok(check(&mut order).map(|()| encode(&order))));
                        match changed {
                            Ok(Ok(Ok(v))) => v,
                            Ok(Err(why)) => {
                                outcomes.push(Ok(IssueOutcome::OrderRefused(why)));
                                continue;
                            }
                            Ok(Ok(Err(e))) | Err(e) => {
                                outcomes.push(Err(e.to_string()));
                                continue;
                            }
                        }
                    }
                };
                if let Some(old_serial) = job.link_renewal {
                    if let Some(old) = certs.get(old_serial.0)? {
                        // At most one successor, checked in the write that
                        // links it, so simultaneous renewals cannot both land.
                        match renewal_link(certs, &old, job.serial)? {
                            RenewalLink::Linked(v) => {
                                certs.insert(&old_serial.0, v)?;
                            }
                            RenewalLink::Taken(successor) => {
                                outcomes.push(Ok(IssueOutcome::AlreadyRenewed(successor)));
                                continue;
                            }
                            RenewalLink::Broken(e) => {
                                outcomes.push(Err(e.to_string()));
                                continue;
                            }
                        }
                    }
                }
                orders.insert(job.order_id.as_bytes(), order_value)?;
                certs.insert(&job.serial.0, job.cert.clone())?;
                expiry.insert(&super::expiry_key(job.not_after, &job.serial)[..], &[])?;
                audit.insert(&audit_id.to_be_bytes(), job.audit.clone())?;
                stored += 1;
                outcomes.push(Ok(IssueOutcome::Stored));
            }
            if stored > 0 {
                let count = meta
                    .get(CERT_COUNT_KEY)?
                    .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
                    .map(u64::from_be_bytes)
                    .unwrap_or(0);
                meta.insert(CERT_COUNT_KEY, &(count + stored).to_be_bytes())?;
            }
            Ok::<_, ConflictableTransactionError<StoreError>>(outcomes)
        });
    match res {
        Ok(o) => Ok(o),
        Err(TransactionError::Abort(e)) => Err(e.to_string()),
        Err(TransactionError::Storage(e)) => Err(e.to_string()),
    }
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
fn renewal_link(
    certs: &sled::transaction::TransactionalTree,
    old: &[u8],
    serial: Serial,
) -> Result<RenewalLink, ConflictableTransactionError<StoreError>> {
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
