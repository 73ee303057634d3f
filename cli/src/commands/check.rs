//! `sealbox check PATH...`: the repository guard (pre-commit, CI).
//!
//! Fails on a plaintext Secret anywhere (any document of a multi-document file, any item of a
//! List; a file that does not parse but looks like a Secret with data counts too), and on
//! SealedSecrets that fail the offline checks of `verify`. Reports SealedSecrets sealed to a
//! key other than the current certificate's (stale) and ones without a sealing-key hint.
//! Never prints a value: findings name files, documents, objects and keys.

use std::io::Write;
use std::path::Path;

use sealbox_crypto::scope::SEALING_KEY_ANNOTATION;
use sealbox_crypto::{Fingerprint, PublicKey};
use serde::Serialize;
use serde_json::Value;

use crate::Outcome;
use crate::cert::{Expiry, KeyCache};
use crate::cert_choice::CertChoice;
use crate::cli::CheckArgs;
use crate::config::{Configs, select_files};
use crate::document::{Document, parse, read_file};
use crate::error::{Error, Result};
use crate::inspect::{HintCheck, check_document_with, sealed_rsa_len};

/// What a finding is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    /// A Secret with data or stringData: plaintext in the repository. Fails the check.
    PlaintextSecret,
    /// A SealedSecret that fails the offline checks. Fails the check.
    Invalid,
    /// A SealedSecret whose hint names another key than the current certificate's.
    Stale,
    /// A SealedSecret without a sealing-key hint: its key cannot be told offline.
    NoHint,
    /// A file that could not be parsed (not checked beyond a text search for Secrets).
    Unparsable,
    /// A SealedSecret with multi-recipient (age) values: who can open them; a Bitnami
    /// controller cannot.
    MultiRecipient,
}

impl FindingKind {
    fn fails(self, fail_on_stale: bool) -> bool {
        match self {
            FindingKind::PlaintextSecret | FindingKind::Invalid => true,
            FindingKind::Stale => fail_on_stale,
            FindingKind::NoHint | FindingKind::Unparsable | FindingKind::MultiRecipient => false,
        }
    }
}

/// One finding.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    /// The file.
    pub path: String,
    /// 1-based document index, when about one document.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document: Option<usize>,
    /// `namespace/name` of the object, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// What kind of finding.
    pub kind: FindingKind,
    /// What is wrong and what to do; never a value.
    pub message: String,
}

/// The whole report, as `--json` prints it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Report<'a> {
    ok: bool,
    files: usize,
    sealed_secrets: usize,
    plaintext_secrets: usize,
    invalid: usize,
    stale: usize,
    findings: &'a [Finding],
}

/// Runs `sealbox check`.
pub fn run(args: &CheckArgs, mut stdout: impl Write, mut stderr: impl Write) -> Result<Outcome> {
    let mut configs = Configs::default();
    let selection = select_files(&args.walk, &mut configs)?;
    let files = &selection.files;
    let cluster = args.cluster.options();
    let choice = CertChoice::new(args.cert.cert.as_ref(), &cluster);
    let mut keys = KeyCache::new(Expiry::Accept);
    let mut findings = Vec::new();
    let mut sealed_count = 0;
    for file in files {
        let source = choice.optional_for_path(&mut configs, file, args.fetch_cert)?;
        let key = match &source {
            Some(source) => Some(keys.get(source)?),
            None => None,
        };
        sealed_count += check_file(file, key.as_ref(), &mut findings);
    }

    let count = |kind| findings.iter().filter(|f| f.kind == kind).count();
    let failed = findings.iter().any(|f| f.kind.fails(args.fail_on_stale));
    let report = Report {
        ok: !failed,
        files: files.len(),
        sealed_secrets: sealed_count,
        plaintext_secrets: count(FindingKind::PlaintextSecret),
        invalid: count(FindingKind::Invalid),
        stale: count(FindingKind::Stale),
        findings: &findings,
    };
    if args.json {
        let mut text = serde_json::to_string_pretty(&report).map_err(|e| Error::Render {
            format: "JSON",
            reason: e.to_string(),
        })?;
        text.push('\n');
        stdout
            .write_all(text.as_bytes())
            .and_then(|()| stdout.flush())
            .map_err(|source| Error::WriteStdout { source })?;
    } else {
        print_findings(&findings, args.fail_on_stale, &mut stderr);
    }
    if let Some(message) = selection.helm_note().filter(|_| !args.json) {
        let _ = writeln!(stderr, "note: {message}");
    }
    if keys.is_empty() && !args.json {
        let _ = writeln!(
            stderr,
            "note: no certificate (--cert, .sealbox.yaml or --fetch-cert): SealedSecrets were checked for structure only, not for staleness"
        );
    }
    let _ = writeln!(
        stderr,
        "{}: {} file(s), {} SealedSecret(s): {} plaintext Secret(s), {} invalid, {} stale",
        if failed {
            "check failed"
        } else {
            "check passed"
        },
        report.files,
        report.sealed_secrets,
        report.plaintext_secrets,
        report.invalid,
        report.stale
    );
    Ok(if failed {
        Outcome::ProblemsFound
    } else {
        Outcome::Success
    })
}

