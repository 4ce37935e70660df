//! Core zhtp types shared by the host, guests and every runtime crate.
//!
//! `no_std` + `alloc` so that guest plugins (wasm32) use exactly the same definitions as the host.
//! Nothing here performs I/O.
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

mod hash;
mod money;
mod size;
mod tier;

pub use hash::{ContentHash, DhtKey, Hash, HexError, NodeId};
pub use money::{MICRO_PER_TOKEN, MicroZhtp};
pub use size::{ParseSizeError, parse_size};
pub use tier::{ParseTierError, StorageTier};
