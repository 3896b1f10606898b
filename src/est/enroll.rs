//! `simpleenroll` and `simplereenroll` (RFC 7030 4.2).
//!
//! Flow: method and content type → body within limits → who is calling →
//! may they use this profile → CSR proof of possession and policy → sign →
//! certificate and order stored in one transaction, audited → group commit →
//! answer. Nothing is answered with a certificate before it is durable.
//!
//! Callers are an IdM system certificate (API identification), the holder of
//! a certificate (re-enrolment), or a reference number and one-time code in
//! HTTP Basic (collection of a one-time-code order).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;

use super::{
    base64_response, certificate_principal, codec, is_binary_transfer, read_body,
    require_content_type, require_method, EstError,
};
use crate::app::App;
use crate::auth::{self, Principal};
use crate::ca::{csr, CertTemplate, IssuedCert};
use crate::config::ServerConfig;
use crate::model::{
    now_unix, AuditAction, AuditEvent, AuditOutcome, CertRecord, CertStatus, Identification,
    Issuance, Order, OrderHolder, OrderStatus, Organisation, Profile, Serial, SystemRight,
};
use crate::orders::{self, CodeCheck};
use crate::policy;
use crate::server::{Connection, RequestLog};
use crate::store::{
    Issuance as StoreIssuance, IssueOutcome, OrderCheck, OrderWrite, PendingIssuance,
};

/// Content type of an enrolment answer.
pub const PKCS7_CERTS_ONLY: &str = "application/pkcs7-mime; smime-type=certs-only";

/// The same message whether the profile is another organisation's or does not
/// exist, so that a refusal reveals nothing.
const NOT_PERMITTED: &str = "not permitted to enrol under this profile";

/// The same message for an unknown reference number and a wrong code.
const BAD_CODE: &str = "unknown reference number or wrong one-time code";

/// How many fresh serials and references to try before giving up (a serial
/// collision is ~2^-80, a reference clash at most 0.2%).
const SERIAL_ATTEMPTS: usize = 4;

/// What an enrolment request ends in.
pub enum Answer {
    /// The certificate, as the base64 certs-only body.
    Issued(Bytes),
    /// Held for approval: retry after this many seconds.
    Held(u32),
}

/// Who is calling an enrolment endpoint.
pub enum Caller {
    /// A valid certificate of this CA or a configured anchor.
    Certificate(Principal),
    /// A one-time-code order whose code was right.
    Code(Order),
}

/// `POST [/<label>]/simpleenroll`.
pub async fn simple_enroll(
    app: &Arc<App>,
    conn: &Arc<Connection>,
    req: Request<Incoming>,
    label: Option<&str>,
    log: &mut RequestLog,
    problem_json: bool,
) -> Result<Response<Full<Bytes>>, EstError> {
    let started = Instant::now();
    let result = enroll_inner(app, conn, req, label, log).await;
    finish(app, log, AuditAction::Enroll, started, result, problem_json).await
}

/// `POST [/<label>]/simplereenroll`.
pub async fn simple_reenroll(
    app: &Arc<App>,
    conn: &Arc<Connection>,
    req: Request<Incoming>,
    label: Option<&str>,
    log: &mut RequestLog,
) -> Result<Response<Full<Bytes>>, EstError> {
    let started = Instant::now();
    let result = reenroll_inner(app, conn, req, label, log).await;
    finish(app, log, AuditAction::Reenroll, started, result, false).await
}

/// Records a refusal in the audit log and the latency in metrics.
async fn finish(
    app: &App,
    log: &RequestLog,
    action: AuditAction,
    started: Instant,
    result: Result<Answer, EstError>,
    problem_json: bool,
) -> Result<Response<Full<Bytes>>, EstError> {
    app.metrics
        .enroll_latency
        .observe(started.elapsed().as_secs_f64());
    match result {
        Ok(Answer::Issued(body)) => Ok(base64_response(PKCS7_CERTS_ONLY, body)),
        Ok(Answer::Held(secs)) => Ok(held_response(secs, problem_json)),
        Err(e) => {
            audit_refusal(app, log, action, &e);
            Err(e)
        }
    }
}

