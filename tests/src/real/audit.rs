//! The API server's audit log: every request it answered, who made it and with what status, so
//! a test can count what a controller wrote and fail on any request the authorizer refused —
//! the real plane's counterpart of the double's request log.

use std::fs::File;
use std::io::{BufRead as _, BufReader, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::Error;
use crate::RequestRecord;

/// Logs each request once, when its response is complete, with its metadata only (never a
/// request or response body: those would hold Secret data).
pub(super) const POLICY: &str = "apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived, ResponseStarted]
rules:
- level: Metadata
";

/// One request the API server answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// The authenticated user (`system:serviceaccount:NAMESPACE:NAME` for a ServiceAccount).
    pub user: String,
    /// The request, in the shape of the double's request log.
    pub request: RequestRecord,
}

/// The user name a ServiceAccount's requests carry.
pub fn service_account_user(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Line {
    #[serde(default)]
    verb: String,
    #[serde(default, rename = "requestURI")]
    request_uri: String,
    #[serde(default)]
    user: User,
    object_ref: Option<ObjectRef>,
    response_status: Option<ResponseStatus>,
}

#[derive(Deserialize, Default)]
struct User {
    #[serde(default)]
    username: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ObjectRef {
    #[serde(default)]
    resource: String,
    subresource: Option<String>,
    namespace: Option<String>,
    name: Option<String>,
    #[serde(default)]
    api_group: String,
}

#[derive(Deserialize)]
struct ResponseStatus {
    #[serde(default)]
    code: u16,
}

impl From<Line> for AuditEvent {
    fn from(line: Line) -> Self {
        let (path, query) = line
            .request_uri
            .split_once('?')
            .unwrap_or((line.request_uri.as_str(), ""));
        let method = match line.verb.as_str() {
            "create" => "POST",
            "update" => "PUT",
            "patch" => "PATCH",
            "delete" | "deletecollection" => "DELETE",
            _ => "GET",
        };
        let (group, resource, namespace, name) = match line.object_ref {
            Some(o) => (
                o.api_group,
                match o.subresource {
                    Some(sub) => format!("{}/{sub}", o.resource),
                    None => o.resource,
                },
                o.namespace,
                o.name,
            ),
            None => (String::new(), String::new(), None, None),
        };
        Self {
            user: line.user.username,
            request: RequestRecord {
                method: method.to_owned(),
                path: path.to_owned(),
                query: query.to_owned(),
                verb: line.verb,
                group,
                resource,
                namespace,
                name,
                status: line.response_status.map_or(0, |s| s.code),
            },
        }
    }
}

/// Where a reader of the audit log is: the length of the file when it last read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct AuditOffset(pub(super) u64);

/// The events written to `path` from `from` on, and where the log ends now. A line still being
/// written (no newline yet) is left for the next read.
pub(super) fn read(
    path: &Path,
    from: AuditOffset,
) -> Result<(Vec<AuditEvent>, AuditOffset), Error> {
    let failed = |source| Error::Read {
        path: PathBuf::from(path),
        source,
    };
    let mut file = match File::open(path) {
        Ok(file) => file,
        // Nothing logged yet.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), from)),
        Err(e) => return Err(failed(e)),
    };
    file.seek(SeekFrom::Start(from.0)).map_err(failed)?;
    let mut reader = BufReader::new(file);
    let mut events = Vec::new();
    let mut offset = from.0;
    let mut line = String::new();
    loop {
        line.clear();
        let read = reader.read_line(&mut line).map_err(failed)?;
        if read == 0 || !line.ends_with('\n') {
            break;
        }
        offset += read as u64;
        if let Ok(parsed) = serde_json::from_str::<Line>(&line) {
            events.push(parsed.into());
        }
    }
    Ok((events, AuditOffset(offset)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_lines_become_request_records() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("audit.log");
        let complete = r#"{"kind":"Event","stage":"ResponseComplete","verb":"patch","requestURI":"/apis/bitnami.com/v1alpha1/namespaces/app/sealedsecrets/db/status?fieldManager=x","user":{"username":"system:serviceaccount:kube-system:sealed-secrets-controller"},"objectRef":{"resource":"sealedsecrets","namespace":"app","name":"db","apiGroup":"bitnami.com","apiVersion":"v1alpha1","subresource":"status"},"responseStatus":{"metadata":{},"code":403}}"#;
        std::fs::write(&path, format!("{complete}\n{{\"partial\":"))?;
        let (events, offset) = read(&path, AuditOffset::default())?;
        assert_eq!(
            offset.0,
            complete.len() as u64 + 1,
            "the partial line waits"
        );
        assert_eq!(
            events,
            [AuditEvent {
                user: service_account_user("kube-system", "sealed-secrets-controller"),
                request: RequestRecord {
                    method: "PATCH".into(),
                    path: "/apis/bitnami.com/v1alpha1/namespaces/app/sealedsecrets/db/status"
                        .into(),
                    query: "fieldManager=x".into(),
                    verb: "patch".into(),
                    group: "bitnami.com".into(),
                    resource: "sealedsecrets/status".into(),
                    namespace: Some("app".into()),
                    name: Some("db".into()),
                    status: 403,
                },
            }]
        );
        let (again, same) = read(&path, offset)?;
        assert!(again.is_empty());
        assert_eq!(same, offset);
        Ok(())
    }
}
