//! The core EST issue, end to end: a real server on loopback with real TLS,
//! real CSRs and a real sled store in a temp dir.

use std::collections::HashSet;

use const_oid::db::rfc5280;
use der::Decode;
use estd::model::{now_unix, AuditAction, AuditOutcome, RevocationReason, SystemRight};
use estd_testkit::*;
use x509_cert::ext::pkix::ExtendedKeyUsage;

const ENROLL: &str = "/.well-known/est/demo/simpleenroll";
const REENROLL: &str = "/.well-known/est/simplereenroll";

fn has_client_auth(cert: &x509_cert::Certificate) -> bool {
    cert.tbs_certificate
        .extensions
        .iter()
        .flatten()
        .filter(|e| e.extn_id == const_oid::db::rfc5280::ID_CE_EXT_KEY_USAGE)
        .filter_map(|e| ExtendedKeyUsage::from_der(e.extn_value.as_bytes()).ok())
        .any(|eku| eku.0.contains(&rfc5280::ID_KP_CLIENT_AUTH))
}

#[tokio::test]
async fn cacerts_carries_the_whole_chain() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let mut c = ts.client(None).await;
    let r = c.get("/.well-known/est/cacerts").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/pkcs7-mime"));
    let certs = pkcs7_certs(&r.body);
    assert_eq!(certs.len(), 2, "issuing CA and root");
    let ders: Vec<Vec<u8>> = certs.iter().map(der_of).collect();
    assert!(ders.contains(&ts.root_der()), "root is in /cacerts");
    assert!(
        ders.contains(&ts.app().ca.active().issuing_der().to_vec()),
        "issuing CA is in /cacerts"
    );
    // The same chain under a label.
    let r2 = c.get("/.well-known/est/demo/cacerts").await;
    assert_eq!(r2.body, r.body);
    ts.shutdown().await;
}

#[tokio::test]
async fn idm_system_enrols_over_mtls() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let before = ts.app().store.cert_count();
    let mut c = ts.client(Some(&ts.demo_identity())).await;
    let (key, csr) = demo_csr("device-1");
    let r = c.enroll(ENROLL, &csr).await;
    assert_eq!(
        r.header("content-type"),
        Some("application/pkcs7-mime; smime-type=certs-only")
    );
    let cert = issued_cert(&r);
    assert_eq!(
        estd::policy::display_name(&cert.tbs_certificate.subject),
        format!("C=DK, O={DEMO_ORG}, organizationIdentifier=NTRDK-12345674, CN=device-1"),
    );
    assert_eq!(
        cert.tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes(),
        key.public_key_raw(),
        "certificate carries the CSR's key"
    );
    assert!(
        has_client_auth(&cert),
        "clientAuth EKU so that it can re-enrol"
    );
    let serial = serial_of(&cert);
    let rec = ts
        .app()
        .store
        .cert(&serial)
        .expect("store")
        .expect("stored");
    assert_eq!(rec.der, der_of(&cert));
    assert_eq!(rec.cvr, DEMO_CVR);
    assert_eq!(ts.app().store.cert_count(), before + 1);
    let audited = ts
        .app()
        .store
        .audit_events()
        .filter_map(Result::ok)
        .any(|e| {
            e.serial == Some(serial)
                && e.action == AuditAction::Enroll
                && e.outcome == AuditOutcome::Done
        });
    assert!(audited, "issuance is in the audit log");

    // No label: the organisation's default profile.
    let (_k, csr) = demo_csr("device-2");
    let r = c.enroll("/.well-known/est/simpleenroll", &csr).await;
    issued_cert(&r);
    ts.shutdown().await;
}

