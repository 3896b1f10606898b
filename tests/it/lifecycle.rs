//! The certificate lifecycle under changed policy (issue 11, items 4, 5, 8, 10
//! and 12c): each test is real requests to a real estd on loopback (real TLS,
//! real CSRs, a sled store in a temp dir).
//!
//! - re-enrolment and collection are judged against the current profile and
//!   organisation (item 4): `reenrolment_refuses_names_the_profile_no_longer_allows`,
//!   `reenrolment_is_held_when_the_profile_now_requires_approval`,
//!   `user_certificates_stop_when_the_organisation_withdraws_consent`,
//!   `the_record_names_what_the_certificate_carries`,
//!   `reenrolment_does_not_keep_rights_the_profile_withdrew`
//! - a certificate has at most one successor (item 5):
//!   `a_certificate_has_one_successor_and_a_retry_gets_it_again`,
//!   `simultaneous_reenrolments_of_one_certificate_issue_one_successor`,
//!   `revoking_for_suspected_misuse_revokes_the_successors`
//! - orders that cannot complete are refused (item 8):
//!   `orders_that_cannot_be_collected_are_refused`,
//!   `a_certificate_has_at_most_one_open_renewal_order`
//! - EST cannot mint rights the caller lacks (item 10):
//!   `est_enroll_cannot_mint_admin_api`
//! - an unknown reference does the work of a wrong code (item 12c):
//!   `unknown_reference_and_wrong_code_do_the_same_work`

use estd::model::{CertStatus, Profile, RevocationReason, Serial, SystemRight};
use estd_testkit::api::{assert_problem, Api};
use estd_testkit::*;
use serde_json::{json, Value};
use x509_cert::Certificate;

const ENROLL: &str = "/.well-known/est/demo/simpleenroll";
const REENROLL: &str = "/.well-known/est/simplereenroll";
/// Certificates with the profile's e-mail issued without confirming it.
const NO_EMAIL_VALIDATION: &str = "[email_validation]\nenabled = false\n";

fn record(ts: &TestServer, serial: &Serial) -> estd::model::CertRecord {
    ts.app().store.cert(serial).expect("db").expect("record")
}

fn ia5(s: &str) -> rcgen::string::Ia5String {
    rcgen::string::Ia5String::try_from(s).expect("ia5")
}

/// A demo CSR for `cn` with `key`, after `change` edits its parameters.
fn csr_with(
    key: &rcgen::KeyPair,
    cn: &str,
    change: impl FnOnce(&mut rcgen::CertificateParams),
) -> Vec<u8> {
    let mut p = csr_params(DEMO_ORG, DEMO_CVR, cn);
    change(&mut p);
    p.serialize_request(key).expect("csr").der().to_vec()
}

fn p256() -> rcgen::KeyPair {
    rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key")
}

/// Enrols `cn` under the demo profile with the demo IdM, SANs set by `change`:
/// the holder's identity and certificate.
async fn enrol(
    ts: &TestServer,
    cn: &str,
    change: impl FnOnce(&mut rcgen::CertificateParams),
) -> (Identity, Certificate) {
    let key = p256();
    let csr = csr_with(&key, cn, change);
    let mut idm = ts.client(Some(&ts.demo_identity())).await;
    let cert = issued_cert(&idm.enroll(ENROLL, &csr).await);
    (Identity::new(der_of(&cert), &key), cert)
}

fn spki_bytes(cert: &Certificate) -> Vec<u8> {
    cert.tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .raw_bytes()
        .to_vec()
}

/// A one-time-code profile of the demo organisation, created through the API
/// with `extra` fields and an order in `order`: (profile id, reference, code).
async fn code_profile(
    op: &mut Api,
    name: &str,
    label: &str,
    extra: Value,
    order: Value,
) -> (String, String, String) {
    let mut b = json!({
        "cvr": DEMO_CVR,
        "name": name,
        "kind": "system",
        "contact": {"name": "Karen Hansen", "email": "karen@demo.example"},
        "identification": "one-time-code",
        "issuance": "est",
        "est_label": label,
        "order": order,
    });
    if let (Some(b), Some(extra)) = (b.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            b.insert(k.clone(), v.clone());
        }
    }
    let r = op.post("/profiles", b).await;
    assert_eq!(r.status, 201, "create profile: {}", r.resp.text());
    (
        r.body["profile"]["id"].as_str().expect("id").to_owned(),
        r.body["order"]["reference"]
            .as_str()
            .expect("reference")
            .to_owned(),
        r.body["order"]["code"].as_str().expect("code").to_owned(),
    )
}

