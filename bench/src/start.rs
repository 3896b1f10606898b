//! `--op start`: how long `estd serve` takes to become ready, and its memory then.
//!
//! Each of `--starts` rounds spawns the server (`--estd`, with `--config`),
//! polls `GET /readyz` on the admin listener of that configuration (or, if
//! its port is 0, the address of estd's banner line) over TLS (trusting
//! `--ca`, every 5 ms) until it answers 200, which is when the store
//! is open and can write and the listeners accept, then reads the server's
//! VmRSS and VmHWM at once and again after a second of idling, and stops it
//! with SIGTERM, timing the shutdown. A clean stop lets the next start open
//! the store as an operator's restart would (sled writes its snapshot when it
//! opens, so the first start after a long run can be slower: that is the
//! first round's figure).
//!
//! The rounds' start-up times are reported (first, min, median, max), with
//! the memory of the last round; the `RESULT` line carries them too.

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use estd::config::StoreEngine;
use estd::Config;
use http::{header, Request};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::ServerName;

use crate::{load_certs, read_rss, Cli, SetupError};

/// How often `/readyz` is asked.
const POLL: Duration = Duration::from_millis(5);

/// How long a start may take before the round fails.
const START_TIMEOUT: Duration = Duration::from_secs(300);

/// How long a stop may take before the server is killed and the round fails.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// How long the server idles before its memory is read again.
const IDLE: Duration = Duration::from_secs(1);

/// How much of the server's standard error is kept to explain a failure.
const STDERR_TAIL: usize = 4000;

/// What one round measured.
#[derive(Debug, Clone, Copy)]
struct Round {
    /// Spawn to the first 200 from `/readyz`, seconds.
    start: f64,
    /// SIGTERM to exit, seconds.
    stop: f64,
    /// VmRSS at ready, kB.
    rss_ready: u64,
    /// VmRSS and VmHWM after idling, kB.
    rss_idle: u64,
    hwm_idle: u64,
}

/// The server process of one round; killed if dropped while running.
struct Server {
    child: Child,
    stderr: Arc<Mutex<Vec<u8>>>,
    /// The admin listener's address from the banner estd prints on standard
    /// output (`estd: listening est=… admin=… public=…`), once printed.
    banner_admin: Arc<Mutex<Option<SocketAddr>>>,
}

/// The `admin=` address of estd's banner line, if `line` is that line.
fn banner_admin(line: &str) -> Option<SocketAddr> {
    line.strip_prefix("estd: listening ")?
        .split_whitespace()
        .find_map(|part| part.strip_prefix("admin="))
        .and_then(|v| v.parse().ok())
}

