//! Durable single-node put and get through the whole pipeline into RocksDB, next to memcpy and
//! BLAKE3 measured in the same run (the same table as `zhtp bench pipeline`).
//!
//! `cargo bench -p zhtp-benches --bench pipeline` (ZHTP_BENCH_MIB changes the size, default 256)

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let mib = std::env::var("ZHTP_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let dir = tempfile::tempdir().expect("temp dir");
    zhtp::bench::pipeline(mib, dir.path()).expect("pipeline bench");
}
