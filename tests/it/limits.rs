//! Resource limits against a real server: slow clients (slowloris), the
//! request-head size, the idle keep-alive timeout, and the connection cap.

use std::time::Duration;

use estd_testkit::*;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ENROLL: &str = "/.well-known/est/demo/simpleenroll";

/// Longest a test waits for something that must happen; only a guard against
/// hanging, never a measure of speed.
const GUARD: Duration = Duration::from_secs(60);

/// Reads until the peer closes (EOF, reset or TLS error); returns what was read.
/// Panics if the connection is still open after [`GUARD`].
async fn read_until_closed<S: AsyncRead + Unpin>(s: &mut S) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(GUARD, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .expect("the server closed the connection");
    out
}

/// Sends `head` one byte at a time, then keeps trickling header bytes, until
/// the server closes the connection; returns whatever the server sent.
async fn trickle_until_closed<S>(s: &mut S, head: &[u8], filler: u8) -> Vec<u8>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let bytes = head.iter().copied().chain(std::iter::repeat(filler));
    let closed = tokio::time::timeout(GUARD, async {
        for b in bytes {
            if s.write_all(&[b]).await.is_err() || s.flush().await.is_err() {
                return;
            }
            // The pause between bytes doubles as a check for the server's close.
            match tokio::time::timeout(Duration::from_millis(250), s.read(&mut buf)).await {
                Err(_) => continue,
                Ok(Ok(0)) | Ok(Err(_)) => return,
                Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the server closed the slow connection");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_clients_do_not_stop_enrolments_and_are_closed() {
    let dir = tempfile::tempdir().expect("tmp");
    // The slow clients share the enrolling clients' address, and there are more
    // of them than the per-source cap admits; this test is about the timeouts,
    // so the cap (tested in tests/connections.rs) is raised out of the way.
    let ts = TestServer::start_with(
        dir.path(),
        "[server]\nhandshake_timeout_secs = 2\nheader_read_timeout_secs = 2\nidle_timeout_secs = 2\nbody_read_timeout_secs = 3\n\
         max_connections_per_source = 1024\n\
         [rate_limit.ip]\nenabled = false\n",
    )
    .await;
    let addr = ts.server.est_addr;
    let root = ts.root_der();
    let mut slow = tokio::task::JoinSet::new();

    // 70 that open TCP and never finish the TLS handshake (half send a
    // fragment of a record header, half nothing).
    for i in 0..70 {
        slow.spawn(async move {
            let mut tcp = TcpStream::connect(addr).await.expect("connect");
            if i % 2 == 0 {
                tcp.write_all(&[0x16, 0x03]).await.expect("write");
            }
            read_until_closed(&mut tcp).await;
            "tcp"
        });
    }
    // 70 that finish the TLS handshake and send nothing.
    for _ in 0..70 {
        let root = root.clone();
        slow.spawn(async move {
            let mut tls = tls_connect(addr, &root, None, false).await;
            let got = read_until_closed(&mut tls).await;
            assert!(got.is_empty(), "nothing is answered to silence");
            "tls-silent"
        });
    }
    // 50 that trickle a request head, a byte at a time, never finishing it.
    for _ in 0..50 {
        let root = root.clone();
        slow.spawn(async move {
            let mut tls = tls_connect(addr, &root, None, false).await;
            let head = b"GET /.well-known/est/cacerts HTTP/1.1\r\nHost: localhost\r\nX-Slow: ";
            let got = trickle_until_closed(&mut tls, head, b'a').await;
            assert!(
                !String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"),
                "an unfinished head is never served"
            );
            "trickle-head"
        });
    }
    // 10 that send a complete head and trickle the body: 408.
    for _ in 0..10 {
        let root = root.clone();
        slow.spawn(async move {
            let mut tls = tls_connect(addr, &root, None, false).await;
            let head = format!(
                "POST {ENROLL} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/pkcs10\r\nContent-Length: 4000\r\n\r\n"
            );
            tls.write_all(head.as_bytes()).await.expect("head");
            let got = trickle_until_closed(&mut tls, b"", b'A').await;
            let text = String::from_utf8_lossy(&got);
            assert!(text.starts_with("HTTP/1.1 408"), "slow body gets 408: {text}");
            "trickle-body"
        });
    }

    // Meanwhile, real enrolments over mutual TLS succeed.
    let id = ts.demo_identity();
    let mut enrolments = tokio::task::JoinSet::new();
    for c in 0..4 {
        let mut client = ts.client(Some(&id)).await;
        enrolments.spawn(async move {
            for n in 0..5 {
                let (_k, csr) = demo_csr(&format!("busy-{c}-{n}"));
                issued_cert(&client.enroll(ENROLL, &csr).await);
            }
        });
    }
    while let Some(r) = enrolments.join_next().await {
        r.expect("enrolments succeed while slow clients hold connections");
    }
    let mut anon = ts.client(None).await;
    assert_eq!(anon.get("/.well-known/est/cacerts").await.status, 200);

    // And every slow connection is closed by the server.
    let mut kinds = std::collections::HashMap::new();
    while let Some(r) = slow.join_next().await {
        *kinds
            .entry(r.expect("slow connection closed by the server"))
            .or_insert(0) += 1;
    }
    assert_eq!(kinds.values().sum::<i32>(), 200, "{kinds:?}");
    ts.shutdown().await;
}

#[tokio::test]
async fn oversized_request_head_gets_431() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start_with(dir.path(), "[server]\nmax_header_bytes = 4096\n").await;
    let addr = ts.server.est_addr;
    let root = ts.root_der();
    let request = |filler: usize| {
        format!(
            "GET /.well-known/est/cacerts HTTP/1.1\r\nHost: localhost\r\nX-Filler: {}\r\nConnection: close\r\n\r\n",
            "f".repeat(filler)
        )
    };
    // Within the limit: served.
    let raw = raw_exchange(addr, &root, None, request(3000).as_bytes()).await;
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    // Over it: 431, and the connection is closed (raw_exchange reads to EOF).
    let raw = raw_exchange(addr, &root, None, request(6000).as_bytes()).await;
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 431"), "{text}");
    // Far over it, more than the read buffer: still 431 or a clean close, never served.
    let mut tls = tls_connect(addr, &root, None, false).await;
    let _ = tls.write_all(request(200_000).as_bytes()).await;
    let got = read_until_closed(&mut tls).await;
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 431"),
        "{text}"
    );
    ts.shutdown().await;
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed_but_requests_in_flight_are_not() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start_with(
        dir.path(),
        // A head timeout far beyond the guard: only the idle timeout can close it in time.
        "[server]\nidle_timeout_secs = 1\nheader_read_timeout_secs = 120\nbody_read_timeout_secs = 20\n",
    )
    .await;
    let id = ts.demo_identity();

    // Served, then left idle: the server closes it.
    let mut c = ts.client(Some(&id)).await;
    assert_eq!(c.get("/.well-known/est/cacerts").await.status, 200);
    tokio::time::timeout(GUARD, c.wait_closed())
        .await
        .expect("idle connection closed by the server");

    // A request whose body takes several idle timeouts to arrive is served:
    // a request in flight is not idle.
    let (_k, csr) = demo_csr("slow-but-steady");
    let body = b64(&csr);
    let mut tls = tls_connect(ts.server.est_addr, &ts.root_der(), Some(&id), false).await;
    let head = format!(
        "POST {ENROLL} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/pkcs10\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes()).await.expect("head");
    let parts = body.as_bytes().chunks(body.len() / 6 + 1);
    for part in parts {
        tokio::time::sleep(Duration::from_millis(600)).await;
        tls.write_all(part).await.expect("body part");
        tls.flush().await.expect("flush");
    }
    let got = read_until_closed(&mut tls).await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");

    // Two requests on one keep-alive connection with a pause shorter than the
    // idle timeout: both served.
    let mut c = ts.client(Some(&id)).await;
    assert_eq!(c.get("/.well-known/est/cacerts").await.status, 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(c.get("/.well-known/est/cacerts").await.status, 200);
    ts.shutdown().await;
}

#[tokio::test]
async fn past_the_connection_cap_new_clients_wait_and_established_ones_are_served() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start_with(dir.path(), "[server]\nmax_connections = 3\n").await;
    let id = ts.demo_identity();
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut c = ts.client(Some(&id)).await;
        assert_eq!(c.get("/.well-known/est/cacerts").await.status, 200);
        held.push(c);
    }
    // A fourth client's handshake cannot finish while every slot is taken.
    let addr = ts.server.est_addr;
    let root = ts.root_der();
    let fourth = tokio::spawn(async move { Client::connect(addr, &root, None, false).await });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !fourth.is_finished(),
        "the fourth connection waits for a slot"
    );
    // Established clients keep being served meanwhile.
    for c in &mut held {
        let (_k, csr) = demo_csr("capped");
        issued_cert(&c.enroll(ENROLL, &csr).await);
    }
    // One leaves: the waiting client gets its slot and is served.
    held.pop();
    let mut fourth = tokio::time::timeout(GUARD, fourth)
        .await
        .expect("the fourth connection gets a slot")
        .expect("task");
    assert_eq!(fourth.get("/.well-known/est/cacerts").await.status, 200);
    ts.shutdown().await;
}
