//! Shared helpers for the benches: a same-run reference timer for printing ratios.

use std::time::{Duration, Instant};

/// Median ns per call of `f` over `rounds` rounds of `iters` calls each. Used for the ratio
/// table printed after the criterion groups, so every ratio compares figures from the same run.
pub fn ns_per_call(rounds: usize, iters: u32, mut f: impl FnMut()) -> f64 {
    let mut samples: Vec<Duration> = (0..rounds)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iters {
                f();
            }
            t.elapsed()
        })
        .collect();
    samples.sort();
    samples[rounds / 2].as_nanos() as f64 / iters as f64
}
