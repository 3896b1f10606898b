//! Where the issuing CA's key lives, decided from `[ca]`, and loading it as a
//! [`Signer`]: the role of rustls's `KeyProvider`. A key in a PKCS#11 token
//! is one more [`IssuingKey`] variant; [`super::Ca`] only sees the signer.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::keyfile::{configured_passphrase, read_ca_key, Passphrase};
use super::layout;
use super::signer::{Signer, SoftwareSigner};
use super::CaError;
use crate::config::CaConfig;

/// The issuing CA's key, as configured.
#[derive(Debug)]
pub enum IssuingKey {
    /// A PKCS#8 file in the certificate folder: plain, or encrypted with the
    /// passphrase configured in `[ca]`.
    File {
        /// The key file.
        path: PathBuf,
        /// Its passphrase, if one is configured.
        passphrase: Option<Passphrase>,
    },
}

impl IssuingKey {
    /// The issuing key `cfg` describes, in certificate folder `dir`. Reads the
    /// passphrase now, so that a missing one stops start-up before anything
    /// is created.
    pub fn from_config(dir: &Path, cfg: &CaConfig) -> Result<IssuingKey, CaError> {
        Ok(IssuingKey::File {
            path: dir.join(layout::ISSUING_KEY),
            passphrase: configured_passphrase(cfg)?,
        })
    }

    /// The passphrase new CA key files are encrypted with, if any.
    pub fn passphrase(&self) -> Option<&Passphrase> {
        match self {
            IssuingKey::File { passphrase, .. } => passphrase.as_ref(),
        }
    }

    /// Opens the key for signing.
    pub fn load(&self) -> Result<Arc<dyn Signer>, CaError> {
        match self {
            IssuingKey::File { path, passphrase } => {
                let pkcs8 = read_ca_key(path, passphrase.as_ref())?;
                Ok(Arc::new(SoftwareSigner::from_pkcs8(&pkcs8)?))
            }
        }
    }
}
