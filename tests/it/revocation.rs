//! CRL and OCSP as relying parties see them, checked with openssl against a
//! real server's plain-HTTP listener.

use std::path::Path;
use std::process::Command;

use estd::model::RevocationReason;
use estd::service;
use estd_testkit::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crl_and_ocsp_follow_a_revocation_and_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tmp");
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).expect("work dir");
    let ts = TestServer::start(dir.path()).await;
    let public = ts.server.public_addr;
    let app = ts.app().clone();
    std::fs::write(work.join("issuing.pem"), pem(app.ca.active().issuing_der())).expect("write");
    std::fs::write(
        work.join("chain.pem"),
        format!(
            "{}{}",
            pem(app.ca.active().issuing_der()),
            pem(app.ca.active().root_der())
        ),
    )
    .expect("write");

    let mut c = ts.client(Some(&ts.demo_identity())).await;
    let good = issued_cert(
        &c.enroll(
            "/.well-known/est/demo/simpleenroll",
            &demo_csr("stays-good").1,
        )
        .await,
    );
    let bad = issued_cert(
        &c.enroll(
            "/.well-known/est/demo/simpleenroll",
            &demo_csr("gets-revoked").1,
        )
        .await,
    );
    std::fs::write(work.join("good.pem"), pem(&der_of(&good))).expect("write");
    std::fs::write(work.join("bad.pem"), pem(&der_of(&bad))).expect("write");
    let url = format!("http://{public}/ocsp");

    // OCSP before: good, nonce echoed, response verifies against the chain.
    let (ok, out) = openssl_in(
        &work,
        &[
            "ocsp",
            "-issuer",
            "issuing.pem",
            "-cert",
            "bad.pem",
            "-url",
            &url,
            "-CAfile",
            "chain.pem",
            "-resp_text",
        ],
    );
    assert!(ok, "{out}");
    assert!(out.contains("bad.pem: good"), "{out}");
    assert!(out.contains("Response verify OK"), "{out}");
    assert!(out.contains("OCSP Nonce"), "nonce echoed: {out}");
    assert!(!out.contains("WARNING: no nonce"), "{out}");

    // The CRL before: parses, lists nothing yet, and verify -crl_check accepts.
    let (status, head, crl) = http_get(public, "/crl/issuing-ca.crl").await;
    assert_eq!(status, 200, "{head}");
    assert!(
        head.contains("Content-Type: application/pkix-crl"),
        "{head}"
    );
    std::fs::write(work.join("crl.der"), &crl).expect("write");
    let (ok, out) = openssl_in(
        &work,
        &["crl", "-inform", "DER", "-in", "crl.der", "-text", "-noout"],
    );
    assert!(ok, "{out}");
    assert!(out.contains("X509v3 CRL Number"), "{out}");
    assert!(out.contains("X509v3 Authority Key Identifier"), "{out}");
    assert!(out.contains("Next Update"), "{out}");
    let crl_number_before: u64 = app.revocation.current_crl().number;

    // Revoke: visible in the CRL and OCSP when revoke() returns.
    service::revoke(
        app.services(),
        &operator(),
        &serial_of(&bad),
        RevocationReason::SuspectedMisuse,
    )
    .await
    .expect("revoke");
    let (ok, out) = openssl_in(
        &work,
        &[
            "ocsp",
            "-issuer",
            "issuing.pem",
            "-cert",
            "bad.pem",
            "-url",
            &url,
            "-CAfile",
            "chain.pem",
        ],
    );
    assert!(ok, "{out}");
    assert!(out.contains("bad.pem: revoked"), "{out}");
    assert!(
        out.contains("Key Compromise") || out.contains("keyCompromise"),
        "{out}"
    );
    let (_, _, crl) = http_get(public, "/crl/issuing-ca.crl").await;
    std::fs::write(work.join("crl.der"), &crl).expect("write");
    openssl_in(
        &work,
        &["crl", "-inform", "DER", "-in", "crl.der", "-out", "crl.pem"],
    );
    let (ok, out) = openssl_in(
        &work,
        &[
            "verify",
            "-crl_check",
            "-CAfile",
            "chain.pem",
            "-CRLfile",
            "crl.pem",
            "bad.pem",
        ],
    );
    assert!(!ok && out.contains("certificate revoked"), "{out}");
    let (ok, out) = openssl_in(
        &work,
        &[
            "verify",
            "-crl_check",
            "-CAfile",
            "chain.pem",
            "-CRLfile",
            "crl.pem",
            "good.pem",
        ],
    );
    assert!(ok, "{out}");
    assert!(app.revocation.current_crl().number > crl_number_before);

    // The GET form, with HTTP caching headers; the answer for the good certificate.
    let (ok, out) = openssl_in(
        &work,
        &[
            "ocsp",
            "-issuer",
            "issuing.pem",
            "-cert",
            "good.pem",
            "-no_nonce",
            "-reqout",
            "req.der",
        ],
    );
    assert!(ok, "{out}");
    let req = std::fs::read(work.join("req.der")).expect("req");
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &req)
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D");
    let (status, head, body) = http_get(public, &format!("/ocsp/{b64}")).await;
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("Cache-Control: public, max-age="), "{head}");
    std::fs::write(work.join("resp.der"), &body).expect("write");
    let (ok, out) = openssl_in(
        &work,
        &[
            "ocsp",
            "-respin",
            "resp.der",
            "-issuer",
            "issuing.pem",
            "-cert",
            "good.pem",
            "-CAfile",
            "chain.pem",
        ],
    );
    assert!(ok && out.contains("good.pem: good"), "{out}");

    // An unknown serial: unknown. Garbage: malformedRequest.
    let (ok, out) = openssl_in(
        &work,
        &[
            "ocsp",
            "-issuer",
            "issuing.pem",
            "-serial",
            "0x4000000000000000000000000000beef",
            "-url",
            &url,
            "-CAfile",
            "chain.pem",
        ],
    );
    assert!(ok, "{out}");
    assert!(out.contains(": unknown"), "{out}");
    let (status, _, body) = http_get(public, "/ocsp/bm90IGFuIE9DU1AgcmVxdWVzdA%3D%3D").await;
    assert_eq!(status, 200);
    std::fs::write(work.join("bad-resp.der"), &body).expect("write");
    let (_, out) = openssl_in(
        &work,
        &["ocsp", "-respin", "bad-resp.der", "-resp_text", "-noverify"],
    );
    assert!(out.to_lowercase().contains("malformedrequest"), "{out}");

    // After a restart: the same CRL number or higher, and the revocation still listed.
    let number = app.revocation.current_crl().number;
    drop(app);
    drop(c);
    ts.shutdown().await;
    let ts = TestServer::start(dir.path()).await;
    assert!(ts.app().revocation.current_crl().number >= number);
    let (_, _, crl) = http_get(ts.server.public_addr, "/crl/issuing-ca.crl").await;
    std::fs::write(work.join("crl2.der"), &crl).expect("write");
    let (ok, out) = openssl_in(
        &work,
        &[
            "crl", "-inform", "DER", "-in", "crl2.der", "-text", "-noout",
        ],
    );
    assert!(ok, "{out}");
    let hex = serial_of(&bad).to_string();
    assert!(
        out.to_uppercase().contains(&hex),
        "revoked serial {hex} still listed: {out}"
    );
    ts.shutdown().await;
}

