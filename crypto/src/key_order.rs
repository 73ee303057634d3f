//! Which key seals: the newest, by certificate NotBefore (Bitnami's default `CertNotBefore`)
//! or by the key Secret's creationTimestamp (`SecretCreationTimestamp`, Bitnami's
//! `--key-order-priority`).
//!
//! The controller seals new values (and answers `/v1/cert.pem`, `/v1/rotate`) with this key; the
//! CLI shows it in `keys list` and never prunes it. Both ask here, so they cannot disagree. Two
//! keys equal by the order's time are told apart by the other time, then by the name of the
//! Secret holding them, so every reader picks the same one. Which keys are candidates at all
//! (active, trusted, readable) is the caller's decision.

use std::cmp::Ordering;
use std::time::SystemTime;

/// Which time makes a key the newest.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum KeyOrder {
    /// The certificate's NotBefore (Bitnami's default).
    #[default]
    CertNotBefore,
    /// The key Secret's `metadata.creationTimestamp`; a key without one (read from a file)
    /// counts as the oldest.
    SecretCreationTimestamp,
}

impl KeyOrder {
    /// Bitnami's `--key-order-priority` spellings, in this order: `CertNotBefore`,
    /// `SecretCreationTimestamp`.
    pub const NAMES: [&'static str; 2] = ["CertNotBefore", "SecretCreationTimestamp"];

    /// The order Bitnami's flag value `name` means; `None` for any other value.
    pub fn from_name(name: &str) -> Option<KeyOrder> {
        match name {
            "CertNotBefore" => Some(KeyOrder::CertNotBefore),
            "SecretCreationTimestamp" => Some(KeyOrder::SecretCreationTimestamp),
            _ => None,
        }
    }
}

/// What the rule looks at in one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyAge<'a> {
    /// The certificate's NotBefore.
    pub not_before: SystemTime,
    /// The key Secret's creationTimestamp, when the key came from the API.
    pub created: Option<SystemTime>,
    /// The key Secret's `metadata.name`: the tie-break.
    pub secret_name: &'a str,
}

impl KeyAge<'_> {
    /// Newest first by NotBefore, then the Secret names in ascending order.
    pub fn newest_first(&self, other: &KeyAge<'_>) -> Ordering {
        self.newest_first_by(KeyOrder::CertNotBefore, other)
    }

    /// Newest first by `order`'s time, then by the other time, then the Secret names in
    /// ascending order.
    pub fn newest_first_by(&self, order: KeyOrder, other: &KeyAge<'_>) -> Ordering {
        let by_not_before = other.not_before.cmp(&self.not_before);
        let by_created = other.created.cmp(&self.created);
        let by_time = match order {
            KeyOrder::CertNotBefore => by_not_before.then(by_created),
            KeyOrder::SecretCreationTimestamp => by_created.then(by_not_before),
        };
        by_time.then_with(|| self.secret_name.cmp(other.secret_name))
    }
}

/// Sorts `keys` newest first by NotBefore; the first then seals. Stable: keys equal in every
/// field (one Secret read twice) keep their order.
pub fn sort_newest_first<T>(keys: &mut [T], age: impl Fn(&T) -> KeyAge<'_>) {
    sort_newest_first_by(KeyOrder::CertNotBefore, keys, age);
}

/// Sorts `keys` newest first by `order`; the first then seals.
pub fn sort_newest_first_by<T>(order: KeyOrder, keys: &mut [T], age: impl Fn(&T) -> KeyAge<'_>) {
    keys.sort_by(|a, b| age(a).newest_first_by(order, &age(b)));
}

/// The key that seals among `candidates` by NotBefore: the first of them newest first.
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
            created: None,
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

    #[test]
    fn secret_creation_timestamp_orders_by_the_secret() {
        // (NotBefore, created, name): an old certificate restored into a new Secret.
        let keys = [
            (30, Some(10), "rotated"),
            (10, Some(40), "restored"),
            (20, None, "from-a-file"),
        ];
        fn age<'a>(k: &'a (u64, Option<u64>, &'static str)) -> KeyAge<'a> {
            KeyAge {
                not_before: at(k.0),
                created: k.1.map(at),
                secret_name: k.2,
            }
        }
        let mut by_created = keys;
        sort_newest_first_by(KeyOrder::SecretCreationTimestamp, &mut by_created, age);
        assert_eq!(
            by_created.map(|k| k.2),
            ["restored", "rotated", "from-a-file"]
        );
        let mut by_cert = keys;
        sort_newest_first_by(KeyOrder::CertNotBefore, &mut by_cert, age);
        assert_eq!(by_cert.map(|k| k.2), ["rotated", "from-a-file", "restored"]);
        // Created in the same second: NotBefore, then the name decide.
        let tied = [(10, Some(5), "b"), (20, Some(5), "c"), (20, Some(5), "a")];
        let mut sorted = tied;
        sort_newest_first_by(KeyOrder::SecretCreationTimestamp, &mut sorted, age);
        assert_eq!(sorted.map(|k| k.2), ["a", "c", "b"]);
    }

    #[test]
    fn bitnamis_names() {
        for name in KeyOrder::NAMES {
            assert!(KeyOrder::from_name(name).is_some(), "{name}");
        }
        assert_eq!(
            KeyOrder::from_name("SecretCreationTimestamp"),
            Some(KeyOrder::SecretCreationTimestamp)
        );
        assert_eq!(KeyOrder::from_name("certnotbefore"), None);
        assert_eq!(KeyOrder::default(), KeyOrder::CertNotBefore);
    }
}
