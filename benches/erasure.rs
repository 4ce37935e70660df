//! Reed-Solomon side by side: reed-solomon-erasure (pure Rust, portable) vs reed-solomon-simd
//! (runtime SIMD dispatch), encode and reconstruct, 4+2 and 16+8, 1 MiB shards. Throughput is
//! in data bytes. `cargo bench -p zhtp-benches --bench erasure`

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use zhtp_content::{CodeKind, CodeParams, erasure_code};

const SHARD: usize = 1 << 20;

fn bench(c: &mut Criterion) {
    for (k, m) in [(4u8, 2u8), (16, 8)] {
        let data: Vec<Vec<u8>> = (0..k)
            .map(|i| {
                (0..SHARD)
                    .map(|j| (j as u8).wrapping_mul(31).wrapping_add(i))
                    .collect()
            })
            .collect();
        let refs: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
        let mut g = c.benchmark_group(format!("rs_{k}+{m}"));
        g.throughput(Throughput::Bytes((k as usize * SHARD) as u64));
        for kind in [CodeKind::ReedSolomonErasure, CodeKind::ReedSolomonSimd] {
            let code = erasure_code(CodeParams::new(kind, k, m).unwrap()).unwrap();
            g.bench_function(format!("encode/{}", kind.name()), |b| {
                b.iter(|| code.encode(black_box(&refs)).unwrap())
            });
            let parity = code.encode(&refs).unwrap();
            let full: Vec<Option<Vec<u8>>> = data.iter().cloned().chain(parity).map(Some).collect();
            g.bench_function(format!("reconstruct_{m}_data_lost/{}", kind.name()), |b| {
                b.iter_batched(
                    || {
                        let mut s = full.clone();
                        for slot in s.iter_mut().take(m as usize) {
                            *slot = None;
                        }
                        s
                    },
                    |mut s| code.reconstruct(&mut s).unwrap(),
                    criterion::BatchSize::LargeInput,
                )
            });
        }
        g.finish();
    }
}

criterion_group! {
    name = group;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = bench
}
criterion_main!(group);
