//! The admin listener: `/metrics` for Prometheus, `/healthz` (liveness),
//! `/readyz` (readiness: 503 while the store cannot write), and the admin
//! API under `/api/v1` (JSON; errors are RFC 9457 problem documents).
//!
//! A call flows: [`routes::find`] on the route table → `auth` (bearer
//! token, a person's session cookie with its CSRF token, or a client
//! certificate with the `admin-api` right) → the route's roles → the body,
//! read within limits → one handler per resource, which parses the call and
//! makes ONE call to a unit of work in [`crate::service`] (durable when it
//! returns) or reads what it shows. An actor that acts for an organisation sees only
//! that organisation's data; anything else answers 404.
//!
//! [`client`] and [`cli`] are the other side: `estd admin ...`.

mod activate_page;
pub mod auth;
mod backup;
mod certificates;
pub mod cli;
pub mod client;
mod crl;
pub mod export;
mod history;
mod login;
pub(crate) mod me;
mod openapi;
mod orders;
pub mod organisations;
mod people;
pub mod problem;
pub mod profiles;
mod public;
mod request;
mod response;
pub mod routes;
mod tokens;
mod views;

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;

use crate::app::App;
use crate::http::{Connection, RequestLog};
use crate::model::Actor;
use orders::OrderChange;
use problem::ApiError;
/// The admin API's query-string parser (public for the fuzz target).
pub use request::Query;
use request::{read_body, ApiRequest};
use response::{with_body, ApiResult};
use routes::{Access, Endpoint, RouteMatch, API_PREFIX};

/// The OpenAPI 3.0 document of the admin API, served at `/api/v1/openapi.json`
/// (derived from the route table and the types: see `openapi.rs`).
pub fn openapi_json() -> &'static str {
    openapi::json_text()
}

/// An admin API call that takes a JSON body, for [`check_body`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// `POST /organisations`.
    CreateOrganisation,
    /// `PATCH /organisations/{cvr}`.
    UpdateOrganisation,
    /// `POST /organisations/{cvr}/tokens` and `POST /tokens`.
    CreateToken,
    /// `POST /profiles`, with or without an order.
    CreateProfile,
    /// `PATCH /profiles/{id}`.
    UpdateProfile,
    /// `POST /orders`.
    CreateOrder,
    /// `POST /certificates/{serial}/revoke`.
    RevokeCertificate,
    /// The calls that take no fields (renew, block, approve, reject, new code, delete).
    NoFields,
}

impl BodyKind {
    /// Every kind.
    pub const ALL: [BodyKind; 8] = [
        BodyKind::CreateOrganisation,
        BodyKind::UpdateOrganisation,
        BodyKind::CreateToken,
        BodyKind::CreateProfile,
        BodyKind::UpdateProfile,
        BodyKind::CreateOrder,
        BodyKind::RevokeCertificate,
        BodyKind::NoFields,
    ];
}

/// Parses `body` as the JSON body of `kind` and makes every check the
/// handler makes before it reads or writes the store, with `org` and
/// `profile` standing for what the store holds (the organisation and profile
/// the call is about). The handlers call the same functions; this entry
/// point exists so that the fuzz target reaches them without a server.
pub fn check_body(
    kind: BodyKind,
    body: &[u8],
    org: &crate::model::Organisation,
    profile: &crate::model::Profile,
) -> Result<(), ApiError> {
    use request::parse_json;
    match kind {
        BodyKind::CreateOrganisation => {
            organisations::organisation_from(parse_json(body)?).map(drop)
        }
        BodyKind::UpdateOrganisation => {
            organisations::apply_changes(&mut org.clone(), parse_json(body)?)
        }
        BodyKind::CreateToken => tokens::check_new_token(
            &parse_json(body)?,
            &crate::config::AdminTokensConfig::default(),
            crate::model::now_unix(),
        )
        .map(drop),
        BodyKind::CreateProfile => {
            let input: profiles::NewProfile = parse_json(body)?;
            let created = profiles::profile_from(&input, org, profile.id.clone())?;
            if let Some(order) = input.order() {
                crate::service::orders::check_order_request(
                    &order.request(&created),
                    org,
                    &created,
                )?;
            }
            Ok(())
        }
        BodyKind::UpdateProfile => {
            profiles::apply_changes(&mut profile.clone(), parse_json(body)?, org)
        }
        BodyKind::CreateOrder => {
            let request = orders::order_request(parse_json(body)?);
            crate::service::orders::check_order_request(&request, org, profile)?;
            Ok(())
        }
        BodyKind::RevokeCertificate => parse_json::<certificates::Revocation>(body).map(drop),
        BodyKind::NoFields => parse_json::<orders::NoFields>(body).map(drop),
    }
}