// ---- Item 10 ----

/// An IdM certificate with only `est-enroll` may not enrol under a profile
/// that grants `admin-api`: a caller never obtains through EST a right it
/// does not hold. The demo IdM, which holds both, may.
#[tokio::test]
async fn est_enroll_cannot_mint_admin_api() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let org = demo_org(ts.app());
    let admins = Profile {
        rights: vec![SystemRight::AdminApi],
        ..Profile::system(DEMO_CVR, "Admin tools", "admins")
    };
    ts.app().store.put_profile(&admins).expect("profile");
    let enrollers = Profile {
        rights: vec![SystemRight::EstEnroll],
        ..Profile::system(DEMO_CVR, "Enrollers", "enrollers")
    };
    ts.app().store.put_profile(&enrollers).expect("profile");
    let (_, weak) = ts.issue_direct(&org, &enrollers, "Enroller", 30);
    let before = ts.app().store.cert_count();

    let key = p256();
    let csr = csr_with(&key, "sneaky", |_| {});
    let mut c = ts.client(Some(&weak)).await;
    let r = c.enroll("/.well-known/est/admins/simpleenroll", &csr).await;
    assert_refused(&r, 403, "admin-api");
    assert_eq!(ts.app().store.cert_count(), before, "nothing was issued");

    // Its own rights it may pass on.
    let r = c
        .enroll("/.well-known/est/enrollers/simpleenroll", &csr)
        .await;
    issued_cert(&r);

    // The demo IdM holds admin-api, so its enrolment under the profile is
    // admitted to the admin API.
    let mut idm = ts.client(Some(&ts.demo_identity())).await;
    let key = p256();
    let csr = csr_with(&key, "tool", |_| {});
    let cert = issued_cert(
        &idm.enroll("/.well-known/est/admins/simpleenroll", &csr)
            .await,
    );
    let mut api = Api::with_cert(&ts, &Identity::new(der_of(&cert), &key)).await;
    assert_eq!(api.get("/organisations").await.status, 200);
    ts.shutdown().await;
}

// ---- Item 5 ----

#[tokio::test]
async fn a_certificate_has_one_successor_and_a_retry_gets_it_again() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let (holder, old) = enrol(&ts, "sensor-1", |_| {}).await;
    let old_serial = serial_of(&old);
    let mut c = ts.client(Some(&holder)).await;

    let key1 = p256();
    let csr1 = csr_with(&key1, "sensor-1", |_| {});
    let first = c.enroll(REENROLL, &csr1).await;
    let successor = issued_cert(&first);
    let succ_serial = serial_of(&successor);

    // The same CSR again (an answer that was lost): the same certificate.
    let again = c.enroll(REENROLL, &csr1).await;
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(der_of(&issued_cert(&again)), der_of(&successor));
    // The same key in a CSR made again (another signature) is the same request.
    let csr1b = csr_with(&key1, "sensor-1", |_| {});
    assert_eq!(
        der_of(&issued_cert(&c.enroll(REENROLL, &csr1b).await)),
        der_of(&successor)
    );

    // Another key: 409 naming the successor; nothing issued.
    let before = ts.app().store.cert_count();
    let key2 = p256();
    let csr2 = csr_with(&key2, "sensor-1", |_| {});
    let r = c.enroll(REENROLL, &csr2).await;
    assert_refused(&r, 409, &succ_serial.to_string());
    assert_eq!(ts.app().store.cert_count(), before, "nothing was issued");

    // The link both ways, in the store and the API.
    assert_eq!(record(&ts, &old_serial).renewed_by, Some(succ_serial));
    assert_eq!(record(&ts, &succ_serial).renews, Some(old_serial));
    let mut op = Api::operator(&ts).await;
    let view = op.get(&format!("/certificates/{old_serial}")).await;
    assert_eq!(view.body["renewed_by"], succ_serial.to_string());
    let view = op.get(&format!("/certificates/{succ_serial}")).await;
    assert_eq!(view.body["renews"], old_serial.to_string());

    // Once the successor is revoked, a new one may be issued and becomes the link.
    let r = op
        .post(
            &format!("/certificates/{succ_serial}/revoke"),
            json!({"reason": "other"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.resp.text());
    let third = issued_cert(&c.enroll(REENROLL, &csr2).await);
    assert_eq!(spki_bytes(&third), key2.public_key_raw());
    assert_eq!(record(&ts, &old_serial).renewed_by, Some(serial_of(&third)));
    // And the revoked one is no longer handed out on a retry of its CSR.
    let r = c.enroll(REENROLL, &csr1).await;
    assert_refused(&r, 409, &serial_of(&third).to_string());
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn simultaneous_reenrolments_of_one_certificate_issue_one_successor() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start_with(
        dir.path(),
        "[rate_limit.ip]\nenabled = false\n[rate_limit.reference]\nenabled = false\n",
    )
    .await;
    const PARALLEL: usize = 8;
    for round in 0..4 {
        let (holder, old) = enrol(&ts, &format!("racer-{round}"), |_| {}).await;
        let mut clients = Vec::new();
        for _ in 0..PARALLEL {
            clients.push(ts.client(Some(&holder)).await);
        }
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(PARALLEL));
        let mut tasks = Vec::new();
        for mut c in clients {
            let csr = csr_with(&p256(), &format!("racer-{round}"), |_| {});
            let barrier = barrier.clone();
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                c.enroll(REENROLL, &csr).await
            }));
        }
        let mut issued = Vec::new();
        let mut conflicts = 0;
        for t in tasks {
            let r = t.await.expect("task");
            match r.status {
                200 => issued.push(serial_of(&issued_cert(&r))),
                409 => conflicts += 1,
                s => panic!("round {round}: unexpected {s}: {}", r.text()),
            }
        }
        assert_eq!(
            (issued.len(), conflicts),
            (1, PARALLEL - 1),
            "round {round}: exactly one successor"
        );
        assert_eq!(
            record(&ts, &serial_of(&old)).renewed_by,
            Some(issued[0]),
            "round {round}"
        );
    }
    ts.shutdown().await;
}

