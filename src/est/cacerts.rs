//! `GET [/<label>]/cacerts` (RFC 7030 4.1): the whole chain, issuing CA and
//! root, as a certs-only PKCS#7. Encoded once at start-up; no authentication.

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;

use super::{base64_response, require_method, EstError};
use crate::app::App;

/// Content type of `/cacerts`.
pub const CONTENT_TYPE: &str = "application/pkcs7-mime";

/// Answers with the pre-encoded chain. Every label shares the one CA.
pub fn handle<B>(app: &App, req: &Request<B>) -> Result<Response<Full<Bytes>>, EstError> {
    require_method(req, http::Method::GET, "GET")?;
    Ok(base64_response(CONTENT_TYPE, app.cacerts_body.clone()))
}
