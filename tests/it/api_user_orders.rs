//! User certificates under API profiles, and renewal of API certificates
//! (issue 15, items 1 and 4), over real EST and the real admin API.
//!
//! - An administrator orders a user certificate under an API profile; the
//!   IdM system collects it by enrolling, at the profile's label, a CSR
//!   naming the user (CN the user's name, the e-mail address as a
//!   subjectAltName rfc822Name): `the_idm_system_collects_a_user_order`.
//! - A CSR naming a user is never issued without exactly one pending order of
//!   that user: `a_csr_naming_a_user_needs_that_users_order`,
//!   `two_orders_for_one_user_are_refused_naming_both`; nor can the order be
//!   collected with a one-time code (in the first test).
//! - An approval-required profile issues an ordered user certificate at once:
//!   `an_ordered_user_certificate_is_not_held_again`.
//! - Renewal orders of API certificates are fulfilled, not left open:
//!   `renewal_of_an_api_user_certificate`, `renewal_of_an_api_system_certificate`.

use estd::model::{CertKind, Identification, OrderHolder, OrderStatus, Serial, SystemRight};
use estd_testkit::api::{assert_problem, Api, Reply};
use estd_testkit::*;
use serde_json::json;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::Certificate;

const ENROLL: &str = "/.well-known/est/demo/simpleenroll";
const REENROLL: &str = "/.well-known/est/demo/simplereenroll";
const JENS: &str = "Jens Jensen";
const JENS_MAIL: &str = "jens@demo.example";

fn p256() -> rcgen::KeyPair {
    rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key")
}

/// A CSR of the demo organisation for `cn`, asking for `emails` as rfc822Names.
fn user_csr(key: &rcgen::KeyPair, cn: &str, emails: &[&str]) -> Vec<u8> {
    let mut p = csr_params(DEMO_ORG, DEMO_CVR, cn);
    p.subject_alt_names = emails
        .iter()
        .map(|e| rcgen::SanType::Rfc822Name(rcgen::string::Ia5String::try_from(*e).expect("ia5")))
        .collect();
    p.serialize_request(key).expect("csr").der().to_vec()
}

/// Orders a user certificate under the profile with `label` through the
/// admin API.
async fn order_user(ts: &TestServer, op: &mut Api, label: &str, name: &str, email: &str) -> Reply {
    op.post(
        "/orders",
        json!({"profile_id": profile(ts, label).id, "user": {"name": name, "email": email}}),
    )
    .await
}

/// The reference of a created order, asserting it was created.
fn reference(r: &Reply) -> String {
    assert_eq!(r.status, 201, "{}", r.text);
    r.body["reference"].as_str().expect("reference").to_owned()
}

/// The IdM system's enrolment of `csr` at `path`.
async fn idm_enrol(ts: &TestServer, path: &str, csr: &[u8]) -> Resp {
    ts.client(Some(&ts.demo_identity()))
        .await
        .enroll(path, csr)
        .await
}

fn order_status(ts: &TestServer, id: &str) -> OrderStatus {
    ts.app().store.order(id).expect("db").expect("order").status
}

fn emails_in(cert: &Certificate) -> Vec<String> {
    estd::policy::cert_sans(cert)
        .into_iter()
        .filter_map(|g| match g {
            GeneralName::Rfc822Name(m) => Some(m.to_string()),
            _ => None,
        })
        .collect()
}

/// Orders Jens's certificate and has the IdM system collect it: the key,
/// the certificate and the order's reference.
async fn issue_jens(ts: &TestServer, op: &mut Api) -> (rcgen::KeyPair, Certificate, String) {
    let id = reference(&order_user(ts, op, "demo", JENS, JENS_MAIL).await);
    let key = p256();
    let cert = issued_cert(&idm_enrol(ts, ENROLL, &user_csr(&key, JENS, &[JENS_MAIL])).await);
    (key, cert, id)
}

