//! The store under hostile or unlucky conditions (issue 11, security findings
//! 1 and 6): anonymous refusals cannot fill the disk through the audit log,
//! stored client text is bounded, the audit log is pruned and paged inside the
//! store, and a full disk is survived without a restart.
//!
//! Real server on loopback, real TLS, real sled in a temp dir (or on a small
//! tmpfs for the full-disk test).

use estd_testkit::process;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use estd::model::{now_unix, AuditAction, AuditEvent, AuditOutcome};
use estd_testkit::*;
use serde_json::Value;

/// Rate limits off: these tests are about the store, not the limiter.
const NO_RATE_LIMITS: &str = "[rate_limit.ip]\nenabled = false\n[rate_limit.label]\nenabled = false\n[rate_limit.client]\nenabled = false\n[rate_limit.reference]\nenabled = false\n";

async fn api_get(ts: &TestServer, path: &str) -> (u16, Value) {
    let mut c = ts.admin_client(None).await;
    let auth = format!("Bearer {}", ts.operator_token());
    let r = c
        .send(
            "GET",
            &format!("/api/v1{path}"),
            &[("authorization", &auth)],
            vec![],
        )
        .await;
    (
        r.status,
        serde_json::from_slice(&r.body).unwrap_or(Value::Null),
    )
}

async fn assert_problem_status(ts: &TestServer, path: &str, status: u16) {
    let (got, body) = api_get(ts, path).await;
    assert_eq!(got, status, "{path}: {body}");
}

fn metric(text: &str, line_start: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn event(at_ms: u64, detail: &str) -> AuditEvent {
    AuditEvent {
        at_ms,
        actor: "token:test".into(),
        action: AuditAction::Configure,
        outcome: AuditOutcome::Done,
        cvr: Some(DEMO_CVR.into()),
        profile_id: None,
        serial: None,
        order_id: None,
        detail: detail.into(),
    }
}

/// 10,000 anonymous 415s, each quoting an 8 KiB Content-Type, over four
/// keep-alive TLS connections, grow the store by less than 1 MB: they are
/// counted, not stored one by one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn anonymous_refusals_do_not_grow_the_store() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start_with(dir.path(), NO_RATE_LIMITS).await;
    let store = ts.app().store.clone();
    store.durable().await.expect("commit");
    let before = store.size_on_disk();
    let audit_before = store.audit_events().count();

    let content_type = format!("application/x-{}", "a".repeat(8 * 1024));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let mut c = ts.client(None).await;
        let ct = content_type.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..2500 {
                let r = c
                    .send(
                        "POST",
                        "/.well-known/est/simpleenroll",
                        &[("content-type", &ct)],
                        b"MAA=".to_vec(),
                    )
                    .await;
                assert_eq!(r.status, 415);
                assert!(r.body.len() < 1024, "the answer quotes a bounded text");
            }
        }));
    }
    for t in tasks {
        t.await.expect("client task");
    }
    // Credentials naming no known order identify no one either.
    let (_, csr) = demo_csr("nobody");
    let basic = format!(
        "Basic {}",
        b64(format!("{}:wrong", "9".repeat(3000)).as_bytes())
    );
    let mut c = ts.client(None).await;
    let r = c
        .send(
            "POST",
            "/.well-known/est/simpleenroll",
            &[
                ("content-type", "application/pkcs10"),
                ("authorization", &basic),
            ],
            b64(&csr).into_bytes(),
        )
        .await;
    assert_eq!(r.status, 401, "{}", r.text());
    store.durable().await.expect("commit");
    store.flush().expect("flush");
    let after = store.size_on_disk();
    assert!(
        after < before + 1_000_000,
        "store grew {} bytes",
        after.saturating_sub(before)
    );
    assert_eq!(
        store.audit_events().count(),
        audit_before,
        "anonymous refusals are not stored one by one"
    );
    // They are counted instead.
    let mut admin = ts.admin_client(None).await;
    let m = admin.get("/metrics").await.text();
    assert_eq!(
        metric(
            &m,
            "estd_est_anonymous_refusals_total{endpoint=\"simpleenroll\",status=\"415\"}"
        ),
        Some(10_000.0),
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            "estd_est_anonymous_refusals_total{endpoint=\"simpleenroll\",status=\"401\"}"
        ),
        Some(1.0),
        "{m}"
    );
    ts.shutdown().await;
}

