//! Notices about certificates, kept in a durable outbox until delivered.

use serde::{Deserialize, Serialize};

use super::{Serial, UnixSeconds};

/// What a notification is about (the events MitID Erhverv e-mails about).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum NotificationKind {
    /// A certificate was ordered and is ready to collect.
    Ordered,
    /// A certificate was renewed.
    Renewed,
    /// A certificate was revoked.
    Revoked,
    /// A certificate was blocked.
    Blocked,
    /// A certificate expires within 30 days.
    Expiring,
}

/// A notice in the durable outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// Outbox id.
    pub id: u64,
    /// When it was written.
    pub at: UnixSeconds,
    /// What it is about.
    pub kind: NotificationKind,
    /// Organisation.
    pub cvr: String,
    /// Recipient e-mail address.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// Body text. Never contains a one-time code.
    pub body: String,
    /// Certificate concerned.
    pub serial: Option<Serial>,
    /// Order concerned.
    pub order_id: Option<String>,
    /// When it was delivered by SMTP, if it was.
    pub delivered_at: Option<UnixSeconds>,
    /// Failed delivery attempts.
    pub attempts: u32,
}
