//! What every issuing unit of work shares: CPU work placed where it costs
//! least, signing, the permission checks made at every issuance, and the one
//! durable write of a certificate with its order and audit record.

use std::sync::Arc;

use super::{Error, Services};
use crate::ca::{Ca, CertTemplate, IssuedCert, SignCost};
use crate::model::{
    now_unix, AuditAction, AuditEvent, AuditOutcome, CertRecord, CertStatus, Identification,
    Issuance, Order, OrderHolder, OrderStatus, Organisation, Profile, Serial,
};
use crate::policy;
use crate::store::{
    Issuance as StoreIssuance, IssueOutcome, OrderCheck, OrderWrite, PendingIssuance,
};

/// The same message whether the profile is another organisation's or does not
/// exist, so that a refusal reveals nothing.
pub(super) const NOT_PERMITTED: &str = "not permitted to enrol under this profile";

/// The same message for an unknown reference number and a wrong code.
pub(super) const BAD_CODE: &str = "unknown reference number or wrong one-time code";

/// How many fresh serials and references to try before giving up (a serial
/// collision is ~2^-80, a reference clash at most 0.2%).
const SERIAL_ATTEMPTS: usize = 4;

/// A certificate a unit of work answers with: new, or the one an earlier
/// identical request already got.
#[derive(Debug)]
pub struct Certificate {
    /// Its serial.
    pub serial: Serial,
    /// DER.
    pub der: Vec<u8>,
}

impl From<IssuedCert> for Certificate {
    fn from(issued: IssuedCert) -> Self {
        Certificate {
            serial: issued.serial,
            der: issued.der,
        }
    }
}

/// Runs CPU-bound work (CSR verification, policy).
///
/// With an ECDSA CA the whole of an enrolment's CPU work is tens of
/// microseconds, less than a hop to another thread costs, so it runs in
/// place on the async worker; with an RSA CA, whose signatures take a
/// millisecond or more, it runs on the blocking pool.
pub(super) async fn cpu<T, F>(ca: &Ca, f: F) -> Result<T, Error>
where
    F: FnOnce() -> Result<T, Error> + Send + 'static,
    T: Send + 'static,
{
    if ca.sign_cost() == SignCost::Cheap {
        return f();
    }
    blocking("signing task", f).await
}

/// Runs `f` on the blocking pool; `what` names it if the task dies.
pub(super) async fn blocking<T, F>(what: &'static str, f: F) -> Result<T, Error>
where
    F: FnOnce() -> Result<T, Error> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::internal(what, e))?
}

/// Signs `template` (in place or on the blocking pool, as [`cpu`] decides).
async fn sign(ca: &Arc<Ca>, template: &Arc<CertTemplate>) -> Result<IssuedCert, Error> {
    if ca.sign_cost() == SignCost::Cheap {
        return Ok(ca.issue(template)?);
    }
    let (worker, template) = (ca.clone(), template.clone());
    cpu(ca, move || Ok(worker.issue(&template)?)).await
}

/// Counts a durable issuance under the profile's label and the operation.
pub(super) fn count_issued(s: Services<'_>, label: &str, op: &str) {
    s.metrics.issued.with_label_values(&[label, op]).inc();
    s.metrics.stored.inc();
}

/// A fresh reference number for an order made by API enrolment.
pub(super) fn new_reference() -> Result<String, Error> {
    super::codes::new_api_reference().map_err(|e| Error::internal("making a reference number", e))
}

/// An audit record of this moment.
#[allow(clippy::too_many_arguments)]
pub(super) fn audit_event(
    actor: &str,
    action: AuditAction,
    outcome: AuditOutcome,
    cvr: &str,
    profile_id: &str,
    serial: Option<Serial>,
    order_id: &str,
    detail: impl Into<String>,
) -> AuditEvent {
    AuditEvent {
        at_ms: now_unix() * 1000,
        actor: actor.to_owned(),
        action,
        outcome,
        cvr: Some(cvr.to_owned()),
        profile_id: Some(profile_id.to_owned()),
        serial,
        order_id: Some(order_id.to_owned()),
        detail: detail.into(),
    }
}

/// What the organisation must (still) allow for a certificate of `profile`
/// held by `holder`: checked at every issuance, so that a permission
/// withdrawn after an order or a certificate stops its collection and its
/// re-enrolment.
pub(super) fn check_permissions(
    org: &Organisation,
    profile: &Profile,
    holder: &OrderHolder,
) -> Result<(), Error> {
    if matches!(holder, OrderHolder::User { .. }) && !org.allow_user_certs {
        return Err(Error::Forbidden(format!(
            "organisation {} does not allow user certificates (any longer)",
            org.cvr
        )));
    }
    if profile.seal && !org.allow_seal {
        return Err(Error::Forbidden(format!(
            "organisation {} does not allow seal generation (any longer), which the profile has on",
            org.cvr
        )));
    }
    Ok(())
}

/// The profile and organisation of an order, checked against the label.
pub(super) fn order_profile(
    s: Services<'_>,
    order: &Order,
    label: Option<&str>,
) -> Result<(Organisation, Profile), Error> {
    let profile = s
        .store
        .profile(&order.profile_id)?
        .ok_or_else(|| Error::Forbidden("the order's profile no longer exists".into()))?;
    if label.is_some_and(|l| !l.eq_ignore_ascii_case(&profile.est_label)) {
        return Err(Error::Forbidden(NOT_PERMITTED.into()));
    }
    let org = s
        .store
        .org(&order.cvr)?
        .ok_or_else(|| Error::Forbidden(NOT_PERMITTED.into()))?;
    // An order is collected under the organisation's permissions as they are
    // at collection, not as they were when it was ordered.
    check_permissions(&org, &profile, &order.holder)?;
    Ok((org, profile))
}

