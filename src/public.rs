//! The plain-HTTP listener for relying parties: the CRL (RFC 5280) at the
//! path of `ca.crl_url`, the OCSP responder (RFC 6960, GET and POST) at the
//! path of `ca.ocsp_url`, and the issuing CA certificate (AIA caIssuers,
//! RFC 5280 4.2.2.1) at the path of `ca.ca_issuers_url`, each generation's
//! at its own. No TLS, no authentication: all of them are signed.
//!
//! It also serves the page behind e-mail validation links
//! (`/validate-email`): `GET ?token=…` only shows the address and a
//! "Confirm" button (mail scanners that fetch links confirm nothing), and
//! the button's `POST` (form field `token`) confirms. The token is never
//! logged: the request log has the path only.
//!
//! Because anyone may ask, requests are rate-limited per address
//! (`[rate_limit.public]`), and OCSP answers are computed at most
//! `revocation.ocsp_signing_concurrency` at a time
//! ([`OcspGate`](crate::revocation::OcspGate)): a request
//! with a nonce costs a fresh signature, and a flood of them must not take
//! the cores that enrolments need.

use std::net::IpAddr;
use std::sync::Arc;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;

use crate::app::App;
use crate::http::html::{escape, page};
use crate::http::RequestLog;
use crate::model::now_unix;
use crate::revocation::OcspAnswer;

/// Largest OCSP request body accepted.
const MAX_OCSP_REQUEST: usize = 16 * 1024;

pub use crate::config::url_path;

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Routes one request on the plain-HTTP listener from `remote`.
pub async fn handle(
    app: &Arc<App>,
    remote: IpAddr,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let ocsp_path = url_path(&app.config.ca.ocsp_url).trim_end_matches('/');
    let path = req.uri().path().to_owned();
    // Counted before anything is read, looked up or signed.
    let (endpoint, resp) = if let Err(limited) = app.limits.load().check_public(remote) {
        app.metrics
            .rate_limited
            .with_label_values(&[limited.kind.name()])
            .inc();
        let mut r = plain(
            StatusCode::TOO_MANY_REQUESTS,
            "too many requests from this address; retry later\n",
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(limited.retry_after));
        ("rate-limited", r)
    } else if let Some(generation) = crl_generation(app, &path) {
        ("crl", crl(app, &req, generation))
    } else if let Some(der) = ca_issuers_cert(app, &path) {
        ("ca-issuers", issuing_cert(&req, der))
    } else if path == ocsp_path || path.starts_with(&format!("{ocsp_path}/")) {
        ("ocsp", ocsp(app, req, ocsp_path).await)
    } else if path == crate::service::VALIDATE_EMAIL_PATH {
        ("validate-email", validate_email(app, req).await)
    } else {
        ("unknown", plain(StatusCode::NOT_FOUND, "not found\n"))
    };
    let mut resp = resp;
    resp.extensions_mut().insert(RequestLog {
        endpoint,
        ..Default::default()
    });
    resp
}

/// Largest confirmation form accepted (`token=` and 43 characters).
const MAX_VALIDATION_FORM: usize = 1024;

/// The token of a query string or form body (`token=…`), if any.
fn token_field(s: &str) -> Option<&str> {
    s.split('&').find_map(|kv| kv.strip_prefix("token="))
}

/// The page of a refused link.
fn refused_page(e: &crate::service::Error) -> Response<Full<Bytes>> {
    let status = crate::http::error::status(e);
    let (da, en) = if status.is_server_error() {
        (
            "Linket kunne ikke kontrolleres lige nu. Prøv igen senere.",
            "The link could not be checked just now. Try again later.",
        )
    } else if status == StatusCode::CONFLICT {
        (
            "Linket er udløbet. Et nyt link sendes, næste gang certifikatet hentes.",
            "This link has expired. A new one is sent when the certificate is next requested.",
        )
    } else {
        (
            "Linket er ikke gyldigt: det er allerede brugt, erstattet af et nyere, eller forkert.",
            "This link is not valid: it was already used, replaced by a newer one, or mistyped.",
        )
    };
    page(
        status,
        "E-mail validation",
        &format!("<h1>Bekræft e-mailadresse / Confirm e-mail address</h1><p>{da}</p><p lang=\"en\">{en}</p>"),
    )
}

