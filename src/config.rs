//! Configuration: the embedded `config/estd.toml`, with an optional file merged over it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use const_oid::ObjectIdentifier;
use serde::Deserialize;

/// The embedded default configuration (the commented `config/estd.toml`).
pub const DEFAULT_TOML: &str = include_str!("../config/estd.toml");

/// The CRL's path on the public listener when `ca.crl_url` is not set.
pub const DEFAULT_CRL_PATH: &str = "/crl/issuing-ca.crl";
/// The OCSP responder's path when `ca.ocsp_url` is not set.
pub const DEFAULT_OCSP_PATH: &str = "/ocsp";
/// The issuing CA certificate's path when `ca.ca_issuers_url` is not set.
pub const DEFAULT_CA_ISSUERS_PATH: &str = "/ca/issuing-ca.crt";

/// The path part of a URL such as `http://host:port/path`.
pub fn url_path(url: &str) -> &str {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    rest.find('/').map(|i| &rest[i..]).unwrap_or("/")
}

/// `http://host[:port]` of the public listener bound to `ip` and `port`: the
/// address itself when it is one, `public_host` for a wildcard.
fn public_base(ip: std::net::IpAddr, public_host: &str, port: u16) -> String {
    let host = if ip.is_unspecified() {
        if public_host.contains(':') && !public_host.starts_with('[') {
            format!("[{public_host}]")
        } else {
            public_host.to_owned()
        }
    } else {
        match ip {
            std::net::IpAddr::V4(v4) => v4.to_string(),
            std::net::IpAddr::V6(v6) => format!("[{v6}]"),
        }
    };
    if port == 80 {
        format!("http://{host}")
    } else {
        format!("http://{host}:{port}")
    }
}

/// Errors while loading configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The override file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file is not valid TOML or has a wrong setting.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Listeners and connection limits.
    pub server: ServerConfig,
    /// Where material and data live.
    pub paths: PathsConfig,
    /// The embedded database.
    pub store: StoreConfig,
    /// The certificate authority.
    pub ca: CaConfig,
    /// TLS settings.
    pub tls: TlsConfig,
    /// The demo organisation created on first start.
    pub demo: DemoConfig,
    /// CRL and OCSP.
    pub revocation: RevocationConfig,
    /// Orders and one-time codes.
    pub orders: OrdersConfig,
    /// Admin API tokens.
    pub admin_tokens: AdminTokensConfig,
    /// Notification delivery.
    pub smtp: SmtpConfig,
    /// What notices say: links and languages.
    pub notices: NoticesConfig,
    /// E-mail validation before issuance.
    pub email_validation: EmailValidationConfig,
    /// People: invitations, login, sessions, terms.
    pub people: PeopleConfig,
    /// Logging.
    pub log: LogConfig,
    /// Request rate limits on the EST listener.
    pub rate_limit: RateLimitConfig,
    /// The certificate policy OID of each kind of certificate.
    pub certificate_policies: CertificatePoliciesConfig,
}

/// `[certificate_policies]`: the one certificatePolicies OID each certificate
/// carries, by what it is for, so that relying parties can tell a seal from
/// an organisation certificate, and both from system and user certificates.
///
/// The shipped defaults are RFC 7229's test policies (id-TEST-certPolicyOne
/// to Four, 1.3.6.1.5.5.7.13.1 to .4): OIDs that exist for testing and
/// assert nothing, so that no certificate claims a real policy by accident.
/// Operators set their certificate policy's own OIDs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificatePoliciesConfig {
    /// System certificates.
    #[serde(deserialize_with = "dotted_oid")]
    pub system: ObjectIdentifier,
    /// Organisation certificates without seal.
    #[serde(deserialize_with = "dotted_oid")]
    pub organisation: ObjectIdentifier,
    /// User certificates.
    #[serde(deserialize_with = "dotted_oid")]
    pub user: ObjectIdentifier,
    /// Organisation certificates with seal.
    #[serde(deserialize_with = "dotted_oid")]
    pub seal: ObjectIdentifier,
}

/// anyPolicy (RFC 5280 4.2.1.4): meaningful in CA certificates only.
const ANY_POLICY: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.32.0");

/// An OID written in dotted decimal, e.g. "1.2.208.169.1.1.1".
fn dotted_oid<'de, D: serde::Deserializer<'de>>(d: D) -> Result<ObjectIdentifier, D::Error> {
    let text = String::deserialize(d)?;
    // const-oid reads some malformed text leniently ("1..2" as 1.0.2), so
    // only an OID that prints back as written is the one the operator meant.
    ObjectIdentifier::new(&text)
        .ok()
        .filter(|oid| oid.to_string() == text)
        .ok_or_else(|| {
            serde::de::Error::custom(format!(
                "{text:?} is not an object identifier in dotted decimal (e.g. \"1.2.208.169.1.1.1\")"
            ))
        })
}

impl CertificatePoliciesConfig {
    /// Refuses anyPolicy and a policy shared by two kinds (the policy is
    /// how a relying party tells the kinds apart).
    fn validate(&self) -> Result<(), ConfigError> {
        let named = [
            ("system", self.system),
            ("organisation", self.organisation),
            ("user", self.user),
            ("seal", self.seal),
        ];
        for (i, (name, oid)) in named.iter().enumerate() {
            if *oid == ANY_POLICY {
                return Err(ConfigError::Invalid(format!(
                    "certificate_policies.{name}: anyPolicy (2.5.29.32.0) is for CA certificates; \
                     name your certificate policy's OID"
                )));
            }
            if let Some((other, _)) = named[..i].iter().find(|(_, o)| o == oid) {
                return Err(ConfigError::Invalid(format!(
                    "certificate_policies.{name} and certificate_policies.{other} are both {oid}; \
                     each kind needs its own policy OID"
                )));
            }
        }
        Ok(())
    }
}

/// `[rate_limit]`: token buckets on the EST listener, one set per kind of key.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Seconds between sweeps that forget keys whose bucket is full again.
    pub evict_interval_secs: u64,
    /// Per client certificate (SHA-256 of its DER).
    pub client: BucketConfig,
    /// Per reference number (one-time-code collection with HTTP Basic).
    pub reference: BucketConfig,
    /// Per IP address, for requests without a trusted client certificate.
    pub ip: BucketConfig,
    /// Per EST label (all callers together), the default label being one.
    pub label: BucketConfig,
    /// Per IP address on the plain-HTTP listener (CRL and OCSP).
    pub public: BucketConfig,
}

