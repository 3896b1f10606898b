//! The issuing CA's key in a PKCS#11 token (an HSM, or SoftHSM2 for tests),
//! through the `cryptoki` crate: [`Pkcs11Signer`] behind the [`Signer`] seam,
//! and the token operations of the key ceremony ([`generate_key`],
//! [`key_attributes`]).
//!
//! - **Algorithms**: ECDSA P-256 (ecdsa-with-SHA256) and P-384
//!   (ecdsa-with-SHA384) with `CKM_ECDSA` over a digest computed here, the
//!   token's raw `r || s` re-encoded as the DER `Ecdsa-Sig-Value` X.509
//!   wants; RSA of 2048 bits or more with `CKM_SHA256_RSA_PKCS`
//!   (sha256WithRSAEncryption).
//! - **Sessions**: a bounded pool of logged-in read-only sessions (by default
//!   twice the number of cores), each with the key's handle found once, so
//!   that concurrent issuances sign in parallel instead of queueing on one
//!   session. A signature costs a round trip to the token, so the signer
//!   reports [`SignCost::Expensive`] and issuance runs on the blocking pool.
//! - **Failures**: when the token does not sign (it is gone, a session was
//!   closed under us, the device failed), the session is dropped, the idle
//!   ones with it, the module is re-initialised (at most once a second) and
//!   the signature tried once more on a fresh session. If that fails too,
//!   the error is [`SignError::KeyUnavailable`], which EST and admin answer
//!   with 503 and `Retry-After`; the next signature tries again, so service
//!   comes back by itself once the token is back.
//! - **The PIN** is read once at start-up from an environment variable or a
//!   0600 file, kept in a [`Pin`] that is wiped on drop and prints nothing,
//!   and never logged or put in an error message.

use std::path::Path;
use std::sync::{Condvar, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use aws_lc_rs::digest;
use const_oid::db::rfc5912;
use const_oid::ObjectIdentifier;
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as P11Error, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use der::asn1::{BitString, Null, OctetString, UintRef};
use der::{Any, Decode, Encode, Sequence};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use zeroize::Zeroizing;

use super::keyfile::read_secret;
use super::signer::{SignCost, SignError, Signer};
use super::CaError;
use crate::config::Pkcs11KeyConfig;

/// The token's user PIN, wiped from memory when dropped. Its `Debug` prints
/// nothing of it.
pub struct Pin(Zeroizing<String>);

impl std::fmt::Debug for Pin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pin(..)")
    }
}

impl Pin {
    /// The PIN as cryptoki takes it (a `secrecy` string, wiped on drop too).
    fn auth(&self) -> AuthPin {
        // Exactly the capacity, so that turning it into a boxed str does not
        // leave an unwiped copy behind.
        let mut s = String::with_capacity(self.0.len());
        s.push_str(&self.0);
        AuthPin::from(s)
    }
}

fn key_err(msg: String) -> CaError {
    CaError::Key(msg)
}

/// The PIN configured in `[ca.key] pkcs11` (`pin_env` or `pin_file`).
pub fn configured_pin(cfg: &Pkcs11KeyConfig) -> Result<Pin, CaError> {
    let text = read_secret(
        cfg.pin_env.as_deref(),
        cfg.pin_file.as_deref(),
        "token PIN",
        "[ca.key] pkcs11 pin_env",
        |path, e| {
            key_err(format!(
                "cannot read the token PIN file {} ([ca.key] pkcs11 pin_file): {e}",
                path.display()
            ))
        },
    )?;
    text.map(Pin)
        .ok_or_else(|| key_err("[ca.key] pkcs11 needs pin_env or pin_file".to_owned()))
}

/// A PKCS#11 failure in a few words: the function and the CKR_ code (the
/// crate's own texts are paragraphs).
fn describe(e: &P11Error) -> String {
    match e {
        P11Error::Pkcs11(rv, function) => format!("{function} returned {rv:?}"),
        other => other.to_string(),
    }
}

/// What the token holds: the type and size of the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    P256,
    P384,
    Rsa,
}

