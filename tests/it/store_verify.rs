//! `estd store verify`: a store estd wrote (enrolments, a revocation, the
//! CRL that follows) has no findings; the same store damaged on purpose
//! has, each named, and the command exits non-zero.
//!
//! The damage goes through the store's own interface (a certificate whose
//! DER no longer verifies, a revoked status without its revoked-set entry),
//! and on sled also under it (an expiry index entry removed), so the check
//! is tried on every engine.

use estd_testkit::process::*;
use estd_testkit::{issued_cert, serial_of};

fn verify(config: &std::path::Path) -> (bool, String, String) {
    let out = std::process::Command::new(estd_bin())
        .arg("--config")
        .arg(config)
        .args(["store", "verify"])
        .env_remove("RUST_LOG")
        .output()
        .expect("run estd store verify");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_whole_store_verifies_and_a_damaged_one_is_named_finding_by_finding() {
    let dir = tempfile::tempdir().expect("tmp");
    let certs = dir.path().join("certs");
    let config = write_config(dir.path(), "warn", "");
    let mut d = Daemon::start(dir.path(), &config, &[], "serve").expect("start");
    let mut serials = Vec::new();
    for cn in ["one", "two", "three", "four"] {
        let r = enrol_as_demo_idm(&d, &certs, cn).await;
        serials.push(serial_of(&issued_cert(&r)));
    }
    let root = first_cert(&certs.join("root-ca.pem"));
    let mut admin = Admin::connect(&d, &root, &operator_token(&certs)).await;
    let r = admin
        .call(
            "POST",
            &format!("/certificates/{}/revoke", serials[0]),
            Some(r#"{"reason":"other"}"#),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    d.terminate();

    let (ok, out, err) = verify(&config);
    assert!(ok, "a store estd wrote verifies: {out}{err}");
    assert!(out.contains("no findings"), "{out}");
    assert!(out.contains("1 revoked"), "{out}");
    assert!(out.contains("1 CRLs"), "{out}");

    // The damage.
    let cfg = estd::Config::load(Some(&config)).expect("config");
    {
        let store = estd::store::open(&cfg.store, &cfg.paths.data_dir).expect("open");
        let tampered = store
            .update_cert(&serials[1], |rec| {
                let last = rec.der.len() - 1;
                rec.der[last] ^= 0x01;
                Ok::<(), ()>(())
            })
            .expect("store");
        assert!(tampered.is_ok());
        let revoked = store
            .update_cert(&serials[2], |rec| {
                rec.status = estd::model::CertStatus::Revoked {
                    at: estd::model::now_unix(),
                    reason: estd::model::RevocationReason::SuspectedMisuse,
                };
                Ok::<(), ()>(())
            })
            .expect("store");
        assert!(revoked.is_ok());
        store.flush().expect("flush");
    }
    let sled = cfg.store.engine == estd::config::StoreEngine::Sled;
    if sled {
        let db = sled::open(cfg.paths.data_dir.clone()).expect("sled");
        let expiry = db.open_tree("expiry").expect("expiry tree");
        let gone = expiry
            .iter()
            .filter_map(Result::ok)
            .find(|(k, _)| k.get(8..24) == Some(&serials[3].0[..]))
            .map(|(k, _)| k)
            .expect("the fourth certificate is in the expiry index");
        expiry.remove(gone).expect("remove");
        db.flush().expect("flush");
    }

    let (ok, out, err) = verify(&config);
    assert!(!ok, "a damaged store fails the check: {out}");
    assert!(err.contains("findings"), "{err}");
    let finding = |serial: &estd::model::Serial, says: &str| {
        out.lines().any(|l| {
            l.starts_with("finding: ") && l.contains(&serial.to_string()) && l.contains(says)
        })
    };
    assert!(
        finding(&serials[1], "verifies under no CA generation's key"),
        "the tampered certificate is named: {out}"
    );
    assert!(
        finding(&serials[2], "missing from the revoked set"),
        "the status without its entry is named: {out}"
    );
    if sled {
        assert!(
            finding(&serials[3], "missing from the expiry index"),
            "the index gap is named: {out}"
        );
    }
    assert!(
        !out.contains(&serials[0].to_string()),
        "the certificate revoked properly is no finding: {out}"
    );
}
