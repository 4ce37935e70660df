//! Messages of pricing plugins and integer helpers for writing one.
//!
//! Money is integer µZHTP; factors are basis points (10,000 bp = 1.0). Nothing here uses floats.

pub use zhtp_abi::pricing::*;
pub use zhtp_types::{MICRO_PER_TOKEN, MicroZhtp, StorageTier};

/// Bytes in a pricing gigabyte (decimal: 10^9).
pub const GB: u128 = 1_000_000_000;

// Both helpers stay in u64 whenever the product provably fits (the leading zeros of the factors
// add up to at least 64): on wasm32 both u128 arithmetic and overflow-checked u64 multiplication
// are software routines that cost more than the rest of a quote, and realistic amounts never
// need them.

/// `a × b` when it certainly fits in 64 bits, judged by leading zeros alone.
#[inline(always)]
fn small_mul(a: u64, b: u64) -> Option<u64> {
    (a.leading_zeros() + b.leading_zeros() >= 64).then(|| a * b)
}

/// `amount × factor_bp / 10,000`, rounded half up; `None` on overflow.
pub fn apply_bp(amount: MicroZhtp, factor_bp: u32) -> Option<MicroZhtp> {
    const HALF: u64 = BP_ONE as u64 / 2;
    if let Some(v) = small_mul(amount, factor_bp as u64)
        && v < u64::MAX - HALF
    {
        return Some((v + HALF) / BP_ONE as u64);
    }
    let v = (amount as u128 * factor_bp as u128 + HALF as u128) / BP_ONE as u128;
    MicroZhtp::try_from(v).ok()
}

/// The price of `size_bytes` for `days` at `micro_per_gb_day`, rounded up to the next µZHTP so
/// that no non-empty storage is free; `None` on overflow.
pub fn prorate(size_bytes: u64, days: u32, micro_per_gb_day: MicroZhtp) -> Option<MicroZhtp> {
    if let Some(num) =
        small_mul(size_bytes, days as u64).and_then(|v| small_mul(v, micro_per_gb_day))
    {
        return Some(num.div_ceil(GB as u64));
    }
    let num = (size_bytes as u128)
        .checked_mul(days as u128)?
        .checked_mul(micro_per_gb_day as u128)?;
    MicroZhtp::try_from(num.div_ceil(GB)).ok()
}

/// Sums the parts of a quote; `None` on overflow. (Inlined: as a call it cost a plugin 4 ns per
/// quote.)
#[inline]
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
