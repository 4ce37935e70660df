//! A double-entry ledger of integer µZHTP in RocksDB.
//!
//! Every movement is a [`Transfer`] that debits one account and credits another by the same
//! amount; each account keeps the totals of its debits and credits, and its balance is credits
//! minus debits. A write (one transfer, or the legs of one escrow step, with the escrow's state
//! and the history entries) is one atomic RocksDB batch, so a crash leaves either all of it or
//! none. One writer at a time: a transfer reads the balances it changes, and no other write may
//! come between the read and the batch.
//!
//! The supply is fixed at genesis: [`Account::Genesis`] is debited once, on a devnet, to fill the
//! faucet ([`Genesis::Devnet`]), and never again; it is the only account whose debits may exceed
//! its credits. A node started without a devnet genesis has no faucet and never mints, and
//! once it ran so it never can ([`Ledger::seal_network`]). So at
//! every point the balances of all other accounts add up to the supply ([`Ledger::audit`]
//! recounts it, and the tests call it after every step).
//!
//! Transfer ids are idempotency keys: a transfer sent again with the same id and the same
//! fields is a no-op that answers with the first one's receipt (a client that does not know
//! whether its request landed before a crash just sends it again); the same id with other
//! fields is refused. Escrow steps (and genesis) derive their ids from the storage contract,
//! the period and the payee, so each payee is paid at most once per period, whoever retries
//! (what it is owed, and which periods exist, the caller takes from the storage contract). Derived
//! ids live in a key space of their own: an id a caller picks can never take a step's place.
//! No write ever replaces a transfer.
//!
//! Layout in the `ledger` column family (accounts are 33 bytes: a kind byte and 32 id bytes):
//!
//! | key | value |
//! |---|---|
//! | `m/seq` | sequence number of the last transfer (u64 LE) |
//! | `m/supply` | the supply set at genesis (u64 LE) |
//! | `m/devnet` | present on a devnet ledger (a faucet exists) |
//! | `m/network` | present on a ledger first used without a devnet genesis: none can come later |
//! | `a/<account>` | [`Totals`]: debits and credits (postcard) |
//! | `t/<space><id>` | the [`Transfer`] (postcard); space 0: ids callers chose, 1: derived ids |
//! | `h/<account><seq u64 BE>` | `<space><id>` of a transfer touching the account (its history) |
//! | `e/<contract>` | the [`Escrow`] of a storage contract (postcard) |
//! | `u/<mandate>` | the contract a client's mandate paid for |
//! | `s/<contract><period u32 BE>` | the [`PeriodReceipt`] of a settled period (postcard) |
//! | `f/<contract>` | the network fee the escrow still owes the incentive pool (u64 LE) |

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use thiserror::Error;
use zhtp_store::{Batch, Cf, Store};
use zhtp_types::{MICRO_PER_TOKEN, MicroZhtp};

/// An account of the ledger.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Account {
    /// A user or a node: its Ed25519 public key.
    Key([u8; 32]),
    /// The escrow of one storage contract, by the contract's id.
    Escrow([u8; 32]),
    /// Fees the network keeps.
    Treasury,
    /// Pays performance bonuses to providers; the network fee feeds it.
    Incentives,
    /// The devnet faucet: the whole supply at a devnet's genesis; empty on any other ledger.
    Faucet,
    /// Where the supply comes from: debited once, at genesis.
    Genesis,
}

impl Account {
    /// Bytes of an account in keys.
    pub const LEN: usize = 33;

    fn bytes(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        let (kind, id) = match self {
            Account::Key(k) => (0, Some(k)),
            Account::Escrow(c) => (1, Some(c)),
            Account::Treasury => (2, None),
            Account::Incentives => (3, None),
            Account::Faucet => (4, None),
            Account::Genesis => (5, None),
        };
        out[0] = kind;
        if let Some(id) = id {
            out[1..].copy_from_slice(id);
        }
        out
    }

    fn from_bytes(b: &[u8]) -> Option<Self> {
        let (&kind, id) = b.split_first()?;
        let id: [u8; 32] = id.try_into().ok()?;
        let singleton = |a: Account| (id == [0; 32]).then_some(a);
        match kind {
            0 => Some(Account::Key(id)),
            1 => Some(Account::Escrow(id)),
            2 => singleton(Account::Treasury),
            3 => singleton(Account::Incentives),
            4 => singleton(Account::Faucet),
            5 => singleton(Account::Genesis),
            _ => None,
        }
    }
}

impl fmt::Display for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Account::Key(k) => write!(f, "{}", hex::encode(k)),
            Account::Escrow(c) => write!(f, "escrow of storage contract {}", hex::encode(c)),
            Account::Treasury => f.write_str("treasury"),
            Account::Incentives => f.write_str("incentive pool"),
            Account::Faucet => f.write_str("faucet"),
            Account::Genesis => f.write_str("genesis"),
        }
    }
}

/// µZHTP as tokens, for messages: `1.5 ZHTP`.
pub fn tokens(amount: MicroZhtp) -> String {
    let (whole, frac) = (amount / MICRO_PER_TOKEN, amount % MICRO_PER_TOKEN);
    if frac == 0 {
        format!("{whole} ZHTP")
    } else {
        let frac = format!("{frac:06}");
        format!("{whole}.{} ZHTP", frac.trim_end_matches('0'))
    }
}

/// Why a transfer was made. (Postcard stores the variant's number; the names are for JSON.)
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// The supply, into the faucet, at a devnet's genesis.
    Genesis,
    /// From the devnet faucet.
    Faucet,
    /// From one account to another.
    Transfer,
    /// A client's payment into a storage contract's escrow.
    EscrowLock,
    /// From escrow to a provider, for one period.
    EscrowRelease,
    /// From escrow back to the client, for one period (a penalty).
    EscrowRefund,
    /// What is left in escrow, back to the client when the contract is settled.
    EscrowSettle,
    /// The network fee of a storage contract, from its escrow into the incentive pool (with
    /// the first period paid).
    NetworkFee,
    /// A performance bonus, from the incentive pool to a provider, for one period.
    Bonus,
    /// What is left in a storage contract's escrow, into the escrow of the contract that
    /// succeeds it (its content was moved to new shards: [`Ledger::move_escrow`]).
    EscrowMove,
}

