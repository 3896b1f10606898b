//! The web portal: server-rendered pages for administrators and users on
//! the admin listener, under `/portal`.
//!
//! A page flows: [`handle`] → the request's language and session
//! ([`context`]) → one handler per page, which checks the same roles as the
//! admin API route it stands beside (the route table in
//! [`crate::admin::routes`]), reads a form within limits with its CSRF token,
//! and makes ONE call to a unit of work in [`crate::service`] — the same call
//! the API makes. Templates ([`layout`], maud) only show what they are given.
//!
//! Every page is plain HTML that works without JavaScript; `portal.js`
//! (served from here, never inline) only adds Copy buttons. Every answer
//! carries a strict Content-Security-Policy, HSTS, `Referrer-Policy` and
//! `frame-ancestors 'none'`; nothing secret goes in a URL: a one-time code
//! or password is shown once in a page answering a POST.

mod certificates;
mod context;
mod dashboard;
mod form;
mod history;
mod i18n;
mod layout;
mod login;
mod me;
mod orders;
mod organisation;
mod people;
mod profiles;
mod search;

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;

use crate::app::App;
use crate::http::{Connection, RequestLog};
pub use context::Ctx;
use layout::Page;

/// Where the portal lives on the admin listener.
pub const PREFIX: &str = "/portal";

/// Whether the admin listener hands `path` to the portal.
pub fn owns(path: &str) -> bool {
    path == "/" || path == PREFIX || path.starts_with("/portal/")
}

/// Serves one portal request.
pub async fn handle(
    app: &Arc<App>,
    _conn: &Arc<Connection>,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let ctx = context::Ctx::of(app, &req);
    let mut log = RequestLog {
        endpoint: "portal",
        principal: ctx.session.as_ref().map(|s| s.actor.id.to_string()),
        ..Default::default()
    };
    let mut resp = route(&ctx, req, &mut log)
        .await
        .unwrap_or_else(|page| page.into_response(&ctx));
    layout::secure(resp.headers_mut());
    resp.extensions_mut().insert(log);
    resp
}

type Answer = Result<Response<Full<Bytes>>, Page>;

async fn route(ctx: &Ctx<'_>, req: Request<Incoming>, log: &mut RequestLog) -> Answer {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let rest = path.strip_prefix(PREFIX).unwrap_or("");
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    log.endpoint = page_name(&segments);
    let get = method == Method::GET || method == Method::HEAD;
    let post = method == Method::POST;
    match (segments.as_slice(), get, post) {
        ([], true, _) if path == "/" || rest.is_empty() || rest == "/" => {
            dashboard::show(ctx).await
        }
        (["static", name], true, _) => layout::asset(name),
        (["lang"], true, _) => login::switch_language(ctx, &req),
        (["login"], true, _) => login::form(ctx, None),
        (["login"], _, true) => login::submit(ctx, req).await,
        (["logout"], _, true) => login::logout(ctx, req).await,
        (["search"], true, _) => search::show(ctx, &req),
        (["profiles"], true, _) => profiles::list(ctx, &req),
        (["profiles", "new"], true, _) => profiles::new_form(ctx),
        (["profiles", "new"], _, true) => profiles::submit(ctx, req).await,
        (["profiles", id], true, _) => profiles::show(ctx, id),
        (["profiles", id, "order"], _, true) => profiles::order(ctx, id, req).await,
        (["orders"], true, _) => orders::list(ctx),
        (["orders", reference], true, _) => orders::show(ctx, reference),
        (["orders", reference, "delete"], true, _) => orders::delete_warning(ctx, reference),
        (["orders", reference, "delete"], _, true) => orders::delete(ctx, reference, req).await,
        (["certificates", serial], true, _) => certificates::show(ctx, serial, &req),
        (["certificates", serial, action], true, _) => certificates::warning(ctx, serial, action),
        (["certificates", serial, action], _, true) => {
            certificates::act(ctx, serial, action, req).await
        }
        (["people"], true, _) => people::list(ctx),
        (["people"], _, true) => people::invite(ctx, req).await,
        (["people", id, "deactivate"], true, _) => people::deactivate_warning(ctx, id),
        (["people", id, "deactivate"], _, true) => people::deactivate(ctx, id, req).await,
        (["organisation"], true, _) => organisation::show(ctx, None),
        (["organisation"], _, true) => organisation::save(ctx, req).await,
        (["history"], true, _) => history::show(ctx),
        (["me"], true, _) => me::certificates(ctx),
        (["me", "history"], true, _) => me::history(ctx),
        (["me", "orders", reference], true, _) => me::collect_form(ctx, reference),
        (["me", "orders", reference], _, true) => me::collect(ctx, reference, req).await,
        (["me", "certificates", serial], true, _) => me::certificate(ctx, serial, &req),
        (["me", "certificates", serial, action], true, _) => me::warning(ctx, serial, action),
        (["me", "certificates", serial, action], _, true) => {
            me::act(ctx, serial, action, req).await
        }
        (_, false, false) => Err(Page::status(
            StatusCode::METHOD_NOT_ALLOWED,
            ctx.t("Use GET or POST.", "Brug GET eller POST."),
        )),
        _ => Err(Page::not_found(ctx)),
    }
}

/// The metric label of a page (a bounded set).
fn page_name(segments: &[&str]) -> &'static str {
    match segments.first().copied() {
        None => "portal-dashboard",
        Some("static") => "portal-static",
        Some("login" | "logout" | "lang") => "portal-login",
        Some("search") => "portal-search",
        Some("profiles") => "portal-profiles",
        Some("orders") => "portal-orders",
        Some("certificates") => "portal-certificates",
        Some("people") => "portal-people",
        Some("organisation") => "portal-organisation",
        Some("history") => "portal-history",
        Some("me") => "portal-me",
        Some(_) => "portal-unknown",
    }
}
