//! Decrypting sealed values: which keys to try, in which order, and how failures are reported.
//!
//! Order: the key the CLI named in the `sealbox.dev/sealing-key` hint, then the key that last
//! worked for this object, then every other key newest first. Within one object, the key that
//! decrypted a value is tried first for the next, so the common case costs one private-key
//! operation per value whatever the number of keys.
//!
//! Work for an HTTP request is bounded on top of that ([`KeyOrder::limited`]): a number of
//! private-key operations, and a [`Cancel`] that the request's end or deadline sets.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use sealbox_crypto::{Binding, Error as CryptoError, Fingerprint, ValueFormat};
use zeroize::Zeroizing;

use crate::bounds::{self, MAX_MESSAGE, MAX_NAME_IN_MESSAGE, MAX_PATH_IN_MESSAGE, MAX_REASON};
use crate::keys::Keys;
use crate::keys::trust::KeyMarker;

/// Tells work done for a request that nobody waits for it any more: set when the request ends
/// (its future is dropped: the client went away, or `--write-timeout` passed) or at its
/// deadline. Clones share the flag.
#[derive(Debug, Clone, Default)]
pub struct Cancel {
    flag: Arc<AtomicBool>,
    deadline: Option<Instant>,
}

impl Cancel {
    /// A flag that is also set, in effect, at `deadline`.
    pub fn with_deadline(deadline: Instant) -> Cancel {
        Cancel {
            flag: Arc::default(),
            deadline: Some(deadline),
        }
    }

    /// Stops the work.
    pub fn cancel(&self) {
        self.flag.store(true, Ordering::Relaxed);
    }

    /// Whether the work must stop (the flag is set or the deadline passed; the deadline's
    /// passing also sets the flag, so readers of [`Cancel::flag`] see it).
    pub fn is_cancelled(&self) -> bool {
        if self.flag.load(Ordering::Relaxed) {
            return true;
        }
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            self.cancel();
            return true;
        }
        false
    }

    /// The flag itself, for code that only polls an [`AtomicBool`].
    pub fn flag(&self) -> &AtomicBool {
        &self.flag
    }

    /// A guard that cancels when dropped: held by the request's future, so that dropping the
    /// future (disconnect, timeout) stops its blocking work.
    pub fn on_drop(&self) -> CancelOnDrop {
        CancelOnDrop(self.clone())
    }
}

/// Cancels its [`Cancel`] when dropped.
#[derive(Debug)]
pub struct CancelOnDrop(Cancel);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// Why a limited [`KeyOrder`] stopped trying keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// The private-key operations allowed were used up.
    OperationBudget(usize),
    /// The request ended or passed its deadline.
    Cancelled,
}

impl fmt::Display for Stopped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stopped::OperationBudget(budget) => write!(
                f,
                "stopped after {budget} private-key operations (twice the number of values plus \
                 the number of keys): the values do not decrypt, or were sealed with several keys \
                 in turn"
            ),
            Stopped::Cancelled => f.write_str("the request ended before its work did"),
        }
    }
}

#[derive(Debug, Clone)]
struct Limit {
    budget: usize,
    left: usize,
    cancel: Cancel,
}

/// The order in which one object's values try the keys.
#[derive(Debug, Clone)]
pub struct KeyOrder {
    order: Vec<usize>,
    last_used: Option<usize>,
    limit: Option<Limit>,
    stopped: Option<Stopped>,
}

impl KeyOrder {
    /// Hint first, then the remembered key, then the rest newest first.
    pub fn new(keys: &Keys, hint: Option<&Fingerprint>, remembered: Option<&Fingerprint>) -> Self {
        let mut order = Vec::with_capacity(keys.len());
        for preferred in [hint, remembered].into_iter().flatten() {
            if let Some(position) = keys.position(preferred)
                && !order.contains(&position)
            {
                order.push(position);
            }
        }
        for position in 0..keys.len() {
            if !order.contains(&position) {
                order.push(position);
            }
        }
        KeyOrder {
            order,
            last_used: None,
            limit: None,
            stopped: None,
        }
    }

    /// The same order, trying at most `max_operations` private-key operations in all and none
    /// once `cancel` is set. Past either, every value fails at once and [`KeyOrder::stopped`]
    /// says why.
    pub fn limited(mut self, max_operations: usize, cancel: Cancel) -> Self {
        self.limit = Some(Limit {
            budget: max_operations,
            left: max_operations,
            cancel,
        });
        self
    }

    /// Why a limited order stopped trying keys, if it did.
    pub fn stopped(&self) -> Option<Stopped> {
        self.stopped
    }

    /// Takes one operation from the limit, or says why not.
    fn may_try(&mut self) -> bool {
        if self.stopped.is_some() {
            return false;
        }
        let Some(limit) = &mut self.limit else {
            return true;
        };
        if limit.cancel.is_cancelled() {
            self.stopped = Some(Stopped::Cancelled);
            return false;
        }
        match limit.left.checked_sub(1) {
            Some(left) => {
                limit.left = left;
                true
            }
            None => {
                self.stopped = Some(Stopped::OperationBudget(limit.budget));
                false
            }
        }
    }