/// The URLs a certificate carries, as openssl prints them: (CRL, OCSP, caIssuers).
fn carried_urls(work: &Path, leaf: &str) -> (String, String, String) {
    let (ok, out) = openssl_in(
        work,
        &[
            "x509",
            "-in",
            leaf,
            "-noout",
            "-ext",
            "crlDistributionPoints,authorityInfoAccess",
        ],
    );
    assert!(ok, "{out}");
    let after = |marker: &str| {
        out.lines()
            .find_map(|l| l.trim().strip_prefix(marker).map(str::to_owned))
            .unwrap_or_else(|| panic!("no {marker} in {out}"))
    };
    (
        after("URI:"),
        after("OCSP - URI:"),
        after("CA Issuers - URI:"),
    )
}

fn curl_get(url: &str, out: &Path) {
    let status = Command::new("curl")
        .args(["-sS", "--fail", "-o"])
        .arg(out)
        .arg(url)
        .status()
        .expect("curl runs");
    assert!(status.success(), "curl {url}");
}

/// Without `crl_url`, `ocsp_url` and `ca_issuers_url` set, every URL a
/// certificate carries names the public listener as bound (here a port the
/// kernel chose, not the 8080 of the default), and a relying party holding
/// only the root and the leaf finds the rest there with curl and openssl.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_point_relying_parties_at_the_listener_that_serves_them() {
    let dir = tempfile::tempdir().expect("tmp");
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).expect("work dir");
    let ts = TestServer::start(dir.path()).await;
    let public = ts.server.public_addr;
    let app = ts.app().clone();
    let mut c = ts.client(Some(&ts.demo_identity())).await;
    let leaf = issued_cert(
        &c.enroll("/.well-known/est/demo/simpleenroll", &demo_csr("rp").1)
            .await,
    );
    std::fs::write(work.join("leaf.pem"), pem(&der_of(&leaf))).expect("write");
    std::fs::write(work.join("root.pem"), pem(&ts.root_der())).expect("write");

    let (crl, ocsp, issuers) = carried_urls(&work, "leaf.pem");
    let base = format!("http://{public}");
    assert_eq!(crl, format!("{base}/crl/issuing-ca.crl"));
    assert_eq!(ocsp, format!("{base}/ocsp"));
    assert_eq!(issuers, format!("{base}/ca/issuing-ca.crt"));

    // caIssuers: the issuing CA, DER, as RFC 5280 4.2.2.1 asks.
    let (status, head, _) = http_get(public, "/ca/issuing-ca.crt").await;
    assert_eq!(status, 200, "{head}");
    assert!(
        head.contains("Content-Type: application/pkix-cert"),
        "{head}"
    );
    curl_get(&issuers, &work.join("issuer.der"));
    let fetched = std::fs::read(work.join("issuer.der")).expect("read");
    assert_eq!(fetched, app.ca.active().issuing_der());
    let (ok, out) = openssl_in(
        &work,
        &[
            "x509",
            "-inform",
            "DER",
            "-in",
            "issuer.der",
            "-out",
            "issuer.pem",
        ],
    );
    assert!(ok, "{out}");
    let (ok, out) = openssl_in(
        &work,
        &[
            "verify",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "issuer.pem",
            "leaf.pem",
        ],
    );
    assert!(ok && out.contains("leaf.pem: OK"), "{out}");

    // The CRL and OCSP at the URLs the certificate carries.
    curl_get(&crl, &work.join("crl.der"));
    std::fs::write(
        work.join("chain.pem"),
        format!("{}{}", pem(&fetched), pem(&ts.root_der())),
    )
    .expect("write");
    let (ok, out) = openssl_in(
        &work,
        &[
            "crl",
            "-inform",
            "DER",
            "-in",
            "crl.der",
            "-CAfile",
            "chain.pem",
            "-noout",
        ],
    );
    assert!(ok && out.contains("verify OK"), "{out}");
    let (ok, out) = openssl_in(
        &work,
        &[
            "ocsp",
            "-issuer",
            "issuer.pem",
            "-cert",
            "leaf.pem",
            "-url",
            &ocsp,
            "-CAfile",
            "chain.pem",
        ],
    );
    assert!(ok && out.contains("leaf.pem: good"), "{out}");

    // Any other path on the listener is still unknown.
    let (status, _, _) = http_get(public, "/ca/issuing-ca-9.crt").await;
    assert_eq!(status, 404);
    ts.server.shutdown().await.expect("shutdown");

    // A URL that is set is kept; the others still follow the listener.
    let dir2 = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start_with(
        dir2.path(),
        "[ca]\nca_issuers_url = \"http://pki.example.dk/estd/issuing.crt\"\n",
    )
    .await;
    let public = ts.server.public_addr;
    let mut c = ts.client(Some(&ts.demo_identity())).await;
    let leaf = issued_cert(
        &c.enroll("/.well-known/est/demo/simpleenroll", &demo_csr("rp2").1)
            .await,
    );
    std::fs::write(work.join("leaf2.pem"), pem(&der_of(&leaf))).expect("write");
    let (crl, _, issuers) = carried_urls(&work, "leaf2.pem");
    assert_eq!(issuers, "http://pki.example.dk/estd/issuing.crt");
    assert_eq!(crl, format!("http://{public}/crl/issuing-ca.crl"));
    // Served at the configured path, on this listener.
    let (status, _, body) = http_get(public, "/estd/issuing.crt").await;
    assert_eq!(status, 200);
    assert_eq!(body, ts.app().ca.active().issuing_der());
    ts.server.shutdown().await.expect("shutdown");
}