/// Records a refused request in the audit log (faults of ours are logged, not
/// audited). Only an identified caller's refusals are stored one by one: an
/// anonymous caller (no trusted certificate, no reference number of a known
/// order) is counted in a metric and a rate-limited log line instead, so
/// that refusals cost it nothing on disk.
pub fn audit_refusal(app: &App, log: &RequestLog, action: AuditAction, e: &EstError) {
    if matches!(e, EstError::Internal(_)) {
        return;
    }
    let identified = match log.principal.as_deref() {
        None => false,
        Some(p) => match p.strip_prefix("order:") {
            Some(reference) => matches!(app.store.order(reference), Ok(Some(_))),
            None => true,
        },
    };
    if !identified {
        app.metrics.anonymous_refusal(log.endpoint, e.status());
        return;
    }
    let actor = log.principal.clone().unwrap_or_else(|| "anonymous".into());
    let detail = format!("{} {}", e.status().as_u16(), e);
    if let Err(err) = orders::audit(
        app,
        &actor,
        action,
        AuditOutcome::Refused,
        None,
        None,
        None,
        None,
        detail,
    ) {
        tracing::error!(error = %err, "writing a refusal to the audit log");
    }
}

/// 202 with Retry-After: as text, or as a problem-shaped document (RFC 9457
/// members, though not an error) for a client that asked for problem+json.
fn held_response(retry_after: u32, problem_json: bool) -> Response<Full<Bytes>> {
    let detail = format!(
        "held for approval by an administrator; retry after {retry_after} seconds with the same CSR"
    );
    if problem_json {
        return crate::problem::Problem {
            problem_type: "urn:estd:est:approval-pending",
            title: "Held for approval",
            status: StatusCode::ACCEPTED.as_u16(),
            detail,
            field: None,
            retry_after: Some(u64::from(retry_after)),
        }
        .into_response();
    }
    let mut r = Response::new(Full::new(Bytes::from(format!("{detail}\n"))));
    *r.status_mut() = StatusCode::ACCEPTED;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    r
}

/// Reads and checks what every enrolment request must carry: method, media
/// type, a body within `cfg`'s limits, and base64 (or binary) DER in it.
///
/// Generic over the body so that the fuzz targets can feed it chunks without
/// a socket; the server passes hyper's `Incoming`.
pub async fn read_csr_body<B>(
    cfg: &ServerConfig,
    req: Request<B>,
) -> Result<(http::request::Parts, Vec<u8>), EstError>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    require_method(&req, http::Method::POST, "POST")?;
    require_content_type(req.headers(), "application/pkcs10")?;
    let (parts, body) = read_body(req, cfg.max_body_bytes, cfg.body_read_timeout()).await?;
    let der = codec::decode_body(&body, is_binary_transfer(&parts.headers))
        .map_err(|e| EstError::BadRequest(format!("CSR body: {e}")))?;
    Ok((parts, der))
}

/// Identifies the caller: a client certificate wins; without one (or with one
/// that is not trusted), non-empty Basic credentials are a reference number
/// and one-time code.
pub async fn identify(
    app: &App,
    conn: &Connection,
    headers: &HeaderMap,
    log: &mut RequestLog,
) -> Result<Caller, EstError> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| auth::parse_basic(h.as_bytes()));
    let has_trusted_cert = matches!(conn.client_cert(&app.trust), Some(Ok(_)));
    match basic {
        Some(creds) if !has_trusted_cert => {
            log.principal = Some(format!("order:{}", creds.user));
            code_order(app, &creds).await.map(Caller::Code)
        }
        _ => {
            let p = certificate_principal(app, conn)?;
            log.principal = Some(p.describe());
            Ok(Caller::Certificate(p))
        }
    }
}

