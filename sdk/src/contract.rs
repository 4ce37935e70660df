//! Smart contracts: entry points over JSON messages, typed storage, and a native test harness.
//!
//! A contract is three functions over an [`Api`] (its state, its context, its account),
//! each marked with `#[zhtp_sdk::contract(...)]`:
//!
//! ```text
//! #[zhtp_sdk::contract(instantiate)]
//! pub fn instantiate(api: &mut dyn Api, msg: Init) -> Result<u64, Error> { ... }
//! #[zhtp_sdk::contract(execute)]
//! pub fn execute(api: &mut dyn Api, msg: Exec) -> Result<u64, Error> { ... }
//! #[zhtp_sdk::contract(query)]
//! pub fn query(api: &mut dyn Api, msg: Query) -> Result<u64, Error> { ... }
//! ```
//!
//! Messages and answers are JSON (serde): what `zhtp contract execute --msg JSON` sends and
//! prints. Built for wasm32, the attributes emit the exports of `host/SPEC.md` section 14
//! (`instantiate` also the ABI marker and the `zhtp.meta` section); natively they emit nothing,
//! and [`Mock`] runs the same functions against an in-memory state with the host's rules (a
//! call's writes and transfers are kept only if it returns `Ok`), so a contract is unit-tested
//! without wasm.

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt::Display;
use core::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Who calls, where, when, with what.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ctx {
    /// The caller's Ed25519 key.
    pub caller: [u8; 32],
    /// The contract's address.
    pub address: [u8; 32],
    /// The state version this call runs against (0 at instantiate).
    pub sequence: u64,
    /// Unix seconds, chosen by the caller (never a clock).
    pub time: u64,
    /// µZHTP sent with this call.
    pub funds: u64,
}

/// Why a transfer was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransferError {
    /// The contract holds less.
    InsufficientFunds,
    /// A query may not move funds, and an amount must be above zero.
    Forbidden,
}

impl Display for TransferError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            TransferError::InsufficientFunds => "the contract holds less than that",
            TransferError::Forbidden => "no transfer here (a query, or an amount of zero)",
        })
    }
}

/// Everything a contract can do: its state, its context, its account, hashing.
pub trait Api {
    /// The call's context.
    fn ctx(&self) -> Ctx;
    /// The value of `key`.
    fn get(&self, key: &[u8]) -> Option<Vec<u8>>;
    /// Stores `value` under `key` (at most 256 and 16 KiB bytes; a query may not write).
    fn set(&mut self, key: &[u8], value: &[u8]);
    /// Removes `key`.
    fn remove(&mut self, key: &[u8]);
    /// The first entry with `from <= key < end` (`end`: `None` for no bound).
    fn next(&self, from: &[u8], end: Option<&[u8]>) -> Option<(Vec<u8>, Vec<u8>)>;
    /// µZHTP the contract holds now.
    fn balance(&self) -> u64;
    /// Pays `amount` µZHTP to `to`, if the call succeeds.
    fn transfer(&mut self, to: &[u8; 32], amount: u64) -> Result<(), TransferError>;
    /// BLAKE3 of `data`.
    fn blake3(&self, data: &[u8]) -> [u8; 32];
    /// Whether `sig` is `key`'s Ed25519 signature over `msg`.
    fn ed25519_verify(&self, key: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> bool;
}

/// One value of type `T` under a fixed key, stored as JSON.
#[derive(Debug)]
pub struct Item<T> {
    key: &'static str,
    _t: PhantomData<T>,
}

impl<T: Serialize + DeserializeOwned> Item<T> {
    /// The item stored under `key`.
    pub const fn new(key: &'static str) -> Self {
        Self {
            key,
            _t: PhantomData,
        }
    }

    /// Its value, if one is stored (a value that does not decode counts as none).
    pub fn load(&self, api: &dyn Api) -> Option<T> {
        api.get(self.key.as_bytes())
            .and_then(|b| serde_json::from_slice(&b).ok())
    }

