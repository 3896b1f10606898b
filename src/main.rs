//! The `estd` command line.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use estd::config::LogFormat;
use estd::{App, Config, RunningServer};

/// estd: an EST (RFC 7030) server with its own certificate authority.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    /// A TOML file merged over the embedded default configuration (config/estd.toml).
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the EST and admin listeners. Creates CA material, the store and demo data on first start.
    Serve,
    /// Create CA material, the TLS certificate, the store and demo data, then exit.
    Init,
    /// Call the admin API of a running estd over HTTPS: profiles, orders, certificates,
    /// audit log, notifications, organisations, tokens and the public database.
    Admin(Box<estd::admin::cli::AdminArgs>),
    /// Work on a store with estd stopped: move an installation between engines.
    #[command(subcommand)]
    Store(StoreCommand),
    /// The CA: the key ceremony (a key in a PKCS#11 token or a key file,
    /// its CSR, the certificate an external root signed) and rollover to a
    /// next generation.
    #[command(subcommand)]
    Ca(CaCommand),
    /// Ask the running estd to write a backup of its store and certificate
    /// folder (the CA material, unless the key is in an HSM) to FILE on its
    /// host, while it serves. Calls the admin API (a server operator's token).
    Backup(BackupArgs),
    /// Restore a backup into the configured store and certificate folder,
    /// both empty, with estd stopped; then check the result as `store
    /// verify` does.
    Restore {
        /// The backup file.
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
        /// The environment variable holding the passphrase of an encrypted backup.
        #[arg(long, value_name = "VAR")]
        passphrase_env: Option<String>,
    },
    /// Print a shell completion script, e.g.
    /// `estd completions bash > /usr/share/bash-completion/completions/estd`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print estd's man page (roff), e.g. `estd man > estd.1`.
    Man,
}

#[derive(clap::Args)]
struct BackupArgs {
    /// The new file to write, an absolute path on estd's host.
    #[arg(long, value_name = "FILE")]
    to: PathBuf,
    /// Encrypt it with the passphrase in this environment variable (at
    /// least 12 characters; age, scrypt).
    #[arg(long, value_name = "VAR")]
    passphrase_env: Option<String>,
    /// Base URL of the admin listener.
    #[arg(long, value_name = "URL", default_value = "https://127.0.0.1:9443")]
    url: String,
    /// Trust anchor (PEM) of the admin listener's TLS certificate.
    #[arg(long, value_name = "PATH", default_value = "certs/root-ca.pem")]
    ca: PathBuf,
    /// File holding a server operator's admin API token.
    #[arg(long, value_name = "PATH", default_value = "certs/admin-token")]
    token_file: PathBuf,
}

/// The passphrase in the environment variable `var`, if one is named.
fn passphrase_from(var: Option<&str>) -> Result<Option<String>, String> {
    let Some(var) = var else { return Ok(None) };
    match std::env::var(var) {
        Ok(p) if !p.is_empty() => Ok(Some(p)),
        _ => Err(format!("--passphrase-env {var}: the variable is not set")),
    }
}

/// `estd backup`.
async fn backup(args: BackupArgs) -> Result<(), Box<dyn std::error::Error>> {
    let to = std::path::absolute(&args.to)?;
    let passphrase = passphrase_from(args.passphrase_env.as_deref())?;
    let token = estd::admin::client::read_token_file(&args.token_file)?;
    let client = estd::admin::client::AdminClient::new(&args.url, &args.ca, Some(&token))?;
    let mut body = serde_json::json!({ "to": to.display().to_string() });
    if let Some(p) = passphrase {
        body["passphrase"] = serde_json::Value::String(p);
    }
    let answer = client
        .call_waiting(
            http::Method::POST,
            "/backup",
            Some(&body),
            std::time::Duration::from_secs(6 * 3600),
        )
        .await?;
    let written = answer.json()?;
    println!(
        "estd: backup written to {} ({} bytes, {}): {} files, records {}, sha256 {}",
        written["file"].as_str().unwrap_or("?"),
        written["bytes"],
        if written["encrypted"] == true {
            "encrypted"
        } else {
            "not encrypted"
        },
        written["files"],
        written["records"],
        written["sha256"].as_str().unwrap_or("?"),
    );
    Ok(())
}

