//! `simpleenroll` and `simplereenroll` (RFC 7030 4.2).
//!
//! Flow: method and content type → body within limits → who is calling →
//! may they use this profile → CSR proof of possession and policy → sign →
//! store and audit → group commit → answer. Nothing is answered with a
//! certificate before it is durable in the store.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;

use super::{
    base64_response, certificate_principal, codec, is_binary_transfer, read_body,
    require_content_type, require_method, EstError,
};
use crate::app::App;
use crate::auth::Principal;
use crate::ca::{csr, CertTemplate, IssuedCert};
use crate::policy;
use crate::server::{Connection, RequestLog};
use crate::store::model::{
    now_unix, AuditAction, AuditEvent, AuditOutcome, CertRecord, CertStatus, Identification,
    Issuance, Organisation, Profile, Serial, SystemRight,
};
use crate::store::StoreError;

/// Content type of an enrolment answer.
pub const PKCS7_CERTS_ONLY: &str = "application/pkcs7-mime; smime-type=certs-only";

/// The same message whether the profile is another organisation's or does not
/// exist, so that a refusal reveals nothing.
const NOT_PERMITTED: &str = "not permitted to enrol under this profile";

/// How many fresh serials to try before giving up (a collision is ~2^-126).
const SERIAL_ATTEMPTS: usize = 4;

/// `POST [/<label>]/simpleenroll`.
pub async fn simple_enroll(
    app: &Arc<App>,
    conn: &Arc<Connection>,
    req: Request<Incoming>,
    label: Option<&str>,
    log: &mut RequestLog,
) -> Result<Response<Full<Bytes>>, EstError> {
    let started = Instant::now();
    let result = enroll_inner(app, conn, req, label, log).await;
    finish(app, log, AuditAction::Enroll, started, result)
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
    finish(app, log, AuditAction::Reenroll, started, result)
}

