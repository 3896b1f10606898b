//! CA rollover on a real server, checked with openssl as clients and
//! relying parties would: a next generation under a new root is prepared
//! (`estd ca next --new-root`), published in /cacerts from the next start
//! with NewWithOld and OldWithNew, and issues only from its switch moment;
//! then a certificate of the old CA re-enrols, each CA keeps its own CRL at
//! its own distribution point and answers OCSP for its own certificates
//! only, and a client that trusts only the old root still verifies a new
//! certificate through NewWithOld.

use der::Decode;
use estd::ca::rollover;
use estd::model::{now_unix, RevocationReason};
use estd::service;
use estd_testkit::*;
use x509_cert::Certificate;

const ENROLL: &str = "/.well-known/est/demo/simpleenroll";
const REENROLL: &str = "/.well-known/est/simplereenroll";

fn names(cert: &Certificate) -> (String, String) {
    (
        cert.tbs_certificate.subject.to_string(),
        cert.tbs_certificate.issuer.to_string(),
    )
}

fn crl_dp(cert: &Certificate) -> String {
    use x509_cert::ext::pkix::crl::CrlDistributionPoints;
    use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
    let ext = cert
        .tbs_certificate
        .extensions
        .iter()
        .flatten()
        .find(|e| e.extn_id == const_oid::db::rfc5280::ID_CE_CRL_DISTRIBUTION_POINTS)
        .expect("a CRL distribution point");
    let dps = CrlDistributionPoints::from_der(ext.extn_value.as_bytes()).expect("parses");
    match &dps.0[0].distribution_point {
        Some(DistributionPointName::FullName(names)) => match &names[0] {
            GeneralName::UniformResourceIdentifier(u) => u.to_string(),
            other => panic!("not a URI: {other:?}"),
        },
        other => panic!("no full name: {other:?}"),
    }
}

