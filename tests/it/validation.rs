//! Input validation from issue 11 (findings of an outside security test),
//! over a real estd on loopback with real TLS, real CSRs and a sled store:
//! - item 2, non-canonical SubjectPublicKeyInfo: `non_canonical_keys_are_refused`;
//! - item 7, e-mail domains: `bad_email_domains_are_refused_and_never_issued`;
//! - item 9, subject text: `subject_text_is_refused_over_est_and_the_admin_api`
//!   (the BMPString challengePassword is in est_pop.rs);
//! - item 12, labels without regard to case: `labels_are_case_insensitive`.

use std::process::Command;

use der::{Decode, Encode};
use estd_testkit::*;
use serde_json::{json, Value};
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::request::CertReq;

const ENROLL: &str = "/.well-known/est/demo/simpleenroll";

/// A profile body for the demo organisation, enrolled by API over EST.
fn profile_body(name: &str, label: &str) -> Value {
    json!({
        "cvr": DEMO_CVR,
        "name": name,
        "kind": "system",
        "contact": {"name": "Karen Hansen", "email": "karen@demo.example"},
        "identification": "api",
        "issuance": "est",
        "est_label": label,
    })
}

/// Asserts a 400 problem naming `field`.
#[track_caller]
fn assert_invalid(answer: &(u16, Value), field: &str) {
    assert_eq!(answer.0, 400, "answer: {}", answer.1);
    assert_eq!(answer.1["field"], field, "answer: {}", answer.1);
}

/// Whether `openssl x509` reads the certificate.
fn openssl_reads(dir: &std::path::Path, der: &[u8]) -> bool {
    let path = dir.join("issued.der");
    std::fs::write(&path, der).expect("write");
    Command::new("openssl")
        .args(["x509", "-inform", "DER", "-noout", "-text", "-in"])
        .arg(&path)
        .output()
        .expect("openssl")
        .status
        .success()
}

// ---- item 2: SubjectPublicKeyInfo ----

/// A demo-organisation CSR for `key` whose SubjectPublicKeyInfo `change`
/// edited, signed again with `key`: its signature verifies, so only the key
/// check can refuse it.
fn csr_with_spki(
    key: &rcgen::KeyPair,
    change: impl FnOnce(&mut SubjectPublicKeyInfoOwned),
) -> Vec<u8> {
    use rcgen::SigningKey;
    let der = csr_with_key(key, DEMO_ORG, DEMO_CVR, "spki");
    let mut req = CertReq::from_der(&der).expect("csr");
    change(&mut req.info.public_key);
    let info = req.info.to_der().expect("info");
    req.signature =
        der::asn1::BitString::from_bytes(&key.sign(&info).expect("sign")).expect("bits");
    req.to_der().expect("der")
}

fn key(alg: &'static rcgen::SignatureAlgorithm) -> rcgen::KeyPair {
    rcgen::KeyPair::generate_for(alg).expect("key")
}

fn set_key_bits(s: &mut SubjectPublicKeyInfoOwned, unused: u8, bytes: Vec<u8>) {
    s.subject_public_key = der::asn1::BitString::new(unused, bytes).expect("bits");
}

/// Found by the outside test: the CA signed each of these SPKIs as sent,
/// and OpenSSL then could not read the certificate.
#[tokio::test]
async fn non_canonical_keys_are_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let mut c = ts.client(Some(&ts.demo_identity())).await;
    let null = der::Any::encode_from(&der::asn1::Null).expect("null");
    let junk = der::Any::encode_from(&der::asn1::OctetString::new(vec![7]).expect("o")).expect("a");

    let ed = key(&rcgen::PKCS_ED25519);
    let rsa = key(&rcgen::PKCS_RSA_SHA256);
    let p256 = key(&rcgen::PKCS_ECDSA_P256_SHA256);
    let point = p256.public_key_raw().to_vec();
    let compressed = {
        let mut c = vec![2 + (point[64] & 1)];
        c.extend(&point[1..=32]);
        c
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "Ed25519 with NULL parameters",
            csr_with_spki(&ed, |s| s.algorithm.parameters = Some(null.clone())),
            "Ed25519 parameters must be absent",
        ),
        (
            "Ed25519 with unused bits",
            csr_with_spki(&ed, |s| {
                let b = s.subject_public_key.raw_bytes().to_vec();
                set_key_bits(s, 2, b)
            }),
            "unused bits",
        ),
        (
            "rsaEncryption without parameters",
            csr_with_spki(&rsa, |s| s.algorithm.parameters = None),
            "rsaEncryption parameters must be NULL",
        ),
        (
            "rsaEncryption with junk parameters",
            csr_with_spki(&rsa, |s| s.algorithm.parameters = Some(junk.clone())),
            "rsaEncryption parameters must be NULL",
        ),
        (
            "a compressed P-256 point",
            csr_with_spki(&p256, |s| set_key_bits(s, 0, compressed.clone())),
            "must be uncompressed",
        ),
        (
            "a P-256 point off the curve",
            csr_with_spki(&p256, |s| {
                let mut off = point.clone();
                off[40] ^= 1;
                set_key_bits(s, 0, off)
            }),
            "not on the curve",
        ),
    ];
    let before = ts.cert_count();
    for (what, csr, reason) in &cases {
        let r = c.enroll(ENROLL, csr).await;
        assert_eq!(r.status, 400, "{what}: {}", r.text());
        assert_refused(&r, 400, reason);
    }
    assert_eq!(ts.cert_count(), before, "nothing was issued");

    // Control: the canonical form of each key type issues, through the same
    // re-signing path, and OpenSSL reads the certificate.
    for k in [ed, rsa, p256, key(&rcgen::PKCS_ECDSA_P384_SHA384)] {
        let cert = issued_cert(&c.enroll(ENROLL, &csr_with_spki(&k, |_| {})).await);
        assert!(openssl_reads(dir.path(), &der_of(&cert)));
    }
    ts.shutdown().await;
}

