//! The zhtp economy.
//!
//! [`ledger`]: a double-entry ledger of integer µZHTP in RocksDB, with an escrow account per
//! storage contract, a treasury, an incentive pool and (on a devnet) a faucet. Every movement is
//! one atomic batch; the total supply is fixed at genesis and never changes.
//!
//! [`durability`]: the chance a k+m segment is lost in a year under node churn and repair.
//!
//! [`audit`]: challenges of random byte ranges of a shard, prepared at put time, and how an
//! audit went.
//!
//! [`reputation`]: points per node from the audits a node ran, and their bands.
//!
//! [`market`]: what providers advertise and what auditors report of others, as records signed
//! by the node they speak for; reputation gossiped from several auditors.
//!
//! [`book`]: the storage contracts a node keeps, and the shard positions they let it hold.
//!
//! [`contract`]: storage contracts, their signed terms (SLA, penalty rates, price, holders) and
//! the only moves between their states.

pub mod audit;
pub mod book;
pub mod contract;
pub mod durability;
pub mod ledger;
pub mod market;
pub mod reputation;

pub use book::Book;
pub use ledger::{
    Account, Audit, Error, Escrow, Genesis, Kind, Ledger, PeriodPayout, PeriodReceipt, Receipt,
    Totals, Transfer, escrow_step_id, tokens,
};
