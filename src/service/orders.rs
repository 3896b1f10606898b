//! Certificate orders as the MitID Erhverv model has them: order, delete,
//! approve or reject a held enrolment, a new one-time code. Shared by the
//! admin API and EST, so that both enforce the same rules and write the same
//! history and notices.

use super::codes::{new_code, new_reference};
use super::email;
use super::journal::{audit, notice_text, notify, recipient, Notice, Subject};
use super::{Error, Services};
use crate::model::CertRecord;
use crate::model::{
    email_problem, is_allowed_method_pair, now_unix, person_key, subject_text_problem, Actor,
    AuditAction, AuditOutcome, Identification, IllegalTransition, Issuance, NoticeEvent,
    NotificationKind, Order, OrderHolder, OrderStatus, Organisation, Profile, Serial, UnixSeconds,
};
use crate::model::{Roles, SystemRight};
use crate::policy;

/// What to order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRequest {
    /// The profile.
    pub profile_id: String,
    /// For a user certificate: the user's name and e-mail address.
    pub user: Option<(String, String)>,
    /// For a user certificate: whether it goes into the public certificate
    /// database (default: as the profile says when it is issued). Only user
    /// certificates choose; others follow their profile.
    pub publish: Option<bool>,
    /// Identification method (default: the profile's).
    pub identification: Option<Identification>,
    /// Issuance method (default: the profile's).
    pub issuance: Option<Issuance>,
}

/// A created order and, for one-time-code orders, the code (shown once).
#[derive(Debug, Clone)]
pub struct CreatedOrder {
    /// The order.
    pub order: Order,
    /// The one-time code, if any. Never stored or logged.
    pub code: Option<String>,
}

/// Loads a profile the actor may use.
pub fn visible_profile(
    svc: Services<'_>,
    actor: &Actor,
    profile_id: &str,
) -> Result<Profile, Error> {
    match svc.store.profile(profile_id)? {
        Some(p) if actor.may_access(&p.cvr) => Ok(p),
        _ => Err(Error::NotFound("profile")),
    }
}

/// Loads an order the actor may see (deleted ones included, for history).
pub fn visible_order(svc: Services<'_>, actor: &Actor, id: &str) -> Result<Order, Error> {
    match svc.store.order(id)? {
        Some(o) if actor.may_access(&o.cvr) => Ok(o),
        _ => Err(Error::NotFound("order")),
    }
}

/// The checks of an order request that need no store: who holds the
/// certificate (a user needs the organisation's consent, a name and a usable
/// e-mail address) and which methods apply (the profile's unless overridden,
/// as an allowed pair).
pub fn check_order_request(
    req: &OrderRequest,
    org: &Organisation,
    profile: &Profile,
) -> Result<(OrderHolder, Identification, Issuance), Error> {
    let holder = match &req.user {
        None if req.publish.is_some() => {
            return Err(Error::invalid(
                "publish",
                "only a user certificate's order chooses publishing (with \"user\"); \
                 organisation and system certificates are published as their profile says",
            ))
        }
        None => OrderHolder::Profile,
        Some((name, email)) => {
            if !org.allow_user_certs {
                return Err(Error::Forbidden(format!(
                    "organisation {} does not allow user certificates",
                    org.cvr
                )));
            }
            if name.trim().is_empty() {
                return Err(Error::invalid("user.name", "is required"));
            }
            // The user's name becomes the certificate's CN.
            if let Some(problem) = subject_text_problem(name.trim()) {
                return Err(Error::invalid("user.name", problem));
            }
            if let Some(problem) = email_problem(email) {
                return Err(Error::invalid("user.email", problem));
            }
            OrderHolder::User {
                name: name.trim().to_owned(),
                email: email.clone(),
                publish: req.publish,
            }
        }
    };
    let identification = req.identification.unwrap_or(profile.identification);
    let issuance = req.issuance.unwrap_or(profile.issuance);
    if !is_allowed_method_pair(identification, issuance) {
        return Err(Error::invalid(
            "issuance",
            format!("{issuance:?} is not allowed with identification {identification:?}"),
        ));
    }
    Ok((holder, identification, issuance))
}

/// Orders a certificate for a profile or a user; durable when it returns.
pub async fn create_order(
    svc: Services<'_>,
    actor: &Actor,
    req: &OrderRequest,
) -> Result<CreatedOrder, Error> {
    let created = place_order(svc, actor, req, None)?;
    svc.store.durable().await?;
    Ok(created)
}