#[tokio::test]
async fn the_idm_system_collects_a_user_order() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let mut op = Api::operator(&ts).await;

    let r = order_user(&ts, &mut op, "demo", JENS, JENS_MAIL).await;
    let id = reference(&r);
    assert_eq!(r.body["status"], "pending");
    assert_eq!(r.body["identification"], "api");
    assert!(r.body.get("code").is_none(), "no one-time code: {}", r.body);
    let stored = ts.app().store.order(&id).expect("db").expect("order");
    assert!(stored.code.is_none());
    assert_eq!(stored.identification, Identification::Api);

    // Nobody collects it with a one-time code, whatever they guess.
    let key = p256();
    let csr = user_csr(&key, JENS, &[JENS_MAIL]);
    let r = collect(&ts, "demo", &id, "AAAABBBBCCCCDDDD", &csr).await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(order_status(&ts, &id), OrderStatus::Pending);

    // The IdM system's CSR names the user; the e-mail matches whatever its case.
    let before = ts.cert_count();
    let jens_csr = user_csr(&key, JENS, &["JENS@Demo.Example"]);
    let cert = issued_cert(&idm_enrol(&ts, ENROLL, &jens_csr).await);
    assert_eq!(ts.cert_count(), before + 1);
    let serial = serial_of(&cert);
    assert_eq!(
        emails_in(&cert),
        vec![JENS_MAIL.to_string()],
        "the ordered address"
    );
    let rec = ts.app().store.cert(&serial).expect("db").expect("record");
    assert_eq!(rec.kind, CertKind::User);
    assert_eq!(rec.email.as_deref(), Some(JENS_MAIL));
    assert_eq!(rec.order_id.as_deref(), Some(id.as_str()));
    assert!(
        rec.rights.is_empty(),
        "a user certificate carries no rights"
    );
    assert_eq!(order_status(&ts, &id), OrderStatus::Issued { serial });
    let shown = op.get(&format!("/orders/{id}")).await;
    assert_eq!(shown.body["status"], "issued", "{}", shown.text);
    assert_eq!(shown.body["serial"], serial.to_string());

    // A retry with the same CSR (an answer lost on the way) gets the same
    // certificate, and nothing new is issued.
    let retry = issued_cert(&idm_enrol(&ts, ENROLL, &jens_csr).await);
    assert_eq!(serial_of(&retry), serial);
    assert_eq!(ts.cert_count(), before + 1);

    // Otherwise the order is spent: the same user with another key has no order.
    let again = idm_enrol(&ts, ENROLL, &user_csr(&p256(), JENS, &[JENS_MAIL])).await;
    assert_refused(&again, 403, "no pending order");

    // A CSR without an e-mail address is the profile's own certificate, as before.
    let plain = issued_cert(&idm_enrol(&ts, ENROLL, &user_csr(&p256(), "device-1", &[])).await);
    let plain_rec = ts
        .app()
        .store
        .cert(&serial_of(&plain))
        .expect("db")
        .expect("record");
    assert_eq!(plain_rec.kind, profile(&ts, "demo").kind);
    assert!(plain_rec.email.is_none());
    ts.shutdown().await;
}

#[tokio::test]
async fn a_csr_naming_a_user_needs_that_users_order() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let mut op = Api::operator(&ts).await;
    let before = ts.cert_count();

    // No order at all.
    let r = idm_enrol(&ts, ENROLL, &user_csr(&p256(), JENS, &[JENS_MAIL])).await;
    assert_refused(&r, 403, "no pending order");

    // An order for Jens: the right name with another e-mail, and another
    // name with Jens's e-mail, are both refused.
    let id = reference(&order_user(&ts, &mut op, "demo", JENS, JENS_MAIL).await);
    let r = idm_enrol(
        &ts,
        ENROLL,
        &user_csr(&p256(), JENS, &["jens@other.example"]),
    )
    .await;
    assert_refused(&r, 403, "no pending order");
    let r = idm_enrol(&ts, ENROLL, &user_csr(&p256(), "Jens Hansen", &[JENS_MAIL])).await;
    assert_refused(&r, 403, "no pending order");
    // Two e-mail addresses are not one user.
    let r = idm_enrol(
        &ts,
        ENROLL,
        &user_csr(&p256(), JENS, &[JENS_MAIL, "jens@other.example"]),
    )
    .await;
    assert_refused(&r, 403, "one e-mail address");

    // Another organisation's order for the same user is not the demo IdM's
    // to collect, at its own label or at the other organisation's.
    let bravo_idm = ts.add_org(
        "87654321",
        "Bravo ApS",
        "bravo",
        vec![SystemRight::EstEnroll],
    );
    assert_eq!(ts.cert_count(), before + 1, "only Bravo's IdM certificate");
    let before = ts.cert_count();
    let bravo_order = reference(&order_user(&ts, &mut op, "bravo", JENS, JENS_MAIL).await);
    let mut bravo_csr_params = csr_params("Bravo ApS", "87654321", JENS);
    bravo_csr_params.subject_alt_names = vec![rcgen::SanType::Rfc822Name(
        rcgen::string::Ia5String::try_from(JENS_MAIL).expect("ia5"),
    )];
    let bravo_csr = bravo_csr_params
        .serialize_request(&p256())
        .expect("csr")
        .der()
        .to_vec();
    let r = idm_enrol(&ts, "/.well-known/est/bravo/simpleenroll", &bravo_csr).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(ts.cert_count(), before, "nothing was issued");
    assert_eq!(order_status(&ts, &id), OrderStatus::Pending);
    assert_eq!(order_status(&ts, &bravo_order), OrderStatus::Pending);

    // Bravo's IdM system collects Bravo's order, and leaves the demo order.
    let cert = issued_cert(
        &ts.client(Some(&bravo_idm))
            .await
            .enroll("/.well-known/est/bravo/simpleenroll", &bravo_csr)
            .await,
    );
    assert_eq!(
        order_status(&ts, &bravo_order),
        OrderStatus::Issued {
            serial: serial_of(&cert)
        }
    );
    assert_eq!(order_status(&ts, &id), OrderStatus::Pending);

    // Only a user certificate is ordered under an API profile.
    let r = op
        .post("/orders", json!({"profile_id": profile(&ts, "demo").id}))
        .await;
    assert_problem(&r, 409, "only a user certificate is ordered");
    ts.shutdown().await;
}

