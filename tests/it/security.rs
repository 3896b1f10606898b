//! Security tests (issue 6, part 7, first list): each is a real request to a
//! real estd on loopback (real TLS, real CSRs, a sled store in a temp dir) and
//! asserts the status, the reason the server gives, and, where something
//! could have been issued or changed, that nothing was.
//!
//! Every item of the list and the test that covers it:
//!
//! Refused client certificates
//! - expired (this CA, re-signed with a validity in the past; and a foreign
//!   anchor's): `expired_client_certificates_are_refused`; also est_core.rs
//!   `expired_certificate_cannot_reenrol` (a zero-day certificate)
//! - revoked: `revoked_client_certificate_is_refused_everywhere`
//! - blocked: `blocked_user_certificate_is_refused`
//! - from another organisation: `another_organisations_certificate_is_refused`;
//!   also est_core.rs `organisations_are_isolated`
//! - from an untrusted CA (self-signed, an unconfigured CA's chain, a forgery
//!   naming our issuing CA, one signed by our key but never issued):
//!   `untrusted_client_certificates_are_refused`; also est_core.rs
//!   `untrusted_client_certificate_is_not_accepted`
//!
//! Refused enrolments
//! - a system certificate without `est-enroll`:
//!   `system_certificate_without_est_enroll_cannot_enrol`; also est_core.rs
//!   `organisations_are_isolated`
//! - a user certificate enrolling for someone else (name, e-mail):
//!   `user_certificate_cannot_enrol_for_someone_else`
//! - a CSR asking for CA:true, key usages or EKUs beyond the profile, SANs or
//!   e-mail outside it: `csr_asking_for_more_than_the_profile_is_refused`
//! - weak keys (RSA-1024, P-192, made with the openssl CLI; and keys below a
//!   profile's own minimum): `weak_keys_are_refused`
//!
//! TLS
//! - TLS 1.0 and 1.1 handshakes (raw ClientHellos):
//!   `tls_1_0_and_1_1_handshakes_are_refused`; also conformance/run.sh
//!   section 9 (`openssl s_client -tls1 / -tls1_1`)
//!
//! One-time codes
//! - used twice (one after the other, and at the same time):
//!   `one_time_code_works_once`; also est_orders.rs `one_time_code_lifecycle`
//! - guessed past the lockout: `five_wrong_codes_lock_the_order` (one after
//!   the other), `simultaneous_guesses_cannot_get_past_the_lockout` (48 at
//!   once); also est_orders.rs
//!   `five_wrong_codes_lock_the_order_until_a_new_code` (the lockout survives
//!   a restart; a new code unlocks)
//!
//! Admin API
//! - without a token, with a wrong token:
//!   `admin_api_refuses_missing_and_wrong_credentials`; also admin_api.rs
//!   `calls_without_valid_credentials_get_401`
//! - with another organisation's token:
//!   `admin_api_token_of_another_organisation_sees_and_changes_nothing`; also
//!   admin_api.rs `an_organisation_sees_and_changes_only_its_own`
//!
//! Known failures of other EST servers
//! - re-enrolment with a revoked certificate:
//!   `revoked_client_certificate_is_refused_everywhere`; also est_core.rs
//!   `reenrolment_renews_and_refuses_what_it_must`
//! - a registration-authority-like peer (admin-api / est-enroll for org A)
//!   bypassing the CA's restrictions for org B or for a profile it does not
//!   hold: `registration_authority_peer_cannot_bypass_the_cas_restrictions`
//! - the re-enrolment subject check (RFC 7030 4.2.2):
//!   `reenrolment_must_keep_subject_and_subject_alt_name`; also est_core.rs
//!   `reenrolment_renews_and_refuses_what_it_must`
//! - `/cacerts` serves the whole chain (issuing CA and root): est_core.rs
//!   `cacerts_carries_the_whole_chain`

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use der::asn1::BitString;
use der::{Decode, Encode};
use estd::model::SystemRight;
use estd_testkit::api::{assert_problem, Api};
use estd_testkit::*;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use x509_cert::certificate::TbsCertificate;
use x509_cert::time::{Time, Validity};
use x509_cert::Certificate;

const ENROLL: &str = "/.well-known/est/demo/simpleenroll";
const REENROLL: &str = "/.well-known/est/simplereenroll";

fn subject_params(org: &str, cvr: &str, cn: &str) -> rcgen::CertificateParams {
    let mut p = rcgen::CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(rcgen::DnType::CountryName, "DK");
    p.distinguished_name
        .push(rcgen::DnType::OrganizationName, org);
    p.distinguished_name.push(
        rcgen::DnType::CustomDnType(vec![2, 5, 4, 97]),
        format!("NTRDK-{cvr}"),
    );
    p.distinguished_name.push(rcgen::DnType::CommonName, cn);
    p
}

/// A CSR of the demo organisation for `cn`, after `change` edits its parameters.
fn demo_csr_with(cn: &str, change: impl FnOnce(&mut rcgen::CertificateParams)) -> Vec<u8> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let mut p = subject_params(DEMO_ORG, DEMO_CVR, cn);
    change(&mut p);
    p.serialize_request(&key).expect("csr").der().to_vec()
}

fn ia5(s: &str) -> rcgen::string::Ia5String {
    rcgen::string::Ia5String::try_from(s).expect("ia5")
}

const EMAIL_ADDRESS_OID: [u64; 7] = [1, 2, 840, 113549, 1, 9, 1];

/// Re-signs a certificate of this CA after `change` edits its TBS, with the
/// issuing CA's key from the server's folder: a test-only use of the CA for
/// certificates the server itself would never issue.
fn resign(ts: &TestServer, der: &[u8], change: impl FnOnce(&mut TbsCertificate)) -> Vec<u8> {
    let key_path = ts.dir.join("certs").join(estd::ca::layout::ISSUING_KEY);
    let key = estd::files::read_private_key(&key_path).expect("issuing key");
    sign_with(&key, der, change)
}

/// Re-signs `der` with a PKCS#8 key after `change` edits its TBS.
fn sign_with(pkcs8: &[u8], der: &[u8], change: impl FnOnce(&mut TbsCertificate)) -> Vec<u8> {
    use estd::ca::Signer;
    let signer = estd::ca::SoftwareSigner::from_pkcs8(pkcs8).expect("signer");
    let mut cert = Certificate::from_der(der).expect("cert");
    change(&mut cert.tbs_certificate);
    cert.tbs_certificate.signature = signer.algorithm().clone();
    cert.signature_algorithm = signer.algorithm().clone();
    let sig = signer
        .sign(&cert.tbs_certificate.to_der().expect("tbs"))
        .expect("sign");
    cert.signature = BitString::from_bytes(&sig).expect("bits");
    cert.to_der().expect("der")
}

fn days_ago(days: u64) -> SystemTime {
    SystemTime::now() - Duration::from_secs(days * 86_400)
}

fn past_validity() -> Validity {
    Validity {
        not_before: Time::try_from(days_ago(30)).expect("time"),
        not_after: Time::try_from(days_ago(1)).expect("time"),
    }
}

// ---- Admin API ----

/// The `detail` of a problem document.
fn detail_of(r: &Resp) -> String {
    let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    v["detail"].as_str().unwrap_or_default().to_owned()
}

/// A profile body for the demo organisation.
fn profile_body(name: &str, label: &str, identification: &str) -> Value {
    json!({
        "cvr": DEMO_CVR,
        "name": name,
        "kind": "system",
        "contact": {"name": "Karen Hansen", "email": "karen@demo.example"},
        "identification": identification,
        "issuance": "est",
        "est_label": label,
    })
}

/// Creates a profile through the admin API, answering its JSON.
async fn create_profile(api: &mut Api, body: Value) -> Value {
    let r = api.post("/profiles", body).await;
    assert_eq!(r.status, 201, "create profile: {}", r.resp.text());
    r.body
}

/// A one-time-code profile of the demo organisation with an order for its own
/// certificate (CN = the profile's name): (reference, code).
async fn code_order(op: &mut Api, name: &str, label: &str) -> (String, String) {
    let mut b = profile_body(name, label, "one-time-code");
    b["order"] = json!({});
    let created = create_profile(op, b).await;
    (
        created["order"]["reference"]
            .as_str()
            .expect("reference")
            .to_owned(),
        created["order"]["code"].as_str().expect("code").to_owned(),
    )
}

const USER_NAME: &str = "Jens Jensen";
const USER_EMAIL: &str = "jens@demo.example";

