//! `sealbox keys list|rotate|backup|restore|prune`: the controller's key Secrets, read and
//! written directly through the Kubernetes API.
//!
//! Key Secrets are found as the controller finds them: Secrets in the controller's namespace
//! labelled `sealedsecrets.bitnami.com/sealed-secrets-key` (only the value `active` is used by
//! the controller; others are listed as inactive) and the legacy Secret named
//! `sealed-secrets-key`. The newest active key (certificate NotBefore) seals.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use http::Method;
use sealbox_crds::SealedSecret;
use sealbox_crypto::key_secret::{DEFAULT_KEY_PREFIX, KEY_LABEL};
use sealbox_crypto::{Certificate, Fingerprint, KeyPair, KeySecret, PrivateKey};
use serde::Serialize;
use serde_json::Value;
use zeroize::Zeroizing;

use crate::Outcome;
use crate::backup::{self, Openers, Protection};
use crate::bounded;
use crate::cli::{
    KeysBackupArgs, KeysCommand, KeysListArgs, KeysPruneArgs, KeysRestoreArgs, KeysRotateArgs,
    ListFormat,
};
use crate::cluster::{self, Cluster};
use crate::commands::seal::note;
use crate::document::{parse, read_file, scrub};
use crate::error::{Error, Result};
use crate::keyring::Keyring;
use crate::output::{Visibility, write_atomically};
use crate::sealed::{self, display_name};
use crate::walk::{Ignore, manifest_files};

/// Runs `sealbox keys …`.
pub fn run(command: &KeysCommand, stdout: impl Write, stderr: impl Write) -> Result<Outcome> {
    match command {
        KeysCommand::List(args) => list(args, stdout, stderr),
        KeysCommand::Rotate(args) => rotate(args, stderr),
        KeysCommand::Backup(args) => backup(args, stderr),
        KeysCommand::Restore(args) => restore(args, stderr),
        KeysCommand::Prune(args) => prune(args, stderr),
    }
}

/// One key Secret as found in the cluster.
pub struct StoredKey {
    /// `metadata.name`.
    pub name: String,
    /// The Secret's content (the private key is wiped on drop).
    pub secret: KeySecret,
    /// Its certificate, when `tls.crt` parses.
    pub certificate: Option<Certificate>,
    /// The key's fingerprint (from the certificate, else the private key).
    pub fingerprint: Option<Fingerprint>,
    /// What is wrong with it, if anything.
    pub problem: Option<String>,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKey")
            .field("name", &self.name)
            .field("fingerprint", &self.fingerprint)
            .field("problem", &self.problem)
            .finish_non_exhaustive()
    }
}

impl StoredKey {
    fn from_secret(secret: KeySecret) -> StoredKey {
        let name = secret.name.clone().unwrap_or_default();
        let mut problem = None;
        let certificate = match Certificate::from_pem_with_origin(
            secret.tls_crt.as_bytes(),
            &format!("{} tls.crt", secret.display_name()),
        ) {
            Ok(certificate) => Some(certificate),
            Err(e) => {
                problem = Some(format!("unusable tls.crt ({})", e.category()));
                None
            }
        };
        let fingerprint = match &certificate {
            Some(certificate) => Some(certificate.public_key().fingerprint().clone()),
            None => PrivateKey::from_pem(secret.tls_key.as_bytes())
                .ok()
                .map(|k| k.fingerprint().clone()),
        };
        StoredKey {
            name,
            secret,
            certificate,
            fingerprint,
            problem,
        }
    }

    /// Labelled `active`: the controller uses it.
    pub fn active(&self) -> bool {
        self.secret.is_active()
    }

    /// The certificate's NotBefore.
    pub fn created(&self) -> Option<SystemTime> {
        self.certificate.as_ref().map(Certificate::not_before)
    }

    /// The private key, checked against the certificate.
    pub fn private_key(&self) -> Option<PrivateKey> {
        match &self.certificate {
            Some(_) => self.secret.key_pair().ok().map(|pair| pair.private_key),
            None => PrivateKey::from_pem(self.secret.tls_key.as_bytes()).ok(),
        }
    }
}

