//! The default tier policy as a zhtp tier plugin (`host/SPEC.md` section 13): the tier and
//! erasure code of new content, and migrations of idle content to colder tiers. See README.md
//! for the table; `tests/tier_policy.rs` runs it natively and through wasm.
#![no_std]

use zhtp_sdk::tier::durability::{YEAR_SECS, loss_probability, meets};
use zhtp_sdk::tier::{Choice, Facts};
use zhtp_sdk::types::StorageTier;

/// Nines of durability per segment per year each tier aims at: hot, warm, cold, archive.
pub const TARGET_NINES: [u32; 4] = [6, 9, 10, 11];
/// Data shards per segment each tier prefers: few (fast reads) for hot, many (little
/// overhead for the same durability) for archive.
pub const PREFERRED_DATA: [u8; 4] = [4, 8, 12, 16];
/// Smallest data shard worth a node of its own: content is never cut finer than this.
pub const MIN_SHARD: u64 = 4 << 10;
/// Idle time after which content moves one tier colder: hot, warm, cold (archive stays).
pub const IDLE_SECS: [u64; 3] = [7 * 86_400, 30 * 86_400, 180 * 86_400];

/// Chooses a content's tier and code.
#[zhtp_sdk::plugin(tier)]
pub fn choose(f: Facts) -> Result<Choice, &'static str> {
    if f.is_put() {
        // The client's class stands; the code follows from it, the size and the network.
        return Ok(code_for(f.tier, &f));
    }
    let tier = cooler(f.tier, f.idle_secs);
    let current = Choice {
        tier: f.tier,
        data: f.data,
        parity: f.parity,
    };
    if tier == f.tier {
        // Re-code only when the code no longer keeps the tier's target under today's churn
        // and another one would: a network too small for any code is not a reason to move.
        let target = TARGET_NINES[index(tier)];
        let proposed = code_for(tier, &f);
        if meets(p(f.data, f.parity, &f), target)
            || !meets(p(proposed.data, proposed.parity, &f), target)
        {
            return Ok(current);
        }
        return Ok(proposed);
    }
    Ok(code_for(tier, &f))
}

/// One tier colder when the content has been idle that long.
fn cooler(tier: StorageTier, idle_secs: u64) -> StorageTier {
    match tier {
        StorageTier::Hot if idle_secs >= IDLE_SECS[0] => StorageTier::Warm,
        StorageTier::Warm if idle_secs >= IDLE_SECS[1] => StorageTier::Cold,
        StorageTier::Cold if idle_secs >= IDLE_SECS[2] => StorageTier::Archive,
        t => t,
    }
}

fn index(t: StorageTier) -> usize {
    match t {
        StorageTier::Hot => 0,
        StorageTier::Warm => 1,
        StorageTier::Cold => 2,
        StorageTier::Archive => 3,
    }
}

fn p(data: u8, parity: u8, f: &Facts) -> f64 {
    loss_probability(data, parity, f.lifetime_secs, f.repair_secs, YEAR_SECS)
}

/// Most parity shards for `k` data shards in `room` places: at most as many as data shards
/// (the content stored at most twice over), or two (three copies of content too small to cut).
fn most_parity(k: u8, room: u8) -> u8 {
    (room - k).min(k.max(2))
}

/// The code with the least storage overhead that keeps `tier`'s target with at most one shard
/// per known node and [`most_parity`]; when none does, the most durable one of those.
pub fn code_for(tier: StorageTier, f: &Facts) -> Choice {
    let t = index(tier);
    // At least 2 places even in a one-node network (both on that node: no better choice).
    let room = f.nodes.clamp(2, u32::from(Choice::MAX_SHARDS)) as u8;
    let by_size = (f.size / MIN_SHARD).clamp(1, 255) as u8;
    let top = PREFERRED_DATA[t].min(by_size).min(room - 1);
    let target = TARGET_NINES[t];
    // Least overhead (k + m) / k among codes meeting the target; p falls as m grows, so the
    // fewest parity shards for each k is found by bisection.
    let mut best: Option<(u8, u8)> = None;
    for k in (1..=top).rev() {
        let most = most_parity(k, room);
        if !meets(p(k, most, f), target) {
            continue;
        }
        let (mut lo, mut hi) = (1u8, most);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if meets(p(k, mid, f), target) {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        let better = best.is_none_or(|(bk, bm)| {
            // (k + lo) / k < (bk + bm) / bk, without division.
            (u32::from(k) + u32::from(lo)) * u32::from(bk)
                < (u32::from(bk) + u32::from(bm)) * u32::from(k)
        });
        if better {
            best = Some((k, lo));
        }
    }
    let (data, parity) = best.unwrap_or_else(|| {
        // Nothing meets the target: every place used, the split with the least loss.
        (1..=top)
            .map(|k| (k, most_parity(k, room)))
            .min_by(|a, b| p(a.0, a.1, f).total_cmp(&p(b.0, b.1, f)))
            .unwrap_or((1, 1))
    });
    Choice { tier, data, parity }
}