/// A PKI operator's answer to a stolen key: whoever held it may have
/// re-enrolled, so revoking for suspected misuse (keyCompromise) revokes the
/// certificate's successors too; other reasons leave them valid. The answer
/// names the successors either way.
#[tokio::test]
async fn revoking_for_suspected_misuse_revokes_the_successors() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let mut op = Api::operator(&ts).await;

    // A → B → C by re-enrolment; A revoked for suspected misuse.
    let (holder_a, a) = enrol(&ts, "stolen", |_| {}).await;
    let key_b = p256();
    let b = issued_cert(
        &ts.client(Some(&holder_a))
            .await
            .enroll(REENROLL, &csr_with(&key_b, "stolen", |_| {}))
            .await,
    );
    let c = issued_cert(
        &ts.client(Some(&Identity::new(der_of(&b), &key_b)))
            .await
            .enroll(REENROLL, &csr_with(&p256(), "stolen", |_| {}))
            .await,
    );
    let r = op
        .post(
            &format!("/certificates/{}/revoke", serial_of(&a)),
            json!({"reason": "suspected-misuse"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.resp.text());
    assert_eq!(r.body["renewed_by"], serial_of(&b).to_string());
    assert_eq!(
        r.body["also_revoked"],
        json!([serial_of(&b).to_string(), serial_of(&c).to_string()])
    );
    for s in [serial_of(&b), serial_of(&c)] {
        assert!(
            matches!(
                record(&ts, &s).status,
                CertStatus::Revoked {
                    reason: RevocationReason::SuspectedMisuse,
                    ..
                }
            ),
            "{s} revoked with its predecessor"
        );
    }

    // Superseded: the successor stays valid.
    let (holder_d, d) = enrol(&ts, "retired", |_| {}).await;
    let e = issued_cert(
        &ts.client(Some(&holder_d))
            .await
            .enroll(REENROLL, &csr_with(&p256(), "retired", |_| {}))
            .await,
    );
    let r = op
        .post(
            &format!("/certificates/{}/revoke", serial_of(&d)),
            json!({"reason": "superseded"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.resp.text());
    assert_eq!(r.body["renewed_by"], serial_of(&e).to_string());
    assert_eq!(r.body["also_revoked"], json!([]));
    assert_eq!(record(&ts, &serial_of(&e)).status, CertStatus::Issued);
    ts.shutdown().await;
}

// ---- Item 4 ----

#[tokio::test]
async fn reenrolment_refuses_names_the_profile_no_longer_allows() {
    let dir = tempfile::tempdir().expect("tmp");
    // About names, not e-mail validation (email_validation.rs), which is off.
    let ts = TestServer::start_with(dir.path(), NO_EMAIL_VALIDATION).await;
    let mut op = Api::operator(&ts).await;
    let demo = profile(&ts, "demo").id;
    op.change_profile(
        &demo,
        json!({"allow_ip_sans": true, "email": "ops@demo.example"}),
    )
    .await;
    let dns = |p: &mut rcgen::CertificateParams| {
        p.subject_alt_names = vec![rcgen::SanType::DnsName(ia5("s7.devices.demo.example"))];
    };
    let ip = |p: &mut rcgen::CertificateParams| {
        p.subject_alt_names = vec![rcgen::SanType::IpAddress("10.0.0.7".parse().expect("ip"))];
    };
    let (dns_holder, _) = enrol(&ts, "dns-7", dns).await;
    let (ip_holder, _) = enrol(&ts, "ip-7", ip).await;
    let (mail_holder, mail_cert) = enrol(&ts, "mail-7", |_| {}).await;
    assert!(
        estd::policy::cert_sans(&mail_cert)
            .iter()
            .any(|g| matches!(g, x509_cert::ext::pkix::name::GeneralName::Rfc822Name(m) if m.as_str() == "ops@demo.example")),
        "the profile's e-mail is in the certificate"
    );

    op.change_profile(
        &demo,
        json!({
            "dns_names": [".other.demo.example"],
            "allow_ip_sans": false,
            "email": "new-ops@demo.example",
        }),
    )
    .await;
    let before = ts.app().store.cert_count();
    let cases = [
        (&dns_holder, "dns-7", "s7.devices.demo.example"),
        (&ip_holder, "ip-7", "10.0.0.7"),
        (&mail_holder, "mail-7", "ops@demo.example"),
    ];
    for (holder, cn, name) in cases {
        let csr = match cn {
            "dns-7" => csr_with(&p256(), cn, dns),
            "ip-7" => csr_with(&p256(), cn, ip),
            _ => csr_with(&p256(), cn, |_| {}),
        };
        let r = ts.client(Some(holder)).await.enroll(REENROLL, &csr).await;
        assert_refused(&r, 403, name);
        assert!(r.text().contains("no longer allows"), "{cn}: {}", r.text());
    }
    assert_eq!(ts.app().store.cert_count(), before, "nothing was issued");
    ts.shutdown().await;
}

#[tokio::test]
async fn reenrolment_is_held_when_the_profile_now_requires_approval() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let mut op = Api::operator(&ts).await;
    let (holder, old) = enrol(&ts, "held-1", |_| {}).await;
    op.change_profile(&profile(&ts, "demo").id, json!({"approval_required": true}))
        .await;
    let before = ts.app().store.cert_count();
    let key = p256();
    let csr = csr_with(&key, "held-1", |_| {});
    let mut c = ts.client(Some(&holder)).await;
    let r = c.enroll(REENROLL, &csr).await;
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.header("retry-after"), Some("60"));
    assert_eq!(c.enroll(REENROLL, &csr).await.status, 202, "still held");
    assert_eq!(
        ts.app().store.cert_count(),
        before,
        "nothing issued while held"
    );

    let mut hash = [0u8; 32];
    hash.copy_from_slice(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &csr).as_ref());
    let order = ts
        .app()
        .store
        .held_order(&hash)
        .expect("db")
        .expect("held order");
    assert_eq!(order.renews, Some(serial_of(&old)));
    let r = op
        .post(&format!("/orders/{}/approve", order.id), json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.resp.text());
    let renewed = issued_cert(&c.enroll(REENROLL, &csr).await);
    assert_eq!(spki_bytes(&renewed), key.public_key_raw());
    assert_eq!(renewed.tbs_certificate.subject, old.tbs_certificate.subject);
    assert_eq!(
        record(&ts, &serial_of(&old)).renewed_by,
        Some(serial_of(&renewed))
    );
    // A retry gets the same certificate.
    let again = issued_cert(&c.enroll(REENROLL, &csr).await);
    assert_eq!(der_of(&again), der_of(&renewed));
    ts.shutdown().await;
}

