//! The RFC 7030 endpoints under `/.well-known/est/` and `/.well-known/est/<label>/`.
//!
//! Each operation lives in its own file; this module routes, applies the rate
//! limits, reads bodies within limits, and identifies the caller.

pub mod cacerts;
pub mod codec;
pub mod csrattrs;
pub mod enroll;
pub mod error;
pub mod serverkeygen;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::request::Parts;
use http::{header, HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;

use crate::app::App;
use crate::auth::{self, ClientCert, Principal};
use crate::http::{BodyError, Connection, RequestLog};
use crate::model::{now_unix, ActorId};
use crate::ratelimit::Caller;
use crate::service;
pub use error::EstError;

/// Path prefix of every EST endpoint.
pub const PREFIX: &str = "/.well-known/est/";

/// An EST operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// `GET cacerts`.
    CaCerts,
    /// `POST simpleenroll`.
    SimpleEnroll,
    /// `POST simplereenroll`.
    SimpleReenroll,
    /// `GET csrattrs`.
    CsrAttrs,
    /// `POST serverkeygen`.
    ServerKeygen,
    /// `POST fullcmc`.
    FullCmc,
}

impl Operation {
    fn parse(s: &str) -> Option<Operation> {
        Some(match s {
            "cacerts" => Operation::CaCerts,
            "simpleenroll" => Operation::SimpleEnroll,
            "simplereenroll" => Operation::SimpleReenroll,
            "csrattrs" => Operation::CsrAttrs,
            "serverkeygen" => Operation::ServerKeygen,
            "fullcmc" => Operation::FullCmc,
            _ => return None,
        })
    }

    /// The name used in logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Operation::CaCerts => "cacerts",
            Operation::SimpleEnroll => "simpleenroll",
            Operation::SimpleReenroll => "simplereenroll",
            Operation::CsrAttrs => "csrattrs",
            Operation::ServerKeygen => "serverkeygen",
            Operation::FullCmc => "fullcmc",
        }
    }
}

/// Whether `s` is a well-formed EST label (URL-safe, 1 to 64 characters).
pub fn is_valid_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && s != "."
        && s != ".."
}

/// Splits an EST path into an optional label and an operation.
pub fn parse_path(path: &str) -> Option<(Option<&str>, Operation)> {
    let rest = path.strip_prefix(PREFIX)?;
    match rest.split_once('/') {
        None => Some((None, Operation::parse(rest)?)),
        Some((label, op)) if is_valid_label(label) => Some((Some(label), Operation::parse(op)?)),
        Some(_) => None,
    }
}

/// Routes one EST request.
pub async fn handle(
    app: &Arc<App>,
    conn: &Arc<Connection>,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let problem_json = crate::problem::prefers_problem_json(req.headers());
    let Some((label, op)) = parse_path(req.uri().path()) else {
        let mut r = EstError::NotFound.into_response_as(problem_json);
        r.extensions_mut().insert(RequestLog {
            endpoint: "unknown",
            ..Default::default()
        });
        return r;
    };
    let label = label.map(str::to_owned);
    let mut log = RequestLog {
        endpoint: op.name(),
        label: label.clone(),
        ..Default::default()
    };
    // Labels are compared without regard to case, so `DEMO` counts as `demo`.
    let label_key = label.as_deref().map(str::to_ascii_lowercase);
    if let Err(e) = rate_limit(app, conn, req.headers(), label_key.as_ref(), &mut log) {
        let mut resp = e.into_response_as(problem_json);
        resp.extensions_mut().insert(log);
        return resp;
    }
    let label = label.as_deref();
    let result = match op {
        Operation::CaCerts => cacerts::handle(app, &req),
        Operation::CsrAttrs => csrattrs::handle(app, conn, &req, label).await,
        Operation::SimpleEnroll => {
            enroll::simple_enroll(app, conn, req, label, &mut log, problem_json).await
        }
        Operation::SimpleReenroll => enroll::simple_reenroll(app, conn, req, label, &mut log).await,
        Operation::ServerKeygen => serverkeygen::handle(app, conn, req, label, &mut log).await,
        Operation::FullCmc => Err(EstError::NotImplemented("fullcmc")),
    };
    let mut resp = result.unwrap_or_else(|e| e.into_response_as(problem_json));
    resp.extensions_mut().insert(log);
    resp
}

/// The key of the unlabelled EST path in the per-label limiter (labels are never empty).
static DEFAULT_LABEL: String = String::new();

