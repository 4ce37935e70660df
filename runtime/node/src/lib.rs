//! The zhtp node as a library: what the `zhtp` binary wires together, reusable by tests and
//! benches.
//!
//! - [`bench`]: the pipeline throughput table (`zhtp bench pipeline`, `benches/pipeline.rs`).
//! - [`local`]: put and get content on one node — the content pipeline over the RocksDB store,
//!   streaming, parallel over segments, verified end to end.

pub mod bench;
pub mod local;