/// One movement: `amount` from `debit` to `credit`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    /// The idempotency key.
    pub id: [u8; 32],
    /// The ledger derived the id (escrow steps, genesis) rather than a caller choosing it.
    pub derived: bool,
    /// Position in the ledger's order of writes (from 1).
    pub seq: u64,
    /// The account paying.
    pub debit: Account,
    /// The account paid.
    pub credit: Account,
    /// µZHTP, never zero.
    pub amount: MicroZhtp,
    /// Why.
    pub kind: Kind,
    /// When it was written (Unix seconds).
    pub at: u64,
}

/// What a write did: the transfer, and whether it had been written before (same id, same
/// fields: nothing moved this time).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// The transfer as the ledger holds it.
    pub transfer: Transfer,
    /// An earlier write with this id and these fields; this one changed nothing.
    pub replayed: bool,
}

/// The escrow of one storage contract.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Escrow {
    /// Who paid in, and gets refunds and the remainder.
    pub client: Account,
    /// µZHTP paid in.
    pub funded: MicroZhtp,
    /// µZHTP paid out: to providers, the network fee to the incentive pool, and what a
    /// [`Ledger::move_escrow`] handed on to a successor's escrow (its transfer says which).
    pub released: MicroZhtp,
    /// µZHTP paid back to the client before settlement (penalties).
    pub refunded: MicroZhtp,
    /// Settled: the remainder went back to the client and nothing moves any more.
    pub settled: bool,
}

impl Escrow {
    /// µZHTP still held; `None` when the steps add up to more than was paid in (a damaged
    /// record: the ledger never writes one).
    pub fn remaining(&self) -> Option<MicroZhtp> {
        self.funded
            .checked_sub(self.released.checked_add(self.refunded)?)
    }
}

/// What one settled period of a storage contract pays ([`Ledger::pay_period`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeriodPayout {
    /// From escrow to each provider: its share less its penalty.
    pub released: Vec<(Account, MicroZhtp)>,
    /// From escrow back to the client: penalties and forfeited shares.
    pub refund: MicroZhtp,
    /// From the incentive pool to providers: bonuses asked (paid as far as the pool holds).
    pub bonuses: Vec<(Account, MicroZhtp)>,
}

/// What a settled period paid.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeriodReceipt {
    /// To providers from escrow, µZHTP.
    pub released: MicroZhtp,
    /// Back to the client, µZHTP.
    pub refunded: MicroZhtp,
    /// Bonuses paid from the incentive pool, µZHTP.
    pub bonuses: MicroZhtp,
    /// The network fee moved from escrow to the incentive pool with this period, µZHTP.
    pub fee: MicroZhtp,
    /// Settled by an earlier call: nothing moved this time.
    #[serde(skip)]
    pub replayed: bool,
}

/// Debits and credits of one account, in µZHTP, since genesis.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Paid out.
    pub debits: u128,
    /// Paid in.
    pub credits: u128,
}

impl Totals {
    /// Credits minus debits; `None` when the debits are larger (only ever [`Account::Genesis`]).
    pub fn balance(&self) -> Option<MicroZhtp> {
        self.credits
            .checked_sub(self.debits)
            .and_then(|b| u64::try_from(b).ok())
    }
}

/// How a ledger starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Genesis {
    /// A devnet: `supply` µZHTP in the faucet, which funds accounts on request.
    Devnet {
        /// The whole supply, ever.
        supply: MicroZhtp,
    },
}

/// What went wrong.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// The paying account has less than the amount.
    #[error("{account} has {} and cannot pay {}", tokens(*balance), tokens(*amount))]
    InsufficientFunds {
        /// The paying account.
        account: Account,
        /// Its balance.
        balance: MicroZhtp,
        /// The amount asked.
        amount: MicroZhtp,
    },
    /// A transfer of nothing.
    #[error("a transfer moves at least 1 µZHTP")]
    ZeroAmount,
    /// From an account to itself.
    #[error("a transfer from {0} to itself")]
    SameAccount(Account),
    /// Only genesis may debit the genesis account, and nobody may credit it.
    #[error("the genesis account only ever pays the supply into the faucet, at genesis")]
    GenesisAccount,
    /// The id names an earlier transfer with other fields.
    #[error("transfer id {} is taken by another transfer", hex::encode(.0))]
    IdReused([u8; 32]),
    /// The faucet exists only on a devnet.
    #[error("this ledger has no faucet: only a node started as a devnet (--devnet) mints tokens")]
    NotDevnet,
    /// A devnet genesis on a ledger first used without one.
    #[error(
        "this ledger was started without --devnet, so it has no faucet and never will: a devnet needs a new data dir"
    )]
    LateGenesis,
    /// No escrow for this storage contract.
    #[error("no escrow for storage contract {}", hex::encode(.0))]
    NoEscrow([u8; 32]),
    /// The client's mandate already paid for another storage contract.
    #[error("the mandate {} already paid for storage contract {}", hex::encode(.0), hex::encode(.1))]
    MandateUsed([u8; 32], [u8; 32]),
    /// The storage contract already has an escrow.
    #[error("storage contract {} already has an escrow", hex::encode(.0))]
    EscrowExists([u8; 32]),
    /// The escrow was settled: nothing moves any more.
    #[error("the escrow of storage contract {} is settled", hex::encode(.0))]
    Settled([u8; 32]),
    /// The escrow holds less than a release or refund asks.
    #[error("the escrow of storage contract {} holds {}, not {}", hex::encode(contract), tokens(*remaining), tokens(*amount))]
    EscrowShort {
        /// The storage contract.
        contract: [u8; 32],
        /// What the escrow holds.
        remaining: MicroZhtp,
        /// What was asked.
        amount: MicroZhtp,
    },
    /// An escrow pays its own client or itself through release.
    #[error("an escrow release pays a provider, not the contract's client or an escrow")]
    BadPayee,
    /// A period's payout names a provider twice.
    #[error("a period's payout names a provider twice")]
    DuplicatePayee,
    /// A network fee not smaller than the price it is part of.
    #[error("a network fee of {} is not less than the price of {}", tokens(*fee), tokens(*amount))]
    FeeAbovePrice {
        /// The fee.
        fee: MicroZhtp,
        /// The price.
        amount: MicroZhtp,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] zhtp_store::Error),
    /// Something in the ledger does not decode or does not add up.
    #[error("the ledger is inconsistent: {0}")]
    Corrupt(String),
}

