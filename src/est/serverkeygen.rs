//! `POST [/<label>]/serverkeygen` (RFC 7030 4.4), protocol only: the
//! request is read and its caller identified here; the key, the certificate
//! and the order's collection are [`service::serverkeygen`], and the answer
//! is encoded here as `multipart/mixed`: the key (PKCS#8), then the
//! certificate.

use std::time::Instant;

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;

use super::enroll::{audit_refusal, identify, read_csr_body, Caller};
use super::{codec, EstError};
use crate::app::App;
use crate::http::{Connection, RequestLog};
use crate::model::AuditAction;
use crate::service;

/// Answers a server-side key generation request.
pub async fn handle(
    app: &App,
    conn: &Connection,
    req: Request<Incoming>,
    label: Option<&str>,
    log: &mut RequestLog,
) -> Result<Response<Full<Bytes>>, EstError> {
    let started = Instant::now();
    let result = inner(app, conn, req, label, log).await;
    app.metrics
        .enroll_latency
        .observe(started.elapsed().as_secs_f64());
    if let Err(e) = &result {
        audit_refusal(app, log, AuditAction::ServerKeygen, e);
    }
    result
}

async fn inner(
    app: &App,
    conn: &Connection,
    req: Request<Incoming>,
    label: Option<&str>,
    log: &mut RequestLog,
) -> Result<Response<Full<Bytes>>, EstError> {
    let (parts, der) = read_csr_body(&app.config.server, req).await?;
    let Caller::Code(creds) = identify(app, conn, &parts.headers, log).await? else {
        return Err(service::not_browser().into());
    };
    let (reference, code) = (&creds.user, &creds.password);
    let made = match service::serverkeygen(app.services(), reference, code, label, der).await? {
        service::Keygen::Made(made) => made,
        service::Keygen::AwaitingEmail { retry_after } => {
            return Ok(super::enroll::held_response(
                retry_after,
                service::Awaiting::EmailValidation,
                false,
            ))
        }
    };
    log.serial = Some(made.serial);
    let pkcs7 = codec::certs_only(&[&made.der]).map_err(EstError::Encoding)?;
    Ok(multipart(&made.pkcs8, &pkcs7))
}

/// The two-part answer of RFC 7030 4.4.2: the key, then the certificate.
fn multipart(pkcs8: &[u8], pkcs7: &[u8]) -> Response<Full<Bytes>> {
    let boundary = "estd-serverkeygen-boundary";
    let mut body = Vec::with_capacity(pkcs8.len() * 2 + pkcs7.len() * 2 + 512);
    body.extend_from_slice(format!("--{boundary}\r\nContent-Type: application/pkcs8\r\nContent-Transfer-Encoding: base64\r\n\r\n").as_bytes());
    body.extend_from_slice(&codec::encode_base64_wrapped(pkcs8));
    body.extend_from_slice(format!("--{boundary}\r\nContent-Type: application/pkcs7-mime; smime-type=certs-only\r\nContent-Transfer-Encoding: base64\r\n\r\n").as_bytes());
    body.extend_from_slice(&codec::encode_base64_wrapped(pkcs7));
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = StatusCode::OK;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("multipart/mixed; boundary=estd-serverkeygen-boundary"),
    );
    r
}
