//! The contract profile: deterministic, metered execution of smart contracts over a key-value
//! state the caller provides (`host/SPEC.md` section 14).
//!
//! Determinism: one engine for contracts, configured so the same module, message and state
//! give the same result and gas on every node of a build: fuel metering with a pinned cost
//! table ([`zhtp_abi::contract`]), NaN canonicalization, no threads, no SIMD (relaxed or not),
//! no memory64 or multi-memory, no wall clock (time is an input of the call), a fresh instance
//! for every call (nothing survives a call but its committed writes).
//!
//! Atomicity: a call's writes and transfers are kept in the [`Outcome`] and applied by the
//! caller only when the call succeeded; a trap, running out of gas, a limit breach or a
//! refusal returns no writes at all.

mod imports;
pub mod root;

pub(crate) use imports::charge_env;

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::{
    Config, Engine, ExternType, InstancePre, Linker, Module, OperatorCost, Store, Trap, ValType,
};
use zhtp_abi::contract::{self as abi, Ty};
use zhtp_abi::{Status, v1};
use zhtp_types::Hash;

use crate::compat::{self, GuestInfo};
use crate::env::{GuestAbort, HostState, LimitExceeded, OutputTooLarge};
use crate::error::LoadError;
use crate::limits::Limits;

pub use root::StateHash;

/// Which entry a call runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Entry {
    /// `contract_instantiate`: once, creating the address's state.
    Instantiate,
    /// `contract_execute`: writes state, moves funds.
    Execute,
    /// `contract_query`: reads only.
    Query,
}

impl Entry {
    /// The export this entry calls.
    pub const fn export(self) -> &'static str {
        match self {
            Entry::Instantiate => abi::INSTANTIATE,
            Entry::Execute => abi::EXECUTE,
            Entry::Query => abi::QUERY,
        }
    }
}

/// One key and its value.
pub type Pair = (Vec<u8>, Vec<u8>);

/// The committed state a call reads: the contract's keys and values before the call.
pub trait State {
    /// The value of `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, String>;
    /// The first entry with `from <= key < end` (`end`: `None` for no bound).
    fn next(&self, from: &[u8], end: Option<&[u8]>) -> Result<Option<Pair>, String>;
}

/// An in-memory [`State`]: tests, and a state being caught up.
impl State for BTreeMap<Vec<u8>, Vec<u8>> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, String> {
        Ok(BTreeMap::get(self, key).cloned())
    }

    fn next(&self, from: &[u8], end: Option<&[u8]>) -> Result<Option<Pair>, String> {
        Ok(self
            .range(from.to_vec()..)
            .next()
            .filter(|(k, _)| end.is_none_or(|e| k.as_slice() < e))
            .map(|(k, v)| (k.clone(), v.clone())))
    }
}

/// One call of a contract.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// Which entry.
    pub entry: Entry,
    /// The message, as the caller sent it (the SDK's contracts take JSON).
    pub msg: Vec<u8>,
    /// Who calls: an Ed25519 key.
    pub caller: [u8; 32],
    /// The contract's address.
    pub address: [u8; 32],
    /// The state version the call runs against.
    pub sequence: u64,
    /// Unix seconds, chosen by the caller.
    pub time: u64,
    /// µZHTP the caller sends with the call (credited to the contract if it succeeds).
    pub funds: u64,
    /// µZHTP the contract holds before the call.
    pub balance: u64,
    /// The most gas the call may use.
    pub gas_limit: u64,
}

/// One key a call changed: what it held before the call and after (`None`: absent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Write {
    /// The key.
    pub key: Vec<u8>,
    /// Its value before the call.
    pub before: Option<Vec<u8>>,
    /// Its value after.
    pub after: Option<Vec<u8>>,
}

