//! Kubeconfig files pointing kubectl and real binaries at a served double.

/// Cluster, user and context name used in generated kubeconfigs.
pub const CONTEXT: &str = "sealbox-double";

/// A kubeconfig for `server` (plain http, no credentials), namespace `default`.
pub(crate) fn render(server: &str) -> String {
    kubeconfig(
        CONTEXT,
        server,
        None,
        CONTEXT,
        serde_json::json!({}),
        "default",
    )
}

/// A kubeconfig of one cluster, user and context named `context` (the user `user_name`): the
/// cluster at `server`, trusted through `ca_data` (base64 PEM) when given, the user's fields
/// `user` (a token, or inline client certificate and key), and `namespace` as the default.
pub(crate) fn kubeconfig(
    context: &str,
    server: &str,
    ca_data: Option<&str>,
    user_name: &str,
    user: serde_json::Value,
    namespace: &str,
) -> String {
    let mut cluster = serde_json::json!({ "server": server });
    if let Some(ca) = ca_data {
        cluster["certificate-authority-data"] = ca.into();
    }
    let config = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{ "name": context, "cluster": cluster }],
        "users": [{ "name": user_name, "user": user }],
        "contexts": [{
            "name": context,
            "context": { "cluster": context, "user": user_name, "namespace": namespace }
        }],
        "current-context": context,
        "preferences": {}
    });
    // A tree of strings and maps always serializes.
    serde_norway::to_string(&config).unwrap_or_default()
}