/// Checks a reference number and one-time code. Wrong codes are counted and
/// lock the order after five.
async fn code_order(app: &App, creds: &auth::BasicCredentials) -> Result<Order, EstError> {
    let judged = orders::try_code(app, &creds.user, &creds.password, now_unix())
        .map_err(|e| EstError::Internal(e.to_string()))?;
    let Some((order, check)) = judged else {
        // Counted (see `try_code`) and committed as a wrong code's count is,
        // so that an unknown reference answers after the same work.
        app.store.commit().await?;
        return Err(EstError::Unauthorized(BAD_CODE.into()));
    };
    match check {
        CodeCheck::Valid => Ok(order),
        CodeCheck::Wrong => {
            let detail = "wrong one-time code";
            orders::audit(
                app,
                &format!("order:{}", order.id),
                AuditAction::Collect,
                AuditOutcome::Refused,
                Some(&order.cvr),
                Some(&order.profile_id),
                None,
                Some(&order.id),
                detail,
            )
            .map_err(|e| EstError::Internal(e.to_string()))?;
            // Counted durably, so that a restart does not reset the lockout.
            app.store.commit().await?;
            Err(EstError::Unauthorized(BAD_CODE.into()))
        }
        CodeCheck::Expired => Err(EstError::Unauthorized(
            "the one-time code has expired; ask an administrator for a new code".into(),
        )),
        CodeCheck::Locked => Err(EstError::Forbidden(
            "the order is locked after 5 wrong codes; ask an administrator for a new code".into(),
        )),
        CodeCheck::Unusable => {
            app.store.commit().await?;
            Err(EstError::Unauthorized(BAD_CODE.into()))
        }
    }
}

async fn enroll_inner(
    app: &Arc<App>,
    conn: &Arc<Connection>,
    req: Request<Incoming>,
    label: Option<&str>,
    log: &mut RequestLog,
) -> Result<Answer, EstError> {
    let (parts, der) = read_csr_body(&app.config.server, req).await?;
    match identify(app, conn, &parts.headers, log).await? {
        Caller::Certificate(principal) => api_enroll(app, conn, principal, label, der, log).await,
        Caller::Code(order) => {
            if order.issuance != Issuance::Est {
                return Err(EstError::Forbidden(
                    "this order is collected with serverkeygen, not simpleenroll".into(),
                ));
            }
            let (org, profile) = order_profile(app, &order, label)?;
            let holder = order.holder.clone();
            let binding = conn.channel_binding().clone();
            let ticket = app.store.expect_issuance();
            let (template, effective) = cpu(app, move || {
                let csr = csr::parse_and_verify(&der)?;
                let effective = policy::effective_profile(&profile, &holder);
                // Refused before the order moves: a failed link spends no code.
                policy::check_pop_linking(&effective, &csr, &binding)?;
                let template = policy::collect_template(&csr, &org, &effective, &holder)?;
                Ok((template, effective))
            })
            .await?;
            let note = AuditNote {
                actor: format!("order:{}", order.id),
                action: AuditAction::Collect,
                detail: "collected with one-time code".into(),
            };
            let issued = issue_for_order(app, template, &effective, &order, note, ticket).await?;
            respond(app, log, (issued, effective.est_label), "collect")
                .await
                .map(Answer::Issued)
        }
    }
}

/// The profile and organisation of an order, checked against the label.
pub fn order_profile(
    app: &App,
    order: &Order,
    label: Option<&str>,
) -> Result<(Organisation, Profile), EstError> {
    let profile = app
        .store
        .profile(&order.profile_id)?
        .ok_or_else(|| EstError::Forbidden("the order's profile no longer exists".into()))?;
    if label.is_some_and(|l| !l.eq_ignore_ascii_case(&profile.est_label)) {
        return Err(EstError::Forbidden(NOT_PERMITTED.into()));
    }
    let org = app
        .store
        .org(&order.cvr)?
        .ok_or_else(|| EstError::Forbidden(NOT_PERMITTED.into()))?;
    // An order is collected under the organisation's permissions as they are
    // at collection, not as they were when it was ordered.
    check_permissions(&org, &profile, &order.holder)?;
    Ok((org, profile))
}

/// What the organisation must (still) allow for a certificate of `profile`
/// held by `holder`: checked at every issuance, so that a permission
/// withdrawn after an order or a certificate stops its collection and its
/// re-enrolment.
fn check_permissions(
    org: &Organisation,
    profile: &Profile,
    holder: &OrderHolder,
) -> Result<(), EstError> {
    if matches!(holder, OrderHolder::User { .. }) && !org.allow_user_certs {
        return Err(EstError::Forbidden(format!(
            "organisation {} does not allow user certificates (any longer)",
            org.cvr
        )));
    }
    if profile.seal && !org.allow_seal {
        return Err(EstError::Forbidden(format!(
            "organisation {} does not allow seal generation (any longer), which the profile has on",
            org.cvr
        )));
    }
    Ok(())
}

/// The API name of a right.
fn right_name(right: SystemRight) -> &'static str {
    match right {
        SystemRight::EstEnroll => "est-enroll",
        SystemRight::AdminApi => "admin-api",
    }
}

