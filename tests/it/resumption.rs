//! TLS session resumption on the EST listener: a client that reconnects
//! resumes its session (TLS 1.3 tickets; TLS 1.2 tickets or session ids) and
//! skips the full handshake, yet its client certificate is still judged on
//! every request, so a certificate revoked after the session began is refused
//! on a resumed connection, and on a new one whose chain verified before.
//! Also what else makes a handshake cheaper: the tickets sent, and the suite
//! the server chooses.

use std::sync::Arc;

use estd_testkit::api::Api;
use estd_testkit::*;
use rustls::client::TicketRequest;
use rustls::client::{Resumption, Tls12Resumption};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, HandshakeKind};
use serde_json::json;
use tokio::net::TcpStream;

const ENROLL: &str = "/.well-known/est/demo/simpleenroll";

/// How the client resumes.
#[derive(Debug, Clone, Copy)]
enum Way {
    Tls13Tickets,
    Tls12Tickets,
    Tls12SessionIds,
}

fn config_for(ts: &TestServer, identity: &Identity, way: Way) -> Arc<ClientConfig> {
    let tls12 = !matches!(way, Way::Tls13Tickets);
    let mut config = (*tls_config(&ts.root_der(), Some(identity), tls12)).clone();
    let tls12_resumption = match way {
        Way::Tls12SessionIds => Tls12Resumption::SessionIdOnly,
        _ => Tls12Resumption::SessionIdOrTickets,
    };
    config.resumption = Resumption::in_memory_sessions(64).tls12_resumption(tls12_resumption);
    Arc::new(config)
}

/// A certificate of the demo organisation's IdM profile, valid for a year.
fn idm_system(ts: &TestServer, name: &str) -> Identity {
    let (_, idm) = ts.issue_direct(&demo_org(ts.app()), &profile(ts, "demo-idm"), name, 365);
    idm
}

/// A new connection with `config`; how its handshake went, and an HTTP client on it.
async fn connect(ts: &TestServer, config: &Arc<ClientConfig>) -> (HandshakeKind, Client) {
    let (kind, tls) = handshake(ts, config).await;
    (kind, Client::over(tls).await)
}

/// A new TLS connection with `config`, not read from after its handshake
/// (so the tickets the server sends after it stay unread).
async fn handshake(
    ts: &TestServer,
    config: &Arc<ClientConfig>,
) -> (HandshakeKind, tokio_rustls::client::TlsStream<TcpStream>) {
    let tcp = TcpStream::connect(ts.server.est_addr)
        .await
        .expect("connect");
    let tls = tokio_rustls::TlsConnector::from(config.clone())
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
        .expect("TLS handshake");
    let kind = tls.get_ref().1.handshake_kind().expect("handshake done");
    (kind, tls)
}

#[tokio::test]
async fn a_resumed_session_enrols_and_its_certificate_is_still_checked_per_request() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let mut op = Api::operator(&ts).await;
    for way in [Way::Tls13Tickets, Way::Tls12Tickets, Way::Tls12SessionIds] {
        let (serial, idm) = ts.issue_direct(
            &demo_org(ts.app()),
            &profile(&ts, "demo-idm"),
            &format!("IdM {way:?}"),
            365,
        );
        let config = config_for(&ts, &idm, way);

        let (kind, mut c) = connect(&ts, &config).await;
        assert_eq!(kind, HandshakeKind::Full, "{way:?}: the first connection");
        issued_cert(&c.enroll(ENROLL, &demo_csr("resume-1").1).await);
        drop(c);

        let (kind, mut c) = connect(&ts, &config).await;
        assert_eq!(
            kind,
            HandshakeKind::Resumed,
            "{way:?}: the second connection"
        );
        let cert = issued_cert(&c.enroll(ENROLL, &demo_csr("resume-2").1).await);
        assert!(
            ts.app()
                .store
                .cert(&serial_of(&cert))
                .expect("read")
                .is_some(),
            "{way:?}: the certificate issued on a resumed session is stored"
        );
        drop(c);

        // Revoked while its sessions can still be resumed.
        let r = op
            .post(
                &format!("/certificates/{serial}/revoke"),
                json!({"reason": "suspected-misuse"}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.resp.text());
        let before = ts.cert_count();
        let (kind, mut c) = connect(&ts, &config).await;
        assert_eq!(
            kind,
            HandshakeKind::Resumed,
            "{way:?}: after the revocation"
        );
        let r = c.enroll(ENROLL, &demo_csr("resume-3").1).await;
        assert_refused(&r, 403, "client certificate is revoked");

        // A full handshake with the same chain, whose verdict the server
        // remembers (auth::VerifiedChains): revocation is still looked up.
        let mut fresh = (*config).clone();
        fresh.resumption = Resumption::disabled();
        let (kind, mut c) = connect(&ts, &Arc::new(fresh)).await;
        assert_eq!(kind, HandshakeKind::Full, "{way:?}: without resumption");
        let r = c.enroll(ENROLL, &demo_csr("resume-4").1).await;
        assert_refused(&r, 403, "client certificate is revoked");
        assert_eq!(ts.cert_count(), before, "{way:?}: nothing was issued");
    }
    ts.shutdown().await;
}

