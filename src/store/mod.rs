//! The storage seam: what estd keeps (certificates, orders, organisations,
//! profiles, tokens, the audit log, the outbox, the CRL) behind one
//! object-safe trait, [`Store`]. The rest of the crate holds an
//! `Arc<dyn Store>` and never names the engine; the embedded engine lives in
//! `sled/` and is opened by [`open`].
//!
//! # Durability
//! A method marked *durable* returns only once its writes are on disk, so its
//! caller may answer. Other writes become durable with the next durable call
//! (concurrent callers share one flush). Nothing is answered before it is
//! durable: a handler that used plain writes calls [`Store::durable`] first.
//!
//! # Adding a method (the convention)
//! - One method = one unit of work = one transaction (with PostgreSQL, one SQL
//!   transaction): it reads, checks and writes everything the unit needs, and
//!   either all of it lands or none. Name it after the work (`issue`,
//!   `revoke_cert`), not after a tree.
//! - Inputs and outputs are domain types from [`crate::model`] or the plain
//!   types in this module; nothing engine-specific crosses the seam.
//! - Decisions that depend on stored state are made inside the unit (pass the
//!   rule in, as [`OrderCheck`] does), so that a concurrent request cannot slip
//!   between read and write. Refusals are outcomes (`Ok(Err(..))` or an
//!   outcome enum), not [`StoreError`]s, which mean the store failed.
//! - Units that must be durable before the caller answers are `async` and
//!   return a [`BoxFuture`]; lists are returned as a [`BoxIter`].
//! - Keep the trait object-safe: no generic methods (take `&dyn Fn`, or add a
//!   typed adapter in `impl dyn Store`, as `update_cert` is over
//!   [`Store::change_cert`]).
//! - Implement it in `sled/` (and any later engine), and add a record-format
//!   migration there if the stored layout changes.

pub mod copy;
mod postgres;
mod record;
mod sled;

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use crate::config::{StoreConfig, StoreEngine};
use crate::model::{
    AuditEvent, CertRecord, EmailValidation, IllegalTransition, Notification, Order, Organisation,
    Person, Profile, RevocationReason, Serial, Session, TokenRecord, UnixSeconds,
};

/// A future returned by a store method.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An iterator returned by a store method: items fail one by one.
pub type BoxIter<'a, T> = Box<dyn Iterator<Item = Result<T, StoreError>> + Send + 'a>;

