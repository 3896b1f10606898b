//! Proof-of-possession linking (RFC 7030 3.5) over real TLS: clients read the
//! RFC 9266 tls-exporter value of their own connection and put it, base64, in
//! the CSR's challengePassword. Profiles are configured through the admin API.

use base64::Engine;
use der::asn1::{PrintableStringRef, SetOfVec, Utf8StringRef};
use der::{Any, Decode, Encode};
use estd::model::{AuditAction, AuditOutcome, OrderStatus};
use estd::service;
use estd_testkit::*;
use serde_json::{json, Value};
use tokio::net::TcpStream;

const LINKED: &str = "/.well-known/est/linked/simpleenroll";
const REENROLL: &str = "/.well-known/est/simplereenroll";
const CHALLENGE_PASSWORD: &str = "1.2.840.113549.1.9.7";

/// The RFC 9266 tls-exporter value of the client's side of a connection.
fn exporter(tls: &tokio_rustls::client::TlsStream<TcpStream>) -> [u8; 32] {
    tls.get_ref()
        .1
        .export_keying_material([0u8; 32], b"EXPORTER-Channel-Binding", Some(b""))
        .expect("exporter")
}

/// A TLS connection with its binding, then HTTP over it.
async fn linked_client(
    ts: &TestServer,
    identity: Option<&Identity>,
    tls12_only: bool,
) -> (Client, [u8; 32]) {
    let tls = tls_connect(ts.server.est_addr, &ts.root_der(), identity, tls12_only).await;
    let binding = exporter(&tls);
    (Client::over(tls).await, binding)
}

/// A challengePassword attribute with one value.
fn challenge(value: Any) -> rcgen::Attribute {
    let set = SetOfVec::try_from(vec![value]).expect("set");
    rcgen::Attribute {
        oid: &[1, 2, 840, 113549, 1, 9, 7],
        values: set.to_der().expect("der"),
    }
}

/// A challengePassword holding `text` as a PrintableString (base64 is printable).
fn printable(text: &str) -> rcgen::Attribute {
    challenge(Any::encode_from(&PrintableStringRef::new(text).expect("printable")).expect("any"))
}

