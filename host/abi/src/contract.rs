//! The contract profile of ABI v1: deterministic, metered guests with their own state.
//!
//! A smart contract is a wasm module exporting the v1 marker and three entry points,
//! [`INSTANTIATE`], [`EXECUTE`] and [`QUERY`], each `() -> i32` like a plugin's: it reads its
//! message with `zhtp:env/v1`'s `input_read`, sets a result with `output_set` and returns 0, or
//! sets a UTF-8 reason and returns 1 (a refusal: its writes are discarded). Besides
//! `zhtp:env/v1` it may import the functions of [`KV_MODULE`], [`CTX_MODULE`],
//! [`CRYPTO_MODULE`] and [`LEDGER_MODULE`], and nothing else.
//!
//! Every call runs under a gas limit. Gas is wasmtime fuel, one for one: each wasm operator
//! costs 1 except the free ones listed in `host/SPEC.md`, `memory.grow` costs
//! [`GROW_GAS_PER_PAGE`] a page on top, bulk memory operations one a byte, and each host
//! function its cost in [`gas`]. The table is part of the ABI: a change is a new version
//! (`tests/contract_profile.rs` pins exact figures, so a wasmtime upgrade that changed them
//! would fail).

/// Entry: `contract_instantiate() -> i32`, once per address, with the instantiate message.
pub const INSTANTIATE: &str = "contract_instantiate";
/// Entry: `contract_execute() -> i32`, with an execute message; may write state and move funds.
pub const EXECUTE: &str = "contract_execute";
/// Entry: `contract_query() -> i32`, with a query message; reads only (a write is refused).
pub const QUERY: &str = "contract_query";
/// The three entries, each required.
pub const ENTRIES: [&str; 3] = [INSTANTIATE, EXECUTE, QUERY];

/// Contract storage: `get`, `set`, `remove`, `next`.
pub const KV_MODULE: &str = "zhtp:kv/v1";
/// `get(key_ptr, key_len, val_ptr, val_cap) -> i32`: the value's length (copying at most
/// `val_cap` bytes of it to `val_ptr`), or [`Status::NotFound`](crate::Status::NotFound).
pub const KV_GET: &str = "get";
/// `set(key_ptr, key_len, val_ptr, val_len) -> i32`: stores the value under the key.
pub const KV_SET: &str = "set";
/// `remove(key_ptr, key_len) -> i32`: removes the key (removing a missing key is `Ok`).
pub const KV_REMOVE: &str = "remove";
/// `next(from_ptr, from_len, end_ptr, end_len, out_ptr, out_cap) -> i32`: the first key `k`
/// with `from <= k < end` (`end_len` 0: no upper bound), written to `out_ptr` as
/// `u32 LE key length, key, value` (at most `out_cap` bytes of it); returns the whole pair's
/// encoded length, or [`Status::NotFound`](crate::Status::NotFound). To go on, call again
/// with `from` = the key followed by one zero byte (the next key in byte order).
pub const KV_NEXT: &str = "next";

/// The call's context: `caller`, `address`, `sequence`, `time`.
pub const CTX_MODULE: &str = "zhtp:ctx/v1";
/// `caller(ptr) -> i32`: the caller's 32-byte Ed25519 key, written to `ptr`.
pub const CTX_CALLER: &str = "caller";
/// `address(ptr) -> i32`: the contract's 32-byte address, written to `ptr`.
pub const CTX_ADDRESS: &str = "address";
/// `sequence() -> i64`: the state version this call runs against (0 at instantiate; each
/// committed execute adds one).
pub const CTX_SEQUENCE: &str = "sequence";
/// `time() -> i64`: Unix seconds of the call, chosen by its caller and the same on every
/// replica (never the replica's clock).
pub const CTX_TIME: &str = "time";

/// Hashing and signatures: `blake3`, `ed25519_verify`.
pub const CRYPTO_MODULE: &str = "zhtp:crypto/v1";
/// `blake3(ptr, len, out_ptr) -> i32`: the 32-byte BLAKE3 hash of `[ptr, ptr+len)` at `out_ptr`.
pub const CRYPTO_BLAKE3: &str = "blake3";
/// `ed25519_verify(key_ptr, msg_ptr, msg_len, sig_ptr) -> i32`: `Ok` when the 64-byte
/// signature at `sig_ptr` is the 32-byte key's over the message, else
/// [`Status::BadSignature`](crate::Status::BadSignature).
pub const CRYPTO_ED25519_VERIFY: &str = "ed25519_verify";