#[tokio::test]
async fn user_certificates_stop_when_the_organisation_withdraws_consent() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let mut op = Api::operator(&ts).await;
    let user = json!({"user": {"name": "Jens Jensen", "email": "jens@demo.example"}});
    let (profile_id, reference, code) =
        code_profile(&mut op, "Staff", "staff", json!({}), user.clone()).await;
    let key = p256();
    let csr = csr_with(&key, "Jens Jensen", |_| {});
    let cert = issued_cert(&collect(&ts, "staff", &reference, &code, &csr).await);
    let holder = Identity::new(der_of(&cert), &key);
    // A second user order, still pending.
    let r = op
        .post(
            "/orders",
            json!({"profile_id": profile_id, "user": {"name": "Lis Hansen", "email": "lis@demo.example"}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.resp.text());
    let (ref2, code2) = (
        r.body["reference"].as_str().expect("ref").to_owned(),
        r.body["code"].as_str().expect("code").to_owned(),
    );

    let r = op
        .patch(
            &format!("/organisations/{DEMO_CVR}"),
            json!({"allow_user_certs": false}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.resp.text());
    let before = ts.app().store.cert_count();
    let r = collect(
        &ts,
        "staff",
        &ref2,
        &code2,
        &csr_with(&p256(), "Lis Hansen", |_| {}),
    )
    .await;
    assert_refused(&r, 403, "does not allow user certificates");
    let r = ts
        .client(Some(&holder))
        .await
        .enroll(REENROLL, &csr_with(&p256(), "Jens Jensen", |_| {}))
        .await;
    assert_refused(&r, 403, "does not allow user certificates");
    assert_eq!(ts.app().store.cert_count(), before, "nothing was issued");

    // Consent back: the pending order completes (its code was not spent).
    op.patch(
        &format!("/organisations/{DEMO_CVR}"),
        json!({"allow_user_certs": true}),
    )
    .await;
    issued_cert(
        &collect(
            &ts,
            "staff",
            &ref2,
            &code2,
            &csr_with(&p256(), "Lis Hansen", |_| {}),
        )
        .await,
    );
    ts.shutdown().await;
}

/// A record's names come from the certificate actually issued: a profile
/// that gained an e-mail after issuance renews a certificate without one,
/// and the public search by that e-mail does not find the renewal.
#[tokio::test]
async fn the_record_names_what_the_certificate_carries() {
    let dir = tempfile::tempdir().expect("tmp");
    // About names, not e-mail validation (email_validation.rs), which is off.
    let ts = TestServer::start_with(dir.path(), NO_EMAIL_VALIDATION).await;
    let mut op = Api::operator(&ts).await;
    let demo = profile(&ts, "demo").id;
    op.change_profile(&demo, json!({"publish": true})).await;
    let (holder, _) = enrol(&ts, "plain-1", |_| {}).await;
    op.change_profile(&demo, json!({"email": "later@demo.example"}))
        .await;
    let renewed = issued_cert(
        &ts.client(Some(&holder))
            .await
            .enroll(REENROLL, &csr_with(&p256(), "plain-1", |_| {}))
            .await,
    );
    assert!(
        !estd::policy::cert_sans(&renewed)
            .iter()
            .any(|g| matches!(g, x509_cert::ext::pkix::name::GeneralName::Rfc822Name(_))),
        "re-enrolment keeps the names of the old certificate"
    );
    assert_eq!(record(&ts, &serial_of(&renewed)).email, None);
    let r = op
        .get("/public/certificates?email=later%40demo.example")
        .await;
    assert_eq!(r.status, 200, "{}", r.resp.text());
    assert_eq!(r.body["total"], 0, "{}", r.body);

    // A fresh enrolment carries the e-mail, and is found by it.
    let (_, fresh) = enrol(&ts, "mail-1", |_| {}).await;
    assert_eq!(
        record(&ts, &serial_of(&fresh)).email.as_deref(),
        Some("later@demo.example")
    );
    let r = op
        .get("/public/certificates?email=later%40demo.example")
        .await;
    assert_eq!(r.body["total"], 1, "{}", r.body);
    ts.shutdown().await;
}

/// Re-enrolment never adds a right the certificate lacks (a profile that
/// gained admin-api does not hand it to renewals: the certificate would mint
/// itself a right), and drops one the profile no longer grants.
#[tokio::test]
async fn reenrolment_does_not_keep_rights_the_profile_withdrew() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let mut op = Api::operator(&ts).await;
    let tools = Profile {
        rights: vec![SystemRight::EstEnroll],
        ..Profile::system(DEMO_CVR, "Tools", "tools")
    };
    ts.app().store.put_profile(&tools).expect("profile");
    let key = p256();
    let cert = issued_cert(
        &ts.client(Some(&ts.demo_identity()))
            .await
            .enroll(
                "/.well-known/est/tools/simpleenroll",
                &csr_with(&key, "tool-1", |_| {}),
            )
            .await,
    );
    op.change_profile(&tools.id, json!({"rights": ["est-enroll", "admin-api"]}))
        .await;
    let key2 = p256();
    let renewed = issued_cert(
        &ts.client(Some(&Identity::new(der_of(&cert), &key)))
            .await
            .enroll(REENROLL, &csr_with(&key2, "tool-1", |_| {}))
            .await,
    );
    assert_eq!(
        record(&ts, &serial_of(&renewed)).rights,
        vec![SystemRight::EstEnroll],
        "no right the certificate did not hold"
    );
    let mut api = Api::with_cert(&ts, &Identity::new(der_of(&renewed), &key2)).await;
    assert_eq!(api.get("/organisations").await.status, 403);

    op.change_profile(&tools.id, json!({"rights": []})).await;
    let third = issued_cert(
        &ts.client(Some(&Identity::new(der_of(&renewed), &key2)))
            .await
            .enroll(REENROLL, &csr_with(&p256(), "tool-1", |_| {}))
            .await,
    );
    assert_eq!(
        record(&ts, &serial_of(&third)).rights,
        vec![],
        "a withdrawn right is dropped"
    );
    ts.shutdown().await;
}

// ---- Item 8 ----

#[tokio::test]
async fn orders_that_cannot_be_collected_are_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let mut op = Api::operator(&ts).await;
    let orders_before = op.get("/orders").await.body["total"].clone();

    // An organisation's or system's certificate of an API profile is
    // enrolled by the IdM system; an order for it would never be collected.
    // (Renewals and user certificates of API profiles are collected:
    // tests/it/api_user_orders.rs.)
    let r = op
        .post("/orders", json!({"profile_id": profile(&ts, "demo").id}))
        .await;
    assert_problem(&r, 409, "enrolled by its IdM system over EST");
    // Identification api for a profile the IdM system does not enrol.
    let r = op
        .post(
            "/orders",
            json!({"profile_id": profile(&ts, "demo-idm").id, "identification": "api",
                   "user": {"name": "Jens Jensen", "email": "jens@demo.example"}}),
        )
        .await;
    assert_problem(&r, 409, "is not enrolled that way");
    assert_eq!(op.get("/orders").await.body["total"], orders_before);
    ts.shutdown().await;
}

