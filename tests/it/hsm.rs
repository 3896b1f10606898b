//! The issuing CA key in a PKCS#11 token (SoftHSM2), on the real binary: the
//! ceremony (`estd ca init --pkcs11`, `estd ca csr`, an external root made
//! and used by openssl, `estd ca import`), enrolment whose chain openssl
//! verifies, the key's protection read back from the token by a separate
//! process, no private key of the CA under `certs/` or `data/`, the PIN in
//! no log, a wrong PIN refused at start-up, and a token that goes away:
//! EST answers 503 with Retry-After, and service comes back with the token.
//!
//! SoftHSM2 reads `SOFTHSM2_CONF`, which a test in this shared process may
//! not set, so the token is only ever opened by child processes: estd, and
//! [`pkcs11_probe`], this test binary started again with the probe's
//! environment. The tests are skipped, saying why, only when SoftHSM2 is not
//! installed (`.ci/run` installs the `softhsm2` package).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use der::{Decode, Encode};
use estd_testkit::process::{
    enrol_as_demo_idm, estd_bin, run_to_exit, toml_str, write_config, Admin, Daemon,
    NO_CLIENT_RATE_LIMITS,
};
use estd_testkit::softhsm::{installed, SoftHsm};
use estd_testkit::{http_get, pkcs7_certs};

const TOKEN: &str = "estd-ca";
const PIN: &str = "Pin-7391-Kalkun";
const SO_PIN: &str = "So-846271-Fjord";
const PIN_VAR: &str = "ESTD_TEST_TOKEN_PIN";
const KEY: &str = "estd-issuing-2026";

/// A token in `dir/hsm`, or None (and the reason on stderr) when SoftHSM2
/// is not installed. Any other failure fails the test.
fn token_or_skip(dir: &Path, test: &str) -> Option<SoftHsm> {
    if let Err(why) = installed() {
        eprintln!("SKIPPED hsm::{test}: SoftHSM2 is not installed ({why}); .ci/run installs the softhsm2 package");
        return None;
    }
    Some(SoftHsm::new(&dir.join("hsm"), TOKEN, PIN, SO_PIN).expect("SoftHSM2 token"))
}

