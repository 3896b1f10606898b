//! Certificates: read, renew, revoke and block. The rules live in
//! [`crate::service::certificates`].

use http::StatusCode;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::orders::NoFields;
use super::problem::ApiError;
use super::request::ApiRequest;
use super::response::{created, json, ApiResult};
use super::views::{CertView, CreatedOrderView};
use crate::app::App;
use crate::model::{now_unix, Actor, RevocationReason, Serial};
use crate::service;

/// The body of `POST /certificates/{serial}/revoke`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Revocation {
    #[serde(deserialize_with = "revoke_reason")]
    pub(super) reason: RevokeReason,
}

/// Why a certificate is revoked through the API: a [`RevocationReason`]
/// without `blocked`, which has a call of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RevokeReason {
    /// The organisation no longer exists.
    OrganisationCeased,
    /// Suspected misuse; successors are revoked too.
    SuspectedMisuse,
    /// The information in the certificate changed.
    InformationChanged,
    /// Replaced by another certificate.
    Superseded,
    /// Another reason.
    Other,
}

impl From<RevokeReason> for RevocationReason {
    fn from(reason: RevokeReason) -> RevocationReason {
        match reason {
            RevokeReason::OrganisationCeased => RevocationReason::OrganisationCeased,
            RevokeReason::SuspectedMisuse => RevocationReason::SuspectedMisuse,
            RevokeReason::InformationChanged => RevocationReason::InformationChanged,
            RevokeReason::Superseded => RevocationReason::Superseded,
            RevokeReason::Other => RevocationReason::Other,
        }
    }
}

fn revoke_reason<'de, D: serde::Deserializer<'de>>(d: D) -> Result<RevokeReason, D::Error> {
    super::profiles::refusing(
        d,
        "blocked",
        "a user certificate is blocked with POST /certificates/{serial}/block",
    )
}

/// The serial in the path: 32 hex digits, as `openssl x509 -serial` prints it.
fn path_serial(req: &ApiRequest) -> Result<Serial, ApiError> {
    Serial::from_hex(req.param(0))
        .ok_or_else(|| ApiError::invalid("serial", "must be 32 hexadecimal digits"))
}

/// `GET /certificates/{serial}`.
pub fn get(app: &App, actor: &Actor, req: &ApiRequest) -> ApiResult {
    req.query.only(&[])?;
    let serial = path_serial(req)?;
    let rec = service::visible_cert(app.services(), actor, &serial)?;
    json(StatusCode::OK, &CertView::new(&rec, now_unix()))
}

/// `POST /certificates/{serial}/renew`: orders a renewal (before expiry and
/// revocation only).
pub async fn renew(app: &App, actor: &Actor, req: &ApiRequest) -> ApiResult {
    req.query.only(&[])?;
    let _: NoFields = req.json_or_default()?;
    let serial = path_serial(req)?;
    let created_order = service::renew(app.services(), actor, &serial).await?;
    let view = CreatedOrderView::new(app.services(), created_order, now_unix());
    created(&format!("/api/v1/orders/{}", view.order.reference), &view)
}

/// The answer to a revocation: the certificate (whose `renewed_by` names its
/// successor) and the successors revoked with it.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "RevokedCertificate")]
pub(super) struct RevokedView {
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
    let (rec, also) =
        service::revoke_with_successors(app.services(), actor, &serial, input.reason.into())
            .await?;
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
    let rec = service::block(app.services(), actor, &serial).await?;
    json(StatusCode::OK, &CertView::new(&rec, now_unix()))
}