#[tokio::test]
async fn a_certificate_has_at_most_one_open_renewal_order() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let mut op = Api::operator(&ts).await;
    let (_, reference, code) =
        code_profile(&mut op, "Gateway", "gateway", json!({}), json!({})).await;
    let key = p256();
    let cert = issued_cert(
        &collect(
            &ts,
            "gateway",
            &reference,
            &code,
            &csr_with(&key, "Gateway", |_| {}),
        )
        .await,
    );
    let renew = format!("/certificates/{}/renew", serial_of(&cert));
    let first = op.post(&renew, json!({})).await;
    assert_eq!(first.status, 201, "{}", first.resp.text());
    let open = first.body["reference"]
        .as_str()
        .expect("reference")
        .to_owned();
    let second = op.post(&renew, json!({})).await;
    assert_problem(&second, 409, &open);
    // Deleted, the order no longer blocks a new one.
    let r = op.call("DELETE", &format!("/orders/{open}"), None).await;
    assert_eq!(r.status, 200, "{}", r.resp.text());
    let third = op.post(&renew, json!({})).await;
    assert_eq!(third.status, 201, "{}", third.resp.text());
    let new_ref = third.body["reference"]
        .as_str()
        .expect("reference")
        .to_owned();
    let new_code = third.body["code"].as_str().expect("code").to_owned();
    // Collected, the renewal is the certificate's successor; another renewal
    // order is then refused, naming it.
    let renewed = issued_cert(
        &collect(
            &ts,
            "gateway",
            &new_ref,
            &new_code,
            &csr_with(&p256(), "Gateway", |_| {}),
        )
        .await,
    );
    assert_eq!(
        record(&ts, &serial_of(&cert)).renewed_by,
        Some(serial_of(&renewed))
    );
    let r = op.post(&renew, json!({})).await;
    assert_problem(&r, 409, &serial_of(&renewed).to_string());
    ts.shutdown().await;
}