/// `GET /validate-email?token=…` shows the confirmation button; `POST`
/// (form field `token`) confirms.
async fn validate_email(app: &Arc<App>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let s = app.services();
    match *req.method() {
        Method::GET | Method::HEAD => {
            let token = token_field(req.uri().query().unwrap_or("")).unwrap_or("");
            match crate::service::email_link(s, token) {
                Ok(v) => page(
                    StatusCode::OK,
                    "Bekræft e-mailadresse / Confirm e-mail address",
                    &format!(
                        "<h1>Bekræft e-mailadresse / Confirm e-mail address</h1>\
                         <p>{address}</p>\
                         <form method=\"post\" action=\"{path}\">\
                         <input type=\"hidden\" name=\"token\" value=\"{token}\">\
                         <button type=\"submit\">Bekræft / Confirm</button></form>",
                        address = escape(&v.address),
                        path = crate::service::VALIDATE_EMAIL_PATH,
                        token = escape(token.trim()),
                    ),
                ),
                Err(e) => refused_page(&e),
            }
        }
        Method::POST => {
            let timeout = app.config.server.body_read_timeout();
            let body = match crate::est::read_body(req, MAX_VALIDATION_FORM, timeout).await {
                Ok((_, body)) => body,
                Err(e) => return plain(e.status(), "confirmation form refused\n"),
            };
            let form = std::str::from_utf8(&body).unwrap_or("");
            let token = token_field(form.trim()).unwrap_or("");
            match crate::service::confirm_email(s, token).await {
                Ok(v) => page(
                    StatusCode::OK,
                    "Bekræftet / Confirmed",
                    &format!(
                        "<h1>Bekræftet / Confirmed</h1><p>{address}</p>\
                         <p>Tak. Certifikatet udstedes, næste gang det hentes.</p>\
                         <p lang=\"en\">Thank you. The certificate is issued when it is next requested.</p>",
                        address = escape(&v.address),
                    ),
                ),
                Err(e) => {
                    if crate::http::error::status(&e).is_server_error() {
                        tracing::error!(error = %e, "confirming an e-mail address");
                    }
                    refused_page(&e)
                }
            }
        }
        _ => plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed; use GET or POST\n",
        ),
    }
}

/// Which CA generation's CRL `path` asks for: the one whose distribution
/// point has this path (see [`crate::ca::set::generation_url`]).
fn crl_generation(app: &App, path: &str) -> Option<u32> {
    app.ca
        .generations()
        .iter()
        .find(|g| url_path(g.ca.crl_url()) == path)
        .map(|g| g.number)
}

/// The issuing CA certificate whose caIssuers URL has `path`.
fn ca_issuers_cert<'a>(app: &'a App, path: &str) -> Option<&'a [u8]> {
    app.ca
        .generations()
        .iter()
        .find(|g| url_path(g.ca.ca_issuers_url()) == path)
        .map(|g| g.ca.issuing_der())
}

/// A certificate as RFC 5280 4.2.2.1 asks for at a caIssuers URL: one DER
/// certificate, `application/pkix-cert` (RFC 2585).
fn issuing_cert(req: &Request<Incoming>, der: &[u8]) -> Response<Full<Bytes>> {
    if let Some(refused) = refuse_unless_get(req) {
        return refused;
    }
    // A CA certificate does not change while it is served.
    signed_object(
        Bytes::copy_from_slice(der),
        "application/pkix-cert",
        "public, max-age=86400, no-transform",
    )
}

/// The refusal of a method other than GET and HEAD; `None` for those.
fn refuse_unless_get(req: &Request<Incoming>) -> Option<Response<Full<Bytes>>> {
    if req.method() == Method::GET || req.method() == Method::HEAD {
        return None;
    }
    Some(plain(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed; use GET\n",
    ))
}

/// A signed DER object (a CRL, a certificate) as `content_type`, which
/// caches may keep as `cache_control` says.
fn signed_object(
    der: Bytes,
    content_type: &'static str,
    cache_control: &'static str,
) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(der));
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    r
}

fn crl(app: &App, req: &Request<Incoming>, generation: u32) -> Response<Full<Bytes>> {
    if let Some(refused) = refuse_unless_get(req) {
        return refused;
    }
    let Some(crl) = app.revocation.crl_of(generation) else {
        return plain(StatusCode::NOT_FOUND, "no CA generation has this CRL\n");
    };
    if crl.der.is_empty() {
        return plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "no CRL has been signed yet\n",
        );
    }
    // Revocations reach the CRL within seconds, so caches may keep it only briefly.
    signed_object(
        Bytes::from(crl.der.clone()),
        "application/pkix-crl",
        "public, max-age=60, no-transform",
    )
}

