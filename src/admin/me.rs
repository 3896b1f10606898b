//! A logged-in person's own calls (`/session`, `/logout`, `/me/...`): their
//! session, the orders they collect, their certificates, history and tasks.
//! The rules live in [`crate::service::own`].

use base64::Engine;
use http::{header, HeaderValue, StatusCode};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::auth::{clear_session_cookie, LoggedIn};
use super::login::SessionView;
use super::orders::NoFields;
use super::people::PersonView;
use super::problem::ApiError;
use super::request::ApiRequest;
use super::response::{created, json, with_body, ApiResult};
use super::routes::Endpoint;
use super::views::{AuditView, CertView, CreatedOrderView, Items, OrderView};
use crate::app::App;
use crate::model::{now_unix, Actor, Serial};
use crate::service::{self, login, own};

/// Longest history page.
const MAX_HISTORY: u64 = 500;

/// Routes one call of a logged-in person.
pub async fn endpoint(
    app: &App,
    actor: &Actor,
    session: &LoggedIn,
    endpoint: Endpoint,
    req: &ApiRequest,
) -> ApiResult {
    use Endpoint as E;
    let person = &session.person;
    let svc = app.services();
    match endpoint {
        E::GetSession => {
            req.query.only(&[])?;
            json(
                StatusCode::OK,
                &SessionView {
                    csrf_token: login::csrf_token(&session.cookie),
                    person: PersonView::of(person),
                    idle_timeout_secs: app.config.people.session_idle_secs,
                },
            )
        }
        E::Logout => {
            req.query.only(&[])?;
            let _: NoFields = req.json_or_default()?;
            login::logout(svc, &session.cookie, person).await?;
            let mut resp = with_body(StatusCode::NO_CONTENT, "text/plain", "");
            let clear = HeaderValue::from_str(&clear_session_cookie())
                .map_err(|e| ApiError::Encoding(Box::new(e)))?;
            resp.headers_mut().insert(header::SET_COOKIE, clear);
            Ok(resp)
        }
        E::MyOrders => {
            req.query.only(&[])?;
            let now = now_unix();
            let views = own::own_orders(svc, person)?
                .iter()
                .map(|o| OrderView::new(o, service::order_shown(svc, o, now)))
                .collect();
            json(StatusCode::OK, &Items::all(views))
        }
        E::IssuePkcs12 => {
            req.query.only(&[])?;
            let input: BrowserIssuance = req.json()?;
            let issued =
                own::issue_pkcs12(svc, actor, person, req.param(0), &input.accept_terms).await?;
            let view = IssuedPkcs12 {
                serial: issued.serial.to_string(),
                password: issued.password,
                pkcs12: base64::engine::general_purpose::STANDARD.encode(&issued.pkcs12),
                certificate: pem("CERTIFICATE", &issued.der),
            };
            let mut resp = created(&format!("/api/v1/me/certificates/{}", view.serial), &view)?;
            resp.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            Ok(resp)
        }
        E::IssueFromCsr => {
            req.query.only(&[])?;
            let input: HardwareIssuance = req.json()?;
            let csr = csr_der(&input.csr)?;
            let cert = own::issue_from_csr(svc, actor, person, req.param(0), csr).await?;
            let rec = own::own_cert(svc, person, &cert.serial)?;
            created(
                &format!("/api/v1/me/certificates/{}", cert.serial),
                &CertView::new(&rec, now_unix()),
            )
        }
        E::MyCertificates => {
            req.query.only(&[])?;
            let now = now_unix();
            let views = own::own_certs(svc, person)?
                .iter()
                .map(|c| CertView::new(c, now))
                .collect();
            json(StatusCode::OK, &Items::all(views))
        }
        E::MyCertificate => {
            req.query.only(&["format"])?;
            let rec = own::own_cert(svc, person, &path_serial(req)?)?;
            match req.query.get("format").unwrap_or("json") {
                "json" => json(StatusCode::OK, &CertView::new(&rec, now_unix())),
                "pem" => Ok(download(
                    "application/x-pem-file",
                    &format!("{}.pem", rec.serial),
                    pem("CERTIFICATE", &rec.der).into_bytes(),
                )),
                "der" => Ok(download(
                    "application/pkix-cert",
                    &format!("{}.cer", rec.serial),
                    rec.der.clone(),
                )),
                _ => Err(ApiError::invalid("format", "must be json, pem or der")),
            }
        }
        E::BlockMyCertificate => {
            req.query.only(&[])?;
            let input: Confirm = req.json_or_default()?;
            let rec = own::block_own(svc, actor, person, &path_serial(req)?, input.confirm).await?;
            json(StatusCode::OK, &CertView::new(&rec, now_unix()))
        }
        E::RenewMyCertificate => {
            req.query.only(&[])?;
            let _: NoFields = req.json_or_default()?;
            let made = own::renew_own(svc, actor, person, &path_serial(req)?).await?;
            let view = CreatedOrderView::new(svc, made, now_unix());
            created(&format!("/api/v1/orders/{}", view.order.reference), &view)
        }
        E::MyHistory => {
            req.query.only(&["limit"])?;
            let limit = req.query.number("limit", 100, 1, MAX_HISTORY)? as usize;
            let events: Vec<AuditView> = own::own_history(svc, actor, person, limit)?
                .iter()
                .map(|(_, e)| AuditView::from(e))
                .collect();
            json(StatusCode::OK, &Items::all(events))
        }
        E::MyTasks => {
            req.query.only(&[])?;
            json(StatusCode::OK, &Items::all(own::tasks(svc, person)?))
        }
        other => Err(ApiError::Unrouted(other)),
    }
}

