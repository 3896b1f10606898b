//! Crash safety: estd as a real process, enrolling under 16-way load over
//! mutual TLS and collecting one-time-code orders, is killed with SIGKILL at a
//! random moment and restarted on the same store and CA, round after round.
//!
//! After every restart:
//! - every certificate a client received is in the store, byte for byte
//!   (looked up through the admin API), and no serial was handed out twice;
//! - a one-time code whose collection returned a certificate is refused (401);
//! - an order whose collection was in flight at the kill has either exactly
//!   its one certificate (and the code is spent) or none (and the code works
//!   exactly once);
//! - no order ever has more than one certificate.
//!
//! `ESTD_CRASH_ROUNDS=N` runs N rounds instead of 10 (the long form, see the README).

use estd_testkit::process;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use estd_testkit::basic;
use estd_testkit::process::{
    demo_identity, first_cert, operator_token, Admin, Daemon, NoAnswer, TryClient,
};
use estd_testkit::{b64, csr_for, der_of, pkcs7_certs, serial_of, Identity, DEMO_CVR, DEMO_ORG};

/// Concurrent EST clients during the load.
const CLIENTS: usize = 16;
/// How many of them collect one-time-code orders while there are any.
const COLLECTORS: usize = 4;
/// Outstanding one-time-code orders at the start of each round.
const POOL: usize = 32;
/// Collections start this long before the kill, so that some are in flight
/// when it comes (orders left over are collected in a later round, after a crash).
const COLLECT_BEFORE_KILL_MS: u64 = 30;
/// Every how many orders one is collected twice at once (a race for the same code).
const DOUBLE_EVERY: usize = 6;
/// Kill after this many milliseconds of load, chosen at random in the range.
const KILL_AFTER_MS: (u64, u64) = (100, 700);

const OTC_NAME: &str = "Crash test collector";
const OTC_LABEL: &str = "crash-otc";
const API_ENROLL: &str = "/.well-known/est/demo/simpleenroll";
const COLLECT: &str = "/.well-known/est/crash-otc/simpleenroll";

fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    aws_lc_rs::rand::fill(&mut b).expect("randomness");
    u64::from_be_bytes(b)
}

/// A one-time-code order the test holds the code of.
#[derive(Debug, Clone)]
struct CodeOrder {
    reference: String,
    code: String,
}

/// What one collection attempt got.
#[derive(Debug, Clone)]
enum Outcome {
    /// 200 with this certificate (DER).
    Issued(Vec<u8>),
    /// An answer without a certificate (status and text, shown when the test fails).
    #[allow(dead_code)]
    Refused(u16, String),
    /// Sent, but no answer came before the kill.
    Unknown,
}

/// What a load worker saw.
#[derive(Default)]
struct WorkerLog {
    /// Certificates received by API enrolment (DER).
    issued: Vec<Vec<u8>>,
    /// Collection attempts by reference number.
    collections: Vec<(String, Outcome)>,
    /// API enrolments that got an answer other than 200 (there must be none).
    unexpected: Vec<String>,
    /// Requests with no answer (in flight at the kill).
    in_flight: usize,
}

fn cert_of(body: &[u8]) -> Vec<u8> {
    let certs = pkcs7_certs(body);
    assert_eq!(certs.len(), 1, "one certificate per enrolment answer");
    der_of(&certs[0])
}

fn serial_hex(der: &[u8]) -> String {
    use der::Decode;
    let cert = x509_cert::Certificate::from_der(der).expect("certificate");
    serial_of(&cert).to_string()
}

fn pem_der(pem: &str) -> Vec<u8> {
    let (label, der) = der::pem::decode_vec(pem.as_bytes()).expect("PEM");
    assert_eq!(label, "CERTIFICATE");
    der
}

async fn collect(
    client: &mut TryClient,
    order: &CodeOrder,
) -> Result<estd_testkit::Resp, NoAnswer> {
    let (_key, csr) = csr_for(DEMO_ORG, DEMO_CVR, OTC_NAME, &rcgen::PKCS_ECDSA_P256_SHA256);
    let auth = basic(&order.reference, &order.code);
    client
        .send(
            "POST",
            COLLECT,
            &[
                ("content-type", "application/pkcs10"),
                ("authorization", &auth),
            ],
            b64(&csr).into_bytes(),
        )
        .await
}

