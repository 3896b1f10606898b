//! `--op fill`: fills the store quickly, with the server stopped.
//!
//! The embedded engine allows one process per store, so this opens the store itself, exactly
//! as the server does (`Config::load`, then `App::init`, which creates CA
//! material, the store and the demo data when missing), on the engine the
//! configuration names (`[store] engine`: sled, or PostgreSQL at `url` or
//! `ESTD_STORE_URL`), and issues certificates directly through the CA on all
//! cores:
//!
//! 1. keys (untimed): a small pool of P-256 keys whose public keys are reused,
//!    since only signing and storage are being measured;
//! 2. issue: `--count` certificates of the demo profile, each signed by the
//!    issuing CA and stored either with insert-if-absent, as an enrolment
//!    would (`--fill-batch 0`, the default on sled), or by the store's bulk
//!    import ([`estd::store::Store::import`]) in transactions of
//!    `--fill-batch` certificates (the default on PostgreSQL, 10,000: one
//!    `INSERT … SELECT FROM UNNEST` per batch, where one insert per
//!    certificate would cost a round trip and a commit each);
//! 3. revoke: `--revoked-percent` of them, spread evenly over the run (in
//!    bulk mode they are stored revoked, with their CRL entries, in the same
//!    import); the store must then hold exactly the new certificates more;
//! 4. a fresh CRL, then a synchronous flush.
//!
//! It reports the time of each phase, certificates per second, the store's
//! size on disk before and after and the bytes per certificate, and writes
//! the serials with their status (`<HEX> good|revoked`) for `--op ocsp`.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use der::Decode;
use estd::ca::csr::{classify_key, SubjectKey};
use estd::ca::CertTemplate;
use estd::config::StoreEngine;
use estd::model::{
    now_unix, CertRecord, CertStatus, Organisation, Profile, RevocationReason, Serial,
};
use estd::store::{Record, RevokedEntry, StoreError};
use estd::{App, Config};
use rcgen::{KeyPair, PublicKeyData};
use spki::SubjectPublicKeyInfoOwned;

use crate::{Cli, SetupError};

/// How many distinct subject keys the issued certificates share.
const KEY_POOL: usize = 64;

/// How often a serial collision is retried before giving up (a collision of
/// 126 random bits never happens; a repeated one means something is broken).
const SERIAL_RETRIES: u32 = 3;

/// Certificates per import transaction on PostgreSQL, by default.
const DEFAULT_IMPORT_BATCH: usize = 10_000;

/// Name of the serials file written in the data directory by default.
pub(crate) const SERIALS_FILE: &str = "fill-serials.txt";

/// Prints progress about every tenth of a phase.
struct Progress {
    /// Items done so far.
    done: AtomicU64,
    /// Items in the phase.
    total: u64,
    /// Print every `step` items.
    step: u64,
    /// When the phase began.
    started: Instant,
    /// What is being counted.
    what: &'static str,
}

impl Progress {
    fn new(total: u64, what: &'static str) -> Progress {
        Progress {
            done: AtomicU64::new(0),
            total,
            step: (total / 10).max(1),
            started: Instant::now(),
            what,
        }
    }

    fn tick(&self) {
        let n = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        if n % self.step == 0 || n == self.total {
            let secs = self.started.elapsed().as_secs_f64();
            eprintln!(
                "estd-bench:   {n}/{} {} ({secs:.1} s, {:.0}/s)",
                self.total,
                self.what,
                if secs > 0.0 { n as f64 / secs } else { 0.0 }
            );
        }
    }
}

/// One subject key of the pool.
struct PoolKey {
    spki: SubjectPublicKeyInfoOwned,
    key: SubjectKey,
}

/// What the issuing threads share.
struct IssueCtx<'a> {
    app: &'a App,
    org: &'a Organisation,
    profile: &'a Profile,
    keys: &'a [PoolKey],
    progress: Progress,
    /// Set by the first thread that fails, so that the others stop.
    stop: AtomicBool,
}

/// Whether certificate `i` of the run is one of the revoked ones: with
/// `ppm` parts per million revoked, exactly `count * ppm / 10^6` of them
/// (rounded down), spread evenly.
fn is_revoked(i: u64, ppm: u64) -> bool {
    let at = |k: u64| (u128::from(k) * u128::from(ppm)) / 1_000_000;
    at(i + 1) > at(i)
}

