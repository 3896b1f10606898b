//! Interoperability with clients that read header names byte for byte: the
//! challenge header's exact spelling on the wire, and Cisco libest's
//! `estclient` (the reference EST client) collecting a one-time-code order,
//! which it can only do after a `WWW-Authenticate` challenge it recognises.

use std::path::PathBuf;
use std::process::Command;

use estd::model::{Contact, Identification, Issuance, Profile};
use estd_testkit::*;

/// Splits a raw HTTP/1.1 answer into its header lines (status line excluded).
fn header_lines(raw: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(raw);
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    head.split("\r\n").skip(1).map(str::to_owned).collect()
}

#[tokio::test]
async fn challenge_header_is_spelled_as_registered_on_the_wire() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let root = ts.root_der();

    // EST: an enrolment without credentials gets the Basic challenge.
    let raw = raw_exchange(
        ts.server.est_addr,
        &root,
        None,
        b"POST /.well-known/est/simpleenroll HTTP/1.1\r\nHost: localhost\r\n\
          Content-Type: application/pkcs10\r\nContent-Length: 4\r\nConnection: close\r\n\r\nAAAA",
    )
    .await;
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 401"), "{text}");
    let lines = header_lines(&raw);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("WWW-Authenticate: Basic realm=")),
        "exact spelling WWW-Authenticate (RFC 9110 11.6.1): {lines:?}"
    );
    // The other headers keep their registered spellings too.
    for name in ["Content-Type:", "Content-Length:", "Date:"] {
        assert!(
            lines.iter().any(|l| l.starts_with(name)),
            "{name} in {lines:?}"
        );
    }

    // Admin API: a call without a token gets the Bearer challenge.
    let raw = raw_exchange(
        ts.server.admin_addr,
        &root,
        None,
        b"GET /api/v1/organisations HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 401"), "{text}");
    assert!(
        header_lines(&raw)
            .iter()
            .any(|l| l.starts_with("WWW-Authenticate: Bearer realm=")),
        "{text}"
    );

    // Answers that carry Retry-After and Content-Transfer-Encoding: the registered spellings.
    let raw = raw_exchange(
        ts.server.est_addr,
        &root,
        None,
        b"GET /.well-known/est/cacerts HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    let lines = header_lines(&raw);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("Content-Transfer-Encoding: base64")),
        "{lines:?}"
    );
    ts.shutdown().await;
}

/// Where the project keeps the real EST clients (see its README).
fn libest_client() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("shared/clients/libest/estclient");
    let shared = PathBuf::from("/work/shared/clients/libest/estclient");
    [p, shared].into_iter().find(|p| p.exists())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libest_collects_a_one_time_code_order_after_the_challenge() {
    let Some(estclient) = libest_client() else {
        println!("SKIPPED: libest estclient is not installed (../shared/clients/libest/estclient)");
        return;
    };
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let app = ts.app().clone();
    // A one-time-code profile of the demo organisation. libest has no label
    // option: it uses the unlabelled path, where an order's own profile applies.
    let profile = Profile {
        validity_days: 365,
        identification: Identification::OneTimeCode,
        issuance: Issuance::Est,
        contact: Some(Contact {
            name: "Kontakt Person".into(),
            email: "kontakt@demo.example".into(),
        }),
        ..Profile::system(DEMO_CVR, "Door controller", "doors")
    };
    app.store.put_profile(&profile).expect("profile");
    let created = order_for(&app, &profile.id).await;
    let code = created.code.expect("one-time code");
    let reference = created.order.id.clone();

    let (_key, csr) = demo_csr("Door controller");
    let csr_pem = format!(
        "-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n",
        b64(&csr)
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).expect("base64"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let work = dir.path().join("libest");
    std::fs::create_dir_all(&work).expect("dir");
    std::fs::write(work.join("csr.pem"), csr_pem).expect("csr");
    let root_pem = ts.dir.join("certs").join("root-ca.pem");
    let port = ts.server.est_addr.port().to_string();

    let run = |password: &str, out: &str| {
        let out_dir = work.join(out);
        std::fs::create_dir_all(&out_dir).expect("out dir");
        let mut cmd = Command::new(&estclient);
        cmd.env("EST_OPENSSL_CACERT", &root_pem)
            .args(["-e", "-s", "127.0.0.1", "-p", &port])
            .args(["-u", &reference, "-h", password])
            .arg("-y")
            .arg(work.join("csr.pem"))
            .arg("-o")
            .arg(&out_dir);
        (cmd, out_dir)
    };

    // A wrong code first: libest reports the refusal and writes no certificate.
    let (mut cmd, out_dir) = run("WRONGWRONGWRONG1", "wrong");
    let wrong = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("task")
        .expect("run estclient");
    assert!(
        !out_dir.join("cert-0-0.pkcs7").exists(),
        "no certificate for a wrong code: {}",
        String::from_utf8_lossy(&wrong.stdout)
    );

    // The right code: libest answers the challenge and gets the certificate.
    let (mut cmd, out_dir) = run(&code, "right");
    let right = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("task")
        .expect("run estclient");
    let cert_file = out_dir.join("cert-0-0.pkcs7");
    assert!(
        cert_file.exists(),
        "libest collected the order\n--- stdout ---\n{}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&right.stdout),
        String::from_utf8_lossy(&right.stderr)
    );
    let body = std::fs::read(&cert_file).expect("pkcs7");
    let certs = pkcs7_certs(&body);
    assert_eq!(certs.len(), 1);
    let serial = serial_of(&certs[0]);
    let order = app.store.order(&reference).expect("db").expect("order");
    assert_eq!(
        order.status,
        estd::model::OrderStatus::Issued { serial },
        "the order is collected"
    );
    ts.shutdown().await;
}
