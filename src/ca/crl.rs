//! Signing a CRL (RFC 5280 §5) with the issuing CA: thisUpdate, nextUpdate,
//! CRL number, AKI, and each entry's revocation date and reason code.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use der::asn1::Uint;
use x509_cert::crl::{RevokedCert, TbsCertList};
use x509_cert::ext::pkix::CrlNumber;
use x509_cert::ext::Extension;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::Time;
use x509_cert::Version;

use super::{extension, Ca, CaError};
use crate::model::{RevocationReason, Serial, UnixSeconds};

fn time(secs: UnixSeconds) -> Result<Time, CaError> {
    Ok(Time::try_from(UNIX_EPOCH + Duration::from_secs(secs))?)
}

impl Ca {
    /// Signs a CRL listing `entries` (serial, revocation time, reason).
    pub fn sign_crl(
        &self,
        number: u64,
        this_update: SystemTime,
        next_update: SystemTime,
        entries: &[(Serial, UnixSeconds, RevocationReason)],
    ) -> Result<Vec<u8>, CaError> {
        let mut revoked = Vec::with_capacity(entries.len());
        for (serial, at, reason) in entries {
            let crl_entry_extensions = match reason.crl_reason() {
                Some(r) => Some(vec![extension(&r, false)?]),
                None => None,
            };
            revoked.push(RevokedCert {
                serial_number: SerialNumber::new(&serial.0)?,
                revocation_date: time(*at)?,
                crl_entry_extensions,
            });
        }
        let number_ext: Extension =
            extension(&CrlNumber(Uint::new(&number.to_be_bytes())?), false)?;
        let tbs = TbsCertList {
            version: Version::V2,
            signature: self.signer.algorithm().clone(),
            issuer: self.issuer.clone(),
            this_update: Time::try_from(this_update)?,
            next_update: Some(Time::try_from(next_update)?),
            revoked_certificates: if revoked.is_empty() {
                None
            } else {
                Some(revoked)
            },
            crl_extensions: Some(vec![self.aki.clone(), number_ext]),
        };
        self.sign_tbs(&tbs)
    }
}
