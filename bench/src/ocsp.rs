//! `--op ocsp`: load on the plain-HTTP OCSP responder (RFC 6960).
//!
//! Set-up (untimed): read the issuing CA (`--issuer`) and the serials file
//! written by `--op fill`, draw a random sample of serials (xorshift, seeded
//! from the clock) and encode one DER OCSPRequest per sampled serial, with a
//! single SHA-1 CertID and, with `--nonce`, a random nonce.
//!
//! Timed: `--workers` tasks send them over plain HTTP/1.1, on one kept-alive
//! connection each (`--conn reuse`) or a new connection per request
//! (`--conn new`, with `Connection: close`), as `POST` or `GET`.
//!
//! A response counts only once verified: HTTP 200 with
//! `Content-Type: application/ocsp-response`; status `successful` with a
//! basic response; the responder certificate it carries is issued by the
//! issuing CA, valid now and marked for OCSP signing (checked once per
//! distinct certificate, then cached); the responder ID names that
//! certificate; the signature over `tbsResponseData` verifies with its key;
//! exactly one SingleResponse whose CertID is the one asked about, with the
//! status the serials file expects and a nextUpdate in the future; and, with
//! `--nonce`, the same nonce echoed.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lc_rs::digest;
use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use base64::Engine;
use bytes::Bytes;
use const_oid::db::{rfc5912, rfc6960, rfc8410};
use const_oid::ObjectIdentifier;
use der::asn1::{Null, OctetString};
use der::{Any, Decode, Encode};
use http::{header, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::certificate::Certificate;
use x509_cert::ext::pkix::ExtendedKeyUsage;
use x509_cert::ext::Extension;
use x509_cert::serial_number::SerialNumber;
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspRequest, OcspResponse, OcspResponseStatus,
    Request as OcspSingleRequest, ResponderId, TbsRequest, Version,
};

use crate::procfs::cpu_secs;
use crate::{
    load_certs, percentile_ms, print_first_errors, read_rss, Cli, ConnMode, SetupError,
    ERROR_BODY_CHARS,
};

/// SHA-1 (the CertID hash every OCSP responder must accept).
const SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");

/// id-kp-OCSPSigning.
const OCSP_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.9");

/// Most requests encoded beforehand; longer runs cycle through them.
const MAX_POOL: usize = 1_000_000;

/// Nonce length (RFC 8954 asks for 32 bytes at most).
const NONCE_LEN: usize = 16;

/// Most distinct responder certificates remembered.
const RESPONDER_CACHE: usize = 16;

/// Clock skew allowed on thisUpdate.
const SKEW_SECS: u64 = 300;

/// What the serials file says a serial's status is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expected {
    Good,
    Revoked,
    Unknown,
}

impl Expected {
    fn name(self) -> &'static str {
        match self {
            Expected::Good => "good",
            Expected::Revoked => "revoked",
            Expected::Unknown => "unknown",
        }
    }
}

/// A small, fast, non-cryptographic PRNG (xorshift64*) for sampling.
struct XorShift(u64);

