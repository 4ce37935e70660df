//! Compile cache: memory, then disk, then compile.
//!
//! A module loaded before is found again by its bytes (a `memcmp`, no hashing, among at most
//! [`MAX_SEEN`] recent modules). Otherwise the cache is keyed by
//! BLAKE3(engine compatibility hash ‖ BLAKE3(wasm)), so an artifact is only reused by an
//! engine that produced a compatible one. The disk tier holds artifacts *this node* compiled
//! (never one received from a peer: deserializing is only sound for trusted artifacts); each file
//! carries the BLAKE3 of its body, checked before use, so a truncated or corrupted file is
//! recompiled rather than loaded. Statistics are for operators only and never feed economics.

use std::collections::{HashMap, VecDeque};
use std::hash::{Hash as _, Hasher};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use wasmtime::{Engine, Module};
use zhtp_types::Hash;

/// Most modules found again by their bytes, oldest first. Past it the oldest is forgotten (its compiled module
/// stays in the hash-keyed tier): this bounds both the memory held for bytes and the `memcmp`s a
/// load may do under the lock, whatever a caller loads.
pub const MAX_SEEN: usize = 64;

/// Bump when the on-disk layout changes; part of the directory name.
const ARTIFACT_VERSION: &str = "v1";

/// Hit and miss counters. Not consensus critical.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Served from memory.
    pub memory_hits: u64,
    /// Loaded from disk.
    pub disk_hits: u64,
    /// Compiled.
    pub misses: u64,
}

/// A module this host has loaded, with what its bytes showed, found again by its bytes.
#[derive(Debug)]
pub(crate) struct Seen {
    pub(crate) wasm: Arc<[u8]>,
    pub(crate) hash: Hash,
    pub(crate) meta: Option<String>,
    pub(crate) module: Module,
}

/// The compile cache of a [`Host`](crate::Host).
#[derive(Debug)]
pub struct ModuleCache {
    engine_key: [u8; 8],
    dir: Option<PathBuf>,
    memory: Mutex<HashMap<Hash, Module>>,
    /// Modules loaded recently. A repeated load compares bytes (`memcmp`, ~10 GB/s) instead of
    /// hashing them (BLAKE3, 2–4 GB/s here) and scanning their sections again: the same bytes
    /// passed the same checks under the same limits.
    seen: Mutex<VecDeque<Arc<Seen>>>,
    memory_hits: AtomicU64,
    disk_hits: AtomicU64,
    misses: AtomicU64,
}

impl ModuleCache {
    pub(crate) fn new(engine: &Engine, dir: Option<PathBuf>) -> Self {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        let engine_key = h.finish().to_le_bytes();
        let dir = dir.map(|d| d.join(format!("modules-{ARTIFACT_VERSION}")));
        Self {
            engine_key,
            dir,
            memory: Mutex::new(HashMap::new()),
            seen: Mutex::new(VecDeque::new()),
            memory_hits: AtomicU64::new(0),
            disk_hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The cache key of `wasm_hash` under this engine.
    pub fn key(&self, wasm_hash: &Hash) -> Hash {
        let mut h = blake3::Hasher::new();
        h.update(&self.engine_key);
        h.update(wasm_hash.as_bytes());
        Hash(*h.finalize().as_bytes())
    }

    /// Counters so far.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            memory_hits: self.memory_hits.load(Ordering::Relaxed),
            disk_hits: self.disk_hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        }
    }

    /// Drops the memory tier (the disk tier stays). For benchmarks and tests.
    pub fn clear_memory(&self) {
        self.lock().clear();
        self.lock_seen().clear();
    }

    fn lock_seen(&self) -> std::sync::MutexGuard<'_, VecDeque<Arc<Seen>>> {
        // As `lock`: a panic cannot leave the lists inconsistent.
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The module loaded before from exactly these bytes, if any (a memory hit).
    pub(crate) fn find(&self, wasm: &[u8]) -> Option<Arc<Seen>> {
        // Slices compare their lengths first: a module of another length costs nothing.
        let found = self
            .lock_seen()
            .iter()
            .find(|s| *s.wasm == *wasm)
            .cloned()?;
        self.memory_hits.fetch_add(1, Ordering::Relaxed);
        Some(found)
    }

