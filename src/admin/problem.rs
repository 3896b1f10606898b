//! Admin API errors and their RFC 9457 problem documents
//! (`application/problem+json`).

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;

use crate::problem::Problem;
use crate::service;
use crate::store::StoreError;

pub use crate::problem::PROBLEM_JSON;

/// A refused or failed admin API call, with its HTTP status: the protocol's
/// own refusals, or a unit of work's [`service::Error`].
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: a field (of the body, the path or the query) is invalid; names it.
    #[error("{field}: {message}")]
    InvalidField {
        /// The field, e.g. `name` or `contact.email`.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// 400: the body is not the JSON this call takes.
    #[error("{0}")]
    MalformedBody(String),
    /// 401: no credentials, or credentials that are not accepted.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: authenticated, but not permitted.
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such resource, or one the caller may not see.
    #[error("{0}")]
    NotFound(String),
    /// 405: the path exists, the method does not; carries the allowed methods.
    #[error("method not allowed; use {allow}")]
    MethodNotAllowed {
        /// Comma-separated allowed methods.
        allow: String,
    },
    /// 408: the body did not arrive in time.
    #[error("request body not received in time")]
    Timeout,
    /// 413: the body is over the limit.
    #[error("request body larger than {0} bytes")]
    TooLarge(usize),
    /// 415: the body is not `application/json`.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 500: the answer could not be encoded. Logged, not shown.
    #[error("internal error")]
    Encoding(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// 500: a route reached a handler that does not serve it (a bug of the
    /// route table). Logged, not shown.
    #[error("internal error")]
    Unrouted(super::routes::Endpoint),
    /// What a unit of work refused or failed with; its status is the one
    /// mapping's ([`crate::http::error::status`]).
    #[error("{}", service_detail(.0))]
    Service(#[from] service::Error),
}

/// What a service error shows: its own words, unless it is a fault of ours.
fn service_detail(e: &service::Error) -> String {
    if e.is_internal() {
        "internal error".to_owned()
    } else {
        e.to_string()
    }
}

impl ApiError {
    /// A 400 naming `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError::InvalidField {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidField { .. } | ApiError::MalformedBody(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Timeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Encoding(_) | ApiError::Unrouted(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Service(e) => crate::http::error::status(e),
        }
    }

    /// The problem type: a URN for estd's own kinds, `about:blank` where the
    /// HTTP status says it all.
    pub fn problem_type(&self) -> &'static str {
        match self {
            ApiError::InvalidField { .. } => "urn:estd:error:invalid-field",
            ApiError::MalformedBody(_) => "urn:estd:error:malformed-body",
            ApiError::Service(service::Error::Invalid { .. }) => "urn:estd:error:invalid-field",
            ApiError::Service(service::Error::Conflict(_)) => "urn:estd:error:conflict",
            _ => "about:blank",
        }
    }

    fn title(&self) -> &'static str {
        match self {
            ApiError::InvalidField { .. } => "Invalid field",
            ApiError::MalformedBody(_) => "Malformed request body",
            ApiError::Service(service::Error::Invalid { .. }) => "Invalid field",
            ApiError::Service(service::Error::Conflict(_)) => "Conflict with the current state",
            other => other.status().canonical_reason().unwrap_or("Error"),
        }
    }

    fn detail(&self) -> String {
        match self {
            ApiError::InvalidField { message, .. } => message.clone(),
            ApiError::Service(service::Error::Invalid { message, .. }) => message.clone(),
            other => other.to_string(),
        }
    }

    /// The problem document as a response.
    pub fn into_response(self) -> Response<Full<Bytes>> {
        if self.status().is_server_error() {
            tracing::error!(error = %ErrorChain(&self), "admin API internal error");
        }
        let problem = Problem {
            request_id: None,
            problem_type: self.problem_type(),
            title: self.title(),
            status: self.status().as_u16(),
            detail: self.detail(),
            field: match &self {
                ApiError::InvalidField { field, .. } => Some(field.clone()),
                ApiError::Service(service::Error::Invalid { field, .. }) => {
                    Some((*field).to_owned())
                }
                _ => None,
            },
            retry_after: match &self {
                ApiError::Service(e) => crate::http::error::retry_after(e),
                _ => None,
            },
        };
        let mut resp = problem.into_response();
        let h = resp.headers_mut();
        match &self {
            ApiError::Unauthorized(_) | ApiError::Service(service::Error::Unauthenticated(_)) => {
                h.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"estd-admin\""),
                );
            }
            ApiError::MethodNotAllowed { allow } => {
                if let Ok(v) = HeaderValue::from_str(allow) {
                    h.insert(header::ALLOW, v);
                }
            }
            _ => {}
        }
        resp
    }
}

/// An error and its sources, for the log: what is not shown to the caller.
struct ErrorChain<'a>(&'a ApiError);

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            ApiError::Service(e) => write!(f, "{e}")?,
            ApiError::Unrouted(endpoint) => write!(f, "{endpoint:?} is not served here")?,
            other => write!(f, "{other}")?,
        }
        let mut source = std::error::Error::source(self.0);
        if matches!(self.0, ApiError::Service(_)) {
            // The service error itself was written above.
            source = source.and_then(std::error::Error::source);
        }
        while let Some(e) = source {
            write!(f, ": {e}")?;
            source = e.source();
        }
        Ok(())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::Service(service::Error::from(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_errors_keep_their_status_and_shape() {
        for (e, status) in [
            (service::Error::invalid("name", "is required"), 400),
            (service::Error::Forbidden("no".into()), 403),
            (service::Error::NotFound("order"), 404),
            (service::Error::Conflict("order is issued".into()), 409),
            (service::Error::Randomness, 500),
        ] {
            assert_eq!(ApiError::from(e).status().as_u16(), status);
        }
        let invalid = ApiError::from(service::Error::invalid("name", "is required"));
        assert_eq!(invalid.problem_type(), "urn:estd:error:invalid-field");
        assert_eq!(invalid.detail(), "is required");
        let missing = ApiError::from(service::Error::NotFound("order"));
        assert_eq!(missing.detail(), "order not found");
    }

    #[test]
    fn internal_detail_is_not_shown() {
        let e = ApiError::from(service::Error::Inconsistent("secret path /x".into()));
        assert!(!e.detail().contains("secret"));
        let e = ApiError::Encoding("secret path /x".into());
        assert!(!e.detail().contains("secret"));
    }
}
