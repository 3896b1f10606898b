//! Connection-level defences against a real server: the per-source connection
//! cap, the short wait for a new connection's first byte, and `Connection:
//! close` on answers sent while the request body is left unread.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use estd_testkit::*;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const ENROLL: &str = "/.well-known/est/demo/simpleenroll";

/// Longest a test waits for something that must happen; only a guard against
/// hanging, never a measure of speed.
const GUARD: Duration = Duration::from_secs(60);

/// Reads until the peer closes (EOF, reset or TLS error); returns what was read.
async fn read_until_closed<S: AsyncRead + Unpin>(s: &mut S, guard: Duration) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(guard, async {
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

/// Reads one answer's head (up to the blank line), leaving the connection open.
async fn read_head<S: AsyncRead + Unpin>(s: &mut S) -> String {
    let mut out = Vec::new();
    let mut byte = [0u8; 1];
    tokio::time::timeout(GUARD, async {
        while !out.ends_with(b"\r\n\r\n") {
            match s.read(&mut byte).await {
                Ok(1) => out.push(byte[0]),
                _ => break,
            }
        }
    })
    .await
    .expect("an answer head");
    String::from_utf8_lossy(&out).into_owned()
}

/// A TCP connection to `addr` from the loopback address `from` (all of
/// 127.0.0.0/8 is loopback on Linux), so that one test can play two sources.
async fn connect_from(from: [u8; 4], addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::from((from, 0)))
        .expect("bind the source address");
    socket.connect(addr).await.expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idle_connections_from_one_source_do_not_delay_other_clients() {
    let dir = tempfile::tempdir().expect("tmp");
    // The default limits (max_connections, the per-source cap, the timeouts).
    let ts = TestServer::start(dir.path()).await;
    let addr = ts.server.est_addr;
    let id = ts.demo_identity();

    // 1,200 connections from 127.0.0.2 that never send a byte, made in
    // batches of 50 so that the server's accept queue keeps up.
    let setup = Instant::now();
    let mut attack = tokio::task::JoinSet::new();
    let mut idle = Vec::with_capacity(1200);
    let _ = tokio::time::timeout(Duration::from_secs(3), async {
        for _ in 0..24 {
            for _ in 0..50 {
                attack.spawn(async move { connect_from([127, 0, 0, 2], addr).await });
            }
            while let Some(tcp) = attack.join_next().await {
                idle.push(tcp.expect("connect task"));
            }
        }
    })
    .await;
    println!(
        "{} of 1,200 idle connections made in {:?}",
        idle.len(),
        setup.elapsed()
    );
    // A legitimate client on 127.0.0.1: connects, completes mutual TLS and
    // enrols within a second.
    let started = Instant::now();
    let mut client = ts.client(Some(&id)).await;
    let (_k, csr) = demo_csr("behind-the-idle-crowd");
    issued_cert(&client.enroll(ENROLL, &csr).await);
    let took = started.elapsed();
    println!("the enrolment answered in {took:?}");
    assert!(
        took < Duration::from_secs(1),
        "the enrolment answered in {took:?}"
    );

    // The attacker's surplus was refused at once and counted.
    let refused = ts
        .metric("estd_connections_refused_total{listener=\"est\",reason=\"per_source_cap\"}")
        .await;
    assert!(refused >= 1, "refusals counted: {refused}");
    // And every idle connection is closed by the server, none kept.
    while let Some(tcp) = tokio::time::timeout(GUARD, attack.join_next())
        .await
        .expect("every connection attempt ends")
    {
        idle.push(tcp.expect("connect task"));
    }
    let mut closing = tokio::task::JoinSet::new();
    for mut tcp in idle {
        closing.spawn(async move { read_until_closed(&mut tcp, GUARD).await });
    }
    while let Some(r) = closing.join_next().await {
        assert!(r.expect("closed").is_empty(), "nothing is sent to silence");
    }
    ts.shutdown().await;
}

#[tokio::test]
async fn past_the_per_source_cap_connections_are_refused_but_others_are_served() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start_with(
        dir.path(),
        "[server]\nmax_connections_per_source = 3\nfirst_byte_timeout_secs = 120\nhandshake_timeout_secs = 120\n",
    )
    .await;
    let addr = ts.server.est_addr;
    // Three held (silent, within every timeout) from 127.0.0.3 ...
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect_from([127, 0, 0, 3], addr).await);
    }
    // ... so a fourth from the same source is closed at once, unanswered.
    let mut fourth = connect_from([127, 0, 0, 3], addr).await;
    assert!(read_until_closed(&mut fourth, GUARD).await.is_empty());
    // Another source is served meanwhile.
    let mut other = ts.client(None).await;
    assert_eq!(other.get("/.well-known/est/cacerts").await.status, 200);
    assert_eq!(
        ts.metric("estd_connections_refused_total{listener=\"est\",reason=\"per_source_cap\"}")
            .await,
        1
    );
    // One of the three leaves: the source may connect again.
    drop(held.pop());
    let mut again = None;
    for _ in 0..100 {
        // The server notices the close asynchronously; retry until it has.
        let mut tcp = connect_from([127, 0, 0, 3], addr).await;
        let mut buf = [0u8; 1];
        match tokio::time::timeout(Duration::from_millis(300), tcp.read(&mut buf)).await {
            Err(_) => {
                again = Some(tcp);
                break;
            }
            Ok(_) => continue,
        }
    }
    assert!(again.is_some(), "a slot of the source freed up");
    ts.shutdown().await;
}