/// A user certificate for Jens Jensen, ordered through the admin API and
/// collected over EST: (holder identity, certificate, profile label).
async fn user_certificate(ts: &TestServer, op: &mut Api) -> (Identity, Certificate, String) {
    let label = "staff";
    let mut b = profile_body("Staff", label, "one-time-code");
    b["order"] = json!({"user": {"name": USER_NAME, "email": USER_EMAIL}});
    let created = create_profile(op, b).await;
    let reference = created["order"]["reference"].as_str().expect("reference");
    let code = created["order"]["code"].as_str().expect("code");
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let csr = csr_with_key(&key, DEMO_ORG, DEMO_CVR, USER_NAME);
    let cert = issued_cert(&collect(ts, label, reference, code, &csr).await);
    (Identity::new(der_of(&cert), &key), cert, label.to_owned())
}

// ---- Client certificates ----

#[tokio::test]
async fn expired_client_certificates_are_refused() {
    let dir = tempfile::tempdir().expect("tmp");

    // A partner CA, configured as an anchor for the demo organisation, with
    // one certificate whose validity has ended and one that is current.
    let partner_ca = PartnerCa::new();
    let partner = |expired: bool| partner_ca.identity(expired);
    let extra = partner_ca.anchor_config(dir.path(), DEMO_CVR);
    let ts = TestServer::start_with(dir.path(), &extra).await;

    // One of this CA's IdM certificates (est-enroll and admin-api), re-signed
    // with a validity that ended yesterday; the store holds that very DER.
    let org = demo_org(ts.app());
    let idm_profile = profile(&ts, "demo-idm");
    let (serial, fresh) = ts.issue_direct(&org, &idm_profile, "Expired IdM", 365);
    let expired_der = resign(&ts, &fresh.chain[0], |tbs| {
        tbs.validity = past_validity();
    });
    let past_unix = days_ago(1)
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("time")
        .as_secs();
    ts.app()
        .store
        .update_cert(&serial, |r| {
            r.der = expired_der.clone();
            r.not_after = past_unix;
            Ok::<(), ()>(())
        })
        .expect("db")
        .expect("update");
    let expired = Identity {
        chain: vec![CertificateDer::from(expired_der)],
        key: fresh.key.clone_key(),
    };
    let before = ts.cert_count();

    let mut c = ts.client(Some(&expired)).await;
    let r = c.enroll(ENROLL, &demo_csr("after-expiry").1).await;
    assert_refused(&r, 403, "client certificate has expired");
    let r = c.enroll(REENROLL, &demo_csr("Expired IdM").1).await;
    assert_refused(&r, 403, "client certificate has expired");
    let mut api = Api::with_cert(&ts, &expired).await;
    assert_problem(
        &api.get("/profiles").await,
        401,
        "client certificate has expired",
    );

    let mut c = ts.client(Some(&partner(true))).await;
    let r = c.enroll(ENROLL, &demo_csr("partner-expired").1).await;
    assert_refused(&r, 403, "client certificate has expired");
    assert_eq!(ts.cert_count(), before, "nothing was issued");

    // Controls: the same kinds of certificate, still valid, are accepted.
    let (_, current) = ts.issue_direct(&org, &idm_profile, "Current IdM", 365);
    let mut c = ts.client(Some(&current)).await;
    issued_cert(&c.enroll(ENROLL, &demo_csr("control-1").1).await);
    let mut c = ts.client(Some(&partner(false))).await;
    issued_cert(&c.enroll(ENROLL, &demo_csr("control-2").1).await);
    ts.shutdown().await;
}

#[tokio::test]
async fn revoked_client_certificate_is_refused_everywhere() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let mut op = Api::operator(&ts).await;
    // An IdM system certificate (est-enroll, admin-api) that works, and a
    // device certificate it enrolled, which could renew itself.
    let (serial, idm) =
        ts.issue_direct(&demo_org(ts.app()), &profile(&ts, "demo-idm"), "IdM 2", 365);
    let mut c = ts.client(Some(&idm)).await;
    let (device_key, csr) = demo_csr("device-r");
    let device = issued_cert(&c.enroll(ENROLL, &csr).await);
    let device_holder = Identity::new(der_of(&device), &device_key);
    assert_eq!(
        Api::with_cert(&ts, &idm)
            .await
            .get("/profiles")
            .await
            .status,
        200
    );

    // Both revoked through the admin API.
    for s in [serial, serial_of(&device)] {
        let r = op
            .post(
                &format!("/certificates/{s}/revoke"),
                json!({"reason": "suspected-misuse"}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.resp.text());
    }
    let before = ts.cert_count();

    // Re-enrolment with the revoked device certificate: the known failure.
    let mut d = ts.client(Some(&device_holder)).await;
    let r = d.enroll(REENROLL, &demo_csr("device-r").1).await;
    assert_refused(&r, 403, "client certificate is revoked");
    let r = d
        .enroll(
            "/.well-known/est/demo/simplereenroll",
            &demo_csr("device-r").1,
        )
        .await;
    assert_refused(&r, 403, "client certificate is revoked");

    // The revoked IdM: no enrolment, no renewal of itself, no admin API.
    let mut c = ts.client(Some(&idm)).await;
    let r = c.enroll(ENROLL, &demo_csr("device-after").1).await;
    assert_refused(&r, 403, "client certificate is revoked");
    let r = c.enroll(REENROLL, &demo_csr("IdM 2").1).await;
    assert_refused(&r, 403, "client certificate is revoked");
    let mut api = Api::with_cert(&ts, &idm).await;
    assert_problem(
        &api.get("/profiles").await,
        401,
        "client certificate is revoked",
    );
    assert_eq!(ts.cert_count(), before, "nothing was issued");
    ts.shutdown().await;
}

#[tokio::test]
async fn blocked_user_certificate_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let mut op = Api::operator(&ts).await;
    let (holder, cert, _label) = user_certificate(&ts, &mut op).await;
    // Control: before the block, the holder renews.
    let mut c = ts.client(Some(&holder)).await;
    issued_cert(&c.enroll(REENROLL, &demo_csr(USER_NAME).1).await);
    let r = op
        .call(
            "POST",
            &format!("/certificates/{}/block", serial_of(&cert)),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.resp.text());
    assert_eq!(r.body["status"], json!("blocked"));
    let before = ts.cert_count();
    let mut c = ts.client(Some(&holder)).await;
    let r = c.enroll(REENROLL, &demo_csr(USER_NAME).1).await;
    assert_refused(&r, 403, "client certificate is blocked");
    let r = c.enroll(ENROLL, &demo_csr(USER_NAME).1).await;
    assert_refused(&r, 403, "client certificate is blocked");
    assert_eq!(ts.cert_count(), before, "nothing was issued");
    ts.shutdown().await;
}

#[tokio::test]
async fn another_organisations_certificate_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    // Bravo's IdM system certificate, with est-enroll for Bravo.
    let bravo = ts.add_org(
        "55667780",
        "Bravo A/S",
        "bravo",
        vec![SystemRight::EstEnroll],
    );
    let bravo_csr =
        |cn: &str| csr_for("Bravo A/S", "55667780", cn, &rcgen::PKCS_ECDSA_P256_SHA256).1;
    let before = ts.cert_count();
    let mut c = ts.client(Some(&bravo)).await;
    // Under the demo organisation's profile, with either organisation's subject.
    let r = c.enroll(ENROLL, &bravo_csr("b-1")).await;
    assert_refused(&r, 403, "not permitted to enrol under this profile");
    let r = c.enroll(ENROLL, &demo_csr("d-1").1).await;
    assert_refused(&r, 403, "not permitted to enrol under this profile");
    // Under its own profile, a CSR naming the demo organisation.
    let r = c
        .enroll("/.well-known/est/bravo/simpleenroll", &demo_csr("d-2").1)
        .await;
    assert_refused(&r, 403, "the CSR names another organisation");
    // Renewing itself into the demo organisation, or under its profile.
    let r = c.enroll(REENROLL, &demo_csr("IdM").1).await;
    assert_refused(&r, 403, "Subject unchanged");
    let r = c
        .enroll("/.well-known/est/demo/simplereenroll", &bravo_csr("IdM"))
        .await;
    assert_refused(&r, 403, "label of the certificate's own profile");
    // The admin API: Bravo's certificate has no admin-api right.
    let mut api = Api::with_cert(&ts, &bravo).await;
    assert_problem(&api.get("/profiles").await, 403, "admin-api");
    assert_eq!(ts.cert_count(), before, "nothing was issued");
    // Control: its own profile and subject work.
    issued_cert(
        &c.enroll("/.well-known/est/bravo/simpleenroll", &bravo_csr("b-2"))
            .await,
    );
    ts.shutdown().await;
}

