//! The embedded engine: sled.
//!
//! Trees:
//! - `certs`: serial (16 bytes) → [`CertRecord`]
//! - `orgs`: CVR → [`crate::model::Organisation`]
//! - `profiles`: UUID → [`crate::model::Profile`]; `labels`: EST label in lower case → UUID (see `labels.rs`)
//! - `audit`: monotonic id (u64, big-endian) → [`crate::model::AuditEvent`]
//! - `orders`: reference number → [`crate::model::Order`]; `held`: SHA-256 of a held CSR → reference number
//! - `tokens`: SHA-256 of an admin token → [`crate::model::TokenRecord`]
//! - `outbox`: monotonic id → [`crate::model::Notification`]
//! - `email_validations`: "CVR address" → [`crate::model::EmailValidation`]
//! - `people`: "CVR address" ([`crate::model::person_key`]) → [`crate::model::Person`]
//! - `sessions`: SHA-256 of the cookie value → [`crate::model::Session`]
//! - `revoked`: serial → revocation time and reason (the CRL's source, kept small)
//! - `expiry`: notAfter (u64, big-endian) ‖ serial → empty (the expiry scan's index)
//! - `meta`: the store's format (see `migrate.rs`), the current CRL and its
//!   number, the certificate count
//!
//! Every record is versioned (see `codec.rs`).
//!
//! Writes land in sled's memory first; [`SledStore::durable`] makes them
//! durable. Concurrent calls share one flush (group commit), so a burst of
//! enrolments pays for one fsync, not one each. Issuance goes through
//! `issue`, which the committer thread applies in batches (see `commit.rs`).
//! sled's own flush ends in `sync_file_range`, which does not persist the
//! metadata of its growing log file (nor flush the drive's cache), so each
//! commit also `fdatasync`s the log.
//!
//! A write that fails (a full disk) leaves sled refusing every later write
//! until it is opened again: it keeps the first I/O error and returns it
//! from then on. So the handles live behind [`Shared::trees`], and the
//! committer reopens sled in place once space is back (see `recovery.rs`);
//! until then writes fail, readiness says why, and reads go on.

mod audit;
mod certs;
mod codec;
mod commit;
mod health;
mod labels;
mod migrate;
mod moving;
mod nodes;
mod orders;
mod profiles;
mod recovery;
mod revocation;
mod snapshot;
mod tokens;
mod trees;

use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::{mpsc, Arc, RwLock};

use tokio::sync::oneshot;

use crate::model::{
    AuditEvent, CertRecord, EmailValidation, IllegalTransition, Notification, Order, Organisation,
    Person, Profile, RevocationReason, Serial, Session, TokenRecord, UnixSeconds,
};
use crate::store::{
    AuditPage, BoxFuture, BoxIter, Exclusive, ExclusiveGuard, Issuance, IssueOutcome,
    PendingIssuance, RevokedEntry, Store, StoreError, StoreEvent, StoreHealth, StoredCrl,
};
use snapshot::Kept;
use trees::{open_trees, Shared, Trees};

/// The sled store; the crate sees it only as `dyn Store`.
pub(super) struct SledStore {
    shared: Arc<Shared>,
    local: nodes::Local,
    events: tokio::sync::broadcast::Sender<StoreEvent>,
    /// `None` only while dropping.
    commits: Option<mpsc::Sender<commit::Job>>,
    committer: Option<std::thread::JoinHandle<()>>,
}

impl Drop for SledStore {
    fn drop(&mut self) {
        // Closing the channel ends the committer, which drops its handle on the
        // database; joining it means the store is really closed (lock released)
        // when the last handle goes.
        self.commits.take();
        if let Some(h) = self.committer.take() {
            let _ = h.join();
        }
    }
}

