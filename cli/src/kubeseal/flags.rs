//! kubeseal's flags, as clap types: the names, short forms, defaults, comma-separated lists
//! and `SEALED_SECRETS_*` environment variables of kubeseal v0.40 (pflag + pflagenv), so a
//! script written for kubeseal parses the same here.
//!
//! Boolean flags take an optional `=true|false` like pflag's (`--raw=false`), never a separate
//! word: `--raw false` would make `false` a stray argument there too.

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, ValueEnum};
use sealbox_crypto::Scope;

use crate::cert::CertSource;
use crate::cluster::{DEFAULT_CONTROLLER_NAME, DEFAULT_CONTROLLER_NAMESPACE};
use crate::kube_overrides::{ClientOverrides, Token};

/// Printed at the end of `--help` in kubeseal mode.
pub const KUBESEAL_HELP: &str = "\
kubeseal mode of sealbox: kubeseal's flags, output and exit codes (0 success, 1 error, 2 bad
flags). Every flag can also be set as SEALED_SECRETS_<FLAG> (upper case, - as _), e.g.
SEALED_SECRETS_CERT. Where it differs from kubeseal (a key hint annotation, --merge-into keeping
the file's scope, template data not rendered by --recovery-unseal): docs/USAGE.md (kubeseal mode).";

/// `kubeseal` when the binary is invoked under that name.
#[derive(Debug, Parser)]
#[command(
    name = "kubeseal",
    about = "Seal Kubernetes Secrets for the sealed-secrets controller (sealbox's kubeseal mode)",
    long_about = None,
    disable_version_flag = true,
    // pflag: a flag given twice takes its last value (Bitnami's own suite passes --kubeconfig
    // twice); repeatable flags (--recovery-private-key) still collect every value.
    args_override_self = true,
    after_help = KUBESEAL_HELP
)]
pub struct KubesealCli {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub args: KubesealArgs,
}

