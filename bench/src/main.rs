//! `estd-bench`: a load generator for a running estd, and a store filler.
//!
//! For the EST operations (`enroll`, `reenroll`, `cacerts`) it drives a real
//! server over real mutual TLS, as the demo IdM system (or, for `reenroll`, as
//! the holders of certificates it enrolled first), and counts only answers it
//! has verified: every returned certificate must carry the requested key and
//! subject and chain to the trust anchor.
//!
//! Phases:
//!
//! 1. set-up (untimed): load the trust anchor and client identity, fetch the
//!    issuing CA once from `cacerts`, generate every key and CSR, and for
//!    `reenroll` enrol one identity certificate per worker (each renewal is
//!    then made by the certificate the one before issued, on a new
//!    connection, since a certificate has one successor);
//! 2. timed: `--workers` tasks send requests, over one kept-alive connection
//!    each (`--conn reuse`) or a new TLS connection with a full handshake per
//!    request (`--conn new`), and verify each answer;
//! 3. report: plain text, then one machine-readable `RESULT` line.
//!
//! Around the timed phase it reads CPU time from `/proc` (see [`procfs`]):
//! its own, the server's (`--server-pid`, with its memory before and after)
//! and the database's (`--db-pid`, repeatable: each the root of a process
//! tree, e.g. PostgreSQL's postmaster with every backend and helper), and
//! reports each as microseconds of CPU per verified operation.
//!
//! Three more operations:
//!
//! - `--op fill` (see [`fill`]) opens the store itself, with the server
//!   stopped, on the engine the configuration names (sled or PostgreSQL), and
//!   issues and stores many certificates directly through the CA, revoking a
//!   share of them, so that the other benchmarks run against a store of
//!   realistic size. It writes the serials and their status to a file.
//! - `--op ocsp` (see [`ocsp`]) asks the plain-HTTP OCSP responder about
//!   serials from that file and verifies every response (signature, responder
//!   certificate, CertID, status).
//! - `--op start` (see [`start`]) starts `estd serve` a few times and measures
//!   the time to a ready `/readyz`, and the server's memory then.
//!
//! `bench/compare-engines.sh` runs all of it against sled and against a
//! PostgreSQL cluster of its own, in one run, and prints a table of both.
//!
//! The exit code is non-zero when any request failed or none was verified.

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use clap::{Parser, ValueEnum};
use cms::cert::CertificateChoices;
use cms::content_info::ContentInfo;
use cms::signed_data::SignedData;
use der::{Decode, Encode};
use http::{header, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
use rustls::client::{Resumption, Tls12Resumption};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, TrustAnchor, UnixTime,
};
use x509_cert::certificate::Certificate;
use x509_cert::request::CertReq;

mod fill;
mod ocsp;
mod procfs;
mod start;

/// How many error messages are kept to be printed at the end.
const ERROR_SAMPLES: usize = 5;

/// How much of an error body is shown.
const ERROR_BODY_CHARS: usize = 300;

/// The EST path prefix (RFC 7030 3.2.2), appended to `--url`.
const EST_PATH: &str = "/.well-known/est";

/// Sessions the client keeps for resumption (per client identity).
const RESUMPTION_CACHE: usize = 256;

/// estd-bench: load test a running estd over mutual TLS and verify every answer.
#[derive(Parser, Debug)]
#[command(name = "estd-bench", version, long_about = None)]
struct Cli {
    /// Base URL of the EST listener; /.well-known/est is appended.
    #[arg(long, default_value = "https://127.0.0.1:8443", value_name = "URL")]
    url: String,
    /// Trust anchor (PEM): the root CA that signed the server's and the issued certificates.
    #[arg(long, default_value = "certs/root-ca.pem", value_name = "PATH")]
    ca: PathBuf,
    /// Client certificate chain (PEM) of the demo IdM system.
    #[arg(long, default_value = "certs/demo-idm.pem", value_name = "PATH")]
    cert: PathBuf,
    /// Private key (PEM, PKCS#8) of the client certificate.
    #[arg(long, default_value = "certs/demo-idm.key", value_name = "PATH")]
    key: PathBuf,
    /// TLS server name to send (SNI) and to check the server certificate against.
    #[arg(long, default_value = "localhost", value_name = "NAME")]
    server_name: String,
    /// EST label (profile) to enrol under; an empty string means no label.
    #[arg(long, default_value = "demo", value_name = "LABEL")]
    label: String,
    /// Operation to measure.
    #[arg(long, value_enum, default_value_t = Op::Enroll)]
    op: Op,
    /// Number of concurrent workers.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    workers: u32,
    /// Connection handling: keep one connection per worker alive, open a
    /// new connection with a full handshake (no resumption) per request, or
    /// open a new connection per request that resumes an earlier session
    /// (TLS 1.3 tickets; with --tls12, session ids; each worker keeps its
    /// own session cache).
    #[arg(long, value_enum, default_value_t = ConnMode::Reuse)]
    conn: ConnMode,
    /// Key type of the CSRs (and of the re-enrolment identities).
    #[arg(long, value_enum, default_value_t = KeyType::P256)]
    key_type: KeyType,
    /// Total number of requests. With --duration, the number of CSRs
    /// generated beforehand, used round-robin while the time lasts.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    requests: u64,
    /// Run for this many seconds instead of a fixed number of requests.
    #[arg(long, value_name = "SECS")]
    duration: Option<f64>,
    /// Offer only TLS 1.2.
    #[arg(long)]
    tls12: bool,
    /// Process id of the server, to report its resident memory (VmRSS)
    /// before and after and its CPU time per operation.
    #[arg(long, value_name = "PID")]
    server_pid: Option<u32>,
    /// Process id of the database (repeatable): the CPU time of each
    /// process tree (e.g. PostgreSQL's postmaster, with every backend and
    /// helper under it, including those that exit during the run) is
    /// reported per operation.
    #[arg(long, value_name = "PID")]
    db_pid: Vec<u32>,
    /// Organisation name (the O attribute) of the CSR subjects.
    #[arg(long, default_value = "Demo Organisation ApS")]
    org: String,
    /// CVR number of the organisation; the subjects carry organizationIdentifier NTRDK-<cvr>.
    #[arg(long, default_value = "12345674")]
    cvr: String,
    /// fill: the server's configuration file (merged over the embedded
    /// default, as `estd --config`); without it, the embedded default.
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// fill: number of certificates to issue and store.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    count: u64,
    /// fill: percentage of the new certificates to revoke (0 to 100).
    #[arg(long, default_value_t = 1.0, value_name = "PERCENT")]
    revoked_percent: f64,
    /// fill: store the certificates with the store's bulk import, in
    /// transactions of this many (0: one insert per certificate, as an
    /// enrolment). Default: 10000 on PostgreSQL, 0 on sled.
    #[arg(long, value_name = "N")]
    fill_batch: Option<usize>,
    /// start: the estd binary to start (default: `estd` beside estd-bench).
    #[arg(long, value_name = "PATH")]
    estd: Option<PathBuf>,
    /// start: how many times to start and stop the server.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=1000))]
    starts: u32,
    /// fill: signing threads (default: the number of CPUs).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    threads: Option<u32>,
    /// Serials file, one `<HEX> good|revoked` per line: written by fill
    /// (default `<data_dir>/fill-serials.txt`), read by ocsp (required).
    #[arg(long, value_name = "PATH")]
    serials: Option<PathBuf>,
    /// ocsp: URL of the OCSP responder (plain HTTP).
    #[arg(long, default_value = "http://127.0.0.1:8080/ocsp", value_name = "URL")]
    ocsp_url: String,
    /// ocsp: the issuing CA certificate (PEM): the CertIDs name it, and it
    /// must have signed the responder's certificate.
    #[arg(long, default_value = "certs/issuing-ca.pem", value_name = "PATH")]
    issuer: PathBuf,
    /// ocsp: HTTP method (RFC 6960 A.1).
    #[arg(long, value_enum, default_value_t = OcspMethod::Post)]
    method: OcspMethod,
    /// ocsp: send a random nonce in every request (the responder then signs
    /// every response afresh instead of serving a pre-signed one).
    #[arg(long)]
    nonce: bool,
}