/// `estd restore`.
fn restore(
    config: &Config,
    from: &std::path::Path,
    passphrase_env: Option<&str>,
) -> Result<(), Box<dyn std::error::Error>> {
    let passphrase = passphrase_from(passphrase_env)?.map(age::secrecy::SecretString::from);
    let data = &config.paths.data_dir;
    if config.store.engine == estd::config::StoreEngine::Sled && data.join("db").exists() {
        return Err(format!(
            "{} holds a store already; restore into an empty folder",
            data.display()
        )
        .into());
    }
    let open = || -> std::io::Result<Box<dyn std::io::BufRead>> {
        Ok(Box::new(std::io::BufReader::new(std::fs::File::open(
            from,
        )?)))
    };
    // Checked whole before the store is created: a bad file leaves nothing behind.
    estd::service::backup::check(&open, passphrase.as_ref())?;
    estd::files::create_dir_all(data)?;
    let store = estd::store::open(&config.store, data)?;
    let started = std::time::Instant::now();
    let summary = estd::service::backup::restore(
        &open,
        passphrase.as_ref(),
        store.as_ref(),
        &config.paths.certs_dir,
    )?;
    println!(
        "estd: restored {} files into {} and records {:?} into the store ({:.1} s)",
        summary.files,
        config.paths.certs_dir.display(),
        summary.records,
        started.elapsed().as_secs_f64()
    );
    let report = estd::service::store_check::verify(
        store.as_ref(),
        &config.paths.certs_dir,
        estd::model::now_unix(),
    )?;
    for finding in &report.findings {
        println!("finding: {finding}");
    }
    if !report.findings.is_empty() {
        return Err(format!("the restored store has {} findings", report.findings.len()).into());
    }
    println!(
        "estd: restore verified: {} certificates ({} revoked), {} CRLs, no findings",
        report.certificates, report.revoked, report.crls
    );
    Ok(())
}

#[derive(Subcommand)]
enum CaCommand {
    /// Generate an issuing CA key: with --pkcs11 alone, the first one, in the
    /// token of [ca.key] pkcs11 (sensitive, not extractable, a token object);
    /// with --next, the next generation's, in the token under --key-label or,
    /// without --pkcs11, as a key file in certs/ca-N/.
    Init {
        /// Generate the key in the PKCS#11 token.
        #[arg(long, required_unless_present = "next")]
        pkcs11: bool,
        /// Start the next CA generation (rollover) instead of the first CA.
        #[arg(long)]
        next: bool,
        /// The token label of the next generation's key (with --pkcs11 --next).
        #[arg(long, value_name = "LABEL", requires = "next")]
        key_label: Option<String>,
        /// The key's algorithm.
        #[arg(long, value_enum, default_value = "p256")]
        algorithm: estd::ca::pkcs11::TokenKeyAlgorithm,
    },
    /// Write the issuing CA's certificate request (PEM), signed by its key,
    /// for the (offline) root to sign.
    Csr {
        /// Where to write the CSR.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// For the next CA generation being prepared.
        #[arg(long)]
        next: bool,
    },
    /// Check the issuing CA certificate the root signed (its key is the
    /// CA's, each signature in the chain verifies) and install it with its
    /// chain into the certificate folder.
    Import {
        /// The issuing CA certificate (PEM).
        #[arg(long, value_name = "FILE")]
        cert: PathBuf,
        /// Its issuers (PEM): any intermediates, then the root.
        #[arg(long, value_name = "FILE")]
        chain: PathBuf,
        /// Install the next CA generation being prepared.
        #[arg(long)]
        next: bool,
        /// With a new root: NewWithOld and OldWithNew (PEM), for /cacerts.
        #[arg(long, value_name = "FILE", requires = "next")]
        root_rollover: Option<PathBuf>,
        /// When the next generation starts to issue (UTC, e.g. 2027-01-01T00:00:00Z, or "now").
        #[arg(long, value_name = "TIME", requires = "next")]
        switch_at: Option<String>,
    },
    /// Prepare the next generation of a development CA (software keys, the
    /// root key in certs/): a new issuing CA under the current root, or with
    /// --new-root under a new root, with the root rollover certificates.
    Next {
        /// Make a new root too, with NewWithOld and OldWithNew.
        #[arg(long)]
        new_root: bool,
        /// When it starts to issue (UTC, e.g. 2027-01-01T00:00:00Z, or "now").
        #[arg(long, value_name = "TIME")]
        switch_at: Option<String>,
    },
    /// Set when the newest CA generation starts to issue new certificates.
    Switch {
        /// The moment (UTC, e.g. 2027-01-01T00:00:00Z, or "now").
        #[arg(long, value_name = "TIME")]
        at: String,
    },
    /// List the CA generations and which one issues now.
    Status,
}

