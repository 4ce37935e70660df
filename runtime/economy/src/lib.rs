//! The zhtp economy.
//!
//! [`ledger`]: a double-entry ledger of integer µZHTP in RocksDB, with an escrow account per
//! storage contract, a treasury, an incentive pool and (on a devnet) a faucet. Every movement is
//! one atomic batch; the total supply is fixed at genesis and never changes.

pub mod ledger;

pub use ledger::{
    Account, Audit, Error, Escrow, Genesis, Kind, Ledger, Receipt, Totals, Transfer,
    escrow_step_id, tokens,
};