/// "Identification via API": an IdM system enrols under its organisation's
/// API profiles; each issuance creates an order that is already Issued.
async fn api_enroll(
    app: &Arc<App>,
    conn: &Connection,
    principal: Principal,
    label: Option<&str>,
    der: Vec<u8>,
    log: &mut RequestLog,
) -> Result<Answer, EstError> {
    if !principal.has_right(SystemRight::EstEnroll) {
        return Err(EstError::Forbidden(
            "the client certificate does not carry the est-enroll right".into(),
        ));
    }
    let (org, profile) = api_profile(app, &principal, label)?;
    // A caller never obtains through EST a right it does not hold itself
    // (an est-enroll certificate must not mint admin-api). Refused rather
    // than issued with fewer rights, so that nobody gets a certificate that
    // silently lacks what its profile promises.
    let lacking: Vec<&str> = profile
        .rights
        .iter()
        .filter(|r| !principal.has_right(**r))
        .map(|r| right_name(*r))
        .collect();
    if !lacking.is_empty() {
        return Err(EstError::Forbidden(format!(
            "the profile grants {}, which the client certificate does not hold itself; \
             a certificate cannot pass on a right it lacks",
            lacking.join(", ")
        )));
    }
    let actor = principal.describe();
    let binding = conn.channel_binding().clone();
    let ticket = app.store.expect_issuance();
    let (template, profile, der, linked) = cpu(app, move || {
        let csr = csr::parse_and_verify(&der)?;
        let linked = policy::check_pop_linking(&profile, &csr, &binding);
        if !profile.approval_required {
            linked.clone()?;
        }
        let template = policy::enroll_template(&csr, &org, &profile)?;
        Ok((template, profile, der, linked))
    })
    .await?;
    if profile.approval_required {
        let request = HeldRequest {
            der: &der,
            template,
            linked,
            holder: OrderHolder::Profile,
            renews: None,
        };
        return held_answer(app, log, &actor, request, &profile, ticket).await;
    }
    let note = AuditNote {
        actor,
        action: AuditAction::Enroll,
        detail: format!("issued to {}", policy::display_name(&template.subject)),
    };
    let issued = issue_with_new_order(app, template, &profile, note, None, ticket).await?;
    respond(app, log, (issued, profile.est_label), "enroll")
        .await
        .map(Answer::Issued)
}

/// An enrolment request for an approval-required profile.
struct HeldRequest<'a> {
    /// The CSR as sent; its hash finds the held order on retries.
    der: &'a [u8],
    template: CertTemplate,
    /// The proof-of-possession linking verdict for this connection. Only the
    /// request that creates the held order must pass it: a retry on a later
    /// connection (after Retry-After, possibly hours) cannot carry that
    /// connection's binding in the same CSR, and the first request already
    /// bound this very CSR to an authenticated connection of the organisation.
    linked: Result<(), policy::LinkingError>,
    /// Who the certificate is for.
    holder: OrderHolder,
    /// The certificate a held re-enrolment renews.
    renews: Option<Serial>,
}

/// Answers an enrolment or re-enrolment for an approval-required profile.
async fn held_answer(
    app: &Arc<App>,
    log: &mut RequestLog,
    actor: &str,
    request: HeldRequest<'_>,
    profile: &Profile,
    ticket: PendingIssuance,
) -> Result<Answer, EstError> {
    let op = if request.renews.is_some() {
        "reenroll"
    } else {
        "enroll"
    };
    let retry_after = app.config.orders.approval_retry_after_secs;
    match held_enrolment(app, actor, request, profile, retry_after, ticket).await? {
        Held::Done(issued) => respond(app, log, (issued, profile.est_label.clone()), op)
            .await
            .map(Answer::Issued),
        Held::Wait(secs) => {
            app.store.commit().await?;
            Ok(Answer::Held(secs))
        }
        Held::Again(der, serial) => {
            log.serial = Some(serial);
            Ok(Answer::Issued(certs_only_body(&der)?))
        }
    }
}

/// Where a held (approval-required) enrolment stands.
enum Held {
    /// Approved, and issued now.
    Done(IssuedCert),
    /// Still waiting: retry after this many seconds.
    Wait(u32),
    /// Already issued for this CSR: the stored certificate again.
    Again(Vec<u8>, Serial),
}

