//! The one error vocabulary of the units of work: what went wrong, in domain
//! terms, with the source kept. No HTTP status lives here; the protocols map
//! it once in [`crate::http::error`].

use crate::ca::csr::CsrError;
use crate::ca::CaError;
use crate::policy::{LinkingError, PolicyError};
use crate::revocation::RevocationError;
use crate::store::StoreError;

/// Why a unit of work was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed: names the field at fault.
    #[error("{field}: {message}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// No acceptable credentials (a wrong or missing one-time code, an
    /// unknown client certificate): the caller may try others.
    #[error("{0}")]
    Unauthenticated(String),
    /// Known caller, but not permitted.
    #[error("{0}")]
    Forbidden(String),
    /// No such thing, or not visible to the caller.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request conflicts with the current state (an illegal transition,
    /// a certificate's existing successor, a taken name).
    #[error("{0}")]
    Conflict(String),
    /// The CSR is malformed or its signature does not verify.
    #[error(transparent)]
    Csr(#[from] CsrError),
    /// The profile does not allow what the CSR asks for.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The CSR is not linked to its TLS connection as the profile requires.
    #[error(transparent)]
    Linking(#[from] LinkingError),
    /// The store failed; our fault.
    #[error("store: {0}")]
    Store(#[source] StoreError),
    /// Signing failed; our fault.
    #[error("CA: {0}")]
    Ca(#[from] CaError),
    /// Another fault of ours (a worker task that died, no randomness, a
    /// retry budget spent, records that contradict each other): says what
    /// failed, keeps the cause if there is one. Never shown to a client.
    #[error("{what}")]
    Internal {
        /// What failed.
        what: &'static str,
        /// Why, if something below said.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The CRL or OCSP state could not be brought up to date; our fault.
    #[error("revocation state: {0}")]
    Revocation(#[source] RevocationError),
    /// The system's random generator failed; our fault.
    #[error("no randomness")]
    Randomness,
    /// Every reference number drawn was taken; our fault (or a full store).
    #[error("no free reference number")]
    NoFreeReference,
    /// The store holds records that contradict each other (a profile whose
    /// organisation is gone); our fault.
    #[error("inconsistent store: {0}")]
    Inconsistent(String),
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            // A uniqueness conflict the store detected is the caller's conflict.
            StoreError::Conflict(m) => Error::Conflict(m),
            other => Error::Store(other),
        }
    }
}

impl Error {
    /// A refusal naming `field`.
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Error {
        Error::Invalid {
            field,
            message: message.into(),
        }
    }

    /// A fault of ours, `what` failing because of `source`.
    pub fn internal(
        what: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Error {
        Error::Internal {
            what,
            source: Some(source.into()),
        }
    }

    /// Whether this is a fault of ours rather than of the request.
    pub fn is_internal(&self) -> bool {
        matches!(
            self,
            Error::Store(_)
                | Error::Ca(_)
                | Error::Internal { .. }
                | Error::Revocation(_)
                | Error::Randomness
                | Error::NoFreeReference
                | Error::Inconsistent(_)
        )
    }
}
