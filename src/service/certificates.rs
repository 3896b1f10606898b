//! Certificates after issue: renew (by a new order), revoke (with the
//! successors, on suspected misuse), block, and a new CRL on demand.

use super::journal::{audit, notice_text, notify, revocation_recipients, Notice, Subject};
use super::orders::{place_order, visible_profile, CreatedOrder, OrderRequest};
use super::{Error, Services};
use crate::model::{
    now_unix, Actor, AuditAction, CertKind, CertRecord, CertStatus, Identification, NoticeEvent,
    NotificationKind, Order, OrderHolder, OrderStatus, RevocationReason, Serial,
};
use crate::store::StoredCrl;

/// Loads a certificate the actor may see.
pub fn visible_cert(
    svc: Services<'_>,
    actor: &Actor,
    serial: &Serial,
) -> Result<CertRecord, Error> {
    match svc.store.cert(serial)? {
        Some(c) if actor.may_access(&c.cvr) => Ok(c),
        _ => Err(Error::NotFound("certificate")),
    }
}

/// Revokes a certificate, for good; durable when it returns.
pub async fn revoke(
    svc: Services<'_>,
    actor: &Actor,
    serial: &Serial,
    reason: RevocationReason,
) -> Result<CertRecord, Error> {
    let rec = revoke_one(svc, actor, serial, reason)?;
    svc.store.durable().await?;
    Ok(rec)
}

/// Blocks a user certificate, for good; durable when it returns.
pub async fn block(svc: Services<'_>, actor: &Actor, serial: &Serial) -> Result<CertRecord, Error> {
    revoke(svc, actor, serial, RevocationReason::Blocked).await
}

/// The writes of one revocation, not yet committed.
fn revoke_one(
    svc: Services<'_>,
    actor: &Actor,
    serial: &Serial,
    reason: RevocationReason,
) -> Result<CertRecord, Error> {
    let before = visible_cert(svc, actor, serial)?;
    if reason == RevocationReason::Blocked && before.kind != CertKind::User {
        return Err(Error::Conflict(
            "only user certificates can be blocked; revoke this certificate instead".into(),
        ));
    }
    let rec = svc
        .store
        .revoke_cert(serial, reason, now_unix())?
        .map_err(|e| {
            Error::Conflict(format!(
                "certificate is {}; {} is not possible",
                e.current, e.attempted
            ))
        })?;
    // Visible in the CRL and OCSP before the caller answers.
    svc.revocation
        .after_revocation(serial, svc.store, svc.metrics)
        .map_err(Error::Revocation)?;
    let (action, kind, verb) = if reason == RevocationReason::Blocked {
        (AuditAction::Block, NotificationKind::Blocked, "blocked")
    } else {
        (AuditAction::Revoke, NotificationKind::Revoked, "revoked")
    };
    audit(
        svc,
        &actor.id,
        action,
        crate::model::AuditOutcome::Done,
        Subject {
            cvr: Some(&rec.cvr),
            profile_id: Some(&rec.profile_id),
            serial: Some(*serial),
            order_id: rec.order_id.as_deref(),
        },
        format!("{verb}: {reason:?}"),
    )?;
    // The user of a user certificate is told as well as the contact.
    let to = match svc.store.profile(&rec.profile_id)? {
        Some(p) => {
            let holder = rec
                .order_id
                .as_deref()
                .and_then(|id| svc.store.order(id).ok().flatten())
                .map(|o| o.holder)
                .unwrap_or(OrderHolder::Profile);
            revocation_recipients(&p, &holder)
        }
        None => Vec::new(),
    };
    let event = if reason == RevocationReason::Blocked {
        NoticeEvent::Blocked {
            subject: &rec.subject,
            serial: *serial,
        }
    } else {
        NoticeEvent::Revoked {
            subject: &rec.subject,
            serial: *serial,
            reason,
        }
    };
    let text = notice_text(svc, &event);
    for to in to {
        notify(
            svc,
            Notice {
                kind,
                cvr: &rec.cvr,
                to: Some(to),
                subject: text.subject.clone(),
                body: text.body.clone(),
                serial: Some(*serial),
                order_id: rec.order_id.as_deref(),
            },
        )?;
    }
    Ok(rec)
}