#[tokio::test]
async fn two_orders_for_one_user_are_refused_naming_both() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let mut op = Api::operator(&ts).await;
    let first = reference(&order_user(&ts, &mut op, "demo", JENS, JENS_MAIL).await);
    let second = reference(&order_user(&ts, &mut op, "demo", JENS, "JENS@demo.example").await);
    let key = p256();
    let csr = user_csr(&key, JENS, &[JENS_MAIL]);
    let r = idm_enrol(&ts, ENROLL, &csr).await;
    assert_refused(&r, 409, &first);
    assert_refused(&r, 409, &second);
    assert_eq!(order_status(&ts, &first), OrderStatus::Pending);
    assert_eq!(order_status(&ts, &second), OrderStatus::Pending);

    // Once one is deleted, the other is collected.
    assert_eq!(op.delete(&format!("/orders/{first}")).await.status, 200);
    let cert = issued_cert(&idm_enrol(&ts, ENROLL, &csr).await);
    assert_eq!(
        order_status(&ts, &second),
        OrderStatus::Issued {
            serial: serial_of(&cert)
        }
    );
    assert_eq!(order_status(&ts, &first), OrderStatus::Deleted);
    ts.shutdown().await;
}

#[tokio::test]
async fn an_ordered_user_certificate_is_not_held_again() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let mut op = Api::operator(&ts).await;
    op.change_profile(&profile(&ts, "demo").id, json!({"approval_required": true}))
        .await;
    // The profile's own certificates are held for approval ...
    let held = idm_enrol(&ts, ENROLL, &user_csr(&p256(), "device-1", &[])).await;
    assert_eq!(held.status, 202, "{}", held.text());
    // ... while an administrator's order of a user certificate was that decision.
    let (_key, cert, id) = issue_jens(&ts, &mut op).await;
    assert_eq!(
        order_status(&ts, &id),
        OrderStatus::Issued {
            serial: serial_of(&cert)
        }
    );
    ts.shutdown().await;
}

/// Renews `serial` through the admin API: the renewal order's reply.
async fn renew(op: &mut Api, serial: &Serial) -> Reply {
    op.post(&format!("/certificates/{serial}/renew"), json!({}))
        .await
}