/// A moment given on the command line: RFC 3339 in UTC, or "now".
fn moment(text: &str) -> Result<u64, String> {
    if text == "now" {
        return Ok(estd::model::now_unix());
    }
    estd::model::parse_rfc3339(text)
        .ok_or_else(|| format!("{text:?} is not a time in UTC like 2027-01-01T00:00:00Z, or now"))
}

/// `estd ca ...`.
fn ca_command(config: &Config, command: CaCommand) -> Result<(), Box<dyn std::error::Error>> {
    use estd::ca::{ceremony, rollover};
    let certs = &config.paths.certs_dir;
    match command {
        CaCommand::Init {
            next: false,
            algorithm,
            ..
        } => print!("{}", ceremony::init(&config.ca, algorithm)?),
        CaCommand::Init {
            next: true,
            pkcs11,
            key_label,
            algorithm,
        } => {
            if pkcs11 != key_label.is_some() {
                return Err("with --next, --pkcs11 and --key-label go together (a key in the token needs its own label)".into());
            }
            print!(
                "{}",
                ceremony::init_next(&config.ca, certs, key_label.as_deref(), algorithm)?
            )
        }
        CaCommand::Csr { out, next } => {
            let pem = ceremony::csr(&config.ca, certs, next)?;
            std::fs::write(&out, pem)
                .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
            println!(
                "estd: wrote the issuing CA's CSR to {}; have the root sign it, then run \
                 estd ca import{} --cert ISSUING.pem --chain ROOT.pem",
                out.display(),
                if next { " --next" } else { "" }
            );
        }
        CaCommand::Import {
            cert,
            chain,
            next,
            root_rollover,
            switch_at,
        } => {
            let next = match next {
                false => None,
                true => Some(ceremony::NextGeneration {
                    root_rollover,
                    switch_at: switch_at.as_deref().map(moment).transpose()?,
                }),
            };
            println!(
                "{}",
                ceremony::import(&config.ca, certs, &cert, &chain, next)?
            )
        }
        CaCommand::Next {
            new_root,
            switch_at,
        } => {
            let switch_at = switch_at.as_deref().map(moment).transpose()?;
            println!(
                "{}",
                rollover::stage_development(certs, &config.ca, new_root, switch_at)?
            )
        }
        CaCommand::Switch { at } => println!("{}", rollover::set_switch(certs, moment(&at)?)?),
        CaCommand::Status => print!("{}", rollover::status(certs)?),
    }
    Ok(())
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Copy every record from one store into a new, empty one, then verify
    /// that both hold the same (records per kind, and a checksum). A store
    /// is a sled directory or a postgres:// URL.
    Copy {
        /// The store to copy (e.g. data/).
        #[arg(long)]
        from: String,
        /// The empty store to fill (e.g. postgres://estd@127.0.0.1/estd).
        #[arg(long)]
        to: String,
    },
    /// Check the configured store: every certificate parses and verifies
    /// under its CA, the indexes (serials, expiry, the revoked set) agree
    /// with the records, each CRL verifies and lists what it should, and
    /// the counts agree. Exits 1 and names each finding. A sled store is
    /// checked with estd stopped; PostgreSQL while it serves.
    Verify,
}