#[tokio::test]
async fn untrusted_client_certificates_are_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let demo = ts.demo_identity();
    let demo_cert = Certificate::from_der(&demo.chain[0]).expect("demo cert");
    let before = ts.cert_count();

    // 1. Self-signed, copying the demo IdM's subject.
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let mut p = subject_params(DEMO_ORG, DEMO_CVR, "Demo IdM system");
    p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let self_signed = Identity::new(p.self_signed(&key).expect("cert").der().to_vec(), &key);

    // 2. A CA nobody configured, sending its own certificate along.
    let rogue_ca = PartnerCa::named("Rogue CA");
    let leaf_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let leaf = rogue_ca.sign(&p, &leaf_key);
    let rogue_chain = Identity {
        chain: vec![
            CertificateDer::from(leaf.der().to_vec()),
            CertificateDer::from(rogue_ca.der().to_vec()),
        ],
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
    };

    // 3. A forgery of the demo IdM certificate: its issuer (our issuing CA's
    // name), serial and subject, with the forger's key, signed by the forger.
    let forger = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let forger_spki = spki::SubjectPublicKeyInfoOwned::from_der(
        &rcgen::PublicKeyData::subject_public_key_info(&forger),
    )
    .expect("spki");
    let forged_der = sign_with(&forger.serialize_der(), &demo.chain[0], |tbs| {
        tbs.subject_public_key_info = forger_spki;
    });
    let forged_cert = Certificate::from_der(&forged_der).expect("forged");
    assert_eq!(
        forged_cert.tbs_certificate.issuer,
        demo_cert.tbs_certificate.issuer
    );
    assert_eq!(
        forged_cert.tbs_certificate.serial_number,
        demo_cert.tbs_certificate.serial_number
    );
    let forged = Identity::new(forged_der, &forger);

    for (what, id) in [
        ("self-signed", &self_signed),
        ("rogue CA", &rogue_chain),
        ("forgery", &forged),
    ] {
        let mut c = ts.client(Some(id)).await;
        let r = c.enroll(ENROLL, &demo_csr("rogue").1).await;
        assert_eq!(r.status, 401, "{what}: {}", r.text());
        assert_refused(&r, 401, "client certificate is not issued by a trusted CA");
        let r = c.enroll(REENROLL, &demo_csr("Demo IdM system").1).await;
        assert_refused(&r, 401, "client certificate is not issued by a trusted CA");
        let mut api = Api::with_cert(&ts, id).await;
        assert_problem(
            &api.get("/profiles").await,
            401,
            "client certificate is not issued by a trusted CA",
        );
    }

    // 4. Signed with our issuing CA's key but never issued (not in the store):
    // the server's record, not the signature alone, decides.
    let (_, fresh) = ts.issue_direct(
        &demo_org(ts.app()),
        &profile(&ts, "demo-idm"),
        "Never issued",
        365,
    );
    let unknown_serial = estd::ca::new_serial(std::time::SystemTime::now()).expect("serial");
    let unknown_der = resign(&ts, &fresh.chain[0], |tbs| {
        tbs.serial_number =
            x509_cert::serial_number::SerialNumber::new(&unknown_serial.0).expect("serial");
    });
    let unknown = Identity {
        chain: vec![CertificateDer::from(unknown_der)],
        key: fresh.key.clone_key(),
    };
    let before_unknown = ts.cert_count();
    let mut c = ts.client(Some(&unknown)).await;
    let r = c.enroll(ENROLL, &demo_csr("unknown").1).await;
    assert_refused(&r, 403, "client certificate is not known to this server");
    let r = c.enroll(REENROLL, &demo_csr("Never issued").1).await;
    assert_refused(&r, 403, "client certificate is not known to this server");
    let mut api = Api::with_cert(&ts, &unknown).await;
    assert_problem(
        &api.get("/profiles").await,
        401,
        "client certificate is not known to this server",
    );
    assert_eq!(ts.cert_count(), before_unknown, "nothing was issued");
    assert_eq!(before_unknown, before + 1, "only the set-up certificate");
    // Control: the genuine certificate behind the forgery works.
    let mut c = ts.client(Some(&demo)).await;
    issued_cert(&c.enroll(ENROLL, &demo_csr("genuine").1).await);
    ts.shutdown().await;
}

// ---- Enrolment ----

#[tokio::test]
async fn system_certificate_without_est_enroll_cannot_enrol() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let org = demo_org(ts.app());
    // A device certificate of the demo profile (no rights), and an admin-only one.
    let (_, device) = ts.issue_direct(&org, &profile(&ts, "demo"), "plain device", 365);
    let mut admin_only = profile(&ts, "demo-idm");
    admin_only.rights = vec![SystemRight::AdminApi];
    let (_, admin) = ts.issue_direct(&org, &admin_only, "admin only", 365);
    let before = ts.cert_count();
    for id in [&device, &admin] {
        let mut c = ts.client(Some(id)).await;
        for path in [ENROLL, "/.well-known/est/simpleenroll"] {
            let r = c.enroll(path, &demo_csr("new device").1).await;
            assert_refused(
                &r,
                403,
                "the client certificate does not carry the est-enroll right",
            );
        }
    }
    assert_eq!(ts.cert_count(), before, "nothing was issued");
    // Control: the same request with the est-enroll right.
    let mut c = ts.client(Some(&ts.demo_identity())).await;
    issued_cert(&c.enroll(ENROLL, &demo_csr("new device").1).await);
    ts.shutdown().await;
}

#[tokio::test]
async fn user_certificate_cannot_enrol_for_someone_else() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let mut op = Api::operator(&ts).await;

    // Collecting a user order: the CSR must name the user it was ordered for.
    let mut b = profile_body("Staff B", "staff-b", "one-time-code");
    b["order"] = json!({"user": {"name": USER_NAME, "email": USER_EMAIL}});
    let created = create_profile(&mut op, b).await;
    let reference = created["order"]["reference"].as_str().expect("reference");
    let code = created["order"]["code"].as_str().expect("code");
    let before = ts.cert_count();
    let other_name = demo_csr_with("Anne Andersen", |_| {});
    let r = collect(&ts, "staff-b", reference, code, &other_name).await;
    assert_refused(&r, 403, "CN must be \"Jens Jensen\", as ordered");
    let other_san = demo_csr_with(USER_NAME, |p| {
        p.subject_alt_names = vec![rcgen::SanType::Rfc822Name(ia5("anne@demo.example"))];
    });
    let r = collect(&ts, "staff-b", reference, code, &other_san).await;
    assert_refused(
        &r,
        403,
        "subject alternative name not allowed: e-mail anne@demo.example",
    );
    let other_subject_email = demo_csr_with(USER_NAME, |p| {
        p.distinguished_name.push(
            rcgen::DnType::CustomDnType(EMAIL_ADDRESS_OID.to_vec()),
            rcgen::DnValue::Ia5String(ia5("anne@demo.example")),
        );
    });
    let r = collect(&ts, "staff-b", reference, code, &other_subject_email).await;
    assert_refused(&r, 403, "emailAddress is not allowed in the subject");
    assert_eq!(ts.cert_count(), before, "nothing was issued");
    // Control: the refusals spent nothing; the right CSR collects.
    let r = collect(&ts, "staff-b", reference, code, &demo_csr(USER_NAME).1).await;
    issued_cert(&r);

    // Holding Jens's certificate: neither renewal nor enrolment for Anne.
    let (holder, cert, label) = user_certificate(&ts, &mut op).await;
    let before = ts.cert_count();
    let mut c = ts.client(Some(&holder)).await;
    let r = c.enroll(REENROLL, &other_name).await;
    assert_refused(
        &r,
        403,
        "re-enrolment must keep the certificate's Subject unchanged",
    );
    let r = c.enroll(REENROLL, &other_subject_email).await;
    assert_refused(
        &r,
        403,
        "re-enrolment must keep the certificate's Subject unchanged",
    );
    let r = c.enroll(REENROLL, &other_san).await;
    assert_refused(
        &r,
        403,
        "re-enrolment must keep the certificate's SubjectAltName unchanged",
    );
    for path in [
        "/.well-known/est/simpleenroll".to_owned(),
        format!("/.well-known/est/{label}/simpleenroll"),
        ENROLL.to_owned(),
    ] {
        let r = c.enroll(&path, &other_name).await;
        assert_refused(
            &r,
            403,
            "the client certificate does not carry the est-enroll right",
        );
    }
    assert_eq!(ts.cert_count(), before, "nothing was issued");
    // Control: renewing as Jens, with Jens's name, works and keeps the e-mail.
    let renewed = issued_cert(&c.enroll(REENROLL, &demo_csr(USER_NAME).1).await);
    assert_eq!(
        renewed.tbs_certificate.subject,
        cert.tbs_certificate.subject
    );
    assert_eq!(
        estd::policy::cert_sans(&renewed),
        estd::policy::cert_sans(&cert)
    );
    ts.shutdown().await;
}

