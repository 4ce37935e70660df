//! The zhtp guest SDK.
//!
//! A pricing plugin is one function over typed messages, annotated once:
//!
//! ```text
//! #![no_std]
//! use zhtp_sdk::pricing::{Quote, QuoteRequest};
//!
//! #[zhtp_sdk::plugin(pricing)]
//! pub fn quote(req: QuoteRequest) -> Result<Quote, &'static str> {
//!     /* integer µZHTP arithmetic */
//! }
//! ```
//!
//! Built for `wasm32-unknown-unknown`, the attribute emits the ABI version marker
//! (`zhtp_abi_v1`), the entry export (`pricing_quote`) and a `zhtp.meta` section naming the crate
//! and its version. On other targets it emits nothing, so the same function can be unit-tested and
//! benchmarked natively.
//!
//! A smart contract is three functions over JSON messages and an [`contract::Api`], marked
//! `#[zhtp_sdk::contract(instantiate)]`, `(execute)` and `(query)`; see [`contract`], whose
//! [`contract::Mock`] runs them natively with the host's rules.
//!
//! The SDK is `no_std` + `alloc`. Messages are read and written with `zhtp-abi`'s strict v1
//! codec. With the default `rt` feature it also provides, on wasm32, the guest's allocator (a
//! bump allocator that gives a call's memory back once the call freed all of it, and never hands
//! out an allocation kept across calls; see `host/SPEC.md` section 11) and a panic handler that
//! reports the panic message through `abort`.
#![no_std]

extern crate alloc;

pub use zhtp_abi as abi;
pub use zhtp_sdk_macros::{contract, plugin};
pub use zhtp_types as types;

pub mod contract;
pub mod pricing;
pub mod quality;
pub mod tier;

mod host;
#[cfg(all(target_arch = "wasm32", feature = "rt"))]
mod rt;

pub use host::{Level, log};

/// Runtime support for the code the macros emit. Not a stable API.
#[doc(hidden)]
pub mod __private {
    #[cfg(target_arch = "wasm32")]
    pub use crate::contract::run as run_contract;
    pub use crate::host::dispatch;
}
