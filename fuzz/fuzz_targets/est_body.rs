//! The EST request body path: headers, a body that arrives in chunks the
//! fuzzer chooses, `read_csr_body` (method, media type, size limit, assembly,
//! RFC 8951 base64 with CRLF/LF and PEM armour, or binary).
//!
//! Input: byte 0 picks the headers (bits 0-2 Content-Transfer-Encoding, bit 3
//! a true Content-Length, bit 4 an oversized one, bit 5 a slow body, bits 6-7
//! the Content-Type); byte 1 is a count n (at most 32) of chunk lengths that
//! follow, one byte each; the rest is the body, split at those lengths (what
//! is left is the last chunk).
//!
//! Checks: no panic; a refusal is a 4xx, never a 5xx; the result equals
//! decoding the whole body at once (chunking never changes it); a decoded
//! base64 body survives the server's own re-encoding.

#![no_main]

use std::sync::OnceLock;

use bytes::Bytes;
use estd::config::Config;
use estd::est::codec::{decode_body, encode_base64_wrapped};
use estd::est::enroll::read_csr_body;
use estd::est::{is_binary_transfer, EstError};
use estd_fuzz::{config, runtime, ChunkBody};
use http::{header, Request};
use libfuzzer_sys::fuzz_target;

const TRANSFER_ENCODINGS: [Option<&str>; 8] = [
    None,
    Some("base64"),
    Some("binary"),
    Some("BINARY"),
    Some(" binary\t"),
    Some("7bit"),
    Some(""),
    Some("binary; x=1"),
];
const CONTENT_TYPES: [&str; 4] = [
    "application/pkcs10",
    "Application/PKCS10; charset=us-ascii",
    "application/pkcs10 ;",
    "text/plain",
];

struct Fixture {
    config: Config,
    runtime: tokio::runtime::Runtime,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| Fixture {
        // Small enough that the fuzzer's inputs reach the size limit.
        config: config("[server]\nmax_body_bytes = 3072\n"),
        runtime: runtime(),
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let Some((&n, rest)) = rest.split_first() else {
        return;
    };
    let n = usize::from(n).min(32).min(rest.len());
    let (lengths, mut body) = rest.split_at(n);
    let whole = body.to_vec();
    let mut chunks = Vec::with_capacity(n + 1);
    for &len in lengths {
        let (chunk, tail) = body.split_at(usize::from(len).min(body.len()));
        chunks.push(Bytes::copy_from_slice(chunk));
        body = tail;
    }
    chunks.push(Bytes::copy_from_slice(body));

    let f = fixture();
    let limit = f.config.server.max_body_bytes;
    let mut req = Request::post("/.well-known/est/simpleenroll")
        .header(header::CONTENT_TYPE, CONTENT_TYPES[usize::from(flags >> 6)]);
    if let Some(cte) = TRANSFER_ENCODINGS[usize::from(flags & 7)] {
        req = req.header("content-transfer-encoding", cte);
    }
    if flags & 8 != 0 {
        req = req.header(header::CONTENT_LENGTH, whole.len());
    }
    if flags & 16 != 0 {
        req = req.header(header::CONTENT_LENGTH, limit + 1);
    }
    let req = req
        .body(ChunkBody::new(chunks, flags & 32 != 0))
        .expect("request");
    let binary = is_binary_transfer(req.headers());
    let declared_too_large = flags & 24 == 16;

    let result = f.runtime.block_on(read_csr_body(&f.config.server, req));
    match result {
        Ok((parts, der)) => {
            assert_eq!(binary, is_binary_transfer(&parts.headers));
            assert!(whole.len() <= limit, "a body over the limit was read");
            assert!(!declared_too_large, "an oversized Content-Length was read");
            assert_eq!(Ok(&der), decode_body(&whole, binary).as_ref());
            if !binary {
                let again = decode_body(&encode_base64_wrapped(&der), false);
                assert_eq!(Ok(&der), again.as_ref(), "re-encoding changed the DER");
            }
        }
        Err(e) => {
            assert!(e.status().is_client_error(), "{e:?} is not a 4xx");
            if flags >> 6 == 3 {
                assert!(matches!(e, EstError::UnsupportedMediaType(_)), "{e:?}");
            } else if whole.len() > limit || declared_too_large {
                assert!(matches!(e, EstError::TooLarge(_)), "{e:?}");
            } else {
                assert!(matches!(e, EstError::BadRequest(_)), "{e:?}");
                assert!(decode_body(&whole, binary).is_err(), "{e:?}");
            }
            let _ = e.into_response();
        }
    }
});