/// A refusal by an identified caller is still audited, with the client's
/// text cut to about 200 characters; the answer quotes a bounded text too.
#[tokio::test]
async fn identified_refusals_are_audited_with_bounded_text() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start_with(dir.path(), NO_RATE_LIMITS).await;
    let id = ts.demo_identity();
    let mut c = ts.client(Some(&id)).await;
    let content_type = format!("application/x-{}", "ø".repeat(1000).replace('ø', "b"));
    let r = c
        .send(
            "POST",
            "/.well-known/est/simpleenroll",
            &[("content-type", &content_type)],
            b"MAA=".to_vec(),
        )
        .await;
    assert_eq!(r.status, 415);
    assert!(r.text().chars().count() < 300, "answer: {}", r.text());

    let (status, body) = api_get(&ts, "/audit?limit=1").await;
    assert_eq!(status, 200);
    let e = &body["items"][0];
    assert_eq!(e["outcome"], "refused", "{body}");
    assert!(e["actor"].as_str().expect("actor").starts_with("cert:"));
    let detail = e["detail"].as_str().expect("detail");
    assert!(detail.starts_with("415 "), "{detail}");
    assert!(detail.chars().count() <= 201, "{} chars", detail.len());
    assert!(detail.ends_with('…'), "the cut is marked: {detail}");

    // Whatever is stored through the store's audit call is bounded, too,
    // multi-byte text cut on a character boundary.
    let long = "æ".repeat(5000);
    ts.app()
        .store
        .audit(&AuditEvent {
            actor: long.clone(),
            ..event(now_unix() * 1000, &long)
        })
        .expect("audit");
    let (_, body) = api_get(&ts, "/audit?limit=1").await;
    let e = &body["items"][0];
    for field in ["actor", "detail"] {
        let s = e[field].as_str().expect("text");
        assert!(
            s.chars().count() <= 201,
            "{field}: {} chars",
            s.chars().count()
        );
        assert!(s.starts_with("ææ") && s.ends_with('…'), "{field}");
    }
    ts.shutdown().await;
}

/// Audit records older than the retention are pruned in the background (at
/// start and then periodically); newer ones stay.
#[tokio::test]
async fn audit_records_older_than_the_retention_are_pruned() {
    let dir = tempfile::tempdir().expect("tmp");
    let retention = "[store]\naudit_retention_days = 30\n";
    let now_ms = now_unix() * 1000;
    let day_ms = 86_400_000;
    // A store written over the past weeks (opened directly, before estd).
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    {
        // The store estd will use (sled in `data`, or the suite's database).
        let store =
            estd::store::open(&test_config(dir.path(), retention).store, &data).expect("open");
        for i in 0..5 {
            store
                .audit(&event(now_ms - 40 * day_ms + i, &format!("old-{i}")))
                .expect("audit");
        }
        for i in 0..3 {
            store
                .audit(&event(now_ms - 20 * day_ms + i, &format!("kept-{i}")))
                .expect("audit");
        }
        store.flush().expect("flush");
    }
    let details = |store: &std::sync::Arc<dyn estd::store::Store>| -> Vec<String> {
        store
            .audit_events()
            .map(|e| e.expect("event").detail)
            .filter(|d| d.starts_with("old-") || d.starts_with("kept-"))
            .collect()
    };

    // estd prunes at start, then hourly.
    let ts = TestServer::start_with(dir.path(), retention).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while details(&ts.app().store).len() > 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        details(&ts.app().store),
        vec!["kept-0", "kept-1", "kept-2"],
        "old records pruned, newer kept"
    );
    // Records made at first start (seeding) are within the retention.
    assert!(ts.app().store.audit_events().count() > 3);

    ts.shutdown().await;
}

