//! The shell every page shares (header, navigation, language switch, main),
//! the answers (page, redirect, download, refusal), the security headers,
//! and the two static files.

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use maud::{html, Markup, DOCTYPE};

use super::context::{Ctx, Denied};
use crate::admin::problem::ApiError;
use crate::admin::routes::Endpoint;

const CSS: &str = include_str!("static/portal.css");
const JS: &str = include_str!("static/portal.js");

/// What a page answers instead of its content.
#[derive(Debug)]
pub enum Page {
    /// Not logged in (or the session has ended): to the login page.
    LogIn,
    /// Refused before the page (roles, CSRF), said in the page's language.
    Denied(Denied),
    /// A refusal or failure, shown as a page with this status.
    Problem {
        /// The status.
        status: StatusCode,
        /// What to tell the person.
        message: String,
    },
}

impl Page {
    /// A page with `status` saying `message`.
    pub fn status(status: StatusCode, message: impl Into<String>) -> Page {
        Page::Problem {
            status,
            message: message.into(),
        }
    }

    /// 404.
    pub fn not_found(ctx: &Ctx) -> Page {
        Page::status(
            StatusCode::NOT_FOUND,
            ctx.t("There is no such page.", "Siden findes ikke."),
        )
    }

    /// 403 naming the roles that would do.
    pub fn forbidden(ctx: &Ctx, roles: &str) -> Page {
        Page::status(
            StatusCode::FORBIDDEN,
            format!(
                "{} {roles}",
                ctx.t(
                    "This page needs one of the roles",
                    "Siden kræver en af rollerne"
                )
            ),
        )
    }

    /// The page for a request denied before its page, in `ctx`'s language.
    fn denied(ctx: &Ctx, why: Denied) -> Page {
        match why {
            Denied::LogIn => Page::LogIn,
            Denied::Roles(names) => Page::forbidden(ctx, &names),
            Denied::Csrf => Page::status(
                StatusCode::FORBIDDEN,
                ctx.t(
                    "The form has expired. Go back, reload the page and try again.",
                    "Formularen er udløbet. Gå tilbage, genindlæs siden og prøv igen.",
                ),
            ),
        }
    }

    /// The answer.
    pub fn into_response(self, ctx: &Ctx) -> Response<Full<Bytes>> {
        match self {
            Page::LogIn => redirect("/portal/login"),
            Page::Denied(why) => Page::denied(ctx, why).into_response(ctx),
            Page::Problem { status, message } => {
                let title = if status.is_server_error() {
                    ctx.t("Something went wrong", "Noget gik galt")
                } else {
                    ctx.t("Not possible", "Ikke muligt")
                };
                page(
                    ctx,
                    status,
                    title,
                    html! { p.alert role="alert" { (message) } p { a href="/portal/" { (ctx.t("Back to the overview", "Tilbage til overblikket")) } } },
                )
            }
        }
    }
}

impl From<Denied> for Page {
    fn from(why: Denied) -> Page {
        Page::Denied(why)
    }
}

impl From<ApiError> for Page {
    fn from(e: ApiError) -> Page {
        let status = e.status();
        let message = if status.is_server_error() {
            tracing::error!(error = %e, "portal page failed");
            "The server could not do this just now; try again later. / Serveren kunne ikke \
             gøre det lige nu; prøv igen senere."
                .to_owned()
        } else {
            e.to_string()
        };
        Page::Problem { status, message }
    }
}

impl From<crate::service::Error> for Page {
    fn from(e: crate::service::Error) -> Page {
        Page::from(ApiError::from(e))
    }
}

/// Adds the headers every portal answer carries.
pub fn secure(h: &mut HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
}

/// `portal.css` or `portal.js`.
pub fn asset(name: &str) -> super::Answer {
    let (body, kind) = match name {
        "portal.css" => (CSS, "text/css; charset=utf-8"),
        "portal.js" => (JS, "text/javascript; charset=utf-8"),
        _ => {
            return Err(Page::status(StatusCode::NOT_FOUND, "no such file"));
        }
    };
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    Ok(r)
}

