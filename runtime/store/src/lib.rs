//! The zhtp embedded store: RocksDB, and the only crate that links it.
//!
//! One column family per kind of record ([`Cf`]). Writes that belong together go in one
//! [`Batch`], applied atomically; with `sync` (the default) a write is on disk when it returns,
//! and so is every write before it (RocksDB's WAL is sequential).
//!
//! Shards are large values (hundreds of KiB to MiB). Their bytes go to append-only pack files
//! beside the database (`packs/`, see the `pack` module for why not RocksDB values or BlobDB);
//! the `shards` column family maps each shard's BLAKE3 hash to its location. Writing a shard
//! puts its bytes in a pack at once and its index entry in the caller's batch; [`Store::write`]
//! makes the batch's pack bytes durable before it commits the batch, so an index entry never
//! names bytes that a crash could lose. Every read is verified against the key.
//!
//! zhtp compresses content itself (LZ4 before encryption), so RocksDB's compression is off.
//!
//! Unix only (positioned reads and writes); direct I/O on Linux, buffered elsewhere and on file
//! systems that refuse `O_DIRECT`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use rocksdb::{
    BlockBasedOptions, ColumnFamilyDescriptor, DB, DBCompressionType, IteratorMode, Options,
    WriteBatch, WriteOptions,
};
use thiserror::Error;
use zhtp_types::Hash;

mod pack;

use pack::{Location, Packs};

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
    /// Reading or writing the store's files (packs, directories) failed.
    #[error("{0}: {1}")]
    Io(PathBuf, #[source] std::io::Error),
    /// Any other RocksDB error.
    #[error("store: {0}")]
    Db(String),
}

fn db_err(path: &Path) -> impl Fn(rocksdb::Error) -> Error + '_ {
    move |e| classify(path, e.to_string())
}

/// RocksDB reports errors as text. Its lock failure reads "IO error: While lock file:
/// <dir>/LOCK: Resource temporarily unavailable"; matching a bare "lock" would also take
/// "block checksum mismatch" (a corrupt file) for another process holding the store.
fn classify(path: &Path, msg: String) -> Error {
    if msg.contains("While lock file") || msg.contains("/LOCK:") {
        Error::Locked(path.to_owned())
    } else if msg.contains("No space left") || msg.contains("NoSpace") {
        Error::DiskFull(path.to_owned())
    } else {
        Error::Db(msg)
    }
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| match e.kind() {
        std::io::ErrorKind::StorageFull => Error::DiskFull(path.to_owned()),
        _ => Error::Io(path.to_owned(), e),
    }
}

/// Column families.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cf {
    /// Shard locations in the packs, by BLAKE3 of the shard.
    Shards,
    /// Manifests by content hash.
    Manifests,
    /// Secondary indexes (tags, names) for listing and search.
    Index,
    /// Retired: data dirs of earlier versions kept content keys here. Nothing writes it now
    /// (every encrypted content's key is wrapped for its owner in the manifest); a re-put or
    /// removal deletes the old entry. Kept so that older data dirs still open.
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
    /// fsync on every write (durable on power loss). Without it, writes survive a process crash
    /// but not an OS crash.
    pub sync: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self { sync: true }
    }
}

impl Config {
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
    /// Packs holding bytes of shards indexed by this batch: synced before it is written.
    packs: Vec<u32>,
    /// The pack of every shard indexed by this batch, settled once it is written.
    indexed: Vec<u32>,
    /// Whether it changes the shard index (then it is ordered against pack compaction).
    shards: bool,
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Batch({} ops)", self.inner.len())
    }
}

/// A shard whose bytes are in a pack but not yet indexed: made by [`Store::write_shard`] on
/// any thread, indexed by [`Store::index_shard`] into the batch that commits it.
#[derive(Clone, Copy, Debug)]
pub struct WrittenShard {
    hash: Hash,
    at: Location,
}

/// The `max_live` a node and `zhtp compact` use by default: a pack is rewritten once at least
/// half of it is dead, so compaction copies at most as many bytes as it gives back.
pub const COMPACT_MAX_LIVE: f64 = 0.5;

