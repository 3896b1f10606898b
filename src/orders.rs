//! The certificate lifecycle as the MitID Erhverv model has it: orders,
//! one-time codes, approval, renewal, revocation and blocking. Shared by the
//! admin API and EST, so that both enforce the same rules and write the same
//! history and notices.

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::digest;
use http::StatusCode;

use crate::app::App;
use crate::model::{
    email_problem, is_allowed_method_pair, now_unix, subject_text_problem, AuditAction, AuditEvent,
    AuditOutcome, CertKind, CertRecord, CertStatus, CodeState, Identification, Issuance,
    Notification, NotificationKind, Order, OrderHolder, OrderStatus, Organisation, Profile,
    RevocationReason, Serial, UnixSeconds, MAX_CODE_FAILURES,
};
use crate::store::StoreError;

/// A refused or failed lifecycle operation, with its HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpError {
    /// 400: a field is invalid; names the field.
    #[error("{field}: {message}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// 403: not permitted.
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such thing (or not visible to the caller).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// 409: an illegal state transition; names the current state.
    #[error("{0}")]
    Conflict(String),
    /// 500.
    #[error("internal error: {0}")]
    Internal(String),
}

impl OpError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            OpError::Invalid { .. } => StatusCode::BAD_REQUEST,
            OpError::Forbidden(_) => StatusCode::FORBIDDEN,
            OpError::NotFound(_) => StatusCode::NOT_FOUND,
            OpError::Conflict(_) => StatusCode::CONFLICT,
            OpError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A 400 naming `field`.
    pub fn invalid(field: &'static str, message: impl Into<String>) -> OpError {
        OpError::Invalid {
            field,
            message: message.into(),
        }
    }
}

impl From<StoreError> for OpError {
    fn from(e: StoreError) -> Self {
        OpError::Internal(e.to_string())
    }
}

/// Who performs an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// For the audit log, e.g. `token:ops` or `cert:<serial>`.
    pub name: String,
    /// The organisation it may act for; `None` for a server operator.
    pub cvr: Option<String>,
}

impl Actor {
    /// Whether it may see and change `cvr`'s data.
    pub fn may_access(&self, cvr: &str) -> bool {
        self.cvr.as_deref().is_none_or(|own| own == cvr)
    }

    /// Whether it is a server operator.
    pub fn is_operator(&self) -> bool {
        self.cvr.is_none()
    }
}

const CODE_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// SHA-256 of the reference number and code: what is stored instead of the code.
pub fn code_hash(order_id: &str, code: &str) -> [u8; 32] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(order_id.as_bytes());
    ctx.update(b":");
    ctx.update(code.trim().to_ascii_uppercase().as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

fn random_bytes<const N: usize>() -> Result<[u8; N], OpError> {
    let mut b = [0u8; N];
    aws_lc_rs::rand::fill(&mut b).map_err(|_| OpError::Internal("no randomness".into()))?;
    Ok(b)
}

/// A fresh one-time code (16 characters, 80 bits) and its stored state.
pub fn new_code(
    order_id: &str,
    ttl_days: u32,
    now: UnixSeconds,
) -> Result<(String, CodeState), OpError> {
    let code: String = random_bytes::<16>()?
        .iter()
        .map(|b| CODE_ALPHABET[usize::from(*b) % CODE_ALPHABET.len()] as char)
        .collect();
    let state = CodeState {
        hash: code_hash(order_id, &code),
        expires_at: now + u64::from(ttl_days) * 86_400,
        failures: 0,
    };
    Ok((code, state))
}

/// A fresh 12-digit reference number, random throughout: for orders that a
/// person reads and types together with their one-time code.
pub fn new_reference() -> Result<String, OpError> {
    let n = u64::from_be_bytes(random_bytes::<8>()?) % 1_000_000_000_000;
    Ok(format!("{n:012}"))
}

/// A fresh 12-digit reference number for an order made by an API enrolment:
/// the minute (mod 10,000, so it turns over every 6.9 days) and then 8
/// random digits.
///
/// An API enrolment makes one order, so on a large store random references
/// would send every issuance to a random, probably uncached, page of the
/// order tree; with the minute in front, the orders of one minute share a
/// few pages. A clash (at 3,600 issuances/s, at most 0.2% by the end of a
/// minute) is refused by the store and the caller draws again.
pub fn new_api_reference() -> Result<String, OpError> {
    let minute = now_unix() / 60 % 10_000;
    let random = u64::from_be_bytes(random_bytes::<8>()?) % 100_000_000;
    Ok(format!("{minute:04}{random:08}"))
}

/// SHA-256 of an admin token: what is stored instead of the token.
pub fn token_hash(token: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, token.trim().as_bytes()).as_ref());
    out
}

