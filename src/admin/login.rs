//! Activation, login and the terms: the calls a person makes before they
//! have a session. The rules live in [`crate::service::people`] and
//! [`crate::service::login`].

use http::{header, HeaderValue, StatusCode};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::auth::set_session_cookie;
use super::people::PersonView;
use super::problem::ApiError;
use super::request::ApiRequest;
use super::response::{json, ApiResult};
use crate::app::App;
use crate::model::Role;
use crate::service::{login as login_service, people};

/// The terms a user accepts before browser issuance.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "Terms")]
pub(super) struct TermsView {
    /// What `accept_terms` names.
    version: String,
    text: String,
}

/// `GET /terms`.
pub fn terms(app: &App, req: &ApiRequest) -> ApiResult {
    req.query.only(&[])?;
    let cfg = &app.config.people;
    json(
        StatusCode::OK,
        &TermsView {
            version: cfg.terms_version.clone(),
            text: cfg.terms_text.clone(),
        },
    )
}

/// What an activation link shows.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "ActivationView")]
pub(super) struct ActivationView {
    name: String,
    email: String,
    /// Organisation; none for a server operator.
    cvr: Option<String>,
    roles: Vec<Role>,
    /// The TOTP secret, base32, to type into an authenticator app.
    totp_secret: String,
    /// The same as an `otpauth://` URI (for a QR code).
    totp_uri: String,
}

/// `GET /activation?token=…`: who is invited, and the TOTP secret to enrol.
pub fn activation(app: &App, req: &ApiRequest) -> ApiResult {
    req.query.only(&["token"])?;
    let token = req
        .query
        .get("token")
        .ok_or_else(|| ApiError::invalid("token", "the activation link's token is required"))?;
    let a = people::activation(app.services(), token)?;
    json(
        StatusCode::OK,
        &ActivationView {
            name: a.person.name.clone(),
            email: a.person.email.clone(),
            cvr: a.person.cvr.clone(),
            roles: a.person.roles.clone(),
            totp_secret: a.totp_secret.base32(),
            totp_uri: a.totp_uri,
        },
    )
}

/// The body of `POST /activation`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Activate {
    /// The activation link's token.
    token: String,
    /// The new password: 12 to 128 characters.
    password: String,
    /// The code the authenticator shows now for the secret of `GET /activation`.
    code: String,
}

/// `POST /activation`: sets the password and confirms the authenticator.
pub async fn activate(app: &App, req: &ApiRequest) -> ApiResult {
    req.query.only(&[])?;
    let input: Activate = req.json()?;
    let person =
        people::activate(app.services(), &input.token, &input.password, &input.code).await?;
    json(StatusCode::OK, &PersonView::of(&person))
}

/// The body of `POST /login`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Login {
    /// The organisation; leave out for a server operator.
    cvr: Option<String>,
    email: String,
    password: String,
    /// The authenticator's code now.
    code: String,
}

/// The answer to a login (and to `GET /session`).
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "Session")]
pub(super) struct SessionView {
    /// Send it in `X-CSRF-Token` with every call that changes something.
    pub(super) csrf_token: String,
    pub(super) person: PersonView,
    /// Seconds without a call after which the session ends.
    pub(super) idle_timeout_secs: u64,
}

/// `POST /login`: a session cookie (`Set-Cookie`) and its CSRF token.
pub async fn login(app: &App, req: &ApiRequest) -> ApiResult {
    req.query.only(&[])?;
    let input: Login = req.json()?;
    let session = login_service::login(
        app.services(),
        input.cvr.as_deref(),
        &input.email,
        &input.password,
        &input.code,
    )
    .await?;
    let mut resp = json(
        StatusCode::OK,
        &SessionView {
            csrf_token: session.csrf,
            person: PersonView::of(&session.person),
            idle_timeout_secs: app.config.people.session_idle_secs,
        },
    )?;
    let cookie = HeaderValue::from_str(&set_session_cookie(&session.cookie))
        .map_err(|e| ApiError::Encoding(Box::new(e)))?;
    resp.headers_mut().insert(header::SET_COOKIE, cookie);
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}
