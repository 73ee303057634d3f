//! Finding the manifest files of a repository: the paths given, directories walked for
//! `.yaml`, `.yml` and `.json` files with ripgrep's `ignore` crate (`.gitignore` and the other
//! ignore files honoured, so `target/` and `node_modules/` are not read), `.git` (and other VCS
//! directories) and Helm chart templates skipped, ignore globs honoured. Files named explicitly
//! are taken whatever their extension, unless an ignore glob matches.

use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use glob::{MatchOptions, Pattern};

use crate::error::{Error, Result};

/// Extensions of manifest files inside walked directories.
pub const MANIFEST_EXTENSIONS: &[&str] = &["yaml", "yml", "json"];
/// Directories never walked into.
const SKIPPED_DIRECTORIES: &[&str] = &[".git", ".hg", ".svn", ".jj"];

/// Globs matching paths to skip.
#[derive(Clone, Debug, Default)]
pub struct Ignore {
    patterns: Vec<(Pattern, PathBuf)>,
}

/// Matching like gitignore-style globs: `*` stays within a path component, `**` crosses them.
pub const GLOB_OPTIONS: MatchOptions = MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

impl Ignore {
    /// Adds `pattern`, relative to `base` (the current directory for flags, the config's
    /// directory for `.sealbox.yaml`). A pattern without `/` matches a file or directory name
    /// at any depth, like in `.gitignore`.
    pub fn add(&mut self, pattern: &str, base: &Path, origin: &str) -> Result<()> {
        let normalized = pattern.trim_end_matches('/');
        let normalized = normalized.strip_prefix("./").unwrap_or(normalized);
        let full = if normalized.contains('/') {
            normalized.to_owned()
        } else {
            format!("**/{normalized}")
        };
        let compiled = Pattern::new(&full).map_err(|e| Error::InvalidPattern {
            origin: origin.to_owned(),
            pattern: pattern.to_owned(),
            reason: e.msg.to_owned(),
        })?;
        self.patterns.push((compiled, absolute(base)));
        Ok(())
    }

    /// Whether `path` (or a directory it is in, when walking) is ignored.
    pub fn is_ignored(&self, path: &Path) -> bool {
        let path = absolute(path);
        self.patterns.iter().any(|(pattern, base)| {
            path.strip_prefix(base).is_ok_and(|relative| {
                pattern.matches_path_with(relative, GLOB_OPTIONS)
                    || relative
                        .ancestors()
                        .skip(1)
                        .filter(|a| !a.as_os_str().is_empty())
                        .any(|a| pattern.matches_path_with(a, GLOB_OPTIONS))
            })
        })
    }
}

/// `path` made absolute against the current directory and cleaned of `.` and `..`
/// components (lexically: symlinks are not resolved).
pub fn absolute(path: &Path) -> PathBuf {
    let joined = if path.is_absolute() {
        path.to_owned()
    } else {
        std::env::current_dir()
            .map(|cwd| cwd.join(path))
            .unwrap_or_else(|_| path.to_owned())
    };
    let mut clean = PathBuf::new();
    for component in joined.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                clean.pop();
            }
            other => clean.push(other),
        }
    }
    clean
}

/// What a walk found: the files to look at, and the Helm chart template directories it did
/// not walk into.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    /// The files, sorted within each directory, each once.
    pub files: Vec<PathBuf>,
    /// `templates/` directories of Helm charts (next to a `Chart.yaml`): Go templates, not
    /// manifests, so every file would fail to parse.
    pub helm_templates: Vec<PathBuf>,
}

impl Selection {
    /// One line about the skipped Helm templates, if any, instead of a warning per file.
    pub fn helm_note(&self) -> Option<String> {
        let first = self.helm_templates.first()?;
        let more = match self.helm_templates.len() {
            1 => String::new(),
            n => format!(" and {} more", n - 1),
        };
        Some(format!(
            "skipped the templates of {} Helm chart(s) ({}{more}): they are Go templates, not manifests; check what `helm template` renders instead",
            self.helm_templates.len(),
            first.display()
        ))
    }
}

/// The files to look at under `paths`: directories are walked for manifests, honouring
/// `.gitignore`, `.ignore`, `.git/info/exclude` and git's global excludes as ripgrep does
/// (whether or not the tree is a git checkout), skipping VCS directories, the `ignore` globs
/// and Helm chart templates. A file named explicitly is taken whatever its extension or the
/// ignore files say, unless an `ignore` glob matches it.
pub fn manifest_files(paths: &[PathBuf], ignore: &Ignore) -> Result<Vec<PathBuf>> {
    select(paths, ignore).map(|selection| selection.files)
}

/// [`manifest_files`], with the Helm templates it skipped.
pub fn select(paths: &[PathBuf], ignore: &Ignore) -> Result<Selection> {
    let mut selection = Selection::default();
    for path in paths {
        let metadata = std::fs::metadata(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                Error::MissingPath { path: path.clone() }
            } else {
                Error::Walk {
                    path: path.clone(),
                    source,
                }
            }
        })?;
        if !metadata.is_dir() {
            if !ignore.is_ignored(path) {
                selection.files.push(path.clone());
            }
            continue;
        }
        walk_directory(path, ignore, &mut selection)?;
    }
    let mut seen = std::collections::HashSet::new();
    selection.files.retain(|f| seen.insert(absolute(f)));
    Ok(selection)
}