    /// The key positions (newest = 0) in trial order.
    pub fn positions(&self) -> &[usize] {
        &self.order
    }

    /// Decrypts one value, counting each key tried as one private-key operation. The key that
    /// works moves to the front for the next value. The format is told by content: a
    /// multi-recipient (age) value names its keys by tag, so it never walks the order.
    pub fn unseal(
        &mut self,
        keys: &Keys,
        ciphertext: &[u8],
        label: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        if ValueFormat::of(ciphertext) == ValueFormat::Age {
            return self.unseal_age(keys, ciphertext, label);
        }
        for rank in 0..self.order.len() {
            if !self.may_try() {
                return Err(CryptoError::NoKeyCouldDecrypt);
            }
            let position = self.order[rank];
            let entry = &keys.entries()[position];
            match sealbox_crypto::unseal(entry.private_key(), ciphertext, label) {
                Ok(plaintext) => {
                    keys.ops().record();
                    self.order[..=rank].rotate_right(1);
                    self.last_used = Some(position);
                    return Ok(plaintext);
                }
                // Malformed before any key is used: no other key can do better.
                Err(CryptoError::TooShort) => return Err(CryptoError::TooShort),
                Err(_) => keys.ops().record(),
            }
        }
        Err(CryptoError::NoKeyCouldDecrypt)
    }

    /// A multi-recipient value: the stanza tags pick the key (one private-key operation unless
    /// tags collide), and the scope line inside must name this object's label.
    fn unseal_age(
        &mut self,
        keys: &Keys,
        value: &[u8],
        label: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let expected = Binding::from_label(label)?;
        if !self.may_try() {
            return Err(CryptoError::NoKeyCouldDecrypt);
        }
        let mut operations = 0;
        let opened = sealbox_crypto::age_value::open_with_keys(
            keys.ring(),
            value,
            &expected,
            &mut operations,
        );
        for _ in 0..operations {
            keys.ops().record();
        }
        let opened = opened?;
        if let Some(rank) = self.order.iter().position(|&p| p == opened.key) {
            self.order[..=rank].rotate_right(1);
        }
        self.last_used = Some(opened.key);
        Ok(opened.plaintext)
    }

    /// The key that decrypted the last value that decrypted.
    pub fn last_used<'k>(&self, keys: &'k Keys) -> Option<&'k Fingerprint> {
        self.last_used
            .map(|position| keys.entries()[position].fingerprint())
    }
}

/// Where in the SealedSecret a failing value lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// `spec.encryptedData`.
    EncryptedData,
    /// `spec.template.data`.
    TemplateData,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::EncryptedData => "encryptedData",
            Field::TemplateData => "template.data",
        })
    }
}

/// Why one value failed. Never holds the value, its plaintext or a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// Not standard padded base64.
    InvalidBase64,
    /// Shorter than its own header says.
    TooShort,
    /// No loaded key decrypts it for this name, namespace and scope.
    NoKeyCouldDecrypt,
    /// A multi-recipient (age) value that is refused: malformed, past a bound, not sealed for
    /// this controller's keys, or bound to another Secret. The text names the problem (stanza
    /// types, key tags, the scope it is bound to), never the data.
    Age(String),
    /// The template did not parse or render; the text names the problem, not the data.
    Template(String),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::InvalidBase64 => f.write_str("invalid base64"),
            Reason::TooShort => f.write_str("sealed data is too short"),
            Reason::NoKeyCouldDecrypt => f.write_str("no key could decrypt"),
            Reason::Age(message) => f.write_str(&bounds::truncate(message, MAX_REASON)),
            Reason::Template(message) => f.write_str(&bounds::truncate(message, MAX_REASON)),
        }
    }
}

/// One failing key of a SealedSecret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFailure {
    /// The Secret data key.
    pub key: String,
    /// Where it is in the SealedSecret.
    pub field: Field,
    /// What went wrong.
    pub reason: Reason,
}

impl fmt::Display for KeyFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = bounds::truncate_chars(&self.key, MAX_NAME_IN_MESSAGE);
        write!(f, "{}[{:?}]: {}", self.field, key, self.reason)
    }
}

/// Why a SealedSecret cannot become a Secret. A permanent failure: retrying with the same
/// object and the same keys gives the same answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnsealError {
    /// Some values failed; every failing key is listed.
    #[error("{}", describe_failures(.0))]
    Values(Vec<KeyFailure>),

    /// The object does not match the SealedSecret schema.
    #[error(
        "malformed SealedSecret: {}: {}",
        bounds::truncate_chars(path, MAX_PATH_IN_MESSAGE),
        bounds::truncate(problem, MAX_REASON)
    )]
    Malformed {
        /// The JSON path of the offending field.
        path: String,
        /// What is wrong with it (never its value).
        problem: String,
    },

    /// The deprecated single-blob `spec.data` without the flag that accepts it.
    #[error(
        "spec.data (the deprecated single-blob format) is not accepted: re-seal with `sealbox seal` \
         (which writes spec.encryptedData) or start the controller with --accept-deprecated-v1-data"
    )]
    LegacyDataRefused,

    /// `spec.data` and `spec.encryptedData` together.
    #[error("cannot use spec.encryptedData and the deprecated spec.data at the same time")]
    LegacyDataWithEncryptedData,

    /// The deprecated `spec.data` blob could not be used.
    #[error("spec.data: {0}")]
    LegacyData(Reason),

    /// The Secret would be loadable as a sealing key (key trust, see `keys::trust`).
    #[error(
        "refused: {0}; a SealedSecret never produces a sealing key (see \"Key trust\" in \
         docs/USAGE.md)"
    )]
    KeySecret(KeyMarker),
}