const SEQ: &[u8] = b"m/seq";
const SUPPLY: &[u8] = b"m/supply";
const DEVNET: &[u8] = b"m/devnet";
const NETWORK: &[u8] = b"m/network";

fn key(prefix: u8, rest: &[&[u8]]) -> Vec<u8> {
    let mut k = vec![prefix, b'/'];
    for r in rest {
        k.extend_from_slice(r);
    }
    k
}

fn account_key(a: &Account) -> Vec<u8> {
    key(b'a', &[&a.bytes()])
}

/// A transfer's key and its history value: the id's space, then the id.
fn transfer_ref(id: &[u8; 32], derived: bool) -> [u8; 33] {
    let mut r = [0u8; 33];
    r[0] = u8::from(derived);
    r[1..].copy_from_slice(id);
    r
}

fn transfer_key(id: &[u8; 32], derived: bool) -> Vec<u8> {
    key(b't', &[&transfer_ref(id, derived)])
}

fn history_key(a: &Account, seq: u64) -> Vec<u8> {
    key(b'h', &[&a.bytes(), &seq.to_be_bytes()])
}

fn escrow_key(contract: &[u8; 32]) -> Vec<u8> {
    key(b'e', &[contract])
}

fn mandate_key(mandate: &[u8; 32]) -> Vec<u8> {
    key(b'u', &[mandate])
}

fn fee_key(contract: &[u8; 32]) -> Vec<u8> {
    key(b'f', &[contract])
}

fn successor_key(contract: &[u8; 32]) -> Vec<u8> {
    key(b'r', &[contract])
}

fn period_key(contract: &[u8; 32], period: u32) -> Vec<u8> {
    key(b's', &[contract, &period.to_be_bytes()])
}

/// The id of an escrow step: what (`lock`, `release`, `refund`, `settle`), the contract, the
/// period and the account paid. At most one transfer per step and payee, whoever retries.
pub fn escrow_step_id(step: &str, contract: &[u8; 32], period: u32, payee: &Account) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key("zhtp ledger escrow step v1");
    h.update(step.as_bytes());
    h.update(&[0]);
    h.update(contract);
    h.update(&period.to_le_bytes());
    h.update(&payee.bytes());
    *h.finalize().as_bytes()
}

fn decode<'a, T: Deserialize<'a>>(what: &str, bytes: &'a [u8]) -> Result<T, Error> {
    postcard::from_bytes(bytes).map_err(|e| Error::Corrupt(format!("{what}: {e}")))
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    postcard::to_allocvec(v).expect("ledger values encode")
}

