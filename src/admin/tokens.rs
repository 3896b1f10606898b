//! Admin API tokens: an organisation's (`/organisations/{cvr}/tokens`) and
//! the server operators' own (`/tokens`).
//!
//! Only a server operator creates tokens: a token or certificate of an
//! organisation must not mint more credentials for itself (later an
//! administrator role may). An organisation's actors may list and revoke its
//! tokens (revoking a leaked one should not wait for an operator). Every
//! token expires; a revoked or expired one is refused with 401 (see
//! [`crate::service::token_actor`]). Lists show a token's public id, never the
//! token, which exists only in the creation answer.

use http::StatusCode;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::problem::ApiError;
use super::request::ApiRequest;
use super::response::{created, json, ApiResult};
use super::views::{rfc3339, Items};
use crate::app::App;
use crate::config::AdminTokensConfig;
use crate::model::{now_unix, parse_rfc3339, Actor, TokenRecord, UnixSeconds};
use crate::service;

/// The body of `POST /organisations/{cvr}/tokens` and `POST /tokens`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewToken {
    name: String,
    /// Lifetime in days (default: `admin_tokens.default_days`).
    expires_in_days: Option<u64>,
    /// Or the moment it expires, RFC 3339 in UTC (`2026-05-01T12:00:00Z`).
    expires_at: Option<String>,
}

/// A token as lists show it.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "Token")]
pub(super) struct TokenView {
    id: String,
    name: String,
    cvr: Option<String>,
    created_at: String,
    /// `None` only for tokens made before tokens expired.
    expires_at: Option<String>,
    revoked_at: Option<String>,
    /// Its state now.
    state: crate::model::TokenState,
}

impl TokenView {
    fn of(hash: &[u8; 32], rec: &TokenRecord, now: UnixSeconds) -> TokenView {
        TokenView {
            id: service::tokens::token_id(hash),
            name: rec.name.clone(),
            cvr: rec.cvr.clone(),
            created_at: rfc3339(rec.created_at),
            expires_at: rec.expires_at.map(rfc3339),
            revoked_at: rec.revoked_at.map(rfc3339),
            state: rec.state(now),
        }
    }
}

/// The creation answer: the token (shown this once) and its view.
#[derive(Debug, Serialize, JsonSchema)]
pub(super) struct CreatedToken {
    token: String,
    #[serde(flatten)]
    view: TokenView,
}

/// The checked name and expiry of a new token at `now`.
pub(super) fn check_new_token(
    input: &NewToken,
    limits: &AdminTokensConfig,
    now: UnixSeconds,
) -> Result<(String, UnixSeconds), ApiError> {
    let name = input.name.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "name",
            "is required: 1 to 64 printable characters",
        ));
    }
    let max = u64::from(limits.max_days);
    let latest = now + max * 86_400;
    let expires_at = match (input.expires_in_days, &input.expires_at) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "expires_at",
                "give expires_in_days or expires_at, not both",
            ))
        }
        (Some(days), None) => {
            if !(1..=max).contains(&days) {
                return Err(ApiError::invalid(
                    "expires_in_days",
                    format!("must be 1 to {max}"),
                ));
            }
            now + days * 86_400
        }
        (None, Some(text)) => {
            let at = parse_rfc3339(text).ok_or_else(|| {
                ApiError::invalid(
                    "expires_at",
                    "must be a time in UTC like 2026-05-01T12:00:00Z",
                )
            })?;
            if at <= now || at > latest {
                return Err(ApiError::invalid(
                    "expires_at",
                    format!("must be in the future and at most {max} days ahead"),
                ));
            }
            at
        }
        (None, None) => now + u64::from(limits.default_days) * 86_400,
    };
    Ok((name.to_owned(), expires_at))
}

/// Creates a token for `cvr` (an operator's for `None`); the service checks
/// the actor may, before the body is read.
async fn create(app: &App, actor: &Actor, req: &ApiRequest, cvr: Option<&str>) -> ApiResult {
    let now = now_unix();
    let input = || {
        let input: NewToken = req.json()?;
        check_new_token(&input, &app.config.admin_tokens, now)
    };
    let made = service::create_token(app.services(), actor, cvr, input).await?;
    let location = match cvr {
        Some(c) => format!("/api/v1/organisations/{c}/tokens"),
        None => "/api/v1/tokens".to_owned(),
    };
    created(
        &location,
        &CreatedToken {
            view: TokenView::of(&made.hash, &made.record, now),
            token: made.token,
        },
    )
}

