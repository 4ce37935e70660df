//! Groth16 storage proofs (issue 16): for 1, 10 and 32 samples of a 1 MiB shard in the devnet's
//! depth-8 tree, the constraints, the setup, prove and verify times, the proof and the proving
//! key's sizes; and what committing to a shard costs next to BLAKE3 over the same bytes,
//! measured in the same run. Anchors (arkworks 0.6 on this machine): a depth-20 binary Poseidon
//! path is 5,103 constraints, 185 ms to prove, 1.05 ms to verify; Codex takes about 4.4 s for
//! 10 samples.
//!
//! `cargo bench -p zhtp-proofs` (this crate does not link RocksDB: its release build alone takes
//! minutes, not the half hour of the workspace's).

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use zhtp_proofs::{Keys, Shape, Statement, Tree};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn bench(c: &mut Criterion) {
    let data: Vec<u8> = (0..1u32 << 20)
        .map(|i| i.wrapping_mul(2_654_435_761).to_le_bytes()[2])
        .collect();
    let depth = Shape::DEVNET.depth;

    let t = Instant::now();
    let tree = Tree::build(&data, depth).expect("1 MiB fits");
    let commit = t.elapsed();
    let t = Instant::now();
    let reference = blake3::hash(&data);
    let blake = t.elapsed();
    println!(
        "commit 1 MiB: {:.0} ms ({:.1} MB/s); BLAKE3 of the same bytes {:.2} ms: {:.0}x",
        ms(commit),
        1.048_576 / commit.as_secs_f64(),
        ms(blake),
        commit.as_secs_f64() / blake.as_secs_f64().max(1e-9),
    );
    std::hint::black_box(reference);

    let dir = tempfile::tempdir().expect("temp dir");
    println!(
        "| samples | constraints | setup | prove | verify | proof | proving key | prove vs Codex (4.4 s @ 10) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut group = c.benchmark_group("proofs");
    group.sample_size(10);
    for samples in [1u8, 10, 32] {
        let shape = Shape::new(depth, samples).expect("shape");
        let constraints = Keys::constraints(shape);
        let t = Instant::now();
        let keys = Keys::setup(shape).expect("setup");
        let setup = t.elapsed();
        let path = Keys::path(dir.path(), shape);
        keys.save(&path).expect("save");
        let pk_bytes = std::fs::metadata(&path).expect("key file").len();
        let st = Statement {
            commitment: tree.commitment(),
            nonce: [samples; 16],
            holder: [1; 32],
        };
        let proves: Vec<Duration> = (0..5)
            .map(|_| {
                let t = Instant::now();
                keys.prove(&st, &data, &tree).expect("prove");
                t.elapsed()
            })
            .collect();
        let proof = keys.prove(&st, &data, &tree).expect("prove");
        let verifies: Vec<Duration> = (0..50)
            .map(|_| {
                let t = Instant::now();
                keys.verify(&st, &proof).expect("verify");
                t.elapsed()
            })
            .collect();
        let prove = median(proves);
        println!(
            "| {samples} | {constraints} | {:.2} s | {:.0} ms | {:.2} ms | {} B | {:.1} MB | {:.1}x faster |",
            setup.as_secs_f64(),
            ms(prove),
            ms(median(verifies)),
            proof.bytes.len(),
            pk_bytes as f64 / 1e6,
            4.4 / prove.as_secs_f64(),
        );
        group.bench_function(format!("prove/{samples}"), |b| {
            b.iter(|| keys.prove(&st, &data, &tree).expect("prove"))
        });
        group.bench_function(format!("verify/{samples}"), |b| {
            b.iter(|| keys.verify(&st, &proof).expect("verify"))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
