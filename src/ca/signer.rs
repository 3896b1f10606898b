//! The seam between the CA and its private keys: everything the CA signs
//! (certificates, CRLs, OCSP answers) goes through [`Signer`].
//!
//! Shaped like rustls's `SigningKey`/`Signer`, simplified: a CA key signs
//! with one algorithm, the one its certificate announces, so there is no
//! scheme to choose. Today's keys are PKCS#8 files signed with aws-lc
//! ([`SoftwareSigner`]); a key in an HSM is another implementation of the
//! same trait, loaded by [`super::provider::IssuingKey`], and [`super::Ca`]
//! does not change.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair};
use const_oid::db::rfc5912;
use der::asn1::Null;
use der::{Any, Decode};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};

/// What one signature costs, which decides where it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignCost {
    /// Tens of microseconds (ECDSA in memory): less than a hop to another
    /// thread, so it runs in place on the async worker.
    Cheap,
    /// A millisecond or more (RSA, or a round trip to a token): it runs on
    /// the blocking pool so that it does not stall other connections.
    Expensive,
}

/// Why a signature could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// aws-lc refused; it says no more than that.
    #[error("signing failed")]
    Software(#[source] aws_lc_rs::error::Unspecified),
    /// Another implementation's failure (a token that is gone, a session
    /// that expired), with its own error kept as the source.
    #[error("signing failed: {0}")]
    Other(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The key cannot be reached for now (a token that is gone or failing):
    /// a transient failure that passes once the key is back, answered with
    /// 503 and Retry-After.
    #[error("the CA key is unavailable: {0}")]
    KeyUnavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// A key that can sign for the CA. Used as `Arc<dyn Signer>`.
pub trait Signer: std::fmt::Debug + Send + Sync {
    /// The AlgorithmIdentifier written as signatureAlgorithm (and as the
    /// TBS `signature` field) of everything this key signs.
    fn algorithm(&self) -> &AlgorithmIdentifierOwned;

    /// The key's SubjectPublicKeyInfo, to match it against its certificate.
    fn public_key(&self) -> &SubjectPublicKeyInfoOwned;

    /// Signs `message` (the DER of a TBS structure) with [`Signer::algorithm`].
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError>;

    /// What a signature costs (see [`SignCost`]).
    fn cost(&self) -> SignCost;
}

/// A key that is not one the CA can sign with.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Not a PKCS#8 key of a supported type.
    #[error("the key is not a PKCS#8 P-256, P-384 or RSA key")]
    Unsupported,
    /// aws-lc could not encode the public key.
    #[error("the public key cannot be encoded")]
    PublicKey(#[source] aws_lc_rs::error::Unspecified),
    /// The encoded public key did not parse as a SubjectPublicKeyInfo.
    #[error("the public key is not a SubjectPublicKeyInfo: {0}")]
    Spki(#[source] der::Error),
}

/// A PKCS#8 key held in memory and signed with aws-lc.
pub struct SoftwareSigner {
    key: SoftwareKey,
    rng: SystemRandom,
    algorithm: AlgorithmIdentifierOwned,
    spki: SubjectPublicKeyInfoOwned,
}

enum SoftwareKey {
    Ecdsa(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

impl std::fmt::Debug for SoftwareSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("SoftwareSigner")
            .field("algorithm", &self.algorithm.oid)
            .finish_non_exhaustive()
    }
}

fn spki_of(
    key: &impl AsDer<aws_lc_rs::encoding::PublicKeyX509Der<'static>>,
) -> Result<SubjectPublicKeyInfoOwned, KeyError> {
    let der = key.as_der().map_err(KeyError::PublicKey)?;
    SubjectPublicKeyInfoOwned::from_der(der.as_ref()).map_err(KeyError::Spki)
}

impl SoftwareSigner {
    /// Loads a PKCS#8 key: ECDSA P-256, ECDSA P-384 or RSA (signed with
    /// ecdsa-with-SHA256, ecdsa-with-SHA384 and sha256WithRSAEncryption).
    pub fn from_pkcs8(der: &[u8]) -> Result<SoftwareSigner, KeyError> {
        let ecdsa = |oid| AlgorithmIdentifierOwned {
            oid,
            parameters: None,
        };
        let (key, algorithm) = if let Ok(k) =
            EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, der)
        {
            (SoftwareKey::Ecdsa(k), ecdsa(rfc5912::ECDSA_WITH_SHA_256))
        } else if let Ok(k) =
            EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P384_SHA384_ASN1_SIGNING, der)
        {
            (SoftwareKey::Ecdsa(k), ecdsa(rfc5912::ECDSA_WITH_SHA_384))
        } else if let Ok(k) = RsaKeyPair::from_pkcs8(der) {
            // RFC 4055: the parameters of sha256WithRSAEncryption are NULL, not absent.
            let algorithm = AlgorithmIdentifierOwned {
                oid: rfc5912::SHA_256_WITH_RSA_ENCRYPTION,
                parameters: Some(Any::from(Null)),
            };
            (SoftwareKey::Rsa(k), algorithm)
        } else {
            return Err(KeyError::Unsupported);
        };
        let spki = match &key {
            SoftwareKey::Ecdsa(k) => spki_of(k.public_key())?,
            SoftwareKey::Rsa(k) => spki_of(k.public_key())?,
        };
        Ok(SoftwareSigner {
            key,
            rng: SystemRandom::new(),
            algorithm,
            spki,
        })
    }
}

impl Signer for SoftwareSigner {
    fn algorithm(&self) -> &AlgorithmIdentifierOwned {
        &self.algorithm
    }

    fn public_key(&self) -> &SubjectPublicKeyInfoOwned {
        &self.spki
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        match &self.key {
            SoftwareKey::Ecdsa(k) => k
                .sign(&self.rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(SignError::Software),
            SoftwareKey::Rsa(k) => {
                let mut sig = vec![0u8; k.public_modulus_len()];
                k.sign(&signature::RSA_PKCS1_SHA256, &self.rng, message, &mut sig)
                    .map_err(SignError::Software)?;
                Ok(sig)
            }
        }
    }

    fn cost(&self) -> SignCost {
        match self.key {
            SoftwareKey::Ecdsa(_) => SignCost::Cheap,
            SoftwareKey::Rsa(_) => SignCost::Expensive,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::signature::{UnparsedPublicKey, VerificationAlgorithm};

    fn signs_and_verifies(
        alg: &'static rcgen::SignatureAlgorithm,
        verify: &'static dyn VerificationAlgorithm,
        cost: SignCost,
    ) {
        let kp = rcgen::KeyPair::generate_for(alg).expect("key");
        let signer = SoftwareSigner::from_pkcs8(&kp.serialize_der()).expect("signer");
        assert_eq!(signer.cost(), cost);
        // The SPKI is the key's own, as rcgen encodes it.
        let spki = SubjectPublicKeyInfoOwned::from_der(
            &rcgen::PublicKeyData::subject_public_key_info(&kp),
        )
        .expect("spki");
        assert_eq!(signer.public_key(), &spki);
        let message = b"tbsCertificate";
        let sig = signer.sign(message).expect("sign");
        let public =
            UnparsedPublicKey::new(verify, signer.public_key().subject_public_key.raw_bytes());
        public
            .verify(message, &sig)
            .expect("the signature verifies");
        assert!(
            public.verify(b"another message", &sig).is_err(),
            "and only for its message"
        );
    }

    #[test]
    fn p256_signs_and_the_signature_verifies() {
        signs_and_verifies(
            &rcgen::PKCS_ECDSA_P256_SHA256,
            &signature::ECDSA_P256_SHA256_ASN1,
            SignCost::Cheap,
        );
    }

    #[test]
    fn p384_signs_and_the_signature_verifies() {
        signs_and_verifies(
            &rcgen::PKCS_ECDSA_P384_SHA384,
            &signature::ECDSA_P384_SHA384_ASN1,
            SignCost::Cheap,
        );
    }

    #[test]
    fn rsa_signs_and_the_signature_verifies() {
        signs_and_verifies(
            &rcgen::PKCS_RSA_SHA256,
            &signature::RSA_PKCS1_2048_8192_SHA256,
            SignCost::Expensive,
        );
    }

    #[test]
    fn other_keys_are_refused() {
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("key");
        assert!(matches!(
            SoftwareSigner::from_pkcs8(&kp.serialize_der()),
            Err(KeyError::Unsupported)
        ));
        assert!(matches!(
            SoftwareSigner::from_pkcs8(b"not a key"),
            Err(KeyError::Unsupported)
        ));
    }
}
