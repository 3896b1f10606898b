//! EST errors. Each carries its HTTP status and a short reason for the client,
//! sent as `text/plain`, or as an RFC 9457 problem document to a client whose
//! `Accept` asks for `application/problem+json`.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;

use crate::auth::CertRejection;
use crate::problem::Problem;
use crate::service;
use crate::store::StoreError;

/// An EST request that cannot be served: a refusal of the protocol itself,
/// or one of the unit of work it asked for.
#[derive(Debug, thiserror::Error)]
pub enum EstError {
    /// 400: the request is malformed at the protocol level (its headers,
    /// its body's framing or encoding).
    #[error("{0}")]
    BadRequest(String),
    /// 404: no such endpoint.
    #[error("not found")]
    NotFound,
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
    /// 500: an answer could not be encoded. The detail is logged, not shown.
    #[error("internal error")]
    Encoding(#[source] der::Error),
    /// Refused or failed by the unit of work (or by authentication, in its
    /// terms); the status comes from [`crate::http::error::status`]. A fault
    /// of ours shows only "internal error".
    #[error("{}", Shown(.0))]
    Service(#[from] service::Error),
}

/// What a client is told of a service error: its text, unless it is ours.
struct Shown<'a>(&'a service::Error);

impl std::fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_internal() {
            f.write_str("internal error")
        } else {
            self.0.fmt(f)
        }
    }
}

/// An error with its chain of causes, for the log.
struct Chain<'a>(&'a dyn std::error::Error);

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(e) = cause {
            write!(f, ": {e}")?;
            cause = e.source();
        }
        Ok(())
    }
}

impl EstError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            EstError::BadRequest(_) => StatusCode::BAD_REQUEST,
            EstError::NotFound => StatusCode::NOT_FOUND,
            EstError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            EstError::Timeout => StatusCode::REQUEST_TIMEOUT,
            EstError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            EstError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            EstError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            EstError::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            EstError::Encoding(_) => StatusCode::INTERNAL_SERVER_ERROR,
            EstError::Service(e) => crate::http::error::status(e),
        }
    }

    /// Whether this is a fault of ours rather than of the request.
    pub fn is_internal(&self) -> bool {
        match self {
            EstError::Encoding(_) => true,
            EstError::Service(e) => e.is_internal(),
            _ => false,
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
        if self.is_internal() {
            tracing::error!(error = %Chain(&self), "internal error");
        }
        let retry_after = match &self {
            EstError::TooManyRequests { retry_after } => Some(*retry_after),
            EstError::Service(e) => crate::http::error::retry_after(e),
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
            EstError::Service(service::Error::Unauthenticated(_)) => {
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

impl From<StoreError> for EstError {
    fn from(e: StoreError) -> Self {
        EstError::Service(e.into())
    }
}

impl From<CertRejection> for EstError {
    fn from(e: CertRejection) -> Self {
        EstError::Service(match e {
            // Not ours to recognise: the client may still try other credentials.
            CertRejection::Untrusted | CertRejection::Malformed => {
                service::Error::Unauthenticated(e.to_string())
            }
            _ => service::Error::Forbidden(e.to_string()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_of_ours_is_a_500_that_shows_no_detail() {
        let e = EstError::from(service::Error::Internal {
            what: "signing task",
            source: Some("secret detail".into()),
        });
        assert_eq!(e.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(e.to_string(), "internal error");
        assert!(e.is_internal());
        let r = e.into_response();
        assert!(!r.headers().contains_key(header::WWW_AUTHENTICATE));
    }

    #[test]
    fn a_refusal_keeps_its_text_and_its_status_from_the_one_mapping() {
        let e = EstError::from(service::Error::Unauthenticated("wrong code".into()));
        assert_eq!(e.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(e.to_string(), "wrong code");
        assert!(!e.is_internal());
        let r = e.into_response();
        assert_eq!(
            r.headers()[header::WWW_AUTHENTICATE],
            "Basic realm=\"estd\""
        );
        let e = EstError::from(service::Error::Conflict("renewed already".into()));
        assert_eq!(e.status(), StatusCode::CONFLICT);
        assert_eq!(e.to_string(), "renewed already");
    }
}