// ---- Item 12c ----

/// Not a timing test: an unknown reference must go through the same steps as
/// a wrong code on an existing order (the code hashed and compared, and a
/// durable counter written before the answer). The count of unknown
/// references is the observable part of that write.
#[tokio::test]
async fn unknown_reference_and_wrong_code_do_the_same_work() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start_with(
        dir.path(),
        "[rate_limit.ip]\nenabled = false\n[rate_limit.reference]\nenabled = false\n",
    )
    .await;
    let csr = csr_with(&p256(), "nobody", |_| {});
    let before = ts.app().store.unmatched_code_attempts().expect("db");
    for i in 0..3 {
        let r = collect(
            &ts,
            "demo",
            &format!("99999999999{i}"),
            "WRONGWRONGWRONG1",
            &csr,
        )
        .await;
        assert_refused(&r, 401, "unknown reference number or wrong one-time code");
    }
    assert_eq!(
        ts.app().store.unmatched_code_attempts().expect("db"),
        before + 3
    );
    // A code already used: the same answer, and the same write.
    let mut op = Api::operator(&ts).await;
    let (_, reference, code) = code_profile(&mut op, "Once", "once", json!({}), json!({})).await;
    let once = csr_with(&p256(), "Once", |_| {});
    issued_cert(&collect(&ts, "once", &reference, &code, &once).await);
    let r = collect(&ts, "once", &reference, &code, &once).await;
    assert_refused(&r, 401, "unknown reference number or wrong one-time code");
    assert_eq!(
        ts.app().store.unmatched_code_attempts().expect("db"),
        before + 4
    );
    ts.shutdown().await;
}