impl Server {
    fn spawn(estd: &PathBuf, config: Option<&PathBuf>) -> Result<Server, SetupError> {
        let mut cmd = Command::new(estd);
        if let Some(c) = config {
            cmd.arg("--config").arg(c);
        }
        cmd.arg("serve")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(|e| SetupError::Io(format!("cannot start {}: {e}", estd.display())))?;
        let stderr = Arc::new(Mutex::new(Vec::new()));
        if let Some(mut pipe) = child.stderr.take() {
            let tail = stderr.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    if let Ok(mut t) = tail.lock() {
                        t.extend_from_slice(&buf[..n]);
                        let excess = t.len().saturating_sub(STDERR_TAIL);
                        t.drain(..excess);
                    }
                }
            });
        }
        let banner = Arc::new(Mutex::new(None));
        if let Some(pipe) = child.stdout.take() {
            let found = banner.clone();
            std::thread::spawn(move || {
                // Read to the end, so that estd never blocks on a full pipe.
                for line in std::io::BufRead::lines(std::io::BufReader::new(pipe)) {
                    let Ok(line) = line else { break };
                    if let Some(addr) = banner_admin(&line) {
                        if let Ok(mut f) = found.lock() {
                            *f = Some(addr);
                        }
                    }
                }
            });
        }
        Ok(Server {
            child,
            stderr,
            banner_admin: banner,
        })
    }

    /// Where to ask `/readyz`: the banner's admin address once printed,
    /// else the configured one (unless its port is 0: not known yet).
    fn admin_addr(&self, configured: SocketAddr) -> Option<SocketAddr> {
        let printed = self.banner_admin.lock().ok().and_then(|a| *a);
        printed.or((configured.port() != 0).then_some(configured))
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The end of what the server wrote to standard error.
    fn stderr_tail(&self) -> String {
        self.stderr
            .lock()
            .map(|t| String::from_utf8_lossy(&t).into_owned())
            .unwrap_or_default()
    }

    /// Whether it has exited, with its status.
    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGTERM, then waits; the time it took to exit.
    fn stop(&mut self) -> Result<f64, SetupError> {
        let started = Instant::now();
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status()
            .map_err(|e| SetupError::Io(format!("kill -TERM: {e}")))?;
        if !status.success() {
            return Err(SetupError::Io(format!(
                "kill -TERM {} failed: {status}",
                self.pid()
            )));
        }
        while started.elapsed() < STOP_TIMEOUT {
            if let Some(status) = self.exited() {
                let secs = started.elapsed().as_secs_f64();
                if !status.success() {
                    return Err(SetupError::Server(format!(
                        "estd exited with {status} on SIGTERM:\n{}",
                        self.stderr_tail()
                    )));
                }
                return Ok(secs);
            }
            std::thread::sleep(POLL);
        }
        Err(SetupError::Server(format!(
            "estd did not stop within {} s of SIGTERM",
            STOP_TIMEOUT.as_secs()
        )))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.exited().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One `GET /readyz` over a new TLS connection: the status code.
async fn readyz(
    addr: SocketAddr,
    config: &Arc<ClientConfig>,
    name: &ServerName<'static>,
) -> Result<u16, String> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let tls = tokio_rustls::TlsConnector::from(config.clone())
        .connect(name.clone(), tcp)
        .await
        .map_err(|e| format!("TLS handshake: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = Request::get("/readyz")
        .header(header::HOST, addr.to_string())
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("request: {e}"))?;
    let status = resp.status().as_u16();
    let _ = resp.into_body().collect().await;
    Ok(status)
}

/// Starts the server, waits for `/readyz`, reads its memory, stops it.
fn round(
    cli: &Cli,
    estd: &PathBuf,
    rt: &tokio::runtime::Runtime,
    addr: SocketAddr,
    config: &Arc<ClientConfig>,
    name: &ServerName<'static>,
) -> Result<Round, SetupError> {
    let started = Instant::now();
    let mut server = Server::spawn(estd, cli.config.as_ref())?;
    let mut last;
    let start = loop {
        if let Some(status) = server.exited() {
            return Err(SetupError::Server(format!(
                "estd exited with {status} before it was ready:\n{}",
                server.stderr_tail()
            )));
        }
        match server.admin_addr(addr) {
            None => last = "no banner with the admin address yet".to_owned(),
            Some(addr) => match rt.block_on(readyz(addr, config, name)) {
                Ok(200) => break started.elapsed().as_secs_f64(),
                Ok(code) => last = format!("/readyz answered {code}"),
                Err(e) => last = e,
            },
        }
        if started.elapsed() > START_TIMEOUT {
            return Err(SetupError::Server(format!(
                "estd was not ready within {} s ({last}):\n{}",
                START_TIMEOUT.as_secs(),
                server.stderr_tail()
            )));
        }
        std::thread::sleep(POLL);
    };
    let (rss_ready, _) = read_rss(server.pid()).map_err(SetupError::Io)?;
    std::thread::sleep(IDLE);
    let (rss_idle, hwm_idle) = read_rss(server.pid()).map_err(SetupError::Io)?;
    let stop = server.stop()?;
    Ok(Round {
        start,
        stop,
        rss_ready,
        rss_idle,
        hwm_idle,
    })
}

/// The estd binary: `--estd`, or `estd` beside this program.
fn estd_binary(cli: &Cli) -> Result<PathBuf, SetupError> {
    if let Some(p) = &cli.estd {
        return Ok(p.clone());
    }
    let me = std::env::current_exe()
        .map_err(|e| SetupError::Io(format!("cannot find this program's path: {e}")))?;
    let beside = me.with_file_name("estd");
    if beside.is_file() {
        Ok(beside)
    } else {
        Err(SetupError::Usage(format!(
            "no estd at {}; name it with --estd",
            beside.display()
        )))
    }
}

/// Runs `--op start`.
pub(crate) fn run(cli: &Cli) -> Result<ExitCode, SetupError> {
    let estd = estd_binary(cli)?;
    let config =
        Config::load(cli.config.as_deref()).map_err(|e| SetupError::Usage(e.to_string()))?;
    let engine = match config.store.engine {
        StoreEngine::Sled => "sled",
        StoreEngine::Postgres => "postgres",
    };
    let addr: SocketAddr = config.server.admin_listen;
    let mut roots = RootCertStore::empty();
    for der in load_certs(&cli.ca)? {
        roots.add(der)?;
    }
    let mut tls = ClientConfig::builder_with_provider(estd::tls::provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tls = Arc::new(tls);
    let name = ServerName::try_from(cli.server_name.clone())
        .map_err(|e| SetupError::Usage(format!("--server-name: {e}")))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| SetupError::Io(format!("cannot start the runtime: {e}")))?;
    eprintln!(
        "estd-bench: start: {} serve ({engine}), {} rounds, ready = 200 from https://{addr}/readyz (port 0: the banner's)",
        estd.display(),
        cli.starts
    );
    let mut rounds = Vec::with_capacity(cli.starts as usize);
    for n in 1..=cli.starts {
        let r = round(cli, &estd, &rt, addr, &tls, &name)?;
        eprintln!(
            "estd-bench:   round {n}: ready in {:.3} s, RSS {} kB at ready, {} kB idle (peak {} kB), stopped in {:.3} s",
            r.start, r.rss_ready, r.rss_idle, r.hwm_idle, r.stop
        );
        rounds.push(r);
    }
    report(engine, &rounds);
    Ok(ExitCode::SUCCESS)
}

/// Minimum, median and maximum of `v` (not empty).
fn spread(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return (0.0, 0.0, 0.0);
    }
    (v[0], v[n / 2], v[n - 1])
}

fn report(engine: &str, rounds: &[Round]) {
    let (Some(first), Some(last)) = (rounds.first(), rounds.last()) else {
        return;
    };
    let (min, median, max) = spread(rounds.iter().map(|r| r.start).collect());
    let (_, _, stop_max) = spread(rounds.iter().map(|r| r.stop).collect());
    println!("estd-bench report");
    println!("  op:            start");
    println!("  engine:        {engine}");
    println!("  rounds:        {}", rounds.len());
    println!(
        "  ready after:   first {:.3} s; min {min:.3}  median {median:.3}  max {max:.3} s",
        first.start
    );
    println!("  stop:          at most {stop_max:.3} s after SIGTERM");
    println!(
        "  server RSS:    {} kB at ready, {} kB after {} s idle (peak VmHWM {} kB), last round",
        last.rss_ready,
        last.rss_idle,
        IDLE.as_secs(),
        last.hwm_idle
    );
    println!(
        "RESULT op=start engine={engine} rounds={} first_s={:.3} min_s={min:.3} median_s={median:.3} max_s={max:.3} stop_max_s={stop_max:.3} rss_ready_kb={} rss_idle_kb={} hwm_kb={}",
        rounds.len(),
        first.start,
        last.rss_ready,
        last.rss_idle,
        last.hwm_idle
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banner() {
        assert_eq!(
            banner_admin("estd: listening est=127.0.0.1:1 admin=127.0.0.1:2 public=127.0.0.1:3"),
            Some("127.0.0.1:2".parse().unwrap())
        );
        assert_eq!(banner_admin("estd: listening est=127.0.0.1:1"), None);
        assert_eq!(banner_admin("admin=127.0.0.1:2"), None);
    }

    #[test]
    fn spreads() {
        assert_eq!(spread(vec![3.0, 1.0, 2.0]), (1.0, 2.0, 3.0));
        assert_eq!(spread(vec![5.0]), (5.0, 5.0, 5.0));
        assert_eq!(spread(vec![]), (0.0, 0.0, 0.0));
    }
}
