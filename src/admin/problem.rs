//! Admin API errors and their RFC 9457 problem documents
//! (`application/problem+json`).

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;

use crate::orders::OpError;
use crate::problem::Problem;
use crate::store::StoreError;

pub use crate::problem::PROBLEM_JSON;

/// A refused or failed admin API call, with its HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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
    /// 409: a duplicate, or an illegal state transition (names the state).
    #[error("{0}")]
    Conflict(String),
    /// 413: the body is over the limit.
    #[error("request body larger than {0} bytes")]
    TooLarge(usize),
    /// 415: the body is not `application/json`.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 500: a fault of ours. The detail is logged, not shown.
    #[error("internal error")]
    Internal(String),
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
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The problem type: a URN for estd's own kinds, `about:blank` where the
    /// HTTP status says it all.
    pub fn problem_type(&self) -> &'static str {
        match self {
            ApiError::InvalidField { .. } => "urn:estd:error:invalid-field",
            ApiError::MalformedBody(_) => "urn:estd:error:malformed-body",
            ApiError::Conflict(_) => "urn:estd:error:conflict",
            _ => "about:blank",
        }
    }

    fn title(&self) -> &'static str {
        match self {
            ApiError::InvalidField { .. } => "Invalid field",
            ApiError::MalformedBody(_) => "Malformed request body",
            ApiError::Conflict(_) => "Conflict with the current state",
            other => other.status().canonical_reason().unwrap_or("Error"),
        }
    }

    fn detail(&self) -> String {
        match self {
            ApiError::InvalidField { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }

    /// The problem document as a response.
    pub fn into_response(self) -> Response<Full<Bytes>> {
        if let ApiError::Internal(detail) = &self {
            tracing::error!(%detail, "admin API internal error");
        }
        let problem = Problem {
            problem_type: self.problem_type(),
            title: self.title(),
            status: self.status().as_u16(),
            detail: self.detail(),
            field: match &self {
                ApiError::InvalidField { field, .. } => Some(field.clone()),
                _ => None,
            },
            retry_after: None,
        };
        let mut resp = problem.into_response();
        let h = resp.headers_mut();
        match &self {
            ApiError::Unauthorized(_) => {
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

impl From<OpError> for ApiError {
    fn from(e: OpError) -> Self {
        match e {
            OpError::Invalid { field, message } => ApiError::invalid(field, message),
            OpError::Forbidden(m) => ApiError::Forbidden(m),
            OpError::NotFound(what) => ApiError::NotFound(format!("{what} not found")),
            OpError::Conflict(m) => ApiError::Conflict(m),
            OpError::Internal(m) => ApiError::Internal(m),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => ApiError::Conflict(m),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_errors_keep_their_status() {
        for e in [
            OpError::invalid("name", "is required"),
            OpError::Forbidden("no".into()),
            OpError::NotFound("order"),
            OpError::Conflict("order is issued".into()),
            OpError::Internal("x".into()),
        ] {
            let status = e.status();
            assert_eq!(ApiError::from(e).status(), status);
        }
    }

    #[test]
    fn internal_detail_is_not_shown() {
        let e = ApiError::Internal("secret path /x".into());
        assert!(!e.detail().contains("secret"));
    }
}