fn walk_directory(root: &Path, ignore: &Ignore, selection: &mut Selection) -> Result<()> {
    // The filter must be 'static: it gets its own copy of the globs and shares the list of
    // skipped chart templates.
    let helm_templates = Arc::new(Mutex::new(Vec::new()));
    let skipped = Arc::clone(&helm_templates);
    let globs = ignore.clone();
    let walker = ignore::WalkBuilder::new(root)
        // Dot-directories may hold manifests (.argocd/, .flux/): only VCS ones are skipped.
        .hidden(false)
        .require_git(false)
        .follow_links(false)
        .sort_by_file_name(|a, b| a.cmp(b))
        .filter_entry(move |entry| {
            let is_dir = entry.file_type().is_some_and(|t| t.is_dir());
            if is_dir && entry.depth() > 0 {
                let name = entry.file_name().to_str().unwrap_or_default();
                if SKIPPED_DIRECTORIES.contains(&name) {
                    return false;
                }
                if is_helm_templates(entry.path()) {
                    if let Ok(mut list) = skipped.lock() {
                        list.push(entry.path().to_owned());
                    }
                    return false;
                }
            }
            !globs.is_ignored(entry.path())
        })
        .build();
    for entry in walker {
        let entry = entry.map_err(|e| walk_error(root, e))?;
        if entry.file_type().is_some_and(|t| t.is_file()) && is_manifest(entry.path()) {
            selection.files.push(entry.into_path());
        }
    }
    if let Ok(mut list) = helm_templates.lock() {
        selection.helm_templates.append(&mut list);
    }
    Ok(())
}

/// A `templates` directory next to a `Chart.yaml`.
fn is_helm_templates(dir: &Path) -> bool {
    dir.file_name().is_some_and(|name| name == "templates")
        && dir
            .parent()
            .is_some_and(|chart| chart.join("Chart.yaml").is_file())
}

fn walk_error(root: &Path, error: ignore::Error) -> Error {
    let path = walk_error_path(&error).unwrap_or(root).to_owned();
    let source = match error.into_io_error() {
        Some(io) => io,
        None => std::io::Error::other(
            "cannot walk the directory (a filesystem loop or an unreadable ignore file)",
        ),
    };
    Error::Walk { path, source }
}

fn walk_error_path(error: &ignore::Error) -> Option<&Path> {
    match error {
        ignore::Error::WithPath { path, .. } => Some(path),
        ignore::Error::WithDepth { err, .. } | ignore::Error::WithLineNumber { err, .. } => {
            walk_error_path(err)
        }
        _ => None,
    }
}

/// Whether the file name ends in a manifest extension.
pub fn is_manifest(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| MANIFEST_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_manifests_skipping_git_and_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for file in [
            "a.yaml",
            "b.yml",
            "c.json",
            "d.txt",
            ".git/x.yaml",
            "charts/t.yaml",
            "apps/web/s.yaml",
            "apps/web/secret.tmp.yaml",
        ] {
            let path = root.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "").unwrap();
        }
        let mut ignore = Ignore::default();
        ignore.add("charts/", root, "test").unwrap();
        ignore.add("*.tmp.yaml", root, "test").unwrap();
        let files = manifest_files(&[root.to_owned()], &ignore).unwrap();
        let names: Vec<String> = files
            .iter()
            .map(|f| f.strip_prefix(root).unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["a.yaml", "apps/web/s.yaml", "b.yml", "c.json"]);

        // An explicit file is taken whatever its extension, unless ignored.
        let explicit = manifest_files(&[root.join("d.txt"), root.join("charts/t.yaml")], &ignore);
        assert_eq!(explicit.unwrap(), [root.join("d.txt")]);

        let err = manifest_files(&[root.join("nope")], &ignore).unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
    }

    /// Issue 17: `check .` read 18,147 files, mostly under an ignored `target/`, and warned once
    /// per Helm template.
    #[test]
    fn ignore_files_are_honoured_and_helm_templates_skipped_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for file in [
            "app/s.yaml",
            "target/debug/build/x.json",
            "node_modules/pkg/package.json",
            "local/notes.yaml",
            "charts/web/Chart.yaml",
            "charts/web/values.yaml",
            "charts/web/templates/secret.yaml",
            "charts/web/templates/deploy.yaml",
            "charts/db/Chart.yaml",
            "charts/db/templates/s.yaml",
            "other/templates/plain.yaml",
            ".argocd/app.yaml",
        ] {
            let path = root.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "").unwrap();
        }
        std::fs::write(root.join(".gitignore"), "/target\nnode_modules/\n").unwrap();
        std::fs::write(root.join("local/.ignore"), "notes.yaml\n").unwrap();

        let selection = select(&[root.to_owned()], &Ignore::default()).unwrap();
        let names: Vec<String> = selection
            .files
            .iter()
            .map(|f| f.strip_prefix(root).unwrap().display().to_string())
            .collect();
        assert_eq!(
            names,
            [
                ".argocd/app.yaml",
                "app/s.yaml",
                "charts/db/Chart.yaml",
                "charts/web/Chart.yaml",
                "charts/web/values.yaml",
                "other/templates/plain.yaml",
            ]
        );
        assert_eq!(
            selection.helm_templates,
            [
                root.join("charts/db/templates"),
                root.join("charts/web/templates")
            ]
        );
        let note = selection.helm_note().unwrap();
        assert!(
            note.contains("2 Helm chart(s)") && note.contains("and 1 more"),
            "{note}"
        );

        // A file named explicitly is read even when an ignore file lists it.
        let explicit = select(
            &[root.join("target/debug/build/x.json")],
            &Ignore::default(),
        );
        assert_eq!(
            explicit.unwrap().files,
            [root.join("target/debug/build/x.json")]
        );
    }
}
