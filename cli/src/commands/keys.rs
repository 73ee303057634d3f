//! `sealbox keys list|rotate|backup|restore|prune`: the controller's key Secrets, read and
//! written directly through the Kubernetes API ([`crate::key_store`]); what uses which key is
//! [`crate::key_usage`]'s.

use std::collections::BTreeSet;
use std::io::Write;
use std::time::SystemTime;

use sealbox_crypto::key_secret::DEFAULT_KEY_PREFIX;
use sealbox_crypto::{Certificate, KeyPair, KeySecret};
use serde::Serialize;

use crate::Outcome;
use crate::backup::{self, Openers, Protection};
use crate::cli::{
    KeysBackupArgs, KeysCommand, KeysListArgs, KeysPruneArgs, KeysRestoreArgs, KeysRotateArgs,
    ListFormat,
};
use crate::cluster::{self, Cluster};
use crate::error::{Error, Result};
use crate::key_store::{KeyStore, create_key_secret, delete_key_secret};
use crate::key_usage::{
    ClusterSealed, Decision, KeyCounts, PruneDecision, count_by_key, humanize, plan_prune,
    sealed_in_cluster, sealed_in_files,
};
use crate::output::{Visibility, deprecated_output_file, emit, note, rfc3339, write_atomically};

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

fn list(args: &KeysListArgs, stdout: impl Write, mut stderr: impl Write) -> Result<Outcome> {
    let options = args.cluster.options();
    let (store, sealed) = cluster::block_on(async {
        let cluster = Cluster::connect(&options).await?;
        let store = KeyStore::load(&cluster).await?;
        let sealed = sealed_in_cluster(&cluster).await?;
        Ok::<_, Error>((store, sealed))
    })??;
    if store.keys.is_empty() {
        return Err(Error::NoKeys {
            namespace: store.namespace,
        });
    }
    let counts = count_by_key(&store, &sealed.objects);
    let rows = rows(&store, &counts);
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
    emit(rendered.as_bytes(), None, Visibility::Public, stdout)?;
    list_summary(&store, &sealed, &counts, &mut stderr);
    Ok(Outcome::Success)
}

/// One row per key, newest first.
fn rows(store: &KeyStore, counts: &KeyCounts) -> Vec<KeyRow> {
    let sealing = store.sealing_key().map(|k| k.name.clone());
    store
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
                .and_then(|f| counts.per_key.get(f))
                .copied()
                .unwrap_or(0),
            problem: key.problem.clone(),
        })
        .collect()
}

/// How the SealedSecrets of the cluster were counted, on stderr.
fn list_summary(
    store: &KeyStore,
    sealed: &ClusterSealed,
    counts: &KeyCounts,
    stderr: &mut impl Write,
) {
    if !sealed.installed {
        note(
            stderr,
            format_args!(
                "the SealedSecret resource is not installed in this cluster; no SealedSecret counted"
            ),
        );
        return;
    }
    let malformed = sealed.malformed;
    let _ = writeln!(
        stderr,
        "{} SealedSecret(s) in the cluster: {} counted by their sealing-key hint, {} by trying the keys, {} sealed to no key in {}{}",
        sealed.objects.len() + malformed,
        counts.by_hint,
        counts.by_trial,
        counts.unknown,
        store.namespace,
        if malformed > 0 {
            format!(", {malformed} malformed (not counted)")
        } else {
            String::new()
        }
    );
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

fn rotate(args: &KeysRotateArgs, mut stderr: impl Write) -> Result<Outcome> {
    let options = args.cluster.options();
    let (pair, name) = cluster::block_on(async {
        // A missing or unreachable cluster is found before the seconds a key takes to make.
        let cluster = Cluster::connect(&options).await?;
        cluster
            .client
            .apiserver_version()
            .await
            .map_err(|e| cluster.api_error("reach the API server", e))?;
        tracing::debug!(bits = args.key_size, "generating a new sealing key");
        let pair = KeyPair::generate_with_bits(args.key_size, &args.my_cn, SystemTime::now())
            .map_err(|source| Error::GenerateKey {
                source: Box::new(source),
            })?;
        let secret =
            KeySecret::from_key_pair(&pair, &options.controller_namespace, &args.key_prefix);
        let name = create_key_secret(&cluster, &secret).await?;
        Ok::<_, Error>((pair, name))
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

fn backup(args: &KeysBackupArgs, mut stderr: impl Write) -> Result<Outcome> {
    let (output, deprecated) = args.file.target().ok_or_else(|| Error::MissingFlag {
        flag: "-w FILE",
        why: "keys backup writes the keys to a file".to_owned(),
    })?;
    if deprecated {
        deprecated_output_file(&mut stderr);
    }
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
    if output.is_dir() {
        return Err(Error::OutputPath {
            path: output.to_owned(),
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
    let manifest = store.backup_manifest()?;
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

fn restore(args: &KeysRestoreArgs, mut stderr: impl Write) -> Result<Outcome> {
    let openers = Openers {
        passphrase_file: args.passphrase.passphrase_file.as_deref(),
        identities: &args.identities,
    };
    let backed_up = backup::read_key_backup(&args.file, &openers)?;
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

fn prune(args: &KeysPruneArgs, mut stderr: impl Write) -> Result<Outcome> {
    let repo = sealed_in_files(&args.paths, &mut stderr)?;
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
        let in_cluster = sealed_in_cluster(&cluster).await?;
        if in_cluster.malformed > 0 {
            return Err(Error::ClusterRequest {
                what: "check which keys SealedSecrets use".to_owned(),
                code: 200,
                reason: format!(
                    "{} SealedSecret(s) in the cluster are malformed, so their keys cannot be told; fix or delete them first",
                    in_cluster.malformed
                ),
            });
        }
        let decisions = plan_prune(
            &store,
            &in_cluster.objects,
            &repo,
            older_than,
            SystemTime::now(),
        );
        let mut deleted = Vec::new();
        if yes {
            for decision in &decisions {
                if let Decision::Delete = decision.decision {
                    delete_key_secret(&cluster, &decision.name).await?;
                    deleted.push(decision.name.clone());
                }
            }
        }
        Ok((store, decisions, deleted))
    })??;
    let refused = report_prune(&store, &decisions, &deleted, args, &mut stderr);
    Ok(if refused > 0 {
        Outcome::ProblemsFound
    } else {
        Outcome::Success
    })
}

/// Says what prune did (or, without `--yes`, would do) with each key; returns how many keys it
/// refused to prune.
fn report_prune(
    store: &KeyStore,
    decisions: &[PruneDecision],
    deleted: &[String],
    args: &KeysPruneArgs,
    stderr: &mut impl Write,
) -> usize {
    let mut refused = 0;
    let mut deletable = 0;
    for decision in decisions {
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
                let done = if deleted.contains(&decision.name) {
                    "deleted"
                } else {
                    "would delete"
                };
                let _ = writeln!(stderr, "{done} {key}");
            }
        }
    }
    if refused > 0 {
        let _ = writeln!(
            stderr,
            "{refused} key(s) still in use: re-seal what uses them with `sealbox reencrypt` (and let the cluster sync), then prune again"
        );
    }
    if !args.yes && deletable > 0 {
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
            humanize(args.older_than)
        );
    }
    refused
}

#[cfg(test)]
mod tests {
    use super::*;

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