/// The cause of a [`StoreError`] from below the seam (the engine, the codec,
/// the file system); shared so that one failure can answer a whole batch.
pub type Source = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// Errors from the store. Refusals by the rules of a unit of work (a code
/// already spent, a serial taken) are outcomes, not errors, unless named here.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The storage engine failed (I/O, corruption).
    #[error("storage error: {0}")]
    Engine(#[source] Source),
    /// A record could not be encoded or decoded.
    #[error("record codec error: {0}")]
    Codec(#[source] Source),
    /// The serial is already in the store.
    #[error("serial already taken")]
    SerialTaken,
    /// A uniqueness rule was broken (e.g. an EST label in use).
    #[error("{0}")]
    Conflict(String),
    /// The store on disk has a format this estd does not know (a newer one).
    #[error("store format {found:?} is not one this estd can read (it reads up to {supported})")]
    Format {
        /// The version found.
        found: String,
        /// The newest version this estd reads.
        supported: u32,
    },
    /// The database cannot be reached (the connection broke, or no new one
    /// could be made in time). Transient: estd reconnects by itself.
    #[error("the database cannot be reached: {0}")]
    Unreachable(#[source] Source),
    /// The store was closed (its writer is gone).
    #[error("the store is closed")]
    Closed,
    /// There is no space to write (a probe file could not be written).
    #[error("no space to write: {0}")]
    NoSpace(#[source] Source),
    /// The store is being opened again after a failed write.
    #[error("the store is being reopened")]
    Reopening,
    /// Opening the store again after a failed write failed.
    #[error("reopening the store: {0}")]
    Reopen(#[source] Arc<StoreError>),
    /// A write failed before (e.g. the disk is full) and the store has not
    /// recovered yet; the first failure is the source.
    #[error("the store cannot write: {0}")]
    Unavailable(#[source] Arc<StoreError>),
}

impl StoreError {
    /// An engine failure.
    pub fn engine(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
        StoreError::Engine(Arc::new(e))
    }

    /// A codec failure.
    pub fn codec(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
        StoreError::Codec(Arc::new(e))
    }

    /// Whether the store may work again by itself soon (so a request may be
    /// retried later: 503 with `Retry-After`).
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unreachable(_))
    }

    /// This error as the reason writes are refused (not wrapped twice).
    pub fn unavailable(self) -> StoreError {
        match self {
            e @ StoreError::Unavailable(_) => e,
            e => StoreError::Unavailable(Arc::new(e)),
        }
    }
}

/// Audit events with their ids, oldest first, and the cursor for the
/// page before them (see [`Store::audit_page`]).
pub type AuditPage = (Vec<(u64, AuditEvent)>, Option<u64>);

/// The store's health, for readiness and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreHealth {
    /// Whether the last write succeeded.
    pub writable: bool,
    /// Writes (batches) that failed since start.
    pub write_errors: u64,
    /// Why the store cannot write, while it cannot.
    pub error: Option<String>,
}

/// What [`Store::issue`] did.
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
pub type OrderCheck = Box<dyn Fn(&mut Order) -> Result<(), String> + Send + Sync>;

/// How an issuance touches its order.
// Built once per issuance and moved once into the batch: boxing the larger
// variant would add an allocation to the enrolment path for nothing.
#[allow(clippy::large_enum_variant)]
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
    pub audit: AuditEvent,
}

/// A request on its way to [`Store::issue`], announced by
/// [`Store::expect_issuance`] before it is signed: an engine that batches
/// writes may wait briefly for it so that it shares the next flush. Dropped
/// when the issuance is handed over, or when the request fails.
///
/// (Kept in the seam until issuance moves into the service layer, which can
/// announce and issue in one place.)
#[must_use]
pub struct PendingIssuance(#[allow(dead_code)] Box<dyn Send + Sync>);

impl PendingIssuance {
    /// Wraps an engine's guard; dropping the ticket drops the guard.
    pub fn new(guard: Box<dyn Send + Sync>) -> PendingIssuance {
        PendingIssuance(guard)
    }
}

/// One revoked certificate, as the CRL lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RevokedEntry {
    /// Serial.
    pub serial: Serial,
    /// When.
    pub at: UnixSeconds,
    /// Why.
    pub reason: RevocationReason,
}

/// The current CRL.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredCrl {
    /// CRL number.
    pub number: u64,
    /// thisUpdate.
    pub this_update: UnixSeconds,
    /// nextUpdate.
    pub next_update: UnixSeconds,
    /// DER.
    pub der: Vec<u8>,
}

/// A change that caches must follow, made by this node or by another node
/// sharing the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreEvent {
    /// A certificate was revoked: drop cached OCSP answers about it.
    Revoked(Serial),
    /// A new CRL was stored: read it again.
    CrlChanged,
    /// Events may have been missed (the feed reconnected): drop every
    /// cached answer and read the CRL again.
    Resync,
}

/// Work that one node at a time does, across every node sharing the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exclusive {
    /// Signing and storing a CRL.
    CrlSigning,
    /// The scan that writes expiry notices (so that no notice is written twice).
    ExpiryScan,
}

/// Held while this node does [`Exclusive`] work; dropping it lets another in.
#[must_use]
pub struct ExclusiveGuard(#[allow(dead_code)] Box<dyn Send>);

impl ExclusiveGuard {
    /// Wraps an engine's lock; dropping the guard releases it.
    pub fn new(lock: Box<dyn Send>) -> ExclusiveGuard {
        ExclusiveGuard(lock)
    }
}

/// One stored record of any kind, with its key: what `estd store copy`
/// moves from one engine to another ([`Store::export`], [`Store::import`]).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum Record {
    /// A certificate.
    Cert(CertRecord),
    /// A CRL entry of a revoked certificate.
    Revoked(RevokedEntry),
    /// An organisation.
    Org(Organisation),
    /// A certificate profile.
    Profile(Profile),
    /// An order.
    Order(Order),
    /// The order that holds a CSR (approval-required enrolment).
    Held {
        /// SHA-256 of the CSR.
        csr_hash: [u8; 32],
        /// The order's reference number.
        order_id: String,
    },
    /// An admin token's record, under the token's hash.
    Token {
        /// SHA-256 of the token.
        hash: [u8; 32],
        /// The record.
        rec: TokenRecord,
    },
    /// An outbox notice (its id is kept).
    Notification(Notification),
    /// The validation of an organisation's e-mail address.
    EmailValidation(EmailValidation),
    /// A person (sessions are not copied: they end with the store they
    /// were made in).
    Person(Person),
    /// An audit record with its id (kept, so order and cursors survive).
    Audit {
        /// The record's id.
        id: u64,
        /// The event.
        event: AuditEvent,
    },
    /// The current CRL of a CA generation.
    Crl {
        /// The CA generation (1 for the first CA).
        generation: u32,
        /// The CRL.
        crl: StoredCrl,
    },
    /// A counter.
    Counter {
        /// Which.
        name: Counter,
        /// Its value.
        value: u64,
    },
}

