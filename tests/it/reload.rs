//! estd's own TLS identity and live reloads (SIGHUP), against estd as a
//! child process:
//! - the TLS certificate names what `[tls] server_names` says, is renewed
//!   without a restart when it nears expiry, and survives a restart;
//! - a certificate and key from another CA are served, and reloaded when
//!   their files change; a pair that does not match is refused and the old
//!   one stays;
//! - SIGHUP applies the live sections, names those that need a restart, and
//!   refuses a configuration that does not load or does not build.

use std::path::Path;
use std::time::{Duration, Instant};

use estd_testkit::process::*;
use x509_cert::der::{Decode, Encode};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::SubjectAltName;

/// The leaf certificate a new TLS connection to `addr` is shown, verified
/// against `root_der` for the name `sni`.
async fn presented(
    addr: std::net::SocketAddr,
    root_der: &[u8],
    sni: &str,
) -> x509_cert::Certificate {
    let config = estd_testkit::tls_config(root_der, None, false);
    let connector = tokio_rustls::TlsConnector::from(config);
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from(sni.to_owned()).expect("name");
    let tls = connector
        .connect(name, tcp)
        .await
        .unwrap_or_else(|e| panic!("TLS handshake for {sni}: {e}"));
    let leaf = tls.get_ref().1.peer_certificates().expect("certificates")[0].to_vec();
    x509_cert::Certificate::from_der(&leaf).expect("leaf parses")
}

fn not_after(cert: &x509_cert::Certificate) -> u64 {
    cert.tbs_certificate
        .validity
        .not_after
        .to_unix_duration()
        .as_secs()
}

fn now() -> u64 {
    estd::model::now_unix()
}

fn sans(cert: &x509_cert::Certificate) -> Vec<String> {
    let (_, san) = cert
        .tbs_certificate
        .get::<SubjectAltName>()
        .expect("extensions parse")
        .expect("a subjectAltName");
    san.0
        .iter()
        .map(|n| match n {
            GeneralName::DnsName(d) => format!("DNS:{}", d.as_str()),
            GeneralName::IpAddress(ip) => format!("IP:{:?}", ip.as_bytes()),
            other => format!("{other:?}"),
        })
        .collect()
}