/// The writes of an order (the order, its audit event and its notice), not
/// yet committed: for units of work that order as one of their steps.
pub(crate) fn place_order(
    svc: Services<'_>,
    actor: &Actor,
    req: &OrderRequest,
    renews: Option<Serial>,
) -> Result<CreatedOrder, Error> {
    let profile = visible_profile(svc, actor, &req.profile_id)?;
    check_grants_no_more_than_held(actor, &profile)?;
    let org = svc
        .store
        .org(&profile.cvr)?
        .ok_or(Error::NotFound("organisation"))?;
    let (holder, identification, issuance) = check_order_request(req, &org, &profile)?;
    if identification == Identification::Api {
        check_api_order(&profile, &holder, issuance, renews)?;
    }
    if let OrderHolder::User { email, .. } = &holder {
        check_user_account(svc, &profile.cvr, email, identification)?;
    }
    let now = now_unix();
    for _ in 0..8 {
        let id = new_reference()?;
        let (code, code_state) = if identification == Identification::OneTimeCode {
            let (c, s) = new_code(&id, svc.config.orders.code_ttl_days, now)?;
            (Some(c), Some(s))
        } else {
            (None, None)
        };
        let order = Order {
            id: id.clone(),
            cvr: profile.cvr.clone(),
            profile_id: profile.id.clone(),
            holder: holder.clone(),
            identification,
            issuance,
            status: OrderStatus::Pending,
            created_at: now,
            created_by: actor.id.to_string(),
            code: code_state,
            renews,
            held_csr: None,
        };
        if !svc.store.insert_new_order(&order)? {
            continue; // reference number taken; draw another
        }
        if let (Some(old), Identification::Api) = (renews, identification) {
            // Found by the re-enrolment of `old`, which fulfils it.
            svc.store.put_held(&renewal_key(&old), &order.id)?;
        }
        record_order(svc, actor, &order, &profile)?;
        return Ok(CreatedOrder { order, code });
    }
    Err(Error::NoFreeReference)
}

/// A certificate with the `admin-api` right acts for the organisation with
/// all three of its roles, so only whoever holds them all (or an operator)
/// orders one: no one gains through a certificate a role they do not hold.
fn check_grants_no_more_than_held(actor: &Actor, profile: &Profile) -> Result<(), Error> {
    let grants_roles = profile.rights.contains(&SystemRight::AdminApi);
    if grants_roles && !actor.is_operator() && !actor.roles.contains(Roles::organisation()) {
        return Err(Error::Forbidden(
            "a certificate with the admin-api right acts with every role of the organisation; \
             ordering or renewing one needs them all (user-admin, org-admin and rights-admin)"
                .into(),
        ));
    }
    Ok(())
}

/// A user certificate is ordered only for an active person: one collected
/// after login needs the account; for the other methods, an address that
/// belongs to a person who is not active (invited, deactivated) is refused
/// too, while one outside the people register is an outside holder's.
fn check_user_account(
    svc: Services<'_>,
    cvr: &str,
    email: &str,
    identification: Identification,
) -> Result<(), Error> {
    let person = svc.store.person(&person_key(Some(cvr), email))?;
    match person {
        Some(p) if p.is_active() => Ok(()),
        Some(p) => Err(Error::Conflict(format!(
            "{} is {}: a certificate is ordered only for an active user",
            p.email,
            p.status().as_str()
        ))),
        None if identification == Identification::UserLogin => Err(Error::Conflict(format!(
            "{email} has no account: a certificate collected after login is ordered only for an \
             active user of the organisation (invite them with POST \
             /organisations/{cvr}/people)"
        ))),
        None => Ok(()),
    }
}

/// Whether an order with identification api can be fulfilled: the IdM
/// system collects it by enrolling at the profile's label (a user order,
/// matched by the CSR's CN and e-mail address), or the certificate's holder
/// by re-enrolling (a renewal). An organisation or system certificate that
/// is not a renewal is simply enrolled by the IdM system; an order for it
/// could never be told apart from that enrolment, and would stay open.
fn check_api_order(
    profile: &Profile,
    holder: &OrderHolder,
    issuance: Issuance,
    renews: Option<Serial>,
) -> Result<(), Error> {
    if profile.identification != Identification::Api || profile.issuance != Issuance::Est {
        return Err(Error::Conflict(format!(
            "identification api is collected by the IdM system's enrolment at the profile's \
             EST label, and profile {:?} is not enrolled that way (its identification is {:?})",
            profile.name, profile.identification
        )));
    }
    if issuance != Issuance::Est {
        return Err(Error::invalid(
            "issuance",
            "an order with identification api is collected with simpleenroll (est)",
        ));
    }
    if matches!(holder, OrderHolder::Profile) && renews.is_none() {
        return Err(Error::Conflict(format!(
            "profile {:?} is enrolled by its IdM system over EST (identification api, \
             simpleenroll with its est-enroll certificate); only a user certificate is ordered \
             for it (with \"user\"), which the IdM system then collects",
            profile.name
        )));
    }
    Ok(())
}