/// Key algorithms `estd ca init --pkcs11` can generate in a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TokenKeyAlgorithm {
    /// ECDSA P-256, signing with SHA-256.
    P256,
    /// ECDSA P-384, signing with SHA-384.
    P384,
    /// RSA 2048, signing with SHA-256 (PKCS#1 v1.5).
    Rsa2048,
    /// RSA 3072.
    Rsa3072,
    /// RSA 4096.
    Rsa4096,
}

/// DER of the namedCurve OID, as CKA_EC_PARAMS holds it.
fn ec_params(curve: ObjectIdentifier) -> Result<Vec<u8>, CaError> {
    Ok(curve.to_der()?)
}

/// RFC 8017 RSAPublicKey.
#[derive(Sequence)]
struct RsaPublicKey<'a> {
    modulus: UintRef<'a>,
    public_exponent: UintRef<'a>,
}

/// RFC 5480 / RFC 3279 Ecdsa-Sig-Value.
#[derive(Sequence)]
struct EcdsaSig<'a> {
    r: UintRef<'a>,
    s: UintRef<'a>,
}

/// The token's raw `r || s` as the DER X.509 and CMS carry.
fn ecdsa_der(raw: &[u8], field_len: usize) -> Result<Vec<u8>, String> {
    if raw.len() != 2 * field_len {
        return Err(format!(
            "the token's ECDSA signature is {} bytes, not {}",
            raw.len(),
            2 * field_len
        ));
    }
    let (r, s) = raw.split_at(field_len);
    let sig = EcdsaSig {
        r: UintRef::new(r).map_err(|e| e.to_string())?,
        s: UintRef::new(s).map_err(|e| e.to_string())?,
    };
    sig.to_der().map_err(|e| e.to_string())
}

/// The attribute of `attrs` of type `t`, if the token returned it.
fn attr(attrs: &[Attribute], t: AttributeType) -> Option<&Attribute> {
    attrs.iter().find(|a| a.attribute_type() == t)
}

fn bool_attr(attrs: &[Attribute], t: AttributeType) -> Option<bool> {
    attrs.iter().find_map(|a| match a {
        Attribute::Sensitive(b) if t == AttributeType::Sensitive => Some(*b),
        Attribute::Extractable(b) if t == AttributeType::Extractable => Some(*b),
        Attribute::Token(b) if t == AttributeType::Token => Some(*b),
        Attribute::AlwaysSensitive(b) if t == AttributeType::AlwaysSensitive => Some(*b),
        Attribute::NeverExtractable(b) if t == AttributeType::NeverExtractable => Some(*b),
        Attribute::Private(b) if t == AttributeType::Private => Some(*b),
        Attribute::Sign(b) if t == AttributeType::Sign => Some(*b),
        _ => None,
    })
}

/// An open module: loaded and initialised.
struct Module {
    ctx: Pkcs11,
}

impl Module {
    fn open(path: &Path) -> Result<Module, P11Error> {
        let ctx = Pkcs11::new(path)?;
        match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) | Err(P11Error::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(e) => return Err(e),
        }
        Ok(Module { ctx })
    }

    /// The slot holding the token labelled `label`; Err lists the labels seen.
    fn slot(&self, label: &str) -> Result<Slot, Vec<String>> {
        let mut seen = Vec::new();
        for slot in self.ctx.get_slots_with_token().unwrap_or_default() {
            if let Ok(info) = self.ctx.get_token_info(slot) {
                let l = info.label().trim_end().to_owned();
                if l == label {
                    return Ok(slot);
                }
                seen.push(l);
            }
        }
        Err(seen)
    }
}

/// Why a token could not be used, said for an operator.
fn token_error(cfg: &Pkcs11KeyConfig, what: &str, e: &P11Error) -> CaError {
    let token = &cfg.token_label;
    let hint = match e {
        P11Error::Pkcs11(RvError::PinIncorrect, _) => format!(
            "the PIN of token {token:?} is wrong (CKR_PIN_INCORRECT); check [ca.key] pkcs11 pin_env or pin_file"
        ),
        P11Error::Pkcs11(RvError::PinLocked, _) => format!(
            "the user PIN of token {token:?} is locked (CKR_PIN_LOCKED); the security officer must unlock it"
        ),
        P11Error::Pkcs11(RvError::PinExpired, _) => format!(
            "the user PIN of token {token:?} has expired (CKR_PIN_EXPIRED); set a new one"
        ),
        P11Error::LibraryLoading(le) => format!(
            "cannot load the PKCS#11 module {}: {le}",
            cfg.module.display()
        ),
        other => format!("PKCS#11 token {token:?}: {what}: {}", describe(other)),
    };
    key_err(hint)
}