/// `estd store copy`.
fn copy_store(from: &str, to: &str) -> Result<(), Box<dyn std::error::Error>> {
    if from == to {
        return Err(format!("--from and --to both name {from}; copy into another store").into());
    }
    // Opening a sled directory creates it: a mistyped source would copy nothing.
    if !estd::store::is_database_url(from) && !std::path::Path::new(from).join("db").is_file() {
        return Err(format!("--from {from}: no estd store there (no sled database in it)").into());
    }
    let source = estd::store::open_location(from, 4)?;
    let target = estd::store::open_location(to, 4)?;
    let started = std::time::Instant::now();
    let summary = estd::store::copy::copy(&source, &target, &mut |n| {
        if n % 100_000 < 2_000 {
            eprintln!("estd: store copy: {n} records so far");
        }
    })?;
    println!(
        "estd: store copy: done in {:.1} s, verified: {summary}",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Writes generated text to stdout.
fn print_generated(text: &[u8], what: &str) -> ExitCode {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("estd: writing {what}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `estd store verify`.
fn verify_store(config: &Config) -> Result<(), Box<dyn std::error::Error>> {
    let data = &config.paths.data_dir;
    // Opening a sled directory creates it: a mistyped path would check nothing.
    if config.store.engine == estd::config::StoreEngine::Sled && !data.join("db").is_file() {
        return Err(format!(
            "{}: no estd store there (no sled database in it)",
            data.display()
        )
        .into());
    }
    let store = estd::store::open(&config.store, data)?;
    let started = std::time::Instant::now();
    let report = estd::service::store_check::verify(
        store.as_ref(),
        &config.paths.certs_dir,
        estd::model::now_unix(),
    )?;
    let records: Vec<String> = report
        .records
        .iter()
        .map(|(k, n)| format!("{k}={n}"))
        .collect();
    println!(
        "estd: store verify: {} certificates ({} revoked), {} CRLs, records: {} ({:.1} s)",
        report.certificates,
        report.revoked,
        report.crls,
        records.join(" "),
        started.elapsed().as_secs_f64()
    );
    if report.findings.is_empty() {
        println!("estd: store verify: no findings");
        return Ok(());
    }
    for finding in &report.findings {
        println!("finding: {finding}");
    }
    Err(format!("store verify: {} findings", report.findings.len()).into())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Generated from the command definition; they need no configuration.
    match &cli.command {
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            // Into memory first: the generator panics on a failed write
            // (a closed pipe, say).
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut command, "estd", &mut script);
            return print_generated(&script, "the completion script");
        }
        Command::Man => {
            let command = <Cli as clap::CommandFactory>::command();
            let mut page = Vec::new();
            if let Err(e) = clap_mangen::Man::new(command).render(&mut page) {
                eprintln!("estd: rendering the man page: {e}");
                return ExitCode::FAILURE;
            }
            return print_generated(&page, "the man page");
        }
        _ => {}
    }
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("estd: {e}");
            return ExitCode::from(2);
        }
    };
    let set_log_filter = init_logging(&config);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("estd: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Serve => runtime.block_on(serve(config, cli.config.clone(), set_log_filter)),
        Command::Init => init(config),
        Command::Admin(args) => runtime
            .block_on(estd::admin::cli::run(*args, &mut std::io::stdout().lock()))
            .map_err(Into::into),
        Command::Store(StoreCommand::Copy { from, to }) => copy_store(&from, &to),
        Command::Store(StoreCommand::Verify) => verify_store(&config),
        Command::Ca(command) => ca_command(&config, command),
        Command::Backup(args) => runtime.block_on(backup(args)),
        Command::Restore {
            from,
            passphrase_env,
        } => restore(&config, &from, passphrase_env.as_deref()),
        Command::Completions { .. } | Command::Man => Ok(()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("estd: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Installs a new log filter (a reload's `[log] filter`).
type SetLogFilter = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

fn init_logging(config: &Config) -> SetLogFilter {
    let from_env = std::env::var_os("RUST_LOG").is_some_and(|v| !v.is_empty());
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&config.log.filter))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let lines = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    fn setter<L, S>(
        handle: tracing_subscriber::reload::Handle<L, S>,
        from_env: bool,
    ) -> SetLogFilter
    where
        L: From<tracing_subscriber::EnvFilter> + Send + Sync + 'static,
        S: 'static,
    {
        Box::new(move |text: &str| {
            if from_env {
                return Err("RUST_LOG is set, and governs the log filter".into());
            }
            let filter = tracing_subscriber::EnvFilter::try_new(text).map_err(|e| e.to_string())?;
            handle.reload(filter).map_err(|e| e.to_string())
        })
    }
    match config.log.format {
        LogFormat::Text => {
            let lines = lines
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_filter_reloading();
            let set = setter(lines.reload_handle(), from_env);
            lines.init();
            set
        }
        LogFormat::Json => {
            let lines = lines.json().with_current_span(true).with_filter_reloading();
            let set = setter(lines.reload_handle(), from_env);
            lines.init();
            set
        }
    }
}

fn init(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let init = App::init(config)?;
    let cfg = &init.app.config;
    println!(
        "estd: CA material in {} ({}), store in {}",
        cfg.paths.certs_dir.display(),
        if init.created_ca {
            "created"
        } else {
            "already present"
        },
        cfg.paths.data_dir.display()
    );
    Ok(())
}

async fn serve(
    config: Config,
    path: Option<PathBuf>,
    set_log_filter: SetLogFilter,
) -> Result<(), Box<dyn std::error::Error>> {
    let init = App::init(config)?;
    let created = init.created_ca;
    let demo = init.demo.clone();
    let token = init.admin_token.clone();
    let server = RunningServer::start(init).await?;
    print_banner(&server, created, demo.as_ref(), &token);
    let mut signals = Signals::new();
    while let Signal::Reload = signals.next().await {
        reload(&server, path.as_deref(), &set_log_filter).await;
    }
    tracing::info!("shutting down: finishing in-flight requests");
    match server.shutdown().await {
        Ok(()) => {
            tracing::info!("store flushed; bye");
            Ok(())
        }
        Err(e) => Err(format!("the store could not be flushed at shutdown: {e}").into()),
    }
}

/// SIGHUP: reads the configuration file again and applies what can change
/// live; says in the log what changed, and what waits for a restart.
async fn reload(
    server: &RunningServer,
    path: Option<&std::path::Path>,
    set_log_filter: &SetLogFilter,
) {
    tracing::info!("SIGHUP: reloading the configuration");
    let new = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "reload refused: the configuration in force stays");
            return;
        }
    };
    let app = server.app.clone();
    let port = server.public_addr.port();
    let set: &SetLogFilter = set_log_filter;
    // Issuing a TLS certificate signs and writes files: not on an async worker.
    let result = tokio::task::block_in_place(|| estd::reload::reload(&app, new, port, set));
    match result {
        Ok(report) => {
            tracing::info!(
                applied = ?report.applied,
                needs_restart = ?report.needs_restart,
                tls_certificate = ?report.tls_identity,
                "configuration reloaded"
            );
            if !report.needs_restart.is_empty() {
                tracing::warn!(
                    sections = ?report.needs_restart,
                    "these changes take effect only at the next start"
                );
            }
            estd::jobs::own_certificates::record_expiries(&app);
        }
        Err(e) => tracing::error!(error = %e, "reload refused: the configuration in force stays"),
    }
}

