//! The tier-policy plugin's rules (plugins/tier-policy/README.md), through the wasm host and
//! natively: the two must agree on every choice. Also the host's side of a tier call: the
//! self-check, requests out of range refused before the guest runs.

use zhtp_host::abi::durability::{YEAR_SECS, loss_probability, meets};
use zhtp_host::abi::tier::{Choice, Facts};
use zhtp_host::{CallError, Kind, TierPlugin};
use zhtp_tests::*;
use zhtp_types::StorageTier::{self, Archive, Cold, Hot, Warm};

const DAY: u64 = 86_400;

fn plugin() -> TierPlugin {
    TierPlugin::new(
        host()
            .load(Kind::Tier, zhtp_artifacts::TIER_POLICY)
            .expect("tier-policy loads"),
    )
}

/// A put of `size` bytes in `tier` on `nodes` nodes living 90 days, repaired in `repair` s.
fn put(size: u64, tier: StorageTier, nodes: u32, repair: u64) -> Facts {
    Facts::put(size, tier, nodes, 90 * DAY, repair)
}

/// A review of content stored as `tier` `k+m`, idle `idle` of its `age` seconds.
fn review(tier: StorageTier, k: u8, m: u8, age: u64, idle: u64, repair: u64) -> Facts {
    Facts {
        data: k,
        parity: m,
        age_secs: age,
        idle_secs: idle,
        reads_30d: u32::from(idle < 30 * DAY),
        ..put(1 << 30, tier, 40, repair)
    }
}

/// Chooses through wasm and natively, asserts they agree and returns `(tier, k, m)`.
fn choose(p: &TierPlugin, f: Facts) -> (StorageTier, u8, u8) {
    let wasm = p.choose(&f).expect("wasm choice");
    assert_eq!(tier_policy::choose(f).expect("native choice"), wasm);
    (wasm.tier, wasm.data, wasm.parity)
}

fn nines(k: u8, m: u8, repair: u64) -> f64 {
    -loss_probability(k, m, 90 * DAY, repair, YEAR_SECS).log10()
}

/// The README's table: with 40 nodes and one-hour repair every tier meets its target, warm
/// at 9 nines and archive at 11 or more, with the least overhead that does.
#[test]
fn a_large_network_gets_codes_that_meet_each_tiers_target() {
    let p = plugin();
    let want = [(Hot, 4, 3), (Warm, 8, 4), (Cold, 12, 5), (Archive, 16, 6)];
    for (tier, k, m) in want {
        assert_eq!(choose(&p, put(1 << 30, tier, 40, 3_600)), (tier, k, m));
    }
    assert!(nines(8, 4, 3_600) >= 9.0 && nines(16, 6, 3_600) >= 11.0);
    // One parity shard fewer would miss the target: the choice is the cheapest that holds.
    let p84 = loss_probability(8, 3, 90 * DAY, 3_600, YEAR_SECS);
    assert!(!meets(p84, 9), "8+3 already meets 9 nines: {p84}");
    // Slower repair needs more parity for the same target.
    assert_eq!(choose(&p, put(1 << 30, Warm, 40, DAY)), (Warm, 8, 8));
    assert_eq!(
        choose(&p, put(1 << 30, Archive, 40, DAY)),
        (Archive, 16, 10)
    );
}

#[test]
fn small_content_and_small_networks_get_narrower_codes() {
    let p = plugin();
    // 10 kB is cut in at most two 4 KiB-or-larger data shards.
    let (_, k, _) = choose(&p, put(10_000, Warm, 40, 3_600));
    assert!(k <= 2, "10 kB cut into {k} data shards");
    // Never more shards than nodes: six nodes, 3+3 whatever the tier.
    for tier in StorageTier::ALL {
        let (_, k, m) = choose(&p, put(1 << 30, tier, 6, 3_600));
        assert!(k + m <= 6, "{tier}: {k}+{m} on six nodes");
    }
    assert_eq!(choose(&p, put(1 << 30, Archive, 6, 3_600)), (Archive, 3, 3));
    // Three nodes: three copies.
    assert_eq!(choose(&p, put(3 << 20, Hot, 3, 3_600)), (Hot, 1, 2));
    // One node: both places on it, the only choice.
    assert_eq!(choose(&p, put(3 << 20, Hot, 1, 3_600)), (Hot, 1, 1));
}

