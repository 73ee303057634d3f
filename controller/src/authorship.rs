//! Proof of authorship: what the controller records on each Secret it writes, so that after a
//! restart or a failover it can tell, without a private-key operation, that the Secret still
//! holds what it wrote for the SealedSecret as the SealedSecret is now, and so that nobody else
//! can make it believe so.
//!
//! Two annotations on the Secret:
//! - [`SEALED_DIGEST_ANNOTATION`]: SHA-256 over the sealed inputs the Secret came from
//!   ([`SealedDigest`]: the spec, sealed values included, the scope's label and the options that
//!   change the result). Its inputs are ciphertext and metadata, already public in Git.
//! - [`PROOF_ANNOTATION`]: `v1 <fingerprint> <owner tag> <content tag>`, two HMAC-SHA256 tags under
//!   a key only the controller holds, derived from the named private key
//!   ([`Keys::authorship_key`]):
//!   - the *owner tag* covers the SealedSecret's namespace, name and UID: this controller wrote
//!     the Secret for that SealedSecret. It lets the controller recognise a Secret it wrote
//!     without an ownerReference (`skip-set-owner-references`);
//!   - the *content tag* covers the same identity, the sealed digest, and the Secret's type,
//!     immutability, labels, annotations (but these two), whether the SealedSecret controls it,
//!     and its data: the Secret is, to the byte, what the controller wrote for these inputs.
//!
//! Both tags bind the SealedSecret's UID, so a proof copied to another Secret, or kept across a
//! deletion and re-creation, is not trusted; the digest binds the sealed inputs, so an old Secret
//! put back after a re-seal is not either. Tags are compared in constant time. A proof under a key
//! that is no longer loaded proves nothing, and the Secret is unsealed again. SECURITY.md tells
//! what the annotations reveal (nothing of the plaintext) and what a Secret writer can do.

use std::collections::BTreeMap;

use aws_lc_rs::{constant_time, digest, hmac};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use k8s_openapi::api::core::v1::Secret;
use sealbox_crypto::Fingerprint;

use crate::desired::SEALED_SECRET_KIND;
use crate::keys::Keys;
use crate::ownership::secret_type;

/// The digest of the sealed inputs a Secret was written from.
pub const SEALED_DIGEST_ANNOTATION: &str = "sealbox.dev/sealed-digest";
/// The controller's proof that it wrote the Secret.
pub const PROOF_ANNOTATION: &str = "sealbox.dev/proof";

/// The proof format's version, first word of [`PROOF_ANNOTATION`].
const PROOF_VERSION: &str = "v1";
/// Longest proof read: a fingerprint (`SHA256:` + 43) and two 43-character tags with their
/// separators take 140 bytes; anything much longer is not ours and is not parsed.
const MAX_PROOF: usize = 256;
/// Domain separation of the two tags (and of the digest), so that one never stands for another.
const OWNER_TAG: &[u8] = b"sealbox.dev/proof/v1/owner";
const CONTENT_TAG: &[u8] = b"sealbox.dev/proof/v1/content";
const DIGEST_CONTEXT: &[u8] = b"sealbox.dev/sealed-digest/v1";

/// SHA-256 over everything the Secret depends on besides the keys: a change means unsealing
/// again.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SealedDigest([u8; 32]);

impl SealedDigest {
    /// The digest of a spec whose canonical JSON hashes to `spec_sha256`, sealed with `label`
    /// (the scope's OAEP label), unsealed with `accept_deprecated_v1_data`.
    pub fn new(spec_sha256: &[u8; 32], label: &[u8], accept_deprecated_v1_data: bool) -> Self {
        let mut context = digest::Context::new(&digest::SHA256);
        field(&mut context, DIGEST_CONTEXT);
        field(&mut context, spec_sha256);
        field(&mut context, label);
        field(&mut context, &[u8::from(accept_deprecated_v1_data)]);
        let mut bytes = [0; 32];
        bytes.copy_from_slice(context.finish().as_ref());
        SealedDigest(bytes)
    }