/// One token bucket: `burst` requests at once, refilled at `per_second`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketConfig {
    /// `false` switches this kind of limit off.
    pub enabled: bool,
    /// Sustained requests per second (may be below 1, e.g. 0.1 = one per 10 s).
    pub per_second: f64,
    /// Requests allowed at once on a full bucket.
    pub burst: u32,
}

/// `[revocation]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevocationConfig {
    /// Plain-HTTP listener for the CRL and OCSP (relying parties fetch them without TLS).
    pub http_listen: SocketAddr,
    /// Hours from a CRL's thisUpdate to its nextUpdate.
    pub crl_next_update_hours: u64,
    /// Minutes after which the CRL is signed again even if nothing changed.
    pub crl_refresh_minutes: u64,
    /// Seconds from an OCSP response's thisUpdate to its nextUpdate.
    pub ocsp_validity_secs: u64,
    /// Most pre-signed OCSP responses kept in memory.
    pub ocsp_cache_entries: usize,
    /// OCSP requests answered (looked up and signed) at once, at most.
    pub ocsp_signing_concurrency: usize,
}

/// `[orders]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrdersConfig {
    /// Days a one-time code stays valid.
    pub code_ttl_days: u32,
    /// Retry-After for held enrolments, seconds.
    pub approval_retry_after_secs: u32,
    /// Days before expiry that a notice is written.
    pub expiry_notice_days: u32,
}

/// `[admin_tokens]`: lifetimes of admin API tokens, in days.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminTokensConfig {
    /// Lifetime of a token whose creation names none.
    pub default_days: u32,
    /// The longest lifetime a token may be given.
    pub max_days: u32,
    /// Lifetime of the operator token written to `certs/admin-token`.
    pub operator_token_days: u32,
}

impl Default for AdminTokensConfig {
    /// The shipped settings (`config/estd.toml`).
    fn default() -> Self {
        AdminTokensConfig {
            default_days: 90,
            max_days: 730,
            operator_token_days: 365,
        }
    }
}

/// `[smtp]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    /// Deliver by SMTP.
    pub enabled: bool,
    /// Relay host.
    pub host: String,
    /// Relay port.
    pub port: u16,
    /// Sender.
    pub from: String,
    /// Seconds between delivery rounds.
    pub interval_secs: u64,
}

/// `[notices]`: the texts of notices (the sender is `smtp.from`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoticesConfig {
    /// Where the links in notices point: `http(s)://host[:port][/path]`,
    /// without query or fragment. Collection links are
    /// `<base_url>/collect?ref=<reference number>`. Empty (the default):
    /// the public listener, as for the CRL and OCSP URLs
    /// ([`Config::resolve_public_urls`]), which serves `/validate-email`.
    #[serde(default)]
    pub base_url: String,
    /// `"da"`, `"en"` or `"da+en"` (Danish first, then English).
    pub language: crate::model::NoticeLanguages,
}

impl NoticesConfig {
    /// `base_url` joined with `path_and_query` (which starts with `/`).
    pub fn link(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.base_url.trim_end_matches('/'))
    }

    /// The link where the order `reference` is collected (never with its code).
    pub fn collect_link(&self, reference: &str) -> String {
        self.link(&format!("/collect?ref={reference}"))
    }
}

/// `[email_validation]`: an organisation or system certificate carrying an
/// e-mail address is issued only once the address was confirmed.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailValidationConfig {
    /// `false` issues without confirmation (as before the check existed).
    pub enabled: bool,
    /// Hours a confirmation link works.
    pub link_ttl_hours: u32,
    /// Days a confirmation lasts: within them the address is not validated again.
    pub valid_for_days: u32,
}

impl EmailValidationConfig {
    /// `link_ttl_hours` in seconds.
    pub fn link_ttl_secs(&self) -> u64 {
        u64::from(self.link_ttl_hours) * 3600
    }

    /// `valid_for_days` in seconds.
    pub fn valid_for_secs(&self) -> u64 {
        u64::from(self.valid_for_days) * 86_400
    }
}

/// `[people]`: how people are invited and log in, and the terms a user
/// accepts before a certificate is issued in the browser.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeopleConfig {
    /// Where people log in, activate and collect: `https://host[:port]`.
    /// Empty (the default): the admin listener, which serves the login API
    /// (`server.public_host` standing in for a wildcard address).
    #[serde(default)]
    pub portal_url: String,
    /// Hours an invitation's activation link works.
    pub invitation_ttl_hours: u32,
    /// Wrong logins in a row that lock an account.
    pub max_failed_logins: u32,
    /// Seconds a locked account stays locked.
    pub lockout_secs: u64,
    /// Seconds without a request after which a session ends.
    pub session_idle_secs: u64,
    /// Seconds after login at which a session ends, however busy.
    pub session_absolute_secs: u64,
    /// The issuer name authenticator apps show beside the account.
    pub totp_issuer: String,
    /// The terms of use a user accepts before browser issuance.
    pub terms_text: String,
    /// Their version: the acceptance names it, and a new version must be
    /// accepted anew.
    pub terms_version: String,
}

impl PeopleConfig {
    /// `portal_url` joined with `path_and_query` (which starts with `/`).
    pub fn portal_link(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.portal_url.trim_end_matches('/'))
    }

    /// `invitation_ttl_hours` in seconds.
    pub fn invitation_ttl_secs(&self) -> u64 {
        u64::from(self.invitation_ttl_hours) * 3600
    }

    fn check(&self) -> Result<(), String> {
        if !self.portal_url.is_empty() {
            if let Some(problem) = base_url_problem(&self.portal_url) {
                return Err(format!("[people] portal_url {problem}"));
            }
        }
        if self.max_failed_logins == 0 {
            return Err("[people] max_failed_logins must be at least 1".into());
        }
        if self.session_idle_secs == 0 || self.session_absolute_secs < self.session_idle_secs {
            return Err(
                "[people] session_idle_secs must be positive and at most session_absolute_secs"
                    .into(),
            );
        }
        if self.terms_version.trim().is_empty() || self.terms_version.len() > 64 {
            return Err("[people] terms_version must be 1 to 64 characters".into());
        }
        if self.totp_issuer.is_empty() || self.totp_issuer.contains(':') {
            return Err("[people] totp_issuer must be non-empty and without ':'".into());
        }
        Ok(())
    }
}

