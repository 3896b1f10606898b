//! The admin API end to end: a real estd on loopback with real TLS and a real
//! sled store, called over HTTPS with the operator's token, an
//! organisation's token, or a client certificate; and the `estd admin` CLI.

use std::collections::BTreeSet;

use der::Decode;
use estd::model::{CertKind, Profile, Serial, SystemRight};
use estd_testkit::process::estd_cli;
use estd_testkit::*;
use serde_json::{json, Value};

/// An admin API caller over one keep-alive connection.
struct Api {
    client: Client,
    token: Option<String>,
}

/// An answer, with the body parsed as JSON where it is JSON.
struct Reply {
    status: u16,
    body: Value,
    resp: Resp,
}

impl Reply {
    fn str(&self, key: &str) -> &str {
        self.body[key].as_str().unwrap_or_else(|| {
            panic!("no string {key:?} in {}", self.body);
        })
    }
}

impl Api {
    async fn new(ts: &TestServer, token: Option<String>) -> Api {
        Api {
            client: ts.admin_client(None).await,
            token,
        }
    }

    async fn operator(ts: &TestServer) -> Api {
        Api::new(ts, Some(ts.operator_token())).await
    }

    async fn with_cert(ts: &TestServer, identity: &Identity) -> Api {
        Api {
            client: ts.admin_client(Some(identity)).await,
            token: None,
        }
    }

    async fn raw(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Reply {
        let auth = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let mut all: Vec<(&str, &str)> = headers.to_vec();
        if let Some(a) = &auth {
            all.push(("authorization", a));
        }
        let resp = self
            .client
            .send(method, &format!("/api/v1{path}"), &all, body)
            .await;
        let body = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
        Reply {
            status: resp.status,
            body,
            resp,
        }
    }

    async fn call(&mut self, method: &str, path: &str, body: Option<Value>) -> Reply {
        match body {
            Some(b) => {
                self.raw(
                    method,
                    path,
                    &[("content-type", "application/json")],
                    serde_json::to_vec(&b).expect("json"),
                )
                .await
            }
            None => self.raw(method, path, &[], vec![]).await,
        }
    }

    async fn get(&mut self, path: &str) -> Reply {
        self.call("GET", path, None).await
    }

    async fn post(&mut self, path: &str, body: Value) -> Reply {
        self.call("POST", path, Some(body)).await
    }

    async fn patch(&mut self, path: &str, body: Value) -> Reply {
        self.call("PATCH", path, Some(body)).await
    }

    async fn delete(&mut self, path: &str) -> Reply {
        self.call("DELETE", path, None).await
    }

    /// Creates a profile and returns the whole answer, asserting 201.
    async fn create_profile(&mut self, body: Value) -> Value {
        let r = self.post("/profiles", body).await;
        assert_eq!(r.status, 201, "create profile: {}", r.resp.text());
        r.body
    }

    async fn profile_total(&mut self) -> u64 {
        let r = self.get("/profiles?per_page=500").await;
        assert_eq!(r.status, 200, "{}", r.resp.text());
        r.body["total"].as_u64().expect("total")
    }
}

/// Asserts a problem document with `status` and, for a 400, the `field`.
/// Whether creating a token for `cvr` is refused with a detail containing `text`.
async fn r_detail_contains(api: &mut Api, cvr: &str, text: &str) -> bool {
    let r = api
        .post(
            &format!("/organisations/{cvr}/tokens"),
            json!({"name": "x"}),
        )
        .await;
    r.body["detail"].as_str().is_some_and(|d| d.contains(text))
}

#[track_caller]
fn assert_problem(r: &Reply, status: u16, field: Option<&str>) {
    assert_eq!(r.status, status, "answer: {}", r.resp.text());
    assert_eq!(
        r.resp.header("content-type"),
        Some("application/problem+json"),
        "problem content type"
    );
    assert_eq!(r.body["status"].as_u64(), Some(u64::from(status)));
    assert!(r.body["title"].is_string(), "title: {}", r.body);
    assert!(r.body["detail"].is_string(), "detail: {}", r.body);
    let t = r.body["type"].as_str().expect("type");
    assert!(
        t == "about:blank" || t.starts_with("urn:estd:error:"),
        "type {t}"
    );
    if let Some(f) = field {
        assert_eq!(r.body["field"].as_str(), Some(f), "field in {}", r.body);
    }
}

/// A profile body for the demo organisation with API enrolment over EST.
fn profile_body(name: &str, label: &str) -> Value {
    json!({
        "cvr": DEMO_CVR,
        "name": name,
        "kind": "system",
        "contact": {"name": "Karen Hansen", "email": "karen@demo.example"},
        "rights": [],
        "identification": "api",
        "issuance": "est",
        "est_label": label,
    })
}

/// A profile body whose certificates are collected with a one-time code over EST.
fn code_profile_body(name: &str, label: &str) -> Value {
    let mut b = profile_body(name, label);
    b["identification"] = json!("one-time-code");
    b
}

fn stored_profile(ts: &TestServer, id: &str) -> Profile {
    ts.app().store.profile(id).expect("store").expect("profile")
}

/// Collects an order's certificate over EST with its reference number and
/// one-time code (a profile's certificate is named after the profile).
async fn collect_over_est(
    ts: &TestServer,
    label: &str,
    cn: &str,
    reference: &str,
    code: &str,
) -> Resp {
    let mut est = ts.client(None).await;
    let (_key, csr) = demo_csr(cn);
    let basic = format!("Basic {}", b64(format!("{reference}:{code}").as_bytes()));
    est.send(
        "POST",
        &format!("/.well-known/est/{label}/simpleenroll"),
        &[
            ("content-type", "application/pkcs10"),
            ("authorization", &basic),
        ],
        b64(&csr).into_bytes(),
    )
    .await
}

fn csv_rows(body: &[u8]) -> (Vec<String>, Vec<Vec<String>>) {
    let mut reader = csv::Reader::from_reader(body);
    let header = reader
        .headers()
        .expect("header")
        .iter()
        .map(str::to_owned)
        .collect();
    let rows = reader
        .records()
        .map(|r| r.expect("row").iter().map(str::to_owned).collect())
        .collect();
    (header, rows)
}

const CSV_HEADER: [&str; 6] = [
    "profile_id",
    "profile_name",
    "status",
    "serial",
    "not_after",
    "subject",
];

#[tokio::test]
async fn organisations_are_created_read_and_changed() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let mut op = Api::operator(&ts).await;

