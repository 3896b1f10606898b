//! Admin API tokens as stored, and their states.

use serde::{Deserialize, Serialize};

use super::UnixSeconds;

/// An admin API token's stored form (the token itself is never stored).
/// Its public id is derived from the key it is stored under, the token's
/// hash (see [`crate::orders::token_id`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Organisation it acts for; `None` for a server operator.
    pub cvr: Option<String>,
    /// A name for people.
    pub name: String,
    /// Created at.
    pub created_at: UnixSeconds,
    /// Refused from this moment on; `None`: never expires (only tokens made
    /// before tokens had an expiry).
    pub expires_at: Option<UnixSeconds>,
    /// When it was revoked; refused from then on.
    pub revoked_at: Option<UnixSeconds>,
}

impl TokenRecord {
    /// Whether it is accepted at `now`: neither revoked nor expired.
    pub fn is_usable(&self, now: UnixSeconds) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|at| now < at)
    }

    /// `active`, `expired` or `revoked`, as the API shows it.
    pub fn state_name(&self, now: UnixSeconds) -> &'static str {
        if self.revoked_at.is_some() {
            "revoked"
        } else if self.is_usable(now) {
            "active"
        } else {
            "expired"
        }
    }
}