/// The index key under which an API renewal order of `serial` is found
/// (in the store's index of held requests, whose other keys are SHA-256
/// of CSRs; the prefix keeps the two apart).
pub(crate) fn renewal_key(serial: &Serial) -> [u8; 32] {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(b"estd renewal order of ");
    ctx.update(serial.to_string().as_bytes());
    let mut key = [0u8; 32];
    key.copy_from_slice(ctx.finish().as_ref());
    key
}

/// The open API renewal order of `serial`, if an administrator placed one:
/// the certificate's re-enrolment fulfils it instead of making a new order.
pub(crate) fn open_api_renewal(svc: Services<'_>, serial: &Serial) -> Result<Option<Order>, Error> {
    Ok(svc.store.held_order(&renewal_key(serial))?.filter(|o| {
        o.renews == Some(*serial)
            && o.identification == Identification::Api
            && o.status == OrderStatus::Pending
            && o.held_csr.is_none()
    }))
}

/// The audit event and the notice of a new order.
fn record_order(
    svc: Services<'_>,
    actor: &Actor,
    order: &Order,
    profile: &Profile,
) -> Result<(), Error> {
    let renews = order.renews;
    let what = if renews.is_some() {
        "renewal"
    } else {
        "certificate"
    };
    audit(
        svc,
        &actor.id,
        AuditAction::Order,
        AuditOutcome::Done,
        Subject {
            cvr: Some(&order.cvr),
            profile_id: Some(&profile.id),
            serial: renews,
            order_id: Some(&order.id),
        },
        format!(
            "{what} ordered ({:?}/{:?})",
            order.identification, order.issuance
        ),
    )?;
    let link = svc.config.notices.collect_link(&order.id);
    let login_link = svc.config.people.portal_link("/me/orders");
    let user = match &order.holder {
        OrderHolder::User { name, .. } => Some(name.as_str()),
        OrderHolder::Profile => None,
    };
    let kind = || policy::effective_profile(profile, &order.holder).kind;
    let event = match &order.holder {
        // Under an API profile the IdM system issues it: no code, no link.
        _ if order.identification == Identification::Api => NoticeEvent::OrderedForIdmSystem {
            user,
            kind: kind(),
            profile: &profile.name,
            reference: &order.id,
            renews,
        },
        // Collected after login: no code; the link is where to log in.
        _ if order.identification == Identification::UserLogin => NoticeEvent::OrderedForLogin {
            user,
            kind: kind(),
            profile: &profile.name,
            reference: &order.id,
            link: &login_link,
            renews,
        },
        OrderHolder::User { name, .. } => NoticeEvent::UserCertificateOrdered {
            user: name,
            profile: &profile.name,
            reference: &order.id,
            link: &link,
            renews,
        },
        OrderHolder::Profile => NoticeEvent::CertificateOrdered {
            kind: profile.kind,
            profile: &profile.name,
            reference: &order.id,
            link: &link,
            renews,
        },
    };
    let text = notice_text(svc, &event);
    // A certificate that will carry an address to confirm: the link goes out
    // with the order, so that it is confirmed by the time it is collected.
    email::must_wait(
        svc,
        &actor.id.to_string(),
        profile,
        &order.holder,
        Some(&order.id),
    )?;
    notify(
        svc,
        Notice {
            kind: if renews.is_some() {
                NotificationKind::Renewed
            } else {
                NotificationKind::Ordered
            },
            cvr: &order.cvr,
            to: recipient(profile, &order.holder),
            subject: text.subject,
            body: text.body,
            serial: renews,
            order_id: Some(&order.id),
        },
    )
}

/// Moves an order to another state, audits it and commits.
async fn change_order<F>(
    svc: Services<'_>,
    actor: &Actor,
    id: &str,
    action: AuditAction,
    f: F,
) -> Result<Order, Error>
where
    F: FnMut(&mut Order) -> Result<(), IllegalTransition>,
{
    let before = visible_order(svc, actor, id)?;
    let order = match svc.store.update_order(id, f)? {
        None => return Err(Error::NotFound("order")),
        Some(Err(e)) => {
            return Err(Error::Conflict(format!(
                "order is {}; {} is not possible",
                e.current, e.attempted
            )))
        }
        Some(Ok(order)) => order,
    };
    audit(
        svc,
        &actor.id,
        action,
        AuditOutcome::Done,
        Subject {
            cvr: Some(&before.cvr),
            profile_id: Some(&before.profile_id),
            serial: None,
            order_id: Some(id),
        },
        format!("{} → {}", before.status.name(), order.status.name()),
    )?;
    svc.store.durable().await?;
    Ok(order)
}

