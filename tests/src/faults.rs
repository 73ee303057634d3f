//! Fault injection, decided per request: which requests a fault applies to ([`Requests`]),
//! failures of the next N of them or of all of them for a while ([`FaultRule`]), failures at a
//! seeded random rate, requests held until released, and a tally of what was injected
//! ([`FaultReport`]). The schedule that strikes on its own (watch cuts, compactions, list
//! outages) lives in `chaos`.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::log::RequestRecord;

/// Which requests a fault applies to: every criterion set must match; none set matches every
/// request.
///
/// ```
/// use sealbox_tests::Requests;
/// // Lists and watches of Secrets in namespace `app`.
/// let secrets = Requests::any().resource("secrets").verb("list").verb("watch").path_contains("/namespaces/app/");
/// // What a real API server may answer 409 to.
/// let writes = Requests::writes();
/// # let _ = (secrets, writes);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requests {
    /// HTTP method, upper case, e.g. `"PATCH"`; `None` matches any.
    pub method: Option<String>,
    /// Substring of the request path (without the query), e.g. `"/namespaces/app/"`.
    pub path_contains: Option<String>,
    /// Resource as the request log names it, e.g. `"secrets"` or `"sealedsecrets/status"`.
    pub resource: Option<String>,
    /// Kubernetes verbs, e.g. `["list", "watch"]`: the request's must be one of them; empty
    /// matches any.
    pub verbs: Vec<String>,
}

impl Requests {
    /// Every request.
    pub fn any() -> Self {
        Self::default()
    }

    /// Writes: create, update, patch, delete and deletecollection (what a real API server may
    /// answer 409 Conflict to).
    pub fn writes() -> Self {
        ["create", "update", "patch", "delete", "deletecollection"]
            .into_iter()
            .fold(Self::any(), Self::verb)
    }

    /// Only requests with this HTTP method.
    #[must_use]
    pub fn method(mut self, method: &str) -> Self {
        self.method = Some(method.to_ascii_uppercase());
        self
    }

    /// Only requests whose path contains `fragment`.
    #[must_use]
    pub fn path_contains(mut self, fragment: &str) -> Self {
        self.path_contains = Some(fragment.to_owned());
        self
    }

    /// Only requests for this resource (`"secrets"`, `"leases"`, `"sealedsecrets/status"`).
    #[must_use]
    pub fn resource(mut self, resource: &str) -> Self {
        self.resource = Some(resource.to_owned());
        self
    }

    /// Only requests with this Kubernetes verb (`"get"`, `"list"`, `"watch"`, `"patch"`, …);
    /// called again, with this one or the ones before.
    #[must_use]
    pub fn verb(mut self, verb: &str) -> Self {
        self.verbs.push(verb.to_owned());
        self
    }

    /// Whether `request` is one of these.
    pub fn matches(&self, request: &RequestRecord) -> bool {
        self.method.as_ref().is_none_or(|m| *m == request.method)
            && self
                .path_contains
                .as_ref()
                .is_none_or(|p| request.path.contains(p.as_str()))
            && self
                .resource
                .as_ref()
                .is_none_or(|r| *r == request.resource)
            && (self.verbs.is_empty() || self.verbs.contains(&request.verb))
    }
}

/// Fails matching requests with `status` (a `kind: Status` body with the usual reason for that
/// code: 409 `Conflict`, 500 `InternalError`, 429 `TooManyRequests`, …): the next `count` of
/// them, or, with [`lasting`](Self::lasting), every one for a while.
///
/// ```
/// use std::time::Duration;
/// use sealbox_tests::FaultRule;
/// // The next two PATCHes of Secrets fail with 500.
/// let rule = FaultRule::status(500).method("PATCH").resource("secrets").times(2);
/// assert_eq!(rule.count, 2);
/// // Every list fails with 503 for the next three seconds (from when the rule is added).
/// let outage = FaultRule::status(503).verb("list").lasting(Duration::from_secs(3));
/// # let _ = outage;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultRule {
    /// Which requests fail.
    pub requests: Requests,
    /// HTTP status to answer with.
    pub status: u16,
    /// How many matching requests fail before the rule is used up.
    pub count: usize,
    /// When set, the rule fails every matching request (whatever `count` says) for this long
    /// after it is added, then lapses.
    pub lasting: Option<Duration>,
}

