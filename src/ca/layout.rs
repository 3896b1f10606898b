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
/// A later generation's folder inside the certificate folder: `ca-2`, `ca-3`, ...
/// It holds the same files as the certificate folder's own CA.
pub const GENERATION_PREFIX: &str = "ca-";
/// In a generation's folder: when it starts to issue (RFC 3339, UTC).
pub const SWITCH_AT: &str = "switch-at";
/// In a generation's folder: its key's label in the PKCS#11 token of
/// `[ca.key] pkcs11` (instead of an issuing key file).
pub const TOKEN_KEY_LABEL: &str = "token-key-label";
/// In a generation's folder whose root is new: NewWithOld then OldWithNew
/// (RFC 7030 §4.1.3).
pub const ROOT_ROLLOVER: &str = "root-rollover.pem";
