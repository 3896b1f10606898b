//! `[log] format = "json"`: every line estd writes to its log is one JSON
//! object, and a request's line carries the same fields as the text format
//! (status, latency, and the request span's listener, path and principal).
//! An unknown format is refused at start. Every request has an id: the
//! caller's `X-Request-Id` if plausible, else a new one, named in the
//! answer's `X-Request-Id`, in any problem document and in the log.

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

#[tokio::test]
async fn a_request_id_is_taken_or_made_and_named_in_the_answer_the_problem_and_the_log() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = config_with_format(dir.path(), "json");
    let mut d = Daemon::start(dir.path(), &config, &[], "request-id").expect("start");
    let root = first_cert(&dir.path().join("certs").join("root-ca.pem"));

    // The caller's id: in the header and in the problem document.
    let mut admin = TryClient::connect(d.admin, &root, None).await.expect("TLS");
    let r = admin
        .send(
            "GET",
            "/api/v1/profiles",
            &[("X-Request-Id", "idm-batch-7.42:a_b")],
            Vec::new(),
        )
        .await
        .expect("answer");
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.header("x-request-id"), Some("idm-batch-7.42:a_b"));
    let doc: serde_json::Value = serde_json::from_slice(&r.body).expect("problem document");
    assert_eq!(doc["requestId"], "idm-batch-7.42:a_b", "{doc}");
    assert_eq!(
        doc["status"], 401,
        "the document is otherwise intact: {doc}"
    );

    // An id that is not plausible is not echoed: a new one is made.
    for bad in [
        "a".repeat(65),
        "two words".to_owned(),
        "<script>".to_owned(),
    ] {
        let r = admin
            .send(
                "GET",
                "/api/v1/profiles",
                &[("X-Request-Id", &bad)],
                Vec::new(),
            )
            .await
            .expect("answer");
        let made = r.header("x-request-id").expect("an id").to_owned();
        assert!(
            uuid::Uuid::parse_str(&made).is_ok(),
            "{bad:?} gave {made:?}"
        );
        let doc: serde_json::Value = serde_json::from_slice(&r.body).expect("problem document");
        assert_eq!(doc["requestId"], made.as_str());
    }

    // Without one, and on an answer that is not a problem: still named.
    let mut est = TryClient::connect(d.est, &root, None).await.expect("TLS");
    let r = est
        .send("GET", "/.well-known/est/cacerts", &[], Vec::new())
        .await
        .expect("answer");
    assert_eq!(r.status, 200);
    let made = r.header("x-request-id").expect("an id");
    assert!(uuid::Uuid::parse_str(made).is_ok(), "{made:?}");
    d.terminate();

    let log = std::fs::read_to_string(&d.stderr).expect("log");
    let logged = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .any(|v| {
            v["fields"]["message"] == "request"
                && v["span"]["request_id"] == "idm-batch-7.42:a_b"
                && v["fields"]["status"] == 401
        });
    assert!(
        logged,
        "the caller's id is in the request's log line:\n{log}"
    );
}
