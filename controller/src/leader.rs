//! Leader election through a coordination.k8s.io/v1 Lease, with client-go's semantics.
//!
//! A candidate reads the Lease. It takes the Lease when it is free (no holder: released) or
//! when the record has not changed for the record's lease duration as measured on the
//! candidate's own clock since it last saw it change (so clock skew between nodes does not
//! matter). Every write is a replace guarded by the resourceVersion that was read: a 409 means
//! the Lease changed since (another replica won the race, or an unrelated update). The leader
//! renews every `retry_period`; a renewal that fails — an error, a timeout, a 409 — is tried
//! again every retry period until `renew_deadline` (shorter than the lease duration) has passed
//! since the last renewal, and only then does the leader step down, so it has stopped before
//! anyone else may take over (client-go's `renew`). A leader that reads the Lease held by
//! another replica steps down at once. On shutdown the leader releases the Lease (empty
//! holder), and the others take it at their next try.
//!
//! Failover after a crash: a follower reads the Lease every half retry period (jittered) and
//! tries again the moment the holder's lease would expire, so it takes over within the lease
//! duration plus 0.6 retry periods (and a round trip) of the leader's last renewal. client-go's
//! followers read every retry period and take over at the next read after expiry: up to 2.4
//! retry periods late (with the default 2s, a 15s lease took up to ~20s).
//!
//! Why not a crate: kube-lease-manager (the one that supports kube 5) has no renew deadline (a
//! leader cut off from the API server keeps believing it leads after its Lease has expired),
//! counts expiry on the holder's clock, and writes with per-replica field managers.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::object::{FIELD_MANAGER, error_chain};

/// Retries wait between 1 and this factor times the retry period (client-go's jitter).
pub const RETRY_JITTER: f64 = 1.2;

/// Where the Lease is and how it is held.
#[derive(Debug, Clone)]
pub struct LeaseSettings {
    /// The Lease's namespace (the controller's).
    pub namespace: String,
    /// The Lease's name.
    pub name: String,
    /// This replica's name in `holderIdentity`.
    pub identity: String,
    /// How long an unrenewed Lease stays with its holder.
    pub lease_duration: Duration,
    /// How long the leader keeps leading without a successful renewal.
    pub renew_deadline: Duration,
    /// How often the leader renews and candidates try.
    pub retry_period: Duration,
}

impl LeaseSettings {
    fn lease_duration_seconds(&self) -> i32 {
        // Whole seconds in the Lease; rounding up only makes the others wait longer.
        let seconds =
            self.lease_duration.as_secs() + u64::from(self.lease_duration.subsec_nanos() > 0);
        i32::try_from(seconds.max(1)).unwrap_or(i32::MAX)
    }
}

/// The identity a replica uses when none is configured: the pod name, else the host name with
/// a random suffix (two processes on one host must differ).
pub fn default_identity() -> String {
    if let Ok(pod) = std::env::var("POD_NAME")
        && !pod.is_empty()
    {
        return pod;
    }
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "sealbox-controller".to_owned());
    format!("{host}_{:016x}", random_u64())
}

fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    // A failing system RNG only makes identities and jitter less random, never wrong.
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    u64::from_le_bytes(bytes)
}

