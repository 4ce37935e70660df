//! Pack files: shard bytes appended to large files, found through the shard index in RocksDB.
//!
//! Why not RocksDB values: a shard is hundreds of KiB to MiB. Inline values are rewritten by
//! every compaction; BlobDB (integrated blob files) avoids that but still copies each shard into
//! a memtable, checksums it with CRC32C and writes it again at flush, which cost more than the
//! whole pipeline (compress, encrypt, erasure-code, hash) in the pipeline bench. A pack file is
//! written once, with positioned writes from any number of threads, and is made durable with
//! one `fdatasync` per pack file per commit. The index entry of a shard is written only after
//! its bytes are durable (see [`Packs::sync`] and `Store::write`), so an index entry never
//! points at bytes that a crash could lose.
//!
//! Packs are append-only. A crash between writing shard bytes and committing their index leaves
//! unreferenced bytes, which nothing reads. A put that fails before its commit punches holes
//! where its shards were (`Packs::discard`); the rest (crashes, shards replaced by repair,
//! deleted shards) is given back by `Store::compact_packs`, which copies the live shards of a
//! mostly dead pack forward and deletes it. Every open starts new packs, so a torn tail left by
//! a crash is never written after.
//!
//! A pack is compacted only once it is *closed*: closed before this open, or closed for
//! appends by this process (full, or sealed by [`Packs::seal_idle`]) with no shard written into
//! it still waiting for its index entry or its discard ([`Packs::settle`]). Without that second
//! condition compaction could delete a pack between a shard's write and its commit, and the
//! commit would index bytes that are gone.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, PoisonError, RwLock};

/// A pack file is closed for appends once it reaches this size.
const PACK_LIMIT: u64 = 1 << 30;

/// Marks an index value as a location (values without it are shard bytes stored inline by
/// builds before packs existed; those are still read).
const MAGIC: &[u8; 3] = b"PK\x01";

/// Where a shard's bytes are: pack file, offset, length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    pub(crate) pack: u32,
    pub(crate) offset: u64,
    pub(crate) len: u32,
}

impl Location {
    /// Encoded size in the index.
    pub(crate) const LEN: usize = MAGIC.len() + 4 + 8 + 4;

    pub(crate) fn encode(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        out[..3].copy_from_slice(MAGIC);
        out[3..7].copy_from_slice(&self.pack.to_le_bytes());
        out[7..15].copy_from_slice(&self.offset.to_le_bytes());
        out[15..19].copy_from_slice(&self.len.to_le_bytes());
        out
    }

    /// `None` when `bytes` is not an encoded location.
    pub(crate) fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != Self::LEN || !bytes.starts_with(MAGIC) {
            return None;
        }
        let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().unwrap_or_default());
        Some(Self {
            pack: u32_at(3),
            offset: u64::from_le_bytes(bytes[7..15].try_into().unwrap_or_default()),
            len: u32_at(15),
        })
    }
}

/// Offsets and lengths of direct writes are multiples of this (the largest logical block
/// size of common disks), and so are their buffers' addresses.
const ALIGN: usize = 4096;

/// A pack open for appends.
struct Appendable {
    id: u32,
    /// Opened with `O_DIRECT` when `direct`.
    file: File,
    direct: bool,
    end: u64,
}

impl Appendable {
    /// Writes `bytes` at `offset` (a multiple of [`ALIGN`]), zero-padded to a multiple of
    /// [`ALIGN`] when direct.
    fn write_at(&mut self, bytes: &[u8], offset: u64, dir: &Path) -> io::Result<()> {
        if self.direct {
            let padded = padded(bytes.len());
            // Built up instead of zeroed and then overwritten: zeroing was 7% of a put's CPU.
            if let Some((mut buf, start)) = aligned_buffer(padded) {
                buf.resize(start, 0);
                buf.extend_from_slice(bytes);
                buf.resize(start + padded, 0);
                match self.file.write_all_at(&buf[start..], offset) {
                    Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
                    done => return done,
                }
            }
            // The file system took the O_DIRECT open but not the write: go on buffered.
            self.file = open_for_append(&path_of(dir, self.id), false)?;
            self.direct = false;
        }
        self.file.write_all_at(bytes, offset)
    }
}

/// Opens a pack for appends: with `O_DIRECT` when asked and the file system allows it.
///
/// Why direct writes: shard bytes are written once and read rarely, so the page cache gains
/// nothing from them, and a buffered write copies every byte into it (a quarter of a put's CPU
/// here) and leaves the disk idle until the commit's sync. A direct write goes from our buffer
/// to the disk at once, and the sync at commit only has metadata left to write.
fn open_for_append(path: &Path, direct: bool) -> io::Result<File> {
    options(direct).write(true).open(path)
}

