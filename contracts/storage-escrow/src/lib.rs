//! A storage deal held by a contract: the client deposits the price with its instantiate
//! call; each period, the auditor both sides named signs what its audits found; with that
//! signature anyone settles the period: the provider is paid the period's share less the
//! penalty, and the penalty goes back to the client. Once every period is settled the client
//! takes back what rounding left.
//!
//! It talks to the economy only through `zhtp:ledger/v1`: the deposit is the call's funds,
//! payments are transfers out of the contract's account.
//!
//! Messages are JSON; keys are 64 hex characters, signatures 128. Instantiate: `{"client":
//! K, "provider": K, "auditor": K, "periods": 4, "per_period": 1000000}` with funds of
//! `periods × per_period`, sent by the client. Execute: `{"settle": {"period": 0, "passed":
//! true, "penalty_bp": 0, "signature": S}}` and `{"close": {}}`. Query: `{"status": {}}`.
//!
//! The auditor signs, with Ed25519, the 32-byte BLAKE3 hash of: `zhtp storage-escrow v1`,
//! the contract's address (32 bytes), the period (4 bytes little-endian), `passed` (one byte,
//! 0 or 1) and `penalty_bp` (4 bytes little-endian); see [`verdict_digest`].
#![no_std]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};
use zhtp_sdk::contract::{Api, Item, Map};

/// The deal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Init {
    /// Who pays (and must send the instantiate call with the deposit).
    pub client: String,
    /// Who stores, and is paid.
    pub provider: String,
    /// Whose signed verdicts settle periods.
    pub auditor: String,
    /// Periods of the deal.
    pub periods: u32,
    /// µZHTP per period.
    pub per_period: u64,
}

/// The execute messages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Exec {
    /// Settles one period with the auditor's signed verdict.
    Settle {
        /// The period, from 0.
        period: u32,
        /// Whether the provider passed its audits.
        passed: bool,
        /// The share of the period's payment that goes back to the client, in basis points
        /// (0 when it passed; at most 10,000).
        penalty_bp: u32,
        /// The auditor's Ed25519 signature over [`verdict_digest`], 128 hex characters.
        signature: String,
    },
    /// After the last period: what is left goes back to the client (the client only).
    Close {},
}

/// The query messages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Query {
    /// Where the deal stands.
    Status {},
}

/// Where the deal stands.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// Periods settled.
    pub settled: u32,
    /// Of the deal's periods.
    pub periods: u32,
    /// µZHTP paid to the provider.
    pub paid: u64,
    /// µZHTP returned to the client.
    pub refunded: u64,
    /// µZHTP the contract holds.
    pub balance: u64,
    /// Closed: nothing moves any more.
    pub closed: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Deal {
    client: [u8; 32],
    provider: [u8; 32],
    auditor: [u8; 32],
    periods: u32,
    per_period: u64,
}

const DEAL: Item<Deal> = Item::new("deal");
const STATUS: Item<Status> = Item::new("status");
const SETTLED: Map<bool> = Map::new("settled");

/// The bytes the auditor's signature covers: BLAKE3 of the domain, the address, the period,
/// the verdict and the penalty.
pub fn verdict_digest(
    api: &dyn Api,
    address: &[u8; 32],
    period: u32,
    passed: bool,
    penalty_bp: u32,
) -> [u8; 32] {
    let mut msg = Vec::with_capacity(64 + 9);
    msg.extend_from_slice(b"zhtp storage-escrow v1");
    msg.extend_from_slice(address);
    msg.extend_from_slice(&period.to_le_bytes());
    msg.push(u8::from(passed));
    msg.extend_from_slice(&penalty_bp.to_le_bytes());
    api.blake3(&msg)
}

fn unhex<const N: usize>(s: &str, what: &'static str) -> Result<[u8; N], &'static str> {
    let b = s.as_bytes();
    if b.len() != 2 * N {
        return Err(what);
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err(what),
    };
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = digit(b[2 * i])? << 4 | digit(b[2 * i + 1])?;
    }
    Ok(out)
}

