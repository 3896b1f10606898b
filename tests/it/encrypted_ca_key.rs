//! An encrypted CA key (PKCS#8 PBES2) on the real binary: keys encrypted by
//! openssl (PBKDF2/AES-256-CBC and scrypt) open with the passphrase from an
//! environment variable or a 0600 file and sign what is enrolled; a wrong,
//! missing or exposed passphrase stops start-up with a clear message; and
//! `estd init` with a passphrase writes CA keys that openssl can open.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use der::{Decode, Encode};
use estd_testkit::pkcs7_certs;
use estd_testkit::process::{
    enrol_as_demo_idm, first_cert, run_to_exit, toml_str, write_config, Daemon,
};

const PASS_VAR: &str = "ESTD_TEST_CA_PASSPHRASE";
const PASS: &str = "Kalkun-Fjord 7 ørred";

fn openssl(args: &[&str], envs: &[(&str, &str)]) -> String {
    let mut cmd = Command::new("openssl");
    cmd.args(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .expect("openssl is required (.ci/run installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Creates a plain development CA with `estd init`, then replaces the issuing
/// key by its openssl-encrypted form (`extra` chooses the scheme).
fn init_then_encrypt(dir: &Path, extra: &[&str]) {
    let config = write_config(dir, "info", "");
    let (status, out, err) = run_to_exit(dir, &config, "init", &[], "init-plain");
    assert!(status.success(), "estd init: {out}{err}");
    let key = dir.join("certs/issuing-ca.key");
    let enc = dir.join("issuing-ca.key.enc");
    let pass_env = format!("env:{PASS_VAR}");
    let mut args = vec![
        "pkcs8",
        "-topk8",
        "-in",
        key.to_str().expect("path"),
        "-out",
        enc.to_str().expect("path"),
        "-passout",
        &pass_env,
    ];
    args.extend_from_slice(extra);
    openssl(&args, &[(PASS_VAR, PASS)]);
    let text = std::fs::read_to_string(&enc).expect("encrypted key");
    assert!(text.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
    std::fs::rename(&enc, &key).expect("replace key");
    chmod(&key, 0o600);
}

/// Enrols once as the demo IdM and checks the certificate is signed by the issuing CA's key.
async fn enrol_and_check_signature(d: &Daemon, certs: &Path) {
    let r = enrol_as_demo_idm(d, certs, "enc-device").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let cert = pkcs7_certs(&r.body).remove(0);
    let issuing =
        x509_cert::Certificate::from_der(&first_cert(&certs.join("issuing-ca.pem"))).expect("CA");
    let ca_key = issuing
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .raw_bytes();
    let tbs = cert.tbs_certificate.to_der().expect("tbs");
    aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
        ca_key,
    )
    .verify(&tbs, cert.signature.raw_bytes())
    .expect("the certificate is signed with the decrypted issuing key");
}

/// A start that must be refused: non-zero exit, no listener, `reason` in
/// stderr, and the passphrase nowhere in the output.
fn assert_refused(dir: &Path, config: &Path, envs: &[(&str, &str)], tag: &str, reason: &str) {
    let (status, out, err) = run_to_exit(dir, config, "serve", envs, tag);
    assert!(!status.success(), "{tag}: estd must refuse to start");
    assert!(!out.contains("estd: listening"), "{tag}: {out}");
    assert!(err.contains(reason), "{tag}: expected {reason:?} in: {err}");
    assert!(
        !err.contains(PASS) && !out.contains(PASS),
        "{tag}: passphrase in output"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn openssl_aes_key_opens_with_passphrase_from_env() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let certs = dir.join("certs");
    init_then_encrypt(dir, &["-v2", "aes-256-cbc"]);
    let plain = dir.join("estd.toml");

    // No passphrase configured: the encrypted key is refused.
    assert_refused(
        dir,
        &plain,
        &[(PASS_VAR, PASS)],
        "no-setting",
        "is encrypted; set [ca] key_passphrase_env",
    );

    let config = write_config(
        dir,
        "debug",
        &format!("[ca]\nkey_passphrase_env = {}\n", toml_str(PASS_VAR)),
    );
    assert_refused(
        dir,
        &config,
        &[],
        "unset",
        &format!("{PASS_VAR} (ca.key_passphrase_env) is not set"),
    );
    assert_refused(
        dir,
        &config,
        &[(PASS_VAR, "Kalkun-Fjord 7 orred")],
        "wrong",
        "wrong passphrase",
    );

    let d = Daemon::start(dir, &config, &[(PASS_VAR, PASS)], "env-ok").expect("start");
    enrol_and_check_signature(&d, &certs).await;
    let log = d.output();
    assert!(log.contains("DEBUG"), "the log is verbose");
    assert!(!log.contains(PASS), "the passphrase is never logged");
}

#[tokio::test(flavor = "multi_thread")]
async fn openssl_scrypt_key_opens_with_passphrase_file() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let certs = dir.join("certs");
    init_then_encrypt(dir, &["-scrypt"]);
    let pass_file = dir.join("ca-passphrase");
    // With the line break `echo` leaves; it is not part of the passphrase.
    std::fs::write(&pass_file, format!("{PASS}\n")).expect("passphrase file");
    chmod(&pass_file, 0o600);
    let config = write_config(
        dir,
        "info",
        &format!(
            "[ca]\nkey_passphrase_file = {}\n",
            toml_str(pass_file.to_str().expect("path"))
        ),
    );

    let d = Daemon::start(dir, &config, &[], "file-ok").expect("start");
    enrol_and_check_signature(&d, &certs).await;
    drop(d);

    // A passphrase file others can read is refused, whatever it holds.
    chmod(&pass_file, 0o644);
    assert_refused(
        dir,
        &config,
        &[],
        "file-0644",
        "readable by group or others",
    );
    let (_, _, err) = run_to_exit(dir, &config, "serve", &[], "file-0644-again");
    assert!(
        err.contains("ca-passphrase"),
        "the refusal names the file: {err}"
    );
    chmod(&pass_file, 0o640);
    assert_refused(
        dir,
        &config,
        &[],
        "file-0640",
        "readable by group or others",
    );

    chmod(&pass_file, 0o600);
    std::fs::write(&pass_file, "not the passphrase\n").expect("passphrase file");
    assert_refused(dir, &config, &[], "file-wrong", "wrong passphrase");
    std::fs::write(&pass_file, "\n").expect("passphrase file");
    assert_refused(dir, &config, &[], "file-empty", "passphrase is empty");
}

#[tokio::test(flavor = "multi_thread")]
async fn init_with_a_passphrase_writes_encrypted_ca_keys_openssl_can_open() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let certs = dir.join("certs");
    let config = write_config(
        dir,
        "info",
        &format!("[ca]\nkey_passphrase_env = {}\n", toml_str(PASS_VAR)),
    );
    let (status, out, err) = run_to_exit(dir, &config, "init", &[(PASS_VAR, PASS)], "init-enc");
    assert!(status.success(), "estd init: {out}{err}");
    let pass_env = format!("env:{PASS_VAR}");
    for (key, cert) in [
        ("root-ca.key", "root-ca.pem"),
        ("issuing-ca.key", "issuing-ca.pem"),
    ] {
        let path = certs.join(key);
        let text = std::fs::read_to_string(&path).expect("key");
        assert!(
            text.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"),
            "{key} is written encrypted"
        );
        assert_eq!(
            std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777,
            0o600
        );
        // openssl opens it with the same passphrase, and it is the certificate's key.
        let from_key = openssl(
            &[
                "pkey",
                "-in",
                path.to_str().expect("path"),
                "-passin",
                &pass_env,
                "-pubout",
            ],
            &[(PASS_VAR, PASS)],
        );
        let from_cert = openssl(
            &[
                "x509",
                "-in",
                certs.join(cert).to_str().expect("path"),
                "-pubkey",
                "-noout",
            ],
            &[],
        );
        assert_eq!(from_key, from_cert, "{key} belongs to {cert}");
    }
    let d = Daemon::start(dir, &config, &[(PASS_VAR, PASS)], "serve-enc").expect("start");
    enrol_and_check_signature(&d, &certs).await;
    drop(d);
    assert_refused(
        dir,
        &config,
        &[(PASS_VAR, "guess")],
        "init-wrong",
        "wrong passphrase",
    );
}
