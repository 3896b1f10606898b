//! The page behind an invitation's link, `/activate?token=…` on the admin
//! listener: who is invited, the TOTP secret to add to an authenticator,
//! and a form for the new password and the first code. It calls the same
//! unit of work as `POST /api/v1/activation`. (The portal's other pages
//! come with the portal; this one makes the invitation e-mail's link work.)

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;

use super::request::read_body;
use crate::app::App;
use crate::http::html::{escape, page};
use crate::service::people;

/// Form fields accepted, at most.
const MAX_FIELD_CHARS: usize = 1024;

fn form_field(form: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(form.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.chars().take(MAX_FIELD_CHARS).collect())
}

fn refused(e: &crate::service::Error) -> Response<Full<Bytes>> {
    let status = crate::http::error::status(e);
    let detail = if status.is_server_error() {
        "The link could not be checked just now. Try again later.".to_owned()
    } else {
        e.to_string()
    };
    page(
        status,
        "Activate your account",
        &format!(
            "<h1>Aktivér din bruger / Activate your account</h1><p role=\"alert\">{}</p>",
            escape(&detail)
        ),
    )
}

/// The form, for the invitation `token`.
fn form(app: &App, token: &str, problem: Option<&str>) -> Response<Full<Bytes>> {
    let activation = match people::activation(app.services(), token) {
        Ok(a) => a,
        Err(e) => return refused(&e),
    };
    let problem = problem
        .map(|p| format!("<p role=\"alert\">{}</p>", escape(p)))
        .unwrap_or_default();
    page(
        if problem.is_empty() {
            StatusCode::OK
        } else {
            StatusCode::BAD_REQUEST
        },
        "Activate your account",
        &format!(
            "<h1>Aktivér din bruger / Activate your account</h1>\
             <p>{name} &lt;{email}&gt;</p>{problem}\
             <p>Tilføj denne nøgle i din autentifikator-app (TOTP) / Add this key to your \
             authenticator app (TOTP):</p>\
             <p><code id=\"totp-secret\">{secret}</code></p>\
             <p><a href=\"{uri}\">{uri}</a></p>\
             <form method=\"post\" action=\"/activate\">\
             <input type=\"hidden\" name=\"token\" value=\"{token}\">\
             <p><label>Adgangskode / Password (12–128) \
             <input type=\"password\" name=\"password\" autocomplete=\"new-password\" \
             minlength=\"12\" maxlength=\"128\" required></label></p>\
             <p><label>Kode fra appen / Code from the app \
             <input name=\"code\" inputmode=\"numeric\" autocomplete=\"one-time-code\" \
             pattern=\"[0-9]{{6}}\" required></label></p>\
             <button type=\"submit\">Aktivér / Activate</button></form>",
            name = escape(&activation.person.name),
            email = escape(&activation.person.email),
            secret = escape(&activation.totp_secret.base32()),
            uri = escape(&activation.totp_uri),
            token = escape(token),
        ),
    )
}

/// `GET /activate?token=…` shows the form; `POST /activate` activates.
pub async fn serve(app: &App, req: Request<Incoming>) -> Response<Full<Bytes>> {
    match *req.method() {
        Method::GET | Method::HEAD => {
            let query = req.uri().query().unwrap_or("");
            let token = form_field(query, "token").unwrap_or_default();
            form(app, &token, None)
        }
        Method::POST => {
            let body = match read_body(req, app.config.server.body_read_timeout()).await {
                Ok((_, body)) => body,
                Err(e) => {
                    return page(
                        e.status(),
                        "Activate your account",
                        "<p role=\"alert\">The form was not received.</p>",
                    )
                }
            };
            let text = std::str::from_utf8(&body).unwrap_or("");
            let token = form_field(text, "token").unwrap_or_default();
            let password =
                zeroize::Zeroizing::new(form_field(text, "password").unwrap_or_default());
            let code = form_field(text, "code").unwrap_or_default();
            match people::activate(app.services(), &token, &password, code.trim()).await {
                Ok(person) => page(
                    StatusCode::OK,
                    "Activated",
                    &format!(
                        "<h1>Aktiveret / Activated</h1><p>{email}</p>\
                         <p>Din bruger er aktiv; log ind med adresse, adgangskode og kode fra \
                         appen.</p><p lang=\"en\">Your account is active; log in with your \
                         address, password and a code from the app.</p>",
                        email = escape(&person.email)
                    ),
                ),
                Err(e) if crate::http::error::status(&e) == StatusCode::BAD_REQUEST => {
                    form(app, &token, Some(&e.to_string()))
                }
                Err(e) => refused(&e),
            }
        }
        _ => page(
            StatusCode::METHOD_NOT_ALLOWED,
            "Activate your account",
            "<p>Use GET or POST.</p>",
        ),
    }
}
