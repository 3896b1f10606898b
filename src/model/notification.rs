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
    /// A link to confirm an e-mail address before a certificate carrying
    /// it is issued. (Added last: a stored variant is its index.)
    EmailValidation,
    /// An invitation to activate a person's account (the link carries a token).
    Invitation,
}

/// The placeholder that replaces the token of a validation link wherever a
/// notice is shown, and in the outbox once the notice was delivered.
pub const REDACTED_TOKEN: &str = "[removed]";

/// `body` with the token of every e-mail validation link (`token=…`)
/// replaced by [`REDACTED_TOKEN`].
pub fn redact_validation_token(body: &str) -> String {
    let mut out = String::with_capacity(body.len());
    let mut rest = body;
    while let Some(i) = rest.find("token=") {
        out.push_str(&rest[..i + "token=".len()]);
        rest = &rest[i + "token=".len()..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .unwrap_or(rest.len());
        out.push_str(REDACTED_TOKEN);
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

impl NotificationKind {
    /// Whether its body carries a link whose token is a credential (an
    /// e-mail validation or an invitation): shown nowhere, and removed from
    /// the outbox once sent.
    pub fn carries_token(self) -> bool {
        matches!(
            self,
            NotificationKind::EmailValidation | NotificationKind::Invitation
        )
    }
}

impl Notification {
    /// The body as it may be shown: a link's token removed.
    pub fn shown_body(&self) -> String {
        if self.kind.carries_token() {
            redact_validation_token(&self.body)
        } else {
            self.body.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_tokens_are_redacted() {
        assert_eq!(
            redact_validation_token("a https://x/validate-email?token=AbC-_9 b\nc token=Z"),
            "a https://x/validate-email?token=[removed] b\nc token=[removed]"
        );
        assert_eq!(redact_validation_token("no link"), "no link");
    }
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