impl FaultRule {
    /// A rule failing the next request, whatever it is, with `status`.
    pub fn status(status: u16) -> Self {
        Self {
            requests: Requests::any(),
            status,
            count: 1,
            lasting: None,
        }
    }

    /// Only the requests `requests` matches.
    #[must_use]
    pub fn matching(mut self, requests: Requests) -> Self {
        self.requests = requests;
        self
    }

    /// Only requests with this HTTP method.
    #[must_use]
    pub fn method(mut self, method: &str) -> Self {
        self.requests = self.requests.method(method);
        self
    }

    /// Only requests whose path contains `fragment`.
    #[must_use]
    pub fn path_contains(mut self, fragment: &str) -> Self {
        self.requests = self.requests.path_contains(fragment);
        self
    }

    /// Only requests for this resource (`"secrets"`, `"leases"`, `"sealedsecrets/status"`).
    #[must_use]
    pub fn resource(mut self, resource: &str) -> Self {
        self.requests = self.requests.resource(resource);
        self
    }

    /// Only requests with this Kubernetes verb (`"get"`, `"list"`, `"watch"`, `"patch"`, …);
    /// called again, with this one or the ones before.
    #[must_use]
    pub fn verb(mut self, verb: &str) -> Self {
        self.requests = self.requests.verb(verb);
        self
    }

    /// Fail `count` matching requests instead of one.
    #[must_use]
    pub fn times(mut self, count: usize) -> Self {
        self.count = count;
        self
    }

    /// Fail every matching request for `window` from when the rule is added, then lapse: an
    /// outage (e.g. lists failing while a watch must relist).
    #[must_use]
    pub fn lasting(mut self, window: Duration) -> Self {
        self.lasting = Some(window);
        self
    }
}

/// What the double injected so far, for a test to check its faults really struck.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultReport {
    /// Requests failed on purpose, by HTTP status.
    pub errors: BTreeMap<u16, usize>,
    /// Times every open watch was cut.
    pub watch_cuts: usize,
    /// Compactions (each ends every open watch with 410 Gone).
    pub compactions: usize,
    /// Windows in which lists failed, from a [`Chaos`](crate::Chaos) schedule.
    pub list_outages: usize,
    /// Requests that were held by a pause (counted when they begin to wait).
    pub paused: usize,
}

impl FaultReport {
    /// Requests failed on purpose with `status`.
    pub fn errors(&self, status: u16) -> usize {
        self.errors.get(&status).copied().unwrap_or(0)
    }
}

/// Matching requests fail with `status` with probability `rate`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ErrorRate {
    pub(crate) requests: Requests,
    pub(crate) status: u16,
    pub(crate) rate: f64,
}

#[derive(Debug)]
struct ActiveRule {
    rule: FaultRule,
    /// End of a lasting rule's window.
    until: Option<Instant>,
}

/// The faults in force: rules (first match wins), random error rates, pauses, and the tally.
#[derive(Debug)]
pub(crate) struct Faults {
    rules: Vec<ActiveRule>,
    rates: Vec<ErrorRate>,
    rng: fastrand::Rng,
    pauses: Vec<(u64, Requests)>,
    next_pause: u64,
    report: FaultReport,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            rules: Vec::new(),
            rates: Vec::new(),
            rng: fastrand::Rng::with_seed(0),
            pauses: Vec::new(),
            next_pause: 0,
            report: FaultReport::default(),
        }
    }
}

impl Faults {
    pub(crate) fn add(&mut self, rule: FaultRule, now: Instant) {
        let until = rule.lasting.map(|window| now + window);
        if rule.count > 0 || until.is_some() {
            self.rules.push(ActiveRule { rule, until });
        }
    }

    /// Forgets the rules and error rates (not the pauses: their guards release them).
    pub(crate) fn clear(&mut self) {
        self.rules.clear();
        self.rates.clear();
    }