/// The tokens of `cvr` (operators' for `None`), newest first; the service
/// checks the actor may list them.
fn list(app: &App, actor: &Actor, req: &ApiRequest, cvr: Option<&str>) -> ApiResult {
    let tokens = service::list_tokens(app.services(), actor, cvr)?;
    req.query.only(&[])?;
    let now = now_unix();
    let mut views: Vec<_> = tokens
        .iter()
        .map(|(hash, rec)| (rec.created_at, TokenView::of(hash, rec, now)))
        .collect();
    views.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.id.cmp(&b.1.id)));
    json(
        StatusCode::OK,
        &Items::all(views.into_iter().map(|(_, v)| v).collect()),
    )
}

/// Revokes the token `id` of `cvr` (an operator's for `None`); the service
/// checks the actor may, before the query is.
async fn revoke(app: &App, actor: &Actor, req: &ApiRequest, cvr: Option<&str>) -> ApiResult {
    let id = match cvr {
        Some(_) => req.param(1),
        None => req.param(0),
    };
    let check = || req.query.only(&[]);
    let (hash, rec) = service::revoke_token(app.services(), actor, cvr, id, check).await?;
    json(StatusCode::OK, &TokenView::of(&hash, &rec, now_unix()))
}

/// `POST /organisations/{cvr}/tokens` (operators only).
pub async fn create_org_token(app: &App, actor: &Actor, req: &ApiRequest) -> ApiResult {
    create(app, actor, req, Some(req.param(0))).await
}

/// `GET /organisations/{cvr}/tokens`.
pub fn list_org_tokens(app: &App, actor: &Actor, req: &ApiRequest) -> ApiResult {
    list(app, actor, req, Some(req.param(0)))
}

/// `DELETE /organisations/{cvr}/tokens/{id}`.
pub async fn revoke_org_token(app: &App, actor: &Actor, req: &ApiRequest) -> ApiResult {
    revoke(app, actor, req, Some(req.param(0))).await
}

/// `POST /tokens`: an operator token (operators only).
pub async fn create_operator_token(app: &App, actor: &Actor, req: &ApiRequest) -> ApiResult {
    create(app, actor, req, None).await
}

/// `GET /tokens`: the operators' tokens (operators only).
pub fn list_operator_tokens(app: &App, actor: &Actor, req: &ApiRequest) -> ApiResult {
    list(app, actor, req, None)
}

/// `DELETE /tokens/{id}` (operators only).
pub async fn revoke_operator_token(app: &App, actor: &Actor, req: &ApiRequest) -> ApiResult {
    revoke(app, actor, req, None).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(days: Option<u64>, at: Option<&str>) -> NewToken {
        NewToken {
            name: " sync ".into(),
            expires_in_days: days,
            expires_at: at.map(str::to_owned),
        }
    }

    #[test]
    fn lifetimes_are_checked() {
        let limits = AdminTokensConfig::default();
        let now = 1_800_000_000;
        assert_eq!(
            check_new_token(&input(None, None), &limits, now).ok(),
            Some(("sync".to_owned(), now + 90 * 86_400))
        );
        assert_eq!(
            check_new_token(&input(Some(730), None), &limits, now)
                .map(|t| t.1)
                .ok(),
            Some(now + 730 * 86_400)
        );
        assert!(check_new_token(&input(Some(731), None), &limits, now).is_err());
        assert!(check_new_token(&input(Some(0), None), &limits, now).is_err());
        let later = parse_rfc3339("2027-02-01T00:00:00Z").expect("parses");
        assert!(later > now);
        assert_eq!(
            check_new_token(&input(None, Some("2027-02-01T00:00:00Z")), &limits, now)
                .map(|t| t.1)
                .ok(),
            Some(later)
        );
        for bad in [
            "2027-01-15 08:00:00Z",
            "2027-01-15T08:00:00+01:00",
            "2027-13-15T08:00:00Z",
            "2027-02-30T08:00:00Z",
            "+027-01-15T08:00:00Z",
            "2020-01-15T08:00:00Z",
            "2027-01-15T08:00:00Z",
            "2030-01-15T08:00:00Z",
        ] {
            assert!(
                check_new_token(&input(None, Some(bad)), &limits, now).is_err(),
                "{bad}"
            );
        }
        assert!(
            check_new_token(&input(Some(3), Some("2027-02-01T00:00:00Z")), &limits, now).is_err()
        );
    }

    #[test]
    fn utc_times_parse() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20Z"), Some(1_700_000_000));
        assert_eq!(
            rfc3339(parse_rfc3339("2026-05-01T12:00:00Z").expect("t")),
            "2026-05-01T12:00:00Z"
        );
    }
}
