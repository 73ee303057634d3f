//! `sealbox seal`: Secrets in, SealedSecrets out; and `seal --raw` for one value.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::SystemTime;

use aws_lc_rs::rand::SystemRandom;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sealbox_crds::{SealedSecret, SealedSecretSpec, SecretTemplateSpec, TemplateMetadata};
use sealbox_crypto::Scope;
use sealbox_crypto::scope::{
    CLUSTER_WIDE_ANNOTATION, NAMESPACE_WIDE_ANNOTATION, SEALING_KEY_ANNOTATION,
};
use zeroize::Zeroizing;

use crate::cert::{self, CertSource, Expiry, SealingKey};
use crate::cli::SealArgs;
use crate::config::Configs;
use crate::document::{read_documents, read_input};
use crate::error::{Error, Result};
use crate::kubeconfig;
use crate::origin::Origin;
use crate::output::{Visibility, emit, render};
use crate::secret::SecretInput;

/// The namespace when nothing else names one, like kubectl.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Where a Secret is sealed for: the SealedSecret's name, namespace and scope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`; `None` only for cluster-wide without a namespace.
    pub namespace: Option<String>,
    /// The scope, bound into every value.
    pub scope: Scope,
}

impl Target {
    /// The RSA-OAEP label of this target.
    pub fn label(&self) -> Vec<u8> {
        self.scope
            .label(self.namespace.as_deref().unwrap_or_default(), &self.name)
    }
}

