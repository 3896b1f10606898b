//! SoftHSM2 tokens for tests: a token directory and a `softhsm2.conf` in a
//! temp dir, initialised with `softhsm2-util`. The library reads its
//! configuration from `SOFTHSM2_CONF`, which tests in a shared process may
//! not set, so the token is used only by child processes (estd, or a probe)
//! that get [`SoftHsm::env`] in their environment.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Where Debian's `softhsm2` package puts the module (the first that exists wins).
const MODULES: &[&str] = &[
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
];

/// The SoftHSM2 module and `softhsm2-util`, or why they are not usable.
pub fn installed() -> Result<(PathBuf, PathBuf), String> {
    let module = MODULES
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or_else(|| format!("no SoftHSM2 module in any of {MODULES:?}"))?;
    let util = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join("softhsm2-util"))
        .find(|p| p.is_file())
        .ok_or("softhsm2-util is not on PATH")?;
    Ok((module, util))
}

/// A SoftHSM2 installation of its own, with one initialised token.
pub struct SoftHsm {
    /// The PKCS#11 module to load.
    pub module: PathBuf,
    /// `softhsm2.conf`.
    pub conf: PathBuf,
    /// The token directory named in it.
    pub tokens: PathBuf,
    /// The token's label.
    pub label: String,
}

impl SoftHsm {
    /// Creates `dir/softhsm2.conf` and `dir/tokens`, and initialises a token
    /// `label` with user PIN `pin`. Err if SoftHSM2 is not installed.
    pub fn new(dir: &Path, label: &str, pin: &str, so_pin: &str) -> Result<SoftHsm, String> {
        let (module, util) = installed()?;
        let tokens = dir.join("tokens");
        std::fs::create_dir_all(&tokens).map_err(|e| format!("token dir: {e}"))?;
        let conf = dir.join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
                tokens.display()
            ),
        )
        .map_err(|e| format!("softhsm2.conf: {e}"))?;
        let out = Command::new(util)
            .args([
                "--init-token",
                "--free",
                "--label",
                label,
                "--pin",
                pin,
                "--so-pin",
                so_pin,
            ])
            .env("SOFTHSM2_CONF", &conf)
            .output()
            .map_err(|e| format!("softhsm2-util: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "softhsm2-util --init-token: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(SoftHsm {
            module,
            conf,
            tokens,
            label: label.to_owned(),
        })
    }

    /// The environment a child process needs to see this token.
    pub fn env(&self) -> (&'static str, String) {
        ("SOFTHSM2_CONF", self.conf.display().to_string())
    }

    /// A `[ca.key]` table for estd naming this token, key `key_label` and
    /// the PIN in environment variable `pin_env`.
    pub fn ca_key_config(&self, key_label: &str, pin_env: &str) -> String {
        format!(
            "[ca.key]\npkcs11 = {{ module = {}, token_label = {}, key_label = {}, pin_env = {} }}\n",
            crate::process::toml_str(&self.module.display().to_string()),
            crate::process::toml_str(&self.label),
            crate::process::toml_str(key_label),
            crate::process::toml_str(pin_env),
        )
    }

    /// The token's own directory (one per token, named by its serial).
    pub fn token_dir(&self) -> PathBuf {
        std::fs::read_dir(&self.tokens)
            .expect("token dir")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.is_dir())
            .expect("one initialised token")
    }
}