    /// SHA-256 of a spec's canonical JSON, for [`SealedDigest::new`].
    pub fn spec_sha256(spec_json: &[u8]) -> [u8; 32] {
        let mut bytes = [0; 32];
        bytes.copy_from_slice(digest::digest(&digest::SHA256, spec_json).as_ref());
        bytes
    }

    /// The annotation's value: `sha256:` and unpadded base64url.
    pub fn annotation(&self) -> String {
        format!("sha256:{}", URL_SAFE_NO_PAD.encode(self.0))
    }
}

impl std::fmt::Debug for SealedDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.annotation())
    }
}

/// The SealedSecret a Secret is written for.
#[derive(Debug, Clone, Copy)]
pub struct Identity<'a> {
    /// Its namespace (the Secret's too).
    pub namespace: &'a str,
    /// Its name (the Secret's too).
    pub name: &'a str,
    /// Its UID: a proof is for one incarnation.
    pub uid: &'a str,
}

/// What a Secret's proof shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authorship {
    /// Nothing this controller can check: no proof, a malformed one, one under a key that is not
    /// loaded, or one that does not verify (made up, copied from another Secret, or for a
    /// previous incarnation of the SealedSecret).
    Unproven,
    /// Written by this controller for this SealedSecret, but no longer what its sealed inputs
    /// make: the inputs changed, or someone edited the Secret.
    Authored,
    /// Written by this controller for this SealedSecret from the sealed inputs it has now, and
    /// unchanged since.
    Authentic,
}

impl Authorship {
    /// Whether this controller wrote the Secret for this SealedSecret (it may have changed).
    pub fn is_authored(self) -> bool {
        self != Authorship::Unproven
    }
}

/// Proves and checks authorship of Secrets for one SealedSecret with the keys loaded.
#[derive(Debug, Clone, Copy)]
pub struct Author<'a> {
    /// The keys: the newest signs, any of them verifies.
    pub keys: &'a Keys,
    /// The SealedSecret.
    pub identity: Identity<'a>,
    /// Its sealed inputs now.
    pub digest: &'a SealedDigest,
}

impl Author<'_> {
    /// Records on `secret` (about to be written) the digest and the proof, under the newest
    /// key. Without keys there is nothing to prove with, and nothing is recorded.
    pub fn sign(&self, secret: &mut Secret) {
        let Some((fingerprint, key)) = self.keys.newest_authorship_key() else {
            return;
        };
        let owner = owner_tag(key, &self.identity);
        let content = content_tag(key, &self.identity, self.digest, secret);
        let annotations = secret.metadata.annotations.get_or_insert_default();
        annotations.insert(
            SEALED_DIGEST_ANNOTATION.to_owned(),
            self.digest.annotation(),
        );
        annotations.insert(
            PROOF_ANNOTATION.to_owned(),
            format!(
                "{PROOF_VERSION} {fingerprint} {} {}",
                URL_SAFE_NO_PAD.encode(owner),
                URL_SAFE_NO_PAD.encode(content)
            ),
        );
    }

    /// What `secret`'s proof shows about it.
    pub fn verify(&self, secret: &Secret) -> Authorship {
        let Some(proof) = secret
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(PROOF_ANNOTATION))
            .and_then(|value| Proof::parse(value))
        else {
            return Authorship::Unproven;
        };
        let Some(key) = self.keys.authorship_key(&proof.fingerprint) else {
            return Authorship::Unproven;
        };
        if !same_tag(&owner_tag(key, &self.identity), &proof.owner) {
            return Authorship::Unproven;
        }
        if same_tag(
            &content_tag(key, &self.identity, self.digest, secret),
            &proof.content,
        ) {
            Authorship::Authentic
        } else {
            Authorship::Authored
        }
    }
}

/// A parsed [`PROOF_ANNOTATION`].
struct Proof {
    fingerprint: Fingerprint,
    owner: Vec<u8>,
    content: Vec<u8>,
}

