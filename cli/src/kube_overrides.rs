//! kubectl's client flags (`--server`, `--token`, `--cluster`, `--user`,
//! `--certificate-authority`, `--insecure-skip-tls-verify`, …) applied to a loaded kubeconfig,
//! the way client-go's `clientcmd.ConfigOverrides` applies them: they replace the fields of the
//! cluster and user the effective context points at, and work without any kubeconfig file when
//! they name a server.
//!
//! Only `kubeseal` mode takes these flags; sealbox's own commands read the kubeconfig as it is.
//! Pure: the kubeconfig is edited in memory and handed to kube afterwards.

use std::fmt;

use kube::config::NamedContext;
use kube::config::{AuthInfo, Cluster, Context, Kubeconfig, NamedAuthInfo, NamedCluster};
use secrecy::SecretString;
use zeroize::Zeroize as _;

/// The name given to the context, cluster and user built from the flags alone (no kubeconfig).
const FLAGS_ONLY: &str = "kubectl-flags";

/// kubectl's client flags. Empty (`Default`) changes nothing.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct ClientOverrides {
    /// `--cluster`: the kubeconfig cluster to use instead of the context's.
    pub cluster: Option<String>,
    /// `--user`: the kubeconfig user to use instead of the context's.
    pub user: Option<String>,
    /// `--server`: the API server's URL.
    pub server: Option<String>,
    /// `--certificate-authority`: a CA file for the API server's certificate.
    pub certificate_authority: Option<String>,
    /// `--insecure-skip-tls-verify`.
    pub insecure_skip_tls_verify: bool,
    /// `--tls-server-name`.
    pub tls_server_name: Option<String>,
    /// `--proxy-url`.
    pub proxy_url: Option<String>,
    /// `--disable-compression`.
    pub disable_compression: bool,
    /// `--token`: a bearer token (never printed).
    pub token: Option<Token>,
    /// `--client-certificate`: a client certificate file.
    pub client_certificate: Option<String>,
    /// `--client-key`: a client key file.
    pub client_key: Option<String>,
    /// `--username` for basic authentication.
    pub username: Option<String>,
    /// `--password` for basic authentication (never printed).
    pub password: Option<Token>,
    /// `--as`: the user to impersonate.
    pub impersonate: Option<String>,
    /// `--as-group`: groups to impersonate.
    pub impersonate_groups: Vec<String>,
}

/// A credential from a flag: compared and hashed like a string, wiped on drop, never shown.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Token(String);

impl Token {
    /// Wraps a credential.
    pub fn new(value: String) -> Self {
        Token(value)
    }
}

