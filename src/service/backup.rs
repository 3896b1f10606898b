//! Backups: the store's records and the certificate folder (the CA
//! material, unless the key lives in an HSM and so is no file) in one file,
//! optionally encrypted with a passphrase (age, scrypt), and the restore of
//! such a file into an empty store and an empty certificate folder.
//!
//! The file: `estd-backup\n`, then frames of a tag byte, a big-endian u32
//! length and the payload: one header (JSON), the certificate folder's
//! files, every record (the store's versioned record codec), and a trailer
//! (JSON) with the counts and the SHA-256 of every byte before it. A restore
//! reads the file twice: first whole, checking the trailer, so that a
//! truncated or damaged file writes nothing; then to apply it.
//!
//! A backup is taken while estd serves, through the store traits, on every
//! engine, from [`Store::export`]: the store at one moment, when the backup
//! began (a `REPEATABLE READ` transaction on PostgreSQL, copy-on-write on
//! sled). Every record committed before then is in it, none committed after,
//! so an order and its certificate, or a revocation and its CRL entry, are
//! both in it or neither. A restore writes the records as they are and then
//! checks the result with [`super::store_check`].

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

use age::secrecy::SecretString;
use aws_lc_rs::digest;
use serde::{Deserialize, Serialize};

use crate::store::{Record, Store, StoreError};

/// The first bytes of an unencrypted backup.
pub const MAGIC: &[u8] = b"estd-backup\n";
/// The first bytes of an age-encrypted file.
const AGE_MAGIC: &[u8] = b"age-encryption.org/v1\n";
/// The backup layout this estd writes and reads.
const FORMAT: u32 = 1;
/// Records imported per transaction.
const BATCH: usize = 2000;
/// The largest frame a restore accepts (a certificate folder file, a record).
const MAX_FRAME: u32 = 64 << 20;

const TAG_HEADER: u8 = 1;
const TAG_FILE: u8 = 2;
const TAG_RECORD: u8 = 3;
const TAG_END: u8 = 4;

/// Why a backup or restore failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// Reading or writing the file, or the certificate folder.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: io::Error,
    },
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The file is not a backup this estd can restore, or is damaged.
    #[error("not a usable backup: {0}")]
    Format(String),
    /// The passphrase is missing or wrong, or the file is not encrypted
    /// although one was given.
    #[error("decryption: {0}")]
    Decrypt(String),
    /// The target is not empty.
    #[error("{0}")]
    NotEmpty(String),
    /// The restored store has findings.
    #[error("the restored store does not verify: {0}")]
    Verify(String),
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> BackupError {
    let what = what.into();
    move |source| BackupError::Io { what, source }
}

/// The first frame.
#[derive(Debug, Serialize, Deserialize)]
struct Header {
    format: u32,
    record_version: u8,
    created_at: u64,
    estd_version: String,
}

/// The last frame.
#[derive(Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Summary {
    /// Files of the certificate folder.
    pub files: u64,
    /// Records per kind.
    pub records: BTreeMap<String, u64>,
    /// SHA-256 of every byte before the trailer, hex.
    pub sha256: String,
}

/// Writes frames and hashes what it writes.
struct Framed<'a> {
    out: &'a mut dyn Write,
    hash: digest::Context,
}

