//! estd's integration tests: one test binary, one module per area. The
//! shared helpers (test server, mutual-TLS client, CSR builders, admin API
//! client, estd as a child process) are the `estd-testkit` crate.
//!
//! Every module here runs a second time on PostgreSQL in `tests/it_postgres`,
//! unless that binary's `NOT_HERE` lists it with the reason; its guard test
//! fails for a module that is neither. The PostgreSQL-only modules
//! (`multinode`, `pg_failure`, and `store_contract` on both engines) start
//! PostgreSQL themselves (`estd_testkit::postgres`).
//!
//! Every test here shares one process with the others, so none of them may
//! change process-wide state: no `std::env::set_var`, no current directory,
//! no umask, no global tracing subscriber; each server listens on ports the
//! OS picks (`127.0.0.1:0`) and keeps its files in its own temp dir.

#![forbid(unsafe_code)]

mod admin_api;
mod admin_cli;
mod admin_tokens;
mod api_user_orders;
mod backup;
mod browser_smoke;
mod cert_contents;
mod cli_docs;
mod conformance;
mod connections;
mod crash;
mod email_validation;
mod encrypted_ca_key;
mod est_core;
mod est_orders;
mod est_pop;
mod fuzz_smoke;
mod hsm;
mod interop;
mod lifecycle;
mod limits;
mod log_format;
mod multinode;
mod notifications;
mod ocsp_load;
mod people;
mod pg_failure;
mod portal;
mod profile_export;
mod rate_limits;
mod reload;
mod resumption;
mod revocation;
mod rollover;
mod secrets;
mod security;
mod serverkeygen_csrattrs;
mod store_contract;
mod store_resilience;
mod store_upgrade;
mod store_verify;
mod validation;
