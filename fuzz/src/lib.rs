//! Fixtures shared by estd's fuzz targets: the demo organisation and profiles
//! as the seed creates them, a scratch folder per target, a body that
//! arrives in chunks, and a Tokio runtime.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use estd::config::{Config, DEFAULT_TOML};
use estd::model::{
    Contact, Identification, KeyAlgorithm, KeyPolicy, Organisation, Profile, SystemRight,
};
use http_body::{Body, Frame};

/// The embedded default configuration with `extra` layered over it, as
/// `estd --config` would merge a file. Panics only on a broken fixture.
pub fn config(extra: &str) -> Config {
    Config::from_toml_layers(&[DEFAULT_TOML, extra]).expect("fuzz fixture config")
}

/// The demo organisation, as `seed::ensure_demo` creates it, plus a P and an
/// SE number so that profile checks on them can succeed.
pub fn demo_org() -> Organisation {
    let demo = config("").demo;
    Organisation {
        cvr: demo.cvr,
        name: demo.organisation_name,
        allow_user_certs: true,
        allow_seal: false,
        p_numbers: vec!["1012345678".into()],
        se_numbers: vec!["87654311".into()],
    }
}

/// The demo profile ("Identification via API", EST, DNS names below
/// `.devices.demo.example`), as the seed creates it.
pub fn demo_profile() -> Profile {
    let demo = config("").demo;
    Profile {
        id: "00000000-0000-4000-8000-000000000001".into(),
        org_default: true,
        validity_days: 3 * 365,
        dns_names: vec![".devices.demo.example".into()],
        ..Profile::system(&demo.cvr, &demo.profile_name, &demo.est_label)
    }
}

/// A stricter variant for one-time-code orders: IP SANs allowed, an e-mail
/// address, an exact DNS name, RSA from 3072 bits, no Ed25519, and the rights
/// of the demo IdM profile.
pub fn strict_profile() -> Profile {
    Profile {
        id: "00000000-0000-4000-8000-000000000002".into(),
        name: "Demo IdM system".into(),
        est_label: "demo-idm".into(),
        org_default: false,
        rights: vec![SystemRight::EstEnroll, SystemRight::AdminApi],
        key_policy: KeyPolicy {
            allowed: vec![KeyAlgorithm::P256, KeyAlgorithm::P384, KeyAlgorithm::Rsa],
            min_rsa_bits: 3072,
        },
        identification: Identification::OneTimeCode,
        email: Some("idm@demo.example".into()),
        dns_names: vec!["idm.demo.example".into()],
        allow_ip_sans: true,
        contact: Some(Contact {
            name: "Jens Hansen".into(),
            email: "jens@demo.example".into(),
        }),
        p_number: Some("1012345678".into()),
        ..demo_profile()
    }
}

/// An empty folder for a target's CA and store, under the temp dir (the
/// smoke test points `TMPDIR` at its own temp dir, which it removes).
pub fn scratch_dir(target: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("estd-fuzz-{target}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("fuzz scratch dir");
    dir
}

/// A single-threaded Tokio runtime with timers, as `read_body` needs.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("tokio runtime")
}

/// A request body that yields the given chunks one data frame at a time,
/// optionally answering `Pending` once before each (as a slow client does).
pub struct ChunkBody {
    chunks: VecDeque<Bytes>,
    pending_first: bool,
    pending_now: bool,
}

impl ChunkBody {
    /// A body of `chunks`; with `pending`, each chunk is announced late.
    pub fn new(chunks: Vec<Bytes>, pending: bool) -> ChunkBody {
        ChunkBody {
            chunks: chunks.into(),
            pending_first: pending,
            pending_now: pending,
        }
    }
}

impl Body for ChunkBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.pending_now && !self.chunks.is_empty() {
            self.pending_now = false;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.pending_now = self.pending_first;
        Poll::Ready(self.chunks.pop_front().map(|c| Ok(Frame::data(c))))
    }
}
