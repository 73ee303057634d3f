//! The periodic resync: every SealedSecret reconciled again every `--resync-period`, whatever
//! the watches delivered. It is the backstop for a change no watch event and no relist showed
//! (Flux reconciles on an interval for the same reason). A reconcile whose SealedSecret and
//! Secret are as it left them costs no request, so a resync of a settled cluster is cheap.
//!
//! Each wait is the period give or take [`JITTER`], so that replicas, restarted controllers and
//! the watched namespaces do not all resync in step.

use std::hash::{BuildHasher as _, RandomState};
use std::time::Duration;

use futures::{Stream, stream};

/// How far each wait may be from the period, as a fraction of it.
const JITTER: f64 = 0.1;

/// Emits once per resync, the first a (jittered) period after the start.
pub fn ticks(period: Duration) -> impl Stream<Item = ()> + Send + 'static {
    stream::unfold((), move |()| async move {
        tokio::time::sleep(jittered(period, random_unit())).await;
        Some(((), ()))
    })
}

/// `period` moved by up to [`JITTER`] of it: `unit` (in `[0, 1)`) picks where in that range.
fn jittered(period: Duration, unit: f64) -> Duration {
    let factor = 1.0 + JITTER * (2.0 * unit.clamp(0.0, 1.0) - 1.0);
    period.mul_f64(factor)
}

/// A number in `[0, 1)`, different on each call: std's per-instance random hash keys are
/// enough for spreading resyncs (nothing depends on it being unpredictable).
fn random_unit() -> f64 {
    let bits = RandomState::new().hash_one(std::time::Instant::now()) >> 11;
    // 53 bits: exactly representable, below 1.
    bits as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_stay_within_the_jitter_of_the_period() {
        let period = Duration::from_secs(300);
        assert_eq!(jittered(period, 0.0), Duration::from_secs(270));
        assert_eq!(jittered(period, 0.5), period);
        assert_eq!(jittered(period, 1.0), Duration::from_secs(330));
        for _ in 0..1000 {
            let unit = random_unit();
            assert!((0.0..1.0).contains(&unit), "{unit}");
            let wait = jittered(period, unit);
            assert!(wait >= Duration::from_secs(270) && wait <= Duration::from_secs(330));
        }
    }

    #[test]
    fn waits_differ() {
        let waits: std::collections::HashSet<Duration> = (0..20)
            .map(|_| jittered(Duration::from_secs(300), random_unit()))
            .collect();
        assert!(waits.len() > 1);
    }
}