#[tokio::test]
async fn csr_asking_for_more_than_the_profile_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let before = ts.cert_count();
    let mut c = ts.client(Some(&ts.demo_identity())).await;
    // The demo profile: system certificates, DNS names below
    // .devices.demo.example, no IP addresses, no e-mail.
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "CA:true",
            demo_csr_with("ca", |p| {
                p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            }),
            "requested extension not allowed: CA:true",
        ),
        (
            "CA:true with a path length",
            demo_csr_with("ca", |p| {
                p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
            }),
            "requested extension not allowed: CA:true",
        ),
        (
            "keyCertSign",
            demo_csr_with("ku", |p| {
                p.key_usages = vec![
                    rcgen::KeyUsagePurpose::DigitalSignature,
                    rcgen::KeyUsagePurpose::KeyCertSign,
                ];
            }),
            "requested extension not allowed: keyUsage beyond the profile's",
        ),
        (
            "cRLSign",
            demo_csr_with("ku", |p| {
                p.key_usages = vec![rcgen::KeyUsagePurpose::CrlSign];
            }),
            "requested extension not allowed: keyUsage beyond the profile's",
        ),
        (
            "codeSigning",
            demo_csr_with("eku", |p| {
                p.extended_key_usages = vec![
                    rcgen::ExtendedKeyUsagePurpose::ClientAuth,
                    rcgen::ExtendedKeyUsagePurpose::CodeSigning,
                ];
            }),
            "requested extension not allowed: extendedKeyUsage 1.3.6.1.5.5.7.3.3",
        ),
        (
            "OCSPSigning",
            demo_csr_with("eku", |p| {
                p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::OcspSigning];
            }),
            "requested extension not allowed: extendedKeyUsage 1.3.6.1.5.5.7.3.9",
        ),
        (
            "emailProtection on a system profile",
            demo_csr_with("eku", |p| {
                p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::EmailProtection];
            }),
            "requested extension not allowed: extendedKeyUsage 1.3.6.1.5.5.7.3.4",
        ),
        (
            "a DNS name outside the profile",
            demo_csr_with("san", |p| {
                p.subject_alt_names = vec![rcgen::SanType::DnsName(ia5("www.bank.example"))];
            }),
            "subject alternative name not allowed: DNS name www.bank.example",
        ),
        (
            "the profile's DNS suffix itself",
            demo_csr_with("san", |p| {
                p.subject_alt_names = vec![rcgen::SanType::DnsName(ia5("devices.demo.example"))];
            }),
            "subject alternative name not allowed: DNS name devices.demo.example",
        ),
        (
            "a look-alike DNS suffix",
            demo_csr_with("san", |p| {
                p.subject_alt_names =
                    vec![rcgen::SanType::DnsName(ia5("x.evildevices.demo.example"))];
            }),
            "subject alternative name not allowed: DNS name x.evildevices.demo.example",
        ),
        (
            "an IP address",
            demo_csr_with("san", |p| {
                p.subject_alt_names = vec![rcgen::SanType::IpAddress(std::net::IpAddr::from([
                    10, 0, 0, 1,
                ]))];
            }),
            "subject alternative name not allowed: IP address",
        ),
        (
            // An e-mail address other than the profile's names a user, who
            // needs a pending order (tests/it/api_user_orders.rs).
            "an e-mail SAN",
            demo_csr_with("san", |p| {
                p.subject_alt_names = vec![rcgen::SanType::Rfc822Name(ia5("ceo@demo.example"))];
            }),
            "the CSR names a user (its rfc822Name is not the profile's e-mail address), and no \
             pending order",
        ),
        (
            "a URI SAN",
            demo_csr_with("san", |p| {
                p.subject_alt_names = vec![rcgen::SanType::URI(ia5("https://demo.example/"))];
            }),
            "subject alternative name not allowed: only DNS, IP and e-mail names are allowed",
        ),
        (
            "an emailAddress in the subject",
            demo_csr_with("mail", |p| {
                p.distinguished_name.push(
                    rcgen::DnType::CustomDnType(EMAIL_ADDRESS_OID.to_vec()),
                    rcgen::DnValue::Ia5String(ia5("ceo@demo.example")),
                );
            }),
            "subject not allowed: emailAddress is not allowed in the subject",
        ),
    ];
    for (what, csr, reason) in &cases {
        let r = c.enroll(ENROLL, csr).await;
        assert_eq!(r.status, 403, "{what}: {}", r.text());
        assert_refused(&r, 403, reason);
    }
    assert_eq!(ts.cert_count(), before, "nothing was issued");
    // Control: what the profile does allow.
    let ok = demo_csr_with("allowed", |p| {
        p.subject_alt_names = vec![rcgen::SanType::DnsName(ia5("a.devices.demo.example"))];
        p.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        p.is_ca = rcgen::IsCa::ExplicitNoCa;
    });
    let cert = issued_cert(&c.enroll(ENROLL, &ok).await);
    assert_eq!(estd::policy::cert_sans(&cert).len(), 1);
    ts.shutdown().await;
}

/// A DER CSR for the demo organisation made by the openssl CLI with `newkey`
/// arguments (for keys rcgen cannot make).
fn openssl_csr(dir: &Path, name: &str, newkey: &[&str]) -> Vec<u8> {
    let out_path = dir.join(format!("{name}.der"));
    let mut args: Vec<String> = vec!["req".into(), "-new".into(), "-nodes".into()];
    args.extend(newkey.iter().map(|s| (*s).to_owned()));
    args.extend([
        "-keyout".into(),
        dir.join(format!("{name}.key")).display().to_string(),
        "-subj".into(),
        format!("/C=DK/O={DEMO_ORG}/organizationIdentifier=NTRDK-{DEMO_CVR}/CN={name}"),
        "-outform".into(),
        "DER".into(),
        "-out".into(),
        out_path.display().to_string(),
    ]);
    let out = Command::new("openssl")
        .args(&args)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(out_path).expect("csr")
}

#[tokio::test]
async fn weak_keys_are_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).expect("work dir");
    let ts = TestServer::start(dir.path()).await;
    let mut op = Api::operator(&ts).await;
    let mut b = profile_body("Strong RSA", "rsa3072", "api");
    b["key_policy"] = json!({"allowed": ["rsa", "p256"], "min_rsa_bits": 3072});
    create_profile(&mut op, b).await;
    let mut b = profile_body("P-256 only", "p256-only", "api");
    b["key_policy"] = json!({"allowed": ["p256"]});
    create_profile(&mut op, b).await;

    let rsa1024 = openssl_csr(&work, "rsa1024", &["-newkey", "rsa:1024"]);
    let p192 = openssl_csr(
        &work,
        "p192",
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime192v1"],
    );
    let rsa2048 = openssl_csr(&work, "rsa2048", &["-newkey", "rsa:2048"]);
    let before = ts.cert_count();
    let mut c = ts.client(Some(&ts.demo_identity())).await;
    // Never accepted, whatever the profile.
    let r = c.enroll(ENROLL, &rsa1024).await;
    assert_refused(
        &r,
        400,
        "unsupported subject key: RSA-1024 (accepted: 2048 to 4096 bits)",
    );
    let r = c.enroll(ENROLL, &p192).await;
    assert_refused(
        &r,
        400,
        "unsupported subject key: EC curve 1.2.840.10045.3.1.1 (accepted: P-256, P-384)",
    );
    // Below a profile's own floor, or a type it does not take.
    let r = c
        .enroll("/.well-known/est/rsa3072/simpleenroll", &rsa2048)
        .await;
    assert_refused(
        &r,
        403,
        "key not allowed by the profile: RSA-2048 is below the profile's 3072 bits",
    );
    let (_k, p384) = csr_for(DEMO_ORG, DEMO_CVR, "p384", &rcgen::PKCS_ECDSA_P384_SHA384);
    let r = c
        .enroll("/.well-known/est/p256-only/simpleenroll", &p384)
        .await;
    assert_refused(&r, 403, "key not allowed by the profile: P384");
    // A holder cannot renew onto a weak key either.
    let (key, csr) = demo_csr("rsa1024");
    let cert = issued_cert(&c.enroll(ENROLL, &csr).await);
    let before_renewal = ts.cert_count();
    let mut holder = ts.client(Some(&Identity::new(der_of(&cert), &key))).await;
    let r = holder.enroll(REENROLL, &rsa1024).await;
    assert_refused(&r, 400, "RSA-1024");
    assert_eq!(ts.cert_count(), before_renewal);
    assert_eq!(before_renewal, before + 1, "only the control certificate");
    // Control: the openssl-made RSA-2048 CSR is fine under the demo profile.
    issued_cert(&c.enroll(ENROLL, &rsa2048).await);
    ts.shutdown().await;
}

// ---- TLS ----