    let r = op
        .post(
            "/organisations",
            json!({"cvr": "87654311", "name": "Beta A/S", "allow_user_certs": true,
                   "allow_seal": false, "p_numbers": ["1234567890"], "se_numbers": []}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.resp.text());
    assert_eq!(r.resp.header("content-type"), Some("application/json"));
    assert_eq!(
        r.resp.header("location"),
        Some("/api/v1/organisations/87654311")
    );
    assert_eq!(r.str("name"), "Beta A/S");
    let stored = ts
        .app()
        .store
        .org("87654311")
        .expect("store")
        .expect("stored");
    assert_eq!(stored.p_numbers, vec!["1234567890".to_string()]);

    let r = op.get("/organisations/87654311").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["allow_user_certs"], json!(true));

    let r = op
        .patch(
            "/organisations/87654311",
            json!({"name": "Beta ApS", "allow_seal": true}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.resp.text());
    let r = op.get("/organisations/87654311").await;
    assert_eq!(r.str("name"), "Beta ApS");
    assert_eq!(r.body["allow_seal"], json!(true));
    assert_eq!(
        r.body["p_numbers"],
        json!(["1234567890"]),
        "untouched fields stay"
    );

    // Validation: each refusal names the field, and nothing is stored.
    for bad in ["1234567", "123456749", "1234567a", ""] {
        let r = op
            .post("/organisations", json!({"cvr": bad, "name": "Bad"}))
            .await;
        assert_problem(&r, 400, Some("cvr"));
        assert_eq!(r.body["type"], json!("urn:estd:error:invalid-field"));
    }
    let r = op
        .post("/organisations", json!({"cvr": "11112218", "name": "  "}))
        .await;
    assert_problem(&r, 400, Some("name"));
    let r = op
        .post(
            "/organisations",
            json!({"cvr": "11112218", "name": "P", "p_numbers": ["12"]}),
        )
        .await;
    assert_problem(&r, 400, Some("p_numbers"));
    let r = op
        .post(
            "/organisations",
            json!({"cvr": "11112218", "name": "X", "colour": "red"}),
        )
        .await;
    assert_problem(&r, 400, Some("colour"));
    assert!(ts.app().store.org("11112218").expect("store").is_none());

    // Duplicate CVR: 409, and the existing organisation is unchanged.
    let r = op
        .post(
            "/organisations",
            json!({"cvr": "87654311", "name": "Impostor"}),
        )
        .await;
    assert_problem(&r, 409, None);
    assert!(r.str("detail").contains("87654311"));
    assert_eq!(
        op.get("/organisations/87654311").await.str("name"),
        "Beta ApS"
    );

    // A failed PATCH changes nothing.
    let r = op
        .patch(
            "/organisations/87654311",
            json!({"name": "Gamma", "se_numbers": ["1"]}),
        )
        .await;
    assert_problem(&r, 400, Some("se_numbers"));
    assert_eq!(
        op.get("/organisations/87654311").await.str("name"),
        "Beta ApS"
    );

    // Body rules: JSON only, well-formed, within 64 KiB.
    let r = op
        .raw(
            "POST",
            "/organisations",
            &[("content-type", "text/plain")],
            b"{}".to_vec(),
        )
        .await;
    assert_problem(&r, 415, None);
    let r = op
        .raw(
            "POST",
            "/organisations",
            &[("content-type", "application/json")],
            b"{\"cvr\": ".to_vec(),
        )
        .await;
    assert_problem(&r, 400, None);
    assert_eq!(r.body["type"], json!("urn:estd:error:malformed-body"));
    // (The server closes the connection after a 413, so this uses its own.)
    let mut oversized = Api::operator(&ts).await;
    let big = format!(
        "{{\"cvr\":\"22223321\",\"name\":\"{}\"}}",
        "x".repeat(70 * 1024)
    );
    let r = oversized
        .raw(
            "POST",
            "/organisations",
            &[("content-type", "application/json")],
            big.into_bytes(),
        )
        .await;
    assert_problem(&r, 413, None);

    // The list shows both organisations.
    let r = op.get("/organisations").await;
    let cvrs: Vec<&str> = r.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|o| o["cvr"].as_str())
        .collect();
    assert_eq!(cvrs, vec![DEMO_CVR, "87654311"]);

