//! Kubeconfig files pointing kubectl and real binaries at a served double.

/// Cluster, user and context name used in generated kubeconfigs.
pub const CONTEXT: &str = "sealbox-double";

/// A kubeconfig for `server` (plain http, no credentials), namespace `default`.
pub(crate) fn render(server: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: {CONTEXT}
  cluster:
    server: {server}
contexts:
- name: {CONTEXT}
  context:
    cluster: {CONTEXT}
    user: {CONTEXT}
    namespace: default
current-context: {CONTEXT}
users:
- name: {CONTEXT}
  user: {{}}
preferences: {{}}
"
    )
}
