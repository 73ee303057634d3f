//! Randomness for sealing: the session key and the OAEP seed.
//!
//! Any aws-lc-rs generator works (the controller passes its `SystemRandom`, which it seeds once
//! per process). [`OsRandom`] reads the operating system's generator directly: a short-lived
//! process such as the CLI then never seeds aws-lc's DRBG, which costs about 30 ms of CPU-jitter
//! sampling on its first use — most of a cold `sealbox seal`. (A key that seals more than a
//! few dozen values in one process moves to aws-lc-rs's faster OAEP, which takes its seed from
//! aws-lc's generator: see `SEALS_BEFORE_AWS_LC` in `public_key.rs`.)

use crate::error::{Error, Result};

/// A cryptographically secure source of random bytes for [`seal`](crate::seal).
pub trait SealRandom {
    /// Fills `dest` with random bytes.
    fn fill(&self, dest: &mut [u8]) -> Result<()>;
}

impl<T: aws_lc_rs::rand::SecureRandom + ?Sized> SealRandom for T {
    fn fill(&self, dest: &mut [u8]) -> Result<()> {
        aws_lc_rs::rand::SecureRandom::fill(self, dest).map_err(|_| Error::Seal)
    }
}

/// The operating system's generator (`getrandom(2)` on Linux), needing no seeding.
#[derive(Clone, Copy, Debug, Default)]
pub struct OsRandom;

impl SealRandom for OsRandom {
    fn fill(&self, dest: &mut [u8]) -> Result<()> {
        rand_core::RngCore::try_fill_bytes(&mut rand_core::OsRng, dest).map_err(|_| Error::Seal)
    }
}

/// A [`SealRandom`] as the `rand_core` generator the `rsa` crate asks for. A failure is
/// remembered (the `rsa` crate fills infallibly) and turns the whole seal into an error.
pub(crate) struct RsaRng<'a, R: SealRandom + ?Sized> {
    source: &'a R,
    failed: bool,
}

impl<'a, R: SealRandom + ?Sized> RsaRng<'a, R> {
    pub(crate) fn new(source: &'a R) -> Self {
        RsaRng {
            source,
            failed: false,
        }
    }

    /// Whether any fill failed (its bytes are then zeros and must not be used).
    pub(crate) fn failed(&self) -> bool {
        self.failed
    }
}

impl<R: SealRandom + ?Sized> rand_core::RngCore for RsaRng<'_, R> {
    fn next_u32(&mut self) -> u32 {
        rand_core::impls::next_u32_via_fill(self)
    }

    fn next_u64(&mut self) -> u64 {
        rand_core::impls::next_u64_via_fill(self)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        if self.source.fill(dest).is_err() {
            dest.fill(0);
            self.failed = true;
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> std::result::Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl<R: SealRandom + ?Sized> rand_core::CryptoRng for RsaRng<'_, R> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_random_fills_and_aws_generators_still_work() {
        let mut a = [0u8; 32];
        let mut b = [0u8; 32];
        OsRandom.fill(&mut a).unwrap();
        OsRandom.fill(&mut b).unwrap();
        assert_ne!(a, b);
        aws_lc_rs::rand::SystemRandom::new().fill(&mut a).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn a_failing_source_is_remembered() {
        struct Broken;
        impl SealRandom for Broken {
            fn fill(&self, _: &mut [u8]) -> Result<()> {
                Err(Error::Seal)
            }
        }
        let mut rng = RsaRng::new(&Broken);
        let mut buf = [7u8; 4];
        rand_core::RngCore::fill_bytes(&mut rng, &mut buf);
        assert!(rng.failed());
        assert_eq!(buf, [0; 4]);
    }
}
