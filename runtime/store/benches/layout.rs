//! Where shard bytes go: pack files (what the store does) against RocksDB's integrated blob
//! files (BlobDB) and plain inline values, each with the same contract: every shard durable
//! before the call that commits it returns.
//!
//! `cargo bench -p zhtp-store --bench layout` (set `ZHTP_BENCH_MIB`, default 256). For each
//! layout: write the shards (1 MiB each) and commit, read them all back verified, then churn:
//! delete the older half, write as much again, and compact, the way a node replaces content.
//! Bytes the process wrote to disk come from `/proc/self/io`, so write amplification includes
//! RocksDB's flushes and compactions.

use std::path::Path;
use std::time::Instant;

use rocksdb::{ColumnFamilyDescriptor, DB, DBCompressionType, Options, WriteBatch, WriteOptions};
use zhtp_store::{Cf, Config, Store};
use zhtp_types::Hash;

const SHARD: usize = 1 << 20;

fn shards(n: usize, seed: u64) -> Vec<(Hash, Vec<u8>)> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            let bytes: Vec<u8> = (0..SHARD)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x >> 24) as u8
                })
                .collect();
            (Hash(*blake3::hash(&bytes).as_bytes()), bytes)
        })
        .collect()
}

/// Bytes this process has caused to be written to storage so far.
fn disk_written() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("write_bytes:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

fn dir_size(p: &Path) -> u64 {
    std::fs::read_dir(p).map_or(0, |rd| {
        rd.filter_map(Result::ok)
            .map(|e| match e.metadata() {
                Ok(m) if m.is_dir() => dir_size(&e.path()),
                Ok(m) => m.len(),
                Err(_) => 0,
            })
            .sum()
    })
}

/// The three layouts behind one interface.
trait Layout {
    fn commit(&self, shards: &[(Hash, Vec<u8>)]);
    fn fetch(&self, hash: &Hash) -> Vec<u8>;
    fn remove(&self, hashes: &[Hash]);
    fn compact(&self);
}

impl Layout for Store {
    fn commit(&self, shards: &[(Hash, Vec<u8>)]) {
        let mut b = self.batch();
        for (h, bytes) in shards {
            self.put_shard(&mut b, h, bytes).unwrap();
        }
        self.write(b).unwrap();
    }
    fn fetch(&self, hash: &Hash) -> Vec<u8> {
        self.shard(hash).unwrap().unwrap()
    }
    fn remove(&self, hashes: &[Hash]) {
        let mut b = self.batch();
        for h in hashes {
            self.delete(&mut b, Cf::Shards, h.as_bytes()).unwrap();
        }
        self.write(b).unwrap();
    }
    fn compact(&self) {
        // Packs are append-only: nothing to compact (and nothing reclaimed, see the output).
    }
}

/// zhtp's store before pack files: shard values in RocksDB, written without the WAL and
/// flushed before the commit.
struct Rocks {
    db: DB,
}

impl Rocks {
    fn open(path: &Path, blob_files: bool) -> Self {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_compression_type(DBCompressionType::None);
        opts.increase_parallelism(2);
        let mut o = Options::default();
        o.set_compression_type(DBCompressionType::None);
        o.set_enable_blob_files(blob_files);
        o.set_min_blob_size(4096);
        o.set_blob_file_size(256 << 20);
        o.set_blob_compression_type(DBCompressionType::None);
        o.set_enable_blob_gc(true);
        o.set_write_buffer_size(32 << 20);
        let db = DB::open_cf_descriptors(&opts, path, [ColumnFamilyDescriptor::new("shards", o)])
            .unwrap();
        Self { db }
    }
    fn cf(&self) -> &rocksdb::ColumnFamily {
        self.db.cf_handle("shards").unwrap()
    }
}

impl Layout for Rocks {
    fn commit(&self, shards: &[(Hash, Vec<u8>)]) {
        let mut no_wal = WriteOptions::default();
        no_wal.disable_wal(true);
        for (h, bytes) in shards {
            let mut b = WriteBatch::default();
            b.put_cf(self.cf(), h.as_bytes(), bytes);
            self.db.write_opt(b, &no_wal).unwrap();
        }
        self.db.flush_cf(self.cf()).unwrap();
    }
    fn fetch(&self, hash: &Hash) -> Vec<u8> {
        self.db.get_cf(self.cf(), hash.as_bytes()).unwrap().unwrap()
    }
    fn remove(&self, hashes: &[Hash]) {
        let mut b = WriteBatch::default();
        for h in hashes {
            b.delete_cf(self.cf(), h.as_bytes());
        }
        let mut sync = WriteOptions::default();
        sync.set_sync(true);
        self.db.write_opt(b, &sync).unwrap();
    }
    fn compact(&self) {
        self.db
            .compact_range_cf(self.cf(), None::<&[u8]>, None::<&[u8]>);
    }
}

fn run(
    name: &str,
    dir: &Path,
    layout: &dyn Layout,
    first: &[(Hash, Vec<u8>)],
    second: &[(Hash, Vec<u8>)],
) {
    let bytes = (first.len() * SHARD) as f64;
    let w0 = disk_written();
    let t = Instant::now();
    // In groups of 6, the shards of one 4+2 segment.
    for group in first.chunks(6) {
        layout.commit(group);
    }
    let write = t.elapsed();
    let w1 = disk_written();
    let t = Instant::now();
    for (h, b) in first {
        let got = layout.fetch(h);
        assert!(blake3::hash(&got).as_bytes() == h.as_bytes() && got.len() == b.len());
    }
    let read = t.elapsed();
    let half: Vec<Hash> = first[..first.len() / 2].iter().map(|(h, _)| *h).collect();
    layout.remove(&half);
    for group in second.chunks(6) {
        layout.commit(group);
    }
    layout.compact();
    let w2 = disk_written();
    let live = (first.len() - half.len() + second.len()) * SHARD;
    println!(
        "{name:<28} {:>9.0} {:>9.0} {:>11.2}x {:>11.2}x {:>12.2}x",
        bytes / write.as_secs_f64() / 1e6,
        bytes / read.as_secs_f64() / 1e6,
        (w1 - w0) as f64 / bytes,
        (w2 - w0) as f64 / (bytes + (second.len() * SHARD) as f64),
        dir_size(dir) as f64 / live as f64,
    );
}

fn main() {
    // `cargo bench` passes `--bench`; there is nothing to filter.
    let mib: usize = std::env::var("ZHTP_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let first = shards(mib, 1);
    let second = shards(mib / 2, 2);
    println!(
        "{mib} MiB of 1 MiB shards, committed durably 6 at a time, then half deleted, {} MiB more written, compacted",
        mib / 2
    );
    println!(
        "{:<28} {:>9} {:>9} {:>12} {:>12} {:>13}",
        "layout", "write MB/s", "read MB/s", "disk/written", "after churn", "space / live"
    );
    let tmp = tempfile::tempdir().unwrap();
    let packs = tmp.path().join("packs");
    run(
        "pack files (zhtp)",
        &packs,
        &Store::open(&packs, Config::default()).unwrap(),
        &first,
        &second,
    );
    let blob = tmp.path().join("blobdb");
    run(
        "RocksDB blob files",
        &blob,
        &Rocks::open(&blob, true),
        &first,
        &second,
    );
    let inline = tmp.path().join("inline");
    run(
        "RocksDB inline values",
        &inline,
        &Rocks::open(&inline, false),
        &first,
        &second,
    );
}