fn path_of(url: &str) -> String {
    estd::public::url_path(url).to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollover_to_a_new_root_keeps_old_certificates_working() {
    let dir = tempfile::tempdir().expect("tmp");
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).expect("work dir");
    let certs = dir.path().join("certs");

    // Generation 1 issues a certificate.
    let ts = TestServer::start(dir.path()).await;
    let mut idm = ts.client(Some(&ts.demo_identity())).await;
    let (old_key, csr) = demo_csr("rolls-over");
    let old = issued_cert(&idm.enroll(ENROLL, &csr).await);
    let first = ts.app().ca.generations()[0].ca.clone();
    let config = ts.app().config.clone();
    ts.shutdown().await;

    // The next generation under a new root, switching in a day.
    let tomorrow = now_unix() + 86_400;
    let said =
        rollover::stage_development(&certs, &config.ca, true, Some(tomorrow)).expect("ca next");
    assert!(said.contains("generation 2"), "{said}");
    // One rollover at a time: a third is refused until the second issues.
    let refused = rollover::stage_development(&certs, &config.ca, false, None)
        .expect_err("a second staged generation");
    assert!(refused.to_string().contains("has not started"), "{refused}");
    assert!(!certs.join("ca-3").exists(), "nothing half-made is left");

    // Published from the next start, but generation 1 still issues.
    let ts = TestServer::start(dir.path()).await;
    let set = ts.app().ca.clone();
    assert_eq!(set.generations().len(), 2);
    let second = set.generation(2).expect("generation 2").ca.clone();
    assert_ne!(second.root_der(), first.root_der(), "a new root");
    let mut idm = ts.client(Some(&ts.demo_identity())).await;
    let published = pkcs7_certs(&idm.get("/.well-known/est/cacerts").await.body);
    let pairs: Vec<(String, String)> = published.iter().map(names).collect();
    let old_root = "CN=estd Development Root CA,O=estd,C=DK".to_owned();
    let new_root = "CN=estd Development Root CA G2,O=estd,C=DK".to_owned();
    for wanted in [
        (old_root.clone(), old_root.clone()),
        (new_root.clone(), new_root.clone()),
        (new_root.clone(), old_root.clone()),
        (old_root.clone(), new_root.clone()),
        (
            "CN=estd Development Issuing CA,O=estd,C=DK".to_owned(),
            old_root.clone(),
        ),
        (
            "CN=estd Development Issuing CA G2,O=estd,C=DK".to_owned(),
            new_root.clone(),
        ),
    ] {
        assert!(pairs.contains(&wanted), "{wanted:?} in /cacerts: {pairs:?}");
    }
    assert_eq!(published.len(), 6, "each certificate once: {pairs:?}");
    let before = issued_cert(&idm.enroll(ENROLL, &demo_csr("before-switch").1).await);
    assert_eq!(
        before.tbs_certificate.issuer,
        Certificate::from_der(first.issuing_der())
            .expect("parse")
            .tbs_certificate
            .subject,
        "before its moment the new generation does not issue"
    );
    ts.shutdown().await;

    // The moment is brought forward to now.
    rollover::set_switch(&certs, now_unix()).expect("switch");
    assert!(
        rollover::set_switch(&certs, tomorrow).is_err(),
        "a moment that has come stays"
    );
    let ts = TestServer::start(dir.path()).await;
    let app = ts.app().clone();
    let public = ts.server.public_addr;

    // The old certificate re-enrols, and gets a certificate of generation 2
    // with generation 2's distribution point.
    let holder = Identity::new(der_of(&old), &old_key);
    let mut c = ts.client(Some(&holder)).await;
    let renewed = issued_cert(&c.enroll(REENROLL, &demo_csr("rolls-over").1).await);
    let second_issuing = Certificate::from_der(second.issuing_der()).expect("parse");
    assert_eq!(
        renewed.tbs_certificate.issuer,
        second_issuing.tbs_certificate.subject
    );
    assert_eq!(path_of(&crl_dp(&old)), "/crl/issuing-ca.crl");
    assert_eq!(path_of(&crl_dp(&renewed)), "/crl/issuing-ca-2.crl");
    // Each generation's issuing CA at its own caIssuers URL.
    for (path, issuing) in [
        ("/ca/issuing-ca.crt", first.issuing_der()),
        ("/ca/issuing-ca-2.crt", second.issuing_der()),
    ] {
        let (status, _, body) = http_get(public, path).await;
        assert_eq!((status, body.as_slice()), (200, issuing), "{path}");
    }

    write_pem(&work, "old-root.pem", &[first.root_der()]);
    write_pem(&work, "new-root.pem", &[second.root_der()]);
    write_pem(&work, "old-issuing.pem", &[first.issuing_der()]);
    write_pem(&work, "new-issuing.pem", &[second.issuing_der()]);
    write_pem(
        &work,
        "old-chain.pem",
        &[first.issuing_der(), first.root_der()],
    );
    write_pem(
        &work,
        "new-chain.pem",
        &[second.issuing_der(), second.root_der()],
    );
    write_pem(&work, "old.pem", &[&der_of(&old)]);
    write_pem(&work, "renewed.pem", &[&der_of(&renewed)]);
    let rollover_certs = &set.generation(2).expect("2").root_rollover;
    assert_eq!(rollover_certs.len(), 2, "NewWithOld and OldWithNew");
    write_pem(&work, "new-with-old.pem", &[&rollover_certs[0]]);
    write_pem(&work, "old-with-new.pem", &[&rollover_certs[1]]);
    write_pem(
        &work,
        "via-new-with-old.pem",
        &[second.issuing_der(), &rollover_certs[0]],
    );

    // Chains: each certificate under its own root; the rollover
    // certificates under the other root; and a client that trusts only the
    // old root verifies the renewed certificate through NewWithOld.
    for (anchor, untrusted, cert) in [
        ("new-root.pem", "new-issuing.pem", "renewed.pem"),
        ("old-root.pem", "old-issuing.pem", "old.pem"),
        ("old-root.pem", "old-root.pem", "new-with-old.pem"),
        ("new-root.pem", "new-root.pem", "old-with-new.pem"),
        ("old-root.pem", "via-new-with-old.pem", "renewed.pem"),
    ] {
        let (ok, out) = openssl_in(
            &work,
            &["verify", "-CAfile", anchor, "-untrusted", untrusted, cert],
        );
        assert!(ok, "{cert} under {anchor} via {untrusted}: {out}");
    }
    let (ok, out) = openssl_in(
        &work,
        &[
            "verify",
            "-CAfile",
            "old-root.pem",
            "-untrusted",
            "new-issuing.pem",
            "renewed.pem",
        ],
    );
    assert!(
        !ok,
        "without NewWithOld the old root does not reach it: {out}"
    );

    // Revoke one certificate of each generation: each CRL lists its own.
    for cert in [&old, &renewed] {
        service::revoke(
            app.services(),
            &operator(),
            &serial_of(cert),
            RevocationReason::Superseded,
        )
        .await
        .expect("revoke");
    }
    for (path, file) in [
        ("/crl/issuing-ca.crl", "old.crl"),
        ("/crl/issuing-ca-2.crl", "new.crl"),
    ] {
        let (status, _, der) = http_get(public, path).await;
        assert_eq!(status, 200, "{path}");
        std::fs::write(work.join(file), der).expect("write");
    }
    assert_eq!(http_get(public, "/crl/issuing-ca-3.crl").await.0, 404);
    let serial_hex = |c: &Certificate| serial_of(c).to_string().to_uppercase();
    for (crl, chain, listed, not_listed) in [
        ("old.crl", "old-chain.pem", &old, &renewed),
        ("new.crl", "new-chain.pem", &renewed, &old),
    ] {
        let (ok, out) = openssl_in(
            &work,
            &[
                "crl", "-inform", "DER", "-in", crl, "-CAfile", chain, "-noout", "-text",
            ],
        );
        assert!(
            ok && out.contains("verify OK"),
            "{crl} signed by its CA: {out}"
        );
        assert!(
            out.contains(&serial_hex(listed)),
            "{crl} lists its own: {out}"
        );
        assert!(
            !out.contains(&serial_hex(not_listed)),
            "{crl} lists no other CA's certificate: {out}"
        );
    }
    let (ok, out) = openssl_in(
        &work,
        &[
            "verify",
            "-crl_check",
            "-CAfile",
            "new-chain.pem",
            "-CRLfile",
            "new.crl",
            "renewed.pem",
        ],
    );
    assert!(!ok && out.contains("certificate revoked"), "{out}");

    // OCSP: each CA answers for its own certificates, signed by its own
    // responder; asked about another CA's serial, it does not know it.
    let url = format!("http://{public}/ocsp");
    let ocsp = |issuer: &str, serial: &Certificate, chain: &str| {
        openssl_in(
            &work,
            &[
                "ocsp",
                "-issuer",
                issuer,
                "-serial",
                &format!("0x{}", serial_hex(serial)),
                "-url",
                &url,
                "-CAfile",
                chain,
            ],
        )
    };
    for (issuer, cert, chain, status) in [
        ("new-issuing.pem", &renewed, "new-chain.pem", ": revoked"),
        ("old-issuing.pem", &old, "old-chain.pem", ": revoked"),
        ("new-issuing.pem", &old, "new-chain.pem", ": unknown"),
        ("old-issuing.pem", &renewed, "old-chain.pem", ": unknown"),
    ] {
        let (ok, out) = ocsp(issuer, cert, chain);
        assert!(ok && out.contains("Response verify OK"), "{issuer}: {out}");
        assert!(
            out.contains(status),
            "{issuer} about {}: {out}",
            serial_hex(cert)
        );
    }
    drop(app);
    ts.shutdown().await;

    // A restart serves the same CRLs (stored per generation).
    let ts = TestServer::start(dir.path()).await;
    for (generation, file) in [(1, "old.crl"), (2, "new.crl")] {
        let served = ts
            .app()
            .revocation
            .crl_of(generation)
            .expect("a CRL per generation");
        let fetched = std::fs::read(work.join(file)).expect("read");
        assert_eq!(
            served.der, fetched,
            "generation {generation}'s CRL was stored"
        );
    }
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_issuing_ca_under_the_same_root_publishes_no_rollover_certificates() {
    let dir = tempfile::tempdir().expect("tmp");
    let certs = dir.path().join("certs");
    let ts = TestServer::start(dir.path()).await;
    let config = ts.app().config.clone();
    ts.shutdown().await;

    rollover::stage_development(&certs, &config.ca, false, Some(now_unix())).expect("ca next");
    assert!(!certs.join("ca-2").join("root-rollover.pem").exists());
    let ts = TestServer::start(dir.path()).await;
    let set = ts.app().ca.clone();
    assert_eq!(set.active().root_der(), set.generations()[0].ca.root_der());
    let mut idm = ts.client(Some(&ts.demo_identity())).await;
    let published = pkcs7_certs(&idm.get("/.well-known/est/cacerts").await.body);
    assert_eq!(published.len(), 3, "two issuing CAs and their one root");
    let issued = issued_cert(&idm.enroll(ENROLL, &demo_csr("same-root").1).await);
    assert_eq!(
        issued.tbs_certificate.issuer.to_string(),
        "CN=estd Development Issuing CA G2,O=estd,C=DK"
    );
    let status = rollover::status(&certs).expect("status");
    assert!(status.contains("issuing now: generation 2"), "{status}");
    ts.shutdown().await;
}
