//! Header names in their registered spellings on the wire.

use bytes::Bytes;
use http::{header, Request};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use std::sync::OnceLock;

use super::router::Answer;

/// hyper writes header names in Title-Case (`title_case_headers`), which is
/// the registered spelling of every header estd sends but one:
/// `WWW-Authenticate` (RFC 9110 11.6.1) would go out as `Www-Authenticate`,
/// and clients that match names byte for byte (libest) then miss the
/// challenge. hyper writes other spellings only from its `HeaderCaseMap`
/// response extension, which is private and made only by its own parser
/// (`preserve_header_case`). So one is made once, by letting hyper's client
/// parse a response that spells the names as registered; its extensions are
/// then copied onto each answer that carries such a header.
static REGISTERED_SPELLINGS: OnceLock<http::Extensions> = OnceLock::new();

/// The headers whose Title-Case form is not their registered spelling.
const RESPELLED: &[header::HeaderName] = &[header::WWW_AUTHENTICATE];

async fn registered_spellings() -> http::Extensions {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Twice: an answer may carry two challenges (each value is one line).
    const CANNED: &[u8] =
        b"HTTP/1.1 204 No Content\r\nWWW-Authenticate: x\r\nWWW-Authenticate: x\r\n\r\n";
    let (client, mut server) = tokio::io::duplex(4096);
    let answer = async move {
        let mut head = Vec::new();
        let mut buf = [0u8; 512];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match server.read(&mut buf).await? {
                0 => break,
                n => head.extend_from_slice(&buf[..n]),
            }
        }
        server.write_all(CANNED).await?;
        Ok::<_, std::io::Error>(server)
    };
    let ask = async move {
        let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
            .preserve_header_case(true)
            .handshake::<_, Full<Bytes>>(TokioIo::new(client))
            .await?;
        tokio::spawn(conn);
        let req = Request::get("/")
            .header(header::HOST, "localhost")
            .body(Full::new(Bytes::new()))
            .map_err(std::io::Error::other)?;
        let resp = sender.send_request(req).await?;
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(resp.into_parts().0.extensions)
    };
    match tokio::join!(answer, ask) {
        (Ok(_), Ok(extensions)) if !extensions.is_empty() => extensions,
        (a, b) => {
            tracing::warn!(
                answer = ?a.err(),
                parse = ?b.err(),
                "cannot prepare registered header spellings; WWW-Authenticate goes out as Www-Authenticate"
            );
            http::Extensions::new()
        }
    }
}

/// Prepares the registered spellings once per process; call before serving.
pub async fn prepare_spellings() {
    if REGISTERED_SPELLINGS.get().is_none() {
        let _ = REGISTERED_SPELLINGS.set(registered_spellings().await);
    }
}

/// Makes `resp` spell its headers as registered, where Title-Case would not.
pub(super) fn respell(resp: &mut Answer) {
    if RESPELLED.iter().any(|h| resp.headers().contains_key(h)) {
        if let Some(spellings) = REGISTERED_SPELLINGS.get() {
            resp.extensions_mut().extend(spellings.clone());
        }
    }
}
