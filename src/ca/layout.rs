//! The certificate folder (`certs/`): the names of the files in it.

/// Root CA certificate: the trust anchor clients pin.
pub const ROOT_CERT: &str = "root-ca.pem";
/// Root CA key.
pub const ROOT_KEY: &str = "root-ca.key";
/// Issuing CA certificate.
pub const ISSUING_CERT: &str = "issuing-ca.pem";
/// Issuing CA key.
pub const ISSUING_KEY: &str = "issuing-ca.key";
/// Issuing CA then root.
pub const CHAIN: &str = "ca-chain.pem";
/// TLS server certificate and its chain.
pub const TLS_CERT: &str = "tls-server.pem";
/// TLS server key.
pub const TLS_KEY: &str = "tls-server.key";
/// Demo IdM system certificate.
pub const DEMO_CERT: &str = "demo-idm.pem";
/// Demo IdM system key.
pub const DEMO_KEY: &str = "demo-idm.key";
/// Delegated OCSP responder certificate.
pub const OCSP_CERT: &str = "ocsp-signer.pem";
/// Delegated OCSP responder key.
pub const OCSP_KEY: &str = "ocsp-signer.key";