#[tokio::test]
async fn enrolment_refusals_change_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let before = ts.app().store.cert_count();

    // No client certificate: 401 with a Basic challenge.
    let mut anon = ts.client(None).await;
    let (_k, csr) = demo_csr("x");
    let r = anon.enroll(ENROLL, &csr).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Basic realm=\"estd\""));
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));

    let mut c = ts.client(Some(&ts.demo_identity())).await;
    // A CSR naming another organisation.
    let (_k, other) = csr_for("Other ApS", "87654311", "x", &rcgen::PKCS_ECDSA_P256_SHA256);
    assert_eq!(c.enroll(ENROLL, &other).await.status, 403);
    let (_k, other_name) = csr_for("Other ApS", DEMO_CVR, "x", &rcgen::PKCS_ECDSA_P256_SHA256);
    assert_eq!(c.enroll(ENROLL, &other_name).await.status, 403);
    // A broken signature: change one byte of the subject.
    let (_k, mut tampered) = demo_csr("device-x");
    let pos = tampered
        .windows(8)
        .position(|w| w == b"device-x")
        .expect("CN");
    tampered[pos] = b'D';
    let r = c.enroll(ENROLL, &tampered).await;
    assert_eq!(r.status, 400);
    assert!(r.text().contains("signature"), "{}", r.text());
    // Garbage base64, garbage DER.
    let r = c
        .send(
            "POST",
            ENROLL,
            &[("content-type", "application/pkcs10")],
            b"@@not base64@@".to_vec(),
        )
        .await;
    assert_eq!(r.status, 400);
    let r = c
        .send(
            "POST",
            ENROLL,
            &[("content-type", "application/pkcs10")],
            b64(b"\x30\x02\x05\x00").into_bytes(),
        )
        .await;
    assert_eq!(r.status, 400);
    // Wrong or missing content type. Refused before the body is read, so the
    // answer says Connection: close and the next request needs a new connection.
    let r = c
        .send(
            "POST",
            ENROLL,
            &[("content-type", "text/plain")],
            b64(&csr).into_bytes(),
        )
        .await;
    assert_eq!(r.status, 415);
    assert_eq!(r.header("connection"), Some("close"));
    let mut c = ts.client(Some(&ts.demo_identity())).await;
    let r = c.send("POST", ENROLL, &[], b64(&csr).into_bytes()).await;
    assert_eq!(r.status, 415);
    assert_eq!(r.header("connection"), Some("close"));
    let mut c = ts.client(Some(&ts.demo_identity())).await;
    let two_types = [
        ("content-type", "application/pkcs10"),
        ("content-type", "text/plain"),
    ];
    assert_eq!(
        c.send("POST", ENROLL, &two_types, b64(&csr).into_bytes())
            .await
            .status,
        400
    );
    let mut c = ts.client(Some(&ts.demo_identity())).await;
    // Oversized body.
    let r = c
        .send(
            "POST",
            ENROLL,
            &[("content-type", "application/pkcs10")],
            vec![b'A'; 70 * 1024],
        )
        .await;
    assert_eq!(r.status, 413);
    // The server closes a connection whose body it did not read.
    let mut c = ts.client(Some(&ts.demo_identity())).await;
    // Wrong method, unknown operation.
    assert_eq!(c.get(ENROLL).await.status, 405);
    assert_eq!(c.get("/.well-known/est/nothing").await.status, 404);
    assert_eq!(c.get("/elsewhere").await.status, 404);

    assert_eq!(
        ts.app().store.cert_count(),
        before,
        "no refusal stored a certificate"
    );
    let refusals = ts
        .app()
        .store
        .audit_events()
        .filter_map(Result::ok)
        .filter(|e| e.outcome == AuditOutcome::Refused)
        .count();
    assert!(refusals >= 6, "refusals are audited, got {refusals}");
    ts.shutdown().await;
}

