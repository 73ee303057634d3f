//! The SealedSecret status: one `Synced` condition and `observedGeneration`.
//!
//! `lastTransitionTime` moves only when `status` flips; `lastUpdateTime` moves when the
//! condition's content (status, reason, message) changes or a new generation is synced, as
//! Bitnami's does (its integration suite checks that an updated SealedSecret's two times then
//! differ). The next status is computed from the current one and returned only when it
//! differs, so a status write never causes another: a status write changes no generation
//! (Bitnami once shipped a status → watch → status loop).

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use sealbox_crds::{SYNCED_CONDITION, SealedSecretCondition, SealedSecretStatus};

use crate::bounds::{self, MAX_MESSAGE};

/// Event and condition reason: the Secret was written or is in sync.
pub const REASON_UNSEALED: &str = "Unsealed";
/// Event and condition reason: the values could not be unsealed.
pub const REASON_UNSEAL_FAILED: &str = "ErrUnsealFailed";
/// Event and condition reason: the Secret could not be written.
pub const REASON_UPDATE_FAILED: &str = "ErrUpdateFailed";

/// What the last reconcile concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The Secret matches the SealedSecret.
    Synced,
    /// It does not, for this reason.
    Failed {
        /// `ErrUnsealFailed` or `ErrUpdateFailed`.
        reason: &'static str,
        /// For humans; never holds a secret value. At most [`MAX_MESSAGE`] bytes when made by
        /// [`Outcome::failed`].
        message: String,
    },
}

impl Outcome {
    /// A failure whose message is cut to [`MAX_MESSAGE`]: it becomes the condition message, the
    /// event note and a log field, and is remembered per object.
    pub fn failed(reason: &'static str, message: &str) -> Outcome {
        Outcome::Failed {
            reason,
            message: bounds::truncate(message, MAX_MESSAGE).into_owned(),
        }
    }

    fn condition_status(&self) -> &'static str {
        match self {
            Outcome::Synced => "True",
            Outcome::Failed { .. } => "False",
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            Outcome::Synced => REASON_UNSEALED,
            Outcome::Failed { reason, .. } => reason,
        }
    }

    fn message(&self) -> Option<&str> {
        match self {
            Outcome::Synced => None,
            Outcome::Failed { message, .. } => Some(message),
        }
    }
}

/// The status to write, or `None` when `current` already says it.
pub fn next_status(
    current: Option<&SealedSecretStatus>,
    generation: Option<i64>,
    outcome: &Outcome,
    now: Timestamp,
) -> Option<SealedSecretStatus> {
    let mut next = current.cloned().unwrap_or_default();
    let new_generation = generation.is_some() && generation != next.observed_generation;
    next.observed_generation = generation.or(next.observed_generation);

    let previous = next
        .conditions
        .iter()
        .position(|c| c.type_ == SYNCED_CONDITION)
        .map(|i| next.conditions.remove(i));
    let condition = synced_condition(previous, outcome, new_generation, now);
    // Printer columns and Argo CD read conditions[0].
    next.conditions.insert(0, condition);

    (current != Some(&next)).then_some(next)
}

