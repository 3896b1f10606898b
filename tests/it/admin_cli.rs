//! `estd admin` as an operator runs it: the estd binary as a child process
//! against a real estd on loopback with real TLS, for every admin task the
//! API offers (orders, certificates, audit log, notifications,
//! organisations, the public database), in text and in JSON, and its
//! failures: a refused call exits non-zero with the problem on stderr.

use der::DecodePem;
use estd::model::{CertKind, CertState, OrderStatus};
use estd_testkit::*;
use serde_json::Value;

/// Runs `estd admin ARGS` as the operator and returns stdout; panics with
/// stderr if it failed.
async fn cli_ok(ts: &TestServer, args: &[&str]) -> String {
    let (ok, out, err) = ts.run_admin_cli(args).await;
    assert!(ok, "estd admin {args:?} failed: {err}");
    out
}

/// [`cli_ok`] with `--output json`: the printed answer, parsed.
async fn cli_json(ts: &TestServer, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.extend(["--output", "json"]);
    let out = cli_ok(ts, &args).await;
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// Runs `estd admin ARGS`, expecting it to fail: its stderr.
async fn cli_fails(ts: &TestServer, args: &[&str]) -> String {
    let (ok, out, err) = ts.run_admin_cli(args).await;
    assert!(!ok, "estd admin {args:?} should fail; printed {out}");
    assert!(out.is_empty(), "nothing on stdout for a failure: {out}");
    err
}

/// The value after `prefix` on the first line that starts with it.
fn line_value(out: &str, prefix: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} line in {out}"))
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// Creates a demo-organisation profile through the CLI with the given extra
/// options; the API's answer (`profile`, and `order` with --order).
async fn cli_profile(ts: &TestServer, name: &str, label: &str, extra: &[&str]) -> Value {
    let mut args = vec![
        "create-profile",
        "--cvr",
        DEMO_CVR,
        "--name",
        name,
        "--label",
        label,
        "--contact-name",
        "Karen Hansen",
        "--contact-email",
        "karen@demo.example",
    ];
    args.extend(extra);
    cli_json(ts, &args).await
}

/// The actions of the audit events `estd admin audit FILTERS` prints.
async fn audit_actions(ts: &TestServer, filters: &[&str]) -> Vec<String> {
    let mut args = vec!["audit"];
    args.extend(filters);
    let log = cli_json(ts, &args).await;
    items(&log)
        .iter()
        .filter_map(|e| e["action"].as_str().map(str::to_owned))
        .collect()
}

/// `estd admin` options that reach the server without a token (the token
/// file named does not exist), then `extra`.
fn tokenless_args(ts: &TestServer, dir: &std::path::Path, extra: &[&str]) -> Vec<String> {
    let mut args = ts.admin_cli_args();
    let at = args
        .iter()
        .position(|a| a == "--token-file")
        .expect("--token-file");
    args[at + 1] = dir.join("no-such-token").display().to_string();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// The items of a list answer.
fn items(v: &Value) -> &Vec<Value> {
    v["items"]
        .as_array()
        .unwrap_or_else(|| panic!("items in {v}"))
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut h = [0u8; 32];
    h.copy_from_slice(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes).as_ref());
    h
}

#[tokio::test]
async fn orders_are_approved_rejected_given_new_codes_and_deleted() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;

    // Two API enrolments held for approval.
    cli_profile(&ts, "Held servers", "held", &["--approval-required"]).await;
    let path = "/.well-known/est/held/simpleenroll";
    let mut est = ts.client(Some(&ts.demo_identity())).await;
    let (_k1, csr1) = demo_csr("server-1");
    let (_k2, csr2) = demo_csr("server-2");
    for csr in [&csr1, &csr2] {
        let r = est.enroll(path, csr).await;
        assert_eq!(r.status, 202, "held: {}", r.text());
    }
    let held = |csr: &[u8]| {
        ts.app()
            .store
            .held_order(&sha256(csr))
            .expect("store")
            .expect("held order")
            .id
    };
    let (first, second) = (held(&csr1), held(&csr2));

    let out = cli_ok(&ts, &["orders", "approve", "--reference", &first]).await;
    assert_eq!(out.trim(), format!("order {first} is approved"));
    let r = est.enroll(path, &csr1).await;
    let cert = issued_cert(&r);
    let out = cli_ok(&ts, &["orders", "reject", "--reference", &second]).await;
    assert_eq!(out.trim(), format!("order {second} is rejected"));
    assert_eq!(est.enroll(path, &csr2).await.status, 403);
    // A rejected order is not approved after all.
    let err = cli_fails(&ts, &["orders", "approve", "--reference", &second]).await;
    assert!(err.starts_with("estd: HTTP 409 "), "{err}");

    // orders show: text lines and the API's JSON.
    let out = cli_ok(&ts, &["orders", "show", "--reference", &first]).await;
    assert!(
        out.starts_with(&format!("reference: {first}\nstatus: issued\n")),
        "{out}"
    );
    assert!(
        out.contains(&format!("serial: {}", serial_of(&cert))),
        "{out}"
    );
    let shown = cli_json(&ts, &["orders", "show", "--reference", &second]).await;
    assert_eq!(shown["reference"], second.as_str());
    assert_eq!(shown["status"], "rejected");

    // new-code: the old code stops working, the new one collects.
    let created = cli_profile(
        &ts,
        "Coded",
        "coded",
        &["--identification", "one-time-code", "--order"],
    )
    .await;
    let reference = created["order"]["reference"].as_str().expect("reference");
    let old_code = created["order"]["code"].as_str().expect("code");
    let out = cli_ok(&ts, &["orders", "new-code", "--reference", reference]).await;
    assert_eq!(line_value(&out, "reference: "), reference);
    let new_code = line_value(&out, "one-time code: ");
    assert_ne!(new_code, old_code);
    assert!(out.contains("code expires: 20"), "{out}");
    let (_k, csr) = demo_csr("Coded");
    assert_eq!(
        collect(&ts, "coded", reference, old_code, &csr)
            .await
            .status,
        401
    );
    issued_cert(&collect(&ts, "coded", reference, &new_code, &csr).await);

    // delete: gone from the lists, still shown, not deleted twice.
    let profile = profile(&ts, "coded");
    let out = cli_ok(&ts, &["order", "--profile", &profile.id]).await;
    let doomed = line_value(&out, "reference: ");
    let out = cli_ok(&ts, &["orders", "delete", "--reference", &doomed]).await;
    assert_eq!(out.trim(), format!("order {doomed} is deleted"));
    let stored = ts.app().store.order(&doomed).expect("store").expect("kept");
    assert_eq!(stored.status, OrderStatus::Deleted);
    let listed = cli_json(&ts, &["list", "--profile", &profile.id]).await;
    assert!(
        items(&listed)
            .iter()
            .all(|o| o["reference"] != doomed.as_str()),
        "{listed}"
    );
    let shown = cli_json(&ts, &["orders", "show", "--reference", &doomed]).await;
    assert_eq!(shown["status"], "deleted");
    let err = cli_fails(&ts, &["orders", "delete", "--reference", &doomed]).await;
    assert!(err.contains("HTTP 409") && err.contains("deleted"), "{err}");

    // The audit log has each of them, as JSON for scripts.
    let actions = audit_actions(&ts, &["--order", &first]).await;
    assert!(actions.iter().any(|a| a == "approve"), "{actions:?}");
    let actions = audit_actions(&ts, &["--order", reference, "--limit", "50"]).await;
    for wanted in ["order", "new-code", "collect"] {
        assert!(
            actions.iter().any(|a| a == wanted),
            "{wanted} in {actions:?}"
        );
    }
    ts.shutdown().await;
}

