//! The fuzz seed corpora (`fuzz/seeds/`, real client frames) and every crash the fuzzers
//! ever found (`fuzz/regressions/`), replayed on stable through the same entry functions the
//! `cargo fuzz` targets call (`fuzz/src/lib.rs`, included here as a module). CI runs this
//! instead of the fuzzers: it needs no nightly and no cargo-fuzz, and a regression of a fixed
//! crash fails it.

#[allow(dead_code)] // the fuzz crate's public items are not all used here
#[path = "../../fuzz/src/lib.rs"]
mod entry;

use std::fs;
use std::path::{Path, PathBuf};

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn fuzz_dir(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz")
        .join(sub)
}

#[test]
fn request_path_seeds_of_real_clients_are_served_and_never_crash() {
    let seeds = files_under(&fuzz_dir("seeds/request_path"));
    assert!(
        seeds.len() >= 4,
        "the request_path seeds are committed ({} found)",
        seeds.len()
    );
    for seed in &seeds {
        let data = fs::read(seed).expect("a seed is readable");
        let mut apis = entry::fresh_apis();
        let answered = entry::serve_all(&mut apis, &data);
        // Real clients' sessions are whole, well-formed conversations: every frame is served,
        // and their Produce requests reach the log.
        assert!(
            answered >= 5,
            "{}: only {answered} frames served",
            seed.display()
        );
        let appended: i64 = (0..16).filter_map(|p| apis.broker.log_end_offset(p)).sum();
        assert!(appended > 0, "{}: nothing was appended", seed.display());
    }
}

#[test]
fn record_batch_seeds_of_real_clients_validate_with_every_codec() {
    let seeds = files_under(&fuzz_dir("seeds/record_batch"));
    let mut codecs = std::collections::BTreeSet::new();
    for seed in &seeds {
        let data = fs::read(seed).expect("a seed is readable");
        let bytes = bytes::Bytes::from(data.clone());
        let header = idempo_protocol::validate(&bytes)
            .unwrap_or_else(|e| panic!("{}: a real client's batch is valid: {e}", seed.display()));
        codecs.insert(header.compression());
        entry::record_batch(&data);
    }
    assert_eq!(
        codecs.into_iter().collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4],
        "seeds cover none, gzip, snappy, lz4 and zstd"
    );
}

#[test]
fn every_fuzz_regression_replays_without_a_crash() {
    for target in ["request_path", "record_batch"] {
        for input in files_under(&fuzz_dir("regressions").join(target)) {
            let data = fs::read(&input).expect("a regression input is readable");
            match target {
                "request_path" => {
                    entry::request_path(&data);
                }
                _ => entry::record_batch(&data),
            }
        }
    }
}
