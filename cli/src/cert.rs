//! Where the sealing certificate comes from, and loading it.
//!
//! [`CertSource`] is the one place a new origin is added. Besides files and URLs, the
//! certificate can come from the controller itself, through the API server's service proxy
//! (`CertSource::Cluster`), which is where `seal` turns when no `--cert` is given and a
//! kubeconfig is found, like `kubeseal` does. Which source a command uses is decided in
//! [`crate::cert_choice`].

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sealbox_crypto::{Certificate, PublicKey};

use crate::bounded;
use crate::cluster::{self, Cluster, ClusterOptions};
use crate::error::{Error, Result};

/// Certificates are small; anything bigger is not one (the limit for files, URLs and the
/// controller's answer alike).
const MAX_CERT_BYTES: u64 = bounded::CERTIFICATE.bytes;
/// A certificate download that takes longer than this is abandoned (the whole request, body
/// included: a server trickling bytes cannot hold `seal` forever).
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where to get the controller's certificate (or bare public key) from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CertSource {
    /// A PEM file on disk (also written `file:///path`).
    File(PathBuf),
    /// An `http://` or `https://` URL, e.g. the controller's `/v1/cert.pem` behind an ingress.
    Url(String),
    /// The controller's `/v1/cert.pem`, through the API server's service proxy. Never parsed
    /// from a flag: chosen by [`crate::cert_choice`].
    Cluster(ClusterOptions),
}

impl FromStr for CertSource {
    type Err = Infallible;

    fn from_str(s: &str) -> Result<Self, Infallible> {
        let lower = s.get(..8).unwrap_or(s).to_ascii_lowercase();
        Ok(
            if lower.starts_with("http://") || lower.starts_with("https://") {
                CertSource::Url(s.to_owned())
            } else if let Some(path) = s.strip_prefix("file://") {
                CertSource::File(PathBuf::from(path))
            } else {
                CertSource::File(PathBuf::from(s))
            },
        )
    }
}

impl fmt::Display for CertSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CertSource::File(path) => write!(f, "{}", path.display()),
            CertSource::Url(url) => f.write_str(url),
            CertSource::Cluster(options) => write!(f, "{options}"),
        }
    }
}

/// Whether an expired certificate is refused (sealing) or accepted (verifying old files).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// Refuse a certificate past its NotAfter.
    Refuse,
    /// Accept it; the caller may warn.
    Accept,
}

/// The public key to seal with, and what is known about its certificate.
#[derive(Clone, Debug)]
pub struct SealingKey {
    /// The RSA public key.
    pub public_key: PublicKey,
    /// The certificate's NotAfter, when a certificate (not a bare key) was given.
    pub not_after: Option<SystemTime>,
    /// Where it came from, for messages.
    pub source: String,
}

impl CertSource {
    /// The raw bytes of the certificate.
    pub fn fetch(&self) -> Result<Vec<u8>> {
        match self {
            CertSource::File(path) => bounded::read_bounded(path, bounded::CERTIFICATE)
                .map(|bytes| bytes.to_vec())
                .map_err(|source| Error::ReadCertificate {
                    cert: path.display().to_string(),
                    source,
                }),
            CertSource::Url(url) => fetch_url(url),
            CertSource::Cluster(options) => {
                fetch_from_cluster(options).map_err(|e| e.offline_hint("pass --cert FILE"))
            }
        }
    }

    /// Fetches and parses the certificate (or public key), refusing an expired certificate
    /// when `expiry` says so.
    pub fn load(&self, now: SystemTime, expiry: Expiry) -> Result<SealingKey> {
        let pem = self.fetch()?;
        parse_sealing_key(&pem, &self.to_string(), now, expiry)
    }
}

/// Certificates loaded once per source.
#[derive(Debug)]
pub struct KeyCache {
    expiry: Expiry,
    keys: HashMap<CertSource, PublicKey>,
}

impl KeyCache {
    /// An empty cache; `expiry` says whether expired certificates are refused (sealing) or
    /// accepted (checking: files sealed to them are still what the cluster has).
    pub fn new(expiry: Expiry) -> Self {
        KeyCache {
            expiry,
            keys: HashMap::new(),
        }
    }

