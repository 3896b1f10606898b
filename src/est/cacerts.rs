//! `GET [/<label>]/cacerts` (RFC 7030 4.1): every CA certificate a client
//! needs, as a certs-only PKCS#7: each generation's issuing CA and chain,
//! and the root rollover certificates (NewWithOld, OldWithNew) of §4.1.3.
//! (A DER SET OF has no order to convey which one issues.) Encoded on
//! first use and kept in the application state; no authentication.

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;

use super::{base64_response, codec, require_method, EstError};
use crate::app::App;
use crate::service;

/// Content type of `/cacerts`.
pub const CONTENT_TYPE: &str = "application/pkcs7-mime";

/// Answers with the encoded certificates. Every label shares the one CA.
pub fn handle<B>(app: &App, req: &Request<B>) -> Result<Response<Full<Bytes>>, EstError> {
    require_method(req, http::Method::GET, "GET")?;
    let body = match app.cacerts_body.get() {
        Some(body) => body.clone(),
        None => {
            let pkcs7 =
                codec::certs_only(&app.ca.published()).map_err(|e| service::Error::Internal {
                    what: "encoding the CA certificates",
                    source: Some(e.to_string().into()),
                })?;
            let body = Bytes::from(codec::encode_base64_wrapped(&pkcs7));
            app.cacerts_body.get_or_init(|| body).clone()
        }
    };
    Ok(base64_response(CONTENT_TYPE, body))
}
