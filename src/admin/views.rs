//! The JSON shapes the admin API answers with, built from store records.
//! Times are RFC 3339 in UTC, serials upper-case hex as `openssl` prints them.

use schemars::JsonSchema;
use serde::Serialize;

use crate::files::cert_pem;
use crate::model::{
    AuditAction, AuditEvent, AuditOutcome, CertKind, CertRecord, CertState, CertStatus,
    EmailValidation, EmailValidationState, EmailValidationStatus, Identification, Issuance,
    Notification, NotificationKind, Order, OrderHolder, OrderStatus, RevocationReason, SystemRight,
    UnixSeconds,
};
use crate::service::{CreatedOrder, OrderShown, Services};

pub use crate::model::rfc3339;

/// A person a user certificate is for.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "User")]
pub struct UserView {
    /// Name.
    pub name: String,
    /// E-mail address.
    pub email: String,
    /// The order's publishing choice: whether the certificate goes into the
    /// public certificate database. Absent: as the profile says at issue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publish: Option<bool>,
}

/// An order.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "Order")]
pub struct OrderView {
    /// Reference number.
    pub reference: String,
    /// Status as the service shows it: `pending`, `approved`,
    /// `awaiting-email-validation` (an organisation or system certificate
    /// whose e-mail address is not yet confirmed; a link was sent to it),
    /// `rejected`, `deleted`; `in-progress` for a user's open renewal (an
    /// organisation's or system's open renewal shows `pending`); once
    /// issued, its certificate's state (`issued`, `expired`, `revoked`,
    /// `blocked`).
    pub status: String,
    /// Organisation.
    pub cvr: String,
    /// Profile.
    pub profile_id: String,
    /// The user, for a user certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<UserView>,
    /// Identification method.
    pub identification: Identification,
    /// Issuance method.
    pub issuance: Issuance,
    /// Created at.
    pub created_at: String,
    /// Who created it.
    pub created_by: String,
    /// The certificate issued for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// That certificate's notAfter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_after: Option<String>,
    /// The certificate it renews.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renews: Option<String>,
    /// When the outstanding one-time code expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code_expires_at: Option<String>,
    /// Locked after too many wrong codes.
    pub locked: bool,
}

impl OrderView {
    /// The view of `order` now.
    pub fn new(order: &Order, shown: OrderShown) -> OrderView {
        let serial = match order.status {
            OrderStatus::Issued { serial } => Some(serial),
            _ => None,
        };
        OrderView {
            reference: order.id.clone(),
            status: shown.status,
            cvr: order.cvr.clone(),
            profile_id: order.profile_id.clone(),
            user: match &order.holder {
                OrderHolder::User {
                    name,
                    email,
                    publish,
                } => Some(UserView {
                    name: name.clone(),
                    email: email.clone(),
                    publish: *publish,
                }),
                OrderHolder::Profile => None,
            },
            identification: order.identification,
            issuance: order.issuance,
            created_at: rfc3339(order.created_at),
            created_by: order.created_by.clone(),
            serial: serial.map(|s| s.to_string()),
            not_after: shown.not_after.map(rfc3339),
            renews: order.renews.map(|s| s.to_string()),
            code_expires_at: order.code.as_ref().map(|c| rfc3339(c.expires_at)),
            locked: order.is_locked(),
        }
    }
}

