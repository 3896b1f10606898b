//! `estd backup` and `estd restore`: a backup taken while 16 clients enrol
//! holds every certificate answered before it began, and the CRL; restored
//! into an empty installation it verifies and serves. An encrypted backup
//! needs its passphrase; a damaged or truncated one restores nothing; the
//! API refuses unusable requests.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use estd_testkit::process::*;
use estd_testkit::{http_get, issued_cert, serial_of};

/// A certificate a client received: when, its serial, its DER.
type Answered = (Instant, estd::model::Serial, Vec<u8>);

/// Runs the estd CLI with `args` under `config`, with extra environment.
fn estd(config: &Path, args: &[&str], envs: &[(&str, &str)]) -> (bool, String, String) {
    let mut cmd = std::process::Command::new(estd_bin());
    cmd.arg("--config")
        .arg(config)
        .args(args)
        .env_remove("RUST_LOG");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run estd");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `estd backup` against the daemon `d` whose certificate folder is `certs`.
fn backup_args(d: &Daemon, certs: &Path, to: &Path) -> Vec<String> {
    vec![
        "backup".into(),
        "--to".into(),
        to.display().to_string(),
        "--url".into(),
        format!("https://{}", d.admin),
        "--ca".into(),
        certs.join("root-ca.pem").display().to_string(),
        "--token-file".into(),
        certs.join("admin-token").display().to_string(),
    ]
}

fn run_backup(
    config: &Path,
    d: &Daemon,
    certs: &Path,
    to: &Path,
    envs: &[(&str, &str)],
    extra: &[&str],
) -> (bool, String, String) {
    let mut args = backup_args(d, certs, to);
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    estd(config, &args, envs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_under_load_restores_every_certificate_answered_before_it_began() {
    let dir = tempfile::tempdir().expect("tmp");
    let certs = dir.path().join("certs");
    let config = write_config(dir.path(), "warn", NO_CLIENT_RATE_LIMITS);
    let mut d = Daemon::start(dir.path(), &config, &[], "serve").expect("start");
    let root = first_cert(&certs.join("root-ca.pem"));
    let idm = demo_identity(&certs);

    // 16 clients enrol until told to stop; each answer is kept with its time.
    let stop = Arc::new(AtomicBool::new(false));
    let answered: Arc<Mutex<Vec<Answered>>> = Arc::default();
    let mut workers = Vec::new();
    for w in 0..16 {
        let (stop, answered, root, idm) = (
            stop.clone(),
            answered.clone(),
            root.clone(),
            idm.clone_identity(),
        );
        let est = d.est;
        workers.push(tokio::spawn(async move {
            let mut c = TryClient::connect(est, &root, Some(&idm))
                .await
                .expect("mTLS");
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let r = c
                    .enrol_demo(&format!("load-{w}-{n}"))
                    .await
                    .expect("answer");
                assert_eq!(r.status, 200, "{}", r.text());
                let at = Instant::now();
                let cert = issued_cert(&r);
                let der = x509_cert::der::Encode::to_der(&cert).expect("der");
                answered
                    .lock()
                    .expect("lock")
                    .push((at, serial_of(&cert), der));
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, _, crl_before) = http_get(d.public, "/crl/issuing-ca.crl").await;
    assert_eq!(status, 200);
    let began = Instant::now();
    let file = dir.path().join("estd.backup");
    let (ok, out, err) = {
        let (config, certs, file) = (config.clone(), certs.clone(), file.clone());
        let args = backup_args(&d, &certs, &file);
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            estd(&config, &args, &[])
        })
        .await
        .expect("backup ran")
    };
    assert!(ok, "backup: {out}{err}");
    assert!(out.contains("backup written"), "{out}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.expect("worker");
    }
    let answered = std::mem::take(&mut *answered.lock().expect("lock"));
    let before: Vec<_> = answered.iter().filter(|(at, _, _)| *at < began).collect();
    assert!(
        before.len() >= 16,
        "load ran before the backup: {}",
        before.len()
    );
    assert!(
        answered.len() > before.len(),
        "and went on while it was taken ({} in all)",
        answered.len()
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file)
            .expect("backup")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "a backup holds CA keys: private");
    }
    d.terminate();

    // Restore into an empty installation.
    let dir2 = tempfile::tempdir().expect("tmp");
    let config2 = write_config(dir2.path(), "warn", "");
    let file_arg = file.display().to_string();
    let (ok, out, err) = estd(&config2, &["restore", "--from", &file_arg], &[]);
    assert!(ok, "restore: {out}{err}");
    assert!(out.contains("no findings"), "{out}");
    let cfg2 = estd::Config::load(Some(&config2)).expect("config");
    {
        let store = estd::store::open(&cfg2.store, &cfg2.paths.data_dir).expect("open");
        for (_, serial, der) in &before {
            let rec = store.cert(serial).expect("store").unwrap_or_else(|| {
                panic!("{serial} was answered before the backup began, and is missing")
            });
            assert_eq!(&rec.der, der, "{serial} byte for byte");
        }
        // One moment, across records: every issued order has its
        // certificate, every certificate's order says so, and every
        // certificate an audit record names is there.
        let mut orders = 0;
        for order in store.orders() {
            let order = order.expect("order");
            if let estd::model::OrderStatus::Issued { serial } = order.status {
                orders += 1;
                let rec = store.cert(&serial).expect("store");
                assert!(
                    rec.is_some(),
                    "order {} names {serial}, which is missing",
                    order.id
                );
            }
        }
        let mut certs_with_orders = 0;
        for rec in store.certs() {
            let rec = rec.expect("cert");
            if let Some(id) = &rec.order_id {
                certs_with_orders += 1;
                let order = store
                    .order(id)
                    .expect("store")
                    .unwrap_or_else(|| panic!("{} names order {id}, which is missing", rec.serial));
                assert_eq!(
                    order.status,
                    estd::model::OrderStatus::Issued { serial: rec.serial },
                    "{}'s order says it was issued",
                    rec.serial
                );
            }
        }
        assert!(orders >= before.len(), "{orders} issued orders");
        assert_eq!(orders, certs_with_orders);
        for event in store.audit_events() {
            if let Some(serial) = event.expect("audit").serial {
                assert!(
                    store.contains_serial(&serial).expect("store"),
                    "an audit record names {serial}, which is missing"
                );
            }
        }
        let crl = store.crl(1).expect("store").expect("a CRL");
        assert_eq!(
            crl.der, crl_before,
            "the CRL is the one served when the backup began"
        );
    }
    assert_eq!(
        std::fs::read(dir2.path().join("certs/root-ca.pem")).expect("root"),
        std::fs::read(certs.join("root-ca.pem")).expect("root"),
    );
    // The restored installation serves: it signs with the restored CA.
    let mut d2 = Daemon::start(dir2.path(), &config2, &[], "restored").expect("start restored");
    let r = enrol_as_demo_idm(&d2, &dir2.path().join("certs"), "after-restore").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let (status, _, crl_after) = http_get(d2.public, "/crl/issuing-ca.crl").await;
    assert_eq!(status, 200);
    assert_eq!(crl_after, crl_before);
    d2.terminate();
}

fn empty_or_absent(dir: &Path) -> bool {
    std::fs::read_dir(dir).map_or(true, |mut e| e.next().is_none())
}

#[tokio::test]
async fn an_encrypted_backup_needs_its_passphrase_and_a_damaged_one_restores_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let certs = dir.path().join("certs");
    let config = write_config(dir.path(), "warn", "");
    let mut d = Daemon::start(dir.path(), &config, &[], "serve").expect("start");
    let r = enrol_as_demo_idm(&d, &certs, "one").await;
    assert_eq!(r.status, 200, "{}", r.text());

    let sealed = dir.path().join("sealed.backup");
    let pass = [("BACKUP_PASS", "correct horse battery staple")];
    let (ok, out, err) = run_backup(
        &config,
        &d,
        &certs,
        &sealed,
        &pass,
        &["--passphrase-env", "BACKUP_PASS"],
    );
    assert!(ok, "{out}{err}");
    let bytes = std::fs::read(&sealed).expect("read");
    assert!(bytes.starts_with(b"age-encryption.org/v1\n"), "an age file");
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        !text.contains("estd-backup") && !text.contains("PRIVATE KEY"),
        "nothing in the clear"
    );

    let plain = dir.path().join("plain.backup");
    let (ok, out, err) = run_backup(&config, &d, &certs, &plain, &[], &[]);
    assert!(ok, "{out}{err}");

    // The API refuses what it cannot use, and overwrites nothing.
    for (to, extra, envs, says) in [
        (plain.clone(), vec![], vec![], "already"),
        (
            dir.path().join("no-such-folder/x.backup"),
            vec![],
            vec![],
            "folder",
        ),
        (
            dir.path().join("short.backup"),
            vec!["--passphrase-env", "SHORT"],
            vec![("SHORT", "too short")],
            "12 characters",
        ),
    ] {
        let (ok, out, err) = run_backup(&config, &d, &certs, &to, &envs, &extra);
        assert!(!ok, "refused: {to:?}: {out}");
        assert!(err.contains(says), "{to:?}: {err}");
    }
    d.terminate();

    let restore_into = |tag: &str, file: &Path, envs: &[(&str, &str)], extra: &[&str]| {
        let target = dir.path().join(tag);
        std::fs::create_dir_all(&target).expect("dir");
        let cfg = write_config(&target, "warn", "");
        let f = file.display().to_string();
        let mut args = vec!["restore", "--from", f.as_str()];
        args.extend_from_slice(extra);
        let (ok, out, err) = estd(&cfg, &args, envs);
        (ok, out, err, target)
    };
    let nothing_written = |target: &PathBuf| {
        empty_or_absent(&target.join("certs")) && !target.join("data/db").exists()
    };

    let (ok, _, err, target) = restore_into("no-pass", &sealed, &[], &[]);
    assert!(!ok && err.contains("encrypted"), "{err}");
    assert!(nothing_written(&target));
    let wrong = [("P", "not the passphrase at all")];
    let (ok, _, err, target) =
        restore_into("wrong-pass", &sealed, &wrong, &["--passphrase-env", "P"]);
    assert!(!ok && err.contains("decryption"), "{err}");
    assert!(nothing_written(&target));

    // Truncated, and one byte changed: refused whole, nothing written.
    let whole = std::fs::read(&plain).expect("read");
    let cut = dir.path().join("cut.backup");
    std::fs::write(&cut, &whole[..whole.len() * 2 / 3]).expect("write");
    let (ok, _, err, target) = restore_into("cut", &cut, &[], &[]);
    assert!(!ok && err.contains("truncated"), "{err}");
    assert!(nothing_written(&target));
    let mut flipped = whole.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x40;
    let damaged = dir.path().join("damaged.backup");
    std::fs::write(&damaged, &flipped).expect("write");
    let (ok, _, err, target) = restore_into("damaged", &damaged, &[], &[]);
    assert!(!ok && err.contains("not a usable backup"), "{err}");
    assert!(nothing_written(&target));

    // The right passphrase restores it, and the result verifies.
    let right = [("P", "correct horse battery staple")];
    let (ok, out, err, target) =
        restore_into("right-pass", &sealed, &right, &["--passphrase-env", "P"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("no findings"), "{out}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(target.join("certs/issuing-ca.key"))
            .expect("the CA key is restored")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Into a store that is not empty: refused.
    let f = plain.display().to_string();
    let cfg = target.join("estd.toml");
    let (ok, _, err) = estd(&cfg, &["restore", "--from", &f], &[]);
    assert!(
        !ok && (err.contains("not empty") || err.contains("already")),
        "{err}"
    );
}
