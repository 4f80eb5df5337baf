//! # idempo-fuzz: the entry functions the fuzz targets call
//!
//! Two targets, each one function here so that the seed corpora can be replayed on stable
//! through the very same code (`net/tests/fuzz_corpus.rs` includes this file as a module):
//!
//! - [`request_path`]: the bytes a client sends on one connection, split into frames by
//!   the server's own framing (`kafka_codec::check_frame`), each decoded
//!   (`kafka_codec::decode_request`, which runs `preflight::check` before `kafka-protocol`
//!   decodes the body) and handed to the server's own dispatch (`KafkaApis::handle`, which
//!   calls the handler and encodes its answer), on a fresh broker, synchronously and without
//!   sockets. Unsupported versions get the server's UNSUPPORTED_VERSION answers. Seeds are whole sessions of real clients (ApiVersions, Metadata,
//!   InitProducerId, Produce, Fetch ...), so mutations keep reaching the produce path.
//! - [`record_batch`]: one RecordBatch through every decoder (`validate`,
//!   `RecordBatch::decode`, `visit_records`, `decode_batches`, `validate_records_within`),
//!   checking that they agree; then again after its length and CRC-32C are re-stamped, so
//!   that mutated compressed records reach the decompressors instead of stopping at the
//!   CRC. Seeds are batches real clients sent, compressed with every codec.
//!
//! A crash is a panic, an abort (an allocation the process cannot have) or a disagreement
//! between decoders, asserted here.

use bytes::Bytes;
use idempo_broker::{Broker, BrokerConfig, GroupConfig, NodeStorage, SimDisk};
use idempo_net::dispatch::Handled;
use idempo_net::kafka_apis::{FrontEndSettings, KafkaApis, unsupported_api_versions_frame};
use idempo_net::kafka_codec::{self, Decoded, FrameCheck};
use idempo_net::unsupported_version;
use idempo_protocol::compression::{Compression, with_records};
use idempo_protocol::record_batch::{ATTRIBUTES_OFFSET, RECORD_BATCH_OVERHEAD};
use idempo_protocol::{
    BatchHeader, RecordBatch, decode_batches, validate, validate_records_within, visit_records,
};

/// The broker clock the request path runs at (fixed, so a crash replays exactly; in 2033,
/// so the seeds' record timestamps are never "too far ahead").
pub const NOW_MS: i64 = 2_000_000_000_000;

/// The largest frame the request path accepts, as the server's `--max-frame-bytes` would.
/// Smaller than the server's default so that libFuzzer's inputs stay cheap.
pub const MAX_FRAME_BYTES: usize = 1 << 20;

/// Frames served per input at most (an input is at most a few KiB; this bounds the loop).
const MAX_FRAMES: usize = 256;

/// Broker time that passes between two frames: enough for a group's initial rebalance
/// delay (3 s) to run out after a few frames, so parked JoinGroups complete.
const TICK_MS: i64 = 1_000;

/// A fresh front end over a fresh in-memory broker (the storage `idempo-broker` uses
/// without `--data-dir`), with Kafka's defaults.
pub fn fresh_apis() -> KafkaApis {
    let (broker, _) = Broker::open(BrokerConfig::default(), NodeStorage::Memory(SimDisk::new()))
        .expect("the default config opens on an empty disk");
    let mut apis = KafkaApis::new(
        broker,
        FrontEndSettings {
            advertised_host: "127.0.0.1".into(),
            advertised_port: 9092,
            cluster_id: "idempo".into(),
            default_partitions: 3,
            auto_create_topics: true,
            group: GroupConfig::default(),
            // Fixed, so member ids (and so a crash) replay exactly.
            member_id_seed: 1,
        },
    );
    apis.advance_time(NOW_MS);
    apis
}

/// Serves every whole frame in `data` (each with its 4-byte length prefix) on a fresh
/// broker, as one connection would, and returns how many were answered. Stops where the
/// server would close the connection.
pub fn request_path(data: &[u8]) -> usize {
    serve_all(&mut fresh_apis(), data)
}

/// [`request_path`] on a given front end, to look at the broker afterwards.
pub fn serve_all(apis: &mut KafkaApis, data: &[u8]) -> usize {
    let mut rest = data;
    let mut answered = 0;
    for n in 0..MAX_FRAMES {
        apis.advance_time(NOW_MS + TICK_MS * n as i64);
        let FrameCheck::Complete { frame_bytes } = kafka_codec::check_frame(rest, MAX_FRAME_BYTES)
        else {
            break;
        };
        let frame = Bytes::copy_from_slice(&rest[4..4 + frame_bytes]);
        rest = &rest[4 + frame_bytes..];
        match serve(apis, frame) {
            Some(_) => answered += 1,
            None => break,
        }
    }
    answered
}

