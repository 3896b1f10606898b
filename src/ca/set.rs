//! Every issuing CA estd holds, one per generation, and which of them
//! issues now.
//!
//! Generation 1 is the CA in the certificate folder itself. A rollover adds
//! generation 2 in `certs/ca-2/`, and so on. A new generation is published
//! (in `/cacerts`) from the start that loads it, so clients can learn its
//! chain early; it issues new certificates from its switch moment on. Every
//! generation keeps signing CRLs and OCSP answers for its own certificates,
//! so certificates of an older generation stay checkable and can re-enrol.

use std::sync::Arc;

use der::Decode;
use x509_cert::certificate::Certificate;

use super::{Ca, CaError, PublicUrls};
use crate::config::CaConfig;
use crate::model::UnixSeconds;

/// One generation: its CA, its number, and when it starts to issue.
pub struct Generation {
    /// The CA.
    pub ca: Arc<Ca>,
    /// 1 for the certificate folder's own CA, then 2, 3, ...
    pub number: u32,
    /// When it starts to issue; `None` for generation 1 (always from the
    /// start) and for a staged generation with no moment set (never).
    pub switch_at: Option<UnixSeconds>,
    /// When its root differs from the previous generation's: the root
    /// rollover certificates of RFC 7030 §4.1.3 (NewWithOld, OldWithNew).
    pub root_rollover: Vec<Vec<u8>>,
}

impl Generation {
    /// Whether it issues new certificates at `now`.
    fn issues_at(&self, now: UnixSeconds) -> bool {
        self.number == 1 || self.switch_at.is_some_and(|t| t <= now)
    }
}

/// The CA's generations, oldest first.
pub struct CaSet {
    generations: Vec<Generation>,
}

impl std::fmt::Debug for CaSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaSet")
            .field("generations", &self.generations.len())
            .finish_non_exhaustive()
    }
}

/// The URLs generation `number`'s certificates carry: generation 1 keeps the
/// configured ones (so certificates issued before rollovers existed stay
/// right); a later one gets its own CRL and caIssuers URL (see
/// [`generation_url`]). One OCSP responder URL serves every generation: it
/// picks the CA by the request's issuer hashes.
pub fn generation_urls(cfg: &CaConfig, number: u32) -> PublicUrls {
    PublicUrls {
        crl: generation_url(&cfg.crl_url, number, "crl"),
        ocsp: cfg.ocsp_url.clone(),
        ca_issuers: generation_url(&cfg.ca_issuers_url, number, "ca"),
    }
}

/// `url` for generation `number`: itself for the first, and for a later one
/// `-N` added to the last path segment, before its extension if it has one
/// (`.../issuing-ca.crl` becomes `.../issuing-ca-2.crl`, `.../crl` becomes
/// `.../crl-2`); a URL without a path gets `/<fallback>-N`.
pub fn generation_url(url: &str, number: u32, fallback: &str) -> String {
    if number <= 1 {
        return url.to_owned();
    }
    let base = url.trim_end_matches('/');
    // The path starts at the first '/' after the scheme's "://".
    let path_start = base
        .find("://")
        .map(|i| i + 3)
        .and_then(|host| base[host..].find('/').map(|p| host + p));
    let Some(path_start) = path_start else {
        return format!("{base}/{fallback}-{number}");
    };
    let last_segment = path_start + base[path_start..].rfind('/').unwrap_or(0) + 1;
    match base[last_segment..].rfind('.') {
        Some(dot) if dot > 0 => {
            let at = last_segment + dot;
            format!("{}-{number}{}", &base[..at], &base[at..])
        }
        _ => format!("{base}-{number}"),
    }
}

fn push_distinct<'a>(list: &mut Vec<&'a [u8]>, der: &'a [u8]) {
    if !list.contains(&der) {
        list.push(der);
    }
}

impl CaSet {
    /// A set of one CA, generation 1.
    pub fn single(ca: Ca) -> CaSet {
        CaSet {
            generations: vec![Generation {
                ca: Arc::new(ca),
                number: 1,
                switch_at: None,
                root_rollover: Vec::new(),
            }],
        }
    }

