//! Login (address, password and the authenticator's code; the organisation
//! by its CVR number), logout, and the language switch.

use http::{header, HeaderValue, Request, StatusCode};
use hyper::body::Incoming;
use maud::html;

use super::context::{cookie_value, Ctx, LANG_COOKIE};
use super::form::{query, Form};
use super::i18n::Lang;
use super::layout::{page, redirect, Page};
use super::Answer;
use crate::admin::auth::{clear_session_cookie, set_session_cookie};
use crate::service::credentials::{random_token, same_hash, token_hash};
use crate::service::login as login_service;

/// The cookie that ties the login form to the browser that fetched it (so
/// that no other site can log a browser in under its own account).
const FORM_COOKIE: &str = "__Host-estd-login";

fn with_cookie(mut r: http::Response<http_body_util::Full<bytes::Bytes>>, value: &str) -> Answer {
    let v = HeaderValue::from_str(value)
        .map_err(|_| Page::status(StatusCode::INTERNAL_SERVER_ERROR, "cookie"))?;
    r.headers_mut().append(header::SET_COOKIE, v);
    Ok(r)
}

/// `GET /portal/login`, or the form again with `problem`.
pub fn form(ctx: &Ctx, problem: Option<&str>) -> Answer {
    if ctx.session.is_some() && problem.is_none() {
        return Ok(redirect("/portal/"));
    }
    let token = random_token().map_err(|e| {
        tracing::error!(error = %e, "no randomness for the login form");
        Page::status(StatusCode::INTERNAL_SERVER_ERROR, "randomness")
    })?;
    let body = html! {
        @if let Some(p) = problem { p.alert role="alert" { (p) } }
        form.card method="post" action="/portal/login" {
            input type="hidden" name="form" value=(token);
            div.field {
                label for="cvr" { (ctx.t("Organisation (CVR number)", "Organisation (CVR-nummer)")) }
                input id="cvr" name="cvr" inputmode="numeric" pattern="[0-9]{8}" autocomplete="organization";
                p.hint { (ctx.t("Leave empty if you are a server operator.", "Lad feltet stå tomt, hvis du er serveroperatør.")) }
            }
            div.field {
                label for="email" { (ctx.t("E-mail", "E-mail")) }
                input id="email" name="email" type="email" autocomplete="username" required;
            }
            div.field {
                label for="password" { (ctx.t("Password", "Adgangskode")) }
                input id="password" name="password" type="password" autocomplete="current-password" required;
            }
            div.field {
                label for="code" { (ctx.t("Code from your authenticator app", "Kode fra din autentifikator-app")) }
                input id="code" name="code" inputmode="numeric" pattern="[0-9]{6}" autocomplete="one-time-code" required;
            }
            button type="submit" { (ctx.t("Log in", "Log ind")) }
        }
        p { a href="/portal/search" { (ctx.t("Search the public certificate database", "Søg i den offentlige certifikatdatabase")) } }
    };
    // A refused login is the form again with its reason (a 401 would need
    // a WWW-Authenticate challenge, which a form is not).
    let r = page(ctx, StatusCode::OK, ctx.t("Log in", "Log ind"), body);
    with_cookie(
        r,
        &format!("{FORM_COOKIE}={token}; Path=/; Secure; HttpOnly; SameSite=Strict"),
    )
}

/// `POST /portal/login`.
pub async fn submit(ctx: &Ctx<'_>, req: Request<Incoming>) -> Answer {
    let issued = cookie_value(req.headers(), FORM_COOKIE)
        .unwrap_or("")
        .to_owned();
    let f = Form::read(ctx, req).await?;
    if issued.is_empty() || !same_hash(&token_hash(&issued), &token_hash(f.get("form"))) {
        return form(
            ctx,
            Some(ctx.t(
                "The login form had expired; try again.",
                "Login-formularen var udløbet; prøv igen.",
            )),
        );
    }
    let password = zeroize::Zeroizing::new(f.raw("password").to_owned());
    match login_service::login(
        ctx.svc(),
        f.optional("cvr"),
        f.get("email"),
        &password,
        f.get("code"),
    )
    .await
    {
        Ok(session) => with_cookie(redirect("/portal/"), &set_session_cookie(&session.cookie)),
        Err(crate::service::Error::Unauthenticated(_)) => form(
            ctx,
            Some(ctx.t(
                "The login was not accepted. Check the organisation, address, password and code.",
                "Login blev ikke godkendt. Tjek organisation, adresse, adgangskode og kode.",
            )),
        ),
        Err(e) => Err(e.into()),
    }
}

/// `POST /portal/logout`.
pub async fn logout(ctx: &Ctx<'_>, req: Request<Incoming>) -> Answer {
    let f = Form::read(ctx, req).await?;
    let Some(s) = &ctx.session else {
        return Ok(redirect("/portal/login"));
    };
    ctx.check_csrf(f.get("csrf"))?;
    login_service::logout(ctx.svc(), &s.cookie, &s.person).await?;
    with_cookie(redirect("/portal/login"), &clear_session_cookie())
}

/// `GET /portal/lang?set=da|en&back=/portal/...`: remembers the choice.
pub fn switch_language(ctx: &Ctx, req: &Request<Incoming>) -> Answer {
    let q = query(req);
    let lang = Lang::parse(q.get("set")).unwrap_or(ctx.lang);
    let back = q.get("back");
    // Only a path of the portal's own: never an open redirect.
    let back = if back.starts_with("/portal")
        && !back.contains("//")
        && back.chars().all(|c| c.is_ascii_graphic())
    {
        back
    } else {
        "/portal/"
    };
    with_cookie(
        redirect(back),
        &format!(
            "{LANG_COOKIE}={}; Path=/; Secure; SameSite=Lax; Max-Age=31536000",
            lang.code()
        ),
    )
}
