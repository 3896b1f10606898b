//! CA key files, plain or encrypted PKCS#8, and the passphrase that opens them.
//!
//! An encrypted key is `-----BEGIN ENCRYPTED PRIVATE KEY-----`: PBES2 with
//! PBKDF2 (HMAC-SHA-256 etc.) or scrypt, and AES-CBC, as written by
//! `openssl pkcs8 -topk8 -v2 aes-256-cbc` (or `-scrypt`). The passphrase
//! comes from an environment variable or a 0600 file named in `[ca]`; it and
//! the decrypted key are wiped from memory when dropped, and neither is ever
//! logged or put in an error message.

use std::path::Path;

use der::pem::LineEnding;
use pkcs8::pkcs5::pbes2;
use pkcs8::{EncryptedPrivateKeyInfo, PrivateKeyInfo, SecretDocument};
use zeroize::Zeroizing;

use super::CaError;
use crate::config::CaConfig;
use crate::files::{check_private_mode, FileError};

/// PEM label of a plain PKCS#8 key.
pub const PLAIN_LABEL: &str = "PRIVATE KEY";
/// PEM label of an encrypted PKCS#8 key.
pub const ENCRYPTED_LABEL: &str = "ENCRYPTED PRIVATE KEY";

/// PBKDF2 rounds when estd encrypts a new CA key (OWASP's 2023 figure for
/// HMAC-SHA-256). PBKDF2 rather than scrypt so that `openssl pkcs8` can read
/// the file with its default memory limit.
pub const PBKDF2_ITERATIONS: u32 = 600_000;

/// A passphrase, wiped from memory when dropped.
pub struct Passphrase(Zeroizing<String>);

impl Passphrase {
    /// The bytes given to the key derivation.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passphrase(..)")
    }
}

fn key_err(msg: String) -> CaError {
    CaError::Key(msg)
}

/// The passphrase configured for the CA keys (`[ca] key_passphrase_env` or
/// `key_passphrase_file`), or `None` if neither is set.
pub fn configured_passphrase(cfg: &CaConfig) -> Result<Option<Passphrase>, CaError> {
    let text = read_secret(
        cfg.key_passphrase_env.as_deref(),
        cfg.key_passphrase_file.as_deref(),
        "CA key passphrase",
        "ca.key_passphrase_env",
        |path, source| CaError::PassphraseFile {
            path: path.to_owned(),
            source,
        },
    )?;
    Ok(text.map(Passphrase))
}

/// Reads a secret from the environment variable `var` or, if none is named,
/// from the file `path`, which only its owner may read (like the key it
/// opens); `None` if neither is configured. `what` names the secret and
/// `var_setting` the setting naming the variable, in errors.
pub(crate) fn read_secret(
    var: Option<&str>,
    path: Option<&Path>,
    what: &str,
    var_setting: &str,
    file_error: impl FnOnce(&Path, std::io::Error) -> CaError,
) -> Result<Option<Zeroizing<String>>, CaError> {
    let text = match (var, path) {
        (None, None) => return Ok(None),
        (Some(var), _) => match std::env::var(var) {
            Ok(v) => Zeroizing::new(v),
            Err(std::env::VarError::NotPresent) => {
                return Err(key_err(format!(
                    "the {what} variable {var} ({var_setting}) is not set"
                )))
            }
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(key_err(format!(
                    "the {what} variable {var} is not valid UTF-8"
                )))
            }
        },
        (None, Some(path)) => {
            check_private_mode(path)?;
            let mut text = Zeroizing::new(
                std::fs::read_to_string(path).map_err(|source| file_error(path, source))?,
            );
            // `echo secret > file` leaves a line break that is not part of the secret.
            if text.ends_with('\n') {
                text.pop();
                if text.ends_with('\r') {
                    text.pop();
                }
            }
            text
        }
    };
    if text.is_empty() {
        return Err(key_err(format!("the configured {what} is empty")));
    }
    Ok(Some(text))
}