#[test]
fn idle_content_cools_one_tier_at_a_time_and_busy_content_stays() {
    let p = plugin();
    let hour = 3_600;
    assert_eq!(
        choose(&p, review(Hot, 4, 3, 8 * DAY, 8 * DAY, hour)),
        (Warm, 8, 4)
    );
    assert_eq!(
        choose(&p, review(Warm, 8, 4, 31 * DAY, 31 * DAY, hour)),
        (Cold, 12, 5)
    );
    assert_eq!(
        choose(&p, review(Cold, 12, 5, 181 * DAY, 181 * DAY, hour)),
        (Archive, 16, 6)
    );
    // Archive is the coldest; it stays as stored.
    assert_eq!(
        choose(&p, review(Archive, 16, 6, 900 * DAY, 900 * DAY, hour)),
        (Archive, 16, 6)
    );
    // Read an hour ago: stays hot, and its code (meeting the target) is kept.
    assert_eq!(
        choose(&p, review(Hot, 4, 3, 100 * DAY, hour, hour)),
        (Hot, 4, 3)
    );
    // Idle just under the threshold: stays.
    assert_eq!(
        choose(&p, review(Warm, 8, 4, 60 * DAY, 29 * DAY, hour)),
        (Warm, 8, 4)
    );
}

#[test]
fn a_code_that_no_longer_meets_its_target_is_widened_once() {
    let p = plugin();
    // Stored warm 8+4 under one-hour repair; repair now takes a day: 8+4 misses 9 nines.
    assert!(!meets(loss_probability(8, 4, 90 * DAY, DAY, YEAR_SECS), 9));
    assert_eq!(choose(&p, review(Warm, 8, 4, DAY, 60, DAY)), (Warm, 8, 8));
    // The widened code holds: asked again, it stays.
    assert_eq!(choose(&p, review(Warm, 8, 8, DAY, 60, DAY)), (Warm, 8, 8));
    // A code a client chose that misses the target while nothing better fits stays as it is.
    let mut small = review(Warm, 4, 2, DAY, 60, DAY);
    small.nodes = 6;
    assert_eq!(choose(&p, small), (Warm, 4, 2));
}

#[test]
fn the_plugin_passes_its_self_check_and_out_of_range_requests_never_reach_it() {
    let p = plugin();
    let report = p.self_check_report();
    assert!(report.passed(), "{report:?}");
    assert_eq!(report.calls.len(), 5);
    // Refused by the host, named, without a call.
    let mut bad = put(1, Warm, 0, 3_600);
    assert!(matches!(
        p.choose(&bad),
        Err(CallError::InvalidRequest(why)) if why.contains("nodes")
    ));
    bad.nodes = 4;
    bad.idle_secs = 5;
    assert!(matches!(
        p.choose(&bad),
        Err(CallError::InvalidRequest(why)) if why.contains("put")
    ));
}

/// The host checks every answer against the request: a plugin that asks for more shards than
/// nodes is refused by name. (A WAT guest, since no SDK plugin would be so careless.)
#[test]
fn an_answer_wider_than_the_network_is_refused() {
    let wat = r#"(module
        (import "zhtp:env/v1" "output_set" (func $out (param i32 i32) (result i32)))
        (memory (export "memory") 1)
        (data (i32.const 0) "\01\08\04")
        (func (export "zhtp_abi_v1"))
        (func (export "tier_choose") (result i32)
            (drop (call $out (i32.const 0) (i32.const 3)))
            (i32.const 0)))"#;
    let p = TierPlugin::new(
        host()
            .load(Kind::Tier, &wat::parse_str(wat).unwrap())
            .unwrap(),
    );
    assert_eq!(
        p.choose(&put(1 << 30, Warm, 40, 3_600)).unwrap(),
        Choice {
            tier: Warm,
            data: 8,
            parity: 4
        }
    );
    assert!(matches!(
        p.choose(&put(1 << 30, Warm, 6, 3_600)),
        Err(CallError::BadOutput(why)) if why.contains("nodes")
    ));
    // Its first failure: the archive put answered warm (a put keeps the client's tier).
    assert!(
        matches!(p.self_check(), Err(zhtp_host::LoadError::SelfCheck(why)) if why.starts_with("large-archive-put"))
    );
}
