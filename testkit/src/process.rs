//! estd as a real child process (the built binary), for tests that must kill
//! it, read its logs or watch it refuse to start: a config file in a temp dir,
//! the banner parsed for the ephemeral ports, stdout and stderr captured to
//! files, and an HTTPS client that reports failures instead of panicking.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

use crate::{tls_config, Identity, Resp};

/// How long estd may take to print its banner (the first start creates the CA).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A TOML string literal.
pub fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// Config tables switching off the per-client and per-label rate limits: one
/// IdM certificate driven at full speed (load tests) is far past the defaults.
pub const NO_CLIENT_RATE_LIMITS: &str =
    "[rate_limit.client]\nenabled = false\n[rate_limit.label]\nenabled = false\n";

/// Writes `dir/estd.toml`: loopback ephemeral ports, certs and data under
/// `dir`, the log filter, and `extra` appended (whole tables only). In the
/// suite on PostgreSQL the `[store]` table names the folder's own database
/// unless `extra` chooses an engine.
pub fn write_config(dir: &Path, log_filter: &str, extra: &str) -> PathBuf {
    let extra = crate::postgres::with_store_for(dir, extra);
    let text = format!(
        "[server]\nest_listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n\
         [revocation]\nhttp_listen = \"127.0.0.1:0\"\n\
         [paths]\ncerts_dir = {}\ndata_dir = {}\n\
         [log]\nfilter = {}\n{extra}",
        toml_str(&dir.join("certs").display().to_string()),
        toml_str(&dir.join("data").display().to_string()),
        toml_str(log_filter),
    );
    let path = dir.join("estd.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

/// A running estd child process.
pub struct Daemon {
    child: Child,
    /// EST listener.
    pub est: SocketAddr,
    /// Admin listener.
    pub admin: SocketAddr,
    /// Plain-HTTP CRL/OCSP listener.
    pub public: SocketAddr,
    /// Captured stdout.
    pub stdout: PathBuf,
    /// Captured stderr (the log).
    pub stderr: PathBuf,
}

/// The estd binary: `ESTD_BIN` if set, else `estd` in the cargo target folder
/// of the running test (`target/<profile>/deps/<test>` → `target/<profile>/estd`),
/// where cargo puts it when it builds the test of a workspace that holds it.
/// A library cannot see `CARGO_BIN_EXE_estd`, which cargo sets only for the
/// estd package's own tests.
pub fn estd_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("ESTD_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("the test's own path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("a test binary in target/<profile>/deps");
    let bin = profile_dir.join(format!("estd{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "no estd binary at {} (run the tests with `cargo test --workspace`, \
         build it with `cargo build --bin estd`, or set ESTD_BIN)",
        bin.display()
    );
    bin
}

/// The command line `estd --config CONFIG SUBCOMMAND` with a clean log environment.
fn estd_command(config: &Path, subcommand: &str, envs: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(estd_bin());
    cmd.arg("--config").arg(config).arg(subcommand);
    // The config's log filter decides, not the caller's environment.
    cmd.env_remove("RUST_LOG");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::null());
    cmd
}

fn capture(cmd: &mut Command, dir: &Path, tag: &str) -> (PathBuf, PathBuf) {
    let out = dir.join(format!("{tag}.stdout"));
    let err = dir.join(format!("{tag}.stderr"));
    cmd.stdout(File::create(&out).expect("stdout file"));
    cmd.stderr(File::create(&err).expect("stderr file"));
    (out, err)
}

fn parse_banner(stdout: &str) -> Option<(SocketAddr, SocketAddr, SocketAddr)> {
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("estd: listening "))?;
    let mut est = None;
    let mut admin = None;
    let mut public = None;
    for part in line.split_whitespace() {
        let (k, v) = part.split_once('=')?;
        let addr: SocketAddr = v.parse().ok()?;
        match k {
            "est" => est = Some(addr),
            "admin" => admin = Some(addr),
            "public" => public = Some(addr),
            _ => {}
        }
    }
    Some((est?, admin?, public?))
}

impl Daemon {
    /// Starts `estd serve` and waits for its banner. `tag` names the captured
    /// output files in `dir`. Err carries the exit status and stderr if it
    /// stopped before listening.
    pub fn start(
        dir: &Path,
        config: &Path,
        envs: &[(&str, &str)],
        tag: &str,
    ) -> Result<Daemon, String> {
        let mut cmd = estd_command(config, "serve", envs);
        let (stdout, stderr) = capture(&mut cmd, dir, tag);
        let mut child = cmd.spawn().map_err(|e| format!("spawn estd: {e}"))?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let out = std::fs::read_to_string(&stdout).unwrap_or_default();
            if let Some((est, admin, public)) = parse_banner(&out) {
                return Ok(Daemon {
                    child,
                    est,
                    admin,
                    public,
                    stdout,
                    stderr,
                });
            }
            if let Ok(Some(status)) = child.try_wait() {
                let err = std::fs::read_to_string(&stderr).unwrap_or_default();
                return Err(format!("estd exited with {status} before listening: {err}"));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err("estd printed no banner within the start timeout".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGHUP (reload the configuration).
    pub fn hangup(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -HUP failed");
    }

    /// Waits (up to 60 s) until the log holds `count` lines containing
    /// `needle`; returns the log.
    pub fn wait_for_log(&self, needle: &str, count: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let log = std::fs::read_to_string(&self.stderr).unwrap_or_default();
            if log.lines().filter(|l| l.contains(needle)).count() >= count {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "no {count} log lines with {needle:?} within 60 s:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: no shutdown path runs, nothing is flushed on the way out.
    pub fn kill9(&mut self) {
        // std's Child::kill sends SIGKILL on Unix.
        self.child.kill().expect("SIGKILL estd");
        self.child.wait().expect("reap estd");
    }

    /// SIGTERM, then waits (30 s at most) for estd to exit: the shutdown path runs.
    pub fn terminate(&mut self) -> ExitStatus {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM estd");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "estd did not exit within 30 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whatever estd wrote to stdout and stderr so far.
    pub fn output(&self) -> String {
        format!(
            "{}{}",
            std::fs::read_to_string(&self.stdout).unwrap_or_default(),
            std::fs::read_to_string(&self.stderr).unwrap_or_default()
        )
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `estd SUBCOMMAND` and waits (30 s at most) for it to exit; for
/// start-ups that must be refused. Returns the status, stdout and stderr.
pub fn run_to_exit(
    dir: &Path,
    config: &Path,
    subcommand: &str,
    envs: &[(&str, &str)],
    tag: &str,
) -> (ExitStatus, String, String) {
    let mut cmd = estd_command(config, subcommand, envs);
    let (out, err) = capture(&mut cmd, dir, tag);
    let mut child = cmd.spawn().expect("spawn estd");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "estd {subcommand} did not exit within 30 s; stdout: {}",
                std::fs::read_to_string(&out).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (
        status,
        std::fs::read_to_string(&out).unwrap_or_default(),
        std::fs::read_to_string(&err).unwrap_or_default(),
    )
}

/// Runs `estd ARGS` (the admin CLI, say) to its end off the async runtime:
/// (success, stdout, stderr).
pub async fn estd_cli(args: Vec<String>) -> (bool, String, String) {
    tokio::task::spawn_blocking(move || {
        let out = Command::new(estd_bin())
            .args(&args)
            .env("RUST_LOG", "warn")
            .output()
            .expect("run estd");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .expect("join")
}

/// The first certificate of a PEM file, DER.
pub fn first_cert(path: &Path) -> Vec<u8> {
    CertificateDer::pem_file_iter(path)
        .expect("PEM file")
        .next()
        .expect("a certificate")
        .expect("PEM")
        .to_vec()
}

/// The demo IdM certificate and key that estd wrote to `certs`.
pub fn demo_identity(certs: &Path) -> Identity {
    crate::demo_identity_in(certs)
}

/// The operator's admin token as estd wrote it.
pub fn operator_token(certs: &Path) -> String {
    std::fs::read_to_string(certs.join("admin-token"))
        .expect("admin-token")
        .trim()
        .to_owned()
}

/// Why a request got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoAnswer {
    /// No connection: the request was never sent.
    NotSent(String),
    /// Sent (at least in part), but no response came: the server may or may not have acted on it.
    Unknown(String),
}

/// An HTTPS/1.1 keep-alive client that returns errors instead of panicking,
/// for talking to a server that may die mid-request.
pub struct TryClient {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl TryClient {
    /// TLS (and HTTP) handshake; an error means nothing was sent.
    pub async fn connect(
        addr: SocketAddr,
        root_der: &[u8],
        identity: Option<&Identity>,
    ) -> Result<TryClient, NoAnswer> {
        let ns = |e: String| NoAnswer::NotSent(e);
        let connector = tokio_rustls::TlsConnector::from(tls_config(root_der, identity, false));
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| ns(format!("connect: {e}")))?;
        let name = ServerName::try_from("localhost").map_err(|e| ns(e.to_string()))?;
        let tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| ns(format!("TLS: {e}")))?;
        let (sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .map_err(|e| ns(format!("HTTP: {e}")))?;
        tokio::spawn(conn);
        Ok(TryClient { sender })
    }

    /// Enrols a new P-256 key for `cn` of the demo organisation under the
    /// demo label (the caller's identity decides who asks).
    pub async fn enrol_demo(&mut self, cn: &str) -> Result<Resp, NoAnswer> {
        let (_k, csr) = crate::demo_csr(cn);
        self.send(
            "POST",
            "/.well-known/est/demo/simpleenroll",
            &[("content-type", "application/pkcs10")],
            crate::b64(&csr).into_bytes(),
        )
        .await
    }

    /// One request.
    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<Resp, NoAnswer> {
        let mut req = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| NoAnswer::NotSent(e.to_string()))?;
        if self.sender.ready().await.is_err() {
            return Err(NoAnswer::NotSent("connection closed".into()));
        }
        let resp = self
            .sender
            .send_request(req)
            .await
            .map_err(|e| NoAnswer::Unknown(e.to_string()))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| NoAnswer::Unknown(format!("body: {e}")))?
            .to_bytes();
        Ok(Resp {
            status,
            headers,
            body,
        })
    }
}

/// A JSON admin API client for one running estd (operator token).
pub struct Admin {
    client: TryClient,
    token: String,
}

impl Admin {
    /// Connects to the admin listener.
    pub async fn connect(d: &Daemon, root_der: &[u8], token: &str) -> Admin {
        Admin {
            client: TryClient::connect(d.admin, root_der, None)
                .await
                .expect("admin connection"),
            token: token.to_owned(),
        }
    }

    /// One call under `/api/v1`; panics if the server does not answer.
    pub async fn call(&mut self, method: &str, path: &str, json: Option<&str>) -> Resp {
        let auth = format!("Bearer {}", self.token);
        let mut headers = vec![("authorization", auth.as_str())];
        if json.is_some() {
            headers.push(("content-type", "application/json"));
        }
        self.client
            .send(
                method,
                &format!("/api/v1{path}"),
                &headers,
                json.unwrap_or("").as_bytes().to_vec(),
            )
            .await
            .expect("admin API answer")
    }

    /// A call that must answer `want`; returns the JSON body.
    pub async fn json(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&str>,
        want: u16,
    ) -> serde_json::Value {
        let r = self.call(method, path, body).await;
        assert_eq!(r.status, want, "{method} {path}: {}", r.text());
        serde_json::from_slice(&r.body).expect("JSON body")
    }
}

/// Enrols a P-256 key for `cn` of the demo organisation as the demo IdM
/// system (mutual TLS with the key in `certs`) and returns the answer.
pub async fn enrol_as_demo_idm(d: &Daemon, certs: &Path, cn: &str) -> Resp {
    let root = first_cert(&certs.join("root-ca.pem"));
    let idm = demo_identity(certs);
    let mut c = TryClient::connect(d.est, &root, Some(&idm))
        .await
        .expect("mTLS");
    c.enrol_demo(cn).await.expect("answer")
}