    /// Fails matching resource requests at these rates from now on, drawing from an RNG seeded
    /// with `seed`: the same seed makes the same decisions for the same sequence of requests.
    pub(crate) fn set_rates(&mut self, rates: Vec<ErrorRate>, seed: u64) {
        self.rates = rates;
        self.rng = fastrand::Rng::with_seed(seed);
    }

    /// The status to fail `request` with, if any: a rule's (using up one count of it), else
    /// one drawn at the random rates.
    pub(crate) fn take(&mut self, request: &RequestRecord, now: Instant) -> Option<u16> {
        self.rules
            .retain(|r| r.until.is_none_or(|until| now < until));
        let status = self.take_rule(request).or_else(|| self.draw(request))?;
        *self.report.errors.entry(status).or_default() += 1;
        Some(status)
    }

    fn take_rule(&mut self, request: &RequestRecord) -> Option<u16> {
        let index = self
            .rules
            .iter()
            .position(|r| r.rule.requests.matches(request))?;
        let active = &mut self.rules[index];
        let status = active.rule.status;
        if active.until.is_none() {
            active.rule.count -= 1;
            if active.rule.count == 0 {
                self.rules.remove(index);
            }
        }
        Some(status)
    }

    /// One draw per request, whatever matches, so decisions depend only on the seed and the
    /// sequence of requests; discovery and other non-resource requests never fail.
    fn draw(&mut self, request: &RequestRecord) -> Option<u16> {
        if self.rates.is_empty() || !request.is_resource_request() {
            return None;
        }
        let mut roll = self.rng.f64();
        for rate in &self.rates {
            if !rate.requests.matches(request) {
                continue;
            }
            if roll < rate.rate {
                return Some(rate.status);
            }
            roll -= rate.rate;
        }
        None
    }

    /// Holds requests matching `requests` until [`unpause`](Self::unpause) with the returned id.
    pub(crate) fn pause(&mut self, requests: Requests) -> u64 {
        let id = self.next_pause;
        self.next_pause += 1;
        self.pauses.push((id, requests));
        id
    }

    pub(crate) fn unpause(&mut self, id: u64) {
        self.pauses.retain(|(p, _)| *p != id);
    }

    pub(crate) fn is_paused(&self, request: &RequestRecord) -> bool {
        self.pauses.iter().any(|(_, r)| r.matches(request))
    }

    pub(crate) fn report(&self) -> FaultReport {
        self.report.clone()
    }

    pub(crate) fn report_mut(&mut self) -> &mut FaultReport {
        &mut self.report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, verb: &str, resource: &str, path: &str) -> RequestRecord {
        RequestRecord {
            method: method.into(),
            path: path.into(),
            query: String::new(),
            verb: verb.into(),
            group: String::new(),
            resource: resource.into(),
            namespace: Some("app".into()),
            name: None,
            status: 0,
        }
    }

    fn list_secrets() -> RequestRecord {
        request("GET", "list", "secrets", "/api/v1/namespaces/app/secrets")
    }

    fn patch_secret() -> RequestRecord {
        request(
            "PATCH",
            "patch",
            "secrets",
            "/api/v1/namespaces/app/secrets/x",
        )
    }

    fn discovery() -> RequestRecord {
        request("GET", "get", "", "/api/v1")
    }

    #[test]
    fn requests_match_on_every_criterion_set() {
        assert!(Requests::any().matches(&list_secrets()));
        assert!(Requests::any().matches(&discovery()));
        let lists = Requests::any()
            .resource("secrets")
            .verb("list")
            .verb("watch");
        assert!(lists.matches(&list_secrets()));
        assert!(!lists.matches(&patch_secret()));
        assert!(Requests::writes().matches(&patch_secret()));
        assert!(!Requests::writes().matches(&list_secrets()));
        let x = Requests::any().method("patch").path_contains("/secrets/x");
        assert!(x.matches(&patch_secret()));
        assert!(!x.matches(&list_secrets()));
        assert!(!Requests::any().resource("leases").matches(&list_secrets()));
    }

