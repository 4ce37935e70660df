//! The contract imports: `zhtp:kv/v1`, `zhtp:ctx/v1`, `zhtp:crypto/v1`, `zhtp:ledger/v1`.
//!
//! Each function charges its gas first ([`zhtp_abi::contract::gas`]): a call without enough
//! gas ends out of gas before the function does anything. Pointers and lengths are checked
//! against the guest's memory and answered with a [`Status`], as in `zhtp:env/v1`; what must
//! end the call (out of gas, a write over the limits, the state failing) records why in the
//! call's context and traps.

use wasmtime::{Caller, Linker};
use zhtp_abi::Status;
use zhtp_abi::contract::{self as abi, gas};

use super::{ContractError, Entry, Running};
use crate::env::HostState;

type Cx<'a> = Caller<'a, HostState>;

/// The trap that ends a call whose context says why ([`Running::failure`]).
#[derive(Debug)]
struct Stop;

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("contract call stopped by the host")
    }
}
impl std::error::Error for Stop {}

fn stop(cx: &mut Cx<'_>, why: ContractError) -> wasmtime::Error {
    if let Some(r) = cx.data_mut().contract.as_mut() {
        r.failure.get_or_insert(why);
    }
    wasmtime::Error::new(Stop)
}

fn running<'a>(cx: &'a mut Cx<'_>) -> &'a mut Running {
    cx.data_mut()
        .contract
        .as_mut()
        .expect("the contract linker is only used for contract calls")
}

/// Takes `cost` gas, or ends the call out of gas.
fn charge(cx: &mut Cx<'_>, cost: u64) -> wasmtime::Result<()> {
    let left = cx.get_fuel()?;
    if left < cost {
        cx.set_fuel(0)?;
        let limit = running(cx).call.gas_limit;
        return Err(stop(cx, ContractError::OutOfGas { limit }));
    }
    cx.set_fuel(left - cost)?;
    Ok(())
}

/// `[ptr, ptr + len)` of guest memory, copied, or the status to answer.
fn read(cx: &Cx<'_>, ptr: i32, len: i32) -> Result<Vec<u8>, Status> {
    if ptr < 0 || len < 0 {
        return Err(Status::InvalidArgument);
    }
    let (ptr, len) = (ptr as usize, len as usize);
    let mem = cx.data().memory.ok_or(Status::OutOfBounds)?;
    mem.data(cx)
        .get(ptr..ptr.checked_add(len).ok_or(Status::OutOfBounds)?)
        .map(<[u8]>::to_vec)
        .ok_or(Status::OutOfBounds)
}

/// Writes `bytes` (at most `cap` of them) at `ptr`, or the status to answer.
fn write(cx: &mut Cx<'_>, ptr: i32, cap: i32, bytes: &[u8]) -> Result<(), Status> {
    if ptr < 0 || cap < 0 {
        return Err(Status::InvalidArgument);
    }
    let n = bytes.len().min(cap as usize);
    let ptr = ptr as usize;
    let mem = cx.data().memory.ok_or(Status::OutOfBounds)?;
    let dst = mem
        .data_mut(cx)
        .get_mut(ptr..ptr.checked_add(n).ok_or(Status::OutOfBounds)?)
        .ok_or(Status::OutOfBounds)?;
    dst.copy_from_slice(&bytes[..n]);
    Ok(())
}

fn code(r: Result<i32, Status>) -> i32 {
    r.unwrap_or_else(Status::code)
}

/// A key from guest memory, checked against the length limit.
fn key(cx: &Cx<'_>, ptr: i32, len: i32) -> Result<Vec<u8>, Status> {
    if len > 0 && len as usize > abi::MAX_KEY_LEN {
        return Err(Status::TooLarge);
    }
    read(cx, ptr, len)
}

/// The value of `key` as the call sees it: its own writes first, then the state.
fn lookup(cx: &mut Cx<'_>, key: &[u8]) -> wasmtime::Result<Option<Vec<u8>>> {
    let r = running(cx);
    if let Some(v) = r.overlay.get(key) {
        return Ok(v.clone());
    }
    match r.state.get(key) {
        Ok(v) => Ok(v),
        Err(e) => Err(stop(cx, ContractError::State(e))),
    }
}