impl XorShift {
    fn from_clock() -> XorShift {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9E37_79B9_7F4A_7C15);
        XorShift(nanos | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// One prepared request and what its answer must say.
struct Job {
    /// POST: the DER request. GET: empty.
    body: Bytes,
    /// The request target: the responder path (POST) or path/escaped base64 (GET).
    target: String,
    /// The serial asked about.
    serial: SerialNumber,
    /// The status the answer must carry.
    expected: Expected,
    /// The nonce sent, if any.
    nonce: Option<Vec<u8>>,
}

/// A verified responder certificate, ready to check signatures with.
struct Responder {
    /// The certificate.
    cert: Certificate,
    /// Signature algorithm family and key.
    spki: SubjectPublicKeyInfoOwned,
    /// SHA-1 of the subjectPublicKey bits (ResponderID byKey).
    key_sha1: Vec<u8>,
}

/// A responder certificate seen, with the outcome of checking it.
type CheckedResponder = (Certificate, Result<Arc<Responder>, String>);

/// Everything the workers share, fixed before the timed phase.
struct Ctx {
    addr: SocketAddr,
    authority: String,
    method: Method,
    conn_mode: ConnMode,
    /// The issuing CA.
    issuer: Certificate,
    /// The CertID fields every answer must echo.
    hash_alg: AlgorithmIdentifierOwned,
    name_hash: OctetString,
    key_hash: OctetString,
    /// Responder certificates seen, with the outcome of checking them.
    responders: RwLock<Vec<CheckedResponder>>,
    /// The prepared requests.
    jobs: Vec<Job>,
    error_samples: Mutex<Vec<String>>,
}

impl Ctx {
    fn note_error(&self, msg: String) {
        if let Ok(mut samples) = self.error_samples.lock() {
            if samples.len() < crate::ERROR_SAMPLES {
                samples.push(msg);
            }
        }
    }
}

/// `host:port` and path of an `http://` URL.
fn parse_http_url(url: &str) -> Result<(String, String), SetupError> {
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        SetupError::Usage(format!("--ocsp-url must start with http://, not {url:?}"))
    })?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    if authority.is_empty() {
        return Err(SetupError::Usage(format!("--ocsp-url {url:?} has no host")));
    }
    let has_port = match authority.rfind(']') {
        Some(bracket) => authority[bracket..].contains(':'),
        None => authority.contains(':'),
    };
    let authority = if has_port {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    Ok((authority, path.to_owned()))
}

fn parse_hex(s: &str) -> Option<Vec<u8>> {
    if s.is_empty() || s.len() % 2 != 0 {
        return None;
    }
    s.as_bytes().chunks(2).map(estd::model::hex_byte).collect()
}

/// Reads `<HEX> good|revoked|unknown` lines; blank lines and `#` comments are skipped.
fn read_serials(path: &Path) -> Result<Vec<(Vec<u8>, Expected)>, SetupError> {
    let text = std::fs::read_to_string(path).map_err(|e| SetupError::File {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    let bad = |n: usize, why: &str| SetupError::File {
        path: path.to_owned(),
        reason: format!("line {n}: {why}"),
    };
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let (Some(hex), Some(status), None) = (fields.next(), fields.next(), fields.next()) else {
            return Err(bad(n + 1, "expected `<HEX> good|revoked`"));
        };
        let serial = parse_hex(hex).ok_or_else(|| bad(n + 1, "serial is not hex"))?;
        let expected = match status {
            "good" => Expected::Good,
            "revoked" => Expected::Revoked,
            "unknown" => Expected::Unknown,
            _ => return Err(bad(n + 1, "status must be good, revoked or unknown")),
        };
        out.push((serial, expected));
    }
    if out.is_empty() {
        return Err(SetupError::File {
            path: path.to_owned(),
            reason: "no serials".into(),
        });
    }
    Ok(out)
}

/// Base64 (RFC 6960 A.1), URL-escaped for a path segment.
fn get_segment(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + 16);
    for c in b64.chars() {
        match c {
            '+' => out.push_str("%2B"),
            '/' => out.push_str("%2F"),
            '=' => out.push_str("%3D"),
            c => out.push(c),
        }
    }
    out
}

/// The aws-lc-rs algorithm for a signature made with `sig_alg` by the key in `spki`.
fn verification_alg(
    sig_alg: &ObjectIdentifier,
    spki: &SubjectPublicKeyInfoOwned,
) -> Result<&'static dyn VerificationAlgorithm, String> {
    let key_alg = spki.algorithm.oid;
    if key_alg == rfc5912::ID_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .ok_or("EC key without a curve")?
            .decode_as::<ObjectIdentifier>()
            .map_err(|e| format!("EC key curve: {e}"))?;
        let p256 = curve == rfc5912::SECP_256_R_1;
        let p384 = curve == rfc5912::SECP_384_R_1;
        return match (*sig_alg, p256, p384) {
            (rfc5912::ECDSA_WITH_SHA_256, true, _) => Ok(&signature::ECDSA_P256_SHA256_ASN1),
            (rfc5912::ECDSA_WITH_SHA_384, true, _) => Ok(&signature::ECDSA_P256_SHA384_ASN1),
            (rfc5912::ECDSA_WITH_SHA_256, _, true) => Ok(&signature::ECDSA_P384_SHA256_ASN1),
            (rfc5912::ECDSA_WITH_SHA_384, _, true) => Ok(&signature::ECDSA_P384_SHA384_ASN1),
            _ => Err(format!(
                "unsupported EC signature {sig_alg} with curve {curve}"
            )),
        };
    }
    if key_alg == rfc5912::RSA_ENCRYPTION {
        return match *sig_alg {
            rfc5912::SHA_256_WITH_RSA_ENCRYPTION => Ok(&signature::RSA_PKCS1_2048_8192_SHA256),
            rfc5912::SHA_384_WITH_RSA_ENCRYPTION => Ok(&signature::RSA_PKCS1_2048_8192_SHA384),
            rfc5912::SHA_512_WITH_RSA_ENCRYPTION => Ok(&signature::RSA_PKCS1_2048_8192_SHA512),
            _ => Err(format!("unsupported RSA signature {sig_alg}")),
        };
    }
    if key_alg == rfc8410::ID_ED_25519 && *sig_alg == rfc8410::ID_ED_25519 {
        return Ok(&signature::ED25519);
    }
    Err(format!("unsupported key {key_alg} / signature {sig_alg}"))
}

