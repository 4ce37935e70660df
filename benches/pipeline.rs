//! Durable single-node put and get of 256 MiB of mixed data (a third compressible text, two
//! thirds random) through the whole pipeline into RocksDB, for each encryption level and for
//! 4+2 and 16+8, next to memcpy and BLAKE3 of the same bytes measured in the same run. Also
//! put with shards inline in the LSM tree instead of blob files, to show that choice.
//!
//! `cargo bench -p zhtp-benches --bench pipeline` (ZHTP_BENCH_MIB to change the size)

use std::hint::black_box;
use std::time::{Duration, Instant};

use zhtp::local::{LocalNode, PutOptions};
use zhtp_content::{CodeKind, CodeParams, EncryptionLevel};
use zhtp_store::Config;
use zhtp_types::StorageTier;

fn data(len: usize) -> Vec<u8> {
    let mut x = 0x2545f4914f6cdd1du64;
    (0..len)
        .map(|i| {
            if (i / 65536) % 3 == 0 {
                b"the quick brown fox stores shards. "[i % 35]
            } else {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            }
        })
        .collect()
}

fn best_of(n: usize, mut f: impl FnMut() -> Duration) -> Duration {
    (0..n).map(|_| f()).min().unwrap_or_default()
}

fn mbps(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e6
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` from criterion-style runners
    }
    let mib: usize = std::env::var("ZHTP_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let size = mib << 20;
    let input = data(size);
    let mut copy = vec![0u8; size];
    let memcpy = best_of(3, || {
        let t = Instant::now();
        copy.copy_from_slice(black_box(&input));
        black_box(&copy);
        t.elapsed()
    });
    drop(copy);
    let hash = best_of(3, || {
        let t = Instant::now();
        black_box(blake3::hash(black_box(&input)));
        t.elapsed()
    });
    println!(
        "{mib} MiB, mixed data, durable (fsync at commit), {} threads",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!("{:<40} {:>10} {:>12}", "operation", "MB/s", "vs memcpy");
    let row = |name: &str, d: Duration| {
        println!(
            "{name:<40} {:>10.0} {:>11.3}x",
            mbps(size, d),
            memcpy.as_secs_f64() / d.as_secs_f64()
        );
    };
    row("memcpy (reference)", memcpy);
    row("blake3 hash, 1 thread (reference)", hash);

    let cases = [
        ("none", EncryptionLevel::None, 4, 2, true),
        ("standard", EncryptionLevel::Standard, 4, 2, true),
        ("none", EncryptionLevel::None, 16, 8, true),
        ("standard", EncryptionLevel::Standard, 16, 8, true),
        ("none", EncryptionLevel::None, 4, 2, false),
    ];
    for (name, level, k, m, blobs) in cases {
        let dir = tempfile::tempdir().unwrap();
        let node = LocalNode::open(dir.path(), Config::default().with_blob_files(blobs)).unwrap();
        let mut opts = PutOptions::new(StorageTier::Warm);
        opts.encryption = level;
        opts.code = CodeParams::new(CodeKind::ReedSolomonSimd, k, m).unwrap();
        let t = Instant::now();
        let manifest = node.put(&mut &input[..], opts, &|_| {}).unwrap();
        let put = t.elapsed();
        let t = Instant::now();
        let report = node
            .get(&manifest.content_hash, &mut std::io::sink(), &|_| {})
            .unwrap();
        let get = t.elapsed();
        assert_eq!(report.bytes, size as u64);
        let layout = if blobs {
            ""
        } else {
            ", shards inline (no blob files)"
        };
        row(&format!("put {name} {k}+{m}{layout}"), put);
        row(&format!("get {name} {k}+{m}{layout}"), get);
    }
}
