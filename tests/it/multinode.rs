//! Several nodes (issue 13): three estd processes on one PostgreSQL database
//! (a fresh database of the cluster the tests start), sharing one certs
//! folder, as a load balancer's pool would. The first node starts alone
//! (it creates the CA and seeds the database); the other two start after it.
//!
//! - A revocation through node A's admin API shows as revoked by OCSP on the
//!   other nodes within 1 s (their OCSP caches follow LISTEN/NOTIFY).
//! - 20 parallel collections of one one-time code, spread over the three
//!   nodes, give exactly one certificate.
//! - `kill -9` of one node under 16-way enrolment spread across the nodes:
//!   every certificate a client received is in the database, byte for byte,
//!   and no serial was handed out twice.
//! - The CRL number never goes down: on any node, and across nodes (no node
//!   serves a lower number than another served a second before).
//! - Notices in the shared outbox are delivered once, whichever node sends them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::digest;
use bytes::Bytes;
use der::asn1::OctetString;
use der::{Decode, Encode};
use estd::model::{now_unix, CertStatus, Notification, NotificationKind, Serial};
use estd::store::Store;
use estd_testkit::postgres;
use estd_testkit::process::{
    demo_identity, first_cert, operator_token, toml_str, Admin, Daemon, NoAnswer, TryClient,
    NO_CLIENT_RATE_LIMITS,
};
use estd_testkit::{b64, basic, csr_for, pkcs7_certs, Identity, DEMO_CVR, DEMO_ORG};
use http_body_util::{BodyExt, Full};
use x509_cert::Certificate;

const CRL_PATH: &str = "/crl/issuing-ca.crl";

/// Three nodes on one database, and what a client of them needs.
struct Nodes {
    tmp: tempfile::TempDir,
    nodes: Vec<Daemon>,
    url: String,
    certs: PathBuf,
    root: Vec<u8>,
    token: String,
}

