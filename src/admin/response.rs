//! Building admin API answers: JSON, CSV and plain text.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;

use super::problem::ApiError;

/// A handler's answer.
pub type ApiResult = Result<Response<Full<Bytes>>, ApiError>;

/// A response with a body and a content type.
pub fn with_body(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// A JSON answer.
pub fn json<T: Serialize>(status: StatusCode, value: &T) -> ApiResult {
    let body = serde_json::to_vec(value).map_err(|e| ApiError::Encoding(Box::new(e)))?;
    Ok(with_body(status, "application/json", body))
}

/// A 201 JSON answer with a `Location` header.
pub fn created<T: Serialize>(location: &str, value: &T) -> ApiResult {
    let mut r = json(StatusCode::CREATED, value)?;
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    Ok(r)
}

/// A CSV attachment.
pub fn csv(filename: &str, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut r = with_body(StatusCode::OK, "text/csv; charset=utf-8", body);
    let disposition = format!("attachment; filename=\"{filename}\"");
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    r
}
