//! The two records every unit of work leaves behind: the audit log and the
//! durable outbox of notices (delivered later by `notify`'s SMTP side).

use super::{Error, Services};
use crate::model::{
    now_unix, render_notice, ActorId, AuditAction, AuditEvent, AuditOutcome, NoticeEvent,
    NoticeText, Notification, NotificationKind, OrderHolder, Profile, Serial,
};

/// Where an audit event points: what it is about, beyond the action.
#[derive(Debug, Clone, Copy, Default)]
pub struct Subject<'a> {
    /// The organisation.
    pub cvr: Option<&'a str>,
    /// The profile.
    pub profile_id: Option<&'a str>,
    /// The certificate.
    pub serial: Option<Serial>,
    /// The order.
    pub order_id: Option<&'a str>,
}

/// Writes an audit event.
pub fn audit(
    svc: Services<'_>,
    actor: &ActorId,
    action: AuditAction,
    outcome: AuditOutcome,
    about: Subject<'_>,
    detail: impl Into<String>,
) -> Result<(), Error> {
    svc.store.audit(&AuditEvent {
        at_ms: now_unix() * 1000,
        actor: actor.to_string(),
        action,
        outcome,
        cvr: about.cvr.map(str::to_owned),
        profile_id: about.profile_id.map(str::to_owned),
        serial: about.serial,
        order_id: about.order_id.map(str::to_owned),
        detail: detail.into(),
    })?;
    Ok(())
}

/// Who receives notices for an order: the user, or the profile's contact person.
pub fn recipient(profile: &Profile, holder: &OrderHolder) -> Option<String> {
    match holder {
        OrderHolder::User { email, .. } => Some(email.clone()),
        OrderHolder::Profile => profile.contact.as_ref().map(|c| c.email.clone()),
    }
}

/// Everyone told when a certificate of an order is revoked or blocked: the
/// user of a user certificate and the profile's contact person (once if
/// they are the same address).
pub fn revocation_recipients(profile: &Profile, holder: &OrderHolder) -> Vec<String> {
    let mut to = Vec::new();
    if let OrderHolder::User { email, .. } = holder {
        to.push(email.clone());
    }
    if let Some(c) = &profile.contact {
        if !to.iter().any(|t| t.eq_ignore_ascii_case(&c.email)) {
            to.push(c.email.clone());
        }
    }
    to
}

/// The subject and body of `event` in the configured languages.
pub fn notice_text(svc: Services<'_>, event: &NoticeEvent<'_>) -> NoticeText {
    render_notice(event, svc.config.notices.language)
}

/// A notice to write to the outbox.
#[derive(Debug, Clone)]
pub struct Notice<'a> {
    /// What happened.
    pub kind: NotificationKind,
    /// The organisation.
    pub cvr: &'a str,
    /// The recipient; `None` if there is no one to tell.
    pub to: Option<String>,
    /// Subject line.
    pub subject: String,
    /// Text.
    pub body: String,
    /// The certificate.
    pub serial: Option<Serial>,
    /// The order.
    pub order_id: Option<&'a str>,
}

/// Writes a notice to the durable outbox (if there is anyone to tell).
pub fn notify(svc: Services<'_>, notice: Notice<'_>) -> Result<(), Error> {
    let Some(to) = notice.to else {
        return Ok(());
    };
    svc.store.push_notification(Notification {
        id: 0,
        at: now_unix(),
        kind: notice.kind,
        cvr: notice.cvr.to_owned(),
        to,
        subject: notice.subject,
        body: notice.body,
        serial: notice.serial,
        order_id: notice.order_id.map(str::to_owned),
        delivered_at: None,
        attempts: 0,
    })?;
    Ok(())
}