/// The body of `POST /me/orders/{reference}/pkcs12`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct BrowserIssuance {
    /// The version of the terms accepted (`GET /terms`).
    accept_terms: String,
}

/// The answer to browser issuance: shown once; estd keeps no copy of the
/// key or the password.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "IssuedPkcs12")]
pub(super) struct IssuedPkcs12 {
    serial: String,
    /// The password of the PKCS#12 file.
    password: String,
    /// The PKCS#12 file (key, certificate, chain), base64.
    pkcs12: String,
    /// The certificate, PEM.
    certificate: String,
}

/// The body of `POST /me/orders/{reference}/csr`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct HardwareIssuance {
    /// A PKCS#10 CSR made on the token: PEM, or base64 DER.
    csr: String,
}

/// The body of `POST /me/certificates/{serial}/block`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Confirm {
    /// Must be true: blocking is final.
    #[serde(default)]
    confirm: bool,
}

fn path_serial(req: &ApiRequest) -> Result<Serial, ApiError> {
    Serial::from_hex(req.param(0))
        .ok_or_else(|| ApiError::invalid("serial", "must be 32 hexadecimal digits"))
}

fn pem(label: &str, der: &[u8]) -> String {
    der::pem::encode_string(label, der::pem::LineEnding::LF, der).unwrap_or_default()
}

/// A CSR given as PEM or as base64 DER (line breaks allowed).
pub(crate) fn csr_der(text: &str) -> Result<Vec<u8>, ApiError> {
    let bad = || ApiError::invalid("csr", "must be a PKCS#10 CSR, PEM or base64 DER");
    let text = text.trim();
    if text.starts_with("-----BEGIN") {
        let (label, der) = der::pem::decode_vec(text.as_bytes()).map_err(|_| bad())?;
        return match label {
            "CERTIFICATE REQUEST" | "NEW CERTIFICATE REQUEST" => Ok(der),
            _ => Err(bad()),
        };
    }
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|_| bad())
}

fn download(
    content_type: &'static str,
    filename: &str,
    body: Vec<u8>,
) -> http::Response<http_body_util::Full<bytes::Bytes>> {
    let mut r = with_body(StatusCode::OK, content_type, body);
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    r
}
