//! E-mail validation: an organisation or system certificate that carries an
//! e-mail address (its profile's `email`, an rfc822Name SAN) is issued only
//! once that address was confirmed, through a link sent to it, within the
//! configured window. One record per organisation and address.

use serde::{Deserialize, Serialize};

use super::{IllegalTransition, UnixSeconds};

/// Where the validation of one address of one organisation stands. Only the
/// transitions below exist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EmailValidationState {
    /// A link was sent and not yet used.
    Pending {
        /// SHA-256 of the token in the link (the token itself is never stored).
        token_hash: [u8; 32],
        /// When the link was sent.
        sent_at: UnixSeconds,
        /// When the link stops working.
        expires_at: UnixSeconds,
    },
    /// The address was confirmed.
    Confirmed {
        /// When.
        at: UnixSeconds,
    },
}

/// The validation of one address of one organisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailValidation {
    /// The organisation.
    pub cvr: String,
    /// The address, in lower case.
    pub address: String,
    /// Where it stands.
    pub state: EmailValidationState,
    /// When the address was last confirmed (kept while a new link is
    /// pending, so that history is not lost).
    pub confirmed_at: Option<UnixSeconds>,
}

/// What a validation means at a given time, as the API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum EmailValidationStatus {
    /// A link was sent and still works: waiting for the recipient.
    Pending,
    /// The link expired unused; the next issuance that needs the address
    /// sends a new one.
    Expired,
    /// Confirmed within the window: certificates carrying it are issued.
    Confirmed,
    /// Confirmed, but longer ago than the window: the next issuance that
    /// needs the address sends a new link.
    Lapsed,
}

impl EmailValidationStatus {
    /// The name the API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            EmailValidationStatus::Pending => "pending",
            EmailValidationStatus::Expired => "expired",
            EmailValidationStatus::Confirmed => "confirmed",
            EmailValidationStatus::Lapsed => "lapsed",
        }
    }
}

/// The form an address is stored and compared in.
pub fn normalised_address(address: &str) -> String {
    address.trim().to_ascii_lowercase()
}

impl EmailValidation {
    /// A new record with a link just sent.
    pub fn pending(
        cvr: &str,
        address: &str,
        token_hash: [u8; 32],
        now: UnixSeconds,
        ttl_secs: u64,
    ) -> EmailValidation {
        EmailValidation {
            cvr: cvr.to_owned(),
            address: normalised_address(address),
            state: EmailValidationState::Pending {
                token_hash,
                sent_at: now,
                expires_at: now.saturating_add(ttl_secs),
            },
            confirmed_at: None,
        }
    }

    /// Its status at `now`, with confirmations valid for `valid_for_secs`.
    pub fn status(&self, now: UnixSeconds, valid_for_secs: u64) -> EmailValidationStatus {
        match self.state {
            EmailValidationState::Pending { expires_at, .. } if now < expires_at => {
                EmailValidationStatus::Pending
            }
            EmailValidationState::Pending { .. } => EmailValidationStatus::Expired,
            EmailValidationState::Confirmed { at } if now < at.saturating_add(valid_for_secs) => {
                EmailValidationStatus::Confirmed
            }
            EmailValidationState::Confirmed { .. } => EmailValidationStatus::Lapsed,
        }
    }

    /// Whether certificates carrying the address may be issued at `now`:
    /// confirmed within the window (a pending new link does not undo a
    /// confirmation still inside it).
    pub fn is_confirmed(&self, now: UnixSeconds, valid_for_secs: u64) -> bool {
        self.confirmed_at
            .is_some_and(|at| now < at.saturating_add(valid_for_secs))
    }

    /// Pending (link still working) → Confirmed. Expired links and
    /// confirmed records (a link is used once) refuse.
    pub fn confirm(&mut self, now: UnixSeconds) -> Result<(), IllegalTransition> {
        match self.state {
            EmailValidationState::Pending { expires_at, .. } if now < expires_at => {
                self.state = EmailValidationState::Confirmed { at: now };
                self.confirmed_at = Some(now);
                Ok(())
            }
            EmailValidationState::Pending { .. } => Err(IllegalTransition {
                current: "expired",
                attempted: "confirming",
            }),
            EmailValidationState::Confirmed { .. } => Err(IllegalTransition {
                current: "confirmed",
                attempted: "confirming",
            }),
        }
    }

    /// Expired, or confirmed longer ago than the window → Pending with a new
    /// link. A working link or a confirmation inside the window refuses
    /// (nothing to send).
    pub fn resend(
        &mut self,
        token_hash: [u8; 32],
        now: UnixSeconds,
        ttl_secs: u64,
        valid_for_secs: u64,
    ) -> Result<(), IllegalTransition> {
        match self.status(now, valid_for_secs) {
            EmailValidationStatus::Expired | EmailValidationStatus::Lapsed => {
                self.state = EmailValidationState::Pending {
                    token_hash,
                    sent_at: now,
                    expires_at: now.saturating_add(ttl_secs),
                };
                Ok(())
            }
            s => Err(IllegalTransition {
                current: s.as_str(),
                attempted: "sending a new link",
            }),
        }
    }

    /// The hash of the working link's token at `now`, if there is one.
    pub fn pending_hash(&self, now: UnixSeconds) -> Option<&[u8; 32]> {
        match &self.state {
            EmailValidationState::Pending {
                token_hash,
                expires_at,
                ..
            } if now < *expires_at => Some(token_hash),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400;

    #[test]
    fn a_link_confirms_once_before_it_expires() {
        let mut v = EmailValidation::pending("12345674", " Ops@X.dk ", [1; 32], 100, 3600);
        assert_eq!(v.address, "ops@x.dk");
        assert_eq!(v.status(200, DAY), EmailValidationStatus::Pending);
        assert!(!v.is_confirmed(200, DAY));
        assert!(v.confirm(200).is_ok());
        assert_eq!(v.status(300, DAY), EmailValidationStatus::Confirmed);
        assert!(v.is_confirmed(300, DAY));
        assert!(v.confirm(300).is_err(), "used once");
        assert_eq!(v.status(200 + DAY, DAY), EmailValidationStatus::Lapsed);
        assert!(!v.is_confirmed(200 + DAY, DAY));

        let mut late = EmailValidation::pending("12345674", "a@x.dk", [1; 32], 100, 3600);
        assert_eq!(late.status(3700, DAY), EmailValidationStatus::Expired);
        assert!(late.confirm(3700).is_err());
    }

    #[test]
    fn a_new_link_only_when_needed() {
        let mut v = EmailValidation::pending("12345674", "a@x.dk", [1; 32], 100, 3600);
        assert!(
            v.resend([2; 32], 200, 3600, DAY).is_err(),
            "link still works"
        );
        assert!(v.resend([2; 32], 3700, 3600, DAY).is_ok(), "expired");
        assert_eq!(v.pending_hash(3800), Some(&[2; 32]));
        assert!(v.confirm(3800).is_ok());
        assert!(v.resend([3; 32], 3900, 3600, DAY).is_err(), "confirmed");
        assert!(v.resend([3; 32], 3800 + DAY, 3600, DAY).is_ok(), "lapsed");
        // The earlier confirmation is kept while the new link is pending.
        assert_eq!(v.confirmed_at, Some(3800));
    }
}
