//! Rate limits (429 with Retry-After, per client certificate, reference
//! number, IP address and label) and machine-readable EST errors (RFC 9457
//! problem documents on request), against a real server.

use std::time::Duration;

use estd::model::{Profile, SystemRight};
use estd_testkit::*;

const ENROLL: &str = "/.well-known/est/demo/simpleenroll";
const CACERTS: &str = "/.well-known/est/cacerts";
const PROBLEM: (&str, &str) = ("accept", "application/problem+json");

/// The value of `estd_rate_limited_total{kind}` scraped from `/metrics`.
async fn rate_limited_metric(ts: &TestServer, kind: &str) -> u64 {
    ts.metric(&format!("estd_rate_limited_total{{kind=\"{kind}\"}}"))
        .await
}

/// Asserts a 429 with a whole-second Retry-After of at least 1, and returns it.
fn retry_after(r: &Resp) -> u64 {
    assert_eq!(r.status, 429, "{}", r.text());
    let secs: u64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("whole seconds");
    assert!(secs >= 1);
    secs
}

fn json(r: &Resp) -> serde_json::Value {
    assert_eq!(
        r.header("content-type"),
        Some("application/problem+json"),
        "{}",
        r.text()
    );
    serde_json::from_slice(&r.body).expect("problem document")
}

#[tokio::test]
async fn client_certificate_limit_refuses_before_any_work_and_recovers() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start_with(
        dir.path(),
        "[rate_limit.client]\nper_second = 0.1\nburst = 3\n",
    )
    .await;
    let before = ts.app().store.cert_count();
    let mut c = ts.client(Some(&ts.demo_identity())).await;
    for n in 0..3 {
        let (_k, csr) = demo_csr(&format!("within-{n}"));
        issued_cert(&c.enroll(ENROLL, &csr).await);
    }
    // The 4th is refused before the body is read: even a garbage CSR gets 429, not 400.
    let r = c
        .send(
            "POST",
            ENROLL,
            &[("content-type", "application/pkcs10")],
            b"not a CSR".to_vec(),
        )
        .await;
    let wait = retry_after(&r);
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert!(r.text().contains("too many requests"), "{}", r.text());
    assert_eq!(ts.app().store.cert_count(), before + 3);
    assert_eq!(rate_limited_metric(&ts, "client").await, 1);
    assert_eq!(rate_limited_metric(&ts, "ip").await, 0);

    // Another identity is not affected.
    let other = ts.add_org(
        "87654311",
        "Anden Org ApS",
        "anden",
        vec![SystemRight::EstEnroll],
    );
    let mut c2 = ts.client(Some(&other)).await;
    let (_k, csr) = csr_for(
        "Anden Org ApS",
        "87654311",
        "other",
        &rcgen::PKCS_ECDSA_P256_SHA256,
    );
    issued_cert(&c2.enroll("/.well-known/est/anden/simpleenroll", &csr).await);

    // After the time it was told, the first works again.
    tokio::time::sleep(Duration::from_secs(wait)).await;
    let mut c = ts.client(Some(&ts.demo_identity())).await;
    let (_k, csr) = demo_csr("after-waiting");
    issued_cert(&c.enroll(ENROLL, &csr).await);
    ts.shutdown().await;
}

#[tokio::test]
async fn anonymous_requests_are_limited_per_address() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts =
        TestServer::start_with(dir.path(), "[rate_limit.ip]\nper_second = 0.1\nburst = 2\n").await;
    let mut anon = ts.client(None).await;
    assert_eq!(anon.get(CACERTS).await.status, 200);
    assert_eq!(anon.get("/.well-known/est/csrattrs").await.status, 200);
    let wait = retry_after(&anon.get(CACERTS).await);
    // A client with a certificate is counted by its certificate, not its address.
    let mut idm = ts.client(Some(&ts.demo_identity())).await;
    assert_eq!(idm.get(CACERTS).await.status, 200);
    assert_eq!(rate_limited_metric(&ts, "ip").await, 1);
    tokio::time::sleep(Duration::from_secs(wait)).await;
    assert_eq!(anon.get(CACERTS).await.status, 200);
    ts.shutdown().await;
}

#[tokio::test]
async fn reference_numbers_are_limited_before_the_code_is_checked() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start_with(
        dir.path(),
        "[rate_limit.reference]\nper_second = 0.05\nburst = 2\n",
    )
    .await;
    let (_k, csr) = demo_csr("collector");
    let attempt = |reference: &'static str| {
        let csr = csr.clone();
        let ts = &ts;
        async move {
            let auth = format!(
                "Basic {}",
                b64(format!("{reference}:WRONG-CODE").as_bytes())
            );
            let mut c = ts.client(None).await;
            c.send(
                "POST",
                ENROLL,
                &[
                    ("content-type", "application/pkcs10"),
                    ("authorization", &auth),
                ],
                b64(&csr).into_bytes(),
            )
            .await
        }
    };
    assert_eq!(attempt("000000000001").await.status, 401);
    assert_eq!(attempt("000000000001").await.status, 401);
    retry_after(&attempt("000000000001").await);
    // Another reference number has its own bucket.
    assert_eq!(attempt("000000000002").await.status, 401);
    assert_eq!(rate_limited_metric(&ts, "reference").await, 1);
    ts.shutdown().await;
}