fn b64_binding(b: &[u8; 32]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// A demo-organisation CSR for `key`, with `attrs` added.
fn csr(key: &rcgen::KeyPair, cn: &str, attrs: Vec<rcgen::Attribute>) -> Vec<u8> {
    csr_params(DEMO_ORG, DEMO_CVR, cn)
        .serialize_request_with_attributes(key, attrs)
        .expect("csr")
        .der()
        .to_vec()
}

fn new_key() -> rcgen::KeyPair {
    rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key")
}

/// Creates a demo-organisation profile through the admin API; returns its id.
async fn create_profile(ts: &TestServer, label: &str, extra: Value) -> String {
    let mut body = json!({
        "cvr": DEMO_CVR,
        "name": format!("Profile {label}"),
        "kind": "system",
        "contact": {"name": "Karen Hansen", "email": "karen@demo.example"},
        "identification": "api",
        "issuance": "est",
        "est_label": label,
    });
    for (k, v) in extra.as_object().expect("object") {
        body[k] = v.clone();
    }
    let (status, answer) = ts.admin("POST", "/profiles", Some(body)).await;
    assert_eq!(status, 201, "create profile: {answer}");
    answer["profile"]["id"].as_str().expect("id").to_owned()
}

/// The OIDs (bare or attribute types) a csrattrs answer lists.
async fn csrattrs_oids(c: &mut Client, label: &str) -> Vec<String> {
    let r = c.get(&format!("/.well-known/est/{label}/csrattrs")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let der = estd::est::codec::decode_body(&r.body, false).expect("base64");
    Vec::<Any>::from_der(&der)
        .expect("CsrAttrs")
        .iter()
        .map(|a| match a.decode_as::<const_oid::ObjectIdentifier>() {
            Ok(oid) => oid.to_string(),
            Err(_) => {
                // An Attribute: SEQUENCE { type, values }.
                let seq: Vec<Any> = a.decode_as().expect("attribute");
                seq[0]
                    .decode_as::<const_oid::ObjectIdentifier>()
                    .expect("type")
                    .to_string()
            }
        })
        .collect()
}

#[track_caller]
fn assert_400(r: &Resp, needle: &str) {
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.text().contains(needle),
        "reason {:?} should mention {needle:?}",
        r.text()
    );
}

fn refusals(ts: &TestServer, action: AuditAction) -> Vec<String> {
    ts.app()
        .store
        .audit_events()
        .map(|e| e.expect("audit event"))
        .filter(|e| e.action == action && e.outcome == AuditOutcome::Refused)
        .map(|e| e.detail)
        .collect()
}

#[tokio::test]
async fn linked_csrs_are_issued_and_unlinked_ones_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    create_profile(&ts, "linked", json!({"require_pop_linking": true})).await;
    let idm = ts.demo_identity();
    let (mut a, bind_a) = linked_client(&ts, Some(&idm), false).await;

    // csrattrs tells the client to link; a profile without the option does not.
    assert!(csrattrs_oids(&mut a, "linked")
        .await
        .contains(&CHALLENGE_PASSWORD.to_owned()));
    assert!(!csrattrs_oids(&mut a, "demo")
        .await
        .contains(&CHALLENGE_PASSWORD.to_owned()));

    // The binding of this very connection: issued, for the CSR's key.
    let key = new_key();
    let ok = csr(&key, "linked-1", vec![printable(&b64_binding(&bind_a))]);
    let cert = issued_cert(&a.enroll(LINKED, &ok).await);
    assert_eq!(
        cert.tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes(),
        key.public_key_raw()
    );
    // Padding is optional.
    let unpadded = b64_binding(&bind_a).trim_end_matches('=').to_owned();
    issued_cert(
        &a.enroll(
            LINKED,
            &csr(&new_key(), "linked-2", vec![printable(&unpadded)]),
        )
        .await,
    );

    let before = ts.app().store.cert_count();
    // No challengePassword.
    let r = a.enroll(LINKED, &csr(&new_key(), "x", vec![])).await;
    assert_400(&r, "challengePassword");
    assert!(r.text().contains("has none"), "{}", r.text());

    // The binding of another connection of the same client.
    let (mut b, bind_b) = linked_client(&ts, Some(&idm), false).await;
    assert_ne!(bind_a, bind_b, "each connection has its own binding");
    let from_b = csr(
        &new_key(),
        "relayed",
        vec![printable(&b64_binding(&bind_b))],
    );
    assert_400(
        &a.enroll(LINKED, &from_b).await,
        "not the channel binding of this TLS connection",
    );
    // Not base64, and base64 of something else.
    for bad in ["not base64?", "AAAA", &b64_binding(&[0u8; 32])] {
        let r = a
            .enroll(LINKED, &csr(&new_key(), "x", vec![printable(bad)]))
            .await;
        assert_400(&r, "not the channel binding");
    }
    assert_eq!(ts.app().store.cert_count(), before, "nothing issued");
    // The relayed CSR is fine on the connection it was made for.
    issued_cert(&b.enroll(LINKED, &from_b).await);

    // Each refusal is audited, with the reason and without the value.
    let audited = refusals(&ts, AuditAction::Enroll);
    assert_eq!(audited.len(), 5, "{audited:?}");
    assert!(audited.iter().all(|d| d.starts_with("400 ")), "{audited:?}");
    assert_eq!(
        audited
            .iter()
            .filter(|d| d.contains("not the channel binding"))
            .count(),
        4
    );
    assert!(audited.iter().all(|d| !d.contains(&b64_binding(&bind_b))));

    // Re-enrolment of a certificate of a linking profile links too.
    let holder = Identity::new(der_of(&cert), &key);
    let (mut h, bind_h) = linked_client(&ts, Some(&holder), false).await;
    let new = new_key();
    assert_400(
        &h.enroll(REENROLL, &csr(&new, "linked-1", vec![])).await,
        "challengePassword",
    );
    assert_400(
        &h.enroll(
            REENROLL,
            &csr(&new, "linked-1", vec![printable(&b64_binding(&bind_a))]),
        )
        .await,
        "not the channel binding",
    );
    assert_eq!(refusals(&ts, AuditAction::Reenroll).len(), 2);
    let renewed = issued_cert(
        &h.enroll(
            REENROLL,
            &csr(&new, "linked-1", vec![printable(&b64_binding(&bind_h))]),
        )
        .await,
    );
    assert_eq!(
        renewed
            .tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes(),
        new.public_key_raw()
    );
    ts.shutdown().await;
}

#[tokio::test]
async fn without_the_option_challenge_password_is_ignored() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let idm = ts.demo_identity();
    let (mut c, _) = linked_client(&ts, Some(&idm), false).await;
    let (_, other) = linked_client(&ts, Some(&idm), false).await;
    let path = "/.well-known/est/demo/simpleenroll";
    for attr in [
        printable("anything"),
        printable(&b64_binding(&other)),
        challenge(Any::encode_from(&Utf8StringRef::new("Æblegrød").expect("utf8")).expect("any")),
    ] {
        issued_cert(
            &c.enroll(path, &csr(&new_key(), "ignored", vec![attr]))
                .await,
        );
    }
    // Over TLS 1.2 too.
    let (mut c12, _) = linked_client(&ts, Some(&idm), true).await;
    issued_cert(
        &c12.enroll(path, &csr(&new_key(), "tls12", vec![printable("x")]))
            .await,
    );
    ts.shutdown().await;
}

