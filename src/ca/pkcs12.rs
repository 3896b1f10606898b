//! PKCS#12 (PFX) files for browser issuance.
//!
//! The server makes the key, shows the person a one-time password once, and
//! hands out a PKCS#12 encrypted with it, so the key never travels in the clear
//! and the browser or OS key store can import key and chain in one step.
//!
//! The PKCS#12 structure, PBES2 encryption and MAC come from the
//! `p12-keystore` crate (0.2 line: der 0.7 / pkcs5 0.7 / cms 0.2 / pkcs12 0.1,
//! the same family as the rest of estd); nothing here hand-writes ASN.1 or
//! crypto. What this module adds is input checking and the choice of
//! parameters:
//!
//! * key bag (pkcs8ShroudedKeyBag) and the certificate safe (EncryptedData)
//!   are both PBES2: PBKDF2-HMAC-SHA256 + AES-256-CBC, random 32-byte salt and
//!   16-byte IV per use (the crate draws them from `rand`'s OS-seeded CSPRNG);
//! * integrity MAC: HMAC-SHA256 keyed by the RFC 7292 PKCS#12 KDF over SHA-256,
//!   which is exactly what OpenSSL 3 writes by default and reads without
//!   `-legacy`;
//! * [`ITERATIONS`] for both PBKDF2 and the MAC KDF.
//!
//! Keys are stored as PKCS#8 v1 (see [`pkcs8_v1`]) so that OpenSSL 3.0 reads
//! Ed25519 keys made by aws-lc-rs.
//!
//! Leaf certificate bag and key bag both carry the same `localKeyId` (SHA-256
//! of the leaf certificate), which is how importers pair key and certificate.
//! The key bag carries `friendlyName` = the caller's name; the crate sets the
//! certificate bags' `friendlyName` to each certificate's subject DN.
//!
//! Reported limits of this modern profile: Windows imports PBES2/AES-256 +
//! SHA-256 MAC from Windows 10 1709 / Server 2019 on; macOS Keychain and
//! `SecPKCS12Import` have for years refused such files with "wrong password"
//! (a 3DES + SHA-1 MAC profile is what they accept), so Mac users may need a
//! legacy variant.

use aws_lc_rs::digest;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use der::Decode;
use p12_keystore::{
    Certificate as P12Certificate, EncryptionAlgorithm, KeyStore, KeyStoreEntry, MacAlgorithm,
    PrivateKeyChain,
};

/// PBKDF2 and MAC-KDF iteration count.
///
/// The password comes from [`one_time_password`] (100 bits), so stretching
/// adds nothing that matters against guessing; what the count does decide is
/// CPU per issuance on a small server and import time on weak clients. 10 000
/// is above OpenSSL 3's 2048 and equal to the JDK's PKCS#12 default for both
/// PBKDF2 and MAC, so it is a count importers already see in the wild.
pub const ITERATIONS: u64 = 10_000;

/// Unambiguous alphabet: digits and capitals without 0/O/1/I.
/// Exactly 32 symbols, so a random byte masked to 5 bits picks one without bias.
const OTP_ALPHABET: &[u8; 32] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";
const OTP_GROUPS: usize = 4;
const OTP_GROUP_LEN: usize = 5;
// 20 symbols * log2(32) = 100 bits; fails to compile if someone shortens it.
const _: () = assert!(OTP_GROUPS * OTP_GROUP_LEN * 5 >= 100);