/// How OCSP requests are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OcspMethod {
    /// `POST <url>` with `Content-Type: application/ocsp-request`.
    Post,
    /// `GET <url>/<url-escaped base64 of the request>`.
    Get,
}

impl OcspMethod {
    fn name(self) -> &'static str {
        match self {
            OcspMethod::Post => "post",
            OcspMethod::Get => "get",
        }
    }
}

/// The EST operation to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Op {
    /// `POST /<label>/simpleenroll` as the IdM system.
    Enroll,
    /// `POST /simplereenroll` as the holder of a certificate enrolled first.
    Reenroll,
    /// `GET /cacerts`.
    Cacerts,
    /// Fill the store directly (server stopped): issue `--count` certificates
    /// through the CA and revoke `--revoked-percent` of them.
    Fill,
    /// Ask the plain-HTTP OCSP responder about serials from `--serials`.
    Ocsp,
    /// Start `estd serve` (`--estd`, `--config`) `--starts` times and measure
    /// the time from spawning it to `/readyz` answering 200, its memory
    /// then, and the time a SIGTERM takes to stop it.
    Start,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Enroll => "enroll",
            Op::Reenroll => "reenroll",
            Op::Cacerts => "cacerts",
            Op::Fill => "fill",
            Op::Ocsp => "ocsp",
            Op::Start => "start",
        }
    }
}

/// Connection handling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ConnMode {
    /// One kept-alive connection per worker.
    Reuse,
    /// A new TLS connection (full handshake) per request.
    New,
    /// A new TLS connection per request, resuming a session the server
    /// handed out before (TLS 1.3 ticket, or TLS 1.2 session id).
    Resume,
}

impl ConnMode {
    fn name(self) -> &'static str {
        match self {
            ConnMode::Reuse => "reuse",
            ConnMode::New => "new",
            ConnMode::Resume => "resume",
        }
    }
}

/// Key type of the CSRs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum KeyType {
    /// ECDSA P-256.
    P256,
    /// ECDSA P-384.
    P384,
    /// RSA 2048.
    Rsa2048,
    /// Ed25519.
    Ed25519,
}

impl KeyType {
    fn name(self) -> &'static str {
        match self {
            KeyType::P256 => "p256",
            KeyType::P384 => "p384",
            KeyType::Rsa2048 => "rsa2048",
            KeyType::Ed25519 => "ed25519",
        }
    }

    fn generate(self) -> Result<KeyPair, rcgen::Error> {
        match self {
            KeyType::P256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
            KeyType::P384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384),
            KeyType::Ed25519 => KeyPair::generate_for(&rcgen::PKCS_ED25519),
            KeyType::Rsa2048 => {
                KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
            }
        }
    }
}

/// A set-up failure: reported, then the program exits with status 2.
#[derive(Debug, thiserror::Error)]
enum SetupError {
    /// A file could not be read or parsed.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A bad command-line value.
    #[error("{0}")]
    Usage(String),
    /// TLS configuration.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// Key or CSR generation.
    #[error("generating keys and CSRs: {0}")]
    Generate(String),
    /// The server did not answer a set-up request as expected.
    #[error("{0}")]
    Server(String),
    /// Local I/O (runtime, /proc).
    #[error("{0}")]
    Io(String),
    /// Opening or writing the store (fill).
    #[error("{0}")]
    Store(String),
}

/// Everything the workers share, fixed before the timed phase.
struct Ctx {
    /// Where to connect.
    addr: SocketAddr,
    /// Value of the Host header.
    authority: String,
    /// TLS server name.
    server_name: ServerName<'static>,
    /// `<url path>/.well-known/est`.
    est_base: String,
    /// The label path segment with a trailing slash, or empty.
    label_segment: String,
    /// Trust anchors from `--ca`.
    anchors: Vec<TrustAnchor<'static>>,
    /// The issuing CA, fetched once from `cacerts`.
    intermediates: Vec<CertificateDer<'static>>,
    /// Signature algorithms for path validation.
    algs: WebPkiSupportedAlgorithms,
    /// Connection handling.
    conn_mode: ConnMode,
    /// Error messages kept for the report.
    error_samples: Mutex<Vec<String>>,
    /// For re-enrolment, which changes the client certificate: the roots,
    /// `--tls12`, and whether sessions are resumed.
    client_roots: RootCertStore,
    tls12: bool,
    resumption: bool,
    /// Handshakes in the timed phase and set-up: full, and resumed.
    full_handshakes: AtomicUsize,
    resumed_handshakes: AtomicUsize,
}

impl Ctx {
    fn enroll_path(&self) -> String {
        format!("{}/{}simpleenroll", self.est_base, self.label_segment)
    }

    fn reenroll_path(&self) -> String {
        format!("{}/simplereenroll", self.est_base)
    }

    fn cacerts_path(&self) -> String {
        format!("{}/cacerts", self.est_base)
    }

    fn note_error(&self, msg: String) {
        if let Ok(mut samples) = self.error_samples.lock() {
            if samples.len() < ERROR_SAMPLES {
                samples.push(msg);
            }
        }
    }
}

