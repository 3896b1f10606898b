//! estd on PostgreSQL when the database goes away (issue 13, failure
//! behaviour), each test with a cluster of its own that it stops and starts:
//!
//! - while PostgreSQL is down, EST enrolment answers 503 with `Retry-After`,
//!   readiness fails, and no certificate is handed out; once it is back,
//!   estd reconnects by itself and enrolment works again;
//! - a PostgreSQL restart (immediate shutdown, as a crash) under 16-way
//!   enrolment loses no certificate a client received and duplicates no serial.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use der::Decode;
use estd_testkit::postgres::Cluster;
use estd_testkit::process::{NoAnswer, TryClient, NO_CLIENT_RATE_LIMITS};
use estd_testkit::*;
use x509_cert::Certificate;

const ENROLL: &str = "/.well-known/est/demo/simpleenroll";

/// A cluster of this test's own, started off the async runtime.
async fn own_cluster() -> Arc<Cluster> {
    tokio::task::spawn_blocking(|| Cluster::start().unwrap_or_else(|e| panic!("{e}")))
        .await
        .map(Arc::new)
        .expect("join")
}

/// Runs `f` on the cluster off the async runtime.
async fn on_cluster(c: &Arc<Cluster>, what: &'static str, f: fn(&Cluster) -> Result<(), String>) {
    let c = c.clone();
    tokio::task::spawn_blocking(move || f(&c).unwrap_or_else(|e| panic!("{what}: {e}")))
        .await
        .expect("join")
}

fn store_table(url: &str) -> String {
    format!("[store]\nengine = \"postgres\"\nurl = \"{url}\"\npool_size = 8\n")
}

