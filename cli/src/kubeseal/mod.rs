//! kubeseal mode: the binary invoked as `kubeseal` (a symlink or a copy) or as
//! `sealbox kubeseal …` takes kubeseal v0.40's flags with kubeseal's semantics, output and exit
//! codes, so pipelines, Makefiles and Argo CD plugins that call kubeseal keep working.
//!
//! One room per kind of work: the flags ([`flags`]), what a run does ([`Mode`], decided from
//! the flags alone), sealing Secrets, raw values and merges ([`seal`]), the controller's
//! endpoints ([`controller`]), disaster recovery ([`recovery`]), kubeseal's document layout
//! ([`render`]), the `kubeseal` link ([`install`]) and the hints sealbox's own commands give
//! for kubeseal flags ([`hints`]). It maps onto the shared modules (sealing, certificates,
//! cluster, keys, output) and never onto another command.
//!
//! Exit codes, as kubeseal: 0 success, 1 any failure, 2 bad flags (clap's usage errors).
//! Every failure is printed as `error: <kubeseal's words>`; file errors read like Go's
//! (`open x.pem: no such file or directory`), since scripts and Bitnami's own tests match them.

pub mod controller;
pub mod flags;
pub mod hints;
pub mod install;
pub mod recovery;
pub mod render;
pub mod seal;

use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::cluster::ClusterOptions;
use crate::document::read_input;
use crate::error::{Error, Result};
use crate::output::{Visibility, emit, write_atomically};

pub use flags::{KubesealArgs, KubesealCli, KubesealFormat};

/// The name that switches the binary into kubeseal mode.
pub const KUBESEAL: &str = "kubeseal";

/// The kubeseal release whose flags and behaviour this mode follows; `--version` reports it,
/// with Sealbox's own version as semver build metadata.
pub const KUBESEAL_VERSION: &str = "v0.40.0";

/// Whether `argv0` (the program name) is `kubeseal` (or `kubeseal.exe`), by its file name.
pub fn invoked_as_kubeseal(argv0: Option<&OsStr>) -> bool {
    let Some(name) = argv0.and_then(|a| Path::new(a).file_name()) else {
        return false;
    };
    let name = name.to_string_lossy();
    let stem = name
        .strip_suffix(".exe")
        .or_else(|| name.strip_suffix(".EXE"))
        .unwrap_or(&name);
    stem == KUBESEAL
}

/// What one kubeseal run does, decided from the flags in kubeseal's order of precedence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `--version`.
    Version,
    /// `--install-link DIR` (sealbox only).
    InstallLink(PathBuf),
    /// `--recovery-unseal`.
    RecoveryUnseal,
    /// `--validate`.
    Validate,
    /// `--re-encrypt` (or `--rotate`).
    ReEncrypt,
    /// `--fetch-cert`.
    FetchCert,
    /// `--merge-into FILE`.
    MergeInto(PathBuf),
    /// `--raw`.
    Raw,
    /// Seal Secrets (the default).
    Seal,
}

impl Mode {
    /// The mode the flags ask for, or kubeseal's usage error.
    pub fn of(args: &KubesealArgs) -> Result<Mode> {
        if args.version {
            return Ok(Mode::Version);
        }
        if let Some(dir) = &args.install_link {
            return Ok(Mode::InstallLink(dir.clone()));
        }
        if !args.from_file.is_empty() && !args.raw {
            return Err(usage("--from-file requires --raw"));
        }
        Ok(if args.recovery_unseal {
            Mode::RecoveryUnseal
        } else if args.validate {
            Mode::Validate
        } else if args.re_encrypting() {
            Mode::ReEncrypt
        } else if args.fetch_cert {
            Mode::FetchCert
        } else if let Some(file) = &args.merge_into {
            Mode::MergeInto(file.clone())
        } else if args.raw {
            Mode::Raw
        } else {
            Mode::Seal
        })
    }

    /// Whether the mode reads documents from `-f` or stdin.
    pub fn reads_documents(&self) -> bool {
        matches!(
            self,
            Mode::RecoveryUnseal
                | Mode::Validate
                | Mode::ReEncrypt
                | Mode::MergeInto(_)
                | Mode::Seal
        )
    }
}

/// Whether the run will read stdin (documents without `-f`, or `--raw` without `--from-file`).
pub fn reads_stdin(args: &KubesealArgs) -> bool {
    let from_stdin = args
        .secret_file
        .as_deref()
        .is_none_or(|f| f == Path::new("-"));
    match Mode::of(args) {
        Ok(Mode::Raw) => args.from_file.is_empty(),
        Ok(mode) => mode.reads_documents() && from_stdin,
        Err(_) => false,
    }
}

