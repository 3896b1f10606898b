//! rustls server configuration. Client certificates are requested but not
//! required, and their chains are judged per request by [`crate::auth`], so a
//! bad certificate is answered with an HTTP status and a reason instead of a
//! bare TLS alert. The handshake still proves possession of the client's key.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme};

use arc_swap::ArcSwap;

use crate::config::TlsMinVersion;

/// Exporter label of the RFC 9266 `tls-exporter` channel binding.
pub const TLS_EXPORTER_LABEL: &[u8] = b"EXPORTER-Channel-Binding";
/// Length of the `tls-exporter` value, bytes (RFC 9266 section 2).
pub const TLS_EXPORTER_LEN: usize = 32;

/// The channel binding of one connection, for proof-of-possession linking
/// (RFC 7030 3.5). Read once after the handshake; the EST handlers compare a
/// CSR's challengePassword against it.
#[derive(Clone, PartialEq, Eq)]
pub enum ChannelBinding {
    /// TLS 1.3: RFC 9266 `tls-exporter`, 32 bytes exported with the label
    /// `EXPORTER-Channel-Binding` and an empty context.
    TlsExporter([u8; TLS_EXPORTER_LEN]),
    /// TLS 1.2. RFC 7030 names `tls-unique` (the first Finished message), which
    /// rustls does not expose (rustls/rustls#995). RFC 9266 allows its exporter
    /// under TLS 1.2 only with Extended Master Secret, and rustls 0.23 does not
    /// report per connection whether that was negotiated; so no binding is
    /// checked on TLS 1.2 and linking profiles refuse such connections.
    Tls12,
    /// No TLS (plain HTTP), or the exporter failed.
    Unavailable,
}

impl ChannelBinding {
    /// The binding of a connection whose handshake is complete.
    pub fn of(conn: &rustls::ServerConnection) -> ChannelBinding {
        match conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => match conn.export_keying_material(
                [0u8; TLS_EXPORTER_LEN],
                TLS_EXPORTER_LABEL,
                Some(b""),
            ) {
                Ok(v) => ChannelBinding::TlsExporter(v),
                Err(e) => {
                    tracing::warn!(error = %e, "exporting the TLS channel binding failed");
                    ChannelBinding::Unavailable
                }
            },
            Some(rustls::ProtocolVersion::TLSv1_2) => ChannelBinding::Tls12,
            _ => ChannelBinding::Unavailable,
        }
    }
}

impl std::fmt::Debug for ChannelBinding {
    // The value is per-connection key material: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChannelBinding::TlsExporter(_) => f.write_str("TlsExporter(<redacted>)"),
            ChannelBinding::Tls12 => f.write_str("Tls12"),
            ChannelBinding::Unavailable => f.write_str("Unavailable"),
        }
    }
}

/// The one crypto provider used by rustls and the CA (aws-lc-rs).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The provider of estd's TLS listeners: aws-lc-rs with its suites in the
/// order estd chooses, which overrules the client's (see `server_config`).
/// AES-128-GCM with SHA-256 comes first, in TLS 1.3 and 1.2: the suite every
/// TLS 1.3 implementation must offer (RFC 8446, 9.1), whose key schedule
/// hashes with SHA-256 (in hardware on CPUs with SHA extensions) rather than
/// SHA-384; a resumed handshake spent about a tenth of its CPU in SHA-384.
fn server_provider() -> CryptoProvider {
    use rustls::CipherSuite as S;
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    let rank = |suite: S| match suite {
        S::TLS13_AES_128_GCM_SHA256 => 0,
        S::TLS13_AES_256_GCM_SHA384 => 1,
        S::TLS13_CHACHA20_POLY1305_SHA256 => 2,
        S::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 | S::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => 3,
        _ => 4,
    };
    // A stable sort: suites of one rank keep aws-lc-rs's order.
    provider.cipher_suites.sort_by_key(|s| rank(s.suite()));
    provider
}

#[derive(Debug)]
struct DeferredClientAuth {
    hints: Vec<DistinguishedName>,
    algs: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for DeferredClientAuth {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // Chain, validity and revocation are checked per request (auth::ClientTrust).
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// The certificate and key estd presents, swapped whole when it renews
/// or its files change; a handshake takes whichever is current.
#[derive(Debug)]
struct CurrentIdentity(ArcSwap<Presented>);

/// One identity, and the digest of the operator's files it was read from
/// (`None`: estd issued it).
#[derive(Debug)]
struct Presented {
    key: Arc<CertifiedKey>,
    loaded_from: Option<[u8; 32]>,
}

impl ResolvesServerCert for CurrentIdentity {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load().key.clone())
    }
}

