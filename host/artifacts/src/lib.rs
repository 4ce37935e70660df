//! The guest plugins of `plugins/`, compiled to wasm32 by this crate's build script.
//!
//! The `zhtp` binary embeds them so it runs with no files beside it; tests and benches load them
//! into a real wasmtime host.

include!(concat!(env!("OUT_DIR"), "/guests.rs"));

/// Looks a guest up by crate name (`pricing-standard`).
pub fn get(name: &str) -> Option<&'static [u8]> {
    ALL.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
}