/// The layout version of the record codec (what a backup records, so that
/// only a matching estd restores it).
pub fn record_version() -> u8 {
    record::RECORD_VERSION
}

/// One record in the store's versioned codec (for backups).
pub fn encode_record(r: &Record) -> Result<Vec<u8>, StoreError> {
    record::encode(r)
}

/// A record written by [`encode_record`].
pub fn decode_record(b: &[u8]) -> Result<Record, StoreError> {
    record::decode(b)
}

/// Every stored CRL as export records, or the error that stopped the read.
pub(crate) fn crl_records(
    crls: Result<Vec<(u32, StoredCrl)>, StoreError>,
) -> Vec<Result<Record, StoreError>> {
    match crls {
        Ok(c) => c
            .into_iter()
            .map(|(generation, crl)| Ok(Record::Crl { generation, crl }))
            .collect(),
        Err(e) => vec![Err(e)],
    }
}

/// The key of an e-mail validation in either engine: the CVR number (eight
/// digits, no space), a space, the address in lower case.
pub(crate) fn email_validation_key(cvr: &str, address: &str) -> String {
    format!("{cvr} {address}")
}

/// The counters a store keeps besides its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Counter {
    /// One-time codes presented for no order with an outstanding code.
    UnmatchedCodes,
    /// The last CRL number handed out.
    CrlNumber,
}

/// Opens (or creates) the store that `config` names: sled in `data_dir`, or
/// the PostgreSQL database at `config.url`. Records written by older estd
/// versions are migrated.
pub fn open(config: &StoreConfig, data_dir: &Path) -> Result<Arc<dyn Store>, StoreError> {
    match config.engine {
        StoreEngine::Sled => open_sled(data_dir, config.cache_mb.saturating_mul(1 << 20)),
        StoreEngine::Postgres => {
            let url = config.url.as_deref().unwrap_or_default();
            Ok(Arc::new(postgres::PgStore::open(url, config.pool_size)?))
        }
    }
}

/// Opens a store named by a location: a `postgres://` or `postgresql://`
/// URL (with a pool of `pool_size`), or else a sled directory.
pub fn open_location(location: &str, pool_size: usize) -> Result<Arc<dyn Store>, StoreError> {
    if is_database_url(location) {
        Ok(Arc::new(postgres::PgStore::open(location, pool_size)?))
    } else {
        std::fs::create_dir_all(location).map_err(StoreError::engine)?;
        open_sled(Path::new(location), 64 << 20)
    }
}

/// Whether a store location names a PostgreSQL database rather than a
/// sled directory.
pub fn is_database_url(location: &str) -> bool {
    location.starts_with("postgres://") || location.starts_with("postgresql://")
}

/// Opens (or creates) the sled store in `dir` with a page cache of
/// `cache_bytes`.
pub fn open_sled(dir: &Path, cache_bytes: u64) -> Result<Arc<dyn Store>, StoreError> {
    Ok(Arc::new(sled::SledStore::open(dir, cache_bytes)?))
}

/// Everything estd stores. Object-safe; see the module docs for the
/// conventions a new method follows.
pub trait Store: Send + Sync {
    // --- durability and health ---

    /// Makes every write made before this call durable. Concurrent callers
    /// share a flush.
    fn durable(&self) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Flushes synchronously (for start-up and shutdown, outside requests).
    fn flush(&self) -> Result<(), StoreError>;

    /// Whether the store can write, by its last write (no I/O).
    fn health(&self) -> StoreHealth;

    /// Readiness: `Ok` while the last write succeeded; after a failure, the
    /// store first tries to recover and the answer is that attempt's outcome
    /// (the error is the reason it cannot write).
    fn readiness(&self) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Bytes the store occupies on disk.
    fn size_on_disk(&self) -> u64;