/// Whether `url` is a usable base for links: `http://` or `https://`, a
/// host, no query, fragment, user information, spaces or control characters.
fn base_url_problem(url: &str) -> Option<&'static str> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    let Some(rest) = rest else {
        return Some("must start with https:// or http://");
    };
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() || host.starts_with(':') {
        return Some("must name a host");
    }
    if url.len() > 512 {
        return Some("must be at most 512 characters");
    }
    if url.chars().any(|c| {
        c.is_whitespace() || c.is_control() || matches!(c, '?' | '#' | '@' | '"' | '<' | '>')
    }) {
        return Some("must have no query, fragment, user information, quotes or spaces");
    }
    None
}

/// `[server]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// EST listener address.
    pub est_listen: SocketAddr,
    /// Admin listener address.
    pub admin_listen: SocketAddr,
    /// Host name shown in the printed EST URL, and the host of the derived
    /// CRL, OCSP and caIssuers URLs when `[revocation] http_listen` is a
    /// wildcard address.
    pub public_host: String,
    /// Connections served at once per listener.
    pub max_connections: usize,
    /// Connections one source address (an IPv6 /64) may hold at once per listener.
    pub max_connections_per_source: usize,
    /// Seconds a new connection may stay silent before its first byte.
    pub first_byte_timeout_secs: u64,
    /// TLS handshake timeout, seconds.
    pub handshake_timeout_secs: u64,
    /// Request head timeout, seconds (also the time allowed before the first request).
    pub header_read_timeout_secs: u64,
    /// Idle keep-alive timeout between requests, seconds.
    pub idle_timeout_secs: u64,
    /// Request body timeout, seconds.
    pub body_read_timeout_secs: u64,
    /// Grace period on shutdown, seconds.
    pub shutdown_grace_secs: u64,
    /// Largest request body, bytes.
    pub max_body_bytes: usize,
    /// Largest request head, bytes.
    pub max_header_bytes: usize,
}

impl ServerConfig {
    /// Wait for a new connection's first byte.
    pub fn first_byte_timeout(&self) -> Duration {
        Duration::from_secs(self.first_byte_timeout_secs)
    }
    /// TLS handshake timeout.
    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_secs(self.handshake_timeout_secs)
    }
    /// Request head timeout.
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_secs(self.header_read_timeout_secs)
    }
    /// Idle keep-alive timeout.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs)
    }
    /// Request body timeout.
    pub fn body_read_timeout(&self) -> Duration {
        Duration::from_secs(self.body_read_timeout_secs)
    }
    /// Shutdown grace period.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }
}

/// `[paths]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathsConfig {
    /// Generated material.
    pub certs_dir: PathBuf,
    /// The store (the embedded engine's files).
    pub data_dir: PathBuf,
}

/// `[store]`: where estd keeps its records.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// The engine: the embedded sled (files under `paths.data_dir`), or a
    /// PostgreSQL database shared by several nodes.
    #[serde(default)]
    pub engine: StoreEngine,
    /// PostgreSQL: the connection URL (`postgres://user:pw@host:port/db`).
    /// Read from the environment variable `ESTD_STORE_URL` when that is set,
    /// so that a password need not sit in a file.
    #[serde(default)]
    pub url: Option<String>,
    /// PostgreSQL: connections in the pool.
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// The embedded engine's page cache, in MiB.
    pub cache_mb: u64,
    /// Days an audit record is kept; older ones are pruned in the background
    /// (0 keeps them for ever).
    pub audit_retention_days: u32,
}

/// `[store] engine`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreEngine {
    /// sled, embedded: no setup, one node.
    #[default]
    Sled,
    /// PostgreSQL: one database shared by every node.
    Postgres,
}

fn default_pool_size() -> usize {
    16
}

/// Key algorithm of a CA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CaKeyAlgorithm {
    /// ECDSA P-256 with SHA-256.
    P256,
    /// ECDSA P-384 with SHA-384.
    P384,
    /// RSA 2048 with SHA-256 (PKCS#1 v1.5).
    Rsa2048,
}

/// `[ca]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaConfig {
    /// Key algorithm of a newly created CA.
    pub key_algorithm: CaKeyAlgorithm,
    /// Root CA common name.
    pub root_common_name: String,
    /// Issuing CA common name.
    pub issuing_common_name: String,
    /// CRL distribution point URL put into certificates. Empty (the
    /// default): `/crl/issuing-ca.crl` on the public listener, see
    /// [`Config::resolve_public_urls`].
    #[serde(default)]
    pub crl_url: String,
    /// OCSP URL put into certificates. Empty: `/ocsp` on the public listener.
    #[serde(default)]
    pub ocsp_url: String,
    /// AIA caIssuers URL put into certificates, where the issuing CA
    /// certificate is served (DER). Empty: `/ca/issuing-ca.crt` on the
    /// public listener.
    #[serde(default)]
    pub ca_issuers_url: String,
    /// Name of an environment variable holding the passphrase of the encrypted CA keys.
    #[serde(default)]
    pub key_passphrase_env: Option<String>,
    /// A file (mode 0600) holding the passphrase of the encrypted CA keys.
    #[serde(default)]
    pub key_passphrase_file: Option<PathBuf>,
    /// `[ca.key]`: where the issuing CA's key lives when it is not the
    /// `certs/issuing-ca.key` file.
    #[serde(default)]
    pub key: CaKeyConfig,
}

/// `[ca.key]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaKeyConfig {
    /// The issuing key in a PKCS#11 token.
    #[serde(default)]
    pub pkcs11: Option<Pkcs11KeyConfig>,
}