/// Where the output goes and in which format: `-w FILE` (a `.yaml`/`.yml` name means YAML),
/// for `--re-encrypt -f FILE` without `-w` the input file itself (kubeseal #405), else stdout.
pub fn output_target(args: &KubesealArgs, mode: &Mode) -> (Option<PathBuf>, KubesealFormat) {
    let file = args.sealed_secret_file.clone().or_else(|| {
        (*mode == Mode::ReEncrypt)
            .then(|| args.secret_file.clone())
            .flatten()
            .filter(|f| f.as_path() != Path::new("-"))
    });
    let yaml_name = file
        .as_deref()
        .and_then(Path::extension)
        .is_some_and(|ext| ext == "yaml" || ext == "yml");
    let format = if yaml_name {
        KubesealFormat::Yaml
    } else {
        args.format
    };
    (file, format)
}

/// The cluster the kubectl flags and controller flags describe.
pub fn cluster_options(args: &KubesealArgs) -> ClusterOptions {
    ClusterOptions {
        kubeconfig: args.client.kubeconfig.clone(),
        context: args.client.context.clone(),
        controller_namespace: args.controller_namespace.clone(),
        controller_name: args.controller_name.clone(),
        overrides: Box::new(args.client.overrides()),
    }
}

/// Runs kubeseal mode. Every failure comes back as [`Error::Kubeseal`] (exit 1), in kubeseal's
/// words; a closed stdout stays a broken pipe (a clean exit).
pub fn run(
    args: &KubesealArgs,
    stdin: impl Read,
    mut stdout: impl Write,
    mut stderr: impl Write,
) -> Result<()> {
    run_mode(args, stdin, &mut stdout, &mut stderr).map_err(|e| match e {
        Error::Kubeseal { .. } => e,
        e if e.is_broken_pipe() => e,
        e => Error::Kubeseal {
            message: kubeseal_words(&e),
            category: e.category(),
        },
    })
}

fn run_mode(
    args: &KubesealArgs,
    mut stdin: impl Read,
    stdout: &mut impl Write,
    stderr: &mut impl Write,
) -> Result<()> {
    let mode = Mode::of(args)?;
    match &mode {
        Mode::Version => {
            return writeln!(
                stdout,
                "kubeseal version: {KUBESEAL_VERSION}+sealbox.{}",
                env!("CARGO_PKG_VERSION")
            )
            .map_err(|source| Error::WriteStdout { source });
        }
        Mode::InstallLink(dir) => return install::run(dir, stderr),
        _ => {}
    }
    if args.rotate {
        let _ = writeln!(
            stderr,
            "Flag --rotate has been deprecated, please use --re-encrypt instead"
        );
    }
    if !args.recovery_private_key.is_empty() && mode != Mode::RecoveryUnseal {
        let _ = writeln!(
            stderr,
            "warning: ignoring --recovery-private-key because unseal command not chosen with --recovery-unseal"
        );
    }
    let input = if mode.reads_documents() {
        Some(
            read_input(args.secret_file.as_deref(), &mut stdin).map_err(|e| match e {
                Error::ReadInput { .. } | Error::InputIsDirectory { .. }
                    if args.secret_file.is_some() =>
                {
                    usage_with("Could not read file specified with --secret-file", &e)
                }
                e => e,
            })?,
        )
    } else {
        None
    };
    let (target, format) = output_target(args, &mode);
    let mut out = zeroize::Zeroizing::new(Vec::new());
    let visibility = match &mode {
        Mode::RecoveryUnseal => {
            recovery::run(args, input_of(&input), format, &mut out, stderr)?;
            Visibility::Private
        }
        Mode::Validate => {
            controller::validate(args, input_of(&input))?;
            Visibility::Public
        }
        Mode::ReEncrypt => {
            controller::re_encrypt(args, input_of(&input), format, &mut out)?;
            Visibility::Public
        }
        Mode::FetchCert => {
            out.extend_from_slice(&controller::certificate_bytes(args)?);
            Visibility::Public
        }
        Mode::MergeInto(file) => {
            // kubeseal writes the merge into the file; -w would get an empty file.
            seal::merge_into(args, input_of(&input), file, format, stderr)?;
            return Ok(());
        }
        Mode::Raw => {
            seal::raw(args, &mut stdin, &mut out)?;
            Visibility::Public
        }
        Mode::Seal => {
            seal::seal(args, input_of(&input), format, &mut out)?;
            Visibility::Public
        }
        Mode::Version | Mode::InstallLink(_) => Visibility::Public,
    };
    match &target {
        // Validate writes nothing; kubeseal still replaces -w with the (empty) output.
        Some(path) => write_atomically(path, &out, visibility),
        None => emit(&out, None, visibility, stdout),
    }
}