/// What a call did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The contract's answer (its output), or why the call failed.
    pub result: Result<Vec<u8>, ContractError>,
    /// Gas used, failed calls included.
    pub gas_used: u64,
    /// The keys it changed, by key (empty unless it succeeded; queries never write).
    pub writes: Vec<Write>,
    /// Payments out of the contract's account, in order (empty unless it succeeded).
    pub transfers: Vec<([u8; 32], u64)>,
}

impl Outcome {
    /// `hash` with this call's writes applied.
    pub fn apply_to(&self, hash: &mut StateHash) {
        hash.apply(
            self.writes
                .iter()
                .map(|w| (w.key.as_slice(), w.before.as_deref(), w.after.as_deref())),
        );
    }
}

/// Why a contract call failed. Every failure discards the call's writes and transfers.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum ContractError {
    /// The contract refused the message (status 1) and said why.
    #[error("the contract refused: {0}")]
    Refused(String),
    /// The call used all the gas it was given.
    #[error("out of gas: the call's limit is {limit}")]
    OutOfGas {
        /// The gas limit.
        limit: u64,
    },
    /// The contract asked for more memory than the cap.
    #[error("the contract tried to grow its memory to {desired} bytes; the limit is {limit}")]
    MemoryLimit {
        /// Bytes asked for.
        desired: usize,
        /// The cap.
        limit: usize,
    },
    /// Unbounded recursion.
    #[error("the contract overflowed its stack")]
    StackOverflow,
    /// A write over the limits (key or value too long, too many bytes written).
    #[error("the contract wrote too much: {0}")]
    WriteLimit(String),
    /// The contract called `abort` (a panic in an SDK contract ends here).
    #[error("the contract aborted with code {code}: {message}")]
    Aborted {
        /// Its code (-1 for a panic).
        code: i32,
        /// Its message.
        message: String,
    },
    /// The output is larger than the ABI allows.
    #[error("the contract's output of {len} bytes is over the limit of {max}")]
    OutputTooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The entry returned success without an output, or a status no entry returns.
    #[error("the contract broke the ABI: {0}")]
    Abi(String),
    /// Any other trap.
    #[error("the contract trapped: {0}")]
    Trap(String),
    /// The message is over the ABI's input limit, or the gas limit over the maximum.
    #[error("invalid call: {0}")]
    InvalidCall(String),
    /// The state could not be read (the node's store failed): not the contract's doing.
    #[error("the contract's state could not be read: {0}")]
    State(String),
}

/// A compiled, validated contract module. Cheap to clone.
#[derive(Clone)]
pub struct Code {
    inner: Arc<CodeInner>,
}

struct CodeInner {
    info: GuestInfo,
    pre: InstancePre<HostState>,
    engine: Engine,
    slots: Arc<Slots>,
}

/// Instances alive at once, at most the pool's size: a call waits for a slot rather than
/// failing to instantiate, so how busy a node is never changes a call's result.
#[derive(Debug)]
struct Slots {
    free: std::sync::Mutex<u32>,
    freed: std::sync::Condvar,
}

impl Slots {
    fn new(n: u32) -> Self {
        Self {
            free: std::sync::Mutex::new(n),
            freed: std::sync::Condvar::new(),
        }
    }

    fn take(&self) -> SlotGuard<'_> {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        while *free == 0 {
            free = self.freed.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        *free -= 1;
        SlotGuard(self)
    }
}

struct SlotGuard<'a>(&'a Slots);

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.0.freed.notify_one();
    }
}

impl std::fmt::Debug for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Code")
            .field("info", &self.inner.info)
            .finish_non_exhaustive()
    }
}

/// The contract host: a deterministic engine and the v1 contract linker.
#[derive(Clone)]
pub struct Contracts {
    engine: Engine,
    linker: Arc<Linker<HostState>>,
    limits: Limits,
    slots: Arc<Slots>,
}