#[tokio::test]
async fn tls12_connections_are_refused_by_a_linking_profile() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    create_profile(&ts, "linked", json!({"require_pop_linking": true})).await;
    let idm = ts.demo_identity();
    let (mut c12, bind12) = linked_client(&ts, Some(&idm), true).await;
    // Neither tls-unique (not available) nor the TLS 1.2 exporter is accepted.
    for attrs in [vec![], vec![printable(&b64_binding(&bind12))]] {
        let r = c12.enroll(LINKED, &csr(&new_key(), "old-tls", attrs)).await;
        assert_400(&r, "only on TLS 1.3");
    }
    // csrattrs still says what the profile needs.
    assert!(csrattrs_oids(&mut c12, "linked")
        .await
        .contains(&CHALLENGE_PASSWORD.to_owned()));
    // The same TLS 1.2 client is served by a profile without the option.
    issued_cert(
        &c12.enroll(
            "/.well-known/est/demo/simpleenroll",
            &csr(&new_key(), "old-tls", vec![]),
        )
        .await,
    );
    ts.shutdown().await;
}

#[tokio::test]
async fn the_option_is_set_and_changed_through_the_admin_api() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let id = create_profile(&ts, "linked", json!({})).await;
    let path = format!("/profiles/{id}");
    let (_, p) = ts.admin("GET", &path, None).await;
    assert_eq!(p["require_pop_linking"], json!(false), "off by default");

    let idm = ts.demo_identity();
    let (mut c, _) = linked_client(&ts, Some(&idm), false).await;
    issued_cert(&c.enroll(LINKED, &csr(&new_key(), "before", vec![])).await);

    let (status, changed) = ts
        .admin("PATCH", &path, Some(json!({"require_pop_linking": true})))
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["profile"]["require_pop_linking"], json!(true));
    let (_, p) = ts.admin("GET", &path, None).await;
    assert_eq!(p["require_pop_linking"], json!(true));
    // Takes effect on the next request, on the same connection.
    assert_400(
        &c.enroll(LINKED, &csr(&new_key(), "after", vec![])).await,
        "challengePassword",
    );

    // A wrong type is a 400 and changes nothing.
    let (status, problem) = ts
        .admin("PATCH", &path, Some(json!({"require_pop_linking": "yes"})))
        .await;
    assert_eq!(status, 400, "{problem}");
    let (_, p) = ts.admin("GET", &path, None).await;
    assert_eq!(p["require_pop_linking"], json!(true));

    let (status, _) = ts
        .admin("PATCH", &path, Some(json!({"require_pop_linking": false})))
        .await;
    assert_eq!(status, 200);
    issued_cert(
        &c.enroll(LINKED, &csr(&new_key(), "off-again", vec![]))
            .await,
    );

    // Kept across a restart (stored with the profile).
    ts.admin("PATCH", &path, Some(json!({"require_pop_linking": true})))
        .await;
    drop(c);
    ts.shutdown().await;
    let ts = TestServer::start(dir.path()).await;
    let (_, p) = ts.admin("GET", &path, None).await;
    assert_eq!(p["require_pop_linking"], json!(true));
    ts.shutdown().await;
}

async fn post_with_code(c: &mut Client, path: &str, auth: &str, csr: &[u8]) -> Resp {
    c.send(
        "POST",
        path,
        &[
            ("content-type", "application/pkcs10"),
            ("authorization", auth),
        ],
        b64(csr).into_bytes(),
    )
    .await
}

#[tokio::test]
async fn one_time_code_collection_links_and_a_failed_link_spends_no_code() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let id = create_profile(
        &ts,
        "linked",
        json!({"require_pop_linking": true, "identification": "one-time-code"}),
    )
    .await;
    let (reference, code) = order_code(ts.app(), &id).await;
    let auth = basic(&reference, &code);
    let cn = "Profile linked";
    let (mut c, bind) = linked_client(&ts, None, false).await;
    let (_, other) = linked_client(&ts, None, false).await;
    let r = post_with_code(
        &mut c,
        LINKED,
        &auth,
        &csr(&new_key(), cn, vec![printable(&b64_binding(&other))]),
    )
    .await;
    assert_400(&r, "not the channel binding");
    let stored = ts
        .app()
        .store
        .order(&reference)
        .expect("db")
        .expect("order");
    assert!(
        !matches!(stored.status, OrderStatus::Issued { .. }),
        "{:?}",
        stored.status
    );
    assert_eq!(refusals(&ts, AuditAction::Enroll).len(), 1);
    assert!(refusals(&ts, AuditAction::Enroll)
        .iter()
        .all(|d| !d.contains(&code)));

    let r = post_with_code(
        &mut c,
        LINKED,
        &auth,
        &csr(&new_key(), cn, vec![printable(&b64_binding(&bind))]),
    )
    .await;
    issued_cert(&r);
    ts.shutdown().await;
}