impl SledStore {
    /// Opens (or creates) the store in `dir` with a page cache of
    /// `cache_bytes`, and starts its committer.
    pub(super) fn open(dir: &Path, cache_bytes: u64) -> Result<SledStore, StoreError> {
        let (trees, count) = open_trees(dir, cache_bytes)?;
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            cache_bytes,
            trees: RwLock::new(Some(Arc::new(trees))),
            pending: Arc::new(AtomicUsize::new(0)),
            cert_count: AtomicU64::new(count),
            health: health::Health::default(),
            snapshots: snapshot::Snapshots::default(),
        });
        let (tx, rx) = mpsc::channel::<commit::Job>();
        let committer_shared = shared.clone();
        let committer = std::thread::Builder::new()
            .name("estd-commit".into())
            .spawn(move || commit::run(committer_shared, rx))
            .map_err(StoreError::engine)?;
        Ok(SledStore {
            shared,
            local: nodes::Local::default(),
            events: tokio::sync::broadcast::channel(1024).0,
            commits: Some(tx),
            committer: Some(committer),
        })
    }

    /// The current sled handles (an error while the store is being reopened).
    fn trees(&self) -> Result<Arc<Trees>, StoreError> {
        self.shared.trees()
    }

    /// Every value of one tree, decoded, in key order.
    fn values<T: Send + 'static>(
        &self,
        tree: fn(&Trees) -> &sled::Tree,
        decode: fn(&[u8]) -> Result<T, StoreError>,
    ) -> BoxIter<'static, T> {
        self.entries(tree, move |_, v| decode(v))
    }

    /// Every entry of `tree`, each decoded from its key and value.
    fn entries<T: Send + 'static>(
        &self,
        tree: fn(&Trees) -> &sled::Tree,
        decode: impl Fn(&[u8], &[u8]) -> Result<T, StoreError> + Send + 'static,
    ) -> BoxIter<'static, T> {
        // sled's iterator holds its own handle; an unavailable store is one error item.
        let (iter, unavailable) = match self.trees() {
            Ok(t) => (Some(tree(&t).iter()), None),
            Err(e) => (None, Some(Err(e))),
        };
        Box::new(
            unavailable
                .into_iter()
                .chain(iter.into_iter().flatten().map(move |r| {
                    r.map_err(StoreError::from)
                        .and_then(|(k, v)| decode(&k, &v))
                })),
        )
    }

    /// A 32-byte hash key (tokens, sessions).
    fn hash_key(k: &[u8], what: &str) -> Result<[u8; 32], StoreError> {
        k.try_into()
            .map_err(|_| StoreError::Conflict(format!("malformed {what} key")))
    }

    fn send(&self, job: commit::Job) -> Result<(), StoreError> {
        self.commits
            .as_ref()
            .ok_or(StoreError::Closed)?
            .send(job)
            .map_err(|_| StoreError::Closed)
    }

    /// Hands a job to the committer and waits for its answer.
    async fn ask<T>(
        &self,
        job: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Result<commit::Job, StoreError>,
    ) -> Result<T, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.send(job(tx)?)?;
        rx.await.unwrap_or(Err(StoreError::Closed))
    }

    /// Flushes synchronously. After a write failed, sled may have nothing
    /// left it could write and report success; the store's own record of
    /// the failure is reported instead.
    fn flush_now(&self) -> Result<(), StoreError> {
        let t = self.trees()?;
        let health = &self.shared.health;
        match trees::flush(&t) {
            Ok(()) => match health.error() {
                Some(e) => Err(e.unavailable()),
                None => Ok(()),
            },
            Err(e) => {
                health.failed(&e);
                Err(e.unavailable())
            }
        }
    }

    /// Readiness: see [`Store::readiness`].
    async fn ready(&self) -> Result<(), StoreError> {
        if self.shared.health.error().is_none() {
            return Ok(());
        }
        let answer = self.ask(|tx| Ok(commit::Job::Probe(tx))).await;
        // The reason, not "cannot write" twice: readiness says that itself.
        answer.map_err(|e| match e {
            StoreError::Unavailable(why) => (*why).clone(),
            e => e,
        })
    }

    fn size(&self) -> u64 {
        self.trees()
            .ok()
            .and_then(|t| t.db.size_on_disk().ok())
            .unwrap_or(0)
    }
}

