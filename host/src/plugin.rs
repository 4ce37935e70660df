use std::fmt;
use std::sync::Arc;

use wasmtime::{InstancePre, Module, Store, Trap, TypedFunc};
use zhtp_abi::{Message, Status, v1};

use crate::compat::{GuestInfo, Kind};
use crate::engine::{Host, TICK};
use crate::env::{GuestAbort, HostState, LimitExceeded, OutputTooLarge};
use crate::error::{CallError, LoadError};
use crate::idle::Idle;

/// Bytes of the stack buffer a request is encoded into ([`Plugin::call_message`]).
const REQUEST_BUF: usize = 128;

/// A plugin's output decoded as a `what` ([`Message::decode`]: exact, strict): malformed bytes
/// are "not <what>" (`what` with its article), the rest of the codec's refusals are named as they are.
/// Inlined, like `Quote::decode`, so a decoded message is not copied through each `Result`.
#[inline]
pub(crate) fn decode_output<M: Message>(out: &[u8], what: &str) -> Result<M, CallError> {
    M::decode(out).map_err(|e| {
        CallError::BadOutput(if e.is_malformed() {
            format!("not {what}: {e}")
        } else {
            e.to_string()
        })
    })
}

/// A validated, compiled plugin with a pool of warm instances. Cheap to clone.
///
/// A call takes an idle instance (or creates one: ~µs with the pooling allocator), runs the
/// entry export under the host's limits and returns the instance to the pool if the call kept
/// the ABI (a valid answer or a refusal); any other outcome drops it. A reused instance keeps
/// its memory and globals (SPEC.md R-state-persist); the host resets only the input/output
/// registers and the log quota.
#[derive(Clone)]
pub struct Plugin {
    inner: Arc<Inner>,
}

struct Inner {
    host: Host,
    kind: Kind,
    info: GuestInfo,
    wasm: Arc<[u8]>,
    name: Arc<str>,
    pre: InstancePre<HostState>,
    pool: Idle<Warm>,
    deadline_ticks: u64,
}

/// A live instance ready for the next call.
struct Warm {
    store: Store<HostState>,
    entry: TypedFunc<(), i32>,
}

impl fmt::Debug for Plugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plugin")
            .field("kind", &self.inner.kind)
            .field("info", &self.inner.info)
            .finish_non_exhaustive()
    }
}

impl Plugin {
    pub(crate) fn new(
        host: Host,
        kind: Kind,
        info: GuestInfo,
        wasm: Arc<[u8]>,
        module: &Module,
    ) -> Result<Self, LoadError> {
        let pre = host
            .inner
            .linker_v1
            .instantiate_pre(module)
            .map_err(|e| LoadError::Compile(format!("{e:#}")))?;
        let timeout = host.limits().call_timeout();
        let deadline_ticks = timeout.as_nanos().div_ceil(TICK.as_nanos()) as u64 + 1;
        let pool = Idle::new(host.limits().pool_size());
        Ok(Self {
            inner: Arc::new(Inner {
                name: info.name.as_str().into(),
                host,
                kind,
                info,
                wasm,
                pre,
                pool,
                deadline_ticks,
            }),
        })
    }

    /// What validation learnt: hash, name, ABI version, size.
    pub fn info(&self) -> &GuestInfo {
        &self.inner.info
    }

    /// The wasm bytes the plugin was loaded from.
    pub fn wasm(&self) -> &[u8] {
        &self.inner.wasm
    }

    /// The plugin's kind.
    pub fn kind(&self) -> Kind {
        self.inner.kind
    }

    /// Instances currently idle in the pool.
    pub fn idle_instances(&self) -> usize {
        self.inner.pool.len()
    }

    fn instantiate(&self) -> Result<Box<Warm>, CallError> {
        let limits = self.inner.host.limits();
        let state = HostState::new(
            limits.memory(),
            limits.table_elements(),
            self.inner.name.clone(),
        );
        let mut store = Store::new(&self.inner.host.inner.engine, state);
        store.limiter(|s| &mut s.limiter);
        // Instantiation runs the start function and data initialisers: bound them too.
        store.set_epoch_deadline(self.inner.deadline_ticks);
        let instance =
            self.inner
                .pre
                .instantiate(&mut store)
                .map_err(|e| match classify(e, limits) {
                    CallError::Trap(msg) => CallError::Instantiate(msg),
                    other => other,
                })?;
        let memory = instance.get_memory(&mut store, "memory");
        store.data_mut().memory = memory;
        let entry = instance
            .get_typed_func::<(), i32>(&mut store, self.inner.kind.entry())
            .map_err(|e| CallError::Instantiate(format!("{e:#}")))?;
        Ok(Box::new(Warm { store, entry }))
    }

