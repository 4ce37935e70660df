//! Golden values of the pricing plugins, through the wasm host and natively: the two must agree
//! to the µZHTP. Tables: plugins/pricing-standard/README.md, plugins/pricing-surge/README.md.

use zhtp_host::abi::pricing::{Quote, QuoteRequest, Urgency};
use zhtp_host::{Kind, PricingPlugin};
use zhtp_tests::*;
use zhtp_types::StorageTier::{self, *};

const GB: u64 = 1_000_000_000;
const TOKEN: u64 = 1_000_000;

fn req(size: u64, days: u32, tier: StorageTier, quality: bool) -> QuoteRequest {
    QuoteRequest::new(size, days, tier, quality)
}

/// Prices `r` through wasm and natively, asserts they agree and returns the quote.
fn both(
    plugin: &PricingPlugin,
    native: fn(QuoteRequest) -> Result<Quote, &'static str>,
    r: &QuoteRequest,
) -> Quote {
    let wasm = plugin.quote(r).expect("wasm quote").quote;
    assert_eq!(native(r.clone()).expect("native quote"), wasm);
    wasm
}

#[test]
fn standard_golden_values() {
    let host = host();
    let p = standard(&host);
    let q = |r: QuoteRequest| both(&p, pricing_standard::quote, &r);

    // The two values of the issue.
    let a = q(req(GB, 1, Warm, true));
    assert_eq!(
        (
            a.base,
            a.quality_premium,
            a.network_fee,
            a.escrow_fee,
            a.max_bonus,
            a.total
        ),
        (
            100 * TOKEN,
            10 * TOKEN,
            5 * TOKEN,
            2 * TOKEN,
            15 * TOKEN,
            117 * TOKEN
        )
    );
    assert_eq!(q(req(10 * GB, 30, Warm, false)).total, 32_100 * TOKEN);

    // Tier table (1 GB, 1 day, no quality: total = base × 1.07).
    assert_eq!(q(req(GB, 1, Hot, false)).total, 160_500_000);
    assert_eq!(q(req(GB, 1, Cold, false)).total, 64_200_000);
    assert_eq!(q(req(GB, 1, Archive, false)).total, 32_100_000);

    // Replication: proportional to copies, 3 = neutral.
    let mut r = req(GB, 1, Warm, false);
    r.replication = 6;
    assert_eq!(q(r.clone()).base, 200 * TOKEN);
    r.replication = 1;
    assert_eq!(q(r).base, 33_330_000);

    // Urgency.
    let mut r = req(GB, 1, Warm, false);
    r.urgency = Urgency::High;
    assert_eq!(q(r.clone()).total, 133_750_000);
    r.urgency = Urgency::Low;
    assert_eq!(q(r).total, 96_300_000);

    // Market utilisation: ±10% between an idle and a full network.
    let mut r = req(GB, 1, Warm, false);
    r.utilization_bp = 10_000;
    assert_eq!(q(r.clone()).base, 110 * TOKEN);
    r.utilization_bp = 0;
    assert_eq!(q(r).base, 90 * TOKEN);

    // Rounding: one byte for one day still costs something, in every tier.
    assert_eq!(q(req(1, 1, Warm, false)).base, 1);
    assert_eq!(q(req(1, 1, Archive, false)).base, 1);
}

#[test]
fn standard_refuses_bad_requests_with_a_reason() {
    let host = host();
    let p = standard(&host);
    // Outside what the host ever sends (SPEC.md R-req-ranges): refused before the plugin runs.
    let err = p.quote(&req(0, 1, Warm, false)).unwrap_err();
    assert_eq!(
        err,
        zhtp_host::CallError::InvalidRequest("size must be at least 1 byte".into())
    );
    let mut r = req(GB, 1, Warm, false);
    r.utilization_bp = 10_001;
    assert!(matches!(
        p.quote(&r).unwrap_err(),
        zhtp_host::CallError::InvalidRequest(m) if m.contains("utilization")
    ));
    // Within them, the plugin's own policy (R-req-refuse): at most 12 copies, 100 years.
    let mut r = req(GB, 1, Warm, false);
    r.replication = 13;
    assert_eq!(
        p.quote(&r).unwrap_err().to_string(),
        "plugin refused the request: replication must be 1 to 12"
    );
    // Overflow is a refusal, not a wrap-around.
    let huge = req(u64::MAX, 36_500, Hot, true);
    assert!(
        p.quote(&huge)
            .unwrap_err()
            .to_string()
            .contains("too large")
    );
}

#[test]
fn surge_golden_values_differ_from_standard() {
    let host = host();
    let p = PricingPlugin::new(
        host.load(Kind::Pricing, zhtp_artifacts::PRICING_SURGE)
            .unwrap(),
    );
    let q = |r: QuoteRequest| both(&p, pricing_surge::quote, &r);
    // Neutral market: surge factor 1.6, quality 15%.
    let a = q(req(GB, 1, Warm, true));
    assert_eq!(
        (a.base, a.quality_premium, a.total),
        (160 * TOKEN, 24 * TOKEN, 195_200_000)
    );
    // Idle network 0.6, full network 4.6.
    let mut r = req(GB, 1, Warm, false);
    r.utilization_bp = 0;
    assert_eq!(q(r.clone()).base, 60 * TOKEN);
    r.utilization_bp = 10_000;
    assert_eq!(q(r).base, 460 * TOKEN);
    assert_ne!(
        a.total,
        standard(&host)
            .quote(&golden_request())
            .unwrap()
            .quote
            .total
    );
}
