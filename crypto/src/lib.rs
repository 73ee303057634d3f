//! sealbox-crypto: the Bitnami Sealed Secrets wire format, sealing scopes, RSA keys,
//! certificates and key fingerprints.
//!
//! Pure: no kube, no tokio, no IO beyond what callers hand in. Every RSA private-key
//! operation goes through aws-lc-rs.