/// Runs `estd --config CONFIG ARGS...` to its end with `envs`; keeps its
/// output in `dir/TAG.stdout` and `.stderr` (for the PIN scan).
fn estd(
    dir: &Path,
    config: &Path,
    args: &[&str],
    envs: &[(&str, &str)],
    tag: &str,
) -> (bool, String) {
    let mut cmd = Command::new(estd_bin());
    cmd.arg("--config").arg(config).args(args);
    cmd.env_remove("RUST_LOG");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run estd");
    std::fs::write(dir.join(format!("{tag}.stdout")), &out.stdout).expect("keep stdout");
    std::fs::write(dir.join(format!("{tag}.stderr")), &out.stderr).expect("keep stderr");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn openssl(args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl is required (.ci/run installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// An installation whose issuing key is in a token.
struct Installed {
    hsm: SoftHsm,
    config: PathBuf,
    root_pem: PathBuf,
    issuing_pem: PathBuf,
}

impl Installed {
    fn envs(&self) -> Vec<(&'static str, String)> {
        vec![(PIN_VAR, PIN.to_owned()), self.hsm.env()]
    }
}

fn as_refs<'a>(envs: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    envs.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// The whole ceremony: the key generated in the token, its CSR, an offline
/// root made by openssl (its key outside certs/), the issuing CA certificate
/// the root signs, and the import. With `refusals`, also checks that import
/// refuses a certificate for another key and a second import.
fn ceremony(dir: &Path, hsm: SoftHsm, algorithm: &str, log: &str, refusals: bool) -> Installed {
    // No per-client limits: one IdM certificate enrols in bursts here.
    let config = write_config(
        dir,
        log,
        &format!("{}{NO_CLIENT_RATE_LIMITS}", hsm.ca_key_config(KEY, PIN_VAR)),
    );
    let envs = vec![(PIN_VAR, PIN.to_owned()), hsm.env()];
    let envs = as_refs(&envs);
    let import = |cert: &Path, chain: &Path, tag: &str| {
        estd(
            dir,
            &config,
            &["ca", "import", "--cert", path(cert), "--chain", path(chain)],
            &envs,
            tag,
        )
    };

    let (ok, out) = estd(
        dir,
        &config,
        &["ca", "init", "--pkcs11", "--algorithm", algorithm],
        &envs,
        "ca-init",
    );
    assert!(ok, "estd ca init: {out}");
    assert!(out.contains("CKA_SENSITIVE = true"), "{out}");
    assert!(out.contains("CKA_EXTRACTABLE = false"), "{out}");
    let (ok, out) = estd(
        dir,
        &config,
        &["ca", "init", "--pkcs11", "--algorithm", algorithm],
        &envs,
        "ca-init-again",
    );
    assert!(
        !ok && out.contains("already holds objects labelled"),
        "a token key is never overwritten: {out}"
    );

    let csr = dir.join("issuing-ca.csr");
    let (ok, out) = estd(
        dir,
        &config,
        &["ca", "csr", "--out", path(&csr)],
        &envs,
        "ca-csr",
    );
    assert!(ok, "estd ca csr: {out}");
    // openssl checks the token's signature on the request.
    let verified = openssl(&["req", "-in", path(&csr), "-verify", "-noout"]);
    assert!(
        verified.contains("verify OK")
            || verified.contains("Certificate request self-signature verify OK"),
        "{verified}"
    );

    let root_dir = dir.join("offline-root");
    std::fs::create_dir_all(&root_dir).expect("root dir");
    let (root_key, root_pem) = (root_dir.join("root.key"), root_dir.join("root.pem"));
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-384",
        "-nodes",
        "-keyout",
        path(&root_key),
        "-subj",
        "/C=DK/O=Offline Root/CN=Test Offline Root",
        "-days",
        "3650",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        "-out",
        path(&root_pem),
    ]);
    let ext = root_dir.join("issuing.ext");
    std::fs::write(
        &ext,
        "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign,digitalSignature\n\
         subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n",
    )
    .expect("extfile");
    let sign = |req: &Path, out: &Path| {
        openssl(&[
            "x509",
            "-req",
            "-in",
            path(req),
            "-CA",
            path(&root_pem),
            "-CAkey",
            path(&root_key),
            "-CAcreateserial",
            "-CAserial",
            path(&root_dir.join("root.srl")),
            "-days",
            "1825",
            "-sha384",
            "-extfile",
            path(&ext),
            "-out",
            path(out),
        ]);
    };
    let issuing_pem = dir.join("issuing-ca.pem");
    sign(&csr, &issuing_pem);

    if refusals {
        // A CA certificate for a key that is not the token's.
        let other_csr = root_dir.join("other.csr");
        openssl(&[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            path(&root_dir.join("other.key")),
            "-subj",
            "/CN=Not the token key",
            "-out",
            path(&other_csr),
        ]);
        let other_pem = root_dir.join("other.pem");
        sign(&other_csr, &other_pem);
        let (ok, out) = import(&other_pem, &root_pem, "ca-import-other");
        assert!(!ok && out.contains("its public key differs"), "{out}");
        // The issuing CA's certificate with a chain that did not sign it.
        let (ok, out) = import(&issuing_pem, &issuing_pem, "ca-import-wrong-chain");
        assert!(
            !ok && out.contains("is not signed by certificate 1 of"),
            "{out}"
        );
        assert!(
            !dir.join("certs/issuing-ca.pem").exists(),
            "nothing installed by a refusal"
        );
    }

    let (ok, out) = import(&issuing_pem, &root_pem, "ca-import");
    assert!(ok, "estd ca import: {out}");
    if refusals {
        let (ok, out) = import(&issuing_pem, &root_pem, "ca-import-again");
        assert!(!ok && out.contains("already exists"), "{out}");
    }
    Installed {
        hsm,
        config,
        root_pem,
        issuing_pem,
    }
}

/// Enrols as the demo IdM; on 200, checks with openssl that the certificate
/// chains to the offline root through the token's issuing CA.
async fn enrol_and_verify(d: &Daemon, dir: &Path, inst: &Installed, cn: &str) -> u16 {
    let r = enrol_as_demo_idm(d, &dir.join("certs"), cn).await;
    if r.status != 200 {
        return r.status;
    }
    let cert = pkcs7_certs(&r.body).remove(0);
    let leaf = dir.join(format!("{cn}.pem"));
    std::fs::write(
        &leaf,
        der::pem::encode_string(
            "CERTIFICATE",
            der::pem::LineEnding::LF,
            &cert.to_der().expect("der"),
        )
        .expect("pem"),
    )
    .expect("leaf");
    let out = openssl(&[
        "verify",
        "-CAfile",
        path(&inst.root_pem),
        "-untrusted",
        path(&inst.issuing_pem),
        path(&leaf),
    ]);
    assert!(out.contains(": OK"), "{out}");
    200
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Reads the key's attributes in a separate process ([`pkcs11_probe`]).
fn probe(inst: &Installed) -> String {
    let (k, v) = inst.hsm.env();
    let out = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "hsm::pkcs11_probe",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(k, v)
        .env("ESTD_HSM_PROBE_MODULE", &inst.hsm.module)
        .env("ESTD_HSM_PROBE_PIN", PIN)
        .output()
        .expect("probe");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && text.contains("PROBE DONE"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// Not a test on its own: the body of the child process [`probe`] starts,
/// with SOFTHSM2_CONF set for it. Logs in with cryptoki directly (not
/// through estd) and prints what the token says of the key.
#[test]
#[ignore = "run by the SoftHSM2 tests as a child process with the token's environment"]
fn pkcs11_probe() {
    use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
    use cryptoki::object::{Attribute, AttributeType, ObjectClass};
    use cryptoki::session::UserType;
    use cryptoki::types::AuthPin;
    let module = std::env::var_os("ESTD_HSM_PROBE_MODULE").expect("started by probe()");
    let pin = std::env::var("ESTD_HSM_PROBE_PIN").expect("pin");
    let ctx = Pkcs11::new(module).expect("module");
    ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .expect("init");
    let slot = ctx
        .get_slots_with_token()
        .expect("slots")
        .into_iter()
        .find(|s| {
            ctx.get_token_info(*s)
                .map(|i| i.label().trim_end() == TOKEN)
                .unwrap_or(false)
        })
        .expect("the token");
    let session = ctx.open_ro_session(slot).expect("session");
    session
        .login(UserType::User, Some(&AuthPin::from(pin)))
        .expect("login");
    let keys = session
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Label(KEY.as_bytes().to_vec()),
        ])
        .expect("find");
    assert_eq!(keys.len(), 1, "one private key labelled {KEY}");
    let attrs = session
        .get_attributes(
            keys[0],
            &[
                AttributeType::Token,
                AttributeType::Sensitive,
                AttributeType::Extractable,
                AttributeType::AlwaysSensitive,
                AttributeType::NeverExtractable,
            ],
        )
        .expect("attributes");
    for a in attrs {
        match a {
            Attribute::Token(b) => println!("CKA_TOKEN={b}"),
            Attribute::Sensitive(b) => println!("CKA_SENSITIVE={b}"),
            Attribute::Extractable(b) => println!("CKA_EXTRACTABLE={b}"),
            Attribute::AlwaysSensitive(b) => println!("CKA_ALWAYS_SENSITIVE={b}"),
            Attribute::NeverExtractable(b) => println!("CKA_NEVER_EXTRACTABLE={b}"),
            _ => {}
        }
    }
    let value_shown = matches!(
        session.get_attributes(keys[0], &[AttributeType::Value]),
        Ok(v) if v.iter().any(|a| matches!(a, Attribute::Value(bytes) if !bytes.is_empty()))
    );
    println!("CKA_VALUE_SHOWN={value_shown}");
    println!("PROBE DONE");
}

#[tokio::test(flavor = "multi_thread")]
async fn ceremony_then_enrolment_with_the_key_only_in_the_token() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let Some(hsm) = token_or_skip(
        dir,
        "ceremony_then_enrolment_with_the_key_only_in_the_token",
    ) else {
        return;
    };
    let inst = ceremony(dir, hsm, "p256", "debug", true);
    let envs = inst.envs();
    let d = Daemon::start(dir, &inst.config, &as_refs(&envs), "serve").expect("estd serve");
    assert_eq!(enrol_and_verify(&d, dir, &inst, "hsm-device-1").await, 200);
    assert_eq!(enrol_and_verify(&d, dir, &inst, "hsm-device-2").await, 200);

    // The token says the key is sensitive and never leaves it; its value
    // cannot be read.
    let attrs = probe(&inst);
    for line in [
        "CKA_TOKEN=true",
        "CKA_SENSITIVE=true",
        "CKA_EXTRACTABLE=false",
        "CKA_ALWAYS_SENSITIVE=true",
        "CKA_NEVER_EXTRACTABLE=true",
        "CKA_VALUE_SHOWN=false",
    ] {
        assert!(attrs.contains(line), "{line} in {attrs}");
    }

    // No CA private key under certs/ or data/: no issuing or root key file,
    // and every private key there (estd's TLS, OCSP and demo keys) is another key.
    let certs = dir.join("certs");
    assert!(!certs.join("issuing-ca.key").exists());
    assert!(!certs.join("root-ca.key").exists());
    let issuing = x509_cert::Certificate::from_der(&estd_testkit::process::first_cert(
        &certs.join("issuing-ca.pem"),
    ))
    .expect("issuing CA");
    let issuing_point = issuing
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .raw_bytes()
        .to_vec();
    let mut private_files = Vec::new();
    for f in files_under(&certs)
        .into_iter()
        .chain(files_under(&dir.join("data")))
    {
        let bytes = std::fs::read(&f).expect("read");
        // A PKCS#8 EC key's header (version 0, id-ecPublicKey), as DER anywhere.
        assert!(
            !contains(
                &bytes,
                &[
                    0x02, 0x01, 0x00, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02,
                    0x01
                ]
            ) || f.starts_with(&certs),
            "DER private key in {}",
            f.display()
        );
        if !contains(&bytes, b"PRIVATE KEY-----") {
            continue;
        }
        assert!(
            f.starts_with(&certs),
            "a PEM private key in {}",
            f.display()
        );
        let pem = String::from_utf8(bytes).expect("PEM text");
        let (label, der) = der::pem::decode_vec(pem.as_bytes()).expect("PEM");
        assert_eq!(label, "PRIVATE KEY", "{}", f.display());
        let kp = rcgen::KeyPair::try_from(der.as_slice()).expect("a PKCS#8 key");
        let spki = spki::SubjectPublicKeyInfoOwned::from_der(
            &rcgen::PublicKeyData::subject_public_key_info(&kp),
        )
        .expect("spki");
        assert_ne!(
            spki.subject_public_key.raw_bytes(),
            issuing_point.as_slice(),
            "{} holds the issuing CA's key",
            f.display()
        );
        private_files.push(f.file_name().expect("name").to_string_lossy().into_owned());
    }
    private_files.sort();
    assert_eq!(
        private_files,
        ["demo-idm.key", "ocsp-signer.key", "tls-server.key"]
    );

    // The PIN is in no output, with a debug log filter.
    let log = d.output();
    assert!(log.contains("DEBUG"), "the log is verbose");
    assert!(log.contains("issuing CA key in a PKCS#11 token"), "{log}");
    drop(d);
    for f in files_under(dir) {
        let name = f.file_name().expect("name").to_string_lossy().into_owned();
        if name.ends_with(".stdout") || name.ends_with(".stderr") {
            let text = std::fs::read(&f).expect("read");
            assert!(
                !contains(&text, PIN.as_bytes()),
                "the PIN is in {}",
                f.display()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_or_missing_pin_stops_start_up() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let Some(hsm) = token_or_skip(dir, "a_wrong_or_missing_pin_stops_start_up") else {
        return;
    };
    let inst = ceremony(dir, hsm, "p384", "debug", false);
    let (k, v) = inst.hsm.env();
    let wrong = "Pin-0000-Forkert";
    for (tag, envs, reason) in [
        (
            "wrong-pin",
            vec![(PIN_VAR, wrong), (k, v.as_str())],
            "the PIN of token \"estd-ca\" is wrong (CKR_PIN_INCORRECT)",
        ),
        (
            "no-pin",
            vec![(k, v.as_str())],
            "the token PIN variable ESTD_TEST_TOKEN_PIN ([ca.key] pkcs11 pin_env) is not set",
        ),
    ] {
        let (status, out, err) = run_to_exit(dir, &inst.config, "serve", &envs, tag);
        assert!(!status.success(), "{tag}: estd must refuse to start");
        assert!(!out.contains("estd: listening"), "{tag}: {out}");
        assert!(err.contains(reason), "{tag}: expected {reason:?} in: {err}");
        assert!(
            !err.contains(wrong) && !out.contains(wrong),
            "{tag}: the PIN in output"
        );
    }
    // The PIN from a 0600 file: a wrong one is refused the same way; with
    // the right one the P-384 key signs, and openssl verifies the chain.
    let pin_file = dir.join("token-pin");
    std::fs::write(&pin_file, format!("{wrong}\n")).expect("pin file");
    std::fs::set_permissions(&pin_file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let table = inst.hsm.ca_key_config(KEY, PIN_VAR).replace(
        &format!("pin_env = \"{PIN_VAR}\""),
        &format!("pin_file = {}", toml_str(path(&pin_file))),
    );
    assert!(table.contains("pin_file"), "{table}");
    let config = write_config(dir, "debug", &table);
    let envs = vec![(k, v.as_str())];
    let (status, _, err) = run_to_exit(dir, &config, "serve", &envs, "wrong-pin-file");
    assert!(
        !status.success() && err.contains("CKR_PIN_INCORRECT"),
        "{err}"
    );
    std::fs::write(&pin_file, format!("{PIN}\n")).expect("pin file");
    let d = Daemon::start(dir, &config, &envs, "serve").expect("estd serve");
    assert_eq!(enrol_and_verify(&d, dir, &inst, "p384-device").await, 200);
    assert!(!d.output().contains(PIN));
}

#[tokio::test(flavor = "multi_thread")]
async fn while_the_token_is_gone_est_answers_503_and_recovers() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let Some(hsm) = token_or_skip(dir, "while_the_token_is_gone_est_answers_503_and_recovers")
    else {
        return;
    };
    let inst = ceremony(dir, hsm, "rsa2048", "info", false);
    let envs = inst.envs();
    let d = Daemon::start(dir, &inst.config, &as_refs(&envs), "serve").expect("estd serve");
    assert_eq!(enrol_and_verify(&d, dir, &inst, "rsa-before").await, 200);

    // More enrolments at once than there are sessions (twice the cores):
    // they share the pool and all succeed.
    let d = std::sync::Arc::new(d);
    let mut burst = tokio::task::JoinSet::new();
    for i in 0..24 {
        let (d, certs) = (d.clone(), dir.join("certs"));
        burst.spawn(async move {
            enrol_as_demo_idm(&d, &certs, &format!("rsa-burst-{i}"))
                .await
                .status
        });
    }
    while let Some(status) = burst.join_next().await {
        assert_eq!(status.expect("enrolment task"), 200);
    }

    // The token's files go away (as a token pulled from its slot).
    let token_dir = inst.hsm.token_dir();
    let away = token_dir.with_extension("away");
    std::fs::rename(&token_dir, &away).expect("take the token away");
    let r = enrol_as_demo_idm(&d, &dir.join("certs"), "rsa-while-gone").await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.header("retry-after").is_some(), "Retry-After on 503");
    let log = d.output();
    assert!(log.contains("the token did not sign"), "{log}");
    // The admin API too: a CRL cannot be signed now.
    let root = estd_testkit::process::first_cert(&inst.root_pem);
    let token = estd_testkit::process::operator_token(&dir.join("certs"));
    let mut admin = Admin::connect(&d, &root, &token).await;
    let r = admin.call("POST", "/crl", None).await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.header("retry-after").is_some(), "Retry-After on 503");

    // Back: service recovers by itself (the module is re-initialised at
    // most once a second, so allow a few tries).
    std::fs::rename(&away, &token_dir).expect("bring the token back");
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut n = 0;
    loop {
        n += 1;
        let status = enrol_and_verify(&d, dir, &inst, &format!("rsa-after-{n}")).await;
        if status == 200 {
            break;
        }
        assert_eq!(status, 503, "only 503 while recovering");
        assert!(
            Instant::now() < deadline,
            "no recovery within 15 s of the token's return"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let r = admin.call("POST", "/crl", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
}

/// The rollover ceremony with both keys in the token and both roots
/// offline: the next generation's key (`estd ca init --pkcs11 --next`), its
/// CSR, a new root that signs it, NewWithOld and OldWithNew made by the two
/// roots with openssl, and `estd ca import --next`; then the next start
/// issues from the new CA, whose CRL the token signs, and a client that
/// trusts only the old root still verifies through NewWithOld.
#[tokio::test(flavor = "multi_thread")]
async fn a_rollover_ceremony_in_the_token_under_a_new_root() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let Some(hsm) = token_or_skip(dir, "a_rollover_ceremony_in_the_token_under_a_new_root") else {
        return;
    };
    let inst = ceremony(dir, hsm, "p256", "info", false);
    let envs = inst.envs();
    let envs = as_refs(&envs);
    let run = |args: &[&str], tag: &str| estd(dir, &inst.config, args, &envs, tag);
    let d = Daemon::start(dir, &inst.config, &envs, "serve").expect("estd serve");
    assert_eq!(
        enrol_and_verify(&d, dir, &inst, "before-rollover").await,
        200
    );
    drop(d);

    // Without a label the token key of the next generation is refused.
    let (ok, out) = run(&["ca", "init", "--pkcs11", "--next"], "next-init-nolabel");
    assert!(!ok && out.contains("--key-label"), "{out}");
    let (ok, out) = run(
        &["ca", "init", "--pkcs11", "--next", "--key-label", KEY],
        "next-init-same-label",
    );
    assert!(
        !ok && out.contains("already holds objects labelled"),
        "{out}"
    );
    assert!(
        !dir.join("certs/ca-2").exists(),
        "a refused init leaves no folder"
    );
    let (ok, out) = run(
        &[
            "ca",
            "init",
            "--pkcs11",
            "--next",
            "--key-label",
            "estd-issuing-2027",
        ],
        "next-init",
    );
    assert!(ok, "{out}");
    assert!(out.contains("CKA_EXTRACTABLE = false"), "{out}");
    let csr = dir.join("next.csr");
    let (ok, out) = run(&["ca", "csr", "--next", "--out", path(&csr)], "next-csr");
    assert!(ok, "{out}");
    let text = openssl(&["req", "-in", path(&csr), "-verify", "-noout", "-subject"]);
    assert!(text.contains("G2"), "the next generation's name: {text}");
    // A restart in the middle of the ceremony loads generation 1 only.
    let d = Daemon::start(dir, &inst.config, &envs, "serve-mid").expect("estd serve");
    assert_eq!(enrol_and_verify(&d, dir, &inst, "mid-ceremony").await, 200);
    drop(d);

    // The new offline root, and the two rollover certificates.
    let roots = dir.join("offline-root");
    let (old_key, old_root) = (roots.join("root.key"), inst.root_pem.clone());
    let (new_key, new_root) = (roots.join("root2.key"), roots.join("root2.pem"));
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-384",
        "-nodes",
        "-keyout",
        path(&new_key),
        "-subj",
        "/C=DK/O=Offline Root/CN=Test Offline Root G2",
        "-days",
        "3650",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        "-out",
        path(&new_root),
    ]);
    let ext = roots.join("issuing.ext");
    let cross_ext = roots.join("cross.ext");
    std::fs::write(
        &cross_ext,
        "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n\
         subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n",
    )
    .expect("extfile");
    let sign = |req: &Path, ca: &Path, ca_key: &Path, ext: &Path, out: &Path| {
        openssl(&[
            "x509",
            "-req",
            "-in",
            path(req),
            "-CA",
            path(ca),
            "-CAkey",
            path(ca_key),
            "-set_serial",
            &format!(
                "{}",
                std::process::id() as u64 * 1000 + out.as_os_str().len() as u64
            ),
            "-days",
            "1825",
            "-sha384",
            "-extfile",
            path(ext),
            "-out",
            path(out),
        ]);
    };
    let issuing2 = dir.join("issuing-ca-2.pem");
    sign(&csr, &new_root, &new_key, &ext, &issuing2);
    let self_req = |cert: &Path, key: &Path, out: &Path| {
        openssl(&[
            "x509",
            "-x509toreq",
            "-in",
            path(cert),
            "-signkey",
            path(key),
            "-out",
            path(out),
        ]);
    };
    let (new_req, old_req) = (roots.join("root2.req"), roots.join("root.req"));
    self_req(&new_root, &new_key, &new_req);
    self_req(&old_root, &old_key, &old_req);
    let (nwo, own) = (
        roots.join("new-with-old.pem"),
        roots.join("old-with-new.pem"),
    );
    sign(&new_req, &old_root, &old_key, &cross_ext, &nwo);
    sign(&old_req, &new_root, &new_key, &cross_ext, &own);
    let rollover = roots.join("rollover.pem");
    let both = format!(
        "{}{}",
        std::fs::read_to_string(&own).expect("read"),
        std::fs::read_to_string(&nwo).expect("read")
    );
    std::fs::write(&rollover, both).expect("write");

    // Refusals: only one rollover certificate; a chain that did not sign it.
    let (ok, out) = run(
        &[
            "ca",
            "import",
            "--next",
            "--cert",
            path(&issuing2),
            "--chain",
            path(&new_root),
            "--root-rollover",
            path(&nwo),
        ],
        "next-import-half",
    );
    assert!(!ok && out.contains("NewWithOld"), "{out}");
    let (ok, out) = run(
        &[
            "ca",
            "import",
            "--next",
            "--cert",
            path(&issuing2),
            "--chain",
            path(&old_root),
        ],
        "next-import-wrong-root",
    );
    assert!(!ok && out.contains("is not signed by"), "{out}");
    assert!(!dir.join("certs/ca-2/issuing-ca.pem").exists());

    let (ok, out) = run(
        &[
            "ca",
            "import",
            "--next",
            "--cert",
            path(&issuing2),
            "--chain",
            path(&new_root),
            "--root-rollover",
            path(&rollover),
            "--switch-at",
            "now",
        ],
        "next-import",
    );
    assert!(ok, "{out}");
    let (ok, out) = run(&["ca", "status"], "status");
    assert!(ok, "{out}");
    assert!(out.contains("token key \"estd-issuing-2027\""), "{out}");
    assert!(out.contains("issuing now: generation 2"), "{out}");

    // The next start issues from generation 2, signed in the token.
    let d = Daemon::start(dir, &inst.config, &envs, "serve-after").expect("estd serve");
    let next = Installed {
        hsm: SoftHsm::new(&dir.join("hsm"), TOKEN, PIN, SO_PIN).expect("the same token"),
        config: inst.config.clone(),
        root_pem: new_root.clone(),
        issuing_pem: issuing2.clone(),
    };
    assert_eq!(
        enrol_and_verify(&d, dir, &next, "after-rollover").await,
        200
    );
    let leaf = dir.join("after-rollover.pem");
    let via = dir.join("via-new-with-old.pem");
    std::fs::write(
        &via,
        format!(
            "{}{}",
            std::fs::read_to_string(&issuing2).expect("read"),
            std::fs::read_to_string(&nwo).expect("read")
        ),
    )
    .expect("write");
    let out = openssl(&[
        "verify",
        "-CAfile",
        path(&old_root),
        "-untrusted",
        path(&via),
        path(&leaf),
    ]);
    assert!(
        out.contains(": OK"),
        "the old root reaches it through NewWithOld: {out}"
    );
    let leaf_text = openssl(&[
        "x509",
        "-in",
        path(&leaf),
        "-noout",
        "-ext",
        "crlDistributionPoints",
    ]);
    assert!(leaf_text.contains("/crl/issuing-ca-2.crl"), "{leaf_text}");

    // Generation 2's CRL, signed by the token key, and generation 1's.
    for (crl_path, chain) in [
        ("/crl/issuing-ca-2.crl", vec![&issuing2, &new_root]),
        (
            "/crl/issuing-ca.crl",
            vec![&inst.issuing_pem, &inst.root_pem],
        ),
    ] {
        let (status, _, der) = http_get(d.public, crl_path).await;
        assert_eq!(status, 200, "{crl_path}");
        let file = dir.join("fetched.crl");
        std::fs::write(&file, der).expect("write");
        let chain_file = dir.join("crl-chain.pem");
        let text: String = chain
            .iter()
            .map(|p| std::fs::read_to_string(p).expect("read"))
            .collect();
        std::fs::write(&chain_file, text).expect("write");
        let out = openssl(&[
            "crl",
            "-inform",
            "DER",
            "-in",
            path(&file),
            "-CAfile",
            path(&chain_file),
            "-noout",
        ]);
        assert!(out.contains("verify OK"), "{crl_path}: {out}");
    }
    // /cacerts carries both chains and the rollover certificates.
    let certs = dir.join("certs");
    let root = estd_testkit::process::first_cert(&certs.join("root-ca.pem"));
    let mut c = estd_testkit::process::TryClient::connect(d.est, &root, None)
        .await
        .expect("TLS");
    let r = c
        .send("GET", "/.well-known/est/cacerts", &[], Vec::new())
        .await
        .expect("answer");
    assert_eq!(
        pkcs7_certs(&r.body).len(),
        6,
        "two issuing CAs, two roots, two links"
    );
}