impl std::fmt::Debug for Contracts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Contracts")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// The operator costs, pinned here rather than taken from wasmtime's defaults, so an upgrade
/// of wasmtime cannot change a call's gas: 1 for every operator but the ones that emit no work
/// (`nop`, `drop`, `block`, `loop`, `else`, `end`, `return`, `unreachable`: 0), one per byte of
/// bulk memory and table operations, and [`abi::GROW_GAS_PER_PAGE`] per page grown.
fn operator_cost() -> OperatorCost {
    let mut cost = OperatorCost::new();
    cost.variable.memory_copy_per_byte = 1;
    cost.variable.memory_fill_per_byte = 1;
    cost.variable.memory_init_per_byte = 1;
    cost.variable.memory_grow_per_page = abi::GROW_GAS_PER_PAGE;
    cost.variable.table_copy_per_element = 1;
    cost.variable.table_fill_per_element = 1;
    cost.variable.table_init_per_element = 1;
    cost.variable.table_grow_per_element = 1;
    cost
}

/// Contract instances alive at once in the pooling allocator. A call beyond it waits for a
/// slot (see `Slots`) rather than failing: how busy a node is must never change a result.
const POOL_INSTANCES: u32 = 256;

/// The deterministic engine: WebAssembly 2.0 without SIMD, every later proposal off by name
/// (not left to wasmtime's defaults). Threads need wasmtime's `threads` feature, which this
/// build leaves out: a shared memory is refused at load.
///
/// `pooled`: instances come from wasmtime's pooling allocator (slots reserved once, a freed
/// slot's pages given back with `madvise`), which makes a fresh instance per call cheap;
/// otherwise each instance maps its memory anew.
fn engine(pooled: bool) -> wasmtime::Result<Engine> {
    let mut config = Config::new();
    if pooled {
        let mut pool = wasmtime::PoolingAllocationConfig::default();
        pool.total_core_instances(POOL_INSTANCES)
            .total_memories(POOL_INSTANCES)
            .total_tables(POOL_INSTANCES)
            .max_memories_per_module(1)
            .max_tables_per_module(1)
            .table_elements(abi::MAX_TABLE)
            .max_memory_size(abi::MAX_MEMORY)
            // A freed slot's pages are given back in batches of 32 regions (a memory and a
            // table per instance: about 16 calls) instead of one call at a time, which shares
            // the TLB flushes (warm increment 19 -> 13 µs here).
            // A slot waiting in the batch is not handed out until its pages are reset.
            .decommit_batch_size(32)
            // Tables are reset with `memset` rather than unmapped: at the cap (10,000 8-byte
            // elements) that is cheaper than faulting the pages in again (13 -> 10 µs). Linear
            // memories are not: a Rust guest touches pages a megabyte in (its stack), and
            // `memset` of that much cost more than the faults (48 µs). No `pagemap_scan`: its
            // reset skips pages that are not resident (bytecodealliance/wasmtime#14357).
            .table_keep_resident(abi::MAX_TABLE * 8);
        config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
    }
    config
        .consume_fuel(true)
        .operator_cost(operator_cost())
        .cranelift_nan_canonicalization(true)
        .wasm_bulk_memory(true)
        .wasm_multi_value(true)
        .wasm_simd(false)
        .wasm_relaxed_simd(false)
        .wasm_multi_memory(false)
        .wasm_memory64(false)
        .wasm_tail_call(false)
        .wasm_extended_const(false)
        .wasm_wide_arithmetic(false)
        .wasm_custom_page_sizes(false)
        .wasm_branch_hinting(false)
        .wasm_gc(false)
        .wasm_stack_switching(false)
        .wasm_shared_everything_threads(false)
        .max_wasm_stack(abi::MAX_STACK);
    Engine::new(&config)
}

/// The limits of every contract (the ABI's, not a node's choice).
fn contract_limits() -> Limits {
    Limits::default()
        .with_memory(abi::MAX_MEMORY)
        .with_code_size(abi::MAX_CODE)
        .with_stack(abi::MAX_STACK)
}

