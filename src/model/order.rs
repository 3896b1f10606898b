//! Certificate orders and their states.

use serde::{Deserialize, Serialize};

use super::{Identification, IllegalTransition, Issuance, Serial, UnixSeconds};

/// Who an order is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderHolder {
    /// A certificate of a profile (organisation or system certificate).
    Profile,
    /// A user certificate for a person.
    User {
        /// Name.
        name: String,
        /// E-mail address.
        email: String,
    },
}

/// A one-time code's stored state: only its hash is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeState {
    /// SHA-256 of the reference number and the code.
    pub hash: [u8; 32],
    /// When it stops working.
    pub expires_at: UnixSeconds,
    /// Wrong codes presented since it was issued.
    pub failures: u32,
}

/// Wrong codes allowed before an order is locked.
pub const MAX_CODE_FAILURES: u32 = 5;

/// The state of an order. Only the transitions below exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderStatus {
    /// Waiting to be collected (or, with approval, to be decided).
    Pending,
    /// Approved by an administrator; the held request can collect it.
    Approved,
    /// Rejected by an administrator.
    Rejected,
    /// Collected: a certificate was issued.
    Issued {
        /// The certificate.
        serial: Serial,
    },
    /// Deleted before issue. Kept for history, hidden from lists.
    Deleted,
}

impl OrderStatus {
    /// Display name.
    pub fn name(self) -> &'static str {
        match self {
            OrderStatus::Pending => "pending",
            OrderStatus::Approved => "approved",
            OrderStatus::Rejected => "rejected",
            OrderStatus::Issued { .. } => "issued",
            OrderStatus::Deleted => "deleted",
        }
    }
}

/// A certificate order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// Reference number (the EST user name for one-time codes).
    pub id: String,
    /// Organisation.
    pub cvr: String,
    /// Profile.
    pub profile_id: String,
    /// Profile or user.
    pub holder: OrderHolder,
    /// Identification method.
    pub identification: Identification,
    /// Issuance method.
    pub issuance: Issuance,
    /// State.
    pub status: OrderStatus,
    /// Created at.
    pub created_at: UnixSeconds,
    /// Who created it.
    pub created_by: String,
    /// The one-time code, while one is outstanding.
    pub code: Option<CodeState>,
    /// The certificate this order renews.
    pub renews: Option<Serial>,
    /// SHA-256 of a held CSR (approval-required API enrolments).
    pub held_csr: Option<[u8; 32]>,
}

impl Order {
    fn illegal(&self, attempted: &'static str) -> IllegalTransition {
        IllegalTransition {
            current: self.status.name(),
            attempted,
        }
    }

    /// Pending or Approved → Issued.
    pub fn mark_issued(&mut self, serial: Serial) -> Result<(), IllegalTransition> {
        match self.status {
            OrderStatus::Pending | OrderStatus::Approved => {
                self.status = OrderStatus::Issued { serial };
                self.code = None;
                Ok(())
            }
            _ => Err(self.illegal("issuing")),
        }
    }

    /// Pending → Deleted ("Delete certificate order"), only before issue.
    pub fn delete(&mut self) -> Result<(), IllegalTransition> {
        match self.status {
            OrderStatus::Pending | OrderStatus::Approved | OrderStatus::Rejected => {
                self.status = OrderStatus::Deleted;
                self.code = None;
                Ok(())
            }
            _ => Err(self.illegal("deletion")),
        }
    }

    /// Pending → Approved.
    pub fn approve(&mut self) -> Result<(), IllegalTransition> {
        match self.status {
            OrderStatus::Pending if self.held_csr.is_some() => {
                self.status = OrderStatus::Approved;
                Ok(())
            }
            _ => Err(self.illegal("approval")),
        }
    }

    /// Pending → Rejected.
    pub fn reject(&mut self) -> Result<(), IllegalTransition> {
        match self.status {
            OrderStatus::Pending if self.held_csr.is_some() => {
                self.status = OrderStatus::Rejected;
                Ok(())
            }
            _ => Err(self.illegal("rejection")),
        }
    }

    /// Replaces the one-time code of a pending order (also unlocks it).
    pub fn set_code(&mut self, code: CodeState) -> Result<(), IllegalTransition> {
        match self.status {
            OrderStatus::Pending if self.identification == Identification::OneTimeCode => {
                self.code = Some(code);
                Ok(())
            }
            _ => Err(self.illegal("a new one-time code")),
        }
    }

    /// Whether the order is locked after too many wrong codes.
    pub fn is_locked(&self) -> bool {
        self.code
            .as_ref()
            .is_some_and(|c| c.failures >= MAX_CODE_FAILURES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_transitions() {
        let mut o = Order {
            id: "R1".into(),
            cvr: "12345674".into(),
            profile_id: "p".into(),
            holder: OrderHolder::Profile,
            identification: Identification::OneTimeCode,
            issuance: Issuance::Est,
            status: OrderStatus::Pending,
            created_at: 0,
            created_by: "t".into(),
            code: None,
            renews: None,
            held_csr: None,
        };
        assert!(o.approve().is_err(), "nothing held to approve");
        o.mark_issued(Serial([0x40; 16])).expect("issue");
        let e = o.delete().unwrap_err();
        assert_eq!(e.current, "issued");
        assert!(o.mark_issued(Serial([0x41; 16])).is_err());
    }
}