#[tokio::test]
async fn certificates_are_shown_renewed_and_blocked() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let created = cli_profile(
        &ts,
        "Servers",
        "servers",
        &["--identification", "one-time-code"],
    )
    .await;
    let id = created["profile"]["id"].as_str().expect("profile id");
    let profile = ts.app().store.profile(id).expect("store").expect("profile");
    let org = demo_org(ts.app());
    let (serial, _) = ts.issue_direct(&org, &profile, "server-1", 100);
    let hex = serial.to_string();

    // show --pem: the certificate itself.
    let out = cli_ok(&ts, &["certificates", "show", "--serial", &hex, "--pem"]).await;
    let cert = x509_cert::Certificate::from_pem(out.as_bytes()).expect("a PEM certificate");
    assert_eq!(serial_of(&cert), serial);
    let stored = ts.app().store.cert(&serial).expect("store").expect("cert");
    assert_eq!(der_of(&cert), stored.der);
    // show: lines without the PEM; JSON with it.
    let out = cli_ok(&ts, &["certificates", "show", "--serial", &hex]).await;
    assert!(
        out.starts_with(&format!("serial: {hex}\nstatus: issued\nsubject: ")),
        "{out}"
    );
    assert!(out.contains(&format!("profile_id: {id}")), "{out}");
    assert!(!out.contains("BEGIN CERTIFICATE"), "{out}");
    let shown = cli_json(&ts, &["certificates", "show", "--serial", &hex]).await;
    assert_eq!(shown["serial"], hex.as_str());
    assert!(shown["pem"]
        .as_str()
        .expect("pem")
        .starts_with("-----BEGIN CERTIFICATE-----"));

    // renew: a new order that renews it, with a one-time code.
    let out = cli_ok(&ts, &["certificates", "renew", "--serial", &hex]).await;
    assert_eq!(line_value(&out, "renews: "), hex);
    // A system certificate's renewal shows pending (a user's, in-progress).
    assert_eq!(line_value(&out, "status: "), "pending");
    assert!(out.contains("one-time code: "), "{out}");
    let renewal = line_value(&out, "reference: ");
    let order = ts
        .app()
        .store
        .order(&renewal)
        .expect("store")
        .expect("order");
    assert_eq!(order.renews, Some(serial));
    // A second renewal while that one is open is refused.
    let err = cli_fails(&ts, &["certificates", "renew", "--serial", &hex]).await;
    assert!(err.contains("HTTP 409"), "{err}");

    // block: user certificates only.
    let err = cli_fails(&ts, &["certificates", "block", "--serial", &hex]).await;
    assert!(
        err.contains("HTTP 409") && err.contains("user certificates"),
        "{err}"
    );
    let mut user_profile = profile.clone();
    user_profile.kind = CertKind::User;
    let (user, _) = ts.issue_direct(&org, &user_profile, "Jens Jensen", 100);
    let out = cli_ok(
        &ts,
        &["certificates", "block", "--serial", &user.to_string()],
    )
    .await;
    assert_eq!(out.trim(), format!("certificate {user} is blocked"));
    let stored = ts.app().store.cert(&user).expect("store").expect("cert");
    assert_eq!(stored.state(0), CertState::Blocked);

    // The contact person was told of the block; notifications as JSON and text.
    let notices = cli_json(&ts, &["notifications", "--cvr", DEMO_CVR]).await;
    assert!(
        items(&notices)
            .iter()
            .any(|n| n["serial"] == user.to_string().as_str() && n["to"] == "karen@demo.example"),
        "{notices}"
    );
    let out = cli_ok(&ts, &["notifications", "--cvr", DEMO_CVR]).await;
    assert!(out.starts_with("ID\tAT\tKIND\tTO\t"), "{out}");
    assert!(out.contains("karen@demo.example"), "{out}");

    // The audit log as text: a table, a count.
    let out = cli_ok(&ts, &["audit", "--serial", &user.to_string()]).await;
    assert!(out.starts_with("ID\tAT\tACTOR\tACTION\t"), "{out}");
    assert!(out.contains("\tblock\tdone\t"), "{out}");
    assert!(out.trim_end().ends_with(" events"), "{out}");
    ts.shutdown().await;
}

