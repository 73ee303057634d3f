//! Faults that strike on their own, reproducibly: random error rates and a schedule of watch
//! cuts, compactions and list outages, all drawn from one seed ([`Chaos`]), run by a task that
//! [`ChaosGuard`] stops.

use std::ops::RangeInclusive;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::faults::{ErrorRate, FaultRule, Requests};
use crate::server::ApiServer;

/// Seeds of the error decisions and of the schedule differ, so adding a schedule does not change
/// which requests fail.
const SCHEDULE_SEED_SALT: u64 = 0x5ea1_b0c5_c4a0_5000;

/// A plan of random faults for [`ApiServer::start_chaos`]. Everything random is drawn from
/// `seed`: the same seed fails the same requests of the same sequence and strikes after the
/// same intervals, so a failing run can be replayed.
///
/// ```no_run
/// # async fn demo() {
/// use std::time::Duration;
/// use sealbox_tests::{ApiServer, Chaos, Requests};
///
/// let secs = Duration::from_secs;
/// let server = ApiServer::new();
/// let chaos = Chaos::seeded(42)
///     .error_rate(500, 0.08)
///     .error_rate(429, 0.06)
///     .error_rate_for(Requests::writes(), 409, 0.06)
///     .cut_watches_every(secs(3)..=secs(15))
///     .compact_every(secs(20)..=secs(20))
///     .fail_lists_every(secs(10)..=secs(30), secs(3));
/// let guard = server.start_chaos(chaos);
/// // ... run the controller, churn ...
/// drop(guard); // faults stop; what was injected stays in server.fault_report()
/// # }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Chaos {
    seed: u64,
    rates: Vec<ErrorRate>,
    watch_cuts: Option<RangeInclusive<Duration>>,
    compactions: Option<RangeInclusive<Duration>>,
    list_outages: Option<(RangeInclusive<Duration>, Duration)>,
}

impl Chaos {
    /// No faults yet; randomness from `seed`.
    pub fn seeded(seed: u64) -> Self {
        Self {
            seed,
            rates: Vec::new(),
            watch_cuts: None,
            compactions: None,
            list_outages: None,
        }
    }

    /// Every resource request (discovery never fails) fails with `status` with probability
    /// `rate` (0 to 1; rates of several statuses add up).
    #[must_use]
    pub fn error_rate(self, status: u16, rate: f64) -> Self {
        self.error_rate_for(Requests::any(), status, rate)
    }

    /// Requests `requests` matches fail with `status` with probability `rate`; e.g. 409 only
    /// for [`Requests::writes`], as a real API server answers.
    #[must_use]
    pub fn error_rate_for(mut self, requests: Requests, status: u16, rate: f64) -> Self {
        self.rates.push(ErrorRate {
            requests,
            status,
            rate: rate.clamp(0.0, 1.0),
        });
        self
    }

    /// Cuts every open watch ([`ApiServer::cut_watches`]) after a random interval in `every`,
    /// again and again.
    #[must_use]
    pub fn cut_watches_every(mut self, every: RangeInclusive<Duration>) -> Self {
        self.watch_cuts = Some(every);
        self
    }

    /// Compacts ([`ApiServer::compact`]: 410 Gone for open watches and old resourceVersions)
    /// after a random interval in `every`, again and again.
    #[must_use]
    pub fn compact_every(mut self, every: RangeInclusive<Duration>) -> Self {
        self.compactions = Some(every);
        self
    }

    /// After a random interval in `every`, every list fails with 500 for `lasting`; again and
    /// again. Watches that must relist (after a compaction) stay blind for that long.
    #[must_use]
    pub fn fail_lists_every(mut self, every: RangeInclusive<Duration>, lasting: Duration) -> Self {
        self.list_outages = Some((every, lasting));
        self
    }

    pub(crate) fn seed(&self) -> u64 {
        self.seed
    }

    pub(crate) fn rates(&self) -> Vec<ErrorRate> {
        self.rates.clone()
    }