    /// Stores `value`.
    pub fn save(&self, api: &mut dyn Api, value: &T) {
        let bytes = serde_json::to_vec(value).expect("a value encodes as JSON");
        api.set(self.key.as_bytes(), &bytes);
    }

    /// Removes it.
    pub fn remove(&self, api: &mut dyn Api) {
        api.remove(self.key.as_bytes());
    }
}

/// Values of type `V` under string keys, kept under one prefix (`prefix/key`), stored as JSON.
#[derive(Debug)]
pub struct Map<V> {
    prefix: &'static str,
    _v: PhantomData<V>,
}

impl<V: Serialize + DeserializeOwned> Map<V> {
    /// The map kept under `prefix` (which must not be the start of another map's or item's).
    pub const fn new(prefix: &'static str) -> Self {
        Self {
            prefix,
            _v: PhantomData,
        }
    }

    fn key(&self, k: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.prefix.len() + 1 + k.len());
        out.extend_from_slice(self.prefix.as_bytes());
        out.push(b'/');
        out.extend_from_slice(k.as_bytes());
        out
    }

    /// The value of `k`.
    pub fn load(&self, api: &dyn Api, k: &str) -> Option<V> {
        api.get(&self.key(k))
            .and_then(|b| serde_json::from_slice(&b).ok())
    }

    /// Stores `value` under `k`.
    pub fn save(&self, api: &mut dyn Api, k: &str, value: &V) {
        let bytes = serde_json::to_vec(value).expect("a value encodes as JSON");
        api.set(&self.key(k), &bytes);
    }

    /// Removes `k`.
    pub fn remove(&self, api: &mut dyn Api, k: &str) {
        api.remove(&self.key(k));
    }

    /// Up to `limit` entries whose key starts with `start`, in key order.
    pub fn range(&self, api: &dyn Api, start: &str, limit: usize) -> Vec<(String, V)> {
        let base = self.key("");
        // Every key of this map lies below the prefix with its '/' raised by one.
        let mut end = base.clone();
        *end.last_mut().expect("the prefix ends with '/'") += 1;
        let mut from = self.key(start);
        let mut out = Vec::new();
        while out.len() < limit {
            let Some((k, v)) = api.next(&from, Some(&end)) else {
                break;
            };
            if let (Ok(name), Ok(value)) = (
                core::str::from_utf8(&k[base.len()..]),
                serde_json::from_slice(&v),
            ) {
                out.push((name.to_string(), value));
            }
            from = k;
            from.push(0);
        }
        out
    }
}

/// The native test harness: a contract's state, context and account in memory, run with the
/// host's rules. Each call runs on a copy and keeps its writes and transfers only if it
/// returns `Ok`; a query's writes are refused with a panic, as the host refuses them.
#[derive(Clone, Debug, Default)]
pub struct Mock {
    /// The committed state.
    pub state: BTreeMap<Vec<u8>, Vec<u8>>,
    /// The next call's context (`sequence` counts committed executes).
    pub ctx: Ctx,
    /// µZHTP the contract holds.
    pub balance: u64,
    /// Every transfer committed so far, in order.
    pub paid: Vec<([u8; 32], u64)>,
    /// Hashing and signature checks for [`Api::blake3`] and [`Api::ed25519_verify`]; the
    /// default panics (give real ones to test code that uses them).
    pub crypto: Option<MockCrypto>,
}

/// What [`Mock`] computes hashes and checks signatures with.
#[derive(Clone, Copy, Debug)]
pub struct MockCrypto {
    /// BLAKE3.
    pub blake3: fn(&[u8]) -> [u8; 32],
    /// Ed25519 verification: key, message, signature.
    pub ed25519_verify: fn(&[u8; 32], &[u8], &[u8; 64]) -> bool,
}

/// One call in progress on a [`Mock`].
struct MockCall<'a> {
    mock: &'a Mock,
    query: bool,
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    transfers: Vec<([u8; 32], u64)>,
}

