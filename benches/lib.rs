//! Shared helpers for the benches. The same-run reference timer lives with the plugin benches,
//! which must build without the node (and so without RocksDB).

pub use zhtp_plugin_benches::ns_per_call;