/// The smallest pack a running node closes for compaction (see [`Store::seal_packs`]).
pub const SEAL_MIN: u64 = 64 << 20;

/// What [`Store::compact_packs`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Compaction {
    /// Packs deleted.
    pub packs_removed: usize,
    /// Live shards copied into new packs and repointed.
    pub shards_moved: usize,
    /// Bytes of those shards.
    pub bytes_moved: u64,
    /// Disk space given back: the deleted packs' size less their live bytes.
    pub bytes_reclaimed: u64,
}

/// One `(key, value)` pair read back from a column family.
pub type Entry = (Box<[u8]>, Box<[u8]>);

/// The embedded database of a node.
pub struct Store {
    db: DB,
    packs: Packs,
    /// Held while a batch that changes the shard index is written, so that compaction's
    /// check-and-repoint cannot interleave with one.
    shard_index: Mutex<()>,
    path: PathBuf,
    sync: bool,
    write_options: WriteOptions,
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
        std::fs::create_dir_all(&path).map_err(io_err(&path))?;
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
                // Point lookups by hash, most of them hits: a bloom filter spares the misses.
                let mut t = BlockBasedOptions::default();
                t.set_bloom_filter(10.0, false);
                o.set_block_based_table_factory(&t);
            }
            ColumnFamilyDescriptor::new(cf.name(), o)
        });
        let db = DB::open_cf_descriptors(&opts, &path, cfs).map_err(db_err(&path))?;
        // After RocksDB: its lock keeps a second process away from the packs too.
        let packs = Packs::open(path.join("packs")).map_err(io_err(&path))?;
        let mut write_options = WriteOptions::default();
        write_options.set_sync(config.sync);
        Ok(Self {
            db,
            packs,
            shard_index: Mutex::new(()),
            path,
            sync: config.sync,
            write_options,
        })
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
        batch.shards |= cf == Cf::Shards;
        batch.inner.put_cf(self.cf(cf)?, key, value);
        Ok(())
    }

    /// Adds a delete to `batch`.
    pub fn delete(&self, batch: &mut Batch, cf: Cf, key: &[u8]) -> Result<(), Error> {
        batch.shards |= cf == Cf::Shards;
        batch.inner.delete_cf(self.cf(cf)?, key);
        Ok(())
    }

    /// Applies `batch` atomically (durably when configured with `sync`). The bytes of the
    /// shards it indexes are made durable first.
    pub fn write(&self, batch: Batch) -> Result<(), Error> {
        let synced = self.sync_packs(batch.packs.iter().copied());
        let _ordered = batch.shards.then(|| self.lock_shard_index());
        self.apply(batch, synced)
    }

    /// Makes what was written to these packs durable (when configured with `sync`).
    fn sync_packs(&self, packs: impl IntoIterator<Item = u32>) -> Result<(), Error> {
        if self.sync {
            self.packs.sync(packs).map_err(io_err(&self.path))?;
        }
        Ok(())
    }

    /// Orders a change of the shard index against pack compaction's check-and-repoint.
    fn lock_shard_index(&self) -> std::sync::MutexGuard<'_, ()> {
        self.shard_index
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes `batch` to RocksDB unless `ready` failed, then settles its shards: indexed, or
    /// never to be (a failed batch is not retried; its bytes wait for compaction).
    fn apply(&self, batch: Batch, ready: Result<(), Error>) -> Result<(), Error> {
        let r = ready.and_then(|()| {
            self.db
                .write_opt(batch.inner, &self.write_options)
                .map_err(db_err(&self.path))
        });
        for pack in batch.indexed {
            self.packs.settle(pack);
        }
        r
    }

    /// Closes the packs open for appends that hold at least `min_bytes` and that no write is
    /// using, so that [`Store::compact_packs`] may take them too once their shards are
    /// committed. A running node calls this before its periodic compaction with
    /// [`SEAL_MIN`]; appends go on in new packs.
    pub fn seal_packs(&self, min_bytes: u64) {
        self.packs.seal_idle(min_bytes);
    }

    /// Gives back the space of closed packs (closed before this open, or by this process and
    /// with every shard written into them committed or discarded; see [`Store::seal_packs`])
    /// whose live shards take at most `max_live` of their size: their live shards are copied, verified, into new packs,
    /// repointed in one synced batch, and the old pack is deleted. Space is lost to failed or
    /// crashed puts, shards replaced by repair and deleted shards.
    ///
    /// Safe while the store is in use: a shard that another write repoints or deletes meanwhile
    /// keeps that write's result, and a read that raced with the deletion retries at the new
    /// location. A shard found corrupt is not copied, so afterwards it reads as missing and the
    /// reader rebuilds it, as it would have anyway.
    pub fn compact_packs(&self, max_live: f64) -> Result<Compaction, Error> {
        let io = io_err(&self.path);
        let sealed = self.packs.sealed().map_err(&io)?;
        let Some(limit) = sealed.last().map(|(id, _)| id + 1) else {
            return Ok(Compaction::default());
        };
        // Live bytes and shards of every sealed pack, from the index.
        let mut live: HashMap<u32, (u64, Vec<(Hash, Location)>)> = HashMap::new();
        for item in self.scan(Cf::Shards, &[])? {
            let (key, value) = item?;
            let (Some(at), Ok(hash)) = (Location::decode(&value), <[u8; 32]>::try_from(&*key))
            else {
                continue;
            };
            if at.pack < limit {
                let e = live.entry(at.pack).or_default();
                e.0 += Packs::footprint(at.len);
                e.1.push((Hash(hash), at));
            }
        }
        let mut report = Compaction::default();
        for (id, size) in sealed {
            let (bytes, shards) = live.remove(&id).unwrap_or_default();
            if bytes as f64 > max_live * size as f64 {
                continue;
            }
            let mut moved = Vec::with_capacity(shards.len());
            for (hash, old) in shards {
                // A corrupt or unreadable shard is left behind with its pack.
                if let Ok(b) = self.packs.read(old)
                    && blake3::hash(&b).as_bytes() == hash.as_bytes()
                {
                    moved.push((old, self.write_shard(&hash, &b)?));
                }
            }
            // Synced before the lock, so that index writes wait for the check, not the disk.
            let synced = self.sync_packs(moved.iter().map(|(_, new)| new.at.pack));
            {
                let _ordered = self.lock_shard_index();
                let mut batch = self.batch();
                for (old, new) in moved {
                    // Only where the index still points at the old place: a write or a delete
                    // since the scan wins.
                    let current = self.get(Cf::Shards, new.hash.as_bytes())?;
                    if current.as_deref() == Some(&old.encode()[..]) {
                        self.index_shard(&mut batch, new)?;
                        report.shards_moved += 1;
                        report.bytes_moved += u64::from(new.at.len);
                    } else {
                        self.packs.discard(new.at);
                    }
                }
                self.apply(batch, synced)?;
            }
            self.packs.remove(id).map_err(&io)?;
            report.packs_removed += 1;
            report.bytes_reclaimed += size.saturating_sub(bytes);
        }
        Ok(report)
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

    /// Writes a shard's bytes to a pack, from any thread. Nothing refers to them until
    /// [`Store::index_shard`] puts them in a batch and [`Store::write`] commits it.
    pub fn write_shard(&self, hash: &Hash, bytes: &[u8]) -> Result<WrittenShard, Error> {
        let at = self.packs.append(bytes).map_err(io_err(&self.path))?;
        Ok(WrittenShard { hash: *hash, at })
    }

    /// Frees the pack space of written shards that will never be indexed (a put that failed
    /// before its commit). They must not be in any batch.
    pub fn discard_shards(&self, shards: &[WrittenShard]) {
        for s in shards {
            self.packs.discard(s.at);
        }
    }

    /// Adds the index entry of a written shard to `batch`.
    pub fn index_shard(&self, batch: &mut Batch, shard: WrittenShard) -> Result<(), Error> {
        if !batch.packs.contains(&shard.at.pack) {
            batch.packs.push(shard.at.pack);
        }
        batch.indexed.push(shard.at.pack);
        self.put(batch, Cf::Shards, shard.hash.as_bytes(), &shard.at.encode())
    }

    /// Writes a shard and adds it to `batch`, keyed by its hash: [`Store::write_shard`] then
    /// [`Store::index_shard`].
    pub fn put_shard(&self, batch: &mut Batch, hash: &Hash, bytes: &[u8]) -> Result<(), Error> {
        let written = self.write_shard(hash, bytes)?;
        self.index_shard(batch, written)
    }

    /// Reads a shard and checks it against its hash: `Ok(None)` when absent,
    /// [`Error::Corrupt`] when its bytes are wrong or its pack is damaged.
    pub fn shard(&self, hash: &Hash) -> Result<Option<Vec<u8>>, Error> {
        let mut retried = false;
        let bytes = loop {
            let Some(value) = self.get(Cf::Shards, hash.as_bytes())? else {
                return Ok(None);
            };
            let Some(at) = Location::decode(&value) else {
                break value; // stored inline by a build from before packs
            };
            match self.packs.read(at) {
                Ok(bytes) => break bytes,
                // Compaction moved the shard between our index read and the pack read.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && !retried => retried = true,
                // A truncated or missing pack loses its shards as corruption does: the reader
                // rebuilds them from the others.
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::NotFound
                    ) =>
                {
                    return Err(Error::Corrupt(*hash));
                }
                Err(e) => return Err(io_err(&self.path)(e)),
            }
        };
        if blake3::hash(&bytes).as_bytes() != hash.as_bytes() {
            return Err(Error::Corrupt(*hash));
        }
        Ok(Some(bytes))
    }

    /// The length of a shard, `None` when absent (an index read only).
    pub fn shard_len(&self, hash: &Hash) -> Result<Option<u32>, Error> {
        Ok(self
            .get(Cf::Shards, hash.as_bytes())?
            .map(|v| Location::decode(&v).map_or(v.len() as u32, |at| at.len)))
    }

    /// Byte ranges `(offset, length)` of a shard, read without the rest of it: `Ok(None)` when
    /// the shard is absent, [`Error::Corrupt`] when a range lies outside it or its pack is
    /// damaged. Not checked against the shard's hash (only a whole read can be): an audit's
    /// digest checks them. What an audit reads: a few kilobytes, whatever the shard's size.
    pub fn shard_ranges(
        &self,
        hash: &Hash,
        ranges: &[(u32, u32)],
    ) -> Result<Option<Vec<Vec<u8>>>, Error> {
        let mut retried = false;
        loop {
            let Some(value) = self.get(Cf::Shards, hash.as_bytes())? else {
                return Ok(None);
            };
            let len = Location::decode(&value).map_or(value.len() as u64, |at| u64::from(at.len));
            if ranges
                .iter()
                .any(|&(o, l)| u64::from(o) + u64::from(l) > len)
            {
                return Err(Error::Corrupt(*hash));
            }
            let Some(at) = Location::decode(&value) else {
                // Stored inline by a build from before packs.
                return Ok(Some(
                    ranges
                        .iter()
                        .map(|&(o, l)| value[o as usize..(o + l) as usize].to_vec())
                        .collect(),
                ));
            };
            let read: std::io::Result<Vec<Vec<u8>>> = ranges
                .iter()
                .map(|&(o, l)| {
                    self.packs.read(Location {
                        pack: at.pack,
                        offset: at.offset + u64::from(o),
                        len: l,
                    })
                })
                .collect();
            match read {
                Ok(parts) => return Ok(Some(parts)),
                // Compaction moved the shard between our index read and the pack read.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && !retried => retried = true,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::NotFound
                    ) =>
                {
                    return Err(Error::Corrupt(*hash));
                }
                Err(e) => return Err(io_err(&self.path)(e)),
            }
        }
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

    /// Every `(key, value)` of `cf` from `start` on whose key starts with `within`, in key order
    /// (a range scan inside one prefix, e.g. one contract's state from a key on).
    pub fn scan_from(
        &self,
        cf: Cf,
        start: &[u8],
        within: &[u8],
    ) -> Result<impl Iterator<Item = Result<Entry, Error>> + '_, Error> {
        let within = within.to_vec();
        let mode = IteratorMode::From(start, rocksdb::Direction::Forward);
        let it = self.db.iterator_cf(self.cf(cf)?, mode);
        let path = self.path.clone();
        Ok(it
            .map(move |r| r.map_err(db_err(&path)))
            .take_while(move |r| r.as_ref().map_or(true, |(k, _)| k.starts_with(&within))))
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
    fn shards_are_visible_only_once_their_batch_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), Config::default()).unwrap();
        let bytes = vec![3u8; 70_000];
        let written = s.write_shard(&h(&bytes), &bytes).unwrap();
        assert_eq!(
            s.shard(&h(&bytes)).unwrap(),
            None,
            "written, not yet indexed"
        );
        let mut b = s.batch();
        s.index_shard(&mut b, written).unwrap();
        s.write(b).unwrap();
        assert_eq!(s.shard(&h(&bytes)).unwrap(), Some(bytes));
    }

    #[test]
    fn a_truncated_or_missing_pack_reads_as_corrupt_shards() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (vec![4u8; 10_000], vec![5u8; 10_000]);
        {
            let s = Store::open(dir.path(), Config::default()).unwrap();
            let mut batch = s.batch();
            s.put_shard(&mut batch, &h(&a), &a).unwrap();
            s.put_shard(&mut batch, &h(&b), &b).unwrap();
            s.write(batch).unwrap();
        }
        // Both shards share one pack (one writer): cut it after the first one.
        let packs: Vec<_> = std::fs::read_dir(dir.path().join("packs"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(packs.len(), 1);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&packs[0])
            .unwrap()
            .set_len(4096)
            .unwrap();
        let s = Store::open(dir.path(), Config::default()).unwrap();
        assert!(matches!(s.shard(&h(&b)), Err(Error::Corrupt(x)) if x == h(&b)));
        drop(s);
        std::fs::remove_file(&packs[0]).unwrap();
        let s = Store::open(dir.path(), Config::default()).unwrap();
        assert!(matches!(s.shard(&h(&a)), Err(Error::Corrupt(x)) if x == h(&a)));
    }

    #[test]
    fn compaction_gives_back_dead_space_and_keeps_every_live_shard() {
        let dir = tempfile::tempdir().unwrap();
        let shards: Vec<Vec<u8>> = (0..10u8).map(|i| vec![i; 50_000 + i as usize]).collect();
        {
            let s = Store::open(dir.path(), Config::default()).unwrap();
            let mut b = s.batch();
            for x in &shards {
                s.put_shard(&mut b, &h(x), x).unwrap();
            }
            s.write(b).unwrap();
            // Bytes written and never indexed: what a crashed or failed put leaves.
            s.write_shard(&h(b"orphan"), &[9u8; 200_000]).unwrap();
            // Packs of this open are never compacted: their appends may not be indexed yet.
            assert_eq!(s.compact_packs(1.0).unwrap(), Compaction::default());
        }
        let pack_bytes = |d: &Path| -> u64 {
            std::fs::read_dir(d.join("packs"))
                .unwrap()
                .map(|e| e.unwrap().metadata().unwrap().len())
                .sum()
        };
        let before = pack_bytes(dir.path());
        let s = Store::open(dir.path(), Config::default()).unwrap();
        // Mostly live: left alone at a 50% threshold.
        assert_eq!(s.compact_packs(0.5).unwrap().packs_removed, 0);
        // Delete 8 of the 10 shards: the pack is mostly dead now.
        let mut b = s.batch();
        for x in &shards[..8] {
            s.delete(&mut b, Cf::Shards, h(x).as_bytes()).unwrap();
        }
        s.write(b).unwrap();
        let report = s.compact_packs(0.5).unwrap();
        assert_eq!(report.packs_removed, 1);
        assert_eq!(report.shards_moved, 2);
        assert!(report.bytes_reclaimed > 600_000, "{report:?}");
        assert!(pack_bytes(dir.path()) < before / 4, "{report:?}");
        for x in &shards[8..] {
            assert_eq!(s.shard(&h(x)).unwrap().as_deref(), Some(&x[..]));
        }
        for x in &shards[..8] {
            assert_eq!(s.shard(&h(x)).unwrap(), None);
        }
        // And after a reopen (the repointing was committed).
        drop(s);
        let s = Store::open(dir.path(), Config::default()).unwrap();
        for x in &shards[8..] {
            assert_eq!(s.shard(&h(x)).unwrap().as_deref(), Some(&x[..]));
        }
    }

    #[test]
    fn a_running_store_compacts_its_own_sealed_packs_but_never_under_an_uncommitted_shard() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), Config::default()).unwrap();
        let shards: Vec<Vec<u8>> = (0..10u8).map(|i| vec![i; 50_000 + i as usize]).collect();
        let mut b = s.batch();
        for x in &shards {
            s.put_shard(&mut b, &h(x), x).unwrap();
        }
        s.write(b).unwrap();
        // Written, not committed yet: a put in progress.
        let late = vec![42u8; 30_000];
        let pending = s.write_shard(&h(&late), &late).unwrap();
        let mut b = s.batch();
        for x in &shards[..8] {
            s.delete(&mut b, Cf::Shards, h(x).as_bytes()).unwrap();
        }
        s.write(b).unwrap();
        // Still open for appends: not compacted.
        assert_eq!(s.compact_packs(1.0).unwrap(), Compaction::default());
        s.seal_packs(0);
        // Closed, but a shard in it waits for its commit: deleting the pack would lose it.
        assert_eq!(s.compact_packs(1.0).unwrap(), Compaction::default());
        let mut b = s.batch();
        s.index_shard(&mut b, pending).unwrap();
        s.write(b).unwrap();
        // Appends after the seal go to a new pack, which stays out of compaction.
        let after = vec![7u8; 20_000];
        let mut b = s.batch();
        s.put_shard(&mut b, &h(&after), &after).unwrap();
        s.write(b).unwrap();
        let report = s.compact_packs(0.5).unwrap();
        assert_eq!(report.packs_removed, 1, "{report:?}");
        assert_eq!(report.shards_moved, 3, "{report:?}");
        for x in shards[8..].iter().chain([&late, &after]) {
            assert_eq!(s.shard(&h(x)).unwrap().as_deref(), Some(&x[..]));
        }
        for x in &shards[..8] {
            assert_eq!(s.shard(&h(x)).unwrap(), None);
        }
        drop(s);
        let s = Store::open(dir.path(), Config::default()).unwrap();
        for x in shards[8..].iter().chain([&late, &after]) {
            assert_eq!(s.shard(&h(x)).unwrap().as_deref(), Some(&x[..]));
        }
    }

    #[test]
    fn shards_stored_inline_by_earlier_builds_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), Config::default()).unwrap();
        let bytes = vec![6u8; 5000];
        let mut b = s.batch();
        s.put(&mut b, Cf::Shards, h(&bytes).as_bytes(), &bytes)
            .unwrap();
        s.write(b).unwrap();
        assert_eq!(s.shard(&h(&bytes)).unwrap(), Some(bytes));
    }

    #[test]
    fn a_corrupt_block_is_not_mistaken_for_a_lock() {
        let p = Path::new("/d");
        let e = |m: &str| classify(p, m.to_owned());
        assert!(matches!(
            e("IO error: While lock file: /d/LOCK: Resource temporarily unavailable"),
            Error::Locked(_)
        ));
        assert!(matches!(
            e("Corruption: block checksum mismatch: stored = 1, computed = 2 in /d/000012.sst"),
            Error::Db(_)
        ));
        assert!(matches!(
            e("IO error: No space left on device"),
            Error::DiskFull(_)
        ));
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
