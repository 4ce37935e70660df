//! The `zhtp:env/v1` import module: the guest's only window on the host in the plugin profile.
//!
//! Every function validates its pointer/length arguments against the guest's memory and returns
//! a [`Status`] instead of trusting them. Conditions that must end the call (an oversize output,
//! `abort`) return a typed error that becomes a trap the plugin layer reports as a
//! [`CallError`](crate::CallError).

use std::fmt;

use wasmtime::{Caller, Engine, Linker, Memory, ResourceLimiter};

use crate::contract::charge_env;
use zhtp_abi::{Status, v1};

/// Per-instance host state: the call's registers and the instance's limiter.
pub(crate) struct HostState {
    pub(crate) input: Vec<u8>,
    pub(crate) output: Vec<u8>,
    pub(crate) has_output: bool,
    pub(crate) logs: u32,
    pub(crate) memory: Option<Memory>,
    pub(crate) limiter: Limiter,
    pub(crate) plugin: std::sync::Arc<str>,
    /// A contract call's context (the contract profile's imports); `None` for plugins.
    pub(crate) contract: Option<Box<crate::contract::Running>>,
}

impl HostState {
    pub(crate) fn new(max_memory: usize, max_table: usize, plugin: std::sync::Arc<str>) -> Self {
        Self {
            input: Vec::new(),
            output: Vec::new(),
            has_output: false,
            logs: 0,
            memory: None,
            limiter: Limiter {
                max_memory,
                max_table,
            },
            plugin,
            contract: None,
        }
    }

    /// Prepares the registers for a new call.
    pub(crate) fn begin(&mut self, input: &[u8]) {
        self.input.clear();
        self.input.extend_from_slice(input);
        self.output.clear();
        self.has_output = false;
        self.logs = 0;
    }
}

/// Enforces the memory and table caps. Refusing growth with an error (rather than letting
/// `memory.grow` return -1) ends the call with a typed [`LimitExceeded`], so a memory bomb is
/// reported as such.
pub(crate) struct Limiter {
    max_memory: usize,
    max_table: usize,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_memory {
            return Err(wasmtime::Error::new(LimitExceeded::Memory {
                desired,
                limit: self.max_memory,
            }));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_table {
            return Err(wasmtime::Error::new(LimitExceeded::Table {
                desired,
                limit: self.max_table,
            }));
        }
        Ok(true)
    }
}

/// A resource cap was hit.
#[derive(Debug)]
pub(crate) enum LimitExceeded {
    Memory { desired: usize, limit: usize },
    Table { desired: usize, limit: usize },
}

impl fmt::Display for LimitExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Memory { desired, limit } => {
                write!(f, "memory growth to {desired} bytes exceeds {limit}")
            }
            Self::Table { desired, limit } => {
                write!(f, "table growth to {desired} elements exceeds {limit}")
            }
        }
    }
}
impl std::error::Error for LimitExceeded {}

/// The guest called `abort`.
#[derive(Debug)]
pub(crate) struct GuestAbort {
    pub(crate) code: i32,
    pub(crate) message: String,
}
impl fmt::Display for GuestAbort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "guest aborted with code {}: {}", self.code, self.message)
    }
}
impl std::error::Error for GuestAbort {}

/// The guest tried to set an output over the ABI limit.
#[derive(Debug)]
pub(crate) struct OutputTooLarge {
    pub(crate) len: usize,
}
impl fmt::Display for OutputTooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "output of {} bytes exceeds {}",
            self.len,
            v1::MAX_OUTPUT_LEN
        )
    }
}
impl std::error::Error for OutputTooLarge {}

/// `[ptr, ptr + len)` as a checked range, or the status to return.
fn span(ptr: i32, len: i32) -> Result<std::ops::Range<usize>, Status> {
    if ptr < 0 || len < 0 {
        return Err(Status::InvalidArgument);
    }
    let (ptr, len) = (ptr as usize, len as usize);
    Ok(ptr..ptr.checked_add(len).ok_or(Status::OutOfBounds)?)
}

/// The bytes of a guest string for `log`/`abort`, truncated to `MAX_LOG_LEN`.
fn guest_bytes<'a>(
    caller: &'a Caller<'_, HostState>,
    ptr: i32,
    len: i32,
) -> Result<&'a [u8], Status> {
    let range = span(ptr, len.min(v1::MAX_LOG_LEN as i32))?;
    let mem = caller.data().memory.ok_or(Status::OutOfBounds)?;
    mem.data(caller).get(range).ok_or(Status::OutOfBounds)
}