/// Approval-required profiles: the first request creates a pending order
/// holding the CSR (by hash); retries with the same CSR wait, get the
/// certificate once approved, or 403 once rejected.
async fn held_enrolment(
    app: &Arc<App>,
    actor: &str,
    request: HeldRequest<'_>,
    profile: &Profile,
    retry_after: u32,
    ticket: PendingIssuance,
) -> Result<Held, EstError> {
    let HeldRequest {
        der,
        template,
        linked,
        holder,
        renews,
    } = request;
    let mut hash = [0u8; 32];
    hash.copy_from_slice(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der).as_ref());
    let internal = |e: orders::OpError| EstError::Internal(e.to_string());
    match app.store.held_order(&hash)? {
        None => {
            linked?;
            for _ in 0..8 {
                let order = Order {
                    id: orders::new_api_reference().map_err(internal)?,
                    cvr: profile.cvr.clone(),
                    profile_id: profile.id.clone(),
                    holder: holder.clone(),
                    identification: Identification::Api,
                    issuance: Issuance::Est,
                    status: OrderStatus::Pending,
                    created_at: now_unix(),
                    created_by: actor.to_owned(),
                    code: None,
                    renews,
                    held_csr: Some(hash),
                };
                if app.store.insert_new_order(&order)? {
                    app.store.put_held(&hash, &order.id)?;
                    orders::audit(
                        app,
                        actor,
                        AuditAction::Order,
                        AuditOutcome::Done,
                        Some(&order.cvr),
                        Some(&profile.id),
                        None,
                        Some(&order.id),
                        if renews.is_some() {
                            "re-enrolment held for approval"
                        } else {
                            "API enrolment held for approval"
                        },
                    )
                    .map_err(internal)?;
                    return Ok(Held::Wait(retry_after));
                }
            }
            Err(EstError::Internal("no free reference number".into()))
        }
        // Held for another profile, or as an enrolment when this is a
        // re-enrolment (or the other way round, or for another certificate).
        Some(order)
            if order.cvr != profile.cvr
                || order.profile_id != profile.id
                || order.renews != renews =>
        {
            Err(EstError::Forbidden(NOT_PERMITTED.into()))
        }
        Some(order) => match order.status {
            OrderStatus::Pending => Ok(Held::Wait(retry_after)),
            OrderStatus::Rejected => Err(EstError::Forbidden(
                "the enrolment was rejected by an administrator".into(),
            )),
            OrderStatus::Deleted => {
                Err(EstError::Forbidden("the held enrolment was deleted".into()))
            }
            OrderStatus::Approved => {
                let note = AuditNote {
                    actor: actor.to_owned(),
                    action: if renews.is_some() {
                        AuditAction::Reenroll
                    } else {
                        AuditAction::Enroll
                    },
                    detail: match renews {
                        Some(old) => format!("approved re-enrolment collected; renews {old}"),
                        None => "approved enrolment collected".into(),
                    },
                };
                let issued = issue_for_order(app, template, profile, &order, note, ticket).await?;
                Ok(Held::Done(issued))
            }
            OrderStatus::Issued { serial } => {
                let rec = app.store.cert(&serial)?.ok_or_else(|| {
                    EstError::Internal("issued order without its certificate".into())
                })?;
                Ok(Held::Again(rec.der, serial))
            }
        },
    }
}

