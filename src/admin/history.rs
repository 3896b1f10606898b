//! History: the audit log and the notification outbox, each filtered to what
//! the actor may see.

use http::StatusCode;
use schemars::JsonSchema;
use serde::Serialize;

use super::problem::ApiError;
use super::request::ApiRequest;
use super::response::{json, ApiResult};
use super::views::{AuditView, Items, NotificationView};
use crate::app::App;
use crate::model::Actor;
use crate::model::{is_valid_cvr, Serial, CVR_RULE};
use crate::service;

/// Default and largest number of audit events in one answer (the latest).
const DEFAULT_AUDIT_LIMIT: u64 = 1000;
const MAX_AUDIT_LIMIT: u64 = 10_000;

fn cvr_filter(req: &ApiRequest) -> Result<Option<&str>, ApiError> {
    match req.query.get("cvr") {
        Some(c) if !is_valid_cvr(c) => Err(ApiError::invalid("cvr", CVR_RULE)),
        other => Ok(other),
    }
}

/// Whether the actor may see a record of organisation `cvr` (operators see
/// records without one, too).
fn visible(actor: &Actor, cvr: Option<&str>) -> bool {
    match cvr {
        Some(c) => actor.may_access(c),
        None => actor.is_operator(),
    }
}

/// An audit event with its id (the paging cursor).
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "AuditEvent")]
pub(super) struct AuditItem {
    id: u64,
    #[serde(flatten)]
    event: AuditView,
}

/// A page of the audit log.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "AuditList")]
pub(super) struct AuditPage {
    items: Vec<AuditItem>,
    /// How many items this page has.
    total: usize,
    /// `before` for the page of older events; `null` when this page was not full.
    next_before: Option<u64>,
}

/// `GET /audit?cvr=&profile_id=&serial=&order=&limit=&before=`: the latest
/// events (older than the event `before`, if given), oldest first. The store
/// reads from the newest backwards and stops when the page is full.
pub fn audit_log(app: &App, actor: &Actor, req: &ApiRequest) -> ApiResult {
    let q = &req.query;
    q.only(&["cvr", "profile_id", "serial", "order", "limit", "before"])?;
    let cvr = cvr_filter(req)?;
    let profile_id = q.get("profile_id");
    let serial = q
        .get("serial")
        .map(|s| {
            Serial::from_hex(s)
                .ok_or_else(|| ApiError::invalid("serial", "must be 32 hexadecimal digits"))
        })
        .transpose()?;
    let order = q.get("order");
    let limit = q.number("limit", DEFAULT_AUDIT_LIMIT, 1, MAX_AUDIT_LIMIT)? as usize;
    let before = match q.get("before") {
        Some(_) => Some(q.number("before", 0, 1, u64::MAX)?),
        None => None,
    };
    let (events, next_before) =
        app.store
            .audit_page(before, limit, &|e: &crate::model::AuditEvent| {
                visible(actor, e.cvr.as_deref())
                    && cvr.is_none_or(|c| e.cvr.as_deref() == Some(c))
                    && profile_id.is_none_or(|p| e.profile_id.as_deref() == Some(p))
                    && serial.is_none_or(|s| e.serial == Some(s))
                    && order.is_none_or(|o| e.order_id.as_deref() == Some(o))
            })?;
    let items: Vec<AuditItem> = events
        .iter()
        .map(|(id, e)| AuditItem {
            id: *id,
            event: AuditView::from(e),
        })
        .collect();
    json(
        StatusCode::OK,
        &AuditPage {
            total: items.len(),
            items,
            next_before,
        },
    )
}

/// `GET /notifications?cvr=`: the outbox, oldest first.
pub fn notifications(app: &App, actor: &Actor, req: &ApiRequest) -> ApiResult {
    req.query.only(&["cvr"])?;
    let cvr = cvr_filter(req)?;
    let items: Vec<NotificationView> = service::list_notifications(app.services(), actor, cvr)?
        .iter()
        .map(NotificationView::from)
        .collect();
    json(StatusCode::OK, &Items::all(items))
}