#[tokio::test]
async fn a_silent_new_connection_is_closed_after_the_first_byte_timeout() {
    let dir = tempfile::tempdir().expect("tmp");
    // The handshake and head timeouts are far beyond the guard below: only the
    // first-byte timeout can close the connection in time.
    let ts = TestServer::start_with(
        dir.path(),
        "[server]\nfirst_byte_timeout_secs = 1\nhandshake_timeout_secs = 300\nheader_read_timeout_secs = 300\n",
    )
    .await;
    for addr in [ts.server.est_addr, ts.server.public_addr] {
        let started = Instant::now();
        let mut tcp = TcpStream::connect(addr).await.expect("connect");
        let got = read_until_closed(&mut tcp, Duration::from_secs(30)).await;
        let took = started.elapsed();
        assert!(got.is_empty(), "nothing is answered to silence");
        assert!(
            took >= Duration::from_millis(900),
            "not before the first-byte timeout: {took:?}"
        );
    }
    // A client that starts at once but is slow after its first byte is left
    // to the (longer) full timeouts: here a request on the plain-HTTP listener.
    let mut tcp = TcpStream::connect(ts.server.public_addr)
        .await
        .expect("connect");
    tcp.write_all(b"G").await.expect("first byte");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    tcp.write_all(b"ET /nothing-here HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .expect("rest");
    let got = read_until_closed(&mut tcp, GUARD).await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 404"), "{text}");
    assert!(
        ts.metric("estd_connections_refused_total{listener=\"est\",reason=\"first_byte_timeout\"}")
            .await
            >= 1
    );
    ts.shutdown().await;
}

#[tokio::test]
async fn a_client_still_sending_its_refused_body_gets_the_answer_not_a_reset() {
    // curl sends a body while the answer comes back: the 413 for a body over
    // the limit is sent before the body is read. Closing a socket with
    // unread data resets the connection, and the client's next write fails
    // (curl: "Send failure: Broken pipe") instead of reading the answer.
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    const CHUNK: usize = 16 * 1024;
    const CHUNKS: usize = 16;
    let mut tls = tls_connect(ts.server.est_addr, &ts.root_der(), None, false).await;
    let head = format!(
        "POST {ENROLL} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/pkcs10\r\nContent-Length: {}\r\n\r\n",
        CHUNK * CHUNKS
    );
    tls.write_all(head.as_bytes()).await.expect("head");
    let chunk = vec![b'A'; CHUNK];
    tls.write_all(&chunk).await.expect("the first chunk");
    tls.flush().await.expect("flush");
    let answer = read_head(&mut tls).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\r\nConnection: close\r\n"), "{answer}");
    // The rest of the body, after the answer and the server's close: each
    // write must still be taken (paced, so that a reset would be back).
    for i in 1..CHUNKS {
        tokio::time::sleep(Duration::from_millis(1)).await;
        let written = async {
            tls.write_all(&chunk).await?;
            tls.flush().await
        }
        .await;
        assert!(written.is_ok(), "chunk {i} of the body: {written:?}");
    }
    // Then the answer's body and an orderly end, not a reset.
    let mut rest = Vec::new();
    let end = tokio::time::timeout(GUARD, tls.read_to_end(&mut rest))
        .await
        .expect("the end of the answer");
    assert!(end.is_ok(), "the connection ended with {end:?}");
    assert!(!rest.is_empty(), "the answer's body (a problem document)");
    ts.shutdown().await;
}

/// Sends `head` over a fresh TLS connection (no body), and returns the answer's
/// head and whether the server then closed the connection.
async fn answer_to_head(addr: SocketAddr, root: &[u8], head: &str) -> (String, bool) {
    let mut tls = tls_connect(addr, root, None, false).await;
    tls.write_all(head.as_bytes()).await.expect("head");
    let answer = read_head(&mut tls).await;
    // Whatever follows (the answer's body), then the close.
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(GUARD, async {
        loop {
            match tls.read(&mut buf).await {
                Ok(0) | Err(_) => return true,
                Ok(_) => continue,
            }
        }
    })
    .await
    .unwrap_or(false);
    (answer, closed)
}

#[tokio::test]
async fn early_answers_with_the_body_unread_say_connection_close_and_close() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let (est, admin, root) = (ts.server.est_addr, ts.server.admin_addr, ts.root_der());

    // 415: a wrong media type, answered before the (announced, unsent) body.
    let (head, closed) = answer_to_head(
        est,
        &root,
        &format!("POST {ENROLL} HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\nContent-Length: 60000\r\n\r\n"),
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 415"), "{head}");
    assert!(head.contains("\r\nConnection: close\r\n"), "{head}");
    assert!(closed, "the connection is closed after the 415");

    // 413: a body announced over the limit.
    let (head, closed) = answer_to_head(
        est,
        &root,
        &format!("POST {ENROLL} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/pkcs10\r\nContent-Length: 10000000\r\n\r\n"),
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    assert!(head.contains("\r\nConnection: close\r\n"), "{head}");
    assert!(closed, "the connection is closed after the 413");

    // The admin API: 401 before a posted body is read.
    let (head, closed) = answer_to_head(
        admin,
        &root,
        "POST /api/v1/organisations HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 50000\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    assert!(head.contains("\r\nConnection: close\r\n"), "{head}");
    assert!(closed, "the connection is closed after the 401");

    // The plain-HTTP listener: an OCSP POST announced over its limit.
    let mut tcp = TcpStream::connect(ts.server.public_addr)
        .await
        .expect("connect");
    tcp.write_all(
        b"POST /ocsp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/ocsp-request\r\nContent-Length: 1000000\r\n\r\n",
    )
    .await
    .expect("head");
    let head = read_head(&mut tcp).await;
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    assert!(head.contains("\r\nConnection: close\r\n"), "{head}");
    read_until_closed(&mut tcp, GUARD).await;

    // An answer after the whole body was read keeps the connection: a
    // complete but broken CSR gets 400, and the next request is served.
    let mut tls = tls_connect(est, &root, None, false).await;
    let body = "AAAA";
    let req = format!(
        "POST {ENROLL} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/pkcs10\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tls.write_all(req.as_bytes()).await.expect("request");
    let head = read_head(&mut tls).await;
    assert!(!head.contains("Connection: close"), "{head}");
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .expect("Content-Length")
        .trim()
        .parse()
        .expect("length");
    let mut rest = vec![0u8; len];
    tls.read_exact(&mut rest).await.expect("body");
    tls.write_all(b"GET /.well-known/est/cacerts HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("second request");
    let head = read_head(&mut tls).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    ts.shutdown().await;
}