/// Records a refusal in the audit log and the latency in metrics.
fn finish(
    app: &App,
    log: &RequestLog,
    action: AuditAction,
    started: Instant,
    result: Result<Bytes, EstError>,
) -> Result<Response<Full<Bytes>>, EstError> {
    app.metrics
        .enroll_latency
        .observe(started.elapsed().as_secs_f64());
    match result {
        Ok(body) => Ok(base64_response(PKCS7_CERTS_ONLY, body)),
        Err(e) => {
            if !matches!(e, EstError::Internal(_)) {
                let event = AuditEvent {
                    at_ms: now_ms(),
                    actor: log.principal.clone().unwrap_or_else(|| "anonymous".into()),
                    action,
                    outcome: AuditOutcome::Refused,
                    cvr: None,
                    profile_id: None,
                    serial: None,
                    order_id: None,
                    detail: format!("{} {}", e.status().as_u16(), e),
                };
                if let Err(store_err) = app.store.audit(&event) {
                    tracing::error!(error = %store_err, "writing a refusal to the audit log");
                }
            }
            Err(e)
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Reads and checks what every enrolment request must carry.
async fn read_csr_body(
    app: &App,
    req: Request<Incoming>,
) -> Result<(http::request::Parts, Vec<u8>), EstError> {
    require_method(&req, http::Method::POST, "POST")?;
    require_content_type(req.headers(), "application/pkcs10")?;
    let cfg = &app.config.server;
    let (parts, body) = read_body(req, cfg.max_body_bytes, cfg.body_read_timeout()).await?;
    let der = codec::decode_body(&body, is_binary_transfer(&parts.headers))
        .map_err(|e| EstError::BadRequest(format!("CSR body: {e}")))?;
    Ok((parts, der))
}

async fn enroll_inner(
    app: &Arc<App>,
    conn: &Arc<Connection>,
    req: Request<Incoming>,
    label: Option<&str>,
    log: &mut RequestLog,
) -> Result<Bytes, EstError> {
    let (_parts, der) = read_csr_body(app, req).await?;
    let principal = certificate_principal(app, conn)?;
    log.principal = Some(principal.describe());
    if !principal.has_right(SystemRight::EstEnroll) {
        return Err(EstError::Forbidden(
            "the client certificate does not carry the est-enroll right".into(),
        ));
    }
    let (org, profile) = api_profile(app, &principal, label)?;

    let worker = app.clone();
    let actor = principal.describe();
    let issued = run_blocking(move || {
        let csr = csr::parse_and_verify(&der)?;
        let template = policy::enroll_template(&csr, &org, &profile)?;
        let issued = store_new(&worker, &template, &profile, None)?;
        worker.store.audit(&AuditEvent {
            at_ms: now_ms(),
            actor,
            action: AuditAction::Enroll,
            outcome: AuditOutcome::Done,
            cvr: Some(org.cvr.clone()),
            profile_id: Some(profile.id.clone()),
            serial: Some(issued.serial),
            order_id: None,
            detail: format!("issued to {}", policy::display_name(&template.subject)),
        })?;
        Ok((issued, profile.est_label))
    })
    .await?;
    respond(app, log, issued, "enroll").await
}

async fn reenroll_inner(
    app: &Arc<App>,
    conn: &Arc<Connection>,
    req: Request<Incoming>,
    label: Option<&str>,
    log: &mut RequestLog,
) -> Result<Bytes, EstError> {
    let (_parts, der) = read_csr_body(app, req).await?;
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
    if label.is_some_and(|l| l != profile.est_label) {
        return Err(EstError::Forbidden(
            "re-enrol under the label of the certificate's own profile".into(),
        ));
    }

    let worker = app.clone();
    let issued = run_blocking(move || {
        let csr = csr::parse_and_verify(&der)?;
        let template = policy::reenroll_template(&csr, &cert, &profile)?;
        let issued = store_new(&worker, &template, &profile, Some(record.serial))?;
        // Link the old certificate to its renewal; it stays valid until it expires.
        let new_serial = issued.serial;
        worker
            .store
            .update_cert(&record.serial, |old| {
                old.renewed_by = Some(new_serial);
                Ok::<(), ()>(())
            })?
            .map_err(|()| EstError::Internal("linking renewal".into()))?;
        worker.store.audit(&AuditEvent {
            at_ms: now_ms(),
            actor: format!("cert:{}", record.serial),
            action: AuditAction::Reenroll,
            outcome: AuditOutcome::Done,
            cvr: Some(record.cvr.clone()),
            profile_id: Some(profile.id.clone()),
            serial: Some(issued.serial),
            order_id: None,
            detail: format!("renews {}", record.serial),
        })?;
        Ok((issued, profile.est_label))
    })
    .await?;
    respond(app, log, issued, "reenroll").await
}

/// Runs CPU-bound work (CSR verification, signing) off the async workers.
async fn run_blocking<T, F>(f: F) -> Result<T, EstError>
where
    F: FnOnce() -> Result<T, EstError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| EstError::Internal(format!("signing task failed: {e}")))?
}

/// Makes the certificate durable, then builds the answer.
async fn respond(
    app: &App,
    log: &mut RequestLog,
    (issued, label): (IssuedCert, String),
    op: &str,
) -> Result<Bytes, EstError> {
    app.store.commit().await?;
    log.serial = Some(issued.serial);
    app.metrics
        .issued
        .with_label_values(&[label.as_str(), op])
        .inc();
    app.metrics.stored.inc();
    let pkcs7 = codec::certs_only(&[&issued.der]).map_err(|e| EstError::Internal(e.to_string()))?;
    Ok(Bytes::from(codec::encode_base64_wrapped(&pkcs7)))
}

/// Signs `template` and inserts the record, with a fresh serial on the rare collision.
fn store_new(
    app: &App,
    template: &CertTemplate,
    profile: &Profile,
    renews: Option<Serial>,
) -> Result<IssuedCert, EstError> {
    for _ in 0..SERIAL_ATTEMPTS {
        let issued = app.ca.issue(template)?;
        let record = CertRecord {
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
            order_id: None,
            published: profile.publish,
            email: profile.email.clone(),
        };
        match app.store.insert_new_cert(&record) {
            Ok(()) => return Ok(issued),
            Err(StoreError::SerialTaken) => continue,
            Err(e) => return Err(e.into()),
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
