//! Who calls the admin API: a bearer token (stored hashed), or else a TLS
//! client certificate whose record carries the `admin-api` system right.

use http::{header, HeaderMap};

use super::problem::ApiError;
use crate::app::App;
use crate::auth::{principal, Principal};
use crate::http::Connection;
use crate::model::{now_unix, Actor, ActorId, SystemRight};
use crate::service::token_actor;

/// The token in an `Authorization: Bearer <token>` header value.
fn bearer_token(value: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(value).ok()?.trim();
    let (scheme, token) = text.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Resolves the caller to an [`Actor`], or refuses with 401 (no or bad
/// credentials) or 403 (a good certificate without the `admin-api` right).
pub async fn authenticate(
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
    match conn.client_cert(&app.trust) {
        None => Err(ApiError::Unauthorized(
            "a bearer token, or a client certificate with the admin-api right, is required".into(),
        )),
        Some(Err(rejection)) => Err(ApiError::Unauthorized(rejection.to_string())),
        Some(Ok(cert)) => match principal(cert, &app.store, now_unix()).await? {
            Err(rejection) => Err(ApiError::Unauthorized(rejection.to_string())),
            Ok(p) if p.has_right(SystemRight::AdminApi) => Ok(Actor {
                cvr: Some(p.cvr().to_owned()),
                id: match p {
                    Principal::Holder { record, .. } => ActorId::Cert(record.serial),
                    Principal::External { subject, .. } => ActorId::External(subject),
                },
            }),
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
}
