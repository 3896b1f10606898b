//! CA rollover on disk: later generations in `certs/ca-2/`, `certs/ca-3/`,
//! ..., each holding the same files as the certificate folder's own CA,
//! plus when it starts to issue (`switch-at`) and, if its root is new, the
//! root rollover certificates.
//!
//! A generation is prepared in one of two ways:
//! - [`stage_development`] (`estd ca next`): a software key and a
//!   certificate signed by the development root whose key lies in `certs/`,
//!   optionally under a new root with NewWithOld and OldWithNew;
//! - the ceremony with `--next` (see [`super::ceremony`]): a key in the
//!   token or a key file, a CSR, and the certificate an external root
//!   signed.
//!
//! [`load_generations`] reads every complete generation at start-up; a
//! folder still in its ceremony (no issuing certificate yet) is skipped, so
//! nodes can restart while the next CA is being prepared.

use std::path::{Path, PathBuf};

use der::Decode;
use rustls_pki_types::CertificateDer;
use x509_cert::certificate::Certificate;

use super::bootstrap::{
    assemble, issuing_params, rcgen_alg, root_params, write_ca_certs, write_ca_key,
};
use super::keyfile::{configured_passphrase, read_ca_key};
use super::layout;
use super::provider::IssuingKey;
use super::set::{generation_urls, CaSet, Generation};
use super::signer::SoftwareSigner;
use super::{Ca, CaError, PublicUrls};
use crate::config::CaConfig;
use crate::files::{cert_pem, create_dir_all, read_cert, read_certs, read_text, write_file};
use crate::model::{now_unix, parse_rfc3339, rfc3339, UnixSeconds};

fn key_err(msg: String) -> CaError {
    CaError::Key(msg)
}

/// The folder of generation `number` (the certificate folder itself for 1).
pub fn generation_dir(certs_dir: &Path, number: u32) -> PathBuf {
    if number <= 1 {
        certs_dir.to_owned()
    } else {
        certs_dir.join(format!("{}{number}", layout::GENERATION_PREFIX))
    }
}

/// The numbers of the later generations' folders present, ascending.
pub fn later_generations(certs_dir: &Path) -> Result<Vec<u32>, CaError> {
    let entries = match std::fs::read_dir(certs_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(crate::files::FileError::io(certs_dir, e).into()),
    };
    let mut numbers = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| crate::files::FileError::io(certs_dir, e))?;
        let name = entry.file_name();
        let number = name
            .to_str()
            .and_then(|n| n.strip_prefix(layout::GENERATION_PREFIX))
            .and_then(|n| n.parse::<u32>().ok())
            .filter(|n| *n >= 2);
        if let Some(n) = number {
            if entry.path().is_dir() {
                numbers.push(n);
            }
        }
    }
    numbers.sort_unstable();
    Ok(numbers)
}

/// Whether a generation's folder holds its issuing certificate (its
/// ceremony is over).
fn is_complete(dir: &Path) -> bool {
    dir.join(layout::ISSUING_CERT).exists()
}

/// When the generation in `dir` starts to issue, if a moment is set.
fn read_switch_at(dir: &Path) -> Result<Option<UnixSeconds>, CaError> {
    let file = dir.join(layout::SWITCH_AT);
    if !file.exists() {
        return Ok(None);
    }
    let text = read_text(&file)?;
    parse_rfc3339(&text).map(Some).ok_or_else(|| {
        key_err(format!(
            "{} holds {text:?}; it must be a time in UTC like 2027-01-01T00:00:00Z",
            file.display()
        ))
    })
}

/// Every generation: `first` (the certificate folder's own CA) and each
/// complete later one, with its key, chain, switch moment and root
/// rollover certificates.
pub fn load_generations(certs_dir: &Path, cfg: &CaConfig, first: Ca) -> Result<CaSet, CaError> {
    let mut generations = vec![Generation {
        ca: std::sync::Arc::new(first),
        number: 1,
        switch_at: None,
        root_rollover: Vec::new(),
    }];
    for number in later_generations(certs_dir)? {
        let dir = generation_dir(certs_dir, number);
        if !is_complete(&dir) {
            tracing::warn!(
                folder = %dir.display(),
                "CA generation {number} is still being prepared (no {}); not loaded",
                layout::ISSUING_CERT
            );
            continue;
        }
        let key = IssuingKey::for_generation(&dir, cfg)?;
        let ca = assemble(&dir, generation_urls(cfg, number), key)?;
        let rollover_file = dir.join(layout::ROOT_ROLLOVER);
        let root_rollover = if rollover_file.exists() {
            read_certs(&rollover_file)?
                .into_iter()
                .map(|c| c.to_vec())
                .collect()
        } else {
            Vec::new()
        };
        generations.push(Generation {
            ca: std::sync::Arc::new(ca),
            number,
            switch_at: read_switch_at(&dir)?,
            root_rollover,
        });
    }
    CaSet::new(generations)
}