/// A new order and, for one-time-code orders, its code (shown once).
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "CreatedOrder")]
pub struct CreatedOrderView {
    /// The order.
    #[serde(flatten)]
    pub order: OrderView,
    /// The one-time code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

impl CreatedOrderView {
    /// The view of a just-created order, shown as the service shows it
    /// (`awaiting-email-validation` too).
    pub fn new(svc: Services<'_>, created: CreatedOrder, now: UnixSeconds) -> CreatedOrderView {
        let shown = crate::service::order_shown(svc, &created.order, now);
        CreatedOrderView {
            order: OrderView::new(&created.order, shown),
            code: created.code,
        }
    }
}

/// A certificate.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "Certificate")]
pub struct CertView {
    /// Serial number, hex.
    pub serial: String,
    /// Subject.
    pub subject: String,
    /// The certificate's state now.
    pub status: CertState,
    /// When it was revoked or blocked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
    /// Why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revocation_reason: Option<RevocationReason>,
    /// Kind.
    pub kind: CertKind,
    /// Organisation.
    pub cvr: String,
    /// Profile it was issued under.
    pub profile_id: String,
    /// The order it was issued for.
    pub order_reference: Option<String>,
    /// Issued at.
    pub issued_at: String,
    /// notAfter.
    pub not_after: String,
    /// The certificate it renews.
    pub renews: Option<String>,
    /// The certificate that renewed it.
    pub renewed_by: Option<String>,
    /// In the public certificate database.
    pub published: bool,
    /// E-mail address in the certificate.
    pub email: Option<String>,
    /// System rights it carries.
    pub rights: Vec<SystemRight>,
    /// The certificate, PEM.
    pub pem: String,
}

impl CertView {
    /// The view of `rec` now.
    pub fn new(rec: &CertRecord, now: UnixSeconds) -> CertView {
        let (revoked_at, revocation_reason) = match rec.status {
            CertStatus::Revoked { at, reason } => (Some(rfc3339(at)), Some(reason)),
            CertStatus::Issued => (None, None),
        };
        CertView {
            serial: rec.serial.to_string(),
            subject: rec.subject.clone(),
            status: rec.state(now),
            revoked_at,
            revocation_reason,
            kind: rec.kind,
            cvr: rec.cvr.clone(),
            profile_id: rec.profile_id.clone(),
            order_reference: rec.order_id.clone(),
            issued_at: rfc3339(rec.issued_at),
            not_after: rfc3339(rec.not_after),
            renews: rec.renews.map(|s| s.to_string()),
            renewed_by: rec.renewed_by.map(|s| s.to_string()),
            published: rec.published,
            email: rec.email.clone(),
            rights: rec.rights.clone(),
            pem: cert_pem(&rec.der),
        }
    }
}

/// A certificate as the public certificate database shows it.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "PublicCertificate")]
pub struct PublicCertView {
    /// Serial number, hex.
    pub serial: String,
    /// Subject.
    pub subject: String,
    /// notAfter.
    pub not_after: String,
    /// The certificate's state now.
    pub status: CertState,
    /// The certificate, PEM.
    pub pem: String,
}

impl PublicCertView {
    /// The public view of `rec` now.
    pub fn new(rec: &CertRecord, now: UnixSeconds) -> PublicCertView {
        PublicCertView {
            serial: rec.serial.to_string(),
            subject: rec.subject.clone(),
            not_after: rfc3339(rec.not_after),
            status: rec.state(now),
            pem: cert_pem(&rec.der),
        }
    }
}

/// An audit event.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "AuditRecord")]
pub struct AuditView {
    /// When (milliseconds are dropped).
    pub at: String,
    /// Who.
    pub actor: String,
    /// What.
    pub action: AuditAction,
    /// Done or refused.
    pub outcome: AuditOutcome,
    /// Organisation.
    pub cvr: Option<String>,
    /// Profile.
    pub profile_id: Option<String>,
    /// Certificate.
    pub serial: Option<String>,
    /// Order.
    pub order_reference: Option<String>,
    /// Detail.
    pub detail: String,
}

impl From<&AuditEvent> for AuditView {
    fn from(e: &AuditEvent) -> Self {
        AuditView {
            at: rfc3339(e.at_ms / 1000),
            actor: e.actor.clone(),
            action: e.action,
            outcome: e.outcome,
            cvr: e.cvr.clone(),
            profile_id: e.profile_id.clone(),
            serial: e.serial.map(|s| s.to_string()),
            order_reference: e.order_id.clone(),
            detail: e.detail.clone(),
        }
    }
}

/// Where the validation of one of an organisation's certificate e-mail
/// addresses stands (never the token of its link).
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "EmailValidation")]
pub struct EmailValidationView {
    /// The address (lower case).
    pub address: String,
    /// `pending` (a link was sent and works), `expired` (the link expired
    /// unused), `confirmed` (within `email_validation.valid_for_days`:
    /// certificates carrying it are issued), `lapsed` (confirmed longer ago;
    /// the next issuance sends a new link).
    pub status: EmailValidationStatus,
    /// When the last link was sent, while one is pending or expired.
    pub link_sent_at: Option<String>,
    /// When the pending link stops working.
    pub link_expires_at: Option<String>,
    /// When the address was last confirmed.
    pub confirmed_at: Option<String>,
}

impl EmailValidationView {
    /// The view of `v`, with its status now.
    pub fn of(v: &EmailValidation, status: EmailValidationStatus) -> EmailValidationView {
        let (sent, expires) = match v.state {
            EmailValidationState::Pending {
                sent_at,
                expires_at,
                ..
            } => (Some(rfc3339(sent_at)), Some(rfc3339(expires_at))),
            EmailValidationState::Confirmed { .. } => (None, None),
        };
        EmailValidationView {
            address: v.address.clone(),
            status,
            link_sent_at: sent,
            link_expires_at: expires,
            confirmed_at: v.confirmed_at.map(rfc3339),
        }
    }
}

/// A notice in the outbox.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "Notification")]
pub struct NotificationView {
    /// Outbox id.
    pub id: u64,
    /// Written at.
    pub at: String,
    /// What about.
    pub kind: NotificationKind,
    /// Organisation.
    pub cvr: String,
    /// Recipient.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// Body text. The token of an e-mail validation link is shown as
    /// `[removed]`: only the recipient's mailbox sees it.
    pub body: String,
    /// Certificate.
    pub serial: Option<String>,
    /// Order.
    pub order_reference: Option<String>,
    /// Delivered by SMTP at.
    pub delivered_at: Option<String>,
    /// Failed delivery attempts.
    pub attempts: u32,
}

impl From<&Notification> for NotificationView {
    fn from(n: &Notification) -> Self {
        NotificationView {
            id: n.id,
            at: rfc3339(n.at),
            kind: n.kind,
            cvr: n.cvr.clone(),
            to: n.to.clone(),
            subject: n.subject.clone(),
            body: n.shown_body(),
            serial: n.serial.map(|s| s.to_string()),
            order_reference: n.order_id.clone(),
            delivered_at: n.delivered_at.map(rfc3339),
            attempts: n.attempts,
        }
    }
}

/// A list answer.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "{T}List")]
pub struct Items<T> {
    /// The items.
    pub items: Vec<T>,
    /// How many there are in all.
    pub total: usize,
}

impl<T> Items<T> {
    /// All of `items`.
    pub fn all(items: Vec<T>) -> Items<T> {
        Items {
            total: items.len(),
            items,
        }
    }
}

/// The wire name of an API enum value (`one-time-code`, `est`, ...).
pub(super) fn wire_name<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => "?".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(u64::MAX), "1970-01-01T00:00:00Z");
    }
}