/// The input read for a mode that reads documents.
fn input_of(input: &Option<(String, zeroize::Zeroizing<Vec<u8>>)>) -> (&str, &[u8]) {
    match input {
        Some((name, bytes)) => (name.as_str(), bytes.as_slice()),
        None => ("<stdin>", &[]),
    }
}

/// A usage failure in kubeseal's words (exit 1, as kubeseal: its checks run after parsing).
pub fn usage(message: &str) -> Error {
    Error::Kubeseal {
        message: message.to_owned(),
        category: "usage",
    }
}

/// kubeseal's words, then ours after ` (…)`.
fn usage_with(message: &str, cause: &Error) -> Error {
    Error::Kubeseal {
        message: format!("{message} ({})", kubeseal_words(cause)),
        category: cause.category(),
    }
}

/// An error's message with every I/O cause worded as Go words it (`no such file or
/// directory`, lower case, without the `(os error 2)` suffix).
pub fn kubeseal_words(error: &Error) -> String {
    let mut text = error.report();
    let mut cause = std::error::Error::source(error);
    while let Some(err) = cause {
        if let Some(io) = err.downcast_ref::<io::Error>() {
            text = text.replace(&io.to_string(), &go_io_text(io));
        }
        cause = err.source();
    }
    text
}

fn go_io_text(error: &io::Error) -> String {
    let shown = error.to_string();
    let text = match error.raw_os_error() {
        Some(_) => shown.split(" (os error").next().unwrap_or(&shown),
        None => &shown,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    fn args(flags: &[&str]) -> KubesealArgs {
        KubesealCli::try_parse_from(std::iter::once("kubeseal").chain(flags.iter().copied()))
            .unwrap()
            .args
    }

    #[test]
    fn the_program_name_decides() {
        for name in ["kubeseal", "/usr/local/bin/kubeseal", "kubeseal.exe"] {
            assert!(invoked_as_kubeseal(Some(OsStr::new(name))), "{name}");
        }
        for name in ["sealbox", "/bin/kubeseal-old", "kubeseal2", ""] {
            assert!(!invoked_as_kubeseal(Some(OsStr::new(name))), "{name}");
        }
        assert!(!invoked_as_kubeseal(None));
    }

    #[test]
    fn modes_follow_kubeseals_precedence() {
        assert_eq!(Mode::of(&args(&[])).unwrap(), Mode::Seal);
        assert_eq!(
            Mode::of(&args(&["--raw", "--fetch-cert"])).unwrap(),
            Mode::FetchCert
        );
        assert_eq!(
            Mode::of(&args(&["--validate", "--re-encrypt", "--recovery-unseal"])).unwrap(),
            Mode::RecoveryUnseal
        );
        assert_eq!(
            Mode::of(&args(&["--validate", "--re-encrypt"])).unwrap(),
            Mode::Validate
        );
        assert_eq!(
            Mode::of(&args(&["--merge-into", "x", "--raw"])).unwrap(),
            Mode::MergeInto("x".into())
        );
        assert_eq!(
            Mode::of(&args(&["--version", "--from-file", "x"])).unwrap(),
            Mode::Version
        );
        let err = Mode::of(&args(&["--from-file", "x"])).unwrap_err();
        assert_eq!(err.to_string(), "--from-file requires --raw");
        assert_eq!(err.exit_code(), 1);
    }

    #[test]
    fn output_goes_where_kubeseal_puts_it() {
        let target = |flags: &[&str]| {
            let args = args(flags);
            output_target(&args, &Mode::of(&args).unwrap())
        };
        assert_eq!(target(&[]), (None, KubesealFormat::Json));
        assert_eq!(
            target(&["-w", "out.yml"]),
            (Some("out.yml".into()), KubesealFormat::Yaml)
        );
        assert_eq!(
            target(&["-w", "out.json", "-o", "yaml"]),
            (Some("out.json".into()), KubesealFormat::Yaml)
        );
        assert_eq!(
            target(&["--re-encrypt", "-f", "s.yaml"]),
            (Some("s.yaml".into()), KubesealFormat::Yaml)
        );
        assert_eq!(target(&["-f", "s.yaml"]), (None, KubesealFormat::Json));
    }

    #[test]
    fn io_errors_read_like_gos() {
        let err = Error::ReadCertificate {
            cert: "nope.pem".to_owned(),
            source: io::Error::from_raw_os_error(2),
        };
        assert_eq!(
            kubeseal_words(&err),
            "cannot read the certificate nope.pem: no such file or directory"
        );
    }
}