#[tokio::test]
async fn renewal_of_an_api_user_certificate() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let mut op = Api::operator(&ts).await;
    let (key, cert, _) = issue_jens(&ts, &mut op).await;
    let old = serial_of(&cert);

    // A user's renewal is shown in progress, with no code.
    let r = renew(&mut op, &old).await;
    let renewal = reference(&r);
    assert_eq!(r.body["status"], "in-progress", "{}", r.text);
    assert_eq!(r.body["identification"], "api");
    assert_eq!(r.body["renews"], old.to_string());
    assert!(r.body.get("code").is_none());
    assert_eq!(r.body["user"]["email"], JENS_MAIL);
    assert_problem(&renew(&mut op, &old).await, 409, &renewal);

    // Fulfilled by re-enrolment with the user certificate: linked both ways.
    let holder = Identity::new(der_of(&cert), &key);
    let new_key = p256();
    let renewed = issued_cert(
        &ts.client(Some(&holder))
            .await
            .enroll(REENROLL, &user_csr(&new_key, JENS, &[JENS_MAIL]))
            .await,
    );
    let new = serial_of(&renewed);
    assert_eq!(
        order_status(&ts, &renewal),
        OrderStatus::Issued { serial: new }
    );
    let rec = ts.app().store.cert(&new).expect("db").expect("record");
    assert_eq!(rec.renews, Some(old));
    assert_eq!(rec.order_id.as_deref(), Some(renewal.as_str()));
    assert_eq!(rec.kind, CertKind::User);
    assert_eq!(emails_in(&renewed), vec![JENS_MAIL.to_string()]);
    let old_rec = ts.app().store.cert(&old).expect("db").expect("record");
    assert_eq!(old_rec.renewed_by, Some(new));
    assert_eq!(
        op.get(&format!("/orders/{renewal}")).await.body["status"],
        "issued"
    );

    // The next renewal is fulfilled by the IdM system's enrolment of a CSR
    // naming the user, linked as a renewal.
    let r = renew(&mut op, &new).await;
    let second = reference(&r);
    assert_eq!(r.body["status"], "in-progress");
    let third = issued_cert(&idm_enrol(&ts, ENROLL, &user_csr(&p256(), JENS, &[JENS_MAIL])).await);
    let third_serial = serial_of(&third);
    assert_eq!(
        order_status(&ts, &second),
        OrderStatus::Issued {
            serial: third_serial
        }
    );
    let third_rec = ts
        .app()
        .store
        .cert(&third_serial)
        .expect("db")
        .expect("record");
    assert_eq!(third_rec.renews, Some(new));
    assert_eq!(third_rec.kind, CertKind::User);
    assert_eq!(
        ts.app()
            .store
            .cert(&new)
            .expect("db")
            .expect("record")
            .renewed_by,
        Some(third_serial)
    );
    ts.shutdown().await;
}

#[tokio::test]
async fn renewal_of_an_api_system_certificate() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let mut op = Api::operator(&ts).await;
    let key = p256();
    let cert = issued_cert(&idm_enrol(&ts, ENROLL, &user_csr(&key, "device-1", &[])).await);
    let old = serial_of(&cert);

    // An organisation's renewal is shown pending, with no code.
    let r = renew(&mut op, &old).await;
    let renewal = reference(&r);
    assert_eq!(r.body["status"], "pending", "{}", r.text);
    assert_eq!(r.body["identification"], "api");
    assert!(r.body.get("code").is_none());
    assert!(r.body.get("user").is_none());
    let stored = ts.app().store.order(&renewal).expect("db").expect("order");
    assert_eq!(stored.holder, OrderHolder::Profile);
    assert_eq!(stored.renews, Some(old));

    // The holder's next re-enrolment fulfils it.
    let holder = Identity::new(der_of(&cert), &key);
    let new_key = p256();
    let renewed = issued_cert(
        &ts.client(Some(&holder))
            .await
            .enroll(REENROLL, &user_csr(&new_key, "device-1", &[]))
            .await,
    );
    let new = serial_of(&renewed);
    assert_eq!(
        order_status(&ts, &renewal),
        OrderStatus::Issued { serial: new }
    );
    let rec = ts.app().store.cert(&new).expect("db").expect("record");
    assert_eq!(rec.renews, Some(old));
    assert_eq!(rec.order_id.as_deref(), Some(renewal.as_str()));
    assert_eq!(
        op.get(&format!("/orders/{renewal}")).await.body["status"],
        "issued"
    );

    // A renewal order nobody fulfils can be deleted, and then ordered again.
    let r = renew(&mut op, &new).await;
    let open = reference(&r);
    assert_eq!(r.body["status"], "pending");
    assert_eq!(op.delete(&format!("/orders/{open}")).await.status, 200);
    assert_eq!(order_status(&ts, &open), OrderStatus::Deleted);
    let again = reference(&renew(&mut op, &new).await);
    // The re-enrolment after the deletion fulfils the new order.
    let third = issued_cert(
        &ts.client(Some(&Identity::new(der_of(&renewed), &new_key)))
            .await
            .enroll(REENROLL, &user_csr(&p256(), "device-1", &[]))
            .await,
    );
    assert_eq!(
        order_status(&ts, &again),
        OrderStatus::Issued {
            serial: serial_of(&third)
        }
    );
    assert_eq!(order_status(&ts, &open), OrderStatus::Deleted);
    ts.shutdown().await;
}