    // Only an operator creates organisations.
    let r = op
        .post(
            &format!("/organisations/{DEMO_CVR}/tokens"),
            json!({"name": "demo-admin"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.resp.text());
    let mut demo = Api::new(&ts, Some(r.str("token").to_owned())).await;
    let r = demo
        .post(
            "/organisations",
            json!({"cvr": "33334443", "name": "Sneaky"}),
        )
        .await;
    assert_problem(&r, 403, None);
    assert!(ts.app().store.org("33334443").expect("store").is_none());
    ts.shutdown().await;
}

#[tokio::test]
async fn profiles_are_validated_and_a_failed_call_changes_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let mut op = Api::operator(&ts).await;
    let before = op.profile_total().await;

    // Without an order.
    let created = op
        .create_profile(profile_body("Door sensors", "door-sensors"))
        .await;
    let profile = &created["profile"];
    let id = profile["id"].as_str().expect("id");
    assert!(uuid::Uuid::parse_str(id).is_ok(), "UUID: {id}");
    assert_eq!(profile["validity_days"], json!(1095));
    assert_eq!(profile["est_label"], json!("door-sensors"));
    assert!(created.get("order").is_none());
    assert_eq!(stored_profile(&ts, id).name, "Door sensors");
    let r = op.get(&format!("/profiles/{id}")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.str("name"), "Door sensors");

    // "Create certificate profile and order certificate" in one call.
    let mut body = code_profile_body("HR signing", "hr-signing");
    body["order"] = json!({});
    let created = op.create_profile(body).await;
    let order = &created["order"];
    let reference = order["reference"].as_str().expect("reference");
    assert_eq!(reference.len(), 12);
    assert!(reference.bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(order["status"], json!("pending"));
    assert_eq!(
        order["code"].as_str().map(str::len),
        Some(16),
        "one-time code"
    );
    let stored_order = ts
        .app()
        .store
        .order(reference)
        .expect("store")
        .expect("order");
    assert_eq!(
        stored_order.profile_id,
        created["profile"]["id"].as_str().expect("id")
    );

    // With a user certificate order.
    let mut body = code_profile_body("Staff", "staff");
    body["order"] = json!({"user": {"name": "Jens Jensen", "email": "jens@demo.example"}});
    let created = op.create_profile(body).await;
    assert_eq!(
        created["order"]["user"]["email"],
        json!("jens@demo.example")
    );

    let after_good = op.profile_total().await;
    assert_eq!(after_good, before + 3);

    // Refusals, each naming its field.
    let mut missing_name = profile_body("x", "x-label");
    missing_name.as_object_mut().expect("obj").remove("name");
    let r = op.post("/profiles", missing_name).await;
    assert_problem(&r, 400, Some("name"));
    let r = op.post("/profiles", profile_body("  ", "blank-name")).await;
    assert_problem(&r, 400, Some("name"));

    let r = op
        .post("/profiles", profile_body("door SENSORS", "other-label"))
        .await;
    assert_problem(&r, 409, None);
    assert!(r.str("detail").contains("unique"), "{}", r.body);

    let r = op
        .post("/profiles", profile_body("New name", "door-sensors"))
        .await;
    assert_problem(&r, 409, None);
    assert!(r.str("detail").contains("door-sensors"), "{}", r.body);

    let r = op.post("/profiles", profile_body("Bad label", "a/b")).await;
    assert_problem(&r, 400, Some("est_label"));

    let mut b = profile_body("Rights", "rights");
    b["rights"] = json!(["est-enroll", "root"]);
    let r = op.post("/profiles", b).await;
    assert_problem(&r, 400, Some("rights"));

    let mut b = profile_body("Pair", "pair");
    b["issuance"] = json!("browser");
    let r = op.post("/profiles", b).await;
    assert_problem(&r, 400, Some("issuance"));

    let mut b = profile_body("Method", "method");
    b["identification"] = json!("carrier-pigeon");
    let r = op.post("/profiles", b).await;
    assert_problem(&r, 400, Some("identification"));

    let mut b = profile_body("Danish", "danish");
    b["contact"]["email"] = json!("søren@demo.example");
    let r = op.post("/profiles", b).await;
    assert_problem(&r, 400, Some("contact.email"));
    assert!(r.str("detail").contains("changed first"), "{}", r.body);
    let mut b = profile_body("Danish", "danish");
    b["email"] = json!("ÅSE@demo.example");
    let r = op.post("/profiles", b).await;
    assert_problem(&r, 400, Some("email"));
    assert!(r.str("detail").contains("changed first"), "{}", r.body);

    let mut b = profile_body("Seal", "seal");
    b["seal"] = json!(true);
    let r = op.post("/profiles", b).await;
    assert_problem(&r, 400, Some("seal"));

    let mut b = profile_body("P", "p-number");
    b["p_number"] = json!("1234567890");
    let r = op.post("/profiles", b).await;
    assert_problem(&r, 400, Some("p_number"));

    let mut b = profile_body("Unknown org", "unknown-org");
    b["cvr"] = json!("99999993");
    let r = op.post("/profiles", b).await;
    assert_problem(&r, 400, Some("cvr"));

    let mut b = profile_body("Kind", "kind");
    b["kind"] = json!("user");
    let r = op.post("/profiles", b).await;
    assert_problem(&r, 400, Some("kind"));

    let mut b = profile_body("Extra", "extra");
    b["colour"] = json!("red");
    let r = op.post("/profiles", b).await;
    assert_problem(&r, 400, Some("colour"));

    // An order that fails takes the profile with it: an organisation that
    // does not allow user certificates.
    let r = op
        .post(
            "/organisations",
            json!({"cvr": "44445557", "name": "No Users A/S", "allow_user_certs": false}),
        )
        .await;
    assert_eq!(r.status, 201);
    let mut b = code_profile_body("Users", "no-users");
    b["cvr"] = json!("44445557");
    b["order"] = json!({"user": {"name": "Ole", "email": "ole@nousers.example"}});
    let r = op.post("/profiles", b.clone()).await;
    assert_problem(&r, 403, None);
    assert!(r.str("detail").contains("user certificates"), "{}", r.body);

    assert_eq!(
        op.profile_total().await,
        after_good,
        "failed calls stored nothing"
    );
    assert!(ts
        .app()
        .store
        .profile_by_label("no-users")
        .expect("store")
        .is_none());
    assert!(ts
        .app()
        .store
        .profile_by_label("danish")
        .expect("store")
        .is_none());

    // The name and label of the undone profile are free again.
    b.as_object_mut().expect("obj").remove("order");
    let created = op.create_profile(b).await;
    assert_eq!(created["profile"]["est_label"], json!("no-users"));

    // PATCH: the label may not change; rights changes carry a notice.
    let r = op
        .patch(&format!("/profiles/{id}"), json!({"est_label": "renamed"}))
        .await;
    assert_problem(&r, 400, Some("est_label"));
    let r = op
        .patch(&format!("/profiles/{id}"), json!({"publish": true}))
        .await;
    assert_eq!(r.status, 200, "{}", r.resp.text());
    assert!(r.body.get("notice").is_none());
    assert_eq!(r.body["profile"]["publish"], json!(true));
    let r = op
        .patch(
            &format!("/profiles/{id}"),
            json!({"rights": ["est-enroll"], "contact": {"name": "Bo", "email": "bo@demo.example"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.resp.text());
    assert_eq!(
        r.str("notice"),
        "changes to system rights and seal take effect only in certificates issued from now on"
    );
    let stored = stored_profile(&ts, id);
    assert_eq!(stored.rights, vec![SystemRight::EstEnroll]);
    assert_eq!(
        stored.contact.map(|c| c.email).as_deref(),
        Some("bo@demo.example")
    );
    assert_eq!(stored.est_label, "door-sensors");
    // A failed PATCH changes nothing.
    let r = op
        .patch(
            &format!("/profiles/{id}"),
            json!({"name": "Changed", "contact": {"name": "Bo", "email": "bø@demo.example"}}),
        )
        .await;
    assert_problem(&r, 400, Some("contact.email"));
    assert_eq!(stored_profile(&ts, id).name, "Door sensors");
    let r = op
        .patch(&format!("/profiles/{id}"), json!({"name": "HR Signing"}))
        .await;
    assert_problem(&r, 409, None);
    assert_eq!(stored_profile(&ts, id).name, "Door sensors");

    // An organisation cannot drop what its profiles use.
    let r = op
        .patch(
            "/organisations/44445557",
            json!({"p_numbers": ["1111111111"]}),
        )
        .await;
    assert_eq!(r.status, 200);
    let mut b = profile_body("With P", "with-p");
    b["cvr"] = json!("44445557");
    b["p_number"] = json!("1111111111");
    op.create_profile(b).await;
    let r = op
        .patch("/organisations/44445557", json!({"p_numbers": []}))
        .await;
    assert_problem(&r, 409, None);
    assert_eq!(
        ts.app()
            .store
            .org("44445557")
            .expect("store")
            .expect("org")
            .p_numbers,
        vec!["1111111111".to_string()]
    );
    ts.shutdown().await;
}

#[tokio::test]
async fn profiles_are_searched_paged_and_exported_as_csv() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let mut op = Api::operator(&ts).await;
    let mut ids = Vec::new();
    for (name, label, contact, contact_email, email) in [
        (
            "Search alpha",
            "s-alpha",
            "Anna Andersen",
            "anna@alpha.example",
            "alpha-cert@demo.example",
        ),
        (
            "Search beta",
            "s-beta",
            "Bent Berg",
            "bent.berg@beta.example",
            "beta-cert@demo.example",
        ),
        (
            "Search gamma",
            "s-gamma",
            "Gitte Gram",
            "gitte@gamma.example",
            "gamma-cert@demo.example",
        ),
    ] {
        let mut b = profile_body(name, label);
        b["contact"] = json!({"name": contact, "email": contact_email});
        b["email"] = json!(email);
        let created = op.create_profile(b).await;
        ids.push(created["profile"]["id"].as_str().expect("id").to_owned());
    }
    let names = |r: &Reply| -> Vec<String> {
        r.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|p| p["name"].as_str().expect("name").to_owned())
            .collect()
    };

    let r = op.get("/profiles?q=SEARCH").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        names(&r),
        vec!["Search alpha", "Search beta", "Search gamma"]
    );
    assert_eq!(r.body["total"], json!(3));
    assert_eq!(r.body["per_page"], json!(50));
    assert_eq!(
        names(&op.get("/profiles?q=Bent.BERG%40beta").await),
        vec!["Search beta"]
    );
    assert_eq!(
        names(&op.get("/profiles?q=gitte+gram").await),
        vec!["Search gamma"]
    );
    assert_eq!(
        names(&op.get("/profiles?q=alpha-cert%40").await),
        vec!["Search alpha"]
    );
    let r = op
        .get(&format!("/profiles?q={}", ids[1].to_uppercase()))
        .await;
    assert_eq!(names(&r), vec!["Search beta"]);
    assert_eq!(
        op.get("/profiles?q=nothing-like-this").await.body["total"],
        json!(0)
    );
    let r = op.get(&format!("/profiles?cvr={DEMO_CVR}")).await;
    assert_eq!(r.body["total"], json!(5), "3 new and the two demo profiles");

    // Pagination.
    let p1 = op.get("/profiles?q=search&per_page=2&page=1").await;
    let p2 = op.get("/profiles?q=search&per_page=2&page=2").await;
    let p3 = op.get("/profiles?q=search&per_page=2&page=3").await;
    assert_eq!(names(&p1), vec!["Search alpha", "Search beta"]);
    assert_eq!(names(&p2), vec!["Search gamma"]);
    assert!(names(&p3).is_empty());
    assert_eq!(p2.body["total"], json!(3));
    assert_eq!(p2.body["page"], json!(2));
    assert_problem(
        &op.get("/profiles?per_page=501").await,
        400,
        Some("per_page"),
    );
    assert_problem(&op.get("/profiles?page=0").await, 400, Some("page"));
    assert_problem(&op.get("/profiles?sort=name").await, 400, Some("sort"));

    // CSV of one profile: the issued certificate's row.
    let org = demo_org(ts.app());
    let alpha = stored_profile(&ts, &ids[0]);
    let (serial, _) = ts.issue_direct(&org, &alpha, "alpha-device", 200);
    let r = op
        .get(&format!("/profiles/{}/certificates.csv", ids[0]))
        .await;
    assert_eq!(r.status, 200, "{}", r.resp.text());
    assert!(r
        .resp
        .header("content-type")
        .is_some_and(|t| t.starts_with("text/csv")));
    let (header, rows) = csv_rows(&r.resp.body);
    assert_eq!(header, CSV_HEADER);
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    assert_eq!(row[0], ids[0]);
    assert_eq!(row[1], "Search alpha");
    assert_eq!(row[2], "issued");
    assert_eq!(row[3], serial.to_string());
    let rec = ts.app().store.cert(&serial).expect("store").expect("cert");
    let cert = x509_cert::Certificate::from_der(&rec.der).expect("cert");
    assert_eq!(
        row[4],
        cert.tbs_certificate
            .validity
            .not_after
            .to_date_time()
            .to_string(),
        "not_after as RFC 3339 UTC"
    );
    assert_eq!(row[5], rec.subject, "subject with its commas survives CSV");
    assert!(row[5].contains(','));

    // The organisation's export has it, and the demo IdM certificate too.
    let r = op.get(&format!("/export.csv?cvr={DEMO_CVR}")).await;
    assert_eq!(r.status, 200);
    let (header, rows) = csv_rows(&r.resp.body);
    assert_eq!(header, CSV_HEADER);
    let serials: BTreeSet<&str> = rows.iter().map(|r| r[3].as_str()).collect();
    let demo_certs: BTreeSet<String> = ts
        .app()
        .store
        .certs()
        .map(|c| c.expect("cert"))
        .filter(|c| c.cvr == DEMO_CVR)
        .map(|c| c.serial.to_string())
        .collect();
    assert_eq!(serials, demo_certs.iter().map(String::as_str).collect());
    assert!(serials.contains(serial.to_string().as_str()));
    assert_problem(&op.get("/export.csv?cvr=99999993").await, 404, None);
    assert_problem(&op.get("/export.csv?cvr=12").await, 400, Some("cvr"));
    ts.shutdown().await;
}

#[tokio::test]
async fn a_pending_order_is_deleted_and_an_issued_one_is_not() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let mut op = Api::operator(&ts).await;
    let mut b = code_profile_body("Collect", "collect");
    b["order"] = json!({});
    let created = op.create_profile(b).await;
    let profile_id = created["profile"]["id"].as_str().expect("id").to_owned();
    let first = created["order"]["reference"]
        .as_str()
        .expect("ref")
        .to_owned();
    let first_code = created["order"]["code"].as_str().expect("code").to_owned();

    let r = op.post("/orders", json!({"profile_id": profile_id})).await;
    assert_eq!(r.status, 201, "{}", r.resp.text());
    let second = r.str("reference").to_owned();
    assert!(r.body["code"].is_string());

    let listed = |r: &Reply| -> BTreeSet<String> {
        r.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|o| o["reference"].as_str().expect("ref").to_owned())
            .collect()
    };
    let list_path = format!("/orders?profile_id={profile_id}");
    let r = op.get(&list_path).await;
    assert_eq!(listed(&r), BTreeSet::from([first.clone(), second.clone()]));

