//! The CA's private key, loaded once, and the signature algorithm it implies.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair};
use const_oid::db::rfc5912;
use der::asn1::Null;
use der::Any;
use spki::AlgorithmIdentifierOwned;

use super::CaError;

/// A CA signing key.
pub struct Signer {
    key: SignerKey,
    rng: SystemRandom,
    algorithm: AlgorithmIdentifierOwned,
}

enum SignerKey {
    Ecdsa(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("Signer")
            .field("algorithm", &self.algorithm.oid)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// Loads a PKCS#8 key: ECDSA P-256, ECDSA P-384 or RSA.
    pub fn from_pkcs8(der: &[u8]) -> Result<Signer, CaError> {
        let rng = SystemRandom::new();
        if let Ok(k) = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, der) {
            return Ok(Signer {
                key: SignerKey::Ecdsa(k),
                rng,
                algorithm: AlgorithmIdentifierOwned {
                    oid: rfc5912::ECDSA_WITH_SHA_256,
                    parameters: None,
                },
            });
        }
        if let Ok(k) = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P384_SHA384_ASN1_SIGNING, der) {
            return Ok(Signer {
                key: SignerKey::Ecdsa(k),
                rng,
                algorithm: AlgorithmIdentifierOwned {
                    oid: rfc5912::ECDSA_WITH_SHA_384,
                    parameters: None,
                },
            });
        }
        if let Ok(k) = RsaKeyPair::from_pkcs8(der) {
            return Ok(Signer {
                key: SignerKey::Rsa(k),
                rng,
                algorithm: AlgorithmIdentifierOwned {
                    oid: rfc5912::SHA_256_WITH_RSA_ENCRYPTION,
                    parameters: Some(Any::from(Null)),
                },
            });
        }
        Err(CaError::Key(
            "CA key is not a PKCS#8 P-256, P-384 or RSA key".into(),
        ))
    }

    /// Whether a signature costs tens of microseconds (ECDSA) rather than a
    /// millisecond or more (RSA): cheap work runs in place, without a thread hop.
    pub fn is_cheap(&self) -> bool {
        matches!(self.key, SignerKey::Ecdsa(_))
    }

    /// The signature AlgorithmIdentifier of everything this key signs.
    pub fn algorithm(&self) -> &AlgorithmIdentifierOwned {
        &self.algorithm
    }

    /// The raw public key (the subjectPublicKey bits).
    pub fn public_key(&self) -> &[u8] {
        match &self.key {
            SignerKey::Ecdsa(k) => k.public_key().as_ref(),
            SignerKey::Rsa(k) => k.public_key().as_ref(),
        }
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, CaError> {
        match &self.key {
            SignerKey::Ecdsa(k) => k
                .sign(&self.rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| CaError::Sign),
            SignerKey::Rsa(k) => {
                let mut sig = vec![0u8; k.public_modulus_len()];
                k.sign(&signature::RSA_PKCS1_SHA256, &self.rng, message, &mut sig)
                    .map_err(|_| CaError::Sign)?;
                Ok(sig)
            }
        }
    }
}
