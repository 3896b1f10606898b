//! One-time-code collection, approval-held enrolments and serverkeygen over
//! real EST, with orders created through the same lifecycle operations the
//! admin API uses.

use base64::Engine;
use der::Decode;
use estd::model::{Contact, Identification, Issuance, OrderStatus, Profile, RevocationReason};
use estd::service::{self, OrderRequest};
use estd_testkit::*;

const COLLECT: &str = "/.well-known/est/simpleenroll";
const REENROLL: &str = "/.well-known/est/simplereenroll";

/// A profile of the demo organisation with the given methods.
fn add_profile(
    ts: &TestServer,
    name: &str,
    label: &str,
    id: Identification,
    iss: Issuance,
    approval: bool,
) -> Profile {
    let p = Profile {
        validity_days: 1095,
        identification: id,
        issuance: iss,
        contact: Some(Contact {
            name: "Kontakt Person".into(),
            email: "kontakt@demo.example".into(),
        }),
        approval_required: approval,
        ..Profile::system(DEMO_CVR, name, label)
    };
    ts.app().store.put_profile(&p).expect("profile");
    p
}

async fn collect(ts: &TestServer, reference: &str, code: &str, cn: &str) -> (rcgen::KeyPair, Resp) {
    let (key, csr) = demo_csr(cn);
    let mut c = ts.client(None).await;
    let auth = basic(reference, code);
    let r = c
        .send(
            "POST",
            COLLECT,
            &[
                ("content-type", "application/pkcs10"),
                ("authorization", &auth),
            ],
            b64(&csr).into_bytes(),
        )
        .await;
    (key, r)
}

#[tokio::test]
async fn one_time_code_lifecycle() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let app = ts.app().clone();
    let profile = add_profile(
        &ts,
        "Door controller",
        "doors",
        Identification::OneTimeCode,
        Issuance::Est,
        false,
    );
    let created = order_for(&app, &profile.id).await;
    let code = created.code.expect("a one-time code is shown once");
    let reference = created.order.id.clone();
    let stored = app.store.order(&reference).expect("db").expect("order");
    assert!(stored
        .code
        .as_ref()
        .is_some_and(|c| !c.hash.iter().all(|b| *b == 0)));
    let raw = format!("{:?}", stored);
    assert!(!raw.contains(&code), "only the hash of the code is stored");

    // A client that sends credentials only after the challenge.
    let (_k, csr) = demo_csr("Door controller");
    let mut c = ts.client(None).await;
    let first = c.enroll(COLLECT, &csr).await;
    assert_eq!(first.status, 401);
    assert!(first
        .header("www-authenticate")
        .is_some_and(|h| h.starts_with("Basic")));
    // The CSR must match what was ordered: a wrong CN is refused and spends nothing.
    let (_k, wrong_cn) = collect(&ts, &reference, &code, "Something else").await;
    assert_eq!(wrong_cn.status, 403, "{}", wrong_cn.text());

    let (key, r) = collect(&ts, &reference, &code, "Door controller").await;
    let cert = issued_cert(&r);
    let serial = serial_of(&cert);
    let order = app.store.order(&reference).expect("db").expect("order");
    assert_eq!(order.status, OrderStatus::Issued { serial });
    assert!(order.code.is_none(), "the code is spent");
    assert_eq!(
        service::display_status(app.services(), &order, estd::model::now_unix()),
        "issued"
    );

    // A second use of the code: 401.
    let (_k, again) = collect(&ts, &reference, &code, "Door controller").await;
    assert_eq!(again.status, 401);

    // Renewal by simplereenroll with the issued certificate.
    let mut holder = ts.client(Some(&Identity::new(der_of(&cert), &key))).await;
    let (new_key, csr2) = demo_csr("Door controller");
    let renewed = issued_cert(&holder.enroll(REENROLL, &csr2).await);
    assert_ne!(serial_of(&renewed), serial);
    let renewed_rec = app
        .store
        .cert(&serial_of(&renewed))
        .expect("db")
        .expect("stored");
    assert_eq!(renewed_rec.renews, Some(serial));
    let renewal_order = app
        .store
        .order(renewed_rec.order_id.as_deref().expect("order"))
        .expect("db")
        .expect("order");
    assert_eq!(
        renewal_order.renews,
        Some(serial),
        "renewal recorded as an order"
    );

    // Revoke the renewed one: its re-enrolment is refused, and it lists as revoked.
    service::revoke(
        app.services(),
        &operator(),
        &serial_of(&renewed),
        RevocationReason::SuspectedMisuse,
    )
    .await
    .expect("revoke");
    let mut holder2 = ts
        .client(Some(&Identity::new(der_of(&renewed), &new_key)))
        .await;
    let (_k, csr3) = demo_csr("Door controller");
    assert_eq!(holder2.enroll(REENROLL, &csr3).await.status, 403);
    assert_eq!(
        service::display_status(app.services(), &renewal_order, estd::model::now_unix()),
        "revoked"
    );
    ts.shutdown().await;
}

