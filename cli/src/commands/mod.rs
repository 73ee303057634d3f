//! One module per subcommand. Each takes its parsed flags, `impl Read` for stdin and
//! `impl Write` for stdout and stderr: stdout carries only the document, stderr diagnostics.

pub mod cert;
pub mod check;
pub mod completions;
pub mod keys;
pub mod merge;
pub mod reencrypt;
pub mod seal;
pub mod unseal;
pub mod verify;