    // --- issuance ---

    /// Announces an issuance about to be signed (see [`PendingIssuance`]).
    fn expect_issuance(&self) -> PendingIssuance;

    /// *Durable.* Stores a new certificate with its order and audit record,
    /// atomically. Concurrent issuances may share one transaction and one
    /// flush. `ticket` is given up once the issuance is handed over.
    fn issue(
        &self,
        issuance: Issuance,
        ticket: PendingIssuance,
    ) -> BoxFuture<'_, Result<IssueOutcome, StoreError>>;

    // --- several nodes ---

    /// Changes that caches must follow (revocations, a new CRL), whether this
    /// node or another made them.
    fn events(&self) -> tokio::sync::broadcast::Receiver<StoreEvent>;

    /// Waits until this node alone does `work`, across every node sharing
    /// the store, and holds it until the guard is dropped.
    fn exclusive(&self, work: Exclusive) -> Result<ExclusiveGuard, StoreError>;

    /// The next CRL number, from a sequence: never repeated, never lower,
    /// on any node.
    fn next_crl_number(&self) -> Result<u64, StoreError>;

    // --- certificates ---

    /// Inserts a new certificate; fails with [`StoreError::SerialTaken`] if
    /// the serial exists. Also the bulk loader's path (`estd-bench fill`).
    fn insert_new_cert(&self, rec: &CertRecord) -> Result<(), StoreError>;

    /// Looks a certificate up by serial.
    fn cert(&self, serial: &Serial) -> Result<Option<CertRecord>, StoreError>;

