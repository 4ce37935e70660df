//! The zhtp host ABI, defined once for the host (`zhtp-host`) and for guests (`zhtp-sdk`).
//!
//! Everything a guest and the host must agree on lives here: the version marker, import module
//! and function names, the status-code table, the message types and their v1 codec
//! ([`wire`]: postcard's bytes, read strictly). `host/SPEC.md` is the prose version of this
//! crate; the two change together.
//!
//! Compatibility rule: a published ABI version is frozen. A new version adds a new marker
//! (`zhtp_abi_v2`), new import modules (`zhtp:env/v2`) and new messages; it never edits v1.
#![no_std]

extern crate alloc;

pub mod contract;
pub mod durability;
pub mod pricing;
pub mod quality;
mod status;
pub mod tier;
pub mod wire;

pub use status::Status;

/// Values for the codecs' property tests: a fixed xorshift sequence, mostly extremes (0,
/// `u64::MAX`, values of every bit width), which have the longest and shortest encodings.
#[cfg(test)]
pub(crate) fn extremes() -> impl FnMut() -> u64 {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        match x % 4 {
            0 => 0,
            1 => u64::MAX,
            _ => x >> (x % 64),
        }
    }
}
pub use wire::{DecodeError, Message};

/// Oldest ABI version this crate describes.
pub const MIN_VERSION: u32 = 1;
/// Newest ABI version this crate describes.
pub const MAX_VERSION: u32 = 1;

/// Prefix of the version-marker export. A guest exports exactly one `zhtp_abi_v<N>`.
pub const MARKER_PREFIX: &str = "zhtp_abi_v";

/// Name of the custom section in which a guest may declare `name@version` (UTF-8, at most
/// [`MAX_META_LEN`] bytes). The SDK's macros fill it from the guest crate's `Cargo.toml`.
pub const META_SECTION: &str = "zhtp.meta";
/// Upper bound on the `zhtp.meta` section.
pub const MAX_META_LEN: usize = 128;

/// ABI version 1.
pub mod v1 {
    /// The marker export of a v1 guest: `(func (export "zhtp_abi_v1"))`.
    pub const MARKER: &str = "zhtp_abi_v1";

    /// The one import module of the v1 plugin profile.
    pub const ENV_MODULE: &str = "zhtp:env/v1";

    /// `input_len() -> i32`: length of the call's input in bytes.
    pub const INPUT_LEN: &str = "input_len";
    /// `input_read(ptr: i32, len: i32) -> i32`: copy the input (up to `len` bytes) to `ptr`.
    /// Returns the number of bytes copied or a negative [`Status`](crate::Status).
    pub const INPUT_READ: &str = "input_read";
    /// `output_set(ptr: i32, len: i32) -> i32`: set the call's output to guest memory
    /// `[ptr, ptr+len)`. A later call replaces an earlier one. Returns a [`Status`](crate::Status).
    pub const OUTPUT_SET: &str = "output_set";
    /// `log(level: i32, ptr: i32, len: i32) -> i32`: a UTF-8 log line, at most
    /// [`MAX_LOG_LEN`] bytes, rate-limited per call.
    pub const LOG: &str = "log";
    /// `abort(code: i32, ptr: i32, len: i32)`: stop the call with a guest-defined code and a
    /// UTF-8 message (at most [`MAX_LOG_LEN`] bytes). Never returns.
    pub const ABORT: &str = "abort";

    /// Every function of `zhtp:env/v1` with its signature as `(params, results)` of i32s.
    pub const ENV_FUNCTIONS: &[(&str, usize, usize)] = &[
        (INPUT_LEN, 0, 1),
        (INPUT_READ, 2, 1),
        (OUTPUT_SET, 2, 1),
        (LOG, 3, 1),
        (ABORT, 3, 0),
    ];

    /// Largest input the host passes to a call.
    pub const MAX_INPUT_LEN: usize = 64 * 1024;
    /// Largest output a guest may set; a larger `output_set` ends the call with an error.
    pub const MAX_OUTPUT_LEN: usize = 64 * 1024;
    /// Largest log line or abort message; longer ones are truncated.
    pub const MAX_LOG_LEN: usize = 1024;
    /// Log lines accepted per call; more are dropped.
    pub const MAX_LOGS_PER_CALL: u32 = 16;

    /// Entry export of a pricing plugin: `pricing_quote() -> i32`.
    ///
    /// Input: a postcard [`QuoteRequest`](crate::pricing::QuoteRequest). On success the guest
    /// sets a postcard [`Quote`](crate::pricing::Quote) as output and returns 0. On a refusal it
    /// sets a UTF-8 reason as output and returns [`Status::GuestError`](crate::Status::GuestError).
    pub const PRICING_ENTRY: &str = "pricing_quote";

    /// Entry export of a quality plugin: `quality_assess() -> i32`.
    ///
    /// Input: a [`Measurements`](crate::quality::Measurements). On success the guest sets an
    /// [`Assessment`](crate::quality::Assessment) as output and returns 0; on a refusal, a
    /// UTF-8 reason and [`Status::GuestError`](crate::Status::GuestError).
    pub const QUALITY_ENTRY: &str = "quality_assess";

    /// Entry export of a tier plugin: `tier_choose() -> i32`.
    ///
    /// Input: a [`Facts`](crate::tier::Facts). On success the guest sets a
    /// [`Choice`](crate::tier::Choice) as output and returns 0; on a refusal, a UTF-8 reason
    /// and [`Status::GuestError`](crate::Status::GuestError).
    pub const TIER_ENTRY: &str = "tier_choose";
}
