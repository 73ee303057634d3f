//! Sealing in kubeseal mode: whole Secrets (one SealedSecret per input document, as kubeseal
//! ≥ 0.24), one raw value (`--raw`), and keys merged into an existing sealed file
//! (`--merge-into`).
//!
//! The rules are kubeseal's: `--name` renames every Secret; `--scope` other than strict
//! replaces the Secret's scope annotations (an explicit `--scope strict` leaves them, as in
//! kubeseal); the namespace is the Secret's, else `-n`, else the kubeconfig context's (else
//! `default` when a kubeconfig exists); `-n` and a different namespace in the Secret are a
//! mismatch. The sealing itself is sealbox's ([`crate::sealing`]): values, template and the key
//! hint are built as `sealbox seal` builds them.

use std::io::Read;
use std::path::Path;

use sealbox_crds::SealedSecret;
use sealbox_crypto::OsRandom;
use sealbox_crypto::Scope;
use sealbox_crypto::scope::{
    CLUSTER_WIDE_ANNOTATION, NAMESPACE_WIDE_ANNOTATION, SEALING_KEY_ANNOTATION,
};
use serde_json::Value;

use crate::cert::CertSource;
use crate::document::{Document, parse, read_file, read_input};
use crate::error::{Error, Result};
use crate::kubeconfig;
use crate::kubeseal::flags::{KubesealArgs, KubesealFormat};
use crate::kubeseal::render::render;
use crate::kubeseal::{cluster_options, usage};
use crate::origin::Origin;
use crate::output::{Visibility, write_atomically};
use crate::sealed;
use crate::sealing::{Sealer, Target, load_key, seal_secret, seal_value, seal_values};
use crate::secret::SecretInput;

/// kubectl's namespace when a kubeconfig names none.
const DEFAULT_NAMESPACE: &str = "default";

/// Seals every Secret of the input, in order, into `out`.
pub fn seal(
    args: &KubesealArgs,
    (input_name, bytes): (&str, &[u8]),
    format: KubesealFormat,
    out: &mut Vec<u8>,
) -> Result<()> {
    // kubeseal seals for one certificate: Bitnami-format values.
    let key = Sealer::Single(load_key(&certificate(args))?);
    let secrets = read_secrets(input_name, bytes)?;
    let mut namespaces = DefaultNamespace::new(args);
    let rng = OsRandom;
    let mut sealed = Vec::with_capacity(secrets.len());
    for secret in &secrets {
        let target = target_for(secret, args, None, &mut namespaces)?;
        sealed.push(seal_secret(secret, &target, &key, &rng)?);
    }
    out.extend_from_slice(&render(&sealed, format)?);
    Ok(())
}

/// `--cert`, else the controller of the cluster (kubeseal's `OpenCert`).
pub fn certificate(args: &KubesealArgs) -> CertSource {
    args.cert
        .clone()
        .unwrap_or_else(|| CertSource::Cluster(cluster_options(args)))
}

/// The Secrets of the input; a document without `kind` is read as a Secret, as kubeseal
/// decodes every document into one.
fn read_secrets(input_name: &str, bytes: &[u8]) -> Result<Vec<SecretInput>> {
    let input = parse(input_name, bytes)?;
    if input.documents.is_empty() {
        return Err(usage(
            "no secrets found. Ensure the input is valid and UTF-8 encoded",
        ));
    }
    input.documents.iter().map(secret_of).collect()
}

fn secret_of(document: &Document) -> Result<SecretInput> {
    let untyped = document
        .value
        .as_object()
        .is_some_and(|o| !o.contains_key("kind"));
    if !untyped {
        return SecretInput::from_document(document);
    }
    let mut value = document.value.clone();
    if let Value::Object(object) = &mut value {
        object.insert("kind".to_owned(), Value::from("Secret"));
        object
            .entry("apiVersion")
            .or_insert_with(|| Value::from("v1"));
    }
    // The copy is a Document too, so its strings are wiped on drop.
    SecretInput::from_document(&Document {
        origin: document.origin.clone(),
        value,
    })
}

