//! Runs conformance/run.sh (curl and openssl against the real estd binary)
//! as part of the test command.

use std::process::{Command, Stdio};

#[test]
fn conformance_script_passes_with_curl_and_openssl() {
    for tool in ["curl", "openssl", "python3"] {
        let found = Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {tool}"))
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(
            found,
            "{tool} is required by the conformance script (.ci/run installs it)"
        );
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/conformance/run.sh");
    let out = Command::new("bash")
        .arg(script)
        .env("ESTD_BIN", env!("CARGO_BIN_EXE_estd"))
        .output()
        .expect("run conformance script");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    let last = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    assert!(
        out.status.success() && last.ends_with(", 0 failed"),
        "conformance failed: {last}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
    );
}