// ---- item 7: e-mail addresses ----

const BAD_EMAILS: [&str; 5] = [
    "a@b..dk",
    "a@-b.dk",
    "a@-b-.dk",
    "x@xn--blbr-roah.dk",
    "LONG", // replaced by a 300-character domain below
];

fn bad_emails() -> Vec<String> {
    BAD_EMAILS
        .iter()
        .map(|e| match *e {
            "LONG" => format!("a@{}.dk", vec!["d".repeat(60); 5].join(".")),
            e => e.to_owned(),
        })
        .collect()
}

/// Found by the outside test: these were accepted and issued as rfc822Name SANs.
#[tokio::test]
async fn bad_email_domains_are_refused_and_never_issued() {
    let dir = tempfile::tempdir().expect("tmp");
    // About names, not e-mail validation (email_validation.rs), which is off.
    let ts = TestServer::start_with(dir.path(), "[email_validation]\nenabled = false\n").await;
    let (status, created) = ts
        .admin("POST", "/profiles", Some(profile_body("Mail", "mail")))
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["profile"]["id"].as_str().expect("id").to_owned();
    let before = ts.cert_count();

    for bad in bad_emails() {
        // The profile's e-mail, on create and on change.
        let mut b = profile_body("Other", "other");
        b["email"] = json!(bad);
        assert_invalid(&ts.admin("POST", "/profiles", Some(b)).await, "email");
        let patch = json!({"email": bad});
        assert_invalid(
            &ts.admin("PATCH", &format!("/profiles/{id}"), Some(patch))
                .await,
            "email",
        );
        // The contact's.
        let mut b = profile_body("Other", "other");
        b["contact"]["email"] = json!(bad);
        assert_invalid(
            &ts.admin("POST", "/profiles", Some(b)).await,
            "contact.email",
        );
        // A user's, in an order.
        let order = json!({"profile_id": id, "user": {"name": "Jens Jensen", "email": bad}});
        assert_invalid(
            &ts.admin("POST", "/orders", Some(order)).await,
            "user.email",
        );
    }

    // A profile stored with such an address (before the rule tightened)
    // does not get it issued as an rfc822Name.
    let mut p = ts.app().store.profile(&id).expect("db").expect("profile");
    let mut c = ts.client(Some(&ts.demo_identity())).await;
    for bad in bad_emails() {
        p.email = Some(bad.clone());
        ts.app().store.put_profile(&p).expect("put");
        let r = c
            .enroll("/.well-known/est/mail/simpleenroll", &demo_csr("mail").1)
            .await;
        assert_refused(&r, 403, "subject alternative name not allowed");
    }
    assert_eq!(ts.cert_count(), before, "nothing was issued");
    // Control: a good address is issued.
    p.email = Some("ops@demo.example".into());
    ts.app().store.put_profile(&p).expect("put");
    let cert = issued_cert(
        &c.enroll("/.well-known/est/mail/simpleenroll", &demo_csr("mail").1)
            .await,
    );
    assert_eq!(estd::policy::cert_sans(&cert).len(), 1);
    ts.shutdown().await;
}

// ---- item 9: subject text ----

const SPOOFS: [&str; 6] = [
    "gpj.\u{202E}exe",
    "ad\u{200B}min",
    "\u{FEFF}admin",
    "ad\u{2060}min",
    " admin",
    "admin ",
];