/// Why a certificate cannot be renewed again: it has a successor.
pub(super) fn renewed_already(successor: Serial) -> Error {
    Error::Conflict(format!(
        "this certificate was already renewed by {successor}; a certificate has one successor: \
         a retry with the same CSR gets that certificate again, and {successor} itself can be \
         re-enrolled"
    ))
}

fn record_for(
    issued: &IssuedCert,
    template: &CertTemplate,
    profile: &Profile,
    order: &Order,
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
        order_id: Some(order.id.clone()),
        // A user order's choice, else the profile's setting now.
        published: order.holder.publish().unwrap_or(profile.publish),
        // What the certificate carries, which after a re-enrolment may differ
        // from what the profile says now.
        email: policy::email_of(&template.sans),
    }
}

/// The audit record an issuance writes with its certificate.
pub(super) struct AuditNote {
    /// Who asked.
    pub actor: String,
    /// What it was.
    pub action: AuditAction,
    /// Detail for the log (never a secret).
    pub detail: String,
}

impl AuditNote {
    fn event(&self, profile: &Profile, serial: Serial, order_id: &str) -> AuditEvent {
        audit_event(
            &self.actor,
            self.action,
            AuditOutcome::Done,
            &profile.cvr,
            &profile.id,
            Some(serial),
            order_id,
            self.detail.clone(),
        )
    }
}

/// Signs and stores a certificate with a new order that is already Issued
/// (API enrolment and re-enrolment), retrying on serial or reference clashes.
/// Returns once certificate, order and audit record are durable.
pub(super) async fn issue_with_new_order(
    s: Services<'_>,
    template: CertTemplate,
    profile: &Profile,
    note: AuditNote,
    renewal: Option<(Serial, OrderHolder)>,
    ticket: PendingIssuance,
) -> Result<IssuedCert, Error> {
    let mut ticket = Some(ticket);
    let (renews, holder) = match renewal {
        Some((s, h)) => (Some(s), h),
        None => (None, OrderHolder::Profile),
    };
    let template = Arc::new(template);
    for _ in 0..SERIAL_ATTEMPTS {
        let issued = sign(s.ca.active(), &template).await?;
        let order = Order {
            id: new_reference()?,
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
            cert: record_for(&issued, &template, profile, &order, renews),
            audit: note.event(profile, issued.serial, &order.id),
            order: OrderWrite::New(order),
            link_renewal: renews,
        };
        let ticket = ticket.take().unwrap_or_else(|| s.store.expect_issuance());
        match s.store.issue(issuance, ticket).await? {
            IssueOutcome::Stored => return Ok(issued),
            IssueOutcome::SerialTaken | IssueOutcome::OrderRefused(_) => continue,
            IssueOutcome::AlreadyRenewed(successor) => return Err(renewed_already(successor)),
        }
    }
    Err(Error::Internal {
        what: "no free serial or reference number after several attempts",
        source: None,
    })
}

/// Signs and stores a certificate for an existing order, moving it to Issued
/// in the same write; refused if the order changed meanwhile (a code spent).
/// Returns once certificate, order and audit record are durable.
pub(super) async fn issue_for_order(
    s: Services<'_>,
    template: CertTemplate,
    profile: &Profile,
    order: &Order,
    note: AuditNote,
    ticket: PendingIssuance,
) -> Result<IssuedCert, Error> {
    let mut ticket = Some(ticket);
    let template = Arc::new(template);
    for _ in 0..SERIAL_ATTEMPTS {
        let issued = sign(s.ca.active(), &template).await?;
        let serial = issued.serial;
        let (expected_status, expected_code) = (order.status, order.code.clone());
        let check: OrderCheck = Box::new(move |current: &mut Order| {
            // Only the very state we checked may move to Issued: a code used
            // twice, or a new code issued meanwhile, finds it changed.
            if current.status != expected_status || current.code != expected_code {
                return Err(format!("the order is now {}", current.status.name()));
            }
            current.mark_issued(serial).map_err(|e| e.to_string())
        });
        let issuance = StoreIssuance {
            cert: record_for(&issued, &template, profile, order, order.renews),
            audit: note.event(profile, serial, &order.id),
            order: OrderWrite::Change {
                id: order.id.clone(),
                check,
            },
            link_renewal: order.renews,
        };
        let ticket = ticket.take().unwrap_or_else(|| s.store.expect_issuance());
        match s.store.issue(issuance, ticket).await? {
            IssueOutcome::Stored => return Ok(issued),
            IssueOutcome::SerialTaken => continue,
            IssueOutcome::AlreadyRenewed(successor) => return Err(renewed_already(successor)),
            IssueOutcome::OrderRefused(why) => {
                return Err(if order.identification == Identification::OneTimeCode {
                    Error::Unauthenticated(BAD_CODE.into())
                } else {
                    Error::Forbidden(why)
                })
            }
        }
    }
    Err(Error::Internal {
        what: "no free serial after several attempts",
        source: None,
    })
}