/// Seals Secrets for the sealed-secrets controller; kubeseal's command line.
#[derive(Debug, Args)]
pub struct KubesealArgs {
    /// Certificate / public key file/URL to use for encryption. Overrides --controller-*
    #[arg(
        long,
        value_name = "FILE|URL",
        env = "SEALED_SECRETS_CERT",
        hide_env_values = true
    )]
    pub cert: Option<CertSource>,

    /// Namespace of sealed-secrets controller.
    #[arg(
        long,
        value_name = "NAMESPACE",
        env = "SEALED_SECRETS_CONTROLLER_NAMESPACE", hide_env_values = true,
        default_value = DEFAULT_CONTROLLER_NAMESPACE
    )]
    pub controller_namespace: String,

    /// Name of sealed-secrets controller.
    #[arg(
        long,
        value_name = "NAME",
        env = "SEALED_SECRETS_CONTROLLER_NAME", hide_env_values = true,
        default_value = DEFAULT_CONTROLLER_NAME
    )]
    pub controller_name: String,

    /// Output format for sealed secret. Either json or yaml
    #[arg(
        short = 'o',
        long = "format",
        value_enum,
        ignore_case = true,
        default_value_t = KubesealFormat::Json,
        env = "SEALED_SECRETS_FORMAT", hide_env_values = true
    )]
    pub format: KubesealFormat,

    /// Sealed-secret (output) file
    #[arg(
        short = 'w',
        long = "sealed-secret-file",
        value_name = "FILE",
        env = "SEALED_SECRETS_SEALED_SECRET_FILE",
        hide_env_values = true
    )]
    pub sealed_secret_file: Option<PathBuf>,

    /// Secret (input) file
    #[arg(
        short = 'f',
        long = "secret-file",
        value_name = "FILE",
        env = "SEALED_SECRETS_SECRET_FILE",
        hide_env_values = true
    )]
    pub secret_file: Option<PathBuf>,

    /// Write certificate to stdout. Useful for later use with --cert
    #[arg(long, env = "SEALED_SECRETS_FETCH_CERT", hide_env_values = true, action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_name = "BOOL", value_parser = clap::builder::BoolishValueParser::new(), hide_default_value = true, hide_possible_values = true)]
    pub fetch_cert: bool,

    /// Allow empty data in the secret object
    #[arg(long, env = "SEALED_SECRETS_ALLOW_EMPTY_DATA", hide_env_values = true, action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_name = "BOOL", value_parser = clap::builder::BoolishValueParser::new(), hide_default_value = true, hide_possible_values = true)]
    pub allow_empty_data: bool,

    /// Validate that the sealed secret can be decrypted
    #[arg(long, env = "SEALED_SECRETS_VALIDATE", hide_env_values = true, action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_name = "BOOL", value_parser = clap::builder::BoolishValueParser::new(), hide_default_value = true, hide_possible_values = true)]
    pub validate: bool,

    /// Merge items from secret into an existing sealed secret file, updating the file in-place
    /// instead of writing to stdout.
    #[arg(
        long,
        value_name = "FILE",
        env = "SEALED_SECRETS_MERGE_INTO",
        hide_env_values = true
    )]
    pub merge_into: Option<PathBuf>,

    /// Encrypt a raw value passed via the --from-* flags instead of the whole secret object
    #[arg(long, env = "SEALED_SECRETS_RAW", hide_env_values = true, action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_name = "BOOL", value_parser = clap::builder::BoolishValueParser::new(), hide_default_value = true, hide_possible_values = true)]
    pub raw: bool,

    /// Name of the sealed secret (required with --raw and default (strict) scope)
    #[arg(
        long,
        value_name = "NAME",
        env = "SEALED_SECRETS_NAME",
        hide_env_values = true
    )]
    pub name: Option<String>,

    /// (only with --raw) Secret items can be sourced from files: PATH or KEY=PATH, as kubectl
    /// writes it. Comma-separated or repeated.
    #[arg(
        long,
        value_name = "[KEY=]PATH",
        value_delimiter = ',',
        env = "SEALED_SECRETS_FROM_FILE",
        hide_env_values = true
    )]
    pub from_file: Vec<String>,

    /// Set the scope of the sealed secret: strict, namespace-wide, cluster-wide (defaults to
    /// strict). Mandatory for --raw, otherwise the 'sealedsecrets.bitnami.com/cluster-wide' and
    /// 'sealedsecrets.bitnami.com/namespace-wide' annotations on the input secret can be used to
    /// select the scope.
    #[arg(
        long,
        value_enum,
        value_name = "SCOPE",
        env = "SEALED_SECRETS_SCOPE",
        hide_env_values = true
    )]
    pub scope: Option<KubesealScope>,

    /// Re-encrypt the given sealed secret to use the latest cluster key.
    #[arg(long, env = "SEALED_SECRETS_RE_ENCRYPT", hide_env_values = true, action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_name = "BOOL", value_parser = clap::builder::BoolishValueParser::new(), hide_default_value = true, hide_possible_values = true)]
    pub re_encrypt: bool,

    /// Deprecated spelling of --re-encrypt.
    #[arg(long, hide = true, action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_name = "BOOL", value_parser = clap::builder::BoolishValueParser::new())]
    pub rotate: bool,

    /// Decrypt a sealed secrets file obtained from stdin, using the private key passed with
    /// --recovery-private-key. Intended to be used in disaster recovery mode.
    #[arg(long, env = "SEALED_SECRETS_RECOVERY_UNSEAL", hide_env_values = true, action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_name = "BOOL", value_parser = clap::builder::BoolishValueParser::new(), hide_default_value = true, hide_possible_values = true)]
    pub recovery_unseal: bool,

    /// Private key filename used by the --recovery-unseal command. Multiple files accepted
    /// either via comma separated list or by repetition of the flag. Either PEM encoded private
    /// keys or a backup of a json/yaml encoded k8s sealed-secret controller secret (and v1.List)
    /// are accepted.
    #[arg(
        long,
        value_name = "FILE",
        value_delimiter = ',',
        env = "SEALED_SECRETS_RECOVERY_PRIVATE_KEY",
        hide_env_values = true
    )]
    pub recovery_private_key: Vec<PathBuf>,

    /// Print version information and exit
    #[arg(long, action = ArgAction::SetTrue)]
    pub version: bool,

    /// Create a `kubeseal` symlink to this binary in DIR and exit (sealbox only; for `cargo
    /// install` users: pass a directory on PATH, e.g. ~/.cargo/bin).
    #[arg(long, value_name = "DIR")]
    pub install_link: Option<PathBuf>,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub client: KubectlFlags,
}

impl KubesealArgs {
    /// `--re-encrypt`, or its deprecated spelling `--rotate`.
    pub fn re_encrypting(&self) -> bool {
        self.re_encrypt || self.rotate
    }
}