#[tokio::test]
async fn organisations_are_isolated() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let other = ts.add_org(
        "87654311",
        "Other ApS",
        "other",
        vec![SystemRight::EstEnroll],
    );
    let mut c = ts.client(Some(&other)).await;
    // Other's IdM under the demo organisation's profile: 403, same text as an unknown label.
    let (_k, csr) = csr_for(
        "Other ApS",
        "87654311",
        "o-1",
        &rcgen::PKCS_ECDSA_P256_SHA256,
    );
    let foreign = c.enroll(ENROLL, &csr).await;
    assert_eq!(foreign.status, 403);
    let unknown = c
        .enroll("/.well-known/est/no-such-label/simpleenroll", &csr)
        .await;
    assert_eq!(unknown.status, 403);
    assert_eq!(
        foreign.text(),
        unknown.text(),
        "a refusal does not reveal whether a profile exists"
    );
    // Other's IdM with a CSR naming the demo organisation, under its own profile: 403.
    let (_k, demo) = demo_csr("sneaky");
    assert_eq!(
        c.enroll("/.well-known/est/other/simpleenroll", &demo)
            .await
            .status,
        403
    );
    // Its own profile works.
    issued_cert(&c.enroll("/.well-known/est/other/simpleenroll", &csr).await);

    // A system certificate without est-enroll cannot enrol.
    let no_right = ts.add_org("11223346", "Third ApS", "third", vec![]);
    let mut c3 = ts.client(Some(&no_right)).await;
    let (_k, csr3) = csr_for(
        "Third ApS",
        "11223346",
        "t-1",
        &rcgen::PKCS_ECDSA_P256_SHA256,
    );
    let r = c3
        .enroll("/.well-known/est/third/simpleenroll", &csr3)
        .await;
    assert_eq!(r.status, 403);
    assert!(r.text().contains("est-enroll"), "{}", r.text());
    ts.shutdown().await;
}

#[tokio::test]
async fn reenrolment_renews_and_refuses_what_it_must() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let mut idm = ts.client(Some(&ts.demo_identity())).await;
    let (key, csr) = demo_csr("device-r");
    let old = issued_cert(&idm.enroll(ENROLL, &csr).await);
    let old_serial = serial_of(&old);
    let holder = Identity::new(der_of(&old), &key);

    // Rekey: a new key, the same subject.
    let mut c = ts.client(Some(&holder)).await;
    let (new_key, csr2) = demo_csr("device-r");
    let new = issued_cert(&c.enroll(REENROLL, &csr2).await);
    let new_serial = serial_of(&new);
    assert_ne!(new_serial, old_serial);
    assert_eq!(new.tbs_certificate.subject, old.tbs_certificate.subject);
    assert_eq!(
        new.tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes(),
        new_key.public_key_raw()
    );
    let store = &ts.app().store;
    assert_eq!(
        store
            .cert(&old_serial)
            .expect("db")
            .expect("old")
            .renewed_by,
        Some(new_serial)
    );
    assert_eq!(
        store.cert(&new_serial).expect("db").expect("new").renews,
        Some(old_serial)
    );
    let validity = |c: &x509_cert::Certificate| {
        c.tbs_certificate.validity.not_after.to_unix_duration()
            - c.tbs_certificate.validity.not_before.to_unix_duration()
    };
    assert_eq!(
        validity(&new),
        validity(&old),
        "full validity, not the remainder"
    );
    assert!(
        new.tbs_certificate.validity.not_before.to_unix_duration()
            >= old.tbs_certificate.validity.not_before.to_unix_duration()
    );

    // Subject mismatch.
    let (_k, other_subject) = demo_csr("device-other");
    let r = c.enroll(REENROLL, &other_subject).await;
    assert_eq!(r.status, 403);
    assert!(r.text().contains("Subject"), "{}", r.text());

    // Without a client certificate: 401.
    let mut anon = ts.client(None).await;
    assert_eq!(anon.enroll(REENROLL, &csr2).await.status, 401);

    // Revoked (through the store's API for now): refused.
    let now = now_unix();
    store
        .update_cert(&old_serial, |r| {
            r.revoke(RevocationReason::SuspectedMisuse, now)
        })
        .expect("db")
        .expect("revoke");
    let mut c = ts.client(Some(&holder)).await;
    let r = c.enroll(REENROLL, &csr2).await;
    assert_eq!(r.status, 403);
    assert!(r.text().contains("revoked"), "{}", r.text());
    ts.shutdown().await;
}

