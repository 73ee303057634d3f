//! Key Secrets in the controller's namespace: watched into the [`KeyRegistry`], generated when
//! there is none, renewed every `--key-renew-period`, forced by `--key-cutoff-time`.
//!
//! Active keys are Secrets labelled `sealedsecrets.bitnami.com/sealed-secrets-key: active`
//! (any other value retires a key: it no longer unseals here, and it is never deleted), plus the
//! legacy Secret named exactly `sealed-secrets-key`. A watch keeps the registry current, so keys
//! added, relabelled or removed take effect without a restart. A Secret a SealedSecret produced
//! is never loaded, whatever its labels or name ([`trust`](super::trust)); each such Secret is
//! logged once.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use futures::{StreamExt as _, stream};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Client, ResourceExt as _};
use sealbox_crypto::KeyPair;
use sealbox_crypto::key_secret::{KEY_LABEL, KEY_LABEL_ACTIVE, KeySecret};
use tokio::sync::watch;
use tracing::{error, info, warn};

use super::trust::{self, FromSealedSecret};
use super::{KeyEntry, KeyRegistry, LEGACY_KEY_SECRET};
use crate::error::{Error, Result};
use crate::object::{FIELD_MANAGER, error_chain};

/// Longest wait between two looks at the renewal schedule (keeps clock jumps harmless).
const MAX_RENEWAL_SLEEP: Duration = Duration::from_secs(600);
/// First wait after a failed key generation; doubles up to [`MAX_RENEWAL_SLEEP`].
const GENERATION_RETRY: Duration = Duration::from_secs(2);

/// How keys are stored and renewed.
#[derive(Debug, Clone)]
pub struct KeySettings {
    /// The namespace holding the key Secrets.
    pub namespace: String,
    /// generateName of new key Secrets.
    pub key_prefix: String,
    /// RSA modulus size of new keys.
    pub key_bits: usize,
    /// Subject and issuer CN of new certificates.
    pub common_name: String,
    /// How long new certificates are valid (--key-ttl).
    pub validity: Duration,
    /// A new key this long after the newest; zero disables renewal.
    pub renew_period: Duration,
    /// A new key at start if the newest is older than this.
    pub cutoff: Option<Timestamp>,
    /// Extra labels of new key Secrets (--privatekey-labels); the key label is never replaced.
    pub labels: BTreeMap<String, String>,
    /// Extra annotations of new key Secrets (--privatekey-annotations).
    pub annotations: BTreeMap<String, String>,
}

