//! Fault injection: make the next N matching requests fail with a chosen status.

use crate::log::RequestRecord;

/// Fails the next `count` requests that match every set criterion with `status`
/// (a `kind: Status` body with the usual reason for that code: 409 `Conflict`,
/// 500 `InternalError`, 429 `TooManyRequests`, …).
///
/// ```
/// use sealbox_tests::FaultRule;
/// // The next two PATCHes of Secrets fail with 500.
/// let rule = FaultRule::status(500).method("PATCH").resource("secrets").times(2);
/// assert_eq!(rule.count, 2);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultRule {
    /// HTTP method, e.g. `"PATCH"`; `None` matches any.
    pub method: Option<String>,
    /// Substring of the request path (without the query), e.g. `"/namespaces/app/"`.
    pub path_contains: Option<String>,
    /// Resource as the request log names it, e.g. `"secrets"` or `"sealedsecrets/status"`.
    pub resource: Option<String>,
    /// Kubernetes verb, e.g. `"watch"` or `"list"`.
    pub verb: Option<String>,
    /// HTTP status to answer with.
    pub status: u16,
    /// How many matching requests fail before the rule is used up.
    pub count: usize,
}

impl FaultRule {
    /// A rule failing the next request, whatever it is, with `status`.
    pub fn status(status: u16) -> Self {
        Self {
            method: None,
            path_contains: None,
            resource: None,
            verb: None,
            status,
            count: 1,
        }
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

    /// Only requests with this Kubernetes verb (`"get"`, `"list"`, `"watch"`, `"patch"`, …).
    #[must_use]
    pub fn verb(mut self, verb: &str) -> Self {
        self.verb = Some(verb.to_owned());
        self
    }

    /// Fail `count` matching requests instead of one.
    #[must_use]
    pub fn times(mut self, count: usize) -> Self {
        self.count = count;
        self
    }

    fn matches(&self, request: &RequestRecord) -> bool {
        self.method.as_ref().is_none_or(|m| *m == request.method)
            && self
                .path_contains
                .as_ref()
                .is_none_or(|p| request.path.contains(p.as_str()))
            && self
                .resource
                .as_ref()
                .is_none_or(|r| *r == request.resource)
            && self.verb.as_ref().is_none_or(|v| *v == request.verb)
    }
}

/// Active fault rules, first match wins.
#[derive(Debug, Default)]
pub(crate) struct Faults(Vec<FaultRule>);

impl Faults {
    pub(crate) fn add(&mut self, rule: FaultRule) {
        if rule.count > 0 {
            self.0.push(rule);
        }
    }

    pub(crate) fn clear(&mut self) {
        self.0.clear();
    }

    /// The status to fail `request` with, using up one count of the matching rule.
    pub(crate) fn take(&mut self, request: &RequestRecord) -> Option<u16> {
        let index = self.0.iter().position(|rule| rule.matches(request))?;
        let rule = &mut self.0[index];
        let status = rule.status;
        rule.count -= 1;
        if rule.count == 0 {
            self.0.remove(index);
        }
        Some(status)
    }
}
