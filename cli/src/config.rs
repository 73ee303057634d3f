//! `.sealbox.yaml`: per-repository rules, in the spirit of sops' `.sops.yaml` creation rules.
//!
//! ```yaml
//! # .sealbox.yaml, at the repository root. Paths are globs relative to this file's directory;
//! # the first rule whose path matches a file decides.
//! rules:
//!   - path: "clusters/prod/**"
//!     cert: certs/prod.pem          # a PEM file (relative to this file) or an http(s) URL
//!     scope: strict                 # default scope for `seal` (a Secret's own annotation wins)
//!   - path: "clusters/staging/**"
//!     context: staging              # fetch the certificate from this kubeconfig context
//!     controllerNamespace: kube-system
//!     controllerName: sealed-secrets-controller
//!   - path: "clusters/shared/**"     # multi-recipient: every cluster and key below opens each
//!     cert: certs/eu.pem              # value (age format, Sealbox controllers only)
//!     certs: [certs/us.pem]           # more clusters: files or URLs
//!     contexts: [dr]                  # more clusters: kubeconfig contexts
//!     recipients: [age1...]           # age keys, e.g. the security team's break-glass key
//!     recipientsFiles: [keys/security-team.txt]
//! ignore:                           # never looked at by `check` and `reencrypt`
//!   - "charts/**"
//! ```
//!
//! It is found by walking up from the file being processed (or the current directory). Flags
//! (`--cert`, `SEALBOX_CERT`, `--scope`) win over it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use glob::Pattern;
use serde::Deserialize;

use crate::bounded;
use crate::cert::CertSource;
use crate::cli::ScopeArg;
use crate::cluster::ClusterOptions;
use crate::error::{Error, Result};
use crate::walk::{GLOB_OPTIONS, Ignore, absolute};

/// The file names looked for, in order.
pub const CONFIG_FILES: &[&str] = &[".sealbox.yaml", ".sealbox.yml"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default, alias = "creation_rules")]
    rules: Vec<RawRule>,
    #[serde(default)]
    ignore: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawRule {
    path: String,
    #[serde(default)]
    cert: Option<String>,
    #[serde(default)]
    context: Option<String>,
    #[serde(default)]
    controller_namespace: Option<String>,
    #[serde(default)]
    controller_name: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    certs: Vec<String>,
    #[serde(default)]
    contexts: Vec<String>,
    #[serde(default)]
    recipients: Vec<String>,
    #[serde(default)]
    recipients_files: Vec<String>,
}

/// One rule: files matching `path` use this certificate source and default scope.
#[derive(Clone, Debug)]
pub struct Rule {
    /// The glob as written.
    pub path: String,
    pattern: Pattern,
    cert: Option<String>,
    context: Option<String>,
    controller_namespace: Option<String>,
    controller_name: Option<String>,
    /// The default scope for `seal`.
    pub scope: Option<ScopeArg>,
    certs: Vec<String>,
    contexts: Vec<String>,
    recipients: Vec<String>,
    recipients_files: Vec<String>,
}

/// A parsed `.sealbox.yaml`.
#[derive(Clone, Debug)]
pub struct RepoConfig {
    /// The file.
    pub file: PathBuf,
    /// Its directory: the base of its paths.
    pub dir: PathBuf,
    /// The rules, first match wins.
    pub rules: Vec<Rule>,
    /// Globs of paths to skip.
    pub ignore: Vec<String>,
}

impl RepoConfig {
    /// Parses a config file's text.
    pub fn parse(file: &Path, text: &str) -> Result<RepoConfig> {
        let invalid = |reason: String| Error::ParseConfig {
            path: file.to_owned(),
            reason,
        };
        let raw: RawConfig = if text.trim().is_empty() {
            RawConfig {
                rules: Vec::new(),
                ignore: Vec::new(),
            }
        } else {
            bounded::parse_yaml(text, bounded::REPO_CONFIG).map_err(invalid)?
        };
        let file = absolute(file);
        let dir = file.parent().map(Path::to_owned).unwrap_or_default();
        let mut rules = Vec::with_capacity(raw.rules.len());
        for (index, rule) in raw.rules.into_iter().enumerate() {
            let at = format!("rules[{index}]");
            let path = rule.path.trim_start_matches("./").to_owned();
            let pattern = Pattern::new(&path).map_err(|e| Error::InvalidPattern {
                origin: format!("{} {at}.path", file.display()),
                pattern: rule.path.clone(),
                reason: e.msg.to_owned(),
            })?;
            if rule.cert.is_some() && rule.context.is_some() {
                return Err(invalid(format!(
                    "{at}: give either cert or context, not both"
                )));
            }
            let scope = match rule.scope.as_deref() {
                None => None,
                Some("strict") => Some(ScopeArg::Strict),
                Some("namespace-wide") => Some(ScopeArg::NamespaceWide),
                Some("cluster-wide") => Some(ScopeArg::ClusterWide),
                Some(_) => {
                    return Err(invalid(format!(
                        "{at}.scope: expected strict, namespace-wide or cluster-wide"
                    )));
                }
            };
            rules.push(Rule {
                path: rule.path,
                pattern,
                cert: rule.cert,
                context: rule.context,
                controller_namespace: rule.controller_namespace,
                controller_name: rule.controller_name,
                scope,
                certs: rule.certs,
                contexts: rule.contexts,
                recipients: rule.recipients,
                recipients_files: rule.recipients_files,
            });
        }
        Ok(RepoConfig {
            file,
            dir,
            rules,
            ignore: raw.ignore,
        })
    }

