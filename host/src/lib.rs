//! The zhtp WebAssembly host.
//!
//! Guests own policy, the host owns everything that must be fast or trusted. This crate loads
//! guest modules through the versioned ABI of `zhtp-abi` (see `host/SPEC.md`):
//!
//! - [`Host`]: one wasmtime engine per process (pooling allocator, epoch interruption, stack
//!   cap), the `zhtp:env/v1` linker and the [compile cache](ModuleCache).
//! - [`Host::load`] validates a module before it is ever instantiated: size, exactly one
//!   `zhtp_abi_v<N>` marker of a supported version, every import against the allow-list, the
//!   kind's entry export, the memory cap. Errors name the offending item.
//! - [`Plugin`]: a validated module with a pool of warm instances; each call runs under the
//!   configured [`Limits`] and fails with a typed [`CallError`] instead of harming the node.
//! - [`PricingPlugin`] and [`Registry`]: typed pricing calls, self-check, atomic hot swap and
//!   rollback, persisted in the node's data directory.
//! - [`QualityPlugin`]: typed quality calls (a provider's audited period in, a score, violations
//!   and a bonus out) and their self-check.
//! - [`Contracts`] and [`Code`]: the contract profile (`host/SPEC.md` section 14): smart
//!   contracts validated against their own allow-list and run deterministically on a fresh
//!   instance per call, metered by gas, over a state the caller provides; a call's writes and
//!   transfers come back in its [`Outcome`], to be committed only if it succeeded, with the
//!   state root ([`StateHash`]) they lead to.

mod cache;
mod compat;
pub mod contract;
mod engine;
mod env;
mod error;
mod idle;
mod limits;
mod plugin;
mod pricing;
mod quality;
mod registry;
mod tier;

pub use cache::{CacheStats, MAX_SEEN, ModuleCache};
pub use compat::{GuestInfo, Kind};
pub use contract::{Call, Code, ContractError, Contracts, Entry, Outcome, StateHash};
pub use engine::Host;
pub use error::{CallError, LoadError};
pub use limits::Limits;
pub use plugin::Plugin;
pub use pricing::{PricedQuote, PricingPlugin, SampleCall, SelfCheck};
pub use quality::{QualityCheck, QualityPlugin, QualitySample};
pub use registry::{Registry, RegistryError, Slot};
pub use tier::{TierCheck, TierPlugin, TierSample};

/// Re-exported so users of the host need not depend on `zhtp-abi` directly.
pub use zhtp_abi as abi;