/// Opens a session on the configured token and logs in as the user.
fn login(module: &Module, cfg: &Pkcs11KeyConfig, pin: &Pin, rw: bool) -> Result<Session, CaError> {
    let slot = module.slot(&cfg.token_label).map_err(|seen| {
        key_err(format!(
            "no PKCS#11 token labelled {:?} in {} (tokens present: {}); check [ca.key] pkcs11 token_label",
            cfg.token_label,
            cfg.module.display(),
            if seen.is_empty() {
                "none".to_owned()
            } else {
                seen.join(", ")
            }
        ))
    })?;
    let session = if rw {
        module.ctx.open_rw_session(slot)
    } else {
        module.ctx.open_ro_session(slot)
    }
    .map_err(|e| token_error(cfg, "opening a session", &e))?;
    match session.login(UserType::User, Some(&pin.auth())) {
        Ok(()) | Err(P11Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(session),
        Err(e) => Err(token_error(cfg, "logging in", &e)),
    }
}

/// The objects of `class` labelled `label`.
fn find(session: &Session, class: ObjectClass, label: &str) -> Result<Vec<ObjectHandle>, P11Error> {
    session.find_objects(&[
        Attribute::Class(class),
        Attribute::Label(label.as_bytes().to_vec()),
    ])
}

/// The one private key labelled `label`.
fn private_key(session: &Session, cfg: &Pkcs11KeyConfig) -> Result<ObjectHandle, CaError> {
    let found = find(session, ObjectClass::PRIVATE_KEY, &cfg.key_label)
        .map_err(|e| token_error(cfg, "finding the key", &e))?;
    match found.as_slice() {
        [one] => Ok(*one),
        [] => Err(key_err(format!(
            "no private key labelled {:?} in PKCS#11 token {:?}; generate it with `estd ca init --pkcs11`",
            cfg.key_label, cfg.token_label
        ))),
        _ => Err(key_err(format!(
            "{} private keys are labelled {:?} in PKCS#11 token {:?}; labels must be unique",
            found.len(),
            cfg.key_label,
            cfg.token_label
        ))),
    }
}

/// The key's kind, signature algorithm and SubjectPublicKeyInfo, read from
/// the token (EC point from the public key object, RSA modulus and exponent
/// from the private key, which shows them even when sensitive).
fn describe_key(
    session: &Session,
    cfg: &Pkcs11KeyConfig,
    key: ObjectHandle,
) -> Result<(KeyKind, AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned), CaError> {
    let read = |obj, types: &[AttributeType]| {
        session
            .get_attributes(obj, types)
            .map_err(|e| token_error(cfg, "reading the key's attributes", &e))
    };
    let attrs = read(key, &[AttributeType::KeyType])?;
    let key_type = match attr(&attrs, AttributeType::KeyType) {
        Some(Attribute::KeyType(t)) => *t,
        _ => return Err(key_err("the token does not say the key's type".into())),
    };
    if key_type == KeyType::EC {
        let publics = find(session, ObjectClass::PUBLIC_KEY, &cfg.key_label)
            .map_err(|e| token_error(cfg, "finding the public key", &e))?;
        let Some(public) = publics.first() else {
            return Err(key_err(format!(
                "no public key labelled {:?} beside the private key in token {:?}; the EC point is read from it",
                cfg.key_label, cfg.token_label
            )));
        };
        let attrs = read(*public, &[AttributeType::EcParams, AttributeType::EcPoint])?;
        let (Some(Attribute::EcParams(params)), Some(Attribute::EcPoint(point))) = (
            attr(&attrs, AttributeType::EcParams),
            attr(&attrs, AttributeType::EcPoint),
        ) else {
            return Err(key_err(
                "the token does not show the public key's curve and point".into(),
            ));
        };
        let curve = ObjectIdentifier::from_der(params).map_err(|_| {
            key_err("the key's CKA_EC_PARAMS is not a named curve (P-256 or P-384)".into())
        })?;
        let (kind, sig_oid, field) = if curve == rfc5912::SECP_256_R_1 {
            (KeyKind::P256, rfc5912::ECDSA_WITH_SHA_256, 32)
        } else if curve == rfc5912::SECP_384_R_1 {
            (KeyKind::P384, rfc5912::ECDSA_WITH_SHA_384, 48)
        } else {
            return Err(key_err(format!(
                "the key's curve {curve} is not P-256 or P-384"
            )));
        };
        // CKA_EC_POINT is a DER OCTET STRING; some tokens give the bare point.
        let raw = match OctetString::from_der(point) {
            Ok(o) => o.as_bytes().to_vec(),
            Err(_) => point.clone(),
        };
        if raw.len() != 1 + 2 * field || raw.first() != Some(&4) {
            return Err(key_err(
                "the key's EC point is not an uncompressed point of its curve".into(),
            ));
        }
        let spki = SubjectPublicKeyInfoOwned {
            algorithm: AlgorithmIdentifierOwned {
                oid: rfc5912::ID_EC_PUBLIC_KEY,
                parameters: Some(Any::encode_from(&curve)?),
            },
            subject_public_key: BitString::from_bytes(&raw)?,
        };
        let algorithm = AlgorithmIdentifierOwned {
            oid: sig_oid,
            parameters: None,
        };
        Ok((kind, algorithm, spki))
    } else if key_type == KeyType::RSA {
        let attrs = read(
            key,
            &[AttributeType::Modulus, AttributeType::PublicExponent],
        )?;
        let (Some(Attribute::Modulus(n)), Some(Attribute::PublicExponent(e))) = (
            attr(&attrs, AttributeType::Modulus),
            attr(&attrs, AttributeType::PublicExponent),
        ) else {
            return Err(key_err(
                "the token does not show the RSA key's modulus and exponent".into(),
            ));
        };
        let n_trim: Vec<u8> = n.iter().copied().skip_while(|b| *b == 0).collect();
        let bits = n_trim.len() * 8 - n_trim.first().map_or(8, |b| b.leading_zeros() as usize);
        if bits < 2048 {
            return Err(key_err(format!(
                "the RSA key has {bits} bits; at least 2048 are required"
            )));
        }
        let public = RsaPublicKey {
            modulus: UintRef::new(&n_trim)?,
            public_exponent: UintRef::new(e)?,
        }
        .to_der()?;
        let spki = SubjectPublicKeyInfoOwned {
            algorithm: AlgorithmIdentifierOwned {
                oid: rfc5912::RSA_ENCRYPTION,
                parameters: Some(Any::from(Null)),
            },
            subject_public_key: BitString::from_bytes(&public)?,
        };
        let algorithm = AlgorithmIdentifierOwned {
            oid: rfc5912::SHA_256_WITH_RSA_ENCRYPTION,
            parameters: Some(Any::from(Null)),
        };
        Ok((KeyKind::Rsa, algorithm, spki))
    } else {
        Err(key_err(format!(
            "the key labelled {:?} is a {key_type}, not an EC or RSA key",
            cfg.key_label
        )))
    }
}

/// A logged-in session with the key's handle found in it.
struct Pooled {
    session: Session,
    key: ObjectHandle,
}

struct Pool {
    idle: Vec<Pooled>,
    /// Sessions open: idle and in use.
    open: usize,
}

/// The module, re-initialised after a failure.
struct Epoch {
    module: Module,
    /// When it was (re-)initialised.
    since: Instant,
}

/// How long a signature waits for a free session before giving up.
const SESSION_WAIT: Duration = Duration::from_secs(10);
/// The module is re-initialised at most this often.
const REINIT_EVERY: Duration = Duration::from_secs(1);

/// The issuing CA's key in a PKCS#11 token. See the module documentation.
pub struct Pkcs11Signer {
    cfg: Pkcs11KeyConfig,
    pin: Pin,
    kind: KeyKind,
    algorithm: AlgorithmIdentifierOwned,
    spki: SubjectPublicKeyInfoOwned,
    epoch: RwLock<Epoch>,
    pool: Mutex<Pool>,
    freed: Condvar,
    max_sessions: usize,
}

impl std::fmt::Debug for Pkcs11Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the PIN.
        f.debug_struct("Pkcs11Signer")
            .field("token", &self.cfg.token_label)
            .field("key", &self.cfg.key_label)
            .field("algorithm", &self.algorithm.oid)
            .field("sessions", &self.max_sessions)
            .finish_non_exhaustive()
    }
}