/// A fresh admin API token (`estd_` and 43 base64url characters, 256 bits).
pub fn new_token() -> Result<String, OpError> {
    use base64::Engine;
    let b = random_bytes::<32>()?;
    Ok(format!(
        "estd_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    ))
}

/// The public id of the token stored under `hash`: 20 hex digits of a hash
/// of that hash. Old records get one too, with no change to the store; it
/// names the token in lists, the audit log and revocation, and says nothing
/// about the token itself.
pub fn token_id(hash: &[u8; 32]) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(b"estd admin token id:");
    ctx.update(hash);
    ctx.finish().as_ref()[..10]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A token just made: the token itself (shown once) and what is stored.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// The bearer token.
    pub token: String,
    /// Its public id.
    pub id: String,
    /// Its stored record.
    pub record: crate::model::TokenRecord,
}

/// Creates an admin token for `cvr` (or an operator token for `None`),
/// refused from `expires_at` on; returns the token, once.
pub fn create_token(
    app_store: &std::sync::Arc<dyn crate::store::Store>,
    cvr: Option<&str>,
    name: &str,
    expires_at: UnixSeconds,
) -> Result<NewToken, OpError> {
    let token = new_token()?;
    let hash = token_hash(&token);
    let record = crate::model::TokenRecord {
        cvr: cvr.map(str::to_owned),
        name: name.to_owned(),
        created_at: now_unix(),
        expires_at: Some(expires_at),
        revoked_at: None,
    };
    app_store.put_token(&hash, &record)?;
    Ok(NewToken {
        token,
        id: token_id(&hash),
        record,
    })
}

/// The actor a bearer token stands for, if the token is known, not revoked
/// and not expired. The lookup is by hash, so no stored token is ever
/// compared with what the caller sent.
pub fn token_actor(
    store: &std::sync::Arc<dyn crate::store::Store>,
    token: &str,
) -> Result<Option<Actor>, OpError> {
    Ok(store
        .token(&token_hash(token))?
        .filter(|rec| rec.is_usable(now_unix()))
        .map(|rec| Actor {
            name: format!("token:{}", rec.name),
            cvr: rec.cvr,
        }))
}

/// The verdict on a presented one-time code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeCheck {
    /// Right code, usable.
    Valid,
    /// Wrong code (counted).
    Wrong,
    /// Past its expiry.
    Expired,
    /// Locked after too many wrong codes.
    Locked,
    /// The order has no outstanding code (already used, or another method).
    Unusable,
}

/// Stands in for a stored code hash where there is none, so that every
/// presented code is hashed and compared (see [`try_code`]).
const NO_CODE_HASH: [u8; 32] = [0; 32];

/// Hashes `code` for `order_id` and compares it, in constant time, with
/// `stored`: done on every path of a code check, whether or not there is an
/// order with a code, so that the time taken does not tell them apart.
fn code_matches(order_id: &str, code: &str, stored: &[u8; 32]) -> bool {
    let presented = code_hash(order_id, code);
    verify_slices_are_equal(&presented, std::hint::black_box(stored)).is_ok()
}

