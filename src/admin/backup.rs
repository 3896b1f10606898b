//! `POST /backup` (server operators only): estd writes a backup of its
//! store and certificate folder to a file on its own host, while it serves.
//! `estd backup --to FILE` calls it.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use http::StatusCode;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::problem::ApiError;
use super::request::ApiRequest;
use super::response::{json, ApiResult};
use crate::app::App;
use crate::model::Actor;
use crate::service::backup::{self, BackupError};

/// Shortest passphrase accepted for an encrypted backup.
const MIN_PASSPHRASE_CHARS: usize = 12;

/// The body of `POST /backup`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct BackupRequest {
    /// Where to write it: an absolute path on estd's host, a file that does
    /// not exist yet in a folder that does.
    to: String,
    /// Encrypt it (age, scrypt) with this passphrase, at least 12 characters.
    passphrase: Option<String>,
}

/// What was written.
#[derive(Debug, Serialize, JsonSchema)]
pub(super) struct BackupWritten {
    /// The file.
    file: String,
    /// Its size.
    bytes: u64,
    /// Files of the certificate folder in it.
    files: u64,
    /// Records per kind.
    records: BTreeMap<String, u64>,
    /// SHA-256 over the backup's contents (before encryption), as its trailer says.
    sha256: String,
    /// Whether it is encrypted.
    encrypted: bool,
}

fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::InvalidField {
        field: field.into(),
        message: message.into(),
    }
}

/// Writes the backup to the requested file (mode 0600; created whole or not
/// at all) and answers what it holds.
pub async fn write(app: &App, actor: &Actor, req: &ApiRequest) -> ApiResult {
    req.query.only(&[])?;
    let input: BackupRequest = req.json()?;
    if input.to.len() > 4096 {
        return Err(invalid("to", "longer than 4096 bytes"));
    }
    let to = PathBuf::from(&input.to);
    if !to.is_absolute() {
        return Err(invalid("to", "must be an absolute path on estd's host"));
    }
    let Some(folder) = to.parent().filter(|p| p.is_dir()) else {
        return Err(invalid("to", "its folder does not exist"));
    };
    if to.exists() {
        return Err(invalid("to", "a file is there already; name a new one"));
    }
    let passphrase = match input.passphrase {
        Some(p) if p.chars().count() < MIN_PASSPHRASE_CHARS => {
            return Err(invalid(
                "passphrase",
                format!("at least {MIN_PASSPHRASE_CHARS} characters"),
            ))
        }
        Some(p) => Some(age::secrecy::SecretString::from(p)),
        None => None,
    };
    let encrypted = passphrase.is_some();
    let store = app.store.clone();
    let certs_dir = app.config.paths.certs_dir.clone();
    let folder = folder.to_owned();
    let target = to.clone();
    let written = tokio::task::spawn_blocking(move || {
        write_new_file(&folder, &target, |out| {
            backup::write(store.as_ref(), &certs_dir, passphrase, out)
        })
    })
    .await
    .map_err(|e| ApiError::Encoding(Box::new(e)))?;
    let (summary, bytes) = match written {
        Ok(done) => done,
        Err(BackupError::Io { what, source }) => {
            return Err(invalid("to", format!("{what}: {source}")));
        }
        Err(BackupError::Store(e)) => {
            return Err(ApiError::Service(crate::service::Error::Store(e)))
        }
        Err(e) => return Err(ApiError::Encoding(Box::new(e))),
    };
    tracing::info!(
        actor = %actor.id,
        file = %crate::clip::clip(&to.display().to_string()),
        bytes,
        encrypted,
        "backup written"
    );
    json(
        StatusCode::OK,
        &BackupWritten {
            file: to.display().to_string(),
            bytes,
            files: summary.files,
            records: summary.records,
            sha256: summary.sha256,
            encrypted,
        },
    )
}

/// Writes `to` whole or not at all: into a temporary file beside it (0600),
/// synced, then linked to its name, which must still be free.
fn write_new_file(
    folder: &Path,
    to: &Path,
    fill: impl FnOnce(&mut dyn Write) -> Result<backup::Summary, BackupError>,
) -> Result<(backup::Summary, u64), BackupError> {
    let io = |what: &str| {
        let what = format!("{what} {}", to.display());
        move |source| BackupError::Io { what, source }
    };
    let tmp = folder.join(format!(
        ".estd-backup.tmp.{}.{}",
        std::process::id(),
        crate::model::now_unix()
    ));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let file = opts
        .open(&tmp)
        .map_err(io("creating a temporary file for"))?;
    let result = (|| {
        let mut out = std::io::BufWriter::new(&file);
        let summary = fill(&mut out)?;
        out.flush().map_err(io("writing"))?;
        drop(out);
        file.sync_all().map_err(io("syncing"))?;
        let bytes = file.metadata().map_err(io("reading the size of"))?.len();
        // A link fails if the name was taken meanwhile: nothing is overwritten.
        std::fs::hard_link(&tmp, to).map_err(io("naming"))?;
        Ok((summary, bytes))
    })();
    let _ = std::fs::remove_file(&tmp);
    if result.is_ok() {
        if let Ok(dir) = std::fs::File::open(folder) {
            let _ = dir.sync_all();
        }
    }
    result
}
