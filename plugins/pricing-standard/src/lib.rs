//! The seed's pricing model, as a zhtp pricing plugin. See README.md for the table.
#![no_std]

use zhtp_sdk::pricing::{
    Adjustment, BP_ONE, Factor, MICRO_PER_TOKEN, MicroZhtp, Quote, QuoteRequest, StorageTier,
    Urgency, apply_bp, checked_total, prorate,
};

extern crate alloc;
use alloc::vec::Vec;

/// 100 tokens per GB (10^9 bytes) per day, Warm tier, neutral market.
pub const BASE_MICRO_PER_GB_DAY: MicroZhtp = 100 * MICRO_PER_TOKEN;
/// +10% of base when quality guarantees are requested.
pub const QUALITY_PREMIUM_BP: u32 = 1_000;
/// +5% of base for protocol maintenance.
pub const NETWORK_FEE_BP: u32 = 500;
/// +2% of base for payment security.
pub const ESCROW_FEE_BP: u32 = 200;
/// Up to +15% of base, paid to providers from the incentive pool.
pub const MAX_BONUS_BP: u32 = 1_500;
/// Longest storage term accepted: 100 years.
pub const MAX_DAYS: u32 = 36_500;
/// Highest replication factor accepted.
pub const MAX_REPLICATION: u8 = 12;

/// Tier factor: hotter storage costs more.
pub const fn tier_bp(tier: StorageTier) -> u32 {
    match tier {
        StorageTier::Hot => 15_000,
        StorageTier::Warm => 10_000,
        StorageTier::Cold => 6_000,
        StorageTier::Archive => 3_000,
    }
}

/// Urgency factor.
pub const fn urgency_bp(urgency: Urgency) -> u32 {
    match urgency {
        Urgency::Low => 9_000,
        Urgency::Normal => 10_000,
        Urgency::High => 12_500,
    }
}

/// Replication factor: proportional to copies stored, 3 copies = 1.0.
pub const fn replication_bp(replication: u8) -> u32 {
    replication as u32 * BP_ONE / QuoteRequest::NEUTRAL_REPLICATION as u32
}

/// Market factor: linear, ±10% between an idle (0%) and a full (100%) network.
pub const fn utilization_bp(utilization_bp: u16) -> u32 {
    9_000 + utilization_bp as u32 / 5
}

/// Prices a request.
#[zhtp_sdk::plugin(pricing)]
pub fn quote(req: QuoteRequest) -> Result<Quote, &'static str> {
    validate(&req)?;
    let neutral = prorate(req.size_bytes, req.duration_days, BASE_MICRO_PER_GB_DAY)
        .ok_or("request too large to price")?;
    // The factors as plain numbers, applied in this order. (An array of `(Factor, u32)` pairs
    // mapped into the `Vec` cost 15% of this function in a profile: the pairs were stored
    // field by field and read back whole, and the CPU waited for the stores to land.)
    let factors = [
        tier_bp(req.tier),
        replication_bp(req.replication),
        urgency_bp(req.urgency),
        utilization_bp(req.utilization_bp),
    ];
    let mut base = neutral;
    for bp in factors {
        base = apply_bp(base, bp).ok_or("request too large to price")?;
    }
    // Storing anything is never free: a byte for a day in Archive rounds to 0 otherwise
    // (found by the install self-check, host/SPEC.md R-check-nonzero).
    let base = base.max(1);
    // A `vec!` of four, not an iterator collected: 4 ns less per quote in the guest.
    let adjustment = |factor, factor_bp| Adjustment { factor, factor_bp };
    let adjustments = alloc::vec![
        adjustment(Factor::Tier, factors[0]),
        adjustment(Factor::Replication, factors[1]),
        adjustment(Factor::Urgency, factors[2]),
        adjustment(Factor::Utilization, factors[3]),
    ];
    finish(base, req.quality, adjustments)
}

fn validate(req: &QuoteRequest) -> Result<(), &'static str> {
    if req.size_bytes == 0 {
        return Err("size must be at least 1 byte");
    }
    if req.duration_days == 0 || req.duration_days > MAX_DAYS {
        return Err("duration must be 1 to 36500 days");
    }
    if req.replication == 0 || req.replication > MAX_REPLICATION {
        return Err("replication must be 1 to 12");
    }
    if req.utilization_bp > 10_000 {
        return Err("utilization must be 0 to 10000 basis points");
    }
    Ok(())
}

fn finish(
    base: MicroZhtp,
    quality: bool,
    adjustments: Vec<Adjustment>,
) -> Result<Quote, &'static str> {
    const OVERFLOW: &str = "request too large to price";
    let quality_premium = if quality {
        apply_bp(base, QUALITY_PREMIUM_BP).ok_or(OVERFLOW)?
    } else {
        0
    };
    let network_fee = apply_bp(base, NETWORK_FEE_BP).ok_or(OVERFLOW)?;
    let escrow_fee = apply_bp(base, ESCROW_FEE_BP).ok_or(OVERFLOW)?;
    let max_bonus = apply_bp(base, MAX_BONUS_BP).ok_or(OVERFLOW)?;
    let total = checked_total(&[base, quality_premium, network_fee, escrow_fee]).ok_or(OVERFLOW)?;
    Ok(Quote {
        base,
        quality_premium,
        network_fee,
        escrow_fee,
        max_bonus,
        total,
        adjustments,
    })
}