    /// Reads the config in `dir`, if there is one.
    fn read_in(dir: &Path) -> Result<Option<RepoConfig>> {
        for name in CONFIG_FILES {
            let file = dir.join(name);
            match bounded::read_bounded(&file, bounded::REPO_CONFIG) {
                Ok(bytes) => {
                    let text = std::str::from_utf8(&bytes).map_err(|e| Error::ParseConfig {
                        path: file.clone(),
                        reason: format!(
                            "not UTF-8 text (invalid byte at offset {})",
                            e.valid_up_to()
                        ),
                    })?;
                    return RepoConfig::parse(&file, text).map(Some);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(Error::ReadConfig { path: file, source }),
            }
        }
        Ok(None)
    }

    /// The first rule matching `file`.
    pub fn rule_for(&self, file: &Path) -> Option<&Rule> {
        let file = absolute(file);
        let relative = file.strip_prefix(&self.dir).ok()?;
        self.rules
            .iter()
            .find(|rule| rule.pattern.matches_path_with(relative, GLOB_OPTIONS))
    }

    /// Adds the `ignore` globs to `into`.
    pub fn add_ignores(&self, into: &mut Ignore) -> Result<()> {
        let origin = format!("{} ignore", self.file.display());
        for pattern in &self.ignore {
            into.add(pattern, &self.dir, &origin)?;
        }
        Ok(())
    }

    /// Where the certificate for `file` comes from, per its rule.
    pub fn cert_for(&self, file: &Path, cluster: &ClusterOptions) -> Option<CertSource> {
        let rule = self.rule_for(file)?;
        rule.cert_source(&self.dir, cluster)
    }
}

impl Rule {
    /// The rule's recipients beyond its certificate (files relative to `base`; contexts with
    /// `cluster`'s kubeconfig and the rule's controller).
    pub fn extra_recipients(
        &self,
        base: &Path,
        cluster: &ClusterOptions,
    ) -> crate::recipients::RecipientSpec {
        let mut spec = crate::recipients::RecipientSpec::default();
        for cert in &self.certs {
            spec.certs.push(match cert.parse::<CertSource>() {
                Ok(CertSource::File(path)) if path.is_relative() => {
                    CertSource::File(base.join(path))
                }
                Ok(other) => other,
                Err(never) => match never {},
            });
        }
        for context in &self.contexts {
            let mut options = cluster.clone();
            options.context = Some(context.clone());
            if let Some(namespace) = &self.controller_namespace {
                options.controller_namespace = namespace.clone();
            }
            if let Some(name) = &self.controller_name {
                options.controller_name = name.clone();
            }
            spec.certs.push(CertSource::Cluster(options));
        }
        spec.age.extend(self.recipients.iter().cloned());
        spec.age_files
            .extend(self.recipients_files.iter().map(|f| base.join(f)));
        spec
    }