/// The keys of the controller's namespace, oldest first.
pub struct KeyStore {
    /// The namespace.
    pub namespace: String,
    /// The keys, by certificate NotBefore (keys without a certificate first).
    pub keys: Vec<StoredKey>,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore")
            .field("namespace", &self.namespace)
            .field("keys", &self.keys)
            .finish()
    }
}

impl KeyStore {
    /// Reads the key Secrets of the controller's namespace.
    pub async fn load(cluster: &Cluster) -> Result<KeyStore> {
        let namespace = cluster.options.controller_namespace.clone();
        let what = format!("list the key Secrets in namespace {namespace}");
        let list_path = format!("/api/v1/namespaces/{namespace}/secrets?labelSelector={KEY_LABEL}");
        let mut items = Vec::new();
        if let Some(text) = cluster.get_text(&list_path, &what).await? {
            let mut list: Value =
                serde_json::from_str(&text).map_err(|e| Error::ClusterRequest {
                    what: what.clone(),
                    code: 200,
                    reason: format!("the answer is not JSON (line {})", e.line()),
                })?;
            if let Some(Value::Array(found)) = list.get_mut("items").map(Value::take) {
                items.extend(found);
            }
            scrub(&mut list);
        }
        let legacy_path = format!("/api/v1/namespaces/{namespace}/secrets/{DEFAULT_KEY_PREFIX}");
        if let Some(text) = cluster
            .get_text(
                &legacy_path,
                &format!("read the Secret {namespace}/{DEFAULT_KEY_PREFIX}"),
            )
            .await?
            && let Ok(legacy) = serde_json::from_str::<Value>(&text)
        {
            items.push(legacy);
        }

        let mut keys: Vec<StoredKey> = Vec::new();
        for mut item in items {
            let name = item
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            if keys.iter().any(|k| k.name == name) {
                scrub(&mut item);
                continue;
            }
            let bytes = Zeroizing::new(serde_json::to_vec(&item).unwrap_or_default());
            scrub(&mut item);
            match sealbox_crypto::parse_key_secrets(&bytes, &format!("Secret {namespace}/{name}")) {
                Ok(secrets) => keys.extend(secrets.into_iter().map(StoredKey::from_secret)),
                Err(e) => tracing::warn!(secret = %name, error = %e, "not a usable key Secret"),
            }
        }
        keys.sort_by_key(StoredKey::created);
        Ok(KeyStore { namespace, keys })
    }

    /// The key the controller seals with: the newest active one.
    pub fn sealing_key(&self) -> Option<&StoredKey> {
        self.keys
            .iter()
            .filter(|k| k.active() && k.certificate.is_some())
            .max_by_key(|k| k.created())
    }

    /// Every private key, newest first.
    pub fn keyring(&self) -> Keyring {
        Keyring::new(
            self.keys
                .iter()
                .rev()
                .filter_map(StoredKey::private_key)
                .collect(),
        )
    }
}

fn rfc3339(time: Option<SystemTime>) -> String {
    time.and_then(|t| jiff::Timestamp::try_from(t).ok())
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| "-".to_owned())
}

