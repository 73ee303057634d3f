//! The namespace of the kubeconfig's current context (or of `--context`), read with the least
//! machinery possible:
//! `--kubeconfig FILE`, else the `KUBECONFIG` list (the first file that sets `current-context`
//! decides, contexts are looked up across all files, first wins, as kubectl merges them), else
//! `~/.kube/config`. Missing files are skipped; a file that exists but cannot be read or parsed
//! is an error, so a broken config never silently seals for the wrong namespace.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::bounded;
use crate::error::{Error, Result};

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Kubeconfig {
    #[serde(default)]
    current_context: Option<String>,
    #[serde(default)]
    contexts: Option<Vec<NamedContext>>,
}

#[derive(Debug, Deserialize)]
struct NamedContext {
    name: String,
    #[serde(default)]
    context: Option<Context>,
}

#[derive(Debug, Deserialize)]
struct Context {
    #[serde(default)]
    namespace: Option<String>,
}

/// The files to read: `explicit`, else `kubeconfig_env` split like a `PATH`, else
/// `$HOME/.kube/config`.
pub fn candidate_files(
    explicit: Option<&Path>,
    kubeconfig_env: Option<&std::ffi::OsStr>,
    home: Option<&Path>,
) -> Vec<PathBuf> {
    if let Some(path) = explicit {
        return vec![path.to_owned()];
    }
    if let Some(list) = kubeconfig_env.filter(|v| !v.is_empty()) {
        return std::env::split_paths(list)
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
    }
    home.map(|h| vec![h.join(".kube").join("config")])
        .unwrap_or_default()
}

/// The current context's namespace from the environment's kubeconfig, with the file it came
/// from; `None` when no file sets one.
pub fn current_namespace(
    explicit: Option<&Path>,
    context: Option<&str>,
) -> Result<Option<(String, PathBuf)>> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let files = candidate_files(
        explicit,
        std::env::var_os("KUBECONFIG").as_deref(),
        home.as_deref(),
    );
    let mut configs = Vec::new();
    for path in files {
        let bytes = match bounded::read_bounded(&path, bounded::KUBECONFIG) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && explicit.is_none() => continue,
            Err(source) => return Err(Error::ReadKubeconfig { path, source }),
        };
        let config = parse(&bytes).map_err(|reason| Error::ParseKubeconfig {
            path: path.clone(),
            reason,
        })?;
        configs.push((path, config));
    }
    Ok(namespace_of(&configs, context))
}

/// The contexts of one kubeconfig file. The error is the parser's message, which the error
/// type shows without the values it quotes (a kubeconfig holds tokens and keys).
fn parse(bytes: &[u8]) -> std::result::Result<Kubeconfig, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        format!(
            "not UTF-8 text (invalid byte at offset {})",
            e.valid_up_to()
        )
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim().is_empty() {
        return Ok(Kubeconfig::default());
    }
    bounded::parse_yaml(text, bounded::KUBECONFIG)
}

fn namespace_of(
    configs: &[(PathBuf, Kubeconfig)],
    context: Option<&str>,
) -> Option<(String, PathBuf)> {
    let current = context.or_else(|| {
        configs
            .iter()
            .find_map(|(_, c)| c.current_context.as_deref().filter(|s| !s.is_empty()))
    })?;
    configs.iter().find_map(|(path, config)| {
        let context = config
            .contexts
            .as_deref()?
            .iter()
            .find(|c| c.name == current)?;
        let namespace = context.context.as_ref()?.namespace.as_deref()?;
        (!namespace.is_empty()).then(|| (namespace.to_owned(), path.clone()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> Kubeconfig {
        serde_norway::from_str(yaml).unwrap()
    }

    #[test]
    fn first_current_context_wins_and_contexts_merge() {
        let a = config("contexts:\n- name: dev\n  context: {cluster: c, namespace: team-a}\n");
        let b = config("current-context: dev\nclusters: []\n");
        let configs = [("a".into(), a), ("b".into(), b)];
        let found = namespace_of(&configs, None).unwrap();
        assert_eq!(found, ("team-a".to_owned(), PathBuf::from("a")));
        assert_eq!(namespace_of(&configs, Some("other")), None);
    }

    /// Issue 12, finding 7: a mistyped value is named, never quoted.
    #[test]
    fn parse_errors_name_the_field_not_the_value() {
        for yaml in [
            "contexts: hunter2-canary\n",
            "contexts:\n- name: dev\n  context: hunter2-canary\n",
            "current-context: [hunter2-canary]\ncontexts: {a: hunter2-canary}\n",
            "contexts:\n- name: 12345678\n  context: {namespace: [x]}\n",
        ] {
            let reason = parse(yaml.as_bytes()).unwrap_err();
            let err = Error::ParseKubeconfig {
                path: "k".into(),
                reason,
            };
            let message = err.to_string();
            assert!(!message.contains("hunter2-canary"), "{message}");
            assert!(!message.contains("12345678"), "{message}");
            assert!(message.contains("context"), "{message}");
        }
    }

    /// 100 KB of nested `[` took 12 s of CPU in the YAML parser (quadratic in depth).
    #[test]
    fn flow_nesting_is_bounded_before_parsing() {
        let depth = 50_000;
        let yaml = format!(
            "current-context: x\nclusters: {}{}\n",
            "[".repeat(depth),
            "]".repeat(depth)
        );
        let reason = parse(yaml.as_bytes()).unwrap_err();
        assert!(reason.contains("nested deeper than 64 levels"), "{reason}");
    }

    #[test]
    fn no_namespace_in_context_is_none() {
        let a = config("current-context: x\ncontexts:\n- name: x\n  context: {cluster: c}\n");
        assert_eq!(namespace_of(&[("a".into(), a)], None), None);
    }

    #[test]
    fn candidates_follow_kubectl() {
        let env = std::ffi::OsString::from("/a:/b::/c");
        assert_eq!(
            candidate_files(None, Some(&env), Some(Path::new("/home/u"))),
            [PathBuf::from("/a"), "/b".into(), "/c".into()]
        );
        assert_eq!(
            candidate_files(None, None, Some(Path::new("/home/u"))),
            [PathBuf::from("/home/u/.kube/config")]
        );
    }
}