/// The findings as text, one line each: `error:` when it fails the check, else `warning:`.
fn print_findings(findings: &[Finding], fail_on_stale: bool, stderr: &mut impl Write) {
    for finding in findings {
        let mut place = finding.path.clone();
        if let Some(document) = finding.document {
            place.push_str(&format!(", document {document}"));
        }
        if let Some(object) = &finding.object {
            place.push_str(&format!(" ({object})"));
        }
        let level = if finding.kind.fails(fail_on_stale) {
            "error"
        } else {
            "warning"
        };
        let _ = writeln!(stderr, "{level}: {place}: {}", finding.message);
    }
}

/// Checks one file; returns how many SealedSecrets it holds.
fn check_file(path: &Path, key: Option<&PublicKey>, findings: &mut Vec<Finding>) -> usize {
    let name = path.display().to_string();
    let finding = |kind, document, object, message: String| Finding {
        path: name.clone(),
        document,
        object,
        kind,
        message,
    };
    let bytes = match read_file(path) {
        Ok(bytes) => bytes,
        Err(e) => {
            findings.push(finding(
                FindingKind::Unparsable,
                None,
                None,
                format!("cannot read: {e}"),
            ));
            return 0;
        }
    };
    let input = match parse(&name, &bytes) {
        Ok(input) => input,
        Err(e) => {
            if looks_like_plaintext_secret(&bytes) {
                findings.push(finding(
                    FindingKind::PlaintextSecret,
                    None,
                    None,
                    "does not parse, but holds `kind: Secret` with data or stringData: a plaintext Secret? seal it with `sealbox seal`, or add the path to the ignore list".to_owned(),
                ));
            }
            findings.push(finding(
                FindingKind::Unparsable,
                None,
                None,
                format!("not checked: {}", e.report()),
            ));
            return 0;
        }
    };
    let mut sealed = 0;
    for document in &input.documents {
        let index = Some(document.origin.document);
        let object = object_name(&document.value);
        match document.kind() {
            Some("Secret") => {
                if let Some(keys) = plaintext_keys(document) {
                    findings.push(finding(
                        FindingKind::PlaintextSecret,
                        index,
                        object,
                        format!(
                            "plaintext Secret (keys: {}); seal it with `sealbox seal` and commit only the SealedSecret",
                            keys.join(", ")
                        ),
                    ));
                }
            }
            Some("SealedSecret") => {
                sealed += 1;
                check_sealed(document, key, object, &finding, findings);
            }
            _ => {}
        }
    }
    sealed
}

fn check_sealed(
    document: &Document,
    key: Option<&PublicKey>,
    object: Option<String>,
    finding: &impl Fn(FindingKind, Option<usize>, Option<String>, String) -> Finding,
    findings: &mut Vec<Finding>,
) {
    let index = Some(document.origin.document);
    if let Some(message) = multi_recipient_report(document, key) {
        findings.push(finding(
            FindingKind::MultiRecipient,
            index,
            object.clone(),
            message,
        ));
    }
    // Structural problems, value sizes compared with `compare` when given.
    let report_invalid = |compare: Option<&PublicKey>, findings: &mut Vec<Finding>| {
        let mut problems = Vec::new();
        check_document_with(document, compare, HintCheck::Skip, &mut problems);
        for problem in problems {
            findings.push(finding(
                FindingKind::Invalid,
                index,
                object.clone(),
                without_origin(&problem),
            ));
        }
    };
    let Some(key) = key else {
        report_invalid(None, findings);
        return;
    };
    let hint = document
        .value
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(SEALING_KEY_ANNOTATION))
        .and_then(Value::as_str)
        .map(str::parse::<Fingerprint>);
    // Sealed to another key: its values cannot be compared with this certificate's size.
    let stale_hint = match &hint {
        Some(Ok(hint)) if hint != key.fingerprint() => Some(hint.clone()),
        _ => None,
    };
    // Without a hint, values sized for another key tell it is sealed to an older key.
    let other_size = hint.is_none() && sized_for_another_key(document, key);
    report_invalid(
        (stale_hint.is_none() && !other_size).then_some(key),
        findings,
    );
    match (stale_hint, &hint) {
        (Some(hint), _) => findings.push(finding(
            FindingKind::Stale,
            index,
            object,
            format!(
                "sealed to {hint}, not to the current key {}; run `sealbox reencrypt` on it",
                key.fingerprint()
            ),
        )),
        (None, None) if other_size => findings.push(finding(
            FindingKind::Stale,
            index,
            object,
            format!(
                "sealed to a key of another size than the current key {} (no {SEALING_KEY_ANNOTATION} hint); run `sealbox reencrypt` on it",
                key.fingerprint()
            ),
        )),
        (None, None) => findings.push(finding(
            FindingKind::NoHint,
            index,
            object,
            format!(
                "no {SEALING_KEY_ANNOTATION} hint, so its key cannot be told offline; `sealbox reencrypt` adds one"
            ),
        )),
        // Current, or an unparsable hint (reported by the structural checks).
        (None, Some(_)) => {}
    }
}

