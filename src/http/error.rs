//! The one mapping from the domain's errors to HTTP statuses, shared by the
//! EST and admin protocols (each still chooses its body: text or problem+json).

use http::StatusCode;

use crate::revocation::RevocationError;
use crate::service::Error;

/// The status a service error is answered with.
pub fn status(e: &Error) -> StatusCode {
    match e {
        Error::Invalid { .. } | Error::Csr(_) | Error::Linking(_) => StatusCode::BAD_REQUEST,
        Error::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
        Error::Forbidden(_) | Error::Policy(_) => StatusCode::FORBIDDEN,
        Error::NotFound(_) => StatusCode::NOT_FOUND,
        Error::Conflict(_) => StatusCode::CONFLICT,
        Error::Store(e) if e.is_transient() => StatusCode::SERVICE_UNAVAILABLE,
        // The CA key's token is gone for now (issuing, or signing a CRL);
        // signing recovers once it is back.
        Error::Ca(e) | Error::Revocation(RevocationError::Ca(e)) if e.is_key_unavailable() => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        Error::Store(_)
        | Error::Ca(_)
        | Error::Internal { .. }
        | Error::Revocation(_)
        | Error::Randomness
        | Error::NoFreeReference
        | Error::Inconsistent(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Seconds a client is asked to wait before trying again after a 503.
pub const RETRY_AFTER_SECS: u64 = 5;

/// `Retry-After` for an error that passes by itself (the database or the CA
/// key's token cannot be reached for a moment).
pub fn retry_after(e: &Error) -> Option<u64> {
    (status(e) == StatusCode::SERVICE_UNAVAILABLE).then_some(RETRY_AFTER_SECS)
}
