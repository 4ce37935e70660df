//! Safe wrappers over the `zhtp:env/v1` imports.

use alloc::string::ToString;
use core::fmt::Display;

use zhtp_abi::{Message, Status};

/// Severity of a log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum Level {
    /// Diagnostic detail.
    Debug = 0,
    /// Normal operation.
    Info = 1,
    /// Something looks wrong.
    Warn = 2,
    /// The plugin is refusing or failing.
    Error = 3,
}

#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
mod sys {
    #[link(wasm_import_module = "zhtp:env/v1")]
    unsafe extern "C" {
        pub fn input_len() -> i32;
        pub fn input_read(ptr: *mut u8, len: i32) -> i32;
        pub fn output_set(ptr: *const u8, len: i32) -> i32;
        pub fn log(level: i32, ptr: *const u8, len: i32) -> i32;
        pub fn abort(code: i32, ptr: *const u8, len: i32) -> !;
    }

    /// Reads the whole input into `buf`; `None` if it does not fit. One host call for any
    /// input shorter than `buf` (`input_read` copies at most the input's length).
    pub fn read_input(buf: &mut [u8]) -> Option<usize> {
        // SAFETY: `buf` is valid for writes of its length; the host writes at most that many.
        let n = unsafe { input_read(buf.as_mut_ptr(), buf.len() as i32) };
        let n = usize::try_from(n).ok()?;
        // A full buffer may be a longer input cut short.
        // SAFETY: input_len takes no arguments and only returns a number.
        (n < buf.len() || unsafe { input_len() } as usize == n).then_some(n)
    }

    pub fn set_output(bytes: &[u8]) -> i32 {
        // SAFETY: the slice is valid for reads of its length; the host copies it out.
        unsafe { output_set(bytes.as_ptr(), bytes.len() as i32) }
    }

    pub fn log_line(level: i32, msg: &[u8]) {
        // SAFETY: as above; the host copies at most MAX_LOG_LEN bytes.
        unsafe { log(level, msg.as_ptr(), msg.len() as i32) };
    }

    pub fn abort_with(code: i32, msg: &[u8]) -> ! {
        // SAFETY: as above; abort never returns.
        unsafe { abort(code, msg.as_ptr(), msg.len() as i32) }
    }
}

/// Writes a log line to the host's log (at most 1 KiB, 16 lines per call; the rest is dropped).
/// Natively (in tests) it does nothing.
pub fn log(level: Level, msg: &str) {
    #[cfg(target_arch = "wasm32")]
    sys::log_line(level as i32, msg.as_bytes());
    #[cfg(not(target_arch = "wasm32"))]
    let _ = (level, msg);
}

/// Largest request or response an entry point handles: both live in buffers of this size (a
/// `QuoteRequest` is at most 22 bytes, a `Quote` at most 205).
const MAX_MESSAGE: usize = 256;

/// Runs `body` with the call's input and output buffers, or returns `None` if a call of
/// [`dispatch`] is already running on this instance (a plugin function that calls `dispatch`).
///
/// In a guest the buffers are statics, zeroed once: as locals they were zeroed at every call
/// with `memory.fill`, which wasmtime runs as a call out of the guest (about 9 ns of a 179 ns
/// quote).
///
/// Sound because a guest without the threads proposal has one thread, the host never runs two
/// calls on one instance at once nor calls back into it (SPEC.md R-state-exclusive), and the
/// `BUSY` flag refuses the one way left to reach them twice: `dispatch` inside `dispatch`. A
/// panic aborts the call and the host discards the instance (R-state-discard); should a guest
/// built to unwind catch one, the flag is cleared on the way out all the same. The buffers keep
/// the last call's bytes: only the same plugin's own encoder could see them, and the host
/// refuses an answer longer than what it encodes (R-out-exact).
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
#[allow(unsafe_code)]
fn with_buffers<R>(
    body: impl FnOnce(&mut [u8; MAX_MESSAGE], &mut [u8; MAX_MESSAGE]) -> R,
) -> Option<R> {
    use core::sync::atomic::{AtomicBool, Ordering};
    static mut BUFFERS: [[u8; MAX_MESSAGE]; 2] = [[0; MAX_MESSAGE]; 2];
    static BUSY: AtomicBool = AtomicBool::new(false);
    /// Clears `BUSY` when the call ends, by returning or by unwinding.
    struct Clear;
    impl Drop for Clear {
        fn drop(&mut self) {
            BUSY.store(false, Ordering::Relaxed);
        }
    }
    if BUSY.swap(true, Ordering::Relaxed) {
        return None;
    }
    let _clear = Clear;
    // SAFETY: `BUSY` was clear, so no other reference to `BUFFERS` exists (see above); this
    // one lives inside `body`, which ends (returning or unwinding) before `_clear` clears it.
    let [input, output] = unsafe { &mut *core::ptr::addr_of_mut!(BUFFERS) };
    Some(body(input, output))
}