/// Bytes of the regular files under `dir`, recursively (as `du -sb`).
fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut total = 0;
    for entry in entries.flatten() {
        let Ok(meta) = entry.path().symlink_metadata() else {
            continue;
        };
        if meta.is_dir() {
            total += dir_size(&entry.path());
        } else if meta.is_file() {
            total += meta.len();
        }
    }
    total
}

/// Megabytes, for display.
fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1_000_000.0
}

fn generate_keys() -> Result<Vec<PoolKey>, SetupError> {
    (0..KEY_POOL)
        .map(|_| {
            let kp = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
                .map_err(|e| SetupError::Generate(e.to_string()))?;
            let spki = SubjectPublicKeyInfoOwned::from_der(&kp.subject_public_key_info())
                .map_err(|e| SetupError::Generate(format!("rcgen made an unparsable SPKI: {e}")))?;
            let key = classify_key(&spki).map_err(|e| SetupError::Generate(e.to_string()))?;
            Ok(PoolKey { spki, key })
        })
        .collect()
}

/// Signs certificate `i` and returns its record, not yet stored.
fn make_record(ctx: &IssueCtx<'_>, i: u64) -> Result<CertRecord, String> {
    let key = &ctx.keys[(i % ctx.keys.len() as u64) as usize];
    let template = CertTemplate {
        subject: estd::seed::system_subject(ctx.org, &format!("fill-{i}"))
            .map_err(|e| format!("subject of certificate {i}: {e}"))?,
        spki: key.spki.clone(),
        key: key.key,
        usage: estd::policy::cert_usage(ctx.profile, &ctx.app.config.certificate_policies)
            .map_err(|e| format!("certificate {i}: {e}"))?,
        sans: vec![],
        validity_days: ctx.profile.validity_days,
    };
    let subject = template.subject.to_string();
    let issued = ctx
        .app
        .ca
        .active()
        .issue(&template)
        .map_err(|e| format!("signing certificate {i}: {e}"))?;
    Ok(CertRecord {
        serial: issued.serial,
        der: issued.der,
        subject,
        profile_id: ctx.profile.id.clone(),
        cvr: ctx.org.cvr.clone(),
        kind: ctx.profile.kind,
        rights: ctx.profile.rights.clone(),
        issued_at: now_unix(),
        not_after: issued.not_after,
        status: CertStatus::Issued,
        renews: None,
        renewed_by: None,
        order_id: None,
        published: ctx.profile.publish,
        email: None,
    })
}

/// Issues and stores certificate `i` with insert-if-absent, as an enrolment
/// would; returns its serial.
fn issue_one(ctx: &IssueCtx<'_>, i: u64) -> Result<Serial, String> {
    for _ in 0..SERIAL_RETRIES {
        let record = make_record(ctx, i)?;
        match ctx.app.store.insert_new_cert(&record) {
            Ok(()) => return Ok(record.serial),
            Err(StoreError::SerialTaken) => continue,
            Err(e) => return Err(format!("storing certificate {i}: {e}")),
        }
    }
    Err(format!(
        "certificate {i}: {SERIAL_RETRIES} serial collisions in a row"
    ))
}

/// Issues certificates `t, t + threads, t + 2 threads, ...` below `count`.
fn issue_share(
    ctx: &IssueCtx<'_>,
    t: u64,
    threads: u64,
    count: u64,
) -> Result<Vec<(u64, Serial)>, String> {
    let mut out = Vec::with_capacity((count / threads + 1) as usize);
    let mut i = t;
    while i < count {
        if ctx.stop.load(Ordering::Relaxed) {
            break;
        }
        match issue_one(ctx, i) {
            Ok(serial) => out.push((i, serial)),
            Err(e) => {
                ctx.stop.store(true, Ordering::Relaxed);
                return Err(e);
            }
        }
        ctx.progress.tick();
        i += threads;
    }
    Ok(out)
}