/// Reads a CA key file: plain PKCS#8 without a passphrase, encrypted PKCS#8
/// with one. Refuses a file group or others can read, an encrypted key without
/// a passphrase, a wrong passphrase, and a plain key when a passphrase is
/// configured (someone believes it is encrypted).
pub fn read_ca_key(
    path: &Path,
    passphrase: Option<&Passphrase>,
) -> Result<Zeroizing<Vec<u8>>, CaError> {
    check_private_mode(path)?;
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| FileError::io(path, e))?);
    let (label, doc) = SecretDocument::from_pem(&text).map_err(|e| {
        key_err(format!(
            "{} is not a PEM PKCS#8 key ({PLAIN_LABEL} or {ENCRYPTED_LABEL}): {e}",
            path.display()
        ))
    })?;
    match (label, passphrase) {
        (PLAIN_LABEL, None) => Ok(Zeroizing::new(doc.as_bytes().to_vec())),
        (PLAIN_LABEL, Some(_)) => Err(key_err(format!(
            "{} is not encrypted, but a passphrase is configured in [ca]; encrypt it \
             (openssl pkcs8 -topk8 -v2 aes-256-cbc -in KEY -out KEY.enc) or remove the passphrase setting",
            path.display()
        ))),
        (ENCRYPTED_LABEL, None) => Err(key_err(format!(
            "{} is encrypted; set [ca] key_passphrase_env or key_passphrase_file",
            path.display()
        ))),
        (ENCRYPTED_LABEL, Some(pass)) => {
            let info = EncryptedPrivateKeyInfo::try_from(doc.as_bytes()).map_err(|e| {
                key_err(format!(
                    "{} is not an encrypted PKCS#8 key estd can read (PBES2 with PBKDF2 or \
                     scrypt and AES-CBC): {e}",
                    path.display()
                ))
            })?;
            let plain = info.decrypt(pass.as_bytes()).map_err(|e| match e {
                pkcs8::Error::EncryptedPrivateKey(
                    pkcs8::pkcs5::Error::UnsupportedAlgorithm { .. }
                    | pkcs8::pkcs5::Error::NoPbes1CryptSupport
                    | pkcs8::pkcs5::Error::AlgorithmParametersInvalid { .. },
                ) => key_err(format!(
                    "{} uses an encryption estd cannot read ({e}); re-encrypt it with \
                     openssl pkcs8 -topk8 -v2 aes-256-cbc",
                    path.display()
                )),
                // A padding failure, or (rarely) valid padding around garbage.
                _ => key_err(format!(
                    "cannot decrypt {}: wrong passphrase (or a damaged file)",
                    path.display()
                )),
            })?;
            Ok(Zeroizing::new(plain.as_bytes().to_vec()))
        }
        (other, _) => Err(key_err(format!(
            "{} holds a {other:?} PEM block, not a PKCS#8 key",
            path.display()
        ))),
    }
}

/// The PEM file content for a new CA key: encrypted (PBES2, PBKDF2-HMAC-SHA-256,
/// AES-256-CBC) with `passphrase`, or plain without one.
pub fn ca_key_pem(
    pkcs8: &[u8],
    passphrase: Option<&Passphrase>,
) -> Result<Zeroizing<String>, CaError> {
    let Some(pass) = passphrase else {
        return SecretDocument::try_from(pkcs8)
            .and_then(|d| d.to_pem(PLAIN_LABEL, LineEnding::LF))
            .map_err(CaError::Encoding);
    };
    let mut salt = [0u8; 16];
    let mut iv = [0u8; 16];
    aws_lc_rs::rand::fill(&mut salt).map_err(CaError::Random)?;
    aws_lc_rs::rand::fill(&mut iv).map_err(CaError::Random)?;
    let params = pbes2::Parameters::pbkdf2_sha256_aes256cbc(PBKDF2_ITERATIONS, &salt, &iv)
        .map_err(|e| CaError::Encrypt(pkcs8::Error::EncryptedPrivateKey(e)))?;
    let encrypted = PrivateKeyInfo::try_from(pkcs8)
        .and_then(|info| info.encrypt_with_params(params, pass.as_bytes()))
        .map_err(CaError::Encrypt)?;
    encrypted
        .to_pem(ENCRYPTED_LABEL, LineEnding::LF)
        .map_err(CaError::Encoding)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pass(s: &str) -> Passphrase {
        Passphrase(Zeroizing::new(s.to_owned()))
    }

    #[test]
    fn encrypted_key_round_trips_and_wrong_passphrase_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let der = kp.serialize_der();
        let pem = ca_key_pem(&der, Some(&pass("correct horse"))).expect("encrypt");
        assert!(pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("k.pem");
        std::fs::write(&path, pem.as_bytes()).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let back = read_ca_key(&path, Some(&pass("correct horse"))).expect("decrypt");
        assert_eq!(back.as_slice(), der.as_slice());
        let wrong = read_ca_key(&path, Some(&pass("wrong horse"))).expect_err("wrong");
        assert!(wrong.to_string().contains("wrong passphrase"), "{wrong}");
        assert!(!wrong.to_string().contains("horse"));
        let none = read_ca_key(&path, None).expect_err("no passphrase");
        assert!(none.to_string().contains("is encrypted"), "{none}");
    }

    #[test]
    fn a_plain_key_with_a_passphrase_configured_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let pem = ca_key_pem(&kp.serialize_der(), None).expect("plain");
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("k.pem");
        std::fs::write(&path, pem.as_bytes()).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert!(read_ca_key(&path, None).is_ok());
        let e = read_ca_key(&path, Some(&pass("x"))).expect_err("plain");
        assert!(e.to_string().contains("not encrypted"), "{e}");
    }
}
