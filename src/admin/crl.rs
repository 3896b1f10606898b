//! `GET /crl` (the current CRL, DER) and `POST /crl` (sign a new one now;
//! server operators only).

use http::StatusCode;
use schemars::JsonSchema;
use serde::Serialize;

use super::problem::ApiError;
use super::request::ApiRequest;
use super::response::{json, with_body, ApiResult};
use crate::app::App;
use crate::model::Actor;

#[derive(Serialize, JsonSchema)]
pub(super) struct CrlInfo {
    number: u64,
    this_update: u64,
    next_update: u64,
    size_bytes: usize,
}

/// The current CRL, as relying parties get it.
pub fn get(app: &App, _actor: &Actor, req: &ApiRequest) -> ApiResult {
    req.query.only(&[])?;
    let crl = app.revocation.current_crl();
    if crl.der.is_empty() {
        return Err(ApiError::NotFound("no CRL has been signed yet".into()));
    }
    Ok(with_body(
        StatusCode::OK,
        "application/pkix-crl",
        crl.der.clone(),
    ))
}

/// Signs a new CRL at once and answers with its number and times.
pub async fn regenerate(app: &App, actor: &Actor, req: &ApiRequest) -> ApiResult {
    req.query.only(&[])?;
    let crl = crate::service::regenerate_crl(app.services(), actor).await?;
    json(
        StatusCode::OK,
        &CrlInfo {
            number: crl.number,
            this_update: crl.this_update,
            next_update: crl.next_update,
            size_bytes: crl.der.len(),
        },
    )
}