/// Revokes `serials`, one thread per chunk.
fn revoke_all(app: &App, serials: &[Serial], threads: usize) -> Result<(), SetupError> {
    if serials.is_empty() {
        return Ok(());
    }
    let progress = Progress::new(serials.len() as u64, "revoked");
    let stop = AtomicBool::new(false);
    let at = now_unix();
    let chunk = serials.len().div_ceil(threads).max(1);
    let results: Vec<Result<(), String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = serials
            .chunks(chunk)
            .map(|part| {
                let (progress, stop) = (&progress, &stop);
                scope.spawn(move || -> Result<(), String> {
                    for serial in part {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let outcome = app
                            .store
                            .revoke_cert(serial, RevocationReason::Superseded, at)
                            .map_err(|e| format!("revoking {serial}: {e}"))
                            .and_then(|r| r.map_err(|e| format!("revoking {serial}: {e}")));
                        if let Err(e) = outcome {
                            stop.store(true, Ordering::Relaxed);
                            return Err(e);
                        }
                        progress.tick();
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("a revoking thread panicked".into()))
            })
            .collect()
    });
    for r in results {
        r.map_err(SetupError::Store)?;
    }
    Ok(())
}

/// Writes `<HEX> good|revoked` lines.
fn write_serials(path: &Path, serials: &[(Serial, bool)]) -> Result<(), SetupError> {
    let err = |e: std::io::Error| SetupError::File {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    let file = std::fs::File::create(path).map_err(err)?;
    let mut w = BufWriter::new(file);
    for (serial, revoked) in serials {
        writeln!(w, "{serial} {}", if *revoked { "revoked" } else { "good" }).map_err(err)?;
    }
    w.flush().map_err(err)?;
    Ok(())
}

/// `--revoked-percent` as parts per million.
fn revoked_ppm(pct: f64) -> Result<u64, SetupError> {
    if !(pct.is_finite() && (0.0..=100.0).contains(&pct)) {
        return Err(SetupError::Usage(
            "--revoked-percent must be between 0 and 100".into(),
        ));
    }
    Ok((pct * 10_000.0).round() as u64)
}

/// `--threads` (default: the number of CPUs), at most one per certificate.
fn thread_count(threads: Option<u32>, count: u64) -> usize {
    match threads {
        Some(t) => t as usize,
        None => std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
    }
    .min(count as usize)
    .max(1)
}

/// The profile (`--label`) and organisation (`--cvr`) to issue under.
fn fill_target(app: &App, cli: &Cli) -> Result<(Profile, Organisation), SetupError> {
    let profile = app
        .store
        .profile_by_label(&cli.label)
        .map_err(|e| SetupError::Store(e.to_string()))?
        .ok_or_else(|| SetupError::Usage(format!("no profile with EST label {:?}", cli.label)))?;
    let org = app
        .store
        .org(&cli.cvr)
        .map_err(|e| SetupError::Store(e.to_string()))?
        .ok_or_else(|| SetupError::Usage(format!("no organisation with CVR {}", cli.cvr)))?;
    if profile.cvr != org.cvr {
        return Err(SetupError::Usage(format!(
            "profile {:?} belongs to CVR {}, not {}",
            cli.label, profile.cvr, org.cvr
        )));
    }
    Ok((profile, org))
}

/// Issues `count` certificates on `threads` threads; (index, serial) in index order.
fn issue_all(
    ctx: &IssueCtx<'_>,
    threads: usize,
    count: u64,
) -> Result<Vec<(u64, Serial)>, SetupError> {
    let parts: Vec<Result<Vec<(u64, Serial)>, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads as u64)
            .map(|t| scope.spawn(move || issue_share(ctx, t, threads as u64, count)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("an issuing thread panicked".into()))
            })
            .collect()
    });
    let mut issued: Vec<(u64, Serial)> = Vec::with_capacity(count as usize);
    for part in parts {
        issued.extend(part.map_err(SetupError::Store)?);
    }
    issued.sort_unstable_by_key(|(i, _)| *i);
    Ok(issued)
}

