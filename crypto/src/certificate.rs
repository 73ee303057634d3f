//! Sealing certificates: parsed with x509-parser, created with rcgen and signed by aws-lc-rs.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::digest;
use aws_lc_rs::rand::{SecureRandom as _, SystemRandom};
use aws_lc_rs::signature::KeyPair as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyIdMethod,
    KeyUsagePurpose, PublicKeyData, SerialNumber, SignatureAlgorithm, SigningKey,
};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer as _, X509Certificate};

use crate::error::{Error, Result};
use crate::pem;
use crate::private_key::PrivateKey;
use crate::public_key::PublicKey;

/// How long a generated certificate is valid: Bitnami's `--key-ttl` default, 10 × 365 days.
pub const CERTIFICATE_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 60 * 60);

/// An X.509 certificate carrying a sealing key (`tls.crt`, `/v1/cert.pem`).
#[derive(Clone)]
pub struct Certificate {
    der: Vec<u8>,
    public_key: PublicKey,
    not_before: SystemTime,
    not_after: SystemTime,
    common_name: Option<String>,
    serial: Vec<u8>,
}

impl Certificate {
    /// Parses the first `CERTIFICATE` block. Validity is not checked; see
    /// [`Certificate::check_valid_at`].
    pub fn from_pem(pem: &[u8]) -> Result<Certificate> {
        Certificate::from_pem_with_origin(pem, "certificate")
    }

    /// Like [`Certificate::from_pem`]; `origin` (e.g. a file name) prefixes error messages.
    pub fn from_pem_with_origin(pem: &[u8], origin: &str) -> Result<Certificate> {
        const EXPECTED: &str = "CERTIFICATE";
        let blocks = pem::parse(pem, origin)?;
        if let Some(block) = blocks.iter().find(|b| b.label == EXPECTED) {
            return Certificate::from_der_with_origin(&block.der, origin);
        }
        Err(match blocks.first() {
            Some(block) => Error::UnsupportedPemLabel {
                origin: origin.to_owned(),
                label: block.label.clone(),
                expected: EXPECTED,
            },
            None => Error::NoPemBlock {
                origin: origin.to_owned(),
                expected: EXPECTED,
            },
        })
    }

    /// Parses a DER certificate.
    pub fn from_der(der: &[u8]) -> Result<Certificate> {
        Certificate::from_der_with_origin(der, "certificate")
    }

    pub(crate) fn from_der_with_origin(der: &[u8], origin: &str) -> Result<Certificate> {
        let invalid = |reason: String| Error::ParseCertificate {
            origin: origin.to_owned(),
            reason,
        };
        let (rest, cert) = X509Certificate::from_der(der).map_err(|e| invalid(e.to_string()))?;
        if !rest.is_empty() {
            return Err(invalid("trailing data after the certificate".to_owned()));
        }
        let public_key = PublicKey::from_der(cert.public_key().raw, origin)?;
        let validity = cert.validity();
        let common_name = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_owned);
        Ok(Certificate {
            der: der.to_vec(),
            public_key,
            not_before: system_time(validity.not_before.timestamp()),
            not_after: system_time(validity.not_after.timestamp()),
            common_name,
            serial: cert.raw_serial().to_vec(),
        })
    }

    /// A self-signed certificate for `key`, shaped like Bitnami's: random 128-bit serial,
    /// subject and issuer CN = `common_name` (no CN at all when empty), NotBefore = `now`,
    /// NotAfter = `now` + [`CERTIFICATE_VALIDITY`], basic constraints CA:true, key usage
    /// encipherOnly, signed with SHA256-RSA by aws-lc-rs.
    pub fn self_signed(
        key: &PrivateKey,
        common_name: &str,
        now: SystemTime,
    ) -> Result<Certificate> {
        Certificate::self_signed_valid_for(key, common_name, now, CERTIFICATE_VALIDITY)
    }

    /// Like [`Certificate::self_signed`] with NotAfter = `now` + `validity` (Bitnami's
    /// `--key-ttl`), which must be at least a second and end before the year 10000.
    pub fn self_signed_valid_for(
        key: &PrivateKey,
        common_name: &str,
        now: SystemTime,
        validity: Duration,
    ) -> Result<Certificate> {
        let failed = |reason: &str| Error::CreateCertificate {
            reason: reason.to_owned(),
        };
        let (not_before, not_after) =
            validity_window(now, validity).ok_or_else(|| failed("the validity is out of range"))?;
        let signer = RsaSigner::new(key)?;

        let mut params = CertificateParams::default();
        params.not_before = not_before;
        params.not_after = not_after;

        let mut serial = [0u8; 16];
        SystemRandom::new()
            .fill(&mut serial)
            .map_err(|_| failed("no random serial number"))?;
        if serial == [0; 16] {
            // RFC 5280 wants a positive serial.
            serial[15] = 1;
        }
        params.serial_number = Some(SerialNumber::from_slice(&serial));

        let mut name = DistinguishedName::new();
        if !common_name.is_empty() {
            name.push(DnType::CommonName, common_name);
        }
        params.distinguished_name = name;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::EncipherOnly];
        // Go's crypto/x509 (and so Bitnami) uses RFC 5280 method 1: SHA-1 of the key bits.
        let key_id = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, signer.der_bytes());
        params.key_identifier_method = KeyIdMethod::PreSpecified(key_id.as_ref().to_vec());

        let cert = params
            .self_signed(&signer)
            .map_err(|e| failed(&e.to_string()))?;
        Certificate::from_der_with_origin(cert.der(), "generated certificate")
    }

    /// The certified public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.public_key
    }

    /// Start of validity.
    pub fn not_before(&self) -> SystemTime {
        self.not_before
    }

    /// End of validity.
    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }

    /// The subject's first common name, if any (Bitnami's default is none).
    pub fn common_name(&self) -> Option<&str> {
        self.common_name.as_deref()
    }

    /// The serial number as its DER big-endian bytes.
    pub fn serial(&self) -> &[u8] {
        &self.serial
    }

    /// Refuses a certificate whose NotAfter is before `now`, like kubeseal.
    ///
    /// NotBefore is not checked: a fresh certificate must work on a client whose clock lags.
    pub fn check_valid_at(&self, now: SystemTime) -> Result<()> {
        if now > self.not_after {
            return Err(Error::CertificateExpired {
                not_after: rfc3339(self.not_after),
            });
        }
        Ok(())
    }

    /// PEM `CERTIFICATE`.
    pub fn to_pem(&self) -> String {
        pem::encode("CERTIFICATE", &self.der).to_string()
    }

    /// The DER encoding.
    pub fn der(&self) -> &[u8] {
        &self.der
    }
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate")
            .field(
                "fingerprint",
                &format_args!("{}", self.public_key.fingerprint()),
            )
            .field("common_name", &self.common_name)
            .field("not_before", &format_args!("{}", rfc3339(self.not_before)))
            .field("not_after", &format_args!("{}", rfc3339(self.not_after)))
            .finish()
    }
}

