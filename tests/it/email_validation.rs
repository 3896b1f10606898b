//! E-mail validation before issuance (issue 15, item 5): a real estd on
//! loopback (real TLS, real CSRs, the real store), the link taken from the
//! outbox as the SMTP relay would send it, and confirmed on the public
//! listener over plain HTTP.

use estd::model::{
    now_unix, AuditEvent, EmailValidationState, Identification, Notification, NotificationKind,
    Profile, REDACTED_TOKEN,
};
use estd_testkit::api::Api;
use estd_testkit::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ENROLL: &str = "/.well-known/est/demo/simpleenroll";
const REENROLL: &str = "/.well-known/est/simplereenroll";
const ADDRESS: &str = "ops@demo.example";

/// One plain-HTTP exchange with the public listener: (status, body).
async fn public(ts: &TestServer, method: &str, path: &str, form: Option<&str>) -> (u16, String) {
    public_http(ts.server.public_addr, method, path, form).await
}

/// One plain-HTTP exchange with the public listener at `addr` (also the
/// secret-hygiene test's, `secrets.rs`): (status, body).
pub(crate) async fn public_http(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    form: Option<&str>,
) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let body = form.unwrap_or("");
    let extra = if form.is_some() {
        format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            body.len()
        )
    } else {
        String::new()
    };
    s.write_all(
        format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{extra}\r\n{body}"
        )
        .as_bytes(),
    )
    .await
    .expect("write");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.expect("read");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn validation_notices(ts: &TestServer) -> Vec<Notification> {
    ts.app()
        .store
        .notifications()
        .collect::<Result<Vec<_>, _>>()
        .expect("outbox")
        .into_iter()
        .filter(|n| n.kind == NotificationKind::EmailValidation)
        .collect()
}

