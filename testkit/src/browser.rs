//! A real browser for the portal's tests: headless Chromium driven over
//! WebDriver (Debian's `chromium` and `chromium-driver`, which `.ci/run`
//! installs), with helpers to go to a page, fill and click, read text, take
//! screenshots and run the accessibility checker axe-core on a page.
//!
//! ```no_run
//! # async fn t() {
//! let Some(browser) = estd_testkit::browser::Browser::start().await else {
//!     eprintln!("skipped: {}", estd_testkit::browser::SKIP_REASON);
//!     return;
//! };
//! browser.goto("https://127.0.0.1:1234/").await;
//! let violations = browser.axe().await;
//! assert!(violations.is_empty(), "{violations:#?}");
//! browser.close().await;
//! # }
//! ```
//!
//! - Without chromedriver, [`Browser::start`] returns `None` (the test
//!   prints [`SKIP_REASON`] and returns), except under CI (env `CI` set),
//!   where it panics: CI must run the browser tests.
//! - Each [`Browser`] is its own chromedriver on a free loopback port and its
//!   own Chromium with a fresh profile in a temp dir, so tests run in
//!   parallel. Dropping it (or [`Browser::close`]) ends the session, which
//!   quits Chromium, and kills chromedriver.
//! - Chromium trusts any certificate (`--ignore-certificate-errors`,
//!   `acceptInsecureCerts`): the servers under test use a test CA.
//! - Scripts the harness runs (`execute`, [`Browser::axe`]) go through
//!   WebDriver/DevTools and are not subject to the page's
//!   Content-Security-Policy, so pages keep their strict CSP under test.
//! - Screenshots go to `<target dir>/portal-screenshots/<name>.png`; see
//!   [`screenshot_dir`].

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};

/// The Chromium the browser tests drive (Debian's `chromium`).
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// Debian's `chromium-driver`; `chromedriver` on `PATH` otherwise.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// What a test prints when it skips for want of a browser.
pub const SKIP_REASON: &str = "no chromedriver (/usr/bin/chromedriver or on PATH): \
     install Debian's chromium and chromium-driver (.ci/run does) to run the browser tests";

/// axe-core, vendored and pinned (tests/vendor/axe-core/README.md).
const AXE_SOURCE: &str = include_str!("../../tests/vendor/axe-core/axe.min.js");
/// The SHA-256 of `tests/vendor/axe-core/axe.min.js` (axe-core 4.14.1), as
/// recorded in its README.
pub const AXE_SHA256: &str = "29348999450cdf2849a8e70b7912fc2da85a849da39c0d0d5394f51d4a9ed95c";

/// The window every test sees.
pub const WINDOW: (u32, u32) = (1280, 900);

/// Chromium's command-line switches: headless, no sandbox (containers run
/// as root), no traffic of its own (updates, sync, QUIC), any certificate.
pub const CHROMIUM_ARGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--ignore-certificate-errors",
    "--window-size=1280,900",
    "--lang=en-GB",
];

/// How long chromedriver may take to answer `/status`.
const DRIVER_READY: Duration = Duration::from_secs(60);
/// How long [`Browser::wait_for_text`] and the finders wait.
pub const WAIT: Duration = Duration::from_secs(30);

/// One axe-core finding of impact "serious" or "critical".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AxeViolation {
    /// The rule, e.g. `color-contrast`.
    pub id: String,
    pub impact: String,
    /// What the rule asks for.
    pub help: String,
    pub help_url: String,
    /// The CSS selectors of the offending nodes (one per node; frames joined by ` >>> `).
    pub targets: Vec<String>,
}

/// A headless Chromium under a chromedriver of its own.
pub struct Browser {
    /// The WebDriver session, for whatever the helpers do not cover.
    pub client: Client,
    driver: Child,
    driver_addr: SocketAddr,
    session_id: Option<String>,
    /// Chromium's profile and chromedriver's log; removed on drop.
    dir: tempfile::TempDir,
    closed: bool,
}