/// Routes one admin request.
pub async fn handle(
    app: &Arc<App>,
    conn: &Arc<Connection>,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    if path == API_PREFIX || path.starts_with(&format!("{API_PREFIX}/")) {
        return api(app, conn, req).await;
    }
    let (endpoint, resp) = match (req.method().clone(), path.as_str()) {
        (Method::GET, "/metrics") => {
            app.metrics.observe_store(&app.store.health());
            (
                "metrics",
                with_body(
                    StatusCode::OK,
                    "text/plain; version=0.0.4",
                    app.metrics.render(),
                ),
            )
        }
        // The OpenAPI document also at the listener's root, where tools look first.
        (Method::GET, "/openapi.json") => (
            "api-openapi",
            with_body(StatusCode::OK, "application/json", openapi_json()),
        ),
        // The invitation e-mail's link: a page, not the JSON API.
        (_, "/activate") => ("activate", activate_page::serve(app, req).await),
        (Method::GET, "/healthz") => (
            "healthz",
            with_body(StatusCode::OK, "text/plain", &b"ok\n"[..]),
        ),
        // Readiness, unlike liveness, fails while the store cannot write:
        // a balancer should send enrolments elsewhere, not restart estd.
        (Method::GET, "/readyz") => match app.store.readiness().await {
            Ok(()) => (
                "readyz",
                with_body(StatusCode::OK, "text/plain", &b"ready\n"[..]),
            ),
            Err(why) => (
                "readyz",
                with_body(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    format!("not ready: the store cannot write: {why}\n"),
                ),
            ),
        },
        (_, "/metrics") | (_, "/healthz") | (_, "/readyz") => (
            "unknown",
            with_body(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain",
                &b"method not allowed; use GET\n"[..],
            ),
        ),
        _ => (
            "unknown",
            with_body(StatusCode::NOT_FOUND, "text/plain", &b"not found\n"[..]),
        ),
    };
    let mut resp = resp;
    resp.extensions_mut().insert(RequestLog {
        endpoint,
        ..Default::default()
    });
    resp
}

/// Serves one `/api/v1` request; every error becomes a problem document.
async fn api(
    app: &Arc<App>,
    conn: &Arc<Connection>,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let mut log = RequestLog {
        endpoint: "api-unknown",
        ..Default::default()
    };
    let mut resp = serve(app, conn, req, &mut log)
        .await
        .unwrap_or_else(ApiError::into_response);
    resp.extensions_mut().insert(log);
    resp
}

async fn serve(
    app: &App,
    conn: &Connection,
    req: Request<Incoming>,
    log: &mut RequestLog,
) -> ApiResult {
    let path = req.uri().path().strip_prefix(API_PREFIX).unwrap_or("");
    let (route, params) = match routes::find(req.method().as_str(), path) {
        RouteMatch::Found(route, params) => (route, params),
        RouteMatch::WrongMethod(allowed) => {
            return Err(ApiError::MethodNotAllowed {
                allow: allowed.join(", "),
            })
        }
        RouteMatch::NoSuchPath => {
            return Err(ApiError::NotFound(format!(
                "no admin API path {:?}",
                req.uri().path()
            )))
        }
    };
    log.endpoint = route.endpoint.log_name();
    let query = Query::parse(req.uri().query())?;
    let changes_state = !matches!(*req.method(), Method::GET | Method::HEAD);
    let caller = match route.access {
        Access::Public => None,
        Access::Roles(_) | Access::Person => {
            let caller = auth::caller(app, conn, req.headers(), changes_state).await?;
            log.principal = Some(caller.actor.id.to_string());
            permit(route.access, &caller)?;
            Some(caller)
        }
    };
    let (parts, body) = if req.method() == Method::GET {
        (req.into_parts().0, Bytes::new())
    } else {
        read_body(req, app.config.server.body_read_timeout()).await?
    };
    let request = ApiRequest {
        params,
        query,
        headers: parts.headers,
        body,
    };
    match caller {
        None => public_endpoint(app, route.endpoint, &request).await,
        Some(caller) => match (&caller.session, route.access) {
            (Some(session), Access::Person) => {
                me::endpoint(app, &caller.actor, session, route.endpoint, &request).await
            }
            _ => endpoint(app, &caller.actor, route.endpoint, &request).await,
        },
    }
}