async fn reenroll_inner(
    app: &Arc<App>,
    conn: &Arc<Connection>,
    req: Request<Incoming>,
    label: Option<&str>,
    log: &mut RequestLog,
) -> Result<Answer, EstError> {
    let (_parts, der) = read_csr_body(&app.config.server, req).await?;
    let principal = certificate_principal(app, conn)?;
    log.principal = Some(principal.describe());
    let Principal::Holder { record, cert } = principal else {
        return Err(EstError::Forbidden(
            "only certificates issued by this CA can be re-enrolled".into(),
        ));
    };
    let profile = app
        .store
        .profile(&record.profile_id)?
        .ok_or_else(|| EstError::Forbidden("the certificate's profile no longer exists".into()))?;
    if label.is_some_and(|l| !l.eq_ignore_ascii_case(&profile.est_label)) {
        return Err(EstError::Forbidden(
            "re-enrol under the label of the certificate's own profile".into(),
        ));
    }
    let org = app.store.org(&record.cvr)?.ok_or_else(|| {
        EstError::Forbidden("the certificate's organisation no longer exists".into())
    })?;
    let old_order = record
        .order_id
        .as_deref()
        .map(|id| app.store.order(id))
        .transpose()?
        .flatten();
    let holder = old_order.map(|o| o.holder).unwrap_or(OrderHolder::Profile);
    // Judged against the profile and organisation as they are now: a
    // permission, name or right withdrawn since issuance is not renewed.
    check_permissions(&org, &profile, &holder)?;

    let old_serial = record.serial;
    let own_rights = record.rights.clone();
    let renewal_holder = holder.clone();
    let binding = conn.channel_binding().clone();
    let ticket = app.store.expect_issuance();
    let (template, effective, der, linked) = cpu(app, move || {
        let csr = csr::parse_and_verify(&der)?;
        let mut effective = policy::effective_profile(&profile, &holder);
        // The profile's rights as they are now, but never one the
        // certificate does not hold itself (its rights were fixed at issuance).
        effective.rights.retain(|r| own_rights.contains(r));
        let linked = policy::check_pop_linking(&effective, &csr, &binding);
        if !effective.approval_required {
            linked.clone()?;
        }
        let template = policy::reenroll_template(&csr, &cert, &effective)?;
        policy::check_names_still_allowed(&cert, &org, &effective)?;
        Ok((template, effective, der, linked))
    })
    .await?;
    if let Some(again) = existing_successor(app, &old_serial, &template, log)? {
        return Ok(again);
    }
    let actor = format!("cert:{old_serial}");
    if effective.approval_required {
        let request = HeldRequest {
            der: &der,
            template,
            linked,
            holder: renewal_holder,
            renews: Some(old_serial),
        };
        return held_answer(app, log, &actor, request, &effective, ticket).await;
    }
    let note = AuditNote {
        actor,
        action: AuditAction::Reenroll,
        detail: format!("renews {old_serial}"),
    };
    // The old certificate is linked to its renewal in the same write; it stays
    // valid until it expires.
    let renewal = Some((old_serial, renewal_holder));
    let issuing = issue_with_new_order(app, template.clone(), &effective, note, renewal, ticket);
    match issuing.await {
        Ok(issued) => respond(app, log, (issued, effective.est_label), "reenroll")
            .await
            .map(Answer::Issued),
        // A simultaneous re-enrolment got there first: if it was this very
        // request (a client retrying), its certificate is the answer.
        Err(EstError::Conflict(why)) => match existing_successor(app, &old_serial, &template, log)?
        {
            Some(again) => Ok(again),
            None => Err(EstError::Conflict(why)),
        },
        Err(e) => Err(e),
    }
}

/// Why a certificate cannot be renewed again: it has a successor.
fn renewed_already(successor: Serial) -> EstError {
    EstError::Conflict(format!(
        "this certificate was already renewed by {successor}; a certificate has one successor: \
         a retry with the same CSR gets that certificate again, and {successor} itself can be \
         re-enrolled"
    ))
}

/// A certificate has at most one successor (until that one is revoked): the
/// same request again (same key, subject and SANs, e.g. a client whose answer
/// was lost) gets that successor again; any other is refused with 409.
/// `None` when `old` has no valid successor.
fn existing_successor(
    app: &App,
    old: &Serial,
    template: &CertTemplate,
    log: &mut RequestLog,
) -> Result<Option<Answer>, EstError> {
    let Some(successor) = app.store.cert(old)?.and_then(|r| r.renewed_by) else {
        return Ok(None);
    };
    let Some(rec) = app.store.cert(&successor)? else {
        return Ok(None);
    };
    if rec.status != CertStatus::Issued {
        return Ok(None);
    }
    let cert = <x509_cert::Certificate as der::Decode>::from_der(&rec.der)
        .map_err(|e| EstError::Internal(format!("stored certificate {successor}: {e}")))?;
    let sans = policy::cert_sans(&cert);
    let same = cert.tbs_certificate.subject_public_key_info == template.spki
        && cert.tbs_certificate.subject == template.subject
        && sans.len() == template.sans.len()
        && sans.iter().all(|n| template.sans.contains(n));
    if !same {
        return Err(renewed_already(successor));
    }
    log.serial = Some(successor);
    Ok(Some(Answer::Issued(certs_only_body(&rec.der)?)))
}