impl Proof {
    /// Reads `v1 <fingerprint> <owner tag> <content tag>`; anything else is no proof.
    fn parse(value: &str) -> Option<Proof> {
        if value.len() > MAX_PROOF {
            return None;
        }
        let mut words = value.split(' ');
        let (version, fingerprint, owner, content) =
            (words.next()?, words.next()?, words.next()?, words.next()?);
        if version != PROOF_VERSION || words.next().is_some() {
            return None;
        }
        Some(Proof {
            fingerprint: fingerprint.parse().ok()?,
            owner: URL_SAFE_NO_PAD.decode(owner).ok()?,
            content: URL_SAFE_NO_PAD.decode(content).ok()?,
        })
    }
}

/// Constant-time tag comparison (a length mismatch says nothing about the tag).
fn same_tag(expected: &hmac::Tag, given: &[u8]) -> bool {
    constant_time::verify_slices_are_equal(expected.as_ref(), given).is_ok()
}

fn owner_tag(key: &hmac::Key, identity: &Identity<'_>) -> hmac::Tag {
    let mut context = hmac::Context::with_key(key);
    field(&mut context, OWNER_TAG);
    identity_fields(&mut context, identity);
    context.sign()
}

/// The content tag over what the write of `secret` decides: everything the controller sets and
/// [`ownership::plan`](crate::ownership::plan) compares when it replaces a Secret.
fn content_tag(
    key: &hmac::Key,
    identity: &Identity<'_>,
    digest: &SealedDigest,
    secret: &Secret,
) -> hmac::Tag {
    let mut context = hmac::Context::with_key(key);
    field(&mut context, CONTENT_TAG);
    identity_fields(&mut context, identity);
    field(&mut context, &digest.0);
    field(&mut context, secret_type(secret).as_bytes());
    let flags = [
        u8::from(secret.immutable.unwrap_or(false)),
        u8::from(controlled_by(secret, identity)),
    ];
    field(&mut context, &flags);
    map(
        &mut context,
        secret.metadata.labels.as_ref(),
        |_| true,
        |v| v.as_bytes(),
    );
    map(
        &mut context,
        secret.metadata.annotations.as_ref(),
        |key| key != SEALED_DIGEST_ANNOTATION && key != PROOF_ANNOTATION,
        |v| v.as_bytes(),
    );
    map(&mut context, secret.data.as_ref(), |_| true, |v| &v.0);
    context.sign()
}

fn identity_fields(context: &mut impl Update, identity: &Identity<'_>) {
    field(context, identity.namespace.as_bytes());
    field(context, identity.name.as_bytes());
    field(context, identity.uid.as_bytes());
}

/// Whether the SealedSecret `identity` is `secret`'s controller.
fn controlled_by(secret: &Secret, identity: &Identity<'_>) -> bool {
    secret.metadata.owner_references.iter().flatten().any(|r| {
        r.controller == Some(true)
            && r.uid == identity.uid
            && r.name == identity.name
            && r.kind == SEALED_SECRET_KIND
    })
}

/// The entries of `entries` whose key passes `keep`, count first (absent and empty are the
/// same).
fn map<V>(
    context: &mut impl Update,
    entries: Option<&BTreeMap<String, V>>,
    keep: impl Fn(&str) -> bool,
    bytes: impl Fn(&V) -> &[u8],
) {
    let kept = || entries.into_iter().flatten().filter(|(k, _)| keep(k));
    field(context, &(kept().count() as u64).to_be_bytes());
    for (key, value) in kept() {
        field(context, key.as_bytes());
        field(context, bytes(value));
    }
}

/// One length-prefixed field: no two sequences of fields encode alike.
fn field(context: &mut impl Update, bytes: &[u8]) {
    context.update(&(bytes.len() as u64).to_be_bytes());
    context.update(bytes);
}

/// A digest or MAC being computed.
trait Update {
    fn update(&mut self, bytes: &[u8]);
}

impl Update for digest::Context {
    fn update(&mut self, bytes: &[u8]) {
        digest::Context::update(self, bytes);
    }
}

impl Update for hmac::Context {
    fn update(&mut self, bytes: &[u8]) {
        hmac::Context::update(self, bytes);
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::ByteString;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

    use super::*;
    use crate::keys::testing::keys;

    const IDENTITY: Identity<'static> = Identity {
        namespace: "prod",
        name: "db",
        uid: "u1",
    };

