//! A real PostgreSQL for the tests, started by the tests themselves: a
//! cluster made with `initdb` in a temp dir, run by `pg_ctl` on a loopback
//! port of its own, trust authentication for the superuser `postgres`, and
//! `fsync` left on (durability is what the store tests check).
//!
//! - [`shared`] is one cluster per test process, started on first use;
//!   [`fresh_database`] gives each test (or each test server) a new, empty
//!   database in it, so tests never see each other's records, events or locks.
//! - [`Cluster::start`] is a cluster of one's own, for tests that stop and
//!   restart PostgreSQL under estd.
//!
//! The binaries come from the highest version under
//! `/usr/lib/postgresql/*/bin` (Debian's `postgresql` package; `.ci/run`
//! installs it), or from `ESTD_PG_BIN` if that names a folder. `initdb`
//! refuses to run as root, so as root the server runs as `nobody` (through
//! `runuser`), its folders owned by `nobody`.
//!
//! Statics are never dropped, so every cluster also gets a reaper: a small
//! shell in a session of its own that waits for the test process to end,
//! then stops the server (immediate shutdown) and removes its folder.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Connections the server allows: every test server has a pool
/// ([`POOL_SIZE`]) and a listener, and a few tests run at once.
const MAX_CONNECTIONS: u32 = 600;

/// Connections in each test server's pool (estd's default is 16).
const POOL_SIZE: i64 = 8;

/// The superuser role the clusters are made with.
const SUPERUSER: &str = "postgres";

/// Whether this test binary runs the integration suite on PostgreSQL: the
/// binary `it_postgres` (tests/it_postgres) does, any other does not, unless
/// `ESTD_TEST_STORE=postgres` is set in the environment.
pub fn suite_on_postgres() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| {
        let by_name = std::env::current_exe()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .is_some_and(|n| n.starts_with("it_postgres"));
        by_name || std::env::var("ESTD_TEST_STORE").is_ok_and(|v| v == "postgres")
    })
}

/// For a test that cannot apply to PostgreSQL (it works on sled's files):
/// `true`, after saying why on stderr, when this suite runs on PostgreSQL,
/// so the test returns early; `false` on sled.
pub fn sled_only(why: &str) -> bool {
    if suite_on_postgres() {
        eprintln!("skipped on PostgreSQL (sled only): {why}");
        true
    } else {
        false
    }
}

/// The `[store]` lines that put a test server on its own database of the
/// shared cluster: the same database for the same folder, so that a server
/// restarted on its folder finds its records again.
pub fn store_lines_for(dir: &Path) -> String {
    format!(
        "engine = \"postgres\"\nurl = {}\npool_size = {POOL_SIZE}\n",
        toml::Value::String(database_for(dir))
    )
}

/// `extra` (whole TOML tables) with the `[store]` table set to the shared
/// cluster's database for `dir`, when this suite runs on PostgreSQL and
/// `extra` chooses no engine itself; `extra` unchanged otherwise.
pub fn with_store_for(dir: &Path, extra: &str) -> String {
    if !suite_on_postgres() {
        return extra.to_owned();
    }
    let Ok(mut table) = toml::from_str::<toml::Table>(extra) else {
        // Not TOML: estd will say so; nothing to add to.
        return extra.to_owned();
    };
    let store = table
        .entry("store")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    let Some(store) = store.as_table_mut() else {
        return extra.to_owned();
    };
    if store.contains_key("engine") {
        return extra.to_owned();
    }
    store.insert("engine".into(), "postgres".into());
    store.insert("url".into(), database_for(dir).into());
    store
        .entry("pool_size")
        .or_insert(toml::Value::Integer(POOL_SIZE));
    toml::to_string(&table).unwrap_or_else(|_| extra.to_owned())
}

/// The database of the shared cluster that belongs to `dir` (made on first use).
pub fn database_for(dir: &Path) -> String {
    static BY_DIR: OnceLock<Mutex<HashMap<PathBuf, String>>> = OnceLock::new();
    let map = BY_DIR.get_or_init(Default::default);
    let key = dir.to_path_buf();
    if let Some(url) = map
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(&key)
    {
        return url.clone();
    }
    let url = fresh_database();
    map.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .entry(key)
        .or_insert(url)
        .clone()
}

/// The cluster shared by every test of this process (started on first use).
/// Panics, with the reason, if PostgreSQL cannot be started.
pub fn shared() -> &'static Cluster {
    static SHARED: OnceLock<Result<Cluster, String>> = OnceLock::new();
    match SHARED.get_or_init(Cluster::start) {
        Ok(c) => c,
        Err(e) => panic!("the shared PostgreSQL test cluster could not be started: {e}"),
    }
}