/// Node `i`'s config: its own ports and data folder, the shared certs folder
/// and database, and `extra` (whole tables, but not `[store]`).
fn node_config(dir: &Path, certs: &Path, url: &str, extra: &str) -> PathBuf {
    std::fs::create_dir_all(dir).expect("node dir");
    let text = format!(
        "[server]\nest_listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n\
         [revocation]\nhttp_listen = \"127.0.0.1:0\"\n\
         [paths]\ncerts_dir = {}\ndata_dir = {}\n\
         [log]\nfilter = \"warn\"\n\
         [store]\nengine = \"postgres\"\nurl = {}\npool_size = 8\n{extra}",
        toml_str(&certs.display().to_string()),
        toml_str(&dir.join("data").display().to_string()),
        toml_str(url),
    );
    let path = dir.join("estd.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

async fn start_node(dir: PathBuf, config: PathBuf, tag: String) -> Daemon {
    tokio::task::spawn_blocking(move || {
        Daemon::start(&dir, &config, &[], &tag).unwrap_or_else(|e| panic!("{tag}: {e}"))
    })
    .await
    .expect("join")
}

/// Starts three nodes on a fresh database: the first alone, then the others.
async fn three_nodes(extra: &str) -> Nodes {
    let tmp = tempfile::tempdir().expect("tmp");
    let url = postgres::fresh_database();
    let certs = tmp.path().join("certs");
    let configs: Vec<(PathBuf, PathBuf)> = (0..3)
        .map(|i| {
            let dir = tmp.path().join(format!("node{i}"));
            let config = node_config(&dir, &certs, &url, extra);
            (dir, config)
        })
        .collect();
    let first = start_node(configs[0].0.clone(), configs[0].1.clone(), "node0".into()).await;
    let others = configs[1..]
        .iter()
        .enumerate()
        .map(|(i, (dir, config))| {
            tokio::spawn(start_node(
                dir.clone(),
                config.clone(),
                format!("node{}", i + 1),
            ))
        })
        .collect::<Vec<_>>();
    let mut nodes = vec![first];
    for o in others {
        nodes.push(o.await.expect("join"));
    }
    for n in &nodes[1..] {
        assert!(
            !n.output().contains("created now"),
            "a later node made a CA of its own: {}",
            n.output()
        );
    }
    let root = first_cert(&certs.join("root-ca.pem"));
    let token = operator_token(&certs);
    Nodes {
        tmp,
        nodes,
        url,
        certs,
        root,
        token,
    }
}

impl Nodes {
    fn idm(&self) -> Identity {
        demo_identity(&self.certs)
    }

    async fn admin(&self, i: usize) -> Admin {
        Admin::connect(&self.nodes[i], &self.root, &self.token).await
    }

    /// A handle on the shared database, as an observer.
    fn store(&self) -> Arc<dyn Store> {
        estd::store::open_location(&self.url, 2).expect("open the shared database")
    }

    fn issuing(&self) -> Certificate {
        Certificate::from_der(&first_cert(&self.certs.join("issuing-ca.pem"))).expect("issuing CA")
    }
}

/// One request on a fresh plain-HTTP connection: (status, body).
async fn plain(addr: SocketAddr, method: &str, path: &str, body: Vec<u8>) -> (u16, Vec<u8>) {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to the public listener");
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
            .await
            .expect("http handshake");
    tokio::spawn(conn);
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost")
        .header("content-type", "application/ocsp-request")
        .body(Full::new(Bytes::from(body)))
        .expect("request");
    let resp = sender.send_request(req).await.expect("send");
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .to_vec();
    (status, body)
}

/// A DER OCSPRequest (SHA-1 CertID, no nonce: a cacheable one) for `cert`.
fn ocsp_request(issuing: &Certificate, cert: &Certificate) -> Vec<u8> {
    let sha1 = |b: &[u8]| {
        OctetString::new(digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, b).as_ref())
            .expect("hash")
    };
    let tbs = &issuing.tbs_certificate;
    x509_ocsp::OcspRequest {
        tbs_request: x509_ocsp::TbsRequest {
            version: x509_ocsp::Version::V1,
            requestor_name: None,
            request_list: vec![x509_ocsp::Request {
                req_cert: x509_ocsp::CertId {
                    hash_algorithm: x509_cert::spki::AlgorithmIdentifierOwned {
                        oid: const_oid::db::rfc5912::ID_SHA_1,
                        parameters: Some(der::asn1::Null.into()),
                    },
                    issuer_name_hash: sha1(&tbs.subject.to_der().expect("name")),
                    issuer_key_hash: sha1(
                        tbs.subject_public_key_info.subject_public_key.raw_bytes(),
                    ),
                    serial_number: cert.tbs_certificate.serial_number.clone(),
                },
                single_request_extensions: None,
            }],
            request_extensions: None,
        },
        optional_signature: None,
    }
    .to_der()
    .expect("request")
}

/// The certificate status an OCSP answer gives: "good", "revoked" or "unknown".
async fn ocsp_status(public: SocketAddr, request: &[u8]) -> &'static str {
    let (status, body) = plain(public, "POST", "/ocsp", request.to_vec()).await;
    assert_eq!(status, 200, "OCSP: {}", String::from_utf8_lossy(&body));
    let resp = x509_ocsp::OcspResponse::from_der(&body).expect("OCSPResponse");
    let bytes = resp.response_bytes.expect("a successful answer");
    let basic =
        x509_ocsp::BasicOcspResponse::from_der(bytes.response.as_bytes()).expect("basic response");
    match basic.tbs_response_data.responses[0].cert_status {
        x509_ocsp::CertStatus::Good(_) => "good",
        x509_ocsp::CertStatus::Revoked(_) => "revoked",
        x509_ocsp::CertStatus::Unknown(_) => "unknown",
    }
}

/// The one certificate of a 200 enrolment answer.
fn cert_of(body: &[u8]) -> Certificate {
    let mut certs = pkcs7_certs(body);
    assert_eq!(certs.len(), 1);
    certs.remove(0)
}

fn serial_of(cert: &Certificate) -> Serial {
    Serial::from_der_bytes(cert.tbs_certificate.serial_number.as_bytes()).expect("serial")
}