fn u64_of(what: &str, bytes: Option<Vec<u8>>) -> Result<u64, Error> {
    match bytes {
        None => Ok(0),
        Some(b) => Ok(u64::from_le_bytes(b.as_slice().try_into().map_err(
            |_| Error::Corrupt(format!("{what} is {} bytes, not 8", b.len())),
        )?)),
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A transfer to write.
struct Leg {
    id: [u8; 32],
    derived: bool,
    debit: Account,
    credit: Account,
    amount: MicroZhtp,
    kind: Kind,
}

/// What [`Ledger::audit`] found (every invariant held, or it returns an error).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Audit {
    /// The supply.
    pub supply: MicroZhtp,
    /// Accounts with any movement.
    pub accounts: usize,
    /// Transfers written.
    pub transfers: u64,
    /// Escrows, and how many of them are settled.
    pub escrows: (usize, usize),
}

/// The ledger of one node, in its store.
#[derive(Debug)]
pub struct Ledger {
    store: Arc<Store>,
    /// One writer at a time (see the module docs).
    write: Mutex<()>,
}

impl Ledger {
    /// The ledger in `store` (an empty one when nothing was ever written).
    pub fn open(store: Arc<Store>) -> Self {
        Self {
            store,
            write: Mutex::new(()),
        }
    }

    /// Starts a devnet: the faucet gets the whole supply. Once: a ledger that has it already
    /// keeps its supply (and this returns it); a ledger that moved money without it refuses.
    pub fn genesis(&self, genesis: Genesis) -> Result<MicroZhtp, Error> {
        let Genesis::Devnet { supply } = genesis;
        let _w = self.lock();
        if self.is_devnet()? {
            return self.supply();
        }
        if self.seq()? > 0 || self.store.contains(Cf::Ledger, NETWORK)? {
            return Err(Error::LateGenesis);
        }
        let leg = Leg {
            id: escrow_step_id("genesis", &[0; 32], 0, &Account::Faucet),
            derived: true,
            debit: Account::Genesis,
            credit: Account::Faucet,
            amount: supply,
            kind: Kind::Genesis,
        };
        let mut b = self.store.batch();
        self.store.put(&mut b, Cf::Ledger, DEVNET, &[1])?;
        self.store
            .put(&mut b, Cf::Ledger, SUPPLY, &supply.to_le_bytes())?;
        if supply > 0 {
            self.write_legs(b, &[leg], None)?;
        } else {
            self.store.write(b)?;
        }
        Ok(supply)
    }

    /// Marks a ledger without a devnet genesis as a network's for good: no faucet can be added
    /// later (a node started once without `--devnet` never mints). No-op on a devnet ledger.
    pub fn seal_network(&self) -> Result<(), Error> {
        let _w = self.lock();
        if !self.is_devnet()? && !self.store.contains(Cf::Ledger, NETWORK)? {
            let mut b = self.store.batch();
            self.store.put(&mut b, Cf::Ledger, NETWORK, &[1])?;
            self.store.write(b)?;
        }
        Ok(())
    }

    /// Whether this ledger has a faucet.
    pub fn is_devnet(&self) -> Result<bool, Error> {
        Ok(self.store.contains(Cf::Ledger, DEVNET)?)
    }

    /// All the µZHTP there are.
    pub fn supply(&self) -> Result<MicroZhtp, Error> {
        u64_of("the supply", self.store.get(Cf::Ledger, SUPPLY)?)
    }

    fn seq(&self) -> Result<u64, Error> {
        u64_of("the sequence number", self.store.get(Cf::Ledger, SEQ)?)
    }

    /// An account's debits and credits.
    pub fn totals(&self, account: &Account) -> Result<Totals, Error> {
        match self.store.get(Cf::Ledger, &account_key(account))? {
            None => Ok(Totals::default()),
            Some(b) => decode("an account", &b),
        }
    }

    /// An account's balance.
    pub fn balance(&self, account: &Account) -> Result<MicroZhtp, Error> {
        self.totals(account)?
            .balance()
            .ok_or_else(|| Error::Corrupt(format!("{account} paid out more than it got")))
    }

    /// The transfer with id `id`, from the space of ids callers choose or (`derived`) of those
    /// the ledger derives.
    pub fn transfer_by_id(&self, id: &[u8; 32], derived: bool) -> Result<Option<Transfer>, Error> {
        self.transfer_at(&transfer_key(id, derived))
    }

    fn transfer_at(&self, key: &[u8]) -> Result<Option<Transfer>, Error> {
        self.store
            .get(Cf::Ledger, key)?
            .map(|b| decode("a transfer", &b))
            .transpose()
    }

    /// The last `limit` transfers touching `account`, newest first.
    pub fn history(&self, account: &Account, limit: usize) -> Result<Vec<Transfer>, Error> {
        let mut ids = std::collections::VecDeque::new();
        for e in self
            .store
            .scan(Cf::Ledger, &key(b'h', &[&account.bytes()]))?
        {
            let (_, id) = e?;
            ids.push_back(id);
            if ids.len() > limit {
                ids.pop_front();
            }
        }
        let mut out = Vec::with_capacity(ids.len());
        for r in ids.iter().rev() {
            out.push(
                self.transfer_at(&key(b't', &[r]))?.ok_or_else(|| {
                    Error::Corrupt(format!("transfer {} is gone", hex::encode(r)))
                })?,
            );
        }
        Ok(out)
    }

    /// The escrow of storage contract `contract`.
    pub fn escrow(&self, contract: &[u8; 32]) -> Result<Option<Escrow>, Error> {
        self.store
            .get(Cf::Ledger, &escrow_key(contract))?
            .map(|b| decode("an escrow", &b))
            .transpose()
    }

    /// Moves `amount` from `from` to `to` (users, treasury, incentive pool), under the
    /// idempotency key `id`.
    pub fn transfer(
        &self,
        id: [u8; 32],
        from: Account,
        to: Account,
        amount: MicroZhtp,
    ) -> Result<Receipt, Error> {
        for a in [from, to] {
            if matches!(a, Account::Escrow(_) | Account::Faucet) {
                // Escrows move only through their steps, the faucet only through `fund`.
                return Err(Error::BadPayee);
            }
        }
        let leg = Leg {
            id,
            derived: false,
            debit: from,
            credit: to,
            amount,
            kind: Kind::Transfer,
        };
        let _w = self.lock();
        if let Some(r) = self.replayed(&leg)? {
            return Ok(r);
        }
        self.write_one(leg, None)
    }

    /// Pays `amount` from the devnet faucet to `to`.
    pub fn fund(&self, id: [u8; 32], to: Account, amount: MicroZhtp) -> Result<Receipt, Error> {
        let leg = Leg {
            id,
            derived: false,
            debit: Account::Faucet,
            credit: to,
            amount,
            kind: Kind::Faucet,
        };
        let _w = self.lock();
        if !self.is_devnet()? {
            return Err(Error::NotDevnet);
        }
        if let Some(r) = self.replayed(&leg)? {
            return Ok(r);
        }
        if matches!(to, Account::Escrow(_)) {
            return Err(Error::BadPayee);
        }
        self.write_one(leg, None)
    }

    /// Moves `amount` from `client` into the escrow of storage contract `contract`, paid
    /// under the client's mandate `mandate` (its id): one escrow per contract, one contract
    /// per mandate, both recorded in the same batch as the transfer. Repeating the same lock
    /// answers with the first receipt.
    pub fn lock_escrow(
        &self,
        contract: [u8; 32],
        client: Account,
        amount: MicroZhtp,
        mandate: [u8; 32],
    ) -> Result<Receipt, Error> {
        self.lock_escrow_with(contract, client, amount, 0, mandate, |_| Ok(()))
    }

    /// [`Self::lock_escrow`] of a price `amount` of which `fee` is the network fee, owed to the
    /// incentive pool: it stays in the escrow until the first period is paid
    /// ([`Self::pay_period`] moves it), so a put that fails before then gets it back with the
    /// rest. `with` adds to the same batch (the contract the escrow pays for, so that a crash
    /// keeps all or nothing).
    pub fn lock_escrow_with(
        &self,
        contract: [u8; 32],
        client: Account,
        amount: MicroZhtp,
        fee: MicroZhtp,
        mandate: [u8; 32],
        with: impl FnOnce(&mut Batch) -> Result<(), Error>,
    ) -> Result<Receipt, Error> {
        // (A zero amount is refused below like any zero transfer.)
        if fee > 0 && fee >= amount {
            return Err(Error::FeeAbovePrice { fee, amount });
        }
        let leg = Leg {
            id: escrow_step_id("lock", &contract, 0, &Account::Escrow(contract)),
            derived: true,
            debit: client,
            credit: Account::Escrow(contract),
            amount,
            kind: Kind::EscrowLock,
        };
        let _w = self.lock();
        if let Some(r) = self.replayed(&leg)? {
            return Ok(r);
        }
        if self.escrow(&contract)?.is_some() {
            return Err(Error::EscrowExists(contract));
        }
        if !matches!(client, Account::Key(_)) {
            return Err(Error::BadPayee);
        }
        let mkey = mandate_key(&mandate);
        if let Some(other) = self.store.get(Cf::Ledger, &mkey)? {
            let other = other.as_slice().try_into().map_err(|_| {
                Error::Corrupt(format!(
                    "mandate {} names no contract",
                    hex::encode(mandate)
                ))
            })?;
            return Err(Error::MandateUsed(mandate, other));
        }
        let escrow = Escrow {
            client,
            funded: amount,
            released: 0,
            refunded: 0,
            settled: false,
        };
        let mut batch = self.store.batch();
        self.store.put(&mut batch, Cf::Ledger, &mkey, &contract)?;
        with(&mut batch)?;
        if fee > 0 {
            self.store.put(
                &mut batch,
                Cf::Ledger,
                &fee_key(&contract),
                &fee.to_le_bytes(),
            )?;
        }
        let mut written = self.write_legs(batch, &[leg], Some((contract, escrow)))?;
        Ok(Receipt {
            transfer: written.pop().expect("one leg written"),
            replayed: false,
        })
    }

    /// Settles period `period` of storage contract `contract` in one atomic batch: the network
    /// fee still owed from escrow to the incentive pool (it goes with the first period paid),
    /// each provider's release from escrow, the penalties back to the client, and each bonus
    /// from the incentive pool (as far as the pool holds, in the order given: a bonus is a
    /// reward the pool can afford, never a debt). At most once per period: a repeat answers
    /// with the first receipt and moves nothing. Zero amounts are skipped; a provider named
    /// twice is refused.
    pub fn pay_period(
        &self,
        contract: [u8; 32],
        period: u32,
        payout: &PeriodPayout,
    ) -> Result<PeriodReceipt, Error> {
        let _w = self.lock();
        let mark = period_key(&contract, period);
        if let Some(bytes) = self.store.get(Cf::Ledger, &mark)? {
            let mut r: PeriodReceipt = decode("a period receipt", &bytes)?;
            r.replayed = true;
            return Ok(r);
        }
        let mut escrow = self.escrow(&contract)?.ok_or(Error::NoEscrow(contract))?;
        if escrow.settled {
            return Err(Error::Settled(contract));
        }
        for (to, _) in payout.released.iter().chain(&payout.bonuses) {
            if !matches!(to, Account::Key(_)) || *to == escrow.client {
                return Err(Error::BadPayee);
            }
        }
        for list in [&payout.released, &payout.bonuses] {
            let mut seen = std::collections::HashSet::with_capacity(list.len());
            if !list.iter().all(|(to, _)| seen.insert(*to)) {
                return Err(Error::DuplicatePayee);
            }
        }
        let fee = self.fee_pending(&contract)?;
        let overflow = || Error::Corrupt("a period's payout overflows".into());
        let mut legs = Vec::new();
        let mut receipt = PeriodReceipt {
            refunded: payout.refund,
            fee,
            ..PeriodReceipt::default()
        };
        let mut leg = |step: &str, debit: Account, credit: Account, amount: u64, kind: Kind| {
            if amount > 0 {
                legs.push(Leg {
                    id: escrow_step_id(step, &contract, period, &credit),
                    derived: true,
                    debit,
                    credit,
                    amount,
                    kind,
                });
            }
        };
        let escrowed = Account::Escrow(contract);
        leg("fee", escrowed, Account::Incentives, fee, Kind::NetworkFee);
        for &(to, amount) in &payout.released {
            leg("release", escrowed, to, amount, Kind::EscrowRelease);
            receipt.released = receipt.released.checked_add(amount).ok_or_else(overflow)?;
        }
        leg(
            "refund",
            escrowed,
            escrow.client,
            payout.refund,
            Kind::EscrowRefund,
        );
        let remaining = escrow
            .remaining()
            .ok_or_else(|| Error::Corrupt(format!("escrow {} overdrawn", hex::encode(contract))))?;
        let out = receipt
            .released
            .checked_add(receipt.refunded)
            .and_then(|o| o.checked_add(fee));
        if out.is_none_or(|o| o > remaining) {
            return Err(Error::EscrowShort {
                contract,
                remaining,
                amount: out.unwrap_or(u64::MAX),
            });
        }
        // The fee moved in this batch counts: the pool pays out of it at once.
        let mut pool = self
            .balance(&Account::Incentives)?
            .checked_add(fee)
            .ok_or_else(overflow)?;
        for &(to, asked) in &payout.bonuses {
            let amount = asked.min(pool);
            pool -= amount;
            leg("bonus", Account::Incentives, to, amount, Kind::Bonus);
            receipt.bonuses += amount;
        }
        // The fee leaves the escrow like a release: paid out, not refunded. (≤ remaining,
        // checked above: no sum here can overflow.)
        escrow.released += receipt.released + fee;
        escrow.refunded += receipt.refunded;
        let mut batch = self.store.batch();
        if fee > 0 {
            self.store
                .delete(&mut batch, Cf::Ledger, &fee_key(&contract))?;
        }
        self.store.put(
            &mut batch,
            Cf::Ledger,
            &mark,
            &postcard::to_allocvec(&receipt).expect("a receipt encodes"),
        )?;
        self.write_legs(batch, &legs, Some((contract, escrow)))?;
        Ok(receipt)
    }

    /// The network fee `contract`'s escrow still owes the incentive pool (0 once moved, or
    /// when there is none).
    pub fn fee_pending(&self, contract: &[u8; 32]) -> Result<MicroZhtp, Error> {
        match self.store.get(Cf::Ledger, &fee_key(contract))? {
            None => Ok(0),
            Some(v) => Ok(u64::from_le_bytes(v.as_slice().try_into().map_err(
                |_| Error::Corrupt(format!("the fee of escrow {}", hex::encode(contract))),
            )?)),
        }
    }

    /// The receipt of period `period` of `contract`, if it was settled.
    pub fn period_receipt(
        &self,
        contract: &[u8; 32],
        period: u32,
    ) -> Result<Option<PeriodReceipt>, Error> {
        self.store
            .get(Cf::Ledger, &period_key(contract, period))?
            .map(|b| decode("a period receipt", &b))
            .transpose()
    }

    /// The storage contracts whose escrow is here and not settled.
    pub fn open_escrows(&self) -> Result<Vec<[u8; 32]>, Error> {
        let mut out = Vec::new();
        for item in self.store.scan(Cf::Ledger, b"e/")? {
            let (k, v) = item?;
            let escrow: Escrow = decode("an escrow", &v)?;
            if !escrow.settled {
                out.push(
                    k[2..]
                        .try_into()
                        .map_err(|_| Error::Corrupt("an escrow key names no contract".into()))?,
                );
            }
        }
        Ok(out)
    }

    /// The contract mandate `mandate` (its id) paid for, if it did.
    pub fn mandate_used(&self, mandate: &[u8; 32]) -> Result<Option<[u8; 32]>, Error> {
        self.contract_at(&mandate_key(mandate), || {
            format!("mandate {} names no contract", hex::encode(mandate))
        })
    }

    /// The contract id stored under `key`, if any; `what` says what is damaged otherwise.
    fn contract_at(
        &self,
        key: &[u8],
        what: impl FnOnce() -> String,
    ) -> Result<Option<[u8; 32]>, Error> {
        self.store
            .get(Cf::Ledger, key)?
            .map(|v| v.as_slice().try_into().map_err(|_| Error::Corrupt(what())))
            .transpose()
    }

    /// Pays `amount` of the escrow to provider `to` for `period` (at most once per period and
    /// provider).
    pub fn release(
        &self,
        contract: [u8; 32],
        period: u32,
        to: Account,
        amount: MicroZhtp,
    ) -> Result<Receipt, Error> {
        self.escrow_step(contract, period, Some(to), amount)
    }

    /// Pays `amount` of the escrow back to the client for `period` (a penalty; at most once
    /// per period).
    pub fn refund(
        &self,
        contract: [u8; 32],
        period: u32,
        amount: MicroZhtp,
    ) -> Result<Receipt, Error> {
        self.escrow_step(contract, period, None, amount)
    }

    fn escrow_step(
        &self,
        contract: [u8; 32],
        period: u32,
        provider: Option<Account>,
        amount: MicroZhtp,
    ) -> Result<Receipt, Error> {
        let _w = self.lock();
        let mut escrow = self.escrow(&contract)?.ok_or(Error::NoEscrow(contract))?;
        let (step, credit, kind) = match provider {
            Some(p) => ("release", p, Kind::EscrowRelease),
            None => ("refund", escrow.client, Kind::EscrowRefund),
        };
        let leg = Leg {
            id: escrow_step_id(step, &contract, period, &credit),
            derived: true,
            debit: Account::Escrow(contract),
            credit,
            amount,
            kind,
        };
        if let Some(r) = self.replayed(&leg)? {
            return Ok(r);
        }
        if escrow.settled {
            return Err(Error::Settled(contract));
        }
        if provider.is_some() && (credit == escrow.client || !matches!(credit, Account::Key(_))) {
            return Err(Error::BadPayee);
        }
        // The fee the escrow still owes the pool is not the providers' or the client's.
        let remaining = escrow
            .remaining()
            .ok_or_else(|| Error::Corrupt(format!("escrow {} overdrawn", hex::encode(contract))))?
            .saturating_sub(self.fee_pending(&contract)?);
        if amount > remaining {
            return Err(Error::EscrowShort {
                contract,
                remaining,
                amount,
            });
        }
        match provider {
            Some(_) => escrow.released += amount,
            None => escrow.refunded += amount,
        }
        self.write_one(leg, Some((contract, escrow)))
    }

    /// Settles the escrow: what is left (with a network fee not yet moved) goes back to the
    /// client and nothing moves any more.
    /// Returns what went back (a second settle answers with the first one's figure).
    pub fn settle(&self, contract: [u8; 32]) -> Result<MicroZhtp, Error> {
        let _w = self.lock();
        let mut escrow = self.escrow(&contract)?.ok_or(Error::NoEscrow(contract))?;
        let id = escrow_step_id("settle", &contract, 0, &escrow.client);
        if escrow.settled {
            return Ok(self.transfer_by_id(&id, true)?.map_or(0, |t| t.amount));
        }
        let left = escrow
            .remaining()
            .ok_or_else(|| Error::Corrupt(format!("escrow {} overdrawn", hex::encode(contract))))?;
        escrow.refunded += left;
        escrow.settled = true;
        let legs = match left {
            0 => Vec::new(),
            _ => vec![Leg {
                id,
                derived: true,
                debit: Account::Escrow(contract),
                credit: escrow.client,
                amount: left,
                kind: Kind::EscrowSettle,
            }],
        };
        // A fee never moved (no period was paid: a put that failed) goes back with the rest.
        let mut batch = self.store.batch();
        self.store
            .delete(&mut batch, Cf::Ledger, &fee_key(&contract))?;
        self.write_legs(batch, &legs, Some((contract, escrow)))?;
        Ok(left)
    }

    /// Moves what is left in the escrow of storage contract `from` into a new escrow for
    /// contract `to`, which succeeds it: the same client and mandate, paying for the rest of
    /// the same term on other shards (a migration re-coded the content). One atomic batch:
    /// the transfer, `from` settled with nothing left, `to`'s escrow, the network fee still
    /// owed (it moves along), the mandate now naming `to`, the succession recorded
    /// ([`Self::successor`]), and what `with` adds (the contracts themselves). Nothing is
    /// paid to anyone and nothing comes back to the client: the client's money keeps paying
    /// for the same storage. Returns the amount moved.
    pub fn move_escrow(
        &self,
        from: [u8; 32],
        to: [u8; 32],
        mandate: [u8; 32],
        with: impl FnOnce(&mut Batch) -> Result<(), Error>,
    ) -> Result<MicroZhtp, Error> {
        let _w = self.lock();
        let mut old = self.escrow(&from)?.ok_or(Error::NoEscrow(from))?;
        if old.settled {
            return Err(Error::Settled(from));
        }
        if from == to || self.escrow(&to)?.is_some() {
            return Err(Error::EscrowExists(to));
        }
        if self.mandate_used(&mandate)? != Some(from) {
            return Err(Error::Corrupt(format!(
                "mandate {} did not pay for storage contract {}",
                hex::encode(mandate),
                hex::encode(from)
            )));
        }
        let left = old
            .remaining()
            .ok_or_else(|| Error::Corrupt(format!("escrow {} overdrawn", hex::encode(from))))?;
        let fee = self.fee_pending(&from)?;
        // Counted as paid out of `from`, like a release: it left the escrow, not for the client.
        old.released += left;
        old.settled = true;
        let new = Escrow {
            client: old.client,
            funded: left,
            released: 0,
            refunded: 0,
            settled: false,
        };
        let mut batch = self.store.batch();
        self.store
            .put(&mut batch, Cf::Ledger, &escrow_key(&from), &encode(&old))?;
        self.store
            .put(&mut batch, Cf::Ledger, &mandate_key(&mandate), &to)?;
        self.store
            .put(&mut batch, Cf::Ledger, &successor_key(&from), &to)?;
        if fee > 0 {
            self.store.delete(&mut batch, Cf::Ledger, &fee_key(&from))?;
            self.store
                .put(&mut batch, Cf::Ledger, &fee_key(&to), &fee.to_le_bytes())?;
        }
        with(&mut batch)?;
        let legs = match left {
            0 => Vec::new(),
            _ => vec![Leg {
                id: escrow_step_id("move", &from, 0, &Account::Escrow(to)),
                derived: true,
                debit: Account::Escrow(from),
                credit: Account::Escrow(to),
                amount: left,
                kind: Kind::EscrowMove,
            }],
        };
        self.write_legs(batch, &legs, Some((to, new)))?;
        Ok(left)
    }

    /// The storage contract that succeeded `contract` ([`Self::move_escrow`]), if one did.
    pub fn successor(&self, contract: &[u8; 32]) -> Result<Option<[u8; 32]>, Error> {
        self.contract_at(&successor_key(contract), || {
            format!(
                "the successor of {} is not a contract id",
                hex::encode(contract)
            )
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.write.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The receipt of an earlier write of `leg`'s id: replayed when the fields match, refused
    /// when they do not.
    fn replayed(&self, leg: &Leg) -> Result<Option<Receipt>, Error> {
        let Some(t) = self.transfer_by_id(&leg.id, leg.derived)? else {
            return Ok(None);
        };
        if (t.debit, t.credit, t.amount, t.kind) != (leg.debit, leg.credit, leg.amount, leg.kind) {
            return Err(Error::IdReused(leg.id));
        }
        Ok(Some(Receipt {
            transfer: t,
            replayed: true,
        }))
    }

    fn write_one(&self, leg: Leg, escrow: Option<([u8; 32], Escrow)>) -> Result<Receipt, Error> {
        let mut written = self.write_legs(self.store.batch(), &[leg], escrow)?;
        Ok(Receipt {
            transfer: written.pop().expect("one leg written"),
            replayed: false,
        })
    }

    /// Writes `legs` (checked: amounts, accounts, balances) and the escrow's new state in
    /// `batch`, as one atomic write. The caller holds the writer lock.
    fn write_legs(
        &self,
        mut batch: Batch,
        legs: &[Leg],
        escrow: Option<([u8; 32], Escrow)>,
    ) -> Result<Vec<Transfer>, Error> {
        let mut seq = self.seq()?;
        let at = now();
        let mut totals: HashMap<Account, Totals> = HashMap::new();
        let mut out = Vec::with_capacity(legs.len());
        for leg in legs {
            if leg.amount == 0 {
                return Err(Error::ZeroAmount);
            }
            if leg.debit == leg.credit {
                return Err(Error::SameAccount(leg.debit));
            }
            if leg.credit == Account::Genesis
                || (leg.debit == Account::Genesis) != (leg.kind == Kind::Genesis)
            {
                return Err(Error::GenesisAccount);
            }
            for a in [leg.debit, leg.credit] {
                if let std::collections::hash_map::Entry::Vacant(v) = totals.entry(a) {
                    v.insert(self.totals(&a)?);
                }
            }
            let tkey = transfer_key(&leg.id, leg.derived);
            let in_batch = out
                .iter()
                .any(|t: &Transfer| (t.id, t.derived) == (leg.id, leg.derived));
            if in_batch || self.store.contains(Cf::Ledger, &tkey)? {
                // Callers check for replays first; nothing ever replaces a transfer.
                return Err(Error::IdReused(leg.id));
            }
            let d = totals[&leg.debit];
            if leg.debit != Account::Genesis {
                let balance = d.balance().ok_or_else(|| {
                    Error::Corrupt(format!("{} paid out more than it got", leg.debit))
                })?;
                if balance < leg.amount {
                    return Err(Error::InsufficientFunds {
                        account: leg.debit,
                        balance,
                        amount: leg.amount,
                    });
                }
            }
            totals.get_mut(&leg.debit).expect("loaded").debits += u128::from(leg.amount);
            totals.get_mut(&leg.credit).expect("loaded").credits += u128::from(leg.amount);
            seq += 1;
            let t = Transfer {
                id: leg.id,
                derived: leg.derived,
                seq,
                debit: leg.debit,
                credit: leg.credit,
                amount: leg.amount,
                kind: leg.kind,
                at,
            };
            self.store.put(&mut batch, Cf::Ledger, &tkey, &encode(&t))?;
            for a in [t.debit, t.credit] {
                self.store.put(
                    &mut batch,
                    Cf::Ledger,
                    &history_key(&a, seq),
                    &transfer_ref(&t.id, t.derived),
                )?;
            }
            out.push(t);
        }
        for (a, t) in &totals {
            self.store
                .put(&mut batch, Cf::Ledger, &account_key(a), &encode(t))?;
        }
        self.store
            .put(&mut batch, Cf::Ledger, SEQ, &seq.to_le_bytes())?;
        if let Some((contract, e)) = escrow {
            self.store
                .put(&mut batch, Cf::Ledger, &escrow_key(&contract), &encode(&e))?;
        }
        self.store.write(batch)?;
        Ok(out)
    }

    /// Recounts everything from the transfers and checks every invariant: debits equal credits
    /// overall; each account's totals equal its transfers; no account but genesis paid out more
    /// than it got; the balances outside genesis add up to the supply; each escrow holds what
    /// its steps leave, and a settled one holds nothing; the sequence numbers are 1..=seq.
    pub fn audit(&self) -> Result<Audit, Error> {
        let _w = self.lock();
        let corrupt = |s: String| Error::Corrupt(s);
        let mut recount: HashMap<Account, Totals> = HashMap::new();
        let mut seqs = Vec::new();
        for e in self.store.scan(Cf::Ledger, b"t/")? {
            let (_, v) = e?;
            let t: Transfer = decode("a transfer", &v)?;
            recount.entry(t.debit).or_default().debits += u128::from(t.amount);
            recount.entry(t.credit).or_default().credits += u128::from(t.amount);
            seqs.push(t.seq);
        }
        seqs.sort_unstable();
        let transfers = self.seq()?;
        if seqs.iter().copied().ne(1..=transfers) {
            return Err(corrupt(format!(
                "{} transfers for sequence numbers 1..={transfers}",
                seqs.len()
            )));
        }
        let mut stored = HashMap::new();
        for e in self.store.scan(Cf::Ledger, b"a/")? {
            let (k, v) = e?;
            let a = Account::from_bytes(&k[2..])
                .ok_or_else(|| corrupt(format!("account key {}", hex::encode(&k))))?;
            stored.insert(a, decode::<Totals>("an account", &v)?);
        }
        if stored != recount {
            return Err(corrupt("account totals differ from their transfers".into()));
        }
        let (mut debits, mut credits, mut held) = (0u128, 0u128, 0u128);
        for (a, t) in &stored {
            debits += t.debits;
            credits += t.credits;
            if *a != Account::Genesis {
                held += u128::from(
                    t.balance()
                        .ok_or_else(|| corrupt(format!("{a} paid out more than it got")))?,
                );
            }
        }
        if debits != credits {
            return Err(corrupt(format!("{debits} debited, {credits} credited")));
        }
        let supply = self.supply()?;
        if held != u128::from(supply) {
            return Err(corrupt(format!(
                "{held} µZHTP held, the supply is {supply}"
            )));
        }
        let (mut escrows, mut settled) = (0, 0);
        for e in self.store.scan(Cf::Ledger, b"e/")? {
            let (k, v) = e?;
            let contract: [u8; 32] = k[2..]
                .try_into()
                .map_err(|_| corrupt(format!("escrow key {}", hex::encode(&k))))?;
            let escrow: Escrow = decode("an escrow", &v)?;
            let balance = stored
                .get(&Account::Escrow(contract))
                .and_then(Totals::balance)
                .unwrap_or(0);
            let left = escrow.remaining().ok_or_else(|| {
                corrupt(format!(
                    "escrow {} paid out more than in",
                    hex::encode(contract)
                ))
            })?;
            if balance != left || (escrow.settled && left != 0) {
                return Err(corrupt(format!(
                    "escrow {} holds {balance}, its steps leave {left}",
                    hex::encode(contract)
                )));
            }
            escrows += 1;
            settled += usize::from(escrow.settled);
        }
        Ok(Audit {
            supply,
            accounts: stored.len(),
            transfers,
            escrows: (escrows, settled),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_round_trip_through_their_key_bytes() {
        for a in [
            Account::Key([7; 32]),
            Account::Escrow([9; 32]),
            Account::Treasury,
            Account::Incentives,
            Account::Faucet,
            Account::Genesis,
        ] {
            assert_eq!(Account::from_bytes(&a.bytes()), Some(a));
        }
        let mut bad = Account::Treasury.bytes();
        bad[5] = 1;
        assert_eq!(Account::from_bytes(&bad), None);
        assert_eq!(Account::from_bytes(&[9; 33]), None);
    }

    /// Callers look for replays first; the batch writer refuses an existing transfer anyway,
    /// so no path can ever replace one.
    #[test]
    fn no_write_replaces_a_transfer() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path(), Default::default()).unwrap());
        let l = Ledger::open(store.clone());
        l.genesis(Genesis::Devnet { supply: 100 }).unwrap();
        l.fund([1; 32], Account::Key([2; 32]), 10).unwrap();
        let again = |derived| Leg {
            id: [1; 32],
            derived,
            debit: Account::Faucet,
            credit: Account::Key([3; 32]),
            amount: 5,
            kind: Kind::Faucet,
        };
        {
            let _w = l.lock();
            assert!(matches!(
                l.write_legs(store.batch(), &[again(false)], None),
                Err(Error::IdReused(_))
            ));
            // Twice in one batch, too; the other space is another id.
            assert!(matches!(
                l.write_legs(store.batch(), &[again(true), again(true)], None),
                Err(Error::IdReused(_))
            ));
            l.write_legs(store.batch(), &[again(true)], None).unwrap();
        }
        assert_eq!(l.balance(&Account::Key([3; 32])).unwrap(), 5);
        l.audit().unwrap();
    }

    #[test]
    fn tokens_are_shown_without_floats() {
        assert_eq!(tokens(0), "0 ZHTP");
        assert_eq!(tokens(1_500_000), "1.5 ZHTP");
        assert_eq!(tokens(1), "0.000001 ZHTP");
        assert_eq!(tokens(117_000_000), "117 ZHTP");
    }
}