/// Measurement, not a test (run with `--ignored --nocapture`): the median
/// answer time of 200 wrong codes on existing orders and of 200 codes for
/// unknown references, interleaved on one keep-alive connection.
#[tokio::test]
#[ignore]
async fn measure_wrong_code_and_unknown_reference() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start_with(
        dir.path(),
        "[rate_limit.ip]\nenabled = false\n[rate_limit.reference]\nenabled = false\n",
    )
    .await;
    let mut op = Api::operator(&ts).await;
    let (profile_id, first, _) =
        code_profile(&mut op, "Timing", "timing", json!({}), json!({})).await;
    // Four wrong codes per order stay below the lockout.
    let mut references = vec![first];
    while references.len() < 50 {
        let r = op.post("/orders", json!({"profile_id": profile_id})).await;
        assert_eq!(r.status, 201, "{}", r.resp.text());
        references.push(r.body["reference"].as_str().expect("ref").to_owned());
    }
    let csr = b64(&csr_with(&p256(), "Timing", |_| {})).into_bytes();
    let mut c = ts.client(None).await;
    let (mut wrong, mut unknown) = (Vec::new(), Vec::new());
    for i in 0..200 {
        wrong.push(timed_guess(&mut c, &references[i % 50], &csr).await);
        let unknown_ref = format!("{:012}", 900_000_000_000u64 + i as u64);
        unknown.push(timed_guess(&mut c, &unknown_ref, &csr).await);
    }
    wrong.sort();
    unknown.sort();
    println!(
        "median over 200: wrong code on an existing order {:?}, unknown reference {:?}",
        wrong[100], unknown[100]
    );
    ts.shutdown().await;
}

/// One wrong code for `reference`, timed from request to answer.
async fn timed_guess(c: &mut Client, reference: &str, csr: &[u8]) -> std::time::Duration {
    let basic = format!(
        "Basic {}",
        b64(format!("{reference}:WRONGWRONGWRONG1").as_bytes())
    );
    let t = std::time::Instant::now();
    let r = c
        .send(
            "POST",
            "/.well-known/est/timing/simpleenroll",
            &[
                ("content-type", "application/pkcs10"),
                ("authorization", &basic),
            ],
            csr.to_vec(),
        )
        .await;
    assert_eq!(r.status, 401, "{}", r.text());
    t.elapsed()
}
