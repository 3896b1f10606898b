//! An HTTPS client for the admin API, so that an operator needs no curl:
//! hyper's HTTP/1.1 client over tokio-rustls, pinned to one trust anchor,
//! with a bearer token.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use serde_json::Value;

use super::problem::PROBLEM_JSON;
use super::routes::API_PREFIX;

/// How long one call may take, connection included.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a call did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A bad option value.
    #[error("{0}")]
    Usage(String),
    /// A file that could not be read or used.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// No connection (TCP, TLS or HTTP handshake).
    #[error("connecting to {addr}: {reason}")]
    Connect {
        /// `host:port`.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The exchange failed after connecting.
    #[error("{0}")]
    Exchange(String),
    /// The server refused the call with a problem document (or another error body).
    #[error("HTTP {status} {title}: {}{detail}", field.as_deref().map(|f| format!("{f}: ")).unwrap_or_default())]
    Api {
        /// HTTP status.
        status: u16,
        /// Problem title.
        title: String,
        /// Problem detail.
        detail: String,
        /// The field named, for a 400.
        field: Option<String>,
    },
    /// The answer was not what the call returns.
    #[error("unexpected answer: {0}")]
    Answer(String),
    /// Writing the output failed.
    #[error("writing output: {0}")]
    Output(#[from] std::io::Error),
}

/// A successful answer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status (2xx).
    pub status: u16,
    /// `Content-Type`, if any.
    pub content_type: Option<String>,
    /// The body.
    pub body: Bytes,
}

impl Answer {
    /// The body as JSON.
    pub fn json(&self) -> Result<Value, ClientError> {
        serde_json::from_slice(&self.body)
            .map_err(|e| ClientError::Answer(format!("body is not JSON: {e}")))
    }
}

/// A parsed `https://host[:port][/prefix]` base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
struct BaseUrl {
    /// `host:port` to connect to.
    authority: String,
    /// The host as the TLS server name (brackets of an IPv6 literal removed).
    host: String,
    /// Path prefix without a trailing slash (usually empty).
    prefix: String,
}

fn parse_url(url: &str) -> Result<BaseUrl, ClientError> {
    let rest = url.strip_prefix("https://").ok_or_else(|| {
        ClientError::Usage(format!("--url must start with https://, not {url:?}"))
    })?;
    let (authority, prefix) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| ClientError::Usage(format!("--url {url:?}: unclosed [")))?;
            (host, after.strip_prefix(':'))
        }
        None => match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        },
    };
    if host.is_empty() {
        return Err(ClientError::Usage(format!("--url {url:?} has no host")));
    }
    let port: u16 = match port {
        None => 443,
        Some(p) => p
            .parse()
            .map_err(|_| ClientError::Usage(format!("--url {url:?}: bad port {p:?}")))?,
    };
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    Ok(BaseUrl {
        authority,
        host: host.to_owned(),
        prefix: prefix.to_owned(),
    })
}

