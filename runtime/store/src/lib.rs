//! The zhtp embedded store: RocksDB, and the only crate that links it.
//!
//! One column family per kind of record ([`Cf`]). Writes that belong together go in one
//! [`Batch`], applied atomically; with `sync` (the default) a write is on disk when it returns,
//! and so is every write before it (RocksDB's WAL is sequential).
//!
//! Shards are large values (hundreds of KiB to MiB). Their column family uses RocksDB's
//! integrated blob files (BlobDB): values go to blob files at flush and compaction moves only
//! small references, so shard bytes are not rewritten level after level. Shards are
//! content-addressed (key = BLAKE3 of the value) and every read is verified against the key.
//!
//! zhtp compresses content itself (LZ4 before encryption), so RocksDB's compression is off.

use std::path::{Path, PathBuf};

use rocksdb::{
    BlockBasedOptions, ColumnFamilyDescriptor, DB, DBCompressionType, IteratorMode, Options,
    WriteBatch, WriteOptions,
};
use thiserror::Error;
use zhtp_types::Hash;

/// Store errors.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// Another process has the data directory open.
    #[error("{0} is in use by another zhtp process (RocksDB lock held)")]
    Locked(PathBuf),
    /// The disk is full.
    #[error("no space left on the device holding {0}")]
    DiskFull(PathBuf),
    /// A shard's bytes do not hash to its key.
    #[error("shard {0} is corrupt (its bytes do not match its BLAKE3 hash)")]
    Corrupt(Hash),
    /// Any other RocksDB error.
    #[error("store: {0}")]
    Db(String),
}

fn db_err(path: &Path) -> impl Fn(rocksdb::Error) -> Error + '_ {
    move |e| {
        let msg = e.to_string();
        if msg.contains("lock") || msg.contains("Resource temporarily unavailable") {
            Error::Locked(path.to_owned())
        } else if msg.contains("No space left") || msg.contains("NoSpace") {
            Error::DiskFull(path.to_owned())
        } else {
            Error::Db(msg)
        }
    }
}

/// Column families.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cf {
    /// Shard bytes by BLAKE3 (blob files).
    Shards,
    /// Manifests by content hash.
    Manifests,
    /// Secondary indexes (tags, names) for listing and search.
    Index,
    /// Content keys by content hash. Local secrets, never sent anywhere.
    Keys,
    /// DHT records (for the network).
    Records,
    /// The escrow ledger.
    Ledger,
    /// Contract code and state.
    Contracts,
}

impl Cf {
    /// Every column family.
    pub const ALL: [Cf; 7] = [
        Cf::Shards,
        Cf::Manifests,
        Cf::Index,
        Cf::Keys,
        Cf::Records,
        Cf::Ledger,
        Cf::Contracts,
    ];

    /// The RocksDB name.
    pub const fn name(self) -> &'static str {
        match self {
            Cf::Shards => "shards",
            Cf::Manifests => "manifests",
            Cf::Index => "index",
            Cf::Keys => "keys",
            Cf::Records => "records",
            Cf::Ledger => "ledger",
            Cf::Contracts => "contracts",
        }
    }
}

/// Store configuration.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// fsync the WAL on every write (durable on power loss). Without it, writes survive a
    /// process crash but not an OS crash.
    pub sync: bool,
    /// Keep shards in blob files (BlobDB). Off stores them inline in the LSM tree, where every
    /// compaction rewrites them; kept as an option only to measure the difference.
    pub blob_files: bool,
    /// Shards at least this large go to blob files.
    pub min_blob_size: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            sync: true,
            blob_files: true,
            min_blob_size: 4096,
        }
    }
}

impl Config {
    /// Sets `blob_files`.
    pub fn with_blob_files(mut self, on: bool) -> Self {
        self.blob_files = on;
        self
    }

    /// Sets `sync`.
    pub fn with_sync(mut self, sync: bool) -> Self {
        self.sync = sync;
        self
    }
}

/// A set of writes applied atomically by [`Store::write`].
#[derive(Default)]
pub struct Batch {
    inner: WriteBatch,
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Batch({} ops)", self.inner.len())
    }
}

/// One `(key, value)` pair read back from a column family.
pub type Entry = (Box<[u8]>, Box<[u8]>);