    /// The public key of `source`, loaded on first use.
    pub fn get(&mut self, source: &CertSource) -> Result<PublicKey> {
        if let Some(key) = self.keys.get(source) {
            return Ok(key.clone());
        }
        let key = source.load(SystemTime::now(), self.expiry)?.public_key;
        self.keys.insert(source.clone(), key.clone());
        Ok(key)
    }

    /// Whether no certificate was loaded.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Parses a PEM certificate, or a PEM public key (`PUBLIC KEY`, `RSA PUBLIC KEY`).
pub fn parse_sealing_key(
    pem: &[u8],
    source: &str,
    now: SystemTime,
    expiry: Expiry,
) -> Result<SealingKey> {
    let parse_error = |source_err: sealbox_crypto::Error| Error::ParseCertificate {
        cert: source.to_owned(),
        source: Box::new(source_err),
    };
    let is_certificate = pem
        .windows(b"BEGIN CERTIFICATE".len())
        .any(|w| w == b"BEGIN CERTIFICATE");
    if is_certificate {
        let certificate = Certificate::from_pem_with_origin(pem, source).map_err(parse_error)?;
        if expiry == Expiry::Refuse {
            certificate
                .check_valid_at(now)
                .map_err(|e| Error::CertificateExpired {
                    cert: source.to_owned(),
                    source: Box::new(e),
                })?;
        }
        Ok(SealingKey {
            public_key: certificate.public_key().clone(),
            not_after: Some(certificate.not_after()),
            source: source.to_owned(),
        })
    } else {
        Ok(SealingKey {
            public_key: PublicKey::from_pem_with_origin(pem, source).map_err(parse_error)?,
            not_after: None,
            source: source.to_owned(),
        })
    }
}

/// GETs `/v1/cert.pem` from the controller through the service proxy.
pub fn fetch_from_cluster(options: &ClusterOptions) -> Result<Vec<u8>> {
    tracing::debug!(controller = %options, "fetching the certificate from the cluster");
    let pem = cluster::block_on(async {
        let cluster = Cluster::connect(options).await?;
        cluster
            .controller_request(
                http::Method::GET,
                "v1/cert.pem",
                Vec::new(),
                "text/plain",
                bounded::CERTIFICATE,
            )
            .await
    })??;
    Ok(pem.into_bytes())
}

fn fetch_url(url: &str) -> Result<Vec<u8>> {
    let fail = |reason: String| Error::FetchCertificate {
        url: url.to_owned(),
        reason,
    };
    let tls = ureq::tls::TlsConfig::builder()
        .root_certs(ureq::tls::RootCerts::PlatformVerifier)
        .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .build();
    let agent = ureq::config::Config::builder()
        .tls_config(tls)
        .timeout_global(Some(FETCH_TIMEOUT))
        .timeout_connect(Some(CONNECT_TIMEOUT))
        .user_agent(format!("sealbox/{}", env!("CARGO_PKG_VERSION")))
        .build()
        .new_agent();
    tracing::debug!(url, "fetching the certificate");
    let mut response = agent.get(url).call().map_err(|e| fail(e.to_string()))?;
    response
        .body_mut()
        .with_config()
        .limit(MAX_CERT_BYTES)
        .read_to_vec()
        .map_err(|e| match e {
            ureq::Error::BodyExceedsLimit(_) => fail(format!(
                "the answer is {}",
                bounded::TooLarge {
                    limit: bounded::CERTIFICATE
                }
            )),
            other => fail(other.to_string()),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse_from_flags() {
        assert_eq!(
            "cert.pem".parse::<CertSource>().unwrap(),
            CertSource::File("cert.pem".into())
        );
        assert_eq!(
            "file:///etc/cert.pem".parse::<CertSource>().unwrap(),
            CertSource::File("/etc/cert.pem".into())
        );
        assert_eq!(
            "HTTPS://x/v1/cert.pem".parse::<CertSource>().unwrap(),
            CertSource::Url("HTTPS://x/v1/cert.pem".into())
        );
    }

    #[test]
    fn unreachable_url_names_the_url() {
        let source: CertSource = "http://127.0.0.1:1/v1/cert.pem".parse().unwrap();
        let err = source.fetch().unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("http://127.0.0.1:1/v1/cert.pem"),
            "{message}"
        );
    }
}