impl Api for MockCall<'_> {
    fn ctx(&self) -> Ctx {
        self.mock.ctx
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        match self.writes.get(key) {
            Some(v) => v.clone(),
            None => self.mock.state.get(key).cloned(),
        }
    }

    fn set(&mut self, key: &[u8], value: &[u8]) {
        assert!(
            !self.query,
            "a query may not write (the host answers Forbidden)"
        );
        assert!(
            key.len() <= zhtp_abi::contract::MAX_KEY_LEN
                && value.len() <= zhtp_abi::contract::MAX_VALUE_LEN,
            "a key over 256 bytes or a value over 16 KiB ends the call"
        );
        self.writes.insert(key.to_vec(), Some(value.to_vec()));
    }

    fn remove(&mut self, key: &[u8]) {
        assert!(
            !self.query,
            "a query may not write (the host answers Forbidden)"
        );
        self.writes.insert(key.to_vec(), None);
    }

    fn next(&self, from: &[u8], end: Option<&[u8]>) -> Option<(Vec<u8>, Vec<u8>)> {
        let mut merged: BTreeMap<&[u8], Option<&Vec<u8>>> = self
            .mock
            .state
            .range(from.to_vec()..)
            .map(|(k, v)| (k.as_slice(), Some(v)))
            .collect();
        for (k, v) in self.writes.range(from.to_vec()..) {
            merged.insert(k.as_slice(), v.as_ref());
        }
        merged
            .into_iter()
            .take_while(|(k, _)| end.is_none_or(|e| *k < e))
            .find_map(|(k, v)| v.map(|v| (k.to_vec(), v.clone())))
    }

    fn balance(&self) -> u64 {
        let out: u64 = self.transfers.iter().map(|(_, a)| *a).sum();
        self.mock
            .balance
            .saturating_add(self.mock.ctx.funds)
            .saturating_sub(out)
    }

    fn transfer(&mut self, to: &[u8; 32], amount: u64) -> Result<(), TransferError> {
        if self.query || amount == 0 {
            return Err(TransferError::Forbidden);
        }
        if self.balance() < amount {
            return Err(TransferError::InsufficientFunds);
        }
        self.transfers.push((*to, amount));
        Ok(())
    }

    fn blake3(&self, data: &[u8]) -> [u8; 32] {
        (self.mock.crypto.expect("Mock::crypto is not set").blake3)(data)
    }

    fn ed25519_verify(&self, key: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> bool {
        (self
            .mock
            .crypto
            .expect("Mock::crypto is not set")
            .ed25519_verify)(key, msg, sig)
    }
}

/// Which entry a [`Mock`] call runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Instantiate: sequence 0, writes kept.
    Instantiate,
    /// Execute: writes and transfers kept, the sequence moves on.
    Execute,
    /// Query: reads only.
    Query,
}

impl Mock {
    /// A mock contract at `address`, called by `caller`.
    pub fn new(address: [u8; 32], caller: [u8; 32]) -> Self {
        Self {
            ctx: Ctx {
                caller,
                address,
                ..Ctx::default()
            },
            ..Self::default()
        }
    }

    /// Runs `f` with `msg` as the host would run entry `kind`: its answer, or its refusal's
    /// text; its writes, transfers and funds are kept only on `Ok` (funds sent with a failed
    /// call stay with the caller).
    pub fn call<M, R, E: Display>(
        &mut self,
        kind: Kind,
        f: fn(&mut dyn Api, M) -> Result<R, E>,
        msg: M,
    ) -> Result<R, String> {
        if kind == Kind::Instantiate {
            self.ctx.sequence = 0;
        }
        let mut call = MockCall {
            mock: self,
            query: kind == Kind::Query,
            writes: BTreeMap::new(),
            transfers: Vec::new(),
        };
        let r = f(&mut call, msg).map_err(|e| e.to_string());
        let (writes, transfers) = (call.writes, call.transfers);
        let funds = core::mem::take(&mut self.ctx.funds);
        let r = r?;
        for (k, v) in writes {
            match v {
                Some(v) => self.state.insert(k, v),
                None => self.state.remove(&k),
            };
        }
        if kind != Kind::Query {
            let out: u64 = transfers.iter().map(|(_, a)| *a).sum();
            // `transfer` kept `out` within the balance and the funds.
            self.balance = self.balance.saturating_add(funds).saturating_sub(out);
            self.paid.extend(transfers);
            if kind == Kind::Execute {
                self.ctx.sequence += 1;
            }
        }
        Ok(r)
    }
}

