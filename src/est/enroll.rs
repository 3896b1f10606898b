//! `simpleenroll` and `simplereenroll` (RFC 7030 4.2), protocol only: the
//! request is read and its caller identified here; the unit of work
//! (enrolment, collection, re-enrolment) is a service, durable when it
//! returns, and its result is encoded here.
//!
//! Callers are an IdM system certificate (API identification), the holder of
//! a certificate (re-enrolment), or a reference number and one-time code in
//! HTTP Basic (collection of a one-time-code order).

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
use crate::auth::{self, BasicCredentials, Principal};
use crate::config::ServerConfig;
use crate::http::{Connection, RequestLog};
use crate::model::{ActorId, AuditAction, AuditOutcome};
use crate::service::{self, Enrolled};

/// Content type of an enrolment answer.
pub const PKCS7_CERTS_ONLY: &str = "application/pkcs7-mime; smime-type=certs-only";

/// Who is calling an enrolment endpoint.
// Lives for one request, on the stack: boxing the principal would cost an
// allocation per request for nothing.
#[allow(clippy::large_enum_variant)]
pub enum Caller {
    /// A valid certificate of this CA or a configured anchor.
    Certificate(Principal),
    /// A reference number and one-time code (not checked yet: checking
    /// them is part of collecting the order).
    Code(BasicCredentials),
}

/// `POST [/<label>]/simpleenroll`.
pub async fn simple_enroll(
    app: &App,
    conn: &Connection,
    req: Request<Incoming>,
    label: Option<&str>,
    log: &mut RequestLog,
    problem_json: bool,
) -> Result<Response<Full<Bytes>>, EstError> {
    let started = Instant::now();
    let result = enroll_inner(app, conn, req, label, log).await;
    finish(app, log, AuditAction::Enroll, started, result, problem_json)
}

/// `POST [/<label>]/simplereenroll`.
pub async fn simple_reenroll(
    app: &App,
    conn: &Connection,
    req: Request<Incoming>,
    label: Option<&str>,
    log: &mut RequestLog,
) -> Result<Response<Full<Bytes>>, EstError> {
    let started = Instant::now();
    let result = reenroll_inner(app, conn, req, label, log).await;
    // A held re-enrolment is answered in text whatever the client accepts
    // (as it always was; errors still follow Accept).
    finish(app, log, AuditAction::Reenroll, started, result, false)
}

async fn enroll_inner(
    app: &App,
    conn: &Connection,
    req: Request<Incoming>,
    label: Option<&str>,
    log: &mut RequestLog,
) -> Result<Enrolled, EstError> {
    let (parts, der) = read_csr_body(&app.config.server, req).await?;
    let s = app.services();
    let binding = conn.channel_binding();
    Ok(match identify(app, conn, &parts.headers, log).await? {
        Caller::Certificate(principal) => service::enrol(s, principal, label, der, binding).await?,
        Caller::Code(creds) => {
            let (reference, code) = (&creds.user, &creds.password);
            service::collect(s, reference, code, label, der, binding).await?
        }
    })
}

async fn reenroll_inner(
    app: &App,
    conn: &Connection,
    req: Request<Incoming>,
    label: Option<&str>,
    log: &mut RequestLog,
) -> Result<Enrolled, EstError> {
    let (_parts, der) = read_csr_body(&app.config.server, req).await?;
    let principal = certificate_principal(app, conn).await?;
    log.principal = Some(principal.describe());
    let binding = conn.channel_binding();
    Ok(service::reenrol(app.services(), principal, label, der, binding).await?)
}

/// Encodes the answer; records a refusal in the audit log and the latency
/// in metrics.
fn finish(
    app: &App,
    log: &mut RequestLog,
    action: AuditAction,
    started: Instant,
    result: Result<Enrolled, EstError>,
    problem_json: bool,
) -> Result<Response<Full<Bytes>>, EstError> {
    app.metrics
        .enroll_latency
        .observe(started.elapsed().as_secs_f64());
    match result {
        Ok(Enrolled::Issued(cert)) => {
            log.serial = Some(cert.serial);
            Ok(base64_response(
                PKCS7_CERTS_ONLY,
                certs_only_body(&cert.der)?,
            ))
        }
        Ok(Enrolled::Held {
            retry_after,
            awaiting,
        }) => Ok(held_response(retry_after, awaiting, problem_json)),
        Err(e) => {
            audit_refusal(app, log, action, &e);
            Err(e)
        }
    }
}

/// The base64 certs-only body carrying one certificate.
fn certs_only_body(der: &[u8]) -> Result<Bytes, EstError> {
    let pkcs7 = codec::certs_only(&[der]).map_err(EstError::Encoding)?;
    Ok(Bytes::from(codec::encode_base64_wrapped(&pkcs7)))
}

/// Records a refused request in the audit log (faults of ours are logged, not
/// audited). Only an identified caller's refusals are stored one by one: an
/// anonymous caller (no trusted certificate, no reference number of a known
/// order) is counted in a metric and a rate-limited log line instead, so
/// that refusals cost it nothing on disk.
pub fn audit_refusal(app: &App, log: &RequestLog, action: AuditAction, e: &EstError) {
    if e.is_internal() {
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
    if let Err(err) = service::audit(
        app.services(),
        &ActorId::Named(actor),
        action,
        AuditOutcome::Refused,
        service::Subject::default(),
        detail,
    ) {
        tracing::error!(error = %err, "writing a refusal to the audit log");
    }
}

/// 202 with Retry-After: as text, or as a problem-shaped document (RFC 9457
/// members, though not an error) for a client that asked for problem+json.
pub(super) fn held_response(
    retry_after: u32,
    awaiting: service::Awaiting,
    problem_json: bool,
) -> Response<Full<Bytes>> {
    let (problem_type, title, detail) = match awaiting {
        service::Awaiting::Approval => (
            "urn:estd:est:approval-pending",
            "Held for approval",
            format!(
                "held for approval by an administrator; retry after {retry_after} seconds with the same CSR"
            ),
        ),
        service::Awaiting::EmailValidation => (
            "urn:estd:est:email-validation-pending",
            "Awaiting e-mail validation",
            format!(
                "awaiting confirmation of the certificate's e-mail address (a link was sent to it); \
                 retry after {retry_after} seconds with the same CSR"
            ),
        ),
    };
    if problem_json {
        return crate::problem::Problem {
            request_id: None,
            problem_type,
            title,
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
/// and one-time code, which the unit of work checks.
pub async fn identify(
    app: &App,
    conn: &Connection,
    headers: &HeaderMap,
    log: &mut RequestLog,
) -> Result<Caller, EstError> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| auth::parse_basic(h.as_bytes()));
    let has_trusted_cert = matches!(conn.client_cert(&app.trust.load()), Some(Ok(_)));
    match basic {
        Some(creds) if !has_trusted_cert => {
            log.principal = Some(ActorId::Order(creds.user.clone()).to_string());
            Ok(Caller::Code(creds))
        }
        _ => {
            let p = certificate_principal(app, conn).await?;
            log.principal = Some(p.describe());
            Ok(Caller::Certificate(p))
        }
    }
}