    /// Calls the entry export with `request`, encoded, and hands the output bytes to `decode`:
    /// what every typed plugin does. A request outside `ranges` (the spec's guarantees about
    /// requests, checked by the caller) is refused without a call.
    pub(crate) fn call_message<Q: Message, R>(
        &self,
        request: &Q,
        ranges: Result<(), &'static str>,
        decode: impl FnOnce(&[u8]) -> Result<R, CallError>,
    ) -> Result<R, CallError> {
        // On the stack: every v1 request is far shorter than this.
        const { assert!(Q::MAX_LEN <= REQUEST_BUF) };
        ranges.map_err(|e| CallError::InvalidRequest(e.into()))?;
        let mut buf = [0u8; REQUEST_BUF];
        let n = request
            .encode(&mut buf)
            .ok_or_else(|| CallError::InvalidRequest("cannot be encoded".into()))?;
        self.call_with(&buf[..n], decode)
    }

    /// Calls the entry export with `input` and hands the output bytes to `decode`.
    ///
    /// The output is only borrowed, so the hot path allocates nothing for it.
    pub fn call_with<R>(
        &self,
        input: &[u8],
        decode: impl FnOnce(&[u8]) -> Result<R, CallError>,
    ) -> Result<R, CallError> {
        if input.len() > v1::MAX_INPUT_LEN {
            return Err(CallError::InputTooLarge {
                len: input.len(),
                max: v1::MAX_INPUT_LEN,
            });
        }
        let mut warm = match self.inner.pool.take() {
            Some(w) => w,
            None => self.instantiate()?,
        };
        warm.store.data_mut().begin(input);
        warm.store.set_epoch_deadline(self.inner.deadline_ticks);
        let code = match warm.entry.call(&mut warm.store, ()) {
            Ok(code) => code,
            // The failed instance is dropped here; its pool slot is reset and freed (in a batch,
            // see `engine.rs`).
            Err(e) => return Err(classify(e, self.inner.host.limits())),
        };
        let result = {
            let state = warm.store.data();
            match Status::from_code(code) {
                Some(Status::Ok) if state.has_output => decode(&state.output),
                Some(Status::Ok) => Err(CallError::NoOutput),
                Some(Status::GuestError) => Err(CallError::Refused(
                    String::from_utf8_lossy(
                        &state.output[..state.output.len().min(v1::MAX_LOG_LEN)],
                    )
                    .into_owned(),
                )),
                _ => Err(CallError::BadStatus(code)),
            }
        };
        // SPEC R-state-discard: an instance is reused only after a call that kept the ABI
        // (a valid answer or a refusal); one that broke it may have broken its own state too.
        let kept_the_abi = matches!(result, Ok(_) | Err(CallError::Refused(_)));
        if kept_the_abi {
            self.inner.pool.put(warm);
        }
        result
    }

    /// Calls the entry export and returns a copy of the output.
    pub fn call(&self, input: &[u8]) -> Result<Vec<u8>, CallError> {
        self.call_with(input, |out| Ok(out.to_vec()))
    }
}

/// Turns a wasmtime error into the typed error of what the guest did.
fn classify(e: wasmtime::Error, limits: &crate::Limits) -> CallError {
    if let Some(a) = e.downcast_ref::<GuestAbort>() {
        return CallError::Aborted {
            code: a.code,
            message: a.message.clone(),
        };
    }
    if let Some(o) = e.downcast_ref::<OutputTooLarge>() {
        return CallError::OutputTooLarge {
            len: o.len,
            max: v1::MAX_OUTPUT_LEN,
        };
    }
    if let Some(l) = e.downcast_ref::<LimitExceeded>() {
        return match *l {
            LimitExceeded::Memory { desired, limit } => CallError::MemoryLimit { desired, limit },
            LimitExceeded::Table { .. } => CallError::Trap(l.to_string()),
        };
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => CallError::Timeout {
            limit_ms: limits.call_timeout().as_millis() as u64,
        },
        Some(Trap::StackOverflow) => CallError::StackOverflow,
        Some(t) => CallError::Trap(t.to_string()),
        None => CallError::Trap(format!("{e:#}")),
    }
}
