//! Who performs an operation, and the name the audit log gives them.

use std::fmt;

use super::{Role, Roles, Serial};

/// The audit log's name for whoever acted. [`fmt::Display`] gives the text
/// the audit records have always carried (`token:ops`, `cert:<serial>`, …),
/// so that old and new records read alike.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActorId {
    /// An admin API bearer token, by its name: `token:<name>`.
    Token(String),
    /// A certificate issued here: `cert:<serial>`.
    Cert(Serial),
    /// A certificate from a configured foreign anchor: `external:<subject>`.
    External(String),
    /// Whoever holds an order's reference number and code: `order:<reference>`.
    Order(String),
    /// A person: `person:<CVR or ->/<address>` ([`super::Person::audit_name`]).
    Person(String),
    /// A fixed name, shown as it is (`estd-init`, `anonymous`, a test's operator).
    Named(String),
}

impl fmt::Display for ActorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ActorId::Token(name) => write!(f, "token:{name}"),
            ActorId::Cert(serial) => write!(f, "cert:{serial}"),
            ActorId::External(subject) => write!(f, "external:{subject}"),
            ActorId::Order(reference) => write!(f, "order:{reference}"),
            ActorId::Person(name) => write!(f, "person:{name}"),
            ActorId::Named(name) => f.write_str(name),
        }
    }
}

/// Who performs an operation, and for which organisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// For the audit log.
    pub id: ActorId,
    /// The organisation it may act for; `None` for a server operator.
    pub cvr: Option<String>,
    /// What it may do (the admin API's routes each name the roles they need).
    pub roles: Roles,
    /// The logged-in person's store key, when a session authenticated it:
    /// what the `/me` routes act on.
    pub person: Option<String>,
}

impl Actor {
    /// A machine credential (a bearer token or an `admin-api` certificate):
    /// an organisation's holds the organisation's three roles, as such
    /// credentials always could do everything for it; one without an
    /// organisation is a server operator's.
    pub fn machine(id: ActorId, cvr: Option<String>) -> Actor {
        let roles = match cvr {
            Some(_) => Roles::organisation(),
            None => Roles::of(&[Role::Operator]),
        };
        Actor {
            id,
            cvr,
            roles,
            person: None,
        }
    }

    /// Whether it may see and change `cvr`'s data.
    pub fn may_access(&self, cvr: &str) -> bool {
        self.cvr.as_deref().is_none_or(|own| own == cvr)
    }

    /// Whether it is a server operator.
    pub fn is_operator(&self) -> bool {
        self.cvr.is_none() && self.roles.has(Role::Operator)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actor_ids_read_as_the_audit_log_always_had_them() {
        assert_eq!(ActorId::Token("ops".into()).to_string(), "token:ops");
        assert_eq!(ActorId::Order("123".into()).to_string(), "order:123");
        assert_eq!(
            ActorId::External("CN=x".into()).to_string(),
            "external:CN=x"
        );
        assert_eq!(ActorId::Named("estd-init".into()).to_string(), "estd-init");
        let serial = Serial::from_hex("0123456789abcdef0123456789abcdef").expect("serial");
        assert_eq!(ActorId::Cert(serial).to_string(), format!("cert:{serial}"));
    }
}