/// Polls (up to 60 s) until a new connection is shown a certificate that
/// `wanted` accepts.
async fn presented_until(
    addr: std::net::SocketAddr,
    root_der: &[u8],
    sni: &str,
    wanted: impl Fn(&x509_cert::Certificate) -> bool,
) -> x509_cert::Certificate {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let cert = presented(addr, root_der, sni).await;
        if wanted(&cert) {
            return cert;
        }
        assert!(
            Instant::now() < deadline,
            "the certificate presented did not change within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn set_tls_table(config: &Path, table: &str) {
    let text = std::fs::read_to_string(config).expect("read config");
    let start = text.find("[tls]\n").expect("a [tls] table");
    let end = text[start + 6..]
        .find("\n[")
        .map(|i| start + 6 + i + 1)
        .unwrap_or(text.len());
    let new = format!("{}{table}{}", &text[..start], &text[end..]);
    std::fs::write(config, new).expect("write config");
}

async fn tls_expiry_metric(d: &Daemon, certs: &Path) -> u64 {
    let root = first_cert(&certs.join("root-ca.pem"));
    let token = operator_token(certs);
    let mut c = TryClient::connect(d.admin, &root, None)
        .await
        .expect("admin connection");
    let auth = format!("Bearer {token}");
    let r = c
        .send(
            "GET",
            "/metrics",
            &[("authorization", auth.as_str())],
            vec![],
        )
        .await
        .expect("metrics");
    let text = r.text();
    text.lines()
        .find_map(|l| {
            l.strip_prefix(
                "estd_certificate_expiry_timestamp_seconds{certificate=\"tls\",generation=\"\"} ",
            )
        })
        .unwrap_or_else(|| panic!("no TLS expiry metric in:\n{text}"))
        .trim()
        .parse()
        .expect("a number")
}

#[tokio::test]
async fn estd_names_itself_as_configured_and_renews_its_certificate_without_a_restart() {
    let dir = tempfile::tempdir().expect("tmp");
    let certs = dir.path().join("certs");
    let config = write_config(
        dir.path(),
        "info",
        "[tls]\nserver_names = [\"est.reload.test\", \"localhost\"]\n\
         certificate_days = 3\nrenew_before_days = 1\ncheck_interval_secs = 1\n",
    );
    let mut d = Daemon::start(dir.path(), &config, &[], "first").expect("start");
    let root = first_cert(&certs.join("root-ca.pem"));

    let first = presented(d.est, &root, "est.reload.test").await;
    assert_eq!(
        sans(&first),
        ["DNS:est.reload.test", "DNS:localhost"],
        "the configured names, and only those"
    );
    let left = not_after(&first) - now();
    assert!(
        (2 * 86_400..=3 * 86_400 + 60).contains(&left),
        "valid certificate_days (3): {left} s left"
    );
    // The shipped default's address is not among them any more.
    let config_client = estd_testkit::tls_config(&root, None, false);
    let tcp = tokio::net::TcpStream::connect(d.est)
        .await
        .expect("connect");
    let refused = tokio_rustls::TlsConnector::from(config_client)
        .connect(
            rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name"),
            tcp,
        )
        .await;
    assert!(
        refused.is_err(),
        "127.0.0.1 is not among the configured names"
    );

    // A keep-alive connection opened before the renewal.
    let idm = demo_identity(&certs);
    let mut before = TryClient::connect(d.est, &root, Some(&idm))
        .await
        .expect("mTLS");
    let r = before.enrol_demo("before-renewal").await.expect("answer");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(tls_expiry_metric(&d, &certs).await, not_after(&first));

    // With three days left and five to renew before, estd renews itself.
    set_tls_table(
        &config,
        "[tls]\nserver_names = [\"est.reload.test\", \"localhost\"]\n\
         certificate_days = 30\nrenew_before_days = 5\ncheck_interval_secs = 1\n",
    );
    d.hangup();
    let log = d.wait_for_log("configuration reloaded", 1);
    assert!(
        log.contains("fewer than tls.renew_before_days remain"),
        "the log says why it renewed:\n{log}"
    );
    let renewed = presented_until(d.est, &root, "est.reload.test", |c| {
        c.tbs_certificate.serial_number != first.tbs_certificate.serial_number
    })
    .await;
    let left = not_after(&renewed) - now();
    assert!(
        (29 * 86_400..=30 * 86_400 + 60).contains(&left),
        "the new certificate is valid 30 days: {left} s left"
    );
    assert_eq!(sans(&renewed), sans(&first));
    assert_eq!(tls_expiry_metric(&d, &certs).await, not_after(&renewed));
    // The connection opened before goes on.
    let r = before.enrol_demo("after-renewal").await.expect("answer");
    assert_eq!(r.status, 200, "{}", r.text());
    // Nothing more is due: the next looks leave it be.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let again = presented(d.est, &root, "est.reload.test").await;
    assert_eq!(
        again.tbs_certificate.serial_number,
        renewed.tbs_certificate.serial_number
    );

    // It was written: a restart presents it, and issues nothing new.
    d.terminate();
    let mut d = Daemon::start(dir.path(), &config, &[], "second").expect("restart");
    let after_restart = presented(d.est, &root, "est.reload.test").await;
    assert_eq!(
        after_restart.to_der().expect("der"),
        renewed.to_der().expect("der")
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(certs.join("tls-server.key"))
            .expect("key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the TLS key is private");
    }
    d.terminate();
}

/// A server certificate for localhost and 127.0.0.1 from `ca`, and its key,
/// written as PEM to `cert` and `key` (0600).
fn write_server_pair(ca: &estd_testkit::PartnerCa, cn: &str, cert: &Path, key: &Path) -> Vec<u8> {
    let k = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let mut p = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("params");
    p.distinguished_name.push(rcgen::DnType::CommonName, cn);
    p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let c = ca.sign(&p, &k);
    let pem = format!("{}{}", c.pem(), pem_of(ca.der()));
    std::fs::write(cert, pem).expect("write cert");
    write_private(key, &k.serialize_pem());
    c.der().to_vec()
}

fn pem_of(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("ascii"))
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}

