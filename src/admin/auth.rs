//! Who calls the admin API: a bearer token (stored hashed); or a person's
//! session cookie (whose state-changing calls must carry the session's CSRF
//! token in `X-CSRF-Token`); or else a TLS client certificate whose record
//! carries the `admin-api` system right.

use http::{header, HeaderMap};

use super::problem::ApiError;
use crate::app::App;
use crate::auth::{principal, Principal};
use crate::http::Connection;
use crate::model::{now_unix, Actor, ActorId, Person, SystemRight};
use crate::service::login::{csrf_matches, session_actor};
use crate::service::token_actor;

/// The session cookie's name. `__Host-` makes browsers keep it only if it
/// is Secure, for the whole host, with no Domain.
pub const SESSION_COOKIE: &str = "__Host-estd-session";

/// The header a cookie-authenticated state-changing call carries its CSRF
/// token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Who is calling.
pub struct Caller {
    /// What they may do.
    pub actor: Actor,
    /// The person and their cookie value, when a session authenticated them.
    pub session: Option<LoggedIn>,
}

/// A person logged in with a session.
pub struct LoggedIn {
    /// The cookie value.
    pub cookie: String,
    /// The person, as stored now.
    pub person: Person,
}

/// The value of the session cookie in `headers`, if one is sent.
pub fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim())
}

/// The `Set-Cookie` value that gives the browser a session.
pub fn set_session_cookie(value: &str) -> String {
    format!("{SESSION_COOKIE}={value}; Path=/; Secure; HttpOnly; SameSite=Strict")
}

/// The `Set-Cookie` value that removes it.
pub fn clear_session_cookie() -> String {
    format!("{SESSION_COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// Resolves the caller: a bearer token first, then a session cookie, then
/// a client certificate. A cookie-authenticated call that changes state
/// (`changes_state`) must carry the session's CSRF token, else 403.
pub async fn caller(
    app: &App,
    conn: &Connection,
    headers: &HeaderMap,
    changes_state: bool,
) -> Result<Caller, ApiError> {
    if headers.get(header::AUTHORIZATION).is_none() {
        if let Some(cookie) = session_cookie(headers) {
            let Some((actor, person)) = session_actor(app.services(), cookie)? else {
                return Err(ApiError::Unauthorized(
                    "the session has ended (logged out, idle or too old); log in again".into(),
                ));
            };
            if changes_state {
                let presented = headers
                    .get(CSRF_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                if !csrf_matches(cookie, presented) {
                    return Err(ApiError::Forbidden(
                        "a call that changes something must carry the session's CSRF token \
                         in the X-CSRF-Token header (from the login answer or GET /api/v1/session)"
                            .into(),
                    ));
                }
            }
            return Ok(Caller {
                actor,
                session: Some(LoggedIn {
                    cookie: cookie.to_owned(),
                    person,
                }),
            });
        }
    }
    Ok(Caller {
        actor: authenticate(app, conn, headers).await?,
        session: None,
    })
}

/// The token in an `Authorization: Bearer <token>` header value.
fn bearer_token(value: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(value).ok()?.trim();
    let (scheme, token) = text.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Resolves the caller to an [`Actor`], or refuses with 401 (no or bad
/// credentials) or 403 (a good certificate without the `admin-api` right).
async fn authenticate(
    app: &App,
    conn: &Connection,
    headers: &HeaderMap,
) -> Result<Actor, ApiError> {
    let mut authorization = headers.get_all(header::AUTHORIZATION).iter();
    if let Some(value) = authorization.next() {
        if authorization.next().is_some() {
            return Err(ApiError::Unauthorized(
                "more than one Authorization header".into(),
            ));
        }
        let token = bearer_token(value.as_bytes()).ok_or_else(|| {
            ApiError::Unauthorized("the Authorization header must be \"Bearer <token>\"".into())
        })?;
        return token_actor(app.services(), token)?
            .ok_or_else(|| ApiError::Unauthorized("the bearer token is not valid".into()));
    }
    match conn.client_cert(&app.trust.load()) {
        None => Err(ApiError::Unauthorized(
            "a bearer token, a session (POST /api/v1/login), or a client certificate with the \
             admin-api right, is required"
                .into(),
        )),
        Some(Err(rejection)) => Err(ApiError::Unauthorized(rejection.to_string())),
        Some(Ok(cert)) => match principal(cert, &app.store, now_unix()).await? {
            Err(rejection) => Err(ApiError::Unauthorized(rejection.to_string())),
            Ok(p) if p.has_right(SystemRight::AdminApi) => {
                let cvr = Some(p.cvr().to_owned());
                let id = match p {
                    Principal::Holder { record, .. } => ActorId::Cert(record.serial),
                    Principal::External { subject, .. } => ActorId::External(subject),
                };
                Ok(Actor::machine(id, cvr))
            }
            Ok(_) => Err(ApiError::Forbidden(
                "the client certificate does not carry the admin-api right".into(),
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer_token(b"Bearer abc"), Some("abc"));
        assert_eq!(bearer_token(b"bearer  abc "), Some("abc"));
        assert_eq!(bearer_token(b"Basic abc"), None);
        assert_eq!(bearer_token(b"Bearer "), None);
        assert_eq!(bearer_token(b"Bearer"), None);
        assert_eq!(bearer_token(&[0xff]), None);
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            http::HeaderValue::from_static("a=1; __Host-estd-session=abc ; b=2"),
        );
        assert_eq!(session_cookie(&h), Some("abc"));
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            http::HeaderValue::from_static("estd-session=abc"),
        );
        assert_eq!(session_cookie(&h), None);
        assert!(set_session_cookie("v").contains("HttpOnly"));
        assert!(set_session_cookie("v").contains("Secure"));
        assert!(set_session_cookie("v").contains("SameSite=Strict"));
    }
}