/// Checks `code` against `order` in constant time.
pub fn check_code(order: &Order, code: &str, now: UnixSeconds) -> CodeCheck {
    let stored = order.code.as_ref().map_or(&NO_CODE_HASH, |c| &c.hash);
    let matches = code_matches(&order.id, code, stored);
    let Some(state) = &order.code else {
        return CodeCheck::Unusable;
    };
    if order.status != OrderStatus::Pending {
        return CodeCheck::Unusable;
    }
    if state.failures >= MAX_CODE_FAILURES {
        return CodeCheck::Locked;
    }
    if !matches {
        return CodeCheck::Wrong;
    }
    if now > state.expires_at {
        return CodeCheck::Expired;
    }
    CodeCheck::Valid
}

/// Checks `code` against order `order_id` and, if it is wrong, counts it, in
/// one atomic step: simultaneous guesses are each judged against the count
/// the one before left, so no more than five are ever tried. The count is
/// durable with the next commit. `None` if there is no such order.
///
/// An unknown reference, or an order without an outstanding code, gets the
/// same answer as a wrong code, and does the same work: the code is hashed
/// and compared, and a count is written (the store's count of unmatched
/// codes, a single fixed-size value), which the caller commits before
/// answering as it does a wrong code's failure count.
pub fn try_code(
    app: &App,
    order_id: &str,
    code: &str,
    now: UnixSeconds,
) -> Result<Option<(Order, CodeCheck)>, OpError> {
    let mut verdict = CodeCheck::Unusable;
    let mut unchanged = None;
    let outcome = app.store.update_order(order_id, |o| {
        verdict = check_code(o, code, now);
        match (verdict, o.code.as_mut()) {
            (CodeCheck::Wrong, Some(c)) => {
                c.failures = c.failures.saturating_add(1);
                Ok(())
            }
            _ => {
                // Nothing to write: the order as it was judged.
                unchanged = Some(o.clone());
                Err(())
            }
        }
    })?;
    Ok(match outcome {
        None => {
            code_matches(order_id, code, &NO_CODE_HASH);
            app.store.count_unmatched_code()?;
            None
        }
        Some(Ok(counted)) => Some((counted, CodeCheck::Wrong)),
        Some(Err(())) => {
            if verdict == CodeCheck::Unusable {
                app.store.count_unmatched_code()?;
            }
            unchanged.map(|o| (o, verdict))
        }
    })
}

/// Writes an audit event.
pub fn audit(
    app: &App,
    actor: &str,
    action: AuditAction,
    outcome: AuditOutcome,
    cvr: Option<&str>,
    profile_id: Option<&str>,
    serial: Option<Serial>,
    order_id: Option<&str>,
    detail: impl Into<String>,
) -> Result<(), OpError> {
    app.store.audit(&AuditEvent {
        at_ms: now_unix() * 1000,
        actor: actor.to_owned(),
        action,
        outcome,
        cvr: cvr.map(str::to_owned),
        profile_id: profile_id.map(str::to_owned),
        serial,
        order_id: order_id.map(str::to_owned),
        detail: detail.into(),
    })?;
    Ok(())
}

/// Who receives notices for an order: the user, or the profile's contact person.
pub fn recipient(profile: &Profile, holder: &OrderHolder) -> Option<String> {
    match holder {
        OrderHolder::User { email, .. } => Some(email.clone()),
        OrderHolder::Profile => profile.contact.as_ref().map(|c| c.email.clone()),
    }
}

/// Writes a notice to the durable outbox (if there is anyone to tell).
#[allow(clippy::too_many_arguments)]
pub fn notify(
    app: &App,
    kind: NotificationKind,
    cvr: &str,
    to: Option<String>,
    subject: String,
    body: String,
    serial: Option<Serial>,
    order_id: Option<&str>,
) -> Result<(), OpError> {
    let Some(to) = to else {
        return Ok(());
    };
    app.store.push_notification(Notification {
        id: 0,
        at: now_unix(),
        kind,
        cvr: cvr.to_owned(),
        to,
        subject,
        body,
        serial,
        order_id: order_id.map(str::to_owned),
        delivered_at: None,
        attempts: 0,
    })?;
    Ok(())
}

