//! The admin API as a test calls it: one keep-alive HTTPS connection, a
//! bearer token or a client certificate, JSON in and out.

use serde_json::{json, Value};

use super::{Client, Identity, Resp, TestServer};

/// An admin API caller over one keep-alive connection.
pub struct Api {
    pub client: Client,
    /// The `Authorization` header's value, if any.
    pub authorization: Option<String>,
    /// A person's session: the cookie value and its CSRF token (sent with
    /// every call but GET; `None` for the token sends none).
    pub session: Option<(String, Option<String>)>,
}

/// An admin API answer, with the body parsed as JSON where it is JSON.
pub struct Reply {
    pub status: u16,
    pub body: Value,
    /// The body as text, for failure messages.
    pub text: String,
    pub resp: Resp,
}

impl Api {
    pub async fn token(ts: &TestServer, token: &str) -> Api {
        Api {
            client: ts.admin_client(None).await,
            authorization: Some(format!("Bearer {token}")),
            session: None,
        }
    }

    pub async fn operator(ts: &TestServer) -> Api {
        Api::token(ts, &ts.operator_token()).await
    }

    pub async fn anonymous(ts: &TestServer) -> Api {
        Api {
            client: ts.admin_client(None).await,
            authorization: None,
            session: None,
        }
    }

    pub async fn with_cert(ts: &TestServer, identity: &Identity) -> Api {
        Api {
            client: ts.admin_client(Some(identity)).await,
            authorization: None,
            session: None,
        }
    }

    pub async fn call(&mut self, method: &str, path: &str, body: Option<Value>) -> Reply {
        let mut headers: Vec<(&str, &str)> = Vec::new();
        if let Some(a) = &self.authorization {
            headers.push(("authorization", a));
        }
        let cookie;
        if let Some((value, csrf)) = &self.session {
            cookie = format!("__Host-estd-session={value}");
            headers.push(("cookie", &cookie));
            if let (Some(csrf), false) = (csrf, method == "GET") {
                headers.push(("x-csrf-token", csrf));
            }
        }
        let bytes = match &body {
            Some(b) => {
                headers.push(("content-type", "application/json"));
                serde_json::to_vec(b).expect("json")
            }
            None => vec![],
        };
        let resp = self
            .client
            .send(method, &format!("/api/v1{path}"), &headers, bytes)
            .await;
        Reply {
            status: resp.status,
            body: serde_json::from_slice(&resp.body).unwrap_or(Value::Null),
            text: resp.text(),
            resp,
        }
    }

    pub async fn get(&mut self, path: &str) -> Reply {
        self.call("GET", path, None).await
    }

    pub async fn post(&mut self, path: &str, body: Value) -> Reply {
        self.call("POST", path, Some(body)).await
    }

    pub async fn patch(&mut self, path: &str, body: Value) -> Reply {
        self.call("PATCH", path, Some(body)).await
    }

    pub async fn delete(&mut self, path: &str) -> Reply {
        self.call("DELETE", path, None).await
    }

    /// PATCHes a profile, asserting success (with a contact person, which
    /// the demo profiles lack and a changed profile must have).
    pub async fn change_profile(&mut self, id: &str, mut body: Value) {
        body["contact"] = json!({"name": "Karen Hansen", "email": "karen@demo.example"});
        let r = self.patch(&format!("/profiles/{id}"), body).await;
        assert_eq!(r.status, 200, "profile change: {}", r.resp.text());
    }
}

/// Asserts a problem document with `status` whose detail contains `detail`.
#[track_caller]
pub fn assert_problem(r: &Reply, status: u16, detail: &str) {
    assert_eq!(r.status, status, "answer: {}", r.text);
    assert_eq!(
        r.resp.header("content-type"),
        Some("application/problem+json")
    );
    let d = r.body["detail"].as_str().unwrap_or_default();
    assert!(d.contains(detail), "expected {detail:?} in {}", r.body);
}
