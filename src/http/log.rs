//! The request log: one tracing span per request, closed by one `request`
//! event, and one metric per request. Each request has an id (the caller's
//! `X-Request-Id`, or a new one), in its span, its answer's `X-Request-Id`
//! and any problem document.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, Request};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Incoming};
use prometheus::IntCounterVec;
use tracing::field::Empty;
use tracing::Instrument;

use super::body::BodyRead;
use super::connection::Connection;
use super::router::{Answer, Router};
use crate::model::Serial;

/// What a handler reports about a request for the log and metrics, in the
/// extensions of its answer.
#[derive(Debug, Default, Clone)]
pub struct RequestLog {
    /// Endpoint name (bounded set, used as a metric label).
    pub endpoint: &'static str,
    /// EST label.
    pub label: Option<String>,
    /// Who called.
    pub principal: Option<String>,
    /// Serial of an issued certificate.
    pub serial: Option<Serial>,
}

/// The header that names a request across systems (proxies, clients, logs).
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest caller-chosen request id taken as is.
const REQUEST_ID_MAX: usize = 64;

/// The caller's `X-Request-Id` if it is a plausible id (1 to 64 of
/// `A-Z a-z 0-9 . _ : -`, so that it is safe in logs and headers), else a new
/// random one.
fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|id| {
            (1..=REQUEST_ID_MAX).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
        })
        .map(str::to_owned)
        .unwrap_or_else(new_request_id)
}

/// A random (version 4) UUID from aws-lc's generator, which runs in user
/// space: `Uuid::new_v4` asks the kernel (a `getrandom` call) every time,
/// once per request.
fn new_request_id() -> String {
    let mut bytes = [0u8; 16];
    match aws_lc_rs::rand::fill(&mut bytes) {
        Ok(()) => uuid::Builder::from_random_bytes(bytes)
            .into_uuid()
            .to_string(),
        Err(_) => uuid::Uuid::new_v4().to_string(),
    }
}

/// A problem document with the request's id added as `requestId`; any
/// other answer as it is.
async fn with_request_id(resp: Answer, id: &str) -> Answer {
    let is_problem = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == crate::problem::PROBLEM_JSON.as_bytes());
    if !is_problem {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let Ok(collected) = body.collect().await;
    let bytes = collected.to_bytes();
    let body = match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(serde_json::Value::Object(mut doc)) => {
            doc.insert("requestId".into(), id.into());
            serde_json::to_vec(&doc).map(Bytes::from).unwrap_or(bytes)
        }
        _ => bytes,
    };
    Answer::from_parts(parts, Full::new(body))
}

/// Answers one request on the listener `listener` through `router`, inside
/// the request's span (so that what a handler logs carries it), then logs
/// and counts it (`requests{listener, endpoint, status}`).
pub async fn answer(
    listener: &'static str,
    requests: &IntCounterVec,
    router: &dyn Router,
    conn: Arc<Connection>,
    mut req: Request<Incoming>,
) -> Answer {
    let started = Instant::now();
    let id = request_id(req.headers());
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        listener,
        remote = %conn.remote,
        method = %req.method(),
        path = %crate::clip::clip(req.uri().path()),
        label = Empty,
        principal = Empty,
        serial = Empty,
    );
    let body_read = BodyRead::default();
    let body_expected = !req.body().is_end_stream();
    req.extensions_mut().insert(body_read.clone());
    let mut resp = router
        .serve(req, conn.clone())
        .instrument(span.clone())
        .await;
    // Answered with the body unread (refused early: 413, 415, 401, 429...):
    // hyper closes such a connection rather than read on, so say so.
    if body_expected && !body_read.complete() {
        conn.leave_body_unread();
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    let mut resp = with_request_id(resp, &id).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(X_REQUEST_ID, value);
    }
    super::spelling::respell(&mut resp);
    let log = resp
        .extensions_mut()
        .remove::<RequestLog>()
        .unwrap_or_default();
    let status = resp.status();
    requests
        .with_label_values(&[listener, log.endpoint, status.as_str()])
        .inc();
    span.record("label", log.label.as_deref().unwrap_or("-"));
    span.record(
        "principal",
        tracing::field::display(crate::clip::clip(log.principal.as_deref().unwrap_or("-"))),
    );
    span.record(
        "serial",
        tracing::field::display(
            log.serial
                .map(|s| s.to_string())
                .unwrap_or_else(|| "-".into()),
        ),
    );
    span.in_scope(|| {
        tracing::info!(
            status = status.as_u16(),
            latency_us = started.elapsed().as_micros() as u64,
            "request"
        )
    });
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_made_request_id_is_a_random_uuid() {
        let a = uuid::Uuid::parse_str(&new_request_id()).expect("a UUID");
        assert_eq!(a.get_version(), Some(uuid::Version::Random));
        assert_eq!(a.get_variant(), uuid::Variant::RFC4122);
        assert_ne!(new_request_id(), new_request_id());
    }

    #[test]
    fn a_clients_request_id_is_kept_if_it_is_short_and_plain() {
        let mut headers = HeaderMap::new();
        headers.insert(&X_REQUEST_ID, HeaderValue::from_static("abc-123"));
        assert_eq!(request_id(&headers), "abc-123");
        headers.insert(&X_REQUEST_ID, HeaderValue::from_static("a b"));
        assert!(uuid::Uuid::parse_str(&request_id(&headers)).is_ok());
    }
}
