//! Fault decisions keyed by the logical event, not by the order of random draws.
//!
//! A simulator that draws its faults from one sequential random stream has a weakness for
//! comparisons: change one protocol setting (idempotence off, a smaller window) and the
//! number of draws before a given message changes, so every later fault moves and the two
//! runs no longer face the same network. Here every decision is a pure function of the seed
//! and the *logical* event it concerns:
//!
//! ```text
//! (seed, fault kind, producer, batch, attempt)  ->  uniform number in [0, 1)
//! ```
//!
//! where `batch` is the producer's batch number (the same in every setting, because the
//! workload is the same) and `attempt` counts how often that batch has been sent. So "the
//! second attempt of producer 0's batch 17 loses its ack" holds in every setting that makes a
//! second attempt of that batch. The mixer is SplitMix64, whose output passes BigCrush, and
//! which needs no state.

use idempo_testkit::splitmix;

/// What a fault decision is about. Each kind draws from its own stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum FaultKind {
    /// The request is lost on the way to the broker.
    RequestLoss = 1,
    /// The response (the ack) is lost on the way back.
    AckLoss = 2,
    /// Latency of the request.
    RequestLatency = 3,
    /// Latency of the response.
    ResponseLatency = 4,
    /// The request is delivered twice.
    Duplicate = 5,
    /// A bit of the request flips.
    Corrupt = 6,
    /// Which bit flips.
    CorruptBit = 7,
    /// The request is delayed far beyond the usual latency.
    Spike = 8,
    /// When the broker crashes, and how much of its last write survives.
    BrokerCrash = 9,
    /// When the broker restarts cleanly.
    BrokerRestart = 10,
    /// When a producer process restarts.
    ProducerRestart = 11,
    /// Latency of a duplicate copy.
    DuplicateLatency = 12,
    /// Swarm mode's choice of fault parameters.
    Swarm = 13,
    /// When and which partition's leader is killed.
    LeaderKill = 14,
    /// When, which broker and how long a broker is isolated.
    Isolation = 15,
    /// When and which partition's replicas all lose power.
    CorrelatedCrash = 16,
    /// Which broker a broker crash hits, and how long it stays down (clusters).
    CrashedBroker = 17,
    /// A message between brokers is lost.
    InterBrokerLoss = 18,
    /// Latency of a message between brokers.
    InterBrokerLatency = 19,
    /// How long a policy server's handler runs (`idempo-sim policies`).
    HandlerTime = 20,
    /// How far a replicated key store's replica lags its primary (`idempo-sim policies`).
    ReplicaLag = 21,
    /// The broker's disk fails a produce request's append (`--append-failure`).
    AppendFailure = 22,
    /// When and on which partition a DeleteRecords request moves the log start.
    DeleteRecords = 23,
    /// A bit of a request's batch header flips outside the CRC.
    HeaderCorrupt = 24,
}

/// The batch number used for InitProducerId requests, which carry no batch.
pub const INIT_PRODUCER_ID: u64 = u64::MAX;

/// One step of SplitMix64 ([`idempo_testkit::splitmix`], the workspace's one mixer): a
/// bijective mix of 64 bits.
#[inline]
pub fn mix64(z: u64) -> u64 {
    splitmix::mix(z.wrapping_add(splitmix::GOLDEN_GAMMA))
}

/// A deterministic fault oracle for one seed.
#[derive(Clone, Copy, Debug)]
pub struct FaultOracle {
    seed: u64,
}

impl FaultOracle {
    /// The oracle for `seed`.
    pub fn new(seed: u64) -> FaultOracle {
        FaultOracle { seed }
    }

    /// A 64-bit value for one logical event.
    pub fn draw(&self, kind: FaultKind, producer: u32, batch: u64, attempt: u32) -> u64 {
        let mut h = mix64(self.seed ^ (kind as u64).wrapping_mul(0xd6e8_feb8_6659_fd93));
        h = mix64(h ^ u64::from(producer));
        h = mix64(h ^ batch);
        mix64(h ^ u64::from(attempt))
    }

    /// A uniform number in `[0, 1)` for one logical event.
    pub fn unit(&self, kind: FaultKind, producer: u32, batch: u64, attempt: u32) -> f64 {
        (self.draw(kind, producer, batch, attempt) >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// True with probability `p` for one logical event.
    pub fn happens(
        &self,
        p: f64,
        kind: FaultKind,
        producer: u32,
        batch: u64,
        attempt: u32,
    ) -> bool {
        p > 0.0 && self.unit(kind, producer, batch, attempt) < p
    }

    /// A latency in `min..=max` for one logical event.
    pub fn latency(
        &self,
        min: u64,
        max: u64,
        kind: FaultKind,
        producer: u32,
        batch: u64,
        attempt: u32,
    ) -> u64 {
        if max <= min {
            return min;
        }
        min + self.draw(kind, producer, batch, attempt) % (max - min + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_depend_only_on_the_logical_event() {
        let o = FaultOracle::new(42);
        let a = o.unit(FaultKind::AckLoss, 1, 17, 2);
        // Drawing other events in between changes nothing.
        for b in 0..100 {
            o.unit(FaultKind::RequestLoss, 0, b, 1);
        }
        assert_eq!(a, o.unit(FaultKind::AckLoss, 1, 17, 2));
        assert_ne!(a, o.unit(FaultKind::AckLoss, 1, 17, 3));
        assert_ne!(a, FaultOracle::new(43).unit(FaultKind::AckLoss, 1, 17, 2));
    }

    #[test]
    fn probability_is_roughly_honoured() {
        let o = FaultOracle::new(7);
        let hits = (0..100_000)
            .filter(|b| o.happens(0.2, FaultKind::AckLoss, 0, *b, 1))
            .count();
        assert!((19_000..21_000).contains(&hits), "{hits}");
        assert!(!(0..1000).any(|b| o.happens(0.0, FaultKind::AckLoss, 0, b, 1)));
    }

    #[test]
    fn latency_stays_in_range() {
        let o = FaultOracle::new(1);
        for b in 0..1000 {
            let l = o.latency(3, 9, FaultKind::RequestLatency, 0, b, 1);
            assert!((3..=9).contains(&l));
        }
        assert_eq!(o.latency(5, 5, FaultKind::RequestLatency, 0, 0, 1), 5);
    }
}