/// A batch of pruning never takes more than its bound.
#[tokio::test]
async fn audit_pruning_goes_in_bounded_batches() {
    let dir = tempfile::tempdir().expect("tmp");
    // sled in the temp dir, or the suite's database (tests/it_postgres).
    let store = estd::store::open(&test_config(dir.path(), "").store, dir.path()).expect("open");
    for i in 0..10 {
        store.audit(&event(1_000 + i, "ancient")).expect("audit");
    }
    store
        .audit(&event(now_unix() * 1000, "recent"))
        .expect("audit");
    let cutoff = now_unix() * 1000 - 86_400_000;
    assert_eq!(store.prune_audit(cutoff, 4).expect("prune"), 4);
    assert_eq!(store.audit_events().count(), 7);
    assert_eq!(store.prune_audit(cutoff, 4).expect("prune"), 4);
    assert_eq!(store.prune_audit(cutoff, 4).expect("prune"), 2);
    assert_eq!(store.prune_audit(cutoff, 4).expect("prune"), 0);
    // Records appended after a newer one stay until it goes: the scan stops
    // at the first record inside the retention.
    store.audit(&event(1_000, "ancient, late")).expect("audit");
    assert_eq!(store.prune_audit(cutoff, 4).expect("prune"), 0);
    let left: Vec<String> = store
        .audit_events()
        .map(|e| e.expect("event").detail)
        .collect();
    assert_eq!(left, vec!["recent", "ancient, late"]);
}

/// `GET /audit` returns the newest `limit` matching events (oldest first) and
/// a cursor for the page before them.
#[tokio::test]
async fn audit_log_is_paged_from_the_newest() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let now_ms = now_unix() * 1000;
    for i in 0..25 {
        let mut e = event(now_ms, &format!("page-{i:02}"));
        // Another organisation's records in between must not count.
        if i % 5 == 4 {
            e.cvr = Some("55667780".into());
        }
        ts.app().store.audit(&e).expect("audit");
    }
    let details = |body: &Value| -> Vec<String> {
        body["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|e| e["detail"].as_str().expect("detail").to_owned())
            .collect()
    };
    let page =
        |from: &[u32]| -> Vec<String> { from.iter().map(|i| format!("page-{i:02}")).collect() };
    let (status, first) = api_get(&ts, &format!("/audit?cvr={DEMO_CVR}&limit=8")).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(details(&first), page(&[15, 16, 17, 18, 20, 21, 22, 23]));
    assert_eq!(first["total"], 8);
    let cursor = first["next_before"].as_u64().expect("cursor");
    assert_eq!(Some(cursor), first["items"][0]["id"].as_u64());

    let (status, second) = api_get(
        &ts,
        &format!("/audit?cvr={DEMO_CVR}&limit=8&before={cursor}"),
    )
    .await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(details(&second), page(&[5, 6, 7, 8, 10, 11, 12, 13]));
    let cursor = second["next_before"].as_u64().expect("cursor");

    // The last page: the first four, after the records made at first start;
    // no cursor past the oldest.
    let (_, third) = api_get(&ts, &format!("/audit?cvr={DEMO_CVR}&before={cursor}")).await;
    let d = details(&third);
    assert_eq!(d[d.len() - 4..].to_vec(), page(&[0, 1, 2, 3]));
    assert_eq!(third["next_before"], Value::Null);

    // Without a filter the limit counts every visible record.
    let (_, all) = api_get(&ts, "/audit?limit=3").await;
    assert_eq!(details(&all), page(&[22, 23, 24]));
    assert_problem_status(&ts, "/audit?before=x", 400).await;
    ts.shutdown().await;
}