/// The first entry with `from <= key < end` as the call sees it: the state's, merged with the
/// call's own writes (a removed key is skipped).
fn first(
    cx: &mut Cx<'_>,
    from: &[u8],
    end: Option<&[u8]>,
) -> wasmtime::Result<Option<super::Pair>> {
    let mut from = from.to_vec();
    let mut looked = false;
    loop {
        // Each key this call removed costs another read to step over.
        if std::mem::replace(&mut looked, true) {
            charge(cx, gas::READ + from.len() as u64 * gas::BYTE)?;
        }
        let r = running(cx);
        let stored = match r.state.next(&from, end) {
            Ok(s) => s,
            Err(e) => return Err(stop(cx, ContractError::State(e))),
        };
        let r = running(cx);
        let written = r
            .overlay
            .range(from.clone()..)
            .next()
            .filter(|(k, _)| end.is_none_or(|e| k.as_slice() < e))
            .map(|(k, v)| (k.clone(), v.clone()));
        let pick = match (stored, written) {
            (None, None) => return Ok(None),
            (Some((k, v)), None) => Some((k, Some(v))),
            (None, Some((k, v))) => Some((k, v)),
            (Some((sk, sv)), Some((wk, wv))) => {
                if wk <= sk {
                    Some((wk, wv))
                } else {
                    Some((sk, Some(sv)))
                }
            }
        };
        let Some((k, v)) = pick else {
            return Ok(None);
        };
        match v {
            Some(v) => return Ok(Some((k, v))),
            None => {
                // Removed by this call: go on after it.
                from = k;
                from.push(0);
            }
        }
    }
}