    // Delete the second: gone from lists, kept for history.
    let r = op.delete(&format!("/orders/{second}")).await;
    assert_eq!(r.status, 200, "{}", r.resp.text());
    assert_eq!(r.str("status"), "deleted");
    assert_eq!(
        listed(&op.get(&list_path).await),
        BTreeSet::from([first.clone()])
    );
    let r = op.get(&format!("/orders/{second}")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.str("status"), "deleted");
    let r = op.delete(&format!("/orders/{second}")).await;
    assert_problem(&r, 409, None);
    assert!(r.str("detail").contains("deleted"), "{}", r.body);

    // Collect the first over EST with its one-time code: then it cannot be deleted.
    let resp = collect_over_est(&ts, "collect", "Collect", &first, &first_code).await;
    let cert = issued_cert(&resp);
    let serial = serial_of(&cert);
    let r = op.get(&format!("/orders/{first}")).await;
    assert_eq!(r.str("status"), "issued");
    assert_eq!(r.str("serial"), serial.to_string());
    let r = op.delete(&format!("/orders/{first}")).await;
    assert_problem(&r, 409, None);
    assert!(r.str("detail").contains("issued"), "{}", r.body);
    let stored = ts.app().store.order(&first).expect("store").expect("order");
    assert_eq!(stored.status.name(), "issued");
    let r = op.post(&format!("/orders/{first}/code"), json!({})).await;
    assert_problem(&r, 409, None);

