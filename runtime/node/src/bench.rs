//! Throughput of the local pipeline against same-run references: what `zhtp bench pipeline`
//! and `benches/pipeline.rs` print.

use std::hint::black_box;
use std::time::{Duration, Instant};

use zhtp_content::{CodeKind, CodeParams, EncryptionLevel};
use zhtp_store::Config;
use zhtp_types::StorageTier;

use crate::local::{LocalNode, PutOptions};

/// Mixed data: a third compressible text, two thirds random (xorshift).
pub fn mixed_data(len: usize) -> Vec<u8> {
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

/// Durable single-node put and get of `mib` MiB of mixed data for each encryption level and for
/// 4+2 and 16+8, plus one put with shards inline (no blob files), next to memcpy and BLAKE3 of
/// the same bytes. Prints a table; `dir` holds the temporary stores.
pub fn pipeline(mib: usize, dir: &std::path::Path) -> Result<(), crate::local::Error> {
    let size = mib << 20;
    let input = mixed_data(size);
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
        "{mib} MiB of mixed data (1/3 text, 2/3 random), durable (fsync at commit), {} threads",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!("{:<44} {:>10} {:>12}", "operation", "MB/s", "vs memcpy");
    let row = |name: &str, d: Duration| {
        println!(
            "{name:<44} {:>10.0} {:>11.3}x",
            size as f64 / d.as_secs_f64() / 1e6,
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
    // Warm-up (allocator arenas, page cache, thread start-up), not timed.
    {
        let warm = dir.join("bench-warm");
        let node = LocalNode::open(&warm, Config::default())?;
        let n = input.len().min(32 << 20);
        node.put(
            &mut &input[..n],
            PutOptions::new(StorageTier::Warm),
            &|_| {},
        )?;
        drop(node);
        let _ = std::fs::remove_dir_all(&warm);
    }
    for (i, (name, level, k, m, blobs)) in cases.into_iter().enumerate() {
        let store_dir = dir.join(format!("bench-{i}"));
        let node = LocalNode::open(&store_dir, Config::default().with_blob_files(blobs))?;
        let mut opts = PutOptions::new(StorageTier::Warm);
        opts.encryption = level;
        opts.code = CodeParams::new(CodeKind::ReedSolomonSimd, k, m)?;
        let t = Instant::now();
        let manifest = node.put(&mut &input[..], opts, &|_| {})?;
        let put = t.elapsed();
        let t = Instant::now();
        node.get(&manifest.content_hash, &mut std::io::sink(), &|_| {})?;
        let get = t.elapsed();
        let layout = if blobs { "" } else { ", shards inline" };
        row(&format!("put {name} {k}+{m}{layout}"), put);
        row(&format!("get {name} {k}+{m}{layout}"), get);
        drop(node);
        let _ = std::fs::remove_dir_all(&store_dir);
    }
    Ok(())
}