/// A tmpfs mounted for one test, unmounted when dropped (also on failure).
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. "16m") on `dir`, or says why it cannot.
    fn mount(dir: &Path, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if out.status.success() {
            Ok(Tmpfs(dir.to_path_buf()))
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy, so that a file still open after a failed assertion cannot keep it mounted.
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Writes zeros to `path` until the file system is full.
fn fill_disk(path: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).expect("filler");
    let chunk = vec![0u8; 64 * 1024];
    while f.write_all(&chunk).is_ok() {}
    while f.write_all(&chunk[..512]).is_ok() {}
    while f.write_all(&chunk[..1]).is_ok() {}
    let _ = f.sync_all();
}

async fn readyz(ts: &TestServer) -> (u16, String) {
    let mut c = ts.admin_client(None).await;
    let r = c.get("/readyz").await;
    (r.status, r.text())
}

async fn metrics_text(ts: &TestServer) -> String {
    ts.admin_client(None).await.get("/metrics").await.text()
}

/// With the store on a small tmpfs: a full disk makes enrolment fail (never
/// answering a certificate that was not stored) and readiness fail, while
/// liveness stays; once space is back, enrolment and readiness recover
/// without a restart, and shutdown reports a clean flush.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_disk_is_survived_without_a_restart() {
    if estd_testkit::postgres::sled_only(
        "fills the disk under sled's data dir (a tmpfs); PostgreSQL's disk is the database server's",
    ) {
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let _mount = match Tmpfs::mount(&data, "16m") {
        Ok(m) => m,
        Err(why) => {
            eprintln!(
                "SKIPPED a_full_disk_is_survived_without_a_restart: cannot mount a tmpfs ({why})"
            );
            return;
        }
    };
    let ts = TestServer::start_with(dir.path(), NO_RATE_LIMITS).await;
    let id = ts.demo_identity();
    let mut c = ts.client(Some(&id)).await;
    let (_, csr) = demo_csr("disk-0");
    let r = c.enroll("/.well-known/est/simpleenroll", &csr).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let mut answered = vec![serial_of(&issued_cert(&r))];
    assert_eq!(readyz(&ts).await.0, 200);

    let filler = data.join("filler");
    fill_disk(&filler);
    // Each enrolment must reach the disk; the first one past the free space fails.
    let mut failed = false;
    for i in 0..50 {
        let (_, csr) = demo_csr(&format!("disk-full-{i}"));
        let r = c.enroll("/.well-known/est/simpleenroll", &csr).await;
        match r.status {
            200 => answered.push(serial_of(&issued_cert(&r))),
            500 | 503 => {
                failed = true;
                break;
            }
            other => panic!("unexpected {other}: {}", r.text()),
        }
    }
    assert!(failed, "an enrolment fails once the disk is full");
    // Still failing, readiness says why; liveness is unaffected.
    let (_, csr) = demo_csr("disk-full-again");
    let r = c.enroll("/.well-known/est/simpleenroll", &csr).await;
    assert!(matches!(r.status, 500 | 503), "{}", r.status);
    let (status, why) = readyz(&ts).await;
    assert_eq!(status, 503, "{why}");
    assert!(why.contains("store"), "{why}");
    assert_eq!(
        ts.admin_client(None).await.get("/healthz").await.status,
        200
    );
    let m = metrics_text(&ts).await;
    assert_eq!(metric(&m, "estd_store_writable "), Some(0.0), "{m}");
    assert!(metric(&m, "estd_store_write_errors_total ").unwrap_or(0.0) >= 1.0);

    // Space comes back: no restart.
    std::fs::remove_file(&filler).expect("remove filler");
    let (_, csr) = demo_csr("disk-back");
    let r = c.enroll("/.well-known/est/simpleenroll", &csr).await;
    assert_eq!(r.status, 200, "{}", r.text());
    answered.push(serial_of(&issued_cert(&r)));
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut ready = readyz(&ts).await;
    while ready.0 != 200 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        ready = readyz(&ts).await;
    }
    assert_eq!(ready.0, 200, "{}", ready.1);
    let m = metrics_text(&ts).await;
    assert_eq!(metric(&m, "estd_store_writable "), Some(1.0), "{m}");
    // Every certificate that was answered is stored.
    for serial in &answered {
        assert!(
            ts.app().store.cert(serial).expect("read").is_some(),
            "{serial} answered and stored"
        );
    }
    // Other writes work again too.
    let (status, _) = api_get(&ts, "/audit?limit=1").await;
    assert_eq!(status, 200);
    let store = ts.app().store.clone();
    store
        .audit(&event(now_unix() * 1000, "after the disk was full"))
        .expect("audit write");
    store.durable().await.expect("commit");
    let result = ts.server.shutdown().await;
    assert!(result.is_ok(), "clean shutdown: {result:?}");
}