/// A certificate chain (the server's first) and its key, checked to match.
pub fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<CertifiedKey, rustls::Error> {
    if chain.is_empty() {
        return Err(rustls::Error::General("no certificate in the chain".into()));
    }
    CertifiedKey::from_der(chain, key, &provider())
}

/// The TLS settings of both TLS listeners, changed live: estd's identity
/// (renewal, new files) and the client-certificate hints and oldest version
/// (a reload). Each accept takes the config current then, so a connection
/// keeps the settings it was opened with. The session cache and ticket keys
/// outlive every change, so clients resume across one.
pub struct LiveTls {
    identity: Arc<CurrentIdentity>,
    config: ArcSwap<ServerConfig>,
    sessions: Arc<dyn rustls::server::StoresServerSessions>,
    ticketer: Arc<dyn rustls::server::ProducesTickets>,
}

impl LiveTls {
    /// Settings with `identity` (read from files with digest `loaded_from`,
    /// if so), client-certificate `hints` and `min_version`.
    pub fn new(
        identity: CertifiedKey,
        loaded_from: Option<[u8; 32]>,
        hints: Vec<DistinguishedName>,
        min_version: TlsMinVersion,
    ) -> Result<LiveTls, rustls::Error> {
        let identity = Arc::new(CurrentIdentity(ArcSwap::from_pointee(Presented {
            key: Arc::new(identity),
            loaded_from,
        })));
        // Resumption for clients that reconnect: a session cache (TLS 1.2) and tickets.
        let sessions: Arc<dyn rustls::server::StoresServerSessions> =
            rustls::server::ServerSessionMemoryCache::new(16 * 1024);
        let ticketer = rustls::crypto::aws_lc_rs::Ticketer::new()?;
        let config = server_config(&identity, &sessions, &ticketer, hints, min_version)?;
        Ok(LiveTls {
            identity,
            config: ArcSwap::new(config),
            sessions,
            ticketer,
        })
    }

    /// The acceptor for one new connection.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.config.load_full())
    }

    /// The certificate chain presented now, the server's first.
    pub fn chain(&self) -> Vec<CertificateDer<'static>> {
        self.identity.0.load().key.cert.clone()
    }

    /// The digest of the files the identity in force was read from; `None`
    /// when estd issued it.
    pub fn loaded_from(&self) -> Option<[u8; 32]> {
        self.identity.0.load().loaded_from
    }

    /// Presents `identity` (read from files with digest `loaded_from`, if
    /// so) from the next handshake on.
    pub fn set_identity(&self, identity: CertifiedKey, loaded_from: Option<[u8; 32]>) {
        self.identity.0.store(Arc::new(Presented {
            key: Arc::new(identity),
            loaded_from,
        }));
    }

    /// New client-certificate hints and oldest version, from the next
    /// handshake on.
    pub fn set_client_settings(
        &self,
        hints: Vec<DistinguishedName>,
        min_version: TlsMinVersion,
    ) -> Result<(), rustls::Error> {
        let config = server_config(
            &self.identity,
            &self.sessions,
            &self.ticketer,
            hints,
            min_version,
        )?;
        self.config.store(config);
        Ok(())
    }
}

/// Most TLS 1.3 tickets sent after a handshake to a client that asks (RFC 9149).
const MAX_TLS13_TICKETS: usize = 4;

fn server_config(
    identity: &Arc<CurrentIdentity>,
    sessions: &Arc<dyn rustls::server::StoresServerSessions>,
    ticketer: &Arc<dyn rustls::server::ProducesTickets>,
    hints: Vec<DistinguishedName>,
    min_version: TlsMinVersion,
) -> Result<Arc<ServerConfig>, rustls::Error> {
    let provider = Arc::new(server_provider());
    let verifier = Arc::new(DeferredClientAuth {
        hints,
        algs: provider.signature_verification_algorithms,
    });
    let versions: &[&'static rustls::SupportedProtocolVersion] = match min_version {
        TlsMinVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsMinVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(identity.clone());
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.ignore_client_order = true;
    config.session_storage = sessions.clone();
    config.ticketer = ticketer.clone();
    // TLS 1.3 tickets are single-use. Two after each handshake (rustls's
    // default) keep a pool of connections sharing one session cache
    // resuming; a client may ask for fewer or more (RFC 9149).
    config.max_tls13_tickets = MAX_TLS13_TICKETS;
    Ok(Arc::new(config))
}