/// Why a PKCS#12 file or password could not be made.
#[derive(Debug, thiserror::Error)]
pub enum Pkcs12Error {
    /// Empty passwords are encoded differently by different importers
    /// (absent vs. empty BMPString), so the file would not open everywhere.
    #[error("PKCS#12 password must not be empty")]
    EmptyPassword,
    /// PKCS#12 text is BMPString (UCS-2): characters beyond U+FFFF cannot be encoded.
    #[error("{0} contains characters outside the Unicode Basic Multilingual Plane")]
    NotBmp(&'static str),
    /// The key is not PKCS#8 DER of a type rcgen/aws-lc-rs understands.
    #[error("private key is not a usable PKCS#8 key: {0}")]
    Key(#[source] rcgen::Error),
    /// The key parsed as a key but not as a PKCS#8 structure we can re-encode.
    #[error("private key PKCS#8 encoding: {0}")]
    KeyEncoding(String),
    /// A certificate is not DER X.509; `index` 0 is the leaf, 1.. the chain.
    #[error("certificate {index} is not a DER X.509 certificate: {reason}")]
    Certificate {
        /// Which certificate.
        index: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A file whose key does not belong to its leaf would import as a
    /// certificate without a usable key; refuse to build it.
    #[error("private key does not match the leaf certificate's public key")]
    KeyMismatch,
    /// Encoding or encryption failed inside the PKCS#12 writer.
    #[error("building PKCS#12 failed: {0}")]
    Build(#[source] p12_keystore::error::Error),
    /// The OS random generator failed; no weak password is made instead.
    #[error("system random generator failed")]
    Random,
}

/// Builds a password-protected PKCS#12 holding `key_pkcs8_der`, its leaf
/// certificate `cert_der` and the chain `chain_der` (issuer first, root last,
/// root optional).
///
/// The key is checked against the leaf's public key first, because a mismatch
/// imports "successfully" on most platforms and only fails at first use.
pub fn pkcs12(
    key_pkcs8_der: &[u8],
    cert_der: &[u8],
    chain_der: &[Vec<u8>],
    friendly_name: &str,
    password: &str,
) -> Result<Vec<u8>, Pkcs12Error> {
    if password.is_empty() {
        return Err(Pkcs12Error::EmptyPassword);
    }
    if !is_bmp(password) {
        return Err(Pkcs12Error::NotBmp("password"));
    }
    if !is_bmp(friendly_name) {
        return Err(Pkcs12Error::NotBmp("friendly name"));
    }

    check_key_matches_cert(key_pkcs8_der, cert_der)?;
    let key_v1 = pkcs8_v1(key_pkcs8_der)?;

    let mut certs = Vec::with_capacity(chain_der.len() + 1);
    for (index, der) in std::iter::once(cert_der)
        .chain(chain_der.iter().map(Vec::as_slice))
        .enumerate()
    {
        let cert = P12Certificate::from_der(der).map_err(|e| Pkcs12Error::Certificate {
            index,
            reason: e.to_string(),
        })?;
        certs.push(cert);
    }

    // SHA-256 of the leaf: stable, unique per certificate, and independent of
    // the key type (OpenSSL uses SHA-1 of the cert; any octets are valid).
    let local_key_id = digest::digest(&digest::SHA256, cert_der);
    let chain = PrivateKeyChain::new(key_v1.as_slice(), local_key_id.as_ref(), certs);

    let mut store = KeyStore::new();
    store.add_entry(friendly_name, KeyStoreEntry::PrivateKeyChain(chain));

    store
        .writer(password)
        .encryption_algorithm(EncryptionAlgorithm::PbeWithHmacSha256AndAes256)
        .encryption_iterations(ITERATIONS)
        .mac_algorithm(MacAlgorithm::HmacSha256)
        .mac_iterations(ITERATIONS)
        .write()
        .map_err(Pkcs12Error::Build)
}

/// A random password to show a person once, e.g. `7KQ2M-X9RTD-HC4VW-P8NZE`.
///
/// 20 symbols from a 32-symbol alphabet = 100 bits. Uppercase without 0/O/1/I
/// so it survives being read aloud or copied by hand; the dashes are part of
/// the password (show it exactly as returned). Fallible rather than panicking:
/// if the OS RNG fails there must be no password at all.
pub fn one_time_password() -> Result<String, Pkcs12Error> {
    let mut bytes = [0u8; OTP_GROUPS * OTP_GROUP_LEN];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Pkcs12Error::Random)?;
    let mut out = String::with_capacity(OTP_GROUPS * (OTP_GROUP_LEN + 1));
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 && i % OTP_GROUP_LEN == 0 {
            out.push('-');
        }
        out.push(char::from(OTP_ALPHABET[usize::from(b & 0x1f)]));
    }
    zeroize::Zeroize::zeroize(&mut bytes);
    Ok(out)
}

/// Re-encodes a PKCS#8 v2 key (OneAsymmetricKey with the optional
/// `publicKey`, as aws-lc-rs writes Ed25519) as v1 without it. OpenSSL 3.0
/// cannot decode v2 inside a PKCS#12 ("Field=attributes" error), and the
/// public key is in the certificate anyway. v1 input is passed through as is.
fn pkcs8_v1(key_pkcs8_der: &[u8]) -> Result<zeroize::Zeroizing<Vec<u8>>, Pkcs12Error> {
    use der::Encode;
    let mut info = pkcs8::PrivateKeyInfo::try_from(key_pkcs8_der)
        .map_err(|e| Pkcs12Error::KeyEncoding(e.to_string()))?;
    if info.public_key.is_none() {
        return Ok(zeroize::Zeroizing::new(key_pkcs8_der.to_vec()));
    }
    info.public_key = None;
    info.to_der()
        .map(zeroize::Zeroizing::new)
        .map_err(|e| Pkcs12Error::KeyEncoding(e.to_string()))
}

/// Whether `s` fits PKCS#12's BMPString (no character above U+FFFF).
pub fn is_bmp(s: &str) -> bool {
    s.chars().all(|c| u32::from(c) <= 0xFFFF)
}

/// Compares the raw public key (SPKI BIT STRING contents) derived from the
/// private key with the leaf's, ignoring AlgorithmIdentifier encoding details.
fn check_key_matches_cert(key_pkcs8_der: &[u8], cert_der: &[u8]) -> Result<(), Pkcs12Error> {
    let key = rcgen::KeyPair::try_from(key_pkcs8_der).map_err(Pkcs12Error::Key)?;
    let cert =
        x509_cert::Certificate::from_der(cert_der).map_err(|e| Pkcs12Error::Certificate {
            index: 0,
            reason: e.to_string(),
        })?;
    let cert_pub = cert
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .raw_bytes();
    if key.public_key_raw() == cert_pub {
        Ok(())
    } else {
        Err(Pkcs12Error::KeyMismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SignatureAlgorithm,
        PKCS_ECDSA_P256_SHA256, PKCS_ED25519, PKCS_RSA_SHA256,
    };
    use std::path::PathBuf;
    use std::process::{Command, Output};
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Fixture {
        key_der: Vec<u8>,
        leaf_der: Vec<u8>,
        chain: Vec<Vec<u8>>,
    }

    /// CA (P-256) -> leaf (alg under test), so chain handling is exercised too.
    fn fixture(alg: &'static SignatureAlgorithm) -> Fixture {
        let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "estd test CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);

        let key = KeyPair::generate_for(alg).unwrap();
        let mut params = CertificateParams::new(vec!["alice.example".to_string()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Alice Ærø");
        let leaf = params.signed_by(&key, &issuer).unwrap();
        Fixture {
            key_der: key.serialize_der(),
            leaf_der: leaf.der().to_vec(),
            chain: vec![ca_cert.der().to_vec()],
        }
    }

    fn self_signed(alg: &'static SignatureAlgorithm) -> (Vec<u8>, Vec<u8>) {
        let key = KeyPair::generate_for(alg).unwrap();
        let cert = CertificateParams::new(vec!["bob.example".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (key.serialize_der(), cert.der().to_vec())
    }

    /// A temp file path that is removed when dropped, so tests leave nothing behind.
    struct TmpFile(PathBuf);
    impl TmpFile {
        fn s(&self) -> &str {
            self.0.to_str().unwrap()
        }
    }
    impl Drop for TmpFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn tmp(name: &str) -> TmpFile {
        static N: AtomicUsize = AtomicUsize::new(0);
        TmpFile(std::env::temp_dir().join(format!(
            "estd-p12-test-{}-{}-{name}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        )))
    }

    fn openssl(args: &[&str]) -> Output {
        Command::new("openssl").args(args).output().unwrap()
    }

    fn have_openssl() -> bool {
        Command::new("openssl")
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// Our key normalised by openssl, to compare with what openssl extracts.
    fn openssl_key_der(key_der: &[u8]) -> Vec<u8> {
        let p = tmp("key.der");
        std::fs::write(&p.0, key_der).unwrap();
        let out = openssl(&["pkey", "-inform", "DER", "-in", p.s(), "-outform", "DER"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    fn check_with_openssl(label: &str, fx: &Fixture) {
        let pw = one_time_password().unwrap();
        // ASCII: OpenSSL 3.0 prints BMPString attributes byte-truncated, so a
        // non-ASCII name could not be compared here (see `non_ascii_friendly_name`).
        let name = "estd: alice@example.org";
        let t0 = std::time::Instant::now();
        let p12 = pkcs12(&fx.key_der, &fx.leaf_der, &fx.chain, name, &pw).unwrap();
        eprintln!("{label}: built {} bytes in {:?}", p12.len(), t0.elapsed());
        let path = tmp("f.p12");
        std::fs::write(&path.0, &p12).unwrap();
        let f = path.s();
        let passin = format!("pass:{pw}");

        // Algorithms, as openssl reports them (on stderr).
        let info = openssl(&[
            "pkcs12", "-in", f, "-passin", &passin, "-nodes", "-noout", "-info",
        ]);
        let info_err = String::from_utf8_lossy(&info.stderr);
        eprintln!("{label} -info:\n{info_err}");
        assert!(info.status.success(), "{label}: {info_err}");
        let it = format!("Iteration {ITERATIONS}");
        assert!(
            info_err.contains(&format!("MAC: sha256, {it}")),
            "{info_err}"
        );
        assert!(
            info_err.contains(&format!(
                "PKCS7 Encrypted data: PBES2, PBKDF2, AES-256-CBC, {it}, PRF hmacWithSHA256"
            )),
            "{info_err}"
        );
        assert!(
            info_err.contains(&format!(
                "Shrouded Keybag: PBES2, PBKDF2, AES-256-CBC, {it}, PRF hmacWithSHA256"
            )),
            "{info_err}"
        );

        // Full dump: bag attributes, key, both certificates.
        let dump = openssl(&["pkcs12", "-in", f, "-passin", &passin, "-nodes"]);
        assert!(
            dump.status.success(),
            "{}",
            String::from_utf8_lossy(&dump.stderr)
        );
        let text = String::from_utf8_lossy(&dump.stdout).into_owned();
        assert_eq!(text.matches("BEGIN CERTIFICATE").count(), 2, "{text}");
        assert_eq!(text.matches("BEGIN PRIVATE KEY").count(), 1, "{text}");
        assert!(text.contains(&format!("friendlyName: {name}")), "{text}");
        let kid: String = digest::digest(&digest::SHA256, &fx.leaf_der)
            .as_ref()
            .iter()
            .map(|b| format!("{b:02X} "))
            .collect();
        let kid = format!("localKeyID: {}", kid.trim_end());
        // once on the key bag, once on the leaf cert bag, not on the CA
        assert_eq!(text.matches(&kid).count(), 2, "{text}");

        // The key openssl extracts is our key.
        let keys = openssl(&["pkcs12", "-in", f, "-passin", &passin, "-nodes", "-nocerts"]);
        assert!(keys.status.success());
        let pem = tmp("out.pem");
        std::fs::write(&pem.0, &keys.stdout).unwrap();
        let extracted = openssl(&["pkey", "-in", pem.s(), "-outform", "DER"]);
        assert!(extracted.status.success());
        // (v1 form: OpenSSL 3.0 cannot read aws-lc-rs's Ed25519 v2 PKCS#8 at all.)
        let ours = openssl_key_der(&pkcs8_v1(&fx.key_der).unwrap());
        assert_eq!(extracted.stdout, ours, "{label}: key differs");

        // The leaf openssl extracts is our leaf.
        let leaf = openssl(&[
            "pkcs12", "-in", f, "-passin", &passin, "-nokeys", "-clcerts",
        ]);
        assert!(leaf.status.success());
        let leaf_pem = tmp("leaf.pem");
        std::fs::write(&leaf_pem.0, &leaf.stdout).unwrap();
        let leaf_der = openssl(&["x509", "-in", leaf_pem.s(), "-outform", "DER"]);
        assert_eq!(leaf_der.stdout, fx.leaf_der, "{label}: leaf differs");

        // A wrong password must fail (MAC verification).
        let bad = openssl(&[
            "pkcs12",
            "-in",
            f,
            "-passin",
            "pass:WRONG-PASSWORD",
            "-nodes",
            "-noout",
        ]);
        assert!(!bad.status.success(), "{label}: wrong password accepted");
    }

    #[test]
    fn openssl_reads_p256_rsa_ed25519() {
        if !have_openssl() {
            eprintln!("skipping: `openssl` not found on PATH");
            return;
        }
        for (label, alg) in [
            ("P-256", &PKCS_ECDSA_P256_SHA256),
            ("RSA-2048", &PKCS_RSA_SHA256),
            ("Ed25519", &PKCS_ED25519),
        ] {
            check_with_openssl(label, &fixture(alg));
        }
    }

    #[test]
    fn self_signed_p256_without_chain() {
        let (key, cert) = self_signed(&PKCS_ECDSA_P256_SHA256);
        let pw = one_time_password().unwrap();
        let p12 = pkcs12(&key, &cert, &[], "bob", &pw).unwrap();
        // Read back with the crate itself (works without openssl).
        let store = KeyStore::from_pkcs12(&p12, &pw).unwrap();
        let (alias, chain) = store.private_key_chain().unwrap();
        assert_eq!(alias, "bob");
        assert_eq!(chain.key(), key.as_slice());
        assert_eq!(chain.chain().len(), 1);
        assert_eq!(chain.chain()[0].as_der(), cert.as_slice());
        assert!(KeyStore::from_pkcs12(&p12, "not-the-password").is_err());

        if have_openssl() {
            let path = tmp("self.p12");
            std::fs::write(&path.0, &p12).unwrap();
            let ok = openssl(&[
                "pkcs12",
                "-in",
                path.s(),
                "-passin",
                &format!("pass:{pw}"),
                "-nodes",
                "-noout",
            ]);
            assert!(
                ok.status.success(),
                "{}",
                String::from_utf8_lossy(&ok.stderr)
            );
        }
    }

    #[test]
    fn non_ascii_friendly_name() {
        let fx = fixture(&PKCS_ECDSA_P256_SHA256);
        let p12 = pkcs12(&fx.key_der, &fx.leaf_der, &fx.chain, "Æbleø Åse", "pw").unwrap();
        let store = KeyStore::from_pkcs12(&p12, "pw").unwrap();
        let (alias, chain) = store.private_key_chain().unwrap();
        assert_eq!(alias, "Æbleø Åse");
        assert_eq!(chain.chain().len(), 2);
    }

    #[test]
    fn rejects_bad_input() {
        let (key, cert) = self_signed(&PKCS_ECDSA_P256_SHA256);
        let (other_key, _) = self_signed(&PKCS_ECDSA_P256_SHA256);
        assert!(matches!(
            pkcs12(&key, &cert, &[], "n", ""),
            Err(Pkcs12Error::EmptyPassword)
        ));
        assert!(matches!(
            pkcs12(&key, &cert, &[], "n", "pw\u{1F600}"),
            Err(Pkcs12Error::NotBmp(_))
        ));
        assert!(matches!(
            pkcs12(&key, &cert, &[], "😀", "pw"),
            Err(Pkcs12Error::NotBmp(_))
        ));
        assert!(matches!(
            pkcs12(&other_key, &cert, &[], "n", "pw"),
            Err(Pkcs12Error::KeyMismatch)
        ));
        assert!(matches!(
            pkcs12(b"junk", &cert, &[], "n", "pw"),
            Err(Pkcs12Error::Key(_))
        ));
        assert!(matches!(
            pkcs12(&key, b"junk", &[], "n", "pw"),
            Err(Pkcs12Error::Certificate { index: 0, .. })
        ));
        assert!(matches!(
            pkcs12(&key, &cert, &[b"junk".to_vec()], "n", "pw"),
            Err(Pkcs12Error::Certificate { index: 1, .. })
        ));
    }

    #[test]
    fn one_time_password_shape() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let pw = one_time_password().unwrap();
            assert_eq!(pw.len(), 23, "{pw}");
            let groups: Vec<&str> = pw.split('-').collect();
            assert_eq!(groups.len(), 4);
            for g in groups {
                assert_eq!(g.len(), 5);
                assert!(g.bytes().all(|b| OTP_ALPHABET.contains(&b)), "{pw}");
            }
            for bad in ['0', 'O', '1', 'l', 'I'] {
                assert!(!pw.contains(bad), "{pw}");
            }
            assert!(seen.insert(pw));
        }
    }
}
