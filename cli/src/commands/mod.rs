//! One module per subcommand. Each takes its parsed flags, `impl Read` for stdin and
//! `impl Write` for stdout and stderr: stdout carries only the document, stderr diagnostics.
//!
//! Each is a leaf: none imports another. What two commands share lives below them: sealing
//! ([`crate::sealing`]), a sealed file edited in place ([`crate::sealed_file`]), offline checks
//! ([`crate::inspect`]), which certificate ([`crate::cert_choice`]), private keys
//! ([`crate::keyring`]), the key Secrets ([`crate::key_store`], [`crate::key_usage`]) and
//! output ([`crate::output`]).

pub mod cert;
pub mod check;
pub mod completions;
pub mod keys;
pub mod merge;
pub mod reencrypt;
pub mod seal;
pub mod set;
pub mod unseal;
pub mod unset;
pub mod verify;