#[tokio::test]
async fn expired_certificate_cannot_reenrol() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let store = &ts.app().store;
    let org = store.org(DEMO_CVR).expect("db").expect("org");
    let profile = store
        .profile_by_label("demo")
        .expect("db")
        .expect("profile");
    // Zero days: notAfter is now; wait until it has passed.
    let (_serial, holder) = ts.issue_direct(&org, &profile, "short-lived", 0);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let mut c = ts.client(Some(&holder)).await;
    let (_k, csr) = demo_csr("short-lived");
    let r = c.enroll(REENROLL, &csr).await;
    assert_eq!(r.status, 403);
    assert!(r.text().contains("expired"), "{}", r.text());
    ts.shutdown().await;
}

#[tokio::test]
async fn untrusted_client_certificate_is_not_accepted() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    // A self-signed certificate whose subject copies the demo organisation.
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let mut p = rcgen::CertificateParams::new(vec![]).expect("params");
    p.distinguished_name
        .push(rcgen::DnType::OrganizationName, DEMO_ORG);
    p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = p.self_signed(&key).expect("self-signed");
    let rogue = Identity::new(cert.der().to_vec(), &key);
    let mut c = ts.client(Some(&rogue)).await;
    let (_k, csr) = demo_csr("rogue");
    let r = c.enroll(ENROLL, &csr).await;
    assert_eq!(r.status, 401);
    assert!(r.text().contains("trusted"), "{}", r.text());
    ts.shutdown().await;
}

#[tokio::test]
async fn certificates_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let mut c = ts.client(Some(&ts.demo_identity())).await;
    let (key, csr) = demo_csr("persistent");
    let cert = issued_cert(&c.enroll(ENROLL, &csr).await);
    let root_before = ts.root_der();
    drop(c);
    ts.shutdown().await;

    let ts = TestServer::start(dir.path()).await;
    assert_eq!(ts.root_der(), root_before, "a restart reuses the CA");
    let rec = ts
        .app()
        .store
        .cert(&serial_of(&cert))
        .expect("db")
        .expect("still stored");
    assert_eq!(rec.der, der_of(&cert));
    // And it can still re-enrol.
    let mut holder = ts.client(Some(&Identity::new(der_of(&cert), &key))).await;
    let (_k, csr2) = demo_csr("persistent");
    issued_cert(&holder.enroll(REENROLL, &csr2).await);
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_concurrent_enrolments_get_distinct_stored_serials() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let csrs: Vec<Vec<u8>> = (0..1000)
        .map(|i| demo_csr(&format!("bulk-{i}")).1)
        .collect();
    let identity = ts.demo_identity();
    let addr = ts.server.est_addr;
    let root = ts.root_der();
    let mut tasks = Vec::new();
    for chunk in csrs.chunks(20) {
        let chunk = chunk.to_vec();
        let id = identity.clone_identity();
        let root = root.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(addr, &root, Some(&id), false).await;
            let mut serials = Vec::new();
            for csr in chunk {
                serials.push(serial_of(&issued_cert(&c.enroll(ENROLL, &csr).await)));
            }
            serials
        }));
    }
    let mut all = HashSet::new();
    for t in tasks {
        for s in t.await.expect("task") {
            assert!(all.insert(s), "serial {s} issued twice");
        }
    }
    assert_eq!(all.len(), 1000);
    for s in &all {
        assert!(ts.app().store.contains_serial(s).expect("db"), "{s} stored");
    }
    ts.shutdown().await;
}

