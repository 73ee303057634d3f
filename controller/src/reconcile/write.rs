//! The Secret write: whether the Secret is ours to write ([`ownership::plan`]), its proof of
//! authorship ([`Author::sign`]), whether its SealedSecret still exists
//! ([`Owner::is_current`]), server-side apply with the one field manager, and removing the keys
//! another writer left in it.

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};

use crate::authorship::Author;
use crate::desired::SecretWithData;
use crate::error::{Error, Result};
use crate::object::FIELD_MANAGER;
use crate::ownership::{self, Leftovers, Ownership, Plan};
use crate::reconcile::recheck::Owner;

/// `reason` labels of `sealed_secrets_controller_unseal_errors_total` that Bitnami uses too: a
/// Secret that is not ours, a write the API server refused.
const REASON_METRIC_UNMANAGED: &str = "unmanaged";
const REASON_METRIC_UPDATE: &str = "update";

/// What became of the Secret.
pub(super) enum Written {
    /// Written; the Secret's resourceVersion afterwards.
    Changed(Option<String>),
    /// Already right; its resourceVersion.
    Unchanged(Option<String>),
    /// Not written: the SealedSecret was deleted (or replaced by a new incarnation) meanwhile.
    OwnerGone,
    /// Not ours to write, or the API refused it for good.
    Refused {
        /// The `reason` label of the unseal error metric.
        metric: &'static str,
        /// For the status and the event.
        message: String,
    },
}

/// Brings the Secret in line with `desired`, if it is ours to write and `owner` still exists,
/// with `author`'s proof that the controller wrote it.
pub(super) async fn write_secret(
    secrets: &Api<Secret>,
    mut desired: SecretWithData,
    author: &Author<'_>,
    owner: &Owner<'_>,
) -> Result<Written> {
    let uid = owner.uid();
    let name = desired.get().metadata.name.clone().unwrap_or_default();
    let namespace = desired.get().metadata.namespace.clone().unwrap_or_default();
    let id = format!("{namespace}/{name}");
    let existing = secrets
        .get_opt(&name)
        .await
        .map_err(|source| Error::GetSecret {
            secret: id.clone(),
            source,
        })?
        .map(SecretWithData::new);

    let existing_secret = existing.as_ref().map(SecretWithData::get);
    let authored = existing_secret.is_some_and(|e| author.verify(e).is_authored());
    // A patched Secret is someone else's: the controller adds to it but never claims it (its
    // proof would let a later write replace the rest), and its apply drops a proof left from
    // before.
    let patched = existing_secret.is_some_and(|e| {
        matches!(
            ownership::ownership(&e.metadata, Some(uid), authored),
            Ownership::Patch { .. }
        )
    });
    let plan = plan(
        existing_secret,
        desired.get_mut(),
        author,
        uid,
        authored,
        patched,
    );
    let write = match plan {
        Err(refusal) => {
            return Ok(Written::Refused {
                metric: REASON_METRIC_UNMANAGED,
                message: refusal.to_string(),
            });
        }
        Ok(Plan::InSync) => {
            let version = existing.and_then(|e| e.get().metadata.resource_version.clone());
            return Ok(Written::Unchanged(version));
        }
        Ok(Plan::Write(write)) => write,
    };
    drop(existing);
    // Last, so that the SealedSecret is confirmed after the Secret was read: the plan may have
    // handed its earlier incarnation's Secret to it (see `incarnation`).
    if !owner.is_current().await? {
        return Ok(Written::OwnerGone);
    }

    write.prepare(desired.get_mut());
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let applied = match secrets
        .patch(&name, &params, &Patch::Apply(desired.get()))
        .await
    {
        Ok(applied) => SecretWithData::new(applied),
        Err(kube::Error::Api(status)) if status.is_invalid() => {
            return Ok(Written::Refused {
                metric: REASON_METRIC_UPDATE,
                message: format!(
                    "the API server rejected Secret {name:?}: {}",
                    status.message
                ),
            });
        }
        Err(source) => return Err(Error::ApplySecret { secret: id, source }),
    };

    let mut version = applied.get().metadata.resource_version.clone();
    if !write.leftovers.is_empty() {
        // Keys our apply did not own (another writer's) survive it; a replace removes them.
        let remaining = Leftovers::between(applied.get(), desired.get());
        if !remaining.is_empty() {
            version = prune(secrets, &name, &remaining)
                .await
                .map_err(|source| Error::PruneSecret { secret: id, source })?;
        }
    }
    Ok(Written::Changed(version))
}