impl Store for SledStore {
    fn durable(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.ask(|tx| Ok(commit::Job::Flush(tx))))
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.flush_now()
    }

    fn health(&self) -> StoreHealth {
        self.shared.health.snapshot()
    }

    fn readiness(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.ready())
    }

    fn size_on_disk(&self) -> u64 {
        self.size()
    }

    fn expect_issuance(&self) -> PendingIssuance {
        PendingIssuance::new(Box::new(commit::PendingTicket::new(&self.shared.pending)))
    }

    fn issue(
        &self,
        issuance: Issuance,
        ticket: PendingIssuance,
    ) -> BoxFuture<'_, Result<IssueOutcome, StoreError>> {
        Box::pin(async move {
            let (tx, rx) = oneshot::channel();
            let job = commit::PreparedIssuance::new(issuance, tx)?;
            self.send(commit::Job::Issue(Box::new(job)))?;
            // Given up only once handed over, so that the committer, waiting
            // while tickets are out, finds the job in its channel.
            drop(ticket);
            rx.await.unwrap_or(Err(StoreError::Closed))
        })
    }

    fn events(&self) -> tokio::sync::broadcast::Receiver<StoreEvent> {
        self.events.subscribe()
    }

    fn exclusive(&self, work: Exclusive) -> Result<ExclusiveGuard, StoreError> {
        SledStore::exclusive(self, work)
    }

    fn next_crl_number(&self) -> Result<u64, StoreError> {
        SledStore::next_crl_number(self)
    }

    fn insert_new_cert(&self, rec: &CertRecord) -> Result<(), StoreError> {
        SledStore::insert_new_cert(self, rec)
    }
    fn cert(&self, serial: &Serial) -> Result<Option<CertRecord>, StoreError> {
        SledStore::cert(self, serial)
    }
    fn contains_serial(&self, serial: &Serial) -> Result<bool, StoreError> {
        SledStore::contains_serial(self, serial)
    }
    fn change_cert(
        &self,
        serial: &Serial,
        change: &mut dyn FnMut(&mut CertRecord) -> bool,
    ) -> Result<Option<CertRecord>, StoreError> {
        SledStore::change_cert(self, serial, change)
    }
    fn cert_count(&self) -> usize {
        SledStore::cert_count(self)
    }
    fn certs_expiring(&self, from: u64, to: u64) -> BoxIter<'_, CertRecord> {
        SledStore::certs_expiring(self, from, to)
    }
    fn certs(&self) -> BoxIter<'_, CertRecord> {
        self.values(|t| &t.certs, codec::decode)
    }
    fn revoke_cert(
        &self,
        serial: &Serial,
        reason: RevocationReason,
        at: UnixSeconds,
    ) -> Result<Result<CertRecord, IllegalTransition>, StoreError> {
        let revoked = SledStore::revoke_cert(self, serial, reason, at)?;
        if revoked.is_ok() {
            // No receiver (no OCSP cache yet) is no error.
            let _ = self.events.send(StoreEvent::Revoked(*serial));
        }
        Ok(revoked)
    }
    fn revoked_entries(&self) -> BoxIter<'_, RevokedEntry> {
        self.values(|t| &t.revoked, codec::decode)
    }
    fn crl(&self, generation: u32) -> Result<Option<StoredCrl>, StoreError> {
        SledStore::crl(self, generation)
    }
    fn put_crl(&self, generation: u32, crl: &StoredCrl) -> Result<(), StoreError> {
        SledStore::put_crl(self, generation, crl)?;
        let _ = self.events.send(StoreEvent::CrlChanged);
        Ok(())
    }
    fn orgs(&self) -> BoxIter<'_, Organisation> {
        self.values(|t| &t.orgs, codec::decode)
    }
    fn put_org(&self, org: &Organisation) -> Result<(), StoreError> {
        SledStore::put_org(self, org)
    }
    fn insert_new_org(&self, org: &Organisation) -> Result<bool, StoreError> {
        SledStore::insert_new_org(self, org)
    }
    fn org(&self, cvr: &str) -> Result<Option<Organisation>, StoreError> {
        SledStore::org(self, cvr)
    }
    fn profiles(&self) -> BoxIter<'_, Profile> {
        self.values(|t| &t.profiles, codec::decode_profile)
    }
    fn put_profile(&self, p: &Profile) -> Result<(), StoreError> {
        SledStore::put_profile(self, p)
    }
    fn remove_profile(&self, id: &str) -> Result<(), StoreError> {
        SledStore::remove_profile(self, id)
    }
    fn profile(&self, id: &str) -> Result<Option<Profile>, StoreError> {
        SledStore::profile(self, id)
    }
    fn profile_by_label(&self, label: &str) -> Result<Option<Profile>, StoreError> {
        SledStore::profile_by_label(self, label)
    }
    fn default_profile(&self, cvr: &str) -> Result<Option<Profile>, StoreError> {
        SledStore::default_profile(self, cvr)
    }
    fn insert_new_order(&self, order: &Order) -> Result<bool, StoreError> {
        SledStore::insert_new_order(self, order)
    }
    fn order(&self, id: &str) -> Result<Option<Order>, StoreError> {
        SledStore::order(self, id)
    }
    fn change_order(
        &self,
        id: &str,
        change: &mut dyn FnMut(&mut Order) -> bool,
    ) -> Result<Option<Option<Order>>, StoreError> {
        SledStore::change_order(self, id, change)
    }
    fn orders(&self) -> BoxIter<'_, Order> {
        self.values(|t| &t.orders, codec::decode)
    }
    fn count_unmatched_code(&self) -> Result<u64, StoreError> {
        SledStore::count_unmatched_code(self)
    }
    fn unmatched_code_attempts(&self) -> Result<u64, StoreError> {
        SledStore::unmatched_code_attempts(self)
    }
    fn put_held(&self, csr_hash: &[u8; 32], order_id: &str) -> Result<(), StoreError> {
        SledStore::put_held(self, csr_hash, order_id)
    }
    fn held_order(&self, csr_hash: &[u8; 32]) -> Result<Option<Order>, StoreError> {
        SledStore::held_order(self, csr_hash)
    }
    fn put_token(&self, hash: &[u8; 32], rec: &TokenRecord) -> Result<(), StoreError> {
        SledStore::put_token(self, hash, rec)
    }
    fn token(&self, hash: &[u8; 32]) -> Result<Option<TokenRecord>, StoreError> {
        SledStore::token(self, hash)
    }
    fn tokens(&self) -> BoxIter<'_, ([u8; 32], TokenRecord)> {
        SledStore::tokens(self)
    }
    fn has_usable_operator_token(&self, now: UnixSeconds) -> Result<bool, StoreError> {
        SledStore::has_usable_operator_token(self, now)
    }
    fn push_notification(&self, n: Notification) -> Result<u64, StoreError> {
        SledStore::push_notification(self, n)
    }
    fn put_notification(&self, n: &Notification) -> Result<(), StoreError> {
        self.release_claim(n.id);
        SledStore::put_notification(self, n)
    }
    fn claim_notifications(
        &self,
        now: UnixSeconds,
        lease_secs: u64,
        max: usize,
    ) -> Result<Vec<Notification>, StoreError> {
        SledStore::claim_notifications(self, now, lease_secs, max)
    }

    fn notifications(&self) -> BoxIter<'_, Notification> {
        self.values(|t| &t.outbox, codec::decode)
    }
    fn put_email_validation(&self, rec: &EmailValidation) -> Result<(), StoreError> {
        let key = crate::store::email_validation_key(&rec.cvr, &rec.address);
        let t = self.trees()?;
        let _w = self.shared.snapshots.changing(
            Kept::EmailValidations,
            &t.email_validations,
            key.as_bytes(),
        )?;
        t.email_validations
            .insert(key.as_bytes(), codec::encode(rec)?)?;
        Ok(())
    }
    fn email_validation(
        &self,
        cvr: &str,
        address: &str,
    ) -> Result<Option<EmailValidation>, StoreError> {
        let key = crate::store::email_validation_key(cvr, address);
        match self.trees()?.email_validations.get(key.as_bytes())? {
            Some(v) => Ok(Some(codec::decode(&v)?)),
            None => Ok(None),
        }
    }
    fn email_validations(&self) -> BoxIter<'_, EmailValidation> {
        self.values(|t| &t.email_validations, codec::decode)
    }
    fn insert_new_person(&self, p: &Person) -> Result<bool, StoreError> {
        let t = self.trees()?;
        let _w = self
            .shared
            .snapshots
            .changing(Kept::People, &t.people, p.key().as_bytes())?;
        Ok(t.people
            .compare_and_swap(
                p.key().as_bytes(),
                None as Option<&[u8]>,
                Some(codec::encode(p)?),
            )?
            .is_ok())
    }
    fn put_person(&self, p: &Person) -> Result<(), StoreError> {
        let t = self.trees()?;
        let _w = self
            .shared
            .snapshots
            .changing(Kept::People, &t.people, p.key().as_bytes())?;
        t.people.insert(p.key().as_bytes(), codec::encode(p)?)?;
        Ok(())
    }
    fn person(&self, key: &str) -> Result<Option<Person>, StoreError> {
        match self.trees()?.people.get(key.as_bytes())? {
            Some(v) => Ok(Some(codec::decode(&v)?)),
            None => Ok(None),
        }
    }
    fn people(&self) -> BoxIter<'_, Person> {
        self.values(|t| &t.people, codec::decode)
    }
    fn put_session(&self, hash: &[u8; 32], s: &Session) -> Result<(), StoreError> {
        self.trees()?.sessions.insert(hash, codec::encode(s)?)?;
        Ok(())
    }
    fn session(&self, hash: &[u8; 32]) -> Result<Option<Session>, StoreError> {
        match self.trees()?.sessions.get(hash)? {
            Some(v) => Ok(Some(codec::decode(&v)?)),
            None => Ok(None),
        }
    }
    fn touch_session(&self, hash: &[u8; 32], s: &Session) -> Result<(), StoreError> {
        let value = codec::encode(s)?;
        // Atomic: a session removed meanwhile stays removed.
        self.trees()?
            .sessions
            .fetch_and_update(hash, |old| old.map(|_| value.clone()))?;
        Ok(())
    }
    fn remove_session(&self, hash: &[u8; 32]) -> Result<(), StoreError> {
        self.trees()?.sessions.remove(hash)?;
        Ok(())
    }
    fn sessions(&self) -> BoxIter<'_, ([u8; 32], Session)> {
        self.entries(
            |t| &t.sessions,
            |k, v| Ok((SledStore::hash_key(k, "session")?, codec::decode(v)?)),
        )
    }
    fn audit(&self, event: &AuditEvent) -> Result<(), StoreError> {
        SledStore::audit(self, event)
    }
    fn audit_events(&self) -> BoxIter<'_, AuditEvent> {
        self.values(|t| &t.audit, codec::decode)
    }
    fn audit_page(
        &self,
        before: Option<u64>,
        limit: usize,
        keep: &dyn Fn(&AuditEvent) -> bool,
    ) -> Result<AuditPage, StoreError> {
        SledStore::audit_page(self, before, limit, keep)
    }
    fn prune_audit(&self, cutoff_ms: u64, max: usize) -> Result<usize, StoreError> {
        SledStore::prune_audit(self, cutoff_ms, max)
    }

    fn export(&self) -> BoxIter<'_, crate::store::Record> {
        self.export_all()
    }

    fn import(&self, records: Vec<crate::store::Record>) -> Result<(), StoreError> {
        self.import_all(records)
    }
}
