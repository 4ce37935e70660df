//! The zhtp node as a library: what the `zhtp` binary wires together, reusable by tests and
//! benches.
//!
//! - [`bench`]: the pipeline throughput table (`zhtp bench pipeline`, `benches/pipeline.rs`).
//! - [`local`]: put and get content on one node — the content pipeline over the RocksDB store,
//!   streaming, parallel over segments, verified end to end.
//! - [`network`]: the same content spread over many nodes through the DHT, retrieval with
//!   nodes down, and repair.
//! - [`api`]: the admin HTTP/JSON API of a running node.
//! - [`wire`]: the API's request and response bodies, shared by the handlers, the `--node`
//!   client and `--json` output.
//! - [`output`]: writing a content to a file with preallocation and direct I/O.
//! - [`pipeline`]: the put pipeline both paths share, over a shard [`pipeline::Sink`].
//! - [`keystore`]: identities in the data dir, sealed under passphrases.
//! - [`readers`]: a content's key wrapped for its readers in the manifest.
//! - [`private`]: files only this user may read (data dir, node key, API token, keystore).
//! - [`stats`]: the node's DHT, economic and storage figures (`zhtp stats`).

pub mod accounts;
pub mod api;
pub mod bench;
pub mod keystore;
pub mod local;
pub mod network;
pub mod output;
pub mod pipeline;
pub mod private;
pub mod readers;
pub mod smart;
pub mod stats;
pub mod wire;