    /// The scheduled events, each with the next time it is due.
    fn schedule(&self, rng: &mut fastrand::Rng) -> Vec<Scheduled> {
        let mut events = Vec::new();
        if let Some(every) = &self.watch_cuts {
            events.push(Scheduled::new(Event::CutWatches, every.clone(), rng));
        }
        if let Some(every) = &self.compactions {
            events.push(Scheduled::new(Event::Compact, every.clone(), rng));
        }
        if let Some((every, lasting)) = &self.list_outages {
            events.push(Scheduled::new(
                Event::FailLists(*lasting),
                every.clone(),
                rng,
            ));
        }
        events
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    CutWatches,
    Compact,
    FailLists(Duration),
}

#[derive(Debug)]
struct Scheduled {
    event: Event,
    every: RangeInclusive<Duration>,
    /// Time since the schedule started when it is next due.
    due: Duration,
}

impl Scheduled {
    fn new(event: Event, every: RangeInclusive<Duration>, rng: &mut fastrand::Rng) -> Self {
        let due = interval(&every, rng);
        Self { event, every, due }
    }
}

/// A random duration in `range` (its start when the range is empty or reversed).
fn interval(range: &RangeInclusive<Duration>, rng: &mut fastrand::Rng) -> Duration {
    let (low, high) = (range.start().as_nanos(), range.end().as_nanos());
    if high <= low {
        return *range.start();
    }
    let nanos = u64::try_from(low).unwrap_or(u64::MAX)..=u64::try_from(high).unwrap_or(u64::MAX);
    Duration::from_nanos(rng.u64(nanos))
}

/// Strikes each scheduled event when due, forever (until aborted).
pub(crate) async fn run(server: ApiServer, chaos: Chaos) {
    let mut rng = fastrand::Rng::with_seed(chaos.seed ^ SCHEDULE_SEED_SALT);
    let mut events = chaos.schedule(&mut rng);
    let start = tokio::time::Instant::now();
    loop {
        let Some(next) = events.iter_mut().min_by_key(|e| e.due) else {
            return;
        };
        tokio::time::sleep_until(start + next.due).await;
        match next.event {
            Event::CutWatches => server.cut_watches(),
            Event::Compact => server.compact(),
            Event::FailLists(lasting) => {
                server.fail_next(FaultRule::status(500).verb("list").lasting(lasting));
                server.count_list_outage();
            }
        }
        // At least a millisecond apart, so an empty range cannot spin.
        next.due += interval(&next.every, &mut rng).max(Duration::from_millis(1));
    }
}

/// Keeps a [`Chaos`] plan in force; dropping it stops the schedule and the random errors
/// (rules added with [`ApiServer::fail_next`] stay, as does the [`FaultReport`](crate::FaultReport)).
#[derive(Debug)]
pub struct ChaosGuard {
    pub(crate) server: ApiServer,
    pub(crate) task: JoinHandle<()>,
}

impl ChaosGuard {
    /// Stops the chaos now (the same as dropping the guard).
    pub fn stop(self) {}
}

impl Drop for ChaosGuard {
    fn drop(&mut self) {
        self.task.abort();
        self.server.stop_random_errors();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_stay_in_their_range_and_follow_the_seed() {
        let range = Duration::from_secs(3)..=Duration::from_secs(15);
        let draw = |seed| {
            let mut rng = fastrand::Rng::with_seed(seed);
            (0..1000)
                .map(|_| interval(&range, &mut rng))
                .collect::<Vec<_>>()
        };
        let drawn = draw(3);
        assert!(drawn.iter().all(|d| range.contains(d)));
        assert_eq!(drawn, draw(3));
        assert_ne!(drawn, draw(4));
        // Spread over the range, not stuck at one end.
        assert!(drawn.iter().any(|d| *d < Duration::from_secs(5)));
        assert!(drawn.iter().any(|d| *d > Duration::from_secs(13)));
        let fixed = Duration::from_secs(20)..=Duration::from_secs(20);
        assert_eq!(
            interval(&fixed, &mut fastrand::Rng::with_seed(1)),
            *fixed.start()
        );
    }

    #[test]
    fn the_schedule_holds_what_was_asked_for() {
        let secs = Duration::from_secs;
        let chaos = Chaos::seeded(9)
            .error_rate(500, 2.0)
            .cut_watches_every(secs(3)..=secs(15))
            .fail_lists_every(secs(10)..=secs(30), secs(3));
        assert_eq!(chaos.rates()[0].rate, 1.0, "a rate is a probability");
        let mut rng = fastrand::Rng::with_seed(1);
        let events = chaos.schedule(&mut rng);
        let kinds: Vec<Event> = events.iter().map(|e| e.event).collect();
        assert_eq!(kinds, [Event::CutWatches, Event::FailLists(secs(3))]);
        assert!(events[0].every.contains(&events[0].due));
        assert!(events[1].every.contains(&events[1].due));
        assert!(Chaos::seeded(9).schedule(&mut rng).is_empty());
    }

    /// The plan strikes through the server: random errors at once, the schedule in its task,
    /// and nothing more once the guard is gone.
    #[tokio::test]
    async fn a_running_plan_strikes_until_its_guard_is_dropped() {
        use k8s_openapi::api::core::v1::ConfigMap;

        let server = ApiServer::new();
        let maps: kube::Api<ConfigMap> = kube::Api::default_namespaced(server.client());
        let millis = Duration::from_millis;
        let guard = server.start_chaos(
            Chaos::seeded(5)
                .error_rate(429, 1.0)
                .cut_watches_every(millis(5)..=millis(10))
                .compact_every(millis(5)..=millis(10))
                .fail_lists_every(millis(5)..=millis(10), millis(1)),
        );
        let error = maps.list(&Default::default()).await.expect_err("429");
        assert!(matches!(error, kube::Error::Api(s) if s.code == 429));
        while {
            let report = server.fault_report();
            report.watch_cuts < 2 || report.compactions < 2 || report.list_outages < 2
        } {
            tokio::time::sleep(millis(5)).await;
        }
        drop(guard);
        let stopped = server.fault_report();
        // (After the last list outage's millisecond.)
        tokio::time::sleep(millis(50)).await;
        assert!(maps.list(&Default::default()).await.is_ok());
        let later = server.fault_report();
        assert_eq!(
            (later.watch_cuts, later.compactions, later.list_outages),
            (
                stopped.watch_cuts,
                stopped.compactions,
                stopped.list_outages
            ),
            "the schedule stopped with its guard"
        );
        assert_eq!(later.errors(429), 1);
    }
}
