//! Revocation that relying parties can see: the current CRL, and OCSP answers
//! that are pre-signed for unchanged certificates.
//!
//! Ordering rule: a revocation is written to the store first, then
//! [`Revocation::after_revocation`] drops any cached answer for the serial and
//! signs a new CRL, and only then does the caller answer. A cached `good`
//! made from a store read that raced a revocation is never kept: answers are
//! cached only if no revocation happened since their read began.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;

use crate::ca::bootstrap::{self, OCSP_RENEW_DAYS};
use crate::ca::ocsp::{self, Lookup, OcspResponder};
use crate::ca::rollover::generation_dir;
use crate::ca::{Ca, CaError, CaSet, IssuedCert};
use crate::config::RevocationConfig;
use crate::metrics::Metrics;
use crate::model::{now_unix, CertStatus, RevocationReason, Serial, UnixSeconds};
use crate::store::{Exclusive, Store, StoreError, StoreEvent, StoredCrl};

/// Bounds how many OCSP requests are answered (looked up and signed) at
/// once. The work runs in place on the async worker that holds a permit, so
/// with one permit OCSP occupies at most one core, whatever the load; the
/// other requests wait for their turn without using any.
pub struct OcspGate {
    permits: tokio::sync::Semaphore,
    in_progress: AtomicI64,
    peak: AtomicI64,
}

impl OcspGate {
    /// A gate with `permits` (at least 1) answers at a time.
    pub fn new(permits: usize) -> OcspGate {
        OcspGate {
            permits: tokio::sync::Semaphore::new(permits.max(1)),
            in_progress: AtomicI64::new(0),
            peak: AtomicI64::new(0),
        }
    }

    /// Answers a DER OCSPRequest when a permit is free.
    pub async fn answer(
        &self,
        revocation: &Revocation,
        store: &Arc<dyn Store>,
        metrics: &Metrics,
        request: &[u8],
    ) -> OcspAnswer {
        // The semaphore is never closed; were it, answering anyway is safe.
        let _permit = self.permits.acquire().await.ok();
        let _counted = Counted::enter(self, metrics);
        revocation.ocsp(store, request)
    }
}

/// Counts an answer in progress for the gauges, also if it is cancelled.
struct Counted<'a> {
    gate: &'a OcspGate,
    metrics: &'a Metrics,
}

impl<'a> Counted<'a> {
    fn enter(gate: &'a OcspGate, metrics: &'a Metrics) -> Counted<'a> {
        let now = gate.in_progress.fetch_add(1, Ordering::SeqCst) + 1;
        let peak = gate.peak.fetch_max(now, Ordering::SeqCst).max(now);
        metrics.ocsp_in_progress.set(now);
        metrics.ocsp_peak.set(peak);
        Counted { gate, metrics }
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        let now = self.gate.in_progress.fetch_sub(1, Ordering::SeqCst) - 1;
        self.metrics.ocsp_in_progress.set(now);
    }
}

/// Errors while producing revocation information.
#[derive(Debug, thiserror::Error)]
pub enum RevocationError {
    /// Signing or encoding.
    #[error(transparent)]
    Ca(#[from] CaError),
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An OCSP answer ready to send.
#[derive(Debug, Clone)]
pub struct OcspAnswer {
    /// DER OCSPResponse.
    pub body: Bytes,
    /// What it says (for metrics).
    pub status: OcspStatus,
    /// Seconds an HTTP cache may keep it (GET), if cacheable.
    pub max_age: Option<u64>,
}

/// What an OCSP answer says. For a request about several certificates:
/// `Revoked` if any is revoked, else `Unknown` if any is unknown, else `Good`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OcspStatus {
    /// Every certificate asked about is ours and not revoked.
    Good,
    /// A certificate asked about is revoked.
    Revoked,
    /// A certificate asked about is not ours.
    Unknown,
    /// The request could not be parsed (`malformedRequest`).
    Malformed,
    /// The store or the signer failed (`internalError`).
    Error,
}

impl OcspStatus {
    /// The metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            OcspStatus::Good => "good",
            OcspStatus::Revoked => "revoked",
            OcspStatus::Unknown => "unknown",
            OcspStatus::Malformed => "malformed",
            OcspStatus::Error => "error",
        }
    }
}