#[tokio::test]
async fn a_held_enrolment_links_on_its_first_request_only() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    create_profile(
        &ts,
        "linked",
        json!({"require_pop_linking": true, "approval_required": true}),
    )
    .await;
    let idm = ts.demo_identity();
    let (mut c, bind) = linked_client(&ts, Some(&idm), false).await;
    // Unlinked: refused, and no order is held for it.
    let unlinked = csr(&new_key(), "held", vec![]);
    assert_400(&c.enroll(LINKED, &unlinked).await, "challengePassword");
    let hash = |der: &[u8]| -> [u8; 32] {
        let mut h = [0u8; 32];
        h.copy_from_slice(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der).as_ref());
        h
    };
    assert!(ts
        .app()
        .store
        .held_order(&hash(&unlinked))
        .expect("db")
        .is_none());

    let key = new_key();
    let linked = csr(&key, "held", vec![printable(&b64_binding(&bind))]);
    assert_eq!(c.enroll(LINKED, &linked).await.status, 202);
    drop(c);
    // The retry comes on a new connection with the same CSR, as RFC 7030 4.2.3 has it.
    let (mut later, _) = linked_client(&ts, Some(&idm), false).await;
    assert_eq!(later.enroll(LINKED, &linked).await.status, 202);
    let held = ts
        .app()
        .store
        .held_order(&hash(&linked))
        .expect("db")
        .expect("held order");
    service::approve(ts.app().services(), &operator(), &held.id)
        .await
        .expect("approve");
    let (mut last, _) = linked_client(&ts, Some(&idm), false).await;
    let cert = issued_cert(&last.enroll(LINKED, &linked).await);
    assert_eq!(
        cert.tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes(),
        key.public_key_raw()
    );
    ts.shutdown().await;
}

#[tokio::test]
async fn serverkeygen_does_not_link() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let id = create_profile(
        &ts,
        "laptops",
        json!({
            "require_pop_linking": true,
            "identification": "one-time-code",
            "issuance": "browser",
        }),
    )
    .await;
    let (reference, code) = order_code(ts.app(), &id).await;
    // The client's CSR key is thrown away: there is no possession to link.
    let (mut c, _) = linked_client(&ts, None, false).await;
    let r = post_with_code(
        &mut c,
        "/.well-known/est/laptops/serverkeygen",
        &basic(&reference, &code),
        &csr(&new_key(), "Profile laptops", vec![]),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r
        .header("content-type")
        .is_some_and(|t| t.starts_with("multipart/mixed")));
    ts.shutdown().await;
}

/// A challengePassword holding `text` as a BMPString (UCS-2, as Windows and
/// some HSM tools write it).
fn bmp(text: &str) -> rcgen::Attribute {
    challenge(Any::encode_from(&der::asn1::BmpString::from_utf8(text).expect("bmp")).expect("any"))
}

/// Found by the outside test: a BMPString challengePassword got 400 even on
/// profiles that ignore the attribute. Now it is ignored there like any
/// other form, and read as text where linking uses it.
#[tokio::test]
async fn bmp_string_challenge_password_is_read() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    create_profile(&ts, "linked", json!({"require_pop_linking": true})).await;
    let idm = ts.demo_identity();
    let (mut c, binding) = linked_client(&ts, Some(&idm), false).await;
    // Ignored: any text, and even a value that is no string at all.
    let octets = challenge(
        Any::encode_from(&der::asn1::OctetString::new(vec![1, 2, 3]).expect("octets"))
            .expect("any"),
    );
    for attr in [bmp("Æblegrød"), octets] {
        issued_cert(
            &c.enroll(
                "/.well-known/est/demo/simpleenroll",
                &csr(&new_key(), "ignored", vec![attr]),
            )
            .await,
        );
    }
    // Used: the binding as a BMPString links; another value does not.
    issued_cert(
        &c.enroll(
            LINKED,
            &csr(&new_key(), "bmp-linked", vec![bmp(&b64_binding(&binding))]),
        )
        .await,
    );
    let r = c
        .enroll(LINKED, &csr(&new_key(), "bmp-other", vec![bmp("AAAA")]))
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.text().contains("is not the channel binding"),
        "{}",
        r.text()
    );
    ts.shutdown().await;
}