#[tokio::test]
async fn organisations_are_created_shown_changed_and_listed() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let cvr = "11223346";
    let out = cli_ok(
        &ts,
        &[
            "organisations",
            "create",
            "--cvr",
            cvr,
            "--name",
            "Third ApS",
            "--allow-user-certs",
            "--p-number",
            "1234567890",
        ],
    )
    .await;
    assert!(out.contains("name: Third ApS"), "{out}");
    assert!(out.contains("p_numbers: 1234567890"), "{out}");
    let stored = ts.app().store.org(cvr).expect("store").expect("created");
    assert!(stored.allow_user_certs && !stored.allow_seal);

    let shown = cli_json(&ts, &["organisations", "show", "--cvr", cvr]).await;
    assert_eq!(shown["name"], "Third ApS");
    assert_eq!(shown["p_numbers"], serde_json::json!(["1234567890"]));

    let changed = cli_json(
        &ts,
        &[
            "organisations",
            "change",
            "--cvr",
            cvr,
            "--name",
            "Third Holding ApS",
            "--allow-seal",
            "true",
            "--allow-user-certs",
            "false",
            "--no-p-numbers",
            "--se-number",
            "12345678",
        ],
    )
    .await;
    assert_eq!(changed["name"], "Third Holding ApS");
    let stored = ts.app().store.org(cvr).expect("store").expect("org");
    assert_eq!(stored.name, "Third Holding ApS");
    assert!(stored.allow_seal && !stored.allow_user_certs);
    assert!(stored.p_numbers.is_empty());
    assert_eq!(stored.se_numbers, vec!["12345678".to_string()]);
    // Only what is given changes.
    cli_ok(
        &ts,
        &[
            "organisations",
            "change",
            "--cvr",
            cvr,
            "--allow-seal",
            "false",
        ],
    )
    .await;
    let stored = ts.app().store.org(cvr).expect("store").expect("org");
    assert_eq!(stored.name, "Third Holding ApS");
    assert_eq!(stored.se_numbers, vec!["12345678".to_string()]);
    // A change with nothing to change is a usage error, before any call.
    let err = cli_fails(&ts, &["organisations", "change", "--cvr", cvr]).await;
    assert!(err.contains("required"), "{err}");

    let out = cli_ok(&ts, &["organisations", "list"]).await;
    assert!(out.starts_with("CVR\tNAME\t"), "{out}");
    assert!(
        out.contains(&format!("{cvr}\tThird Holding ApS\t")),
        "{out}"
    );
    assert!(out.contains(&format!("{DEMO_CVR}\t")), "{out}");
    // The old --json flag still prints JSON, here and on the older commands.
    let out = cli_ok(&ts, &["organisations", "list", "--json"]).await;
    let listed: Value = serde_json::from_str(&out).expect("JSON");
    let cvrs: Vec<&str> = items(&listed)
        .iter()
        .filter_map(|o| o["cvr"].as_str())
        .collect();
    assert!(cvrs.contains(&cvr) && cvrs.contains(&DEMO_CVR), "{listed}");
    let out = cli_ok(&ts, &["tokens", "list", "--json"]).await;
    let tokens: Value = serde_json::from_str(&out).expect("JSON");
    assert!(!items(&tokens).is_empty(), "{tokens}");

    // Refusals from the API: the problem, on stderr, and a failing exit.
    let err = cli_fails(
        &ts,
        &["organisations", "create", "--cvr", cvr, "--name", "Again"],
    )
    .await;
    assert!(err.starts_with("estd: HTTP 409 "), "{err}");
    let err = cli_fails(
        &ts,
        &[
            "organisations",
            "create",
            "--cvr",
            "12345678",
            "--name",
            "Bad",
        ],
    )
    .await;
    assert!(
        err.starts_with("estd: HTTP 400 Invalid field: cvr: "),
        "{err}"
    );
    let err = cli_fails(&ts, &["organisations", "show", "--cvr", "11111111"]).await;
    assert!(err.contains("HTTP 404"), "{err}");
    ts.shutdown().await;
}