/// Revokes a certificate and, when the reason is suspected misuse
/// (keyCompromise), its successors too: whoever held the compromised key
/// could have re-enrolled with it, so what was renewed from it is no more
/// trustworthy than it. Other reasons leave the successors valid. Returns the
/// record and the successors revoked with it; durable when it returns.
pub async fn revoke_with_successors(
    svc: Services<'_>,
    actor: &Actor,
    serial: &Serial,
    reason: RevocationReason,
) -> Result<(CertRecord, Vec<Serial>), Error> {
    let rec = revoke_one(svc, actor, serial, reason)?;
    let mut also = Vec::new();
    if reason == RevocationReason::SuspectedMisuse {
        let mut next = rec.renewed_by;
        // A chain is short; the bound only guards against a damaged store.
        for _ in 0..1000 {
            let Some(s) = next else { break };
            let Some(successor) = svc.store.cert(&s)? else {
                break;
            };
            next = successor.renewed_by;
            if successor.status != CertStatus::Issued {
                continue;
            }
            match revoke_one(svc, actor, &s, reason) {
                Ok(_) => also.push(s),
                // Revoked meanwhile by someone else: nothing left to do.
                Err(Error::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
    }
    svc.store.durable().await?;
    Ok((rec, also))
}

/// Serialises renewal orders, so that two at once cannot both find no open
/// renewal order for a certificate and both create one.
static RENEWAL_ORDERS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Renews a certificate by ordering a new one for the same profile (and user).
/// Possible only before expiry; the old certificate stays valid until then.
/// For an API profile (identification api) the order has no one-time code:
/// the certificate's re-enrolment fulfils it, and for a user certificate so
/// does the IdM system's enrolment of a CSR naming the user.
/// A certificate has at most one successor and one open renewal order.
/// Durable when it returns.
pub async fn renew(
    svc: Services<'_>,
    actor: &Actor,
    serial: &Serial,
) -> Result<CreatedOrder, Error> {
    let created = {
        let req = renewal_request(svc, actor, serial)?;
        let _one_at_a_time = RENEWAL_ORDERS.lock().unwrap_or_else(|e| e.into_inner());
        refuse_open_renewal(svc, serial)?;
        place_order(svc, actor, &req, Some(*serial))?
    };
    svc.store.durable().await?;
    Ok(created)
}

/// The order that renews `serial`: same profile, holder and methods, if the
/// certificate may be renewed by an order at all.
fn renewal_request(
    svc: Services<'_>,
    actor: &Actor,
    serial: &Serial,
) -> Result<OrderRequest, Error> {
    let rec = visible_cert(svc, actor, serial)?;
    let state = rec.state(now_unix());
    if state != crate::model::CertState::Issued {
        return Err(Error::Conflict(format!(
            "certificate is {state}; renewal is possible only before expiry and revocation (order a new certificate)"
        )));
    }
    if let Some(s) = rec.renewed_by {
        if svc
            .store
            .cert(&s)?
            .is_some_and(|r| r.status == CertStatus::Issued)
        {
            return Err(Error::Conflict(format!(
                "certificate was already renewed by {s}; a certificate has one successor \
                 (renew {s} instead, or revoke it first)"
            )));
        }
    }
    let profile = visible_profile(svc, actor, &rec.profile_id)?;
    let old_order: Option<Order> = rec
        .order_id
        .as_deref()
        .and_then(|id| svc.store.order(id).ok().flatten());
    let identification = match old_order.as_ref().map(|o| o.identification) {
        Some(Identification::Api) | None => profile.identification,
        Some(other) => other,
    };
    // A renewal keeps the user and the user's publishing choice.
    let (user, publish) = match old_order.as_ref().map(|o| &o.holder) {
        Some(OrderHolder::User {
            name,
            email,
            publish,
        }) => (Some((name.clone(), email.clone())), *publish),
        _ => (None, None),
    };
    Ok(OrderRequest {
        profile_id: rec.profile_id.clone(),
        user,
        publish,
        identification: Some(identification),
        issuance: old_order
            .as_ref()
            .filter(|o| o.identification == identification)
            .map(|o| o.issuance),
    })
}

/// Refuses a second open renewal order for `serial`.
fn refuse_open_renewal(svc: Services<'_>, serial: &Serial) -> Result<(), Error> {
    for order in svc.store.orders() {
        let order = order?;
        if order.renews == Some(*serial)
            && matches!(order.status, OrderStatus::Pending | OrderStatus::Approved)
        {
            return Err(Error::Conflict(format!(
                "renewal order {} is already open for this certificate; collect it, or delete \
                 it to order another",
                order.id
            )));
        }
    }
    Ok(())
}

/// Signs a new CRL at once (server operators only); durable when it returns.
pub async fn regenerate_crl(
    svc: Services<'_>,
    actor: &Actor,
) -> Result<std::sync::Arc<StoredCrl>, Error> {
    if !actor.is_operator() {
        return Err(Error::Forbidden(
            "only a server operator can force a new CRL".into(),
        ));
    }
    let crl = svc
        .revocation
        .regenerate_crl(svc.store, svc.metrics)
        .map_err(Error::Revocation)?;
    svc.store.durable().await?;
    Ok(crl)
}
