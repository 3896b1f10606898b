//! The public certificate database: published certificates only, no
//! credentials, read-only.

use http::StatusCode;

use super::problem::ApiError;
use super::request::ApiRequest;
use super::response::{json, ApiResult};
use super::views::{Items, PublicCertView};
use crate::app::App;
use crate::model::{is_valid_cvr, now_unix, CertRecord, Serial, CVR_RULE};

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
    let wanted = |c: &CertRecord| {
        c.published
            && cvr.is_none_or(|w| w == c.cvr)
            && email.is_none_or(|w| {
                c.email
                    .as_deref()
                    .is_some_and(|e| e.eq_ignore_ascii_case(w))
            })
    };
    let now = now_unix();
    let mut items = Vec::new();
    let mut total = 0;
    if let Some(serial) = serial {
        // A direct look-up; no need to scan.
        if let Some(c) = app.store.cert(&serial)?.filter(|c| wanted(c)) {
            total = 1;
            items.push(PublicCertView::new(&c, now));
        }
    } else {
        for c in app.store.certs() {
            let c = c?;
            if wanted(&c) {
                total += 1;
                if items.len() < MAX_RESULTS {
                    items.push(PublicCertView::new(&c, now));
                }
            }
        }
    }
    json(StatusCode::OK, &Items { items, total })
}