    /// The rule's certificate source: a file relative to `base`, a URL, or the cluster of a
    /// context (with `cluster`'s kubeconfig and the rule's controller).
    pub fn cert_source(&self, base: &Path, cluster: &ClusterOptions) -> Option<CertSource> {
        if let Some(cert) = &self.cert {
            return Some(match cert.parse::<CertSource>() {
                Ok(CertSource::File(path)) if path.is_relative() => {
                    CertSource::File(base.join(path))
                }
                Ok(other) => other,
                Err(never) => match never {},
            });
        }
        if self.context.is_none()
            && self.controller_namespace.is_none()
            && self.controller_name.is_none()
        {
            return None;
        }
        let mut options = cluster.clone();
        if let Some(context) = &self.context {
            options.context = Some(context.clone());
        }
        if let Some(namespace) = &self.controller_namespace {
            options.controller_namespace = namespace.clone();
        }
        if let Some(name) = &self.controller_name {
            options.controller_name = name.clone();
        }
        Some(CertSource::Cluster(options))
    }
}

/// Finds and caches the `.sealbox.yaml` governing each directory.
#[derive(Debug, Default)]
pub struct Configs {
    by_dir: HashMap<PathBuf, Option<Arc<RepoConfig>>>,
}

impl Configs {
    /// The config for `path` (a file: from its directory up; a directory: from itself up).
    pub fn for_path(&mut self, path: &Path) -> Result<Option<Arc<RepoConfig>>> {
        let path = absolute(path);
        let start = if path.is_dir() {
            path
        } else {
            path.parent().map(Path::to_owned).unwrap_or(path)
        };
        self.for_dir(&start)
    }

    fn for_dir(&mut self, dir: &Path) -> Result<Option<Arc<RepoConfig>>> {
        if let Some(found) = self.by_dir.get(dir) {
            return Ok(found.clone());
        }
        let found = match RepoConfig::read_in(dir)? {
            Some(config) => Some(Arc::new(config)),
            None => match dir.parent() {
                Some(parent) => self.for_dir(parent)?,
                None => None,
            },
        };
        self.by_dir.insert(dir.to_owned(), found.clone());
        Ok(found)
    }
}

/// The files `check` and `reencrypt` look at: the walk of `walk.paths`, skipping `--ignore`
/// globs and the `ignore` lists of the `.sealbox.yaml` files governing the current directory
/// and the paths.
pub fn select_files(
    walk: &crate::cli::WalkArgs,
    configs: &mut Configs,
) -> Result<crate::walk::Selection> {
    let cwd = std::env::current_dir().unwrap_or_default();
    let mut ignore = Ignore::default();
    for pattern in &walk.ignore {
        ignore.add(pattern, &cwd, "--ignore")?;
    }
    let mut seen = Vec::new();
    for path in std::iter::once(&cwd).chain(&walk.paths) {
        if let Some(config) = configs.for_path(path)?
            && !seen.contains(&config.file)
        {
            config.add_ignores(&mut ignore)?;
            seen.push(config.file.clone());
        }
    }
    crate::walk::select(&walk.paths, &ignore)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
rules:
  - path: "clusters/prod/**"
    cert: certs/prod.pem
    scope: namespace-wide
  - path: "clusters/*/db.yaml"
    context: staging
ignore: ["charts/**"]
"#;

    #[test]
    fn first_matching_rule_decides() {
        let config = RepoConfig::parse(Path::new("/repo/.sealbox.yaml"), CONFIG).unwrap();
        let cluster = ClusterOptions::new();
        assert_eq!(
            config.cert_for(Path::new("/repo/clusters/prod/a/db.yaml"), &cluster),
            Some(CertSource::File("/repo/certs/prod.pem".into()))
        );
        let rule = config
            .rule_for(Path::new("/repo/clusters/prod/db.yaml"))
            .unwrap();
        assert_eq!(rule.scope, Some(ScopeArg::NamespaceWide));
        match config.cert_for(Path::new("/repo/clusters/dev/db.yaml"), &cluster) {
            Some(CertSource::Cluster(options)) => {
                assert_eq!(options.context.as_deref(), Some("staging"));
            }
            other => panic!("{other:?}"),
        }
        // `*` does not cross directories.
        assert!(
            config
                .rule_for(Path::new("/repo/clusters/dev/x/db.yaml"))
                .is_none()
        );
        assert!(config.rule_for(Path::new("/elsewhere/db.yaml")).is_none());
    }

    #[test]
    fn flow_nesting_is_bounded_before_parsing() {
        let yaml = format!("rules: {}{}\n", "[".repeat(50_000), "]".repeat(50_000));
        let err = RepoConfig::parse(Path::new("/r/.sealbox.yaml"), &yaml).unwrap_err();
        assert!(
            err.to_string().contains("nested deeper than 64 levels"),
            "{err}"
        );
    }

    #[test]
    fn mistakes_are_named() {
        let err = RepoConfig::parse(
            Path::new("/r/.sealbox.yaml"),
            "rules:\n- path: x\n  cer: y\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown field `cer`"), "{err}");
        let err = RepoConfig::parse(
            Path::new("/r/.sealbox.yaml"),
            "rules:\n- path: x\n  scope: wide\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("rules[0].scope"), "{err}");
    }
}