/// Adds the contract imports to `linker`.
pub(super) fn add(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        abi::KV_MODULE,
        abi::KV_GET,
        |mut cx: Cx<'_>, kp: i32, kl: i32, vp: i32, vc: i32| -> wasmtime::Result<i32> {
            charge(
                &mut cx,
                gas::CALL + gas::READ + kl.max(0) as u64 * gas::BYTE,
            )?;
            let k = match key(&cx, kp, kl) {
                Ok(k) => k,
                Err(s) => return Ok(s.code()),
            };
            let Some(v) = lookup(&mut cx, &k)? else {
                return Ok(Status::NotFound.code());
            };
            charge(&mut cx, v.len() as u64 * gas::BYTE)?;
            Ok(code(write(&mut cx, vp, vc, &v).map(|()| v.len() as i32)))
        },
    )?;
    linker.func_wrap(
        abi::KV_MODULE,
        abi::KV_SET,
        |mut cx: Cx<'_>, kp: i32, kl: i32, vp: i32, vl: i32| -> wasmtime::Result<i32> {
            let bytes = kl.max(0) as u64 + vl.max(0) as u64;
            charge(
                &mut cx,
                gas::CALL + gas::WRITE + bytes * (gas::BYTE + gas::WRITE_BYTE),
            )?;
            if running(&mut cx).call.entry == Entry::Query {
                return Ok(Status::Forbidden.code());
            }
            if vl > 0 && vl as usize > abi::MAX_VALUE_LEN
                || kl > 0 && kl as usize > abi::MAX_KEY_LEN
            {
                let why = format!(
                    "a key of {kl} bytes and a value of {vl}; at most {} and {}",
                    abi::MAX_KEY_LEN,
                    abi::MAX_VALUE_LEN
                );
                return Err(stop(&mut cx, ContractError::WriteLimit(why)));
            }
            let (k, v) = match (read(&cx, kp, kl), read(&cx, vp, vl)) {
                (Ok(k), Ok(v)) => (k, v),
                (Err(s), _) | (_, Err(s)) => return Ok(s.code()),
            };
            let r = running(&mut cx);
            r.written += k.len() + v.len();
            if r.written > abi::MAX_WRITE_BYTES {
                let why = format!("over {} bytes in one call", abi::MAX_WRITE_BYTES);
                return Err(stop(&mut cx, ContractError::WriteLimit(why)));
            }
            r.overlay.insert(k, Some(v));
            Ok(Status::Ok.code())
        },
    )?;
    linker.func_wrap(
        abi::KV_MODULE,
        abi::KV_REMOVE,
        |mut cx: Cx<'_>, kp: i32, kl: i32| -> wasmtime::Result<i32> {
            charge(
                &mut cx,
                gas::CALL + gas::WRITE + kl.max(0) as u64 * (gas::BYTE + gas::WRITE_BYTE),
            )?;
            if running(&mut cx).call.entry == Entry::Query {
                return Ok(Status::Forbidden.code());
            }
            if kl > 0 && kl as usize > abi::MAX_KEY_LEN {
                let why = format!("a key of {kl} bytes; at most {}", abi::MAX_KEY_LEN);
                return Err(stop(&mut cx, ContractError::WriteLimit(why)));
            }
            let k = match read(&cx, kp, kl) {
                Ok(k) => k,
                Err(s) => return Ok(s.code()),
            };
            // A removal is a write every replica keeps: it counts toward the call's bytes.
            let r = running(&mut cx);
            r.written += k.len();
            if r.written > abi::MAX_WRITE_BYTES {
                let why = format!("over {} bytes in one call", abi::MAX_WRITE_BYTES);
                return Err(stop(&mut cx, ContractError::WriteLimit(why)));
            }
            r.overlay.insert(k, None);
            Ok(Status::Ok.code())
        },
    )?;
    linker.func_wrap(
        abi::KV_MODULE,
        abi::KV_NEXT,
        |mut cx: Cx<'_>,
         fp: i32,
         fl: i32,
         ep: i32,
         el: i32,
         op: i32,
         oc: i32|
         -> wasmtime::Result<i32> {
            charge(
                &mut cx,
                gas::CALL + gas::READ + (fl.max(0) as u64 + el.max(0) as u64) * gas::BYTE,
            )?;
            let (from, end) = match (key(&cx, fp, fl), key(&cx, ep, el)) {
                (Ok(f), Ok(e)) => (f, e),
                (Err(s), _) | (_, Err(s)) => return Ok(s.code()),
            };
            let end = (!end.is_empty()).then_some(end);
            let Some((k, v)) = first(&mut cx, &from, end.as_deref())? else {
                return Ok(Status::NotFound.code());
            };
            let mut pair = Vec::with_capacity(4 + k.len() + v.len());
            pair.extend_from_slice(&(k.len() as u32).to_le_bytes());
            pair.extend_from_slice(&k);
            pair.extend_from_slice(&v);
            charge(&mut cx, pair.len() as u64 * gas::BYTE)?;
            Ok(code(
                write(&mut cx, op, oc, &pair).map(|()| pair.len() as i32),
            ))
        },
    )?;

    linker.func_wrap(
        abi::CTX_MODULE,
        abi::CTX_CALLER,
        |mut cx: Cx<'_>, p: i32| -> wasmtime::Result<i32> {
            charge(&mut cx, gas::CALL + 32 * gas::BYTE)?;
            let who = running(&mut cx).call.caller;
            Ok(code(
                write(&mut cx, p, 32, &who).map(|()| Status::Ok.code()),
            ))
        },
    )?;
    linker.func_wrap(
        abi::CTX_MODULE,
        abi::CTX_ADDRESS,
        |mut cx: Cx<'_>, p: i32| -> wasmtime::Result<i32> {
            charge(&mut cx, gas::CALL + 32 * gas::BYTE)?;
            let at = running(&mut cx).call.address;
            Ok(code(write(&mut cx, p, 32, &at).map(|()| Status::Ok.code())))
        },
    )?;
    linker.func_wrap(
        abi::CTX_MODULE,
        abi::CTX_SEQUENCE,
        |mut cx: Cx<'_>| -> wasmtime::Result<i64> {
            charge(&mut cx, gas::CALL)?;
            Ok(running(&mut cx).call.sequence as i64)
        },
    )?;
    linker.func_wrap(
        abi::CTX_MODULE,
        abi::CTX_TIME,
        |mut cx: Cx<'_>| -> wasmtime::Result<i64> {
            charge(&mut cx, gas::CALL)?;
            Ok(running(&mut cx).call.time as i64)
        },
    )?;

    linker.func_wrap(
        abi::CRYPTO_MODULE,
        abi::CRYPTO_BLAKE3,
        |mut cx: Cx<'_>, p: i32, l: i32, out: i32| -> wasmtime::Result<i32> {
            charge(
                &mut cx,
                gas::CALL + gas::BLAKE3 + (l.max(0) as u64 + 32) * gas::BYTE,
            )?;
            let hash = match read(&cx, p, l) {
                Ok(b) => *blake3::hash(&b).as_bytes(),
                Err(s) => return Ok(s.code()),
            };
            Ok(code(
                write(&mut cx, out, 32, &hash).map(|()| Status::Ok.code()),
            ))
        },
    )?;
    linker.func_wrap(
        abi::CRYPTO_MODULE,
        abi::CRYPTO_ED25519_VERIFY,
        |mut cx: Cx<'_>, kp: i32, mp: i32, ml: i32, sp: i32| -> wasmtime::Result<i32> {
            charge(
                &mut cx,
                gas::CALL + gas::ED25519_VERIFY + (ml.max(0) as u64 + 96) * gas::BYTE,
            )?;
            let parts = (read(&cx, kp, 32), read(&cx, mp, ml), read(&cx, sp, 64));
            let (k, m, s) = match parts {
                (Ok(k), Ok(m), Ok(s)) => (k, m, s),
                (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return Ok(e.code()),
            };
            let key: [u8; 32] = k.try_into().expect("32 bytes read");
            Ok(match zhtp_identity::verify(&key, &m, &s) {
                Ok(()) => Status::Ok.code(),
                Err(_) => Status::BadSignature.code(),
            })
        },
    )?;

    linker.func_wrap(
        abi::LEDGER_MODULE,
        abi::LEDGER_BALANCE,
        |mut cx: Cx<'_>| -> wasmtime::Result<i64> {
            charge(&mut cx, gas::CALL)?;
            Ok(balance(running(&mut cx)) as i64)
        },
    )?;
    linker.func_wrap(
        abi::LEDGER_MODULE,
        abi::LEDGER_FUNDS,
        |mut cx: Cx<'_>| -> wasmtime::Result<i64> {
            charge(&mut cx, gas::CALL)?;
            Ok(running(&mut cx).call.funds as i64)
        },
    )?;
    linker.func_wrap(
        abi::LEDGER_MODULE,
        abi::LEDGER_TRANSFER,
        |mut cx: Cx<'_>, to: i32, amount: i64| -> wasmtime::Result<i32> {
            charge(&mut cx, gas::CALL + gas::TRANSFER + 32 * gas::BYTE)?;
            if running(&mut cx).call.entry == Entry::Query || amount <= 0 {
                return Ok(Status::Forbidden.code());
            }
            let to: [u8; 32] = match read(&cx, to, 32) {
                Ok(b) => b.try_into().expect("32 bytes read"),
                Err(s) => return Ok(s.code()),
            };
            let r = running(&mut cx);
            if r.transfers.len() >= abi::MAX_TRANSFERS {
                return Ok(Status::QuotaExceeded.code());
            }
            if balance(r) < amount as u64 {
                return Ok(Status::InsufficientFunds.code());
            }
            r.transfers.push((to, amount as u64));
            r.paid += amount as u64;
            Ok(Status::Ok.code())
        },
    )?;
    Ok(())
}

/// What the contract holds now: its balance before the call, the call's funds, less its
/// transfers so far (never below zero: a transfer is refused before it would be).
fn balance(r: &Running) -> u64 {
    r.call
        .balance
        .saturating_add(r.call.funds)
        .saturating_sub(r.paid)
}

/// Charges a `zhtp:env/v1` function called by a contract ([`gas::CALL`] and `bytes` copied);
/// nothing for a plugin, which time bounds instead.
pub(crate) fn charge_env(cx: &mut Cx<'_>, bytes: u64) -> wasmtime::Result<()> {
    if cx.data().contract.is_none() {
        return Ok(());
    }
    charge(cx, gas::CALL + bytes * gas::BYTE)
}