    #[test]
    fn a_rule_fails_its_count_then_lapses() {
        let now = Instant::now();
        let mut faults = Faults::default();
        faults.add(FaultRule::status(500).verb("patch").times(2), now);
        assert_eq!(faults.take(&list_secrets(), now), None);
        assert_eq!(faults.take(&patch_secret(), now), Some(500));
        assert_eq!(faults.take(&patch_secret(), now), Some(500));
        assert_eq!(faults.take(&patch_secret(), now), None);
        assert_eq!(faults.report().errors(500), 2);
        // A rule for no request at all is no rule.
        faults.add(FaultRule::status(500).times(0), now);
        assert_eq!(faults.take(&patch_secret(), now), None);
    }

    #[test]
    fn a_lasting_rule_fails_everything_in_its_window_then_lapses() {
        let now = Instant::now();
        let mut faults = Faults::default();
        let window = Duration::from_secs(3);
        faults.add(FaultRule::status(503).verb("list").lasting(window), now);
        for _ in 0..10 {
            assert_eq!(faults.take(&list_secrets(), now + window / 2), Some(503));
        }
        assert_eq!(faults.take(&patch_secret(), now), None);
        assert_eq!(faults.take(&list_secrets(), now + window), None);
        assert_eq!(faults.report().errors(503), 10);
    }

    #[test]
    fn random_rates_are_reproducible_and_near_their_rates() {
        let rates = vec![
            ErrorRate {
                requests: Requests::any(),
                status: 500,
                rate: 0.08,
            },
            ErrorRate {
                requests: Requests::writes(),
                status: 409,
                rate: 0.06,
            },
        ];
        let decisions = |seed| {
            let mut faults = Faults::default();
            faults.set_rates(rates.clone(), seed);
            let now = Instant::now();
            (0..10_000)
                .map(|i| {
                    let request = if i % 2 == 0 {
                        list_secrets()
                    } else {
                        patch_secret()
                    };
                    faults.take(&request, now)
                })
                .collect::<Vec<_>>()
        };
        let first = decisions(7);
        assert_eq!(first, decisions(7), "one seed, one sequence of decisions");
        assert_ne!(first, decisions(8));
        let count = |status, parity| {
            first
                .iter()
                .enumerate()
                .filter(|(i, d)| i % 2 == parity && **d == Some(status))
                .count()
        };
        // 5,000 reads and 5,000 writes; the seed fixes the counts, the bounds say they are
        // the rates (±30%), and that reads never get a 409.
        assert!((280..=520).contains(&count(500, 0)), "{}", count(500, 0));
        assert!((280..=520).contains(&count(500, 1)), "{}", count(500, 1));
        assert!((210..=390).contains(&count(409, 1)), "{}", count(409, 1));
        assert_eq!(count(409, 0), 0);
    }

    #[test]
    fn random_rates_spare_discovery_and_rules_come_first() {
        let now = Instant::now();
        let mut faults = Faults::default();
        let always = ErrorRate {
            requests: Requests::any(),
            status: 500,
            rate: 1.0,
        };
        faults.set_rates(vec![always], 1);
        assert_eq!(faults.take(&discovery(), now), None);
        assert_eq!(faults.take(&list_secrets(), now), Some(500));
        faults.add(FaultRule::status(429), now);
        assert_eq!(faults.take(&list_secrets(), now), Some(429));
        faults.clear();
        assert_eq!(faults.take(&list_secrets(), now), None);
    }

    #[test]
    fn pauses_hold_what_they_match_until_lifted() {
        let mut faults = Faults::default();
        let secrets = faults.pause(Requests::any().resource("secrets").verb("get"));
        let everything = faults.pause(Requests::any());
        assert!(faults.is_paused(&list_secrets()));
        faults.unpause(everything);
        assert!(!faults.is_paused(&list_secrets()));
        assert!(faults.is_paused(&request(
            "GET",
            "get",
            "secrets",
            "/api/v1/namespaces/app/secrets/x"
        )));
        faults.unpause(secrets);
        assert!(!faults.is_paused(&discovery()));
    }
}