/// One pre-generated CSR and what the answer to it must contain.
struct Job {
    /// The request body: base64 of the DER CSR.
    body: Bytes,
    /// DER of the requested subject.
    subject_der: Vec<u8>,
    /// DER of the CSR's SubjectPublicKeyInfo.
    spki_der: Vec<u8>,
    /// The CSR's key, PKCS#8 DER, when kept (re-enrolment: the renewed
    /// certificate is the next request's client certificate).
    pkcs8: Option<Vec<u8>>,
}

/// A key and CSR made in the set-up phase.
struct Generated {
    /// The CSR, DER.
    csr_der: Vec<u8>,
    /// The key, PKCS#8 DER, when it is kept (re-enrolment identities).
    pkcs8: Option<Vec<u8>>,
}

/// A parsed `--url`.
struct BaseUrl {
    /// `host:port`.
    authority: String,
    /// Path prefix without a trailing slash (usually empty).
    path: String,
}

fn parse_url(url: &str) -> Result<BaseUrl, SetupError> {
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| SetupError::Usage(format!("--url must start with https://, not {url:?}")))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    if authority.is_empty() {
        return Err(SetupError::Usage(format!("--url {url:?} has no host")));
    }
    let has_port = match authority.rfind(']') {
        Some(bracket) => authority[bracket..].contains(':'),
        None => authority.contains(':'),
    };
    let authority = if has_port {
        authority.to_owned()
    } else {
        format!("{authority}:443")
    };
    Ok(BaseUrl {
        authority,
        path: path.to_owned(),
    })
}

fn read_file(path: &Path) -> Result<Vec<u8>, SetupError> {
    std::fs::read(path).map_err(|e| SetupError::File {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, SetupError> {
    let pem = read_file(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| SetupError::File {
            path: path.to_owned(),
            reason: format!("bad PEM certificate: {e}"),
        })?;
    if certs.is_empty() {
        return Err(SetupError::File {
            path: path.to_owned(),
            reason: "no CERTIFICATE in the file".into(),
        });
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, SetupError> {
    let pem = read_file(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| SetupError::File {
        path: path.to_owned(),
        reason: format!("no usable private key: {e}"),
    })
}

/// Resident memory of a process in kB: (VmRSS, VmHWM).
fn read_rss(pid: u32) -> Result<(u64, u64), String> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    let field = |name: &str| -> Option<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    };
    match (field("VmRSS:"), field("VmHWM:")) {
        (Some(rss), Some(hwm)) => Ok((rss, hwm)),
        (Some(rss), None) => Ok((rss, rss)),
        _ => Err(format!("{path}: no VmRSS line")),
    }
}

/// A client config: one provider (aws-lc-rs, as the server), ALPN http/1.1.
fn client_config(
    roots: &RootCertStore,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    tls12: bool,
    resumption: bool,
) -> Result<Arc<ClientConfig>, rustls::Error> {
    let versions: &[&'static rustls::SupportedProtocolVersion] = if tls12 {
        &[&rustls::version::TLS12]
    } else {
        rustls::DEFAULT_VERSIONS
    };
    let mut config = ClientConfig::builder_with_provider(estd::tls::provider())
        .with_protocol_versions(versions)?
        .with_root_certificates(roots.clone())
        .with_client_auth_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.resumption = new_session_cache(tls12, resumption);
    Ok(Arc::new(config))
}

/// A session cache of its own, or none without resumption.
fn new_session_cache(tls12: bool, resumption: bool) -> Resumption {
    if !resumption {
        Resumption::disabled()
    } else if tls12 {
        // Session ids, the TLS 1.2 resumption of clients without tickets
        // (the server's session cache rather than its ticketer).
        Resumption::in_memory_sessions(RESUMPTION_CACHE)
            .tls12_resumption(Tls12Resumption::SessionIdOnly)
    } else {
        Resumption::in_memory_sessions(RESUMPTION_CACHE)
    }
}

/// `config` for one worker: with `--conn resume`, a session cache of the
/// worker's own, so that it resumes with the tickets its own connections
/// brought. rustls keeps at most eight TLS 1.3 tickets per server in a
/// cache, and each is used once: sixteen workers sharing one ran short and
/// made a fifth to a quarter of their handshakes in full.
fn worker_config(ctx: &Ctx, config: &Arc<ClientConfig>) -> Arc<ClientConfig> {
    if !ctx.resumption {
        return config.clone();
    }
    let mut own = (**config).clone();
    own.resumption = new_session_cache(ctx.tls12, true);
    Arc::new(own)
}

/// TCP connect, TLS handshake, HTTP/1.1 handshake; the connection driver runs
/// in its own task.
async fn connect(
    ctx: &Ctx,
    config: &Arc<ClientConfig>,
) -> Result<SendRequest<Full<Bytes>>, String> {
    let tcp = tokio::net::TcpStream::connect(ctx.addr)
        .await
        .map_err(|e| format!("connect {}: {e}", ctx.addr))?;
    tcp.set_nodelay(true)
        .map_err(|e| format!("TCP_NODELAY: {e}"))?;
    let tls = tokio_rustls::TlsConnector::from(config.clone())
        .connect(ctx.server_name.clone(), tcp)
        .await
        .map_err(|e| format!("TLS handshake: {e}"))?;
    let counter = match tls.get_ref().1.handshake_kind() {
        Some(rustls::HandshakeKind::Resumed) => &ctx.resumed_handshakes,
        _ => &ctx.full_handshakes,
    };
    counter.fetch_add(1, Ordering::Relaxed);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    tokio::spawn(async move {
        // Errors surface on the request side; the driver just ends.
        let _ = conn.await;
    });
    Ok(sender)
}

/// What a request asks for.
enum Call<'a> {
    /// `GET path`.
    Get(&'a str),
    /// `POST path` with a base64 PKCS#10 body.
    PostCsr(&'a str, Bytes),
}

/// Sends one request and returns the body of a 2xx answer. In reuse mode the
/// connection in `slot` is kept (and reopened when the server closed it); in
/// new mode a fresh one is made and dropped.
async fn exchange(
    ctx: &Ctx,
    config: &Arc<ClientConfig>,
    slot: &mut Option<SendRequest<Full<Bytes>>>,
    call: &Call<'_>,
) -> Result<Bytes, String> {
    let mut sender = match slot.take() {
        Some(mut s) if ctx.conn_mode == ConnMode::Reuse && !s.is_closed() => {
            match s.ready().await {
                Ok(()) => s,
                // Closed by the server between requests: not this request's fault.
                Err(_) => connect(ctx, config).await?,
            }
        }
        _ => connect(ctx, config).await?,
    };
    let builder = Request::builder().header(header::HOST, &ctx.authority);
    let req = match call {
        Call::Get(path) => builder
            .method(Method::GET)
            .uri(*path)
            .body(Full::new(Bytes::new())),
        Call::PostCsr(path, body) => builder
            .method(Method::POST)
            .uri(*path)
            .header(header::CONTENT_TYPE, "application/pkcs10")
            .body(Full::new(body.clone())),
    }
    .map_err(|e| format!("building the request: {e}"))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("sending the request: {e}"))?;
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("reading the answer: {e}"))?
        .to_bytes();
    if ctx.conn_mode == ConnMode::Reuse {
        *slot = Some(sender);
    }
    if !status.is_success() {
        let text = String::from_utf8_lossy(&body);
        let text: String = text.trim().chars().take(ERROR_BODY_CHARS).collect();
        return Err(format!("HTTP {status}: {text}"));
    }
    Ok(body)
}

/// The client config that presents a renewed certificate `der` with the key
/// of the job that renewed it.
fn renewed_identity(ctx: &Ctx, der: Vec<u8>, job: &Job) -> Result<Arc<ClientConfig>, String> {
    let pkcs8 = job.pkcs8.clone().ok_or("the renewal's key was not kept")?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pkcs8));
    let mut chain = vec![CertificateDer::from(der)];
    chain.extend(ctx.intermediates.iter().cloned());
    client_config(&ctx.client_roots, chain, key, ctx.tls12, ctx.resumption)
        .map_err(|e| format!("client config for the renewed certificate: {e}"))
}