    // A new code replaces the old one.
    let r = op.post("/orders", json!({"profile_id": profile_id})).await;
    let third = r.str("reference").to_owned();
    let old_code = r.str("code").to_owned();
    let r = op.post(&format!("/orders/{third}/code"), json!({})).await;
    assert_eq!(r.status, 200, "{}", r.resp.text());
    let new_code = r.str("code").to_owned();
    assert_ne!(new_code, old_code);
    let resp = collect_over_est(&ts, "collect", "Collect", &third, &old_code).await;
    assert_eq!(resp.status, 401, "the old code no longer works");
    let resp = collect_over_est(&ts, "collect", "Collect", &third, &new_code).await;
    issued_cert(&resp);

    // Approval applies only to held enrolments.
    let r = op.post("/orders", json!({"profile_id": profile_id})).await;
    let fourth = r.str("reference").to_owned();
    let r = op
        .post(&format!("/orders/{fourth}/approve"), json!({}))
        .await;
    assert_problem(&r, 409, None);
    assert_problem(&op.get("/orders/000000000000").await, 404, None);

    // The history has the order, the deletion and the collection.
    let r = op.get(&format!("/audit?profile_id={profile_id}")).await;
    let actions: Vec<&str> = r.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for wanted in ["configure", "order", "delete-order", "collect", "new-code"] {
        assert!(actions.contains(&wanted), "{wanted} in {actions:?}");
    }
    ts.shutdown().await;
}

