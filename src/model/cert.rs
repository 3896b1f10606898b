//! Issued certificates and their states.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{CertKind, IllegalTransition, Serial, SystemRight, UnixSeconds};

/// Why a certificate was revoked (RFC 5280 CRLReason values in brackets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RevocationReason {
    /// The organisation no longer exists (cessationOfOperation).
    OrganisationCeased,
    /// Suspected misuse (keyCompromise).
    SuspectedMisuse,
    /// Information no longer correct (affiliationChanged).
    InformationChanged,
    /// Superseded (superseded).
    Superseded,
    /// Other (unspecified).
    Other,
    /// Blocked by its holder (certificateHold is not used: a block is final;
    /// it is listed as privilegeWithdrawn).
    Blocked,
}

impl RevocationReason {
    /// The RFC 5280 CRLReason code.
    pub fn crl_reason_code(self) -> u8 {
        match self {
            RevocationReason::Other => 0,
            RevocationReason::SuspectedMisuse => 1,
            RevocationReason::InformationChanged => 3,
            RevocationReason::Superseded => 4,
            RevocationReason::OrganisationCeased => 5,
            RevocationReason::Blocked => 9,
        }
    }

    /// The CRL reason, or `None` for "unspecified" (which RFC 5280 says to omit).
    pub fn crl_reason(self) -> Option<x509_cert::ext::pkix::CrlReason> {
        use x509_cert::ext::pkix::CrlReason;
        Some(match self {
            RevocationReason::Other => return None,
            RevocationReason::SuspectedMisuse => CrlReason::KeyCompromise,
            RevocationReason::InformationChanged => CrlReason::AffiliationChanged,
            RevocationReason::Superseded => CrlReason::Superseded,
            RevocationReason::OrganisationCeased => CrlReason::CessationOfOperation,
            RevocationReason::Blocked => CrlReason::PrivilegeWithdrawn,
        })
    }
}

/// A certificate's stored status. Expiry is derived from `not_after`, not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CertStatus {
    /// Valid (unless expired).
    Issued,
    /// Revoked or blocked, for good.
    Revoked {
        /// When.
        at: UnixSeconds,
        /// Why.
        reason: RevocationReason,
    },
}

/// A certificate's state as the service shows it: the stored status, with
/// expiry derived from the time asked about and a block told apart from a
/// revocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CertState {
    /// Valid.
    Issued,
    /// Past its notAfter (and not revoked).
    Expired,
    /// Revoked.
    Revoked,
    /// Blocked by its holder (a revocation with reason `blocked`).
    Blocked,
}

impl CertState {
    /// The name the API, CSV exports and messages use.
    pub fn as_str(self) -> &'static str {
        match self {
            CertState::Issued => "issued",
            CertState::Expired => "expired",
            CertState::Revoked => "revoked",
            CertState::Blocked => "blocked",
        }
    }
}

impl fmt::Display for CertState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A certificate issued by this CA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertRecord {
    /// Serial number (the key).
    pub serial: Serial,
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// Subject, RFC 4514 string, for display and search.
    pub subject: String,
    /// Profile it was issued under.
    pub profile_id: String,
    /// Organisation.
    pub cvr: String,
    /// Kind, fixed at issuance.
    pub kind: CertKind,
    /// System rights, fixed at issuance: a profile change affects only later certificates.
    pub rights: Vec<SystemRight>,
    /// Issued at.
    pub issued_at: UnixSeconds,
    /// notAfter.
    pub not_after: UnixSeconds,
    /// Stored status.
    pub status: CertStatus,
    /// The certificate this one renews.
    pub renews: Option<Serial>,
    /// The certificate that renewed this one.
    pub renewed_by: Option<Serial>,
    /// The order it was issued for.
    pub order_id: Option<String>,
    /// Whether it is in the public certificate database (fixed at issuance).
    pub published: bool,
    /// E-mail address in the certificate, if any.
    pub email: Option<String>,
}

impl CertRecord {
    /// Whether `notAfter` has passed at `now`.
    pub fn is_expired(&self, now: UnixSeconds) -> bool {
        now > self.not_after
    }

    /// Whether it carries `right`.
    pub fn has_right(&self, right: SystemRight) -> bool {
        self.rights.contains(&right)
    }

    /// The current state: the stored status, with expiry derived from `now`.
    pub fn state(&self, now: UnixSeconds) -> CertState {
        match self.status {
            CertStatus::Revoked {
                reason: RevocationReason::Blocked,
                ..
            } => CertState::Blocked,
            CertStatus::Revoked { .. } => CertState::Revoked,
            CertStatus::Issued if self.is_expired(now) => CertState::Expired,
            CertStatus::Issued => CertState::Issued,
        }
    }

    /// Issued → Revoked (or Blocked). A revoked certificate stays revoked.
    pub fn revoke(
        &mut self,
        reason: RevocationReason,
        at: UnixSeconds,
    ) -> Result<(), IllegalTransition> {
        match self.status {
            CertStatus::Issued => {
                self.status = CertStatus::Revoked { at, reason };
                Ok(())
            }
            CertStatus::Revoked { .. } => Err(IllegalTransition {
                current: self.state(at).as_str(),
                attempted: "revocation",
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revoked_is_final() {
        let mut r = CertRecord {
            serial: Serial([0x40; 16]),
            der: vec![],
            subject: String::new(),
            profile_id: String::new(),
            cvr: "12345674".into(),
            kind: CertKind::System,
            rights: vec![],
            issued_at: 0,
            not_after: 100,
            status: CertStatus::Issued,
            renews: None,
            renewed_by: None,
            order_id: None,
            published: false,
            email: None,
        };
        assert_eq!(r.state(100), CertState::Issued);
        assert_eq!(r.state(101), CertState::Expired);
        assert!(r.revoke(RevocationReason::Superseded, 1).is_ok());
        assert_eq!(r.state(1), CertState::Revoked);
        let e = r.revoke(RevocationReason::Other, 2).unwrap_err();
        assert_eq!(e.current, "revoked");
        r.status = CertStatus::Revoked {
            at: 1,
            reason: RevocationReason::Blocked,
        };
        assert_eq!(r.state(1), CertState::Blocked);
    }

    #[test]
    fn cert_state_names() {
        for (state, name) in [
            (CertState::Issued, "issued"),
            (CertState::Expired, "expired"),
            (CertState::Revoked, "revoked"),
            (CertState::Blocked, "blocked"),
        ] {
            assert_eq!(state.as_str(), name);
            assert_eq!(state.to_string(), name);
            assert_eq!(serde_json::to_value(state).ok(), Some(name.into()));
        }
    }
}