/// Why the token did not sign, inside [`SignError::KeyUnavailable`].
#[derive(Debug, thiserror::Error)]
#[error("PKCS#11 token {token:?}: {reason}")]
pub struct TokenUnavailable {
    token: String,
    reason: String,
}

impl Pkcs11Signer {
    /// Loads the module, logs in to the token with `pin`, finds the key and
    /// signs a test message that must verify under its public key. Every
    /// failure stops start-up with a message that says what to fix.
    pub fn open(cfg: &Pkcs11KeyConfig, pin: Pin) -> Result<Pkcs11Signer, CaError> {
        let module = Module::open(&cfg.module).map_err(|e| token_error(cfg, "loading", &e))?;
        let session = login(&module, cfg, &pin, false)?;
        let key = private_key(&session, cfg)?;
        let (kind, algorithm, spki) = describe_key(&session, cfg, key)?;
        let max_sessions = if cfg.sessions > 0 {
            cfg.sessions
        } else {
            std::thread::available_parallelism().map_or(2, |n| n.get()) * 2
        };
        let signer = Pkcs11Signer {
            cfg: cfg.clone(),
            pin,
            kind,
            algorithm,
            spki,
            epoch: RwLock::new(Epoch {
                module,
                since: Instant::now(),
            }),
            pool: Mutex::new(Pool {
                idle: vec![Pooled { session, key }],
                open: 1,
            }),
            freed: Condvar::new(),
            max_sessions,
        };
        signer.self_test()?;
        tracing::info!(
            token = %cfg.token_label,
            key = %cfg.key_label,
            algorithm = %signer.algorithm.oid,
            sessions = max_sessions,
            "issuing CA key in a PKCS#11 token"
        );
        Ok(signer)
    }

