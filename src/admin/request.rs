//! What an admin API handler gets: path parameters, the query string and a
//! JSON body read within limits.

use std::time::Duration;

use bytes::Bytes;
use http::request::Parts;
use http::{header, HeaderMap, Request};
use hyper::body::Incoming;
use serde::de::DeserializeOwned;

use super::problem::ApiError;
use crate::http::BodyError;

/// Largest request body the admin API accepts.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A matched, authenticated (where required) admin API request.
#[derive(Debug)]
pub struct ApiRequest {
    /// Path parameters in template order.
    pub params: Vec<String>,
    /// The decoded query string.
    pub query: Query,
    /// Request headers.
    pub headers: HeaderMap,
    /// The body (empty for none).
    pub body: Bytes,
}

impl ApiRequest {
    /// The `i`-th path parameter (empty if the template has none there).
    pub fn param(&self, i: usize) -> &str {
        self.params.get(i).map(String::as_str).unwrap_or("")
    }

    /// The body as `T`: it must be `application/json` and present.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        if self.body.is_empty() {
            return Err(ApiError::MalformedBody(
                "a JSON request body is required".into(),
            ));
        }
        require_json(&self.headers)?;
        parse_json(&self.body)
    }

    /// The body as `T`, or `T::default()` when there is no body.
    pub fn json_or_default<T: DeserializeOwned + Default>(&self) -> Result<T, ApiError> {
        if self.body.is_empty() {
            Ok(T::default())
        } else {
            self.json()
        }
    }
}

fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let mut values = headers.get_all(header::CONTENT_TYPE).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(ApiError::UnsupportedMediaType(
            "more than one Content-Type header".into(),
        ));
    }
    let media_type = first
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim());
    match media_type {
        Some(t) if t.eq_ignore_ascii_case("application/json") => Ok(()),
        Some(t) => Err(ApiError::UnsupportedMediaType(format!(
            "Content-Type must be application/json, not {t}"
        ))),
        None => Err(ApiError::UnsupportedMediaType(
            "Content-Type must be application/json".into(),
        )),
    }
}

/// The name between backticks after `marker` in a serde message.
fn quoted_after<'a>(message: &'a str, marker: &str) -> Option<&'a str> {
    let rest = &message[message.find(marker)? + marker.len()..];
    rest.split('`').next()
}

/// Parses JSON, naming the field where serde's message does.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    match serde_path_to_error::deserialize(&mut de) {
        Ok(value) => de.end().map(|()| value).map_err(|e| json_problem(&e, "")),
        Err(e) => json_problem_at(e),
    }
}

fn json_problem_at<T>(e: serde_path_to_error::Error<serde_json::Error>) -> Result<T, ApiError> {
    let path = field_path(e.path());
    Err(json_problem(e.inner(), &path))
}

/// The path to the value at fault as problems name fields: `key_policy.allowed`
/// (array positions left out: the field is at fault, whichever element it was).
fn field_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let names: Vec<&str> = path
        .iter()
        .filter_map(|s| match s {
            Segment::Map { key } => Some(key.as_str()),
            Segment::Enum { variant } => Some(variant.as_str()),
            Segment::Seq { .. } | Segment::Unknown => None,
        })
        .collect();
    names.join(".")
}

/// `x`, `y` or `z` from serde's "expected `x`, `y`, `z`" / "expected `x` or `y`".
fn variant_list(expected: &str) -> String {
    let list = expected.strip_prefix("one of ").unwrap_or(expected);
    list.replace(" or ", ", ").replace('`', "")
}

/// The problem for a serde error at `path` (empty: the body as a whole).
fn json_problem(e: &serde_json::Error, path: &str) -> ApiError {
    let message = e.to_string();
    if let Some(field) = quoted_after(&message, "unknown field `") {
        return ApiError::invalid(field, format!("is not a field of this request ({message})"));
    }
    if let Some(field) = quoted_after(&message, "missing field `") {
        return ApiError::invalid(field, "is required");
    }
    if let Some(field) = quoted_after(&message, "duplicate field `") {
        return ApiError::invalid(field, "appears more than once");
    }
    if e.is_data() && !path.is_empty() {
        // The enums' names are serde's: the message lists them.
        if let Some(value) = quoted_after(&message, "unknown variant `") {
            let expected = message
                .split_once(", expected ")
                .map(|(_, rest)| rest.split(" at line ").next().unwrap_or(rest))
                .unwrap_or("");
            return ApiError::invalid(
                path,
                format!("{value:?} is not one of {}", variant_list(expected)),
            );
        }
        // A refusal the input type words itself (a name that belongs to
        // another call, with a pointer to it).
        if !message.starts_with("invalid ") {
            let own = format!(" at line {} column {}", e.line(), e.column());
            return ApiError::invalid(path, message.strip_suffix(&own).unwrap_or(&message));
        }
    }
    ApiError::MalformedBody(format!(
        "the body is not valid JSON for this call: {message}"
    ))
}