fn write_private(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_served_and_reloaded_when_its_files_change() {
    let dir = tempfile::tempdir().expect("tmp");
    let public_ca = estd_testkit::PartnerCa::named("Some Public CA");
    let cert = dir.path().join("fullchain.pem");
    let key = dir.path().join("key.pem");
    let first = write_server_pair(&public_ca, "first", &cert, &key);
    let config = write_config(
        dir.path(),
        "info",
        &format!(
            "[tls]\ncertificate = {}\nkey = {}\ncheck_interval_secs = 1\n",
            toml_str(&cert.display().to_string()),
            toml_str(&key.display().to_string())
        ),
    );
    let mut d = Daemon::start(dir.path(), &config, &[], "files").expect("start");
    let shown = presented(d.est, public_ca.der(), "localhost").await;
    assert_eq!(shown.to_der().expect("der"), first);
    // estd issued itself no TLS certificate.
    assert!(!dir.path().join("certs/tls-server.pem").exists());

    // The operator renews the files; estd follows without being told.
    let second = write_server_pair(&public_ca, "second", &cert, &key);
    let shown = presented_until(d.est, public_ca.der(), "localhost", |c| {
        c.to_der().is_ok_and(|der| der == second)
    })
    .await;
    assert_eq!(shown.to_der().expect("der"), second);
    d.wait_for_log("the TLS certificate files changed", 1);

    // A certificate whose key is not beside it is refused; the pair in force stays.
    let other_key = dir.path().join("other.pem");
    write_server_pair(&public_ca, "third", &cert, &other_key);
    let log = d.wait_for_log("the one in force stays", 1);
    assert!(log.contains("KeyMismatch"), "the log says why:\n{log}");
    let shown = presented(d.est, public_ca.der(), "localhost").await;
    assert_eq!(shown.to_der().expect("der"), second, "the old pair stays");
    // Said once, not every round.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let log = std::fs::read_to_string(&d.stderr).expect("log");
    assert_eq!(
        log.lines().filter(|l| l.contains("KeyMismatch")).count(),
        1,
        "{log}"
    );
    // An IdM system that trusts the public CA for the server enrols with
    // its estd client certificate as before.
    let idm = demo_identity(&dir.path().join("certs"));
    let mut c = TryClient::connect(d.est, public_ca.der(), Some(&idm))
        .await
        .expect("mTLS against the public CA's server certificate");
    let r = c.enrol_demo("over-public-cert").await.expect("answer");
    assert_eq!(r.status, 200, "{}", r.text());
    d.terminate();
}

#[tokio::test]
async fn sighup_applies_the_live_sections_names_the_rest_and_refuses_what_does_not_build() {
    let dir = tempfile::tempdir().expect("tmp");
    let certs = dir.path().join("certs");
    let config = write_config(dir.path(), "info", "");
    let mut d = Daemon::start(dir.path(), &config, &[], "hup").expect("start");
    let r = enrol_as_demo_idm(&d, &certs, "one").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = enrol_as_demo_idm(&d, &certs, "two").await;
    assert_eq!(r.status, 200, "under the shipped limits: {}", r.text());

    // A per-client limit of one request, a restart-only change, and a log filter.
    let base = std::fs::read_to_string(&config).expect("config");
    let changed = base.replacen(
        "filter = \"info\"",
        "filter = \"info,estd::reload=debug\"",
        1,
    )
        + "[rate_limit.client]\nper_second = 0.001\nburst = 1\n[orders]\ncode_ttl_days = 3\n";
    std::fs::write(&config, &changed).expect("write");
    d.hangup();
    let log = d.wait_for_log("configuration reloaded", 1);
    let line = log
        .lines()
        .find(|l| l.contains("configuration reloaded"))
        .expect("line");
    assert!(
        line.contains("rate_limit") && line.contains("log.filter"),
        "names what it applied: {line}"
    );
    assert!(
        line.contains("needs_restart=[\"orders\"]"),
        "names what waits for a restart, and only that: {line}"
    );
    // The new limit is in force: one request, then 429.
    let r = enrol_as_demo_idm(&d, &certs, "three").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = enrol_as_demo_idm(&d, &certs, "four").await;
    assert_eq!(r.status, 429, "the reloaded limit: {}", r.text());

    // A file that is not TOML is refused, and everything in force stays.
    std::fs::write(&config, format!("{changed}[tls\n")).expect("write");
    d.hangup();
    let log = d.wait_for_log("reload refused", 1);
    assert!(log.contains("TOML") || log.contains("invalid"), "{log}");
    let r = enrol_as_demo_idm(&d, &certs, "five").await;
    assert_eq!(r.status, 429, "the limit in force stays: {}", r.text());

    // A config that loads but whose live part cannot be built (an anchor
    // file that is not there) is refused whole: the limit is not lifted.
    let lifted = base.clone()
        + "[[tls.client_anchors]]\ncertificate = \"/nonexistent/anchor.pem\"\ncvr = \"12345674\"\nrights = [\"est-enroll\"]\n";
    std::fs::write(&config, lifted).expect("write");
    d.hangup();
    let log = d.wait_for_log("reload refused", 2);
    assert!(log.contains("anchor"), "says which part failed:\n{log}");
    let r = enrol_as_demo_idm(&d, &certs, "six").await;
    assert_eq!(r.status, 429, "nothing of it applied: {}", r.text());

    // Back to the shipped limits: lifted live.
    std::fs::write(&config, &base).expect("write");
    d.hangup();
    d.wait_for_log("configuration reloaded", 2);
    let r = enrol_as_demo_idm(&d, &certs, "seven").await;
    assert_eq!(r.status, 200, "{}", r.text());
    d.terminate();
}
