//! `sealbox seal`: Secrets in, SealedSecrets out; and `seal --raw` for one value.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sealbox_crypto::OsRandom;
use sealbox_crypto::Scope;
use sealbox_crypto::scope::{CLUSTER_WIDE_ANNOTATION, NAMESPACE_WIDE_ANNOTATION};

use crate::cert::CertSource;
use crate::cert_choice::CertChoice;
use crate::cli::SealArgs;
use crate::config::Configs;
use crate::document::{read_documents, read_input};
use crate::error::{Error, Result};
use crate::kubeconfig;
use crate::origin::Origin;
use crate::output::{Visibility, emit, note, render};
use crate::recipients::RecipientSpec;
use crate::sealing::{Sealer, Target, load_key, seal_secret, seal_value};
use crate::secret::SecretInput;
use crate::secret_size;

/// The namespace when nothing else names one, like kubectl.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Runs `sealbox seal`.
pub fn run(
    args: &SealArgs,
    stdin: impl Read,
    stdout: impl Write,
    mut stderr: impl Write,
) -> Result<()> {
    let mut rules = RepoRules::for_seal(args)?;
    if args.raw {
        return run_raw(args, &mut rules, stdin, stdout, stderr);
    }
    let cert = rules.cert(args)?;
    let input = read_documents(args.input.file.as_deref(), stdin, "a Secret")?;
    if args.name.is_some() && input.documents.len() > 1 {
        return Err(Error::NameForManyDocuments {
            count: input.documents.len(),
        });
    }
    let secrets = input
        .documents
        .iter()
        .map(SecretInput::from_document)
        .collect::<Result<Vec<_>>>()?;
    if !args.allow_empty_data
        && let Some(empty) = secrets.iter().find(|s| s.data.is_empty())
    {
        return Err(Error::EmptyData {
            origin: empty.origin.clone(),
        });
    }
    for secret in &secrets {
        let size = secret.data.values().map(|v| v.len()).sum();
        check_size(
            size,
            || format!("{}: Secret {}", secret.origin, secret.display_name()),
            args.allow_oversize,
            &mut stderr,
        )?;
    }

    let mut namespaces = NamespaceDefaults::new(
        args.cluster.kubeconfig.clone(),
        args.cluster.context.clone(),
    );
    let targets = secrets
        .iter()
        .map(|secret| target_for(secret, args, rules.scope, &mut namespaces, &mut stderr))
        .collect::<Result<Vec<_>>>()?;

    let key = rules.sealer(args, load_key(&cert)?)?;
    let rng = OsRandom;
    let sealed = secrets
        .iter()
        .zip(&targets)
        .map(|(secret, target)| seal_secret(secret, target, &key, &rng))
        .collect::<Result<Vec<_>>>()?;
    let rendered = render(&sealed, args.output.format)?;
    emit(
        &rendered,
        args.output.write.as_deref(),
        Visibility::Public,
        stdout,
    )
}

/// Refuses `size` bytes of Secret data over Kubernetes' limit (the API server would refuse the
/// Secret, so the SealedSecret could never be unsealed), or warns with `--allow-oversize`.
fn check_size(
    size: usize,
    what: impl FnOnce() -> String,
    allow: bool,
    stderr: &mut impl Write,
) -> Result<()> {
    let Some(problem) = secret_size::over_limit(size) else {
        return Ok(());
    };
    if allow {
        note(
            stderr,
            format_args!("{}: {problem}; sealed anyway (--allow-oversize)", what()),
        );
        return Ok(());
    }
    Err(Error::SecretTooLarge {
        what: what(),
        problem,
    })
}

/// Decides name, namespace and scope of one Secret from the flags and the Secret itself.
fn target_for(
    secret: &SecretInput,
    args: &SealArgs,
    rule_scope: Option<Scope>,
    namespaces: &mut NamespaceDefaults,
    stderr: &mut impl Write,
) -> Result<Target> {
    let name = match (&args.name, &secret.name) {
        (Some(name), _) => name.clone(),
        (None, Some(name)) => name.clone(),
        (None, None) => {
            return Err(Error::InvalidDocument {
                origin: secret.origin.clone(),
                field: "metadata.name".to_owned(),
                problem: "missing; add a name to the Secret or pass --name".to_owned(),
            });
        }
    };
    let asks_for_scope = [CLUSTER_WIDE_ANNOTATION, NAMESPACE_WIDE_ANNOTATION]
        .iter()
        .any(|a| secret.annotations.get(*a).is_some_and(|v| v == "true"));
    let scope = match (args.scope, rule_scope) {
        (Some(scope), _) => scope.into(),
        (None, Some(rule)) if !asks_for_scope => rule,
        (None, _) => Scope::from_annotations(&secret.annotations),
    };
    let namespace = match (&args.namespace, &secret.namespace) {
        (Some(flag), Some(own)) if flag != own => {
            note(
                stderr,
                format_args!(
                    "{}: --namespace {flag} overrides the Secret's namespace {own}",
                    secret.origin
                ),
            );
            Some(flag.clone())
        }
        (Some(flag), _) => Some(flag.clone()),
        (None, Some(own)) => Some(own.clone()),
        (None, None) if scope == Scope::ClusterWide => None,
        (None, None) => Some(namespaces.get(&secret.origin, stderr)?),
    };
    Ok(Target {
        name,
        namespace,
        scope,
    })
}