/// The certificates of a base64 certs-only PKCS#7.
fn pkcs7_certs(body: &[u8]) -> Result<Vec<Certificate>, String> {
    let der = estd::est::codec::decode_body(body, false).map_err(|e| format!("answer: {e}"))?;
    let info = ContentInfo::from_der(&der).map_err(|e| format!("answer is not CMS: {e}"))?;
    let signed = info
        .content
        .decode_as::<SignedData>()
        .map_err(|e| format!("answer is not SignedData: {e}"))?;
    let mut certs = Vec::new();
    for choice in signed.certificates.iter().flat_map(|set| set.0.iter()) {
        if let CertificateChoices::Certificate(c) = choice {
            certs.push(c.clone());
        }
    }
    Ok(certs)
}

/// Checks an enrolment answer: one certificate with the CSR's key and the
/// expected subject that chains to the anchor for client authentication.
/// Returns the certificate, DER.
fn verify_issued(
    ctx: &Ctx,
    body: &[u8],
    spki_der: &[u8],
    subject_der: &[u8],
) -> Result<Vec<u8>, String> {
    let certs = pkcs7_certs(body)?;
    let cert = match certs.as_slice() {
        [one] => one,
        other => {
            return Err(format!(
                "answer carries {} certificates, not 1",
                other.len()
            ))
        }
    };
    let tbs = &cert.tbs_certificate;
    let spki = tbs
        .subject_public_key_info
        .to_der()
        .map_err(|e| format!("encoding the SPKI: {e}"))?;
    if spki != spki_der {
        return Err("issued certificate does not carry the CSR's public key".into());
    }
    let subject = tbs
        .subject
        .to_der()
        .map_err(|e| format!("encoding the subject: {e}"))?;
    if subject != subject_der {
        return Err(format!(
            "issued certificate has subject {}, not the requested one",
            tbs.subject
        ));
    }
    let der = cert
        .to_der()
        .map_err(|e| format!("encoding the certificate: {e}"))?;
    let cert_der = CertificateDer::from(der.as_slice());
    let ee = webpki::EndEntityCert::try_from(&cert_der)
        .map_err(|e| format!("webpki cannot parse the certificate: {e}"))?;
    ee.verify_for_usage(
        ctx.algs.all,
        &ctx.anchors,
        &ctx.intermediates,
        UnixTime::now(),
        webpki::KeyUsage::client_auth(),
        None,
        None,
    )
    .map_err(|e| format!("issued certificate does not verify: {e}"))?;
    Ok(der)
}

/// Checks a `cacerts` answer: a certs-only PKCS#7 with two certificates.
fn verify_cacerts(body: &[u8]) -> Result<Vec<Certificate>, String> {
    let certs = pkcs7_certs(body)?;
    if certs.len() != 2 {
        return Err(format!(
            "cacerts carries {} certificates, not 2",
            certs.len()
        ));
    }
    Ok(certs)
}

/// What one worker measured.
#[derive(Default)]
struct WorkerStats {
    /// Requests sent (or attempted).
    attempted: u64,
    /// Answers verified.
    verified: u64,
    /// Failures of any kind.
    errors: u64,
    /// Latency of each verified request.
    latencies: Vec<Duration>,
}

/// One worker's plan.
struct Worker {
    /// TLS config (the IdM identity, or this worker's re-enrolment identity).
    config: Arc<ClientConfig>,
    /// CSRs, used in order (round-robin under `--duration`).
    jobs: Vec<Job>,
    /// Requests to send when not running for a duration.
    count: u64,
    /// For re-enrolment: the subject every answer must carry.
    expected_subject: Option<Vec<u8>>,
}

async fn run_worker(
    ctx: Arc<Ctx>,
    op: Op,
    worker: Worker,
    deadline: Option<Instant>,
) -> WorkerStats {
    let mut stats = WorkerStats::default();
    let mut slot: Option<SendRequest<Full<Bytes>>> = None;
    let enroll_path = ctx.enroll_path();
    let reenroll_path = ctx.reenroll_path();
    let cacerts_path = ctx.cacerts_path();
    let mut k: usize = 0;
    // Re-enrolment moves on to the renewed certificate after each answer.
    let mut config = worker.config.clone();
    loop {
        match deadline {
            Some(d) if Instant::now() >= d => break,
            None if k as u64 >= worker.count => break,
            _ => {}
        }
        let job = if worker.jobs.is_empty() {
            None
        } else {
            worker.jobs.get(k % worker.jobs.len())
        };
        k += 1;
        stats.attempted += 1;
        let started = Instant::now();
        let outcome = match (op, job) {
            (Op::Cacerts, _) => exchange(&ctx, &config, &mut slot, &Call::Get(&cacerts_path))
                .await
                .and_then(|body| verify_cacerts(&body).map(|_| ())),
            (Op::Enroll, Some(job)) => {
                let call = Call::PostCsr(&enroll_path, job.body.clone());
                exchange(&ctx, &config, &mut slot, &call)
                    .await
                    .and_then(|body| {
                        verify_issued(&ctx, &body, &job.spki_der, &job.subject_der).map(|_| ())
                    })
            }
            (Op::Reenroll, Some(job)) => {
                let subject = worker
                    .expected_subject
                    .as_deref()
                    .unwrap_or(&job.subject_der);
                let call = Call::PostCsr(&reenroll_path, job.body.clone());
                // A certificate has one successor (estd answers 409 to a
                // second renewal), so, as a device would, each renewal is
                // made by the certificate the previous one issued, on a new
                // connection that presents it.
                exchange(&ctx, &config, &mut slot, &call)
                    .await
                    .and_then(|body| verify_issued(&ctx, &body, &job.spki_der, subject))
                    .and_then(|der| renewed_identity(&ctx, der, job))
                    .map(|renewed| {
                        config = renewed;
                        slot = None;
                    })
            }
            (Op::Fill | Op::Ocsp | Op::Start, _) => Err("not an EST operation".to_owned()),
            (_, None) => Err("no CSR for this worker".to_owned()),
        };
        match outcome {
            Ok(()) => {
                stats.verified += 1;
                stats.latencies.push(started.elapsed());
            }
            Err(e) => {
                stats.errors += 1;
                ctx.note_error(e);
            }
        }
    }
    stats
}