/// What to order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRequest {
    /// The profile.
    pub profile_id: String,
    /// For a user certificate: the user's name and e-mail address.
    pub user: Option<(String, String)>,
    /// Identification method (default: the profile's).
    pub identification: Option<Identification>,
    /// Issuance method (default: the profile's).
    pub issuance: Option<Issuance>,
}

/// A created order and, for one-time-code orders, the code (shown once).
#[derive(Debug, Clone)]
pub struct CreatedOrder {
    /// The order.
    pub order: Order,
    /// The one-time code, if any. Never stored or logged.
    pub code: Option<String>,
}

/// Loads a profile the actor may use.
pub fn visible_profile(app: &App, actor: &Actor, profile_id: &str) -> Result<Profile, OpError> {
    match app.store.profile(profile_id)? {
        Some(p) if actor.may_access(&p.cvr) => Ok(p),
        _ => Err(OpError::NotFound("profile")),
    }
}

/// The checks of an order request that need no store: who holds the
/// certificate (a user needs the organisation's consent, a name and a usable
/// e-mail address) and which methods apply (the profile's unless overridden,
/// as an allowed pair).
pub(crate) fn check_order_request(
    req: &OrderRequest,
    org: &Organisation,
    profile: &Profile,
) -> Result<(OrderHolder, Identification, Issuance), OpError> {
    let holder = match &req.user {
        None => OrderHolder::Profile,
        Some((name, email)) => {
            if !org.allow_user_certs {
                return Err(OpError::Forbidden(format!(
                    "organisation {} does not allow user certificates",
                    org.cvr
                )));
            }
            if name.trim().is_empty() {
                return Err(OpError::invalid("user.name", "is required"));
            }
            // The user's name becomes the certificate's CN.
            if let Some(problem) = subject_text_problem(name.trim()) {
                return Err(OpError::invalid("user.name", problem));
            }
            if let Some(problem) = email_problem(email) {
                return Err(OpError::invalid("user.email", problem));
            }
            OrderHolder::User {
                name: name.trim().to_owned(),
                email: email.clone(),
            }
        }
    };
    let identification = req.identification.unwrap_or(profile.identification);
    let issuance = req.issuance.unwrap_or(profile.issuance);
    if !is_allowed_method_pair(identification, issuance) {
        return Err(OpError::invalid(
            "issuance",
            format!("{issuance:?} is not allowed with identification {identification:?}"),
        ));
    }
    Ok((holder, identification, issuance))
}

/// Orders a certificate for a profile or a user.
pub fn create_order(
    app: &App,
    actor: &Actor,
    req: &OrderRequest,
    renews: Option<Serial>,
) -> Result<CreatedOrder, OpError> {
    let profile = visible_profile(app, actor, &req.profile_id)?;
    let org = app
        .store
        .org(&profile.cvr)?
        .ok_or(OpError::NotFound("organisation"))?;
    let (holder, identification, issuance) = check_order_request(req, &org, &profile)?;
    if identification == Identification::Api {
        // No code and no one to collect it: such an order would stay open for ever.
        return Err(OpError::Conflict(format!(
            "profile {:?} is enrolled by its IdM system over EST (identification api, \
             simpleenroll with its est-enroll certificate); an order for it would have no \
             one-time code and could never be collected",
            profile.name
        )));
    }
    let now = now_unix();
    for _ in 0..8 {
        let id = new_reference()?;
        let (code, code_state) = if identification == Identification::OneTimeCode {
            let (c, s) = new_code(&id, app.config.orders.code_ttl_days, now)?;
            (Some(c), Some(s))
        } else {
            (None, None)
        };
        let order = Order {
            id: id.clone(),
            cvr: profile.cvr.clone(),
            profile_id: profile.id.clone(),
            holder: holder.clone(),
            identification,
            issuance,
            status: OrderStatus::Pending,
            created_at: now,
            created_by: actor.name.clone(),
            code: code_state,
            renews,
            held_csr: None,
        };
        if !app.store.insert_new_order(&order)? {
            continue; // reference number taken; draw another
        }
        let action = if renews.is_some() {
            "renewal"
        } else {
            "certificate"
        };
        audit(
            app,
            &actor.name,
            AuditAction::Order,
            AuditOutcome::Done,
            Some(&order.cvr),
            Some(&profile.id),
            renews,
            Some(&id),
            format!("{action} ordered ({identification:?}/{issuance:?})"),
        )?;
        notify(
            app,
            if renews.is_some() { NotificationKind::Renewed } else { NotificationKind::Ordered },
            &order.cvr,
            recipient(&profile, &holder),
            format!("Certificate ready to collect: {}", profile.name),
            format!(
                "A certificate for profile \"{}\" was ordered with reference number {id}. \
                 It can be collected with the reference number and the one-time code handed to you separately.",
                profile.name
            ),
            renews,
            Some(&id),
        )?;
        return Ok(CreatedOrder { order, code });
    }
    Err(OpError::Internal("no free reference number".into()))
}

