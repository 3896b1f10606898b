//! # estd
//!
//! An EST server (RFC 7030, with the RFC 8951 clarifications) with its own
//! certificate authority, for automated, system-based certificate issuance in
//! the model of the Danish MitID Erhverv certificate service: organisations
//! (known by CVR number) hold certificate profiles, and their IdM systems and
//! devices enrol and renew certificates over mutual TLS.
//!
//! ## Architecture
//!
//! Data flows one way (see ARCHITECTURE.md for the picture):
//!
//! ```text
//! socket → server → TLS → http → est / admin / public → service → policy / ca → store → answer
//! ```
//!
//! - [`server`] owns the listeners: TLS accept with a handshake timeout, a cap
//!   on concurrent connections, HTTP/1.1 with canonical header names, head and
//!   idle keep-alive timeouts, graceful drain. It hands each request to the
//!   listener's [`http::Router`] and knows no protocol.
//! - [`http`] holds what listeners and handlers share: the connection context,
//!   the one body reader, the request log (a tracing span and a metric), and
//!   [`http::error::status`], the one mapping from a domain error to a status.
//! - [`run`] wires the EST, admin and public routers into the server and
//!   starts the background [`jobs`] (notifications, CRL and OCSP upkeep,
//!   audit retention, rate-limit upkeep) beside it.
//! - [`service`] holds the units of work (enrol, re-enrol, collect, order,
//!   approve, renew, revoke, block, tokens, profiles, organisations, and the
//!   visible reads): each handler calls one, and each is durable when it
//!   returns. Services see the store, the CA, revocation, configuration and
//!   metrics through [`service::Services`], never HTTP or the application;
//!   they fail with [`service::Error`].
//! - [`model`] is the domain: ids, organisations, profiles, orders,
//!   certificates, tokens and audit events, with their states as enums. No I/O.
//! - [`reload`] applies a new configuration on SIGHUP: the live sections
//!   (`[tls]`, `[rate_limit]`, `[smtp]`, `[log] filter`) are swapped whole,
//!   the rest is named as needing a restart; a config that does not build
//!   is refused and the old one stays.
//! - [`tls`] builds the rustls config, and swaps estd's own certificate live
//!   ([`service::infrastructure`] renews it, or reloads the operator's
//!   files). Client certificates are requested but
//!   judged per request by [`auth`], so a bad one gets an HTTP status and a
//!   reason rather than a TLS alert. Each connection's channel binding (RFC
//!   9266 `tls-exporter`) is read once after the handshake, for profiles that
//!   require proof-of-possession linking (RFC 7030 3.5).
//! - [`est`] holds the RFC 7030 endpoints, one file per operation, with the
//!   wire codec (base64, PKCS#7 certs-only, CSR attributes) in [`est::codec`].
//! - [`policy`] decides what a profile allows a CSR to ask for, whether its
//!   challengePassword must link it to its TLS connection, and turns a
//!   verified CSR into a [`ca::CertTemplate`]. CSR extensions are never copied.
//! - [`ca`] verifies CSRs (proof of possession) and signs certificates, CRLs
//!   and OCSP answers through the [`ca::Signer`] seam (a software key today);
//!   the services reach it only through [`ca::Ca::issue`].
//! - [`store`] keeps certificates, organisations, profiles and the audit log
//!   behind the object-safe [`store::Store`] trait (the embedded engine is
//!   its private detail), and makes writes durable before any answer.
//! - [`app`] assembles the shared state at start-up; [`seed`] creates the demo
//!   organisation; [`config`] merges a file over the embedded default;
//!   [`metrics`] exports Prometheus metrics; [`admin`] serves the admin listener.
//! - [`ratelimit`] holds the EST listener's token buckets (per client
//!   certificate, reference number, IP address and label); [`problem`] the
//!   RFC 9457 problem document shared by EST and admin errors.
//!
//! One crypto provider, aws-lc-rs, serves rustls and the CA.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod admin;
pub mod app;
pub mod auth;
pub mod ca;
pub mod clip;
pub mod config;
pub mod est;
pub mod files;
pub mod http;
pub mod jobs;
pub mod metrics;
pub mod model;
pub mod notify;
pub mod policy;
pub mod portal;
pub mod problem;
pub mod public;
pub mod ratelimit;
pub mod reload;
pub mod revocation;
pub mod run;
pub mod seed;
pub mod server;
pub mod service;
pub mod store;
pub mod tls;

pub use app::{App, InitError, Initialised};
pub use config::Config;
pub use run::RunningServer;
