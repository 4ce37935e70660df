//! Modeled durability: how likely a segment is lost within a year, for a k+m code under a
//! given churn.
//!
//! The model is a birth–death chain over the live shards of one segment. Each of the `n = k+m`
//! shards sits on its own node; a node is lost for good at rate `1/lifetime`, and each missing
//! shard is rebuilt elsewhere at rate `1/repair` (repairs run in parallel). With `i` shards
//! live, a loss happens at rate `i/lifetime` and a repair at rate `(n-i)/repair`; the segment
//! is lost when fewer than `k` remain. The mean time to that (MTTDL) is a sum of positive
//! terms, `τ_n = 1/d_n` and `τ_i = (1 + u_i·τ_{i+1}) / d_i` down to `i = k` (the expected time to
//! go from `i` live shards to `i-1`), so it is exact and numerically stable however rare the
//! loss. A year's loss probability is then `1 - exp(-365 days / MTTDL)`.
//!
//! With the reference churn (90-day node lifetimes, one-day repair) the seed's 4+2 loses about
//! one segment in 37 per year. Durability is bought with parity and with repair speed: see
//! the table in the README.
//!
//! Floats are fine here: this is a statement about risk, not money.

/// How fast nodes go and how fast their shards come back.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Churn {
    /// Mean days a node keeps its shards before it is gone for good.
    pub node_lifetime_days: f64,
    /// Mean hours to rebuild one missing shard elsewhere.
    pub repair_hours: f64,
}

impl Churn {
    /// The reference: 90-day node lifetimes, one-day repair.
    pub const REFERENCE: Self = Self {
        node_lifetime_days: 90.0,
        repair_hours: 24.0,
    };
}

/// Mean days until a segment of a `k`+`m` code loses more than `m` shards.
///
/// The chain is computed once, in `zhtp_abi::durability` (no_std, so a tier plugin and the
/// node use the same figures); codes wider than 255 shards do not exist.
pub fn mttdl_days(k: u32, m: u32, churn: Churn) -> f64 {
    let (Ok(k), Ok(m)) = (u8::try_from(k), u8::try_from(m)) else {
        return 0.0;
    };
    if churn.node_lifetime_days <= 0.0 {
        return 0.0;
    }
    let lifetime = (churn.node_lifetime_days * 86_400.0).round() as u64;
    // At least a second: a repair time that rounds to 0 would be instant repair (no loss).
    let repair = (churn.repair_hours * 3_600.0).round() as u64;
    zhtp_abi::durability::mttdl_secs(k, m, lifetime.max(1), repair.max(1)) / 86_400.0
}

/// Probability that a segment of a `k`+`m` code is lost within a year.
pub fn loss_per_year(k: u32, m: u32, churn: Churn) -> f64 {
    -(-365.0 / mttdl_days(k, m, churn)).exp_m1()
}

/// [`loss_per_year`] as nines: 9 means a loss chance of 10⁻⁹ per year.
pub fn nines(k: u32, m: u32, churn: Churn) -> f64 {
    -loss_per_year(k, m, churn).log10()
}

/// Probability that a content of `segments` segments loses any within a year.
pub fn content_loss_per_year(k: u32, m: u32, segments: u64, churn: Churn) -> f64 {
    // 1 - (1-p)^s, computed without losing a tiny p to rounding.
    let p = loss_per_year(k, m, churn);
    -((segments as f64) * (-p).ln_1p()).exp_m1()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * b.abs()
    }

    #[test]
    fn small_chains_match_their_closed_forms() {
        let c = Churn::REFERENCE;
        // No parity: the first of n nodes to go, lifetime / n.
        assert!(close(mttdl_days(4, 0, c), 90.0 / 4.0));
        // One parity shard: τ_5 = 1/(5λ), τ_4 = (1 + μ τ_5) / (4λ).
        let (l, mu) = (1.0 / 90.0, 1.0);
        let t5 = 1.0 / (5.0 * l);
        let t4 = (1.0 + mu * t5) / (4.0 * l);
        assert!(close(mttdl_days(4, 1, c), t4 + t5));
    }

    #[test]
    fn the_seeds_code_loses_a_segment_in_about_forty_per_year() {
        let p = loss_per_year(4, 2, Churn::REFERENCE);
        assert!((1.0 / 45.0..1.0 / 30.0).contains(&p), "{p}");
        // A 1 GiB file is 256 such segments: almost surely lost within a year.
        assert!(content_loss_per_year(4, 2, 256, Churn::REFERENCE) > 0.99);
    }

    #[test]
    fn parity_and_repair_speed_both_buy_nines() {
        let c = Churn::REFERENCE;
        let fast = Churn {
            repair_hours: 1.0,
            ..c
        };
        for (k, m) in [(4, 2), (8, 4), (16, 8)] {
            assert!(nines(k, m + 2, c) > nines(k, m, c) + 1.0, "{k}+{m}");
            assert!(nines(k, m, fast) > nines(k, m, c) + 1.0, "{k}+{m}");
        }
        // Tiny probabilities survive: 16+12 is far past what f64 rounding near 1 could show.
        assert!(nines(16, 12, fast) > 25.0);
    }
}
