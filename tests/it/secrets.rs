//! Secret hygiene on the real binary: with a verbose log filter, flows that
//! handle private keys, one-time codes and admin tokens leave none of them in
//! estd's output; key files are written with mode 0600, and estd refuses to
//! start on a private key that group or others can read.

use estd_testkit::process;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use base64::Engine;
use estd_testkit::basic;
use estd_testkit::process::{first_cert, operator_token, run_to_exit, Admin, Daemon, TryClient};
use estd_testkit::{b64, csr_for, DEMO_CVR, DEMO_ORG};

const B64: base64::engine::general_purpose::GeneralPurpose =
    base64::engine::general_purpose::STANDARD;

/// Substrings that would betray a private key (PKCS#8 DER) in a log: windows
/// of its base64 (as in a PEM file or an EST answer), of the base64 of its
/// private scalar at every byte alignment, of its hex, and the Debug form of
/// byte slices of the scalar.
fn key_fingerprints(pkcs8: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let whole = B64.encode(pkcs8);
    out.extend(windows(&whole, 24));
    let scalar = ec_scalar(pkcs8);
    for skip in 0..3 {
        out.extend(windows(&B64.encode(&scalar[skip..]), 16));
    }
    let hex: String = scalar.iter().map(|b| format!("{b:02x}")).collect();
    out.extend(windows(&hex, 16));
    out.extend(windows(&hex.to_uppercase(), 16));
    for chunk in scalar.chunks_exact(6) {
        // "a, b, c, d, e, f", as inside the Debug form of any longer slice.
        out.push(format!("{chunk:?}").trim_matches(['[', ']']).to_owned());
    }
    out
}

/// Non-overlapping windows of `len` characters (the last one may be shorter but not under 12).
fn windows(s: &str, len: usize) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    chars
        .chunks(len)
        .filter(|c| c.len() >= 12)
        .map(|c| c.iter().collect())
        .collect()
}

/// The private scalar of an EC PKCS#8 key (ECPrivateKey: version 1, then the OCTET STRING).
fn ec_scalar(pkcs8: &[u8]) -> Vec<u8> {
    let at = pkcs8
        .windows(4)
        .position(|w| w[..3] == [0x02, 0x01, 0x01] && w[3] == 0x04)
        .expect("an EC private key");
    let len = usize::from(pkcs8[at + 4]);
    assert!((32..=66).contains(&len), "scalar length {len}");
    pkcs8[at + 5..at + 5 + len].to_vec()
}

/// The PKCS#8 DER of a PEM key file.
fn key_file_der(path: &Path) -> Vec<u8> {
    let text = std::fs::read_to_string(path).expect("key file");
    let (label, der) = der::pem::decode_vec(text.as_bytes()).expect("PEM key");
    assert_eq!(label, "PRIVATE KEY", "{}", path.display());
    der
}

fn assert_absent(log: &str, what: &str, needles: &[String]) {
    assert!(!needles.is_empty(), "{what}: nothing to look for");
    for n in needles {
        assert!(n.len() >= 12, "{what}: needle too short to mean anything");
        assert!(
            !log.contains(n.as_str()),
            "{what} appears in estd's output (found {n:?})"
        );
    }
}

async fn post_csr(d: &Daemon, root: &[u8], path: &str, auth: &str, cn: &str) -> estd_testkit::Resp {
    let (_key, csr) = csr_for(DEMO_ORG, DEMO_CVR, cn, &rcgen::PKCS_ECDSA_P256_SHA256);
    let mut c = TryClient::connect(d.est, root, None)
        .await
        .expect("connect");
    c.send(
        "POST",
        path,
        &[
            ("content-type", "application/pkcs10"),
            ("authorization", auth),
        ],
        b64(&csr).into_bytes(),
    )
    .await
    .expect("answer")
}