/// `[ca.key] pkcs11 = { module, token_label, key_label, pin_env | pin_file }`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pkcs11KeyConfig {
    /// The PKCS#11 module (shared library), e.g. /usr/lib/softhsm/libsofthsm2.so.
    pub module: PathBuf,
    /// The label of the token holding the key.
    pub token_label: String,
    /// The label (CKA_LABEL) of the key pair.
    pub key_label: String,
    /// Name of an environment variable holding the user PIN.
    #[serde(default)]
    pub pin_env: Option<String>,
    /// A file (mode 0600) holding the user PIN.
    #[serde(default)]
    pub pin_file: Option<PathBuf>,
    /// Logged-in sessions kept open for signing (0: twice the number of cores).
    #[serde(default)]
    pub sessions: usize,
}

/// Oldest TLS version offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum TlsMinVersion {
    /// TLS 1.2 and 1.3.
    #[serde(rename = "1.2")]
    Tls12,
    /// TLS 1.3 only.
    #[serde(rename = "1.3")]
    Tls13,
}

/// `[tls]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Oldest TLS version.
    pub min_version: TlsMinVersion,
    /// Foreign CAs whose client certificates are accepted, each bound to an organisation.
    #[serde(default)]
    pub client_anchors: Vec<ClientAnchorConfig>,
    /// The names clients use to reach estd (DNS names and IP addresses):
    /// the subjectAltNames of estd's own TLS certificate.
    pub server_names: Vec<String>,
    /// Days estd's own TLS certificate is valid.
    pub certificate_days: u32,
    /// estd issues itself a new TLS certificate when fewer days than this remain.
    pub renew_before_days: u32,
    /// A certificate chain (PEM, the server's first) from another CA, used
    /// instead of one estd issues itself; reloaded when the file changes.
    #[serde(default)]
    pub certificate: Option<PathBuf>,
    /// The private key (PEM) of `certificate`.
    #[serde(default)]
    pub key: Option<PathBuf>,
    /// How often estd looks whether its TLS certificate is due for renewal
    /// or its files changed, seconds.
    pub check_interval_secs: u64,
}

/// One name in `[tls] server_names`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServerName {
    /// A DNS name, lower case.
    Dns(String),
    /// An IP address.
    Ip(std::net::IpAddr),
}

impl ServerName {
    /// Reads one configured name: an IP address, else a DNS name.
    pub fn parse(text: &str) -> Result<ServerName, String> {
        if let Ok(ip) = text.parse::<std::net::IpAddr>() {
            return Ok(ServerName::Ip(ip));
        }
        match rustls::pki_types::DnsName::try_from(text) {
            Ok(_) if !text.is_empty() && text.len() <= 253 => {
                Ok(ServerName::Dns(text.to_ascii_lowercase()))
            }
            _ => Err(format!(
                "tls.server_names: {text:?} is neither a DNS name nor an IP address"
            )),
        }
    }
}

impl std::fmt::Display for ServerName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServerName::Dns(d) => f.write_str(d),
            ServerName::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

impl TlsConfig {
    /// The configured server names, read.
    pub fn names(&self) -> Result<Vec<ServerName>, String> {
        let mut names = self
            .server_names
            .iter()
            .map(|n| ServerName::parse(n))
            .collect::<Result<Vec<_>, _>>()?;
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// Where estd's TLS identity comes from.
    pub fn identity_source(&self) -> Result<TlsIdentitySource, String> {
        match (&self.certificate, &self.key) {
            (Some(certificate), Some(key)) => Ok(TlsIdentitySource::Files {
                certificate: certificate.clone(),
                key: key.clone(),
            }),
            (None, None) => Ok(TlsIdentitySource::OwnCa),
            _ => Err("tls.certificate and tls.key are set together, or neither".into()),
        }
    }

    fn check(&self) -> Result<(), String> {
        self.identity_source()?;
        let names = self.names()?;
        if names.is_empty() {
            return Err("tls.server_names names at least one DNS name or IP address".into());
        }
        if self.certificate_days == 0 || self.renew_before_days >= self.certificate_days {
            return Err(format!(
                "tls.renew_before_days ({}) must be less than tls.certificate_days ({}), and certificate_days at least 1",
                self.renew_before_days, self.certificate_days
            ));
        }
        if self.check_interval_secs == 0 {
            return Err("tls.check_interval_secs is at least 1".into());
        }
        Ok(())
    }
}

/// Where estd's own TLS certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsIdentitySource {
    /// estd issues it from its own CA, for `server_names`, and renews it.
    OwnCa,
    /// Files from another CA, which the operator renews.
    Files {
        /// The chain, PEM.
        certificate: PathBuf,
        /// The key, PEM.
        key: PathBuf,
    },
}

/// One foreign client-certificate trust anchor.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientAnchorConfig {
    /// PEM file with the anchor certificate.
    pub certificate: PathBuf,
    /// The organisation its certificates act for.
    pub cvr: String,
    /// System rights granted, e.g. `["est-enroll"]`.
    pub rights: Vec<String>,
}

/// `[demo]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoConfig {
    /// Create the demo data on first start.
    pub enabled: bool,
    /// Demo organisation CVR.
    pub cvr: String,
    /// Demo organisation name.
    pub organisation_name: String,
    /// Demo profile name.
    pub profile_name: String,
    /// Demo profile EST label.
    pub est_label: String,
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// tracing filter.
    pub filter: String,
    /// How each line is written.
    #[serde(default)]
    pub format: LogFormat,
}

/// `[log] format`: lines for people, or one JSON object per line for a log
/// collector, with the same fields.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// `2026-12-04T15:00:00Z  INFO request{listener=est ...}: request status=200`.
    #[default]
    Text,
    /// `{"timestamp":…,"level":"INFO","fields":{…},"span":{…},"spans":[…]}`.
    Json,
}

impl Config {
    /// The embedded default.
    pub fn embedded() -> Result<Config, ConfigError> {
        Self::from_toml_layers(&[DEFAULT_TOML])
    }

