//! RFC 9457 problem documents (`application/problem+json`), shared by the
//! admin API (always) and EST (when the client asks for one in `Accept`).

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use mediatype::{names, MediaTypeList};
use serde::Serialize;

/// Media type of a problem document.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An RFC 9457 problem document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Problem {
    /// A URN for estd's own kinds of problem, `about:blank` where the status says it all.
    #[serde(rename = "type")]
    pub problem_type: &'static str,
    /// Short, fixed summary of the kind.
    pub title: &'static str,
    /// The HTTP status, repeated.
    pub status: u16,
    /// What happened in this case.
    pub detail: String,
    /// The invalid field, for admin validation errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Seconds to wait before retrying (also sent as `Retry-After`).
    #[serde(rename = "retryAfter", skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    /// The request's id, as in the log and the `X-Request-Id` header: the
    /// caller's own if it sent a plausible one, else one estd made.
    #[serde(rename = "requestId", skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl Problem {
    /// A document with the status's reason phrase as title and `about:blank` as type.
    pub fn for_status(status: StatusCode, detail: String) -> Problem {
        Problem {
            request_id: None,
            problem_type: "about:blank",
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail,
            field: None,
            retry_after: None,
        }
    }

    /// The response: the document with its media type, status and, if it has
    /// a retry time, `Retry-After`.
    pub fn into_response(self) -> Response<Full<Bytes>> {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_else(|_| b"{}".to_vec());
        let mut resp = Response::new(Full::new(Bytes::from(body)));
        *resp.status_mut() = status;
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(secs) = self.retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

/// Whether a client's `Accept` asks for a problem document rather than
/// `text/plain`: `application/problem+json` must be named explicitly, with a
/// q-value above 0 and not below the one `text/plain` gets (from `text/plain`,
/// `text/*` or `*/*`, the most specific). No `Accept`, `*/*` alone, or an
/// unparseable list keep `text/plain`, which EST clients expect.
pub fn prefers_problem_json(headers: &HeaderMap) -> bool {
    let mut problem_q: Option<f32> = None;
    // (specificity, q) of the range that decides text/plain.
    let mut text: Option<(u8, f32)> = None;
    for value in headers.get_all(header::ACCEPT) {
        let Ok(value) = value.to_str() else { continue };
        for range in MediaTypeList::new(value) {
            let Ok(range) = range else { continue };
            let q = match range.params.iter().find(|(n, _)| *n == names::Q) {
                None => 1.0,
                Some((_, v)) => match v.unquoted_str().parse::<f32>() {
                    Ok(q) if (0.0..=1.0).contains(&q) => q,
                    // An invalid weight makes the range meaningless; skip it.
                    _ => continue,
                },
            };
            let (ty, subty) = (range.ty, range.subty);
            if ty == names::APPLICATION
                && subty == names::PROBLEM
                && range.suffix == Some(names::JSON)
            {
                problem_q = Some(problem_q.map_or(q, |p| p.max(q)));
                continue;
            }
            let specificity =
                if ty == names::TEXT && subty == names::PLAIN && range.suffix.is_none() {
                    3
                } else if ty == names::TEXT && subty == names::_STAR {
                    2
                } else if ty == names::_STAR && subty == names::_STAR {
                    1
                } else {
                    continue;
                };
            if text.is_none_or(|(s, _)| specificity > s) {
                text = Some((specificity, q));
            }
        }
    }
    let text_q = text.map_or(0.0, |(_, q)| q);
    problem_q.is_some_and(|q| q > 0.0 && q >= text_q)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefers(accept: &[&str]) -> bool {
        let mut h = HeaderMap::new();
        for a in accept {
            h.append(header::ACCEPT, HeaderValue::from_str(a).expect("value"));
        }
        prefers_problem_json(&h)
    }

    #[test]
    fn accept_negotiation() {
        assert!(!prefers(&[]), "no Accept: text/plain");
        assert!(!prefers(&["*/*"]));
        assert!(!prefers(&["text/plain"]));
        assert!(!prefers(&["application/*"]), "must be named");
        assert!(!prefers(&["application/json"]));
        assert!(prefers(&["application/problem+json"]));
        assert!(prefers(&["Application/Problem+JSON"]), "case-insensitive");
        assert!(prefers(&[
            "application/pkcs7-mime, application/problem+json"
        ]));
        assert!(prefers(&["application/problem+json, */*;q=0.1"]));
        assert!(prefers(&["text/plain;q=0.5, application/problem+json"]));
        assert!(!prefers(&["text/plain, application/problem+json;q=0.5"]));
        assert!(!prefers(&["application/problem+json;q=0"]));
        assert!(!prefers(&["application/problem+json;q=0.5, text/*"]));
        // The most specific range decides text/plain.
        assert!(prefers(&[
            "text/plain;q=0.1, */*, application/problem+json;q=0.5"
        ]));
        // Spread over two headers.
        assert!(prefers(&["text/plain;q=0.2", "application/problem+json"]));
        // Garbage entries are skipped, garbage weights ignored.
        assert!(prefers(&["???, application/problem+json"]));
        assert!(!prefers(&["application/problem+json;q=abc"]));
        assert!(prefers(&[
            "application/problem+json;foo=\"a,b\";q=1, text/plain;q=0.9"
        ]));
    }

    #[test]
    fn document_shape() {
        let mut p = Problem::for_status(StatusCode::TOO_MANY_REQUESTS, "slow down".into());
        p.retry_after = Some(3);
        let r = p.into_response();
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()[header::RETRY_AFTER], "3");
        assert_eq!(r.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
    }
}
