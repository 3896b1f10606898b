//! One connection's context, shared by the requests made over it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use rustls::pki_types::CertificateDer;

use crate::auth::{CertRejection, ClientCert, ClientTrust};
use crate::tls::ChannelBinding;

/// One connection (TLS or plain), shared by the requests made over it.
pub struct Connection {
    /// The peer's address.
    pub remote: SocketAddr,
    /// Negotiated TLS version.
    pub tls_version: Option<rustls::ProtocolVersion>,
    peer_chain: Option<Vec<CertificateDer<'static>>>,
    verified: OnceLock<Result<ClientCert, CertRejection>>,
    fingerprint: Option<[u8; 32]>,
    channel_binding: ChannelBinding,
    /// An answer went out with its request's body unread.
    body_left_unread: AtomicBool,
}

impl Connection {
    /// A plain-HTTP connection: no certificates, no channel binding.
    pub fn plain(remote: SocketAddr) -> Connection {
        Connection {
            remote,
            tls_version: None,
            peer_chain: None,
            verified: OnceLock::new(),
            fingerprint: None,
            channel_binding: ChannelBinding::Unavailable,
            body_left_unread: AtomicBool::new(false),
        }
    }

    /// A TLS connection, read once right after its handshake: the session
    /// moves into hyper afterwards, out of the handlers' reach.
    pub fn tls(remote: SocketAddr, session: &rustls::ServerConnection) -> Connection {
        let peer_chain: Option<Vec<CertificateDer<'static>>> = session
            .peer_certificates()
            .map(|c| c.iter().map(|c| c.clone().into_owned()).collect());
        // Once per connection: the rate-limit key of every request on it.
        let fingerprint = peer_chain.as_ref().and_then(|c| c.first()).map(|ee| {
            let mut fp = [0u8; 32];
            fp.copy_from_slice(
                aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, ee.as_ref()).as_ref(),
            );
            fp
        });
        Connection {
            remote,
            tls_version: session.protocol_version(),
            peer_chain,
            verified: OnceLock::new(),
            fingerprint,
            channel_binding: ChannelBinding::of(session),
            body_left_unread: AtomicBool::new(false),
        }
    }

    /// The client certificate's verdict, computed once per connection; `None`
    /// if the client sent no certificate.
    pub fn client_cert(&self, trust: &ClientTrust) -> Option<&Result<ClientCert, CertRejection>> {
        let chain = self.peer_chain.as_ref()?;
        Some(self.verified.get_or_init(|| match &self.fingerprint {
            Some(ee_sha256) => trust.verify_keyed(chain, ee_sha256),
            None => trust.verify(chain),
        }))
    }

    /// SHA-256 of the client certificate's DER, if the client sent one.
    pub fn cert_fingerprint(&self) -> Option<&[u8; 32]> {
        self.fingerprint.as_ref()
    }

    /// Notes that an answer was sent with its request's body unread: the
    /// connection then closes, and must read the rest away before it does
    /// (see `server::connection`).
    pub fn leave_body_unread(&self) {
        self.body_left_unread.store(true, Ordering::Relaxed);
    }

    /// Whether an answer went out with its request's body unread.
    pub fn body_left_unread(&self) -> bool {
        self.body_left_unread.load(Ordering::Relaxed)
    }

    /// The connection's TLS channel binding, read once after the handshake,
    /// for proof-of-possession linking (RFC 7030 3.5).
    pub fn channel_binding(&self) -> &ChannelBinding {
        &self.channel_binding
    }
}