/// Loads an order the actor may see (deleted ones included, for history).
pub fn visible_order(app: &App, actor: &Actor, id: &str) -> Result<Order, OpError> {
    match app.store.order(id)? {
        Some(o) if actor.may_access(&o.cvr) => Ok(o),
        _ => Err(OpError::NotFound("order")),
    }
}

fn change_order<F>(
    app: &App,
    actor: &Actor,
    id: &str,
    action: AuditAction,
    f: F,
) -> Result<Order, OpError>
where
    F: FnMut(&mut Order) -> Result<(), crate::model::IllegalTransition>,
{
    let before = visible_order(app, actor, id)?;
    match app.store.update_order(id, f)? {
        None => Err(OpError::NotFound("order")),
        Some(Err(e)) => Err(OpError::Conflict(format!(
            "order is {}; {} is not possible",
            e.current, e.attempted
        ))),
        Some(Ok(order)) => {
            audit(
                app,
                &actor.name,
                action,
                AuditOutcome::Done,
                Some(&before.cvr),
                Some(&before.profile_id),
                None,
                Some(id),
                format!("{} → {}", before.status.name(), order.status.name()),
            )?;
            Ok(order)
        }
    }
}

/// "Delete certificate order": only before issue.
pub fn delete_order(app: &App, actor: &Actor, id: &str) -> Result<Order, OpError> {
    change_order(app, actor, id, AuditAction::DeleteOrder, Order::delete)
}

/// Approves a held API enrolment.
pub fn approve(app: &App, actor: &Actor, id: &str) -> Result<Order, OpError> {
    change_order(app, actor, id, AuditAction::Approve, Order::approve)
}

/// Rejects a held API enrolment.
pub fn reject(app: &App, actor: &Actor, id: &str) -> Result<Order, OpError> {
    change_order(app, actor, id, AuditAction::Reject, Order::reject)
}

/// Issues a new one-time code for a pending order (unlocking it).
pub fn renew_code(app: &App, actor: &Actor, id: &str) -> Result<(Order, String), OpError> {
    let (code, state) = new_code(id, app.config.orders.code_ttl_days, now_unix())?;
    let order = change_order(app, actor, id, AuditAction::NewCode, |o| {
        o.set_code(state.clone())
    })?;
    Ok((order, code))
}

/// Loads a certificate the actor may see.
pub fn visible_cert(app: &App, actor: &Actor, serial: &Serial) -> Result<CertRecord, OpError> {
    match app.store.cert(serial)? {
        Some(c) if actor.may_access(&c.cvr) => Ok(c),
        _ => Err(OpError::NotFound("certificate")),
    }
}