/// TLS 1.3 tickets: two after each handshake, so a client can open two
/// resumed connections at once; a client may ask for fewer or more
/// (RFC 9149) and gets what it asks, up to four.
#[tokio::test]
async fn a_client_gets_two_tickets_per_handshake_unless_it_asks_for_another_number() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let idm = idm_system(&ts, "IdM tickets");
    for (asked, expected) in [(None, 2), (Some(1), 1), (Some(3), 3), (Some(9), 4)] {
        let mut config = (*config_for(&ts, &idm, Way::Tls13Tickets)).clone();
        config.send_ticket_request = asked.map(|n| TicketRequest {
            new_session_count: n,
            resumption_count: n,
        });
        let config = Arc::new(config);
        let (kind, mut first) = connect(&ts, &config).await;
        assert_eq!(
            kind,
            HandshakeKind::Full,
            "asked {asked:?}: the first connection"
        );
        // The tickets come after the handshake; an answer read brings them in.
        issued_cert(&first.enroll(ENROLL, &demo_csr("tickets").1).await);
        // Opened together: none reads the tickets its own handshake brings.
        let mut kinds = Vec::new();
        let mut open = Vec::new();
        for _ in 0..expected + 1 {
            let (kind, tls) = handshake(&ts, &config).await;
            kinds.push(kind);
            open.push(tls);
        }
        let resumed = kinds
            .iter()
            .filter(|k| **k == HandshakeKind::Resumed)
            .count();
        assert_eq!(resumed, expected, "asked {asked:?}: {kinds:?}");
        assert_eq!(
            kinds[expected],
            HandshakeKind::Full,
            "asked {asked:?}: {kinds:?}"
        );
    }
    ts.shutdown().await;
}

/// The server chooses the suite: AES-128-GCM with SHA-256 whenever the client
/// offers it, whatever the client's order (a cheaper key schedule than
/// SHA-384's), and any other suite the client offers when it does not.
#[tokio::test]
async fn the_server_chooses_aes_128_gcm_when_offered_and_serves_clients_without_it() {
    use rustls::crypto::aws_lc_rs::cipher_suite as suites;
    use rustls::CipherSuite as S;
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let idm = idm_system(&ts, "IdM suites");
    let cases = [
        // aws-lc-rs's own order, AES-256-GCM first.
        (false, None, S::TLS13_AES_128_GCM_SHA256),
        (true, None, S::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256),
        // Clients that offer one suite only.
        (
            false,
            Some(suites::TLS13_AES_256_GCM_SHA384),
            S::TLS13_AES_256_GCM_SHA384,
        ),
        (
            false,
            Some(suites::TLS13_CHACHA20_POLY1305_SHA256),
            S::TLS13_CHACHA20_POLY1305_SHA256,
        ),
        (
            true,
            Some(suites::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384),
            S::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        ),
    ];
    for (tls12, only, expected) in cases {
        let mut provider = estd::tls::provider().as_ref().clone();
        if let Some(only) = only {
            provider.cipher_suites = vec![only];
        }
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ts.root_der().into()).expect("root");
        let version = if tls12 {
            &rustls::version::TLS12
        } else {
            &rustls::version::TLS13
        };
        let config = ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(&[version])
            .expect("versions")
            .with_root_certificates(roots)
            .with_client_auth_cert(idm.chain.clone(), idm.key.clone_key())
            .expect("client cert");
        let (_, tls) = handshake(&ts, &Arc::new(config)).await;
        let suite = tls.get_ref().1.negotiated_cipher_suite().map(|s| s.suite());
        assert_eq!(suite, Some(expected), "TLS 1.2: {tls12}, only {only:?}");
        let mut c = Client::over(tls).await;
        issued_cert(&c.enroll(ENROLL, &demo_csr("suites").1).await);
    }
    ts.shutdown().await;
}
