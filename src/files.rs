//! Files estd writes and reads beside its store: durable atomic writes,
//! private files at mode 0600, PEM certificates and PKCS#8 keys.
//!
//! Used by the CA, the demo seed, client trust, the admin views and
//! revocation; it imports nothing of theirs.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use der::pem::LineEnding;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why a file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The operating system refused.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The file is not the PEM it should be.
    #[error("{}: {source}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What the PEM reader said.
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// A secret file that group or others can read.
    #[error(
        "{} is readable by group or others (mode {mode:o}); run chmod 600 on it",
        path.display()
    )]
    Exposed {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A key file that holds another kind of key.
    #[error("{} is not a PKCS#8 key", path.display())]
    NotPkcs8 {
        /// The file.
        path: PathBuf,
    },
    /// A certificate file without a certificate.
    #[error("{}: no certificate in file", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
}

impl FileError {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> FileError {
        FileError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// Creates `dir` and its parents.
pub fn create_dir_all(dir: &Path) -> Result<(), FileError> {
    fs::create_dir_all(dir).map_err(|e| FileError::io(dir, e))
}

/// Writes `contents` to `path` atomically and durably (the file, then the
/// rename in its directory); private files get mode 0600 from the start.
pub fn write_file(path: &Path, contents: &[u8], private: bool) -> Result<(), FileError> {
    // A temp name of this writer's own: nodes sharing a certs dir (several
    // nodes on one machine, tests) may write the same file at once.
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp.{}.{n}", std::process::id()));
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(if private { 0o600 } else { 0o644 });
    }
    let mut f = opts.open(&tmp).map_err(|e| FileError::io(&tmp, e))?;
    // The mode above applies only to a new file; a temp file left by a crash keeps its own.
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(|e| FileError::io(&tmp, e))?;
    }
    f.write_all(contents).map_err(|e| FileError::io(&tmp, e))?;
    f.sync_all().map_err(|e| FileError::io(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| FileError::io(path, e))?;
    // Without this the rename may be lost in a power cut, leaving the old file or none.
    #[cfg(unix)]
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(|e| FileError::io(parent, e))?;
    }
    Ok(())
}

/// PEM of a certificate.
pub fn cert_pem(der: &[u8]) -> String {
    der::pem::encode_string("CERTIFICATE", LineEnding::LF, der).unwrap_or_default()
}

/// PEM of a PKCS#8 key.
pub fn key_pem(pkcs8: &[u8]) -> String {
    der::pem::encode_string("PRIVATE KEY", LineEnding::LF, pkcs8).unwrap_or_default()
}

/// Refuses a secret file that group or others can read.
pub fn check_private_mode(path: &Path) -> Result<(), FileError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(path)
            .map_err(|e| FileError::io(path, e))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(FileError::Exposed {
                path: path.to_owned(),
                mode: mode & 0o777,
            });
        }
    }
    Ok(())
}

/// Reads a plain PKCS#8 private key (PEM), refusing one that group or others can read.
pub fn read_private_key(path: &Path) -> Result<Vec<u8>, FileError> {
    check_private_mode(path)?;
    let key = PrivateKeyDer::from_pem_file(path).map_err(|source| FileError::Pem {
        path: path.to_owned(),
        source,
    })?;
    match key {
        PrivateKeyDer::Pkcs8(k) => Ok(k.secret_pkcs8_der().to_vec()),
        _ => Err(FileError::NotPkcs8 {
            path: path.to_owned(),
        }),
    }
}

/// Reads a private key in any PEM form rustls knows (PKCS#8, SEC1, PKCS#1),
/// as another CA's tooling writes it; refuses one that group or others can read.
pub fn read_any_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, FileError> {
    check_private_mode(path)?;
    PrivateKeyDer::from_pem_file(path).map_err(|source| FileError::Pem {
        path: path.to_owned(),
        source,
    })
}

/// Reads every certificate in a PEM file; refuses a file without one.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, FileError> {
    let pem = |source| FileError::Pem {
        path: path.to_owned(),
        source,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(pem)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem)?;
    if certs.is_empty() {
        return Err(FileError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// Reads a short text file (a label, a moment), trimmed.
pub fn read_text(path: &Path) -> Result<String, FileError> {
    let text = fs::read_to_string(path).map_err(|e| FileError::io(path, e))?;
    Ok(text.trim().to_owned())
}

/// Reads the first certificate in a PEM file.
pub fn read_cert(path: &Path) -> Result<CertificateDer<'static>, FileError> {
    // read_certs refuses an empty file, so there is a first.
    let mut certs = read_certs(path)?;
    Ok(certs.swap_remove(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn private_files_are_0600_and_a_readable_one_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("k.key");
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        write_file(&path, key_pem(&kp.serialize_der()).as_bytes(), true).expect("write");
        let mode = fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(read_private_key(&path).expect("read"), kp.serialize_der());

        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).expect("chmod");
        let e = read_private_key(&path).expect_err("readable");
        assert!(matches!(e, FileError::Exposed { mode: 0o640, .. }), "{e}");
        assert!(e.to_string().contains("chmod 600"), "{e}");
    }

    #[test]
    fn certificates_round_trip_and_an_empty_file_is_refused() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("c.pem");
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let cert = rcgen::CertificateParams::new(vec!["a.example".into()])
            .expect("params")
            .self_signed(&kp)
            .expect("cert");
        let pem = format!("{}{}", cert_pem(cert.der()), cert_pem(cert.der()));
        write_file(&path, pem.as_bytes(), false).expect("write");
        let certs = read_certs(&path).expect("read");
        assert_eq!(certs.len(), 2);
        assert_eq!(
            read_cert(&path).expect("first").as_ref(),
            cert.der().as_ref()
        );

        write_file(&path, b"", false).expect("write");
        assert!(matches!(
            read_certs(&path),
            Err(FileError::NoCertificate { .. })
        ));
        let missing = read_certs(&dir.path().join("missing.pem")).expect_err("missing");
        assert!(missing.to_string().contains("missing.pem"), "{missing}");
    }
}