/// The contract's own account: `balance`, `funds`, `transfer`.
pub const LEDGER_MODULE: &str = "zhtp:ledger/v1";
/// `balance() -> i64`: µZHTP the contract holds now (the funds sent with this call included,
/// its transfers so far in this call deducted).
pub const LEDGER_BALANCE: &str = "balance";
/// `funds() -> i64`: µZHTP sent with this call.
pub const LEDGER_FUNDS: &str = "funds";
/// `transfer(to_ptr, amount: i64) -> i32`: pays `amount` µZHTP from the contract's account to
/// the 32-byte Ed25519 key at `to_ptr`; [`Status::InsufficientFunds`](crate::Status::InsufficientFunds)
/// when it holds less. Moves happen only if the call succeeds.
pub const LEDGER_TRANSFER: &str = "transfer";

/// Value types of the contract imports, as wasm spells them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ty {
    /// `i32`.
    I32,
    /// `i64`.
    I64,
}

use Ty::{I32, I64};

/// Every contract import beyond `zhtp:env/v1`: module, name, parameters, results.
pub const IMPORTS: &[(&str, &str, &[Ty], &[Ty])] = &[
    (KV_MODULE, KV_GET, &[I32, I32, I32, I32], &[I32]),
    (KV_MODULE, KV_SET, &[I32, I32, I32, I32], &[I32]),
    (KV_MODULE, KV_REMOVE, &[I32, I32], &[I32]),
    (KV_MODULE, KV_NEXT, &[I32, I32, I32, I32, I32, I32], &[I32]),
    (CTX_MODULE, CTX_CALLER, &[I32], &[I32]),
    (CTX_MODULE, CTX_ADDRESS, &[I32], &[I32]),
    (CTX_MODULE, CTX_SEQUENCE, &[], &[I64]),
    (CTX_MODULE, CTX_TIME, &[], &[I64]),
    (CRYPTO_MODULE, CRYPTO_BLAKE3, &[I32, I32, I32], &[I32]),
    (
        CRYPTO_MODULE,
        CRYPTO_ED25519_VERIFY,
        &[I32, I32, I32, I32],
        &[I32],
    ),
    (LEDGER_MODULE, LEDGER_BALANCE, &[], &[I64]),
    (LEDGER_MODULE, LEDGER_FUNDS, &[], &[I64]),
    (LEDGER_MODULE, LEDGER_TRANSFER, &[I32, I64], &[I32]),
];

/// The contract profile's limits are part of the ABI, not of a node's configuration: a call
/// must end the same way on every replica.
/// Largest linear memory of a contract, in bytes (256 pages).
pub const MAX_MEMORY: usize = 16 << 20;
/// Largest table of a contract, in elements.
pub const MAX_TABLE: usize = 10_000;
/// Largest wasm stack of a contract call, in bytes of the host's native stack.
pub const MAX_STACK: usize = 512 << 10;
/// Largest contract module, in bytes.
pub const MAX_CODE: usize = 1 << 20;
/// Most transfers one call may make; more answer `QuotaExceeded`.
pub const MAX_TRANSFERS: usize = 256;

/// Longest key.
pub const MAX_KEY_LEN: usize = 256;
/// Longest value.
pub const MAX_VALUE_LEN: usize = 16 * 1024;
/// Most bytes (keys and values) one call may write.
pub const MAX_WRITE_BYTES: usize = 1024 * 1024;

/// Gas per 64 KiB page `memory.grow` adds, on top of the operator.
pub const GROW_GAS_PER_PAGE: u8 = 255;
/// The default gas limit of a call.
pub const DEFAULT_GAS_LIMIT: u64 = 10_000_000;
/// The largest gas limit a call may ask for.
pub const MAX_GAS_LIMIT: u64 = 1_000_000_000;

/// What each host function costs, charged before it runs (a call without the gas for it ends
/// out of gas).
pub mod gas {
    /// Every call, before the module is instantiated (its data segments copied, its start
    /// function run).
    pub const BASE: u64 = 10_000;
    /// Every host function, `zhtp:env/v1`'s included, on top of what follows.
    pub const CALL: u64 = 20;
    /// Per byte copied across the boundary (input, output, log text, keys, values, hashes).
    pub const BYTE: u64 = 1;
    /// `kv.get`, `kv.next` (a read of the store).
    pub const READ: u64 = 1_000;
    /// `kv.set`, `kv.remove` (a write that every replica keeps).
    pub const WRITE: u64 = 5_000;
    /// Per byte written by `kv.set`, on top of [`BYTE`].
    pub const WRITE_BYTE: u64 = 50;
    /// `crypto.blake3`, on top of [`BYTE`] per byte hashed.
    pub const BLAKE3: u64 = 200;
    /// `crypto.ed25519_verify`, message bytes on top.
    pub const ED25519_VERIFY: u64 = 25_000;
    /// `ledger.transfer`.
    pub const TRANSFER: u64 = 10_000;
}
