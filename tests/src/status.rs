//! Failures as the API server reports them: a `kind: Status` body and its HTTP code.

use serde_json::{Value, json};

/// A failed API call, rendered as a Kubernetes `Status` so `kube::Error::Api` parses it and
/// helpers such as `is_not_found()` work.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ApiError {
    pub(crate) code: u16,
    pub(crate) reason: &'static str,
    pub(crate) message: String,
    pub(crate) details: Option<Value>,
}

/// The object an error is about, for messages like `secrets "x" not found`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Subject<'a> {
    pub(crate) group: &'a str,
    pub(crate) resource: &'a str,
    pub(crate) name: &'a str,
}

impl Subject<'_> {
    /// `secrets` for the core group, `sealedsecrets.bitnami.com` otherwise.
    fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.resource.to_owned()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }

    fn details(&self) -> Value {
        json!({ "name": self.name, "group": self.group, "kind": self.resource })
    }
}

impl ApiError {
    pub(crate) fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    /// The generic reason Kubernetes uses for a bare status code.
    pub(crate) fn from_code(code: u16, message: impl Into<String>) -> Self {
        let reason = match code {
            400 => "BadRequest",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "NotFound",
            405 => "MethodNotAllowed",
            409 => "Conflict",
            410 => "Expired",
            415 => "UnsupportedMediaType",
            422 => "Invalid",
            429 => "TooManyRequests",
            503 => "ServiceUnavailable",
            504 => "Timeout",
            _ => "InternalError",
        };
        Self::new(code, reason, message)
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// A path that names no served resource (or API document).
    pub(crate) fn no_such_path() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    pub(crate) fn not_found(subject: Subject<'_>) -> Self {
        let message = format!("{} \"{}\" not found", subject.qualified(), subject.name);
        Self {
            details: Some(subject.details()),
            ..Self::new(404, "NotFound", message)
        }
    }

    pub(crate) fn already_exists(subject: Subject<'_>) -> Self {
        let message = format!(
            "{} \"{}\" already exists",
            subject.qualified(),
            subject.name
        );
        Self {
            details: Some(subject.details()),
            ..Self::new(409, "AlreadyExists", message)
        }
    }

    /// Optimistic concurrency failure: the caller's `resourceVersion` is stale.
    pub(crate) fn conflict(subject: Subject<'_>) -> Self {
        let message = format!(
            "Operation cannot be fulfilled on {} \"{}\": the object has been modified; \
             please apply your changes to the latest version and try again",
            subject.qualified(),
            subject.name
        );
        Self {
            details: Some(subject.details()),
            ..Self::new(409, "Conflict", message)
        }
    }

    /// Server-side apply found fields owned by other managers.
    pub(crate) fn apply_conflicts(subject: Subject<'_>, conflicts: &[(String, String)]) -> Self {
        let listed: Vec<String> = conflicts
            .iter()
            .map(|(manager, field)| format!("conflict with \"{manager}\": {field}"))
            .collect();
        let message = format!(
            "Apply failed with {} conflict{}: {}",
            conflicts.len(),
            if conflicts.len() == 1 { "" } else { "s" },
            listed.join("; ")
        );
        let causes: Vec<Value> = conflicts
            .iter()
            .map(|(manager, field)| {
                json!({
                    "reason": "FieldManagerConflict",
                    "message": format!("conflict with \"{manager}\""),
                    "field": field,
                })
            })
            .collect();
        let mut details = subject.details();
        details["causes"] = Value::Array(causes);
        Self {
            details: Some(details),
            ..Self::new(409, "Conflict", message)
        }
    }

    /// A validation failure, `Kind.group "name" is invalid: field: problem` (the kind qualified
    /// by its group, as the real API server's `GroupKind.String()`: `Deployment.apps`).
    pub(crate) fn invalid(kind: &str, subject: Subject<'_>, causes: &[(String, String)]) -> Self {
        let listed: Vec<String> = causes
            .iter()
            .map(|(field, problem)| format!("{field}: {problem}"))
            .collect();
        let body = if listed.len() == 1 {
            listed.join("")
        } else {
            format!("[{}]", listed.join(", "))
        };
        let qualified = if subject.group.is_empty() {
            kind.to_owned()
        } else {
            format!("{kind}.{}", subject.group)
        };
        let message = format!("{qualified} \"{}\" is invalid: {body}", subject.name);
        let mut details = subject.details();
        details["kind"] = Value::String(kind.to_owned());
        details["causes"] = causes
            .iter()
            .map(|(field, problem)| {
                json!({ "reason": "FieldValueInvalid", "message": problem, "field": field })
            })
            .collect();
        Self {
            details: Some(details),
            ..Self::new(422, "Invalid", message)
        }
    }

    /// The requested resourceVersion has been compacted away.
    pub(crate) fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    /// The `kind: Status` body.
    pub(crate) fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        status
    }
}

/// A successful `kind: Status`, as returned by deletes of collections.
pub(crate) fn success(details: Value) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    })
}