async fn worker(
    index: usize,
    est: std::net::SocketAddr,
    root: Arc<Vec<u8>>,
    idm: Arc<Identity>,
    queue: Arc<Mutex<VecDeque<CodeOrder>>>,
    collect_from: Instant,
    stop: Arc<AtomicBool>,
) -> WorkerLog {
    let mut log = WorkerLog::default();
    let mut api: Option<TryClient> = None;
    while !stop.load(Ordering::Relaxed) {
        let order = if index < COLLECTORS && Instant::now() >= collect_from {
            queue.lock().expect("queue").pop_front()
        } else {
            None
        };
        if let Some(order) = order {
            // A fresh connection without a client certificate, as a device would.
            let mut client = match TryClient::connect(est, &root, None).await {
                Ok(c) => c,
                Err(_) => {
                    queue.lock().expect("queue").push_front(order);
                    break; // the server is gone
                }
            };
            let outcome = match collect(&mut client, &order).await {
                Ok(r) if r.status == 200 => Outcome::Issued(cert_of(&r.body)),
                Ok(r) => Outcome::Refused(r.status, r.text()),
                Err(NoAnswer::NotSent(_)) => {
                    queue.lock().expect("queue").push_front(order);
                    continue;
                }
                Err(NoAnswer::Unknown(_)) => {
                    log.in_flight += 1;
                    Outcome::Unknown
                }
            };
            log.collections.push((order.reference, outcome));
            continue;
        }
        if api.is_none() {
            match TryClient::connect(est, &root, Some(&idm)).await {
                Ok(c) => api = Some(c),
                Err(_) => break, // the server is gone
            }
        }
        let Some(client) = api.as_mut() else { break };
        let (_key, csr) = csr_for(
            DEMO_ORG,
            DEMO_CVR,
            &format!("crash-device-{index}"),
            &rcgen::PKCS_ECDSA_P256_SHA256,
        );
        match client
            .send(
                "POST",
                API_ENROLL,
                &[("content-type", "application/pkcs10")],
                b64(&csr).into_bytes(),
            )
            .await
        {
            Ok(r) if r.status == 200 => log.issued.push(cert_of(&r.body)),
            Ok(r) => log.unexpected.push(format!("{} {}", r.status, r.text())),
            Err(NoAnswer::Unknown(_)) => {
                log.in_flight += 1;
                api = None;
            }
            Err(NoAnswer::NotSent(_)) => api = None,
        }
    }
    log
}

/// Everything the test has seen, across rounds.
#[derive(Default)]
struct Ledger {
    /// Serial (hex) → DER of every certificate a client received.
    received: BTreeMap<String, Vec<u8>>,
    /// Serials of certificates issued for orders whose answer was lost in the kill.
    lost_answers: HashSet<String>,
    /// Orders not yet attempted.
    pool: Vec<CodeOrder>,
    /// Every order created, with its code.
    orders: HashMap<String, CodeOrder>,
    /// Orders that ended with a certificate, and its serial.
    collected: HashMap<String, String>,
    /// Counters for the report.
    api_certs: usize,
    code_certs: usize,
    in_flight: usize,
    in_flight_orders_issued: usize,
    in_flight_orders_pending: usize,
    races: usize,
}

impl Ledger {
    /// Records a certificate a client received; a serial seen before fails the test.
    fn receive(&mut self, der: Vec<u8>) -> String {
        let serial = serial_hex(&der);
        assert!(
            !self.lost_answers.contains(&serial),
            "serial {serial} handed out twice"
        );
        let previous = self.received.insert(serial.clone(), der);
        assert!(previous.is_none(), "serial {serial} handed out twice");
        serial
    }
}

/// The stored certificate `serial` must be exactly `der`.
async fn assert_stored(admin: &mut Admin, serial: &str, der: &[u8]) {
    let v = admin
        .json("GET", &format!("/certificates/{serial}"), None, 200)
        .await;
    let pem = v["pem"].as_str().expect("pem");
    assert_eq!(
        pem_der(pem),
        der,
        "certificate {serial} in the store differs from what the client received"
    );
}