/// The subject C=DK, O=<org>, organizationIdentifier=NTRDK-<cvr>, CN=<cn>.
fn subject(org: &str, cvr: &str, cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, "DK");
    dn.push(DnType::OrganizationName, org);
    dn.push(
        DnType::CustomDnType(vec![2, 5, 4, 97]),
        format!("NTRDK-{cvr}"),
    );
    dn.push(DnType::CommonName, cn);
    dn
}

fn generate_one(
    key_type: KeyType,
    org: &str,
    cvr: &str,
    cn: &str,
    keep_key: bool,
) -> Result<Generated, String> {
    let key = key_type.generate().map_err(|e| e.to_string())?;
    let mut params = CertificateParams::default();
    params.distinguished_name = subject(org, cvr, cn);
    let csr = params.serialize_request(&key).map_err(|e| e.to_string())?;
    Ok(Generated {
        csr_der: csr.der().to_vec(),
        pkcs8: keep_key.then(|| key.serialize_der()),
    })
}

/// Generates keys and CSRs for `specs` (CN, keep the key) on all cores,
/// printing progress; results are in the order of `specs`.
fn generate_all(
    key_type: KeyType,
    org: &str,
    cvr: &str,
    specs: &[(String, bool)],
) -> Result<Vec<Generated>, SetupError> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(specs.len().max(1));
    let chunk = specs.len().div_ceil(threads).max(1);
    let done = AtomicUsize::new(0);
    let total = specs.len();
    let step = (total / 10).max(1);
    let started = Instant::now();
    eprintln!(
        "estd-bench: generating {total} {} keys and CSRs on {threads} threads",
        key_type.name()
    );
    let parts: Vec<Result<Vec<Generated>, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = specs
            .chunks(chunk)
            .map(|part| {
                let done = &done;
                scope.spawn(move || {
                    let mut out = Vec::with_capacity(part.len());
                    for (cn, keep) in part {
                        out.push(generate_one(key_type, org, cvr, cn, *keep)?);
                        let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                        if n % step == 0 || n == total {
                            eprintln!(
                                "estd-bench:   {n}/{total} ({:.1} s)",
                                started.elapsed().as_secs_f64()
                            );
                        }
                    }
                    Ok(out)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("a generator thread panicked".into()))
            })
            .collect()
    });
    let mut all = Vec::with_capacity(total);
    for part in parts {
        all.extend(part.map_err(SetupError::Generate)?);
    }
    Ok(all)
}

/// A job from a generated CSR: the body to send and what to expect back.
fn job_from(g: &Generated) -> Result<Job, SetupError> {
    let req = CertReq::from_der(&g.csr_der)
        .map_err(|e| SetupError::Generate(format!("rcgen made an unparsable CSR: {e}")))?;
    let enc = |r: der::Result<Vec<u8>>| r.map_err(|e| SetupError::Generate(e.to_string()));
    Ok(Job {
        body: Bytes::from(base64::engine::general_purpose::STANDARD.encode(&g.csr_der)),
        subject_der: enc(req.info.subject.to_der())?,
        spki_der: enc(req.info.public_key.to_der())?,
        pkcs8: g.pkcs8.clone(),
    })
}

/// Final figures.
struct Summary {
    attempted: u64,
    verified: u64,
    errors: u64,
    secs: f64,
    latencies: Vec<Duration>,
}

/// Nearest-rank percentile of sorted latencies, milliseconds.
fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    let i = rank.clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match real_main(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("estd-bench: {e}");
            ExitCode::from(2)
        }
    }
}

fn real_main(cli: Cli) -> Result<ExitCode, SetupError> {
    if let Some(d) = cli.duration {
        if !(d.is_finite() && d > 0.0) {
            return Err(SetupError::Usage(
                "--duration must be a positive number of seconds".into(),
            ));
        }
    }
    match cli.op {
        Op::Fill => return fill::run(&cli),
        Op::Ocsp => return ocsp::main(cli),
        Op::Start => return start::run(&cli),
        Op::Enroll | Op::Reenroll | Op::Cacerts => {}
    }
    let setup = Setup::load(&cli)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| SetupError::Io(format!("cannot start the runtime: {e}")))?;
    runtime.block_on(run(cli, setup))
}

/// What the EST operations read from the command line and files before the
/// runtime starts.
struct Setup {
    url: BaseUrl,
    server_name: ServerName<'static>,
    /// The trust anchors from `--ca`, as rustls roots, DER and webpki anchors.
    roots: RootCertStore,
    roots_der: Vec<CertificateDer<'static>>,
    anchors: Vec<TrustAnchor<'static>>,
    /// The demo IdM system's identity.
    idm_chain: Vec<CertificateDer<'static>>,
    idm_key: PrivateKeyDer<'static>,
    /// The server's memory (VmRSS, VmHWM) at start, with `--server-pid`.
    rss_before: Option<(u64, u64)>,
}

impl Setup {
    fn load(cli: &Cli) -> Result<Setup, SetupError> {
        if !cli.label.is_empty() && !estd::est::is_valid_label(&cli.label) {
            return Err(SetupError::Usage(format!(
                "--label {:?} is not a valid EST label",
                cli.label
            )));
        }
        let url = parse_url(&cli.url)?;
        let server_name = ServerName::try_from(cli.server_name.clone())
            .map_err(|e| SetupError::Usage(format!("--server-name: {e}")))?;
        let roots_der = load_certs(&cli.ca)?;
        let mut roots = RootCertStore::empty();
        let mut anchors = Vec::with_capacity(roots_der.len());
        for der in &roots_der {
            roots.add(der.clone())?;
            let anchor = webpki::anchor_from_trusted_cert(der).map_err(|e| SetupError::File {
                path: cli.ca.clone(),
                reason: format!("not a usable trust anchor: {e}"),
            })?;
            anchors.push(anchor.to_owned());
        }
        let idm_chain = load_certs(&cli.cert)?;
        let idm_key = load_key(&cli.key)?;
        let rss_before = match cli.server_pid {
            Some(pid) => Some(read_rss(pid).map_err(SetupError::Io)?),
            None => None,
        };
        Ok(Setup {
            url,
            server_name,
            roots,
            roots_der,
            anchors,
            idm_chain,
            idm_key,
            rss_before,
        })
    }
}

