//! A counter: anyone may raise the count, only the address that instantiated it may reset it.
//!
//! Messages are JSON: `{"start": 5}` to instantiate; `{"increment": {"by": 2}}` or
//! `{"reset": {}}` to execute; `{"count": {}}` to query. Every answer is `{"count": N}`.
#![no_std]

use serde::{Deserialize, Serialize};
use zhtp_sdk::contract::{Api, Item};

/// The instantiate message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Init {
    /// The count to start from.
    pub start: u64,
}

/// The execute messages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Exec {
    /// Adds `by` to the count.
    Increment {
        /// How much.
        by: u64,
    },
    /// Sets the count to zero (the owner only).
    Reset {},
}

/// The query messages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Query {
    /// The count.
    Count {},
}

/// Every answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Count {
    /// The count now.
    pub count: u64,
}

const COUNT: Item<u64> = Item::new("count");
const OWNER: Item<[u8; 32]> = Item::new("owner");

/// Starts the count; the caller becomes the owner.
#[zhtp_sdk::contract(instantiate)]
pub fn instantiate(api: &mut dyn Api, msg: Init) -> Result<Count, &'static str> {
    if OWNER.load(api).is_some() {
        return Err("this counter was instantiated already");
    }
    let owner = api.ctx().caller;
    OWNER.save(api, &owner);
    COUNT.save(api, &msg.start);
    Ok(Count { count: msg.start })
}

/// Raises or resets the count.
#[zhtp_sdk::contract(execute)]
pub fn execute(api: &mut dyn Api, msg: Exec) -> Result<Count, &'static str> {
    let count = match msg {
        Exec::Increment { by } => COUNT
            .load(api)
            .unwrap_or(0)
            .checked_add(by)
            .ok_or("the count would overflow")?,
        Exec::Reset {} => {
            if OWNER.load(api) != Some(api.ctx().caller) {
                return Err("only the owner resets the count");
            }
            0
        }
    };
    COUNT.save(api, &count);
    Ok(Count { count })
}

/// Reads the count.
#[zhtp_sdk::contract(query)]
pub fn query(api: &mut dyn Api, msg: Query) -> Result<Count, &'static str> {
    match msg {
        Query::Count {} => Ok(Count {
            count: COUNT.load(api).unwrap_or(0),
        }),
    }
}