impl std::fmt::Display for OcspStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

struct Cached {
    serial: Serial,
    body: Bytes,
    status: OcspStatus,
    refresh_at: UnixSeconds,
    next_update: UnixSeconds,
}

/// One CRL entry: serial, revocation time, reason.
type CrlEntry = (Serial, UnixSeconds, RevocationReason);

/// One CA generation's revocation state: its current CRL and its
/// delegated OCSP responder.
struct PerCa {
    ca: Arc<Ca>,
    number: u32,
    crl: RwLock<Arc<StoredCrl>>,
    responder: RwLock<Arc<OcspResponder>>,
}

impl PerCa {
    fn crl(&self) -> Arc<StoredCrl> {
        match self.crl.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn responder(&self) -> Arc<OcspResponder> {
        match self.responder.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Serves `crl` unless a newer one is already served (one read from the
    /// store after another node signed may overtake this node's own).
    fn adopt_crl(&self, crl: Arc<StoredCrl>) {
        let mut current = match self.crl.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if crl.number >= current.number {
            *current = crl;
        }
    }
}

/// CRL and OCSP state, shared by the plain-HTTP listener and the admin API:
/// per CA generation, each with its own CRL and responder.
pub struct Revocation {
    config: RevocationConfig,
    cas: Arc<CaSet>,
    /// In the order of `cas`'s generations.
    per_ca: Vec<PerCa>,
    /// Keyed by the request's CertID DER, so an answer always echoes the asker's CertID.
    cache: RwLock<HashMap<Vec<u8>, Cached>>,
    /// Bumped after every revocation; answers read before a bump are not cached.
    epoch: AtomicU64,
    /// Which generation issued each revoked certificate seen so far (only
    /// looked up with several generations; it never changes).
    issuers: Mutex<HashMap<Serial, u32>>,
}

/// The stored OCSP responder in `dir`, or a new one if there is none or it nears expiry.
fn load_responder(dir: &Path, ca: &Ca) -> Result<(OcspResponder, Option<IssuedCert>), CaError> {
    if let Some(responder) = bootstrap::read_ocsp_responder(dir, ca)? {
        if responder.not_after > now_unix() + OCSP_RENEW_DAYS * 86_400 {
            return Ok((responder, None));
        }
    }
    let (responder, issued) = bootstrap::create_ocsp_responder(dir, ca)?;
    Ok((responder, Some(issued)))
}

fn empty_crl() -> StoredCrl {
    StoredCrl {
        number: 0,
        this_update: 0,
        next_update: 0,
        der: Vec::new(),
    }
}

impl Revocation {
    /// Loads each generation's stored CRL (or signs the first), and its
    /// OCSP responder (created or renewed if needed). Returns the newly
    /// issued responder certificates, which the caller records in the store.
    pub fn init(
        config: &RevocationConfig,
        certs_dir: &Path,
        cas: &Arc<CaSet>,
        store: &Arc<dyn Store>,
    ) -> Result<(Revocation, Vec<IssuedCert>), RevocationError> {
        let mut per_ca = Vec::new();
        let mut issued = Vec::new();
        for g in cas.generations() {
            let dir = generation_dir(certs_dir, g.number);
            let (responder, new) = load_responder(&dir, &g.ca)?;
            issued.extend(new);
            per_ca.push(PerCa {
                ca: g.ca.clone(),
                number: g.number,
                crl: RwLock::new(Arc::new(store.crl(g.number)?.unwrap_or_else(empty_crl))),
                responder: RwLock::new(Arc::new(responder)),
            });
        }
        let r = Revocation {
            config: config.clone(),
            cas: cas.clone(),
            per_ca,
            cache: RwLock::new(HashMap::new()),
            epoch: AtomicU64::new(0),
            issuers: Mutex::new(HashMap::new()),
        };
        Ok((r, issued))
    }

    fn per_ca(&self, generation: u32) -> Option<&PerCa> {
        self.per_ca.iter().find(|p| p.number == generation)
    }

    /// The current CRL of CA generation `generation`, if there is such a generation.
    pub fn crl_of(&self, generation: u32) -> Option<Arc<StoredCrl>> {
        self.per_ca(generation).map(PerCa::crl)
    }

    /// The current CRL of the generation that issues now.
    pub fn current_crl(&self) -> Arc<StoredCrl> {
        let active = self.cas.active_at(now_unix()).number;
        self.crl_of(active).unwrap_or_else(|| Arc::new(empty_crl()))
    }

    /// Whether a CRL is due to be signed again (never signed, or older than the refresh interval).
    pub fn crl_due(&self, now: UnixSeconds) -> bool {
        self.per_ca
            .iter()
            .filter(|p| p.ca.not_after() >= now)
            .any(|p| {
                let crl = p.crl();
                crl.der.is_empty() || now >= crl.this_update + self.config.crl_refresh_minutes * 60
            })
    }

    /// Splits the revoked entries by the generation that issued each.
    fn entries_by_generation(
        &self,
        store: &Arc<dyn Store>,
        entries: Vec<CrlEntry>,
    ) -> Result<HashMap<u32, Vec<CrlEntry>>, RevocationError> {
        let mut split: HashMap<u32, Vec<_>> = HashMap::new();
        if self.cas.is_single() {
            split.insert(1, entries);
            return Ok(split);
        }
        let mut issuers = match self.issuers.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        for entry in entries {
            let generation = match issuers.get(&entry.0) {
                Some(g) => Some(*g),
                None => {
                    let found = store
                        .cert(&entry.0)?
                        .and_then(|rec| self.cas.issuer_of_der(&rec.der).map(|g| g.number));
                    if let Some(g) = found {
                        issuers.insert(entry.0, g);
                    }
                    found
                }
            };
            match generation {
                Some(g) => split.entry(g).or_default().push(entry),
                None => tracing::warn!(
                    serial = %entry.0,
                    "a revoked certificate of no CA generation estd holds is left off every CRL"
                ),
            }
        }
        Ok(split)
    }

    /// Signs a new CRL for every generation whose CA certificate is still
    /// valid, each from its own certificates in the revoked index, with the
    /// next CRL numbers, and stores them (durable with the caller's next
    /// commit). One node at a time signs (the store's
    /// [`Exclusive::CrlSigning`]), and numbers come from the store's
    /// sequence, so they never go down across nodes. Returns the CRL of the
    /// generation that issues now.
    pub fn regenerate_crl(
        &self,
        store: &Arc<dyn Store>,
        metrics: &Metrics,
    ) -> Result<Arc<StoredCrl>, RevocationError> {
        let _one_at_a_time = store.exclusive(Exclusive::CrlSigning)?;
        let entries = store
            .revoked_entries()
            .map(|e| e.map(|e| (e.serial, e.at, e.reason)))
            .collect::<Result<Vec<_>, _>>()?;
        let mut split = self.entries_by_generation(store, entries)?;
        let now = now_unix();
        let next = now + self.config.crl_next_update_hours * 3600;
        for p in &self.per_ca {
            // An expired CA's CRL convinces nobody; its certificates have expired too.
            if p.ca.not_after() < now {
                continue;
            }
            let entries = split.remove(&p.number).unwrap_or_default();
            let number = store.next_crl_number()?;
            let der = p.ca.sign_crl(
                number,
                UNIX_EPOCH + Duration::from_secs(now),
                UNIX_EPOCH + Duration::from_secs(next),
                &entries,
            )?;
            let crl = StoredCrl {
                number,
                this_update: now,
                next_update: next,
                der,
            };
            store.put_crl(p.number, &crl)?;
            metrics.crl_generations.inc();
            p.adopt_crl(Arc::new(crl));
        }
        let current = self.current_crl();
        metrics.crl_size_bytes.set(current.der.len() as i64);
        Ok(current)
    }

    /// Follows a change made by this node or another: drops cached OCSP
    /// answers a revocation makes wrong, and serves the CRLs stored by
    /// another node.
    pub fn follow(&self, event: StoreEvent, store: &Arc<dyn Store>) -> Result<(), StoreError> {
        match event {
            StoreEvent::Revoked(serial) => self.forget(Some(&serial)),
            StoreEvent::CrlChanged => {}
            StoreEvent::Resync => self.forget(None),
        }
        if matches!(event, StoreEvent::CrlChanged | StoreEvent::Resync) {
            for p in &self.per_ca {
                if let Some(crl) = store.crl(p.number)? {
                    p.adopt_crl(Arc::new(crl));
                }
            }
        }
        Ok(())
    }

    /// Drops cached answers about `serial` (all of them for `None`), and
    /// keeps answers being made now from being cached.
    fn forget(&self, serial: Option<&Serial>) {
        let mut cache = match self.cache.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        self.epoch.fetch_add(1, Ordering::SeqCst);
        match serial {
            Some(serial) => cache.retain(|_, c| c.serial != *serial),
            None => cache.clear(),
        }
    }

    /// Call after a revocation is in the store and before answering: drops
    /// cached answers for the serial and signs new CRLs.
    pub fn after_revocation(
        &self,
        serial: &Serial,
        store: &Arc<dyn Store>,
        metrics: &Metrics,
    ) -> Result<(), RevocationError> {
        self.forget(Some(serial));
        self.regenerate_crl(store, metrics)?;
        Ok(())
    }

    /// Per generation number: when its OCSP responder certificate expires
    /// and when its current CRL's nextUpdate falls.
    pub fn expiries(&self) -> Vec<(u32, UnixSeconds, UnixSeconds)> {
        self.per_ca
            .iter()
            .map(|p| (p.number, p.responder().not_after, p.crl().next_update))
            .collect()
    }

    /// Replaces each generation's OCSP responder certificate when it nears
    /// expiry. Returns the new certificates, which the caller records in
    /// the store.
    pub fn renew_responder_if_due(
        &self,
        certs_dir: &Path,
    ) -> Result<Vec<IssuedCert>, RevocationError> {
        let mut issued = Vec::new();
        for p in &self.per_ca {
            let due = p.responder().not_after <= now_unix() + OCSP_RENEW_DAYS * 86_400;
            if !due {
                continue;
            }
            let dir = generation_dir(certs_dir, p.number);
            let (signer, new) = bootstrap::create_ocsp_responder(&dir, &p.ca)?;
            match p.responder.write() {
                Ok(mut g) => *g = Arc::new(signer),
                Err(e) => *e.into_inner() = Arc::new(signer),
            }
            issued.push(new);
        }
        if !issued.is_empty() {
            match self.cache.write() {
                Ok(mut g) => g.clear(),
                Err(p) => p.into_inner().clear(),
            }
        }
        Ok(issued)
    }

    /// The generation whose CA the request asks about, and the request as
    /// its responder parsed it: the first generation (the issuing one
    /// first) that one of the CertIDs names; if none does, the issuing one
    /// answers (unknown). `None`: the request is malformed.
    fn responder_for(&self, request: &[u8]) -> Option<(&PerCa, Arc<OcspResponder>, ocsp::Parsed)> {
        if let [only] = self.per_ca.as_slice() {
            let responder = only.responder();
            let parsed = responder.parse(request)?;
            return Some((only, responder, parsed));
        }
        let active = self.cas.active_at(now_unix()).number;
        let mut order: Vec<&PerCa> = self.per_ca.iter().collect();
        order.sort_by_key(|p| p.number != active);
        let mut fallback = None;
        for p in order {
            let responder = p.responder();
            let parsed = responder.parse(request)?;
            if parsed.items.iter().any(ocsp::Item::names_issuer) {
                return Some((p, responder, parsed));
            }
            if fallback.is_none() {
                fallback = Some((p, responder, parsed));
            }
        }
        fallback
    }

    /// Answers a DER OCSPRequest. Never fails: bad input gets `malformedRequest`.
    pub fn ocsp(&self, store: &Arc<dyn Store>, request: &[u8]) -> OcspAnswer {
        let Some((per_ca, responder, parsed)) = self.responder_for(request) else {
            return OcspAnswer {
                body: Bytes::from(ocsp::malformed()),
                status: OcspStatus::Malformed,
                max_age: None,
            };
        };
        let now = now_unix();
        let single = parsed.items.len() == 1 && parsed.nonce.is_none();
        let cache_key = if single && parsed.items[0].serial.is_some() {
            der::Encode::to_der(&parsed.items[0].cert_id).ok()
        } else {
            None
        };
        if let Some(key) = &cache_key {
            {
                let cache = match self.cache.read() {
                    Ok(g) => g,
                    Err(p) => p.into_inner(),
                };
                if let Some(c) = cache.get(key) {
                    if now < c.refresh_at {
                        return OcspAnswer {
                            body: c.body.clone(),
                            status: c.status,
                            max_age: Some(
                                c.next_update.saturating_sub(now).min(c.refresh_at - now),
                            ),
                        };
                    }
                }
            }
        }
        let epoch = self.epoch.load(Ordering::SeqCst);
        let mut answers = Vec::with_capacity(parsed.items.len());
        let mut status = OcspStatus::Good;
        for item in &parsed.items {
            let lookup = match item.serial {
                None => Lookup::Unknown,
                Some(serial) => match store.cert(&serial) {
                    Err(e) => {
                        tracing::error!(error = %e, "OCSP store lookup");
                        return OcspAnswer {
                            body: Bytes::from(ocsp::internal_error()),
                            status: OcspStatus::Error,
                            max_age: None,
                        };
                    }
                    Ok(None) => Lookup::Unknown,
                    // A serial of another generation's certificate, asked of this one.
                    Ok(Some(rec))
                        if !self.cas.is_single()
                            && self.cas.issuer_of_der(&rec.der).map(|g| g.number)
                                != Some(per_ca.number) =>
                    {
                        Lookup::Unknown
                    }
                    Ok(Some(rec)) => match rec.status {
                        CertStatus::Issued => Lookup::Good,
                        CertStatus::Revoked { at, reason } => Lookup::Revoked {
                            at,
                            reason: reason.crl_reason(),
                        },
                    },
                },
            };
            status = match lookup {
                Lookup::Good => status,
                Lookup::Revoked { .. } => OcspStatus::Revoked,
                Lookup::Unknown if status == OcspStatus::Good => OcspStatus::Unknown,
                Lookup::Unknown => status,
            };
            answers.push((item.cert_id.clone(), lookup));
        }
        let validity = self.config.ocsp_validity_secs.max(60);
        let next_update = now + validity;
        let body = match responder.sign(&answers, parsed.nonce.as_ref(), now, next_update) {
            Ok(b) => Bytes::from(b),
            Err(e) => {
                tracing::error!(error = %e, "signing an OCSP response");
                return OcspAnswer {
                    body: Bytes::from(ocsp::internal_error()),
                    status: OcspStatus::Error,
                    max_age: None,
                };
            }
        };
        let refresh_at = now + validity / 2;
        if let (Some(key), Some(serial)) = (cache_key, parsed.items[0].serial) {
            let mut cache = match self.cache.write() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            // Full: start over rather than scan on every miss (entries are
            // cheap to sign again, and the hot ones come back at once).
            if cache.len() >= self.config.ocsp_cache_entries {
                cache.clear();
            }
            // Only if no revocation happened since this answer's read began.
            if self.epoch.load(Ordering::SeqCst) == epoch {
                cache.insert(
                    key,
                    Cached {
                        serial,
                        body: body.clone(),
                        status,
                        refresh_at,
                        next_update,
                    },
                );
            }
        }
        OcspAnswer {
            body,
            status,
            max_age: if parsed.nonce.is_none() {
                Some(validity / 2)
            } else {
                None
            },
        }
    }
}