#[tokio::test]
async fn five_wrong_codes_lock_the_order_until_a_new_code() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let app = ts.app().clone();
    let profile = add_profile(
        &ts,
        "Meter",
        "meters",
        Identification::OneTimeCode,
        Issuance::Est,
        false,
    );
    let created = order_for(&app, &profile.id).await;
    let code = created.code.expect("code");
    let reference = created.order.id;
    for _ in 0..5 {
        let (_k, r) = collect(&ts, &reference, "WRONGWRONGWRONG1", "Meter").await;
        assert_eq!(r.status, 401);
    }
    let (_k, locked) = collect(&ts, &reference, &code, "Meter").await;
    assert_eq!(locked.status, 403);
    assert!(locked.text().contains("locked"), "{}", locked.text());
    // Survives a restart.
    drop(app);
    ts.shutdown().await;
    let ts = TestServer::start(dir.path()).await;
    let (_k, still) = collect(&ts, &reference, &code, "Meter").await;
    assert_eq!(still.status, 403);
    let (_order, new_code) = service::renew_code(ts.app().services(), &operator(), &reference)
        .await
        .expect("new code");
    let (_k, old_code) = collect(&ts, &reference, &code, "Meter").await;
    assert_eq!(old_code.status, 401, "the old code no longer works");
    let (_k, ok) = collect(&ts, &reference, &new_code, "Meter").await;
    issued_cert(&ok);
    ts.shutdown().await;
}

#[tokio::test]
async fn deleted_order_cannot_be_collected_and_issued_order_cannot_be_deleted() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let app = ts.app().clone();
    let profile = add_profile(
        &ts,
        "Kiosk",
        "kiosk",
        Identification::OneTimeCode,
        Issuance::Est,
        false,
    );
    let req = OrderRequest {
        profile_id: profile.id.clone(),
        user: None,
        publish: None,
        identification: None,
        issuance: None,
    };
    let a = service::create_order(app.services(), &operator(), &req)
        .await
        .expect("order");
    service::delete_order(app.services(), &operator(), &a.order.id)
        .await
        .expect("delete pending");
    let (_k, r) = collect(&ts, &a.order.id, a.code.as_deref().expect("code"), "Kiosk").await;
    assert_eq!(r.status, 401);
    let b = service::create_order(app.services(), &operator(), &req)
        .await
        .expect("order");
    issued_cert(
        &collect(&ts, &b.order.id, b.code.as_deref().expect("code"), "Kiosk")
            .await
            .1,
    );
    let e = service::delete_order(app.services(), &operator(), &b.order.id)
        .await
        .expect_err("issued");
    assert_eq!(estd::http::error::status(&e), 409);
    assert!(e.to_string().contains("issued"), "{e}");
    ts.shutdown().await;
}