/// The URL of a new, empty database in the [`shared`] cluster.
pub fn fresh_database() -> String {
    shared().create_database()
}

/// A PostgreSQL cluster in a temp dir; stopped and removed when dropped (and
/// by its reaper when the test process ends).
pub struct Cluster {
    /// The folder holding `data/`, the socket folder and the logs.
    root: PathBuf,
    bin: PathBuf,
    port: u16,
    as_nobody: bool,
    databases: AtomicU64,
}

/// The folder of the highest installed PostgreSQL version's binaries.
pub fn binaries() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("ESTD_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let base = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(base)
        .map_err(|e| no_binaries(&format!("{}: {e}", base.display())))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("pg_ctl").is_file().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .ok_or_else(|| no_binaries("no /usr/lib/postgresql/<version>/bin/pg_ctl"))
}

fn no_binaries(detail: &str) -> String {
    format!(
        "no PostgreSQL server binaries ({detail}). The PostgreSQL tests start their own \
         cluster with initdb/pg_ctl: install the Debian package `postgresql` (.ci/run does), \
         or set ESTD_PG_BIN to a folder holding initdb, pg_ctl and postgres"
    )
}

/// Whether this process runs as root (initdb refuses to).
fn running_as_root() -> bool {
    static ROOT: OnceLock<bool> = OnceLock::new();
    *ROOT.get_or_init(|| {
        Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
    })
}

/// A folder of its own under the system temp dir.
fn new_root() -> Result<PathBuf, String> {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let root = std::env::temp_dir().join(format!(
        "estd-pg-{}-{n}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
    ));
    std::fs::create_dir_all(&root).map_err(|e| format!("{}: {e}", root.display()))?;
    Ok(root)
}

/// A loopback port nobody listens on just now.
fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("local_addr: {e}"))
}

/// Runs `cmd` to its end with output to `log`; Err with the log's text.
fn run_logged(mut cmd: Command, log: &Path, what: &str) -> Result<(), String> {
    let out = File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let status = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .status()
        .map_err(|e| format!("{what}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed ({status}): {}",
            std::fs::read_to_string(log).unwrap_or_default()
        ))
    }
}

/// Gives `path` (and everything under it) to `nobody`.
fn chown_nobody(path: &Path) -> Result<(), String> {
    let status = Command::new("chown")
        .arg("-R")
        .arg("nobody")
        .arg(path)
        .status()
        .map_err(|e| format!("chown: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("chown -R nobody {} failed", path.display()))
    }
}

/// An initialised data folder, made once per process and copied for each
/// cluster (initdb takes seconds, a copy milliseconds).
fn template() -> Result<&'static Path, String> {
    static TEMPLATE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    TEMPLATE
        .get_or_init(|| {
            let bin = binaries()?;
            let root = new_root()?;
            spawn_reaper(&root, None)?;
            let data = root.join("data");
            let as_nobody = running_as_root();
            if as_nobody {
                chown_nobody(&root)?;
            }
            let mut cmd = server_command(&bin, "initdb", as_nobody);
            cmd.arg("-D")
                .arg(&data)
                .arg("-U")
                .arg(SUPERUSER)
                .args(["--auth=trust", "-E", "UTF8", "--no-locale"])
                // The template's files need not reach the disk: each cluster
                // is a copy, and the server itself runs with fsync on.
                .arg("--no-sync");
            run_logged(cmd, &root.join("initdb.log"), "initdb")?;
            Ok(data)
        })
        .as_deref()
        .map_err(Clone::clone)
}

/// `program` from `bin`, run as `nobody` when `as_nobody`.
fn server_command(bin: &Path, program: &str, as_nobody: bool) -> Command {
    if as_nobody {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "nobody", "--"]).arg(bin.join(program));
        cmd
    } else {
        Command::new(bin.join(program))
    }
}