    /// The embedded default with `path` merged over it, and the store URL
    /// from `ESTD_STORE_URL` if that is set.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let text = match path {
            None => String::new(),
            Some(p) => std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                path: p.to_path_buf(),
                source,
            })?,
        };
        let from_env = match std::env::var("ESTD_STORE_URL") {
            Ok(url) if !url.is_empty() => {
                let mut store = toml::Table::new();
                store.insert("url".into(), toml::Value::String(url));
                let mut layer = toml::Table::new();
                layer.insert("store".into(), toml::Value::Table(store));
                layer.to_string()
            }
            _ => String::new(),
        };
        Self::from_toml_layers(&[DEFAULT_TOML, &text, &from_env])
    }

    /// Merges TOML documents, later over earlier, and deserialises the result.
    pub fn from_toml_layers(layers: &[&str]) -> Result<Config, ConfigError> {
        let mut merged = toml::Table::new();
        for layer in layers {
            let table: toml::Table =
                toml::from_str(layer).map_err(|e| ConfigError::Invalid(e.to_string()))?;
            merge(&mut merged, table);
        }
        let mut config: Config = toml::Value::Table(merged)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid(e.to_string()))?;
        config.validate()?;
        // Port 0 is known only once bound: `App::init` resolves then.
        let port = config.revocation.http_listen.port();
        if port != 0 {
            config.resolve_public_urls(port)?;
        } else {
            config.check_public_urls()?;
        }
        Ok(config)
    }

    /// Whether a CRL, OCSP or caIssuers URL, or the notices' base URL, is
    /// left to follow the public listener.
    pub fn derives_public_urls(&self) -> bool {
        [
            &self.ca.crl_url,
            &self.ca.ocsp_url,
            &self.ca.ca_issuers_url,
            &self.notices.base_url,
        ]
        .iter()
        .any(|u| u.is_empty())
    }

    /// Fills the CRL, OCSP and caIssuers URLs left empty from the public
    /// listener: its address when it listens on one, else
    /// `server.public_host`, with `port` (the bound port, which differs from
    /// `http_listen`'s when that asks for port 0). Moving the listener thus
    /// moves the URLs of every certificate issued from then on, instead of
    /// leaving them pointing at a port nobody serves.
    pub fn resolve_public_urls(&mut self, port: u16) -> Result<(), ConfigError> {
        let base = public_base(
            self.revocation.http_listen.ip(),
            &self.server.public_host,
            port,
        );
        for (url, path) in [
            (&mut self.ca.crl_url, DEFAULT_CRL_PATH),
            (&mut self.ca.ocsp_url, DEFAULT_OCSP_PATH),
            (&mut self.ca.ca_issuers_url, DEFAULT_CA_ISSUERS_PATH),
        ] {
            if url.is_empty() {
                *url = format!("{base}{path}");
            }
        }
        if self.notices.base_url.is_empty() {
            self.notices.base_url = base;
        }
        self.check_public_urls()
    }

    /// The URLs must be absolute http(s) URLs that fit an IA5String, and the
    /// three must be told apart by path on the one listener that serves them.
    fn check_public_urls(&self) -> Result<(), ConfigError> {
        let named = [
            ("ca.crl_url", &self.ca.crl_url),
            ("ca.ocsp_url", &self.ca.ocsp_url),
            ("ca.ca_issuers_url", &self.ca.ca_issuers_url),
        ];
        for (name, url) in named {
            if url.is_empty() {
                continue;
            }
            let scheme_ok = url.starts_with("http://") || url.starts_with("https://");
            if !scheme_ok
                || !url.is_ascii()
                || url
                    .chars()
                    .any(|c| c.is_ascii_whitespace() || c.is_ascii_control())
            {
                return Err(ConfigError::Invalid(format!(
                    "{name} must be an absolute http:// or https:// URL in ASCII without spaces, not {url:?}"
                )));
            }
        }
        let path = |u: &str| url_path(u).trim_end_matches('/').to_owned();
        let (crl, ocsp, issuers) = (
            path(&self.ca.crl_url),
            path(&self.ca.ocsp_url),
            path(&self.ca.ca_issuers_url),
        );
        let under_ocsp = |p: &str| p == ocsp || p.starts_with(&format!("{ocsp}/"));
        if !self.ca.crl_url.is_empty()
            && !self.ca.ca_issuers_url.is_empty()
            && (crl == issuers || under_ocsp(&crl) || under_ocsp(&issuers))
        {
            return Err(ConfigError::Invalid(format!(
                "ca.crl_url ({crl}), ca.ocsp_url ({ocsp}) and ca.ca_issuers_url ({issuers}) are \
                 served on one listener and need paths apart (none under the OCSP path)"
            )));
        }
        Ok(())
    }

    fn validate(&mut self) -> Result<(), ConfigError> {
        if self.people.portal_url.is_empty() {
            let admin = self.server.admin_listen;
            let http = public_base(admin.ip(), &self.server.public_host, admin.port());
            let host_port = http.trim_start_matches("http://");
            self.people.portal_url = if admin.port() == 443 {
                format!("https://{}", host_port.trim_end_matches(":443"))
            } else {
                format!("https://{host_port}")
            };
        }
        self.people.check().map_err(ConfigError::Invalid)?;
        let s = &self.server;
        if s.max_connections == 0 || s.max_body_bytes == 0 || s.max_header_bytes < 1024 {
            return Err(ConfigError::Invalid(
                "server.max_connections and server.max_body_bytes must be > 0, server.max_header_bytes >= 1024".into(),
            ));
        }
        if s.max_connections_per_source == 0 {
            return Err(ConfigError::Invalid(
                "server.max_connections_per_source must be at least 1".into(),
            ));
        }
        if self.revocation.ocsp_signing_concurrency == 0 {
            return Err(ConfigError::Invalid(
                "revocation.ocsp_signing_concurrency must be at least 1".into(),
            ));
        }
        if s.handshake_timeout_secs == 0
            || s.first_byte_timeout_secs == 0
            || s.header_read_timeout_secs == 0
            || s.idle_timeout_secs == 0
            || s.body_read_timeout_secs == 0
        {
            return Err(ConfigError::Invalid(
                "server timeouts (first_byte, handshake, header_read, idle, body_read) must be at least 1 second".into(),
            ));
        }
        if self.store.cache_mb == 0 {
            return Err(ConfigError::Invalid(
                "store.cache_mb must be at least 1".into(),
            ));
        }
        if self.store.engine == StoreEngine::Postgres {
            if self.store.url.as_deref().is_none_or(str::is_empty) {
                return Err(ConfigError::Invalid(
                    "store.engine = \"postgres\" needs store.url (or ESTD_STORE_URL)".into(),
                ));
            }
            if self.store.pool_size == 0 {
                return Err(ConfigError::Invalid(
                    "store.pool_size must be at least 1".into(),
                ));
            }
        }
        let r = &self.rate_limit;
        if r.evict_interval_secs == 0 {
            return Err(ConfigError::Invalid(
                "rate_limit.evict_interval_secs must be at least 1".into(),
            ));
        }
        for (name, b) in [
            ("client", &r.client),
            ("reference", &r.reference),
            ("ip", &r.ip),
            ("label", &r.label),
            ("public", &r.public),
        ] {
            // A period of at least a nanosecond and at most a day.
            let sane = b.per_second.is_finite() && (1.0 / 86_400.0..=1e9).contains(&b.per_second);
            if b.enabled && (!sane || b.burst == 0) {
                return Err(ConfigError::Invalid(format!(
                    "rate_limit.{name}: per_second must be between 1/86400 and 1e9 and burst at least 1"
                )));
            }
        }
        if self.demo.enabled && !crate::model::is_valid_cvr(&self.demo.cvr) {
            return Err(ConfigError::Invalid(format!(
                "demo.cvr {}",
                crate::model::CVR_RULE
            )));
        }
        match (&self.ca.key_passphrase_env, &self.ca.key_passphrase_file) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::Invalid(
                    "set at most one of ca.key_passphrase_env and ca.key_passphrase_file".into(),
                ))
            }
            (Some(v), None) if v.is_empty() || v.contains('=') || v.contains('\0') => {
                return Err(ConfigError::Invalid(
                    "ca.key_passphrase_env must name an environment variable".into(),
                ))
            }
            (None, Some(p)) if p.as_os_str().is_empty() => {
                return Err(ConfigError::Invalid(
                    "ca.key_passphrase_file must name a file".into(),
                ))
            }
            _ => {}
        }
        if let Some(p) = &self.ca.key.pkcs11 {
            validate_pkcs11(p)?;
            if self.ca.key_passphrase_env.is_some() || self.ca.key_passphrase_file.is_some() {
                return Err(ConfigError::Invalid(
                    "ca.key_passphrase_env/key_passphrase_file are for a key file; with [ca.key] pkcs11 the token's PIN is pin_env or pin_file".into(),
                ));
            }
        }
        let t = &self.admin_tokens;
        if !(1..=3650).contains(&t.max_days)
            || !(1..=t.max_days).contains(&t.default_days)
            || !(1..=t.max_days).contains(&t.operator_token_days)
        {
            return Err(ConfigError::Invalid(
                "admin_tokens: max_days must be 1 to 3650, default_days and operator_token_days 1 to max_days".into(),
            ));
        }
        self.certificate_policies.validate()?;
        if let Err(e) = self.smtp.from.parse::<lettre::message::Mailbox>() {
            return Err(ConfigError::Invalid(format!(
                "smtp.from {:?} is not a mailbox such as \"estd <estd@example.com>\": {e}",
                self.smtp.from
            )));
        }
        let v = &self.email_validation;
        if !(1..=720).contains(&v.link_ttl_hours) || !(1..=3650).contains(&v.valid_for_days) {
            return Err(ConfigError::Invalid(
                "email_validation: link_ttl_hours must be 1 to 720, valid_for_days 1 to 3650"
                    .into(),
            ));
        }
        if self.notices.base_url.is_empty() {
            // Filled in from the public listener once its port is known.
        } else if let Some(problem) = base_url_problem(&self.notices.base_url) {
            return Err(ConfigError::Invalid(format!(
                "notices.base_url {:?} {problem}",
                self.notices.base_url
            )));
        }
        self.tls.check().map_err(ConfigError::Invalid)?;
        for a in &self.tls.client_anchors {
            if !crate::model::is_valid_cvr(&a.cvr) {
                return Err(ConfigError::Invalid(format!(
                    "tls.client_anchors: cvr {:?} {}",
                    a.cvr,
                    crate::model::CVR_RULE
                )));
            }
        }
        Ok(())
    }
}