/// How the requests are divided among the workers.
#[derive(Debug, Clone, Copy)]
struct Shares {
    /// `--requests`.
    total: usize,
    /// `--workers`.
    workers: usize,
    /// Whether the run lasts `--duration` rather than `total` requests.
    timed: bool,
}

impl Shares {
    /// How many requests worker `w` sends.
    fn share(self, w: usize) -> usize {
        self.total / self.workers + usize::from(w < self.total % self.workers)
    }

    /// How many CSRs worker `w` holds: its share, and at least one when it
    /// cycles through them for a duration.
    fn pool(self, w: usize) -> usize {
        if self.timed {
            self.share(w).max(1)
        } else {
            self.share(w)
        }
    }
}

/// Set-up, the timed phase, and the report of one EST operation.
async fn run(cli: Cli, setup: Setup) -> Result<ExitCode, SetupError> {
    let addr = tokio::net::lookup_host(&setup.url.authority)
        .await
        .map_err(|e| SetupError::Usage(format!("cannot resolve {}: {e}", setup.url.authority)))?
        .next()
        .ok_or_else(|| {
            SetupError::Usage(format!("{} resolves to no address", setup.url.authority))
        })?;
    let resumption = cli.conn != ConnMode::New;
    // The IdM system's config, built once; used for set-up and for enroll/cacerts.
    let idm_config = client_config(
        &setup.roots,
        setup.idm_chain,
        setup.idm_key.clone_key(),
        cli.tls12,
        resumption,
    )?;
    let mut ctx = Ctx {
        addr,
        authority: setup.url.authority.clone(),
        server_name: setup.server_name,
        est_base: format!("{}{EST_PATH}", setup.url.path),
        label_segment: if cli.label.is_empty() {
            String::new()
        } else {
            format!("{}/", cli.label)
        },
        anchors: setup.anchors,
        intermediates: Vec::new(),
        algs: rustls::crypto::aws_lc_rs::default_provider().signature_verification_algorithms,
        conn_mode: cli.conn,
        error_samples: Mutex::new(Vec::new()),
        client_roots: setup.roots,
        tls12: cli.tls12,
        resumption,
        full_handshakes: AtomicUsize::new(0),
        resumed_handshakes: AtomicUsize::new(0),
    };
    ctx.intermediates = fetch_issuing_ca(&ctx, &idm_config, &setup.roots_der).await?;

    let shares = Shares {
        total: cli.requests as usize,
        workers: cli.workers as usize,
        timed: cli.duration.is_some(),
    };
    let specs = job_specs(cli.op, shares)?;
    let (org, cvr, key_type) = (cli.org.clone(), cli.cvr.clone(), cli.key_type);
    let generated = if specs.is_empty() {
        Vec::new()
    } else {
        tokio::task::spawn_blocking(move || generate_all(key_type, &org, &cvr, &specs))
            .await
            .map_err(|e| SetupError::Generate(format!("generator task failed: {e}")))??
    };

    let ctx = Arc::new(ctx);
    let plans = match cli.op {
        Op::Cacerts => cacerts_plans(&ctx, &idm_config, shares),
        Op::Enroll => enroll_plans(&ctx, &idm_config, &generated, shares)?,
        Op::Reenroll => reenroll_plans(&ctx, &idm_config, &generated, shares).await?,
        Op::Fill | Op::Ocsp | Op::Start => Vec::new(),
    };

    let rss_start = match cli.server_pid {
        Some(pid) => Some(read_rss(pid).map_err(SetupError::Io)?),
        None => None,
    };
    match cli.duration {
        Some(d) => eprintln!(
            "estd-bench: timed phase: {} for {d} s, {} workers, conn={}",
            cli.op.name(),
            shares.workers,
            cli.conn.name()
        ),
        None => eprintln!(
            "estd-bench: timed phase: {} x {}, {} workers, conn={}",
            cli.op.name(),
            shares.total,
            shares.workers,
            cli.conn.name()
        ),
    }
    let cpu_start = procfs::CpuReading::now(cli.server_pid, &cli.db_pid);
    let summary = timed_phase(&ctx, cli.op, plans, cli.duration).await;
    let cpu = procfs::CpuReading::now(cli.server_pid, &cli.db_pid).since(&cpu_start);
    let rss_after = cli.server_pid.map(read_rss);
    let rss = Rss {
        before: setup.rss_before,
        start: rss_start,
        after: rss_after,
    };
    Ok(report(&cli, &ctx, summary, rss, cpu))
}

/// Fetches `cacerts` once as the IdM system and returns the issuing CA: the
/// one certificate that is neither self-signed nor a trust anchor.
async fn fetch_issuing_ca(
    ctx: &Ctx,
    idm_config: &Arc<ClientConfig>,
    roots_der: &[CertificateDer<'static>],
) -> Result<Vec<CertificateDer<'static>>, SetupError> {
    let mut slot = None;
    let cacerts_path = ctx.cacerts_path();
    let body = exchange(ctx, idm_config, &mut slot, &Call::Get(&cacerts_path))
        .await
        .map_err(|e| SetupError::Server(format!("fetching cacerts: {e}")))?;
    drop(slot);
    let ca_certs =
        verify_cacerts(&body).map_err(|e| SetupError::Server(format!("cacerts: {e}")))?;
    let mut intermediates = Vec::new();
    for cert in &ca_certs {
        let der = cert
            .to_der()
            .map_err(|e| SetupError::Server(format!("cacerts: {e}")))?;
        let self_signed = cert.tbs_certificate.subject == cert.tbs_certificate.issuer;
        if !self_signed && !roots_der.iter().any(|r| r.as_ref() == der.as_slice()) {
            intermediates.push(CertificateDer::from(der));
        }
    }
    if intermediates.len() != 1 {
        return Err(SetupError::Server(format!(
            "cacerts: expected one issuing CA besides the root, found {}",
            intermediates.len()
        )));
    }
    eprintln!(
        "estd-bench: issuing CA {}",
        ca_certs
            .iter()
            .find(|c| c.tbs_certificate.subject != c.tbs_certificate.issuer)
            .map(|c| c.tbs_certificate.subject.to_string())
            .unwrap_or_default()
    );
    Ok(intermediates)
}