fn synced_condition(
    previous: Option<SealedSecretCondition>,
    outcome: &Outcome,
    new_generation: bool,
    now: Timestamp,
) -> SealedSecretCondition {
    let status = outcome.condition_status();
    let reason = Some(outcome.reason().to_owned());
    let message = outcome
        .message()
        .map(|m| bounds::truncate(m, MAX_MESSAGE).into_owned());
    match previous {
        Some(previous) if previous.status == status => {
            // A condition without a reason is Bitnami's (it sets none): the same status and
            // message say what ours would, and rewriting every status a migration adopts only
            // to add a reason would move each SealedSecret's resourceVersion.
            let same_reason = previous.reason.is_none() || previous.reason == reason;
            if same_reason && previous.message == message {
                if new_generation {
                    SealedSecretCondition {
                        last_update_time: Some(Time(now)),
                        ..previous
                    }
                } else {
                    previous
                }
            } else {
                SealedSecretCondition {
                    reason,
                    message,
                    last_update_time: Some(Time(now)),
                    last_transition_time: previous.last_transition_time.or(Some(Time(now))),
                    ..previous
                }
            }
        }
        _ => SealedSecretCondition {
            type_: SYNCED_CONDITION.to_owned(),
            status: status.to_owned(),
            last_update_time: Some(Time(now)),
            last_transition_time: Some(Time(now)),
            reason,
            message,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + seconds).expect("valid")
    }

    fn failed(message: &str) -> Outcome {
        Outcome::Failed {
            reason: REASON_UNSEAL_FAILED,
            message: message.to_owned(),
        }
    }

    fn synced(status: &SealedSecretStatus) -> &SealedSecretCondition {
        &status.conditions[0]
    }

    #[test]
    fn first_success_sets_both_times_equal() {
        let status = next_status(None, Some(1), &Outcome::Synced, at(0)).expect("new status");
        let c = synced(&status);
        assert_eq!((c.type_.as_str(), c.status.as_str()), ("Synced", "True"));
        assert_eq!(c.last_transition_time, c.last_update_time);
        assert_eq!(c.last_transition_time, Some(Time(at(0))));
        assert_eq!(status.observed_generation, Some(1));
        assert_eq!(c.message, None);
    }

    #[test]
    fn unchanged_outcome_writes_nothing() {
        let status = next_status(None, Some(1), &Outcome::Synced, at(0)).expect("new");
        assert_eq!(
            next_status(Some(&status), Some(1), &Outcome::Synced, at(60)),
            None
        );
        let failing = next_status(None, Some(1), &failed("x"), at(0)).expect("new");
        assert_eq!(
            next_status(Some(&failing), Some(1), &failed("x"), at(60)),
            None
        );
    }

    /// Bitnami's integration suite ("Simple change With existing object (update)") waits for
    /// the two times to differ after an update that stays Synced.
    #[test]
    fn new_generation_moves_update_time_and_keeps_transition_time() {
        let first = next_status(None, Some(1), &Outcome::Synced, at(0)).expect("new");
        let second = next_status(Some(&first), Some(2), &Outcome::Synced, at(60)).expect("changed");
        assert_eq!(second.observed_generation, Some(2));
        let (before, after) = (synced(&first), synced(&second));
        assert_eq!(after.last_transition_time, before.last_transition_time);
        assert_eq!(after.last_update_time, Some(Time(at(60))));
        assert_eq!(
            (&after.status, &after.reason, &after.message),
            (&before.status, &before.reason, &before.message)
        );
        // Written once: the same generation again changes nothing.
        assert_eq!(
            next_status(Some(&second), Some(2), &Outcome::Synced, at(120)),
            None
        );
    }

    #[test]
    fn transition_moves_both_times_and_message_change_only_update_time() {
        let ok = next_status(None, Some(1), &Outcome::Synced, at(0)).expect("new");
        let bad =
            next_status(Some(&ok), Some(2), &failed("no key could decrypt"), at(10)).expect("flip");
        let c = synced(&bad);
        assert_eq!(c.status, "False");
        assert_eq!(c.last_transition_time, Some(Time(at(10))));
        assert_eq!(c.message.as_deref(), Some("no key could decrypt"));
        assert_eq!(c.reason.as_deref(), Some(REASON_UNSEAL_FAILED));

        let other = next_status(Some(&bad), Some(2), &failed("other"), at(20)).expect("message");
        let c = synced(&other);
        assert_eq!(c.last_transition_time, Some(Time(at(10))));
        assert_eq!(c.last_update_time, Some(Time(at(20))));

        let back = next_status(Some(&other), Some(2), &Outcome::Synced, at(30)).expect("flip back");
        let c = synced(&back);
        assert_eq!(c.last_transition_time, Some(Time(at(30))));
        assert_eq!(c.message, None);
    }

    #[test]
    fn messages_are_bounded() {
        let long = "x".repeat(100 * MAX_MESSAGE);
        let Outcome::Failed { message, .. } = Outcome::failed(REASON_UNSEAL_FAILED, &long) else {
            panic!("a failure");
        };
        assert!(message.len() <= MAX_MESSAGE);
        // However the outcome was made, the condition message is bounded.
        let status = next_status(None, Some(1), &failed(&long), at(0)).expect("new");
        let written = synced(&status).message.as_deref().unwrap_or_default();
        assert!(written.len() <= MAX_MESSAGE && written.ends_with("..."));
        // A message within the bound is kept whole.
        let status = next_status(None, Some(1), &failed("no key could decrypt"), at(0));
        let status = status.expect("new");
        assert_eq!(
            synced(&status).message.as_deref(),
            Some("no key could decrypt")
        );
    }

    #[test]
    fn bitnamis_synced_condition_is_kept_as_it_is() {
        // As Bitnami's controller writes it: no reason, no message.
        let bitnami = SealedSecretStatus {
            observed_generation: Some(1),
            conditions: vec![SealedSecretCondition {
                type_: "Synced".into(),
                status: "True".into(),
                last_update_time: Some(Time(at(0))),
                last_transition_time: Some(Time(at(0))),
                reason: None,
                message: None,
            }],
        };
        assert_eq!(
            next_status(Some(&bitnami), Some(1), &Outcome::Synced, at(60)),
            None
        );
        // A new generation is still recorded, and a failure still replaces it.
        let next = next_status(Some(&bitnami), Some(2), &Outcome::Synced, at(60)).expect("new");
        assert_eq!(next.observed_generation, Some(2));
        let next = next_status(Some(&bitnami), Some(1), &failed("bad"), at(60)).expect("failed");
        assert_eq!(synced(&next).status, "False");
        assert_eq!(synced(&next).reason.as_deref(), Some(REASON_UNSEAL_FAILED));
    }

    #[test]
    fn other_conditions_are_kept_and_synced_comes_first() {
        let current = SealedSecretStatus {
            observed_generation: Some(1),
            conditions: vec![SealedSecretCondition {
                type_: "Other".into(),
                status: "True".into(),
                ..SealedSecretCondition::default()
            }],
        };
        let next = next_status(Some(&current), Some(1), &Outcome::Synced, at(0)).expect("new");
        assert_eq!(next.conditions.len(), 2);
        assert_eq!(next.conditions[0].type_, "Synced");
        assert_eq!(next.conditions[1].type_, "Other");
    }
}
