//! The request log: one tracing span per request, closed by one `request`
//! event, and one metric per request.

use std::sync::Arc;
use std::time::Instant;

use http::{header, HeaderValue, Request};
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
    let span = tracing::info_span!(
        "request",
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
    let mut resp = router.serve(req, conn).instrument(span.clone()).await;
    // Answered with the body unread (refused early: 413, 415, 401, 429...):
    // hyper closes such a connection rather than read on, so say so.
    if body_expected && !body_read.complete() {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
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
