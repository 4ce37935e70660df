//! Surge pricing: cheap on an idle network, steeply dearer as it fills. See README.md.
#![no_std]

extern crate alloc;
use alloc::vec;

use zhtp_sdk::pricing::{
    Adjustment, BP_ONE, Factor, MICRO_PER_TOKEN, MicroZhtp, Quote, QuoteRequest, StorageTier,
    apply_bp, checked_total, prorate,
};

/// Reference price before the surge factor: 100 tokens per GB per day.
pub const REFERENCE_MICRO_PER_GB_DAY: MicroZhtp = 100 * MICRO_PER_TOKEN;

/// Surge factor: 0.6 on an idle network, rising with the square of utilisation to 1.6 at 50% and
/// 4.6 on a full network: `6,000 + u² / 2,500` bp with `u` in bp.
pub const fn surge_bp(utilization_bp: u16) -> u32 {
    let u = utilization_bp as u32;
    6_000 + u * u / 2_500
}

/// Tier factor of the surge model.
pub const fn tier_bp(tier: StorageTier) -> u32 {
    match tier {
        StorageTier::Hot => 20_000,
        StorageTier::Warm => 10_000,
        StorageTier::Cold => 5_000,
        StorageTier::Archive => 2_500,
    }
}

/// Prices a request.
#[zhtp_sdk::plugin(pricing)]
pub fn quote(req: QuoteRequest) -> Result<Quote, &'static str> {
    const OVERFLOW: &str = "request too large to price";
    if req.size_bytes == 0 || req.duration_days == 0 || req.duration_days > 36_500 {
        return Err("size must be at least 1 byte and duration 1 to 36500 days");
    }
    if req.replication == 0 || req.replication > 12 || req.utilization_bp > 10_000 {
        return Err("replication must be 1 to 12 and utilization 0 to 10000 bp");
    }
    let replication = req.replication as u32 * BP_ONE / 3;
    let factors = [
        (Factor::Surge, surge_bp(req.utilization_bp)),
        (Factor::Tier, tier_bp(req.tier)),
        (Factor::Replication, replication),
    ];
    let mut base = prorate(
        req.size_bytes,
        req.duration_days,
        REFERENCE_MICRO_PER_GB_DAY,
    )
    .ok_or(OVERFLOW)?;
    for (_, bp) in factors {
        base = apply_bp(base, bp).ok_or(OVERFLOW)?;
    }
    // Surge pricing keeps the seed's fee schedule but folds quality into a flat 15%.
    let quality_premium = if req.quality {
        apply_bp(base, 1_500).ok_or(OVERFLOW)?
    } else {
        0
    };
    let network_fee = apply_bp(base, 500).ok_or(OVERFLOW)?;
    let escrow_fee = apply_bp(base, 200).ok_or(OVERFLOW)?;
    let total = checked_total(&[base, quality_premium, network_fee, escrow_fee]).ok_or(OVERFLOW)?;
    Ok(Quote {
        base,
        quality_premium,
        network_fee,
        escrow_fee,
        max_bonus: apply_bp(base, 1_500).ok_or(OVERFLOW)?,
        total,
        adjustments: factors
            .iter()
            .map(|&(factor, factor_bp)| Adjustment { factor, factor_bp })
            .collect::<vec::Vec<_>>(),
    })
}