/// Verifies `sig` over `msg` by the key in `spki`.
fn verify_signature(
    spki: &SubjectPublicKeyInfoOwned,
    sig_alg: &ObjectIdentifier,
    msg: &[u8],
    sig: &[u8],
) -> Result<(), String> {
    let alg = verification_alg(sig_alg, spki)?;
    UnparsedPublicKey::new(alg, spki.subject_public_key.raw_bytes())
        .verify(msg, sig)
        .map_err(|_| "signature does not verify".to_owned())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Checks a responder certificate against the issuing CA: issued and signed
/// by it, valid now, with id-kp-OCSPSigning.
fn check_responder(issuer: &Certificate, cert: &Certificate) -> Result<Responder, String> {
    let tbs = &cert.tbs_certificate;
    if tbs.issuer != issuer.tbs_certificate.subject {
        return Err(format!(
            "responder certificate issued by {}, not by the issuing CA",
            tbs.issuer
        ));
    }
    let tbs_der = tbs
        .to_der()
        .map_err(|e| format!("encoding the responder certificate: {e}"))?;
    verify_signature(
        &issuer.tbs_certificate.subject_public_key_info,
        &cert.signature_algorithm.oid,
        &tbs_der,
        cert.signature.raw_bytes(),
    )
    .map_err(|e| format!("responder certificate: {e} with the issuing CA's key"))?;
    let now = SystemTime::now();
    if now < tbs.validity.not_before.to_system_time()
        || now > tbs.validity.not_after.to_system_time()
    {
        return Err("responder certificate is not valid now".into());
    }
    let eku = tbs
        .extensions
        .iter()
        .flatten()
        .find(|e: &&Extension| e.extn_id == const_oid::db::rfc5280::ID_CE_EXT_KEY_USAGE)
        .ok_or("responder certificate has no extended key usage")?;
    let eku = ExtendedKeyUsage::from_der(eku.extn_value.as_bytes())
        .map_err(|e| format!("responder certificate EKU: {e}"))?;
    if !eku.0.contains(&OCSP_SIGNING) {
        return Err("responder certificate lacks id-kp-OCSPSigning".into());
    }
    let key_sha1 = digest::digest(
        &digest::SHA1_FOR_LEGACY_USE_ONLY,
        tbs.subject_public_key_info.subject_public_key.raw_bytes(),
    )
    .as_ref()
    .to_vec();
    Ok(Responder {
        cert: cert.clone(),
        spki: tbs.subject_public_key_info.clone(),
        key_sha1,
    })
}

/// The checked responder for `cert`, from the cache or checked now.
fn responder(ctx: &Ctx, cert: &Certificate) -> Result<Arc<Responder>, String> {
    let cached = |list: &[CheckedResponder]| {
        list.iter()
            .find(|(c, _)| c.signature == cert.signature && c == cert)
            .map(|(_, r)| r.clone())
    };
    {
        let list = match ctx.responders.read() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if let Some(r) = cached(&list) {
            return r;
        }
    }
    let outcome = check_responder(&ctx.issuer, cert).map(Arc::new);
    let mut list = match ctx.responders.write() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    if cached(&list).is_none() && list.len() < RESPONDER_CACHE {
        list.push((cert.clone(), outcome.clone()));
    }
    outcome
}

/// Verifies one answer; returns the status it carried.
fn verify_answer(
    ctx: &Ctx,
    job: &Job,
    status: StatusCode,
    content_type: Option<&HeaderValue>,
    body: &[u8],
) -> Result<Expected, String> {
    if status != StatusCode::OK {
        let text = String::from_utf8_lossy(body);
        let text: String = text.trim().chars().take(ERROR_BODY_CHARS).collect();
        return Err(format!("HTTP {status}: {text}"));
    }
    match content_type.and_then(|v| v.to_str().ok()) {
        Some(ct) if ct.eq_ignore_ascii_case("application/ocsp-response") => {}
        other => {
            return Err(format!(
                "Content-Type {other:?}, not application/ocsp-response"
            ))
        }
    }
    let resp = OcspResponse::from_der(body).map_err(|e| format!("not an OCSPResponse: {e}"))?;
    if resp.response_status != OcspResponseStatus::Successful {
        return Err(format!("responseStatus {:?}", resp.response_status));
    }
    let bytes = resp
        .response_bytes
        .ok_or("successful response without responseBytes")?;
    if bytes.response_type != rfc6960::ID_PKIX_OCSP_BASIC {
        return Err(format!("response type {}, not basic", bytes.response_type));
    }
    let basic = BasicOcspResponse::from_der(bytes.response.as_bytes())
        .map_err(|e| format!("not a BasicOCSPResponse: {e}"))?;
    let cert = basic
        .certs
        .as_ref()
        .and_then(|c| c.first())
        .ok_or("no responder certificate in the response")?;
    let responder = responder(ctx, cert)?;
    let data = &basic.tbs_response_data;
    match &data.responder_id {
        ResponderId::ByKey(hash) if hash.as_bytes() == responder.key_sha1.as_slice() => {}
        ResponderId::ByName(name) if *name == responder.cert.tbs_certificate.subject => {}
        _ => return Err("responder ID does not name the included certificate".into()),
    }
    let tbs_der = data
        .to_der()
        .map_err(|e| format!("encoding tbsResponseData: {e}"))?;
    verify_signature(
        &responder.spki,
        &basic.signature_algorithm.oid,
        &tbs_der,
        basic.signature.raw_bytes(),
    )
    .map_err(|e| format!("response {e}"))?;
    let [single] = data.responses.as_slice() else {
        return Err(format!("{} single responses, not 1", data.responses.len()));
    };
    let id = &single.cert_id;
    if id.serial_number != job.serial {
        return Err(format!(
            "answer is about serial {}, not {}",
            id.serial_number, job.serial
        ));
    }
    if id.hash_algorithm != ctx.hash_alg
        || id.issuer_name_hash != ctx.name_hash
        || id.issuer_key_hash != ctx.key_hash
    {
        return Err("answer's CertID names another issuer or hash".into());
    }
    let now = unix_now();
    let this_update = single.this_update.0.to_unix_duration().as_secs();
    if this_update > now + SKEW_SECS {
        return Err("thisUpdate is in the future".into());
    }
    match &single.next_update {
        Some(t) if t.0.to_unix_duration().as_secs() > now => {}
        Some(_) => return Err("nextUpdate has passed".into()),
        None => return Err("no nextUpdate".into()),
    }
    let got = match single.cert_status {
        CertStatus::Good(_) => Expected::Good,
        CertStatus::Revoked(_) => Expected::Revoked,
        CertStatus::Unknown(_) => Expected::Unknown,
    };
    if got != job.expected {
        return Err(format!(
            "serial {} is {}, expected {}",
            job.serial,
            got.name(),
            job.expected.name()
        ));
    }
    if let Some(sent) = &job.nonce {
        match basic.nonce() {
            Some(n) if n.0.as_bytes() == sent.as_slice() => {}
            Some(_) => return Err("nonce differs from the one sent".into()),
            None => return Err("nonce not echoed".into()),
        }
    }
    Ok(got)
}

/// Builds the DER request for one serial.
fn encode_request(
    hash_alg: &AlgorithmIdentifierOwned,
    name_hash: &OctetString,
    key_hash: &OctetString,
    serial: &SerialNumber,
    nonce: Option<&[u8]>,
) -> Result<Vec<u8>, der::Error> {
    let request_extensions = match nonce {
        Some(n) => Some(vec![Extension {
            extn_id: rfc6960::ID_PKIX_OCSP_NONCE,
            critical: false,
            extn_value: OctetString::new(OctetString::new(n)?.to_der()?)?,
        }]),
        None => None,
    };
    OcspRequest {
        tbs_request: TbsRequest {
            version: Version::V1,
            requestor_name: None,
            request_list: vec![OcspSingleRequest {
                req_cert: CertId {
                    hash_algorithm: hash_alg.clone(),
                    issuer_name_hash: name_hash.clone(),
                    issuer_key_hash: key_hash.clone(),
                    serial_number: serial.clone(),
                },
                single_request_extensions: None,
            }],
            request_extensions,
        },
        optional_signature: None,
    }
    .to_der()
}

/// TCP connect and HTTP/1.1 handshake; the connection driver runs in its own task.
async fn connect(ctx: &Ctx) -> Result<SendRequest<Full<Bytes>>, String> {
    let tcp = tokio::net::TcpStream::connect(ctx.addr)
        .await
        .map_err(|e| format!("connect {}: {e}", ctx.addr))?;
    tcp.set_nodelay(true)
        .map_err(|e| format!("TCP_NODELAY: {e}"))?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    tokio::spawn(async move {
        // Errors surface on the request side; the driver just ends.
        let _ = conn.await;
    });
    Ok(sender)
}

/// What one worker measured.
#[derive(Default)]
struct WorkerStats {
    attempted: u64,
    verified: u64,
    errors: u64,
    good: u64,
    revoked: u64,
    unknown: u64,
    /// Connections opened.
    connects: u64,
    /// Response bytes of verified answers.
    bytes: u64,
    /// Time spent verifying answers.
    verify: Duration,
    latencies: Vec<Duration>,
}

/// Sends one request and returns status, Content-Type and body.
async fn exchange(
    ctx: &Ctx,
    slot: &mut Option<SendRequest<Full<Bytes>>>,
    job: &Job,
    stats: &mut WorkerStats,
) -> Result<(StatusCode, Option<HeaderValue>, Bytes), String> {
    let reuse = ctx.conn_mode == ConnMode::Reuse;
    let mut sender = match slot.take() {
        Some(mut s) if reuse && !s.is_closed() => match s.ready().await {
            Ok(()) => s,
            // Closed by the server between requests: not this request's fault.
            Err(_) => {
                stats.connects += 1;
                connect(ctx).await?
            }
        },
        _ => {
            stats.connects += 1;
            connect(ctx).await?
        }
    };
    let mut builder = Request::builder()
        .method(ctx.method.clone())
        .uri(job.target.as_str())
        .header(header::HOST, &ctx.authority);
    if ctx.method == Method::POST {
        builder = builder.header(header::CONTENT_TYPE, "application/ocsp-request");
    }
    if !reuse {
        builder = builder.header(header::CONNECTION, "close");
    }
    let req = builder
        .body(Full::new(job.body.clone()))
        .map_err(|e| format!("building the request: {e}"))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("sending the request: {e}"))?;
    let status = resp.status();
    let content_type = resp.headers().get(header::CONTENT_TYPE).cloned();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("reading the answer: {e}"))?
        .to_bytes();
    if reuse {
        *slot = Some(sender);
    }
    Ok((status, content_type, body))
}