/// A TLS ClientHello record. `legacy_version` goes in the hello;
/// `supported_versions`, if given, is sent as that extension (TLS 1.3 style).
fn client_hello(legacy_version: u16, supported_versions: Option<&[u16]>) -> Vec<u8> {
    fn u16be(v: u16) -> [u8; 2] {
        v.to_be_bytes()
    }
    fn ext(out: &mut Vec<u8>, kind: u16, data: &[u8]) {
        out.extend(u16be(kind));
        out.extend(u16be(data.len() as u16));
        out.extend(data);
    }
    let mut random = [0u8; 32];
    aws_lc_rs::rand::fill(&mut random).expect("random");
    let mut body = Vec::new();
    body.extend(u16be(legacy_version));
    body.extend(random);
    body.push(0); // no session id
                  // ECDHE-ECDSA/RSA with AES-GCM (TLS 1.2), the same with CBC-SHA (TLS 1.0
                  // and 1.1), AES128-SHA, and TLS_AES_128_GCM_SHA256.
    let suites: [u16; 7] = [0xc02b, 0xc02f, 0xc009, 0xc013, 0x002f, 0x0035, 0x1301];
    body.extend(u16be((suites.len() * 2) as u16));
    for s in suites {
        body.extend(u16be(s));
    }
    body.extend([1, 0]); // compression: null
    let mut exts = Vec::new();
    ext(&mut exts, 0x000a, &[0, 4, 0x00, 0x1d, 0x00, 0x17]); // groups: x25519, P-256
    ext(&mut exts, 0x000b, &[1, 0]); // EC point formats: uncompressed
    let sig_algs: [u16; 6] = [0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501];
    let mut sa = u16be((sig_algs.len() * 2) as u16).to_vec();
    for s in sig_algs {
        sa.extend(u16be(s));
    }
    ext(&mut exts, 0x000d, &sa);
    if let Some(versions) = supported_versions {
        let mut sv = vec![(versions.len() * 2) as u8];
        for v in versions {
            sv.extend(u16be(*v));
        }
        ext(&mut exts, 0x002b, &sv);
    }
    body.extend(u16be(exts.len() as u16));
    body.extend(exts);
    let mut handshake = vec![1]; // client_hello
    handshake.extend(&(body.len() as u32).to_be_bytes()[1..]);
    handshake.extend(body);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend(u16be(handshake.len() as u16));
    record.extend(handshake);
    record
}

/// Sends a ClientHello and returns the first record's type and the first
/// bytes of its body, or `None` if the server closed without answering.
async fn first_record(addr: SocketAddr, hello: &[u8]) -> Option<(u8, Vec<u8>)> {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(hello).await.expect("write");
    let read = async {
        let mut header = [0u8; 5];
        s.read_exact(&mut header).await.ok()?;
        let len = u16::from_be_bytes([header[3], header[4]]) as usize;
        let mut body = vec![0u8; len.min(64)];
        s.read_exact(&mut body).await.ok()?;
        Some((header[0], body))
    };
    tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .expect("the server answers or closes")
}

const ALERT: u8 = 21;
const HANDSHAKE: u8 = 22;
const PROTOCOL_VERSION: u8 = 70;

#[tokio::test]
async fn tls_1_0_and_1_1_handshakes_are_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    for addr in [ts.server.est_addr, ts.server.admin_addr] {
        // Control: the same hello as TLS 1.2 gets a ServerHello for TLS 1.2.
        let answer = first_record(addr, &client_hello(0x0303, None)).await;
        let (kind, body) = answer.expect("an answer to a TLS 1.2 hello");
        assert_eq!(kind, HANDSHAKE, "{body:?}");
        assert_eq!(body[0], 2, "a ServerHello");
        assert_eq!(&body[4..6], &[3, 3], "TLS 1.2");

        for (what, hello) in [
            ("TLS 1.0", client_hello(0x0301, None)),
            ("TLS 1.1", client_hello(0x0302, None)),
            (
                "TLS 1.0 and 1.1 in supported_versions",
                client_hello(0x0303, Some(&[0x0302, 0x0301])),
            ),
        ] {
            match first_record(addr, &hello).await {
                Some((kind, body)) => {
                    assert_eq!(
                        kind, ALERT,
                        "{what}: answered with record type {kind}, not an alert"
                    );
                    assert_eq!(
                        body[..2],
                        [2, PROTOCOL_VERSION],
                        "{what}: a fatal protocol_version alert"
                    );
                }
                None => panic!("{what}: closed without the protocol_version alert"),
            }
        }
    }
    ts.shutdown().await;
}

// ---- One-time codes ----

#[tokio::test]
async fn one_time_code_works_once() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let mut op = Api::operator(&ts).await;

    // One after the other.
    let (reference, code) = code_order(&mut op, "Door controller", "doors").await;
    let first = issued_cert(
        &collect(
            &ts,
            "doors",
            &reference,
            &code,
            &demo_csr("Door controller").1,
        )
        .await,
    );
    let before = ts.cert_count();
    let again = collect(
        &ts,
        "doors",
        &reference,
        &code,
        &demo_csr("Door controller").1,
    )
    .await;
    assert_refused(
        &again,
        401,
        "unknown reference number or wrong one-time code",
    );
    assert_eq!(
        again.header("www-authenticate"),
        Some("Basic realm=\"estd\"")
    );
    // Not with the other collection operation either.
    let mut c = ts.client(None).await;
    let basic = format!("Basic {}", b64(format!("{reference}:{code}").as_bytes()));
    let r = c
        .send(
            "POST",
            "/.well-known/est/serverkeygen",
            &[
                ("content-type", "application/pkcs10"),
                ("authorization", &basic),
            ],
            b64(&demo_csr("Door controller").1).into_bytes(),
        )
        .await;
    assert_refused(&r, 401, "unknown reference number or wrong one-time code");
    assert_eq!(ts.cert_count(), before, "nothing more was issued");
    let order = ts
        .app()
        .store
        .order(&reference)
        .expect("db")
        .expect("order");
    assert_eq!(
        order.status,
        estd::model::OrderStatus::Issued {
            serial: serial_of(&first)
        }
    );

    // At the same time: of eight simultaneous uses, exactly one gets a certificate.
    let (reference, code) = code_order(&mut op, "Gate controller", "gates").await;
    let before = ts.cert_count();
    let addr = ts.server.est_addr;
    let root = ts.root_der();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (root, reference, code) = (root.clone(), reference.clone(), code.clone());
        let csr = demo_csr("Gate controller").1;
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(addr, &root, None, false).await;
            let basic = format!("Basic {}", b64(format!("{reference}:{code}").as_bytes()));
            c.send(
                "POST",
                "/.well-known/est/gates/simpleenroll",
                &[
                    ("content-type", "application/pkcs10"),
                    ("authorization", &basic),
                ],
                b64(&csr).into_bytes(),
            )
            .await
        }));
    }
    let mut issued = Vec::new();
    for t in tasks {
        let r = t.await.expect("task");
        if r.status == 200 {
            issued.push(serial_of(&issued_cert(&r)));
        } else {
            assert_refused(&r, 401, "unknown reference number or wrong one-time code");
        }
    }
    assert_eq!(issued.len(), 1, "exactly one collection succeeds");
    assert_eq!(
        ts.cert_count(),
        before + 1,
        "exactly one certificate stored"
    );
    let order = ts
        .app()
        .store
        .order(&reference)
        .expect("db")
        .expect("order");
    assert_eq!(
        order.status,
        estd::model::OrderStatus::Issued { serial: issued[0] }
    );
    ts.shutdown().await;
}

#[tokio::test]
async fn five_wrong_codes_lock_the_order() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let mut op = Api::operator(&ts).await;
    let (reference, code) = code_order(&mut op, "Meter", "meters").await;
    let before = ts.cert_count();
    let csr = demo_csr("Meter").1;
    // An unknown reference number answers exactly like a wrong code.
    let unknown = collect(&ts, "meters", "999999999999", &code, &csr).await;
    assert_refused(
        &unknown,
        401,
        "unknown reference number or wrong one-time code",
    );
    for i in 0..5 {
        let guess = format!("GUESS{i:011}");
        let r = collect(&ts, "meters", &reference, &guess, &csr).await;
        assert_refused(&r, 401, "unknown reference number or wrong one-time code");
        assert_eq!(r.text(), unknown.text(), "no oracle for a known reference");
    }
    // Locked: the right code fails, and so do further guesses.
    let r = collect(&ts, "meters", &reference, &code, &csr).await;
    assert_refused(&r, 403, "the order is locked after 5 wrong codes");
    let r = collect(&ts, "meters", &reference, "GUESS00000000099", &csr).await;
    assert_refused(&r, 403, "the order is locked after 5 wrong codes");
    assert_eq!(ts.cert_count(), before, "nothing was issued");
    let order = ts
        .app()
        .store
        .order(&reference)
        .expect("db")
        .expect("order");
    assert_eq!(order.status, estd::model::OrderStatus::Pending);
    // The operator sees it locked.
    let r = op.get(&format!("/orders/{reference}")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["locked"], json!(true), "{}", r.body);

    // Control: four wrong codes on another order do not lock it.
    let (reference, code) = code_order(&mut op, "Meter 2", "meters-2").await;
    let csr = demo_csr("Meter 2").1;
    for i in 0..4 {
        let r = collect(&ts, "meters-2", &reference, &format!("GUESS{i:011}"), &csr).await;
        assert_eq!(r.status, 401);
    }
    issued_cert(&collect(&ts, "meters-2", &reference, &code, &csr).await);
    ts.shutdown().await;
}

