//! What placing a put costs: one tier choice through the wasm tier plugin (pooled instance,
//! strict codec, output checks) against `tier-policy` called natively, and the durability model
//! the choice runs (one loss probability) against an f64 division; plus re-coding a 4 MiB
//! segment for a migration (4+2 to 8+4) against copying its bytes. Prints a ratio table
//! measured in the same run.
//!
//! `cargo bench -p zhtp-benches --bench tier_choice`

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group};
use zhtp_benches::ns_per_call;
use zhtp_content::{CodeKind, CodeParams, Encoder, EncryptionLevel, Params, recode};
use zhtp_host::abi::durability::{YEAR_SECS, loss_probability};
use zhtp_host::abi::tier::Facts;
use zhtp_host::{Host, Kind, Limits, TierPlugin};
use zhtp_types::StorageTier;

/// A 1 GiB archive put on 40 nodes living 90 days, one-hour repair: the widest search.
fn put() -> Facts {
    Facts::put(1 << 30, StorageTier::Archive, 40, 90 * 86_400, 3_600)
}

fn plugin() -> TierPlugin {
    let host = Host::new(Limits::default()).unwrap();
    TierPlugin::new(host.load(Kind::Tier, zhtp_artifacts::TIER_POLICY).unwrap())
}

/// A 4 MiB segment coded 4+2, and its shards.
fn segment() -> (zhtp_content::SegmentInfo, Vec<Option<Vec<u8>>>) {
    let params = Params {
        tier: StorageTier::Warm,
        encryption: EncryptionLevel::None,
        code: CodeParams::new(CodeKind::ReedSolomonSimd, 4, 2).unwrap(),
        segment_size: 4 << 20,
    };
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let plain: Vec<u8> = (0..4 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let seg = Encoder::new(params, None)
        .unwrap()
        .encode_segment(0, &plain)
        .unwrap();
    let shards = seg.shards().map(|(_, b)| Some(b.to_vec())).collect();
    (seg.info, shards)
}

fn benches(c: &mut Criterion) {
    let p = plugin();
    let f = put();
    c.bench_function("tier/wasm", |b| b.iter(|| p.choose(black_box(&f)).unwrap()));
    c.bench_function("tier/native", |b| {
        b.iter(|| tier_policy::choose(black_box(f.clone())).unwrap())
    });
}

fn summary() {
    let p = plugin();
    let f = put();
    assert_eq!(
        p.choose(&f).unwrap(),
        tier_policy::choose(f.clone()).unwrap()
    );
    let native = ns_per_call(15, 2_000, || {
        black_box(tier_policy::choose(black_box(f.clone())).unwrap());
    });
    let wasm = ns_per_call(15, 2_000, || {
        black_box(p.choose(black_box(&f)).unwrap());
    });
    let model = ns_per_call(15, 200_000, || {
        black_box(loss_probability(
            black_box(16),
            black_box(6),
            90 * 86_400,
            3_600,
            YEAR_SECS,
        ));
    });
    let division = ns_per_call(15, 200_000, || {
        black_box(black_box(365.0f64) / black_box(90.0f64));
    });
    let (info, shards) = segment();
    let from = CodeParams::new(CodeKind::ReedSolomonSimd, 4, 2).unwrap();
    let to = CodeParams::new(CodeKind::ReedSolomonSimd, 8, 4).unwrap();
    let recode_ns = ns_per_call(7, 5, || {
        let mut slots = shards.clone();
        black_box(recode(0, &info, from, &mut slots, to).unwrap());
    });
    let copy_ns = ns_per_call(7, 5, || {
        black_box(shards.clone());
    });
    println!("\ntier choice (1 GiB archive put, 40 nodes)   ns/call   ratio");
    println!("native tier_policy::choose              {native:>10.0}   1.0x native");
    println!(
        "through the wasm plugin                 {wasm:>10.0}   {:.1}x native",
        wasm / native
    );
    println!(
        "one loss probability (16+6)             {model:>10.1}   {:.1}x an f64 division ({division:.1} ns)",
        model / division
    );
    println!("\nmigration of one 4 MiB segment, 4+2 -> 8+4          ms   ratio");
    println!(
        "copying its 6 shards (reference)          {:>10.2}   1.0x",
        copy_ns / 1e6
    );
    println!(
        "recode (hash check, rebuild, split, parity, hash) {:>10.2}   {:.1}x the copy",
        recode_ns / 1e6,
        recode_ns / copy_ns
    );
}

criterion_group! {
    name = group;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    targets = benches
}

fn main() {
    group();
    Criterion::default().configure_from_args().final_summary();
    summary();
}
