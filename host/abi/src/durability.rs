//! The durability model: how likely a segment coded `k+m` is to be lost, given how long nodes
//! live and how long a lost shard takes to repair.
//!
//! A segment's shards fail independently, each holder after an exponentially distributed
//! lifetime (mean `lifetime`); each lost shard is rebuilt independently after an exponentially
//! distributed repair time (mean `repair`). The number of lost shards is then a birth–death
//! chain on `0..=m`: from `i` lost, one more is lost at rate `(k+m−i)/lifetime` and one is
//! repaired at rate `i/repair`; at `m+1` lost the segment is gone. The expected time to get
//! there from `0` (the mean time to data loss, MTTDL) gives the chance of a loss within a
//! horizon, `1 − exp(−horizon / MTTDL)` (SPEC.md section 13.5).
//!
//! Plain `f64` arithmetic only (no `libm`): the host and a `no_std` guest compute the same
//! figures. With 90-day lifetimes and one-day repair, 4+2 loses 2.7% of its segments a year;
//! 8+4 with a one-hour repair loses 7.3 in 10^10 (9 nines), 16+8 one in 10^19.

/// Seconds in a year of 365 days: the horizon durability is stated for.
pub const YEAR_SECS: u64 = 365 * 86_400;

/// Node lifetime assumed before any is observed: 90 days.
pub const DEFAULT_LIFETIME_SECS: u64 = 90 * 86_400;

/// Mean time to data loss of a segment coded `data + parity`, seconds: 0 when the code has no
/// data shards or the lifetime is zero, `f64::INFINITY` when repair is instant (0) or the
/// figure overflows.
pub fn mttdl_secs(data: u8, parity: u8, lifetime_secs: u64, repair_secs: u64) -> f64 {
    let n = u32::from(data) + u32::from(parity);
    if data == 0 || lifetime_secs == 0 {
        return 0.0;
    }
    let (lifetime, repair) = (lifetime_secs as f64, repair_secs as f64);
    // e = expected time to go from i lost shards to i + 1: e_0 = 1/λ_0 and
    // e_i = (1 + μ_i e_{i-1}) / λ_i; the MTTDL is their sum. Every term is positive, so
    // the sum keeps its precision where solving the chain's linear system would cancel.
    let mut e = 0.0;
    let mut total = 0.0;
    for i in 0..=u32::from(parity) {
        let fail = f64::from(n - i) / lifetime;
        let heal = if repair_secs == 0 {
            f64::INFINITY
        } else {
            f64::from(i) / repair
        };
        e = if i == 0 {
            1.0 / fail
        } else {
            (1.0 + heal * e) / fail
        };
        total += e;
    }
    total
}

/// Probability that a segment coded `data + parity` is lost within `horizon_secs`.
pub fn loss_probability(
    data: u8,
    parity: u8,
    lifetime_secs: u64,
    repair_secs: u64,
    horizon_secs: u64,
) -> f64 {
    let mttdl = mttdl_secs(data, parity, lifetime_secs, repair_secs);
    if mttdl <= 0.0 {
        return 1.0;
    }
    one_minus_exp_neg(horizon_secs as f64 / mttdl)
}

/// Whether `p` is at most `10^-nines`: "at least `nines` nines of durability".
pub fn meets(p: f64, nines: u32) -> bool {
    let mut bound = 1.0f64;
    for _ in 0..nines {
        bound /= 10.0;
    }
    p <= bound
}

/// `1 − e^(−x)` for `x ≥ 0`, accurate for tiny `x` (where `1.0 - exp(-x)` would round to 0),
/// without `libm`: a Taylor series on `x / 2^j` squared back `j` times.
fn one_minus_exp_neg(x: f64) -> f64 {
    if x.is_nan() || x <= 0.0 {
        return 0.0;
    }
    if x >= 64.0 {
        return 1.0;
    }
    if x < 1e-4 {
        return x * (1.0 - x / 2.0 * (1.0 - x / 3.0));
    }
    let mut y = x;
    let mut halvings = 0;
    while y > 1e-3 {
        y /= 2.0;
        halvings += 1;
    }
    // e^(−y) − 1 for y ≤ 1e-3, to y^5 (the next term is below 1e-17 relative).
    let mut em1 = -y * (1.0 - y / 2.0 * (1.0 - y / 3.0 * (1.0 - y / 4.0 * (1.0 - y / 5.0))));
    // e^(−2y) − 1 = (e^(−y) − 1)(e^(−y) + 1), kept as "minus one" so nothing cancels.
    for _ in 0..halvings {
        em1 *= em1 + 2.0;
    }
    -em1
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;

    const DAY: u64 = 86_400;

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs()
    }

    /// The anchor and the defaults' figures, against an independent solution of the
    /// chain (Gauss-Jordan elimination in Python over exact rationals, same model; in double
    /// precision the elimination cancels to 2e-15 for 16+8, the sum here does not).
    #[test]
    fn the_model_gives_the_known_figures() {
        let year = YEAR_SECS;
        let p42 = loss_probability(4, 2, 90 * DAY, DAY, year);
        assert!(close(p42, 0.0271, 0.01), "4+2, one-day repair: {p42}");
        let p84 = loss_probability(8, 4, 90 * DAY, 3_600, year);
        assert!(close(p84, 7.33e-10, 0.01), "8+4, one-hour repair: {p84}");
        assert!(meets(p84, 9) && !meets(p84, 10));
        let p168 = loss_probability(16, 8, 90 * DAY, 3_600, year);
        assert!(close(p168, 9.95e-20, 0.01), "16+8, one-hour repair: {p168}");
        assert!(meets(p168, 11));
        let p168_day = loss_probability(16, 8, 90 * DAY, DAY, year);
        assert!(
            close(p168_day, 8.31e-9, 0.01),
            "16+8, one-day repair: {p168_day}"
        );
    }

    #[test]
    fn more_parity_faster_repair_and_longer_lives_each_help() {
        let p = |k, m, life, rep| loss_probability(k, m, life, rep, YEAR_SECS);
        let base = p(8, 4, 90 * DAY, 3_600);
        assert!(p(8, 5, 90 * DAY, 3_600) < base);
        assert!(p(8, 4, 90 * DAY, 600) < base);
        assert!(p(8, 4, 365 * DAY, 3_600) < base);
        assert!(
            p(16, 4, 90 * DAY, 3_600) > base,
            "more data shards, same parity: worse"
        );
    }

    #[test]
    fn edges_are_defined() {
        assert_eq!(loss_probability(0, 2, DAY, DAY, YEAR_SECS), 1.0);
        assert_eq!(loss_probability(4, 2, 0, DAY, YEAR_SECS), 1.0);
        // Instant repair: only losing m+1 shards at the same instant loses data, which
        // exponential lifetimes never do.
        assert_eq!(loss_probability(4, 2, DAY, 0, YEAR_SECS), 0.0);
        // A one-shard "code" with hour-long lives is surely gone within a year.
        assert!(loss_probability(1, 1, 3_600, 30 * DAY, YEAR_SECS) > 0.999_999);
        assert_eq!(loss_probability(4, 2, DAY, DAY, 0), 0.0);
    }

    #[test]
    fn one_minus_exp_neg_matches_std() {
        for x in [1e-12, 1e-6, 1e-4, 2e-4, 0.01, 0.5, 1.0, 3.0, 20.0, 63.0] {
            let want = -f64::exp_m1(-x);
            let got = one_minus_exp_neg(x);
            assert!(close(got, want, 1e-11), "x = {x}: {got} vs {want}");
        }
    }
}
