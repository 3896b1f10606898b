//! Certificate orders and their states.

use serde::{Deserialize, Serialize};

use super::{Identification, IllegalTransition, Issuance, Serial, UnixSeconds};

/// Who an order is for.
///
/// Stored as [`StoredHolder`], whose layout only ever grows: see there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "StoredHolder", into = "StoredHolder")]
pub enum OrderHolder {
    /// A certificate of a profile (organisation or system certificate).
    Profile,
    /// A user certificate for a person.
    User {
        /// Name.
        name: String,
        /// E-mail address.
        email: String,
        /// Whether the certificate goes into the public certificate
        /// database; `None`: as the profile says when it is issued.
        publish: Option<bool>,
    },
}

/// [`OrderHolder`] as the store encodes it (postcard: a variant is its
/// index, then its fields). Variants are only ever added at the end, so
/// every record written before a variant existed reads as it was written,
/// and a user order that makes no publishing choice is written exactly as
/// before the choice existed (variant 1); no stored order changes, and no
/// record layout version is needed. An older estd refuses (does not
/// misread) an order written with a newer variant.
#[derive(Serialize, Deserialize)]
enum StoredHolder {
    /// Variant 0: [`OrderHolder::Profile`].
    Profile,
    /// Variant 1: a user, publishing as the profile says.
    User { name: String, email: String },
    /// Variant 2: a user, with the order's publishing choice.
    UserPublishing {
        name: String,
        email: String,
        publish: bool,
    },
}

impl From<StoredHolder> for OrderHolder {
    fn from(h: StoredHolder) -> OrderHolder {
        match h {
            StoredHolder::Profile => OrderHolder::Profile,
            StoredHolder::User { name, email } => OrderHolder::User {
                name,
                email,
                publish: None,
            },
            StoredHolder::UserPublishing {
                name,
                email,
                publish,
            } => OrderHolder::User {
                name,
                email,
                publish: Some(publish),
            },
        }
    }
}

impl From<OrderHolder> for StoredHolder {
    fn from(h: OrderHolder) -> StoredHolder {
        match h {
            OrderHolder::Profile => StoredHolder::Profile,
            OrderHolder::User {
                name,
                email,
                publish: None,
            } => StoredHolder::User { name, email },
            OrderHolder::User {
                name,
                email,
                publish: Some(publish),
            } => StoredHolder::UserPublishing {
                name,
                email,
                publish,
            },
        }
    }
}

impl OrderHolder {
    /// The publishing choice of a user order (`None`: the profile's).
    pub fn publish(&self) -> Option<bool> {
        match self {
            OrderHolder::User { publish, .. } => *publish,
            OrderHolder::Profile => None,
        }
    }
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

    /// `OrderHolder` as it was before orders chose publishing, field for field.
    #[derive(Serialize)]
    enum HolderBeforePublish {
        Profile,
        User { name: String, email: String },
    }

    /// `Order` as it was before orders chose publishing.
    #[derive(Serialize)]
    struct OrderBeforePublish {
        id: String,
        cvr: String,
        profile_id: String,
        holder: HolderBeforePublish,
        identification: Identification,
        issuance: Issuance,
        status: OrderStatus,
        created_at: UnixSeconds,
        created_by: String,
        code: Option<CodeState>,
        renews: Option<Serial>,
        held_csr: Option<[u8; 32]>,
    }

    fn user_order(publish: Option<bool>) -> Order {
        Order {
            id: "123456789012".into(),
            cvr: "12345674".into(),
            profile_id: "p".into(),
            holder: OrderHolder::User {
                name: "Jens Jensen".into(),
                email: "jens@demo.example".into(),
                publish,
            },
            identification: Identification::OneTimeCode,
            issuance: Issuance::Est,
            status: OrderStatus::Issued {
                serial: Serial([0x42; 16]),
            },
            created_at: 1_780_000_000,
            created_by: "operator".into(),
            code: None,
            renews: Some(Serial([0x41; 16])),
            held_csr: Some([7; 32]),
        }
    }

    /// Orders stored before the publishing choice read as they were (the
    /// profile decides), and an order without a choice is stored byte for
    /// byte as before; a choice round-trips, and an older estd refuses it
    /// rather than misreading it.
    #[test]
    fn the_publishing_choice_keeps_stored_orders_readable() {
        let old = OrderBeforePublish {
            id: "123456789012".into(),
            cvr: "12345674".into(),
            profile_id: "p".into(),
            holder: HolderBeforePublish::User {
                name: "Jens Jensen".into(),
                email: "jens@demo.example".into(),
            },
            identification: Identification::OneTimeCode,
            issuance: Issuance::Est,
            status: OrderStatus::Issued {
                serial: Serial([0x42; 16]),
            },
            created_at: 1_780_000_000,
            created_by: "operator".into(),
            code: None,
            renews: Some(Serial([0x41; 16])),
            held_csr: Some([7; 32]),
        };
        let old_bytes = postcard::to_stdvec(&old).expect("encode");
        let read: Order = postcard::from_bytes(&old_bytes).expect("an old order reads");
        assert_eq!(read, user_order(None));
        assert_eq!(read.holder.publish(), None);
        assert_eq!(
            postcard::to_stdvec(&user_order(None)).expect("encode"),
            old_bytes,
            "no choice: the old layout, byte for byte"
        );
        for choice in [true, false] {
            let o = user_order(Some(choice));
            let bytes = postcard::to_stdvec(&o).expect("encode");
            assert_ne!(bytes, old_bytes);
            let back: Order = postcard::from_bytes(&bytes).expect("decode");
            assert_eq!(back.holder.publish(), Some(choice));
            assert_eq!(back, o);
            #[derive(Debug, serde::Deserialize)]
            #[allow(dead_code)]
            enum OldHolder {
                Profile,
                User { name: String, email: String },
            }
            #[derive(Debug, serde::Deserialize)]
            #[allow(dead_code)]
            struct OldOrder {
                id: String,
                cvr: String,
                profile_id: String,
                holder: OldHolder,
            }
            assert!(
                postcard::from_bytes::<OldOrder>(&bytes).is_err(),
                "an older estd refuses a choice it cannot keep"
            );
        }
        // A profile order is unchanged too.
        let profile_order = Order {
            holder: OrderHolder::Profile,
            ..user_order(None)
        };
        let old_profile = OrderBeforePublish {
            holder: HolderBeforePublish::Profile,
            ..old
        };
        assert_eq!(
            postcard::to_stdvec(&profile_order).expect("encode"),
            postcard::to_stdvec(&old_profile).expect("encode")
        );
    }
}