// ---- Admin API ----

#[tokio::test]
async fn admin_api_refuses_missing_and_wrong_credentials() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let demo_serial =
        serial_of(&Certificate::from_der(&ts.demo_identity().chain[0]).expect("cert"));
    let demo_profile = profile(&ts, "demo");
    let orgs_before = ts.app().store.orgs().count();

    // No credentials at all.
    let mut anon = Api::anonymous(&ts).await;
    let required = "a bearer token, a session (POST /api/v1/login), or a client certificate with \
         the admin-api right, is required";
    for path in [
        "/profiles".to_owned(),
        "/organisations".to_owned(),
        "/orders".to_owned(),
        "/audit".to_owned(),
        "/export.csv".to_owned(),
        format!("/certificates/{demo_serial}"),
    ] {
        let r = anon.get(&path).await;
        assert_problem(&r, 401, required);
        assert_eq!(
            r.resp.header("www-authenticate"),
            Some("Bearer realm=\"estd-admin\"")
        );
    }
    let create_org = json!({"cvr": "66667774", "name": "Anon A/S"});
    assert_problem(
        &anon.post("/organisations", create_org.clone()).await,
        401,
        required,
    );
    let revoke = json!({"reason": "suspected-misuse"});
    assert_problem(
        &anon
            .post(
                &format!("/certificates/{demo_serial}/revoke"),
                revoke.clone(),
            )
            .await,
        401,
        required,
    );
    assert_problem(
        &anon
            .patch(
                &format!("/profiles/{}", demo_profile.id),
                json!({"name": "Pwned"}),
            )
            .await,
        401,
        required,
    );

    // Wrong tokens: made up, one character off, with a suffix.
    let real = ts.operator_token();
    let mut off_by_one = real.clone().into_bytes();
    let last = off_by_one.len() - 1;
    off_by_one[last] = if off_by_one[last] == b'A' { b'B' } else { b'A' };
    let off_by_one = String::from_utf8(off_by_one).expect("ascii");
    for token in [
        "estd_not-a-real-token".to_owned(),
        off_by_one,
        format!("{real}x"),
    ] {
        let mut wrong = Api::token(&ts, &token).await;
        assert_problem(
            &wrong.get("/profiles").await,
            401,
            "the bearer token is not valid",
        );
        assert_problem(
            &wrong.post("/organisations", create_org.clone()).await,
            401,
            "the bearer token is not valid",
        );
        assert_problem(
            &wrong
                .post(
                    &format!("/certificates/{demo_serial}/revoke"),
                    revoke.clone(),
                )
                .await,
            401,
            "the bearer token is not valid",
        );
    }
    // Not a bearer token, an empty one, or two Authorization headers.
    let mut c = ts.admin_client(None).await;
    for auth in ["Basic dXNlcjpwYXNz", "Bearer ", "Bearer", "Token abc"] {
        let r = c
            .send(
                "GET",
                "/api/v1/profiles",
                &[("authorization", auth)],
                vec![],
            )
            .await;
        assert_eq!(r.status, 401, "{auth}: {}", r.text());
        assert_eq!(
            detail_of(&r),
            "the Authorization header must be \"Bearer <token>\"",
            "{auth}"
        );
    }
    let good = format!("Bearer {real}");
    let r = c
        .send(
            "GET",
            "/api/v1/profiles",
            &[
                ("authorization", "Bearer estd_wrong"),
                ("authorization", &good),
            ],
            vec![],
        )
        .await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(detail_of(&r), "more than one Authorization header");
    // A wrong token beside a client certificate with admin-api: the token decides.
    let mut both = Api {
        client: ts.admin_client(Some(&ts.demo_identity())).await,
        authorization: Some("Bearer estd_wrong".into()),
        session: None,
    };
    assert_problem(
        &both.get("/profiles").await,
        401,
        "the bearer token is not valid",
    );

    // Nothing changed.
    assert!(ts.app().store.org("66667774").expect("db").is_none());
    assert_eq!(ts.app().store.orgs().count(), orgs_before);
    let rec = ts
        .app()
        .store
        .cert(&demo_serial)
        .expect("db")
        .expect("cert");
    assert_eq!(
        rec.state(estd::model::now_unix()),
        estd::model::CertState::Issued
    );
    assert_eq!(profile(&ts, "demo").name, demo_profile.name);
    // Control: the real token works.
    let mut op = Api::operator(&ts).await;
    assert_eq!(op.get("/profiles").await.status, 200);
    ts.shutdown().await;
}