#[tokio::test]
async fn an_organisation_sees_and_changes_only_its_own() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let mut op = Api::operator(&ts).await;

    // Organisation A (the demo one) with a profile, an order and a certificate.
    let mut b = code_profile_body("A secret profile", "a-secret");
    b["order"] = json!({});
    let created = op.create_profile(b).await;
    let a_profile = created["profile"]["id"].as_str().expect("id").to_owned();
    let a_order = created["order"]["reference"]
        .as_str()
        .expect("ref")
        .to_owned();
    let (a_serial, _) = ts.issue_direct(
        &demo_org(ts.app()),
        &stored_profile(&ts, &a_profile),
        "a-device",
        100,
    );

    // Organisation B and its token.
    let r = op
        .post(
            "/organisations",
            json!({"cvr": "55667780", "name": "Bravo A/S", "allow_user_certs": true}),
        )
        .await;
    assert_eq!(r.status, 201);
    let r = op
        .post(
            "/organisations/55667780/tokens",
            json!({"name": "bravo-admin"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.resp.text());
    let b_token = r.str("token").to_owned();
    assert!(b_token.starts_with("estd_"));
    let mut bravo = Api::new(&ts, Some(b_token)).await;

    // B creates its own profile (its CVR is the default) and an order.
    let mut b = code_profile_body("Bravo devices", "bravo-devices");
    b.as_object_mut().expect("obj").remove("cvr");
    b["contact"] = json!({"name": "Bo Bravo", "email": "bo@bravo.example"});
    let created = bravo.create_profile(b).await;
    assert_eq!(created["profile"]["cvr"], json!("55667780"));
    let b_profile = created["profile"]["id"].as_str().expect("id").to_owned();
    let r = bravo
        .post("/orders", json!({"profile_id": b_profile}))
        .await;
    assert_eq!(r.status, 201);
    let b_order = r.str("reference").to_owned();

    // B gets 404 on A's things, and changes nothing.
    assert_problem(
        &bravo.get(&format!("/profiles/{a_profile}")).await,
        404,
        None,
    );
    let r = bravo
        .patch(&format!("/profiles/{a_profile}"), json!({"name": "Pwned"}))
        .await;
    assert_problem(&r, 404, None);
    assert_eq!(stored_profile(&ts, &a_profile).name, "A secret profile");
    assert_problem(&bravo.get(&format!("/orders/{a_order}")).await, 404, None);
    assert_problem(
        &bravo.delete(&format!("/orders/{a_order}")).await,
        404,
        None,
    );
    assert_eq!(
        ts.app()
            .store
            .order(&a_order)
            .expect("store")
            .expect("order")
            .status
            .name(),
        "pending"
    );
    assert_problem(
        &bravo
            .post(&format!("/orders/{a_order}/code"), json!({}))
            .await,
        404,
        None,
    );
    assert_problem(
        &bravo
            .post("/orders", json!({"profile_id": a_profile}))
            .await,
        404,
        None,
    );
    assert_problem(
        &bravo.get(&format!("/certificates/{a_serial}")).await,
        404,
        None,
    );
    let r = bravo
        .post(
            &format!("/certificates/{a_serial}/revoke"),
            json!({"reason": "other"}),
        )
        .await;
    assert_problem(&r, 404, None);
    assert_eq!(
        ts.app()
            .store
            .cert(&a_serial)
            .expect("store")
            .expect("cert")
            .state(0),
        estd::model::CertState::Issued
    );
    assert_problem(
        &bravo.get(&format!("/organisations/{DEMO_CVR}")).await,
        404,
        None,
    );
    assert_problem(
        &bravo
            .patch(
                &format!("/organisations/{DEMO_CVR}"),
                json!({"allow_seal": true}),
            )
            .await,
        404,
        None,
    );
    // Creating tokens is an operator's: refused for its role, before any
    // organisation is looked up, so nothing is learnt of A.
    assert_problem(
        &bravo
            .post(
                &format!("/organisations/{DEMO_CVR}/tokens"),
                json!({"name": "x"}),
            )
            .await,
        403,
        None,
    );
    assert!(r_detail_contains(&mut bravo, DEMO_CVR, "needs one of the roles operator").await);
    assert_problem(
        &bravo
            .get(&format!("/profiles/{a_profile}/certificates.csv"))
            .await,
        404,
        None,
    );
    let mut b = profile_body("Into A", "into-a");
    b["cvr"] = json!(DEMO_CVR);
    assert_problem(&bravo.post("/profiles", b).await, 400, Some("cvr"));

    // B's lists hold only B's.
    let r = bravo.get("/profiles").await;
    let cvrs: BTreeSet<&str> = r.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|p| p["cvr"].as_str())
        .collect();
    assert_eq!(cvrs, BTreeSet::from(["55667780"]));
    assert_eq!(
        bravo.get(&format!("/profiles?cvr={DEMO_CVR}")).await.body["total"],
        json!(0)
    );
    let r = bravo.get("/orders").await;
    let refs: Vec<&str> = r.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|o| o["reference"].as_str())
        .collect();
    assert_eq!(refs, vec![b_order.as_str()]);
    let r = bravo.get("/audit").await;
    assert!(r.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .all(|e| e["cvr"] == json!("55667780")));
    assert!(r.body["total"].as_u64().expect("total") > 0);
    let r = bravo.get("/export.csv").await;
    let (_, rows) = csv_rows(&r.resp.body);
    assert!(rows.is_empty(), "B has no certificates: {rows:?}");
    let r = bravo.get("/organisations").await;
    assert_eq!(r.body["total"], json!(1));

    // A's actors (a token, and the demo IdM certificate with admin-api) see none of B's.
    let r = op
        .post(
            &format!("/organisations/{DEMO_CVR}/tokens"),
            json!({"name": "alpha-admin"}),
        )
        .await;
    let mut alpha = Api::new(&ts, Some(r.str("token").to_owned())).await;
    let mut idm = Api::with_cert(&ts, &ts.demo_identity()).await;
    for api in [&mut alpha, &mut idm] {
        let r = api.get("/profiles?per_page=500").await;
        assert_eq!(r.status, 200, "{}", r.resp.text());
        let items = r.body["items"].as_array().expect("items");
        assert!(items.iter().all(|p| p["cvr"] == json!(DEMO_CVR)));
        assert!(items.iter().any(|p| p["id"] == json!(a_profile)));
        assert_problem(&api.get(&format!("/profiles/{b_profile}")).await, 404, None);
        assert_problem(&api.get(&format!("/orders/{b_order}")).await, 404, None);
    }
    // A certificate without the admin-api right is refused.
    let mut no_right = stored_profile(&ts, &a_profile);
    no_right.rights = vec![SystemRight::EstEnroll];
    let (_, identity) = ts.issue_direct(&demo_org(ts.app()), &no_right, "no-admin", 30);
    let mut plain = Api::with_cert(&ts, &identity).await;
    assert_problem(&plain.get("/profiles").await, 403, None);
    ts.shutdown().await;
}