/// Creates a one-time-code profile with an order; returns (reference, code).
async fn otc_profile(
    admin: &mut Admin,
    name: &str,
    label: &str,
    issuance: &str,
) -> (String, String) {
    let body = serde_json::json!({
        "cvr": DEMO_CVR,
        "name": name,
        "kind": "system",
        "contact": {"name": "Hygiene Test", "email": "hygiene@demo.example"},
        "identification": "one-time-code",
        "issuance": issuance,
        "est_label": label,
        "order": {},
    })
    .to_string();
    let v = admin.json("POST", "/profiles", Some(&body), 201).await;
    (
        v["order"]["reference"]
            .as_str()
            .expect("reference")
            .to_owned(),
        v["order"]["code"].as_str().expect("code").to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn no_key_code_or_token_appears_in_verbose_logs() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    // Notices go to a sink here, so that the e-mail validation link is read
    // as its recipient reads it.
    let sink = crate::notifications::SmtpSink::start().await;
    let config = process::write_config(dir, "trace,sled=debug", &sink.config());
    let certs = dir.join("certs");
    let d = Daemon::start(dir, &config, &[], "hygiene").expect("start");
    let root = first_cert(&certs.join("root-ca.pem"));
    let token = operator_token(&certs);
    let mut admin = Admin::connect(&d, &root, &token).await;
    // (what, needles) for every secret the flows below handle.
    let mut secrets: Vec<(String, Vec<String>)> = vec![(
        "the operator token".into(),
        vec![token.clone(), token["estd_".len()..].to_owned()],
    )];

    // Order creation: the code is in the answer.
    let (ref_est, code_est) = otc_profile(&mut admin, "Hygiene device", "hygiene-est", "est").await;
    let (ref_kg, code_kg) =
        otc_profile(&mut admin, "Hygiene laptop", "hygiene-keygen", "browser").await;

    // A one-time code, wrong and then right.
    let wrong = "QWERTYUPASDFGHJK";
    let r = post_csr(
        &d,
        &root,
        "/.well-known/est/hygiene-est/simpleenroll",
        &basic(&ref_est, wrong),
        "Hygiene device",
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.text());
    // A new code for the order (the answer carries it), then collection with it.
    let v = admin
        .json("POST", &format!("/orders/{ref_est}/code"), Some("{}"), 200)
        .await;
    let code_new = v["code"].as_str().expect("new code").to_owned();
    let r = post_csr(
        &d,
        &root,
        "/.well-known/est/hygiene-est/simpleenroll",
        &basic(&ref_est, &code_new),
        "Hygiene device",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = post_csr(
        &d,
        &root,
        "/.well-known/est/hygiene-est/simpleenroll",
        &basic(&ref_est, &code_new),
        "Hygiene device",
    )
    .await;
    assert_eq!(r.status, 401, "a spent code: {}", r.text());
    for (what, code, reference) in [
        ("the first one-time code", &code_est, &ref_est),
        ("a wrong one-time code", &wrong.to_owned(), &ref_est),
        ("the renewed one-time code", &code_new, &ref_est),
        ("the serverkeygen one-time code", &code_kg, &ref_kg),
    ] {
        secrets.push((
            what.into(),
            vec![
                code.clone(),
                code.to_lowercase(),
                basic(reference, code)["Basic ".len()..].to_owned(),
            ],
        ));
    }

    // serverkeygen: a private key in the answer.
    let r = post_csr(
        &d,
        &root,
        "/.well-known/est/hygiene-keygen/serverkeygen",
        &basic(&ref_kg, &code_kg),
        "Hygiene laptop",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    let key_part = text
        .split("--estd-serverkeygen-boundary")
        .find(|p| p.contains("application/pkcs8"))
        .expect("key part");
    let key_b64 = key_part.split("\r\n\r\n").nth(1).expect("key body");
    let generated = estd::est::codec::decode_body(key_b64.as_bytes(), false).expect("key");
    secrets.push((
        "the serverkeygen private key".into(),
        key_fingerprints(&generated),
    ));

    // Admin API: an organisation token (in the answer), used; a wrong token refused.
    let v = admin
        .json(
            "POST",
            &format!("/organisations/{DEMO_CVR}/tokens"),
            Some(r#"{"name": "hygiene"}"#),
            201,
        )
        .await;
    let org_token = v["token"].as_str().expect("token").to_owned();
    let mut as_org = Admin::connect(&d, &root, &org_token).await;
    as_org.json("GET", "/profiles?q=Hygiene", None, 200).await;
    let wrong_token = "estd_AAAAwrongtokenBBBBwrongtokenCCCCwrongtok";
    let mut as_wrong = Admin::connect(&d, &root, wrong_token).await;
    assert_eq!(as_wrong.call("GET", "/profiles", None).await.status, 401);
    secrets.push((
        "an organisation token".into(),
        vec![org_token.clone(), org_token["estd_".len()..].to_owned()],
    ));
    secrets.push(("a wrong admin token".into(), vec![wrong_token.to_owned()]));

    // Every private key estd wrote; the TLS and demo keys were used in handshakes.
    for file in [
        "root-ca.key",
        "issuing-ca.key",
        "tls-server.key",
        "demo-idm.key",
        "ocsp-signer.key",
    ] {
        let path = certs.join(file);
        let mut needles = key_fingerprints(&key_file_der(&path));
        needles.extend(
            std::fs::read_to_string(&path)
                .expect("key")
                .lines()
                .filter(|l| !l.starts_with("-----"))
                .map(str::to_owned),
        );
        secrets.push((format!("certs/{file}"), needles));
    }

    // E-mail validation: the link's token arrives by mail, the page is
    // fetched and the address confirmed on the public listener.
    let body = serde_json::json!({
        "cvr": DEMO_CVR,
        "name": "Hygiene mail",
        "kind": "system",
        "contact": {"name": "Hygiene Test", "email": "hygiene@demo.example"},
        "email": "hygiene-ops@demo.example",
        "identification": "one-time-code",
        "issuance": "est",
        "est_label": "hygiene-mail",
        "order": {},
    })
    .to_string();
    admin.json("POST", "/profiles", Some(&body), 201).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mail = loop {
        if let Some(m) = sink.received_by("hygiene-ops@demo.example").pop() {
            break m;
        }
        assert!(std::time::Instant::now() < deadline, "no validation mail");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let text = mail.body_text();
    let start = text.find("token=").expect("link") + "token=".len();
    let validation_token: String = text[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    assert_eq!(validation_token.len(), 43, "{text}");
    let page = format!("/validate-email?token={validation_token}");
    let public = crate::email_validation::public_http;
    assert_eq!(public(d.public, "GET", &page, None).await.0, 200);
    let form = format!("token={validation_token}");
    assert_eq!(
        public(d.public, "POST", "/validate-email", Some(&form))
            .await
            .0,
        200
    );
    secrets.push(("the e-mail validation token".into(), vec![validation_token]));

    // An API enrolment over mutual TLS (the demo key in use), for a fuller log.
    let r = process::enrol_as_demo_idm(&d, &certs, "hygiene-api").await;
    assert_eq!(r.status, 200, "{}", r.text());

    let log = d.output();
    // The log really holds these flows, at a verbose level: otherwise the test proves nothing.
    assert!(
        log.contains(&format!("order:{ref_est}")),
        "the collection is logged"
    );
    assert!(
        log.contains(&format!("order:{ref_kg}")),
        "serverkeygen is logged"
    );
    assert!(
        log.contains("/api/v1/organisations/"),
        "the admin calls are logged"
    );
    assert!(
        log.contains("/validate-email"),
        "the confirmation is logged"
    );
    assert!(
        log.contains("DEBUG") && log.contains("TRACE"),
        "the filter is verbose"
    );
    for (what, needles) in &secrets {
        assert_absent(&log, what, needles);
    }
    // The check itself works: the reference number (not a secret) is found the same way.
    assert!(log.contains(ref_est.as_str()));
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

#[test]
fn key_files_are_0600_and_readable_keys_are_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let config = process::write_config(dir, "info", "");
    let certs = dir.join("certs");
    // First start.
    let mut d = Daemon::start(dir, &config, &[], "first").expect("first start");
    d.kill9();
    for file in [
        "root-ca.key",
        "issuing-ca.key",
        "tls-server.key",
        "demo-idm.key",
        "ocsp-signer.key",
        "admin-token",
    ] {
        assert_eq!(mode(&certs.join(file)), 0o600, "certs/{file}");
    }
    // Certificates are public.
    assert_eq!(mode(&certs.join("root-ca.pem")), 0o644);

    // `estd init` on a fresh folder writes the same modes.
    let fresh = tempfile::tempdir().expect("tmp");
    let fresh_config = process::write_config(fresh.path(), "info", "");
    let (status, out, err) = run_to_exit(fresh.path(), &fresh_config, "init", &[], "init");
    assert!(status.success(), "estd init: {out}{err}");
    for file in [
        "root-ca.key",
        "issuing-ca.key",
        "tls-server.key",
        "admin-token",
    ] {
        assert_eq!(
            mode(&fresh.path().join("certs").join(file)),
            0o600,
            "init: {file}"
        );
    }

    for (file, bad) in [
        ("issuing-ca.key", 0o644),
        ("issuing-ca.key", 0o640),
        ("issuing-ca.key", 0o604),
        ("root-ca.key", 0o644),
        ("tls-server.key", 0o644),
    ] {
        let path = certs.join(file);
        chmod(&path, bad);
        let tag = format!("refused-{file}-{bad:o}");
        let (status, out, err) = run_to_exit(dir, &config, "serve", &[], &tag);
        assert!(
            !status.success(),
            "estd must refuse to start with {file} at mode {bad:o}"
        );
        assert!(
            !out.contains("estd: listening"),
            "it must not listen: {out}"
        );
        assert!(
            err.contains(file) && err.contains("readable by group or others"),
            "the refusal names the file and the reason: {err}"
        );
        assert!(
            err.contains("chmod 600"),
            "the refusal says how to fix it: {err}"
        );
        chmod(&path, 0o600);
    }
    // With the modes fixed it starts again: the refusals were about the modes.
    let mut d = Daemon::start(dir, &config, &[], "ok-2").expect("start after chmod 600");
    d.kill9();
}