const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Decodes the GET form of an OCSP request: the path after the responder's
/// path is the DER request, base64 (RFC 6960 A.1), URL-encoded. `None` means
/// it is not that (the responder then answers malformedRequest).
pub fn decode_ocsp_get(encoded: &str) -> Option<Vec<u8>> {
    let mut unescaped = String::with_capacity(encoded.len());
    let mut bytes = encoded.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hi = bytes.next()?;
            let lo = bytes.next()?;
            let v = crate::model::hex_byte(&[hi, lo])?;
            unescaped.push(v as char);
        } else {
            unescaped.push(b as char);
        }
    }
    let normal: String = unescaped
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .filter(|c| !c.is_whitespace())
        .collect();
    LENIENT.decode(normal.as_bytes()).ok()
}

async fn ocsp(app: &Arc<App>, req: Request<Incoming>, ocsp_path: &str) -> Response<Full<Bytes>> {
    let (answer, cacheable) = match *req.method() {
        Method::GET => {
            let encoded = req
                .uri()
                .path()
                .strip_prefix(ocsp_path)
                .unwrap_or("")
                .trim_start_matches('/');
            match decode_ocsp_get(encoded) {
                Some(der) => (ocsp_answer(app, &der).await, true),
                None => (ocsp_answer(app, b"").await, false),
            }
        }
        Method::POST => {
            let limit = MAX_OCSP_REQUEST;
            let timeout = app.config.server.body_read_timeout();
            match crate::est::read_body(req, limit, timeout).await {
                Ok((_, body)) => (ocsp_answer(app, &body).await, false),
                Err(e) => {
                    let mut r = plain(e.status(), "OCSP request body refused\n");
                    *r.status_mut() = e.status();
                    return r;
                }
            }
        }
        _ => {
            return plain(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed; use GET or POST\n",
            )
        }
    };
    app.metrics
        .ocsp_responses
        .with_label_values(&[answer.status.as_str()])
        .inc();
    ocsp_response(answer, cacheable)
}

/// Answers a DER OCSPRequest through the gate.
async fn ocsp_answer(app: &App, request: &[u8]) -> OcspAnswer {
    app.ocsp_gate
        .answer(&app.revocation, &app.store, &app.metrics, request)
        .await
}

fn ocsp_response(answer: OcspAnswer, cacheable: bool) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(answer.body));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/ocsp-response"),
    );
    match answer.max_age {
        Some(age) if cacheable => {
            if let Ok(v) = HeaderValue::from_str(&format!(
                "public, max-age={age}, no-transform, must-revalidate"
            )) {
                h.insert(header::CACHE_CONTROL, v);
            }
            let expires = std::time::UNIX_EPOCH + std::time::Duration::from_secs(now_unix() + age);
            if let Ok(v) = HeaderValue::from_str(&httpdate(expires)) {
                h.insert(header::EXPIRES, v);
            }
        }
        _ => {
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
    }
    r
}

/// An HTTP date (RFC 9110 IMF-fixdate).
fn httpdate(t: std::time::SystemTime) -> String {
    let dt = time::OffsetDateTime::from(t);
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[dt.weekday().number_days_from_monday() as usize],
        dt.day(),
        MONTHS[(u8::from(dt.month()) - 1) as usize],
        dt.year(),
        dt.hour(),
        dt.minute(),
        dt.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_paths() {
        assert_eq!(
            url_path("http://127.0.0.1:8080/crl/issuing-ca.crl"),
            "/crl/issuing-ca.crl"
        );
        assert_eq!(url_path("http://h/ocsp"), "/ocsp");
        assert_eq!(url_path("http://h"), "/");
    }

    #[test]
    fn get_form_decodes() {
        assert_eq!(
            decode_ocsp_get("MAMCAQU%3D"),
            Some(vec![0x30, 0x03, 0x02, 0x01, 0x05])
        );
        assert_eq!(
            decode_ocsp_get("MAMCAQU"),
            Some(vec![0x30, 0x03, 0x02, 0x01, 0x05])
        );
        assert_eq!(decode_ocsp_get("%zz"), None);
        assert_eq!(
            decode_ocsp_get("MAMCAQU%+D"),
            None,
            "a sign is not a hex digit"
        );
    }

    #[test]
    fn http_dates() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(784_111_777);
        assert_eq!(httpdate(t), "Sun, 06 Nov 1994 08:49:37 GMT");
    }
}