#[tokio::test]
async fn certificates_are_revoked_blocked_and_renewed() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let mut op = Api::operator(&ts).await;
    // A one-time-code profile (renewals of API profiles' certificates:
    // tests/it/api_user_orders.rs).
    let created = op
        .create_profile(code_profile_body("Servers", "servers"))
        .await;
    let profile = stored_profile(&ts, created["profile"]["id"].as_str().expect("id"));
    let org = demo_org(ts.app());
    let (serial, _) = ts.issue_direct(&org, &profile, "server-1", 100);

    let r = op.get(&format!("/certificates/{serial}")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.str("status"), "issued");
    assert_eq!(r.str("profile_id"), profile.id);
    assert!(r.str("pem").starts_with("-----BEGIN CERTIFICATE-----"));
    let lower = serial.to_string().to_lowercase();
    assert_eq!(op.get(&format!("/certificates/{lower}")).await.status, 200);
    assert_problem(&op.get("/certificates/XYZ").await, 400, Some("serial"));
    assert_problem(
        &op.get(&format!("/certificates/{}", Serial([0x41; 16])))
            .await,
        404,
        None,
    );

    // Renew before revocation: a new order that renews it.
    let r = op
        .post(&format!("/certificates/{serial}/renew"), json!({}))
        .await;
    assert_eq!(r.status, 201, "{}", r.resp.text());
    assert_eq!(r.str("renews"), serial.to_string());
    // A system certificate's renewal is shown pending (a user's, in progress).
    assert_eq!(r.str("status"), "pending");

    // Revoke: a bad reason is refused, then revoked for good.
    let r = op
        .post(
            &format!("/certificates/{serial}/revoke"),
            json!({"reason": "boredom"}),
        )
        .await;
    assert_problem(&r, 400, Some("reason"));
    let r = op
        .post(
            &format!("/certificates/{serial}/revoke"),
            json!({"reason": "superseded"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.resp.text());
    assert_eq!(r.str("status"), "revoked");
    let r = op.get(&format!("/certificates/{serial}")).await;
    assert_eq!(r.str("status"), "revoked");
    assert_eq!(r.str("revocation_reason"), "superseded");
    let r = op
        .post(
            &format!("/certificates/{serial}/revoke"),
            json!({"reason": "other"}),
        )
        .await;
    assert_problem(&r, 409, None);
    assert!(r.str("detail").contains("revoked"), "{}", r.body);
    let r = op
        .post(&format!("/certificates/{serial}/renew"), json!({}))
        .await;
    assert_problem(&r, 409, None);

    // The contact person is told; the history has it.
    let r = op.get(&format!("/notifications?cvr={DEMO_CVR}")).await;
    assert!(r.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .any(|n| n["kind"] == json!("revoked")
            && n["serial"] == json!(serial.to_string())
            && n["to"] == json!("karen@demo.example")));
    let r = op.get(&format!("/audit?serial={serial}")).await;
    assert!(r.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .any(|e| e["action"] == json!("revoke")));

    // Blocking is for user certificates only.
    let (system_serial, _) = ts.issue_direct(&org, &profile, "server-2", 100);
    let r = op
        .post(&format!("/certificates/{system_serial}/block"), json!({}))
        .await;
    assert_problem(&r, 409, None);
    assert!(r.str("detail").contains("user certificates"), "{}", r.body);
    assert_eq!(
        op.get(&format!("/certificates/{system_serial}"))
            .await
            .str("status"),
        "issued"
    );
    let mut user_profile = profile.clone();
    user_profile.kind = CertKind::User;
    let (user_serial, _) = ts.issue_direct(&org, &user_profile, "Jens Jensen", 100);
    let r = op
        .call("POST", &format!("/certificates/{user_serial}/block"), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.resp.text());
    assert_eq!(r.str("status"), "blocked");
    let r = op
        .post(&format!("/certificates/{user_serial}/block"), json!({}))
        .await;
    assert_problem(&r, 409, None);
    ts.shutdown().await;
}

#[tokio::test]
async fn the_public_database_shows_published_certificates_only() {
    let dir = tempfile::tempdir().expect("tmp");
    // About publishing, not e-mail validation (email_validation.rs), which is off.
    let ts = TestServer::start_with(dir.path(), "[email_validation]\nenabled = false\n").await;
    let mut op = Api::operator(&ts).await;
    let mut issued = Vec::new();
    for (name, label, publish) in [
        ("Published", "published", true),
        ("Private", "private", false),
    ] {
        let mut b = code_profile_body(name, label);
        b["publish"] = json!(publish);
        b["email"] = json!("shared@demo.example");
        b["order"] = json!({});
        let created = op.create_profile(b).await;
        let reference = created["order"]["reference"].as_str().expect("ref");
        let code = created["order"]["code"].as_str().expect("code");
        let resp = collect_over_est(&ts, label, name, reference, code).await;
        issued.push(serial_of(&issued_cert(&resp)).to_string());
    }
    let (published, private) = (&issued[0], &issued[1]);

    let mut anonymous = Api::new(&ts, None).await;
    let serials = |r: &Reply| -> BTreeSet<String> {
        r.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|c| c["serial"].as_str().expect("serial").to_owned())
            .collect()
    };
    let r = anonymous
        .get("/public/certificates?email=SHARED%40demo.example")
        .await;
    assert_eq!(r.status, 200, "{}", r.resp.text());
    assert_eq!(serials(&r), BTreeSet::from([published.clone()]));
    let item = &r.body["items"][0];
    assert!(item["pem"]
        .as_str()
        .expect("pem")
        .starts_with("-----BEGIN CERTIFICATE-----"));
    assert_eq!(item["status"], json!("issued"));
    assert!(item["subject"]
        .as_str()
        .expect("subject")
        .contains("CN=Published"));
    let r = anonymous
        .get(&format!("/public/certificates?cvr={DEMO_CVR}"))
        .await;
    assert_eq!(
        serials(&r),
        BTreeSet::from([published.clone()]),
        "never the unpublished or the IdM cert"
    );
    let r = anonymous
        .get(&format!("/public/certificates?serial={private}"))
        .await;
    assert!(serials(&r).is_empty());
    let r = anonymous
        .get(&format!("/public/certificates?serial={published}"))
        .await;
    assert_eq!(serials(&r), BTreeSet::from([published.clone()]));
    assert_problem(&anonymous.get("/public/certificates").await, 400, None);
    assert_problem(
        &anonymous.get("/public/certificates?cvr=1").await,
        400,
        Some("cvr"),
    );

    // A revoked published certificate stays visible, with its status.
    let r = op
        .post(
            &format!("/certificates/{published}/revoke"),
            json!({"reason": "other"}),
        )
        .await;
    assert_eq!(r.status, 200);
    let r = anonymous
        .get(&format!("/public/certificates?serial={published}"))
        .await;
    assert_eq!(r.body["items"][0]["status"], json!("revoked"));
    ts.shutdown().await;
}

#[tokio::test]
async fn the_openapi_document_matches_the_route_table() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let mut anonymous = Api::new(&ts, None).await;
    let r = anonymous.get("/openapi.json").await;
    assert_eq!(r.status, 200);
    let doc = r.body;
    assert_eq!(
        doc,
        serde_json::from_str::<Value>(estd::admin::openapi_json()).expect("document")
    );
    // The same document at the admin listener's root.
    let mut root_client = Client::connect(ts.server.admin_addr, &ts.root_der(), None, false).await;
    let at_root = root_client.get("/openapi.json").await;
    assert_eq!(at_root.status, 200);
    assert_eq!(
        serde_json::from_slice::<Value>(&at_root.body).expect("json"),
        doc
    );
    assert!(doc["openapi"].as_str().expect("version").starts_with("3.0"));
    assert_eq!(doc["servers"][0]["url"], json!("/api/v1"));

    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            documented.insert((method.to_uppercase(), path.clone()));
            // Path parameters declared are exactly the template's.
            let in_template: BTreeSet<String> = path
                .split('/')
                .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
                .map(str::to_owned)
                .collect();
            let declared: BTreeSet<String> = operation["parameters"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .filter(|p| p["in"] == json!("path"))
                        .map(|p| p["name"].as_str().expect("name").to_owned())
                        .collect()
                })
                .unwrap_or_default();
            assert_eq!(declared, in_template, "{method} {path}");
            assert!(operation["responses"]
                .as_object()
                .is_some_and(|r| !r.is_empty()));
        }
    }
    let routed: BTreeSet<(String, String)> = estd::admin::routes::ROUTES
        .iter()
        .map(|r| (r.method.to_owned(), r.template.to_owned()))
        .collect();
    assert_eq!(documented, routed);

    // Every $ref resolves.
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r.clone());
                }
                m.values().for_each(|v| refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let name = r.strip_prefix("#/components/schemas/").expect("local ref");
        assert!(
            doc["components"]["schemas"].get(name).is_some(),
            "{r} resolves"
        );
    }
    ts.shutdown().await;
}