impl Contracts {
    /// A contract host. Its limits are the ABI's (`zhtp_abi::contract::MAX_*`), the same on
    /// every node; gas, not time, bounds a call.
    pub fn new() -> Result<Self, LoadError> {
        Self::build(true)
    }

    /// A contract host that maps every instance's memory anew instead of taking it from a
    /// pool: what the pool saves, for benches.
    #[doc(hidden)]
    pub fn on_demand() -> Result<Self, LoadError> {
        Self::build(false)
    }

    fn build(pooled: bool) -> Result<Self, LoadError> {
        let limits = contract_limits();
        let engine = engine(pooled).map_err(|e| LoadError::Compile(format!("{e:#}")))?;
        let mut linker =
            crate::env::linker_v1(&engine).map_err(|e| LoadError::Compile(format!("{e:#}")))?;
        imports::add(&mut linker).map_err(|e| LoadError::Compile(format!("{e:#}")))?;
        Ok(Self {
            engine,
            linker: Arc::new(linker),
            limits,
            slots: Arc::new(Slots::new(POOL_INSTANCES)),
        })
    }

    /// Validates and compiles a contract module (`host/SPEC.md` 14.1): size, marker, the
    /// three entries, imports only from the contract allow-list with their exact signatures,
    /// its memory under the cap, and wasm features the deterministic engine accepts.
    pub fn load(&self, wasm: &[u8]) -> Result<Code, LoadError> {
        let (hash, meta) = compat::check_bytes(wasm, &self.limits)?;
        let module = Module::new(&self.engine, wasm)
            .map_err(|e| LoadError::InvalidWasm(format!("{e:#}")))?;
        let version = compat::check_marker(&module)?;
        check_imports(&module)?;
        for entry in abi::ENTRIES {
            match module.get_export(entry) {
                Some(ExternType::Func(f))
                    if f.params().len() == 0
                        && f.results().len() == 1
                        && f.results().all(|t| matches!(t, ValType::I32)) => {}
                _ => {
                    return Err(LoadError::MissingExport {
                        name: entry,
                        expected: "func () -> i32",
                        kind: "contract",
                    });
                }
            }
        }
        compat::check_memory(&module, &self.limits)?;
        let pre = self
            .linker
            .instantiate_pre(&module)
            .map_err(|e| LoadError::Compile(format!("{e:#}")))?;
        let name = meta.unwrap_or_else(|| format!("unnamed@{}", hash.fmt_short()));
        Ok(Code {
            inner: Arc::new(CodeInner {
                info: GuestInfo {
                    hash,
                    name,
                    abi_version: version,
                    size: wasm.len(),
                },
                pre,
                engine: self.engine.clone(),
                slots: self.slots.clone(),
            }),
        })
    }
}

fn ty_name(t: Ty) -> &'static str {
    match t {
        Ty::I32 => "i32",
        Ty::I64 => "i64",
    }
}

fn same_type(v: &ValType, t: Ty) -> bool {
    matches!((v, t), (ValType::I32, Ty::I32) | (ValType::I64, Ty::I64))
}

