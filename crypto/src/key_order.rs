//! Which key seals: the newest, by certificate NotBefore.
//!
//! The controller seals new values (and answers `/v1/cert.pem`, `/v1/rotate`) with this key; the
//! CLI shows it in `keys list` and never prunes it. Both ask here, so they cannot disagree. Two
//! keys whose certificates start in the same second are told apart by the name of the Secret
//! holding them, so every reader picks the same one. Which keys are candidates at all (active,
//! trusted, readable) is the caller's decision.

use std::cmp::Ordering;
use std::time::SystemTime;

/// What the rule looks at in one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyAge<'a> {
    /// The certificate's NotBefore.
    pub not_before: SystemTime,
    /// The key Secret's `metadata.name`: the tie-break.
    pub secret_name: &'a str,
}

impl KeyAge<'_> {
    /// Newest first: the later NotBefore first, then the Secret names in ascending order.
    pub fn newest_first(&self, other: &KeyAge<'_>) -> Ordering {
        other
            .not_before
            .cmp(&self.not_before)
            .then_with(|| self.secret_name.cmp(other.secret_name))
    }
}

/// Sorts `keys` newest first; the first then seals. Stable: keys equal in both NotBefore and
/// Secret name (one Secret read twice) keep their order.
pub fn sort_newest_first<T>(keys: &mut [T], age: impl Fn(&T) -> KeyAge<'_>) {
    keys.sort_by(|a, b| age(a).newest_first(&age(b)));
}

/// The key that seals among `candidates`: the first of them newest first.
pub fn sealing_key<T>(
    candidates: impl IntoIterator<Item = T>,
    age: impl Fn(&T) -> KeyAge<'_>,
) -> Option<T> {
    candidates
        .into_iter()
        .min_by(|a, b| age(a).newest_first(&age(b)))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn age<'a>(key: &'a (u64, &'static str)) -> KeyAge<'a> {
        KeyAge {
            not_before: at(key.0),
            secret_name: key.1,
        }
    }

    #[test]
    fn the_newest_certificate_seals_whatever_the_order() {
        let keys = [(10, "b"), (30, "a"), (20, "c")];
        assert_eq!(sealing_key(&keys, |k| age(k)), Some(&(30, "a")));
        let reversed = [(20, "c"), (30, "a"), (10, "b")];
        assert_eq!(sealing_key(&reversed, |k| age(k)), Some(&(30, "a")));
    }

    #[test]
    fn a_tie_goes_to_the_first_secret_name() {
        let keys = [
            (30, "sealed-secrets-keyzzz"),
            (30, "sealed-secrets-keyaaa"),
            (10, "a"),
        ];
        assert_eq!(
            sealing_key(&keys, |k| age(k)),
            Some(&(30, "sealed-secrets-keyaaa"))
        );
    }

    #[test]
    fn sorting_puts_the_sealing_key_first() {
        let mut keys = vec![(10, "x"), (30, "b"), (30, "a"), (20, "y")];
        sort_newest_first(&mut keys, age);
        assert_eq!(keys, [(30, "a"), (30, "b"), (20, "y"), (10, "x")]);
        assert_eq!(sealing_key(&keys, |k| age(k)), keys.first());
    }

    #[test]
    fn no_candidate_no_sealing_key() {
        let keys: [(u64, &str); 0] = [];
        assert_eq!(sealing_key(&keys, |k| age(k)), None);
    }
}