/// Runs one call of a contract entry inside wasm: reads and decodes the JSON message, calls
/// `f` with the host's [`Api`], encodes its answer as JSON and sets it as the output; an `Err`
/// is a refusal. Emitted by `#[contract]`.
#[cfg(target_arch = "wasm32")]
pub fn run<M: DeserializeOwned, R: Serialize, E: Display>(
    f: fn(&mut dyn Api, M) -> Result<R, E>,
) -> i32 {
    #[cfg(feature = "rt")]
    crate::rt::begin_call();
    let input = sys::input();
    let msg: M = match serde_json::from_slice(&input) {
        Ok(m) => m,
        Err(e) => return sys::refuse(&alloc::format!("malformed message: {e}")),
    };
    match f(&mut sys::Host, msg) {
        Ok(r) => match serde_json::to_vec(&r) {
            Ok(out) => sys::answer(&out),
            Err(e) => sys::refuse(&alloc::format!("the answer does not encode: {e}")),
        },
        Err(e) => sys::refuse(&e.to_string()),
    }
}

#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
mod sys {
    use alloc::vec;
    use alloc::vec::Vec;

    use super::{Api, Ctx, TransferError};
    use zhtp_abi::Status;

    #[link(wasm_import_module = "zhtp:env/v1")]
    unsafe extern "C" {
        fn input_len() -> i32;
        fn input_read(ptr: *mut u8, len: i32) -> i32;
        fn output_set(ptr: *const u8, len: i32) -> i32;
    }
    #[link(wasm_import_module = "zhtp:kv/v1")]
    unsafe extern "C" {
        fn get(kp: *const u8, kl: i32, vp: *mut u8, vc: i32) -> i32;
        fn set(kp: *const u8, kl: i32, vp: *const u8, vl: i32) -> i32;
        fn remove(kp: *const u8, kl: i32) -> i32;
        fn next(fp: *const u8, fl: i32, ep: *const u8, el: i32, op: *mut u8, oc: i32) -> i32;
    }
    #[link(wasm_import_module = "zhtp:ctx/v1")]
    unsafe extern "C" {
        fn caller(p: *mut u8) -> i32;
        fn address(p: *mut u8) -> i32;
        fn sequence() -> i64;
        fn time() -> i64;
    }
    #[link(wasm_import_module = "zhtp:crypto/v1")]
    unsafe extern "C" {
        fn blake3(p: *const u8, l: i32, out: *mut u8) -> i32;
        fn ed25519_verify(kp: *const u8, mp: *const u8, ml: i32, sp: *const u8) -> i32;
    }
    #[link(wasm_import_module = "zhtp:ledger/v1")]
    unsafe extern "C" {
        fn balance() -> i64;
        fn funds() -> i64;
        fn transfer(to: *const u8, amount: i64) -> i32;
    }

    pub(super) fn input() -> Vec<u8> {
        // SAFETY: the buffer is valid for writes of its length; the host writes at most that.
        unsafe {
            let mut buf = vec![0u8; input_len().max(0) as usize];
            let n = input_read(buf.as_mut_ptr(), buf.len() as i32);
            buf.truncate(n.max(0) as usize);
            buf
        }
    }