impl Framed<'_> {
    fn raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.hash.update(bytes);
        self.out.write_all(bytes)
    }

    fn frame(&mut self, tag: u8, payload: &[u8]) -> io::Result<()> {
        let len = u32::try_from(payload.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
        self.raw(&[tag])?;
        self.raw(&len.to_be_bytes())?;
        self.raw(payload)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The files of `dir`, recursively, relative to it; temp files of an
/// interrupted write are left out.
fn folder_files(dir: &Path) -> Result<Vec<PathBuf>, BackupError> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let abs = dir.join(&rel);
        let entries =
            std::fs::read_dir(&abs).map_err(io_err(format!("reading {}", abs.display())))?;
        for entry in entries {
            let entry = entry.map_err(io_err(format!("reading {}", abs.display())))?;
            let name = entry.file_name();
            let rel = rel.join(&name);
            let kind = entry
                .file_type()
                .map_err(io_err(format!("reading {}", abs.display())))?;
            if kind.is_dir() {
                stack.push(rel);
            } else if kind.is_file() && !name.to_string_lossy().contains(".tmp.") {
                out.push(rel);
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(unix)]
fn mode_of(path: &Path) -> Result<u32, BackupError> {
    use std::os::unix::fs::PermissionsExt;
    Ok(std::fs::metadata(path)
        .map_err(io_err(format!("reading {}", path.display())))?
        .permissions()
        .mode()
        & 0o777)
}

#[cfg(not(unix))]
fn mode_of(_path: &Path) -> Result<u32, BackupError> {
    Ok(0o600)
}

/// Writes a backup of `store` and `certs_dir` to `out`, encrypted with
/// `passphrase` if one is given.
pub fn write(
    store: &dyn Store,
    certs_dir: &Path,
    passphrase: Option<SecretString>,
    out: &mut dyn Write,
) -> Result<Summary, BackupError> {
    match passphrase {
        None => write_plain(store, certs_dir, out),
        Some(p) => {
            let mut sealed = age::Encryptor::with_user_passphrase(p)
                .wrap_output(out)
                .map_err(io_err("starting the encryption"))?;
            let summary = write_plain(store, certs_dir, &mut sealed)?;
            sealed
                .finish()
                .map_err(io_err("finishing the encryption"))?;
            Ok(summary)
        }
    }
}

fn write_plain(
    store: &dyn Store,
    certs_dir: &Path,
    out: &mut dyn Write,
) -> Result<Summary, BackupError> {
    let mut f = Framed {
        out,
        hash: digest::Context::new(&digest::SHA256),
    };
    let w = io_err("writing the backup");
    f.raw(MAGIC).map_err(io_err("writing the backup"))?;
    let header = Header {
        format: FORMAT,
        record_version: crate::store::record_version(),
        created_at: crate::model::now_unix(),
        estd_version: env!("CARGO_PKG_VERSION").into(),
    };
    let json = serde_json::to_vec(&header).map_err(|e| BackupError::Format(e.to_string()))?;
    f.frame(TAG_HEADER, &json).map_err(w)?;
    let mut summary = Summary::default();
    for rel in folder_files(certs_dir)? {
        let abs = certs_dir.join(&rel);
        let content = std::fs::read(&abs).map_err(io_err(format!("reading {}", abs.display())))?;
        let name = rel.to_string_lossy().into_owned();
        let mut payload = Vec::with_capacity(content.len() + name.len() + 8);
        payload.extend_from_slice(&(name.len() as u16).to_be_bytes());
        payload.extend_from_slice(name.as_bytes());
        payload.extend_from_slice(&mode_of(&abs)?.to_be_bytes());
        payload.extend_from_slice(&content);
        f.frame(TAG_FILE, &payload)
            .map_err(io_err("writing the backup"))?;
        summary.files += 1;
    }
    for record in store.export() {
        let record = record?;
        *summary
            .records
            .entry(crate::store::copy::kind(&record).to_owned())
            .or_default() += 1;
        let payload = crate::store::encode_record(&record)?;
        f.frame(TAG_RECORD, &payload)
            .map_err(io_err("writing the backup"))?;
    }
    let hash = std::mem::replace(&mut f.hash, digest::Context::new(&digest::SHA256));
    summary.sha256 = hex(hash.finish().as_ref());
    let json = serde_json::to_vec(&summary).map_err(|e| BackupError::Format(e.to_string()))?;
    // The trailer is outside its own hash: written without hashing.
    f.out
        .write_all(&[TAG_END])
        .map_err(io_err("writing the backup"))?;
    f.out
        .write_all(&(json.len() as u32).to_be_bytes())
        .map_err(io_err("writing the backup"))?;
    f.out
        .write_all(&json)
        .map_err(io_err("writing the backup"))?;
    f.out.flush().map_err(io_err("writing the backup"))?;
    Ok(summary)
}

/// One frame read back.
enum Frame {
    Header(Header),
    File {
        name: PathBuf,
        mode: u32,
        content: Vec<u8>,
    },
    Record(Box<Record>),
    End(Summary),
}

/// Reads frames, hashing all but the trailer.
struct Reader<R: Read> {
    input: R,
    hash: Option<digest::Context>,
    digest: Option<String>,
}

impl<R: Read> Reader<R> {
    fn exact(&mut self, n: usize, hashed: bool) -> Result<Vec<u8>, BackupError> {
        let mut buf = vec![0u8; n];
        self.input.read_exact(&mut buf).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                BackupError::Format("the file ends early (truncated?)".into())
            } else {
                BackupError::Io {
                    what: "reading the backup".into(),
                    source: e,
                }
            }
        })?;
        if hashed {
            if let Some(h) = self.hash.as_mut() {
                h.update(&buf);
            }
        }
        Ok(buf)
    }

    fn next(&mut self) -> Result<Frame, BackupError> {
        let tag = self.exact(1, false)?[0];
        if tag == TAG_END {
            if let Some(h) = self.hash.take() {
                self.digest = Some(hex(h.finish().as_ref()));
            }
        } else if let Some(h) = self.hash.as_mut() {
            h.update(&[tag]);
        }
        let hashed = tag != TAG_END;
        let len_bytes = self.exact(4, hashed)?;
        let len = u32::from_be_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]);
        if len > MAX_FRAME {
            return Err(BackupError::Format(format!("a frame of {len} bytes")));
        }
        let payload = self.exact(len as usize, hashed)?;
        let bad = |what: &str| BackupError::Format(what.into());
        Ok(match tag {
            TAG_HEADER => Frame::Header(
                serde_json::from_slice(&payload).map_err(|_| bad("the header does not parse"))?,
            ),
            TAG_FILE => {
                let name_len = payload
                    .get(..2)
                    .map(|b| u16::from_be_bytes([b[0], b[1]]) as usize)
                    .ok_or_else(|| bad("a file frame too short"))?;
                let name = payload
                    .get(2..2 + name_len)
                    .and_then(|b| std::str::from_utf8(b).ok())
                    .ok_or_else(|| bad("a file name that is not UTF-8"))?;
                let mode = payload
                    .get(2 + name_len..6 + name_len)
                    .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                    .ok_or_else(|| bad("a file frame too short"))?;
                let name = PathBuf::from(name);
                // Only plain relative names: a crafted file must not write
                // outside the certificate folder.
                if name
                    .components()
                    .any(|c| !matches!(c, Component::Normal(_)))
                {
                    return Err(bad("a file name that leaves the certificate folder"));
                }
                Frame::File {
                    name,
                    mode,
                    content: payload[6 + name_len..].to_vec(),
                }
            }
            TAG_RECORD => Frame::Record(Box::new(
                crate::store::decode_record(&payload)
                    .map_err(|e| BackupError::Format(format!("a record does not decode: {e}")))?,
            )),
            TAG_END => Frame::End(
                serde_json::from_slice(&payload).map_err(|_| bad("the trailer does not parse"))?,
            ),
            other => return Err(BackupError::Format(format!("unknown frame tag {other}"))),
        })
    }
}