/// Revokes a certificate, for good.
pub fn revoke(
    app: &App,
    actor: &Actor,
    serial: &Serial,
    reason: RevocationReason,
) -> Result<CertRecord, OpError> {
    let before = visible_cert(app, actor, serial)?;
    if reason == RevocationReason::Blocked && before.kind != CertKind::User {
        return Err(OpError::Conflict(
            "only user certificates can be blocked; revoke this certificate instead".into(),
        ));
    }
    let now = now_unix();
    let rec = match app.store.revoke_cert(serial, reason, now)? {
        Ok(r) => r,
        Err(e) => {
            return Err(OpError::Conflict(format!(
                "certificate is {}; {} is not possible",
                e.current, e.attempted
            )))
        }
    };
    // Visible in the CRL and OCSP before the caller answers.
    app.revocation
        .after_revocation(serial, &app.ca, &app.store, &app.metrics)
        .map_err(|e| OpError::Internal(e.to_string()))?;
    let (action, kind, verb) = if reason == RevocationReason::Blocked {
        (AuditAction::Block, NotificationKind::Blocked, "blocked")
    } else {
        (AuditAction::Revoke, NotificationKind::Revoked, "revoked")
    };
    audit(
        app,
        &actor.name,
        action,
        AuditOutcome::Done,
        Some(&rec.cvr),
        Some(&rec.profile_id),
        Some(*serial),
        rec.order_id.as_deref(),
        format!("{verb}: {reason:?}"),
    )?;
    let to = app.store.profile(&rec.profile_id)?.and_then(|p| {
        let holder = rec
            .order_id
            .as_deref()
            .and_then(|id| app.store.order(id).ok().flatten())
            .map(|o| o.holder)
            .unwrap_or(OrderHolder::Profile);
        recipient(&p, &holder)
    });
    notify(
        app,
        kind,
        &rec.cvr,
        to,
        format!("Certificate {verb}: {}", rec.subject),
        format!(
            "Certificate {serial} ({}) was {verb} ({reason:?}).",
            rec.subject
        ),
        Some(*serial),
        rec.order_id.as_deref(),
    )?;
    Ok(rec)
}