/// Runs `sealbox seal`.
pub fn run(
    args: &SealArgs,
    stdin: impl Read,
    stdout: impl Write,
    mut stderr: impl Write,
) -> Result<()> {
    let rules = RepoRules::for_seal(args)?;
    if args.raw {
        return run_raw(args, &rules, stdin, stdout);
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

    let mut namespaces = NamespaceDefaults::new(
        args.cluster.kubeconfig.clone(),
        args.cluster.context.clone(),
    );
    let targets = secrets
        .iter()
        .map(|secret| target_for(secret, args, rules.scope, &mut namespaces, &mut stderr))
        .collect::<Result<Vec<_>>>()?;

    let key = load_key(&cert)?;
    let rng = SystemRandom::new();
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

/// Loads the certificate, refusing an expired one.
pub fn load_key(cert: &CertSource) -> Result<SealingKey> {
    let key = cert.load(SystemTime::now(), Expiry::Refuse)?;
    tracing::debug!(cert = %cert, fingerprint = %key.public_key.fingerprint(), "loaded the sealing key");
    Ok(key)
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

/// Writes a `note:` line to stderr; a failing stderr is no reason to fail the command.
pub fn note(stderr: &mut impl Write, message: std::fmt::Arguments<'_>) {
    let _ = writeln!(stderr, "note: {message}");
}

/// Seals every value of `data` for `label`, base64-encoded.
pub fn seal_values(
    data: &BTreeMap<String, Zeroizing<Vec<u8>>>,
    key: &SealingKey,
    label: &[u8],
    origin: &Origin,
    rng: &SystemRandom,
) -> Result<BTreeMap<String, String>> {
    data.iter()
        .map(|(name, plaintext)| {
            let sealed =
                sealbox_crypto::seal(rng, &key.public_key, plaintext, label).map_err(|source| {
                    Error::Seal {
                        origin: origin.clone(),
                        field: crate::origin::field_path("data", name),
                        source: Box::new(source),
                    }
                })?;
            Ok((name.clone(), STANDARD.encode(sealed)))
        })
        .collect()
}

/// Builds the SealedSecret for one Secret: values sealed, metadata and type moved to the
/// template, scope and key hint on the top-level annotations.
pub fn seal_secret(
    secret: &SecretInput,
    target: &Target,
    key: &SealingKey,
    rng: &SystemRandom,
) -> Result<SealedSecret> {
    let encrypted_data = seal_values(&secret.data, key, &target.label(), &secret.origin, rng)?;

    let mut annotations = BTreeMap::new();
    if let Some(annotation) = target.scope.annotation() {
        annotations.insert(annotation.to_owned(), "true".to_owned());
    }
    annotations.insert(
        SEALING_KEY_ANNOTATION.to_owned(),
        key.public_key.fingerprint().to_string(),
    );

    // The scope lives on the SealedSecret itself; in the template it would only mislead.
    let mut template_annotations = secret.annotations.clone();
    template_annotations.remove(CLUSTER_WIDE_ANNOTATION);
    template_annotations.remove(NAMESPACE_WIDE_ANNOTATION);
    let template = SecretTemplateSpec {
        metadata: Some(TemplateMetadata {
            name: Some(target.name.clone()),
            namespace: target.namespace.clone(),
            labels: non_empty(secret.labels.clone()),
            annotations: non_empty(template_annotations),
            finalizers: secret.finalizers.clone(),
            other: secret.other_metadata.clone(),
        }),
        type_: secret.type_.clone(),
        immutable: secret.immutable,
        data: None,
    };

    let mut sealed = SealedSecret::new(
        &target.name,
        SealedSecretSpec {
            encrypted_data,
            template: Some(template),
            data: None,
        },
    );
    sealed.metadata.namespace = target.namespace.clone();
    sealed.metadata.annotations = Some(annotations);
    Ok(sealed)
}

fn non_empty(map: BTreeMap<String, String>) -> Option<BTreeMap<String, String>> {
    (!map.is_empty()).then_some(map)
}

/// What the `.sealbox.yaml` rule for this seal says: where the certificate comes from and the
/// default scope. The rule is chosen by the output file (`-w`), else the input file (`-f`),
/// else the current directory.
#[derive(Debug, Default)]
struct RepoRules {
    cert: Option<CertSource>,
    scope: Option<Scope>,
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
                    .filter(|f| f.as_path() != std::path::Path::new("-"))
            })
            .or_else(|| std::env::current_dir().ok());
        let Some(path) = path else {
            return Ok(RepoRules::default());
        };
        let Some(config) = Configs::default().for_path(&path)? else {
            return Ok(RepoRules::default());
        };
        let Some(rule) = config.rule_for(&path) else {
            return Ok(RepoRules::default());
        };
        tracing::debug!(config = %config.file.display(), rule = %rule.path, "using a .sealbox.yaml rule");
        Ok(RepoRules {
            cert: rule.cert_source(&config.dir, &args.cluster.options()),
            scope: rule.scope.map(Into::into),
        })
    }

    /// The certificate: `--cert` (or `SEALBOX_CERT`), else the rule's, else the cluster.
    fn cert(&self, args: &SealArgs) -> Result<CertSource> {
        match (&args.cert.cert, &self.cert) {
            (Some(flag), _) => Ok(flag.clone()),
            (None, Some(rule)) => Ok(rule.clone()),
            (None, None) => cert::resolve(None, &args.cluster.options()),
        }
    }
}

/// `seal --raw`: one value, bound to the flags' namespace and name, printed as base64.
fn run_raw(args: &SealArgs, rules: &RepoRules, stdin: impl Read, stdout: impl Write) -> Result<()> {
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
    let key = load_key(&cert)?;
    let label = scope.label(namespace.as_deref().unwrap_or_default(), &name);
    let origin = Origin {
        input: input_name,
        document: 1,
        item: None,
    };
    let sealed = sealbox_crypto::seal(&SystemRandom::new(), &key.public_key, &value, &label)
        .map_err(|source| Error::Seal {
            origin,
            field: "(raw value)".to_owned(),
            source: Box::new(source),
        })?;
    let mut line = STANDARD.encode(sealed);
    line.push('\n');
    emit(
        line.as_bytes(),
        args.output.write.as_deref(),
        Visibility::Public,
        stdout,
    )
}