/// Open options, with `O_DIRECT` when `direct` (on Linux; elsewhere they stay buffered).
fn options(direct: bool) -> std::fs::OpenOptions {
    let mut o = std::fs::OpenOptions::new();
    #[cfg(target_os = "linux")]
    if direct {
        use std::os::unix::fs::OpenOptionsExt as _;
        o.custom_flags(libc::O_DIRECT);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = direct;
    o
}

/// `len` rounded up to a multiple of [`ALIGN`]: what a shard takes in a pack.
fn padded(len: usize) -> usize {
    len.next_multiple_of(ALIGN)
}

/// An empty buffer with room for `len` bytes from `start`, an [`ALIGN`]-aligned offset into it
/// (direct I/O needs aligned memory). `None` in the unlikely case the address cannot be aligned.
fn aligned_buffer(len: usize) -> Option<(Vec<u8>, usize)> {
    let buf: Vec<u8> = Vec::with_capacity(len + ALIGN);
    let start = buf.as_ptr().align_offset(ALIGN);
    (start < ALIGN).then_some((buf, start))
}

/// At most this many appends run at once (each with its own pack): enough for the put workers
/// of a 4-core node, and it bounds how many packs a burst of network stores opens.
const MAX_LANES: usize = 8;

/// Packs open for appends and not in use, and how many exist in all.
#[derive(Default)]
struct Lanes {
    idle: Vec<Appendable>,
    open: usize,
}

/// How a pack is read and synced.
struct Handle {
    /// Buffered; for syncs, and for reads when direct ones are not possible.
    file: File,
    /// `O_DIRECT`, for reads: shards are read about once per get, so caching them gains little,
    /// and a buffered read into fresh page cache took up to twice as long as a direct one here.
    direct: Option<File>,
}

impl Handle {
    fn new(file: File, path: &Path) -> Self {
        let direct = cfg!(target_os = "linux")
            .then(|| options(true).read(true).open(path).ok())
            .flatten();
        Self { file, direct }
    }

    /// The `len` bytes at `offset`, read directly when the file system allows it.
    fn read(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        if let Some(direct) = &self.direct {
            let padded = padded(len);
            if let Some((mut buf, start)) = aligned_buffer(padded) {
                buf.resize(start + padded, 0);
                match read_at_least(direct, &mut buf[start..], offset, len) {
                    Ok(()) => {
                        buf.truncate(start + len);
                        buf.drain(..start);
                        return Ok(buf);
                    }
                    Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {} // buffered, below
                    Err(e) => return Err(e),
                }
            }
        }
        let mut buf = vec![0u8; len];
        self.file.read_exact_at(&mut buf, offset)?;
        Ok(buf)
    }
}

/// Reads into `buf` at `offset` until at least `need` bytes are in (a pack's last shard may
/// end before the aligned length asked for).
fn read_at_least(f: &File, buf: &mut [u8], offset: u64, need: usize) -> io::Result<()> {
    let mut got = 0;
    while got < need {
        match f.read_at(&mut buf[got..], offset + got as u64) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The pack files of one store.
pub(crate) struct Packs {
    dir: PathBuf,
    /// Packs open for appends. Each append takes one (or opens one, up to [`MAX_LANES`], or
    /// waits) and gives it back, so concurrent appends go to different files: writes to one
    /// file serialise on its inode lock, and the waiting writer spins (13% of a put's CPU with
    /// one shared pack).
    lanes: Mutex<Lanes>,
    /// Signalled when an append gives its pack back.
    returned: Condvar,
    /// The next pack id.
    next: Mutex<u32>,
    /// Packs below this id were closed before this open.
    sealed: u32,
    /// Packs of this process closed for appends (full or sealed).
    closed: Mutex<std::collections::HashSet<u32>>,
    /// Shards written per pack and not yet indexed or discarded ([`Packs::settle`]).
    pending: Mutex<HashMap<u32, usize>>,
    /// Open handles, by id (for reads and syncs).
    files: RwLock<HashMap<u32, Arc<Handle>>>,
}

fn path_of(dir: &Path, id: u32) -> PathBuf {
    dir.join(format!("{id:08}.pack"))
}

/// The id of a pack file named by [`path_of`]; `None` for any other file.
fn pack_id(name: &std::ffi::OsStr) -> Option<u32> {
    name.to_str()?.strip_suffix(".pack")?.parse().ok()
}

impl Packs {
    /// Opens the packs under `dir`, creating it. Appends go to a new pack.
    pub(crate) fn open(dir: PathBuf) -> io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        let mut last = 0u32;
        for entry in std::fs::read_dir(&dir)? {
            last = last.max(pack_id(&entry?.file_name()).unwrap_or(0));
        }
        Ok(Self {
            dir,
            lanes: Mutex::new(Lanes::default()),
            returned: Condvar::new(),
            next: Mutex::new(last + 1),
            sealed: last + 1,
            closed: Mutex::new(std::collections::HashSet::new()),
            pending: Mutex::new(HashMap::new()),
            files: RwLock::new(HashMap::new()),
        })
    }

    fn new_pack(&self) -> io::Result<Appendable> {
        let mut next = self.next.lock().unwrap_or_else(PoisonError::into_inner);
        let id = *next;
        let path = path_of(&self.dir, id);
        // Reads and syncs go through this handle, appends through their own.
        let reader = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        // The new name must survive a power loss as well as the bytes written into it.
        File::open(&self.dir)?.sync_all()?;
        *next += 1;
        let (file, direct) = match open_for_append(&path, true) {
            Ok(f) => (f, cfg!(target_os = "linux")),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                (open_for_append(&path, false)?, false)
            }
            Err(e) => return Err(e),
        };
        self.files
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, Arc::new(Handle::new(reader, &path)));
        Ok(Appendable {
            id,
            file,
            direct,
            end: 0,
        })
    }

    /// Writes `bytes` at the end of a pack that no other append is using. Not durable until
    /// [`Packs::sync`] of its pack.
    pub(crate) fn append(&self, bytes: &[u8]) -> io::Result<Location> {
        let len = u32::try_from(bytes.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "shard over 4 GiB"))?;
        // Every shard starts on an ALIGN boundary, so that direct writes can be used.
        let padded = Self::footprint(len);
        let mut pack = self.take(padded)?;
        let location = Location {
            pack: pack.id,
            offset: pack.end,
            len,
        };
        let written = pack.write_at(bytes, location.offset, &self.dir);
        pack.end += padded; // also on failure: the bytes there are unknown, so never reused
        // Counted before the pack can be closed (it is not idle until given back).
        *self.pending().entry(pack.id).or_default() += 1;
        self.give_back(Some(pack));
        if let Err(e) = written {
            self.discard(location); // whatever part of it reached the disk; settles it
            return Err(e);
        }
        Ok(location)
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<u32, usize>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn closed(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<u32>> {
        self.closed.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A shard appended to `pack` is indexed, or will never be (its batch failed, or it was
    /// discarded): it no longer holds the pack back from compaction.
    pub(crate) fn settle(&self, pack: u32) {
        let mut pending = self.pending();
        if let Some(n) = pending.get_mut(&pack) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                pending.remove(&pack);
            }
        }
    }

    /// Closes every pack open for appends that holds at least `min` bytes and that no append
    /// is using right now (later appends open new packs), so that compaction may take them
    /// once their shards are settled. Smaller ones keep filling: sealing them each time would
    /// leave a trail of small files.
    pub(crate) fn seal_idle(&self, min: u64) {
        let mut lanes = self.lanes.lock().unwrap_or_else(PoisonError::into_inner);
        let idle = std::mem::take(&mut lanes.idle);
        let mut sealed = Vec::new();
        {
            let mut closed = self.closed();
            for p in idle {
                if p.end == 0 || p.end < min {
                    lanes.idle.push(p);
                } else {
                    lanes.open -= 1;
                    closed.insert(p.id);
                    sealed.push(p.id);
                }
            }
        }
        self.returned.notify_all();
        drop(lanes);
        // Its read handle is opened again when a read needs it: a closed pack that is never
        // compacted must not hold file descriptors for good.
        let mut files = self.files.write().unwrap_or_else(PoisonError::into_inner);
        for id in sealed {
            files.remove(&id);
        }
    }

    /// A pack with room for `len` more bytes, for this caller alone.
    fn take(&self, len: u64) -> io::Result<Appendable> {
        let mut lanes = self.lanes.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(pack) = lanes.idle.pop() {
                if pack.end == 0 || pack.end + len <= PACK_LIMIT {
                    return Ok(pack);
                }
                lanes.open -= 1; // full: closed for appends
                self.closed().insert(pack.id);
            } else if lanes.open < MAX_LANES {
                lanes.open += 1;
                drop(lanes);
                let opened = self.new_pack();
                if opened.is_err() {
                    self.give_back(None);
                }
                return opened;
            } else {
                lanes = self
                    .returned
                    .wait(lanes)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        }
    }

    /// Returns a pack taken by [`Packs::take`], or its lane when none could be opened.
    fn give_back(&self, pack: Option<Appendable>) {
        let mut lanes = self.lanes.lock().unwrap_or_else(PoisonError::into_inner);
        match pack {
            Some(p) => lanes.idle.push(p),
            None => lanes.open -= 1,
        }
        self.returned.notify_one();
    }

    fn handle(&self, id: u32) -> io::Result<Arc<Handle>> {
        if let Some(f) = self
            .files
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
        {
            return Ok(f.clone());
        }
        let path = path_of(&self.dir, id);
        let f = Arc::new(Handle::new(File::open(&path)?, &path));
        Ok(self
            .files
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(id)
            .or_insert(f)
            .clone())
    }

    /// The bytes at `at`. A short file reads as `UnexpectedEof`, a missing pack as `NotFound`.
    pub(crate) fn read(&self, at: Location) -> io::Result<Vec<u8>> {
        self.handle(at.pack)?.read(at.offset, at.len as usize)
    }

    /// Packs that may be compacted, with the bytes they take on disk (holes punched by
    /// [`Packs::discard`] take none): closed before this open, or closed by this process with
    /// every shard written into them settled. Call before scanning the index: a pack listed
    /// here gets no new shard, so the scan sees every shard it will ever hold.
    pub(crate) fn sealed(&self) -> io::Result<Vec<(u32, u64)>> {
        let compactable: std::collections::HashSet<u32> = {
            let closed = self.closed();
            let pending = self.pending();
            closed
                .iter()
                .copied()
                .filter(|id| !pending.contains_key(id))
                .collect()
        };
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            if let Some(id) = pack_id(&entry.file_name())
                .filter(|id| *id < self.sealed || compactable.contains(id))
            {
                use std::os::unix::fs::MetadataExt as _;
                out.push((id, entry.metadata()?.blocks() * 512));
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    /// Deletes a sealed pack. Reads already holding its handle finish; later ones find it gone.
    pub(crate) fn remove(&self, id: u32) -> io::Result<()> {
        debug_assert!(
            id < self.sealed || self.closed().contains(&id),
            "only sealed packs are removed"
        );
        std::fs::remove_file(path_of(&self.dir, id))?;
        self.closed().remove(&id);
        self.files
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
        File::open(&self.dir)?.sync_all()
    }

    /// Frees the disk blocks under `at`, which nothing will ever read (the shard of a put that
    /// failed before its commit): a full disk then has its space back at once. Best effort: a
    /// file system without hole punching keeps the bytes until the pack is compacted.
    pub(crate) fn discard(&self, at: Location) {
        use rustix::fs::FallocateFlags;
        self.settle(at.pack);
        if let Ok(h) = self.handle(at.pack) {
            let _ = rustix::fs::fallocate(
                &h.file,
                FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
                at.offset,
                Self::footprint(at.len),
            );
        }
    }

    /// The space a shard of `len` bytes takes in a pack.
    pub(crate) fn footprint(len: u32) -> u64 {
        padded(len as usize) as u64
    }

    /// Makes everything written to these packs durable.
    pub(crate) fn sync(&self, packs: impl IntoIterator<Item = u32>) -> io::Result<()> {
        for id in packs {
            self.handle(id)?.file.sync_data()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_roundtrip_and_shard_bytes_are_not_locations() {
        let at = Location {
            pack: 7,
            offset: 1 << 33,
            len: 4 << 20,
        };
        assert_eq!(Location::decode(&at.encode()), Some(at));
        assert_eq!(Location::decode(&[0u8; Location::LEN]), None);
        assert_eq!(Location::decode(&at.encode()[..18]), None);
    }

    #[test]
    fn concurrent_appends_land_where_their_locations_say_in_at_most_max_lanes_packs() {
        let dir = tempfile::tempdir().unwrap();
        let packs = Packs::open(dir.path().join("packs")).unwrap();
        let written: Vec<(Location, Vec<u8>)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..16u8)
                .map(|t| {
                    let packs = &packs;
                    s.spawn(move || {
                        (0..50u32)
                            .map(|i| {
                                let bytes = vec![t ^ i as u8; 1000 + i as usize * 37];
                                (packs.append(&bytes).unwrap(), bytes)
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect()
        });
        packs.sync(written.iter().map(|(l, _)| l.pack)).unwrap();
        let files = std::fs::read_dir(dir.path().join("packs")).unwrap().count();
        assert!((1..=MAX_LANES).contains(&files), "{files} packs");
        for (at, bytes) in &written {
            assert_eq!(&packs.read(*at).unwrap(), bytes);
        }
        // After a reopen, old locations still read and appends go to a new pack.
        let last = written.iter().map(|(l, _)| l.pack).max().unwrap();
        drop(packs);
        let packs = Packs::open(dir.path().join("packs")).unwrap();
        assert_eq!(packs.read(written[0].0).unwrap(), written[0].1);
        let at = packs.append(b"after reopen").unwrap();
        assert_eq!(at.pack, last + 1);
        assert_eq!(at.offset, 0);
        // A location past the end of its pack is an error, not garbage.
        let past = Location {
            offset: 1 << 40,
            ..written[0].0
        };
        assert_eq!(
            packs.read(past).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
    }
}