fn status(api: &dyn Api) -> Status {
    let mut s = STATUS.load(api).unwrap_or_default();
    s.balance = api.balance();
    s
}

/// Opens the deal: the client sends the whole price with it.
#[zhtp_sdk::contract(instantiate)]
pub fn instantiate(api: &mut dyn Api, msg: Init) -> Result<Status, &'static str> {
    if DEAL.load(api).is_some() {
        return Err("this deal was opened already");
    }
    let deal = Deal {
        client: unhex(&msg.client, "client: 64 hex characters")?,
        provider: unhex(&msg.provider, "provider: 64 hex characters")?,
        auditor: unhex(&msg.auditor, "auditor: 64 hex characters")?,
        periods: msg.periods,
        per_period: msg.per_period,
    };
    if deal.periods == 0 || deal.per_period == 0 {
        return Err("a deal has at least one period and a price");
    }
    if api.ctx().caller != deal.client {
        return Err("the client opens the deal");
    }
    let price = u64::from(deal.periods)
        .checked_mul(deal.per_period)
        .ok_or("the price overflows")?;
    if api.ctx().funds != price {
        return Err("send exactly periods × per_period with the instantiate call");
    }
    DEAL.save(api, &deal);
    let s = Status {
        periods: deal.periods,
        ..Status::default()
    };
    STATUS.save(api, &s);
    Ok(status(api))
}

/// Settles a period with the auditor's verdict, or closes the deal.
#[zhtp_sdk::contract(execute)]
pub fn execute(api: &mut dyn Api, msg: Exec) -> Result<Status, &'static str> {
    let deal = DEAL.load(api).ok_or("no deal here")?;
    let mut s = STATUS.load(api).unwrap_or_default();
    if s.closed {
        return Err("the deal is closed");
    }
    match msg {
        Exec::Settle {
            period,
            passed,
            penalty_bp,
            signature,
        } => {
            if period >= deal.periods {
                return Err("no such period");
            }
            if penalty_bp > 10_000 || (passed && penalty_bp != 0) {
                return Err("a penalty is 0 to 10,000 bp, and 0 for a period that passed");
            }
            let key = alloc::format!("{period}");
            if SETTLED.load(api, &key).is_some() {
                return Err("that period is settled already");
            }
            let sig: [u8; 64] = unhex(&signature, "signature: 128 hex characters")?;
            let digest = verdict_digest(api, &api.ctx().address, period, passed, penalty_bp);
            if !api.ed25519_verify(&deal.auditor, &digest, &sig) {
                return Err("the verdict is not signed by the deal's auditor");
            }
            // ≤ per_period: no overflow.
            let penalty = (u128::from(deal.per_period) * u128::from(penalty_bp) / 10_000) as u64;
            let pay = deal.per_period - penalty;
            if pay > 0 {
                api.transfer(&deal.provider, pay)
                    .map_err(|_| "the deal's account is short")?;
            }
            if penalty > 0 {
                api.transfer(&deal.client, penalty)
                    .map_err(|_| "the deal's account is short")?;
            }
            SETTLED.save(api, &key, &true);
            s.settled += 1;
            s.paid += pay;
            s.refunded += penalty;
        }
        Exec::Close {} => {
            if api.ctx().caller != deal.client {
                return Err("only the client closes the deal");
            }
            if s.settled < deal.periods {
                return Err("periods are left to settle");
            }
            let left = api.balance();
            if left > 0 {
                api.transfer(&deal.client, left)
                    .map_err(|_| "the deal's account is short")?;
                s.refunded += left;
            }
            s.closed = true;
        }
    }
    STATUS.save(api, &s);
    Ok(status(api))
}

/// Where the deal stands.
#[zhtp_sdk::contract(query)]
pub fn query(api: &mut dyn Api, msg: Query) -> Result<Status, &'static str> {
    match msg {
        Query::Status {} => Ok(status(api)),
    }
}
