//! Safe wrappers over the `zhtp:env/v1` imports.

use alloc::string::ToString;
use alloc::vec::Vec;
use core::fmt::Display;

use serde::Serialize;
use serde::de::DeserializeOwned;
use zhtp_abi::Status;

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

    pub fn read_input() -> alloc::vec::Vec<u8> {
        // SAFETY: input_len takes no arguments and only returns a number.
        let len = unsafe { input_len() }.max(0) as usize;
        let mut buf = alloc::vec::Vec::with_capacity(len);
        // SAFETY: `buf` has capacity `len`; the host writes at most `len` bytes at its pointer and
        // returns how many it wrote, which we only then mark initialised.
        let n = unsafe { input_read(buf.as_mut_ptr(), len as i32) };
        if n > 0 {
            // SAFETY: the host initialised the first `n <= len` bytes.
            unsafe { buf.set_len((n as usize).min(len)) };
        }
        buf
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

/// Runs one call of an entry point: reads and decodes the input, calls `f`, encodes and sets the
/// output. Returns the entry point's status code. Emitted by `#[plugin]`.
pub fn dispatch<Req, Resp, E>(f: impl FnOnce(Req) -> Result<Resp, E>) -> i32
where
    Req: DeserializeOwned,
    Resp: Serialize,
    E: Display,
{
    #[cfg(all(target_arch = "wasm32", feature = "rt"))]
    crate::rt::begin_call();
    let input = read_input();
    let req: Req = match postcard::from_bytes(&input) {
        Ok(r) => r,
        Err(_) => return refuse("malformed input: not a valid postcard message for this entry"),
    };
    match f(req) {
        Ok(resp) => match postcard::to_allocvec(&resp) {
            Ok(bytes) => {
                let st = set_output(&bytes);
                if st == Status::Ok.code() { 0 } else { st }
            }
            Err(_) => refuse("could not encode the response"),
        },
        Err(e) => refuse(&e.to_string()),
    }
}

fn refuse(msg: &str) -> i32 {
    set_output(msg.as_bytes());
    Status::GuestError.code()
}

#[cfg(target_arch = "wasm32")]
fn read_input() -> Vec<u8> {
    sys::read_input()
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
fn read_input() -> Vec<u8> {
    Vec::new()
}

#[cfg(not(target_arch = "wasm32"))]
fn set_output(_bytes: &[u8]) -> i32 {
    Status::Ok.code()
}
