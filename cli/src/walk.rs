//! Finding the manifest files of a repository: the paths given, directories walked for
//! `.yaml`, `.yml` and `.json` files, `.git` (and other VCS directories) skipped, ignore globs
//! honoured. Files named explicitly are taken whatever their extension, unless ignored.

use std::path::{Component, Path, PathBuf};

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

/// The files to look at under `paths`, sorted within each directory, each once.
pub fn manifest_files(paths: &[PathBuf], ignore: &Ignore) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
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
                files.push(path.clone());
            }
            continue;
        }
        let walker = walkdir::WalkDir::new(path)
            .follow_links(false)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(|entry| {
                let skipped_dir = entry.file_type().is_dir()
                    && entry.depth() > 0
                    && entry
                        .file_name()
                        .to_str()
                        .is_some_and(|name| SKIPPED_DIRECTORIES.contains(&name));
                !skipped_dir && !ignore.is_ignored(entry.path())
            });
        for entry in walker {
            let entry = entry.map_err(|e| Error::Walk {
                path: e.path().map_or_else(|| path.clone(), Path::to_owned),
                source: e
                    .into_io_error()
                    .unwrap_or_else(|| std::io::Error::other("filesystem loop")),
            })?;
            if entry.file_type().is_file() && is_manifest(entry.path()) {
                files.push(entry.into_path());
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    files.retain(|f| seen.insert(absolute(f)));
    Ok(files)
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
}