/// The plaintext of a backup file: decrypted with `passphrase` when it is
/// encrypted.
fn open_plain(
    mut file: Box<dyn io::BufRead>,
    passphrase: Option<&SecretString>,
) -> Result<Box<dyn Read>, BackupError> {
    let head = file.fill_buf().map_err(io_err("reading the backup"))?;
    let encrypted = head.starts_with(AGE_MAGIC);
    match (encrypted, passphrase) {
        (false, None) => Ok(Box::new(file)),
        (false, Some(_)) => Err(BackupError::Decrypt(
            "a passphrase was given, but the file is not encrypted".into(),
        )),
        (true, None) => Err(BackupError::Decrypt(
            "the file is encrypted: give its passphrase".into(),
        )),
        (true, Some(p)) => {
            let decryptor = age::Decryptor::new_buffered(file)
                .map_err(|e| BackupError::Decrypt(e.to_string()))?;
            let identity = age::scrypt::Identity::new(p.clone());
            let reader = decryptor
                .decrypt(std::iter::once(&identity as &dyn age::Identity))
                .map_err(|e| BackupError::Decrypt(e.to_string()))?;
            Ok(Box::new(reader))
        }
    }
}

/// Reads the whole file and calls `each` on every frame; fails unless the
/// trailer is there, its hash matches and its counts are what was read.
fn read_all(
    file: Box<dyn io::BufRead>,
    passphrase: Option<&SecretString>,
    each: &mut dyn FnMut(Frame) -> Result<(), BackupError>,
) -> Result<Summary, BackupError> {
    let mut input = open_plain(file, passphrase)?;
    let mut magic = vec![0u8; MAGIC.len()];
    input
        .read_exact(&mut magic)
        .map_err(|_| BackupError::Format("the file is too short".into()))?;
    if magic != MAGIC {
        return Err(BackupError::Format("no estd-backup header".into()));
    }
    let mut hash = digest::Context::new(&digest::SHA256);
    hash.update(MAGIC);
    let mut r = Reader {
        input,
        hash: Some(hash),
        digest: None,
    };
    let mut seen = Summary::default();
    match r.next()? {
        Frame::Header(h) if h.format == FORMAT && h.record_version == crate::store::record_version() => {}
        Frame::Header(h) => {
            return Err(BackupError::Format(format!(
                "backup format {} with record layout {} (from estd {}); this estd reads format {FORMAT}, layout {}",
                h.format,
                h.record_version,
                h.estd_version,
                crate::store::record_version()
            )))
        }
        _ => return Err(BackupError::Format("the first frame is not the header".into())),
    }
    loop {
        match r.next()? {
            Frame::End(trailer) => {
                seen.sha256 = r.digest.take().unwrap_or_default();
                if trailer != seen {
                    return Err(BackupError::Format(format!(
                        "the trailer says {} files, {:?}, sha256 {}; the file holds {} files, {:?}, sha256 {}",
                        trailer.files, trailer.records, trailer.sha256, seen.files, seen.records, seen.sha256
                    )));
                }
                return Ok(seen);
            }
            Frame::Header(_) => return Err(BackupError::Format("a second header".into())),
            frame @ Frame::File { .. } => {
                seen.files += 1;
                each(frame)?;
            }
            Frame::Record(record) => {
                *seen
                    .records
                    .entry(crate::store::copy::kind(&record).to_owned())
                    .or_default() += 1;
                each(Frame::Record(record))?;
            }
        }
    }
}