/// The chromedriver to use, if there is one.
pub fn chromedriver_path() -> Option<PathBuf> {
    let fixed = Path::new(CHROMEDRIVER);
    if fixed.is_file() {
        return Some(fixed.to_path_buf());
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("chromedriver"))
            .find(|p| p.is_file())
    })
}

/// Where screenshots go: `<target dir>/portal-screenshots`. The target dir
/// is the nearest ancestor of the running test binary that holds cargo's
/// `CACHEDIR.TAG` (cargo writes it at the root of every target dir, also a
/// `CARGO_TARGET_DIR` elsewhere and with `--target <triple>`); failing
/// that `$CARGO_TARGET_DIR`, then `$CARGO_MANIFEST_DIR/target`, then the
/// system temp dir.
pub fn screenshot_dir() -> PathBuf {
    let from_exe = std::env::current_exe().ok().and_then(|exe| {
        exe.ancestors()
            .skip(1)
            .find(|d| d.join("CACHEDIR.TAG").is_file())
            .map(Path::to_path_buf)
    });
    let target = from_exe
        .or_else(|| std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from))
        .or_else(|| std::env::var_os("CARGO_MANIFEST_DIR").map(|m| PathBuf::from(m).join("target")))
        .unwrap_or_else(std::env::temp_dir);
    target.join("portal-screenshots")
}

/// A loopback port free just now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// One small HTTP/1.1 request to chromedriver, blocking (also usable in
/// `Drop`); the answer's body, if any came.
fn driver_request(addr: SocketAddr, method: &str, path: &str, timeout: Duration) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, timeout).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    s.set_write_timeout(Some(timeout)).ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())
}

/// Checks the vendored axe-core against its recorded hash, once.
fn axe_source() -> &'static str {
    static CHECKED: OnceLock<()> = OnceLock::new();
    CHECKED.get_or_init(|| {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, AXE_SOURCE.as_bytes());
        let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex, AXE_SHA256,
            "tests/vendor/axe-core/axe.min.js changed: its SHA-256 is not the one recorded in \
             tests/vendor/axe-core/README.md and testkit/src/browser.rs (AXE_SHA256)"
        );
    });
    AXE_SOURCE
}

impl Browser {
    /// Starts chromedriver and a headless Chromium. `None` when there is
    /// no chromedriver and env `CI` is not set (the caller skips, printing
    /// [`SKIP_REASON`]); panics when there is none under CI, or when the
    /// browser does not start.
    pub async fn start() -> Option<Browser> {
        let Some(driver) = chromedriver_path() else {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but there is {SKIP_REASON}"
            );
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("estd-browser-")
            .tempdir()
            .expect("browser temp dir");
        // A port free when asked may be taken before chromedriver binds it: retry.
        let mut last = String::new();
        for _ in 0..3 {
            match Self::start_driver(&driver, dir.path()).await {
                Ok((child, addr)) => return Some(Self::connect(child, addr, dir).await),
                Err(e) => last = e,
            }
        }
        panic!("chromedriver did not start: {last}");
    }