fn allowed_list() -> String {
    v1::ENV_FUNCTIONS
        .iter()
        .map(|(n, _, _)| (v1::ENV_MODULE, *n))
        .chain(abi::IMPORTS.iter().map(|(m, n, _, _)| (*m, *n)))
        .map(|(m, n)| format!("{m}::{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every import from `zhtp:env/v1` or the contract modules, with its exact signature.
fn check_imports(module: &Module) -> Result<(), LoadError> {
    for import in module.imports() {
        let (m, n) = (import.module(), import.name());
        let spec: Option<(Vec<Ty>, Vec<Ty>)> = if m == v1::ENV_MODULE {
            v1::ENV_FUNCTIONS
                .iter()
                .find(|(name, _, _)| *name == n)
                .map(|&(_, p, r)| (vec![Ty::I32; p], vec![Ty::I32; r]))
        } else {
            abi::IMPORTS
                .iter()
                .find(|(module, name, _, _)| *module == m && *name == n)
                .map(|(_, _, p, r)| (p.to_vec(), r.to_vec()))
        };
        let forbidden = || LoadError::ForbiddenImport {
            module: m.to_owned(),
            name: n.to_owned(),
            kind: "contract",
            allowed: allowed_list(),
        };
        let (Some((params, results)), ExternType::Func(f)) = (spec, import.ty()) else {
            return Err(forbidden());
        };
        let ok = f.params().len() == params.len()
            && f.results().len() == results.len()
            && f.params().zip(&params).all(|(v, t)| same_type(&v, *t))
            && f.results().zip(&results).all(|(v, t)| same_type(&v, *t));
        if !ok {
            let list = |ts: &[Ty]| {
                ts.iter()
                    .map(|t| ty_name(*t))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let shown = |it: &mut dyn Iterator<Item = ValType>| {
                it.map(|t| t.to_string()).collect::<Vec<_>>().join(", ")
            };
            return Err(LoadError::ImportSignature {
                module: m.to_owned(),
                name: n.to_owned(),
                expected: format!("({}) -> ({})", list(&params), list(&results)),
                found: format!(
                    "({}) -> ({})",
                    shown(&mut f.params()),
                    shown(&mut f.results())
                ),
            });
        }
    }
    Ok(())
}

/// A call in progress: what the contract imports see and change.
pub(crate) struct Running {
    pub(crate) call: Call,
    pub(crate) state: Arc<dyn State + Send + Sync>,
    /// Keys written so far: their value now (`None`: removed).
    pub(crate) overlay: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    pub(crate) written: usize,
    pub(crate) transfers: Vec<([u8; 32], u64)>,
    /// The sum of `transfers`.
    pub(crate) paid: u64,
    /// Why the call must end, when an import decided so (the trap's cause).
    pub(crate) failure: Option<ContractError>,
}

impl Code {
    /// What validation learnt: hash, name, ABI version, size.
    pub fn info(&self) -> &GuestInfo {
        &self.inner.info
    }

    /// The code hash (BLAKE3 of the wasm).
    pub fn hash(&self) -> Hash {
        self.inner.info.hash
    }

    /// Runs `call` against `state` on a fresh instance. Never fails itself: every failure is
    /// the [`Outcome`]'s result, with the gas used up to it and no writes.
    pub fn run(&self, call: Call, state: Arc<dyn State + Send + Sync>) -> Outcome {
        let limit = call.gas_limit;
        let failed = |e: ContractError, gas_used: u64| Outcome {
            result: Err(e),
            gas_used,
            writes: Vec::new(),
            transfers: Vec::new(),
        };
        if call.msg.len() > v1::MAX_INPUT_LEN {
            return failed(
                ContractError::InvalidCall(format!(
                    "a message of {} bytes is over the limit of {}",
                    call.msg.len(),
                    v1::MAX_INPUT_LEN
                )),
                0,
            );
        }
        if limit > abi::MAX_GAS_LIMIT {
            return failed(
                ContractError::InvalidCall(format!(
                    "a gas limit of {limit} is over the maximum of {}",
                    abi::MAX_GAS_LIMIT
                )),
                0,
            );
        }
        if limit < abi::gas::BASE {
            return failed(ContractError::OutOfGas { limit }, limit);
        }
        let mut host = HostState::new(
            abi::MAX_MEMORY,
            abi::MAX_TABLE,
            self.inner.info.name.as_str().into(),
        );
        host.begin(&call.msg);
        let entry = call.entry;
        host.contract = Some(Box::new(Running {
            call,
            state,
            overlay: BTreeMap::new(),
            written: 0,
            transfers: Vec::new(),
            paid: 0,
            failure: None,
        }));
        // Declared before the store: dropped after it, so the slot is free when it is given back.
        let _slot = self.inner.slots.take();
        let mut store = Store::new(&self.inner.engine, host);
        store.limiter(|s| &mut s.limiter);
        store.set_fuel(limit - abi::gas::BASE).expect("fuel is on");
        let result = self.enter(&mut store, entry, limit);
        let mut gas_used = limit.saturating_sub(store.get_fuel().unwrap_or(0));
        // A trap inside wasm code (not in a host function, where the count is exact) may lose
        // the gas its frame used since the last call: such a call is charged its whole limit,
        // the same on every replica.
        if matches!(
            result,
            Err(ContractError::Trap(_)
                | ContractError::StackOverflow
                | ContractError::MemoryLimit { .. })
        ) {
            gas_used = limit;
        }
        let Some(mut running) = store.data_mut().contract.take() else {
            return failed(
                ContractError::Abi("the call's context went missing".into()),
                gas_used,
            );
        };
        match result {
            Ok(output) => {
                let mut writes = Vec::with_capacity(running.overlay.len());
                for (key, after) in std::mem::take(&mut running.overlay) {
                    let before = match running.state.get(&key) {
                        Ok(v) => v,
                        Err(e) => return failed(ContractError::State(e), gas_used),
                    };
                    if before != after {
                        writes.push(Write { key, before, after });
                    }
                }
                Outcome {
                    result: Ok(output),
                    gas_used,
                    writes,
                    transfers: std::mem::take(&mut running.transfers),
                }
            }
            Err(e) => failed(running.failure.take().unwrap_or(e), gas_used),
        }
    }

    /// Instantiates and calls `entry`: its output, or why it failed.
    fn enter(
        &self,
        store: &mut Store<HostState>,
        entry: Entry,
        limit: u64,
    ) -> Result<Vec<u8>, ContractError> {
        let classify = |e: wasmtime::Error| classify(e, limit);
        let instance = self.inner.pre.instantiate(&mut *store).map_err(classify)?;
        let memory = instance.get_memory(&mut *store, "memory");
        store.data_mut().memory = memory;
        let func = instance
            .get_typed_func::<(), i32>(&mut *store, entry.export())
            .map_err(|e| ContractError::Abi(format!("{e:#}")))?;
        let code = func.call(&mut *store, ()).map_err(classify)?;
        let state = store.data();
        match Status::from_code(code) {
            Some(Status::Ok) if state.has_output => Ok(state.output.clone()),
            Some(Status::Ok) => Err(ContractError::Abi(
                "it returned success but set no output".into(),
            )),
            Some(Status::GuestError) => Err(ContractError::Refused(
                String::from_utf8_lossy(&state.output[..state.output.len().min(v1::MAX_LOG_LEN)])
                    .into_owned(),
            )),
            _ => Err(ContractError::Abi(format!(
                "it returned status {code}, which no entry returns"
            ))),
        }
    }
}

/// The typed error of a trap.
fn classify(e: wasmtime::Error, limit: u64) -> ContractError {
    if let Some(a) = e.downcast_ref::<GuestAbort>() {
        return ContractError::Aborted {
            code: a.code,
            message: a.message.clone(),
        };
    }
    if let Some(o) = e.downcast_ref::<OutputTooLarge>() {
        return ContractError::OutputTooLarge {
            len: o.len,
            max: v1::MAX_OUTPUT_LEN,
        };
    }
    if let Some(l) = e.downcast_ref::<LimitExceeded>() {
        return match *l {
            LimitExceeded::Memory { desired, limit } => {
                ContractError::MemoryLimit { desired, limit }
            }
            LimitExceeded::Table { .. } => ContractError::Trap(l.to_string()),
        };
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => ContractError::OutOfGas { limit },
        Some(Trap::StackOverflow) => ContractError::StackOverflow,
        Some(t) => ContractError::Trap(t.to_string()),
        None => ContractError::Trap(format!("{e:#}")),
    }
}