/// A collection with a code that must be refused.
async fn assert_code_refused(d: &Daemon, root: &[u8], order: &CodeOrder) {
    let mut c = TryClient::connect(d.est, root, None)
        .await
        .expect("connect");
    let r = collect(&mut c, order).await.expect("answer");
    assert_eq!(
        r.status,
        401,
        "order {}: a spent one-time code must be refused: {}",
        order.reference,
        r.text()
    );
}

/// Checks, after a restart, what the previous round's clients saw.
async fn verify_round(
    d: &Daemon,
    root: &[u8],
    admin: &mut Admin,
    ledger: &mut Ledger,
    logs: Vec<WorkerLog>,
) {
    let mut attempts: HashMap<String, Vec<Outcome>> = HashMap::new();
    for log in logs {
        assert!(
            log.unexpected.is_empty(),
            "API enrolments refused under load: {:?}",
            log.unexpected
        );
        ledger.in_flight += log.in_flight;
        for der in log.issued {
            let serial = ledger.receive(der.clone());
            assert_stored(admin, &serial, &der).await;
            ledger.api_certs += 1;
        }
        for (reference, outcome) in log.collections {
            attempts.entry(reference).or_default().push(outcome);
        }
    }
    let attempted: HashSet<String> = attempts.keys().cloned().collect();
    ledger.pool.retain(|o| !attempted.contains(&o.reference));

    for (reference, outcomes) in attempts {
        let order = ledger.orders[&reference].clone();
        if outcomes.len() > 1 {
            ledger.races += 1;
        }
        let issued: Vec<&Vec<u8>> = outcomes
            .iter()
            .filter_map(|o| match o {
                Outcome::Issued(der) => Some(der),
                _ => None,
            })
            .collect();
        assert!(
            issued.len() <= 1,
            "order {reference}: one code gave {} certificates",
            issued.len()
        );
        let unknown = outcomes.iter().any(|o| matches!(o, Outcome::Unknown));
        let view = admin
            .json("GET", &format!("/orders/{reference}"), None, 200)
            .await;
        let status = view["status"].as_str().unwrap_or("").to_owned();
        let stored_serial = view["serial"].as_str().map(str::to_owned);
        if let Some(der) = issued.first() {
            let serial = ledger.receive((*der).clone());
            assert_stored(admin, &serial, der).await;
            assert_eq!(status, "issued", "order {reference} after the restart");
            assert_eq!(
                stored_serial.as_deref(),
                Some(serial.as_str()),
                "order {reference}"
            );
            ledger.collected.insert(reference.clone(), serial);
            ledger.code_certs += 1;
            assert_code_refused(d, root, &order).await;
        } else if unknown {
            match status.as_str() {
                "issued" => {
                    // The certificate was stored; only the answer was lost.
                    let serial = stored_serial.expect("an issued order names its serial");
                    admin
                        .json("GET", &format!("/certificates/{serial}"), None, 200)
                        .await;
                    assert!(
                        !ledger.received.contains_key(&serial),
                        "serial {serial} handed out twice"
                    );
                    ledger.lost_answers.insert(serial.clone());
                    ledger.collected.insert(reference.clone(), serial);
                    ledger.in_flight_orders_issued += 1;
                    assert_code_refused(d, root, &order).await;
                }
                "pending" => {
                    // Nothing was stored: the code works, exactly once.
                    assert!(stored_serial.is_none());
                    let mut c = TryClient::connect(d.est, root, None)
                        .await
                        .expect("connect");
                    let r = collect(&mut c, &order).await.expect("answer");
                    assert_eq!(
                        r.status,
                        200,
                        "order {reference}: the code of a collection lost in the kill must still work: {}",
                        r.text()
                    );
                    let der = cert_of(&r.body);
                    let serial = ledger.receive(der.clone());
                    assert_stored(admin, &serial, &der).await;
                    ledger.collected.insert(reference.clone(), serial);
                    ledger.in_flight_orders_pending += 1;
                    assert_code_refused(d, root, &order).await;
                }
                other => panic!("order {reference}: unexpected status {other:?} after the restart"),
            }
        } else {
            panic!("order {reference}: a fresh one-time code was refused: {outcomes:?}");
        }
    }
}