/// The CSRs to generate, in order: (common name, whether the key is kept).
fn job_specs(op: Op, shares: Shares) -> Result<Vec<(String, bool)>, SetupError> {
    let workers = shares.workers;
    let mut specs: Vec<(String, bool)> = Vec::new();
    match op {
        Op::Cacerts => {}
        Op::Fill | Op::Ocsp | Op::Start => {
            return Err(SetupError::Usage(format!(
                "{} is not an EST operation",
                op.name()
            )))
        }
        Op::Enroll => {
            // Worker w takes CSRs w, w+W, w+2W, ...: every subject is distinct.
            for w in 0..workers {
                for j in 0..shares.pool(w) {
                    specs.push((format!("bench-{}", w + j * workers), false));
                }
            }
        }
        Op::Reenroll => {
            // Per worker: its identity's key, then its renewal CSRs, same
            // subject; every key is kept, as each renewal becomes the client
            // certificate of the next.
            for w in 0..workers {
                specs.push((format!("bench-{w}"), true));
                for _ in 0..shares.pool(w) {
                    specs.push((format!("bench-{w}"), true));
                }
            }
        }
    }
    Ok(specs)
}

/// `cacerts`: every worker asks as the IdM system, with no CSRs.
fn cacerts_plans(ctx: &Ctx, idm_config: &Arc<ClientConfig>, shares: Shares) -> Vec<Worker> {
    (0..shares.workers)
        .map(|w| Worker {
            config: worker_config(ctx, idm_config),
            jobs: Vec::new(),
            count: shares.share(w) as u64,
            expected_subject: None,
        })
        .collect()
}

/// `enroll`: every worker enrols as the IdM system, with its pool of CSRs.
fn enroll_plans(
    ctx: &Ctx,
    idm_config: &Arc<ClientConfig>,
    generated: &[Generated],
    shares: Shares,
) -> Result<Vec<Worker>, SetupError> {
    let mut gen_iter = generated.iter();
    let mut plans = Vec::with_capacity(shares.workers);
    for w in 0..shares.workers {
        let jobs = gen_iter
            .by_ref()
            .take(shares.pool(w))
            .map(job_from)
            .collect::<Result<Vec<_>, _>>()?;
        plans.push(Worker {
            config: worker_config(ctx, idm_config),
            jobs,
            count: shares.share(w) as u64,
            expected_subject: None,
        });
    }
    Ok(plans)
}

/// `reenroll`: enrols one identity per worker (untimed, concurrently); each
/// worker then renews as that identity, with its pool of renewal CSRs.
async fn reenroll_plans(
    ctx: &Arc<Ctx>,
    idm_config: &Arc<ClientConfig>,
    generated: &[Generated],
    shares: Shares,
) -> Result<Vec<Worker>, SetupError> {
    let workers = shares.workers;
    let mut gen_iter = generated.iter();
    let mut identities = Vec::with_capacity(workers);
    let mut renewals = Vec::with_capacity(workers);
    for w in 0..workers {
        let ident = gen_iter
            .next()
            .ok_or_else(|| SetupError::Generate("too few CSRs".into()))?;
        let jobs = gen_iter
            .by_ref()
            .take(shares.pool(w))
            .map(job_from)
            .collect::<Result<Vec<_>, _>>()?;
        identities.push((job_from(ident)?, ident.pkcs8.clone()));
        renewals.push(jobs);
    }
    eprintln!("estd-bench: enrolling {workers} re-enrolment identities");
    let tasks: Vec<_> = identities
        .iter()
        .map(|(job, _)| tokio::spawn(enrol_identity(ctx.clone(), idm_config.clone(), job)))
        .collect();
    let mut plans = Vec::with_capacity(workers);
    for ((task, (_, pkcs8)), (w, jobs)) in tasks
        .into_iter()
        .zip(identities)
        .zip(renewals.into_iter().enumerate())
    {
        let cert_der = task
            .await
            .map_err(|e| SetupError::Server(format!("identity task failed: {e}")))?
            .map_err(|e| SetupError::Server(format!("enrolling identity {w}: {e}")))?;
        let (config, expected) = renewal_identity(ctx, w, cert_der, pkcs8)?;
        plans.push(Worker {
            config,
            jobs,
            count: shares.share(w) as u64,
            expected_subject: Some(expected),
        });
    }
    Ok(plans)
}

/// Enrols `job` as the IdM system and returns the verified certificate, DER.
fn enrol_identity(
    ctx: Arc<Ctx>,
    config: Arc<ClientConfig>,
    job: &Job,
) -> impl std::future::Future<Output = Result<Vec<u8>, String>> + Send + 'static {
    let body = job.body.clone();
    let (spki, subj) = (job.spki_der.clone(), job.subject_der.clone());
    async move {
        let mut slot = None;
        let path = ctx.enroll_path();
        let answer = exchange(&ctx, &config, &mut slot, &Call::PostCsr(&path, body)).await?;
        verify_issued(&ctx, &answer, &spki, &subj)
    }
}

/// The TLS config of worker `w`'s re-enrolment identity (its certificate
/// `cert_der` and key), and the subject DER every renewal must carry.
fn renewal_identity(
    ctx: &Ctx,
    w: usize,
    cert_der: Vec<u8>,
    pkcs8: Option<Vec<u8>>,
) -> Result<(Arc<ClientConfig>, Vec<u8>), SetupError> {
    let cert = Certificate::from_der(&cert_der)
        .map_err(|e| SetupError::Server(format!("identity {w}: {e}")))?;
    let expected = cert
        .tbs_certificate
        .subject
        .to_der()
        .map_err(|e| SetupError::Server(format!("identity {w}: {e}")))?;
    let pkcs8 = pkcs8.ok_or_else(|| SetupError::Generate("identity key not kept".into()))?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pkcs8));
    let chain = vec![CertificateDer::from(cert_der), ctx.intermediates[0].clone()];
    let config = client_config(&ctx.client_roots, chain, key, ctx.tls12, ctx.resumption)?;
    Ok((config, expected))
}

/// Runs every worker's plan (until `duration` if given) and adds up what they did.
async fn timed_phase(ctx: &Arc<Ctx>, op: Op, plans: Vec<Worker>, duration: Option<f64>) -> Summary {
    let started = Instant::now();
    let deadline = duration.map(|d| started + Duration::from_secs_f64(d));
    let handles: Vec<_> = plans
        .into_iter()
        .map(|plan| tokio::spawn(run_worker(ctx.clone(), op, plan, deadline)))
        .collect();
    let mut summary = Summary {
        attempted: 0,
        verified: 0,
        errors: 0,
        secs: 0.0,
        latencies: Vec::new(),
    };
    for h in handles {
        match h.await {
            Ok(s) => {
                summary.attempted += s.attempted;
                summary.verified += s.verified;
                summary.errors += s.errors;
                summary.latencies.extend(s.latencies);
            }
            Err(e) => {
                summary.errors += 1;
                ctx.note_error(format!("worker task failed: {e}"));
            }
        }
    }
    summary.secs = started.elapsed().as_secs_f64();
    summary
}