/// Name, namespace and scope of one Secret by kubeseal's rules; `fixed` is the name and
/// namespace of the file merged into, which override the Secret's (`--merge-into`).
fn target_for(
    secret: &SecretInput,
    args: &KubesealArgs,
    fixed: Option<(&str, Option<&str>)>,
    namespaces: &mut DefaultNamespace,
) -> Result<Target> {
    if secret.data.is_empty() && !args.allow_empty_data {
        return Err(usage(
            "secret.data is empty in input Secret, assuming this is an error and aborting. To work with empty data, --allow-empty-data can be used",
        ));
    }
    let name = match (fixed, args.name.as_deref().filter(|n| !n.is_empty())) {
        (Some((name, _)), _) | (None, Some(name)) => Some(name.to_owned()),
        (None, None) => secret.name.clone(),
    };
    let name = name.ok_or_else(|| usage("missing metadata.name in input Secret"))?;
    let own_namespace = match fixed {
        Some((_, namespace)) => namespace.map(str::to_owned),
        None => secret.namespace.clone(),
    };
    let scope = match args.scope.map(Scope::from) {
        Some(flag) if flag != Scope::Strict => flag,
        _ => Scope::from_annotations(&secret.annotations),
    };
    let namespace = if scope == Scope::ClusterWide {
        own_namespace
    } else {
        if let (Some(flag), Some(own)) = (&args.client.namespace, &own_namespace)
            && flag != own
        {
            return Err(usage(&format!(
                "namespace mismatch: input secret is in namespace {own:?} but {flag:?} was specified"
            )));
        }
        match own_namespace {
            Some(own) => Some(own),
            None => namespaces.get()?,
        }
    };
    if scope != Scope::ClusterWide && namespace.is_none() {
        return Err(usage(
            "secret must declare a namespace (pass -n, or use a kubeconfig whose context names one)",
        ));
    }
    Ok(Target {
        name,
        namespace,
        scope,
    })
}

/// kubeseal's namespace for Secrets that name none: `-n`, else the kubeconfig context's, else
/// `default` when a kubeconfig (or `--server`) says where a cluster is; looked up once.
struct DefaultNamespace<'a> {
    args: &'a KubesealArgs,
    resolved: Option<Option<String>>,
}

impl<'a> DefaultNamespace<'a> {
    fn new(args: &'a KubesealArgs) -> Self {
        DefaultNamespace {
            args,
            resolved: None,
        }
    }

    fn get(&mut self) -> Result<Option<String>> {
        if let Some(resolved) = &self.resolved {
            return Ok(resolved.clone());
        }
        let client = &self.args.client;
        let namespace = match &client.namespace {
            Some(flag) => Some(flag.clone()),
            None => match kubeconfig::current_namespace(
                client.kubeconfig.as_deref(),
                client.context.as_deref(),
            )? {
                Some((namespace, _)) => Some(namespace),
                None => cluster_options(self.args)
                    .is_configured()
                    .then(|| DEFAULT_NAMESPACE.to_owned()),
            },
        };
        self.resolved = Some(namespace.clone());
        Ok(namespace)
    }
}

/// `--raw`: one value from `--from-file` (`PATH` or `KEY=PATH`) or stdin, printed as base64
/// without a newline, as kubeseal prints it.
pub fn raw(args: &KubesealArgs, stdin: impl Read, out: &mut Vec<u8>) -> Result<()> {
    // kubeseal seals for one certificate: Bitnami-format values.
    let key = Sealer::Single(load_key(&certificate(args))?);
    let scope = args.scope.map(Scope::from).unwrap_or_default();
    let mut namespace = String::new();
    if scope != Scope::ClusterWide {
        namespace = DefaultNamespace::new(args).get()?.ok_or_else(|| {
            usage(&format!(
                "must provide the --namespace flag with --raw and --scope {scope}"
            ))
        })?;
    }
    let name = args.name.clone().unwrap_or_default();
    if scope == Scope::Strict && name.is_empty() {
        return Err(usage(&format!(
            "must provide the --name flag with --raw and --scope {scope}"
        )));
    }
    let path = match args.from_file.as_slice() {
        [] => None,
        [one] => Some(Path::new(from_file_path(one))),
        _ => {
            return Err(usage(
                "must provide only one --from-file when encrypting a single item with --raw",
            ));
        }
    };
    let (input_name, value) = read_input(path, stdin)?;
    let origin = Origin {
        input: input_name,
        document: 1,
        item: None,
    };
    let label = scope.label(&namespace, &name);
    let field = "(raw value)".to_owned();
    let sealed = seal_value(&value, &key, &label, &origin, field, &OsRandom)?;
    out.extend_from_slice(sealed.as_bytes());
    Ok(())
}

