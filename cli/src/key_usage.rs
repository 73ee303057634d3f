//! Which SealedSecrets use which key (in the cluster and in repository files), and so which
//! keys `keys prune` may delete. The decisions are pure functions over what was read.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use sealbox_crds::SealedSecret;
use sealbox_crypto::Fingerprint;

use crate::cluster::Cluster;
use crate::document::{parse, read_file};
use crate::error::Result;
use crate::key_store::KeyStore;
use crate::keyring::Keyring;
use crate::output::{note, rfc3339};
use crate::sealed::{self, display_name};
use crate::walk::{Ignore, manifest_files};

/// The SealedSecrets of the cluster.
#[derive(Debug, Default)]
pub struct ClusterSealed {
    /// Those that parse.
    pub objects: Vec<SealedSecret>,
    /// Those that do not (counted, not used).
    pub malformed: usize,
    /// Whether the SealedSecret resource is installed at all.
    pub installed: bool,
}

/// SealedSecrets of the cluster that parse; malformed ones are counted.
pub async fn sealed_in_cluster(cluster: &Cluster) -> Result<ClusterSealed> {
    let Some(items) = cluster.sealed_secrets().await? else {
        return Ok(ClusterSealed::default());
    };
    let mut sealed = ClusterSealed {
        objects: Vec::with_capacity(items.len()),
        malformed: 0,
        installed: true,
    };
    for item in items {
        match serde_json::from_value::<SealedSecret>(item) {
            Ok(object) => sealed.objects.push(object),
            Err(_) => sealed.malformed += 1,
        }
    }
    Ok(sealed)
}

/// How many SealedSecrets each key seals, and how that was told.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct KeyCounts {
    /// SealedSecrets per key.
    pub per_key: BTreeMap<Fingerprint, usize>,
    /// Counted by a sealing-key hint naming a key of the store.
    pub by_hint: usize,
    /// Counted by trying the keys on one value.
    pub by_trial: usize,
    /// Sealed to no key of the store.
    pub unknown: usize,
}

/// Counts the SealedSecrets of each key: the hint first; a trial on one value for those without
/// a (known) hint.
pub fn count_by_key(store: &KeyStore, sealed: &[SealedSecret]) -> KeyCounts {
    let known: BTreeSet<&Fingerprint> = store
        .keys
        .iter()
        .filter_map(|k| k.fingerprint.as_ref())
        .collect();
    let mut counts = KeyCounts::default();
    let mut keyring: Option<Keyring> = None;
    for object in sealed {
        match object.sealing_key_hint().filter(|h| known.contains(h)) {
            Some(hint) => {
                *counts.per_key.entry(hint).or_default() += 1;
                counts.by_hint += 1;
            }
            None => {
                let ring = keyring.get_or_insert_with(|| store.keyring());
                match ring.first_key(object) {
                    Some(fingerprint) => {
                        *counts.per_key.entry(fingerprint).or_default() += 1;
                        counts.by_trial += 1;
                    }
                    None => counts.unknown += 1,
                }
            }
        }
    }
    counts
}

/// SealedSecrets in repository files, with where they are.
pub fn sealed_in_files(
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

/// What prune does with one key.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Not a candidate (too young, the sealing key, unreadable).
    Keep(String),
    /// Old, but something is still sealed to it: these.
    InUse(Vec<String>),
    /// Old and unused.
    Delete,
}

/// One key and what prune does with it.
#[derive(Debug)]
pub struct PruneDecision {
    /// The key Secret.
    pub name: String,
    /// Its fingerprint, `-` when unknown.
    pub fingerprint: String,
    /// Its certificate's NotBefore, as shown.
    pub created: String,
    /// What prune does with it.
    pub decision: Decision,
}

/// Decides, for every key, whether it may be pruned.
pub fn plan_prune(
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

/// A duration as `--older-than` takes it: `90d`, `2h`, `30s`.
pub fn humanize(duration: Duration) -> String {
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
}