/// The server's memory (VmRSS, VmHWM in kB), read with `--server-pid`.
struct Rss {
    /// At start.
    before: Option<(u64, u64)>,
    /// Before the timed phase.
    start: Option<(u64, u64)>,
    /// After it, or why it could not be read.
    after: Option<Result<(u64, u64), String>>,
}

/// Latency percentiles and maximum, milliseconds.
struct Latency {
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
}

impl Latency {
    fn of(latencies: &mut [Duration]) -> Latency {
        latencies.sort_unstable();
        Latency {
            p50: percentile_ms(latencies, 0.50),
            p90: percentile_ms(latencies, 0.90),
            p99: percentile_ms(latencies, 0.99),
            max: latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
        }
    }
}

/// Prints the report and the `RESULT` line; fails when any request failed
/// or none was verified.
fn report(cli: &Cli, ctx: &Ctx, mut s: Summary, rss: Rss, cpu: procfs::CpuSpent) -> ExitCode {
    let lat = Latency::of(&mut s.latencies);
    let rate = if s.secs > 0.0 {
        s.verified as f64 / s.secs
    } else {
        0.0
    };
    println!("estd-bench report");
    println!("  op:            {}", cli.op.name());
    println!("  key type:      {}", cli.key_type.name());
    println!(
        "  conn mode:     {}{}",
        cli.conn.name(),
        if cli.tls12 { " (TLS 1.2 only)" } else { "" }
    );
    println!("  workers:       {}", cli.workers);
    println!("  attempted:     {}", s.attempted);
    println!("  verified:      {}", s.verified);
    println!("  errors:        {}", s.errors);
    println!("  elapsed:       {:.3} s", s.secs);
    println!("  rate:          {rate:.1} verified ops/s");
    println!(
        "  latency ms:    p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}{}",
        lat.p50,
        lat.p90,
        lat.p99,
        lat.max,
        if cli.conn == ConnMode::Reuse {
            ""
        } else {
            "  (including the connection and handshake)"
        }
    );
    let (full, resumed) = (
        ctx.full_handshakes.load(Ordering::Relaxed),
        ctx.resumed_handshakes.load(Ordering::Relaxed),
    );
    println!("  handshakes:    {full} full, {resumed} resumed");
    cpu.print(s.secs, s.verified);
    let (rss_kb, hwm_kb) = print_rss(cli.server_pid, rss);
    print_first_errors(&ctx.error_samples);
    let per_op = |c| procfs::CpuSpent::per_op_field(c, s.verified);
    println!(
        "RESULT op={} key={} conn={} workers={} verified={} errors={} secs={:.3} rate={:.1} p50_ms={:.2} p90_ms={:.2} p99_ms={:.2} max_ms={:.2} rss_kb={} hwm_kb={} bench_cpu_us_op={} server_cpu_us_op={} db_cpu_us_op={} full_handshakes={full} resumed_handshakes={resumed}",
        cli.op.name(),
        cli.key_type.name(),
        cli.conn.name(),
        cli.workers,
        s.verified,
        s.errors,
        s.secs,
        rate,
        lat.p50,
        lat.p90,
        lat.p99,
        lat.max,
        rss_kb,
        hwm_kb,
        per_op(cpu.bench),
        per_op(cpu.server),
        per_op(cpu.db)
    );
    if s.errors > 0 || s.verified == 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Prints the error messages kept for the report, if any.
fn print_first_errors(samples: &Mutex<Vec<String>>) {
    if let Ok(samples) = samples.lock() {
        if !samples.is_empty() {
            println!("  first errors:");
            for e in samples.iter() {
                println!("    - {e}");
            }
        }
    }
}

/// Prints the server's memory lines (with `--server-pid`) and returns the
/// `rss_kb` and `hwm_kb` fields of the `RESULT` line: the size and the peak
/// size after the run, or `-`.
fn print_rss(server_pid: Option<u32>, rss: Rss) -> (String, String) {
    let Some(pid) = server_pid else {
        return (String::from("-"), String::from("-"));
    };
    if let Some((kb, _)) = rss.before {
        println!("  server RSS:    {kb} kB at start (pid {pid})");
    }
    if let Some((kb, _)) = rss.start {
        println!("  server RSS:    {kb} kB before the timed phase");
    }
    let hwm = match &rss.after {
        Some(Ok((_, hwm))) => hwm.to_string(),
        _ => String::from("-"),
    };
    (print_rss_after(rss.after.as_ref()), hwm)
}

/// Prints the server's memory after the run, and returns the `rss_kb` field
/// of the `RESULT` line: its size in kB, or `-` if it was not read.
fn print_rss_after(after: Option<&Result<(u64, u64), String>>) -> String {
    match after {
        Some(Ok((kb, hwm))) => {
            println!("  server RSS:    {kb} kB after (peak VmHWM {hwm} kB)");
            kb.to_string()
        }
        Some(Err(e)) => {
            println!("  server RSS:    unreadable after the run: {e}");
            String::from("-")
        }
        None => String::from("-"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = parse_url("https://127.0.0.1:8443").unwrap();
        assert_eq!(
            (u.authority.as_str(), u.path.as_str()),
            ("127.0.0.1:8443", "")
        );
        let u = parse_url("https://localhost/prefix/").unwrap();
        assert_eq!(
            (u.authority.as_str(), u.path.as_str()),
            ("localhost:443", "/prefix")
        );
        let u = parse_url("https://[::1]:18443/").unwrap();
        assert_eq!(u.authority, "[::1]:18443");
        assert!(parse_url("http://127.0.0.1:8443").is_err());
        assert!(parse_url("https:///x").is_err());
    }

    #[test]
    fn percentiles() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile_ms(&v, 0.5), 50.0);
        assert_eq!(percentile_ms(&v, 0.99), 99.0);
        assert_eq!(percentile_ms(&[], 0.5), 0.0);
    }

    #[test]
    fn csr_subject_order() {
        let g = generate_one(
            KeyType::P256,
            "Demo Organisation ApS",
            "12345674",
            "bench-1",
            true,
        )
        .unwrap();
        let req = CertReq::from_der(&g.csr_der).unwrap();
        // Display is RFC 4514 (last RDN first); the encoded order is C, O, orgId, CN.
        assert_eq!(
            req.info.subject.to_string(),
            "CN=bench-1,2.5.4.97=#0c0e4e5452444b2d3132333435363734,O=Demo Organisation ApS,C=DK"
        );
        assert!(g.pkcs8.is_some());
    }
}