#[tokio::test]
async fn a_label_is_limited_for_all_callers_together() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start_with(
        dir.path(),
        "[rate_limit.label]\nper_second = 0.05\nburst = 3\n",
    )
    .await;
    let id = ts.demo_identity();
    let mut idm = ts.client(Some(&id)).await;
    let mut anon = ts.client(None).await;
    assert_eq!(idm.get("/.well-known/est/demo/cacerts").await.status, 200);
    assert_eq!(anon.get("/.well-known/est/demo/cacerts").await.status, 200);
    assert_eq!(idm.get("/.well-known/est/demo/csrattrs").await.status, 200);
    retry_after(&anon.get("/.well-known/est/demo/cacerts").await);
    let r = idm.get("/.well-known/est/demo/cacerts").await;
    retry_after(&r);
    // Another label, and the unlabelled path, are not affected.
    assert_eq!(idm.get(CACERTS).await.status, 200);
    assert_eq!(rate_limited_metric(&ts, "label").await, 2);
    assert_eq!(rate_limited_metric(&ts, "client").await, 0);
    ts.shutdown().await;
}

#[tokio::test]
async fn problem_documents_only_for_clients_that_ask() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start_with(
        dir.path(),
        "[rate_limit.ip]\nper_second = 0.05\nburst = 3\n",
    )
    .await;
    let (_k, csr) = demo_csr("anon");
    let mut anon = ts.client(None).await;
    let send = |accept: Option<&'static str>| {
        let csr = csr.clone();
        let addr = ts.server.est_addr;
        let root = ts.root_der();
        async move {
            let mut c = Client::connect(addr, &root, None, false).await;
            let mut h = vec![("content-type", "application/pkcs10")];
            if let Some(a) = accept {
                h.push(("accept", a));
            }
            c.send("POST", ENROLL, &h, b64(&csr).into_bytes()).await
        }
    };
    // The same 401 three ways: default, */*, problem+json.
    let plain = send(None).await;
    assert_eq!(plain.status, 401);
    assert_eq!(
        plain.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    let star = send(Some("*/*")).await;
    assert_eq!(
        star.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(star.body, plain.body);
    let doc = send(Some("application/pkcs7-mime, application/problem+json")).await;
    assert_eq!(doc.status, 401);
    assert_eq!(doc.header("www-authenticate"), Some("Basic realm=\"estd\""));
    let p = json(&doc);
    assert_eq!(p["type"], "about:blank");
    assert_eq!(p["title"], "Unauthorized");
    assert_eq!(p["status"], 401);
    assert_eq!(p["detail"], plain.text().trim_end());
    assert!(p.get("retryAfter").is_none());

    // 429: the document carries the retry time, as does the header.
    let r = anon.send("GET", CACERTS, &[PROBLEM], vec![]).await;
    let secs = retry_after(&r);
    let p = json(&r);
    assert_eq!(p["type"], "urn:estd:error:rate-limited");
    assert_eq!(p["title"], "Too Many Requests");
    assert_eq!(p["status"], 429);
    assert_eq!(p["retryAfter"], secs);
    assert!(p["detail"].as_str().is_some_and(|d| !d.is_empty()));
    // And as text without the header.
    let r = anon.get(CACERTS).await;
    retry_after(&r);
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));

    // Other statuses: 404 and 405 (with Allow) as documents too.
    let mut idm = ts.client(Some(&ts.demo_identity())).await;
    let r = idm.send("GET", ENROLL, &[PROBLEM], vec![]).await;
    assert_eq!(json(&r)["status"], 405);
    assert_eq!(r.header("allow"), Some("POST"));
    let r = idm
        .send("GET", "/.well-known/est/nothing", &[PROBLEM], vec![])
        .await;
    assert_eq!(json(&r)["status"], 404);
    ts.shutdown().await;
}

#[tokio::test]
async fn held_enrolment_202_as_problem_document_carries_the_retry_time() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let profile = Profile {
        approval_required: true,
        ..Profile::system(DEMO_CVR, "Approved servers", "approved")
    };
    ts.app().store.put_profile(&profile).expect("profile");
    let path = "/.well-known/est/approved/simpleenroll";
    let (_k, csr) = demo_csr("held");
    let mut c = ts.client(Some(&ts.demo_identity())).await;
    let text = c.enroll(path, &csr).await;
    assert_eq!(text.status, 202);
    assert_eq!(
        text.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(text.header("retry-after"), Some("60"));
    let r = c
        .send(
            "POST",
            path,
            &[("content-type", "application/pkcs10"), PROBLEM],
            b64(&csr).into_bytes(),
        )
        .await;
    assert_eq!(r.status, 202);
    assert_eq!(r.header("retry-after"), Some("60"));
    let p = json(&r);
    assert_eq!(p["type"], "urn:estd:est:approval-pending");
    assert_eq!(p["status"], 202);
    assert_eq!(p["retryAfter"], 60);
    assert_eq!(p["detail"], text.text().trim_end());
    ts.shutdown().await;
}