/// Keeps `registry` in line with the key Secrets until `shutdown` turns true.
pub async fn watch_keys(
    client: Client,
    namespace: String,
    registry: KeyRegistry,
    mut shutdown: watch::Receiver<bool>,
) {
    let api: Api<Secret> = Api::namespaced(client, &namespace);
    let labelled = watcher(api.clone(), watcher::Config::default().labels(KEY_LABEL))
        .default_backoff()
        .map(|event| (Source::Labelled, event));
    let legacy = watcher(
        api,
        watcher::Config::default().fields(&format!("metadata.name={LEGACY_KEY_SECRET}")),
    )
    .default_backoff()
    .map(|event| (Source::Legacy, event));
    let mut events = std::pin::pin!(stream::select(labelled, legacy));
    let mut state = WatchState::default();

    loop {
        let next = tokio::select! {
            next = events.next() => next,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        let Some((source, event)) = next else { return };
        match event {
            Ok(event) => {
                if state.apply(source, event) {
                    let entries = state.entries();
                    let count = entries.len();
                    if registry.replace(entries) {
                        let keys = registry.snapshot();
                        let sealing = keys.sealing_key().map(|k| k.fingerprint().to_string());
                        info!(keys = count, sealing_key = ?sealing, "sealing keys loaded");
                    }
                }
            }
            Err(e) => warn!(error = %error_chain(&e), "watching key Secrets failed; retrying"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Labelled,
    Legacy,
}

/// What one watch has seen: its keys and the Secrets it refused, by Secret name.
#[derive(Debug, Default)]
struct Seen {
    keys: BTreeMap<String, KeyEntry>,
    /// Secrets refused as keys because a SealedSecret produced them, and why. Each is logged
    /// when it is first refused (or refused for another reason), not at every event or relist.
    /// Bounded like `keys`: by the Secrets this watch selects in one namespace.
    refused: BTreeMap<String, FromSealedSecret>,
}

/// The keys each watch has seen, and whether each has listed once.
#[derive(Debug, Default)]
struct WatchState {
    labelled: Seen,
    legacy: Seen,
    labelled_pending: Option<Seen>,
    legacy_pending: Option<Seen>,
    labelled_synced: bool,
    legacy_synced: bool,
}

impl WatchState {
    /// Applies one watch event; returns whether the registry should be refreshed.
    fn apply(&mut self, source: Source, event: watcher::Event<Secret>) -> bool {
        let (current, pending, synced) = match source {
            Source::Labelled => (
                &mut self.labelled,
                &mut self.labelled_pending,
                &mut self.labelled_synced,
            ),
            Source::Legacy => (
                &mut self.legacy,
                &mut self.legacy_pending,
                &mut self.legacy_synced,
            ),
        };
        match event {
            watcher::Event::Init => {
                *pending = Some(Seen::default());
                false
            }
            watcher::Event::InitApply(secret) => {
                let target = pending.get_or_insert_with(Seen::default);
                upsert(target, Some(&current.refused), source, secret);
                false
            }
            watcher::Event::InitDone => {
                *current = pending.take().unwrap_or_default();
                *synced = true;
                self.labelled_synced && self.legacy_synced
            }
            watcher::Event::Apply(secret) => {
                upsert(current, None, source, secret);
                self.labelled_synced && self.legacy_synced
            }
            watcher::Event::Delete(secret) => {
                let name = secret.name_any();
                current.keys.remove(&name);
                current.refused.remove(&name);
                self.labelled_synced && self.legacy_synced
            }
        }
    }

    fn entries(&self) -> Vec<KeyEntry> {
        self.labelled
            .keys
            .values()
            .chain(self.legacy.keys.values())
            .cloned()
            .collect()
    }
}

/// Adds or replaces the key a Secret holds, or drops it when the Secret is no longer an active
/// key (relabelled, or unreadable) or shows that a SealedSecret produced it: then it is noted as
/// refused, and logged unless it was refused so already (in `seen`, or in `known`: what the watch
/// knew before the relist `seen` is filled by).
fn upsert(
    seen: &mut Seen,
    known: Option<&BTreeMap<String, FromSealedSecret>>,
    source: Source,
    mut secret: Secret,
) {
    let name = secret.name_any();
    let active = secret.labels().get(KEY_LABEL).map(String::as_str) == Some(KEY_LABEL_ACTIVE);
    if source == Source::Labelled && !active {
        seen.keys.remove(&name);
        seen.refused.remove(&name);
        return;
    }
    if let Some(why) = trust::from_sealed_secret(&secret.metadata) {
        super::wipe_secret_data(&mut secret);
        seen.keys.remove(&name);
        let logged = [Some(&seen.refused), known]
            .into_iter()
            .flatten()
            .any(|refused| refused.get(&name) == Some(&why));
        if !logged {
            warn!(
                secret = %name, reason = %why,
                "not loading a Secret a SealedSecret produced as a sealing key"
            );
        }
        seen.refused.insert(name, why);
        return;
    }
    seen.refused.remove(&name);
    match KeyEntry::from_secret(secret) {
        Ok(entry) => {
            seen.keys.insert(name, entry);
        }
        Err(e) => {
            warn!(secret = %name, error = %e, "ignoring unreadable key Secret");
            seen.keys.remove(&name);
        }
    }
}

/// Generates the first key when there is none, a new one when the newest predates the cutoff,
/// and then one every renewal period, until `shutdown` turns true.
///
/// Each change of `rotate_now` (SIGUSR1, as Bitnami's) generates a key at once; the renewal
/// period then counts from it.
pub async fn renew_keys(
    client: Client,
    settings: KeySettings,
    registry: KeyRegistry,
    mut rotate_now: watch::Receiver<u64>,
    mut shutdown: watch::Receiver<bool>,
) {
    // Only requests made during this term count.
    rotate_now.mark_unchanged();
    let mut askable = true;
    let api: Api<Secret> = Api::namespaced(client, &settings.namespace);
    let mut loaded = registry.subscribe();
    while !registry.is_loaded() {
        tokio::select! {
            _ = loaded.changed() => {}
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }

    // The newest key this task generated, in case the watch has not delivered it yet.
    let mut generated: Option<SystemTime> = None;
    let newest = |generated: Option<SystemTime>| {
        let loaded = registry.snapshot().sealing_key().map(|k| k.not_before());
        loaded.max(generated)
    };

    let first_reason = match newest(generated) {
        None => Some("no sealing key found: generating the first one"),
        Some(newest)
            if settings
                .cutoff
                .is_some_and(|cutoff| system_time(cutoff) > newest) =>
        {
            Some("the newest sealing key predates --key-cutoff-time: generating a new one")
        }
        Some(_) => None,
    };
    if let Some(reason) = first_reason {
        info!("{reason}");
        match generate_until_done(&api, &settings, &mut shutdown).await {
            Some(not_before) => generated = Some(not_before),
            None => return,
        }
    }

    loop {
        let now = SystemTime::now();
        let due = (!settings.renew_period.is_zero())
            .then(|| newest(generated).map_or(now, |n| n + settings.renew_period));
        if due.is_some_and(|due| due <= now) {
            info!(period = ?settings.renew_period, "renewing the sealing key");
            match generate_until_done(&api, &settings, &mut shutdown).await {
                Some(not_before) => generated = Some(not_before),
                None => return,
            }
            continue;
        }
        let wait = due
            .map_or(MAX_RENEWAL_SLEEP, |due| {
                due.duration_since(now).unwrap_or_default()
            })
            .min(MAX_RENEWAL_SLEEP);
        let asked = tokio::select! {
            _ = tokio::time::sleep(wait) => false,
            changed = rotate_now.changed(), if askable => {
                // Once nobody can ask any more, keep to the schedule.
                askable = changed.is_ok();
                askable
            }
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        if asked {
            info!("rotation asked for (SIGUSR1): generating a new sealing key");
            match generate_until_done(&api, &settings, &mut shutdown).await {
                Some(not_before) => generated = Some(not_before),
                None => return,
            }
        }
    }
}

/// Generates and stores a key, retrying with backoff; `None` if shut down first.
async fn generate_until_done(
    api: &Api<Secret>,
    settings: &KeySettings,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<SystemTime> {
    let mut retry = GENERATION_RETRY;
    loop {
        match create_key(api, settings).await {
            Ok((name, pair)) => {
                info!(
                    secret = %name, fingerprint = %pair.fingerprint(),
                    "new sealing key generated"
                );
                return Some(pair.certificate.not_before());
            }
            Err(e) => {
                error!(error = %error_chain(&e), retry_in = ?retry, "generating a sealing key failed")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(retry) => {}
            _ = shutdown.wait_for(|stop| *stop) => return None,
        }
        retry = (retry * 2).min(MAX_RENEWAL_SLEEP);
    }
}

/// Generates a key (on a blocking thread: RSA-4096 takes a while) and stores it as a key Secret
/// in Bitnami's format; returns the Secret's name and the key.
pub async fn create_key(api: &Api<Secret>, settings: &KeySettings) -> Result<(String, KeyPair)> {
    let bits = settings.key_bits;
    let common_name = settings.common_name.clone();
    let validity = settings.validity;
    let pair = tokio::task::spawn_blocking(move || {
        KeyPair::generate_valid_for(bits, &common_name, SystemTime::now(), validity)
    })
    .await
    .map_err(|source| Error::GenerateKeyTask { source })?
    .map_err(|source| Error::GenerateKey { source })?;

    let manifest = KeySecret::from_key_pair(&pair, &settings.namespace, &settings.key_prefix);
    let mut secret: Secret = serde_json::from_value(manifest.to_json())
        .map_err(|source| Error::RenderKeySecret { source })?;
    let labels = secret.metadata.labels.get_or_insert_with(BTreeMap::new);
    for (key, value) in &settings.labels {
        // As Bitnami's: the key label is the controller's, whatever the flag says.
        if key != KEY_LABEL {
            labels.insert(key.clone(), value.clone());
        }
    }
    if !settings.annotations.is_empty() {
        let annotations = secret
            .metadata
            .annotations
            .get_or_insert_with(BTreeMap::new);
        annotations.extend(settings.annotations.clone());
    }
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PostParams::default()
    };
    let created = api.create(&params, &secret).await;
    super::wipe_secret_data(&mut secret);
    let mut created = created.map_err(|source| Error::CreateKey {
        namespace: settings.namespace.clone(),
        source,
    })?;
    let name = created.name_any();
    super::wipe_secret_data(&mut created);
    Ok((name, pair))
}

fn system_time(timestamp: Timestamp) -> SystemTime {
    SystemTime::from(timestamp)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, OwnerReference};
    use sealbox_crds::SKIP_SET_OWNER_REFERENCES_ANNOTATION;

    use super::*;
    use crate::keys::testing::pairs;

    /// Key Secret `name` holding test key `index`, as the API server would show it.
    fn key_secret(index: usize, name: &str) -> Secret {
        let mut manifest = KeySecret::from_key_pair(&pairs()[index], "kube-system", "k").to_json();
        manifest["metadata"]["name"] = serde_json::json!(name);
        serde_json::from_value(manifest).expect("key Secret")
    }

    fn loaded(state: &WatchState) -> Vec<String> {
        let mut names: Vec<String> = state.entries().into_iter().map(|e| e.secret_name).collect();
        names.sort();
        names
    }

    /// Both watches list `labelled` and `legacy`.
    fn listed(labelled: Vec<Secret>, legacy: Vec<Secret>) -> WatchState {
        let mut state = WatchState::default();
        for (source, secrets) in [(Source::Labelled, labelled), (Source::Legacy, legacy)] {
            state.apply(source, watcher::Event::Init);
            for secret in secrets {
                state.apply(source, watcher::Event::InitApply(secret));
            }
            state.apply(source, watcher::Event::InitDone);
        }
        state
    }

    #[test]
    fn secrets_from_sealed_secrets_are_never_loaded_as_keys() {
        // The controller's own key: created (managedFields operation Update) by its manager.
        let mut generated = key_secret(0, "sealed-secrets-keyabcde");
        generated.metadata.managed_fields = Some(vec![ManagedFieldsEntry {
            manager: Some(FIELD_MANAGER.into()),
            operation: Some("Update".into()),
            ..ManagedFieldsEntry::default()
        }]);
        let operators = key_secret(1, "operator-key");

        // What the controller wrote for SealedSecrets: owned, or applied by its manager (a
        // skip-set-owner-references output), or carrying a hand-over annotation.
        let mut owned = key_secret(2, "owned");
        owned.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "bitnami.com/v1alpha1".into(),
            kind: "SealedSecret".into(),
            name: "owned".into(),
            uid: "u1".into(),
            controller: Some(true),
            block_owner_deletion: None,
        }]);
        let mut applied = key_secret(3, "applied");
        applied.metadata.managed_fields = Some(vec![ManagedFieldsEntry {
            manager: Some(FIELD_MANAGER.into()),
            operation: Some("Apply".into()),
            ..ManagedFieldsEntry::default()
        }]);
        let mut annotated = key_secret(4, "annotated");
        annotated.metadata.annotations = Some(
            [(
                SKIP_SET_OWNER_REFERENCES_ANNOTATION.to_owned(),
                "true".to_owned(),
            )]
            .into(),
        );
        let mut legacy = owned.clone();
        legacy.metadata.name = Some(LEGACY_KEY_SECRET.into());

        let mut state = listed(
            vec![generated, operators, owned.clone(), applied, annotated],
            vec![legacy],
        );
        assert_eq!(loaded(&state), ["operator-key", "sealed-secrets-keyabcde"]);
        assert_eq!(state.labelled.refused.len(), 3);
        assert_eq!(
            state.legacy.refused.get(LEGACY_KEY_SECRET),
            Some(&FromSealedSecret::OwnerReference)
        );

        // Added later: the same. Removing the owner makes it an operator's key again.
        let mut late = key_secret(5, "late");
        late.metadata.owner_references = owned.metadata.owner_references.clone();
        assert!(state.apply(Source::Labelled, watcher::Event::Apply(late.clone())));
        assert_eq!(loaded(&state), ["operator-key", "sealed-secrets-keyabcde"]);
        late.metadata.owner_references = None;
        state.apply(Source::Labelled, watcher::Event::Apply(late));
        assert_eq!(
            loaded(&state),
            ["late", "operator-key", "sealed-secrets-keyabcde"]
        );
        assert!(!state.labelled.refused.contains_key("late"));
    }
}