/// 303 to `to` (a path of the portal's own).
pub fn redirect(to: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// A file to save.
pub fn download(kind: &'static str, file_name: &str, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    let name: String = file_name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(100)
        .collect();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    r
}

/// A whole page: `title` as its heading, `body` in `main`.
pub fn page(ctx: &Ctx, status: StatusCode, title: &str, body: Markup) -> Response<Full<Bytes>> {
    let markup = html! {
        (DOCTYPE)
        html lang=(ctx.lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · estd" }
                link rel="stylesheet" href="/portal/static/portal.css";
                script src="/portal/static/portal.js" defer {}
            }
            body {
                a.skip href="#main" { (ctx.t("Skip to content", "Gå til indhold")) }
                header.top {
                    span.brand { "estd" }
                    (navigation(ctx))
                    div.tools {
                        @if let Some(back) = &ctx.back {
                            a href={ "/portal/lang?set=" (ctx.lang.other().code()) "&back=" (back) }
                                lang=(ctx.lang.other().code()) hreflang=(ctx.lang.other().code()) {
                                (ctx.lang.other().name())
                            }
                        }
                        @if let Some(s) = &ctx.session {
                            span.who { (s.person.name) }
                            form.inline method="post" action="/portal/logout" {
                                input type="hidden" name="csrf" value=(s.csrf);
                                button type="submit" { (ctx.t("Log out", "Log ud")) }
                            }
                        }
                    }
                }
                main id="main" tabindex="-1" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    };
    let mut r = Response::new(Full::new(Bytes::from(markup.into_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

/// 200 with `page`.
pub fn ok(ctx: &Ctx, title: &str, body: Markup) -> super::Answer {
    Ok(page(ctx, StatusCode::OK, title, body))
}

fn navigation(ctx: &Ctx) -> Markup {
    let links: Vec<(&str, &str)> = match &ctx.session {
        None => vec![
            ("/portal/login", ctx.t("Log in", "Log ind")),
            (
                "/portal/search",
                ctx.t("Certificate search", "Certifikatsøgning"),
            ),
        ],
        Some(_) => {
            let mut l = vec![
                ("/portal/", ctx.t("Overview", "Overblik")),
                ("/portal/me", ctx.t("My certificates", "Mine certifikater")),
            ];
            if ctx.can(Endpoint::SearchProfiles) {
                l.push(("/portal/profiles", ctx.t("Profiles", "Profiler")));
                l.push(("/portal/orders", ctx.t("Orders", "Bestillinger")));
            }
            if ctx.can(Endpoint::ListPeople) {
                l.push(("/portal/people", ctx.t("Users", "Brugere")));
            }
            if ctx.can(Endpoint::GetOrganisation) {
                l.push((
                    "/portal/organisation",
                    ctx.t("Organisation", "Organisation"),
                ));
            }
            if ctx.can(Endpoint::AuditLog) {
                l.push(("/portal/history", ctx.t("History", "Historik")));
            }
            l.push((
                "/portal/search",
                ctx.t("Certificate search", "Certifikatsøgning"),
            ));
            l
        }
    };
    html! {
        nav aria-label=(ctx.t("Main", "Hovedmenu")) {
            ul {
                @for (href, text) in links {
                    li {
                        @if ctx.path == href || (href != "/portal/" && ctx.path.starts_with(href)) {
                            a href=(href) aria-current="page" { (text) }
                        } @else {
                            a href=(href) { (text) }
                        }
                    }
                }
            }
        }
    }
}

/// A hidden CSRF field for the person's forms.
pub fn csrf_field(ctx: &Ctx) -> Markup {
    html! {
        @if let Some(s) = &ctx.session {
            input type="hidden" name="csrf" value=(s.csrf);
        }
    }
}

/// A value shown once, with a Copy button (added by portal.js).
pub fn secret(ctx: &Ctx, id: &str, label: &str, value: &str) -> Markup {
    html! {
        div.secret {
            span.label id={ (id) "-label" } { (label) }
            output id=(id) aria-labelledby={ (id) "-label" } { code { (value) } }
            button.copy type="button" data-copy=(id) hidden { (ctx.t("Copy", "Kopiér")) " " span.visually-hidden { (label) } }
        }
    }
}

/// A date from Unix seconds (UTC).
pub fn date(unix: u64) -> String {
    crate::model::rfc3339(unix).chars().take(10).collect()
}

/// A warning page: `text`, and a form that posts to `action` with
/// `fields`, or goes back.
pub fn warning(
    ctx: &Ctx,
    title: &str,
    text: &str,
    action: &str,
    confirm: &str,
    fields: Markup,
) -> super::Answer {
    ok(
        ctx,
        title,
        html! {
            div.warning role="alert" { p { (text) } }
            form method="post" action=(action) {
                (csrf_field(ctx))
                (fields)
                div.actions {
                    button.danger type="submit" { (confirm) }
                    a.button href="/portal/" { (ctx.t("Cancel", "Annullér")) }
                }
            }
        },
    )
}