/// The embedded database of a node.
pub struct Store {
    db: DB,
    path: PathBuf,
    sync: WriteOptions,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating if needed) the store at `path`. Fails with [`Error::Locked`] when another
    /// process has it open.
    pub fn open(path: impl AsRef<Path>, config: Config) -> Result<Self, Error> {
        let path = path.as_ref().to_owned();
        std::fs::create_dir_all(&path)
            .map_err(|e| Error::Db(format!("{}: {e}", path.display())))?;
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_compression_type(DBCompressionType::None);
        opts.increase_parallelism(2);
        opts.set_max_background_jobs(2);
        opts.set_keep_log_file_num(4);
        let cfs = Cf::ALL.iter().map(|cf| {
            let mut o = Options::default();
            o.set_compression_type(DBCompressionType::None);
            if *cf == Cf::Shards {
                o.set_enable_blob_files(config.blob_files);
                o.set_min_blob_size(config.min_blob_size);
                o.set_blob_file_size(256 << 20);
                o.set_blob_compression_type(DBCompressionType::None);
                o.set_enable_blob_gc(true);
                // Shard values sit in the memtable until a flush moves them to a blob file:
                // 32 MiB keeps memory modest while flushes stay large.
                o.set_write_buffer_size(32 << 20);
                let mut t = BlockBasedOptions::default();
                t.set_bloom_filter(10.0, false);
                o.set_block_based_table_factory(&t);
            }
            ColumnFamilyDescriptor::new(cf.name(), o)
        });
        let db = DB::open_cf_descriptors(&opts, &path, cfs).map_err(db_err(&path))?;
        let mut sync = WriteOptions::default();
        sync.set_sync(config.sync);
        Ok(Self { db, path, sync })
    }

    /// Where the store lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn cf(&self, cf: Cf) -> Result<&rocksdb::ColumnFamily, Error> {
        self.db
            .cf_handle(cf.name())
            .ok_or_else(|| Error::Db(format!("column family {} missing", cf.name())))
    }

    /// A new batch.
    pub fn batch(&self) -> Batch {
        Batch::default()
    }

    /// Adds a put to `batch`.
    pub fn put(&self, batch: &mut Batch, cf: Cf, key: &[u8], value: &[u8]) -> Result<(), Error> {
        batch.inner.put_cf(self.cf(cf)?, key, value);
        Ok(())
    }

    /// Adds a delete to `batch`.
    pub fn delete(&self, batch: &mut Batch, cf: Cf, key: &[u8]) -> Result<(), Error> {
        batch.inner.delete_cf(self.cf(cf)?, key);
        Ok(())
    }

    /// Applies `batch` atomically (durably when configured with `sync`).
    pub fn write(&self, batch: Batch) -> Result<(), Error> {
        self.db
            .write_opt(batch.inner, &self.sync)
            .map_err(db_err(&self.path))
    }

    /// Applies a batch of shards without the write-ahead log: shard bytes are written once, to
    /// blob files at flush, instead of twice (WAL, then blob file). They are not durable until
    /// [`Store::flush_shards`]; callers flush before committing anything that names them, so a
    /// crash can only lose shards that nothing references yet.
    pub fn write_shards(&self, batch: Batch) -> Result<(), Error> {
        let mut o = WriteOptions::default();
        o.disable_wal(true);
        self.db
            .write_opt(batch.inner, &o)
            .map_err(db_err(&self.path))
    }

    /// Makes every shard written so far durable (flushes the shards' memtable to synced blob
    /// and table files).
    pub fn flush_shards(&self) -> Result<(), Error> {
        self.db
            .flush_cf(self.cf(Cf::Shards)?)
            .map_err(db_err(&self.path))
    }

    /// Reads one value.
    pub fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        self.db
            .get_cf(self.cf(cf)?, key)
            .map_err(db_err(&self.path))
    }

    /// Whether a key exists.
    pub fn contains(&self, cf: Cf, key: &[u8]) -> Result<bool, Error> {
        Ok(self
            .db
            .get_pinned_cf(self.cf(cf)?, key)
            .map_err(db_err(&self.path))?
            .is_some())
    }

    /// Adds the shards to `batch`, keyed by their hash.
    pub fn put_shard(&self, batch: &mut Batch, hash: &Hash, bytes: &[u8]) -> Result<(), Error> {
        self.put(batch, Cf::Shards, hash.as_bytes(), bytes)
    }

    /// Reads a shard and checks it against its hash: `Ok(None)` when absent,
    /// [`Error::Corrupt`] when its bytes are wrong.
    pub fn shard(&self, hash: &Hash) -> Result<Option<Vec<u8>>, Error> {
        let Some(bytes) = self.get(Cf::Shards, hash.as_bytes())? else {
            return Ok(None);
        };
        if blake3::hash(&bytes).as_bytes() != hash.as_bytes() {
            return Err(Error::Corrupt(*hash));
        }
        Ok(Some(bytes))
    }

    /// Every `(key, value)` of `cf` whose key starts with `prefix`, in key order.
    pub fn scan(
        &self,
        cf: Cf,
        prefix: &[u8],
    ) -> Result<impl Iterator<Item = Result<Entry, Error>> + '_, Error> {
        let prefix = prefix.to_vec();
        let mode = IteratorMode::From(&prefix, rocksdb::Direction::Forward);
        let it = self.db.iterator_cf(self.cf(cf)?, mode);
        let path = self.path.clone();
        Ok(it
            .map(move |r| r.map_err(db_err(&path)))
            .take_while(move |r| r.as_ref().map_or(true, |(k, _)| k.starts_with(&prefix))))
    }

    /// Flushes memtables to disk (for benchmarks and shutdown).
    pub fn flush(&self) -> Result<(), Error> {
        for cf in Cf::ALL {
            self.db.flush_cf(self.cf(cf)?).map_err(db_err(&self.path))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(b: &[u8]) -> Hash {
        Hash(*blake3::hash(b).as_bytes())
    }

    #[test]
    fn reopen_keeps_everything_and_batches_are_atomic() {
        let dir = tempfile::tempdir().unwrap();
        let shard = vec![7u8; 100_000];
        {
            let s = Store::open(dir.path(), Config::default()).unwrap();
            let mut b = s.batch();
            s.put_shard(&mut b, &h(&shard), &shard).unwrap();
            s.put(&mut b, Cf::Manifests, b"m", b"manifest").unwrap();
            s.write(b).unwrap();
        }
        let s = Store::open(dir.path(), Config::default()).unwrap();
        assert_eq!(s.shard(&h(&shard)).unwrap(), Some(shard));
        assert_eq!(
            s.get(Cf::Manifests, b"m").unwrap().as_deref(),
            Some(&b"manifest"[..])
        );
        assert_eq!(s.shard(&h(b"absent")).unwrap(), None);
    }

    #[test]
    fn a_second_open_reports_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let _s = Store::open(dir.path(), Config::default()).unwrap();
        let err = Store::open(dir.path(), Config::default()).unwrap_err();
        assert!(matches!(err, Error::Locked(_)), "{err:?}");
        assert!(err.to_string().contains("in use by another zhtp process"));
    }

    #[test]
    fn a_corrupt_shard_is_detected_by_its_hash() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), Config::default()).unwrap();
        let good = vec![1u8; 5000];
        let mut b = s.batch();
        // Store other bytes under the good bytes' hash: what disk rot looks like to a reader.
        s.put_shard(&mut b, &h(&good), &[2u8; 5000]).unwrap();
        s.write(b).unwrap();
        assert!(matches!(s.shard(&h(&good)), Err(Error::Corrupt(x)) if x == h(&good)));
    }

    #[test]
    fn scan_by_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), Config::default()).unwrap();
        let mut b = s.batch();
        for k in ["tag/a/1", "tag/a/2", "tag/b/1", "name/x"] {
            s.put(&mut b, Cf::Index, k.as_bytes(), b"").unwrap();
        }
        s.write(b).unwrap();
        let keys: Vec<_> = s
            .scan(Cf::Index, b"tag/a/")
            .unwrap()
            .map(|r| String::from_utf8(r.unwrap().0.to_vec()).unwrap())
            .collect();
        assert_eq!(keys, ["tag/a/1", "tag/a/2"]);
    }
}