/// What a signal asks of the server.
enum Signal {
    /// SIGHUP.
    Reload,
    /// SIGTERM or Ctrl-C.
    Stop,
}

/// The signals estd follows while it serves.
struct Signals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    hup: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Signals {
                term: signal(SignalKind::terminate()).ok(),
                hup: signal(SignalKind::hangup()).ok(),
            }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    async fn next(&mut self) -> Signal {
        #[cfg(unix)]
        {
            async fn recv(s: &mut Option<tokio::signal::unix::Signal>) {
                match s {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending().await,
                }
            }
            tokio::select! {
                _ = tokio::signal::ctrl_c() => Signal::Stop,
                () = recv(&mut self.term) => Signal::Stop,
                () = recv(&mut self.hup) => Signal::Reload,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            Signal::Stop
        }
    }
}

fn print_banner(
    server: &RunningServer,
    created: bool,
    demo: Option<&estd::seed::DemoIdentity>,
    token: &std::path::Path,
) {
    let cfg = &server.app.config;
    let host = &cfg.server.public_host;
    let port = server.est_addr.port();
    let base = format!("https://{host}:{port}/.well-known/est");
    let anchor = estd::app::trust_anchor_file(cfg);
    println!(
        "estd: listening est={} admin={} public={}",
        server.est_addr, server.admin_addr, server.public_addr
    );
    println!();
    println!("  EST URL:        {base}");
    println!(
        "  CRL, OCSP:      {} , {}  (plain HTTP on {})",
        cfg.ca.crl_url, cfg.ca.ocsp_url, server.public_addr
    );
    println!("  CA issuers:     {}", cfg.ca.ca_issuers_url);
    println!(
        "  Metrics:        https://{host}:{}/metrics",
        server.admin_addr.port()
    );
    println!(
        "  Admin API:      https://{host}:{}/api/v1  (operator token in {})",
        server.admin_addr.port(),
        token.display()
    );
    println!(
        "  Trust anchor:   {}{}",
        anchor.display(),
        if created {
            "  (development CA created now)"
        } else {
            ""
        }
    );
    println!(
        "  Portal:         https://{host}:{}/portal/",
        server.admin_addr.port()
    );
    if let Some(d) = demo {
        let a = &d.admin;
        match &a.activation_file {
            Some(file) => println!(
                "  Demo admin:     {} (CVR {}): open the activation link in {}\n                  \
                 (mode 0600) in a browser, choose a password, add the TOTP key to an\n                  \
                 authenticator app, then log in at the portal with CVR, address, password and code",
                a.email,
                a.cvr,
                file.display()
            ),
            None => println!(
                "  Demo admin:     {} (CVR {}): log in at the portal with the password and \
                 authenticator you chose at activation",
                a.email, a.cvr
            ),
        }
        println!("  Demo IdM cert:  {}", d.cert.display());
        println!("  Demo IdM key:   {}", d.key.display());
        println!();
        println!("  Enrol a device certificate as the demo IdM system:");
        println!();
        println!(
            "    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout device.key \\\n      -subj \"/C=DK/O={}/organizationIdentifier=NTRDK-{}/CN=device-1\" -out device.csr",
            d.organisation, d.cvr
        );
        println!(
            "    curl --cacert {} --cert {} --key {} \\\n      -H 'Content-Type: application/pkcs10' --data-binary @device.csr \\\n      -o device.p7 {base}/{}/simpleenroll",
            anchor.display(),
            d.cert.display(),
            d.key.display(),
            d.label
        );
        println!("    openssl base64 -d -in device.p7 | openssl pkcs7 -inform DER -print_certs -out device.pem");
        println!("    curl --cacert {} {base}/cacerts | openssl base64 -d | openssl pkcs7 -inform DER -print_certs -out chain.pem", anchor.display());
        println!("    openssl verify -CAfile chain.pem device.pem");
    }
    println!();
}