/// Checks a backup file whole (its trailer, hash and counts) without
/// restoring it.
pub fn check(
    open: &dyn Fn() -> io::Result<Box<dyn io::BufRead>>,
    passphrase: Option<&SecretString>,
) -> Result<Summary, BackupError> {
    let file = open().map_err(io_err("opening the backup"))?;
    read_all(file, passphrase, &mut |_| Ok(()))
}

/// Restores a backup into the empty `store` and the empty (or absent)
/// `certs_dir`: checks the file whole first, then writes the files and the
/// records as they are (a backup is one moment of the store), and flushes.
pub fn restore(
    open: &dyn Fn() -> io::Result<Box<dyn io::BufRead>>,
    passphrase: Option<&SecretString>,
    store: &dyn Store,
    certs_dir: &Path,
) -> Result<Summary, BackupError> {
    if let Ok(mut entries) = std::fs::read_dir(certs_dir) {
        if entries.next().is_some() {
            return Err(BackupError::NotEmpty(format!(
                "the certificate folder {} is not empty; restore into an empty one",
                certs_dir.display()
            )));
        }
    }
    // A new store holds its counters at zero, nothing else.
    let holds = store
        .export()
        .find(|r| !matches!(r, Ok(Record::Counter { value: 0, .. })));
    if let Some(first) = holds {
        first?;
        return Err(BackupError::NotEmpty(
            "the store is not empty; restore into an empty one".into(),
        ));
    }
    // Whole first: a damaged or truncated file writes nothing.
    check(open, passphrase)?;

    crate::files::create_dir_all(certs_dir).map_err(|e| BackupError::Format(e.to_string()))?;
    let file = open().map_err(io_err("opening the backup"))?;
    let mut batch = Vec::with_capacity(BATCH);
    let summary = read_all(file, passphrase, &mut |frame| {
        match frame {
            Frame::File {
                name,
                mode,
                content,
            } => {
                let path = certs_dir.join(&name);
                if let Some(parent) = path.parent() {
                    crate::files::create_dir_all(parent)
                        .map_err(|e| BackupError::Format(e.to_string()))?;
                }
                crate::files::write_file(&path, &content, mode & 0o077 == 0)
                    .map_err(|e| BackupError::Format(e.to_string()))?;
            }
            Frame::Record(record) => {
                batch.push(*record);
                if batch.len() >= BATCH {
                    store.import(std::mem::take(&mut batch))?;
                }
            }
            Frame::Header(_) | Frame::End(_) => {}
        }
        Ok(())
    })?;
    if !batch.is_empty() {
        store.import(batch)?;
    }
    store.flush()?;
    Ok(summary)
}