/// The namespace for Secrets that name none: the kubeconfig's, else `default`; looked up once.
#[derive(Debug)]
struct NamespaceDefaults {
    kubeconfig: Option<PathBuf>,
    context: Option<String>,
    resolved: Option<String>,
}

impl NamespaceDefaults {
    fn new(kubeconfig: Option<PathBuf>, context: Option<String>) -> Self {
        NamespaceDefaults {
            kubeconfig,
            context,
            resolved: None,
        }
    }

    fn get(&mut self, origin: &Origin, stderr: &mut impl Write) -> Result<String> {
        if let Some(namespace) = &self.resolved {
            return Ok(namespace.clone());
        }
        let namespace = match kubeconfig::current_namespace(
            self.kubeconfig.as_deref(),
            self.context.as_deref(),
        )? {
            Some((namespace, path)) => {
                note(
                    stderr,
                    format_args!(
                        "{origin}: no namespace given; using {namespace} from the current context of {} (pass -n to choose)",
                        path.display()
                    ),
                );
                namespace
            }
            None => {
                note(
                    stderr,
                    format_args!(
                        "{origin}: no namespace given; using {DEFAULT_NAMESPACE} (pass -n to choose)"
                    ),
                );
                DEFAULT_NAMESPACE.to_owned()
            }
        };
        self.resolved = Some(namespace.clone());
        Ok(namespace)
    }
}

/// The `.sealbox.yaml` rule for this seal: its default scope, and the path whose rule may name
/// the certificate. The rule is chosen by the output file (`-w`), else the input file (`-f`),
/// else the current directory.
#[derive(Debug, Default)]
struct RepoRules {
    path: Option<PathBuf>,
    configs: Configs,
    scope: Option<Scope>,
    /// The rule's recipients beyond its certificate.
    recipients: RecipientSpec,
}

impl RepoRules {
    fn for_seal(args: &SealArgs) -> Result<RepoRules> {
        let path = args
            .output
            .write
            .clone()
            .or_else(|| {
                args.input
                    .file
                    .clone()
                    .filter(|f| f.as_path() != Path::new("-"))
            })
            .or_else(|| std::env::current_dir().ok());
        let mut rules = RepoRules::default();
        if let Some(path) = &path
            && let Some(config) = rules.configs.for_path(path)?
            && let Some(rule) = config.rule_for(path)
        {
            tracing::debug!(config = %config.file.display(), rule = %rule.path, "using a .sealbox.yaml rule");
            rules.scope = rule.scope.map(Into::into);
            rules.recipients = rule.extra_recipients(&config.dir, &args.cluster.options());
        }
        rules.path = path;
        Ok(rules)
    }

    /// The sealer for `primary`: the flags' recipients plus the rule's, multi-recipient when
    /// there are any.
    fn sealer(&self, args: &SealArgs, primary: crate::cert::SealingKey) -> Result<Sealer> {
        let mut spec = RecipientSpec::from_args(&args.recipients, &args.cluster.options());
        spec.extend(self.recipients.clone());
        spec.sealer(primary)
    }

    /// The certificate, by the one precedence rule ([`CertChoice`]).
    fn cert(&mut self, args: &SealArgs) -> Result<CertSource> {
        let cluster = args.cluster.options();
        let choice = CertChoice::new(args.cert.cert.as_ref(), &cluster);
        match &self.path {
            Some(path) => choice.for_path(&mut self.configs, path),
            None => choice.ignoring_rules(),
        }
    }
}

/// `seal --raw`: one value, bound to the flags' namespace and name, printed as base64.
fn run_raw(
    args: &SealArgs,
    rules: &mut RepoRules,
    stdin: impl Read,
    stdout: impl Write,
    mut stderr: impl Write,
) -> Result<()> {
    let scope: Scope = args
        .scope
        .map(Into::into)
        .or(rules.scope)
        .unwrap_or_default();
    let missing = |flag: &'static str| Error::MissingFlag {
        flag,
        why: format!(
            "seal --raw --scope {scope} binds the value to {}",
            match scope {
                Scope::Strict => "a namespace and a name (pass --namespace and --name)",
                _ => "a namespace (pass --namespace)",
            }
        ),
    };
    let namespace = match (&args.namespace, scope) {
        (None, Scope::Strict | Scope::NamespaceWide) => return Err(missing("--namespace")),
        (namespace, _) => namespace.clone(),
    };
    let name = match (&args.name, scope) {
        (None, Scope::Strict) => return Err(missing("--name")),
        (Some(name), _) => name.clone(),
        (None, _) => String::new(),
    };
    let cert = rules.cert(args)?;

    let (input_name, value) = read_input(args.from_file.as_deref(), stdin)?;
    if value.is_empty() && !args.allow_empty_data {
        return Err(Error::EmptyRawValue);
    }
    check_size(
        value.len(),
        || format!("{input_name}: the raw value"),
        args.allow_oversize,
        &mut stderr,
    )?;
    let key = rules.sealer(args, load_key(&cert)?)?;
    let label = scope.label(namespace.as_deref().unwrap_or_default(), &name);
    let origin = Origin {
        input: input_name,
        document: 1,
        item: None,
    };
    let field = "(raw value)".to_owned();
    let mut line = seal_value(&value, &key, &label, &origin, field, &OsRandom)?;
    line.push('\n');
    emit(
        line.as_bytes(),
        args.output.write.as_deref(),
        Visibility::Public,
        stdout,
    )
}