/// Whether `caller` may call a route of `access`: 403 naming what it needs.
fn permit(access: Access, caller: &auth::Caller) -> Result<(), ApiError> {
    match access {
        Access::Public => Ok(()),
        Access::Roles(roles) if caller.actor.roles.any(roles) => Ok(()),
        Access::Roles(roles) => {
            let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
            Err(ApiError::Forbidden(format!(
                "this call needs one of the roles {}",
                names.join(", ")
            )))
        }
        Access::Person if caller.session.is_some() => Ok(()),
        Access::Person => Err(ApiError::Forbidden(
            "this call is a logged-in person's own (POST /api/v1/login); \
             a machine credential has no account"
                .into(),
        )),
    }
}

/// The routes that need no credentials.
async fn public_endpoint(app: &App, endpoint: Endpoint, req: &ApiRequest) -> ApiResult {
    match endpoint {
        Endpoint::OpenApi => {
            req.query.only(&[])?;
            Ok(with_body(
                StatusCode::OK,
                "application/json",
                openapi_json(),
            ))
        }
        Endpoint::PublicCertificates => public::search(app, req),
        Endpoint::Terms => login::terms(app, req),
        Endpoint::GetActivation => login::activation(app, req),
        Endpoint::Activate => login::activate(app, req).await,
        Endpoint::Login => login::login(app, req).await,
        other => Err(ApiError::Unrouted(other)),
    }
}

async fn endpoint(app: &App, actor: &Actor, endpoint: Endpoint, req: &ApiRequest) -> ApiResult {
    use Endpoint as E;
    match endpoint {
        E::OpenApi
        | E::PublicCertificates
        | E::Terms
        | E::GetActivation
        | E::Activate
        | E::Login => public_endpoint(app, endpoint, req).await,
        E::ListPeople => people::list(app, actor, req),
        E::InvitePerson => people::invite(app, actor, req).await,
        E::ListOperators => people::list(app, actor, req),
        E::InviteOperator => people::invite(app, actor, req).await,
        E::GetPerson => people::get(app, actor, req),
        E::DeactivatePerson => people::deactivate(app, actor, req).await,
        E::Reinvite => people::reinvite(app, actor, req).await,
        E::Logout
        | E::GetSession
        | E::MyOrders
        | E::IssuePkcs12
        | E::IssueFromCsr
        | E::MyCertificates
        | E::MyCertificate
        | E::BlockMyCertificate
        | E::RenewMyCertificate
        | E::MyHistory
        | E::MyTasks => Err(ApiError::Unrouted(endpoint)),
        E::ListOrganisations => organisations::list(app, actor, req),
        E::CreateOrganisation => organisations::create(app, actor, req).await,
        E::GetOrganisation => organisations::get(app, actor, req),
        E::UpdateOrganisation => organisations::update(app, actor, req).await,
        E::CreateToken => tokens::create_org_token(app, actor, req).await,
        E::ListTokens => tokens::list_org_tokens(app, actor, req),
        E::EmailValidations => organisations::email_validations(app, actor, req),
        E::RevokeToken => tokens::revoke_org_token(app, actor, req).await,
        E::CreateOperatorToken => tokens::create_operator_token(app, actor, req).await,
        E::ListOperatorTokens => tokens::list_operator_tokens(app, actor, req),
        E::RevokeOperatorToken => tokens::revoke_operator_token(app, actor, req).await,
        E::SearchProfiles => profiles::search(app, actor, req),
        E::CreateProfile => profiles::create(app, actor, req).await,
        E::GetProfile => profiles::get(app, actor, req),
        E::UpdateProfile => profiles::update(app, actor, req).await,
        E::ProfileCertificatesCsv => export::profile_certificates(app, actor, req),
        E::ExportCsv => export::export(app, actor, req),
        E::ProfilesCsv => export::profiles(app, actor, req),
        E::ListOrders => orders::list(app, actor, req),
        E::CreateOrder => orders::create(app, actor, req).await,
        E::GetOrder => orders::get(app, actor, req),
        E::DeleteOrder => orders::change(app, actor, req, OrderChange::Delete).await,
        E::ApproveOrder => orders::change(app, actor, req, OrderChange::Approve).await,
        E::RejectOrder => orders::change(app, actor, req, OrderChange::Reject).await,
        E::NewCode => orders::new_code(app, actor, req).await,
        E::GetCertificate => certificates::get(app, actor, req),
        E::RenewCertificate => certificates::renew(app, actor, req).await,
        E::RevokeCertificate => certificates::revoke(app, actor, req).await,
        E::BlockCertificate => certificates::block(app, actor, req).await,
        E::AuditLog => history::audit_log(app, actor, req),
        E::Notifications => history::notifications(app, actor, req),
        E::GetCrl => crl::get(app, actor, req),
        E::RegenerateCrl => crl::regenerate(app, actor, req).await,
        E::WriteBackup => backup::write(app, actor, req).await,
    }
}