/// Reads a body within [`MAX_BODY_BYTES`] and `timeout`, through the one
/// body reader ([`crate::http::read_body`]).
pub async fn read_body(
    req: Request<Incoming>,
    timeout: Duration,
) -> Result<(Parts, Bytes), ApiError> {
    crate::http::read_body(req, MAX_BODY_BYTES, timeout)
        .await
        .map_err(|e| match e {
            BodyError::TooLarge(limit) => ApiError::TooLarge(limit),
            BodyError::Timeout => ApiError::Timeout,
            BodyError::Broken(e) => ApiError::MalformedBody(format!("reading the body: {e}")),
        })
}

/// A decoded query string.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes one `application/x-www-form-urlencoded` component.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = hex_value(*bytes.get(i + 1)?)?;
                let lo = hex_value(*bytes.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

impl Query {
    /// Parses a raw query string.
    pub fn parse(raw: Option<&str>) -> Result<Query, ApiError> {
        let mut pairs = Vec::new();
        for part in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            let key = percent_decode(k)
                .ok_or_else(|| ApiError::invalid("query", "bad percent-encoding"))?;
            let value = percent_decode(v)
                .ok_or_else(|| ApiError::invalid(key.clone(), "bad percent-encoding"))?;
            pairs.push((key, value));
        }
        Ok(Query { pairs })
    }

    /// Refuses parameters other than `allowed`, and repeated ones.
    pub fn only(&self, allowed: &[&str]) -> Result<(), ApiError> {
        for (i, (k, _)) in self.pairs.iter().enumerate() {
            if !allowed.contains(&k.as_str()) {
                return Err(ApiError::invalid(
                    k.clone(),
                    format!(
                        "is not a query parameter of this call (known: {})",
                        allowed.join(", ")
                    ),
                ));
            }
            if self.pairs[..i].iter().any(|(earlier, _)| earlier == k) {
                return Err(ApiError::invalid(k.clone(), "is given more than once"));
            }
        }
        Ok(())
    }

    /// A parameter's value; an empty value counts as absent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// A numeric parameter within `min..=max`, or `default` when absent.
    pub fn number(&self, name: &str, default: u64, min: u64, max: u64) -> Result<u64, ApiError> {
        match self.get(name) {
            None => Ok(default),
            // Digits only: `parse` would also take a sign (`+2`).
            Some(v) => match v
                .bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| v.parse::<u64>())
            {
                Some(Ok(n)) if (min..=max).contains(&n) => Ok(n),
                _ => Err(ApiError::invalid(
                    name,
                    format!("must be a whole number from {min} to {max}"),
                )),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decoding() {
        let q = Query::parse(Some("q=a%40b.dk&cvr=12345674&x=&page=2+3")).expect("query");
        assert_eq!(q.get("q"), Some("a@b.dk"));
        assert_eq!(q.get("x"), None);
        assert_eq!(q.get("page"), Some("2 3"));
        assert!(q.only(&["q", "cvr", "x", "page"]).is_ok());
        assert!(q.only(&["q"]).is_err());
        assert!(Query::parse(Some("q=%zz")).is_err());
        assert!(Query::parse(Some("q=%ff")).is_err(), "not UTF-8");
        let twice = Query::parse(Some("q=a&q=b")).expect("query");
        assert!(twice.only(&["q"]).is_err());
    }

    /// Like serials, numbers are digits only: no sign, no spaces.
    #[test]
    fn numbers_are_digits_only() {
        let q = Query::parse(Some("a=2&b=%2B2&c=-0&d=%202&e=0x2")).expect("query");
        assert_eq!(q.number("a", 1, 1, 10).ok(), Some(2));
        for name in ["b", "c", "d", "e"] {
            assert!(q.number(name, 1, 0, 10).is_err(), "{name} was accepted");
        }
        assert_eq!(q.number("absent", 7, 1, 10).ok(), Some(7));
    }

    #[test]
    fn serde_messages_name_fields() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct T {
            name: String,
        }
        match parse_json::<T>(br#"{"name":"a","nmae":"b"}"#) {
            Err(ApiError::InvalidField { field, .. }) => assert_eq!(field, "nmae"),
            other => panic!("{other:?}"),
        }
        match parse_json::<T>(b"{}") {
            Err(ApiError::InvalidField { field, .. }) => assert_eq!(field, "name"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_json::<T>(b"{"),
            Err(ApiError::MalformedBody(_))
        ));
    }
}