#[tokio::test]
async fn the_public_database_is_searched_without_a_token() {
    let dir = tempfile::tempdir().expect("tmp");
    // About the public search, not e-mail validation (email_validation.rs), which is off.
    let ts = TestServer::start_with(dir.path(), "[email_validation]\nenabled = false\n").await;
    let created = cli_profile(
        &ts,
        "Published",
        "published",
        &[
            "--email",
            "shared@demo.example",
            "--publish",
            "--identification",
            "one-time-code",
            "--order",
        ],
    )
    .await;
    let reference = created["order"]["reference"].as_str().expect("reference");
    let code = created["order"]["code"].as_str().expect("code");
    let (_k, csr) = demo_csr("Published");
    let published = serial_of(&issued_cert(
        &collect(&ts, "published", reference, code, &csr).await,
    ))
    .to_string();

    // No token: the token file does not exist, and no --token is given.
    let public = |extra: &[&str]| {
        let mut args = tokenless_args(&ts, dir.path(), &["public", "search"]);
        args.extend(extra.iter().map(|s| s.to_string()));
        estd_testkit::process::estd_cli(args)
    };
    let (ok, out, err) = public(&["--email", "shared@demo.example"]).await;
    assert!(ok, "public search failed: {err}");
    assert!(
        out.starts_with("SERIAL\tSTATUS\tNOT_AFTER\tSUBJECT\n"),
        "{out}"
    );
    assert!(out.contains(&format!("{published}\tissued\t")), "{out}");
    assert!(out.contains("1 certificates"), "{out}");
    let (ok, out, err) = public(&["--cvr", DEMO_CVR, "--output", "json"]).await;
    assert!(ok, "public search failed: {err}");
    let answer: Value = serde_json::from_str(&out).expect("JSON");
    let serials: Vec<&str> = items(&answer)
        .iter()
        .filter_map(|c| c["serial"].as_str())
        .collect();
    assert_eq!(serials, vec![published.as_str()], "never the unpublished");
    let (ok, out, err) = public(&["--serial", &published, "--pem"]).await;
    assert!(ok, "public search failed: {err}");
    let cert = x509_cert::Certificate::from_pem(out.as_bytes()).expect("PEM");
    assert_eq!(serial_of(&cert).to_string(), published);

    // A bad filter: the API's 400 names the field.
    let (ok, out, err) = public(&["--cvr", "1"]).await;
    assert!(!ok && out.is_empty(), "{out}");
    assert!(
        err.starts_with("estd: HTTP 400 Invalid field: cvr: "),
        "{err}"
    );
    // No filter at all: a usage error.
    let (ok, _, err) = public(&[]).await;
    assert!(!ok);
    assert!(err.contains("--email"), "{err}");
    // The same token-less call of an authenticated command fails on the token file.
    let args = tokenless_args(&ts, dir.path(), &["audit"]);
    let (ok, _, err) = estd_testkit::process::estd_cli(args).await;
    assert!(!ok);
    assert!(err.contains("no-such-token"), "{err}");
    ts.shutdown().await;
}