impl Drop for Token {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Debug for ClientOverrides {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientOverrides")
            .field("cluster", &self.cluster)
            .field("user", &self.user)
            .field("server", &self.server)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl ClientOverrides {
    /// Whether any flag was given.
    pub fn is_empty(&self) -> bool {
        *self == ClientOverrides::default()
    }

    /// Whether the flags alone say where a cluster is (`--server`), kubeconfig or not.
    pub fn names_a_server(&self) -> bool {
        self.server.is_some()
    }

    /// Applies the flags to `config` for the context `context` (else the current one), creating
    /// the context, cluster and user entries they need. Returns the context to load.
    pub fn apply(&self, config: &mut Kubeconfig, context: Option<&str>) -> Option<String> {
        if self.is_empty() {
            return context.map(str::to_owned);
        }
        let context_name = context
            .map(str::to_owned)
            .or_else(|| config.current_context.clone().filter(|c| !c.is_empty()))
            .unwrap_or_else(|| FLAGS_ONLY.to_owned());
        let entry = named_context(config, &context_name);
        if let Some(cluster) = &self.cluster {
            entry.cluster = cluster.clone();
        }
        if let Some(user) = &self.user {
            entry.user = Some(user.clone());
        }
        if entry.cluster.is_empty() {
            entry.cluster = FLAGS_ONLY.to_owned();
        }
        let cluster_name = entry.cluster.clone();
        let user_name = entry
            .user
            .get_or_insert_with(|| FLAGS_ONLY.to_owned())
            .clone();
        self.apply_cluster(named_cluster(config, &cluster_name));
        self.apply_user(named_user(config, &user_name));
        Some(context_name)
    }

    fn apply_cluster(&self, cluster: &mut Cluster) {
        if let Some(server) = &self.server {
            cluster.server = Some(server.clone());
        }
        if let Some(ca) = &self.certificate_authority {
            // A CA file replaces the embedded one, as kubectl does.
            cluster.certificate_authority = Some(ca.clone());
            cluster.certificate_authority_data = None;
        }
        if self.insecure_skip_tls_verify {
            cluster.insecure_skip_tls_verify = Some(true);
            cluster.certificate_authority = None;
            cluster.certificate_authority_data = None;
        }
        if let Some(name) = &self.tls_server_name {
            cluster.tls_server_name = Some(name.clone());
        }
        if let Some(proxy) = &self.proxy_url {
            cluster.proxy_url = Some(proxy.clone());
        }
        if self.disable_compression {
            cluster.disable_compression = Some(true);
        }
    }

    fn apply_user(&self, user: &mut AuthInfo) {
        if let Some(token) = &self.token {
            user.token = Some(SecretString::from(token.0.clone()));
            user.token_file = None;
        }
        if let Some(file) = &self.client_certificate {
            user.client_certificate = Some(file.clone());
            user.client_certificate_data = None;
        }
        if let Some(file) = &self.client_key {
            user.client_key = Some(file.clone());
            user.client_key_data = None;
        }
        if let Some(username) = &self.username {
            user.username = Some(username.clone());
        }
        if let Some(password) = &self.password {
            user.password = Some(SecretString::from(password.0.clone()));
        }
        if let Some(who) = &self.impersonate {
            user.impersonate = Some(who.clone());
        }
        if !self.impersonate_groups.is_empty() {
            user.impersonate_groups = Some(self.impersonate_groups.clone());
        }
    }
}

fn named_context<'c>(config: &'c mut Kubeconfig, name: &str) -> &'c mut Context {
    let index = match config.contexts.iter().position(|c| c.name == name) {
        Some(index) => index,
        None => {
            config.contexts.push(NamedContext {
                name: name.to_owned(),
                context: None,
                other: Default::default(),
            });
            config.contexts.len() - 1
        }
    };
    config.contexts[index]
        .context
        .get_or_insert_with(Context::default)
}

fn named_cluster<'c>(config: &'c mut Kubeconfig, name: &str) -> &'c mut Cluster {
    let index = match config.clusters.iter().position(|c| c.name == name) {
        Some(index) => index,
        None => {
            config.clusters.push(NamedCluster {
                name: name.to_owned(),
                cluster: None,
                other: Default::default(),
            });
            config.clusters.len() - 1
        }
    };
    config.clusters[index]
        .cluster
        .get_or_insert_with(Cluster::default)
}