    /// [`Store::cert`] for a request handler: an engine that waits on the
    /// network answers without holding up the handler's worker thread.
    fn fetch_cert(&self, serial: &Serial) -> BoxFuture<'_, Result<Option<CertRecord>, StoreError>> {
        let found = self.cert(serial);
        Box::pin(std::future::ready(found))
    }

    /// Whether a serial is in the store.
    fn contains_serial(&self, serial: &Serial) -> Result<bool, StoreError>;

    /// Applies `change` to a stored certificate atomically (retried on a
    /// concurrent change); `change` returns `false` to leave it untouched,
    /// and the result is then `Ok(None)`. A missing certificate is
    /// [`StoreError::Conflict`]. Callers use the typed adapter
    /// `<dyn Store>::update_cert`.
    fn change_cert(
        &self,
        serial: &Serial,
        change: &mut dyn FnMut(&mut CertRecord) -> bool,
    ) -> Result<Option<CertRecord>, StoreError>;

    /// Number of stored certificates (a kept count, not a scan).
    fn cert_count(&self) -> usize;

    /// Certificates whose notAfter is in `from..to`, soonest first.
    fn certs_expiring(&self, from: u64, to: u64) -> BoxIter<'_, CertRecord>;

    /// All certificates (admin and export use).
    fn certs(&self) -> BoxIter<'_, CertRecord>;

    /// Issued → Revoked for good, recording the CRL entry in the same write.
    fn revoke_cert(
        &self,
        serial: &Serial,
        reason: RevocationReason,
        at: UnixSeconds,
    ) -> Result<Result<CertRecord, IllegalTransition>, StoreError>;

    /// Every revoked certificate, in serial order.
    fn revoked_entries(&self) -> BoxIter<'_, RevokedEntry>;

    /// The stored CRL of CA generation `generation` (1 for the first CA),
    /// if one was made.
    fn crl(&self, generation: u32) -> Result<Option<StoredCrl>, StoreError>;

    /// Replaces the stored CRL of CA generation `generation`.
    fn put_crl(&self, generation: u32, crl: &StoredCrl) -> Result<(), StoreError>;

    // --- organisations and profiles ---

    /// All organisations.
    fn orgs(&self) -> BoxIter<'_, Organisation>;

    /// Creates or replaces an organisation.
    fn put_org(&self, org: &Organisation) -> Result<(), StoreError>;

    /// Inserts a new organisation; `Ok(false)` if its CVR number is taken.
    fn insert_new_org(&self, org: &Organisation) -> Result<bool, StoreError>;

    /// Looks an organisation up by CVR.
    fn org(&self, cvr: &str) -> Result<Option<Organisation>, StoreError>;

    /// All profiles.
    fn profiles(&self) -> BoxIter<'_, Profile>;

    /// Creates or replaces a profile, keeping EST labels unique (without
    /// regard to case): a clash is [`StoreError::Conflict`].
    fn put_profile(&self, p: &Profile) -> Result<(), StoreError>;

    /// Removes a profile and its EST label, atomically. A missing one is no error.
    fn remove_profile(&self, id: &str) -> Result<(), StoreError>;

    /// Looks a profile up by UUID.
    fn profile(&self, id: &str) -> Result<Option<Profile>, StoreError>;

    /// Looks a profile up by EST label (case does not matter).
    fn profile_by_label(&self, label: &str) -> Result<Option<Profile>, StoreError>;

    /// The organisation's profile for EST requests without a label.
    fn default_profile(&self, cvr: &str) -> Result<Option<Profile>, StoreError>;

    // --- orders ---

    /// Inserts a new order; `Ok(false)` if the reference number is taken.
    fn insert_new_order(&self, order: &Order) -> Result<bool, StoreError>;

    /// Looks an order up by reference number.
    fn order(&self, id: &str) -> Result<Option<Order>, StoreError>;

    /// Applies `change` to an order atomically: `Ok(None)` if there is no
    /// such order, `Ok(Some(None))` if `change` returned `false` (nothing
    /// written). Callers use the typed adapter `<dyn Store>::update_order`.
    fn change_order(
        &self,
        id: &str,
        change: &mut dyn FnMut(&mut Order) -> bool,
    ) -> Result<Option<Option<Order>>, StoreError>;

    /// All orders, deleted ones included (callers filter).
    fn orders(&self) -> BoxIter<'_, Order>;

    /// Counts a code presented for no order with an outstanding code; returns the new count.
    fn count_unmatched_code(&self) -> Result<u64, StoreError>;

    /// How many codes were presented for no order with an outstanding code.
    fn unmatched_code_attempts(&self) -> Result<u64, StoreError>;

    /// Remembers the order that holds a CSR (approval-required enrolment).
    fn put_held(&self, csr_hash: &[u8; 32], order_id: &str) -> Result<(), StoreError>;

    /// The order holding a CSR, if any.
    fn held_order(&self, csr_hash: &[u8; 32]) -> Result<Option<Order>, StoreError>;

    // --- admin tokens ---

    /// Stores an admin token's record under the token's hash.
    fn put_token(&self, hash: &[u8; 32], rec: &TokenRecord) -> Result<(), StoreError>;

    /// The record of the token with this hash.
    fn token(&self, hash: &[u8; 32]) -> Result<Option<TokenRecord>, StoreError>;

    /// Every admin token's record with its hash (there are few).
    fn tokens(&self) -> BoxIter<'_, ([u8; 32], TokenRecord)>;

    /// Whether an operator token that is still usable at `now` exists.
    fn has_usable_operator_token(&self, now: UnixSeconds) -> Result<bool, StoreError>;

    // --- e-mail validations ---

    /// Stores the validation of (`rec.cvr`, `rec.address`), replacing any.
    fn put_email_validation(&self, rec: &EmailValidation) -> Result<(), StoreError>;

    /// The validation of `address` (lower case) for the organisation `cvr`.
    fn email_validation(
        &self,
        cvr: &str,
        address: &str,
    ) -> Result<Option<EmailValidation>, StoreError>;

    /// Every e-mail validation (few: one per organisation and address).
    fn email_validations(&self) -> BoxIter<'_, EmailValidation>;

    // --- people and their sessions ---

    /// Stores a new person under [`Person::key`]; `false` (nothing written)
    /// if that organisation already has a person with that address.
    fn insert_new_person(&self, p: &Person) -> Result<bool, StoreError>;

    /// Replaces a person (under [`Person::key`]).
    fn put_person(&self, p: &Person) -> Result<(), StoreError>;

    /// The person under `key` ([`crate::model::person_key`]).
    fn person(&self, key: &str) -> Result<Option<Person>, StoreError>;

    /// Every person, by key (so an organisation's are together).
    fn people(&self) -> BoxIter<'_, Person>;

    /// Stores a session under the SHA-256 of its cookie value.
    fn put_session(&self, hash: &[u8; 32], s: &Session) -> Result<(), StoreError>;

    /// The session under `hash`.
    fn session(&self, hash: &[u8; 32]) -> Result<Option<Session>, StoreError>;

    /// Replaces the session under `hash` only if it still exists, so that a
    /// request racing a logout cannot bring the session back.
    fn touch_session(&self, hash: &[u8; 32], s: &Session) -> Result<(), StoreError>;

    /// Ends the session under `hash` (logout); nothing if there is none.
    fn remove_session(&self, hash: &[u8; 32]) -> Result<(), StoreError>;

    /// Every session (for ending a deactivated person's, and for pruning).
    fn sessions(&self) -> BoxIter<'_, ([u8; 32], Session)>;

    // --- notifications ---

    /// Appends a notification to the outbox; its `id` is assigned here.
    fn push_notification(&self, n: Notification) -> Result<u64, StoreError>;

    /// Replaces a notification (delivery bookkeeping).
    fn put_notification(&self, n: &Notification) -> Result<(), StoreError>;

    /// The outbox, oldest first.
    fn notifications(&self) -> BoxIter<'_, Notification>;

    /// Claims up to `max` undelivered notices, oldest first, for this node
    /// for `lease_secs`: no other node gets them until the lease ends (so a
    /// notice is sent once, and a node that dies while sending lets another
    /// retry it).
    fn claim_notifications(
        &self,
        now: UnixSeconds,
        lease_secs: u64,
        max: usize,
    ) -> Result<Vec<Notification>, StoreError>;

    // --- audit ---

    /// Appends an event to the audit log (texts clipped to
    /// [`crate::clip::MAX_CHARS`]).
    fn audit(&self, event: &AuditEvent) -> Result<(), StoreError>;

    /// Reads the audit log in order.
    fn audit_events(&self) -> BoxIter<'_, AuditEvent>;

    /// The newest audit events that `keep` accepts, at most `limit`, older
    /// than id `before` if given, oldest first, each with its id; the second
    /// value is the cursor for the page before when the page is full.
    fn audit_page(
        &self,
        before: Option<u64>,
        limit: usize,
        keep: &dyn Fn(&AuditEvent) -> bool,
    ) -> Result<AuditPage, StoreError>;

    /// Removes up to `max` of the oldest audit records written before
    /// `cutoff_ms`; returns how many went.
    fn prune_audit(&self, cutoff_ms: u64, max: usize) -> Result<usize, StoreError>;

    // --- moving an installation ---

    /// Every record and counter, kind by kind, each kind in key order.
    fn export(&self) -> BoxIter<'_, Record>;

    /// *Durable.* Writes records as they are, keys (and ids) included, in
    /// one transaction; for filling an empty store with [`Store::export`]'s
    /// output. Records of an existing key are replaced.
    fn import(&self, records: Vec<Record>) -> Result<(), StoreError>;
}

