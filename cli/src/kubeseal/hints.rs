//! Hints for kubeseal habits in sealbox's own commands: an unknown flag that is kubeseal's
//! (`--format`, `--sealed-secret-file`, `--fetch-cert`, …) gets a `tip:` naming sealbox's
//! equivalent, and the reminder that the same command line works as `sealbox kubeseal …`.

use clap::builder::StyledStr;
use clap::error::{ContextKind, ContextValue, ErrorKind};

/// sealbox's equivalent of a kubeseal flag, for a command that does not take it.
pub fn equivalent(flag: &str) -> Option<&'static str> {
    Some(match flag {
        "--format" => "kubeseal's --format is -o/--output here (yaml, the default, or json)",
        "--sealed-secret-file" => "kubeseal's -w/--sealed-secret-file is -w/--write FILE here",
        "--secret-file" => "kubeseal's -f/--secret-file is -f/--file FILE here",
        "--fetch-cert" => "kubeseal's --fetch-cert is `sealbox cert fetch` here",
        "--merge-into" => "kubeseal's --merge-into FILE is `sealbox merge --into FILE` here",
        "--validate" => "kubeseal's --validate is `sealbox verify --online` here",
        "--re-encrypt" | "--rotate" => {
            "kubeseal's --re-encrypt is `sealbox reencrypt PATH` here (files are re-sealed in place)"
        }
        "--recovery-unseal" => "kubeseal's --recovery-unseal is `sealbox unseal --key FILE` here",
        "--recovery-private-key" => {
            "kubeseal's --recovery-private-key is `sealbox unseal --key FILE` here (repeat --key)"
        }
        "--raw" | "--from-file" => "kubeseal's --raw is `sealbox seal --raw [--from-file FILE]`",
        "--allow-empty-data" | "--scope" | "--name" => {
            "kubeseal's sealing flags belong to `sealbox seal` (and `merge`) here"
        }
        "--cert"
        | "--controller-name"
        | "--controller-namespace"
        | "--kubeconfig"
        | "--context" => {
            "this command does not take it; sealbox takes it on the commands that seal or reach the controller (seal, merge, verify, cert fetch, keys, check, reencrypt)"
        }
        "--server"
        | "--token"
        | "--cluster"
        | "--user"
        | "--insecure-skip-tls-verify"
        | "--certificate-authority"
        | "--client-certificate"
        | "--client-key"
        | "--as"
        | "--as-group"
        | "--username"
        | "--password"
        | "--tls-server-name" => {
            "sealbox's own commands read the cluster from the kubeconfig (--kubeconfig, --context); kubectl's client flags work in `sealbox kubeseal`"
        }
        _ => return None,
    })
}

/// The reminder added to every hint.
const KUBESEAL_MODE: &str = "kubeseal's whole command line also works as `sealbox kubeseal …` (or through a `kubeseal` link)";

/// Adds the hints to clap's "unexpected argument" error when the argument is kubeseal's.
pub fn with_hint(mut error: clap::Error) -> clap::Error {
    if error.kind() != ErrorKind::UnknownArgument {
        return error;
    }
    let Some(ContextValue::String(argument)) = error.get(ContextKind::InvalidArg) else {
        return error;
    };
    let flag = argument.split('=').next().unwrap_or_default();
    let Some(hint) = equivalent(flag) else {
        return error;
    };
    let mut suggestions = match error.get(ContextKind::Suggested) {
        Some(ContextValue::StyledStrs(existing)) => existing.clone(),
        _ => Vec::new(),
    };
    suggestions.push(StyledStr::from(hint));
    suggestions.push(StyledStr::from(KUBESEAL_MODE));
    error.insert(
        ContextKind::Suggested,
        ContextValue::StyledStrs(suggestions),
    );
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kubeseal_only_flag_has_a_hint() {
        for flag in [
            "--format",
            "--sealed-secret-file",
            "--secret-file",
            "--fetch-cert",
            "--merge-into",
            "--validate",
            "--re-encrypt",
            "--recovery-unseal",
            "--recovery-private-key",
            "--controller-name",
            "--server",
        ] {
            assert!(equivalent(flag).is_some(), "{flag}");
        }
        assert_eq!(equivalent("--output"), None);
    }
}
