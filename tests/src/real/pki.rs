//! The control plane's keys and certificates, made fresh for each start: one CA signing the API
//! server's serving certificate and two client certificates (the test's admin and the
//! controller manager), plus the ServiceAccount token signing key. All ECDSA P-256 (fast to
//! make, accepted by every component). Written as PEM into the plane's directory only; no key
//! appears in any error or log.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use super::Error;

/// The admin's group: bound to `cluster-admin` by the API server's bootstrap RBAC policy.
const ADMIN_GROUP: &str = "system:masters";
/// The admin's user name, as the audit and RBAC see it.
pub const ADMIN_USER: &str = "sealbox-test-admin";
/// The user the bootstrap RBAC policy grants the controller manager's own role to; with
/// `--use-service-account-credentials` each controller then acts as its own ServiceAccount.
const CONTROLLER_MANAGER_USER: &str = "system:kube-controller-manager";

/// A certificate and its key, as PEM.
pub(super) struct Pem {
    pub(super) cert: String,
    pub(super) key: String,
}

/// Paths of the files the processes read.
pub(super) struct PkiFiles {
    pub(super) ca_cert: PathBuf,
    pub(super) serving_cert: PathBuf,
    pub(super) serving_key: PathBuf,
    pub(super) service_account_key: PathBuf,
    pub(super) service_account_public_key: PathBuf,
    pub(super) controller_manager_cert: PathBuf,
    pub(super) controller_manager_key: PathBuf,
}

/// Everything [`generate`] makes: the files, and the CA and admin PEM for the kubeconfig.
pub(super) struct Pki {
    pub(super) files: PkiFiles,
    pub(super) ca_cert: String,
    pub(super) admin: Pem,
}

/// Makes the keys and certificates and writes them under `dir` (which must exist).
pub(super) fn generate(dir: &Path) -> Result<Pki, Error> {
    let ca_key = KeyPair::generate().map_err(|source| Error::Certificate {
        what: "CA key",
        source,
    })?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())
        .map_err(|source| Error::Certificate { what: "CA", source })?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "sealbox-test-ca");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params
        .self_signed(&ca_key)
        .map_err(|source| Error::Certificate { what: "CA", source })?
        .pem();
    let ca = Issuer::new(ca_params, ca_key);

    let serving = leaf(
        &ca,
        "serving certificate",
        &["localhost", "127.0.0.1"],
        "kube-apiserver",
        None,
        ExtendedKeyUsagePurpose::ServerAuth,
    )?;
    let admin = leaf(
        &ca,
        "admin client certificate",
        &[],
        ADMIN_USER,
        Some(ADMIN_GROUP),
        ExtendedKeyUsagePurpose::ClientAuth,
    )?;
    let controller_manager = leaf(
        &ca,
        "controller manager client certificate",
        &[],
        CONTROLLER_MANAGER_USER,
        None,
        ExtendedKeyUsagePurpose::ClientAuth,
    )?;
    let service_account = KeyPair::generate().map_err(|source| Error::Certificate {
        what: "ServiceAccount signing key",
        source,
    })?;

    let files = PkiFiles {
        ca_cert: write(dir, "ca.crt", &ca_cert)?,
        serving_cert: write(dir, "apiserver.crt", &serving.cert)?,
        serving_key: write(dir, "apiserver.key", &serving.key)?,
        service_account_key: write(dir, "service-account.key", &service_account.serialize_pem())?,
        // The API server reads verification keys only as public keys or PKCS#1/SEC 1 private
        // keys, not PKCS#8.
        service_account_public_key: write(
            dir,
            "service-account.pub",
            &service_account.public_key_pem(),
        )?,
        controller_manager_cert: write(dir, "controller-manager.crt", &controller_manager.cert)?,
        controller_manager_key: write(dir, "controller-manager.key", &controller_manager.key)?,
    };
    Ok(Pki {
        files,
        ca_cert,
        admin,
    })
}

/// A certificate signed by `ca` for `common_name` (and `organization`, Kubernetes' group).
fn leaf(
    ca: &Issuer<'_, KeyPair>,
    what: &'static str,
    subject_alt_names: &[&str],
    common_name: &str,
    organization: Option<&str>,
    usage: ExtendedKeyUsagePurpose,
) -> Result<Pem, Error> {
    let key = KeyPair::generate().map_err(|source| Error::Certificate { what, source })?;
    let names: Vec<String> = subject_alt_names.iter().map(|n| (*n).to_owned()).collect();
    let mut params =
        CertificateParams::new(names).map_err(|source| Error::Certificate { what, source })?;
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    if let Some(organization) = organization {
        params
            .distinguished_name
            .push(DnType::OrganizationName, organization);
    }
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    let cert = params
        .signed_by(&key, ca)
        .map_err(|source| Error::Certificate { what, source })?;
    Ok(Pem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

fn write(dir: &Path, name: &str, pem: &str) -> Result<PathBuf, Error> {
    let path = dir.join(name);
    std::fs::write(&path, pem).map_err(|source| Error::Write {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}
