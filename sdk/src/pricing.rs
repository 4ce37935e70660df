//! Messages of pricing plugins and integer helpers for writing one.
//!
//! Money is integer µZHTP; factors are basis points (10,000 bp = 1.0). Nothing here uses floats.

pub use zhtp_abi::pricing::*;
pub use zhtp_types::{MICRO_PER_TOKEN, MicroZhtp, StorageTier};

/// Bytes in a pricing gigabyte (decimal: 10^9).
pub const GB: u128 = 1_000_000_000;

// Both helpers try u64 first: on wasm32, u128 division is a software routine that costs far more
// than the rest of a quote, and realistic amounts never need it.

/// `amount × factor_bp / 10,000`, rounded half up; `None` on overflow.
pub fn apply_bp(amount: MicroZhtp, factor_bp: u32) -> Option<MicroZhtp> {
    const HALF: u64 = BP_ONE as u64 / 2;
    if let Some(v) = amount
        .checked_mul(factor_bp as u64)
        .and_then(|v| v.checked_add(HALF))
    {
        return Some(v / BP_ONE as u64);
    }
    let v = (amount as u128 * factor_bp as u128 + HALF as u128) / BP_ONE as u128;
    MicroZhtp::try_from(v).ok()
}

/// The price of `size_bytes` for `days` at `micro_per_gb_day`, rounded up to the next µZHTP so
/// that no non-empty storage is free; `None` on overflow.
pub fn prorate(size_bytes: u64, days: u32, micro_per_gb_day: MicroZhtp) -> Option<MicroZhtp> {
    if let Some(num) = size_bytes
        .checked_mul(days as u64)
        .and_then(|v| v.checked_mul(micro_per_gb_day))
    {
        return Some(num.div_ceil(GB as u64));
    }
    let num = (size_bytes as u128)
        .checked_mul(days as u128)?
        .checked_mul(micro_per_gb_day as u128)?;
    MicroZhtp::try_from(num.div_ceil(GB)).ok()
}

/// Sums the parts of a quote; `None` on overflow.
pub fn checked_total(parts: &[MicroZhtp]) -> Option<MicroZhtp> {
    parts.iter().try_fold(0u64, |acc, &p| acc.checked_add(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding() {
        assert_eq!(apply_bp(100, 1_000), Some(10));
        assert_eq!(apply_bp(5, 1_000), Some(1)); // 0.5 rounds up
        assert_eq!(apply_bp(4, 1_000), Some(0));
        assert_eq!(apply_bp(u64::MAX, 20_000), None);
        assert_eq!(prorate(1, 1, 100 * MICRO_PER_TOKEN), Some(1)); // 0.1 µZHTP rounds up
        assert_eq!(
            prorate(1_000_000_000, 1, 100 * MICRO_PER_TOKEN),
            Some(100_000_000)
        );
        assert_eq!(checked_total(&[1, 2, 3]), Some(6));
        // The u128 fallbacks give the same answers where u64 overflows.
        assert_eq!(apply_bp(u64::MAX / 2, 10_000), Some(u64::MAX / 2));
        assert_eq!(prorate(u64::MAX, 1, 1_000_000_000), Some(u64::MAX));
        assert_eq!(prorate(u64::MAX, 2, 1_000_000_000), None);
        assert_eq!(checked_total(&[u64::MAX, 1]), None);
    }
}
