//! ABI v1 compatibility: fixtures committed under `tests/fixtures/` that every future host
//! version must still load and run with the same results. Never regenerate them; add new ones.

use zhtp_host::abi::pricing::QuoteRequest;
use zhtp_host::{CallError, PricingPlugin};
use zhtp_tests::*;
use zhtp_types::{Hash, StorageTier};

const STANDARD_V1: &[u8] = include_bytes!("fixtures/pricing-standard-v1.wasm");
const COMPAT_V1: &str = include_str!("fixtures/compat-v1.wat");

#[test]
fn committed_pricing_standard_v1_still_prices_the_golden_values() {
    let host = host();
    let plugin = PricingPlugin::new(load(&host, STANDARD_V1).expect("v1 fixture loads"));
    let info = plugin.plugin().info();
    assert_eq!(info.abi_version, 1);
    assert_eq!(info.name, "pricing-standard@0.1.0");
    assert_eq!(
        info.hash,
        Hash::from_hex("a3c7e35cc25636f6e7f33e2dc6a5a854f86781cc10dafd3509ca195b4fc9ac15").unwrap()
    );
    assert_eq!(
        plugin.quote(&golden_request()).unwrap().quote.total,
        117_000_000
    );
    let big = QuoteRequest::new(10_000_000_000, 30, StorageTier::Warm, false);
    assert_eq!(plugin.quote(&big).unwrap().quote.total, 32_100_000_000);
}

#[test]
fn hand_written_v1_guest_using_every_import_still_runs() {
    let wasm = wat::parse_str(COMPAT_V1).expect("fixture parses");
    let host = host();
    let plugin = PricingPlugin::new(load(&host, &wasm).expect("v1 fixture loads"));
    let q = plugin.quote(&golden_request()).expect("fixture answers");
    assert_eq!(
        (q.quote.base, q.quote.quality_premium, q.quote.network_fee),
        (100, 10, 5)
    );
    assert_eq!(
        (q.quote.escrow_fee, q.quote.max_bonus, q.quote.total),
        (2, 15, 117)
    );
    // The fixture checks its input byte by byte: another request is refused with its reason.
    let other = QuoteRequest::new(1, 1, StorageTier::Hot, false);
    assert_eq!(
        plugin.quote(&other).unwrap_err(),
        CallError::Refused("unexpected input".into())
    );
}

#[test]
fn spec_examples_decode_to_what_the_spec_says() {
    // host/SPEC.md is the contract with guest authors: its example bytes must stay true.
    let bytes = spec_bytes("    QuoteRequest = ");
    let req: QuoteRequest = postcard::from_bytes(&bytes).expect("the example decodes");
    assert_eq!(req, golden_request());
    assert_eq!(postcard::to_allocvec(&golden_request()).unwrap(), bytes);
}

/// SPEC.md R-msg-golden-quote: the bytes `plugins/pricing-standard` answers the golden request
/// with, as the spec prints them, and as the committed v1 build of that plugin gives them.
#[test]
fn the_spec_golden_quote_is_what_the_standard_plugin_answers() {
    let bytes = spec_bytes("    Quote = ");
    assert_eq!(bytes.len(), 36);
    let input = postcard::to_allocvec(&golden_request()).unwrap();
    let host = host();
    for wasm in [zhtp_artifacts::PRICING_STANDARD, STANDARD_V1] {
        let plugin = load(&host, wasm).expect("loads");
        assert_eq!(plugin.call(&input).expect("answers"), bytes);
    }
    let q: zhtp_host::abi::pricing::Quote = postcard::from_bytes(&bytes).unwrap();
    assert_eq!(
        (q.base, q.total, q.adjustments.len()),
        (100_000_000, 117_000_000, 4)
    );
}

#[test]
fn hand_written_v1_quality_guest_still_judges_the_golden_period() {
    let wasm = wat::parse_str(include_str!("fixtures/quality-v1.wat")).expect("fixture parses");
    let plugin = zhtp_host::QualityPlugin::new(
        host()
            .load(zhtp_host::Kind::Quality, &wasm)
            .expect("v1 quality fixture loads"),
    );
    plugin.self_check().expect("it passes the self-check");
    // SPEC R-qmsg-golden-request answered with R-qmsg-golden-assessment.
    let out = plugin
        .plugin()
        .call(&spec_bytes("    Measurements = "))
        .expect("it answers");
    assert_eq!(out, [0xcc, 0x3a, 0x00, 0x01, 0x00]);
}
