//! estd's test kit, shared by the integration tests (`tests/it`) and the
//! benchmark's smoke test: a real estd on loopback ports with real TLS and a
//! sled store in a temp dir ([`TestServer`]), a small mutual-TLS HTTPS client
//! ([`Client`]), real CSRs, the admin API client ([`api`]), estd as a
//! child process ([`process`]), a real PostgreSQL started by the tests
//! ([`postgres`]) and headless Chromium over WebDriver for the portal's
//! pages ([`browser`]). In the test binary `it_postgres` every test server's
//! store is a fresh PostgreSQL database instead of sled.

#![forbid(unsafe_code)]

pub mod api;
pub mod browser;
pub mod people;
pub mod postgres;
pub mod process;
pub mod relying;
pub mod softhsm;

pub use relying::{http_get, openssl_in, pem, write_pem};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use der::{Decode, Encode};
use estd::model::{now_unix, CertRecord, CertStatus, Organisation, Profile, Serial, SystemRight};
use estd::{App, Config, RunningServer};
use http_body_util::{BodyExt, Full};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use x509_cert::Certificate;

/// A running test server and its folder.
pub struct TestServer {
    pub server: RunningServer,
    pub dir: PathBuf,
}

pub fn test_config(dir: &Path, extra: &str) -> Config {
    let layer = format!(
        "[server]\nest_listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n[revocation]\nhttp_listen = \"127.0.0.1:0\"\n\
         [paths]\ncerts_dir = \"{}\"\ndata_dir = \"{}\"\n[log]\nfilter = \"warn\"\n",
        dir.join("certs").display(),
        dir.join("data").display()
    );
    // The suite on PostgreSQL (tests/it_postgres): the folder's own database.
    let store = if postgres::suite_on_postgres() {
        format!("[store]\n{}", postgres::store_lines_for(dir))
    } else {
        String::new()
    };
    Config::from_toml_layers(&[estd::config::DEFAULT_TOML, &layer, &store, extra])
        .expect("test config")
}

impl TestServer {
    pub async fn start(dir: &Path) -> TestServer {
        Self::start_with(dir, "").await
    }

    pub async fn start_with(dir: &Path, extra: &str) -> TestServer {
        let init = App::init(test_config(dir, extra)).expect("init");
        let server = RunningServer::start(init).await.expect("start");
        TestServer {
            server,
            dir: dir.to_path_buf(),
        }
    }

    pub fn app(&self) -> &Arc<App> {
        &self.server.app
    }

    pub fn root_der(&self) -> Vec<u8> {
        self.app().ca.generations()[0].ca.root_der().to_vec()
    }

    pub fn demo_identity(&self) -> Identity {
        demo_identity_in(&self.dir.join("certs"))
    }

    pub async fn client(&self, identity: Option<&Identity>) -> Client {
        Client::connect(self.server.est_addr, &self.root_der(), identity, false).await
    }

    pub async fn shutdown(self) {
        let _ = self.server.shutdown().await;
    }

    /// Creates another organisation with an API profile and an IdM certificate
    /// carrying `rights`, through the store and CA APIs.
    pub fn add_org(
        &self,
        cvr: &str,
        name: &str,
        label: &str,
        rights: Vec<SystemRight>,
    ) -> Identity {
        let app = self.app();
        let org = Organisation {
            cvr: cvr.into(),
            name: name.into(),
            allow_user_certs: true,
            allow_seal: false,
            p_numbers: vec![],
            se_numbers: vec![],
        };
        app.store.put_org(&org).expect("org");
        let profile = Profile {
            org_default: true,
            ..Profile::system(cvr, &format!("{name} devices"), label)
        };
        app.store.put_profile(&profile).expect("profile");
        let mut idm = profile.clone();
        idm.rights = rights;
        self.issue_direct(&org, &idm, "IdM", 365).1
    }