/// Who can open the document's multi-recipient values (the distinct recipient lists, the
/// certificate's key marked), and that a Bitnami controller cannot; `None` without such values.
fn multi_recipient_report(document: &Document, key: Option<&PublicKey>) -> Option<String> {
    let values = document.value.pointer("/spec/encryptedData")?.as_object()?;
    let mut age_keys = Vec::new();
    let mut summaries: Vec<String> = Vec::new();
    for (name, value) in values {
        let Some(bytes) = value.as_str().and_then(crate::secret::decode_base64) else {
            continue;
        };
        if sealbox_crypto::ValueFormat::of(&bytes) != sealbox_crypto::ValueFormat::Age {
            continue;
        }
        age_keys.push(name.as_str());
        let Ok(header) = crate::inspect::age_header(&bytes) else {
            continue;
        };
        let mut summary = header.summary();
        if let Some(key) = key {
            let tag = key.fingerprint().age_tag();
            let opens = header.stanzas.iter().any(|s| {
                s.kind == sealbox_crypto::age_value::RecipientKind::SshRsa { key_tag: tag }
            });
            summary.push_str(if opens {
                "; the current certificate's key is one of them"
            } else {
                "; NOT the current certificate's key"
            });
        }
        if !summaries.contains(&summary) {
            summaries.push(summary);
        }
    }
    if age_keys.is_empty() {
        return None;
    }
    Some(format!(
        "multi-recipient values [{}] open for: {}; a Bitnami controller cannot read them (Sealbox controllers only)",
        age_keys.join(", "),
        summaries.join(" | ")
    ))
}

/// Whether a value of the document has an RSA part of another size than `key` makes.
fn sized_for_another_key(document: &Document, key: &PublicKey) -> bool {
    document
        .value
        .pointer("/spec/encryptedData")
        .and_then(Value::as_object)
        .is_some_and(|values| {
            values
                .values()
                .filter_map(Value::as_str)
                .any(|v| sealed_rsa_len(v).is_some_and(|len| len != key.modulus_len()))
        })
}

/// A problem's message without the file and document, which the finding names already.
fn without_origin(problem: &Error) -> String {
    match problem {
        Error::InvalidDocument { field, problem, .. } => format!("{field}: {problem}"),
        other => other.to_string(),
    }
}

/// `namespace/name` of a document, when it has a name.
fn object_name(value: &Value) -> Option<String> {
    let name = value.pointer("/metadata/name")?.as_str()?;
    let namespace = value
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("?");
    Some(format!("{namespace}/{name}"))
}

/// The data and stringData keys of a Secret, when it has any.
fn plaintext_keys(document: &Document) -> Option<Vec<String>> {
    let mut keys = Vec::new();
    for field in ["data", "stringData"] {
        if let Some(Value::Object(map)) = document.value.get(field) {
            keys.extend(map.keys().map(|k| format!("{field}.{k}")));
        }
    }
    (!keys.is_empty()).then_some(keys)
}

/// A text search for files that do not parse (Helm templates, broken YAML): a `kind: Secret`
/// line and a top-level `data:` or `stringData:` line.
fn looks_like_plaintext_secret(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes);
    let mut kind_secret = false;
    let mut data = false;
    for line in text.lines() {
        let trimmed = line.trim();
        let unquoted: String = trimmed
            .chars()
            .filter(|c| *c != '"' && *c != '\'')
            .collect();
        if unquoted == "kind: Secret" || unquoted.starts_with("kind: Secret ") {
            kind_secret = true;
        }
        if line.starts_with("data:") || line.starts_with("stringData:") {
            data = true;
        }
    }
    kind_secret && data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_secrets_in_broken_files() {
        assert!(looks_like_plaintext_secret(
            b"kind: Secret\nmetadata: {{ .x }}\nstringData:\n  a: b\n"
        ));
        assert!(!looks_like_plaintext_secret(
            b"kind: SealedSecret\nspec:\n  encryptedData: {}\n"
        ));
    }

    #[test]
    fn hidden_secret_in_a_list_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("all.yaml");
        std::fs::write(
            &file,
            "kind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: List\nitems:\n- kind: Service\n- apiVersion: v1\n  kind: Secret\n  metadata: {name: db}\n  stringData: {password: hunter2}\n",
        )
        .unwrap();
        let mut findings = Vec::new();
        check_file(&file, None, &mut findings);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(findings[0].kind, FindingKind::PlaintextSecret);
        assert!(findings[0].message.contains("stringData.password"));
        assert!(!findings[0].message.contains("hunter2"));
        assert_eq!(findings[0].document, Some(2));
    }
}
