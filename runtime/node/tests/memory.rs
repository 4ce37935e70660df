//! Streaming: putting and getting a large file needs a few segments of memory, not the file.
//! Alone in its own test binary so the children's peak RSS is only this test's.

#[path = "support/cli.rs"]
mod support;
use support::{owner_in, zhtp, zhtp_owner};

use std::path::Path;

/// Largest resident set of any waited-for child so far, in bytes.
fn children_peak_rss() -> u64 {
    // SAFETY: getrusage only writes the struct we pass.
    #[allow(unsafe_code)]
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut u);
        u
    };
    usage.ru_maxrss as u64 * 1024
}

/// Writes `size` bytes of random data (BLAKE3 XOF: fast even in a debug test build).
fn random_file(path: &Path, size: usize, seed: u8) {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut xof = blake3::Hasher::new().update(&[seed]).finalize_xof();
    let mut block = vec![0u8; 1 << 20];
    for _ in 0..size >> 20 {
        xof.fill(&mut block);
        f.write_all(&block).unwrap();
    }
}

fn put_get(d: &Path, name: &str, size: usize) {
    let input = d.join(name);
    random_file(&input, size, size as u8);
    let out = zhtp(d, &["put", input.to_str().unwrap(), "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let hash = v["content_hash"].as_str().unwrap().to_owned();
    let output = d.join(format!("{name}.back"));
    let out = zhtp_owner(d, &["get", &hash, "-o", output.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::metadata(&output).unwrap().len(), size as u64);
}

#[test]
fn memory_does_not_grow_with_the_file_size() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Encrypted (the default), for the keystore's only identity.
    owner_in(d);
    put_get(d, "small.bin", 32 << 20);
    let small = children_peak_rss();
    put_get(d, "big.bin", 256 << 20);
    let big = children_peak_rss();
    eprintln!(
        "peak RSS of zhtp put/get: {} MiB for 32 MiB, {} MiB for 256 MiB",
        small >> 20,
        big >> 20
    );
    // 8x the data must not cost more than a fixed amount of extra memory. Shard bytes go to
    // pack files with direct I/O (no page cache, no RocksDB memtable), and the segments in
    // flight (a few per worker) do not depend on the file size; what can grow is RocksDB's
    // memtable of shard locations (one small entry per shard), the allocator's retained
    // buffers of the four encode workers, and the output side of the get.
    assert!(
        big < small + (96 << 20),
        "{} MiB vs {} MiB",
        big >> 20,
        small >> 20
    );
    assert!(
        big < 256 << 20,
        "peak RSS {} MiB for a 256 MiB file",
        big >> 20
    );
}
