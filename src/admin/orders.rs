//! Certificate orders: order, list, read (deleted ones too), delete, approve,
//! reject, and a new one-time code. The rules live in [`crate::service::orders`].

use http::StatusCode;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::problem::ApiError;
use super::request::ApiRequest;
use super::response::{created, json, ApiResult};
use super::views::{rfc3339, CreatedOrderView, Items, OrderView};
use crate::app::App;
use crate::model::{is_valid_cvr, now_unix, Actor, Identification, Issuance, CVR_RULE};
use crate::service::{self, OrderRequest};

/// `{name, email}` of the user a certificate is ordered for.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct UserInput {
    name: String,
    email: String,
}

/// The body of `POST /orders`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewOrder {
    profile_id: String,
    #[serde(default)]
    user: Option<UserInput>,
    /// With `user` only: whether the certificate goes into the public
    /// certificate database. Absent: as the profile says (`publish`).
    #[serde(default)]
    publish: Option<bool>,
    #[serde(default)]
    identification: Option<Identification>,
    #[serde(default)]
    issuance: Option<Issuance>,
}

/// Calls without a body take none, or an empty JSON object.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoFields {}

#[derive(Debug, Serialize, JsonSchema)]
pub(super) struct NewCode {
    reference: String,
    code: String,
    code_expires_at: Option<String>,
}

/// The order a `POST /orders` body asks for.
pub(super) fn order_request(input: NewOrder) -> OrderRequest {
    OrderRequest {
        profile_id: input.profile_id.trim().to_owned(),
        user: input.user.map(|u| (u.name, u.email.trim().to_owned())),
        publish: input.publish,
        identification: input.identification,
        issuance: input.issuance,
    }
}

/// `POST /orders`.
pub async fn create(app: &App, actor: &Actor, req: &ApiRequest) -> ApiResult {
    let input: NewOrder = req.json()?;
    let request = order_request(input);
    let created_order = service::create_order(app.services(), actor, &request).await?;
    let view = CreatedOrderView::new(app.services(), created_order, now_unix());
    created(&format!("/api/v1/orders/{}", view.order.reference), &view)
}

/// `GET /orders?profile_id=&cvr=&user_email=`: orders that are not deleted.
pub fn list(app: &App, actor: &Actor, req: &ApiRequest) -> ApiResult {
    let q = &req.query;
    q.only(&["profile_id", "cvr", "user_email"])?;
    let profile_id = q.get("profile_id");
    let cvr = q.get("cvr");
    if cvr.is_some_and(|c| !is_valid_cvr(c)) {
        return Err(ApiError::invalid("cvr", CVR_RULE));
    }
    let user_email = q.get("user_email").map(str::trim);
    let filter = service::OrderFilter {
        profile_id,
        cvr,
        user_email,
    };
    let orders = service::list_orders(app.services(), actor, &filter, now_unix())?;
    let items: Vec<OrderView> = orders
        .into_iter()
        .map(|(o, shown)| OrderView::new(&o, shown))
        .collect();
    json(StatusCode::OK, &Items::all(items))
}

/// `GET /orders/{reference}`, deleted ones included (history).
pub fn get(app: &App, actor: &Actor, req: &ApiRequest) -> ApiResult {
    req.query.only(&[])?;
    let (order, shown) = service::show_order(app.services(), actor, req.param(0), now_unix())?;
    json(StatusCode::OK, &OrderView::new(&order, shown))
}

/// Which state change an order call makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderChange {
    /// "Delete certificate order" (before issue only).
    Delete,
    /// Approve a held API enrolment.
    Approve,
    /// Reject a held API enrolment.
    Reject,
}

/// `DELETE /orders/{reference}`, `POST .../approve`, `POST .../reject`.
pub async fn change(app: &App, actor: &Actor, req: &ApiRequest, change: OrderChange) -> ApiResult {
    req.query.only(&[])?;
    let _: NoFields = req.json_or_default()?;
    let id = req.param(0);
    let svc = app.services();
    let order = match change {
        OrderChange::Delete => service::delete_order(svc, actor, id).await?,
        OrderChange::Approve => service::approve(svc, actor, id).await?,
        OrderChange::Reject => service::reject(svc, actor, id).await?,
    };
    // As the service shows it: an approved order may still await its address.
    let shown = service::order_shown(svc, &order, now_unix());
    json(StatusCode::OK, &OrderView::new(&order, shown))
}

/// `POST /orders/{reference}/code`: a new one-time code (also unlocks).
pub async fn new_code(app: &App, actor: &Actor, req: &ApiRequest) -> ApiResult {
    req.query.only(&[])?;
    let _: NoFields = req.json_or_default()?;
    let (order, code) = service::renew_code(app.services(), actor, req.param(0)).await?;
    json(
        StatusCode::OK,
        &NewCode {
            reference: order.id.clone(),
            code,
            code_expires_at: order.code.as_ref().map(|c| rfc3339(c.expires_at)),
        },
    )
}