/// rcgen's view of our key: public half from aws-lc-rs, signatures from aws-lc-rs.
struct RsaSigner {
    key_pair: aws_lc_rs::rsa::KeyPair,
}

impl RsaSigner {
    fn new(key: &PrivateKey) -> Result<RsaSigner> {
        let pkcs8 = key.pkcs8_der()?;
        let key_pair =
            aws_lc_rs::rsa::KeyPair::from_pkcs8(&pkcs8).map_err(|e| Error::ParsePrivateKey {
                origin: "signing key".to_owned(),
                reason: e.description_(),
            })?;
        Ok(RsaSigner { key_pair })
    }
}

impl PublicKeyData for RsaSigner {
    fn der_bytes(&self) -> &[u8] {
        // PKCS#1 RSAPublicKey, the bits of the SubjectPublicKeyInfo.
        self.key_pair.public_key().as_ref()
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &rcgen::PKCS_RSA_SHA256
    }
}

impl SigningKey for RsaSigner {
    fn sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, rcgen::Error> {
        let mut signature = vec![0; self.key_pair.public_modulus_len()];
        self.key_pair
            .sign(
                &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                msg,
                &mut signature,
            )
            .map_err(|_| rcgen::Error::RemoteKeyError)?;
        Ok(signature)
    }
}

fn system_time(unix_seconds: i64) -> SystemTime {
    let magnitude = Duration::from_secs(unix_seconds.unsigned_abs());
    if unix_seconds >= 0 {
        UNIX_EPOCH + magnitude
    } else {
        UNIX_EPOCH - magnitude
    }
}

/// NotBefore and NotAfter of a certificate made at `now` valid for `validity`; `None` for a
/// validity under a second or a window outside what X.509 times can say.
pub(crate) fn validity_window(
    now: SystemTime,
    validity: Duration,
) -> Option<(OffsetDateTime, OffsetDateTime)> {
    /// 9999-12-31T23:59:59Z, the last time GeneralizedTime can hold.
    const LAST_X509_TIME: i64 = 253_402_300_799;
    let seconds = i64::try_from(validity.as_secs()).ok().filter(|s| *s >= 1)?;
    let not_before = unix_seconds(now);
    let not_after = not_before
        .checked_add(seconds)
        .filter(|t| *t <= LAST_X509_TIME)?;
    Some((
        OffsetDateTime::from_unix_timestamp(not_before).ok()?,
        OffsetDateTime::from_unix_timestamp(not_after).ok()?,
    ))
}

fn unix_seconds(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ`, whole seconds, UTC.
pub(crate) fn rfc3339(time: SystemTime) -> String {
    match OffsetDateTime::from_unix_timestamp(unix_seconds(time)) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => format!("{} seconds after 1970-01-01T00:00:00Z", unix_seconds(time)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_utc_seconds() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_millis(1_577_836_800_999)),
            "2020-01-01T00:00:00Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH - Duration::from_secs(1)),
            "1969-12-31T23:59:59Z"
        );
    }

    #[test]
    fn unix_seconds_round_trip() {
        for s in [-86_400, -1, 0, 1, 1_700_000_000] {
            assert_eq!(unix_seconds(system_time(s)), s);
        }
    }

    #[test]
    fn the_validity_window_is_now_plus_the_ttl() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let (from, to) = validity_window(now, Duration::from_secs(3600)).expect("in range");
        assert_eq!(from.unix_timestamp(), 1_700_000_000);
        assert_eq!(to.unix_timestamp(), 1_700_003_600);
        let (_, ten_years) = validity_window(now, CERTIFICATE_VALIDITY).expect("in range");
        assert_eq!(
            ten_years.unix_timestamp() - from.unix_timestamp(),
            87_600 * 3600
        );
        assert_eq!(validity_window(now, Duration::ZERO), None);
        assert_eq!(validity_window(now, Duration::from_millis(999)), None);
        assert_eq!(validity_window(now, Duration::from_secs(u64::MAX)), None);
        assert_eq!(
            validity_window(now, Duration::from_secs(10_000 * 365 * 86_400)),
            None,
            "past the year 9999"
        );
    }
}