impl dyn Store {
    /// Applies `change` to a stored certificate atomically (retrying on
    /// concurrent change). `change` returns an error to leave the record
    /// untouched; that error is the inner result.
    pub fn update_cert<E, F>(
        &self,
        serial: &Serial,
        mut change: F,
    ) -> Result<Result<CertRecord, E>, StoreError>
    where
        F: FnMut(&mut CertRecord) -> Result<(), E>,
    {
        let mut refused = None;
        let changed = self.change_cert(serial, &mut |rec| match change(rec) {
            Ok(()) => true,
            Err(e) => {
                refused = Some(e);
                false
            }
        })?;
        match (changed, refused) {
            (Some(rec), _) => Ok(Ok(rec)),
            (None, Some(e)) => Ok(Err(e)),
            // The engine reports "untouched" only when `change` refused.
            (None, None) => Err(StoreError::Conflict(format!(
                "no certificate with serial {serial}"
            ))),
        }
    }

    /// Applies `change` to an order atomically; `Ok(None)` if there is no
    /// such order, `Ok(Some(Err(e)))` if `change` refused (nothing written).
    pub fn update_order<E, F>(
        &self,
        id: &str,
        mut change: F,
    ) -> Result<Option<Result<Order, E>>, StoreError>
    where
        F: FnMut(&mut Order) -> Result<(), E>,
    {
        let mut refused = None;
        let changed = self.change_order(id, &mut |order| match change(order) {
            Ok(()) => true,
            Err(e) => {
                refused = Some(e);
                false
            }
        })?;
        Ok(match changed {
            None => None,
            Some(Some(order)) => Some(Ok(order)),
            Some(None) => refused.map(Err),
        })
    }
}