/// kubectl's client flags (client-go's `RecommendedConfigOverrideFlags`).
#[derive(Debug, Args)]
#[command(next_help_heading = "Kubernetes client flags (as kubectl)")]
pub struct KubectlFlags {
    /// Path to a kube config. Only required if out-of-cluster
    #[arg(
        long,
        value_name = "FILE",
        env = "SEALED_SECRETS_KUBECONFIG",
        hide_env_values = true
    )]
    pub kubeconfig: Option<PathBuf>,

    /// The name of the kubeconfig context to use
    #[arg(
        long,
        value_name = "NAME",
        env = "SEALED_SECRETS_CONTEXT",
        hide_env_values = true
    )]
    pub context: Option<String>,

    /// If present, the namespace scope for this CLI request
    #[arg(
        short = 'n',
        long,
        value_name = "NAMESPACE",
        env = "SEALED_SECRETS_NAMESPACE",
        hide_env_values = true
    )]
    pub namespace: Option<String>,

    /// The name of the kubeconfig cluster to use
    #[arg(
        long,
        value_name = "NAME",
        env = "SEALED_SECRETS_CLUSTER",
        hide_env_values = true
    )]
    pub cluster: Option<String>,

    /// The name of the kubeconfig user to use
    #[arg(
        long,
        value_name = "NAME",
        env = "SEALED_SECRETS_USER",
        hide_env_values = true
    )]
    pub user: Option<String>,

    /// The address and port of the Kubernetes API server
    #[arg(
        long,
        value_name = "URL",
        env = "SEALED_SECRETS_SERVER",
        hide_env_values = true
    )]
    pub server: Option<String>,

    /// Bearer token for authentication to the API server
    #[arg(
        long,
        value_name = "TOKEN",
        env = "SEALED_SECRETS_TOKEN",
        hide_env_values = true,
        hide_env_values = true
    )]
    pub token: Option<String>,

    /// Path to a cert file for the certificate authority
    #[arg(
        long,
        value_name = "FILE",
        env = "SEALED_SECRETS_CERTIFICATE_AUTHORITY",
        hide_env_values = true
    )]
    pub certificate_authority: Option<String>,

    /// If true, the server's certificate will not be checked for validity. This will make your
    /// HTTPS connections insecure
    #[arg(long, env = "SEALED_SECRETS_INSECURE_SKIP_TLS_VERIFY", hide_env_values = true, action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_name = "BOOL", value_parser = clap::builder::BoolishValueParser::new(), hide_default_value = true, hide_possible_values = true)]
    pub insecure_skip_tls_verify: bool,

    /// If provided, this name will be used to validate server certificate
    #[arg(
        long,
        value_name = "NAME",
        env = "SEALED_SECRETS_TLS_SERVER_NAME",
        hide_env_values = true
    )]
    pub tls_server_name: Option<String>,

    /// Path to a client certificate file for TLS
    #[arg(
        long,
        value_name = "FILE",
        env = "SEALED_SECRETS_CLIENT_CERTIFICATE",
        hide_env_values = true
    )]
    pub client_certificate: Option<String>,

    /// Path to a client key file for TLS
    #[arg(
        long,
        value_name = "FILE",
        env = "SEALED_SECRETS_CLIENT_KEY",
        hide_env_values = true
    )]
    pub client_key: Option<String>,

    /// Username for basic authentication to the API server
    #[arg(
        long,
        value_name = "NAME",
        env = "SEALED_SECRETS_USERNAME",
        hide_env_values = true
    )]
    pub username: Option<String>,

    /// Password for basic authentication to the API server
    #[arg(
        long,
        value_name = "PASSWORD",
        env = "SEALED_SECRETS_PASSWORD",
        hide_env_values = true,
        hide_env_values = true
    )]
    pub password: Option<String>,

    /// Username to impersonate for the operation
    #[arg(
        long = "as",
        value_name = "USER",
        env = "SEALED_SECRETS_AS",
        hide_env_values = true
    )]
    pub impersonate: Option<String>,

    /// Group to impersonate for the operation, this flag can be repeated to specify multiple
    /// groups.
    #[arg(long = "as-group", value_name = "GROUP")]
    pub impersonate_groups: Vec<String>,

    /// If provided, this URL will be used to connect via proxy
    #[arg(
        long,
        value_name = "URL",
        env = "SEALED_SECRETS_PROXY_URL",
        hide_env_values = true
    )]
    pub proxy_url: Option<String>,

    /// If true, opt-out of response compression for all requests to the server
    #[arg(long, env = "SEALED_SECRETS_DISABLE_COMPRESSION", hide_env_values = true, action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_name = "BOOL", value_parser = clap::builder::BoolishValueParser::new(), hide_default_value = true, hide_possible_values = true)]
    pub disable_compression: bool,
}