fn named_user<'c>(config: &'c mut Kubeconfig, name: &str) -> &'c mut AuthInfo {
    let index = match config.auth_infos.iter().position(|c| c.name == name) {
        Some(index) => index,
        None => {
            config.auth_infos.push(NamedAuthInfo {
                name: name.to_owned(),
                auth_info: None,
                other: Default::default(),
            });
            config.auth_infos.len() - 1
        }
    };
    config.auth_infos[index]
        .auth_info
        .get_or_insert_with(AuthInfo::default)
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret as _;

    fn config() -> Kubeconfig {
        Kubeconfig::from_yaml(
            "apiVersion: v1\nkind: Config\ncurrent-context: dev\n\
             contexts:\n- name: dev\n  context: {cluster: dev, user: alice}\n\
             - name: prod\n  context: {cluster: prod, user: bob}\n\
             clusters:\n- name: dev\n  cluster: {server: 'https://dev:6443', certificate-authority-data: Zm9v}\n\
             - name: prod\n  cluster: {server: 'https://prod:6443'}\n\
             users:\n- name: alice\n  user: {token: old}\n- name: bob\n  user: {token: bobs}\n",
        )
        .unwrap()
    }

    fn cluster<'a>(config: &'a Kubeconfig, name: &str) -> &'a Cluster {
        config
            .clusters
            .iter()
            .find(|c| c.name == name)
            .and_then(|c| c.cluster.as_ref())
            .unwrap()
    }

    fn user<'a>(config: &'a Kubeconfig, name: &str) -> &'a AuthInfo {
        config
            .auth_infos
            .iter()
            .find(|c| c.name == name)
            .and_then(|c| c.auth_info.as_ref())
            .unwrap()
    }

    #[test]
    fn no_flags_change_nothing() {
        let mut edited = config();
        let context = ClientOverrides::default().apply(&mut edited, Some("prod"));
        assert_eq!(context.as_deref(), Some("prod"));
        assert_eq!(edited.clusters.len(), 2);
        assert_eq!(
            cluster(&edited, "dev").server.as_deref(),
            Some("https://dev:6443")
        );
    }

    #[test]
    fn server_token_and_tls_flags_replace_the_current_contexts_entries() {
        let mut edited = config();
        let overrides = ClientOverrides {
            server: Some("https://other:443".to_owned()),
            token: Some(Token::new("new".to_owned())),
            insecure_skip_tls_verify: true,
            ..ClientOverrides::default()
        };
        assert_eq!(overrides.apply(&mut edited, None).as_deref(), Some("dev"));
        let dev = cluster(&edited, "dev");
        assert_eq!(dev.server.as_deref(), Some("https://other:443"));
        assert_eq!(dev.insecure_skip_tls_verify, Some(true));
        assert_eq!(dev.certificate_authority_data, None);
        let alice = user(&edited, "alice");
        assert_eq!(alice.token.as_ref().unwrap().expose_secret(), "new");
        // The other context's entries are untouched.
        assert_eq!(
            cluster(&edited, "prod").server.as_deref(),
            Some("https://prod:6443")
        );
        assert_eq!(
            user(&edited, "bob").token.as_ref().unwrap().expose_secret(),
            "bobs"
        );
    }

    #[test]
    fn cluster_and_user_flags_repoint_the_context() {
        let mut edited = config();
        let overrides = ClientOverrides {
            cluster: Some("prod".to_owned()),
            user: Some("bob".to_owned()),
            certificate_authority: Some("/etc/ca.pem".to_owned()),
            ..ClientOverrides::default()
        };
        overrides.apply(&mut edited, Some("dev"));
        let dev = edited.contexts.iter().find(|c| c.name == "dev").unwrap();
        let context = dev.context.as_ref().unwrap();
        assert_eq!(context.cluster, "prod");
        assert_eq!(context.user.as_deref(), Some("bob"));
        assert_eq!(
            cluster(&edited, "prod").certificate_authority.as_deref(),
            Some("/etc/ca.pem")
        );
        assert_eq!(
            cluster(&edited, "dev")
                .certificate_authority_data
                .as_deref(),
            Some("Zm9v")
        );
    }

    #[test]
    fn a_server_flag_alone_makes_a_whole_config() {
        let mut empty = Kubeconfig::default();
        let overrides = ClientOverrides {
            server: Some("https://api:6443".to_owned()),
            token: Some(Token::new("t".to_owned())),
            ..ClientOverrides::default()
        };
        let context = overrides.apply(&mut empty, None).unwrap();
        assert_eq!(context, FLAGS_ONLY);
        assert_eq!(
            cluster(&empty, FLAGS_ONLY).server.as_deref(),
            Some("https://api:6443")
        );
        assert!(user(&empty, FLAGS_ONLY).token.is_some());
    }

    #[test]
    fn debug_never_shows_a_credential() {
        let overrides = ClientOverrides {
            token: Some(Token::new("hunter2-canary".to_owned())),
            password: Some(Token::new("hunter2-canary".to_owned())),
            ..ClientOverrides::default()
        };
        let shown = format!("{overrides:?} {:?}", overrides.token);
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