/// Counts the request against its caller's and its label's rate limits,
/// before anything costly is done for it (its body is not even read).
/// The caller is keyed as [`enroll::identify`] will judge it: a trusted
/// certificate wins, then Basic credentials (a reference number), then the address.
fn rate_limit(
    app: &App,
    conn: &Connection,
    headers: &HeaderMap,
    label: Option<&String>,
    log: &mut RequestLog,
) -> Result<(), EstError> {
    let ip = conn.remote.ip();
    let trusted = match conn.cert_fingerprint() {
        // Verified once per connection, then cached.
        Some(fp) => match conn.client_cert(&app.trust.load()) {
            Some(Ok(cert)) => Some((fp, cert)),
            _ => None,
        },
        None => None,
    };
    let basic = match trusted {
        Some(_) => None,
        None => headers
            .get(header::AUTHORIZATION)
            .and_then(|h| auth::parse_basic(h.as_bytes())),
    };
    let caller = match (&trusted, &basic) {
        (Some((fp, _)), _) => Caller::Client(fp),
        (None, Some(creds)) => Caller::Reference(&creds.user, ip),
        (None, None) => Caller::Anonymous(ip),
    };
    // Named now, so that a refusal before the caller is judged (a wrong
    // media type, a body over the limit) is known to come from a certificate
    // holder or a reference number; identification later refines it.
    log.principal = match (&trusted, &basic) {
        (Some((_, ClientCert::Issued { serial, .. })), _) => {
            Some(ActorId::Cert(*serial).to_string())
        }
        (Some((_, ClientCert::External { subject, .. })), _) => {
            Some(ActorId::External(crate::clip::clip(subject).into()).to_string())
        }
        (None, Some(creds)) => {
            Some(ActorId::Order(crate::clip::clip_to(&creds.user, 64).into()).to_string())
        }
        (None, None) => None,
    };
    let Err(limited) = app
        .limits
        .load()
        .check(caller, label.unwrap_or(&DEFAULT_LABEL))
    else {
        return Ok(());
    };
    app.metrics
        .rate_limited
        .with_label_values(&[limited.kind.name()])
        .inc();
    tracing::debug!(kind = limited.kind.name(), "rate limited");
    Err(EstError::TooManyRequests {
        retry_after: limited.retry_after,
    })
}

/// Refuses a method other than `allowed`.
pub fn require_method<B>(
    req: &Request<B>,
    allowed: http::Method,
    allow: &'static str,
) -> Result<(), EstError> {
    if req.method() == allowed
        || (allowed == http::Method::GET && req.method() == http::Method::HEAD)
    {
        Ok(())
    } else {
        Err(EstError::MethodNotAllowed(allow))
    }
}

/// Refuses a body whose media type is not `expected` (parameters ignored).
pub fn require_content_type(headers: &HeaderMap, expected: &str) -> Result<(), EstError> {
    if headers
        .get_all(header::CONTENT_TYPE)
        .iter()
        .nth(1)
        .is_some()
    {
        return Err(EstError::BadRequest(
            "more than one Content-Type header".into(),
        ));
    }
    let got = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim());
    match got {
        Some(t) if t.eq_ignore_ascii_case(expected) => Ok(()),
        // The client's value is quoted only in part: it may be as long as the head.
        Some(t) => Err(EstError::UnsupportedMediaType(format!(
            "Content-Type must be {expected}, not {}",
            crate::clip::clip_to(t, 100)
        ))),
        None => Err(EstError::UnsupportedMediaType(format!(
            "Content-Type must be {expected}"
        ))),
    }
}

/// Whether the client declared a binary (not base64) body.
pub fn is_binary_transfer(headers: &HeaderMap) -> bool {
    headers
        .get("content-transfer-encoding")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("binary"))
}

/// Reads a request body (plain or chunked) within the size and time limits,
/// through the one body reader ([`crate::http::read_body`]).
///
/// Generic over the body so that the fuzz targets can feed it chunks without
/// a socket; the server passes hyper's `Incoming`.
pub async fn read_body<B>(
    req: Request<B>,
    limit: usize,
    timeout: Duration,
) -> Result<(Parts, Bytes), EstError>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    crate::http::read_body(req, limit, timeout)
        .await
        .map_err(|e| match e {
            BodyError::TooLarge(limit) => EstError::TooLarge(limit),
            BodyError::Timeout => EstError::Timeout,
            BodyError::Broken(e) => EstError::BadRequest(format!("reading body: {e}")),
        })
}

/// Identifies the caller by client certificate. Basic credentials are not a
/// certificate holder's identity; the one-time-code path handles them.
pub async fn certificate_principal(app: &App, conn: &Connection) -> Result<Principal, EstError> {
    match conn.client_cert(&app.trust.load()) {
        Some(Ok(cert)) => match auth::principal(cert, &app.store, now_unix()).await? {
            Ok(p) => Ok(p),
            Err(rejection) => Err(rejection.into()),
        },
        Some(Err(rejection)) => Err(rejection.clone().into()),
        None => Err(EstError::Service(service::Error::Unauthenticated(
            "a client certificate or credentials are required".into(),
        ))),
    }
}

/// A 200 response with a base64 body.
pub fn base64_response(content_type: &'static str, body: Bytes) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = StatusCode::OK;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        "content-transfer-encoding",
        HeaderValue::from_static("base64"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(
            parse_path("/.well-known/est/cacerts"),
            Some((None, Operation::CaCerts))
        );
        assert_eq!(
            parse_path("/.well-known/est/demo/simpleenroll"),
            Some((Some("demo"), Operation::SimpleEnroll))
        );
        assert_eq!(parse_path("/.well-known/est/a/b/cacerts"), None);
        assert_eq!(parse_path("/.well-known/est/../cacerts"), None);
        assert_eq!(parse_path("/.well-known/est/nope"), None);
        assert_eq!(parse_path("/cacerts"), None);
    }
}
