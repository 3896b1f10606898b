//! What every page knows about its request: the language, and the person
//! logged in (with the actor the services see and the session's CSRF token).

use http::{header, HeaderMap, Request};

use super::i18n::Lang;
use crate::admin::auth::session_cookie;
use crate::admin::routes::{access_of, Access, Endpoint};
use crate::app::App;
use crate::model::{Actor, Person};
use crate::service::login::{csrf_matches, csrf_token, session_actor};
use crate::service::Services;

/// A person logged in with a session.
pub struct Session {
    /// The cookie value.
    pub cookie: String,
    /// What they may do (the services' view of them).
    pub actor: Actor,
    /// The person, as stored now.
    pub person: Person,
    /// The CSRF token every form of theirs carries.
    pub csrf: String,
}

/// Why a request may not go on, before its page is rendered (the layout
/// turns it into an answer).
#[derive(Debug)]
pub enum Denied {
    /// Not logged in, or the session has ended.
    LogIn,
    /// The person holds none of these roles (their names, comma separated).
    Roles(String),
    /// A form without the session's CSRF token.
    Csrf,
}

/// A request's context.
pub struct Ctx<'a> {
    /// The server.
    pub app: &'a App,
    /// The page's language.
    pub lang: Lang,
    /// The person logged in, if any.
    pub session: Option<Session>,
    /// The path asked for (for the navigation's current page).
    pub path: String,
    /// The language switch's way back (path and query, URL-encoded); none
    /// on an answer to a POST, which may show a secret once that a switch
    /// would throw away.
    pub back: Option<String>,
}

/// The language cookie's name (a preference, not a secret).
pub const LANG_COOKIE: &str = "estd-lang";

fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim())
}

/// The value of cookie `name`.
pub fn cookie_value<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    cookie(headers, name)
}

impl<'a> Ctx<'a> {
    /// The context of `req`. A session that has ended counts as none.
    pub fn of<B>(app: &'a App, req: &Request<B>) -> Ctx<'a> {
        let headers = req.headers();
        let lang = cookie(headers, LANG_COOKIE)
            .and_then(Lang::parse)
            .unwrap_or_else(|| {
                Lang::from_accept(
                    headers
                        .get(header::ACCEPT_LANGUAGE)
                        .and_then(|v| v.to_str().ok()),
                )
            });
        let session =
            session_cookie(headers).and_then(|c| match session_actor(app.services(), c) {
                Ok(Some((actor, person))) => Some(Session {
                    csrf: csrf_token(c),
                    cookie: c.to_owned(),
                    actor,
                    person,
                }),
                Ok(None) => None,
                Err(e) => {
                    tracing::warn!(error = %e, "reading a portal session failed");
                    None
                }
            });
        Ctx {
            app,
            lang,
            session,
            path: req.uri().path().chars().take(200).collect(),
            back: (req.method() == http::Method::GET).then(|| {
                let pq = req
                    .uri()
                    .path_and_query()
                    .map(|p| p.as_str())
                    .unwrap_or("/portal/");
                let pq: String = pq.chars().take(300).collect();
                form_urlencoded::byte_serialize(pq.as_bytes()).collect()
            }),
        }
    }

    /// The services.
    pub fn svc(&self) -> Services<'a> {
        self.app.services()
    }

    /// `en` or `da`, as the page's language.
    pub fn t(&self, en: &'static str, da: &'static str) -> &'static str {
        self.lang.pick(en, da)
    }

    /// The person logged in, or the login page.
    pub fn person(&self) -> Result<&Session, Denied> {
        self.session.as_ref().ok_or(Denied::LogIn)
    }

    /// The person logged in, if they hold a role of the API route
    /// `endpoint` (the same check as the API's): else the login page, or
    /// 403 naming the roles.
    pub fn may(&self, endpoint: Endpoint) -> Result<&Session, Denied> {
        let s = self.person()?;
        match access_of(endpoint) {
            Access::Public | Access::Person => Ok(s),
            Access::Roles(roles) if s.actor.roles.any(roles) => Ok(s),
            Access::Roles(roles) => {
                let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
                Err(Denied::Roles(names.join(", ")))
            }
        }
    }

    /// Whether the person holds a role of `endpoint` (to show a button).
    pub fn can(&self, endpoint: Endpoint) -> bool {
        self.may(endpoint).is_ok()
    }

    /// Checks a form's CSRF token against the session's.
    pub fn check_csrf(&self, presented: &str) -> Result<&Session, Denied> {
        let s = self.person()?;
        if csrf_matches(&s.cookie, presented) {
            Ok(s)
        } else {
            Err(Denied::Csrf)
        }
    }
}
