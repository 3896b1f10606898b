//! Certificates: read, renew, revoke and block. The rules live in
//! [`crate::orders`].

use http::StatusCode;
use serde::{Deserialize, Serialize};

use super::commit;
use super::orders::NoFields;
use super::problem::ApiError;
use super::request::ApiRequest;
use super::response::{created, json, ApiResult};
use super::views::{CertView, CreatedOrderView};
use crate::app::App;
use crate::model::{now_unix, RevocationReason, Serial};
use crate::orders::{self as lifecycle, Actor};

/// The body of `POST /certificates/{serial}/revoke`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Revocation {
    pub(super) reason: String,
}

/// The serial in the path: 32 hex digits, as `openssl x509 -serial` prints it.
fn path_serial(req: &ApiRequest) -> Result<Serial, ApiError> {
    Serial::from_hex(req.param(0))
        .ok_or_else(|| ApiError::invalid("serial", "must be 32 hexadecimal digits"))
}

/// A revocation reason by its API name.
pub(super) fn parse_reason(value: &str) -> Result<RevocationReason, ApiError> {
    match value {
        "organisation-ceased" => Ok(RevocationReason::OrganisationCeased),
        "suspected-misuse" => Ok(RevocationReason::SuspectedMisuse),
        "information-changed" => Ok(RevocationReason::InformationChanged),
        "superseded" => Ok(RevocationReason::Superseded),
        "other" => Ok(RevocationReason::Other),
        "blocked" => Err(ApiError::invalid(
            "reason",
            "a user certificate is blocked with POST /certificates/{serial}/block",
        )),
        other => Err(ApiError::invalid(
            "reason",
            format!(
                "{other:?} is not one of organisation-ceased, suspected-misuse, \
                 information-changed, superseded, other"
            ),
        )),
    }
}

/// `GET /certificates/{serial}`.
pub fn get(app: &App, actor: &Actor, req: &ApiRequest) -> ApiResult {
    req.query.only(&[])?;
    let serial = path_serial(req)?;
    let rec = lifecycle::visible_cert(app, actor, &serial)?;
    json(StatusCode::OK, &CertView::new(&rec, now_unix()))
}

/// `POST /certificates/{serial}/renew`: orders a renewal (before expiry and
/// revocation only).
pub async fn renew(app: &App, actor: &Actor, req: &ApiRequest) -> ApiResult {
    req.query.only(&[])?;
    let _: NoFields = req.json_or_default()?;
    let serial = path_serial(req)?;
    let created_order = lifecycle::renew(app, actor, &serial)?;
    commit(app).await?;
    let view = CreatedOrderView::new(app, created_order, now_unix());
    created(&format!("/api/v1/orders/{}", view.order.reference), &view)
}

/// The answer to a revocation: the certificate (whose `renewed_by` names its
/// successor) and the successors revoked with it.
#[derive(Debug, Serialize)]
struct RevokedView {
    #[serde(flatten)]
    cert: CertView,
    /// Successors revoked with it (suspected misuse only), in chain order.
    also_revoked: Vec<String>,
}

/// `POST /certificates/{serial}/revoke` with `{reason}`. For suspected
/// misuse, the certificate's successors are revoked too.
pub async fn revoke(app: &App, actor: &Actor, req: &ApiRequest) -> ApiResult {
    req.query.only(&[])?;
    let serial = path_serial(req)?;
    let input: Revocation = req.json()?;
    let reason = parse_reason(&input.reason)?;
    let (rec, also) = lifecycle::revoke_with_successors(app, actor, &serial, reason)?;
    commit(app).await?;
    let now = now_unix();
    json(
        StatusCode::OK,
        &RevokedView {
            cert: CertView::new(&rec, now),
            also_revoked: also.iter().map(ToString::to_string).collect(),
        },
    )
}

/// `POST /certificates/{serial}/block`: blocks a user certificate, for good.
pub async fn block(app: &App, actor: &Actor, req: &ApiRequest) -> ApiResult {
    req.query.only(&[])?;
    let _: NoFields = req.json_or_default()?;
    let serial = path_serial(req)?;
    let rec = lifecycle::revoke(app, actor, &serial, RevocationReason::Blocked)?;
    commit(app).await?;
    json(StatusCode::OK, &CertView::new(&rec, now_unix()))
}