/// Signs certificates `t, t + threads, ...` below `count` and sends them to
/// the writer; stops when told to or when the writer is gone.
fn sign_share(
    ctx: &IssueCtx<'_>,
    t: u64,
    threads: u64,
    count: u64,
    tx: std::sync::mpsc::SyncSender<(u64, CertRecord)>,
) -> Result<(), String> {
    let mut i = t;
    while i < count && !ctx.stop.load(Ordering::Relaxed) {
        let record =
            make_record(ctx, i).inspect_err(|_| ctx.stop.store(true, Ordering::Relaxed))?;
        if tx.send((i, record)).is_err() {
            // The writer stopped; it reports why.
            break;
        }
        i += threads;
    }
    Ok(())
}

/// Stores one batch with the store's bulk import: the certificates (those
/// to be revoked already revoked at `at`) and the CRL entries of the revoked.
fn import_batch(
    app: &App,
    batch: &mut Vec<(u64, CertRecord)>,
    ppm: u64,
    at: u64,
    issued: &mut Vec<(u64, Serial)>,
) -> Result<(), String> {
    let mut records = Vec::with_capacity(batch.len() + batch.len() / 50 + 1);
    for (i, mut rec) in batch.drain(..) {
        issued.push((i, rec.serial));
        if is_revoked(i, ppm) {
            let reason = RevocationReason::Superseded;
            rec.status = CertStatus::Revoked { at, reason };
            records.push(Record::Revoked(RevokedEntry {
                serial: rec.serial,
                at,
                reason,
            }));
        }
        records.push(Record::Cert(rec));
    }
    app.store
        .import(records)
        .map_err(|e| format!("importing a batch: {e}"))
}

/// Issues `count` certificates on `threads` signing threads while this
/// thread stores them with [`estd::store::Store::import`], `batch` per
/// transaction, revoking the `ppm` share as it goes; (index, serial) in
/// index order.
fn import_all(
    ctx: &IssueCtx<'_>,
    threads: usize,
    count: u64,
    batch: usize,
    ppm: u64,
) -> Result<Vec<(u64, Serial)>, SetupError> {
    let at = now_unix();
    let (tx, rx) = std::sync::mpsc::sync_channel::<(u64, CertRecord)>(batch.saturating_mul(2));
    let (signed, stored) = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads as u64)
            .map(|t| {
                let tx = tx.clone();
                scope.spawn(move || sign_share(ctx, t, threads as u64, count, tx))
            })
            .collect();
        drop(tx);
        let stored = (|| -> Result<Vec<(u64, Serial)>, String> {
            let mut issued = Vec::with_capacity(count as usize);
            let mut pending = Vec::with_capacity(batch);
            for item in &rx {
                pending.push(item);
                ctx.progress.tick();
                if pending.len() >= batch {
                    import_batch(ctx.app, &mut pending, ppm, at, &mut issued)?;
                }
            }
            if !pending.is_empty() {
                import_batch(ctx.app, &mut pending, ppm, at, &mut issued)?;
            }
            Ok(issued)
        })();
        if stored.is_err() {
            ctx.stop.store(true, Ordering::Relaxed);
        }
        drop(rx);
        let signed: Result<(), String> = handles.into_iter().try_for_each(|h| {
            h.join()
                .unwrap_or_else(|_| Err("a signing thread panicked".into()))
        });
        (signed, stored)
    });
    signed.map_err(SetupError::Store)?;
    let mut issued = stored.map_err(SetupError::Store)?;
    issued.sort_unstable_by_key(|(i, _)| *i);
    Ok(issued)
}

/// Signs a fresh CRL; its size in bytes.
fn sign_crl(app: &App) -> Result<usize, SetupError> {
    let crl_started = Instant::now();
    let crl = app
        .revocation
        .regenerate_crl(&app.store, &app.metrics)
        .map_err(|e| SetupError::Store(format!("signing the CRL: {e}")))?;
    eprintln!(
        "estd-bench: fill: CRL number {} signed in {:.3} s ({} bytes)",
        crl.number,
        crl_started.elapsed().as_secs_f64(),
        crl.der.len()
    );
    Ok(crl.der.len())
}

/// Seconds each phase of the fill took.
#[derive(Default)]
struct Timings {
    init: f64,
    issue: f64,
    revoke: f64,
    crl: f64,
    flush: f64,
    /// Issue, revoke, CRL and flush.
    total: f64,
    close: f64,
}

