//! The controller's key Secrets as the CLI reads and writes them, through the Kubernetes API.
//!
//! Key Secrets are found as the controller finds them: Secrets in the controller's namespace
//! labelled `sealedsecrets.bitnami.com/sealed-secrets-key` (only the value `active` is used by
//! the controller; others are listed as inactive) and the legacy Secret named
//! `sealed-secrets-key`. Which key seals is decided by `sealbox_crypto::key_order`, as in the
//! controller.

use std::time::SystemTime;

use http::Method;
use sealbox_crypto::key_order::{self, KeyAge};
use sealbox_crypto::key_secret::{DEFAULT_KEY_PREFIX, KEY_LABEL};
use sealbox_crypto::{Certificate, Fingerprint, KeySecret, PrivateKey};
use serde_json::Value;
use zeroize::Zeroizing;

use crate::cluster::Cluster;
use crate::document::scrub;
use crate::error::{Error, Result};
use crate::keyring::Keyring;

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
            // A real API server leaves kind and apiVersion off the items of a list.
            if let Some(object) = item.as_object_mut() {
                object
                    .entry("kind")
                    .or_insert_with(|| Value::from("Secret"));
                object
                    .entry("apiVersion")
                    .or_insert_with(|| Value::from("v1"));
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

    /// The key the controller seals with: among the active keys with a certificate, the one
    /// [`key_order`] picks.
    pub fn sealing_key(&self) -> Option<&StoredKey> {
        let candidates = self
            .keys
            .iter()
            .filter(|k| k.active())
            .filter_map(|k| Some((k, k.created()?)));
        key_order::sealing_key(candidates, |(key, not_before)| KeyAge {
            not_before: *not_before,
            created: None,
            secret_name: &key.name,
        })
        .map(|(key, _)| key)
    }

    /// The List manifest a backup holds: every key Secret, server fields dropped.
    pub fn backup_manifest(&self) -> Result<Zeroizing<String>> {
        let mut items: Vec<Value> = self.keys.iter().map(|k| k.secret.to_json()).collect();
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

/// Creates a key Secret; returns its name.
pub async fn create_key_secret(cluster: &Cluster, secret: &KeySecret) -> Result<String> {
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

/// Deletes the key Secret `name` of the controller's namespace.
pub async fn delete_key_secret(cluster: &Cluster, name: &str) -> Result<()> {
    let namespace = &cluster.options.controller_namespace;
    cluster
        .send_json(
            Method::DELETE,
            &format!("/api/v1/namespaces/{namespace}/secrets/{name}"),
            Vec::new(),
            &format!("delete the key Secret {namespace}/{name}"),
        )
        .await?;
    Ok(())
}
