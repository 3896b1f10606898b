//! The integration suite again, on PostgreSQL: the modules of `tests/it`,
//! compiled into this second binary, where the test kit gives every test
//! server (in process or as a child process) a fresh database of a cluster
//! the tests start themselves (`estd_testkit::postgres`), instead of sled.
//! The test kit knows it runs here by this binary's name (`it_postgres`).
//!
//! Every module of `tests/it` is either included here or listed in
//! [`NOT_HERE`] with the reason; `every_module_is_included_or_excused`
//! fails when a new module is neither. Tests of an included module that
//! cannot apply to PostgreSQL return early through `sled_only`, which says why.
//!
//! Same rules as `tests/it`: one process, no process-wide state.

#![forbid(unsafe_code)]

#[path = "../it/admin_api.rs"]
mod admin_api;
#[path = "../it/admin_cli.rs"]
mod admin_cli;
#[path = "../it/admin_tokens.rs"]
mod admin_tokens;
#[path = "../it/api_user_orders.rs"]
mod api_user_orders;
#[path = "../it/backup.rs"]
mod backup;
#[path = "../it/cert_contents.rs"]
mod cert_contents;
#[path = "../it/connections.rs"]
mod connections;
#[path = "../it/crash.rs"]
mod crash;
#[path = "../it/email_validation.rs"]
mod email_validation;
#[path = "../it/encrypted_ca_key.rs"]
mod encrypted_ca_key;
#[path = "../it/est_core.rs"]
mod est_core;
#[path = "../it/est_orders.rs"]
mod est_orders;
#[path = "../it/est_pop.rs"]
mod est_pop;
#[path = "../it/hsm.rs"]
mod hsm;
#[path = "../it/interop.rs"]
mod interop;
#[path = "../it/lifecycle.rs"]
mod lifecycle;
#[path = "../it/limits.rs"]
mod limits;
#[path = "../it/log_format.rs"]
mod log_format;
#[path = "../it/notifications.rs"]
mod notifications;
#[path = "../it/ocsp_load.rs"]
mod ocsp_load;
#[path = "../it/people.rs"]
mod people;
#[path = "../it/portal.rs"]
mod portal;
#[path = "../it/profile_export.rs"]
mod profile_export;
#[path = "../it/rate_limits.rs"]
mod rate_limits;
#[path = "../it/reload.rs"]
mod reload;
#[path = "../it/resumption.rs"]
mod resumption;
#[path = "../it/revocation.rs"]
mod revocation;
#[path = "../it/rollover.rs"]
mod rollover;
#[path = "../it/secrets.rs"]
mod secrets;
#[path = "../it/security.rs"]
mod security;
#[path = "../it/serverkeygen_csrattrs.rs"]
mod serverkeygen_csrattrs;
#[path = "../it/store_resilience.rs"]
mod store_resilience;
#[path = "../it/store_verify.rs"]
mod store_verify;
#[path = "../it/validation.rs"]
mod validation;

/// Modules of `tests/it` that do not run here, and why.
const NOT_HERE: &[(&str, &str)] = &[
    (
        "cli_docs",
        "completions and the man page come from the command line's definition; no store is opened",
    ),
    (
        "browser_smoke",
        "tests the browser harness (Chromium over WebDriver) on one page; the activation \
         it drives is tested on PostgreSQL by `people`",
    ),
    (
        "conformance",
        "conformance/run.sh writes its own config and runs estd on sled; it tests the EST \
         protocol with curl and openssl, not the store",
    ),
    (
        "fuzz_smoke",
        "fuzzes the parsers (no store involved) and takes minutes; once is enough",
    ),
    (
        "store_upgrade",
        "opens sled stores written by older estd versions (tests/fixtures); PostgreSQL \
         schemas are migrated by refinery at start-up",
    ),
    (
        "multinode",
        "PostgreSQL-only already (three nodes on one database), in tests/it",
    ),
    (
        "pg_failure",
        "PostgreSQL-only already (stopping and restarting the database), in tests/it",
    ),
    (
        "store_contract",
        "runs on both engines already, in tests/it",
    ),
];

/// The `mod name;` lines of a test binary's main.rs.
fn modules_of(main_rs: &str) -> Vec<String> {
    main_rs
        .lines()
        .filter_map(|l| l.trim().strip_prefix("mod "))
        .filter_map(|l| l.strip_suffix(';'))
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_module_is_included_or_excused() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let it = std::fs::read_to_string(root.join("tests/it/main.rs")).expect("tests/it/main.rs");
    let here =
        std::fs::read_to_string(root.join("tests/it_postgres/main.rs")).expect("this main.rs");
    let it_mods = modules_of(&it);
    let here_mods = modules_of(&here);
    assert!(it_mods.len() > 10, "no mod lines found in tests/it/main.rs");
    for m in &it_mods {
        let included = here_mods.contains(m);
        let excused = NOT_HERE.iter().any(|(n, _)| n == m);
        assert!(
            included || excused,
            "tests/it module `{m}` neither runs on PostgreSQL (add `#[path = \"../it/{m}.rs\"] \
             mod {m};` to tests/it_postgres/main.rs) nor is listed in NOT_HERE with a reason"
        );
        assert!(
            !(included && excused),
            "module `{m}` is both included and listed in NOT_HERE"
        );
    }
    for (m, why) in NOT_HERE {
        assert!(
            it_mods.iter().any(|x| x == m),
            "NOT_HERE names `{m}`, which tests/it no longer has"
        );
        assert!(!why.is_empty(), "NOT_HERE gives no reason for `{m}`");
    }
}

#[test]
fn this_binary_runs_on_postgres() {
    assert!(
        estd_testkit::postgres::suite_on_postgres(),
        "the test kit does not see that this binary is it_postgres"
    );
    let dir = tempfile::tempdir().expect("tmp");
    let config = estd_testkit::test_config(dir.path(), "");
    assert_eq!(config.store.engine, estd::config::StoreEngine::Postgres);
    assert!(config
        .store
        .url
        .as_deref()
        .is_some_and(|u| u.starts_with("postgres://")));
}