/// What the fill did, for the report.
#[derive(Default)]
struct Filled {
    /// `[store] engine`.
    engine: &'static str,
    /// Certificates per import transaction (0: one insert each).
    batch: usize,
    threads: usize,
    /// Certificates issued, and how many of them were revoked.
    issued: u64,
    revoked: usize,
    /// Certificates in the store before and after.
    certs_before: usize,
    certs_after: usize,
    /// sled's size_on_disk before and after, bytes.
    store_before: u64,
    store_after: u64,
    /// The data directory's size before, after the flush and after closing, bytes.
    du_before: u64,
    du_after_flush: u64,
    du_after: u64,
    crl_bytes: usize,
    serials_path: PathBuf,
    secs: Timings,
}

/// Runs `--op fill`.
pub(crate) fn run(cli: &Cli) -> Result<ExitCode, SetupError> {
    let pct = cli.revoked_percent;
    let ppm = revoked_ppm(pct)?;
    let count = cli.count;
    let threads = thread_count(cli.threads, count);
    let mut out = Filled {
        threads,
        ..Filled::default()
    };

    let config =
        Config::load(cli.config.as_deref()).map_err(|e| SetupError::Usage(e.to_string()))?;
    let data_dir = config.paths.data_dir.clone();
    out.engine = match config.store.engine {
        StoreEngine::Sled => "sled",
        StoreEngine::Postgres => "postgres",
    };
    out.batch = cli.fill_batch.unwrap_or(match config.store.engine {
        StoreEngine::Sled => 0,
        StoreEngine::Postgres => DEFAULT_IMPORT_BATCH,
    });
    out.serials_path = cli
        .serials
        .clone()
        .unwrap_or_else(|| data_dir.join(SERIALS_FILE));
    out.du_before = dir_size(&data_dir);
    eprintln!(
        "estd-bench: fill: opening the {} store{} (certs in {}); the server must be stopped",
        out.engine,
        match config.store.engine {
            StoreEngine::Sled => format!(" in {}", data_dir.display()),
            StoreEngine::Postgres => String::new(),
        },
        config.paths.certs_dir.display()
    );
    let init_started = Instant::now();
    let init = App::init(config).map_err(|e| SetupError::Store(format!("initialising: {e}")))?;
    out.secs.init = init_started.elapsed().as_secs_f64();
    let app: &App = &init.app;
    out.certs_before = app.store.cert_count();
    out.store_before = app.store.size_on_disk();
    let (profile, org) = fill_target(app, cli)?;
    eprintln!(
        "estd-bench: fill: store opened in {:.2} s with {} certificates, {:.1} MB on disk",
        out.secs.init,
        out.certs_before,
        mb(out.store_before)
    );
    let keys = generate_keys()?;

    // Issue.
    eprintln!(
        "estd-bench: fill: issuing {count} certificates (profile {:?}, {} days, {KEY_POOL} shared P-256 keys) on {threads} threads, stored {}",
        profile.est_label,
        profile.validity_days,
        if out.batch > 0 {
            format!("by bulk import, {} per transaction, {pct}% revoked as they are stored", out.batch)
        } else {
            "one by one with insert-if-absent".to_owned()
        }
    );
    let ctx = IssueCtx {
        app,
        org: &org,
        profile: &profile,
        keys: &keys,
        progress: Progress::new(count, "issued"),
        stop: AtomicBool::new(false),
    };
    let started = Instant::now();
    let issued = if out.batch > 0 {
        import_all(&ctx, threads, count, out.batch, ppm)?
    } else {
        issue_all(&ctx, threads, count)?
    };
    out.secs.issue = started.elapsed().as_secs_f64();

    // Revoke.
    let listed: Vec<(Serial, bool)> = issued
        .iter()
        .map(|(i, s)| (*s, is_revoked(*i, ppm)))
        .collect();
    drop(issued);
    let to_revoke: Vec<Serial> = listed.iter().filter(|(_, r)| *r).map(|(s, _)| *s).collect();
    eprintln!(
        "estd-bench: fill: revoking {} certificates ({pct}%)",
        to_revoke.len()
    );
    let revoke_started = Instant::now();
    if out.batch == 0 {
        revoke_all(app, &to_revoke, threads)?;
    }
    out.secs.revoke = revoke_started.elapsed().as_secs_f64();

    let crl_started = Instant::now();
    out.crl_bytes = sign_crl(app)?;
    out.secs.crl = crl_started.elapsed().as_secs_f64();

    // Flush.
    let flush_started = Instant::now();
    app.store
        .flush()
        .map_err(|e| SetupError::Store(format!("flushing: {e}")))?;
    out.secs.flush = flush_started.elapsed().as_secs_f64();
    out.secs.total = started.elapsed().as_secs_f64();
    out.certs_after = app.store.cert_count();
    out.store_after = app.store.size_on_disk();
    // Import replaces a record of an existing serial rather than refusing
    // it: every certificate must have added one.
    if out.certs_after != out.certs_before + listed.len() {
        return Err(SetupError::Store(format!(
            "the store holds {} certificates after the fill, not {} + {}",
            out.certs_after,
            out.certs_before,
            listed.len()
        )));
    }
    out.du_after_flush = dir_size(&data_dir);

    let close_started = Instant::now();
    drop(init);
    out.secs.close = close_started.elapsed().as_secs_f64();
    out.du_after = dir_size(&data_dir);

    write_serials(&out.serials_path, &listed)?;
    out.issued = listed.len() as u64;
    out.revoked = to_revoke.len();
    report(&out);
    Ok(ExitCode::SUCCESS)
}

