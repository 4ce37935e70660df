//! Get a 256 MiB file from a 6-node loopback devnet (real swarms, real stores), next to memcpy
//! measured in the same run; the same table as `zhtp bench devnet`.
//!
//! `cargo bench -p zhtp-benches --bench devnet` (ZHTP_BENCH_MIB changes the size, default 256)

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let mib = std::env::var("ZHTP_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let dir = tempfile::tempdir().expect("temp dir");
    zhtp::bench::devnet(mib, 6, dir.path()).expect("devnet bench");
}
