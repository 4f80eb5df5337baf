//! Instruction counts of the produce path, idempotence on versus off, for `callgrind`.
//!
//! Not a timing benchmark: `bench/produce-instructions.sh` runs this binary under
//! `valgrind --tool=callgrind`, collecting only inside [`produce_all`], once with
//! idempotence on and once off, and prints the two counts and the dedup rule's share. The
//! workload is `benches/produce.rs`'s: 16 producers interleaved, 128 in-sequence batches
//! each, 16 records of 100 bytes a batch, every produce a fresh append.
//!
//! Run directly it does the same work and prints what it did (so `cargo bench` is harmless).

use bytes::Bytes;
use idempo_broker::Broker;
use std::hint::black_box;

mod workload;
use workload::{PARTITION, broker, in_sequence_batches};

/// The measured part: every batch produced once on `broker`.
#[inline(never)]
fn produce_all(broker: &mut Broker, batches: &[Bytes]) -> usize {
    let mut appended = 0;
    for bytes in batches {
        appended +=
            usize::from(black_box(broker.produce(PARTITION, black_box(bytes))).is_appended());
    }
    appended
}

fn main() {
    let idempotence = !std::env::args().any(|a| a == "off");
    let batches = in_sequence_batches();
    let mut broker = broker(idempotence);
    let appended = produce_all(&mut broker, &batches);
    assert_eq!(appended, batches.len(), "every batch is a fresh append");
    println!(
        "idempotence {}: {appended} batches appended",
        if idempotence { "on" } else { "off" }
    );
}