    /// Signs a fixed message and verifies it under the key's public key:
    /// the token, the key and the signature encoding all work.
    fn self_test(&self) -> Result<(), CaError> {
        use aws_lc_rs::signature::{self as sig, UnparsedPublicKey};
        let message = b"estd PKCS#11 self-test";
        let signature = self.sign(message)?;
        let alg: &'static dyn sig::VerificationAlgorithm = match self.kind {
            KeyKind::P256 => &sig::ECDSA_P256_SHA256_ASN1,
            KeyKind::P384 => &sig::ECDSA_P384_SHA384_ASN1,
            KeyKind::Rsa => &sig::RSA_PKCS1_2048_8192_SHA256,
        };
        UnparsedPublicKey::new(alg, self.spki.subject_public_key.raw_bytes())
            .verify(message, &signature)
            .map_err(|_| {
                key_err(format!(
                    "the signature of key {:?} in token {:?} does not verify under its own public key",
                    self.cfg.key_label, self.cfg.token_label
                ))
            })
    }

    fn pool(&self) -> MutexGuard<'_, Pool> {
        self.pool.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A free session: an idle one, a new one while fewer than the maximum
    /// are open, or the next one given back (10 s at most).
    fn checkout(&self, epoch: &Epoch) -> Result<Pooled, String> {
        let deadline = Instant::now() + SESSION_WAIT;
        let mut pool = self.pool();
        loop {
            if let Some(p) = pool.idle.pop() {
                return Ok(p);
            }
            if pool.open < self.max_sessions {
                pool.open += 1;
                drop(pool);
                let opened = login(&epoch.module, &self.cfg, &self.pin, false)
                    .and_then(|session| {
                        let key = private_key(&session, &self.cfg)?;
                        Ok(Pooled { session, key })
                    })
                    .map_err(|e| e.to_string());
                if opened.is_err() {
                    self.pool().open -= 1;
                    self.freed.notify_one();
                }
                return opened;
            }
            let now = Instant::now();
            if now >= deadline {
                return Err("no token session became free within 10 s".into());
            }
            pool = self
                .freed
                .wait_timeout(pool, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    fn checkin(&self, p: Pooled) {
        self.pool().idle.push(p);
        self.freed.notify_one();
    }

    fn discard(&self, p: Pooled) {
        drop(p);
        self.pool().open -= 1;
        self.freed.notify_one();
    }

    /// One attempt on one session.
    fn try_sign(&self, mechanism: &Mechanism, data: &[u8]) -> Result<Vec<u8>, String> {
        let epoch = self.epoch.read().unwrap_or_else(|p| p.into_inner());
        let p = self.checkout(&epoch)?;
        match p.session.sign(mechanism, p.key, data) {
            Ok(sig) => {
                self.checkin(p);
                Ok(sig)
            }
            Err(e) => {
                self.discard(p);
                Err(describe(&e))
            }
        }
    }

    /// After a failure: drops the idle sessions (they are likely dead too)
    /// and re-initialises the module, unless that was done less than a
    /// second ago.
    fn recover(&self) {
        let mut epoch = self.epoch.write().unwrap_or_else(|p| p.into_inner());
        // No session is in use while the write lock is held.
        let idle = std::mem::take(&mut self.pool().idle);
        let dropped = idle.len();
        drop(idle);
        self.pool().open -= dropped;
        if epoch.since.elapsed() < REINIT_EVERY {
            return;
        }
        epoch.since = Instant::now();
        let _ = epoch.module.ctx.clone().finalize();
        match Module::open(&self.cfg.module) {
            Ok(m) => epoch.module = m,
            Err(e) => {
                tracing::warn!(token = %self.cfg.token_label, error = %describe(&e), "PKCS#11 module could not be re-initialised");
            }
        }
    }

    fn unavailable(&self, reason: String) -> SignError {
        SignError::KeyUnavailable(Box::new(TokenUnavailable {
            token: self.cfg.token_label.clone(),
            reason,
        }))
    }
}

impl Signer for Pkcs11Signer {
    fn algorithm(&self) -> &AlgorithmIdentifierOwned {
        &self.algorithm
    }

    fn public_key(&self) -> &SubjectPublicKeyInfoOwned {
        &self.spki
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        let (mechanism, data, field) = match self.kind {
            KeyKind::P256 => (
                Mechanism::Ecdsa,
                digest::digest(&digest::SHA256, message).as_ref().to_vec(),
                32,
            ),
            KeyKind::P384 => (
                Mechanism::Ecdsa,
                digest::digest(&digest::SHA384, message).as_ref().to_vec(),
                48,
            ),
            KeyKind::Rsa => (Mechanism::Sha256RsaPkcs, message.to_vec(), 0),
        };
        let raw = match self.try_sign(&mechanism, &data) {
            Ok(raw) => raw,
            Err(first) => {
                tracing::warn!(token = %self.cfg.token_label, error = %first, "the token did not sign; re-opening its sessions");
                self.recover();
                self.try_sign(&mechanism, &data)
                    .map_err(|again| self.unavailable(again))?
            }
        };
        match self.kind {
            KeyKind::Rsa => Ok(raw),
            _ => ecdsa_der(&raw, field).map_err(|e| self.unavailable(e)),
        }
    }

    fn cost(&self) -> SignCost {
        SignCost::Expensive
    }
}

/// Generates the issuing CA's key pair inside the token (`CKA_TOKEN`,
/// `CKA_SENSITIVE`, not `CKA_EXTRACTABLE`), labelled `[ca.key] pkcs11
/// key_label`. Refuses if any object already has that label. Returns the
/// public key.
pub fn generate_key(
    cfg: &Pkcs11KeyConfig,
    pin: &Pin,
    algorithm: TokenKeyAlgorithm,
) -> Result<SubjectPublicKeyInfoOwned, CaError> {
    let module = Module::open(&cfg.module).map_err(|e| token_error(cfg, "loading", &e))?;
    let session = login(&module, cfg, pin, true)?;
    let taken = session
        .find_objects(&[Attribute::Label(cfg.key_label.as_bytes().to_vec())])
        .map_err(|e| token_error(cfg, "looking for the label", &e))?;
    if !taken.is_empty() {
        return Err(key_err(format!(
            "token {:?} already holds objects labelled {:?}; choose another key_label (a token key is never overwritten)",
            cfg.token_label, cfg.key_label
        )));
    }
    let mut id = [0u8; 16];
    aws_lc_rs::rand::fill(&mut id).map_err(CaError::Random)?;
    let label = Attribute::Label(cfg.key_label.as_bytes().to_vec());
    let common_public = vec![
        Attribute::Token(true),
        Attribute::Private(false),
        Attribute::Verify(true),
        label.clone(),
        Attribute::Id(id.to_vec()),
    ];
    let private = vec![
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
        Attribute::Decrypt(false),
        Attribute::Derive(false),
        label,
        Attribute::Id(id.to_vec()),
    ];
    let (mechanism, public) = match algorithm {
        TokenKeyAlgorithm::P256 | TokenKeyAlgorithm::P384 => {
            let curve = if algorithm == TokenKeyAlgorithm::P256 {
                rfc5912::SECP_256_R_1
            } else {
                rfc5912::SECP_384_R_1
            };
            let mut p = common_public;
            p.push(Attribute::EcParams(ec_params(curve)?));
            (Mechanism::EccKeyPairGen, p)
        }
        TokenKeyAlgorithm::Rsa2048 | TokenKeyAlgorithm::Rsa3072 | TokenKeyAlgorithm::Rsa4096 => {
            let bits: u64 = match algorithm {
                TokenKeyAlgorithm::Rsa2048 => 2048,
                TokenKeyAlgorithm::Rsa3072 => 3072,
                _ => 4096,
            };
            let mut p = common_public;
            p.push(Attribute::ModulusBits(bits.into()));
            p.push(Attribute::PublicExponent(vec![1, 0, 1]));
            (Mechanism::RsaPkcsKeyPairGen, p)
        }
    };
    let (_, key) = session
        .generate_key_pair(&mechanism, &public, &private)
        .map_err(|e| token_error(cfg, "generating the key pair", &e))?;
    let (_, _, spki) = describe_key(&session, cfg, key)?;
    Ok(spki)
}

/// The protection attributes of the configured private key, as the token
/// reports them: (name, value) for CKA_TOKEN, CKA_SENSITIVE,
/// CKA_EXTRACTABLE, CKA_ALWAYS_SENSITIVE, CKA_NEVER_EXTRACTABLE.
pub fn key_attributes(
    cfg: &Pkcs11KeyConfig,
    pin: &Pin,
) -> Result<Vec<(&'static str, bool)>, CaError> {
    let module = Module::open(&cfg.module).map_err(|e| token_error(cfg, "loading", &e))?;
    let session = login(&module, cfg, pin, false)?;
    let key = private_key(&session, cfg)?;
    let wanted = [
        ("CKA_TOKEN", AttributeType::Token),
        ("CKA_SENSITIVE", AttributeType::Sensitive),
        ("CKA_EXTRACTABLE", AttributeType::Extractable),
        ("CKA_ALWAYS_SENSITIVE", AttributeType::AlwaysSensitive),
        ("CKA_NEVER_EXTRACTABLE", AttributeType::NeverExtractable),
    ];
    let types: Vec<AttributeType> = wanted.iter().map(|(_, t)| *t).collect();
    let attrs = session
        .get_attributes(key, &types)
        .map_err(|e| token_error(cfg, "reading the key's attributes", &e))?;
    Ok(wanted
        .iter()
        .filter_map(|(name, t)| bool_attr(&attrs, *t).map(|v| (*name, v)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_ecdsa_signatures_become_der_with_minimal_integers() {
        // r with its high bit set gets a leading zero; s with leading zeros loses them.
        let mut raw = vec![0x80; 32];
        raw.extend(std::iter::repeat_n(0, 31));
        raw.push(0x05);
        let der = ecdsa_der(&raw, 32).expect("der");
        assert_eq!(&der[..4], &[0x30, 38, 0x02, 33]);
        assert_eq!(der[4], 0);
        assert_eq!(&der[37..], &[0x02, 1, 5]);
        assert!(ecdsa_der(&raw[..63], 32).is_err());
    }

    #[test]
    fn the_pin_prints_nothing() {
        let pin = Pin(Zeroizing::new("4711-secret".into()));
        assert_eq!(format!("{pin:?}"), "Pin(..)");
    }
}
