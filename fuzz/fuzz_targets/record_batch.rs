//! The RecordBatch decoders, compressed batches included (see `idempo_fuzz::record_batch`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    idempo_fuzz::record_batch(data);
});
