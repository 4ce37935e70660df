use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, Linker, PoolingAllocationConfig};

use crate::cache::{ModuleCache, Seen};
use crate::compat::{self, GuestInfo, Kind};
use crate::env::{self, HostState};
use crate::error::LoadError;
use crate::limits::Limits;
use crate::plugin::Plugin;

/// How often the epoch advances. The per-call deadline is rounded up to whole ticks, so a
/// timeout fires between `timeout` and `timeout + 2 × TICK`.
pub(crate) const TICK: Duration = Duration::from_millis(2);

/// Instances the pooling allocator can hold at once, across all plugins of this host.
const POOL_INSTANCES: u32 = 256;

/// The wasm host of a node: one engine, one frozen linker per ABI version, one compile cache.
/// Cheap to clone; clones share everything.
#[derive(Clone, Debug)]
pub struct Host {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) engine: Engine,
    pub(crate) linker_v1: Linker<HostState>,
    pub(crate) limits: Limits,
    pub(crate) cache: ModuleCache,
}

impl Host {
    /// A host with `limits`, caching compiled modules in memory only.
    pub fn new(limits: Limits) -> Result<Self, LoadError> {
        Self::with_cache_dir(limits, None)
    }

    /// A host whose compile cache also persists under `cache_dir`.
    pub fn with_cache_dir(limits: Limits, cache_dir: Option<PathBuf>) -> Result<Self, LoadError> {
        let engine = build_engine(&limits).map_err(|e| LoadError::Compile(format!("{e:#}")))?;
        let linker_v1 =
            env::linker_v1(&engine).map_err(|e| LoadError::Compile(format!("{e:#}")))?;
        let cache = ModuleCache::new(&engine, cache_dir);
        spawn_ticker(&engine);
        Ok(Self {
            inner: Arc::new(Inner {
                engine,
                linker_v1,
                limits,
                cache,
            }),
        })
    }

    /// The limits every guest of this host runs under.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// The compile cache.
    pub fn cache(&self) -> &ModuleCache {
        &self.inner.cache
    }

    /// The underlying wasmtime engine (for benchmarks that compare against raw wasmtime).
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// Validates and compiles `wasm` as a plugin of `kind`. Nothing is instantiated unless every
    /// check passes.
    pub fn load(&self, kind: Kind, wasm: &[u8]) -> Result<Plugin, LoadError> {
        if let Some(seen) = self.inner.cache.find(wasm) {
            return self.plugin(kind, &seen);
        }
        let limits = &self.inner.limits;
        let (hash, meta) = compat::check_bytes(wasm, limits)?;
        let module = self.inner.cache.get_or_compile(
            &self.inner.engine,
            &hash,
            wasm,
            |e| LoadError::InvalidWasm(format!("{e:#}")),
            |m| compat::check_module(m, kind, limits).map(drop),
        )?;
        let seen = self.inner.cache.remember(Seen {
            wasm: wasm.into(),
            hash,
            meta,
            module,
        });
        self.plugin(kind, &seen)
    }

    /// A plugin of `kind` over a module that passed the byte checks.
    fn plugin(&self, kind: Kind, seen: &Seen) -> Result<Plugin, LoadError> {
        // The module may have entered the cache as another kind: check it for this one (a
        // walk over imports and exports).
        let version = compat::check_module(&seen.module, kind, &self.inner.limits)?;
        let name = seen
            .meta
            .clone()
            .unwrap_or_else(|| format!("unnamed@{}", seen.hash.fmt_short()));
        let info = GuestInfo {
            hash: seen.hash,
            name,
            abi_version: version,
            size: seen.wasm.len(),
        };
        Plugin::new(self.clone(), kind, info, seen.wasm.clone(), &seen.module)
    }
}

/// The engine: epoch interruption, the stack cap and a pooling allocator sized by `limits`.
///
/// A new instance (a pool miss, a hot swap, a call that broke the ABI) costs mostly page
/// faults and the `madvise` that gives a freed slot's pages back. Two settings (measured with
/// `quote_loop` in `benches/plugins`, pricing-standard; each alone saves about 2 µs, the two
/// together 5):
/// - data segments are copied in at instantiation instead of mapped copy-on-write from an
///   image (`memory_init_cow(false)`). A plugin writes its globals on its first call, so the
///   image page was faulted in and then copied again; a plain copy into fresh pages is one
///   fault. The copy is bounded by the code-size cap (`Limits::code_size`, 1 MiB of wasm by
///   default). Contracts keep the image: their larger data made the copy cost more (8.7 ->
///   11.5 µs per increment);
/// - freed slots are reset in batches (`decommit_batch_size` counts regions: 32 is about 16
///   instances, each a memory and a table): the TLB flush of each `madvise` (an interrupt to
///   the other core on this VM) is shared. wasmtime returns a slot to its free list only
///   after the batch has reset it, and flushes the batch when the pool runs out of slots.
///
/// New instance and its first quote, in `quote_loop`: 8.6 -> 3.9 µs; cache hit in memory and
/// first quote: 10.7 -> 5.7 µs.
///
/// wasmtime 48 can also keep a slot's touched pages and reset them with `memset`
/// (`pagemap_scan` + `linear_memory_keep_resident`; a new instance and its quote went from
/// 21 to 8–11 µs here), but its scan finds only pages present
/// in RAM: a page written by one instance and swapped out (or migrating) when the slot is freed
/// is neither reset nor released, and the slot's next instance, possibly of another plugin,
/// reads it (bytecodealliance/wasmtime#14357). Not worth a leak between guests.
fn build_engine(limits: &Limits) -> wasmtime::Result<Engine> {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_core_instances(POOL_INSTANCES)
        .total_memories(POOL_INSTANCES)
        .total_tables(POOL_INSTANCES)
        .max_memories_per_module(1)
        .max_tables_per_module(1)
        .table_elements(limits.table_elements())
        .max_memory_size(limits.memory())
        // A slot waiting in the batch is not handed out until its pages are reset.
        // (`table_keep_resident`, which helps the contract engine, measured nothing here.)
        .decommit_batch_size(32);
    let mut config = Config::new();
    config
        .memory_init_cow(false)
        .epoch_interruption(true)
        .max_wasm_stack(limits.stack())
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    #[cfg(feature = "profiling")]
    if std::env::var_os("ZHTP_WASM_PERFMAP").is_some() {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    Engine::new(&config)
}

/// Advances the engine's epoch every [`TICK`] until the engine is dropped.
fn spawn_ticker(engine: &Engine) {
    let weak = engine.weak();
    let spawned = std::thread::Builder::new()
        .name("zhtp-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(TICK);
            }
        });
    if let Err(e) = spawned {
        // Without the ticker deadlines never fire; better to say so loudly than to hang later.
        tracing::error!(error = %e, "could not start the epoch ticker: plugin timeouts are disabled");
    }
}
