//! `kafka-sequence`: today's broker, as the reference point.
//!
//! The application does not choose a key: the producer does. It gets a producer id from
//! `InitProducerId` and numbers its batches; a retry is the same batch, with the same
//! producer id, epoch and sequence, and the broker recognises it in the producer's window of
//! the last five batches: the duplicate is not appended again and is answered `NONE` with the
//! original offset, as Kafka's `UnifiedLog.analyzeAndValidateProducerState` returns the
//! duplicate's offsets without an error. The state is rebuilt from the log and snapshots on restart, and it
//! expires after `producer.id.expiration.ms` (1 day) without a batch: a batch from an
//! expired producer is accepted with any sequence, so a retry after that is appended again.
//!
//! This is no model of Kafka: it is the real [`idempo_broker::Broker`], the core the
//! simulator and the TCP server drive, told the simulated time.

use super::model::{Arrival, Ctx, Policy, Request, Response, ms};
use idempo_broker::{Broker, BrokerConfig};
use idempo_protocol::{ProducerEpoch, ProducerId, Record, RecordBatch, Sequence};

/// The partition every batch goes to.
const PARTITION: i32 = 0;

/// `kafka-sequence`: a producer id and a sequence per batch, checked by the real broker.
pub struct KafkaSequence {
    broker: Broker,
    producer_id: ProducerId,
    producer_epoch: ProducerEpoch,
}

impl Default for KafkaSequence {
    fn default() -> Self {
        KafkaSequence::new()
    }
}

impl KafkaSequence {
    /// A broker with Kafka's defaults and one idempotent producer registered.
    pub fn new() -> KafkaSequence {
        let mut broker = Broker::new(BrokerConfig::default())
            .expect("the default broker configuration is valid");
        let id = broker.init_producer_id();
        KafkaSequence {
            broker,
            producer_id: id.producer_id,
            producer_epoch: id.producer_epoch,
        }
    }

    fn expiration_ms(&self) -> u64 {
        let c = self.broker.config();
        (c.producer_id_expiration_ms + c.producer_id_expiration_check_interval_ms) as u64
    }
}

impl Policy for KafkaSequence {
    fn arrive(&mut self, _now_ms: u64, req: &Request, ctx: &mut Ctx) -> Arrival {
        ctx.note(format!(
            "produce producer {} epoch {} seq {}",
            self.producer_id, self.producer_epoch.0, req.sequence
        ));
        Arrival::Handle
    }

    fn complete(&mut self, now_ms: u64, req: &Request, ctx: &mut Ctx) -> Response {
        let expired = self.broker.advance_time(now_ms as i64);
        if expired.iter().any(|e| e.producer_id == self.producer_id) {
            ctx.note(format!(
                "producer {} expired (no batch for producer.id.expiration.ms {} ms)",
                self.producer_id,
                ms(self.broker.config().producer_id_expiration_ms as u64)
            ));
        }
        let batch = RecordBatch::idempotent(
            self.producer_id,
            self.producer_epoch,
            Sequence(req.sequence),
            req.first_sent_ms as i64,
            vec![Record::with_value(0, req.body.clone())],
        )
        .to_bytes();
        let outcome = self.broker.produce(PARTITION, &batch);
        let offset = outcome.response.base_offset;
        if outcome.is_appended() {
            let what = format!("offset {offset}");
            ctx.ledger.apply(now_ms, req, &what);
            ctx.note(format!("seq {} appended at offset {offset}", req.sequence));
            Response::ok("NONE", format!("offset {offset}"))
        } else if outcome.is_duplicate() {
            ctx.note(format!(
                "seq {} is in the producer's window: a duplicate, answered NONE with its offset {offset}, nothing appended",
                req.sequence
            ));
            Response::ok("NONE", format!("offset {offset} (duplicate)"))
        } else {
            let code = outcome.error_code().name();
            ctx.note(format!("seq {} refused: {code}", req.sequence));
            Response::error(code, "refused")
        }
    }

    fn restart(&mut self, _now_ms: u64, ctx: &mut Ctx) {
        match self.broker.restart_clean() {
            Ok(_) => {
                ctx.note("clean restart: producer state reloaded from the snapshot and the log")
            }
            Err(e) => ctx.note(format!("restart failed: {e}")),
        }
    }

    fn window_ms(&self) -> Option<u64> {
        Some(self.expiration_ms())
    }
}
