//! Smart contracts: the counter warm, through a node's store with its commit, compiled, a
//! 1,000-name registry batch and a devnet execute, next to native code measured in the same
//! run and the CosmWasm anchor; the same table as `zhtp bench contracts`.
//!
//! `cargo bench -p zhtp-benches --bench contract`

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    zhtp::bench::contracts(dir.path()).expect("contract bench");
}