#[tokio::test]
async fn approval_required_enrolment_is_held_across_a_restart() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    add_profile(
        &ts,
        "Approved servers",
        "approved",
        Identification::Api,
        Issuance::Est,
        true,
    );
    let path = "/.well-known/est/approved/simpleenroll";
    let (key, csr) = demo_csr("server-1");
    let mut c = ts.client(Some(&ts.demo_identity())).await;
    let held = c.enroll(path, &csr).await;
    assert_eq!(held.status, 202, "{}", held.text());
    assert_eq!(held.header("retry-after"), Some("60"));
    assert_eq!(c.enroll(path, &csr).await.status, 202, "still held");
    let before = ts.app().store.cert_count();
    drop(c);
    ts.shutdown().await;

    let ts = TestServer::start(dir.path()).await;
    let mut c = ts.client(Some(&ts.demo_identity())).await;
    assert_eq!(
        c.enroll(path, &csr).await.status,
        202,
        "held across the restart"
    );
    assert_eq!(
        ts.app().store.cert_count(),
        before,
        "nothing issued while held"
    );
    let hash: [u8; 32] = {
        let mut h = [0u8; 32];
        h.copy_from_slice(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &csr).as_ref());
        h
    };
    let order = ts
        .app()
        .store
        .held_order(&hash)
        .expect("db")
        .expect("held order");
    assert_eq!(order.status, OrderStatus::Pending);
    service::approve(ts.app().services(), &operator(), &order.id)
        .await
        .expect("approve");
    let cert = issued_cert(&c.enroll(path, &csr).await);
    assert_eq!(
        cert.tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes(),
        key.public_key_raw()
    );
    // A retry after issue gets the same certificate again.
    let again = issued_cert(&c.enroll(path, &csr).await);
    assert_eq!(serial_of(&again), serial_of(&cert));

    // Rejection.
    let (_k, csr2) = demo_csr("server-2");
    assert_eq!(c.enroll(path, &csr2).await.status, 202);
    let mut h2 = [0u8; 32];
    h2.copy_from_slice(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &csr2).as_ref());
    let order2 = ts.app().store.held_order(&h2).expect("db").expect("held");
    service::reject(ts.app().services(), &operator(), &order2.id)
        .await
        .expect("reject");
    let r = c.enroll(path, &csr2).await;
    assert_eq!(r.status, 403);
    assert!(r.text().contains("rejected"), "{}", r.text());
    ts.shutdown().await;
}

#[tokio::test]
async fn serverkeygen_returns_a_key_that_matches_its_certificate() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let app = ts.app().clone();
    let profile = add_profile(
        &ts,
        "Laptop",
        "laptops",
        Identification::OneTimeCode,
        Issuance::Browser,
        false,
    );
    let created = order_for(&app, &profile.id).await;
    let code = created.code.expect("code");
    let (_throwaway, csr) = demo_csr("Laptop");
    let mut c = ts.client(None).await;
    let auth = basic(&created.order.id, &code);
    let r = c
        .send(
            "POST",
            "/.well-known/est/serverkeygen",
            &[
                ("content-type", "application/pkcs10"),
                ("authorization", &auth),
            ],
            b64(&csr).into_bytes(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let ct = r.header("content-type").expect("content type").to_owned();
    let boundary = ct.split("boundary=").nth(1).expect("boundary");
    let text = r.text();
    let parts: Vec<&str> = text.split(&format!("--{boundary}")).collect();
    let key_part = parts
        .iter()
        .find(|p| p.contains("application/pkcs8"))
        .expect("key part");
    let cert_part = parts
        .iter()
        .find(|p| p.contains("application/pkcs7-mime"))
        .expect("cert part");
    let body_of = |p: &str| p.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    let pkcs8 =
        estd::est::codec::decode_body(body_of(key_part).as_bytes(), false).expect("key base64");
    let cert = pkcs7_certs(body_of(cert_part).as_bytes()).remove(0);
    let kp = aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        &pkcs8,
    )
    .expect("PKCS#8 P-256 key");
    use aws_lc_rs::signature::KeyPair;
    assert_eq!(
        cert.tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes(),
        kp.public_key().as_ref(),
        "the key matches its certificate"
    );
    // No copy of the key anywhere in the store.
    let audit: String = app
        .store
        .audit_events()
        .filter_map(Result::ok)
        .map(|e| format!("{e:?}"))
        .collect();
    let b64key = base64::engine::general_purpose::STANDARD.encode(&pkcs8);
    assert!(!audit.contains(&b64key[..40]));
    let _ = x509_cert::Certificate::from_der(&der_of(&cert)).expect("cert");
    ts.shutdown().await;
}