/// Tops the pool of outstanding orders up to [`POOL`].
async fn top_up_orders(admin: &mut Admin, profile_id: &str, ledger: &mut Ledger) {
    let body = serde_json::json!({ "profile_id": profile_id }).to_string();
    while ledger.pool.len() < POOL {
        let v = admin.json("POST", "/orders", Some(&body), 201).await;
        let order = CodeOrder {
            reference: v["reference"].as_str().expect("reference").to_owned(),
            code: v["code"].as_str().expect("code").to_owned(),
        };
        ledger.orders.insert(order.reference.clone(), order.clone());
        ledger.pool.push(order);
    }
}

/// One round of load, ended by SIGKILL. Returns what the clients saw.
async fn load_and_kill(
    d: &mut Daemon,
    root: &Arc<Vec<u8>>,
    idm: &Arc<Identity>,
    pool: &[CodeOrder],
) -> (Vec<WorkerLog>, u64) {
    let mut queue = VecDeque::new();
    for (i, o) in pool.iter().enumerate() {
        queue.push_back(o.clone());
        if i % DOUBLE_EVERY == 0 {
            // Two collectors will likely take it at the same moment.
            queue.push_back(o.clone());
        }
    }
    let queue = Arc::new(Mutex::new(queue));
    let stop = Arc::new(AtomicBool::new(false));
    let after = KILL_AFTER_MS.0 + random_u64() % (KILL_AFTER_MS.1 - KILL_AFTER_MS.0 + 1);
    let collect_from =
        Instant::now() + Duration::from_millis(after.saturating_sub(COLLECT_BEFORE_KILL_MS));
    let workers: Vec<_> = (0..CLIENTS)
        .map(|i| {
            tokio::spawn(worker(
                i,
                d.est,
                root.clone(),
                idm.clone(),
                queue.clone(),
                collect_from,
                stop.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(after)).await;
    d.kill9();
    stop.store(true, Ordering::Relaxed);
    let mut logs = Vec::new();
    for w in workers {
        logs.push(
            tokio::time::timeout(Duration::from_secs(60), w)
                .await
                .expect("a worker hung after the kill")
                .expect("worker"),
        );
    }
    (logs, after)
}

/// Start-up on the existing store and CA, checking that the CA is the same one.
fn restart(dir: &Path, config: &Path, tag: &str, root: &[u8]) -> Daemon {
    let d = Daemon::start(dir, config, &[], tag).expect("estd restarts after SIGKILL");
    let certs = dir.join("certs");
    assert_eq!(
        first_cert(&certs.join("root-ca.pem")),
        root,
        "the CA must survive the crash"
    );
    assert!(
        !d.output().contains("created now"),
        "a restart must not create a new CA"
    );
    d
}

/// Final checks on the store: every received certificate is there, each
/// serial once, and no one-time-code order has more than one certificate.
async fn verify_store(admin: &mut Admin, profile_id: &str, ledger: &Ledger) {
    for (serial, der) in &ledger.received {
        assert_stored(admin, serial, der).await;
    }
    let csv_serials = |body: &[u8]| -> Vec<String> {
        let mut r = csv::Reader::from_reader(body);
        let headers = r.headers().expect("CSV header").clone();
        let col = headers
            .iter()
            .position(|h| h == "serial")
            .expect("serial column");
        r.records()
            .map(|rec| rec.expect("CSV record")[col].to_uppercase())
            .collect()
    };
    let all = admin
        .call("GET", &format!("/export.csv?cvr={DEMO_CVR}"), None)
        .await;
    assert_eq!(all.status, 200);
    let all = csv_serials(&all.body);
    let unique: HashSet<&String> = all.iter().collect();
    assert_eq!(
        unique.len(),
        all.len(),
        "a serial listed twice in the store"
    );
    for serial in ledger.received.keys() {
        assert!(unique.contains(serial), "{serial} missing from the export");
    }

    let otc = admin
        .call(
            "GET",
            &format!("/profiles/{profile_id}/certificates.csv"),
            None,
        )
        .await;
    assert_eq!(otc.status, 200);
    let mut per_order: HashMap<String, Vec<String>> = HashMap::new();
    for serial in csv_serials(&otc.body) {
        let v = admin
            .json("GET", &format!("/certificates/{serial}"), None, 200)
            .await;
        let reference = v["order_reference"]
            .as_str()
            .expect("a collected certificate names its order")
            .to_owned();
        per_order.entry(reference).or_default().push(serial);
    }
    for (reference, serials) in &per_order {
        assert_eq!(
            serials.len(),
            1,
            "order {reference} has several certificates: {serials:?}"
        );
        assert_eq!(
            ledger.collected.get(reference),
            Some(&serials[0]),
            "order {reference}: a certificate the test does not know of"
        );
    }
    assert_eq!(
        per_order.len(),
        ledger.collected.len(),
        "every collected order has its certificate"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_under_load_loses_no_certificate_and_no_code_works_twice() {
    let rounds: usize = std::env::var("ESTD_CRASH_ROUNDS")
        .ok()
        .map(|v| v.parse().expect("ESTD_CRASH_ROUNDS must be a number"))
        .unwrap_or(10);
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    // 16 workers on one IdM certificate run far past the default per-client
    // and per-label rate limits; this test is about durability, so they are off.
    let config = process::write_config(dir, "warn", process::NO_CLIENT_RATE_LIMITS);
    let certs = dir.join("certs");
    let started = Instant::now();

    // First start: creates the CA, the store and the demo data.
    let mut d = Daemon::start(dir, &config, &[], "round-1").expect("first start");
    let root = Arc::new(first_cert(&certs.join("root-ca.pem")));
    let idm = Arc::new(demo_identity(&certs));
    let token = operator_token(&certs);
    let mut admin = Admin::connect(&d, &root, &token).await;
    let profile = serde_json::json!({
        "cvr": DEMO_CVR,
        "name": OTC_NAME,
        "kind": "system",
        "contact": {"name": "Crash Test", "email": "crash@demo.example"},
        "identification": "one-time-code",
        "issuance": "est",
        "est_label": OTC_LABEL,
    })
    .to_string();
    let v = admin.json("POST", "/profiles", Some(&profile), 201).await;
    let profile_id = v["profile"]["id"].as_str().expect("profile id").to_owned();

    let mut ledger = Ledger::default();
    for round in 1..=rounds {
        top_up_orders(&mut admin, &profile_id, &mut ledger).await;
        let (logs, after) = load_and_kill(&mut d, &root, &idm, &ledger.pool).await;
        let before = (ledger.api_certs, ledger.code_certs, ledger.in_flight);
        d = restart(dir, &config, &format!("round-{}", round + 1), &root);
        admin = Admin::connect(&d, &root, &token).await;
        verify_round(&d, &root, &mut admin, &mut ledger, logs).await;
        eprintln!(
            "round {round}: SIGKILL after {after} ms; {} API certificates, {} collected, {} requests in flight",
            ledger.api_certs - before.0,
            ledger.code_certs - before.1,
            ledger.in_flight - before.2,
        );
    }
    verify_store(&mut admin, &profile_id, &ledger).await;
    eprintln!(
        "{rounds} rounds in {:.1} s: {} API certificates and {} one-time-code collections received, \
         {} requests in flight at a kill ({} collections of them stored, {} not stored and collected after), \
         {} orders raced for; all in the store, serials unique, no code used twice",
        started.elapsed().as_secs_f64(),
        ledger.api_certs,
        ledger.code_certs,
        ledger.in_flight,
        ledger.in_flight_orders_issued,
        ledger.in_flight_orders_pending,
        ledger.races,
    );
    // A run in which nothing happened proves nothing.
    assert!(
        ledger.api_certs >= rounds,
        "too little load to mean anything"
    );
    assert!(ledger.code_certs > 0, "no one-time code was collected");
}