/// Natively (tests, possibly on many threads) the buffers are locals, and a nested `dispatch`
/// is not refused: it only matters in a guest.
#[cfg(not(all(target_arch = "wasm32", not(target_feature = "atomics"))))]
fn with_buffers<R>(
    body: impl FnOnce(&mut [u8; MAX_MESSAGE], &mut [u8; MAX_MESSAGE]) -> R,
) -> Option<R> {
    Some(body(&mut [0; MAX_MESSAGE], &mut [0; MAX_MESSAGE]))
}

/// Runs one call of an entry point: reads and decodes the input, calls `f`, encodes and sets the
/// output. Returns the entry point's status code. Emitted by `#[plugin]`.
///
/// Messages are read and written with the strict v1 codec of `zhtp-abi` (no serde, nothing
/// allocated): this is most of what a call costs inside the guest besides the plugin's own
/// arithmetic.
pub fn dispatch<Req, Resp, E>(f: impl FnOnce(Req) -> Result<Resp, E>) -> i32
where
    Req: Message,
    Resp: Message,
    E: Display,
{
    const { assert!(Req::MAX_LEN <= MAX_MESSAGE && Resp::MAX_LEN <= MAX_MESSAGE) };
    with_buffers(|input, out| {
        #[cfg(all(target_arch = "wasm32", feature = "rt"))]
        crate::rt::begin_call();
        let Some(n) = read_input(input) else {
            return refuse("malformed input: longer than any message of this entry");
        };
        // The host sends only valid requests (SPEC.md R-req-canonical): no detail is worth the
        // formatting code in every guest.
        let Ok(req) = Req::decode(&input[..n]) else {
            return refuse("malformed input: not a valid message for this entry");
        };
        match f(req) {
            Ok(resp) => {
                let Some(n) = resp.encode(out) else {
                    return refuse("the plugin's answer breaks the message's limits");
                };
                let st = set_output(&out[..n]);
                if st == Status::Ok.code() { 0 } else { st }
            }
            Err(e) => refuse(&e.to_string()),
        }
    })
    // A nested call: refused without touching the output, which the outer call sets.
    .unwrap_or(Status::GuestError.code())
}

fn refuse(msg: &str) -> i32 {
    set_output(msg.as_bytes());
    Status::GuestError.code()
}

#[cfg(target_arch = "wasm32")]
fn read_input(buf: &mut [u8]) -> Option<usize> {
    sys::read_input(buf)
}

#[cfg(target_arch = "wasm32")]
fn set_output(bytes: &[u8]) -> i32 {
    sys::set_output(bytes)
}

#[cfg(target_arch = "wasm32")]
pub(crate) fn abort(code: i32, msg: &[u8]) -> ! {
    sys::abort_with(code, msg)
}

// Natively there is no host: dispatch is only meaningful inside wasm, so these are inert.
#[cfg(not(target_arch = "wasm32"))]
fn read_input(_buf: &mut [u8]) -> Option<usize> {
    Some(0)
}

#[cfg(not(target_arch = "wasm32"))]
fn set_output(_bytes: &[u8]) -> i32 {
    Status::Ok.code()
}