/// "Delete certificate order": only before issue.
pub async fn delete_order(svc: Services<'_>, actor: &Actor, id: &str) -> Result<Order, Error> {
    change_order(svc, actor, id, AuditAction::DeleteOrder, Order::delete).await
}

/// Approves a held API enrolment.
pub async fn approve(svc: Services<'_>, actor: &Actor, id: &str) -> Result<Order, Error> {
    change_order(svc, actor, id, AuditAction::Approve, Order::approve).await
}

/// Rejects a held API enrolment.
pub async fn reject(svc: Services<'_>, actor: &Actor, id: &str) -> Result<Order, Error> {
    change_order(svc, actor, id, AuditAction::Reject, Order::reject).await
}

/// Issues a new one-time code for a pending order (unlocking it).
pub async fn renew_code(
    svc: Services<'_>,
    actor: &Actor,
    id: &str,
) -> Result<(Order, String), Error> {
    let (code, state) = new_code(id, svc.config.orders.code_ttl_days, now_unix())?;
    let order = change_order(svc, actor, id, AuditAction::NewCode, |o| {
        o.set_code(state.clone())
    })
    .await?;
    Ok((order, code))
}

/// Display status of an order, as the service shows it.
pub fn display_status(svc: Services<'_>, order: &Order, now: UnixSeconds) -> String {
    order_shown(svc, order, now).status
}

/// What an order view shows beyond the order itself: its display status
/// and, once issued, its certificate's notAfter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderShown {
    /// `in-progress` for a user's pending renewal (an organisation's or
    /// system's shows `pending`), the certificate's state once
    /// issued (`issued` if it cannot be read), else the order's status.
    pub status: String,
    /// The issued certificate's notAfter.
    pub not_after: Option<UnixSeconds>,
}

/// How `order` is shown now (one certificate look-up, no writes).
pub fn order_shown(svc: Services<'_>, order: &Order, now: UnixSeconds) -> OrderShown {
    let cert = match order.status {
        OrderStatus::Issued { serial } => svc.store.cert(&serial).ok().flatten(),
        _ => None,
    };
    let mut shown = OrderShown::of(order, cert.as_ref(), now);
    if awaits_email(svc, order, now) {
        shown.status = "awaiting-email-validation".into();
    }
    shown
}

/// Whether an open order waits only for its e-mail address (approval, if
/// the profile requires it, comes first).
fn awaits_email(svc: Services<'_>, order: &Order, now: UnixSeconds) -> bool {
    let open = matches!(order.status, OrderStatus::Pending | OrderStatus::Approved);
    if !open {
        return false;
    }
    match svc.store.profile(&order.profile_id) {
        Ok(Some(p)) if order.status == OrderStatus::Approved || !p.approval_required => {
            email::awaits_validation(svc, &p, &order.holder, now)
        }
        _ => false,
    }
}

impl OrderShown {
    /// How `order` is shown, given its certificate once it is issued. An
    /// order a unit of work has just created or moved (pending, approved,
    /// rejected, deleted, a new code) has none, so needs no look-up.
    pub fn of(order: &Order, cert: Option<&CertRecord>, now: UnixSeconds) -> OrderShown {
        let status = match order.status {
            // As the service shows a renewal: a user's is in progress, an
            // organisation's or system's pending.
            OrderStatus::Pending
                if order.renews.is_some() && matches!(order.holder, OrderHolder::User { .. }) =>
            {
                "in-progress".into()
            }
            OrderStatus::Issued { .. } => match cert {
                Some(c) => c.state(now).as_str().into(),
                None => "issued".into(),
            },
            s => s.name().into(),
        };
        OrderShown {
            status,
            not_after: cert.map(|c| c.not_after),
        }
    }
}

/// An order the actor may see, and how it is shown now.
pub fn show_order(
    svc: Services<'_>,
    actor: &Actor,
    id: &str,
    now: UnixSeconds,
) -> Result<(Order, OrderShown), Error> {
    let order = visible_order(svc, actor, id)?;
    let shown = order_shown(svc, &order, now);
    Ok((order, shown))
}