/// The token of the newest validation link in the outbox.
fn newest_token(ts: &TestServer) -> String {
    let notices = validation_notices(ts);
    let body = &notices.last().expect("a validation notice").body;
    let start = body.find("/validate-email?token=").expect("link") + "/validate-email?token=".len();
    body[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

async fn enrol_csr(ts: &TestServer, csr: &[u8]) -> Resp {
    let mut idm = ts.client(Some(&ts.demo_identity())).await;
    idm.enroll(ENROLL, csr).await
}

async fn validations(op: &mut Api) -> serde_json::Value {
    let r = op
        .get(&format!("/organisations/{DEMO_CVR}/email-validations"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["items"].clone()
}

/// The demo profile with the e-mail address in its certificates.
async fn demo_with_address(ts: &TestServer, op: &mut Api) -> Profile {
    let demo = profile(ts, "demo");
    op.change_profile(&demo.id, json!({"email": ADDRESS})).await;
    profile(ts, "demo")
}

fn audit_events(ts: &TestServer) -> Vec<AuditEvent> {
    ts.app()
        .store
        .audit_events()
        .collect::<Result<_, _>>()
        .expect("audit")
}

/// An API enrolment under a profile with an address is held (202) until the
/// address is confirmed, then the next try issues a certificate carrying
/// it; the state is visible through the admin API; the page behind the link
/// confirms only on POST; a wrong or reused token is refused; the token is
/// in no audit record and no admin view; a further enrolment within the
/// window needs no new validation.
#[tokio::test]
async fn enrolment_waits_for_the_address_then_issues() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let mut op = Api::operator(&ts).await;
    demo_with_address(&ts, &mut op).await;
    let (_key, csr) = demo_csr("mail-device");

    let held = enrol_csr(&ts, &csr).await;
    assert_eq!(held.status, 202, "{}", held.text());
    assert_eq!(held.header("retry-after"), Some("60"));
    assert!(held.text().contains("e-mail address"), "{}", held.text());
    let notices = validation_notices(&ts);
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert_eq!(notices[0].to, ADDRESS);
    assert_eq!(
        notices[0].subject,
        "Bekræft e-mailadresse til certifikat / Confirm the e-mail address for a certificate"
    );
    let token = newest_token(&ts);
    assert_eq!(token.len(), 43);
    // The link names the listener that serves it (the base URL follows it).
    assert!(notices[0].body.contains(&format!(
        "http://{}/validate-email?token={token}",
        ts.server.public_addr
    )));

    // Visible: the held order and the address's state.
    let reference = notices[0].order_id.clone().expect("the held order");
    let order = op.get(&format!("/orders/{reference}")).await;
    assert_eq!(
        order.body["status"], "awaiting-email-validation",
        "{}",
        order.text
    );
    let items = validations(&mut op).await;
    assert_eq!(items.as_array().map(Vec::len), Some(1), "{items}");
    assert_eq!(items[0]["address"], ADDRESS);
    assert_eq!(items[0]["status"], "pending");
    assert!(!items.to_string().contains(&token));
    // The outbox as the admin API shows it has no token either.
    let outbox = op.get("/notifications").await;
    assert_eq!(outbox.status, 200, "{}", outbox.text);
    assert!(!outbox.text.contains(&token));
    assert!(outbox.text.contains(REDACTED_TOKEN), "{}", outbox.text);

    // A retry still waits, and sends no second link while the first works.
    let again = enrol_csr(&ts, &csr).await;
    assert_eq!(again.status, 202, "{}", again.text());
    assert_eq!(validation_notices(&ts).len(), 1);

    // The page behind the link only shows a button: fetching it confirms nothing.
    let (status, page) = public(&ts, "GET", &format!("/validate-email?token={token}"), None).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains(ADDRESS) && page.contains("method=\"post\""),
        "{page}"
    );
    assert_eq!(enrol_csr(&ts, &csr).await.status, 202);

    // A wrong token is refused; the right one confirms once.
    // Another last character: a fixed one would be the token's own one time in 64.
    let last = if token.ends_with('A') { 'B' } else { 'A' };
    let wrong = format!("{}{last}", &token[..42]);
    assert_ne!(wrong, token);
    let (status, _) = public(
        &ts,
        "POST",
        "/validate-email",
        Some(&format!("token={wrong}")),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = public(&ts, "GET", "/validate-email?token=", None).await;
    assert_eq!(status, 404);
    let (status, page) = public(
        &ts,
        "POST",
        "/validate-email",
        Some(&format!("token={token}")),
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Bekræftet / Confirmed"), "{page}");
    let (status, _) = public(
        &ts,
        "POST",
        "/validate-email",
        Some(&format!("token={token}")),
    )
    .await;
    assert_eq!(status, 404, "a link works once");

    // The next try issues, with the address in the certificate.
    let issued = enrol_csr(&ts, &csr).await;
    assert_eq!(issued.status, 200, "{}", issued.text());
    let cert = issued_cert(&issued);
    assert_eq!(
        estd::policy::email_of(&estd::policy::cert_sans(&cert)).as_deref(),
        Some(ADDRESS)
    );
    let order = op.get(&format!("/orders/{reference}")).await;
    assert_eq!(order.body["status"], "issued", "{}", order.text);
    let items = validations(&mut op).await;
    assert_eq!(items[0]["status"], "confirmed", "{items}");
    assert!(items[0]["confirmed_at"].is_string());

    // Within the window, another certificate with the address needs nothing.
    let (_other, csr2) = demo_csr("mail-device-2");
    let direct = enrol_csr(&ts, &csr2).await;
    assert_eq!(direct.status, 200, "{}", direct.text());
    assert_eq!(validation_notices(&ts).len(), 1, "no new link");

    // The token is in no audit record; the audit names what happened.
    let events = audit_events(&ts);
    for e in &events {
        assert!(
            !e.detail.contains(&token) && !e.actor.contains(&token),
            "{e:?}"
        );
    }
    assert!(events
        .iter()
        .any(|e| e.detail == format!("validation link sent to {ADDRESS}")));
    assert!(events
        .iter()
        .any(|e| e.detail == format!("{ADDRESS} confirmed")));
    ts.shutdown().await;
}

/// An expired link is refused and the next try sends a new one; a
/// confirmation older than the window is validated again; a re-enrolment
/// within the window is not held.
#[tokio::test]
async fn expired_links_and_lapsed_confirmations_validate_again() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start_with(
        dir.path(),
        "[email_validation]\nlink_ttl_hours = 1\nvalid_for_days = 2\n",
    )
    .await;
    let app = ts.app();
    let mut op = Api::operator(&ts).await;
    demo_with_address(&ts, &mut op).await;
    let (key, csr) = demo_csr("expiring-link");
    assert_eq!(enrol_csr(&ts, &csr).await.status, 202);
    let first = newest_token(&ts);

    // The link's hour passes.
    let mut rec = app
        .store
        .email_validation(DEMO_CVR, ADDRESS)
        .expect("store")
        .expect("record");
    let EmailValidationState::Pending {
        token_hash,
        sent_at,
        ..
    } = rec.state
    else {
        panic!("pending: {rec:?}");
    };
    rec.state = EmailValidationState::Pending {
        token_hash,
        sent_at: sent_at - 7200,
        expires_at: now_unix() - 1,
    };
    app.store.put_email_validation(&rec).expect("store");
    assert_eq!(validations(&mut op).await[0]["status"], "expired");
    let (status, page) = public(&ts, "GET", &format!("/validate-email?token={first}"), None).await;
    assert_eq!(status, 409, "{page}");
    let (status, _) = public(
        &ts,
        "POST",
        "/validate-email",
        Some(&format!("token={first}")),
    )
    .await;
    assert_eq!(status, 409, "an expired link does not confirm");

    // The next try sends a new link; the old one no longer works at all.
    assert_eq!(enrol_csr(&ts, &csr).await.status, 202);
    assert_eq!(validation_notices(&ts).len(), 2);
    let second = newest_token(&ts);
    assert_ne!(first, second);
    let (status, _) = public(
        &ts,
        "POST",
        "/validate-email",
        Some(&format!("token={first}")),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = public(
        &ts,
        "POST",
        "/validate-email",
        Some(&format!("token={second}")),
    )
    .await;
    assert_eq!(status, 200);
    let issued = enrol_csr(&ts, &csr).await;
    assert_eq!(issued.status, 200, "{}", issued.text());
    let holder = Identity::new(der_of(&issued_cert(&issued)), &key);

    // Within the window a re-enrolment renews at once.
    let renewal_csr = csr_with_key(
        &rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key"),
        DEMO_ORG,
        DEMO_CVR,
        "expiring-link",
    );
    let renewed = ts
        .client(Some(&holder))
        .await
        .enroll(REENROLL, &renewal_csr)
        .await;
    assert_eq!(renewed.status, 200, "{}", renewed.text());
    assert_eq!(validation_notices(&ts).len(), 2);

    // Confirmed longer ago than the window: validated again.
    let mut rec = app
        .store
        .email_validation(DEMO_CVR, ADDRESS)
        .expect("store")
        .expect("record");
    let long_ago = now_unix() - 3 * 86_400;
    rec.state = EmailValidationState::Confirmed { at: long_ago };
    rec.confirmed_at = Some(long_ago);
    app.store.put_email_validation(&rec).expect("store");
    assert_eq!(validations(&mut op).await[0]["status"], "lapsed");
    let (_k, late) = demo_csr("after-the-window");
    assert_eq!(enrol_csr(&ts, &late).await.status, 202);
    assert_eq!(validation_notices(&ts).len(), 3, "a new link");
    assert_eq!(validations(&mut op).await[0]["status"], "pending");
    ts.shutdown().await;
}

/// A one-time-code order of a profile with an address sends the link with
/// the order; collecting waits (202, the code unspent) until it is
/// confirmed, then issues.
#[tokio::test]
async fn collection_with_a_code_waits_for_the_address() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let app = ts.app();
    let p = Profile {
        identification: Identification::OneTimeCode,
        email: Some("Signing@Demo.Example".into()),
        ..Profile::system(DEMO_CVR, "Signing", "signing")
    };
    app.store.put_profile(&p).expect("profile");
    let (reference, code) = order_code(app, &p.id).await;
    let notices = validation_notices(&ts);
    assert_eq!(notices.len(), 1, "the link goes out with the order");
    assert_eq!(notices[0].to, "signing@demo.example");
    assert_eq!(notices[0].order_id.as_deref(), Some(reference.as_str()));
    let mut op = Api::operator(&ts).await;
    let order = op.get(&format!("/orders/{reference}")).await;
    assert_eq!(
        order.body["status"], "awaiting-email-validation",
        "{}",
        order.text
    );
    // The answers that create or change an order show it the same way.
    let second = op
        .post("/orders", serde_json::json!({ "profile_id": p.id }))
        .await;
    assert_eq!(second.status, 201, "{}", second.text);
    assert_eq!(
        second.body["status"], "awaiting-email-validation",
        "{}",
        second.text
    );
    let second_ref = second.body["reference"].as_str().expect("reference");
    let deleted = op.delete(&format!("/orders/{second_ref}")).await;
    assert_eq!(deleted.body["status"], "deleted", "{}", deleted.text);
    assert_eq!(
        validation_notices(&ts).len(),
        1,
        "a live link is not sent again for a second order"
    );

    let collect = |csr: Vec<u8>| {
        let auth = basic(&reference, &code);
        let ts = &ts;
        async move {
            let mut c = ts.client(None).await;
            c.send(
                "POST",
                "/.well-known/est/signing/simpleenroll",
                &[
                    ("content-type", "application/pkcs10"),
                    ("authorization", &auth),
                ],
                b64(&csr).into_bytes(),
            )
            .await
        }
    };
    let (_key, csr) = demo_csr("Signing");
    let waiting = collect(csr.clone()).await;
    assert_eq!(waiting.status, 202, "{}", waiting.text());
    assert_eq!(
        validation_notices(&ts).len(),
        1,
        "the link sent still works"
    );

    let token = newest_token(&ts);
    let (status, _) = public(
        &ts,
        "POST",
        "/validate-email",
        Some(&format!("token={token}")),
    )
    .await;
    assert_eq!(status, 200);
    let issued = collect(csr).await;
    assert_eq!(issued.status, 200, "{}", issued.text());
    // The certificate carries the address as the profile writes it; its
    // validation is of the address in lower case.
    assert_eq!(
        estd::policy::email_of(&estd::policy::cert_sans(&issued_cert(&issued))).as_deref(),
        Some("Signing@Demo.Example")
    );
    ts.shutdown().await;
}

/// With `enabled = false`, certificates with an address are issued at once
/// and nothing is sent.
#[tokio::test]
async fn disabled_validation_issues_at_once() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start_with(dir.path(), "[email_validation]\nenabled = false\n").await;
    let mut op = Api::operator(&ts).await;
    demo_with_address(&ts, &mut op).await;
    let (_key, csr) = demo_csr("unchecked");
    let r = enrol_csr(&ts, &csr).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(validation_notices(&ts).is_empty());
    ts.shutdown().await;
}