impl UnsealError {
    /// A short, stable name for metric labels.
    pub fn category(&self) -> &'static str {
        match self {
            UnsealError::Values(failures)
                if failures
                    .iter()
                    .all(|f| matches!(f.reason, Reason::Template(_))) =>
            {
                "template"
            }
            UnsealError::Values(_) => "decrypt",
            UnsealError::Malformed { .. } => "malformed",
            UnsealError::LegacyDataRefused
            | UnsealError::LegacyDataWithEncryptedData
            | UnsealError::LegacyData(_) => "legacy_data",
            UnsealError::KeySecret(_) => "key_trust",
        }
    }
}

/// "failed to unseal: " and every failing key, as many as fit in [`MAX_MESSAGE`] (the rest are
/// counted), each name cut to [`MAX_NAME_IN_MESSAGE`].
fn describe_failures(failures: &[KeyFailure]) -> String {
    const PREFIX: &str = "failed to unseal: ";
    let hint = if failures
        .iter()
        .any(|f| f.reason == Reason::NoKeyCouldDecrypt)
    {
        " (sealed for another name, namespace or scope, or with a key this controller does not hold)"
    } else {
        ""
    };
    // Bitnami's text first, so alerts and greps written for it match: the keys no key
    // decrypted, in its format.
    let undecrypted: Vec<_> = failures
        .iter()
        .filter(|f| f.reason == Reason::NoKeyCouldDecrypt)
        .map(|f| bounds::truncate_chars(&f.key, MAX_NAME_IN_MESSAGE))
        .collect();
    let bitnami = match undecrypted.is_empty() {
        true => String::new(),
        false => {
            let keys = bounds::join_within(
                undecrypted.iter().map(ToString::to_string),
                undecrypted.len(),
                ", ",
                MAX_MESSAGE / 4,
            );
            format!("no key could decrypt secret ({keys}); ")
        }
    };
    let budget = MAX_MESSAGE.saturating_sub(bitnami.len() + PREFIX.len() + hint.len());
    let list = bounds::join_within(
        failures.iter().map(ToString::to_string),
        failures.len(),
        "; ",
        budget,
    );
    format!("{bitnami}{PREFIX}{list}{hint}")
}

/// Maps the crypto layer's decrypt errors onto the reasons reported to users.
pub(crate) fn decrypt_reason(error: &CryptoError) -> Reason {
    match error {
        CryptoError::TooShort => Reason::TooShort,
        CryptoError::AgeMalformed { .. }
        | CryptoError::AgeNotARecipient { .. }
        | CryptoError::ScopeMismatch { .. }
        | CryptoError::InvalidBinding { .. }
        | CryptoError::LimitExceeded { .. } => Reason::Age(error.to_string()),
        _ => Reason::NoKeyCouldDecrypt,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failures(count: usize, name_len: usize) -> Vec<KeyFailure> {
        (0..count)
            .map(|i| KeyFailure {
                key: format!("{i}{}", "k".repeat(name_len)),
                field: Field::EncryptedData,
                reason: Reason::InvalidBase64,
            })
            .collect()
    }

    #[test]
    fn the_failure_list_is_bounded_and_counts_what_it_leaves_out() {
        let text = UnsealError::Values(failures(2000, 1)).to_string();
        assert!(text.len() <= MAX_MESSAGE, "{}", text.len());
        assert!(text.starts_with("failed to unseal: encryptedData[\"0k\"]: invalid base64; "));
        let shown = text.matches("encryptedData[").count();
        assert!(shown > 10, "{text}");
        assert!(
            text.ends_with(&format!(" and {} more", 2000 - shown)),
            "{text}"
        );

        // Names of 10 KB: each cut, several still listed.
        let text = UnsealError::Values(failures(5, 10_000)).to_string();
        assert!(text.len() <= MAX_MESSAGE, "{}", text.len());
        assert!(text.matches("encryptedData[").count() >= 3, "{text}");

        // A long template error is cut too.
        let template = vec![KeyFailure {
            key: "url".into(),
            field: Field::TemplateData,
            reason: Reason::Template("e".repeat(100_000)),
        }];
        let text = UnsealError::Values(template).to_string();
        assert!(text.len() <= MAX_REASON + 64, "{}", text.len());

        let malformed = UnsealError::Malformed {
            path: format!("spec.encryptedData.{}", "p".repeat(10_000)),
            problem: "wrong type, expected a string".into(),
        };
        assert!(malformed.to_string().len() <= MAX_MESSAGE);
        assert!(malformed.to_string().contains("spec.encryptedData.ppp"));
    }
}
