//! The plain-HTTP listener (CRL and OCSP) under load from one source: a
//! per-address rate limit (429 with Retry-After), and OCSP signing bounded to
//! its configured concurrency so that a flood of nonce requests (each one a
//! fresh signature) cannot take every core from the EST path.

use std::net::SocketAddr;

use bytes::Bytes;
use der::asn1::OctetString;
use der::Encode;
use estd_testkit::*;
use http_body_util::{BodyExt, Full};
use tokio::net::{TcpSocket, TcpStream};
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_ocsp::{OcspRequest, Request as SingleRequest, TbsRequest, Version};

/// A DER OCSPRequest for `serial` with a fresh 16-byte nonce, so that the
/// responder must sign an answer of its own (no cache can serve it).
fn nonce_request(serial: u64, nonce: u64) -> Vec<u8> {
    let cert_id = x509_ocsp::CertId {
        hash_algorithm: AlgorithmIdentifierOwned {
            oid: const_oid::db::rfc5912::ID_SHA_1,
            parameters: Some(der::asn1::Null.into()),
        },
        issuer_name_hash: OctetString::new([0u8; 20]).expect("hash"),
        issuer_key_hash: OctetString::new([0u8; 20]).expect("hash"),
        serial_number: SerialNumber::new(&serial.to_be_bytes()).expect("serial"),
    };
    let mut n = [0u8; 16];
    n[..8].copy_from_slice(&nonce.to_be_bytes());
    n[8..].copy_from_slice(&serial.to_be_bytes());
    let nonce_ext = x509_cert::ext::Extension {
        extn_id: const_oid::db::rfc6960::ID_PKIX_OCSP_NONCE,
        critical: false,
        extn_value: OctetString::new(
            OctetString::new(n.to_vec())
                .expect("nonce")
                .to_der()
                .expect("der"),
        )
        .expect("ext"),
    };
    OcspRequest {
        tbs_request: TbsRequest {
            version: Version::V1,
            requestor_name: None,
            request_list: vec![SingleRequest {
                req_cert: cert_id,
                single_request_extensions: None,
            }],
            request_extensions: Some(vec![nonce_ext]),
        },
        optional_signature: None,
    }
    .to_der()
    .expect("request")
}

/// A keep-alive plain-HTTP/1.1 client on the public listener from `from`.
async fn plain_client(
    addr: SocketAddr,
    from: [u8; 4],
) -> hyper::client::conn::http1::SendRequest<Full<Bytes>> {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.bind(SocketAddr::from((from, 0))).expect("bind");
    let tcp: TcpStream = socket.connect(addr).await.expect("connect");
    let (sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
        .await
        .expect("http handshake");
    tokio::spawn(conn);
    sender
}

/// POSTs one OCSP request; returns the status and the Retry-After header.
async fn post_ocsp(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    der: Vec<u8>,
) -> (u16, Option<String>) {
    let req = http::Request::builder()
        .method("POST")
        .uri("/ocsp")
        .header("host", "localhost")
        .header("content-type", "application/ocsp-request")
        .body(Full::new(Bytes::from(der)))
        .expect("request");
    sender.ready().await.expect("connection ready");
    let resp = sender.send_request(req).await.expect("send");
    let status = resp.status().as_u16();
    let retry = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let _ = resp.into_body().collect().await.expect("body");
    (status, retry)
}

#[tokio::test]
async fn a_burst_of_nonce_ocsp_requests_beyond_the_limit_gets_429() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start_with(
        dir.path(),
        "[rate_limit.public]\nenabled = true\nper_second = 0.01\nburst = 5\n",
    )
    .await;
    let addr = ts.server.public_addr;
    let mut flood = plain_client(addr, [127, 0, 0, 2]).await;
    for i in 0..5 {
        let (status, _) = post_ocsp(&mut flood, nonce_request(i, i)).await;
        assert_eq!(status, 200, "within the burst");
    }
    for i in 5..8 {
        // A refused POST's body is left unread, so each 429 closes its connection.
        let mut flood = plain_client(addr, [127, 0, 0, 2]).await;
        let (status, retry) = post_ocsp(&mut flood, nonce_request(i, i)).await;
        assert_eq!(status, 429, "over the burst");
        let secs: u64 = retry.expect("Retry-After").parse().expect("whole seconds");
        assert!(secs >= 1);
    }
    // The CRL on the same listener counts against the same address.
    let mut flood = plain_client(addr, [127, 0, 0, 2]).await;
    flood.ready().await.expect("connection ready");
    let crl = http::Request::builder()
        .uri("/crl/issuing-ca.crl")
        .header("host", "localhost")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let resp = flood.send_request(crl).await.expect("send");
    assert_eq!(resp.status().as_u16(), 429);
    drop(resp);
    // Another address is served.
    let mut other = plain_client(addr, [127, 0, 0, 3]).await;
    assert_eq!(post_ocsp(&mut other, nonce_request(9, 9)).await.0, 200);
    assert_eq!(
        ts.metric("estd_rate_limited_total{kind=\"public\"}").await,
        4
    );
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn ocsp_signing_never_exceeds_its_permits_while_enrolments_go_on() {
    let dir = tempfile::tempdir().expect("tmp");
    // The limit is off: only the signing bound stands between the flood and the cores.
    let ts = TestServer::start_with(dir.path(), "[rate_limit.public]\nenabled = false\n").await;
    let addr = ts.server.public_addr;
    let mut flood = tokio::task::JoinSet::new();
    for w in 0..32u64 {
        flood.spawn(async move {
            let mut c = plain_client(addr, [127, 0, 0, 2]).await;
            for i in 0..40u64 {
                let (status, _) = post_ocsp(&mut c, nonce_request(w * 1000 + i, i)).await;
                assert_eq!(status, 200);
            }
        });
    }
    // Enrolments are served throughout.
    let mut c = ts.client(Some(&ts.demo_identity())).await;
    for n in 0..10 {
        let (_k, csr) = demo_csr(&format!("during-the-flood-{n}"));
        issued_cert(&c.enroll("/.well-known/est/demo/simpleenroll", &csr).await);
    }
    while let Some(r) = flood.join_next().await {
        r.expect("flood worker");
    }
    assert_eq!(
        ts.metric("estd_ocsp_responses_total{status=\"unknown\"}")
            .await,
        32 * 40
    );
    let peak = ts.metric("estd_ocsp_signing_peak").await;
    assert_eq!(
        peak, 1,
        "OCSP answers were signed one at a time (revocation.ocsp_signing_concurrency = 1), and the flood reached it"
    );
    assert_eq!(ts.metric("estd_ocsp_signing_in_progress").await, 0);
    ts.shutdown().await;
}