    /// Records a loaded module so that [`Self::find`] finds it.
    pub(crate) fn remember(&self, seen: Seen) -> Arc<Seen> {
        let mut recent = self.lock_seen();
        if let Some(earlier) = recent.iter().find(|s| s.wasm == seen.wasm) {
            // Two threads loaded the same bytes at once: keep one.
            return earlier.clone();
        }
        let seen = Arc::new(seen);
        recent.push_back(seen.clone());
        if recent.len() > MAX_SEEN {
            recent.pop_front();
        }
        seen
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Hash, Module>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.memory.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Returns the module for `wasm`, compiling it on a miss. `validate` runs on freshly
    /// compiled or disk-loaded modules before they are cached, so only modules that passed it
    /// are ever cached.
    pub(crate) fn get_or_compile<E>(
        &self,
        engine: &Engine,
        wasm_hash: &Hash,
        wasm: &[u8],
        compile_err: impl FnOnce(wasmtime::Error) -> E,
        validate: impl Fn(&Module) -> Result<(), E>,
    ) -> Result<Module, E> {
        let key = self.key(wasm_hash);
        if let Some(m) = self.lock().get(&key) {
            self.memory_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(m.clone());
        }
        if let Some(m) = self.load_disk(engine, &key)
            && validate(&m).is_ok()
        {
            self.disk_hits.fetch_add(1, Ordering::Relaxed);
            self.lock().insert(key, m.clone());
            return Ok(m);
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let module = Module::new(engine, wasm).map_err(compile_err)?;
        validate(&module)?;
        self.store_disk(&key, &module);
        self.lock().insert(key, module.clone());
        Ok(module)
    }

    fn path(&self, key: &Hash) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(format!("{key}.cwasm")))
    }

    #[allow(unsafe_code)]
    fn load_disk(&self, engine: &Engine, key: &Hash) -> Option<Module> {
        let path = self.path(key)?;
        if !path.exists() {
            return None;
        }
        if !private(path.parent()?) || !private(&path) {
            // Compiled code is run as is: only what this user alone could have written is.
            tracing::warn!(path = %path.display(), "compile cache not private to this user; ignored");
            return None;
        }
        let bytes = std::fs::read(&path).ok()?;
        let (sum, body) = bytes.split_at_checked(32)?;
        if blake3::hash(body).as_bytes() != sum {
            tracing::warn!(%key, "compile cache entry is corrupt; recompiling");
            return None;
        }
        // SAFETY: the file is in this node's private cache directory, was written by
        // `store_disk` from `Module::serialize` of this engine configuration (the key includes
        // the engine's compatibility hash), and its checksum matches. Artifacts from peers are
        // never written here.
        unsafe { Module::deserialize(engine, body) }.ok()
    }

    fn store_disk(&self, key: &Hash, module: &Module) {
        let Some(path) = self.path(key) else { return };
        let result = (|| -> std::io::Result<()> {
            let body = module.serialize().map_err(std::io::Error::other)?;
            let dir = path.parent().unwrap_or(&path);
            let mut b = std::fs::DirBuilder::new();
            b.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
            b.create(dir)?;
            let tmp = path.with_extension("tmp");
            let mut data = Vec::with_capacity(body.len() + 32);
            data.extend_from_slice(blake3::hash(&body).as_bytes());
            data.extend_from_slice(&body);
            let mut o = std::fs::OpenOptions::new();
            o.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
            std::io::Write::write_all(&mut o.open(&tmp)?, &data)?;
            std::fs::rename(&tmp, &path)
        })();
        if let Err(e) = result {
            // The cache is an optimisation: failing to write it must not fail the load.
            tracing::warn!(path = %path.display(), error = %e, "could not write compile cache");
        }
    }
}

/// Whether `path` belongs to the user running this process and nobody else may write it.
#[cfg(target_os = "linux")]
fn private(path: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    // /proc/self belongs to the process's effective user: its uid without unsafe code.
    let (Ok(me), Ok(m)) = (
        std::fs::metadata("/proc/self"),
        std::fs::symlink_metadata(path),
    ) else {
        return false;
    };
    m.uid() == me.uid() && m.mode() & 0o022 == 0
}

#[cfg(not(target_os = "linux"))]
fn private(_: &std::path::Path) -> bool {
    true
}