/// The newest complete generation's number and folder (1 and the
/// certificate folder if there is no later one).
fn newest_complete(certs_dir: &Path) -> Result<(u32, PathBuf), CaError> {
    let newest = later_generations(certs_dir)?
        .into_iter()
        .rev()
        .find(|n| is_complete(&generation_dir(certs_dir, *n)))
        .unwrap_or(1);
    Ok((newest, generation_dir(certs_dir, newest)))
}

/// A new generation's number and folder, created empty. Refuses while a
/// later generation has not started to issue or is still in its ceremony:
/// one rollover at a time.
pub fn begin_generation(certs_dir: &Path) -> Result<(u32, PathBuf), CaError> {
    if !is_complete(certs_dir) {
        return Err(key_err(format!(
            "{} holds no issuing CA yet; a rollover needs a CA to roll over from",
            certs_dir.display()
        )));
    }
    let numbers = later_generations(certs_dir)?;
    if let Some(&last) = numbers.last() {
        let dir = generation_dir(certs_dir, last);
        if !is_complete(&dir) {
            return Err(key_err(format!(
                "{} is still being prepared; finish it (estd ca csr --next, estd ca import --next) or remove the folder",
                dir.display()
            )));
        }
        match read_switch_at(&dir)? {
            Some(at) if at <= now_unix() => {}
            _ => {
                return Err(key_err(format!(
                    "generation {last} ({}) has not started to issue yet; set its moment with \
                     estd ca switch --at TIME, or remove the folder, before preparing another",
                    dir.display()
                )))
            }
        }
    }
    let number = numbers.last().copied().unwrap_or(1) + 1;
    let dir = generation_dir(certs_dir, number);
    create_dir_all(&dir)?;
    Ok((number, dir))
}

/// The generation in its ceremony: the newest folder without an issuing
/// certificate.
pub fn in_ceremony(certs_dir: &Path) -> Result<(u32, PathBuf), CaError> {
    let last = later_generations(certs_dir)?.last().copied();
    match last {
        Some(n) if !is_complete(&generation_dir(certs_dir, n)) => {
            Ok((n, generation_dir(certs_dir, n)))
        }
        _ => Err(key_err(
            "no CA generation is being prepared; start one with estd ca init --next".into(),
        )),
    }
}

/// The common name of generation `number`'s CA: the configured one, with
/// " G<number>" from the second generation on, so relying parties that
/// tell CAs apart by name (some do) never confuse two generations.
pub fn generation_common_name(common_name: &str, number: u32) -> String {
    if number <= 1 {
        common_name.to_owned()
    } else {
        format!("{common_name} G{number}")
    }
}

/// Sets when the newest generation starts to issue. A moment already
/// reached is kept: certificates may have been issued from it since.
pub fn set_switch(certs_dir: &Path, at: UnixSeconds) -> Result<String, CaError> {
    let (number, dir) = newest_complete(certs_dir)?;
    if number == 1 {
        return Err(key_err(
            "there is no later CA generation to switch to; prepare one with estd ca next or the ceremony with --next".into(),
        ));
    }
    if let Some(current) = read_switch_at(&dir)? {
        if current <= now_unix() {
            return Err(key_err(format!(
                "generation {number} has issued since {}; its moment cannot change",
                rfc3339(current)
            )));
        }
    }
    write_file(
        &dir.join(layout::SWITCH_AT),
        format!("{}\n", rfc3339(at)).as_bytes(),
        false,
    )?;
    Ok(format!(
        "estd: CA generation {number} issues new certificates from {}; restart every node to load it if it is not loaded yet",
        rfc3339(at)
    ))
}

