//! `[log] format = "json"`: every line estd writes to its log is one JSON
//! object, and a request's line carries the same fields as the text format
//! (status, latency, and the request span's listener, path and principal).
//! An unknown format is refused at start.

use estd_testkit::process::*;

/// `dir/estd.toml` with `format` set in its `[log]` table.
fn config_with_format(dir: &std::path::Path, format: &str) -> std::path::PathBuf {
    let config = write_config(dir, "info", "");
    let text = std::fs::read_to_string(&config).expect("read config");
    let with = text.replacen(
        "[log]\nfilter = \"info\"\n",
        &format!("[log]\nfilter = \"info\"\nformat = \"{format}\"\n"),
        1,
    );
    assert_ne!(with, text, "the [log] table was found");
    std::fs::write(&config, with).expect("write config");
    config
}

#[tokio::test]
async fn json_log_lines_are_objects_with_the_request_fields() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = config_with_format(dir.path(), "json");
    let mut d = Daemon::start(dir.path(), &config, &[], "json").expect("start");
    let r = enrol_as_demo_idm(&d, &dir.path().join("certs"), "json-log").await;
    assert_eq!(r.status, 200, "{}", r.text());
    d.terminate();

    let log = std::fs::read_to_string(&d.stderr).expect("log");
    let mut requests = Vec::new();
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON object ({e}): {line}"));
        assert!(v["timestamp"].is_string(), "{line}");
        assert!(v["level"].is_string(), "{line}");
        if v["fields"]["message"] == "request" {
            requests.push(v);
        }
    }
    let enrol = requests
        .iter()
        .find(|v| {
            v["span"]["path"]
                .as_str()
                .is_some_and(|p| p.ends_with("/simpleenroll"))
        })
        .unwrap_or_else(|| panic!("no request line for the enrolment in:\n{log}"));
    assert_eq!(enrol["fields"]["status"], 200, "{enrol}");
    assert!(enrol["fields"]["latency_us"].is_u64(), "{enrol}");
    assert_eq!(enrol["span"]["listener"], "est", "{enrol}");
    assert_eq!(enrol["span"]["method"], "POST", "{enrol}");
    assert!(
        enrol["span"]["principal"]
            .as_str()
            .is_some_and(|p| p != "-"),
        "the principal is named: {enrol}"
    );
}

#[test]
fn an_unknown_log_format_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = config_with_format(dir.path(), "xml");
    let (status, out, err) = run_to_exit(dir.path(), &config, "serve", &[], "xml");
    assert!(
        !status.success(),
        "estd started with format = \"xml\": {out}"
    );
    assert!(
        err.contains("unknown variant `xml`") && err.contains("format"),
        "the error names the value and the field: {err}"
    );
}