/// Runs CPU-bound work (CSR verification, policy, key generation).
///
/// With an ECDSA CA the whole of an enrolment's CPU work is tens of
/// microseconds, less than a hop to another thread costs, so it runs in
/// place on the async worker; with an RSA CA, whose signatures take a
/// millisecond or more, it runs on the blocking pool.
pub async fn cpu<T, F>(app: &App, f: F) -> Result<T, EstError>
where
    F: FnOnce() -> Result<T, EstError> + Send + 'static,
    T: Send + 'static,
{
    if app.ca.signs_cheaply() {
        return f();
    }
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| EstError::Internal(format!("signing task failed: {e}")))?
}

/// Signs `template` (in place or on the blocking pool, as [`cpu`] decides).
async fn sign(app: &Arc<App>, template: &Arc<CertTemplate>) -> Result<IssuedCert, EstError> {
    if app.ca.signs_cheaply() {
        return Ok(app.ca.issue(template)?);
    }
    let (worker, template) = (app.clone(), template.clone());
    cpu(app, move || Ok(worker.ca.issue(&template)?)).await
}

/// Counts a durable issuance and builds the answer.
pub async fn respond(
    app: &App,
    log: &mut RequestLog,
    (issued, label): (IssuedCert, String),
    op: &str,
) -> Result<Bytes, EstError> {
    log.serial = Some(issued.serial);
    app.metrics
        .issued
        .with_label_values(&[label.as_str(), op])
        .inc();
    app.metrics.stored.inc();
    certs_only_body(&issued.der)
}

/// The base64 certs-only body carrying one certificate.
fn certs_only_body(der: &[u8]) -> Result<Bytes, EstError> {
    let pkcs7 = codec::certs_only(&[der]).map_err(|e| EstError::Internal(e.to_string()))?;
    Ok(Bytes::from(codec::encode_base64_wrapped(&pkcs7)))
}

fn record_for(
    issued: &IssuedCert,
    template: &CertTemplate,
    profile: &Profile,
    order_id: &str,
    renews: Option<Serial>,
) -> CertRecord {
    CertRecord {
        serial: issued.serial,
        der: issued.der.clone(),
        subject: policy::display_name(&template.subject),
        profile_id: profile.id.clone(),
        cvr: profile.cvr.clone(),
        kind: profile.kind,
        rights: profile.rights.clone(),
        issued_at: now_unix(),
        not_after: issued.not_after,
        status: CertStatus::Issued,
        renews,
        renewed_by: None,
        order_id: Some(order_id.to_owned()),
        published: profile.publish,
        // What the certificate carries, which after a re-enrolment may differ
        // from what the profile says now.
        email: policy::email_of(&template.sans),
    }
}

/// The audit record an issuance writes with its certificate.
pub struct AuditNote {
    /// Who asked.
    pub actor: String,
    /// What it was.
    pub action: AuditAction,
    /// Detail for the log (never a secret).
    pub detail: String,
}

impl AuditNote {
    fn event(&self, profile: &Profile, serial: Serial, order_id: &str) -> AuditEvent {
        AuditEvent {
            at_ms: now_unix() * 1000,
            actor: self.actor.clone(),
            action: self.action,
            outcome: AuditOutcome::Done,
            cvr: Some(profile.cvr.clone()),
            profile_id: Some(profile.id.clone()),
            serial: Some(serial),
            order_id: Some(order_id.to_owned()),
            detail: self.detail.clone(),
        }
    }
}

