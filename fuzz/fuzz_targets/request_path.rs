//! The Kafka request path: framing, preflight, decode and the KafkaApis handlers, on a
//! fresh broker, for a stream of request frames (see `idempo_fuzz::request_path`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    idempo_fuzz::request_path(data);
});