    pub(super) fn answer(out: &[u8]) -> i32 {
        // SAFETY: the slice is valid for reads of its length; the host copies it.
        unsafe { output_set(out.as_ptr(), out.len() as i32) };
        Status::Ok.code()
    }

    pub(super) fn refuse(why: &str) -> i32 {
        // SAFETY: as above.
        unsafe { output_set(why.as_ptr(), why.len() as i32) };
        Status::GuestError.code()
    }

    /// The host's side of [`Api`].
    pub(super) struct Host;

    // SAFETY (every call below): pointers come from live slices and arrays of the lengths
    // passed; the host checks every range against memory and writes at most the capacity.
    impl Api for Host {
        fn ctx(&self) -> Ctx {
            let mut c = Ctx::default();
            unsafe {
                caller(c.caller.as_mut_ptr());
                address(c.address.as_mut_ptr());
                c.sequence = sequence() as u64;
                c.time = time() as u64;
                c.funds = funds() as u64;
            }
            c
        }

        fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
            let mut buf = vec![0u8; 256];
            let n = unsafe { get(key.as_ptr(), key.len() as i32, buf.as_mut_ptr(), 256) };
            if n < 0 {
                return None;
            }
            if n as usize > buf.len() {
                buf = vec![0u8; n as usize];
                unsafe { get(key.as_ptr(), key.len() as i32, buf.as_mut_ptr(), n) };
            }
            buf.truncate(n as usize);
            Some(buf)
        }

        fn set(&mut self, key: &[u8], value: &[u8]) {
            let st = unsafe {
                set(
                    key.as_ptr(),
                    key.len() as i32,
                    value.as_ptr(),
                    value.len() as i32,
                )
            };
            assert!(
                st == 0,
                "kv.set refused with status {st} (-9: a query may not write)"
            );
        }

        fn remove(&mut self, key: &[u8]) {
            let st = unsafe { remove(key.as_ptr(), key.len() as i32) };
            assert!(
                st == 0,
                "kv.remove refused with status {st} (-9: a query may not write)"
            );
        }

        fn next(&self, from: &[u8], end: Option<&[u8]>) -> Option<(Vec<u8>, Vec<u8>)> {
            let end = end.unwrap_or(&[]);
            let mut buf = vec![0u8; 512];
            let call = |buf: &mut Vec<u8>| unsafe {
                next(
                    from.as_ptr(),
                    from.len() as i32,
                    end.as_ptr(),
                    end.len() as i32,
                    buf.as_mut_ptr(),
                    buf.len() as i32,
                )
            };
            let mut n = call(&mut buf);
            if n < 0 {
                return None;
            }
            if n as usize > buf.len() {
                buf = vec![0u8; n as usize];
                n = call(&mut buf);
            }
            buf.truncate(n as usize);
            let klen = u32::from_le_bytes(buf[..4].try_into().ok()?) as usize;
            let value = buf.split_off(4 + klen);
            Some((buf.split_off(4), value))
        }

        fn balance(&self) -> u64 {
            unsafe { balance() as u64 }
        }

        fn transfer(&mut self, to: &[u8; 32], amount: u64) -> Result<(), TransferError> {
            // No account holds 2^63 µZHTP: such an amount is refused, not wrapped.
            let Ok(amount) = i64::try_from(amount) else {
                return Err(TransferError::InsufficientFunds);
            };
            match unsafe { transfer(to.as_ptr(), amount) } {
                0 => Ok(()),
                -7 => Err(TransferError::InsufficientFunds),
                _ => Err(TransferError::Forbidden),
            }
        }

        fn blake3(&self, data: &[u8]) -> [u8; 32] {
            let mut out = [0u8; 32];
            unsafe { blake3(data.as_ptr(), data.len() as i32, out.as_mut_ptr()) };
            out
        }

        fn ed25519_verify(&self, key: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> bool {
            unsafe {
                ed25519_verify(key.as_ptr(), msg.as_ptr(), msg.len() as i32, sig.as_ptr()) == 0
            }
        }
    }
}