/// Signs and stores a certificate with a new order that is already Issued
/// (API enrolment and re-enrolment), retrying on serial or reference clashes.
/// Returns once certificate, order and audit record are durable.
async fn issue_with_new_order(
    app: &Arc<App>,
    template: CertTemplate,
    profile: &Profile,
    note: AuditNote,
    renewal: Option<(Serial, OrderHolder)>,
    ticket: PendingIssuance,
) -> Result<IssuedCert, EstError> {
    let mut ticket = Some(ticket);
    let internal = |e: orders::OpError| EstError::Internal(e.to_string());
    let (renews, holder) = match renewal {
        Some((s, h)) => (Some(s), h),
        None => (None, OrderHolder::Profile),
    };
    let template = Arc::new(template);
    for _ in 0..SERIAL_ATTEMPTS {
        let issued = sign(app, &template).await?;
        let order = Order {
            id: orders::new_api_reference().map_err(internal)?,
            cvr: profile.cvr.clone(),
            profile_id: profile.id.clone(),
            holder: holder.clone(),
            identification: Identification::Api,
            issuance: Issuance::Est,
            status: OrderStatus::Issued {
                serial: issued.serial,
            },
            created_at: now_unix(),
            created_by: note.actor.clone(),
            code: None,
            renews,
            held_csr: None,
        };
        let issuance = StoreIssuance {
            cert: record_for(&issued, &template, profile, &order.id, renews),
            audit: note.event(profile, issued.serial, &order.id),
            order: OrderWrite::New(order),
            link_renewal: renews,
        };
        let ticket = ticket.take().unwrap_or_else(|| app.store.expect_issuance());
        match app.store.issue(issuance, ticket).await? {
            IssueOutcome::Stored => return Ok(issued),
            IssueOutcome::SerialTaken | IssueOutcome::OrderRefused(_) => continue,
            IssueOutcome::AlreadyRenewed(successor) => return Err(renewed_already(successor)),
        }
    }
    Err(EstError::Internal(
        "no free serial or reference number after several attempts".into(),
    ))
}

/// Signs and stores a certificate for an existing order, moving it to Issued
/// in the same write; refused if the order changed meanwhile (a code spent).
/// Returns once certificate, order and audit record are durable.
pub async fn issue_for_order(
    app: &Arc<App>,
    template: CertTemplate,
    profile: &Profile,
    order: &Order,
    note: AuditNote,
    ticket: PendingIssuance,
) -> Result<IssuedCert, EstError> {
    let mut ticket = Some(ticket);
    let template = Arc::new(template);
    for _ in 0..SERIAL_ATTEMPTS {
        let issued = sign(app, &template).await?;
        let serial = issued.serial;
        let (expected_status, expected_code) = (order.status.clone(), order.code.clone());
        let check: OrderCheck = Box::new(move |current: &mut Order| {
            // Only the very state we checked may move to Issued: a code used
            // twice, or a new code issued meanwhile, finds it changed.
            if current.status != expected_status || current.code != expected_code {
                return Err(format!("the order is now {}", current.status.name()));
            }
            current.mark_issued(serial).map_err(|e| e.to_string())
        });
        let issuance = StoreIssuance {
            cert: record_for(&issued, &template, profile, &order.id, order.renews),
            audit: note.event(profile, serial, &order.id),
            order: OrderWrite::Change {
                id: order.id.clone(),
                check,
            },
            link_renewal: order.renews,
        };
        let ticket = ticket.take().unwrap_or_else(|| app.store.expect_issuance());
        match app.store.issue(issuance, ticket).await? {
            IssueOutcome::Stored => return Ok(issued),
            IssueOutcome::SerialTaken => continue,
            IssueOutcome::AlreadyRenewed(successor) => return Err(renewed_already(successor)),
            IssueOutcome::OrderRefused(why) => {
                return Err(if order.identification == Identification::OneTimeCode {
                    EstError::Unauthorized(BAD_CODE.into())
                } else {
                    EstError::Forbidden(why)
                })
            }
        }
    }
    Err(EstError::Internal(
        "no free serial after several attempts".into(),
    ))
}

/// The profile an IdM system enrols under: the label's, or its organisation's
/// default; it must be its own organisation's and offer API identification.
fn api_profile(
    app: &App,
    principal: &Principal,
    label: Option<&str>,
) -> Result<(Organisation, Profile), EstError> {
    let cvr = principal.cvr();
    let profile = match label {
        Some(l) => app.store.profile_by_label(l)?,
        None => app.store.default_profile(cvr)?,
    };
    let profile = profile
        .filter(|p| p.cvr == cvr)
        .ok_or_else(|| EstError::Forbidden(NOT_PERMITTED.into()))?;
    if profile.identification != Identification::Api || profile.issuance != Issuance::Est {
        return Err(EstError::Forbidden(
            "this profile is not issued by API enrolment".into(),
        ));
    }
    let org = app
        .store
        .org(cvr)?
        .ok_or_else(|| EstError::Forbidden(NOT_PERMITTED.into()))?;
    Ok((org, profile))
}