/// Found by the outside test: a CN with U+202E, zero-width characters or
/// surrounding spaces was issued, and shown as such in the API, CSV and logs.
/// Also: the README's subject convention refuses emailAddress, and now the
/// code does too, even when it is the profile's own e-mail.
#[tokio::test]
async fn subject_text_is_refused_over_est_and_the_admin_api() {
    let dir = tempfile::tempdir().expect("tmp");
    // About names, not e-mail validation (email_validation.rs), which is off.
    let ts = TestServer::start_with(dir.path(), "[email_validation]\nenabled = false\n").await;
    let mut c = ts.client(Some(&ts.demo_identity())).await;
    let before = ts.cert_count();
    for cn in SPOOFS {
        let r = c.enroll(ENROLL, &demo_csr(cn).1).await;
        assert_refused(&r, 403, "subject not allowed: CN");
    }

    // emailAddress in the subject, equal to the profile's e-mail.
    let mut b = profile_body("Mail", "mail");
    b["email"] = json!("ops@demo.example");
    let (status, created) = ts.admin("POST", "/profiles", Some(b)).await;
    assert_eq!(status, 201, "{created}");
    let key = key(&rcgen::PKCS_ECDSA_P256_SHA256);
    let mut params = csr_params(DEMO_ORG, DEMO_CVR, "mail");
    params.distinguished_name.push(
        rcgen::DnType::CustomDnType(vec![1, 2, 840, 113549, 1, 9, 1]),
        rcgen::DnValue::Ia5String("ops@demo.example".try_into().expect("ia5")),
    );
    let with_email = params.serialize_request(&key).expect("csr").der().to_vec();
    let r = c
        .enroll("/.well-known/est/mail/simpleenroll", &with_email)
        .await;
    assert_refused(&r, 403, "emailAddress is not allowed in the subject");
    assert_eq!(ts.cert_count(), before, "nothing was issued");
    // Control: without it, the e-mail is in the SAN.
    let cert = issued_cert(
        &c.enroll("/.well-known/est/mail/simpleenroll", &demo_csr("mail").1)
            .await,
    );
    assert_eq!(estd::policy::cert_sans(&cert).len(), 1);

    // The admin API: names that go into certificates (profile name: the CN
    // of its orders; user name: the CN of a user certificate; organisation
    // name: O) and the contact's name.
    let id = created["profile"]["id"].as_str().expect("id").to_owned();
    for spoof in SPOOFS.iter().filter(|s| s.trim() == **s) {
        assert_invalid(
            &ts.admin("POST", "/profiles", Some(profile_body(spoof, "spoof")))
                .await,
            "name",
        );
        assert_invalid(
            &ts.admin(
                "PATCH",
                &format!("/profiles/{id}"),
                Some(json!({"name": spoof})),
            )
            .await,
            "name",
        );
        let mut b = profile_body("Other", "other");
        b["contact"]["name"] = json!(spoof);
        assert_invalid(
            &ts.admin("POST", "/profiles", Some(b)).await,
            "contact.name",
        );
        let order =
            json!({"profile_id": id, "user": {"name": spoof, "email": "jens@demo.example"}});
        assert_invalid(&ts.admin("POST", "/orders", Some(order)).await, "user.name");
        assert_invalid(
            &ts.admin(
                "PATCH",
                &format!("/organisations/{DEMO_CVR}"),
                Some(json!({"name": spoof})),
            )
            .await,
            "name",
        );
    }
    ts.shutdown().await;
}

// ---- item 12: labels ----

/// Found by the outside test: `DEMO` could sit beside another organisation's
/// `demo`. Labels are now compared without regard to case: a second label
/// that differs only in case is a conflict, and EST under any spelling
/// reaches the one profile.
#[tokio::test]
async fn labels_are_case_insensitive() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    for label in ["DEMO", "Demo"] {
        let (status, body) = ts
            .admin("POST", "/profiles", Some(profile_body("Shadow", label)))
            .await;
        assert_eq!(status, 409, "{label}: {body}");
    }
    // A new label is kept in lower case, and found in any case.
    let (status, created) = ts
        .admin(
            "POST",
            "/profiles",
            Some(profile_body("Sensors", "Door-Sensors")),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["profile"]["est_label"], "door-sensors");
    let (status, _) = ts
        .admin(
            "POST",
            "/profiles",
            Some(profile_body("Other", "door-SENSORS")),
        )
        .await;
    assert_eq!(status, 409);

    let demo = ts
        .app()
        .store
        .profile_by_label("demo")
        .expect("db")
        .expect("demo");
    let mut c = ts.client(Some(&ts.demo_identity())).await;
    for path in [
        "/.well-known/est/DEMO/simpleenroll",
        "/.well-known/est/Demo/simpleenroll",
    ] {
        let cert = issued_cert(&c.enroll(path, &demo_csr("upper").1).await);
        let rec = ts
            .app()
            .store
            .cert(&serial_of(&cert))
            .expect("db")
            .expect("record");
        assert_eq!(rec.profile_id, demo.id, "{path}");
    }
    let lower = c.get("/.well-known/est/demo/csrattrs").await;
    let upper = c.get("/.well-known/est/DEMO/csrattrs").await;
    assert_eq!(lower.status, 200);
    assert_eq!((upper.status, upper.body), (lower.status, lower.body));
    // Re-enrolment under the label in another case is the same profile.
    let key = key(&rcgen::PKCS_ECDSA_P256_SHA256);
    let csr = csr_with_key(&key, DEMO_ORG, DEMO_CVR, "renew-me");
    let cert = issued_cert(&c.enroll(ENROLL, &csr).await);
    let holder = Identity::new(der_of(&cert), &key);
    let mut h = ts.client(Some(&holder)).await;
    let renewed = h
        .enroll(
            "/.well-known/est/DEMO/simplereenroll",
            &csr_with_key(&key, DEMO_ORG, DEMO_CVR, "renew-me"),
        )
        .await;
    issued_cert(&renewed);
    ts.shutdown().await;
}
