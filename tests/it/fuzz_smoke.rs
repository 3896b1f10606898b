//! Runs every cargo-fuzz target in `fuzz/` for `ESTD_FUZZ_SECONDS` seconds
//! (default 60; 0 replays the committed corpus only), each starting from a
//! copy of its committed corpus, and fails if any target crashes, naming the
//! target and the crash file.
//!
//! cargo-fuzz is taken from PATH, or installed (pinned) into
//! `target/fuzz-tools` by this test, so CI needs nothing installed by hand.
//!
//! Stable toolchain only: the targets are built with `--sanitizer none`.
//! cargo-fuzz's default, AddressSanitizer, needs `-Zsanitizer`, which stable
//! rustc refuses (short of `RUSTC_BOOTSTRAP=1`, which we do not want CI to
//! depend on). estd forbids unsafe code, so ASan would find little that safe
//! Rust does not already rule out; what we hunt is panics, failed checks and
//! hangs, which libFuzzer reports without a sanitizer. The coverage
//! instrumentation (`-Cpasses=sancov-module` and `-Cllvm-args`) is stable.
//! `-a` turns on debug assertions, and with them overflow checks.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The cargo-fuzz release this test installs when none is on PATH.
const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// Every target in `fuzz/fuzz_targets/`.
const TARGETS: [&str; 5] = [
    "est_body",
    "csr",
    "basic_auth",
    "ocsp_request",
    "admin_json",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

fn works(program: &Path) -> bool {
    Command::new(program)
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// cargo-fuzz from PATH, or from `target/fuzz-tools`, installed there if missing.
fn cargo_fuzz() -> PathBuf {
    let on_path = PathBuf::from("cargo-fuzz");
    if works(&on_path) {
        return on_path;
    }
    let tools = root().join("target").join("fuzz-tools");
    let local = tools.join("bin").join("cargo-fuzz");
    if works(&local) {
        return local;
    }
    let status = Command::new(cargo())
        .args(["install", "cargo-fuzz", "--locked", "--version"])
        .arg(CARGO_FUZZ_VERSION)
        .arg("--root")
        .arg(&tools)
        .status()
        .expect("run cargo install");
    assert!(
        status.success(),
        "cargo install cargo-fuzz failed: {status}"
    );
    assert!(works(&local), "{} does not run", local.display());
    local
}

fn seconds() -> u64 {
    match std::env::var("ESTD_FUZZ_SECONDS") {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("ESTD_FUZZ_SECONDS={v:?} is not a whole number")),
        Err(_) => 60,
    }
}

/// The value after `key` in libFuzzer's final statistics.
fn stat(log: &str, key: &str) -> Option<u64> {
    log.lines().rev().find_map(|l| {
        l.strip_prefix(key)?
            .trim()
            .strip_prefix(':')?
            .trim()
            .parse()
            .ok()
    })
}

fn copy_dir(from: &Path, to: &Path) -> usize {
    std::fs::create_dir_all(to).expect("create corpus copy");
    let mut n = 0;
    for entry in std::fs::read_dir(from).expect("read committed corpus") {
        let entry = entry.expect("corpus entry");
        if entry.file_type().expect("file type").is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy seed");
            n += 1;
        }
    }
    n
}

#[test]
fn fuzz_targets_do_not_crash() {
    let seconds = seconds();
    let fuzz = cargo_fuzz();
    let root = root();
    let flags = ["--sanitizer", "none", "-a"];

    let status = Command::new(&fuzz)
        .args(["fuzz", "build"])
        .args(flags)
        .current_dir(&root)
        .status()
        .expect("run cargo fuzz build");
    assert!(status.success(), "cargo fuzz build failed: {status}");

    let mut summary = Vec::new();
    for target in TARGETS {
        let tmp = tempfile::Builder::new()
            .prefix(&format!("estd-fuzz-{target}-"))
            .tempdir()
            .expect("temp dir");
        let corpus = tmp.path().join("corpus");
        let seeds = copy_dir(&root.join("fuzz").join("corpus").join(target), &corpus);
        assert!(seeds > 0, "no committed seeds for {target}");
        let artifacts = tmp.path().join("artifacts");
        let scratch = tmp.path().join("scratch");
        std::fs::create_dir_all(&artifacts).expect("artifacts dir");
        std::fs::create_dir_all(&scratch).expect("scratch dir");
        let limit = if seconds == 0 {
            "-runs=0".to_owned()
        } else {
            format!("-max_total_time={seconds}")
        };
        let output = Command::new(&fuzz)
            .args(["fuzz", "run"])
            .args(flags)
            .arg(target)
            .arg(&corpus)
            .arg("--")
            .arg(limit)
            .arg(format!("-artifact_prefix={}/", artifacts.display()))
            .arg("-print_final_stats=1")
            // The targets' CA and store go under the temp dir, removed after.
            .env("TMPDIR", &scratch)
            .current_dir(&root)
            .output()
            .expect("run cargo fuzz run");
        let log = String::from_utf8_lossy(&output.stderr).into_owned();
        let crashes: Vec<PathBuf> = std::fs::read_dir(&artifacts)
            .expect("read artifacts")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        if !output.status.success() || !crashes.is_empty() {
            let kept = tmp.keep();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            panic!(
                "fuzz target {target} failed ({}); crash files: {:?} (kept in {}); \
                 reproduce with: cargo fuzz run --sanitizer none -a {target} <crash file>\n{}",
                output.status,
                crashes,
                kept.display(),
                tail.join("\n")
            );
        }
        let runs = stat(&log, "stat::number_of_executed_units").unwrap_or(0);
        let per_sec = stat(&log, "stat::average_exec_per_sec").unwrap_or(0);
        let corpus_size = std::fs::read_dir(&corpus).map(|d| d.count()).unwrap_or(0);
        assert!(
            runs >= seeds as u64,
            "fuzz target {target} ran {runs} inputs, fewer than its {seeds} seeds:\n{log}"
        );
        summary.push(format!(
            "{target}: {runs} runs, {per_sec} exec/s, corpus {seeds} -> {corpus_size}"
        ));
    }
    println!("fuzzed {seconds} s per target:\n{}", summary.join("\n"));
}