/// The file of kubectl's `--from-file` value: `KEY=PATH` or `PATH`.
pub fn from_file_path(value: &str) -> &str {
    value.split_once('=').map_or(value, |(_, path)| path)
}

/// `--merge-into FILE`: seals the input's keys for the file's name, namespace and scope and
/// writes the file back (atomically) in the `-o` format, as kubeseal does. Template labels and
/// annotations of the input are merged into the file's template.
pub fn merge_into(
    args: &KubesealArgs,
    (input_name, bytes): (&str, &[u8]),
    file: &Path,
    format: KubesealFormat,
    _stderr: &mut impl std::io::Write,
) -> Result<()> {
    // kubeseal seals for one certificate: Bitnami-format values.
    let key = Sealer::Single(load_key(&certificate(args))?);
    let mut target = read_merge_target(file)?;
    let scope = target.scope();
    if let Some(flag) = args.scope.map(Scope::from)
        && flag != scope
    {
        return Err(usage(&format!(
            "--scope {flag} does not match {}, which is sealed {scope}: its values could not be unsealed together; seal a new file instead",
            file.display()
        )));
    }
    let name = target.metadata.name.clone().unwrap_or_default();
    let namespace = target.metadata.namespace.clone();
    let label = target.label();
    let mut namespaces = DefaultNamespace::new(args);
    for secret in read_secrets(input_name, bytes)? {
        target_for(
            &secret,
            args,
            Some((&name, namespace.as_deref())),
            &mut namespaces,
        )?;
        merge_secret(&mut target, &secret, &key, &label)?;
    }
    target.status = None;
    let rendered = render(&[&target], format)?;
    write_atomically(file, &rendered, Visibility::Public)
}

fn read_merge_target(file: &Path) -> Result<SealedSecret> {
    let name = file.display().to_string();
    let bytes = read_file(file).map_err(|source| Error::ReadInput {
        input: name.clone(),
        source,
    })?;
    let input = parse(&name, &bytes)?;
    match input.documents.as_slice() {
        [one] => sealed::from_document(one),
        other => Err(Error::EditTarget {
            action: "merge into",
            path: file.to_owned(),
            problem: format!(
                "it holds {} documents; --merge-into needs exactly one SealedSecret",
                other.len()
            ),
        }),
    }
}

/// Seals `secret`'s values into `target` and merges its labels and annotations into the
/// template; the key hint names the key that sealed the new values.
fn merge_secret(
    target: &mut SealedSecret,
    secret: &SecretInput,
    key: &Sealer,
    label: &[u8],
) -> Result<()> {
    let values = seal_values(&secret.data, key, label, &secret.origin, &OsRandom)?;
    target.spec.encrypted_data.extend(values);
    let metadata = target
        .spec
        .template
        .get_or_insert_default()
        .metadata
        .get_or_insert_default();
    if !secret.labels.is_empty() {
        let labels = metadata.labels.get_or_insert_default();
        labels.extend(secret.labels.clone());
    }
    let annotations = secret
        .annotations
        .iter()
        .filter(|(k, _)| *k != CLUSTER_WIDE_ANNOTATION && *k != NAMESPACE_WIDE_ANNOTATION);
    let mut annotations = annotations.peekable();
    if annotations.peek().is_some() {
        metadata
            .annotations
            .get_or_insert_default()
            .extend(annotations.map(|(k, v)| (k.clone(), v.clone())));
    }
    target.metadata.annotations.get_or_insert_default().insert(
        SEALING_KEY_ANNOTATION.to_owned(),
        key.primary().public_key.fingerprint().to_string(),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_file_takes_kubectls_key_equals_path() {
        assert_eq!(from_file_path("secret.txt"), "secret.txt");
        assert_eq!(from_file_path("password=secret.txt"), "secret.txt");
        assert_eq!(from_file_path("k=a=b"), "a=b");
    }
}