    fn digest(spec: &str) -> SealedDigest {
        SealedDigest::new(
            &SealedDigest::spec_sha256(spec.as_bytes()),
            b"prod/db",
            false,
        )
    }

    fn secret(password: &str) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some("db".into()),
                namespace: Some("prod".into()),
                labels: Some([("app".to_owned(), "web".to_owned())].into()),
                owner_references: Some(vec![OwnerReference {
                    api_version: "bitnami.com/v1alpha1".into(),
                    kind: SEALED_SECRET_KIND.into(),
                    name: "db".into(),
                    uid: "u1".into(),
                    controller: Some(true),
                    block_owner_deletion: None,
                }]),
                ..ObjectMeta::default()
            },
            data: Some([("password".to_owned(), ByteString(password.into()))].into()),
            ..Secret::default()
        }
    }

    fn signed(
        keys: &Keys,
        identity: Identity<'_>,
        digest: &SealedDigest,
        password: &str,
    ) -> Secret {
        let mut secret = secret(password);
        Author {
            keys,
            identity,
            digest,
        }
        .sign(&mut secret);
        secret
    }

    fn verify(
        keys: &Keys,
        identity: Identity<'_>,
        digest: &SealedDigest,
        s: &Secret,
    ) -> Authorship {
        Author {
            keys,
            identity,
            digest,
        }
        .verify(s)
    }

    fn proof(secret: &Secret) -> &str {
        secret
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(PROOF_ANNOTATION))
            .map_or("", String::as_str)
    }

    #[test]
    fn a_signed_secret_is_authentic_until_edited() {
        let keys = keys(2);
        let d = digest("spec");
        let mut s = signed(&keys, IDENTITY, &d, "p1");
        assert_eq!(verify(&keys, IDENTITY, &d, &s), Authorship::Authentic);
        // The API server's defaults are no change.
        s.type_ = Some("Opaque".into());
        s.immutable = Some(false);
        s.metadata.resource_version = Some("7".into());
        assert_eq!(verify(&keys, IDENTITY, &d, &s), Authorship::Authentic);

        let edits: [fn(&mut Secret); 7] = [
            |s| s.data = Some([("password".to_owned(), ByteString(b"p2".to_vec()))].into()),
            |s| {
                s.data
                    .get_or_insert_default()
                    .insert("extra".into(), ByteString(vec![]));
            },
            |s| s.type_ = Some("kubernetes.io/tls".into()),
            |s| s.immutable = Some(true),
            |s| s.metadata.labels = None,
            |s| {
                s.metadata
                    .annotations
                    .get_or_insert_default()
                    .insert("note".into(), "x".into());
            },
            |s| s.metadata.owner_references = None,
        ];
        for edit in edits {
            let mut edited = s.clone();
            edit(&mut edited);
            // Still ours (the owner tag holds): restored, even without an ownerReference.
            assert_eq!(verify(&keys, IDENTITY, &d, &edited), Authorship::Authored);
        }
    }

    #[test]
    fn changed_sealed_inputs_are_not_authentic() {
        let keys = keys(1);
        let s = signed(&keys, IDENTITY, &digest("spec"), "p1");
        assert_eq!(
            verify(&keys, IDENTITY, &digest("re-sealed"), &s),
            Authorship::Authored
        );
        // The scope and the deprecated-data option are inputs too.
        let spec = SealedDigest::spec_sha256(b"spec");
        assert_ne!(digest("spec"), SealedDigest::new(&spec, b"prod", false));
        assert_ne!(digest("spec"), SealedDigest::new(&spec, b"prod/db", true));
    }

    #[test]
    fn a_proof_for_another_secret_or_incarnation_is_not_trusted() {
        let keys = keys(1);
        let d = digest("spec");
        let original = signed(&keys, IDENTITY, &d, "p1");
        for other in [
            Identity {
                name: "web",
                ..IDENTITY
            },
            Identity {
                namespace: "dev",
                ..IDENTITY
            },
            Identity {
                uid: "u2",
                ..IDENTITY
            },
        ] {
            // Data and annotations copied whole onto the Secret of another SealedSecret.
            assert_eq!(verify(&keys, other, &d, &original), Authorship::Unproven);
        }
    }

    #[test]
    fn a_proof_without_the_key_is_not_trusted() {
        let d = digest("spec");
        let s = signed(&keys(1), IDENTITY, &d, "p1");
        // Another controller's keys (another cluster), or the key was removed.
        let others = Keys::new(keys(3).entries()[1..].to_vec(), Default::default());
        assert_eq!(verify(&others, IDENTITY, &d, &s), Authorship::Unproven);
        assert_eq!(
            verify(&Keys::default(), IDENTITY, &d, &s),
            Authorship::Unproven
        );

        // A proof made up by someone who knows everything but the key: here, a key derived the
        // same way from public inputs only (the fingerprint).
        let fingerprint = keys(1).fingerprints()[0].clone();
        let guessed = hmac::Key::new(hmac::HMAC_SHA256, fingerprint.to_string().as_bytes());
        let mut forged = secret("p2");
        let value = format!(
            "v1 {fingerprint} {} {}",
            URL_SAFE_NO_PAD.encode(owner_tag(&guessed, &IDENTITY)),
            URL_SAFE_NO_PAD.encode(content_tag(&guessed, &IDENTITY, &d, &forged))
        );
        forged
            .metadata
            .annotations
            .get_or_insert_default()
            .insert(PROOF_ANNOTATION.into(), value);
        assert_eq!(
            verify(&keys(1), IDENTITY, &d, &forged),
            Authorship::Unproven
        );
    }

    #[test]
    fn an_older_key_still_verifies_and_the_newest_signs() {
        let d = digest("spec");
        let before = Keys::new(keys(2).entries()[1..].to_vec(), Default::default());
        let old = signed(&before, IDENTITY, &d, "p1");
        // A new key arrives (renewal): the proof under the old one still holds.
        let renewed = keys(2);
        assert_eq!(verify(&renewed, IDENTITY, &d, &old), Authorship::Authentic);
        let new = signed(&renewed, IDENTITY, &d, "p1");
        assert!(proof(&new).contains(&renewed.fingerprints()[0].to_string()));
        assert_ne!(proof(&new), proof(&old));
        // Deterministic: signing the same Secret again gives the same proof (no rewrite).
        assert_eq!(proof(&signed(&renewed, IDENTITY, &d, "p1")), proof(&new));
    }

    #[test]
    fn malformed_proofs_prove_nothing() {
        let keys = keys(1);
        let d = digest("spec");
        let good = signed(&keys, IDENTITY, &d, "p1");
        let value = proof(&good).to_owned();
        let words: Vec<&str> = value.split(' ').collect();
        for bad in [
            String::new(),
            "v1".to_owned(),
            value.replacen("v1", "v2", 1),
            format!("{value} extra"),
            format!("{} {} {}", words[0], words[1], words[2]),
            format!("{} {} {} {}", words[0], words[1], words[2], "!!!"),
            format!("{} {} {}", words[0], words[1], "A".repeat(MAX_PROOF)),
            // The tags swapped.
            format!("{} {} {} {}", words[0], words[1], words[3], words[2]),
        ] {
            let mut s = good.clone();
            s.metadata
                .annotations
                .get_or_insert_default()
                .insert(PROOF_ANNOTATION.into(), bad.clone());
            assert_eq!(
                verify(&keys, IDENTITY, &d, &s),
                Authorship::Unproven,
                "{bad}"
            );
        }
    }

    #[test]
    fn the_annotations_show_no_plaintext() {
        let keys = keys(1);
        let d = digest("spec");
        let s = signed(&keys, IDENTITY, &d, "hunter2-very-secret");
        let annotations = s.metadata.annotations.clone().unwrap_or_default();
        assert_eq!(annotations.len(), 2);
        assert_eq!(annotations[SEALED_DIGEST_ANNOTATION], d.annotation());
        for value in annotations.values() {
            assert!(value.len() <= MAX_PROOF);
            assert!(!value.contains("hunter2"));
        }
    }
}