async fn run_worker(
    ctx: Arc<Ctx>,
    w: usize,
    workers: usize,
    count: u64,
    deadline: Option<Instant>,
) -> WorkerStats {
    let mut stats = WorkerStats::default();
    let mut slot = None;
    let mut k: u64 = 0;
    loop {
        match deadline {
            Some(d) if Instant::now() >= d => break,
            None if k >= count => break,
            _ => {}
        }
        let index = (k as usize).wrapping_mul(workers).wrapping_add(w) % ctx.jobs.len();
        let job = &ctx.jobs[index];
        k += 1;
        stats.attempted += 1;
        let started = Instant::now();
        let outcome = match exchange(&ctx, &mut slot, job, &mut stats).await {
            Ok((status, ct, body)) => {
                let v = Instant::now();
                let r = verify_answer(&ctx, job, status, ct.as_ref(), &body);
                stats.verify += v.elapsed();
                r.map(|got| (got, body.len()))
            }
            Err(e) => Err(e),
        };
        match outcome {
            Ok((got, len)) => {
                stats.verified += 1;
                stats.bytes += len as u64;
                match got {
                    Expected::Good => stats.good += 1,
                    Expected::Revoked => stats.revoked += 1,
                    Expected::Unknown => stats.unknown += 1,
                }
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

/// The issuing CA and the CertID fields that name it (SHA-1, RFC 6960 4.1.1).
struct IssuerId {
    issuer: Certificate,
    hash_alg: AlgorithmIdentifierOwned,
    name_hash: OctetString,
    key_hash: OctetString,
}

impl IssuerId {
    /// Reads the first certificate of `--issuer` and hashes its name and key.
    fn load(path: &Path) -> Result<IssuerId, SetupError> {
        let issuer_der = load_certs(path)?
            .into_iter()
            .next()
            .ok_or_else(|| SetupError::Usage("--issuer holds no certificate".into()))?;
        let issuer = Certificate::from_der(issuer_der.as_ref()).map_err(|e| SetupError::File {
            path: path.to_path_buf(),
            reason: format!("not an X.509 certificate: {e}"),
        })?;
        let sha1 = |data: &[u8]| digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, data);
        let name_der = issuer.tbs_certificate.subject.to_der().map_err(encoding)?;
        let name_hash = OctetString::new(sha1(&name_der).as_ref()).map_err(encoding)?;
        let key_hash = OctetString::new(
            sha1(
                issuer
                    .tbs_certificate
                    .subject_public_key_info
                    .subject_public_key
                    .raw_bytes(),
            )
            .as_ref(),
        )
        .map_err(encoding)?;
        let hash_alg = AlgorithmIdentifierOwned {
            oid: SHA1,
            parameters: Some(Any::from(Null)),
        };
        Ok(IssuerId {
            issuer,
            hash_alg,
            name_hash,
            key_hash,
        })
    }
}

fn encoding(e: der::Error) -> SetupError {
    SetupError::Generate(format!("encoding: {e}"))
}

/// Encodes `pool` requests about serials drawn at random from `serials`,
/// each with a fresh nonce under `--nonce`. `path` is the responder's path
/// from `--ocsp-url`.
fn encode_jobs(
    cli: &Cli,
    id: &IssuerId,
    serials: &[(Vec<u8>, Expected)],
    path: &str,
    pool: usize,
) -> Result<Vec<Job>, SetupError> {
    let responder_path = if path.is_empty() {
        "/".to_owned()
    } else {
        path.to_owned()
    };
    let mut rng = XorShift::from_clock();
    let mut jobs = Vec::with_capacity(pool);
    for _ in 0..pool {
        let (hex, expected) = &serials[rng.below(serials.len())];
        let serial = SerialNumber::new(hex).map_err(|e| {
            SetupError::Usage(format!(
                "serial {hex:02X?} is not a certificate serial: {e}"
            ))
        })?;
        let nonce = if cli.nonce {
            let mut n = vec![0u8; NONCE_LEN];
            aws_lc_rs::rand::fill(&mut n)
                .map_err(|_| SetupError::Generate("no randomness for nonces".into()))?;
            Some(n)
        } else {
            None
        };
        let der = encode_request(
            &id.hash_alg,
            &id.name_hash,
            &id.key_hash,
            &serial,
            nonce.as_deref(),
        )
        .map_err(encoding)?;
        let (body, target) = match cli.method {
            crate::OcspMethod::Post => (Bytes::from(der), responder_path.clone()),
            crate::OcspMethod::Get => (Bytes::new(), format!("{path}/{}", get_segment(&der))),
        };
        jobs.push(Job {
            body,
            target,
            serial,
            expected: *expected,
            nonce,
        });
    }
    Ok(jobs)
}

impl WorkerStats {
    /// Adds what another worker measured.
    fn add(&mut self, s: WorkerStats) {
        self.attempted += s.attempted;
        self.verified += s.verified;
        self.errors += s.errors;
        self.good += s.good;
        self.revoked += s.revoked;
        self.unknown += s.unknown;
        self.connects += s.connects;
        self.bytes += s.bytes;
        self.verify += s.verify;
        self.latencies.extend(s.latencies);
    }
}

/// Runs `workers` workers sharing `total` requests (or until `deadline`)
/// and adds up what they measured.
async fn timed_phase(
    ctx: &Arc<Ctx>,
    workers: usize,
    total: usize,
    deadline: Option<Instant>,
) -> WorkerStats {
    let share = |w: usize| (total / workers + usize::from(w < total % workers)) as u64;
    let handles: Vec<_> = (0..workers)
        .map(|w| tokio::spawn(run_worker(ctx.clone(), w, workers, share(w), deadline)))
        .collect();
    let mut sum = WorkerStats::default();
    for h in handles {
        match h.await {
            Ok(s) => sum.add(s),
            Err(e) => {
                sum.errors += 1;
                ctx.note_error(format!("worker task failed: {e}"));
            }
        }
    }
    sum
}

/// CPU time and memory measured around the timed phase.
struct Costs {
    /// Wall-clock seconds of the timed phase.
    secs: f64,
    /// CPU seconds of the benchmark itself and (with `--server-pid`) of the server.
    self_cpu: Option<f64>,
    server_cpu: Option<f64>,
    /// The server's VmRSS and VmHWM, kB, before and after.
    rss_before: Option<(u64, u64)>,
    rss_after: Option<Result<(u64, u64), String>>,
}

/// Runs `--op ocsp`.
pub(crate) fn main(cli: Cli) -> Result<ExitCode, SetupError> {
    if cli.conn == ConnMode::Resume {
        return Err(SetupError::Usage(
            "--op ocsp speaks plain HTTP: there is no TLS session to resume (--conn reuse|new)"
                .into(),
        ));
    }
    let (authority, path) = parse_http_url(&cli.ocsp_url)?;
    let serials_path = cli
        .serials
        .clone()
        .ok_or_else(|| SetupError::Usage("--op ocsp needs --serials FILE".into()))?;
    let id = IssuerId::load(&cli.issuer)?;
    let serials = read_serials(&serials_path)?;
    let revoked_in_file = serials
        .iter()
        .filter(|(_, e)| *e == Expected::Revoked)
        .count();
    eprintln!(
        "estd-bench: {} serials in {} ({revoked_in_file} revoked); issuing CA {}",
        serials.len(),
        serials_path.display(),
        id.issuer.tbs_certificate.subject
    );
    let total = cli.requests as usize;
    let pool = total.min(MAX_POOL);
    let prep = Instant::now();
    let jobs = encode_jobs(&cli, &id, &serials, &path, pool)?;
    eprintln!(
        "estd-bench: {pool} OCSP requests encoded in {:.2} s",
        prep.elapsed().as_secs_f64()
    );

    let rss_before = match cli.server_pid {
        Some(pid) => Some(read_rss(pid).map_err(SetupError::Io)?),
        None => None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| SetupError::Io(format!("cannot start the runtime: {e}")))?;
    let addr = runtime
        .block_on(tokio::net::lookup_host(&authority))
        .map_err(|e| SetupError::Usage(format!("cannot resolve {authority}: {e}")))?
        .next()
        .ok_or_else(|| SetupError::Usage(format!("{authority} resolves to no address")))?;
    let ctx = Arc::new(Ctx {
        addr,
        authority,
        method: match cli.method {
            crate::OcspMethod::Post => Method::POST,
            crate::OcspMethod::Get => Method::GET,
        },
        conn_mode: cli.conn,
        issuer: id.issuer,
        hash_alg: id.hash_alg,
        name_hash: id.name_hash,
        key_hash: id.key_hash,
        responders: RwLock::new(Vec::new()),
        jobs,
        error_samples: Mutex::new(Vec::new()),
    });
    let workers = cli.workers as usize;
    match cli.duration {
        Some(d) => eprintln!(
            "estd-bench: timed phase: ocsp {} for {d} s, {workers} workers, conn={}, nonce={}",
            cli.method.name(),
            cli.conn.name(),
            cli.nonce
        ),
        None => eprintln!(
            "estd-bench: timed phase: ocsp {} x {total}, {workers} workers, conn={}, nonce={}",
            cli.method.name(),
            cli.conn.name(),
            cli.nonce
        ),
    }
    let server_cpu_now = || cli.server_pid.and_then(|p| cpu_secs(&p.to_string()));
    let self_cpu_start = cpu_secs("self");
    let server_cpu_start = server_cpu_now();
    let started = Instant::now();
    let deadline = cli.duration.map(|d| started + Duration::from_secs_f64(d));
    let sum = runtime.block_on(timed_phase(&ctx, workers, total, deadline));
    let secs = started.elapsed().as_secs_f64();
    let spent = |start: Option<f64>, end: Option<f64>| Some(end? - start?);
    let costs = Costs {
        secs,
        self_cpu: spent(self_cpu_start, cpu_secs("self")),
        server_cpu: spent(server_cpu_start, server_cpu_now()),
        rss_before,
        rss_after: cli.server_pid.map(read_rss),
    };
    drop(runtime);
    Ok(report(&cli, &ctx, sum, costs))
}

/// Prints the report and the `RESULT` line; fails when any request failed
/// or none was verified.
fn report(cli: &Cli, ctx: &Ctx, mut sum: WorkerStats, costs: Costs) -> ExitCode {
    let secs = costs.secs;
    sum.latencies.sort_unstable();
    let p50 = percentile_ms(&sum.latencies, 0.50);
    let p90 = percentile_ms(&sum.latencies, 0.90);
    let p99 = percentile_ms(&sum.latencies, 0.99);
    let max = sum
        .latencies
        .last()
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0);
    let rate = if secs > 0.0 {
        sum.verified as f64 / secs
    } else {
        0.0
    };
    let checked = sum.verified + sum.errors;
    let verify_us = if checked > 0 {
        sum.verify.as_secs_f64() * 1e6 / checked as f64
    } else {
        0.0
    };
    let workers = cli.workers;
    println!("estd-bench report");
    println!("  op:            ocsp");
    println!(
        "  method:        {}{}",
        cli.method.name(),
        if cli.nonce { " with nonce" } else { "" }
    );
    println!("  conn mode:     {}", cli.conn.name());
    println!("  workers:       {workers}");
    println!("  attempted:     {}", sum.attempted);
    println!(
        "  verified:      {} (good {}, revoked {}, unknown {})",
        sum.verified, sum.good, sum.revoked, sum.unknown
    );
    println!("  errors:        {}", sum.errors);
    println!("  connections:   {}", sum.connects);
    println!("  elapsed:       {secs:.3} s");
    println!("  rate:          {rate:.1} verified responses/s");
    println!(
        "  latency ms:    p50 {p50:.2}  p90 {p90:.2}  p99 {p99:.2}  max {max:.2}  (including verification{})",
        if cli.conn == ConnMode::New {
            " and the TCP connection"
        } else {
            ""
        }
    );
    println!(
        "  response:      {:.0} bytes on average; verification {verify_us:.1} us each",
        if sum.verified > 0 {
            sum.bytes as f64 / sum.verified as f64
        } else {
            0.0
        }
    );
    let rss_kb = print_costs(cli.server_pid, &costs);
    print_first_errors(&ctx.error_samples);
    let opt = |c: Option<f64>| c.map_or_else(|| "-".to_owned(), |c| format!("{c:.2}"));
    println!(
        "RESULT op=ocsp method={} nonce={} conn={} workers={workers} verified={} errors={} secs={secs:.3} rate={rate:.1} p50_ms={p50:.2} p90_ms={p90:.2} p99_ms={p99:.2} max_ms={max:.2} rss_kb={rss_kb} bench_cpu_s={} server_cpu_s={}",
        cli.method.name(),
        u8::from(cli.nonce),
        cli.conn.name(),
        sum.verified,
        sum.errors,
        opt(costs.self_cpu),
        opt(costs.server_cpu)
    );
    if sum.errors > 0 || sum.verified == 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Prints the CPU lines and (with `--server-pid`) the server's, and returns
/// the `rss_kb` field of the `RESULT` line: the size after the run, or `-`.
fn print_costs(server_pid: Option<u32>, costs: &Costs) -> String {
    let cpu = |c: Option<f64>| match c {
        Some(c) => format!(
            "{c:.2} s ({:.0}% of one core)",
            100.0 * c / costs.secs.max(1e-9)
        ),
        None => "-".into(),
    };
    println!("  bench CPU:     {}", cpu(costs.self_cpu));
    let Some(pid) = server_pid else {
        return String::from("-");
    };
    println!("  server CPU:    {}", cpu(costs.server_cpu));
    if let Some((rss, _)) = costs.rss_before {
        println!("  server RSS:    {rss} kB before the timed phase (pid {pid})");
    }
    crate::print_rss_after(costs.rss_after.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_http_url("http://127.0.0.1:8080/ocsp").unwrap(),
            ("127.0.0.1:8080".to_owned(), "/ocsp".to_owned())
        );
        assert_eq!(
            parse_http_url("http://localhost/").unwrap(),
            ("localhost:80".to_owned(), String::new())
        );
        assert!(parse_http_url("https://127.0.0.1/ocsp").is_err());
    }

    #[test]
    fn get_escaping() {
        assert_eq!(get_segment(&[0xfb, 0xff]), "%2B%2F8%3D");
    }

    #[test]
    fn hex() {
        assert_eq!(parse_hex("40aB"), Some(vec![0x40, 0xab]));
        assert_eq!(parse_hex("4"), None);
        assert_eq!(parse_hex("zz"), None);
    }

    #[test]
    fn sampling_covers() {
        let mut rng = XorShift::from_clock();
        let mut seen = [false; 10];
        for _ in 0..1000 {
            seen[rng.below(10)] = true;
        }
        assert!(seen.iter().all(|s| *s));
    }
}