    async fn start_driver(driver: &Path, dir: &Path) -> Result<(Child, SocketAddr), String> {
        let port = free_port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let log = dir.join("chromedriver.log");
        let mut child = Command::new(driver)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("{}: {e}", driver.display()))?;
        let deadline = Instant::now() + DRIVER_READY;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                return Err(format!("chromedriver exited ({status}): {log}"));
            }
            let body = tokio::task::spawn_blocking(move || {
                driver_request(addr, "GET", "/status", Duration::from_secs(2))
            })
            .await
            .ok()
            .flatten();
            if let Some(body) = body {
                let ready = serde_json::from_str::<Value>(&body)
                    .ok()
                    .and_then(|v| v["value"]["ready"].as_bool());
                if ready == Some(true) {
                    return Ok((child, addr));
                }
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "no ready /status on {addr} within {DRIVER_READY:?}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn connect(
        mut driver: Child,
        driver_addr: SocketAddr,
        dir: tempfile::TempDir,
    ) -> Browser {
        let profile = dir.path().join("profile");
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|a| (*a).to_owned()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert("acceptInsecureCerts".into(), json!(true));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({"binary": CHROMIUM, "args": args}),
        );
        let mut builder = ClientBuilder::new(HttpConnector::new());
        builder.capabilities(caps);
        let client = match builder.connect(&format!("http://{driver_addr}")).await {
            Ok(c) => c,
            Err(e) => {
                let _ = driver.kill();
                let _ = driver.wait();
                let log = std::fs::read_to_string(dir.path().join("chromedriver.log"))
                    .unwrap_or_default();
                let tail: String = log
                    .lines()
                    .rev()
                    .take(30)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<Vec<_>>()
                    .join("\n");
                panic!("no WebDriver session from chromedriver: {e}\n{tail}");
            }
        };
        let session_id = client.session_id().await.ok().flatten();
        Browser {
            client,
            driver,
            driver_addr,
            session_id,
            dir,
            closed: false,
        }
    }

    /// Ends the session (Chromium quits) and chromedriver. Dropping does the
    /// same, blocking; this is the polite way at the end of a test.
    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        self.closed = true;
        // Drop kills chromedriver and removes the temp dir.
    }

    /// Chromium's profile dir and chromedriver's log live here.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Opens `url` and waits for it to load.
    pub async fn goto(&self, url: &str) {
        if let Err(e) = self.client.goto(url).await {
            self.fail::<()>(&format!("goto {url}: {e}")).await;
        }
    }

    /// The page's URL now.
    pub async fn current_url(&self) -> String {
        match self.client.current_url().await {
            Ok(u) => u.to_string(),
            Err(e) => self.fail(&format!("current URL: {e}")).await,
        }
    }

    /// The page's title.
    pub async fn title(&self) -> String {
        match self.client.title().await {
            Ok(t) => t,
            Err(e) => self.fail(&format!("title: {e}")).await,
        }
    }

    /// Saves a PNG of the window as `<name>.png` in [`screenshot_dir`] and
    /// returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = match self.client.screenshot().await {
            Ok(p) => p,
            Err(e) => panic!("screenshot {name}: {e}"),
        };
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let safe: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = dir.join(format!("{safe}.png"));
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        path
    }

    /// The first element matching `css`, waiting up to [`WAIT`] for it.
    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        match self
            .client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
        {
            Ok(e) => e,
            Err(e) => self.fail(&format!("no element `{css}`: {e}")).await,
        }
    }

    /// Whether an element matches `css` now (no waiting).
    pub async fn exists(&self, css: &str) -> bool {
        matches!(self.client.find_all(Locator::Css(css)).await, Ok(v) if !v.is_empty())
    }

    /// Types `text` into the field `css` after clearing it.
    pub async fn fill(&self, css: &str, text: &str) {
        let el = self.find(css).await;
        if let Err(e) = el.clear().await {
            self.fail::<()>(&format!("clear `{css}`: {e}")).await;
        }
        if let Err(e) = el.send_keys(text).await {
            self.fail::<()>(&format!("type into `{css}`: {e}")).await;
        }
    }

    /// Chooses the option of value `value` in the select `css`.
    pub async fn select(&self, css: &str, value: &str) {
        let el = self.find(css).await;
        if let Err(e) = el.select_by_value(value).await {
            self.fail::<()>(&format!("select {value:?} in `{css}`: {e}"))
                .await;
        }
    }

    /// Clicks the element `css` (a link or submit button: waits for the
    /// next page to load, as WebDriver's click does).
    pub async fn click(&self, css: &str) {
        let el = self.find(css).await;
        if let Err(e) = el.click().await {
            self.fail::<()>(&format!("click `{css}`: {e}")).await;
        }
    }

    /// The rendered text of the element `css`.
    pub async fn text(&self, css: &str) -> String {
        let el = self.find(css).await;
        match el.text().await {
            Ok(t) => t,
            Err(e) => self.fail(&format!("text of `{css}`: {e}")).await,
        }
    }

    /// The attribute `name` of the element `css`, if it has one.
    pub async fn attr(&self, css: &str, name: &str) -> Option<String> {
        let el = self.find(css).await;
        match el.attr(name).await {
            Ok(v) => v,
            Err(e) => {
                self.fail(&format!("attribute {name} of `{css}`: {e}"))
                    .await
            }
        }
    }

    /// Waits up to [`WAIT`] until the element `css` shows text containing
    /// `needle`; returns the text.
    pub async fn wait_for_text(&self, css: &str, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        let mut last = String::new();
        loop {
            if let Ok(el) = self.client.find(Locator::Css(css)).await {
                if let Ok(t) = el.text().await {
                    if t.contains(needle) {
                        return t;
                    }
                    last = t;
                }
            }
            if Instant::now() > deadline {
                self.fail::<()>(&format!(
                    "`{css}` did not show {needle:?} within {WAIT:?} (last: {last:?})"
                ))
                .await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs `script` (a function body; `arguments` are `args`) in the page
    /// and returns what it returns. Not subject to the page's CSP.
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Value {
        match self.client.execute(script, args).await {
            Ok(v) => v,
            Err(e) => self.fail(&format!("script: {e}")).await,
        }
    }

    /// Runs axe-core on the page and returns its findings of impact
    /// "serious" or "critical" (rules of WCAG 2.x A/AA and best practice,
    /// axe's defaults), so that `assert!(v.is_empty(), "{v:#?}")` reads well.
    pub async fn axe(&self) -> Vec<AxeViolation> {
        let loaded = self
            .execute("return typeof window.axe === 'object';", vec![])
            .await;
        if loaded != json!(true) {
            // The UMD bundle sets `window.axe` when run as a script body.
            self.execute(axe_source(), vec![]).await;
        }
        let run = "const done = arguments[arguments.length - 1];\
                   window.axe.run(document, {resultTypes: ['violations']})\
                     .then(r => done({ok: r.violations}))\
                     .catch(e => done({err: String(e)}));";
        let out = match self.client.execute_async(run, vec![]).await {
            Ok(v) => v,
            Err(e) => self.fail(&format!("axe.run: {e}")).await,
        };
        if let Some(err) = out.get("err") {
            self.fail::<()>(&format!("axe.run failed: {err}")).await;
        }
        let list = out["ok"].as_array().cloned().unwrap_or_default();
        list.iter()
            .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
            .map(|v| AxeViolation {
                id: v["id"].as_str().unwrap_or_default().to_owned(),
                impact: v["impact"].as_str().unwrap_or_default().to_owned(),
                help: v["help"].as_str().unwrap_or_default().to_owned(),
                help_url: v["helpUrl"].as_str().unwrap_or_default().to_owned(),
                targets: v["nodes"]
                    .as_array()
                    .map(|nodes| {
                        nodes
                            .iter()
                            .map(|n| match &n["target"] {
                                Value::Array(parts) => parts
                                    .iter()
                                    .map(|p| match p {
                                        Value::String(s) => s.clone(),
                                        other => other.to_string(),
                                    })
                                    .collect::<Vec<_>>()
                                    .join(" >>> "),
                                other => other.to_string(),
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            })
            .collect()
    }

    /// Panics with `what`, after a screenshot `failure-<time>` for the post-mortem.
    async fn fail<T>(&self, what: &str) -> T {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let shot = match self.client.screenshot().await {
            Ok(png) => {
                let dir = screenshot_dir();
                let path = dir.join(format!("failure-{stamp}.png"));
                match std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, png)) {
                    Ok(()) => format!(" (screenshot {})", path.display()),
                    Err(_) => String::new(),
                }
            }
            Err(_) => String::new(),
        };
        let url = self
            .client
            .current_url()
            .await
            .map(|u| u.to_string())
            .unwrap_or_default();
        panic!("browser: {what} [at {url}]{shot}");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ending the session quits Chromium; killing chromedriver alone
        // would leave it running. Blocking, bounded: Drop cannot await.
        if !self.closed {
            if let Some(id) = &self.session_id {
                let _ = driver_request(
                    self.driver_addr,
                    "DELETE",
                    &format!("/session/{id}"),
                    Duration::from_secs(10),
                );
            }
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
