//! What the CLI writes: documents rendered as YAML or JSON, to stdout or, atomically, to a
//! file; `note:` lines for stderr; times as tables and messages show them.
//!
//! A file is written to a temporary file in the same directory, synced, then renamed over the
//! target: on any error the target is left exactly as it was.

use std::fs;
use std::io::{self, Write};
use std::path::Path;
use std::time::SystemTime;

use clap::ValueEnum;
use serde::Serialize;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Output format of documents.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// YAML; several documents are joined with `---`.
    #[default]
    Yaml,
    /// JSON; several documents are written one after another (a JSON stream `kubectl` reads).
    Json,
}

/// Who may read a newly created output file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Visibility {
    /// Sealed output, meant for Git: 0644.
    Public,
    /// Plaintext (unsealed) output: 0600, even when replacing a file that had other
    /// permissions (a 0644 file from an earlier run must not make the plaintext world-readable).
    Private,
    /// Key backups: 0600, like [`Visibility::Private`].
    OwnerOnly,
}

/// Renders documents in `format`; the buffer is zeroized when dropped since it may hold
/// plaintext (unsealed Secrets).
pub fn render<T: Serialize>(documents: &[T], format: Format) -> Result<Zeroizing<Vec<u8>>> {
    let mut out = Zeroizing::new(Vec::new());
    for (i, document) in documents.iter().enumerate() {
        match format {
            Format::Yaml => {
                if i > 0 {
                    out.extend_from_slice(b"---\n");
                }
                let text = Zeroizing::new(serde_norway::to_string(document).map_err(|e| {
                    Error::Render {
                        format: "YAML",
                        reason: e.to_string(),
                    }
                })?);
                out.extend_from_slice(text.as_bytes());
            }
            Format::Json => {
                let text = Zeroizing::new(serde_json::to_string_pretty(document).map_err(|e| {
                    Error::Render {
                        format: "JSON",
                        reason: e.to_string(),
                    }
                })?);
                out.extend_from_slice(text.as_bytes());
                out.push(b'\n');
            }
        }
    }
    Ok(out)
}

/// Writes `bytes` to `target` (a file, atomically) or to `stdout`.
pub fn emit(
    bytes: &[u8],
    target: Option<&Path>,
    visibility: Visibility,
    mut stdout: impl Write,
) -> Result<()> {
    match target {
        Some(path) => write_atomically(path, bytes, visibility),
        None => stdout
            .write_all(bytes)
            .and_then(|()| stdout.flush())
            .map_err(|source| Error::WriteStdout { source }),
    }
}

/// Writes a `note:` line to stderr; a failing stderr is no reason to fail the command.
pub fn note(stderr: &mut impl Write, message: std::fmt::Arguments<'_>) {
    let _ = writeln!(stderr, "note: {message}");
}

/// The note for `-o FILE` where `-w FILE` is meant now.
pub fn deprecated_output_file(stderr: &mut impl Write) {
    note(
        stderr,
        format_args!(
            "-o FILE is deprecated here and will go: -o names an output format, as in kubectl; write -w FILE"
        ),
    );
}

/// A time as tables and messages show it (UTC, to the second); `-` when unknown.
pub fn rfc3339(time: Option<SystemTime>) -> String {
    time.and_then(|t| jiff::Timestamp::try_from(t).ok())
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| "-".to_owned())
}

/// Replaces `path` with `bytes` through a temporary file in the same directory. Public output
/// over an existing target keeps that target's permissions; private output (plaintext, keys)
/// is always 0600, and the temporary file is owner-only from its creation.
pub fn write_atomically(path: &Path, bytes: &[u8], visibility: Visibility) -> Result<()> {
    let fail = |source: io::Error| Error::WriteFile {
        path: path.to_owned(),
        source,
    };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(Error::OutputPath {
            path: path.to_owned(),
            problem: "its directory does not exist; create it first",
        });
    }
    if path.is_dir() {
        return Err(Error::OutputPath {
            path: path.to_owned(),
            problem: "it is a directory; pass a file name",
        });
    }
    let existing = fs::metadata(path).ok().map(|m| m.permissions());

    let mut temp = tempfile::Builder::new()
        .prefix(".sealbox-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(fail)?;
    temp.write_all(bytes)
        .and_then(|()| temp.as_file().sync_all())
        .map_err(fail)?;
    let permissions = match visibility {
        Visibility::Private | Visibility::OwnerOnly => new_file_permissions(visibility),
        Visibility::Public => existing.or_else(|| new_file_permissions(visibility)),
    };
    if let Some(permissions) = permissions {
        temp.as_file().set_permissions(permissions).map_err(fail)?;
    }
    temp.persist(path).map_err(|e| fail(e.error))?;
    Ok(())
}

#[cfg(unix)]
fn new_file_permissions(visibility: Visibility) -> Option<fs::Permissions> {
    use std::os::unix::fs::PermissionsExt as _;
    Some(fs::Permissions::from_mode(match visibility {
        Visibility::Public => 0o644,
        Visibility::Private | Visibility::OwnerOnly => 0o600,
    }))
}

#[cfg(not(unix))]
fn new_file_permissions(_visibility: Visibility) -> Option<fs::Permissions> {
    // Elsewhere the temporary file keeps its own, owner-only permissions.
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_documents_are_joined_and_json_streamed() {
        let docs = [serde_json::json!({"a": 1}), serde_json::json!({"b": 2})];
        let yaml = render(&docs, Format::Yaml).unwrap();
        assert_eq!(std::str::from_utf8(&yaml).unwrap(), "a: 1\n---\nb: 2\n");
        let json = render(&docs, Format::Json).unwrap();
        assert_eq!(
            std::str::from_utf8(&json).unwrap(),
            "{\n  \"a\": 1\n}\n{\n  \"b\": 2\n}\n"
        );
    }

    /// Issue 12, finding 7: plaintext written over an existing world-readable file must not
    /// inherit its mode.
    #[cfg(unix)]
    #[test]
    fn plaintext_is_owner_only_even_over_an_existing_file() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("unsealed.yaml");
        fs::write(&target, b"old").unwrap();
        fs::set_permissions(&target, fs::Permissions::from_mode(0o644)).unwrap();
        write_atomically(&target, b"plain", Visibility::Private).unwrap();
        let mode = fs::metadata(&target).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // And it stays owner-only when written again.
        write_atomically(&target, b"plain", Visibility::Private).unwrap();
        let mode = fs::metadata(&target).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(fs::read(&target).unwrap(), b"plain");
    }

    #[test]
    fn atomic_write_leaves_the_target_on_failure() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope/out.yaml");
        let err = write_atomically(&missing, b"x", Visibility::Public).unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");

        let target = dir.path().join("out.yaml");
        write_atomically(&target, b"one", Visibility::Private).unwrap();
        write_atomically(&target, b"two", Visibility::Public).unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"two");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(&target).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "an existing file keeps its mode");
        }
        let leftovers = fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(leftovers, 1, "no temporary file is left behind");
    }
}