/// Writes the switch moment of a generation being installed, if given.
pub(super) fn write_switch_at(dir: &Path, at: Option<UnixSeconds>) -> Result<(), CaError> {
    if let Some(at) = at {
        write_file(
            &dir.join(layout::SWITCH_AT),
            format!("{}\n", rfc3339(at)).as_bytes(),
            false,
        )?;
    }
    Ok(())
}

/// One line per generation: number, issuing CA, root, validity, key, and
/// whether and from when it issues.
pub fn status(certs_dir: &Path) -> Result<String, CaError> {
    let mut out = String::new();
    let now = now_unix();
    let mut active = 1;
    let mut lines = Vec::new();
    for number in std::iter::once(1).chain(later_generations(certs_dir)?) {
        let dir = generation_dir(certs_dir, number);
        if !is_complete(&dir) {
            lines.push(format!(
                "generation {number}: being prepared in {}",
                dir.display()
            ));
            continue;
        }
        let issuing = Certificate::from_der(&read_cert(&dir.join(layout::ISSUING_CERT))?)?;
        let root = Certificate::from_der(&read_cert(&dir.join(layout::ROOT_CERT))?)?;
        let switch_at = read_switch_at(&dir)?;
        if number == 1 || switch_at.is_some_and(|t| t <= now) {
            active = number;
        }
        let key = if dir.join(layout::TOKEN_KEY_LABEL).exists() {
            format!(
                "token key {:?}",
                read_text(&dir.join(layout::TOKEN_KEY_LABEL))?
            )
        } else if dir.join(layout::ISSUING_KEY).exists() {
            "key file".to_owned()
        } else {
            "token key of [ca.key]".to_owned()
        };
        let issues = match (number, switch_at) {
            (1, _) => "from the start".to_owned(),
            (_, Some(t)) => format!("from {}", rfc3339(t)),
            (_, None) => "not yet (no moment set)".to_owned(),
        };
        lines.push(format!(
            "generation {number}: {} (until {}), root {}, {key}, issues {issues}",
            issuing.tbs_certificate.subject,
            issuing.tbs_certificate.validity.not_after,
            root.tbs_certificate.subject,
        ));
    }
    for line in lines {
        out.push_str(&line);
        out.push('\n');
    }
    out.push_str(&format!("issuing now: generation {active}\n"));
    Ok(out)
}

/// The root key of the newest complete generation, from its folder or an
/// older one holding the same root (a development CA keeps it in `certs/`).
fn newest_root(
    certs_dir: &Path,
    cfg: &CaConfig,
) -> Result<(CertificateDer<'static>, rcgen::KeyPair), CaError> {
    let (newest, dir) = newest_complete(certs_dir)?;
    let root = read_cert(&dir.join(layout::ROOT_CERT))?;
    let passphrase = configured_passphrase(cfg)?;
    for number in (1..=newest).rev() {
        let d = generation_dir(certs_dir, number);
        let key_file = d.join(layout::ROOT_KEY);
        if key_file.exists() && read_cert(&d.join(layout::ROOT_CERT))? == root {
            let pkcs8 = read_ca_key(&key_file, passphrase.as_ref())?;
            let key = rcgen::KeyPair::try_from(pkcs8.as_slice())?;
            return Ok((root, key));
        }
    }
    Err(key_err(format!(
        "no root key ({}) beside the current root; estd ca next is for a development CA whose root key is in the certificate folder. \
         With an external root, use the ceremony: estd ca init --next, estd ca csr --next, estd ca import --next",
        layout::ROOT_KEY
    )))
}

