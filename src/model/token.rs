//! Admin API tokens as stored, and their states.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::UnixSeconds;

/// An admin API token's stored form (the token itself is never stored).
/// Its public id is derived from the key it is stored under, the token's
/// hash (see [`crate::service::tokens::token_id`]).
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

    /// Its state at `now`, as the API shows it.
    pub fn state(&self, now: UnixSeconds) -> TokenState {
        if self.revoked_at.is_some() {
            TokenState::Revoked
        } else if self.is_usable(now) {
            TokenState::Active
        } else {
            TokenState::Expired
        }
    }
}

/// An admin API token's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TokenState {
    /// Accepted.
    Active,
    /// Past its expiry.
    Expired,
    /// Revoked.
    Revoked,
}

impl TokenState {
    /// The name the API shows.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenState::Active => "active",
            TokenState::Expired => "expired",
            TokenState::Revoked => "revoked",
        }
    }
}

impl fmt::Display for TokenState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_states() {
        let mut t = TokenRecord {
            cvr: None,
            name: "t".into(),
            created_at: 0,
            expires_at: Some(10),
            revoked_at: None,
        };
        assert_eq!(t.state(9), TokenState::Active);
        assert_eq!(t.state(10), TokenState::Expired);
        t.revoked_at = Some(5);
        assert_eq!(t.state(9), TokenState::Revoked);
        for (state, name) in [
            (TokenState::Active, "active"),
            (TokenState::Expired, "expired"),
            (TokenState::Revoked, "revoked"),
        ] {
            assert_eq!(state.as_str(), name);
            assert_eq!(state.to_string(), name);
            assert_eq!(serde_json::to_value(state).ok(), Some(name.into()));
        }
    }
}
