//! Whether a reconcile can skip unsealing: a pure decision over what the controller remembers
//! about the object ([`Memory`]) and what it sees now ([`Seen`]).
//!
//! Watch events arrive for the controller's own writes (the Secret it applied, the status it
//! patched), and each queues another reconcile. When nothing the Secret depends on changed
//! since it was made to match and the Secret is still at the version written then, that
//! reconcile only confirms `Synced`: it costs no request when the Secret watch shows that
//! version, else one metadata-only GET. When unsealing these inputs with these keys failed and
//! was reported, trying again cannot succeed until one of them changes.
//!
//! When memory cannot settle it (a new leader term remembers nothing; the inputs or the Secret
//! changed), the Secret is read whole and its proof of authorship
//! ([`authorship`](crate::authorship)) decides: a Secret the controller wrote from the sealed
//! inputs the object has now, unchanged since, needs no private-key operation.

use crate::authorship::Authorship;
use crate::reconcile::memory::{Memory, Reported};

/// What a reconcile sees when it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Seen {
    /// Digest of everything the Secret depends on besides the keys.
    pub(super) digest: u64,
    /// The key set's epoch.
    pub(super) key_epoch: u64,
    /// What is known of the Secret now.
    pub(super) secret: SecretSeen,
}

/// What is known of the Secret now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum SecretSeen {
    /// The Secret watch shows it at this version (`None`: the watch does not know it); the
    /// watch may lag behind.
    Watched(Option<String>),
    /// The Secret watch has listed the namespace and shows no Secret the controller could have
    /// written under this name (it may lag behind).
    Unwritten,
    /// The API server has it with this resourceVersion.
    Read(Option<String>),
    /// The API server has it with this resourceVersion, and its proof shows this.
    Proven {
        version: Option<String>,
        authorship: Authorship,
    },
    /// The API server does not have it.
    Gone,
}

impl SecretSeen {
    /// The Secret's resourceVersion, when known.
    pub(super) fn version(&self) -> Option<String> {
        match self {
            SecretSeen::Watched(version)
            | SecretSeen::Read(version)
            | SecretSeen::Proven { version, .. } => version.clone(),
            SecretSeen::Unwritten | SecretSeen::Gone => None,
        }
    }
}

/// What the reconcile does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// The Secret is what these inputs make (memory or its proof says so): report `Synced`,
    /// remember it, wait for a change.
    Skip,
    /// Nothing the Secret depends on changed, but the watch cannot tell whether the Secret
    /// did: read its resourceVersion from the API server and decide again with it.
    AskApiServer,
    /// Memory cannot tell: read the Secret whole, check its proof of authorship and decide
    /// again with it.
    CheckProof,
    /// Unsealing these inputs with these keys failed already and was reported: wait for a
    /// change.
    Wait,
    /// Read the object whole, unseal it and bring the Secret in line.
    Unseal,
}