/// Shutdown reports a flush that failed instead of claiming success.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_reports_a_failed_flush() {
    if estd_testkit::postgres::sled_only(
        "fills the disk under sled's data dir (a tmpfs); PostgreSQL's disk is the database server's",
    ) {
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let _mount = match Tmpfs::mount(&data, "16m") {
        Ok(m) => m,
        Err(why) => {
            eprintln!("SKIPPED shutdown_reports_a_failed_flush: cannot mount a tmpfs ({why})");
            return;
        }
    };
    let ts = TestServer::start_with(dir.path(), NO_RATE_LIMITS).await;
    let filler = data.join("filler");
    fill_disk(&filler);
    let store = ts.app().store.clone();
    for i in 0..200 {
        let _ = store.audit(&event(now_unix() * 1000, &format!("{i:0>180}")));
    }
    assert!(
        store.durable().await.is_err(),
        "the commit fails on a full disk"
    );
    let result = ts.server.shutdown().await;
    assert!(result.is_err(), "shutdown reports the failure");
    drop(store);
}

/// Liveness and readiness are separate endpoints; both answer 200 on a
/// healthy store, and the store's gauges say it can write.
#[tokio::test]
async fn readiness_is_served_beside_liveness() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let mut c = ts.admin_client(None).await;
    assert_eq!(c.get("/healthz").await.status, 200);
    let r = c.get("/readyz").await;
    assert_eq!((r.status, r.text().as_str()), (200, "ready\n"));
    assert_eq!(c.send("POST", "/readyz", &[], vec![]).await.status, 405);
    let m = c.get("/metrics").await.text();
    assert_eq!(metric(&m, "estd_store_writable "), Some(1.0), "{m}");
    assert_eq!(
        metric(&m, "estd_store_write_errors_total "),
        Some(0.0),
        "{m}"
    );
    ts.shutdown().await;
}

/// Valid CVR numbers (modulus 11) for organisations made while the disk fills.
const CVRS: [&str; 50] = [
    "60000018", "60000026", "60000034", "60000042", "60000050", "60000069", "60000077", "60000085",
    "60000093", "60000107", "60000115", "60000123", "60000131", "60000158", "60000166", "60000174",
    "60000182", "60000190", "60000204", "60000212", "60000220", "60000239", "60000247", "60000255",
    "60000263", "60000271", "60000298", "60000301", "60000328", "60000336", "60000344", "60000352",
    "60000360", "60000379", "60000387", "60000395", "60000409", "60000417", "60000425", "60000433",
    "60000441", "60000468", "60000476", "60000484", "60000492", "60000506", "60000514", "60000522",
    "60000530", "60000549",
];

/// estd as a process: SIGTERM after a write failed on a full disk exits with
/// an error that says so, instead of logging "store flushed".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn estd_exits_with_an_error_when_the_last_flush_fails() {
    if estd_testkit::postgres::sled_only(
        "fills the disk under sled's data dir (a tmpfs); PostgreSQL's disk is the database server's",
    ) {
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let _mount = match Tmpfs::mount(&data, "16m") {
        Ok(m) => m,
        Err(why) => {
            eprintln!(
                "SKIPPED estd_exits_with_an_error_when_the_last_flush_fails: cannot mount a tmpfs ({why})"
            );
            return;
        }
    };
    let config = process::write_config(dir.path(), "info", "");
    let certs = dir.path().join("certs");
    let mut d = process::Daemon::start(dir.path(), &config, &[], "serve").expect("start");
    let root = process::first_cert(&certs.join("root-ca.pem"));
    let mut admin = process::Admin::connect(&d, &root, &process::operator_token(&certs)).await;
    fill_disk(&data.join("filler"));
    // Changes until one cannot be made durable (a small one may still fit
    // in a page sled's log file already has).
    let mut failed = false;
    for (i, cvr) in CVRS.iter().enumerate() {
        let org = serde_json::json!({"cvr": cvr, "name": format!("Full Disk {i} ApS")});
        let r = admin
            .call("POST", "/organisations", Some(&org.to_string()))
            .await;
        match r.status {
            201 => continue,
            500 => {
                failed = true;
                break;
            }
            other => panic!("unexpected {other}: {}", r.text()),
        }
    }
    assert!(failed, "a change fails once the disk is full");
    let status = d.terminate();
    let output = d.output();
    assert!(!status.success(), "exit status {status}; {output}");
    assert!(!output.contains("store flushed"), "{output}");
    assert!(output.contains("could not be flushed"), "{output}");
}
