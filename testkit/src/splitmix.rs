//! SplitMix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number generators",
//! OOPSLA 2014; the output function is Stafford's Mix13): the one seeded mixer of idempo.
//!
//! The simulator keys every fault decision by a hash of the seed and the logical event
//! (`idempo_sim::faults`), the fault proxy rolls its per-connection dice from a seed
//! (`idempo_net::proxy`), and the broker's durability property draws a tear per file from a
//! seed. All three need the same thing: a fast, stable, dependency-free function from 64 bits
//! to 64 well-mixed bits, that gives the same values on every machine and in every version
//! (a replay file or a regression seed depends on it). It lives here, at the bottom of the
//! crate graph, so that every crate reaches it.

/// The Weyl-sequence increment of SplitMix64: 2^64 divided by the golden ratio, made odd.
pub const GOLDEN_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// SplitMix64's output function: a bijective mix of 64 bits.
///
/// # Examples
///
/// ```
/// use idempo_testkit::splitmix::{mix, GOLDEN_GAMMA};
/// // The first output of SplitMix64 seeded with 0.
/// assert_eq!(mix(GOLDEN_GAMMA), 0xe220_a839_7b1d_cdaf);
/// ```
#[inline]
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A SplitMix64 stream: each call advances the state by [`GOLDEN_GAMMA`] and mixes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// The stream seeded with `seed`.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    /// The next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN_GAMMA);
        mix(self.state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_gives_splitmix64s_published_outputs() {
        // The reference outputs of SplitMix64 seeded with 1234567 (Vigna's splitmix64.c).
        let mut s = SplitMix64::new(1_234_567);
        assert_eq!(s.next_u64(), 6_457_827_717_110_365_317);
        assert_eq!(s.next_u64(), 3_203_168_211_198_807_973);
        assert_eq!(s.next_u64(), 9_817_491_932_198_370_423);
    }
}