#[tokio::test]
async fn every_command_explains_itself() {
    let help = |args: &[&str]| {
        let mut a = vec!["admin".to_string()];
        a.extend(args.iter().map(|s| s.to_string()));
        a.push("--help".into());
        estd_testkit::process::estd_cli(a)
    };
    let (ok, out, _) = help(&[]).await;
    assert!(ok);
    for cmd in [
        "orders",
        "certificates",
        "audit",
        "notifications",
        "organisations",
        "tokens",
        "public",
        "--output",
    ] {
        assert!(out.contains(cmd), "{cmd} in help: {out}");
    }
    for (group, commands) in [
        (
            "orders",
            &["show", "approve", "reject", "new-code", "delete"][..],
        ),
        ("certificates", &["show", "renew", "block"][..]),
        ("organisations", &["create", "show", "change", "list"][..]),
        ("public", &["search"][..]),
    ] {
        let (ok, out, _) = help(&[group]).await;
        assert!(ok);
        for cmd in commands {
            assert!(out.contains(cmd), "{group} {cmd} in help: {out}");
            let (ok, out, _) = help(&[group, cmd]).await;
            assert!(ok, "{group} {cmd} --help");
            assert!(
                out.contains("/api/v1/"),
                "{group} {cmd} names its route: {out}"
            );
        }
    }
    let (ok, out, _) = help(&["audit"]).await;
    assert!(ok && out.contains("--before") && out.contains("GET /api/v1/audit"));
}