    /// The set of `generations`, which must start with generation 1 and
    /// have distinct numbers.
    pub fn new(mut generations: Vec<Generation>) -> Result<CaSet, CaError> {
        generations.sort_by_key(|g| g.number);
        if generations.first().map(|g| g.number) != Some(1)
            || generations.windows(2).any(|w| w[0].number == w[1].number)
        {
            return Err(CaError::Key(
                "the CA generations must start with generation 1 and be numbered once each".into(),
            ));
        }
        Ok(CaSet { generations })
    }

    /// Every generation, oldest first.
    pub fn generations(&self) -> &[Generation] {
        &self.generations
    }

    /// Generation `number`, if there is one.
    pub fn generation(&self, number: u32) -> Option<&Generation> {
        self.generations.iter().find(|g| g.number == number)
    }

    /// The generation that issues at `now`: the newest one whose switch
    /// moment has come.
    pub fn active_at(&self, now: UnixSeconds) -> &Generation {
        self.generations
            .iter()
            .rev()
            .find(|g| g.issues_at(now))
            .unwrap_or(&self.generations[0])
    }

    /// The CA that issues now.
    pub fn active(&self) -> &Arc<Ca> {
        &self.active_at(crate::model::now_unix()).ca
    }

    /// Whether there is only one generation (the common case: no lookups
    /// of which CA issued a certificate are needed).
    pub fn is_single(&self) -> bool {
        self.generations.len() == 1
    }

    /// The generation that issued `cert`, if it is one of ours.
    pub fn issuer_of(&self, cert: &Certificate) -> Option<&Generation> {
        self.generations.iter().find(|g| g.ca.is_issuer_of(cert))
    }

    /// The generation that issued the certificate `der`.
    pub fn issuer_of_der(&self, der: &[u8]) -> Option<&Generation> {
        if self.is_single() {
            return self.generations.first();
        }
        self.issuer_of(&Certificate::from_der(der).ok()?)
    }

    /// What `/cacerts` serves, each certificate once: every generation's
    /// issuing CA and chain, then the root rollover certificates.
    pub fn published(&self) -> Vec<&[u8]> {
        let mut list = Vec::new();
        for g in &self.generations {
            push_distinct(&mut list, g.ca.issuing_der());
            for der in g.ca.chain() {
                push_distinct(&mut list, der);
            }
        }
        for g in &self.generations {
            for der in &g.root_rollover {
                push_distinct(&mut list, der);
            }
        }
        list
    }

    /// Every generation's root, each once.
    pub fn roots(&self) -> Vec<&[u8]> {
        let mut list = Vec::new();
        for g in &self.generations {
            push_distinct(&mut list, g.ca.root_der());
        }
        list
    }

    /// Every issuing CA and intermediate below the roots, each once.
    pub fn below_roots(&self) -> Vec<&[u8]> {
        let mut list = Vec::new();
        for g in &self.generations {
            push_distinct(&mut list, g.ca.issuing_der());
            let chain = g.ca.chain();
            for der in &chain[..chain.len().saturating_sub(1)] {
                push_distinct(&mut list, der);
            }
        }
        list
    }

    /// Every issuing CA certificate, each once.
    pub fn issuing_certs(&self) -> Vec<&[u8]> {
        let mut list = Vec::new();
        for g in &self.generations {
            push_distinct(&mut list, g.ca.issuing_der());
        }
        list
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_generations_have_their_own_distribution_point() {
        let crl = |url: &str, n: u32| generation_url(url, n, "crl");
        assert_eq!(crl("http://h/crl", 1), "http://h/crl");
        assert_eq!(crl("http://h/crl", 2), "http://h/crl-2");
        assert_eq!(crl("http://h/crl/", 3), "http://h/crl-3");
        assert_eq!(
            crl("http://h:8080/crl/issuing-ca.crl", 2),
            "http://h:8080/crl/issuing-ca-2.crl"
        );
        assert_eq!(crl("http://h.example", 2), "http://h.example/crl-2");
        assert_eq!(crl("http://h.example/", 2), "http://h.example/crl-2");
        assert_eq!(
            crl("http://h.example/a.b/crl", 2),
            "http://h.example/a.b/crl-2"
        );
        assert_eq!(
            generation_url("http://h:8080/ca/issuing-ca.crt", 3, "ca"),
            "http://h:8080/ca/issuing-ca-3.crt"
        );
        assert_eq!(generation_url("http://h", 2, "ca"), "http://h/ca-2");
    }
}