/// Revokes a certificate and, when the reason is suspected misuse
/// (keyCompromise), its successors too: whoever held the compromised key
/// could have re-enrolled with it, so what was renewed from it is no more
/// trustworthy than it. Other reasons leave the successors valid. Returns the
/// record and the successors revoked with it.
pub fn revoke_with_successors(
    app: &App,
    actor: &Actor,
    serial: &Serial,
    reason: RevocationReason,
) -> Result<(CertRecord, Vec<Serial>), OpError> {
    let rec = revoke(app, actor, serial, reason)?;
    let mut also = Vec::new();
    if reason != RevocationReason::SuspectedMisuse {
        return Ok((rec, also));
    }
    let mut next = rec.renewed_by;
    // A chain is short; the bound only guards against a damaged store.
    for _ in 0..1000 {
        let Some(s) = next else { break };
        let Some(successor) = app.store.cert(&s)? else {
            break;
        };
        next = successor.renewed_by;
        if successor.status != CertStatus::Issued {
            continue;
        }
        match revoke(app, actor, &s, reason) {
            Ok(_) => also.push(s),
            // Revoked meanwhile by someone else: nothing left to do.
            Err(OpError::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok((rec, also))
}

/// Serialises renewal orders, so that two at once cannot both find no open
/// renewal order for a certificate and both create one.
static RENEWAL_ORDERS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Renews a certificate by ordering a new one for the same profile (and user).
/// Possible only before expiry; the old certificate stays valid until then.
/// A certificate has at most one successor and one open renewal order.
pub fn renew(app: &App, actor: &Actor, serial: &Serial) -> Result<CreatedOrder, OpError> {
    let rec = visible_cert(app, actor, serial)?;
    let now = now_unix();
    let state = rec.state(now);
    if state != crate::model::CertState::Issued {
        return Err(OpError::Conflict(format!(
            "certificate is {state}; renewal is possible only before expiry and revocation (order a new certificate)"
        )));
    }
    if let Some(s) = rec.renewed_by {
        if app
            .store
            .cert(&s)?
            .is_some_and(|r| r.status == CertStatus::Issued)
        {
            return Err(OpError::Conflict(format!(
                "certificate was already renewed by {s}; a certificate has one successor \
                 (renew {s} instead, or revoke it first)"
            )));
        }
    }
    let profile = visible_profile(app, actor, &rec.profile_id)?;
    let old_order = rec
        .order_id
        .as_deref()
        .and_then(|id| app.store.order(id).ok().flatten());
    let identification = match old_order.as_ref().map(|o| o.identification) {
        Some(Identification::Api) | None => profile.identification,
        Some(other) => other,
    };
    if identification == Identification::Api {
        return Err(OpError::Conflict(
            "certificates of API profiles are renewed by the IdM system's re-enrolment over EST \
             (simplereenroll with the certificate), not by an order, which nothing could collect"
                .into(),
        ));
    }
    let user = match old_order.as_ref().map(|o| &o.holder) {
        Some(OrderHolder::User { name, email }) => Some((name.clone(), email.clone())),
        _ => None,
    };
    let req = OrderRequest {
        profile_id: rec.profile_id.clone(),
        user,
        identification: Some(identification),
        issuance: old_order
            .as_ref()
            .filter(|o| o.identification == identification)
            .map(|o| o.issuance),
    };
    let _one_at_a_time = RENEWAL_ORDERS.lock().unwrap_or_else(|e| e.into_inner());
    for order in app.store.orders() {
        let order = order?;
        if order.renews == Some(*serial)
            && matches!(order.status, OrderStatus::Pending | OrderStatus::Approved)
        {
            return Err(OpError::Conflict(format!(
                "renewal order {} is already open for this certificate; collect it, or delete \
                 it to order another",
                order.id
            )));
        }
    }
    create_order(app, actor, &req, Some(*serial))
}

/// Display status of an order, as the service shows it.
pub fn display_status(app: &App, order: &Order, now: UnixSeconds) -> String {
    match order.status {
        OrderStatus::Pending if order.renews.is_some() => "in-progress".into(),
        OrderStatus::Issued { serial } => match app.store.cert(&serial) {
            Ok(Some(c)) => c.state(now).as_str().into(),
            _ => "issued".into(),
        },
        s => s.name().into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_references_are_twelve_digits_led_by_the_minute() {
        let before = now_unix() / 60 % 10_000;
        let refs: Vec<String> = (0..1000)
            .map(|_| new_api_reference().expect("reference"))
            .collect();
        let after = now_unix() / 60 % 10_000;
        let mut distinct = refs.clone();
        distinct.sort();
        distinct.dedup();
        assert!(distinct.len() > 990, "8 random digits: {}", distinct.len());
        for r in &refs {
            assert_eq!(r.len(), 12, "{r}");
            assert!(r.bytes().all(|b| b.is_ascii_digit()), "{r}");
            let minute: u64 = r[..4].parse().expect("digits");
            assert!(
                minute == before || minute == after,
                "{r} ({before}..{after})"
            );
        }
    }

    #[test]
    fn codes_are_checked_by_hash() {
        let (code, state) = new_code("123", 14, 1000).expect("code");
        assert_eq!(code.len(), 16);
        let mut order = Order {
            id: "123".into(),
            cvr: "12345674".into(),
            profile_id: "p".into(),
            holder: OrderHolder::Profile,
            identification: Identification::OneTimeCode,
            issuance: Issuance::Est,
            status: OrderStatus::Pending,
            created_at: 0,
            created_by: "t".into(),
            code: Some(state),
            renews: None,
            held_csr: None,
        };
        assert_eq!(check_code(&order, &code, 1000), CodeCheck::Valid);
        assert_eq!(
            check_code(&order, &code.to_lowercase(), 1000),
            CodeCheck::Valid
        );
        assert_eq!(check_code(&order, "WRONG", 1000), CodeCheck::Wrong);
        assert_eq!(
            check_code(&order, &code, 1000 + 15 * 86_400),
            CodeCheck::Expired
        );
        if let Some(c) = order.code.as_mut() {
            c.failures = MAX_CODE_FAILURES;
        }
        assert_eq!(check_code(&order, &code, 1000), CodeCheck::Locked);
        order.code = None;
        assert_eq!(check_code(&order, &code, 1000), CodeCheck::Unusable);
    }
}