/// Starts the reaper of `root`: once this process is gone, it stops the
/// server whose data folder is `data` (if any) and removes `root`.
fn spawn_reaper(root: &Path, data: Option<&Path>) -> Result<(), String> {
    let pid = std::process::id();
    let stop = match data {
        Some(data) => format!(
            "p=$(head -n 1 '{}/postmaster.pid' 2>/dev/null); \
             if [ -n \"$p\" ]; then kill -QUIT \"$p\" 2>/dev/null; \
             n=0; while kill -0 \"$p\" 2>/dev/null && [ $n -lt 100 ]; do sleep 0.1; n=$((n+1)); done; fi; ",
            data.display()
        ),
        None => String::new(),
    };
    let script = format!(
        "trap '' INT TERM HUP; while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop}rm -rf '{}'",
        root.display()
    );
    Command::new("setsid")
        .arg("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(|_| ())
        .map_err(|e| format!("reaper: {e}"))
}

impl Cluster {
    /// A new cluster of one's own, started; it is stopped and removed when
    /// dropped.
    pub fn start() -> Result<Cluster, String> {
        let bin = binaries()?;
        let template = template()?;
        let root = new_root()?;
        let data = root.join("data");
        spawn_reaper(&root, Some(&data))?;
        let status = Command::new("cp")
            .arg("-a")
            .arg(template)
            .arg(&data)
            .status()
            .map_err(|e| format!("cp: {e}"))?;
        if !status.success() {
            return Err(format!("copying the initdb template to {}", data.display()));
        }
        std::fs::create_dir_all(root.join("sock")).map_err(|e| e.to_string())?;
        let as_nobody = running_as_root();
        if as_nobody {
            chown_nobody(&root)?;
        }
        let mut last = String::new();
        // A free port may be taken between looking and listening: try again.
        for _ in 0..5 {
            let port = free_port()?;
            let conf = format!(
                "\n# estd tests\nlisten_addresses = '127.0.0.1'\nport = {port}\n\
                 unix_socket_directories = '{}'\nmax_connections = {MAX_CONNECTIONS}\n\
                 fsync = on\nsynchronous_commit = on\nshared_buffers = 32MB\n\
                 max_wal_size = 256MB\nmin_wal_size = 64MB\n",
                root.join("sock").display()
            );
            std::fs::write(data.join("postgresql.auto.conf"), conf)
                .map_err(|e| format!("postgresql.auto.conf: {e}"))?;
            let cluster = Cluster {
                root: root.clone(),
                bin: bin.clone(),
                port,
                as_nobody,
                databases: AtomicU64::new(0),
            };
            match cluster.start_server() {
                Ok(()) => return Ok(cluster),
                Err(e) => {
                    last = e;
                    // Not dropped: it removes the folder.
                    std::mem::forget(cluster);
                }
            }
        }
        Err(last)
    }

    fn data(&self) -> PathBuf {
        self.root.join("data")
    }

    fn pg_ctl(&self, args: &[&str], what: &str) -> Result<(), String> {
        let mut cmd = server_command(&self.bin, "pg_ctl", self.as_nobody);
        cmd.arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.root.join("server.log"))
            .args(args);
        run_logged(cmd, &self.root.join(format!("pg_ctl-{what}.log")), what)
            .map_err(|e| format!("{e}\nserver log:\n{}", self.server_log()))
    }

    fn start_server(&self) -> Result<(), String> {
        self.pg_ctl(&["-w", "-t", "60", "start"], "start")
    }

    /// The server's log so far.
    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.root.join("server.log")).unwrap_or_default()
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of database `db` as the superuser.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://{SUPERUSER}@127.0.0.1:{}/{db}?connect_timeout=5",
            self.port
        )
    }

    /// Runs SQL as the superuser on database `db` with `psql`.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, String> {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
            ])
            .arg("-p")
            .arg(self.port.to_string())
            .args(["-U", SUPERUSER, "-d", db, "-c", sql])
            .env("PGCONNECT_TIMEOUT", "10")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("psql: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "psql {sql:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// A new, empty database; returns its URL.
    pub fn create_database(&self) -> String {
        let n = self.databases.fetch_add(1, Ordering::Relaxed);
        let name = format!("t{n}");
        if let Err(e) = self.psql("postgres", &format!("CREATE DATABASE {name}")) {
            panic!("creating a test database: {e}");
        }
        self.url(&name)
    }

    /// Stops the server (fast shutdown: sessions are ended, nothing lost).
    pub fn stop(&self) -> Result<(), String> {
        self.pg_ctl(&["-w", "-t", "60", "-m", "fast", "stop"], "stop")
    }

    /// Starts the stopped server again, on the same port and data.
    pub fn start_again(&self) -> Result<(), String> {
        self.start_server()
    }

    /// Stops and starts the server.
    pub fn restart(&self) -> Result<(), String> {
        self.pg_ctl(&["-w", "-t", "60", "-m", "fast", "restart"], "restart")
    }

    /// Stops the server as in a crash (immediate shutdown: no checkpoint,
    /// recovery from the WAL at the next start) and starts it again.
    pub fn restart_immediate(&self) -> Result<(), String> {
        self.pg_ctl(&["-w", "-t", "60", "-m", "immediate", "restart"], "restart")
    }

    /// Whether the server accepts connections (`pg_isready`), waiting up
    /// to `wait` for it.
    pub fn wait_ready(&self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        loop {
            let ok = Command::new(self.bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p"])
                .arg(self.port.to_string())
                .stdin(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok || Instant::now() > deadline {
                return ok;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.pg_ctl(&["-w", "-t", "30", "-m", "immediate", "stop"], "drop");
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