/// SealedSecrets of the cluster that parse; malformed ones are counted.
async fn cluster_sealed_secrets(cluster: &Cluster) -> Result<(Vec<SealedSecret>, usize, bool)> {
    let Some(items) = cluster.sealed_secrets().await? else {
        return Ok((Vec::new(), 0, false));
    };
    let mut parsed = Vec::with_capacity(items.len());
    let mut malformed = 0;
    for item in items {
        match serde_json::from_value::<SealedSecret>(item) {
            Ok(sealed) => parsed.push(sealed),
            Err(_) => malformed += 1,
        }
    }
    Ok((parsed, malformed, true))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KeyRow {
    name: String,
    fingerprint: String,
    created: String,
    expires: String,
    active: bool,
    sealing: bool,
    sealed_secrets: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    problem: Option<String>,
}

fn list(args: &KeysListArgs, mut stdout: impl Write, mut stderr: impl Write) -> Result<Outcome> {
    let options = args.cluster.options();
    let (store, sealed, malformed, installed) = cluster::block_on(async {
        let cluster = Cluster::connect(&options).await?;
        let store = KeyStore::load(&cluster).await?;
        let (sealed, malformed, installed) = cluster_sealed_secrets(&cluster).await?;
        Ok::<_, Error>((store, sealed, malformed, installed))
    })??;
    if store.keys.is_empty() {
        return Err(Error::NoKeys {
            namespace: store.namespace,
        });
    }

    // Hint first; a trial on one value for SealedSecrets without a (known) hint.
    let known: BTreeSet<&Fingerprint> = store
        .keys
        .iter()
        .filter_map(|k| k.fingerprint.as_ref())
        .collect();
    let mut counts: BTreeMap<Fingerprint, usize> = BTreeMap::new();
    let (mut by_hint, mut by_trial, mut unknown) = (0, 0, 0);
    let mut keyring: Option<Keyring> = None;
    for object in &sealed {
        match object.sealing_key_hint().filter(|h| known.contains(h)) {
            Some(hint) => {
                *counts.entry(hint).or_default() += 1;
                by_hint += 1;
            }
            None => {
                let ring = keyring.get_or_insert_with(|| store.keyring());
                match ring.first_key(object) {
                    Some(fingerprint) => {
                        *counts.entry(fingerprint).or_default() += 1;
                        by_trial += 1;
                    }
                    None => unknown += 1,
                }
            }
        }
    }

    let sealing = store.sealing_key().map(|k| k.name.clone());
    let rows: Vec<KeyRow> = store
        .keys
        .iter()
        .rev()
        .map(|key| KeyRow {
            name: key.name.clone(),
            fingerprint: key
                .fingerprint
                .as_ref()
                .map_or_else(|| "-".to_owned(), ToString::to_string),
            created: rfc3339(key.created()),
            expires: rfc3339(key.certificate.as_ref().map(Certificate::not_after)),
            active: key.active(),
            sealing: sealing.as_deref() == Some(key.name.as_str()),
            sealed_secrets: key
                .fingerprint
                .as_ref()
                .and_then(|f| counts.get(f))
                .copied()
                .unwrap_or(0),
            problem: key.problem.clone(),
        })
        .collect();

    let rendered = match args.format {
        ListFormat::Json => {
            let mut text = serde_json::to_string_pretty(&rows).map_err(|e| Error::Render {
                format: "JSON",
                reason: e.to_string(),
            })?;
            text.push('\n');
            text
        }
        ListFormat::Table => table(&rows),
    };
    stdout
        .write_all(rendered.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|source| Error::WriteStdout { source })?;

    if !installed {
        note(
            &mut stderr,
            format_args!(
                "the SealedSecret resource is not installed in this cluster; no SealedSecret counted"
            ),
        );
    } else {
        let _ = writeln!(
            stderr,
            "{} SealedSecret(s) in the cluster: {by_hint} counted by their sealing-key hint, {by_trial} by trying the keys, {unknown} sealed to no key in {}{}",
            sealed.len() + malformed,
            store.namespace,
            if malformed > 0 {
                format!(", {malformed} malformed (not counted)")
            } else {
                String::new()
            }
        );
    }
    Ok(Outcome::Success)
}

fn table(rows: &[KeyRow]) -> String {
    let header = [
        "NAME",
        "FINGERPRINT",
        "CREATED",
        "ACTIVE",
        "SEALING",
        "SEALEDSECRETS",
    ];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                r.name.clone(),
                r.fingerprint.clone(),
                r.created.clone(),
                if r.active { "yes" } else { "no" }.to_owned(),
                if r.sealing { "*" } else { "" }.to_owned(),
                r.sealed_secrets.to_string(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let mut out = String::new();
    let mut line = |row: &[&str]| {
        let mut text = String::new();
        for (i, (cell, width)) in row.iter().zip(widths).enumerate() {
            if i + 1 == row.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}   "));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&header);
    for row in &cells {
        line(&row.iter().map(String::as_str).collect::<Vec<_>>());
    }
    out
}

/// Creates a key Secret; returns its name.
async fn create_key_secret(cluster: &Cluster, secret: &KeySecret) -> Result<String> {
    let namespace = &cluster.options.controller_namespace;
    let mut manifest = secret.to_json();
    let body = Zeroizing::new(serde_json::to_vec(&manifest).unwrap_or_default());
    scrub(&mut manifest);
    let answer = cluster
        .send_json(
            Method::POST,
            &format!("/api/v1/namespaces/{namespace}/secrets"),
            body.to_vec(),
            &format!("create a key Secret in namespace {namespace}"),
        )
        .await?;
    let mut created: Value = serde_json::from_str(&answer).unwrap_or(Value::Null);
    let name = created
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_owned();
    scrub(&mut created);
    Ok(name)
}

fn rotate(args: &KeysRotateArgs, mut stderr: impl Write) -> Result<Outcome> {
    let options = args.cluster.options();
    let pair = KeyPair::generate_with_bits(args.key_size, &args.my_cn, SystemTime::now()).map_err(
        |source| Error::GenerateKey {
            source: Box::new(source),
        },
    )?;
    let secret = KeySecret::from_key_pair(&pair, &options.controller_namespace, &args.key_prefix);
    let name = cluster::block_on(async {
        let cluster = Cluster::connect(&options).await?;
        create_key_secret(&cluster, &secret).await
    })??;
    let _ = writeln!(
        stderr,
        "created the key Secret {}/{name}: {} (RSA-{}, valid until {}); the controller seals with it once it has picked it up (`sealbox cert fetch` shows the certificate in use), then run `sealbox reencrypt` on your repository",
        options.controller_namespace,
        pair.fingerprint(),
        args.key_size,
        rfc3339(Some(pair.certificate.not_after())),
    );
    Ok(Outcome::Success)
}

/// The List manifest a backup holds: every key Secret, server fields dropped.
fn backup_manifest(store: &KeyStore) -> Result<Zeroizing<String>> {
    let mut items: Vec<Value> = store.keys.iter().map(|k| k.secret.to_json()).collect();
    for item in &mut items {
        if let Some(metadata) = item.get_mut("metadata").and_then(Value::as_object_mut) {
            metadata.remove("generateName");
        }
    }
    let mut list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items});
    let rendered = serde_norway::to_string(&list).map(Zeroizing::new);
    scrub(&mut list);
    rendered.map_err(|e| Error::Render {
        format: "YAML",
        reason: e.to_string(),
    })
}

fn backup(args: &KeysBackupArgs, mut stderr: impl Write) -> Result<Outcome> {
    // Decide how to encrypt before touching the cluster: a missing passphrase is a usage error.
    let protection = if args.unencrypted {
        Protection::Plaintext
    } else if !args.recipients.is_empty() {
        Protection::Recipients(backup::recipients(&args.recipients)?)
    } else {
        match backup::passphrase(args.passphrase.passphrase_file.as_deref(), true)? {
            Some(passphrase) => Protection::Passphrase(passphrase),
            None => return Err(Error::NoBackupEncryption),
        }
    };
    let output = &args.output;
    if output.is_dir() {
        return Err(Error::OutputPath {
            path: output.clone(),
            problem: "it is a directory; pass a file name",
        });
    }
    let options = args.cluster.options();
    let store = cluster::block_on(async {
        let cluster = Cluster::connect(&options).await?;
        KeyStore::load(&cluster).await
    })??;
    if store.keys.is_empty() {
        return Err(Error::NoKeys {
            namespace: store.namespace,
        });
    }
    let manifest = backup_manifest(&store)?;
    let bytes = backup::encrypt(manifest.as_bytes(), &protection)?;
    write_atomically(output, &bytes, Visibility::OwnerOnly)?;
    let fingerprints: Vec<String> = store
        .keys
        .iter()
        .filter_map(|k| k.fingerprint.as_ref().map(ToString::to_string))
        .collect();
    if matches!(protection, Protection::Plaintext) {
        note(
            &mut stderr,
            format_args!(
                "{} holds the private keys in PLAINTEXT: anyone who reads it can unseal every secret sealed to them",
                output.display()
            ),
        );
    }
    let _ = writeln!(
        stderr,
        "backed up {} key(s) from namespace {} to {}, {}: {}",
        store.keys.len(),
        store.namespace,
        output.display(),
        protection.describe(),
        fingerprints.join(", ")
    );
    Ok(Outcome::Success)
}

/// Reads a backup (encrypted or plaintext) into key Secrets, each checked.
fn read_backup(args: &KeysRestoreArgs) -> Result<Vec<(KeySecret, KeyPair)>> {
    let path = &args.file;
    let bytes = bounded::read_bounded(path, bounded::BACKUP_FILE).map_err(|source| {
        if path.is_dir() {
            Error::InputIsDirectory {
                input: path.display().to_string(),
            }
        } else {
            Error::ReadBackup {
                path: path.clone(),
                source,
            }
        }
    })?;
    let plaintext = if backup::is_age(&bytes) {
        backup::decrypt(
            &bytes,
            path,
            &Openers {
                passphrase_file: args.passphrase.passphrase_file.as_deref(),
                identities: &args.identities,
            },
        )?
    } else {
        bytes
    };
    let contents = |source: sealbox_crypto::Error| Error::BackupContents {
        path: path.clone(),
        source: Box::new(source),
    };
    let secrets = sealbox_crypto::parse_key_secrets(&plaintext, &path.display().to_string())
        .map_err(contents)?;
    if secrets.is_empty() {
        return Err(contents(sealbox_crypto::Error::NoPrivateKey {
            origin: path.display().to_string(),
        }));
    }
    secrets
        .into_iter()
        .map(|secret| {
            let pair = secret.key_pair().map_err(contents)?;
            Ok((secret, pair))
        })
        .collect()
}

fn restore(args: &KeysRestoreArgs, mut stderr: impl Write) -> Result<Outcome> {
    let backed_up = read_backup(args)?;
    let options = args.cluster.options();
    let namespace = options.controller_namespace.clone();
    let dry_run = args.dry_run;
    let lines = cluster::block_on(async {
        let cluster = Cluster::connect(&options).await?;
        let store = KeyStore::load(&cluster).await?;
        let mut lines = Vec::new();
        let mut taken: BTreeSet<String> = store.keys.iter().map(|k| k.name.clone()).collect();
        for (secret, pair) in &backed_up {
            let fingerprint = pair.fingerprint();
            if let Some(existing) = store
                .keys
                .iter()
                .find(|k| k.fingerprint.as_ref() == Some(fingerprint))
            {
                lines.push(format!(
                    "skipped {fingerprint}: already in {namespace} as {}",
                    existing.name
                ));
                continue;
            }
            let mut restored = secret.clone();
            restored.namespace = Some(namespace.clone());
            match restored.name.take().filter(|n| !taken.contains(n)) {
                Some(name) => {
                    restored.name = Some(name);
                    restored.generate_name = None;
                }
                None => restored.generate_name = Some(DEFAULT_KEY_PREFIX.to_owned()),
            }
            if dry_run {
                lines.push(format!(
                    "would restore {fingerprint} as {}",
                    restored.display_name()
                ));
                continue;
            }
            let name = create_key_secret(&cluster, &restored).await?;
            taken.insert(name.clone());
            lines.push(format!(
                "restored {fingerprint} as Secret {namespace}/{name}"
            ));
        }
        Ok::<_, Error>(lines)
    })??;
    for line in &lines {
        let _ = writeln!(stderr, "{line}");
    }
    let restored = lines.iter().filter(|l| l.starts_with("restored")).count();
    let _ = writeln!(
        stderr,
        "{}{} of {} key(s) from {} into namespace {namespace}{}",
        if dry_run { "dry run: " } else { "" },
        if dry_run {
            lines.iter().filter(|l| l.starts_with("would")).count()
        } else {
            restored
        },
        backed_up.len(),
        args.file.display(),
        if dry_run {
            " would be restored"
        } else {
            " restored; the controller loads them (restart it if it does not watch its keys)"
        }
    );
    Ok(Outcome::Success)
}

/// SealedSecrets in repository files, with where they are.
fn repo_sealed_secrets(
    paths: &[PathBuf],
    stderr: &mut impl Write,
) -> Result<Vec<(String, SealedSecret)>> {
    if paths.is_empty() {
        return Ok(Vec::new());
    }
    let mut found = Vec::new();
    let mut unreadable = Vec::new();
    for file in manifest_files(paths, &Ignore::default())? {
        let name = file.display().to_string();
        let Ok(bytes) = read_file(&file) else {
            unreadable.push(name);
            continue;
        };
        let Ok(input) = parse(&name, &bytes) else {
            // Templates (Helm) may hold SealedSecrets a parser cannot see: say so.
            if String::from_utf8_lossy(&bytes).contains("SealedSecret") {
                unreadable.push(name);
            }
            continue;
        };
        for document in &input.documents {
            if document.kind() != Some("SealedSecret") {
                continue;
            }
            match sealed::from_document(document) {
                Ok(sealed) => found.push((
                    format!("{}: {}", document.origin, display_name(&sealed)),
                    sealed,
                )),
                Err(_) => unreadable.push(document.origin.to_string()),
            }
        }
    }
    if !unreadable.is_empty() {
        note(
            stderr,
            format_args!(
                "SealedSecrets in {} could not be read, so they do not count: {}",
                if unreadable.len() == 1 {
                    "this file"
                } else {
                    "these files"
                },
                unreadable.join(", ")
            ),
        );
    }
    Ok(found)
}

fn prune(args: &KeysPruneArgs, mut stderr: impl Write) -> Result<Outcome> {
    let repo = repo_sealed_secrets(&args.paths, &mut stderr)?;
    let options = args.cluster.options();
    let older_than = args.older_than;
    let yes = args.yes;
    let (store, decisions, deleted) = cluster::block_on(async {
        let cluster = Cluster::connect(&options).await?;
        let store = KeyStore::load(&cluster).await?;
        if store.keys.is_empty() {
            return Err(Error::NoKeys {
                namespace: store.namespace,
            });
        }
        let (in_cluster, malformed, _) = cluster_sealed_secrets(&cluster).await?;
        if malformed > 0 {
            return Err(Error::ClusterRequest {
                what: "check which keys SealedSecrets use".to_owned(),
                code: 200,
                reason: format!(
                    "{malformed} SealedSecret(s) in the cluster are malformed, so their keys cannot be told; fix or delete them first"
                ),
            });
        }
        let decisions = plan_prune(&store, &in_cluster, &repo, older_than, SystemTime::now());
        let mut deleted = Vec::new();
        if yes {
            for decision in &decisions {
                if let Decision::Delete = decision.decision {
                    let path = format!(
                        "/api/v1/namespaces/{}/secrets/{}",
                        store.namespace, decision.name
                    );
                    cluster
                        .send_json(
                            Method::DELETE,
                            &path,
                            Vec::new(),
                            &format!(
                                "delete the key Secret {}/{}",
                                store.namespace, decision.name
                            ),
                        )
                        .await?;
                    deleted.push(decision.name.clone());
                }
            }
        }
        Ok((store, decisions, deleted))
    })??;

    let mut refused = 0;
    let mut deletable = 0;
    for decision in &decisions {
        let key = format!(
            "{} ({}, created {})",
            decision.name, decision.fingerprint, decision.created
        );
        match &decision.decision {
            Decision::Keep(why) => {
                let _ = writeln!(stderr, "keep {key}: {why}");
            }
            Decision::InUse(users) => {
                refused += 1;
                let _ = writeln!(
                    stderr,
                    "refuse to prune {key}: still used by {} SealedSecret(s):",
                    users.len()
                );
                for user in users {
                    let _ = writeln!(stderr, "  {user}");
                }
            }
            Decision::Delete => {
                deletable += 1;
                if deleted.contains(&decision.name) {
                    let _ = writeln!(stderr, "deleted {key}");
                } else {
                    let _ = writeln!(stderr, "would delete {key}");
                }
            }
        }
    }
    if refused > 0 {
        let _ = writeln!(
            stderr,
            "{refused} key(s) still in use: re-seal what uses them with `sealbox reencrypt` (and let the cluster sync), then prune again"
        );
    }
    if !yes && deletable > 0 {
        let _ = writeln!(
            stderr,
            "dry run: {deletable} key(s) in {} would be deleted; pass --yes to delete them (back them up first with `sealbox keys backup`)",
            store.namespace
        );
    } else if deletable == 0 && refused == 0 {
        let _ = writeln!(
            stderr,
            "nothing to prune in {}: no key older than {} besides the sealing key",
            store.namespace,
            humanize(older_than)
        );
    }
    Ok(if refused > 0 {
        Outcome::ProblemsFound
    } else {
        Outcome::Success
    })
}

/// What prune does with one key.
#[derive(Debug, PartialEq, Eq)]
enum Decision {
    /// Not a candidate (too young, the sealing key, unreadable).
    Keep(String),
    /// Old, but something is still sealed to it: these.
    InUse(Vec<String>),
    /// Old and unused.
    Delete,
}

#[derive(Debug)]
struct PruneDecision {
    name: String,
    fingerprint: String,
    created: String,
    decision: Decision,
}

/// Decides, for every key, whether it may be pruned.
fn plan_prune(
    store: &KeyStore,
    in_cluster: &[SealedSecret],
    repo: &[(String, SealedSecret)],
    older_than: Duration,
    now: SystemTime,
) -> Vec<PruneDecision> {
    let cutoff = now
        .checked_sub(older_than)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let sealing = store.sealing_key().map(|k| k.name.clone());
    let ring = store.keyring();
    let mut users: BTreeMap<Fingerprint, Vec<String>> = BTreeMap::new();
    let everything = in_cluster
        .iter()
        .map(|s| (format!("cluster: {}", display_name(s)), s))
        .chain(repo.iter().map(|(place, s)| (place.clone(), s)));
    for (place, object) in everything {
        let mut keys = ring.usage(object).keys;
        if let Some(hint) = object.sealing_key_hint() {
            keys.insert(hint);
        }
        for key in keys {
            users.entry(key).or_default().push(place.clone());
        }
    }
    store
        .keys
        .iter()
        .map(|key| {
            let fingerprint = key
                .fingerprint
                .as_ref()
                .map_or_else(|| "-".to_owned(), ToString::to_string);
            let decision = if sealing.as_deref() == Some(key.name.as_str()) {
                Decision::Keep("the sealing key is never pruned".to_owned())
            } else if let Some(problem) = &key.problem {
                Decision::Keep(format!("{problem}; inspect it by hand"))
            } else if key.created().is_none_or(|created| created >= cutoff) {
                Decision::Keep(format!("younger than {}", humanize(older_than)))
            } else {
                match key.fingerprint.as_ref().and_then(|f| users.get(f)) {
                    Some(places) if !places.is_empty() => Decision::InUse(places.clone()),
                    _ => Decision::Delete,
                }
            };
            PruneDecision {
                name: key.name.clone(),
                fingerprint,
                created: rfc3339(key.created()),
                decision,
            }
        })
        .collect()
}

fn humanize(duration: Duration) -> String {
    let secs = duration.as_secs();
    match secs {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_back() {
        assert_eq!(humanize(Duration::from_secs(90 * 86_400)), "90d");
        assert_eq!(humanize(Duration::from_secs(7200)), "2h");
    }

    #[test]
    fn tables_align() {
        let row = |name: &str, n| KeyRow {
            name: name.to_owned(),
            fingerprint: "SHA256:x".to_owned(),
            created: "2026-01-01T00:00:00Z".to_owned(),
            expires: "-".to_owned(),
            active: true,
            sealing: n == 1,
            sealed_secrets: n,
            problem: None,
        };
        let text = table(&[row("sealed-secrets-keyabcde", 1), row("k", 20)]);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].starts_with("NAME                      FINGERPRINT"),
            "{text}"
        );
        assert_eq!(lines[1].find("SHA256"), lines[2].find("SHA256"), "{text}");
    }
}
