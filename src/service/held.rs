//! Held enrolment, for profiles that require approval: the first request
//! creates a pending order holding the CSR (by hash); retries with the same
//! CSR wait, get the certificate once an administrator approved it, or are
//! refused once it was rejected or deleted.

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
    /// Held for approval (durably): retry after this many seconds.
    Held {
        /// Seconds.
        retry_after: u32,
    },
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
    let mut hash = [0u8; 32];
    hash.copy_from_slice(
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, request.der).as_ref(),
    );
    let Some(order) = s.store.held_order(&hash)? else {
        request.linked?;
        hold(s, actor, &hash, profile, request.holder, request.renews)?;
        return wait(s).await;
    };
    // Held for another profile, or as an enrolment when this is a
    // re-enrolment (or the other way round, or for another certificate).
    if order.cvr != profile.cvr || order.profile_id != profile.id || order.renews != request.renews
    {
        return Err(Error::Forbidden(NOT_PERMITTED.into()));
    }
    match order.status {
        OrderStatus::Pending => wait(s).await,
        OrderStatus::Rejected => Err(Error::Forbidden(
            "the enrolment was rejected by an administrator".into(),
        )),
        OrderStatus::Deleted => Err(Error::Forbidden("the held enrolment was deleted".into())),
        OrderStatus::Approved => {
            let note = approved_note(actor, order.renews);
            let issued =
                issue::issue_for_order(s, request.template, profile, &order, note, ticket).await?;
            issue::count_issued(s, &profile.est_label, op);
            Ok(Enrolled::Issued(issued.into()))
        }
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

/// Still waiting: answered once what was written is durable.
async fn wait(s: Services<'_>) -> Result<Enrolled, Error> {
    s.store.durable().await?;
    Ok(Enrolled::Held {
        retry_after: s.config.orders.approval_retry_after_secs,
    })
}

/// The audit record of collecting an approved held order.
fn approved_note(actor: &str, renews: Option<Serial>) -> AuditNote {
    AuditNote {
        actor: actor.to_owned(),
        action: if renews.is_some() {
            AuditAction::Reenroll
        } else {
            AuditAction::Enroll
        },
        detail: match renews {
            Some(old) => format!("approved re-enrolment collected; renews {old}"),
            None => "approved enrolment collected".into(),
        },
    }
}

/// Creates the pending order holding the CSR `hash`, with its audit record
/// (made durable by the caller).
fn hold(
    s: Services<'_>,
    actor: &str,
    hash: &[u8; 32],
    profile: &Profile,
    holder: OrderHolder,
    renews: Option<Serial>,
) -> Result<(), Error> {
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
                if renews.is_some() {
                    "re-enrolment held for approval"
                } else {
                    "API enrolment held for approval"
                },
            ))?;
            return Ok(());
        }
    }
    Err(Error::Internal {
        what: "no free reference number",
        source: None,
    })
}
