//! A posted form (`application/x-www-form-urlencoded`), read within limits.

use bytes::Bytes;
use http::{Request, StatusCode};
use hyper::body::Incoming;

use super::context::Ctx;
use super::layout::Page;
use crate::http::{read_body, BodyError};

/// Largest form body accepted.
const MAX_FORM_BYTES: usize = 64 * 1024;
/// Longest field value kept (longer is cut: no field of the portal needs
/// more; the longest is a hardware token's CSR in PEM).
const MAX_FIELD_CHARS: usize = 16 * 1024;
/// Most fields kept.
const MAX_FIELDS: usize = 100;

/// A decoded form.
pub struct Form {
    pairs: Vec<(String, String)>,
}

impl Form {
    /// Reads the body of `req` as a form.
    pub async fn read(ctx: &Ctx<'_>, req: Request<Incoming>) -> Result<Form, Page> {
        let timeout = ctx.app.config.server.body_read_timeout();
        let body: Bytes = match read_body(req, MAX_FORM_BYTES, timeout).await {
            Ok((_, body)) => body,
            Err(BodyError::TooLarge(_)) => {
                return Err(Page::status(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    ctx.t("The form is too large.", "Formularen er for stor."),
                ))
            }
            Err(_) => {
                return Err(Page::status(
                    StatusCode::BAD_REQUEST,
                    ctx.t(
                        "The form was not received.",
                        "Formularen blev ikke modtaget.",
                    ),
                ))
            }
        };
        Ok(Form::parse(&body))
    }

    /// Decodes `body`.
    pub fn parse(body: &[u8]) -> Form {
        Form {
            pairs: form_urlencoded::parse(body)
                .take(MAX_FIELDS)
                .map(|(k, v)| {
                    (
                        k.chars().take(100).collect(),
                        v.chars().take(MAX_FIELD_CHARS).collect(),
                    )
                })
                .collect(),
        }
    }

    /// The first value of `name`, trimmed; `""` when absent.
    pub fn get(&self, name: &str) -> &str {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .unwrap_or("")
    }

    /// The value of `name`, untrimmed (passwords).
    pub fn raw(&self, name: &str) -> &str {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    /// Every value of `name` (checkboxes of one name).
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Whether a checkbox `name` is ticked.
    pub fn ticked(&self, name: &str) -> bool {
        !self.get(name).is_empty()
    }

    /// The value of `name`, or `None` when empty.
    pub fn optional(&self, name: &str) -> Option<&str> {
        Some(self.get(name)).filter(|v| !v.is_empty())
    }

    /// Every field, for a form posted again (a confirm step).
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }
}

/// The query string of `req` as a form.
pub fn query<B>(req: &Request<B>) -> Form {
    Form::parse(req.uri().query().unwrap_or("").as_bytes())
}

/// Reads a form posted by a logged-in person and checks its CSRF token.
pub async fn posted(ctx: &Ctx<'_>, req: Request<Incoming>) -> Result<Form, Page> {
    ctx.person()?;
    let form = Form::read(ctx, req).await?;
    ctx.check_csrf(form.get("csrf"))?;
    Ok(form)
}