/// The next step of a reconcile that remembers `memory` and sees `seen`. Never
/// [`Step::AskApiServer`] once the API server's answer is in `seen`, nor [`Step::CheckProof`]
/// once the proof is.
pub(super) fn decide(memory: &Memory, seen: &Seen) -> Step {
    let inputs_known = memory.digest == seen.digest;
    let failed_here = inputs_known && memory.unseal_failed_at == Some(seen.key_epoch);
    match &seen.secret {
        SecretSeen::Proven {
            authorship: Authorship::Authentic,
            ..
        } => return Step::Skip,
        SecretSeen::Proven { .. } | SecretSeen::Gone if failed_here => return Step::Wait,
        SecretSeen::Proven { .. } | SecretSeen::Gone => return Step::Unseal,
        SecretSeen::Watched(_) | SecretSeen::Unwritten | SecretSeen::Read(_) => {}
    }
    if inputs_known && let Some(Reported::Synced { secret_version }) = &memory.reported {
        match &seen.secret {
            SecretSeen::Watched(Some(watched)) if secret_version.as_ref() == Some(watched) => {
                return Step::Skip;
            }
            SecretSeen::Watched(_) | SecretSeen::Unwritten => return Step::AskApiServer,
            SecretSeen::Read(current) if current == secret_version => return Step::Skip,
            _ => {}
        }
    }
    match &seen.secret {
        _ if failed_here => Step::Wait,
        // No proof to read: a new object, at a cold start above all.
        SecretSeen::Unwritten => Step::Unseal,
        _ => Step::CheckProof,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: u64 = 42;
    const EPOCH: u64 = 3;

    fn version(v: &str) -> Option<String> {
        Some(v.to_owned())
    }

    fn synced_at(secret_version: Option<String>) -> Memory {
        Memory {
            uid: "u1".to_owned(),
            digest: DIGEST,
            reported: Some(Reported::Synced { secret_version }),
            ..Memory::default()
        }
    }

    fn failed_at(epoch: u64) -> Memory {
        Memory {
            uid: "u1".to_owned(),
            digest: DIGEST,
            reported: Some(Reported::Failed {
                message: "no key could decrypt".to_owned(),
            }),
            unseal_failed_at: Some(epoch),
            ..Memory::default()
        }
    }

    fn seeing(secret: SecretSeen) -> Seen {
        Seen {
            digest: DIGEST,
            key_epoch: EPOCH,
            secret,
        }
    }

    fn proven(authorship: Authorship) -> SecretSeen {
        SecretSeen::Proven {
            version: version("5"),
            authorship,
        }
    }

    #[test]
    fn an_object_never_seen_asks_the_secrets_proof() {
        // A new leader term remembers nothing.
        let memory = Memory {
            uid: "u1".to_owned(),
            ..Memory::default()
        };
        for secret in [
            SecretSeen::Watched(None),
            SecretSeen::Watched(version("5")),
            SecretSeen::Read(version("5")),
        ] {
            assert_eq!(decide(&memory, &seeing(secret)), Step::CheckProof);
        }
        assert_eq!(decide(&memory, &seeing(SecretSeen::Gone)), Step::Unseal);
        // The watch has listed and shows no Secret the controller wrote: nothing to prove.
        assert_eq!(
            decide(&memory, &seeing(SecretSeen::Unwritten)),
            Step::Unseal
        );
    }

    #[test]
    fn what_the_watch_does_not_show_is_asked_when_memory_says_synced() {
        // Memory says written, the watch has not caught up (or the Secret is gone): ask.
        assert_eq!(
            decide(&synced_at(version("5")), &seeing(SecretSeen::Unwritten)),
            Step::AskApiServer
        );
        assert_eq!(
            decide(&failed_at(EPOCH), &seeing(SecretSeen::Unwritten)),
            Step::Wait
        );
    }

    #[test]
    fn the_proof_decides_and_is_final() {
        let memories = [
            Memory::default(),
            synced_at(version("5")),
            synced_at(version("4")),
            failed_at(EPOCH - 1),
        ];
        for memory in &memories {
            assert_eq!(
                decide(memory, &seeing(proven(Authorship::Authentic))),
                Step::Skip
            );
            for authorship in [Authorship::Authored, Authorship::Unproven] {
                assert_eq!(
                    decide(memory, &seeing(proven(authorship))),
                    Step::Unseal,
                    "{memory:?} {authorship:?}"
                );
            }
        }
        // An authentic Secret was unsealed from these inputs once: it stays right even when the
        // keys that did are gone now.
        assert_eq!(
            decide(&failed_at(EPOCH), &seeing(proven(Authorship::Authentic))),
            Step::Skip
        );
        assert_eq!(
            decide(&failed_at(EPOCH), &seeing(proven(Authorship::Authored))),
            Step::Wait
        );
    }

    #[test]
    fn changed_inputs_ask_the_proof_whatever_the_secret_shows() {
        let changed = |secret| Seen {
            digest: DIGEST + 1,
            ..seeing(secret)
        };
        let synced = synced_at(version("5"));
        assert_eq!(
            decide(&synced, &changed(SecretSeen::Watched(version("5")))),
            Step::CheckProof
        );
        assert_eq!(
            decide(&synced, &changed(SecretSeen::Read(version("5")))),
            Step::CheckProof
        );
        assert_eq!(decide(&synced, &changed(SecretSeen::Gone)), Step::Unseal);
        // A failure at this epoch was about other inputs.
        assert_eq!(
            decide(&failed_at(EPOCH), &changed(SecretSeen::Watched(None))),
            Step::CheckProof
        );
    }

    #[test]
    fn a_secret_the_watch_shows_as_written_is_skipped() {
        assert_eq!(
            decide(
                &synced_at(version("5")),
                &seeing(SecretSeen::Watched(version("5")))
            ),
            Step::Skip
        );
    }

    #[test]
    fn the_api_server_is_asked_when_the_watch_cannot_tell() {
        let synced = synced_at(version("5"));
        for watched in [None, version("4"), version("6")] {
            assert_eq!(
                decide(&synced, &seeing(SecretSeen::Watched(watched))),
                Step::AskApiServer
            );
        }
        // A write that came back without a version is never confirmed by the watch alone.
        assert_eq!(
            decide(&synced_at(None), &seeing(SecretSeen::Watched(None))),
            Step::AskApiServer
        );
    }

    #[test]
    fn the_api_servers_answer_decides() {
        let synced = synced_at(version("5"));
        assert_eq!(
            decide(&synced, &seeing(SecretSeen::Read(version("5")))),
            Step::Skip
        );
        // Changed since: edited, or written by another replica meanwhile; the proof tells.
        assert_eq!(
            decide(&synced, &seeing(SecretSeen::Read(version("6")))),
            Step::CheckProof
        );
        assert_eq!(decide(&synced, &seeing(SecretSeen::Gone)), Step::Unseal);
        assert_eq!(
            decide(&synced_at(None), &seeing(SecretSeen::Read(None))),
            Step::Skip
        );
    }

    #[test]
    fn a_failure_with_these_keys_waits_for_a_change() {
        for secret in [
            SecretSeen::Watched(None),
            SecretSeen::Gone,
            proven(Authorship::Unproven),
        ] {
            assert_eq!(decide(&failed_at(EPOCH), &seeing(secret)), Step::Wait);
        }
        // New keys may decrypt what the old ones could not.
        assert_eq!(
            decide(&failed_at(EPOCH - 1), &seeing(SecretSeen::Watched(None))),
            Step::CheckProof
        );
    }

    #[test]
    fn a_refused_write_is_tried_again() {
        // Refused writes report a failure without marking the unsealing failed.
        let refused = Memory {
            unseal_failed_at: None,
            ..failed_at(EPOCH)
        };
        assert_eq!(
            decide(&refused, &seeing(SecretSeen::Watched(None))),
            Step::CheckProof
        );
        assert_eq!(
            decide(&refused, &seeing(proven(Authorship::Unproven))),
            Step::Unseal
        );
    }

    #[test]
    fn the_api_servers_answer_is_final() {
        let memories = [
            Memory::default(),
            synced_at(version("5")),
            synced_at(None),
            failed_at(EPOCH),
        ];
        let answers = [
            SecretSeen::Read(version("5")),
            SecretSeen::Read(None),
            SecretSeen::Gone,
            proven(Authorship::Authentic),
            proven(Authorship::Authored),
            proven(Authorship::Unproven),
        ];
        for memory in &memories {
            for answer in &answers {
                let step = decide(memory, &seeing(answer.clone()));
                assert_ne!(step, Step::AskApiServer, "{memory:?} {answer:?}");
                if matches!(answer, SecretSeen::Proven { .. } | SecretSeen::Gone) {
                    assert_ne!(step, Step::CheckProof, "{memory:?} {answer:?}");
                }
            }
        }
    }
}