    /// Issues a certificate directly through the CA and stores it (for
    /// set-ups the EST API cannot make, such as an already-expired certificate).
    pub fn issue_direct(
        &self,
        org: &Organisation,
        profile: &Profile,
        cn: &str,
        validity_days: u32,
    ) -> (Serial, Identity) {
        let app = self.app();
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let spki = spki::SubjectPublicKeyInfoOwned::from_der(
            &rcgen::PublicKeyData::subject_public_key_info(&key),
        )
        .expect("spki");
        let template = estd::ca::CertTemplate {
            subject: estd::seed::system_subject(org, cn).expect("subject"),
            key: estd::ca::csr::classify_key(&spki).expect("key type"),
            spki,
            usage: estd::policy::cert_usage(profile, &app.config.certificate_policies)
                .expect("a profile that can have certificates"),
            sans: vec![],
            validity_days,
        };
        let issued = app.ca.active().issue(&template).expect("issue");
        app.store
            .insert_new_cert(&CertRecord {
                serial: issued.serial,
                der: issued.der.clone(),
                subject: template.subject.to_string(),
                profile_id: profile.id.clone(),
                cvr: org.cvr.clone(),
                kind: profile.kind,
                rights: profile.rights.clone(),
                issued_at: now_unix(),
                not_after: issued.not_after,
                status: CertStatus::Issued,
                renews: None,
                renewed_by: None,
                order_id: None,
                published: false,
                email: None,
            })
            .expect("store");
        (issued.serial, Identity::new(issued.der, &key))
    }
}

/// A client certificate with its key.
pub struct Identity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl Identity {
    pub fn new(cert_der: Vec<u8>, key: &rcgen::KeyPair) -> Identity {
        Identity {
            chain: vec![CertificateDer::from(cert_der)],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        }
    }