impl KubectlFlags {
    /// The flags as kubeconfig overrides.
    pub fn overrides(&self) -> ClientOverrides {
        ClientOverrides {
            cluster: self.cluster.clone(),
            user: self.user.clone(),
            server: self.server.clone(),
            certificate_authority: self.certificate_authority.clone(),
            insecure_skip_tls_verify: self.insecure_skip_tls_verify,
            tls_server_name: self.tls_server_name.clone(),
            proxy_url: self.proxy_url.clone(),
            disable_compression: self.disable_compression,
            token: self.token.clone().map(Token::new),
            client_certificate: self.client_certificate.clone(),
            client_key: self.client_key.clone(),
            username: self.username.clone(),
            password: self.password.clone().map(Token::new),
            impersonate: self.impersonate.clone(),
            impersonate_groups: self.impersonate_groups.clone(),
        }
    }
}

/// `-o`: kubeseal's two output formats.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum KubesealFormat {
    /// Pretty JSON, one object per document.
    #[default]
    Json,
    /// YAML, each document introduced by `---`.
    Yaml,
}

/// `--scope`, spelled as kubeseal spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum KubesealScope {
    /// Only this name in this namespace.
    Strict,
    /// Any name in this namespace.
    NamespaceWide,
    /// Any name in any namespace.
    ClusterWide,
}

impl From<KubesealScope> for Scope {
    fn from(scope: KubesealScope) -> Scope {
        match scope {
            KubesealScope::Strict => Scope::Strict,
            KubesealScope::NamespaceWide => Scope::NamespaceWide,
            KubesealScope::ClusterWide => Scope::ClusterWide,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    fn parse(args: &[&str]) -> Result<KubesealArgs, clap::Error> {
        KubesealCli::try_parse_from(std::iter::once("kubeseal").chain(args.iter().copied()))
            .map(|cli| cli.args)
    }

    #[test]
    fn command_is_well_formed() {
        KubesealCli::command().debug_assert();
    }

    #[test]
    fn kubeseal_spellings_parse() {
        let args = parse(&[
            "--cert=c.pem",
            "-oyaml",
            "-w",
            "out.yaml",
            "-f",
            "in.yaml",
            "--scope",
            "namespace-wide",
            "-n",
            "ns",
            "--raw",
            "--from-file=a=x,b",
            "--from-file",
            "c",
            "--allow-empty-data=false",
        ])
        .unwrap();
        assert_eq!(args.format, KubesealFormat::Yaml);
        assert_eq!(args.scope, Some(KubesealScope::NamespaceWide));
        assert_eq!(args.from_file, ["a=x", "b", "c"]);
        assert!(args.raw);
        assert!(!args.allow_empty_data);
        assert_eq!(args.client.namespace.as_deref(), Some("ns"));
    }

    #[test]
    fn recovery_keys_are_comma_separated_or_repeated() {
        let args = parse(&[
            "--recovery-unseal",
            "--recovery-private-key",
            "a.pem,b.yaml",
            "--recovery-private-key=c.json",
        ])
        .unwrap();
        assert_eq!(
            args.recovery_private_key,
            [
                PathBuf::from("a.pem"),
                PathBuf::from("b.yaml"),
                PathBuf::from("c.json")
            ]
        );
    }

    #[test]
    fn a_boolean_takes_no_separate_word_and_rotate_still_works() {
        assert!(parse(&["--raw", "false"]).is_err());
        assert!(parse(&["--rotate"]).unwrap().re_encrypting());
        assert!(parse(&["-o", "xml"]).is_err());
        assert!(parse(&["--scope", "bogus"]).is_err());
    }

    #[test]
    fn scope_names_match_the_crypto_names() {
        for scope in KubesealScope::value_variants() {
            let name = scope.to_possible_value().unwrap().get_name().to_owned();
            assert_eq!(Scope::from(*scope).to_string(), name);
        }
    }
}
