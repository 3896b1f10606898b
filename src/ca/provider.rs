//! Where the issuing CA's key lives, decided from `[ca]`, and loading it as a
//! [`Signer`]: the role of rustls's `KeyProvider`. A key in a PKCS#11 token
//! is one more [`IssuingKey`] variant; [`super::Ca`] only sees the signer.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::keyfile::{configured_passphrase, read_ca_key, Passphrase};
use super::layout;
use super::pkcs11::{configured_pin, Pin, Pkcs11Signer};
use super::signer::{Signer, SoftwareSigner};
use super::CaError;
use crate::config::{CaConfig, Pkcs11KeyConfig};

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
    /// A key in a PKCS#11 token (`[ca.key] pkcs11`), with the PIN read at
    /// start-up.
    Pkcs11 {
        /// Module, token and key.
        config: Pkcs11KeyConfig,
        /// The user PIN (never printed).
        pin: Pin,
    },
}

impl IssuingKey {
    /// The issuing key `cfg` describes, in certificate folder `dir`. Reads the
    /// passphrase now, so that a missing one stops start-up before anything
    /// is created.
    pub fn from_config(dir: &Path, cfg: &CaConfig) -> Result<IssuingKey, CaError> {
        if let Some(p11) = &cfg.key.pkcs11 {
            return Ok(IssuingKey::Pkcs11 {
                pin: configured_pin(p11)?,
                config: p11.clone(),
            });
        }
        Ok(IssuingKey::File {
            path: dir.join(layout::ISSUING_KEY),
            passphrase: configured_passphrase(cfg)?,
        })
    }

    /// The key of the generation whose folder is `dir` (see
    /// [`super::layout::GENERATION_PREFIX`]): in the token of `[ca.key]
    /// pkcs11` under the label its folder names, or its issuing key file.
    pub fn for_generation(dir: &Path, cfg: &CaConfig) -> Result<IssuingKey, CaError> {
        let label_file = dir.join(layout::TOKEN_KEY_LABEL);
        if !label_file.exists() {
            return Ok(IssuingKey::File {
                path: dir.join(layout::ISSUING_KEY),
                passphrase: configured_passphrase(cfg)?,
            });
        }
        let Some(p11) = &cfg.key.pkcs11 else {
            return Err(CaError::Key(format!(
                "{} names a key in a PKCS#11 token, but no token is configured ([ca.key] pkcs11)",
                label_file.display()
            )));
        };
        let label = crate::files::read_text(&label_file)?;
        if label.is_empty() {
            return Err(CaError::Key(format!("{} is empty", label_file.display())));
        }
        Ok(IssuingKey::Pkcs11 {
            pin: configured_pin(p11)?,
            config: Pkcs11KeyConfig {
                key_label: label,
                ..p11.clone()
            },
        })
    }

    /// The passphrase new CA key files are encrypted with, if any.
    pub fn passphrase(&self) -> Option<&Passphrase> {
        match self {
            IssuingKey::File { passphrase, .. } => passphrase.as_ref(),
            IssuingKey::Pkcs11 { .. } => None,
        }
    }

    /// Whether the key is in a token (so no key file may exist, and no
    /// development CA is created).
    pub fn is_token(&self) -> bool {
        matches!(self, IssuingKey::Pkcs11 { .. })
    }

    /// Opens the key for signing. Consumes the description, because a
    /// token signer keeps the PIN to log in again after the token was gone.
    pub fn load(self) -> Result<Arc<dyn Signer>, CaError> {
        match self {
            IssuingKey::Pkcs11 { config, pin } => Ok(Arc::new(Pkcs11Signer::open(&config, pin)?)),
            IssuingKey::File { path, passphrase } => {
                let pkcs8 = read_ca_key(&path, passphrase.as_ref())?;
                Ok(Arc::new(SoftwareSigner::from_pkcs8(&pkcs8)?))
            }
        }
    }
}