/// A guest string for `log`/`abort`, truncated to `MAX_LOG_LEN` and lossily decoded.
fn guest_text(caller: &Caller<'_, HostState>, ptr: i32, len: i32) -> Result<String, Status> {
    guest_bytes(caller, ptr, len).map(|b| String::from_utf8_lossy(b).into_owned())
}

/// Builds the frozen v1 linker. Never edit a v1 function's behaviour: add v2 instead.
pub(crate) fn linker_v1(engine: &Engine) -> wasmtime::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    let m = v1::ENV_MODULE;
    // A contract pays for each of these in gas (`charge_env`: nothing for a plugin).
    linker.func_wrap(
        m,
        v1::INPUT_LEN,
        |mut caller: Caller<'_, HostState>| -> wasmtime::Result<i32> {
            charge_env(&mut caller, 0)?;
            Ok(caller.data().input.len() as i32)
        },
    )?;
    linker.func_wrap(
        m,
        v1::INPUT_READ,
        |mut caller: Caller<'_, HostState>, ptr: i32, len: i32| -> wasmtime::Result<i32> {
            // SPEC R-fn-input_read: a negative length is an argument error, like a negative
            // pointer.
            if len < 0 {
                return Ok(Status::InvalidArgument.code());
            }
            let n = caller.data().input.len().min(len as usize);
            charge_env(&mut caller, n as u64)?;
            let range = match span(ptr, n as i32) {
                Ok(r) => r,
                Err(s) => return Ok(s.code()),
            };
            let Some(mem) = caller.data().memory else {
                return Ok(Status::OutOfBounds.code());
            };
            let (data, state) = mem.data_and_store_mut(&mut caller);
            Ok(match data.get_mut(range) {
                Some(dst) => {
                    dst.copy_from_slice(&state.input[..n]);
                    n as i32
                }
                None => Status::OutOfBounds.code(),
            })
        },
    )?;
    linker.func_wrap(
        m,
        v1::OUTPUT_SET,
        |mut caller: Caller<'_, HostState>, ptr: i32, len: i32| -> wasmtime::Result<i32> {
            if len > 0 && len as usize > v1::MAX_OUTPUT_LEN {
                return Err(wasmtime::Error::new(OutputTooLarge { len: len as usize }));
            }
            charge_env(&mut caller, len.max(0) as u64)?;
            let range = match span(ptr, len) {
                Ok(r) => r,
                Err(s) => return Ok(s.code()),
            };
            let Some(mem) = caller.data().memory else {
                return Ok(Status::OutOfBounds.code());
            };
            let (data, state) = mem.data_and_store_mut(&mut caller);
            let Some(src) = data.get(range) else {
                return Ok(Status::OutOfBounds.code());
            };
            state.output.clear();
            state.output.extend_from_slice(src);
            state.has_output = true;
            Ok(Status::Ok.code())
        },
    )?;
    linker.func_wrap(
        m,
        v1::LOG,
        |mut caller: Caller<'_, HostState>,
         level: i32,
         ptr: i32,
         len: i32|
         -> wasmtime::Result<i32> {
            charge_env(&mut caller, len.clamp(0, v1::MAX_LOG_LEN as i32) as u64)?;
            if !(0..=3).contains(&level) {
                return Ok(Status::InvalidArgument.code());
            }
            if caller.data().logs >= v1::MAX_LOGS_PER_CALL {
                return Ok(Status::QuotaExceeded.code());
            }
            caller.data_mut().logs += 1;
            let bytes = match guest_bytes(&caller, ptr, len) {
                Ok(b) => b,
                Err(s) => return Ok(s.code()),
            };
            // The range is checked either way (the status is the ABI's); tracing's macros
            // evaluate their arguments only when someone listens at that level, so the text
            // is decoded only then.
            let text = || String::from_utf8_lossy(bytes);
            let plugin = &*caller.data().plugin;
            match level {
                0 => tracing::debug!(target: "zhtp::guest", plugin, "{}", text()),
                1 => tracing::info!(target: "zhtp::guest", plugin, "{}", text()),
                2 => tracing::warn!(target: "zhtp::guest", plugin, "{}", text()),
                _ => tracing::error!(target: "zhtp::guest", plugin, "{}", text()),
            }
            Ok(Status::Ok.code())
        },
    )?;
    linker.func_wrap(
        m,
        v1::ABORT,
        |caller: Caller<'_, HostState>, code: i32, ptr: i32, len: i32| -> wasmtime::Result<()> {
            let message = guest_text(&caller, ptr, len)
                .unwrap_or_else(|s| format!("<message unreadable: {s:?}>"));
            Err(wasmtime::Error::new(GuestAbort { code, message }))
        },
    )?;
    Ok(linker)
}
