//! Helpers shared by the integration tests: hosts with test limits and hand-written guests.

use std::time::Duration;

use zhtp_host::abi::pricing::{Quote, QuoteRequest};
use zhtp_host::{Host, Kind, Limits, Plugin, PricingPlugin};
use zhtp_types::StorageTier;

/// The time limit the hostile-guest tests configure.
pub const TEST_TIMEOUT: Duration = Duration::from_millis(50);
/// The memory cap the hostile-guest tests configure.
pub const TEST_MEMORY: usize = 4 << 20;

/// A host with the test limits.
pub fn host() -> Host {
    Host::new(
        Limits::default()
            .with_call_timeout(TEST_TIMEOUT)
            .with_memory(TEST_MEMORY),
    )
    .expect("host")
}

/// The standard pricing plugin, built from `plugins/pricing-standard`, loaded into `host`.
pub fn standard(host: &Host) -> PricingPlugin {
    PricingPlugin::new(
        host.load(Kind::Pricing, zhtp_artifacts::PRICING_STANDARD)
            .expect("standard plugin loads"),
    )
}

/// The golden request: 1 GB, 1 day, Warm, with quality guarantees.
pub fn golden_request() -> QuoteRequest {
    QuoteRequest::new(1_000_000_000, 1, StorageTier::Warm, true)
}

/// Asserts that `plugin` still prices the golden request at 117 tokens.
pub fn assert_serves(plugin: &PricingPlugin) {
    let q = plugin
        .quote(&golden_request())
        .expect("a good plugin still serves");
    assert_eq!(q.quote.total, 117_000_000);
}

/// A v1 pricing guest whose entry export has `body` (a WAT instruction sequence leaving an i32).
/// `extra` adds module fields (functions, data); `pages` sizes the memory.
pub fn guest(body: &str, extra: &str, pages: u32) -> Vec<u8> {
    let text = format!(
        r#"(module
  (import "zhtp:env/v1" "output_set" (func $output_set (param i32 i32) (result i32)))
  (import "zhtp:env/v1" "abort" (func $abort (param i32 i32 i32)))
  (memory (export "memory") {pages})
  (func (export "zhtp_abi_v1"))
  (func (export "pricing_quote") (result i32) {body})
  {extra}
)"#
    );
    wat::parse_str(&text).unwrap_or_else(|e| panic!("bad test WAT: {e}\n{text}"))
}

/// Loads `wasm` as a pricing plugin on `host`.
pub fn load(host: &Host, wasm: &[u8]) -> Result<Plugin, zhtp_host::LoadError> {
    host.load(Kind::Pricing, wasm)
}

/// A WAT data-string literal for arbitrary bytes.
pub fn wat_bytes(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\{b:02x}")).collect()
}

/// postcard bytes of a quote.
pub fn quote_bytes(q: &Quote) -> Vec<u8> {
    postcard::to_allocvec(q).expect("encode")
}

/// `host/SPEC.md`, the contract with guest authors whose examples the tests hold to.
pub const SPEC: &str = include_str!("../host/SPEC.md");

/// Space-separated hex bytes, as the spec writes them.
pub fn hex_bytes(text: &str) -> Vec<u8> {
    text.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap_or_else(|e| panic!("hex byte {b:?}: {e}")))
        .collect()
}

/// The hex bytes on the line of the spec that starts with `prefix`.
pub fn spec_bytes(prefix: &str) -> Vec<u8> {
    hex_bytes(
        SPEC.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("SPEC.md has no line starting {prefix:?}")),
    )
}