/// A random fraction in [0, 1), for jitter.
fn jitter_fraction() -> f64 {
    (random_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// Resolves when `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// What this replica last saw of the Lease, and when (on its own clock) it last changed.
#[derive(Debug, Clone)]
struct Observed {
    spec: Option<LeaseSpec>,
    at: Instant,
}

/// One replica's side of the election.
#[derive(Debug)]
pub struct LeaderElector {
    api: Api<Lease>,
    settings: LeaseSettings,
    observed: Option<Observed>,
}

/// The outcome of one try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attempt {
    /// This replica holds the Lease now.
    Held,
    /// Another replica holds it; unrenewed, it would expire at `expires` on this clock.
    HeldByOther { expires: Instant },
    /// The Lease changed between our read and our write (409), or was created by another
    /// replica meanwhile: read again to learn who holds it.
    Conflict,
}

/// How long a candidate waits before its next try. While another replica holds the Lease, a
/// candidate reads it every half retry period, so it sees a renewal soon after it happened (the
/// lease counts from when it was seen), and wakes when the lease would expire; after a failure
/// or a conflict it waits a retry period. `jitter` in [0, 1) stretches the wait by up to
/// [`RETRY_JITTER`], as client-go does, so candidates do not move in lockstep.
fn campaign_wait(
    attempt: Option<Attempt>,
    now: Instant,
    retry_period: Duration,
    jitter: f64,
) -> Duration {
    let stretch = 1.0 + (RETRY_JITTER - 1.0) * jitter.clamp(0.0, 1.0);
    match attempt {
        Some(Attempt::HeldByOther { expires }) => (retry_period / 2)
            .mul_f64(stretch)
            .min(expires.saturating_duration_since(now)),
        _ => retry_period.mul_f64(stretch),
    }
}

impl LeaderElector {
    /// An elector for the Lease `settings` names.
    pub fn new(client: Client, settings: LeaseSettings) -> LeaderElector {
        LeaderElector {
            api: Api::namespaced(client, &settings.namespace),
            settings,
            observed: None,
        }
    }

    /// Campaigns until `stop` turns true, telling `leading` whether this replica leads. Leads
    /// until renewals fail for the renew deadline or another replica holds the Lease, then
    /// campaigns again. On stop, a leader releases the Lease before returning; the caller
    /// stops leader work first.
    pub async fn run(mut self, leading: watch::Sender<bool>, mut stop: watch::Receiver<bool>) {
        let settings = self.settings.clone();
        loop {
            // Campaign. An attempt in flight is never abandoned: it may have taken the Lease.
            loop {
                if *stop.borrow() {
                    return;
                }
                let attempt = self.attempt().await;
                if attempt == Some(Attempt::Held) {
                    break;
                }
                let wait = campaign_wait(
                    attempt,
                    Instant::now(),
                    settings.retry_period,
                    jitter_fraction(),
                );
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stopped(&mut stop) => return,
                }
            }
            info!(lease = %settings.name, identity = %settings.identity, "became the leader");
            leading.send_replace(true);
            let lost_to_another = match self.lead(&mut stop).await {
                Some(lost_to_another) => lost_to_another,
                None => {
                    self.release().await;
                    leading.send_replace(false);
                    return;
                }
            };
            leading.send_replace(false);
            if lost_to_another {
                warn!(lease = %settings.name, "another replica holds the leader Lease: stopped leading");
            } else {
                warn!(
                    lease = %settings.name, deadline = ?settings.renew_deadline,
                    "could not renew the leader Lease in time: stopped leading"
                );
            }
        }
    }

    /// Renews every retry period while leading. Returns `Some(true)` when another replica holds
    /// the Lease, `Some(false)` when no renewal succeeded for the renew deadline (failures and
    /// conflicts before it are retried), `None` on stop.
    async fn lead(&mut self, stop: &mut watch::Receiver<bool>) -> Option<bool> {
        let settings = self.settings.clone();
        let mut renewed = Instant::now();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(settings.retry_period) => {}
                _ = stopped(stop) => return None,
            }
            let deadline = renewed + settings.renew_deadline;
            match tokio::time::timeout_at(deadline, self.try_acquire_or_renew()).await {
                Ok(Ok(Attempt::Held)) => renewed = Instant::now(),
                Ok(Ok(Attempt::HeldByOther { .. })) => return Some(true),
                Ok(Ok(Attempt::Conflict)) => {
                    warn!(lease = %settings.name, "the leader Lease changed while being renewed; retrying");
                }
                Ok(Err(e)) => {
                    warn!(lease = %settings.name, error = %error_chain(&e), "renewing the leader Lease failed; retrying");
                }
                Err(_) => return Some(false),
            }
            if Instant::now() >= deadline {
                return Some(false);
            }
        }
    }

    /// One bounded try; `None` when it failed (logged).
    async fn attempt(&mut self) -> Option<Attempt> {
        let limit = self.settings.renew_deadline;
        match tokio::time::timeout(limit, self.try_acquire_or_renew()).await {
            Ok(Ok(attempt)) => Some(attempt),
            Ok(Err(e)) => {
                let forbidden = matches!(&e, kube::Error::Api(status) if status.code == 403);
                let hint = if forbidden {
                    "; grant get, create and update on coordination.k8s.io leases in this \
                     namespace (deploy/ does), or run a single replica with --leader-elect=false"
                } else {
                    ""
                };
                warn!(
                    lease = %self.settings.name, error = %error_chain(&e),
                    "reading or taking the leader Lease failed{hint}"
                );
                None
            }
            Err(_) => {
                warn!(lease = %self.settings.name, "reading or taking the leader Lease timed out");
                None
            }
        }
    }

    /// Takes the Lease if it is free or expired, renews it if held; client-go's
    /// `tryAcquireOrRenew`.
    async fn try_acquire_or_renew(&mut self) -> Result<Attempt, kube::Error> {
        let now = MicroTime(Timestamp::now());
        let Some(mut lease) = self.api.get_opt(&self.settings.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.settings.name.clone()),
                    namespace: Some(self.settings.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.settings.identity.clone()),
                    lease_duration_seconds: Some(self.settings.lease_duration_seconds()),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&self.post_params(), &lease).await {
                Ok(created) => {
                    self.observe(&created);
                    Ok(Attempt::Held)
                }
                Err(kube::Error::Api(status)) if status.is_already_exists() => {
                    Ok(Attempt::Conflict)
                }
                Err(e) => Err(e),
            };
        };
        self.observe(&lease);

        let current = lease.spec.clone().unwrap_or_default();
        let holder = current.holder_identity.as_deref().filter(|h| !h.is_empty());
        let ours = holder == Some(self.settings.identity.as_str());
        if let Some(holder) = holder
            && !ours
        {
            let duration = current
                .lease_duration_seconds
                .and_then(|s| u64::try_from(s).ok())
                .map_or(self.settings.lease_duration, Duration::from_secs);
            let seen = self.observed.as_ref().map_or_else(Instant::now, |o| o.at);
            let expires = seen + duration;
            if expires > Instant::now() {
                debug!(lease = %self.settings.name, %holder, "the leader Lease is held");
                return Ok(Attempt::HeldByOther { expires });
            }
            info!(lease = %self.settings.name, %holder, "the leader Lease expired: taking it over");
        }

        let mut next = LeaseSpec {
            holder_identity: Some(self.settings.identity.clone()),
            lease_duration_seconds: Some(self.settings.lease_duration_seconds()),
            renew_time: Some(now.clone()),
            ..current.clone()
        };
        if !ours {
            next.acquire_time = Some(now);
            next.lease_transitions = Some(current.lease_transitions.unwrap_or(0).saturating_add(1));
        }
        lease.spec = Some(next);
        self.replace(&lease).await
    }

    /// Writes `lease` if nobody changed it since it was read.
    async fn replace(&mut self, lease: &Lease) -> Result<Attempt, kube::Error> {
        match self
            .api
            .replace(&self.settings.name, &self.post_params(), lease)
            .await
        {
            Ok(written) => {
                self.observe(&written);
                Ok(Attempt::Held)
            }
            Err(kube::Error::Api(status)) if status.is_conflict() => Ok(Attempt::Conflict),
            Err(e) => Err(e),
        }
    }

    /// Gives the Lease up if this replica holds it, so another takes over at its next try.
    async fn release(&mut self) {
        let limit = self.settings.renew_deadline;
        let name = self.settings.name.clone();
        let release = async {
            let Some(mut lease) = self.api.get_opt(&self.settings.name).await? else {
                return Ok(false);
            };
            let current = lease.spec.clone().unwrap_or_default();
            if current.holder_identity.as_deref() != Some(self.settings.identity.as_str()) {
                return Ok(false);
            }
            let now = MicroTime(Timestamp::now());
            // client-go's release: no holder, a 1s duration for readers that ignore the holder.
            lease.spec = Some(LeaseSpec {
                holder_identity: None,
                lease_duration_seconds: Some(1),
                acquire_time: Some(now.clone()),
                renew_time: Some(now),
                ..current
            });
            self.replace(&lease).await.map(|a| a == Attempt::Held)
        };
        match tokio::time::timeout(limit, release).await {
            Ok(Ok(true)) => info!(lease = %name, "released the leader Lease"),
            Ok(Ok(false)) => debug!(lease = %name, "the leader Lease was not ours to release"),
            Ok(Err(e)) => warn!(
                lease = %name, error = %error_chain(&e),
                "releasing the leader Lease failed; it expires on its own"
            ),
            Err(_) => {
                warn!(lease = %name, "releasing the leader Lease timed out; it expires on its own")
            }
        }
    }

    /// Notes the Lease as read or written; the clock restarts when its record changed.
    fn observe(&mut self, lease: &Lease) {
        let changed = self.observed.as_ref().is_none_or(|o| o.spec != lease.spec);
        if changed {
            self.observed = Some(Observed {
                spec: lease.spec.clone(),
                at: Instant::now(),
            });
        }
    }

    fn post_params(&self) -> PostParams {
        PostParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PostParams::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(lease: Duration) -> LeaseSettings {
        LeaseSettings {
            namespace: "kube-system".into(),
            name: "sealed-secrets-controller".into(),
            identity: "a".into(),
            lease_duration: lease,
            renew_deadline: lease / 2,
            retry_period: lease / 8,
        }
    }

    #[test]
    fn lease_duration_rounds_up_to_whole_seconds() {
        assert_eq!(
            settings(Duration::from_secs(15)).lease_duration_seconds(),
            15
        );
        assert_eq!(
            settings(Duration::from_millis(1500)).lease_duration_seconds(),
            2
        );
        assert_eq!(
            settings(Duration::from_millis(200)).lease_duration_seconds(),
            1
        );
    }

    #[test]
    fn jitter_fractions_are_fractions() {
        for _ in 0..100 {
            let fraction = jitter_fraction();
            assert!((0.0..1.0).contains(&fraction), "{fraction}");
        }
    }

    #[test]
    fn candidates_retry_after_a_retry_period_stretched_by_the_jitter() {
        let now = Instant::now();
        let retry = Duration::from_secs(2);
        assert_eq!(campaign_wait(None, now, retry, 0.0), retry);
        assert_eq!(
            campaign_wait(Some(Attempt::Conflict), now, retry, 0.5),
            retry.mul_f64(1.0 + (RETRY_JITTER - 1.0) / 2.0)
        );
        assert!(campaign_wait(None, now, retry, 0.999) < retry.mul_f64(RETRY_JITTER));
    }

    #[test]
    fn followers_read_every_half_retry_period_and_wake_at_expiry() {
        let now = Instant::now();
        let retry = Duration::from_secs(2);
        let held = |expires_in: Duration| {
            Some(Attempt::HeldByOther {
                expires: now + expires_in,
            })
        };
        // Far from expiry: the next read in half a retry period (jittered).
        assert_eq!(
            campaign_wait(held(Duration::from_secs(10)), now, retry, 0.0),
            retry / 2
        );
        assert!(
            campaign_wait(held(Duration::from_secs(10)), now, retry, 0.999)
                < (retry / 2).mul_f64(RETRY_JITTER)
        );
        // Close to it: wake when the lease expires, not a poll later.
        assert_eq!(
            campaign_wait(held(Duration::from_millis(300)), now, retry, 0.5),
            Duration::from_millis(300)
        );
    }

    #[test]
    fn identities_differ_per_process_on_one_host() {
        if std::env::var_os("POD_NAME").is_none() {
            assert_ne!(default_identity(), default_identity());
        }
    }
}
