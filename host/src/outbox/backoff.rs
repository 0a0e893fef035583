//! Exponential backoff with full jitter (AWS architecture blog, "Exponential Backoff and
//! Jitter"): the delay before attempt n+1 is uniform in [0, min(cap, base · 2^(n-1))].
//! Full jitter spreads a burst of failures out instead of retrying them in lockstep.

use rand::Rng;

#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base_ms: u64,
    pub cap_ms: u64,
}

impl Backoff {
    /// The largest delay after `attempt` (1-based) failed attempts.
    pub fn ceiling_ms(&self, attempt: u32) -> u64 {
        let exp = attempt.saturating_sub(1).min(32);
        self.base_ms.saturating_mul(1u64 << exp).min(self.cap_ms)
    }

    pub fn delay_ms(&self, attempt: u32, rng: &mut impl Rng) -> u64 {
        rng.random_range(0..=self.ceiling_ms(attempt))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ceiling_doubles_then_caps() {
        let b = Backoff { base_ms: 1_000, cap_ms: 600_000 };
        assert_eq!(b.ceiling_ms(1), 1_000);
        assert_eq!(b.ceiling_ms(2), 2_000);
        assert_eq!(b.ceiling_ms(8), 128_000);
        assert_eq!(b.ceiling_ms(11), 600_000);
        assert_eq!(b.ceiling_ms(1000), 600_000);
    }

    proptest! {
        #[test]
        fn delay_never_exceeds_the_ceiling(attempt in 1u32..100, seed in any::<u64>()) {
            use rand::SeedableRng;
            let b = Backoff { base_ms: 1_000, cap_ms: 600_000 };
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            prop_assert!(b.delay_ms(attempt, &mut rng) <= b.ceiling_ms(attempt));
        }
    }
}
