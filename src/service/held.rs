//! Held enrolment, for profiles that require approval and for certificates
//! whose e-mail address awaits validation ([`super::email`]): the first
//! request creates a pending order holding the CSR (by hash); retries with
//! the same CSR wait, get the certificate once an administrator approved it
//! (if approval is required) and the address is confirmed (if it must be),
//! or are refused once it was rejected or deleted.

use super::email;
use super::issue::{self, audit_event, AuditNote, NOT_PERMITTED};
use super::{Error, Services};
use crate::ca::CertTemplate;
use crate::model::{
    now_unix, AuditAction, AuditOutcome, Identification, Issuance, Order, OrderHolder, OrderStatus,
    Profile, Serial,
};
use crate::policy;
use crate::store::PendingIssuance;

/// What an enrolment or re-enrolment ends in.
#[derive(Debug)]
pub enum Enrolled {
    /// The certificate, durable.
    Issued(issue::Certificate),
    /// Held (durably): retry after this many seconds.
    Held {
        /// Seconds.
        retry_after: u32,
        /// What it waits for.
        awaiting: Awaiting,
    },
}

/// What a held request waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Awaiting {
    /// An administrator's approval.
    Approval,
    /// The confirmation of the certificate's e-mail address (a link was sent to it).
    EmailValidation,
}

/// How many fresh reference numbers to try for a held order.
const REFERENCE_ATTEMPTS: usize = 8;

/// An enrolment request for an approval-required profile.
pub(super) struct HeldRequest<'a> {
    /// The CSR as sent; its hash finds the held order on retries.
    pub der: &'a [u8],
    pub template: CertTemplate,
    /// The proof-of-possession linking verdict for this connection. Only the
    /// request that creates the held order must pass it: a retry on a later
    /// connection (after Retry-After, possibly hours) cannot carry that
    /// connection's binding in the same CSR, and the first request already
    /// bound this very CSR to an authenticated connection of the organisation.
    pub linked: Result<(), policy::LinkingError>,
    /// Who the certificate is for.
    pub holder: OrderHolder,
    /// The certificate a held re-enrolment renews.
    pub renews: Option<Serial>,
}

/// SHA-256 of a CSR as sent: what finds its held order.
fn csr_hash(der: &[u8]) -> [u8; 32] {
    let mut hash = [0u8; 32];
    hash.copy_from_slice(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der).as_ref());
    hash
}

/// Whether an order holds this CSR already (a retry of a held request, which
/// [`answer`] must answer even once nothing is left to wait for).
pub(super) fn is_held(s: Services<'_>, der: &[u8]) -> Result<bool, Error> {
    Ok(s.store.held_order(&csr_hash(der))?.is_some())
}

/// Answers an enrolment or re-enrolment for an approval-required profile.
/// Durable when it returns.
pub(super) async fn answer(
    s: Services<'_>,
    actor: &str,
    request: HeldRequest<'_>,
    profile: &Profile,
    ticket: PendingIssuance,
) -> Result<Enrolled, Error> {
    let op = if request.renews.is_some() {
        "reenroll"
    } else {
        "enroll"
    };
    let hash = csr_hash(request.der);
    let Some(order) = s.store.held_order(&hash)? else {
        request.linked.clone()?;
        let id = hold(s, actor, &hash, profile, &request.holder, request.renews)?;
        let email = carries_address(&request.template)
            && email::must_wait(s, actor, profile, &request.holder, Some(&id))?;
        if profile.approval_required {
            return wait(s, Awaiting::Approval).await;
        }
        if email {
            return wait(s, Awaiting::EmailValidation).await;
        }
        // Nothing to wait for after all (confirmed meanwhile): collected below.
        let order = s.store.order(&id)?.ok_or(Error::Internal {
            what: "held order vanished",
            source: None,
        })?;
        return collect_held(s, actor, request, profile, &order, ticket, op).await;
    };
    // Held for another profile, or as an enrolment when this is a
    // re-enrolment (or the other way round, or for another certificate).
    if order.cvr != profile.cvr || order.profile_id != profile.id || order.renews != request.renews
    {
        return Err(Error::Forbidden(NOT_PERMITTED.into()));
    }
    match order.status {
        OrderStatus::Pending if profile.approval_required => wait(s, Awaiting::Approval).await,
        OrderStatus::Pending | OrderStatus::Approved => {
            collect_held(s, actor, request, profile, &order, ticket, op).await
        }
        OrderStatus::Rejected => Err(Error::Forbidden(
            "the enrolment was rejected by an administrator".into(),
        )),
        OrderStatus::Deleted => Err(Error::Forbidden("the held enrolment was deleted".into())),
        OrderStatus::Issued { serial } => {
            let rec = s.store.cert(&serial)?.ok_or(Error::Internal {
                what: "issued order without its certificate",
                source: None,
            })?;
            Ok(Enrolled::Issued(issue::Certificate {
                serial,
                der: rec.der,
            }))
        }
    }
}

