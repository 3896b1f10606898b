//! People as a test makes them: invited through the admin API, activated
//! with the link from the outbox and a code from the TOTP secret, logged in
//! with a session cookie and its CSRF token.

use std::time::{SystemTime, UNIX_EPOCH};

use estd::model::NotificationKind;
use estd::service::credentials::{totp_code, TotpSecret};
use serde_json::{json, Value};

use super::api::{Api, Reply};
use super::TestServer;

/// A password that meets the rules.
pub const PASSWORD: &str = "correct horse battery staple";

/// An activated person and what they log in with.
pub struct Person {
    /// Their organisation (`None`: an operator).
    pub cvr: Option<String>,
    pub email: String,
    /// Their public id.
    pub id: String,
    pub secret: TotpSecret,
    /// The last TOTP step used: a code is accepted once.
    pub last_step: u64,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Person {
    /// A code of a step not used before and within the server's window
    /// (one step either side of now), waiting for the next step if the
    /// window is spent.
    pub async fn next_code(&mut self) -> String {
        loop {
            let current = now() / 30;
            let step = (self.last_step + 1).max(current.saturating_sub(1));
            if step <= current + 1 {
                self.last_step = step;
                return totp_code(&self.secret, step * 30);
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    }

    /// The body of a login with `password` and a fresh code.
    pub async fn login_body(&mut self, password: &str) -> Value {
        let code = self.next_code().await;
        match &self.cvr {
            Some(cvr) => {
                json!({"cvr": cvr, "email": self.email, "password": password, "code": code})
            }
            None => json!({"email": self.email, "password": password, "code": code}),
        }
    }

    /// Logs in: an API caller with the session cookie and CSRF token.
    pub async fn login(&mut self, ts: &TestServer) -> Api {
        let body = self.login_body(PASSWORD).await;
        let mut api = Api::anonymous(ts).await;
        let r = api.post("/login", body).await;
        assert_eq!(r.status, 200, "login: {}", r.text);
        api.session = Some((
            session_cookie(&r),
            r.body["csrf_token"].as_str().map(str::to_owned),
        ));
        api
    }
}

/// The session cookie's value a login answer sets.
pub fn session_cookie(r: &Reply) -> String {
    let set = r.resp.header("set-cookie").expect("Set-Cookie");
    let pair = set.split(';').next().unwrap_or_default();
    pair.split_once('=')
        .map(|(_, v)| v.to_owned())
        .expect("cookie value")
}

/// The token of the newest invitation to `email` in the outbox.
pub fn invitation_token(ts: &TestServer, email: &str) -> String {
    let notices: Vec<_> = ts
        .app()
        .store
        .notifications()
        .collect::<Result<Vec<_>, _>>()
        .expect("outbox")
        .into_iter()
        .filter(|n| n.kind == NotificationKind::Invitation && n.to == email)
        .collect();
    let body = &notices.last().expect("an invitation").body;
    let start = body.find("/activate?token=").expect("link") + "/activate?token=".len();
    body[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

/// Invites a person through `admin` (`cvr` `None`: an operator) and
/// activates their account; asserts each step.
pub async fn invite_and_activate(
    ts: &TestServer,
    admin: &mut Api,
    cvr: Option<&str>,
    name: &str,
    email: &str,
    roles: &[&str],
) -> Person {
    let path = match cvr {
        Some(c) => format!("/organisations/{c}/people"),
        None => "/operators".to_owned(),
    };
    let r = admin
        .post(&path, json!({"name": name, "email": email, "roles": roles}))
        .await;
    assert_eq!(r.status, 201, "invitation: {}", r.text);
    let id = r.body["id"].as_str().expect("id").to_owned();
    activate(ts, cvr, email, &id).await
}

/// Activates the invited `email` with the link from the outbox.
pub async fn activate(ts: &TestServer, cvr: Option<&str>, email: &str, id: &str) -> Person {
    let token = invitation_token(ts, email);
    let mut anon = Api::anonymous(ts).await;
    let shown = anon.get(&format!("/activation?token={token}")).await;
    assert_eq!(shown.status, 200, "activation: {}", shown.text);
    let secret = TotpSecret::from_base32(shown.body["totp_secret"].as_str().expect("secret"))
        .expect("base32");
    let mut person = Person {
        cvr: cvr.map(str::to_owned),
        email: email.to_owned(),
        id: id.to_owned(),
        secret,
        last_step: 0,
    };
    let code = person.next_code().await;
    let r = anon
        .post(
            "/activation",
            json!({"token": token, "password": PASSWORD, "code": code}),
        )
        .await;
    assert_eq!(r.status, 200, "activate: {}", r.text);
    assert_eq!(r.body["state"], "active");
    person
}