#[tokio::test]
async fn admin_api_token_of_another_organisation_sees_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let mut op = Api::operator(&ts).await;
    let store = &ts.app().store;

    // The demo organisation (A): a pending one-time-code order, an
    // approval-held enrolment, a device certificate and a user certificate.
    let (pending, pending_code) = code_order(&mut op, "Door controller", "doors").await;
    let mut b = profile_body("Held servers", "held", "api");
    b["approval_required"] = json!(true);
    let held_profile = create_profile(&mut op, b).await["profile"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let mut idm = ts.client(Some(&ts.demo_identity())).await;
    let (_k, held_csr) = demo_csr("server-1");
    let held_path = "/.well-known/est/held/simpleenroll";
    assert_eq!(idm.enroll(held_path, &held_csr).await.status, 202);
    let mut hash = [0u8; 32];
    hash.copy_from_slice(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &held_csr).as_ref());
    let held = store.held_order(&hash).expect("db").expect("held").id;
    let device = serial_of(&issued_cert(&idm.enroll(ENROLL, &demo_csr("dev").1).await));
    let (_, user_cert, _) = user_certificate(&ts, &mut op).await;
    let user = serial_of(&user_cert);
    let demo_profile = profile(&ts, "demo");

    // Bravo (B) and its token.
    let r = op
        .post(
            "/organisations",
            json!({"cvr": "55667780", "name": "Bravo A/S"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.resp.text());
    let r = op
        .post("/organisations/55667780/tokens", json!({"name": "bravo"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.resp.text());
    let mut bravo = Api::token(&ts, r.body["token"].as_str().expect("token")).await;
    let orders_before = store.orders().count();
    let certs_before = ts.cert_count();
    let tokens_audit_before = store.audit_events().count();

    let not_found = [
        (
            "GET",
            format!("/profiles/{}", demo_profile.id),
            None,
            "profile not found",
        ),
        (
            "PATCH",
            format!("/profiles/{held_profile}"),
            Some(json!({"approval_required": false})),
            "profile not found",
        ),
        (
            "GET",
            format!("/profiles/{}/certificates.csv", demo_profile.id),
            None,
            "profile not found",
        ),
        ("GET", format!("/orders/{pending}"), None, "order not found"),
        (
            "DELETE",
            format!("/orders/{pending}"),
            None,
            "order not found",
        ),
        (
            "POST",
            format!("/orders/{pending}/code"),
            Some(json!({})),
            "order not found",
        ),
        (
            "POST",
            format!("/orders/{held}/approve"),
            Some(json!({})),
            "order not found",
        ),
        (
            "POST",
            format!("/orders/{held}/reject"),
            Some(json!({})),
            "order not found",
        ),
        (
            "POST",
            "/orders".to_owned(),
            Some(json!({"profile_id": demo_profile.id})),
            "profile not found",
        ),
        (
            "GET",
            format!("/certificates/{device}"),
            None,
            "certificate not found",
        ),
        (
            "POST",
            format!("/certificates/{device}/revoke"),
            Some(json!({"reason": "other"})),
            "certificate not found",
        ),
        (
            "POST",
            format!("/certificates/{device}/renew"),
            Some(json!({})),
            "certificate not found",
        ),
        (
            "POST",
            format!("/certificates/{user}/block"),
            Some(json!({})),
            "certificate not found",
        ),
        (
            "GET",
            format!("/organisations/{DEMO_CVR}"),
            None,
            "organisation not found",
        ),
        (
            "PATCH",
            format!("/organisations/{DEMO_CVR}"),
            Some(json!({"allow_seal": true})),
            "organisation not found",
        ),
        (
            "GET",
            format!("/export.csv?cvr={DEMO_CVR}"),
            None,
            "organisation not found",
        ),
    ];
    for (method, path, body, detail) in not_found {
        let r = bravo.call(method, &path, body).await;
        assert_eq!(r.status, 404, "{method} {path}: {}", r.resp.text());
        assert_problem(&r, 404, detail);
    }
    // Tokens are an operator's to create: refused for the role, before any
    // organisation is looked up, so the answer tells nothing of A.
    let r = bravo
        .post(
            &format!("/organisations/{DEMO_CVR}/tokens"),
            json!({"name": "mine now"}),
        )
        .await;
    assert_problem(&r, 403, "needs one of the roles operator");
    let mut b = profile_body("Into A", "into-a", "api");
    b["cvr"] = json!(DEMO_CVR);
    let r = bravo.post("/profiles", b).await;
    assert_problem(&r, 400, "no organisation with CVR 12345674");
    assert_eq!(r.body["field"], json!("cvr"));
    // Lists and history hold nothing of A's.
    for path in [
        format!("/audit?cvr={DEMO_CVR}"),
        format!("/notifications?cvr={DEMO_CVR}"),
        format!("/profiles?cvr={DEMO_CVR}"),
        "/orders".to_owned(),
        "/profiles".to_owned(),
    ] {
        let r = bravo.get(&path).await;
        assert_eq!(r.status, 200, "{path}: {}", r.resp.text());
        let items = r.body["items"].as_array().expect("items");
        assert!(items.is_empty(), "{path}: {}", r.body);
    }
    let r = bravo.get("/audit").await;
    assert!(r.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .all(|e| e["cvr"] == json!("55667780")));
    let r = bravo.get("/organisations").await;
    assert_eq!(r.body["total"], json!(1));

    // Nothing of A's changed.
    assert_eq!(store.orders().count(), orders_before, "no order created");
    assert_eq!(ts.cert_count(), certs_before, "no certificate issued");
    let now = estd::model::now_unix();
    for s in [device, user] {
        let rec = store.cert(&s).expect("db").expect("cert");
        assert_eq!(rec.state(now), estd::model::CertState::Issued);
    }
    let order = |id: &str| store.order(id).expect("db").expect("order");
    assert_eq!(order(&pending).status.name(), "pending");
    assert_eq!(order(&held).status.name(), "pending");
    assert!(
        store
            .profile(&held_profile)
            .expect("db")
            .expect("profile")
            .approval_required
    );
    assert!(!demo_org(ts.app()).allow_seal);
    assert_eq!(
        store
            .audit_events()
            .filter_map(Result::ok)
            .skip(tokens_audit_before)
            .filter(|e| e.outcome == estd::model::AuditOutcome::Done)
            .count(),
        0,
        "no action was done"
    );
    // Controls: the held enrolment is still held, the original code still works.
    assert_eq!(idm.enroll(held_path, &held_csr).await.status, 202);
    issued_cert(
        &collect(
            &ts,
            "doors",
            &pending,
            &pending_code,
            &demo_csr("Door controller").1,
        )
        .await,
    );
    ts.shutdown().await;
}

// ---- Known failures of other EST servers ----

#[tokio::test]
async fn registration_authority_peer_cannot_bypass_the_cas_restrictions() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let store = &ts.app().store;
    let mut op = Api::operator(&ts).await;
    const BRAVO: &str = "55667780";
    let bravo_csr = |cn: &str| csr_for("Bravo A/S", BRAVO, cn, &rcgen::PKCS_ECDSA_P256_SHA256).1;

    // The CA's restrictions on A (the demo organisation): no user
    // certificates, no seals, no P numbers. Set by the operator.
    let r = op
        .patch(
            &format!("/organisations/{DEMO_CVR}"),
            json!({"allow_user_certs": false}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.resp.text());
    let org_before = demo_org(ts.app());
    // B, with an IdM (est-enroll, admin-api) and an approval-held profile on
    // which B's enrolment waits.
    let bravo = ts.add_org(
        BRAVO,
        "Bravo A/S",
        "bravo",
        vec![SystemRight::EstEnroll, SystemRight::AdminApi],
    );
    let bravo_serial = serial_of(&Certificate::from_der(&bravo.chain[0]).expect("cert"));
    let bravo_profile = profile(&ts, "bravo");
    let mut b = profile_body("Bravo held", "bravo-held", "api");
    b["cvr"] = json!(BRAVO);
    b["approval_required"] = json!(true);
    create_profile(&mut op, b).await;
    let held_csr = bravo_csr("bravo-server");
    let mut bc = ts.client(Some(&bravo)).await;
    let bravo_held = "/.well-known/est/bravo-held/simpleenroll";
    assert_eq!(bc.enroll(bravo_held, &held_csr).await.status, 202);
    let mut hash = [0u8; 32];
    hash.copy_from_slice(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &held_csr).as_ref());
    let held = store.held_order(&hash).expect("db").expect("held").id;
    let certs_before = ts.cert_count();
    let orders_before = store.orders().count();

    // A's IdM (est-enroll and admin-api for A) over EST.
    let a = ts.demo_identity();
    let mut c = ts.client(Some(&a)).await;
    for (path, csr) in [
        ("/.well-known/est/bravo/simpleenroll", bravo_csr("b")),
        ("/.well-known/est/bravo/simpleenroll", demo_csr("a").1),
        (bravo_held, held_csr.clone()),
    ] {
        let r = c.enroll(path, &csr).await;
        assert_refused(&r, 403, "not permitted to enrol under this profile");
    }
    let mixed_a_name = csr_for(DEMO_ORG, BRAVO, "mixed", &rcgen::PKCS_ECDSA_P256_SHA256).1;
    let mixed_b_name = csr_for(
        "Bravo A/S",
        DEMO_CVR,
        "mixed",
        &rcgen::PKCS_ECDSA_P256_SHA256,
    )
    .1;
    for csr in [bravo_csr("b"), mixed_a_name, mixed_b_name, held_csr.clone()] {
        let r = c.enroll(ENROLL, &csr).await;
        assert_refused(&r, 403, "the CSR names another organisation");
    }
    // A profile A holds but not for API enrolment: its own IdM profile, whose
    // certificates carry admin-api.
    let r = c
        .enroll(
            "/.well-known/est/demo-idm/simpleenroll",
            &demo_csr("second IdM").1,
        )
        .await;
    assert_refused(&r, 403, "this profile is not issued by API enrolment");
    // Renewal under a profile that is not the certificate's own.
    for label in ["bravo", "demo"] {
        let r = c
            .enroll(
                &format!("/.well-known/est/{label}/simplereenroll"),
                &demo_csr("Demo IdM system").1,
            )
            .await;
        assert_refused(&r, 403, "label of the certificate's own profile");
    }

    // A's IdM over the admin API, and A's own admin token.
    let mut a_api = Api::with_cert(&ts, &a).await;
    let r = op
        .post(
            &format!("/organisations/{DEMO_CVR}/tokens"),
            json!({"name": "alpha"}),
        )
        .await;
    let mut a_token = Api::token(&ts, r.body["token"].as_str().expect("token")).await;
    let tokens_audit_before = store.audit_events().count();
    for api in [&mut a_api, &mut a_token] {
        // On B: nothing visible.
        let r = api
            .post("/orders", json!({"profile_id": bravo_profile.id}))
            .await;
        assert_problem(&r, 404, "profile not found");
        let r = api
            .post(&format!("/orders/{held}/approve"), json!({}))
            .await;
        assert_problem(&r, 404, "order not found");
        let r = api
            .post(
                &format!("/certificates/{bravo_serial}/revoke"),
                json!({"reason": "other"}),
            )
            .await;
        assert_problem(&r, 404, "certificate not found");
        let r = api
            .patch(
                &format!("/profiles/{}", bravo_profile.id),
                json!({"rights": ["est-enroll", "admin-api"]}),
            )
            .await;
        assert_problem(&r, 404, "profile not found");
        let r = api
            .post(
                &format!("/organisations/{BRAVO}/tokens"),
                json!({"name": "x"}),
            )
            .await;
        assert_problem(&r, 403, "needs one of the roles operator");
        let mut b = profile_body("Bravo by A", "bravo-by-a", "api");
        b["cvr"] = json!(BRAVO);
        let r = api.post("/profiles", b).await;
        assert_problem(&r, 400, "no organisation with CVR 55667780");
        // On A itself: the CA's restrictions cannot be lifted or worked around.
        for change in [
            json!({"allow_user_certs": true}),
            json!({"allow_seal": true}),
            json!({"p_numbers": ["1234567890"]}),
            json!({"se_numbers": ["12345674"]}),
            json!({"name": "Bravo A/S"}),
        ] {
            let r = api
                .patch(&format!("/organisations/{DEMO_CVR}"), change.clone())
                .await;
            assert_problem(&r, 403, "not by a machine credential");
        }
        let r = api
            .post(
                "/orders",
                json!({"profile_id": profile(&ts, "demo").id,
                       "user": {"name": "Ole Olsen", "email": "ole@demo.example"}}),
            )
            .await;
        assert_problem(&r, 403, "does not allow user certificates");
        let mut b = profile_body("Seals", "seals", "api");
        b["seal"] = json!(true);
        assert_problem(
            &api.post("/profiles", b).await,
            400,
            "does not allow seal generation",
        );
        let mut b = profile_body("Borrowed P", "borrowed-p", "api");
        b["p_number"] = json!("1234567890");
        assert_problem(
            &api.post("/profiles", b).await,
            400,
            "is not one of organisation 12345674's P numbers",
        );
        let r = api.call("POST", "/crl", None).await;
        assert_problem(&r, 403, "needs one of the roles operator");
        let r = api
            .post(
                "/organisations",
                json!({"cvr": "99887761", "name": "Mine A/S"}),
            )
            .await;
        assert_problem(&r, 403, "needs one of the roles operator");
    }

    // Nothing was issued, ordered, approved or changed.
    assert_eq!(ts.cert_count(), certs_before, "no certificate issued");
    assert_eq!(store.orders().count(), orders_before, "no order created");
    assert_eq!(
        demo_org(ts.app()),
        org_before,
        "A's registration is unchanged"
    );
    assert!(store.org("99887761").expect("db").is_none());
    assert_eq!(
        store
            .order(&held)
            .expect("db")
            .expect("order")
            .status
            .name(),
        "pending"
    );
    assert_eq!(profile(&ts, "bravo").rights, bravo_profile.rights);
    assert_eq!(
        store
            .audit_events()
            .filter_map(Result::ok)
            .skip(tokens_audit_before)
            .filter(|e| e.outcome == estd::model::AuditOutcome::Done)
            .count(),
        0,
        "no action was done"
    );
    // Controls: the operator may lift a restriction; B's approved enrolment is B's.
    let r = op
        .patch(
            &format!("/organisations/{DEMO_CVR}"),
            json!({"allow_seal": true}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.resp.text());
    assert_eq!(
        op.post(&format!("/orders/{held}/approve"), json!({}))
            .await
            .status,
        200
    );
    let r = c.enroll(bravo_held, &held_csr).await;
    assert_refused(&r, 403, "not permitted to enrol under this profile");
    issued_cert(&bc.enroll(bravo_held, &held_csr).await);
    ts.shutdown().await;
}

#[tokio::test]
async fn reenrolment_must_keep_subject_and_subject_alt_name() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let mut idm = ts.client(Some(&ts.demo_identity())).await;
    let san = |p: &mut rcgen::CertificateParams, names: &[&str]| {
        p.subject_alt_names = names
            .iter()
            .map(|n| rcgen::SanType::DnsName(ia5(n)))
            .collect();
    };
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let mut p = subject_params(DEMO_ORG, DEMO_CVR, "sensor-7");
    san(&mut p, &["s7.devices.demo.example"]);
    let csr = p.serialize_request(&key).expect("csr").der().to_vec();
    let old = issued_cert(&idm.enroll(ENROLL, &csr).await);
    let mut c = ts.client(Some(&Identity::new(der_of(&old), &key))).await;
    let before = ts.cert_count();

    let subject = "re-enrolment must keep the certificate's Subject unchanged";
    let alt = "re-enrolment must keep the certificate's SubjectAltName unchanged";
    let s7 = ["s7.devices.demo.example"];
    let reordered = {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let mut p = rcgen::CertificateParams::default();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "sensor-7");
        p.distinguished_name
            .push(rcgen::DnType::OrganizationName, DEMO_ORG);
        p.distinguished_name.push(
            rcgen::DnType::CustomDnType(vec![2, 5, 4, 97]),
            format!("NTRDK-{DEMO_CVR}"),
        );
        p.distinguished_name.push(rcgen::DnType::CountryName, "DK");
        san(&mut p, &s7);
        p.serialize_request(&key).expect("csr").der().to_vec()
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "another CN",
            demo_csr_with("sensor-8", |p| san(p, &s7)),
            subject,
        ),
        (
            "an added serialNumber",
            demo_csr_with("sensor-7", |p| {
                san(p, &s7);
                p.distinguished_name
                    .push(rcgen::DnType::CustomDnType(vec![2, 5, 4, 5]), "42");
            }),
            subject,
        ),
        (
            "another organisation",
            {
                let key =
                    rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
                let mut p = subject_params("Bravo A/S", "55667780", "sensor-7");
                san(&mut p, &s7);
                p.serialize_request(&key).expect("csr").der().to_vec()
            },
            subject,
        ),
        ("the same attributes in another order", reordered, subject),
        ("no SAN", demo_csr_with("sensor-7", |_| {}), alt),
        (
            "another SAN",
            demo_csr_with("sensor-7", |p| san(p, &["s8.devices.demo.example"])),
            alt,
        ),
        (
            "an added SAN",
            demo_csr_with("sensor-7", |p| {
                san(p, &["s7.devices.demo.example", "s8.devices.demo.example"])
            }),
            alt,
        ),
    ];
    for (what, csr, reason) in &cases {
        let r = c.enroll(REENROLL, csr).await;
        assert_eq!(r.status, 403, "{what}: {}", r.text());
        assert_refused(&r, 403, reason);
    }
    // Under another profile's label.
    let same = demo_csr_with("sensor-7", |p| san(p, &s7));
    let r = c
        .enroll("/.well-known/est/demo-idm/simplereenroll", &same)
        .await;
    assert_refused(&r, 403, "label of the certificate's own profile");
    assert_eq!(ts.cert_count(), before, "nothing was issued");

    // Control: the same subject and SAN with a new key renews.
    let renewed = issued_cert(&c.enroll(REENROLL, &same).await);
    assert_eq!(renewed.tbs_certificate.subject, old.tbs_certificate.subject);
    assert_eq!(
        estd::policy::cert_sans(&renewed),
        estd::policy::cert_sans(&old)
    );
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn simultaneous_guesses_cannot_get_past_the_lockout() {
    let dir = tempfile::tempdir().expect("tmp");
    // The rate limits would answer most of these guesses with 429 before the
    // code is looked at; this test is about the lockout alone, so they are off
    // (tests/rate_limits.rs covers them).
    let ts = TestServer::start_with(
        dir.path(),
        "[rate_limit.reference]\nenabled = false\n[rate_limit.ip]\nenabled = false\n",
    )
    .await;
    let mut op = Api::operator(&ts).await;
    let before = ts.cert_count();
    const GUESSES: usize = 48;
    // Several rounds on fresh orders: a race needs requests that overlap.
    for round in 0..4 {
        let label = format!("race-{round}");
        let name = format!("Race {round}");
        let (reference, code) = code_order(&mut op, &name, &label).await;
        let csr = demo_csr(&name).1;
        // Connections first, so that the guesses arrive together.
        let mut clients = Vec::new();
        for _ in 0..GUESSES {
            clients.push(ts.client(None).await);
        }
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(GUESSES));
        let mut tasks = Vec::new();
        for (i, mut c) in clients.into_iter().enumerate() {
            let barrier = barrier.clone();
            let path = format!("/.well-known/est/{label}/simpleenroll");
            let basic = format!(
                "Basic {}",
                b64(format!("{reference}:GUESS{i:011}").as_bytes())
            );
            let body = b64(&csr).into_bytes();
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                c.send(
                    "POST",
                    &path,
                    &[
                        ("content-type", "application/pkcs10"),
                        ("authorization", &basic),
                    ],
                    body,
                )
                .await
            }));
        }
        let (mut wrong, mut locked) = (0, 0);
        for t in tasks {
            let r = t.await.expect("task");
            match r.status {
                401 => {
                    assert_refused(&r, 401, "unknown reference number or wrong one-time code");
                    wrong += 1;
                }
                _ => {
                    assert_refused(&r, 403, "the order is locked after 5 wrong codes");
                    locked += 1;
                }
            }
        }
        assert_eq!(
            (wrong, locked),
            (5, GUESSES - 5),
            "round {round}: only five guesses may be tried"
        );
        let r = collect(&ts, &label, &reference, &code, &csr).await;
        assert_refused(&r, 403, "the order is locked after 5 wrong codes");
    }
    assert_eq!(ts.cert_count(), before, "nothing was issued");
    ts.shutdown().await;
}