/// What to write over `existing` for `desired`, which gets `author`'s proof unless the Secret
/// is `patched` or already holds `desired` without one.
///
/// A Secret that already holds, to the byte, what the SealedSecret makes but carries no proof
/// (another controller wrote it: Bitnami's, before a migration) is left as it is: writing it only
/// to add the proof would move the resourceVersion of every Secret a migration adopts, and wake
/// everything that watches them. The price: without a proof, each restart unseals it again (and
/// leaves it alone again), until the SealedSecret or the Secret changes and it is written.
fn plan(
    existing: Option<&Secret>,
    desired: &mut Secret,
    author: &Author<'_>,
    uid: &str,
    authored: bool,
    patched: bool,
) -> std::result::Result<Plan, ownership::Refusal> {
    let unproven = ownership::plan(existing, desired, Some(uid), authored);
    if patched || matches!(unproven, Ok(Plan::InSync)) {
        return unproven;
    }
    author.sign(desired);
    ownership::plan(existing, desired, Some(uid), authored)
}

/// Removes the `remaining` keys from the Secret `name`; its resourceVersion afterwards.
async fn prune(
    secrets: &Api<Secret>,
    name: &str,
    remaining: &Leftovers,
) -> kube::Result<Option<String>> {
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    };
    let pruned = secrets
        .patch(name, &params, &Patch::Merge(remaining.merge_patch()))
        .await?;
    Ok(SecretWithData::new(pruned)
        .get()
        .metadata
        .resource_version
        .clone())
}

#[cfg(test)]
mod tests {
    use k8s_openapi::ByteString;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

    use super::*;
    use crate::authorship::{
        Authorship, Identity, PROOF_ANNOTATION, SEALED_DIGEST_ANNOTATION, SealedDigest,
    };
    use crate::keys::testing::keys;

    const UID: &str = "u1";
    const IDENTITY: Identity<'static> = Identity {
        namespace: "prod",
        name: "db",
        uid: UID,
    };

    /// The Secret SealedSecret `prod/db` makes, as both controllers write it: its data, the
    /// template's label, the controller ownerReference; no proof.
    fn made(password: &str) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some("db".into()),
                namespace: Some("prod".into()),
                labels: Some([("app".to_owned(), "web".to_owned())].into()),
                owner_references: Some(vec![OwnerReference {
                    api_version: "bitnami.com/v1alpha1".into(),
                    kind: "SealedSecret".into(),
                    name: "db".into(),
                    uid: UID.into(),
                    controller: Some(true),
                    block_owner_deletion: None,
                }]),
                ..ObjectMeta::default()
            },
            data: Some([("password".to_owned(), ByteString(password.into()))].into()),
            ..Secret::default()
        }
    }

    fn has_proof(secret: &Secret) -> bool {
        secret.metadata.annotations.as_ref().is_some_and(|a| {
            a.contains_key(PROOF_ANNOTATION) && a.contains_key(SEALED_DIGEST_ANNOTATION)
        })
    }

    /// `plan` for the desired `made(password)` over `existing`; the desired Secret as planned.
    fn planned(existing: &Secret, password: &str) -> (Plan, Secret) {
        let keys = keys(1);
        let digest = SealedDigest::new(&SealedDigest::spec_sha256(b"spec"), b"prod/db", false);
        let author = Author {
            keys: &keys,
            identity: IDENTITY,
            digest: &digest,
        };
        let authored = author.verify(existing).is_authored();
        let mut desired = made(password);
        let plan = plan(Some(existing), &mut desired, &author, UID, authored, false)
            .expect("the Secret is the SealedSecret's");
        (plan, desired)
    }

    #[test]
    fn a_secret_another_controller_wrote_with_the_same_content_is_left_alone() {
        // Bitnami's controller wrote it: the same content, no proof.
        let (plan, desired) = planned(&made("p1"), "p1");
        assert_eq!(plan, Plan::InSync);
        assert!(!has_proof(&desired));
    }

    #[test]
    fn a_secret_without_proof_and_other_content_is_written_with_one() {
        let (plan, desired) = planned(&made("old"), "p1");
        assert!(matches!(plan, Plan::Write(_)), "{plan:?}");
        assert!(has_proof(&desired));

        // Written so, it is in sync, and proven.
        let (again, _) = planned(&desired, "p1");
        assert_eq!(again, Plan::InSync);
        let keys = keys(1);
        let digest = SealedDigest::new(&SealedDigest::spec_sha256(b"spec"), b"prod/db", false);
        let author = Author {
            keys: &keys,
            identity: IDENTITY,
            digest: &digest,
        };
        assert_eq!(author.verify(&desired), Authorship::Authentic);
    }
}