async fn readyz(ts: &TestServer) -> u16 {
    ts.admin_client(None).await.get("/readyz").await.status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unreachable_database_is_503_with_retry_after_and_estd_reconnects() {
    let cluster = own_cluster().await;
    let url = cluster.create_database();
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start_with(dir.path(), &store_table(&url)).await;
    let idm = ts.demo_identity();
    let mut c = ts.client(Some(&idm)).await;
    let (_k, csr) = demo_csr("before");
    let first = issued_cert(&c.enroll(ENROLL, &csr).await);
    assert_eq!(readyz(&ts).await, 200);
    let stored_before = ts.cert_count();

    on_cluster(&cluster, "stop PostgreSQL", Cluster::stop).await;
    for i in 0..3 {
        let (_k, csr) = demo_csr(&format!("while-down-{i}"));
        let mut c = ts.client(Some(&idm)).await;
        let r = c.enroll(ENROLL, &csr).await;
        assert_eq!(
            r.status,
            503,
            "enrolment with the database down: {}",
            r.text()
        );
        let retry: u64 = r
            .header("retry-after")
            .unwrap_or_else(|| panic!("503 without Retry-After: {:?}", r.headers))
            .parse()
            .expect("Retry-After in seconds");
        assert!(retry > 0);
        assert!(
            pkcs7_certs_opt(&r.body).is_none(),
            "a certificate was handed out while the database was down"
        );
    }
    assert_eq!(
        readyz(&ts).await,
        503,
        "readiness must fail while the database is down"
    );

    on_cluster(&cluster, "start PostgreSQL again", Cluster::start_again).await;
    let back = Instant::now();
    let cert = loop {
        let (_k, csr) = demo_csr("after");
        let mut c = ts.client(Some(&idm)).await;
        let r = c.enroll(ENROLL, &csr).await;
        if r.status == 200 {
            break issued_cert(&r);
        }
        assert_eq!(r.status, 503, "{}", r.text());
        assert!(
            back.elapsed() < Duration::from_secs(30),
            "estd did not reconnect within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!(
        "enrolment worked again {:.2} s after PostgreSQL was back",
        back.elapsed().as_secs_f64()
    );
    let ready = Instant::now();
    while readyz(&ts).await != 200 {
        assert!(
            ready.elapsed() < Duration::from_secs(10),
            "readiness stays failed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Exactly the two certificates answered are stored: nothing was issued
    // while the database was down.
    let store = ts.app().store.clone();
    for c in [&first, &cert] {
        let rec = store.cert(&serial_of(c)).expect("read").expect("stored");
        assert_eq!(rec.der, der_of(c));
    }
    assert_eq!(ts.cert_count(), stored_before + 1);
    ts.shutdown().await;
}

/// The certificates of a PKCS#7 body, if it is one.
fn pkcs7_certs_opt(body: &[u8]) -> Option<usize> {
    let der = estd::est::codec::decode_body(body, false).ok()?;
    let ci = cms::content_info::ContentInfo::from_der(&der).ok()?;
    Some(ci.content.value().len())
}

/// One load worker: enrols over and over; returns the certificates received
/// and the statuses other than 200 and 503 (there must be none).
async fn load_worker(
    i: usize,
    est: std::net::SocketAddr,
    root: Arc<Vec<u8>>,
    idm: Arc<Identity>,
    stop: Arc<AtomicBool>,
) -> (Vec<(Vec<u8>, Instant)>, usize, Vec<String>) {
    let mut got = Vec::new();
    let mut unavailable = 0;
    let mut odd = Vec::new();
    let mut client: Option<TryClient> = None;
    while !stop.load(Ordering::Relaxed) {
        if client.is_none() {
            client = TryClient::connect(est, &root, Some(&idm)).await.ok();
        }
        let Some(c) = client.as_mut() else {
            odd.push("no connection".into());
            continue;
        };
        match c.enrol_demo(&format!("restart-{i}")).await {
            Ok(r) if r.status == 200 => got.push((der_of(&issued_cert(&r)), Instant::now())),
            Ok(r) if r.status == 503 => {
                unavailable += 1;
                if r.header("retry-after").is_none() {
                    odd.push("503 without Retry-After".into());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok(r) => odd.push(format!("{} {}", r.status, r.text())),
            Err(NoAnswer::NotSent(_) | NoAnswer::Unknown(_)) => client = None,
        }
    }
    (got, unavailable, odd)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_postgres_restart_under_load_loses_no_certificate_and_duplicates_no_serial() {
    let cluster = own_cluster().await;
    let url = cluster.create_database();
    let dir = tempfile::tempdir().expect("tmp");
    let extra = format!("{}{NO_CLIENT_RATE_LIMITS}", store_table(&url));
    let ts = TestServer::start_with(dir.path(), &extra).await;
    let root = Arc::new(ts.root_der());
    let idm = Arc::new(ts.demo_identity());
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..16)
        .map(|i| {
            tokio::spawn(load_worker(
                i,
                ts.server.est_addr,
                root.clone(),
                idm.clone(),
                stop.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(800)).await;
    // Immediate shutdown: the server stops as in a crash (no checkpoint);
    // only what was committed (fsync'd to the WAL) comes back.
    on_cluster(&cluster, "restart PostgreSQL", Cluster::restart_immediate).await;
    let restarted = Instant::now();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut received = Vec::new();
    let mut unavailable = 0;
    for w in workers {
        let (got, u, odd) = tokio::time::timeout(Duration::from_secs(60), w)
            .await
            .expect("a worker hung")
            .expect("worker");
        assert!(odd.is_empty(), "unexpected answers: {odd:?}");
        received.extend(got);
        unavailable += u;
    }
    let after = received.iter().filter(|(_, at)| *at > restarted).count();
    eprintln!(
        "{} certificates received ({after} after the restart), {unavailable} answers 503",
        received.len()
    );
    assert!(received.len() > after, "no load before the restart");
    assert!(after > 0, "estd did not recover after the restart");
    // A fresh handle on the database: what a client got is there.
    let store = estd::store::open_location(&url, 2).expect("open");
    let mut serials = HashSet::new();
    for (der, _) in &received {
        let cert = Certificate::from_der(der).expect("cert");
        let serial = serial_of(&cert);
        assert!(serials.insert(serial), "serial {serial} handed out twice");
        let rec = store
            .cert(&serial)
            .expect("read")
            .unwrap_or_else(|| panic!("certificate {serial} was answered but is not stored"));
        assert_eq!(&rec.der, der);
    }
    ts.shutdown().await;
}