    pub fn clone_identity(&self) -> Identity {
        Identity {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

pub fn tls_config(
    root_der: &[u8],
    identity: Option<&Identity>,
    tls12_only: bool,
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(root_der.to_vec()))
        .expect("root");
    let versions: &[&'static rustls::SupportedProtocolVersion] = if tls12_only {
        &[&rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    };
    let builder = rustls::ClientConfig::builder_with_provider(estd::tls::provider())
        .with_protocol_versions(versions)
        .expect("versions")
        .with_root_certificates(roots);
    let config = match identity {
        Some(id) => builder
            .with_client_auth_cert(id.chain.clone(), id.key.clone_key())
            .expect("client cert"),
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

pub async fn tls_connect(
    addr: SocketAddr,
    root_der: &[u8],
    identity: Option<&Identity>,
    tls12_only: bool,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let connector = tokio_rustls::TlsConnector::from(tls_config(root_der, identity, tls12_only));
    let tcp = TcpStream::connect(addr).await.expect("connect");
    connector
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
        .expect("TLS handshake")
}

/// An HTTP/1.1 keep-alive client over one TLS connection. Like any HTTP
/// client it connects again after an answer that said `Connection: close`
/// (estd says so when it answered without reading the request body); a
/// connection closed without that warning still fails the next request.
pub struct Client {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    /// How to connect again, if this client made its own connection.
    again: Option<(SocketAddr, Vec<u8>, Option<Identity>, bool)>,
    /// The last answer said `Connection: close`.
    told_closing: bool,
}

/// A response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Client {
    pub async fn connect(
        addr: SocketAddr,
        root_der: &[u8],
        identity: Option<&Identity>,
        tls12_only: bool,
    ) -> Client {
        let mut c = Client::over(tls_connect(addr, root_der, identity, tls12_only).await).await;
        c.again = Some((
            addr,
            root_der.to_vec(),
            identity.map(Identity::clone_identity),
            tls12_only,
        ));
        c
    }

    /// HTTP/1.1 over a TLS connection already made (to read its TLS state first).
    pub async fn over(tls: tokio_rustls::client::TlsStream<TcpStream>) -> Client {
        let (sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .expect("http handshake");
        tokio::spawn(conn);
        Client {
            sender,
            again: None,
            told_closing: false,
        }
    }

    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Resp {
        let mut req = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(Bytes::from(body))).expect("request");
        // A connection the server closed (told, or idle past its keep-alive
        // while a test waited) is made again when this client can.
        if self.told_closing || (self.sender.is_closed() && self.again.is_some()) {
            if let Some((addr, root, identity, tls12)) = &self.again {
                let fresh = Client::connect(*addr, root, identity.as_ref(), *tls12).await;
                self.sender = fresh.sender;
                self.told_closing = false;
            }
        }
        // The connection task may not have run yet on a busy runtime.
        self.sender.ready().await.expect("connection ready");
        let resp = self.sender.send_request(req).await.expect("send");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        self.told_closing = headers
            .get(http::header::CONNECTION)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        Resp {
            status,
            headers,
            body,
        }
    }

    /// Waits until the server has closed the connection.
    pub async fn wait_closed(&mut self) {
        while !self.sender.is_closed() {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    pub async fn get(&mut self, path: &str) -> Resp {
        self.send("GET", path, &[], vec![]).await
    }

    /// POSTs a DER CSR as base64 with the pkcs10 content type.
    pub async fn enroll(&mut self, path: &str, csr_der: &[u8]) -> Resp {
        self.send(
            "POST",
            path,
            &[("content-type", "application/pkcs10")],
            b64(csr_der).into_bytes(),
        )
        .await
    }
}

/// Sends raw bytes over TLS and returns the raw response (for header-case and chunked checks).
pub async fn raw_exchange(
    addr: SocketAddr,
    root_der: &[u8],
    identity: Option<&Identity>,
    request: &[u8],
) -> Vec<u8> {
    let mut tls = tls_connect(addr, root_der, identity, false).await;
    tls.write_all(request).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tls.read_to_end(&mut out),
    )
    .await;
    out
}

pub fn b64(der: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(der)
}

pub const DEMO_ORG: &str = "Demo Organisation ApS";
pub const DEMO_CVR: &str = "12345674";

/// A real CSR: a fresh key of `alg` and the subject C, O, organizationIdentifier, CN.
pub fn csr_for(
    org: &str,
    cvr: &str,
    cn: &str,
    alg: &'static rcgen::SignatureAlgorithm,
) -> (rcgen::KeyPair, Vec<u8>) {
    let key = rcgen::KeyPair::generate_for(alg).expect("key");
    let der = csr_with_key(&key, org, cvr, cn);
    (key, der)
}

pub fn csr_with_key(key: &rcgen::KeyPair, org: &str, cvr: &str, cn: &str) -> Vec<u8> {
    csr_params(org, cvr, cn)
        .serialize_request(key)
        .expect("csr")
        .der()
        .to_vec()
}

/// CSR parameters with the subject C, O, organizationIdentifier, CN.
pub fn csr_params(org: &str, cvr: &str, cn: &str) -> rcgen::CertificateParams {
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CountryName, "DK");
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, org);
    params.distinguished_name.push(
        rcgen::DnType::CustomDnType(vec![2, 5, 4, 97]),
        format!("NTRDK-{cvr}"),
    );
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params
}

pub fn demo_csr(cn: &str) -> (rcgen::KeyPair, Vec<u8>) {
    csr_for(DEMO_ORG, DEMO_CVR, cn, &rcgen::PKCS_ECDSA_P256_SHA256)
}

/// The certificates in a base64 certs-only PKCS#7 body.
pub fn pkcs7_certs(body: &[u8]) -> Vec<Certificate> {
    let der = estd::est::codec::decode_body(body, false).expect("base64 body");
    let ci = cms::content_info::ContentInfo::from_der(&der).expect("ContentInfo");
    assert_eq!(ci.content_type, const_oid::db::rfc5911::ID_SIGNED_DATA);
    let sd: cms::signed_data::SignedData = ci.content.decode_as().expect("SignedData");
    assert!(sd.signer_infos.0.is_empty(), "certs-only has no signers");
    sd.certificates
        .expect("certificates")
        .0
        .iter()
        .map(|c| match c {
            cms::cert::CertificateChoices::Certificate(c) => c.clone(),
            _ => panic!("unexpected certificate choice"),
        })
        .collect()
}

/// The single certificate of an enrolment answer.
pub fn issued_cert(resp: &Resp) -> Certificate {
    assert_eq!(resp.status, 200, "enrolment failed: {}", resp.text());
    let mut certs = pkcs7_certs(&resp.body);
    assert_eq!(certs.len(), 1);
    certs.remove(0)
}

pub fn serial_of(cert: &Certificate) -> Serial {
    Serial::from_der_bytes(cert.tbs_certificate.serial_number.as_bytes()).expect("16-byte serial")
}

pub fn der_of(cert: &Certificate) -> Vec<u8> {
    cert.to_der().expect("der")
}

// ---- Admin API helpers ----

impl TestServer {
    /// The server operator's admin API token, as written to `certs/admin-token` at first start.
    pub fn operator_token(&self) -> String {
        std::fs::read_to_string(self.dir.join("certs").join("admin-token"))
            .expect("operator token file")
            .trim()
            .to_owned()
    }

    /// An HTTPS keep-alive client on the admin listener.
    /// The value of the `/metrics` line `line_prefix value` (a counter or gauge).
    pub async fn metric(&self, line_prefix: &str) -> u64 {
        let mut admin = self.admin_client(None).await;
        let r = admin.get("/metrics").await;
        assert_eq!(r.status, 200);
        let prefix = format!("{line_prefix} ");
        r.text()
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {prefix} in /metrics"))
            .trim()
            .parse()
            .expect("a number")
    }

    pub async fn admin_client(&self, identity: Option<&Identity>) -> Client {
        Client::connect(self.server.admin_addr, &self.root_der(), identity, false).await
    }
}

/// The demo IdM certificate and key that estd wrote to `certs`.
pub fn demo_identity_in(certs: &Path) -> Identity {
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(certs.join("demo-idm.pem"))
            .expect("demo cert")
            .map(|c| c.expect("pem"))
            .collect();
    let key = PrivateKeyDer::from_pem_file(certs.join("demo-idm.key")).expect("demo key");
    Identity { chain, key }
}

/// A partner's own CA, outside estd, whose certificates an organisation may
/// be configured to trust as client anchors.
pub struct PartnerCa {
    cert: rcgen::Certificate,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl Default for PartnerCa {
    fn default() -> Self {
        PartnerCa::new()
    }
}

impl PartnerCa {
    /// A fresh P-256 CA named "Partner CA".
    pub fn new() -> PartnerCa {
        PartnerCa::named("Partner CA")
    }

    /// A fresh P-256 CA with the common name `cn`.
    pub fn named(cn: &str) -> PartnerCa {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let mut params = rcgen::CertificateParams::new(vec![]).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign];
        let cert = params.self_signed(&key).expect("ca");
        PartnerCa {
            cert,
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// A clientAuth identity "Partner IdM" of this CA; `expired` puts its
    /// validity in the past.
    pub fn identity(&self, expired: bool) -> Identity {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let mut p = rcgen::CertificateParams::new(vec![]).expect("params");
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "Partner IdM");
        p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        if expired {
            p.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(30);
            p.not_after = time::OffsetDateTime::now_utc() - time::Duration::days(1);
        }
        Identity::new(self.sign(&p, &key).der().to_vec(), &key)
    }

    /// Signs `params` for `key`.
    pub fn sign(
        &self,
        params: &rcgen::CertificateParams,
        key: &rcgen::KeyPair,
    ) -> rcgen::Certificate {
        params
            .signed_by(key, &self.issuer)
            .expect("signed by the partner CA")
    }

    /// The CA certificate, DER.
    pub fn der(&self) -> &[u8] {
        self.cert.der()
    }

    /// Writes the CA certificate into `dir` and returns the config that makes
    /// it a client anchor of `cvr` with the est-enroll right.
    pub fn anchor_config(&self, dir: &Path, cvr: &str) -> String {
        let anchor_path = dir.join("partner-ca.pem");
        std::fs::write(&anchor_path, self.cert.pem()).expect("write anchor");
        format!(
            "[[tls.client_anchors]]\ncertificate = \"{}\"\ncvr = \"{cvr}\"\nrights = [\"est-enroll\"]\n",
            anchor_path.display()
        )
    }
}

// ---- Helpers the test areas share ----

/// The operator as the order and revocation functions name an actor.
pub fn operator() -> estd::model::Actor {
    estd::model::Actor::machine(estd::model::ActorId::Named("test-operator".into()), None)
}

/// The demo organisation as stored.
pub fn demo_org(app: &App) -> Organisation {
    app.store
        .org(DEMO_CVR)
        .expect("store")
        .expect("demo organisation")
}

/// The stored profile with `label`.
pub fn profile(ts: &TestServer, label: &str) -> Profile {
    ts.app()
        .store
        .profile_by_label(label)
        .expect("store")
        .expect("profile")
}

/// `Basic base64(user:pass)`.
pub fn basic(user: &str, pass: &str) -> String {
    format!("Basic {}", b64(format!("{user}:{pass}").as_bytes()))
}

/// Asserts a refusal: the status and a reason in the text body.
#[track_caller]
pub fn assert_refused(r: &Resp, status: u16, reason: &str) {
    assert_eq!(r.status, status, "answer: {}", r.text());
    assert!(
        r.text().contains(reason),
        "expected {reason:?} in the answer {:?}",
        r.text()
    );
}

/// Collects a one-time-code order over EST: a CSR POSTed to `label`'s
/// simpleenroll with the order's reference and code as Basic credentials.
pub async fn collect(
    ts: &TestServer,
    label: &str,
    reference: &str,
    code: &str,
    csr: &[u8],
) -> Resp {
    let mut c = ts.client(None).await;
    c.send(
        "POST",
        &format!("/.well-known/est/{label}/simpleenroll"),
        &[
            ("content-type", "application/pkcs10"),
            ("authorization", &basic(reference, code)),
        ],
        b64(csr).into_bytes(),
    )
    .await
}

impl TestServer {
    /// How many certificates the store holds.
    pub fn cert_count(&self) -> usize {
        self.app().store.cert_count()
    }

    /// One admin API call with the operator's token on a fresh connection:
    /// (status, JSON body or `null`).
    pub async fn admin(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let r = api::Api::operator(self)
            .await
            .call(method, path, body)
            .await;
        (r.status, r.body)
    }
}

/// An order for the profile `profile_id` with the profile's own methods,
/// made by the [`operator`].
pub async fn order_for(app: &App, profile_id: &str) -> estd::service::CreatedOrder {
    estd::service::create_order(
        app.services(),
        &operator(),
        &estd::service::OrderRequest {
            profile_id: profile_id.into(),
            user: None,
            publish: None,
            identification: None,
            issuance: None,
        },
    )
    .await
    .expect("order")
}

/// [`order_for`] as (reference, one-time code).
pub async fn order_code(app: &App, profile_id: &str) -> (String, String) {
    let created = order_for(app, profile_id).await;
    (created.order.id, created.code.expect("one-time code"))
}

impl TestServer {
    /// `estd admin` and the options that reach this server's admin API as
    /// the operator; a test appends the subcommand.
    pub fn admin_cli_args(&self) -> Vec<String> {
        let certs = self.dir.join("certs");
        vec![
            "admin".to_string(),
            "--url".into(),
            format!("https://127.0.0.1:{}", self.server.admin_addr.port()),
            "--ca".into(),
            certs.join("root-ca.pem").display().to_string(),
            "--token-file".into(),
            certs.join("admin-token").display().to_string(),
        ]
    }

    /// Runs `estd admin ... EXTRA` as a child process against this server as
    /// the operator: (success, stdout, stderr).
    pub async fn run_admin_cli(&self, extra: &[&str]) -> (bool, String, String) {
        let mut args = self.admin_cli_args();
        args.extend(extra.iter().map(|s| s.to_string()));
        process::estd_cli(args).await
    }
}
