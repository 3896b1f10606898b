//! Organisations and their contact people.

use serde::{Deserialize, Serialize};

/// An organisation, known by its CVR number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Organisation {
    /// 8-digit CVR number.
    pub cvr: String,
    /// Legal name; it is the O attribute of every certificate.
    pub name: String,
    /// Whether user certificates may be ordered.
    pub allow_user_certs: bool,
    /// Whether profiles may enable seal generation.
    pub allow_seal: bool,
    /// Production unit numbers (P numbers).
    pub p_numbers: Vec<String>,
    /// SE numbers.
    pub se_numbers: Vec<String>,
}

/// A contact person, who receives notices about a profile's certificates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Contact {
    /// Name.
    pub name: String,
    /// E-mail address.
    pub email: String,
}
