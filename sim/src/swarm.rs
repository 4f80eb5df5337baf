//! Swarm mode: each seed draws its own fault mix, as FoundationDB's simulation and
//! TigerBeetle's VOPR do. A fixed mix tests one corner well; swarm testing turns each fault
//! kind on or off per seed (with a random rate when on), so that over many seeds rare
//! combinations are met, and a fault that masks another is sometimes absent.
//!
//! Only faults the guarantee covers are drawn: lost requests and acks, duplicates, flipped
//! bits, latency spikes, clean broker restarts and broker crashes (with the configured sync
//! policy, every append by default). Producer restarts and crashes without sync break
//! exactly-once by design; ask for them explicitly.

use crate::config::SimConfig;
use crate::faults::{FaultKind, FaultOracle};

/// `config` with its fault parameters drawn from its seed.
pub fn swarm(config: &SimConfig) -> SimConfig {
    let o = FaultOracle::new(config.seed);
    let draw = |i: u64| o.unit(FaultKind::Swarm, 0, i, 0);
    let maybe = |i: u64, max: f64| {
        if draw(2 * i) < 0.5 {
            0.0
        } else {
            round(draw(2 * i + 1) * max)
        }
    };
    let latency_max = 1 + (draw(20) * 100.0) as u64;
    SimConfig {
        ack_loss: maybe(0, 0.4),
        request_loss: maybe(1, 0.2),
        duplicate: maybe(2, 0.2),
        corrupt: maybe(3, 0.1),
        spike: maybe(4, 0.05),
        latency_min_ms: (draw(21) * latency_max as f64) as u64 / 2,
        latency_max_ms: latency_max,
        broker_restarts: if draw(22) < 0.5 {
            0
        } else {
            1 + (draw(23) * 3.0) as u32
        },
        ..config.clone()
    }
}

/// Three significant decimals, so the replay command stays readable.
fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_seed_draws_its_own_mix_and_the_same_seed_the_same() {
        let a = swarm(&SimConfig {
            seed: 1,
            ..SimConfig::default()
        });
        let b = swarm(&SimConfig {
            seed: 2,
            ..SimConfig::default()
        });
        assert_eq!(
            a,
            swarm(&SimConfig {
                seed: 1,
                ..SimConfig::default()
            })
        );
        assert_ne!(a, b);
        let mixes: Vec<SimConfig> = (0..64)
            .map(|seed| {
                swarm(&SimConfig {
                    seed,
                    ..SimConfig::default()
                })
            })
            .collect();
        assert!(mixes.iter().any(|c| c.ack_loss == 0.0) && mixes.iter().any(|c| c.ack_loss > 0.0));
        assert!(mixes.iter().all(|c| c.validate().is_ok()));
    }
}