/// Enrols one demo device through `est` as the demo IdM system.
async fn enrol(est: SocketAddr, root: &[u8], idm: &Identity, cn: &str) -> Certificate {
    let mut c = TryClient::connect(est, root, Some(idm))
        .await
        .expect("mTLS");
    let r = c.enrol_demo(cn).await.expect("answer");
    assert_eq!(r.status, 200, "enrolment: {}", r.text());
    cert_of(&r.body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revocation_on_one_node_shows_in_ocsp_on_the_others_within_a_second() {
    let n = three_nodes("").await;
    let idm = n.idm();
    let issuing = n.issuing();
    for round in 0..3 {
        // Enrolled through one node, revoked through the next, asked on all.
        let a = round % 3;
        let cert = enrol(n.nodes[a].est, &n.root, &idm, &format!("ocsp-{round}")).await;
        let request = ocsp_request(&issuing, &cert);
        for node in &n.nodes {
            // Twice: the second answer may come from the node's cache.
            assert_eq!(ocsp_status(node.public, &request).await, "good");
            assert_eq!(ocsp_status(node.public, &request).await, "good");
        }
        let revoker = (a + 1) % 3;
        let mut admin = n.admin(revoker).await;
        admin
            .json(
                "POST",
                &format!("/certificates/{}/revoke", serial_of(&cert)),
                Some(r#"{"reason": "superseded"}"#),
                200,
            )
            .await;
        let revoked_at = Instant::now();
        let mut seen: Vec<Option<Duration>> = vec![None; 3];
        seen[revoker] = Some(Duration::ZERO);
        while seen.iter().any(Option::is_none) && revoked_at.elapsed() < Duration::from_secs(3) {
            for (i, node) in n.nodes.iter().enumerate() {
                if seen[i].is_none() && ocsp_status(node.public, &request).await == "revoked" {
                    seen[i] = Some(revoked_at.elapsed());
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        eprintln!("round {round}: revoked on node {revoker}; OCSP said revoked after {seen:?}");
        for (i, s) in seen.iter().enumerate() {
            let s =
                s.unwrap_or_else(|| panic!("node {i} still answers good 3 s after the revocation"));
            assert!(
                s < Duration::from_secs(1),
                "node {i} answered revoked only after {s:?} (must be within 1 s)"
            );
        }
        // The revoking node answers revoked at once (its own write).
        assert_eq!(
            ocsp_status(n.nodes[revoker].public, &request).await,
            "revoked"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_parallel_collections_of_one_code_across_nodes_give_one_certificate() {
    let n = three_nodes("").await;
    let mut admin = n.admin(0).await;
    let profile = serde_json::json!({
        "cvr": DEMO_CVR,
        "name": "Multinode collector",
        "kind": "system",
        "contact": {"name": "Multi Node", "email": "multi@demo.example"},
        "identification": "one-time-code",
        "issuance": "est",
        "est_label": "multi-otc",
    })
    .to_string();
    let v = admin.json("POST", "/profiles", Some(&profile), 201).await;
    let profile_id = v["profile"]["id"].as_str().expect("profile id").to_owned();
    let body = serde_json::json!({ "profile_id": profile_id }).to_string();
    // The order is made on node 1: node 0 and 2 learn of it through the database.
    let v = n
        .admin(1)
        .await
        .json("POST", "/orders", Some(&body), 201)
        .await;
    let reference = v["reference"].as_str().expect("reference").to_owned();
    let code = v["code"].as_str().expect("code").to_owned();

    let barrier = Arc::new(tokio::sync::Barrier::new(20));
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let est = n.nodes[i % 3].est;
            let root = n.root.clone();
            let auth = basic(&reference, &code);
            let barrier = barrier.clone();
            tokio::spawn(async move {
                let (_k, csr) = csr_for(
                    DEMO_ORG,
                    DEMO_CVR,
                    "Multinode collector",
                    &rcgen::PKCS_ECDSA_P256_SHA256,
                );
                let mut c = TryClient::connect(est, &root, None).await.expect("TLS");
                barrier.wait().await;
                let r = c
                    .send(
                        "POST",
                        "/.well-known/est/multi-otc/simpleenroll",
                        &[
                            ("content-type", "application/pkcs10"),
                            ("authorization", &auth),
                        ],
                        b64(&csr).into_bytes(),
                    )
                    .await
                    .expect("an answer");
                (i % 3, r)
            })
        })
        .collect();
    let mut issued = Vec::new();
    let mut refused: BTreeMap<u16, usize> = BTreeMap::new();
    for t in tasks {
        let (node, r) = t.await.expect("join");
        match r.status {
            200 => issued.push((node, cert_of(&r.body))),
            s => {
                assert!(s < 500, "node {node} answered {s}: {}", r.text());
                *refused.entry(s).or_default() += 1;
            }
        }
    }
    eprintln!(
        "one code, 20 collections: {} certificate(s), refusals by status {refused:?}",
        issued.len()
    );
    assert_eq!(
        issued.len(),
        1,
        "one one-time code gave {} certificates",
        issued.len()
    );
    let store = n.store();
    let of_order: Vec<_> = store
        .certs()
        .map(|c| c.expect("cert"))
        .filter(|c| c.order_id.as_deref() == Some(reference.as_str()))
        .collect();
    assert_eq!(
        of_order.len(),
        1,
        "the order has {} certificates",
        of_order.len()
    );
    assert_eq!(of_order[0].der, issued[0].1.to_der().expect("der"));
}

/// What one load worker received: (node, DER, when its request was sent) of each certificate.
type Received = Vec<(usize, Vec<u8>, Instant)>;

async fn load_worker(
    index: usize,
    ests: Arc<Vec<SocketAddr>>,
    root: Arc<Vec<u8>>,
    idm: Arc<Identity>,
    stop: Arc<AtomicBool>,
) -> (Received, usize) {
    let mut got = Vec::new();
    let mut lost = 0;
    // Starts on node index % 3; a node that stops answering is left for the next.
    let mut node = index % ests.len();
    let mut client: Option<TryClient> = None;
    let mut failures = 0;
    while !stop.load(Ordering::Relaxed) {
        if client.is_none() {
            match TryClient::connect(ests[node], &root, Some(&idm)).await {
                Ok(c) => client = Some(c),
                Err(_) => {
                    node = (node + 1) % ests.len();
                    failures += 1;
                    assert!(failures < 1000, "no node answers");
                    continue;
                }
            }
        }
        let Some(c) = client.as_mut() else { continue };
        // When the request left, not when its answer was read: an answer the
        // node wrote just before SIGKILL may still sit in the socket's buffer.
        let sent = Instant::now();
        match c.enrol_demo(&format!("load-{index}")).await {
            Ok(r) if r.status == 200 => {
                got.push((node, cert_of(&r.body).to_der().expect("der"), sent))
            }
            Ok(r) => panic!(
                "node {node} refused an enrolment: {} {}",
                r.status,
                r.text()
            ),
            Err(NoAnswer::Unknown(_)) => {
                lost += 1;
                client = None;
                node = (node + 1) % ests.len();
            }
            Err(NoAnswer::NotSent(_)) => {
                client = None;
                node = (node + 1) % ests.len();
            }
        }
    }
    (got, lost)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_of_one_node_under_load_loses_no_certificate_and_duplicates_no_serial() {
    let mut n = three_nodes(NO_CLIENT_RATE_LIMITS).await;
    let ests = Arc::new(n.nodes.iter().map(|d| d.est).collect::<Vec<_>>());
    let root = Arc::new(n.root.clone());
    let idm = Arc::new(n.idm());
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..16)
        .map(|i| {
            tokio::spawn(load_worker(
                i,
                ests.clone(),
                root.clone(),
                idm.clone(),
                stop.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    // kill9 returns once the process is reaped: a request sent after this
    // instant cannot reach node 2.
    n.nodes[2].kill9();
    let killed_at = Instant::now();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    stop.store(true, Ordering::Relaxed);
    let mut received: Received = Vec::new();
    let mut lost = 0;
    for w in workers {
        let (got, l) = tokio::time::timeout(Duration::from_secs(60), w)
            .await
            .expect("a worker hung")
            .expect("worker");
        received.extend(got);
        lost += l;
    }
    let per_node = |before: bool| {
        let mut c = [0usize; 3];
        for (node, _, at) in &received {
            if (*at < killed_at) == before {
                c[*node] += 1;
            }
        }
        c
    };
    let (before, after) = (per_node(true), per_node(false));
    eprintln!(
        "{} certificates received (per node, requests sent before the kill {before:?}, after {after:?}), \
         {lost} requests without an answer",
        received.len()
    );
    assert!(
        before.iter().all(|c| *c > 0),
        "the load did not reach every node: {before:?}"
    );
    assert!(
        after[0] + after[1] > 0,
        "the other nodes served nothing after the kill"
    );
    assert_eq!(
        after[2], 0,
        "a killed node answered a request sent after its death"
    );

    let mut serials = HashSet::new();
    let store = n.store();
    for (node, der, _) in &received {
        let cert = Certificate::from_der(der).expect("cert");
        let serial = serial_of(&cert);
        assert!(serials.insert(serial), "serial {serial} handed out twice");
        let stored = store
            .cert(&serial)
            .expect("read")
            .unwrap_or_else(|| panic!("certificate {serial} from node {node} is not stored"));
        assert_eq!(
            &stored.der, der,
            "stored {serial} differs from the one received"
        );
    }
    // The survivors still work, and see the same database.
    let survivor = enrol(n.nodes[1].est, &n.root, &n.idm(), "after-kill").await;
    assert!(store.cert(&serial_of(&survivor)).expect("read").is_some());
    drop(n.tmp);
}

/// The crlNumber of a DER CRL.
fn crl_number(der: &[u8]) -> u64 {
    let crl = x509_cert::crl::CertificateList::from_der(der).expect("a CRL");
    let ext = crl
        .tbs_cert_list
        .crl_extensions
        .as_ref()
        .and_then(|exts| {
            exts.iter()
                .find(|e| e.extn_id == const_oid::db::rfc5280::ID_CE_CRL_NUMBER)
        })
        .expect("a crlNumber extension");
    let n = der::asn1::Uint::from_der(ext.extn_value.as_bytes()).expect("crlNumber");
    let bytes = n.as_bytes();
    assert!(bytes.len() <= 8, "crlNumber too large");
    bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
}

/// One CRL fetch: node, when it was asked, when it answered, number, digest.
#[derive(Clone)]
struct Seen {
    node: usize,
    asked: Instant,
    answered: Instant,
    number: u64,
    digest: Vec<u8>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_crl_number_never_goes_down_across_nodes() {
    let n = three_nodes("").await;
    let publics: Vec<SocketAddr> = n.nodes.iter().map(|d| d.public).collect();
    let stop = Arc::new(AtomicBool::new(false));
    // Every node is asked for its CRL, over and over, while CRLs are made.
    let pollers: Vec<_> = publics
        .iter()
        .enumerate()
        .map(|(node, addr)| {
            let (addr, stop) = (*addr, stop.clone());
            tokio::spawn(async move {
                let mut seen = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let asked = Instant::now();
                    let (status, body) = plain(addr, "GET", CRL_PATH, vec![]).await;
                    assert_eq!(status, 200, "node {node}: CRL");
                    seen.push(Seen {
                        node,
                        asked,
                        answered: Instant::now(),
                        number: crl_number(&body),
                        digest: digest::digest(&digest::SHA256, &body).as_ref().to_vec(),
                    });
                    tokio::time::sleep(Duration::from_millis(15)).await;
                }
                seen
            })
        })
        .collect();
    // CRLs are signed on every node: by revocations and on request.
    let idm = n.idm();
    let made = AtomicUsize::new(0);
    let mut admins = Vec::new();
    for i in 0..3 {
        admins.push(n.admin(i).await);
    }
    for round in 0..12 {
        let node = round % 3;
        if round % 2 == 0 {
            let cert = enrol(n.nodes[node].est, &n.root, &idm, &format!("crl-{round}")).await;
            admins[(node + 1) % 3]
                .json(
                    "POST",
                    &format!("/certificates/{}/revoke", serial_of(&cert)),
                    Some(r#"{"reason": "superseded"}"#),
                    200,
                )
                .await;
        } else {
            let r = admins[node].call("POST", "/crl", None).await;
            assert_eq!(r.status, 200, "regenerate on node {node}: {}", r.text());
        }
        made.fetch_add(1, Ordering::Relaxed);
    }
    // Every node catches up with the newest CRL within a second.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all: Vec<Seen> = Vec::new();
    for p in pollers {
        all.extend(p.await.expect("poller"));
    }
    let newest = n.store().crl(1).expect("read").expect("a CRL").number;
    let mut by_number: HashMap<u64, Vec<u8>> = HashMap::new();
    for node in 0..3 {
        let mine: Vec<&Seen> = all.iter().filter(|s| s.node == node).collect();
        assert!(
            mine.len() > 10,
            "node {node} was asked only {} times",
            mine.len()
        );
        for w in mine.windows(2) {
            assert!(
                w[1].number >= w[0].number,
                "node {node} served CRL {} after CRL {}",
                w[1].number,
                w[0].number
            );
        }
        let last = mine.last().expect("one").number;
        assert_eq!(
            last, newest,
            "node {node} still serves CRL {last}, the newest is {newest}"
        );
    }
    for s in &all {
        let d = by_number
            .entry(s.number)
            .or_insert_with(|| s.digest.clone());
        assert_eq!(
            *d, s.digest,
            "two different CRLs carry the number {}",
            s.number
        );
    }
    // Across nodes: no node serves a lower number than one any node served
    // a second before it was asked.
    for a in &all {
        for b in &all {
            if a.answered + Duration::from_secs(1) <= b.asked {
                assert!(
                    b.number >= a.number,
                    "node {} served CRL {} more than 1 s after node {} served CRL {}",
                    b.node,
                    b.number,
                    a.node,
                    a.number
                );
            }
        }
    }
    let distinct: HashSet<u64> = all.iter().map(|s| s.number).collect();
    eprintln!(
        "{} CRL fetches from 3 nodes saw {} numbers up to {newest} while {} CRLs were made",
        all.len(),
        distinct.len(),
        made.load(Ordering::Relaxed)
    );
    assert!(distinct.len() >= 6, "the CRL hardly changed: {distinct:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_notice_is_delivered_once_across_nodes() {
    let sink = crate::notifications::SmtpSink::start().await;
    let n = three_nodes(&sink.config()).await;
    let store = n.store();
    const NOTICES: usize = 30;
    for i in 0..NOTICES {
        store
            .push_notification(Notification {
                id: 0,
                at: now_unix(),
                kind: NotificationKind::Revoked,
                cvr: DEMO_CVR.into(),
                to: format!("multinode-{i}@demo.example"),
                subject: format!("multinode notice {i}"),
                body: "A notice for the multi-node test.".into(),
                serial: None,
                order_id: None,
                delivered_at: None,
                attempts: 0,
            })
            .expect("push");
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let mine = |sink: &crate::notifications::SmtpSink| {
        sink.received()
            .into_iter()
            .filter(|m| m.recipients.iter().any(|r| r.starts_with("multinode-")))
            .count()
    };
    while mine(&sink) < NOTICES && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Give every node a few more rounds to send anything twice.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mut per_address: BTreeMap<String, usize> = BTreeMap::new();
    for m in sink.received() {
        for r in &m.recipients {
            *per_address.entry(r.clone()).or_default() += 1;
        }
    }
    for i in 0..NOTICES {
        let to = format!("multinode-{i}@demo.example");
        assert_eq!(
            per_address.get(&to).copied().unwrap_or(0),
            1,
            "{to} got {:?} mails",
            per_address.get(&to)
        );
    }
    let undelivered: Vec<u64> = store
        .notifications()
        .map(|n| n.expect("notice"))
        .filter(|n| n.to.starts_with("multinode-") && n.delivered_at.is_none())
        .map(|n| n.id)
        .collect();
    assert!(
        undelivered.is_empty(),
        "not marked delivered: {undelivered:?}"
    );
    // Sanity: the certificates of this installation are in PostgreSQL, not sled.
    assert!(
        store
            .certs()
            .any(|c| c.is_ok_and(|c| c.status == CertStatus::Issued)),
        "the shared database holds the seeded certificates"
    );
}