fn validate_pkcs11(p: &Pkcs11KeyConfig) -> Result<(), ConfigError> {
    let invalid = |m: &str| Err(ConfigError::Invalid(format!("ca.key.pkcs11: {m}")));
    if p.module.as_os_str().is_empty() {
        return invalid("module must name the PKCS#11 library");
    }
    if p.token_label.is_empty() || p.token_label.len() > 32 {
        return invalid("token_label must be 1 to 32 bytes (a PKCS#11 token label)");
    }
    if p.key_label.is_empty() {
        return invalid("key_label must name the key");
    }
    if p.sessions > 256 {
        return invalid("sessions must be at most 256");
    }
    match (&p.pin_env, &p.pin_file) {
        (Some(_), Some(_)) | (None, None) => invalid("set exactly one of pin_env and pin_file"),
        (Some(v), None) if v.is_empty() || v.contains('=') || v.contains('\0') => {
            invalid("pin_env must name an environment variable")
        }
        (None, Some(f)) if f.as_os_str().is_empty() => invalid("pin_file must name a file"),
        _ => Ok(()),
    }
}

fn merge(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(key, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_identity_settings_are_checked() {
        let c = Config::embedded().expect("embedded config");
        assert_eq!(
            c.tls.names().expect("names"),
            [
                ServerName::Dns("localhost".into()),
                ServerName::Ip([127, 0, 0, 1].into())
            ]
        );
        assert_eq!(c.tls.identity_source(), Ok(TlsIdentitySource::OwnCa));
        let ok = "[tls]\nserver_names = [\"EST.Example.dk\", \"::1\"]\n";
        let c = Config::from_toml_layers(&[DEFAULT_TOML, ok]).expect("valid");
        assert_eq!(
            c.tls.names().expect("names"),
            [
                ServerName::Dns("est.example.dk".into()),
                ServerName::Ip(std::net::Ipv6Addr::LOCALHOST.into())
            ]
        );
        for (bad, says) in [
            ("[tls]\nserver_names = []\n", "at least one"),
            ("[tls]\nserver_names = [\"not a name\"]\n", "\"not a name\""),
            ("[tls]\nserver_names = [\"\"]\n", "neither"),
            (
                "[tls]\ncertificate_days = 30\nrenew_before_days = 30\n",
                "renew_before_days",
            ),
            (
                "[tls]\ncertificate_days = 0\nrenew_before_days = 0\n",
                "certificate_days",
            ),
            ("[tls]\ncheck_interval_secs = 0\n", "check_interval_secs"),
            ("[tls]\ncertificate = \"/etc/estd/tls.pem\"\n", "together"),
        ] {
            let e = Config::from_toml_layers(&[DEFAULT_TOML, bad])
                .expect_err(bad)
                .to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn admin_token_lifetimes_are_bounded() {
        let c = Config::embedded().expect("embedded config");
        assert_eq!(c.admin_tokens, AdminTokensConfig::default());
        for bad in [
            "[admin_tokens]\nmax_days = 0\n",
            "[admin_tokens]\nmax_days = 4000\n",
            "[admin_tokens]\ndefault_days = 0\n",
            "[admin_tokens]\ndefault_days = 800\n",
            "[admin_tokens]\noperator_token_days = 800\n",
        ] {
            assert!(
                Config::from_toml_layers(&[DEFAULT_TOML, bad]).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn relying_party_urls_follow_the_public_listener() {
        let c = Config::embedded().expect("embedded config");
        assert_eq!(c.ca.crl_url, "http://127.0.0.1:8080/crl/issuing-ca.crl");
        assert_eq!(c.ca.ocsp_url, "http://127.0.0.1:8080/ocsp");
        assert_eq!(
            c.ca.ca_issuers_url,
            "http://127.0.0.1:8080/ca/issuing-ca.crt"
        );

        let moved = "[revocation]\nhttp_listen = \"127.0.0.2:9080\"\n";
        let c = Config::from_toml_layers(&[DEFAULT_TOML, moved]).expect("moved");
        assert_eq!(c.ca.crl_url, "http://127.0.0.2:9080/crl/issuing-ca.crl");
        assert_eq!(c.ca.ocsp_url, "http://127.0.0.2:9080/ocsp");
        assert_eq!(
            c.ca.ca_issuers_url,
            "http://127.0.0.2:9080/ca/issuing-ca.crt"
        );

        // A wildcard address is no name: the public host stands in; port 80 is implied.
        let wildcard = "[server]\npublic_host = \"pki.example.dk\"\n\
                        [revocation]\nhttp_listen = \"0.0.0.0:80\"\n";
        let c = Config::from_toml_layers(&[DEFAULT_TOML, wildcard]).expect("wildcard");
        assert_eq!(c.ca.ocsp_url, "http://pki.example.dk/ocsp");
        let v6 = "[revocation]\nhttp_listen = \"[::1]:8081\"\n";
        let c = Config::from_toml_layers(&[DEFAULT_TOML, v6]).expect("v6");
        assert_eq!(c.ca.ocsp_url, "http://[::1]:8081/ocsp");

        // What is set is kept; the rest still follows.
        let set = "[ca]\ncrl_url = \"http://crl.example.dk/ca.crl\"\n\
                   [revocation]\nhttp_listen = \"127.0.0.1:9080\"\n";
        let c = Config::from_toml_layers(&[DEFAULT_TOML, set]).expect("set");
        assert_eq!(c.ca.crl_url, "http://crl.example.dk/ca.crl");
        assert_eq!(c.ca.ocsp_url, "http://127.0.0.1:9080/ocsp");

        // Port 0 is resolved once bound.
        let zero = "[revocation]\nhttp_listen = \"127.0.0.1:0\"\n";
        let mut c = Config::from_toml_layers(&[DEFAULT_TOML, zero]).expect("zero");
        assert!(c.derives_public_urls());
        c.resolve_public_urls(41234).expect("resolve");
        assert_eq!(
            c.ca.ca_issuers_url,
            "http://127.0.0.1:41234/ca/issuing-ca.crt"
        );
        assert!(!c.derives_public_urls());
    }

    #[test]
    fn relying_party_urls_must_be_http_and_apart() {
        for bad in [
            "[ca]\ncrl_url = \"ldap://x/crl\"\n",
            "[ca]\nocsp_url = \"http://x/ocsp y\"\n",
            "[ca]\nca_issuers_url = \"http://x/æ.crt\"\n",
            "[ca]\nca_issuers_url = \"http://127.0.0.1:8080/crl/issuing-ca.crl\"\n",
            "[ca]\ncrl_url = \"http://127.0.0.1:8080/ocsp/crl\"\n",
        ] {
            assert!(
                Config::from_toml_layers(&[DEFAULT_TOML, bad]).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn embedded_default_parses() {
        let c = Config::embedded().expect("embedded config");
        assert_eq!(c.server.max_body_bytes, 65536);
        assert_eq!(c.ca.key_algorithm, CaKeyAlgorithm::P256);
    }

    #[test]
    fn override_merges_one_setting() {
        let c = Config::from_toml_layers(&[DEFAULT_TOML, "[server]\nmax_body_bytes = 10\n"])
            .expect("merged");
        assert_eq!(c.server.max_body_bytes, 10);
        assert_eq!(c.server.max_connections, 1024);
    }

    #[test]
    fn one_passphrase_source_at_most() {
        let c = Config::from_toml_layers(&[DEFAULT_TOML, "[ca]\nkey_passphrase_env = \"X\"\n"])
            .expect("env");
        assert_eq!(c.ca.key_passphrase_env.as_deref(), Some("X"));
        assert!(c.ca.key_passphrase_file.is_none());
        let both = "[ca]\nkey_passphrase_env = \"X\"\nkey_passphrase_file = \"p\"\n";
        assert!(Config::from_toml_layers(&[DEFAULT_TOML, both]).is_err());
        assert!(
            Config::from_toml_layers(&[DEFAULT_TOML, "[ca]\nkey_passphrase_env = \"\"\n"]).is_err()
        );
    }

    #[test]
    fn pkcs11_key_needs_one_pin_source_and_no_passphrase() {
        let ok = "[ca.key]\npkcs11 = { module = \"/m.so\", token_label = \"t\", key_label = \"k\", pin_env = \"P\" }\n";
        let c = Config::from_toml_layers(&[DEFAULT_TOML, ok]).expect("pkcs11");
        let p = c.ca.key.pkcs11.expect("pkcs11 table");
        assert_eq!(p.token_label, "t");
        assert_eq!(p.pin_env.as_deref(), Some("P"));
        assert!(Config::embedded().expect("default").ca.key.pkcs11.is_none());
        for bad in [
            "[ca.key]\npkcs11 = { module = \"/m.so\", token_label = \"t\", key_label = \"k\" }\n",
            "[ca.key]\npkcs11 = { module = \"/m.so\", token_label = \"t\", key_label = \"k\", pin_env = \"P\", pin_file = \"f\" }\n",
            "[ca.key]\npkcs11 = { module = \"/m.so\", token_label = \"\", key_label = \"k\", pin_env = \"P\" }\n",
            "[ca.key]\npkcs11 = { module = \"/m.so\", token_label = \"t\", key_label = \"k\", pin = \"1234\" }\n",
            "[ca]\nkey_passphrase_env = \"X\"\n[ca.key]\npkcs11 = { module = \"/m.so\", token_label = \"t\", key_label = \"k\", pin_env = \"P\" }\n",
        ] {
            assert!(
                Config::from_toml_layers(&[DEFAULT_TOML, bad]).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn notice_links_come_from_the_base_url() {
        let c = Config::embedded().expect("default");
        assert_eq!(c.notices.base_url, "http://127.0.0.1:8080");
        assert_eq!(c.notices.language, crate::model::NoticeLanguages::Both);
        assert_eq!(
            c.notices.collect_link("R1"),
            "http://127.0.0.1:8080/collect?ref=R1"
        );
        let c = Config::from_toml_layers(&[
            DEFAULT_TOML,
            "[notices]\nbase_url = \"https://certs.example.dk/portal/\"\nlanguage = \"en\"\n",
        ])
        .expect("override");
        assert_eq!(
            c.notices.collect_link("R1"),
            "https://certs.example.dk/portal/collect?ref=R1"
        );
        assert_eq!(c.notices.language, crate::model::NoticeLanguages::English);
        for bad in [
            "[notices]\nbase_url = \"certs.example.dk\"\n",
            "[notices]\nbase_url = \"https://\"\n",
            "[notices]\nbase_url = \"https://x.dk/?a=b\"\n",
            "[notices]\nbase_url = \"https://u@x.dk\"\n",
            "[notices]\nlanguage = \"de\"\n",
        ] {
            assert!(
                Config::from_toml_layers(&[DEFAULT_TOML, bad]).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn email_validation_defaults_and_bounds() {
        let c = Config::embedded().expect("default");
        assert!(c.email_validation.enabled);
        assert_eq!(c.email_validation.link_ttl_secs(), 72 * 3600);
        assert_eq!(c.email_validation.valid_for_secs(), 365 * 86_400);
        for bad in [
            "[email_validation]\nlink_ttl_hours = 0\n",
            "[email_validation]\nvalid_for_days = 0\n",
            "[email_validation]\nvalid_for_days = 4000\n",
        ] {
            assert!(
                Config::from_toml_layers(&[DEFAULT_TOML, bad]).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn unknown_setting_is_refused() {
        let e = Config::from_toml_layers(&[DEFAULT_TOML, "[server]\nmax_bodyy = 10\n"]);
        assert!(e.is_err());
    }

    #[test]
    fn connection_and_ocsp_bounds_are_set_and_never_zero() {
        let c = Config::embedded().expect("default");
        assert_eq!(c.server.max_connections_per_source, 64);
        assert_eq!(c.server.first_byte_timeout_secs, 3);
        assert_eq!(c.revocation.ocsp_signing_concurrency, 1);
        assert!(c.rate_limit.public.enabled);
        for bad in [
            "[server]\nmax_connections_per_source = 0\n",
            "[server]\nfirst_byte_timeout_secs = 0\n",
            "[revocation]\nocsp_signing_concurrency = 0\n",
            "[rate_limit.public]\nburst = 0\n",
        ] {
            assert!(
                Config::from_toml_layers(&[DEFAULT_TOML, bad]).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn certificate_policies_are_distinct_oids_with_placeholder_defaults() {
        let c = Config::embedded().expect("default");
        let p = &c.certificate_policies;
        assert_eq!(p.system.to_string(), "1.3.6.1.5.5.7.13.1");
        assert_eq!(p.organisation.to_string(), "1.3.6.1.5.5.7.13.2");
        assert_eq!(p.user.to_string(), "1.3.6.1.5.5.7.13.3");
        assert_eq!(p.seal.to_string(), "1.3.6.1.5.5.7.13.4");
        let set = Config::from_toml_layers(&[
            DEFAULT_TOML,
            "[certificate_policies]\nseal = \"1.2.208.169.1.1.1.9\"\n",
        ])
        .expect("own seal policy");
        assert_eq!(
            set.certificate_policies.seal.to_string(),
            "1.2.208.169.1.1.1.9"
        );
        for (bad, why) in [
            ("seal = \"seal\"", "\"seal\" is not an object identifier"),
            ("user = \"1..2\"", "\"1..2\" is not an object identifier"),
            (
                "user = \"1.02.3\"",
                "\"1.02.3\" is not an object identifier",
            ),
            ("user = 1", "invalid type"),
            (
                "seal = \"2.5.29.32.0\"",
                "certificate_policies.seal: anyPolicy",
            ),
            (
                "seal = \"1.3.6.1.5.5.7.13.2\"",
                "certificate_policies.seal and certificate_policies.organisation are both",
            ),
            ("sael = \"1.2.3\"", "unknown field"),
        ] {
            let layer = format!("[certificate_policies]\n{bad}\n");
            match Config::from_toml_layers(&[DEFAULT_TOML, &layer]) {
                Err(ConfigError::Invalid(m)) => assert!(m.contains(why), "{bad}: {m}"),
                other => panic!("{bad} was not refused: {other:?}"),
            }
        }
    }

    #[test]
    fn store_cache_is_set_and_never_zero() {
        let c = Config::from_toml_layers(&[DEFAULT_TOML]).expect("default");
        assert_eq!(c.store.cache_mb, 16);
        assert_eq!(c.store.audit_retention_days, 1826);
        let e = Config::from_toml_layers(&[DEFAULT_TOML, "[store]\ncache_mb = 0\n"]);
        assert!(matches!(e, Err(ConfigError::Invalid(m)) if m.contains("cache_mb")));
    }
}
