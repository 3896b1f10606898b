//! The benchmark, run briefly as CI's smoke test: `estd-bench` fills a store,
//! then drives a real `estd` over real mutual TLS for every operation, and
//! every answer must verify. No timing is asserted; the figures are in the
//! README's Performance section.

use estd_testkit::process;
use std::path::Path;
use std::process::Command;

use estd_testkit::process::Daemon;

/// Runs `estd-bench` with `args` and returns its `RESULT` line's fields.
fn bench(dir: &Path, args: &[&str]) -> Vec<(String, String)> {
    let out = Command::new(env!("CARGO_BIN_EXE_estd-bench"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run estd-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "estd-bench {args:?} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("RESULT "))
        .unwrap_or_else(|| panic!("no RESULT line from estd-bench {args:?}:\n{stdout}"));
    line.split_whitespace()
        .skip(1)
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn field<'a>(result: &'a [(String, String)], key: &str) -> &'a str {
    result
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {key} in {result:?}"))
}

/// Asserts that every attempted operation was verified and none failed.
fn assert_all_verified(result: &[(String, String)], expected: u64) {
    assert_eq!(field(result, "errors"), "0", "{result:?}");
    assert_eq!(
        field(result, "verified").parse::<u64>().ok(),
        Some(expected),
        "{result:?}"
    );
}

#[test]
fn every_benchmark_operation_runs_and_verifies() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    // One IdM certificate at full speed is far past the default per-client
    // limits; the benchmark measures the enrolment path, not the limiter.
    let config = process::write_config(dir, "warn", process::NO_CLIENT_RATE_LIMITS);
    let config_arg = config.display().to_string();

    // First start creates the CA and the demo identity; the fill needs the server stopped.
    drop(Daemon::start(dir, &config, &[], "first").expect("first start"));
    let fill = bench(
        dir,
        &[
            "--op",
            "fill",
            "--config",
            &config_arg,
            "--count",
            "2000",
            "--revoked-percent",
            "5",
        ],
    );
    assert_eq!(field(&fill, "op"), "fill", "{fill:?}");

    let d = Daemon::start(dir, &config, &[], "bench").expect("start estd");
    let url = format!("https://127.0.0.1:{}", d.est.port());
    let certs = dir.join("certs");
    let path = |f: &str| certs.join(f).display().to_string();
    let (ca, cert, key) = (
        path("root-ca.pem"),
        path("demo-idm.pem"),
        path("demo-idm.key"),
    );
    let common = [
        "--url",
        &url,
        "--ca",
        &ca,
        "--cert",
        &cert,
        "--key",
        &key,
        "--workers",
        "4",
    ];
    let runs: &[(&[&str], u64)] = &[
        (&["--op", "enroll", "--requests", "200"], 200),
        (
            &[
                "--op",
                "enroll",
                "--key-type",
                "ed25519",
                "--requests",
                "40",
            ],
            40,
        ),
        (&["--op", "enroll", "--tls12", "--requests", "40"], 40),
        (&["--op", "reenroll", "--requests", "40"], 40),
        (&["--op", "cacerts", "--requests", "200"], 200),
    ];
    for (args, expected) in runs {
        let mut all: Vec<&str> = common.to_vec();
        all.extend_from_slice(args);
        let result = bench(dir, &all);
        assert_all_verified(&result, *expected);
    }

    // A new connection per request: without resumption every handshake is
    // full; with it, all but the first few resume (TLS 1.3 tickets, and TLS
    // 1.2 session ids from the server's session cache).
    let handshakes = |r: &[(String, String)]| {
        let n = |k| field(r, k).parse::<u64>().expect("a count");
        (n("full_handshakes"), n("resumed_handshakes"))
    };
    let mut all: Vec<&str> = common.to_vec();
    all.extend_from_slice(&["--op", "enroll", "--conn", "new", "--requests", "40"]);
    let new = bench(dir, &all);
    assert_all_verified(&new, 40);
    assert_eq!(handshakes(&new).1, 0, "--conn new resumed: {new:?}");
    for tls12 in [false, true] {
        let mut all: Vec<&str> = common.to_vec();
        all.extend_from_slice(&["--op", "enroll", "--conn", "resume", "--requests", "80"]);
        if tls12 {
            all.push("--tls12");
        }
        let result = bench(dir, &all);
        assert_all_verified(&result, 80);
        let (full, resumed) = handshakes(&result);
        assert!(
            resumed >= 60 && full <= 20,
            "TLS 1.2 only: {tls12}; {full} full and {resumed} resumed handshakes: {result:?}"
        );
    }

    // CPU per enrolment of the server, and of a process tree given as the
    // database (here the server again: its tree is itself).
    let pid = d.pid().to_string();
    let mut all: Vec<&str> = common.to_vec();
    all.extend_from_slice(&[
        "--op",
        "enroll",
        "--requests",
        "200",
        "--server-pid",
        &pid,
        "--db-pid",
        &pid,
    ]);
    let result = bench(dir, &all);
    assert_all_verified(&result, 200);
    for key in [
        "server_cpu_us_op",
        "db_cpu_us_op",
        "bench_cpu_us_op",
        "rss_kb",
        "hwm_kb",
    ] {
        let v = field(&result, key);
        assert!(v.parse::<u64>().is_ok(), "{key}={v} in {result:?}");
    }
    assert!(
        field(&result, "server_cpu_us_op").parse::<u64>().unwrap() > 0,
        "an enrolment costs the server some CPU: {result:?}"
    );

    let ocsp_url = format!("http://127.0.0.1:{}/ocsp", d.public.port());
    let serials = dir.join("data").join("fill-serials.txt");
    let ocsp = bench(
        dir,
        &[
            "--op",
            "ocsp",
            "--ocsp-url",
            &ocsp_url,
            "--serials",
            &serials.display().to_string(),
            "--issuer",
            &path("issuing-ca.pem"),
            "--workers",
            "4",
            "--requests",
            "400",
        ],
    );
    assert_all_verified(&ocsp, 400);

    // Start-up: with the server stopped, `--op start` starts it twice (on
    // port 0, so the admin address comes from its banner) and stops it.
    let mut d = d;
    assert!(d.terminate().success(), "estd stops cleanly on SIGTERM");
    drop(d);
    let start = bench(
        dir,
        &[
            "--op",
            "start",
            "--config",
            &config_arg,
            "--ca",
            &ca,
            "--estd",
            &process::estd_bin().display().to_string(),
            "--starts",
            "2",
        ],
    );
    assert_eq!(field(&start, "engine"), "sled", "{start:?}");
    assert_eq!(field(&start, "rounds"), "2", "{start:?}");
    let first: f64 = field(&start, "first_s").parse().expect("first_s");
    assert!(first > 0.0, "{start:?}");
    let rss: u64 = field(&start, "rss_idle_kb").parse().expect("rss_idle_kb");
    assert!(rss > 1000, "a running estd holds more than 1 MB: {start:?}");
}
