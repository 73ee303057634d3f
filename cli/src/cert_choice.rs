//! Which certificate a command seals or checks with: the one precedence rule.
//!
//! `--cert` (or `SEALBOX_CERT`) wins; else the `.sealbox.yaml` rule governing the file, for the
//! commands that follow rules (`seal`, `set`, `check`, `reencrypt`); else the controller of the
//! kubeconfig's cluster. `merge` and `verify` do not follow `.sealbox.yaml`: they use the
//! certificate they are given, else the cluster's, as they always have (docs/USAGE.md says so).
//! `check` only falls back to the cluster when `--fetch-cert` asks for it.

use std::path::Path;

use crate::cert::CertSource;
use crate::cluster::ClusterOptions;
use crate::config::Configs;
use crate::error::{Error, Result};

/// The certificate flags of one command, and the cluster it would fall back to.
#[derive(Clone, Copy, Debug)]
pub struct CertChoice<'a> {
    flag: Option<&'a CertSource>,
    cluster: &'a ClusterOptions,
}

impl<'a> CertChoice<'a> {
    /// `flag` is `--cert` (or `SEALBOX_CERT`), `cluster` the command's cluster flags.
    pub fn new(flag: Option<&'a CertSource>, cluster: &'a ClusterOptions) -> Self {
        CertChoice { flag, cluster }
    }

    /// The certificate for `path`: the flag, else its `.sealbox.yaml` rule, else the cluster.
    pub fn for_path(&self, configs: &mut Configs, path: &Path) -> Result<CertSource> {
        match self.named(Some((configs, path)))? {
            Some(source) => Ok(source),
            None => self.cluster_cert(),
        }
    }

    /// The flag, else the cluster: for `merge`, `verify`, and a `seal` with no path to match.
    pub fn ignoring_rules(&self) -> Result<CertSource> {
        match self.named(None)? {
            Some(source) => Ok(source),
            None => self.cluster_cert(),
        }
    }

    /// `check`'s certificate for `path`: the flag, else its rule, else the cluster only when
    /// `fetch` (`--fetch-cert`) asks; `None` checks SealedSecrets for structure only.
    pub fn optional_for_path(
        &self,
        configs: &mut Configs,
        path: &Path,
        fetch: bool,
    ) -> Result<Option<CertSource>> {
        Ok(self
            .named(Some((configs, path)))?
            .or_else(|| fetch.then(|| CertSource::Cluster(self.cluster.clone()))))
    }

    /// The flag, else the rule for the path (when rules are followed). The rules are read only
    /// when no flag is given.
    fn named(&self, rules: Option<(&mut Configs, &Path)>) -> Result<Option<CertSource>> {
        if let Some(flag) = self.flag {
            return Ok(Some(flag.clone()));
        }
        let Some((configs, path)) = rules else {
            return Ok(None);
        };
        Ok(configs
            .for_path(path)?
            .and_then(|config| config.cert_for(path, self.cluster)))
    }

    /// The controller in the cluster, when a kubeconfig (or a pod's service account) says where
    /// one is.
    fn cluster_cert(&self) -> Result<CertSource> {
        if self.cluster.is_configured() {
            Ok(CertSource::Cluster(self.cluster.clone()))
        } else {
            Err(Error::NoCertificate)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cluster named by an explicit kubeconfig: configured, whatever the environment holds.
    fn cluster() -> ClusterOptions {
        ClusterOptions {
            kubeconfig: Some("/nonexistent/sealbox-test-kubeconfig".into()),
            ..ClusterOptions::new()
        }
    }

    fn repo_with_rule() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(".sealbox.yaml"),
            "rules:\n  - path: \"prod/**\"\n    cert: rule.pem\n",
        )
        .unwrap();
        dir
    }

    #[test]
    fn flag_then_rule_then_cluster() {
        let repo = repo_with_rule();
        let governed = repo.path().join("prod/s.yaml");
        let elsewhere = repo.path().join("dev/s.yaml");
        let cluster = cluster();
        let flag = CertSource::File("flag.pem".into());
        let mut configs = Configs::default();

        let with_flag = CertChoice::new(Some(&flag), &cluster);
        assert_eq!(with_flag.for_path(&mut configs, &governed).unwrap(), flag);
        let without = CertChoice::new(None, &cluster);
        assert_eq!(
            without.for_path(&mut configs, &governed).unwrap(),
            CertSource::File(repo.path().join("rule.pem"))
        );
        assert_eq!(
            without.for_path(&mut configs, &elsewhere).unwrap(),
            CertSource::Cluster(cluster.clone())
        );
    }

    #[test]
    fn merge_and_verify_ignore_rules() {
        let cluster = cluster();
        let flag = CertSource::File("flag.pem".into());
        assert_eq!(
            CertChoice::new(Some(&flag), &cluster)
                .ignoring_rules()
                .unwrap(),
            flag
        );
        assert_eq!(
            CertChoice::new(None, &cluster).ignoring_rules().unwrap(),
            CertSource::Cluster(cluster.clone())
        );
    }

    #[test]
    fn check_falls_back_to_the_cluster_only_when_asked() {
        let repo = repo_with_rule();
        let elsewhere = repo.path().join("dev/s.yaml");
        let cluster = cluster();
        let mut configs = Configs::default();
        let choice = CertChoice::new(None, &cluster);
        assert_eq!(
            choice
                .optional_for_path(&mut configs, &elsewhere, false)
                .unwrap(),
            None
        );
        assert_eq!(
            choice
                .optional_for_path(&mut configs, &elsewhere, true)
                .unwrap(),
            Some(CertSource::Cluster(cluster.clone()))
        );
    }
}