#[tokio::test]
async fn calls_without_valid_credentials_get_401() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let mut anonymous = Api::new(&ts, None).await;
    for path in [
        "/profiles",
        "/organisations",
        "/orders",
        "/audit",
        "/export.csv",
    ] {
        let r = anonymous.get(path).await;
        assert_problem(&r, 401, None);
        assert_eq!(r.body["type"], json!("about:blank"));
        assert_eq!(
            r.resp.header("www-authenticate"),
            Some("Bearer realm=\"estd-admin\"")
        );
    }
    let r = anonymous
        .post("/organisations", json!({"cvr": "66667774", "name": "Anon"}))
        .await;
    assert_problem(&r, 401, None);
    assert!(ts.app().store.org("66667774").expect("store").is_none());

    let mut wrong = Api::new(&ts, Some("estd_not-a-real-token".into())).await;
    assert_problem(&wrong.get("/profiles").await, 401, None);
    let mut basic = Api::new(&ts, None).await;
    let r = basic
        .raw(
            "GET",
            "/profiles",
            &[("authorization", "Basic dXNlcjpwYXNz")],
            vec![],
        )
        .await;
    assert_problem(&r, 401, None);

    // /metrics and /healthz stay open; unknown paths and methods are problems too.
    let mut c = ts.admin_client(None).await;
    assert_eq!(c.get("/healthz").await.status, 200);
    let m = c.get("/metrics").await;
    assert_eq!(m.status, 200);
    assert!(
        m.text().contains("endpoint=\"api-profiles\""),
        "API calls are counted"
    );
    let mut op = Api::operator(&ts).await;
    assert_problem(&op.get("/nowhere").await, 404, None);
    let r = op.call("PUT", "/profiles", Some(json!({}))).await;
    assert_problem(&r, 405, None);
    assert_eq!(r.resp.header("allow"), Some("GET, POST"));
    ts.shutdown().await;
}

#[tokio::test]
async fn the_admin_cli_works_against_a_real_server() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let conn = ts.admin_cli_args();
    let cli = |extra: &[&str]| {
        let mut a = conn.clone();
        a.extend(extra.iter().map(|s| s.to_string()));
        estd_cli(a)
    };

    // list: profiles by query.
    let (ok, out, err) = cli(&["list", "--query", "demo"]).await;
    assert!(ok, "list failed: {err}");
    assert!(
        out.contains("Demo devices") && out.contains("Demo IdM system"),
        "{out}"
    );
    assert!(out.contains("\tdemo-idm\t"), "{out}");

    // create-profile with an order prints the profile, reference and code.
    let (ok, out, err) = cli(&[
        "create-profile",
        "--cvr",
        DEMO_CVR,
        "--name",
        "CLI made",
        "--label",
        "cli-made",
        "--contact-name",
        "Cli Person",
        "--contact-email",
        "cli@demo.example",
        "--identification",
        "one-time-code",
        "--order",
    ])
    .await;
    assert!(ok, "create-profile failed: {err}");
    assert!(out.contains("\"est_label\": \"cli-made\""), "{out}");
    let reference = out
        .lines()
        .find_map(|l| l.strip_prefix("reference: "))
        .expect("reference line")
        .to_owned();
    assert!(out.contains("one-time code: "), "{out}");
    let profile = ts
        .app()
        .store
        .profile_by_label("cli-made")
        .expect("store")
        .expect("created through the CLI");
    assert!(ts.app().store.order(&reference).expect("store").is_some());

    // order, then list the profile's orders.
    let (ok, out, err) = cli(&["order", "--profile", &profile.id]).await;
    assert!(ok, "order failed: {err}");
    let second = out
        .lines()
        .find_map(|l| l.strip_prefix("reference: "))
        .expect("reference line")
        .to_owned();
    let (ok, out, err) = cli(&["list", "--profile", &profile.id]).await;
    assert!(ok, "list orders failed: {err}");
    assert!(out.contains(&reference) && out.contains(&second), "{out}");
    assert!(out.contains("2 orders"), "{out}");

    // export: CSV on stdout with the certificate's row.
    let (serial, _) = ts.issue_direct(&demo_org(ts.app()), &profile, "cli-device", 50);
    let (ok, out, err) = cli(&["export", "--cvr", DEMO_CVR]).await;
    assert!(ok, "export failed: {err}");
    let (header, rows) = csv_rows(out.as_bytes());
    assert_eq!(header, CSV_HEADER);
    let row = rows
        .iter()
        .find(|r| r[3] == serial.to_string())
        .expect("the certificate's row");
    assert_eq!(row[1], "CLI made");
    assert_eq!(row[2], "issued");

    // revoke.
    let (ok, out, err) = cli(&[
        "revoke",
        "--serial",
        &serial.to_string(),
        "--reason",
        "suspected-misuse",
    ])
    .await;
    assert!(ok, "revoke failed: {err}");
    assert!(out.contains("revoked"), "{out}");
    assert_eq!(
        ts.app()
            .store
            .cert(&serial)
            .expect("store")
            .expect("cert")
            .state(0),
        estd::model::CertState::Revoked
    );

    // Errors are reported with the problem's detail and a failing exit status.
    let (ok, _, err) = cli(&[
        "revoke",
        "--serial",
        &serial.to_string(),
        "--reason",
        "other",
    ])
    .await;
    assert!(!ok);
    assert!(err.contains("409"), "{err}");
    let mut wrong = conn.clone();
    wrong.extend(["--token".to_string(), "estd_wrong".into(), "list".into()]);
    let (ok, _, err) = estd_cli(wrong).await;
    assert!(!ok);
    assert!(err.contains("401"), "{err}");

    // Help text for the commands and flags.
    let (ok, out, _) = estd_cli(vec!["admin".into(), "--help".into()]).await;
    assert!(ok);
    for cmd in [
        "create-profile",
        "order",
        "list",
        "revoke",
        "export",
        "--token-file",
    ] {
        assert!(out.contains(cmd), "{cmd} in help: {out}");
    }
    ts.shutdown().await;
}
