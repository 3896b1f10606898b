//! The public certificate database: published certificates only, no
//! credentials, read-only.

use http::StatusCode;

use super::problem::ApiError;
use super::request::ApiRequest;
use super::response::{json, ApiResult};
use super::views::{Items, PublicCertView};
use crate::app::App;
use crate::model::{is_valid_cvr, now_unix, Serial, CVR_RULE};
use crate::service;

/// Most certificates in one answer.
const MAX_RESULTS: usize = 500;

/// `GET /public/certificates?email=&cvr=&serial=` (at least one; all given must match).
pub fn search(app: &App, req: &ApiRequest) -> ApiResult {
    let q = &req.query;
    q.only(&["email", "cvr", "serial"])?;
    let email = q.get("email").map(str::trim);
    let cvr = q.get("cvr");
    if cvr.is_some_and(|c| !is_valid_cvr(c)) {
        return Err(ApiError::invalid("cvr", CVR_RULE));
    }
    let serial = q
        .get("serial")
        .map(|s| {
            Serial::from_hex(s)
                .ok_or_else(|| ApiError::invalid("serial", "must be 32 hexadecimal digits"))
        })
        .transpose()?;
    if email.is_none() && cvr.is_none() && serial.is_none() {
        return Err(ApiError::invalid(
            "email",
            "give at least one of email, cvr and serial",
        ));
    }
    let filter = service::PublicFilter { email, cvr, serial };
    let (certs, total) = service::search_public_certs(app.services(), &filter, MAX_RESULTS)?;
    let now = now_unix();
    let items = certs.iter().map(|c| PublicCertView::new(c, now)).collect();
    json(StatusCode::OK, &Items { items, total })
}