/// Issues a held order that needs no (more) approval, once its e-mail
/// address is confirmed; until then waits (sending a new link if the last
/// one expired).
async fn collect_held(
    s: Services<'_>,
    actor: &str,
    request: HeldRequest<'_>,
    profile: &Profile,
    order: &Order,
    ticket: PendingIssuance,
    op: &str,
) -> Result<Enrolled, Error> {
    if carries_address(&request.template)
        && email::must_wait(s, actor, profile, &request.holder, Some(&order.id))?
    {
        return wait(s, Awaiting::EmailValidation).await;
    }
    let note = approved_note(actor, order.renews, profile.approval_required);
    let issued = issue::issue_for_order(s, request.template, profile, order, note, ticket).await?;
    issue::count_issued(s, &profile.est_label, op);
    Ok(Enrolled::Issued(issued.into()))
}

/// Whether the certificate would carry an e-mail address (a re-enrolment
/// keeps the names of the certificate it renews, which may have none).
fn carries_address(template: &CertTemplate) -> bool {
    policy::email_of(&template.sans).is_some()
}

/// Still waiting: answered once what was written is durable.
async fn wait(s: Services<'_>, awaiting: Awaiting) -> Result<Enrolled, Error> {
    s.store.durable().await?;
    Ok(Enrolled::Held {
        retry_after: s.config.orders.approval_retry_after_secs,
        awaiting,
    })
}

/// The audit record of collecting a held order.
fn approved_note(actor: &str, renews: Option<Serial>, approved: bool) -> AuditNote {
    let what = if approved {
        "approved"
    } else {
        "e-mail validated"
    };
    AuditNote {
        actor: actor.to_owned(),
        action: if renews.is_some() {
            AuditAction::Reenroll
        } else {
            AuditAction::Enroll
        },
        detail: match renews {
            Some(old) => format!("{what} re-enrolment collected; renews {old}"),
            None => format!("{what} enrolment collected"),
        },
    }
}

/// Creates the pending order holding the CSR `hash`, with its audit record
/// (made durable by the caller); its reference number.
fn hold(
    s: Services<'_>,
    actor: &str,
    hash: &[u8; 32],
    profile: &Profile,
    holder: &OrderHolder,
    renews: Option<Serial>,
) -> Result<String, Error> {
    for _ in 0..REFERENCE_ATTEMPTS {
        let order = Order {
            id: issue::new_reference()?,
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
            held_csr: Some(*hash),
        };
        if s.store.insert_new_order(&order)? {
            s.store.put_held(hash, &order.id)?;
            s.store.audit(&audit_event(
                actor,
                AuditAction::Order,
                AuditOutcome::Done,
                &order.cvr,
                &profile.id,
                None,
                &order.id,
                match (renews.is_some(), profile.approval_required) {
                    (true, true) => "re-enrolment held for approval",
                    (false, true) => "API enrolment held for approval",
                    (true, false) => "re-enrolment held for e-mail validation",
                    (false, false) => "API enrolment held for e-mail validation",
                },
            ))?;
            return Ok(order.id);
        }
    }
    Err(Error::Internal {
        what: "no free reference number",
        source: None,
    })
}