/// Prints the report and the `RESULT` line.
fn report(f: &Filled) {
    let (n, t) = (f.issued, &f.secs);
    let per_second = |secs: f64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
    let rate = per_second(t.total);
    let issue_rate = per_second(t.issue);
    let per_cert_store = f.store_after.saturating_sub(f.store_before) / n.max(1);
    let per_cert_du = f.du_after.saturating_sub(f.du_before) / n.max(1);
    println!("estd-bench report");
    println!("  op:            fill");
    println!("  engine:        {}", f.engine);
    println!(
        "  stored:        {}",
        if f.batch > 0 {
            format!("bulk import, {} per transaction", f.batch)
        } else {
            "one insert per certificate".to_owned()
        }
    );
    println!("  threads:       {}", f.threads);
    println!("  issued:        {n} ({} revoked)", f.revoked);
    println!(
        "  certificates:  {} before, {} after (kept count)",
        f.certs_before, f.certs_after
    );
    println!("  store open:    {:.3} s (App::init)", t.init);
    println!(
        "  issue+store:   {:.3} s ({issue_rate:.1} certificates/s)",
        t.issue
    );
    println!("  revoke:        {:.3} s", t.revoke);
    println!("  CRL:           {:.3} s ({} bytes)", t.crl, f.crl_bytes);
    println!("  flush:         {:.3} s", t.flush);
    println!(
        "  total:         {:.3} s ({rate:.1} certificates/s)",
        t.total
    );
    println!("  close:         {:.3} s (dropping the store)", t.close);
    println!(
        "  size_on_disk:  {:.1} MB before, {:.1} MB after ({per_cert_store} bytes per certificate)",
        mb(f.store_before),
        mb(f.store_after)
    );
    println!(
        "  data dir:      {:.1} MB before, {:.1} MB after flush, {:.1} MB after close ({per_cert_du} bytes per certificate)",
        mb(f.du_before),
        mb(f.du_after_flush),
        mb(f.du_after)
    );
    println!("  serials:       {}", f.serials_path.display());
    println!(
        "RESULT op=fill engine={} batch={} count={n} revoked={} threads={} secs={:.3} rate={rate:.1} issue_secs={:.3} revoke_secs={:.3} crl_secs={:.3} flush_secs={:.3} store_bytes_before={} store_bytes_after={} du_bytes_after={} bytes_per_cert={per_cert_du}",
        f.engine,
        f.batch,
        f.revoked,
        f.threads,
        t.total,
        t.issue,
        t.revoke,
        t.crl,
        t.flush,
        f.store_before,
        f.store_after,
        f.du_after
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revoked_share() {
        let count = |n: u64, ppm: u64| (0..n).filter(|&i| is_revoked(i, ppm)).count();
        assert_eq!(count(100_000, 10_000), 1000);
        assert_eq!(count(1000, 0), 0);
        assert_eq!(count(1000, 1_000_000), 1000);
        assert_eq!(count(1000, 250_000), 250);
    }
}
