//! EST errors. Each carries its HTTP status and a short reason for the client,
//! sent as `text/plain`, or as an RFC 9457 problem document to a client whose
//! `Accept` asks for `application/problem+json`.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;

use crate::auth::CertRejection;
use crate::ca::csr::CsrError;
use crate::ca::CaError;
use crate::policy::{LinkingError, PolicyError};
use crate::problem::Problem;
use crate::store::StoreError;

/// An EST request that cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum EstError {
    /// 400: malformed request or CSR.
    #[error("{0}")]
    BadRequest(String),
    /// 401: no acceptable credentials; answered with a Basic challenge.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: authenticated, but not permitted.
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such endpoint.
    #[error("not found")]
    NotFound,
    /// 409: the request conflicts with what exists (a certificate's successor).
    #[error("{0}")]
    Conflict(String),
    /// 405: wrong method; carries the allowed one.
    #[error("method not allowed; use {0}")]
    MethodNotAllowed(&'static str),
    /// 408: the body did not arrive in time.
    #[error("request body not received in time")]
    Timeout,
    /// 413: body over the limit.
    #[error("request body larger than {0} bytes")]
    TooLarge(usize),
    /// 415: wrong content type.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 429: over a rate limit; carries the seconds until a retry would be allowed.
    #[error("too many requests; retry after {retry_after} seconds")]
    TooManyRequests {
        /// Whole seconds, at least 1.
        retry_after: u64,
    },
    /// 501: an optional EST operation estd does not offer.
    #[error("{0} is not supported by this server")]
    NotImplemented(&'static str),
    /// 500: a fault of ours. The detail is logged, not shown.
    #[error("internal error")]
    Internal(String),
}

impl EstError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            EstError::BadRequest(_) => StatusCode::BAD_REQUEST,
            EstError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            EstError::Forbidden(_) => StatusCode::FORBIDDEN,
            EstError::NotFound => StatusCode::NOT_FOUND,
            EstError::Conflict(_) => StatusCode::CONFLICT,
            EstError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            EstError::Timeout => StatusCode::REQUEST_TIMEOUT,
            EstError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            EstError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            EstError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            EstError::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            EstError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The problem type: a URN where a client may want to act on the kind,
    /// `about:blank` where the status says it all.
    pub fn problem_type(&self) -> &'static str {
        match self {
            EstError::TooManyRequests { .. } => "urn:estd:error:rate-limited",
            _ => "about:blank",
        }
    }

    /// The `text/plain` response.
    pub fn into_response(self) -> Response<Full<Bytes>> {
        self.into_response_as(false)
    }

    /// The response as a problem document if `problem_json`, else `text/plain`.
    pub fn into_response_as(self, problem_json: bool) -> Response<Full<Bytes>> {
        if let EstError::Internal(detail) = &self {
            tracing::error!(%detail, "internal error");
        }
        let retry_after = match &self {
            EstError::TooManyRequests { retry_after } => Some(*retry_after),
            _ => None,
        };
        let mut resp = if problem_json {
            let mut p = Problem::for_status(self.status(), self.to_string());
            p.problem_type = self.problem_type();
            p.retry_after = retry_after;
            p.into_response()
        } else {
            let mut resp = Response::new(Full::new(Bytes::from(format!("{self}\n"))));
            *resp.status_mut() = self.status();
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            if let Some(secs) = retry_after {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            resp
        };
        let h = resp.headers_mut();
        match self {
            EstError::Unauthorized(_) => {
                h.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"estd\""),
                );
            }
            EstError::MethodNotAllowed(allow) => {
                h.insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            _ => {}
        }
        resp
    }
}

impl From<CsrError> for EstError {
    fn from(e: CsrError) -> Self {
        EstError::BadRequest(e.to_string())
    }
}

impl From<PolicyError> for EstError {
    fn from(e: PolicyError) -> Self {
        EstError::Forbidden(e.to_string())
    }
}

impl From<LinkingError> for EstError {
    fn from(e: LinkingError) -> Self {
        EstError::BadRequest(e.to_string())
    }
}

impl From<StoreError> for EstError {
    fn from(e: StoreError) -> Self {
        EstError::Internal(e.to_string())
    }
}

impl From<CaError> for EstError {
    fn from(e: CaError) -> Self {
        EstError::Internal(e.to_string())
    }
}

impl From<CertRejection> for EstError {
    fn from(e: CertRejection) -> Self {
        match e {
            // Not ours to recognise: the client may still try other credentials.
            CertRejection::Untrusted | CertRejection::Malformed => {
                EstError::Unauthorized(e.to_string())
            }
            _ => EstError::Forbidden(e.to_string()),
        }
    }
}