#[tokio::test]
async fn wire_details_real_clients_need() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let id = ts.demo_identity();
    let addr = ts.server.est_addr;
    let root = ts.root_der();

    // Canonical Title-Case header names on the wire.
    let raw = raw_exchange(
        addr,
        &root,
        None,
        b"GET /.well-known/est/cacerts HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.contains("\r\nContent-Type: application/pkcs7-mime\r\n"),
        "{text}"
    );
    assert!(
        text.contains("\r\nContent-Transfer-Encoding: base64\r\n"),
        "{text}"
    );

    // A chunked body with CRLF-wrapped base64.
    let (_k, csr) = demo_csr("chunky");
    let wrapped: String = b64(&csr)
        .as_bytes()
        .chunks(64)
        .map(|c| format!("{}\r\n", std::str::from_utf8(c).expect("ascii")))
        .collect();
    let (a, b) = wrapped.split_at(wrapped.len() / 2);
    let req = format!(
        "POST /.well-known/est/demo/simpleenroll HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/pkcs10\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
        a.len(),
        b.len()
    );
    let raw = raw_exchange(addr, &root, Some(&id), req.as_bytes()).await;
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");

    // Empty Basic credentials beside a valid certificate: judged by the certificate.
    let mut c = ts.client(Some(&id)).await;
    let (_k, csr) = demo_csr("basic-empty");
    let r = c
        .send(
            "POST",
            ENROLL,
            &[
                ("content-type", "application/pkcs10"),
                ("authorization", "Basic Og=="),
            ],
            b64(&csr).into_bytes(),
        )
        .await;
    issued_cert(&r);

    // A TLS 1.2-only client.
    let mut c12 = Client::connect(addr, &root, Some(&id), true).await;
    let (_k, csr) = demo_csr("tls12");
    issued_cert(&c12.enroll(ENROLL, &csr).await);

    // csrattrs: the profile's expectations.
    let r = c.get("/.well-known/est/demo/csrattrs").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/csrattrs"));
    let der = estd::est::codec::decode_body(&r.body, false).expect("base64");
    let attrs = Vec::<der::Any>::from_der(&der).expect("CsrAttrs is a SEQUENCE");
    let oids: Vec<String> = attrs
        .iter()
        .filter_map(|a| a.decode_as::<const_oid::ObjectIdentifier>().ok())
        .map(|o| o.to_string())
        .collect();
    assert!(
        oids.contains(&"2.5.4.3".to_string()),
        "asks for CN: {oids:?}"
    );
    assert!(
        oids.contains(&"2.5.4.97".to_string()),
        "asks for organizationIdentifier: {oids:?}"
    );
    // Anonymous without a label: what holds for every organisation (see
    // tests/interop.rs); an unknown label has nothing to say.
    let mut anon = ts.client(None).await;
    assert_eq!(anon.get("/.well-known/est/csrattrs").await.status, 200);
    assert_eq!(
        anon.get("/.well-known/est/no-such-label/csrattrs")
            .await
            .status,
        204
    );

    // Keys of every accepted type.
    for alg in [
        &rcgen::PKCS_ECDSA_P384_SHA384,
        &rcgen::PKCS_ED25519,
        &rcgen::PKCS_RSA_SHA256,
    ] {
        let (_k, csr) = csr_for(DEMO_ORG, DEMO_CVR, "algs", alg);
        issued_cert(&c.enroll(ENROLL, &csr).await);
    }
    ts.shutdown().await;
}

#[tokio::test]
async fn foreign_ca_anchor_from_config_acts_for_its_organisation() {
    let dir = tempfile::tempdir().expect("tmp");
    // A partner CA and an IdM certificate it issued.
    let partner_ca = PartnerCa::new();
    let extra = partner_ca.anchor_config(dir.path(), DEMO_CVR);
    let ts = TestServer::start_with(dir.path(), &extra).await;
    let partner = partner_ca.identity(false);
    let mut c = ts.client(Some(&partner)).await;
    let (_k, csr) = demo_csr("partner-device");
    issued_cert(&c.enroll(ENROLL, &csr).await);
    // Bound to its organisation only.
    let (_k, other) = csr_for("Other ApS", "87654311", "x", &rcgen::PKCS_ECDSA_P256_SHA256);
    assert_eq!(c.enroll(ENROLL, &other).await.status, 403);
    // A foreign certificate is not ours to renew.
    let (_k, csr) = demo_csr("Partner IdM");
    assert_eq!(c.enroll(REENROLL, &csr).await.status, 403);
    ts.shutdown().await;
}