/// `estd ca next`: prepares the next generation of a development CA with a
/// software key, signed by the current root, or with `new_root` under a
/// new root, with NewWithOld and OldWithNew signed by both roots' keys.
/// Published from the next start; issues from `switch_at`, if given.
pub fn stage_development(
    certs_dir: &Path,
    cfg: &CaConfig,
    new_root: bool,
    switch_at: Option<UnixSeconds>,
) -> Result<String, CaError> {
    if cfg.key.pkcs11.is_some() {
        return Err(key_err(
            "the issuing key is in a PKCS#11 token; prepare the next generation with the ceremony: \
             estd ca init --pkcs11 --next --key-label LABEL, estd ca csr --next, estd ca import --next"
                .into(),
        ));
    }
    let (old_root_der, old_root_key) = newest_root(certs_dir, cfg)?;
    let (number, dir) = begin_generation(certs_dir)?;
    let result = stage_into(
        &dir,
        number,
        cfg,
        new_root,
        &old_root_der,
        &old_root_key,
        switch_at,
    );
    if result.is_err() {
        // Leave no half-prepared generation behind.
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

#[allow(clippy::too_many_arguments)]
fn stage_into(
    dir: &Path,
    number: u32,
    cfg: &CaConfig,
    new_root: bool,
    old_root_der: &CertificateDer<'static>,
    old_root_key: &rcgen::KeyPair,
    switch_at: Option<UnixSeconds>,
) -> Result<String, CaError> {
    let passphrase = configured_passphrase(cfg)?;
    let alg = rcgen_alg(cfg.key_algorithm);
    let old_issuer = rcgen::Issuer::from_ca_cert_der(old_root_der, old_root_key)?;
    let issuing_key = rcgen::KeyPair::generate_for(alg)?;
    let issuing_cn = generation_common_name(&cfg.issuing_common_name, number);
    let issuing = issuing_params(&issuing_cn)?;

    let (issuing_der, root_der) = if new_root {
        let root_key = rcgen::KeyPair::generate_for(alg)?;
        let root_cn = generation_common_name(&cfg.root_common_name, number);
        let root_cert = root_params(&root_cn)?.self_signed(&root_key)?;
        let new_issuer = rcgen::Issuer::new(root_params(&root_cn)?, &root_key);
        let issuing_cert = issuing.signed_by(&issuing_key, &new_issuer)?;

        // NewWithOld: the new root's key under the old root; OldWithNew:
        // the old root's key under the new one.
        let as_ca = |key: &rcgen::KeyPair, der: &[u8]| -> Result<Ca, CaError> {
            let signer = std::sync::Arc::new(SoftwareSigner::from_pkcs8(&key.serialize_der())?);
            // Only to cross-certify: it issues no leaf, so it names no URLs.
            Ca::new(
                signer,
                der.to_vec(),
                vec![der.to_vec()],
                PublicUrls::default(),
            )
        };
        let old_root = as_ca(old_root_key, old_root_der)?;
        let new_root = as_ca(&root_key, root_cert.der())?;
        let new_with_old = old_root.cross_certify(&Certificate::from_der(root_cert.der())?)?;
        let old_with_new = new_root.cross_certify(&Certificate::from_der(old_root_der)?)?;

        write_ca_key(&dir.join(layout::ROOT_KEY), &root_key, passphrase.as_ref())?;
        write_file(
            &dir.join(layout::ROOT_ROLLOVER),
            format!("{}{}", cert_pem(&new_with_old), cert_pem(&old_with_new)).as_bytes(),
            false,
        )?;
        (issuing_cert.der().to_vec(), root_cert.der().to_vec())
    } else {
        let issuing_cert = issuing.signed_by(&issuing_key, &old_issuer)?;
        (issuing_cert.der().to_vec(), old_root_der.to_vec())
    };
    write_ca_key(
        &dir.join(layout::ISSUING_KEY),
        &issuing_key,
        passphrase.as_ref(),
    )?;
    write_switch_at(dir, switch_at)?;
    write_ca_certs(dir, &issuing_der, &root_der)?;
    let when = match switch_at {
        Some(t) => format!("it issues from {}", rfc3339(t)),
        None => "set when it issues with estd ca switch --at TIME".to_owned(),
    };
    Ok(format!(
        "estd: prepared CA generation {number} ({issuing_cn}{}) in {}; restart estd to publish it in /cacerts; {when}",
        if new_root { ", under a new root" } else { "" },
        dir.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_folders_are_numbered_from_two() {
        let dir = tempfile::tempdir().expect("tmp");
        for name in ["ca-3", "ca-2", "ca-1", "ca-x", "other"] {
            std::fs::create_dir(dir.path().join(name)).expect("mkdir");
        }
        std::fs::write(dir.path().join("ca-9"), b"a file").expect("file");
        assert_eq!(later_generations(dir.path()).expect("list"), vec![2, 3]);
        assert_eq!(generation_dir(dir.path(), 1), dir.path());
        assert_eq!(generation_dir(dir.path(), 2), dir.path().join("ca-2"));
    }
}