/// Reads a token file (surrounding white space ignored).
pub fn read_token_file(path: &Path) -> Result<String, ClientError> {
    let text = std::fs::read_to_string(path).map_err(|e| ClientError::File {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(ClientError::File {
            path: path.to_owned(),
            reason: "the file holds no token".into(),
        });
    }
    Ok(token.to_owned())
}

/// Percent-encodes a query component (RFC 3986 unreserved characters stay).
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A query string (with its `?`) of the pairs that have a value.
pub fn query_string(pairs: &[(&str, Option<&str>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.map(|v| format!("{k}={}", encode_component(v))))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

/// A client for one admin listener.
pub struct AdminClient {
    base: BaseUrl,
    server_name: ServerName<'static>,
    tls: Arc<ClientConfig>,
    /// `Bearer <token>`; none for the routes that take no credentials.
    authorization: Option<HeaderValue>,
}

impl AdminClient {
    /// A client for `url` that trusts only the certificates in `ca_file`,
    /// sending `token` (if any) as a bearer token.
    pub fn new(url: &str, ca_file: &Path, token: Option<&str>) -> Result<AdminClient, ClientError> {
        let base = parse_url(url)?;
        let server_name = ServerName::try_from(base.host.clone())
            .map_err(|e| ClientError::Usage(format!("--url host {:?}: {e}", base.host)))?;
        let pem = std::fs::read(ca_file).map_err(|e| ClientError::File {
            path: ca_file.to_owned(),
            reason: e.to_string(),
        })?;
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| ClientError::File {
                path: ca_file.to_owned(),
                reason: format!("bad PEM certificate: {e}"),
            })?;
            roots.add(cert).map_err(|e| ClientError::File {
                path: ca_file.to_owned(),
                reason: format!("unusable trust anchor: {e}"),
            })?;
        }
        if roots.is_empty() {
            return Err(ClientError::File {
                path: ca_file.to_owned(),
                reason: "no CERTIFICATE in the file".into(),
            });
        }
        let mut tls = ClientConfig::builder_with_provider(crate::tls::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| ClientError::Usage(format!("TLS: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let authorization = token
            .map(|t| {
                HeaderValue::from_str(&format!("Bearer {}", t.trim())).map_err(|_| {
                    ClientError::Usage("the token contains characters a header cannot carry".into())
                })
            })
            .transpose()?;
        Ok(AdminClient {
            base,
            server_name,
            tls: Arc::new(tls),
            authorization,
        })
    }

    /// Calls `method` on `path` (under `/api/v1`, query included) with an
    /// optional JSON body. A non-2xx answer is an error.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, ClientError> {
        tokio::time::timeout(CALL_TIMEOUT, self.exchange(method, path, body))
            .await
            .map_err(|_| ClientError::Exchange(format!("no answer within {CALL_TIMEOUT:?}")))?
    }

    /// [`AdminClient::call`] for a call that may take long (a backup of a
    /// large store): waits up to `timeout`.
    pub async fn call_waiting(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        timeout: Duration,
    ) -> Result<Answer, ClientError> {
        tokio::time::timeout(timeout, self.exchange(method, path, body))
            .await
            .map_err(|_| ClientError::Exchange(format!("no answer within {timeout:?}")))?
    }

    async fn exchange(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, ClientError> {
        let addr = self.base.authority.clone();
        let connect_error = |reason: String| ClientError::Connect {
            addr: addr.clone(),
            reason,
        };
        let tcp = tokio::net::TcpStream::connect(&self.base.authority)
            .await
            .map_err(|e| connect_error(e.to_string()))?;
        let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|e| connect_error(format!("TLS: {e}")))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| connect_error(format!("HTTP: {e}")))?;
        tokio::spawn(async move {
            // Errors surface on the request side.
            let _ = conn.await;
        });
        let uri = format!("{}{API_PREFIX}{path}", self.base.prefix);
        let mut builder = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::HOST, &self.base.authority)
            .header(header::ACCEPT, "application/json, text/csv");
        if let Some(authorization) = &self.authorization {
            builder = builder.header(header::AUTHORIZATION, authorization.clone());
        }
        let payload = match body {
            Some(v) => {
                builder = builder.header(header::CONTENT_TYPE, "application/json");
                Bytes::from(
                    serde_json::to_vec(v)
                        .map_err(|e| ClientError::Usage(format!("encoding the body: {e}")))?,
                )
            }
            None => Bytes::new(),
        };
        let req = builder
            .body(Full::new(payload))
            .map_err(|e| ClientError::Usage(format!("building the request: {e}")))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| ClientError::Exchange(format!("sending the request: {e}")))?;
        let status = resp.status();
        let content_type = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| ClientError::Exchange(format!("reading the answer: {e}")))?
            .to_bytes();
        if !status.is_success() {
            return Err(problem_error(status, content_type.as_deref(), &body));
        }
        Ok(Answer {
            status: status.as_u16(),
            content_type,
            body,
        })
    }
}

/// The error for a non-2xx answer, from its problem document if it has one.
fn problem_error(status: http::StatusCode, content_type: Option<&str>, body: &[u8]) -> ClientError {
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
    let title = status.canonical_reason().unwrap_or("error").to_owned();
    let problem = content_type
        .filter(|t| t.starts_with(PROBLEM_JSON))
        .and_then(|_| serde_json::from_slice::<Value>(body).ok());
    match problem {
        Some(p) => ClientError::Api {
            status: status.as_u16(),
            title: text(&p, "title").unwrap_or(title),
            detail: text(&p, "detail").unwrap_or_default(),
            field: text(&p, "field"),
        },
        None => ClientError::Api {
            status: status.as_u16(),
            title,
            detail: String::from_utf8_lossy(body)
                .trim()
                .chars()
                .take(500)
                .collect(),
            field: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = parse_url("https://127.0.0.1:9443").expect("url");
        assert_eq!(u.authority, "127.0.0.1:9443");
        assert_eq!(u.host, "127.0.0.1");
        assert_eq!(u.prefix, "");
        let u = parse_url("https://[::1]:9443/estd/").expect("url");
        assert_eq!(u.authority, "[::1]:9443");
        assert_eq!(u.host, "::1");
        assert_eq!(u.prefix, "/estd");
        assert_eq!(
            parse_url("https://localhost").expect("url").authority,
            "localhost:443"
        );
        assert!(parse_url("http://127.0.0.1").is_err());
        assert!(parse_url("https://:1").is_err());
        assert!(parse_url("https://h:x").is_err());
    }

    #[test]
    fn query_encoding() {
        assert_eq!(
            query_string(&[("q", Some("a b@c")), ("cvr", None), ("page", Some("2"))]),
            "?q=a%20b%40c&page=2"
        );
        assert_eq!(query_string(&[("q", None)]), "");
    }

    #[test]
    fn problem_documents_become_errors() {
        let body = br#"{"type":"urn:estd:error:invalid-field","title":"Invalid field","status":400,"detail":"is required","field":"name"}"#;
        let e = problem_error(http::StatusCode::BAD_REQUEST, Some(PROBLEM_JSON), body);
        assert_eq!(e.to_string(), "HTTP 400 Invalid field: name: is required");
        let e = problem_error(http::StatusCode::BAD_GATEWAY, Some("text/plain"), b"down\n");
        assert_eq!(e.to_string(), "HTTP 502 Bad Gateway: down");
    }
}
