//! Bitnami's `SEALED_SECRETS_<FLAG>` environment variables, read for every flag, and the
//! start-up warnings about flags Sealbox accepts but ignores.
//!
//! Precedence, highest first: the command line, `SEALBOX_<FLAG>`, `SEALED_SECRETS_<FLAG>`, the
//! default. A `SEALED_SECRETS_` variable is passed to clap as if it were given before the
//! command line (so the command line overrides it; `args_override_self`), and only when the
//! flag's `SEALBOX_` variable is unset (clap reads that one itself, and only when the flag is
//! absent from the arguments). An empty variable counts as unset, as Bitnami's parser ignores
//! an empty value a flag cannot take.

use std::collections::BTreeMap;
use std::ffi::OsString;

use clap::{CommandFactory as _, FromArgMatches as _};

use crate::flags::Config;

/// Bitnami's prefix of flag variables.
pub const ENV_PREFIX: &str = "SEALED_SECRETS_";

/// A parsed configuration and what to warn about once logging is set up.
#[derive(Debug)]
pub struct Parsed {
    /// The configuration.
    pub config: Config,
    /// One line each: ignored flags and unknown `SEALED_SECRETS_` variables.
    pub warnings: Vec<String>,
}

/// Parses `args` (the program name first) with the `SEALED_SECRETS_` variables among `vars`.
pub fn parse<I, A>(args: I, vars: &BTreeMap<String, String>) -> Result<Parsed, clap::Error>
where
    I: IntoIterator<Item = A>,
    A: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let command = Config::command();
    let mut injected = Vec::new();
    let mut known = Vec::new();
    let mut warnings = Vec::new();
    for arg in command.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        let mut names = vec![long];
        names.extend(arg.get_all_aliases().unwrap_or_default());
        for name in names {
            let var = env_name(name);
            known.push(var.clone());
            let Some(value) = vars.get(&var).filter(|v| !v.is_empty()) else {
                continue;
            };
            let own = arg.get_env().and_then(|e| e.to_str());
            if own.is_some_and(|own| vars.get(own).is_some_and(|v| !v.is_empty())) {
                warnings.push(format!(
                    "{var} is ignored: {} is set too and takes precedence",
                    own.unwrap_or_default()
                ));
                continue;
            }
            if given(&args, name) {
                continue;
            }
            injected.push(OsString::from(format!("--{long}={value}")));
        }
    }
    for var in vars.keys().filter(|v| v.starts_with(ENV_PREFIX)) {
        if !known.contains(var) && !is_service_link(var) && var != "SEALED_SECRETS_VERSION" {
            warnings.push(format!(
                "{var} is not a flag of Bitnami's controller or of Sealbox's: ignored"
            ));
        }
    }
    let mut argv = args;
    let tail = argv.split_off(argv.len().min(1));
    argv.extend(injected);
    argv.extend(tail);
    let matches = command.try_get_matches_from(argv)?;
    let config = Config::from_arg_matches(&matches)?;
    warnings.extend(ignored(&config));
    Ok(Parsed { config, warnings })
}

/// `SEALED_SECRETS_KEY_RENEW_PERIOD` for `key-renew-period`.
pub fn env_name(flag: &str) -> String {
    format!(
        "{ENV_PREFIX}{}",
        flag.to_ascii_uppercase().replace('-', "_")
    )
}

/// Whether `--name` is among the arguments (alone, or as `--name=value`).
fn given(args: &[OsString], name: &str) -> bool {
    let flag = format!("--{name}");
    args.iter().skip(1).filter_map(|a| a.to_str()).any(|a| {
        a == flag
            || a.strip_prefix(&flag)
                .is_some_and(|rest| rest.starts_with('='))
    })
}

/// Kubernetes' service links: a Service named `sealed-secrets…` in the pod's namespace puts
/// `SEALED_SECRETS…_SERVICE_HOST`, `…_PORT` and `…_PORT_8080_TCP…` in its environment.
fn is_service_link(var: &str) -> bool {
    var.contains("_SERVICE_HOST")
        || var.contains("_SERVICE_PORT")
        || var.ends_with("_PORT")
        || var.contains("_PORT_")
}

/// One warning for each flag given a value that Sealbox does not act on.
fn ignored(config: &Config) -> Vec<String> {
    let mut warnings = Vec::new();
    if config.old_gc_behavior {
        warnings.push(
            "--old-gc-behavior is ignored: a SealedSecret's Secret carries an owner reference, \
             so Kubernetes' garbage collector deletes it with the SealedSecret"
                .to_owned(),
        );
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn sealed_secrets_variables_set_flags_below_the_command_line() {
        let env = vars(&[
            ("SEALED_SECRETS_ALL_NAMESPACES", "F"),
            (
                "SEALED_SECRETS_KEY_CUTOFF_TIME",
                "Mon, 02 Jan 2006 15:04:05 -0700",
            ),
            ("SEALED_SECRETS_RATE_LIMIT", "7"),
            ("SEALED_SECRETS_KEY_PREFIX", ""),
            ("SEALED_SECRETS_ROTATE_PERIOD", "1h"),
        ]);
        let parsed = parse(["c", "--rate-limit=9"], &env).expect("parses");
        let config = parsed.config;
        assert!(!config.all_namespaces);
        assert!(config.key_cutoff_time.is_some());
        assert_eq!(config.rate_limit, 9, "the command line wins");
        assert_eq!(config.key_prefix, "sealed-secrets-key", "empty is unset");
        assert_eq!(config.key_renew_period.as_secs(), 3600);
        assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
    }

    #[test]
    fn unknown_variables_are_warned_about_but_service_links_are_not() {
        let env = vars(&[
            ("SEALED_SECRETS_KEY_PREFIXX", "k"),
            ("SEALED_SECRETS_CONTROLLER_SERVICE_HOST", "10.0.0.1"),
            ("SEALED_SECRETS_CONTROLLER_PORT", "tcp://10.0.0.1:8080"),
            ("SEALED_SECRETS_CONTROLLER_PORT_8080_TCP_ADDR", "10.0.0.1"),
            ("UNRELATED", "x"),
        ]);
        let warnings = parse(["c"], &env).expect("parses").warnings;
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("SEALED_SECRETS_KEY_PREFIXX"),
            "{warnings:?}"
        );
    }

    #[test]
    fn ignored_flags_are_warned_about() {
        let parsed = parse(
            [
                "c",
                "--old-gc-behavior",
                "--key-ttl=1h",
                "--key-order-priority=SecretCreationTimestamp",
                "--max-unseal-retries=2",
                "--kubeclient-qps=5",
            ],
            &BTreeMap::new(),
        )
        .expect("parses");
        // Only --old-gc-behavior is ignored; the others take effect.
        assert_eq!(parsed.warnings.len(), 1, "{:?}", parsed.warnings);
        assert!(parsed.warnings[0].contains("--old-gc-behavior"));
        let e = parse(["c", "--key-order-priority=Newest"], &BTreeMap::new())
            .expect_err("not one of Bitnami's orders");
        assert!(e.to_string().contains("SecretCreationTimestamp"), "{e}");
    }

    #[test]
    fn a_bad_variable_names_the_flag() {
        let env = vars(&[("SEALED_SECRETS_UPDATE_STATUS", "maybe")]);
        let e = parse(["c"], &env).expect_err("rejected");
        assert!(e.to_string().contains("--update-status"), "{e}");
    }
}