/// One frame through decode and the server's own dispatch ([`KafkaApis::handle`]); the
/// encoded answer (empty where the server writes nothing or would wait), or `None` where the
/// server closes the connection (an undecodable frame, an answer that does not encode, an
/// `acks=0` Produce that failed).
pub fn serve(apis: &mut KafkaApis, frame: Bytes) -> Option<Bytes> {
    let (api_key, header, body) = match kafka_codec::decode_request(frame) {
        Ok(Decoded::Request {
            api_key,
            header,
            body,
        }) => (api_key, header, body),
        Ok(Decoded::UnsupportedApiVersions { correlation_id, .. }) => {
            return unsupported_api_versions_frame(correlation_id).ok();
        }
        Ok(Decoded::UnsupportedVersion(request)) => {
            return unsupported_version::answer(&request)?.ok();
        }
        Err(_) => return None,
    };
    match apis
        .handle(api_key, &header, *body, "/127.0.0.1")
        .ok()?
        .handled
    {
        Handled::Answer(frame) => Some(frame),
        Handled::CloseAcksZeroFailure { .. } => None,
        // The server would wait (for an append, a rebalance, the leader's assignment, a
        // cluster's high watermark): go on.
        Handled::NoAnswer
        | Handled::ProduceWait(_)
        | Handled::FetchWait(_)
        | Handled::JoinParked(_)
        | Handled::SyncParked(_) => Some(Bytes::new()),
    }
}

/// Where the magic byte sits in a batch header.
const MAGIC_OFFSET: usize = 16;

/// Bound on decompressed records in [`record_batch`]: small, so a bomb is cheap to refuse.
pub const FUZZ_MAX_DECOMPRESSED_BYTES: usize = 256 * 1024;

/// One batch through every decoder, as sent and re-stamped (see the crate docs). Panics
/// when two decoders disagree.
pub fn record_batch(data: &[u8]) {
    let bytes = Bytes::copy_from_slice(data);
    decode_every_way(&bytes);
    if let Some(restamped) = restamp(data) {
        decode_every_way(&restamped);
    }
}

fn decode_every_way(bytes: &Bytes) {
    let validated = validate(bytes);
    let decoded = RecordBatch::decode(bytes.clone());
    assert_eq!(
        validated.is_ok(),
        decoded.is_ok(),
        "validate and decode disagree: {validated:?} vs {decoded:?}"
    );
    let mut seen = 0usize;
    let visited = visit_records(bytes, |_| seen += 1);
    assert_eq!(
        visited.as_ref().ok(),
        validated.as_ref().ok(),
        "visit_records and validate disagree: {visited:?} vs {validated:?}"
    );
    if let Ok(batch) = &decoded {
        assert_eq!(seen, batch.records.len(), "visit_records saw every record");
        let header = validated.as_ref().expect("validate agreed above");
        assert_eq!(header.records_count as usize, batch.records.len());
    }
    if let Ok(header) = BatchHeader::parse(bytes) {
        let within = validate_records_within(bytes, &header, FUZZ_MAX_DECOMPRESSED_BYTES);
        if within.is_ok() && header.compression() != 0 {
            // A smaller bound can only refuse more; the default bound is larger.
            assert!(
                validate_records_within(bytes, &header, usize::MAX).is_ok(),
                "a larger bound refused what a smaller one accepted"
            );
        }
    }
    let _ = decode_batches(bytes.clone());
}

/// `data` with magic 2 and batchLength, the codec bits and the CRC-32C rewritten to match
/// its bytes (`compression::with_records`), or `None` when it is shorter than a header or
/// names an undefined codec.
fn restamp(data: &[u8]) -> Option<Bytes> {
    let header = data.get(..RECORD_BATCH_OVERHEAD)?;
    let attributes = i16::from_be_bytes([header[ATTRIBUTES_OFFSET], header[ATTRIBUTES_OFFSET + 1]]);
    let codec = Compression::from_attributes(attributes).ok()?;
    let mut header = header.to_vec();
    header[MAGIC_OFFSET] = 2;
    Some(with_records(&header, codec, &data[RECORD_BATCH_OVERHEAD..]))
}
