//! A name registry: a name points at a content hash (what `zhtp put` printed); the first to
//! register a name owns it, and only its owner may point it elsewhere, transfer it or release it.
//!
//! Messages are JSON. Instantiate: `{}`. Execute: `{"register": {"name": "docs", "content":
//! "<64 hex>"}}`, `{"update": {...same...}}`, `{"transfer": {"name": "docs", "to": "<64 hex
//! key>"}}`, `{"release": {"name": "docs"}}`. Query: `{"resolve": {"name": "docs"}}` answers the
//! record; `{"list": {"start": "", "limit": 10}}` answers up to 100 records from `start` on, in
//! name order.
#![no_std]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};
use zhtp_sdk::contract::{Api, Map};

/// Longest name.
pub const MAX_NAME: usize = 64;
/// Most records one `list` answers.
pub const MAX_LIST: usize = 100;

/// The instantiate message (nothing to set).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Init {}

/// The execute messages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Exec {
    /// Claims a free name for the caller, pointing at `content`.
    Register {
        /// The name: 1 to 64 of `a-z`, `0-9`, `-`, `.`.
        name: String,
        /// A content hash, 64 hex characters.
        content: String,
    },
    /// Points the caller's name at another content.
    Update {
        /// The name.
        name: String,
        /// The new content hash.
        content: String,
    },
    /// Gives the caller's name to another key.
    Transfer {
        /// The name.
        name: String,
        /// The new owner's Ed25519 key, 64 hex characters.
        to: String,
    },
    /// Frees the caller's name.
    Release {
        /// The name.
        name: String,
    },
}

/// The query messages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Query {
    /// One name's record.
    Resolve {
        /// The name.
        name: String,
    },
    /// Records from `start` on, in name order.
    List {
        /// The first name to list (`""`: from the beginning).
        start: String,
        /// At most this many (and at most 100).
        limit: u32,
    },
}

/// What a name points at, and who owns it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The name.
    pub name: String,
    /// The content hash, 64 lowercase hex characters.
    pub content: String,
    /// The owner's key, 64 lowercase hex characters.
    pub owner: String,
}

/// Every answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    /// The record as it now stands.
    Record(Record),
    /// A released name.
    Released(String),
    /// Records of a list.
    Records(Vec<Record>),
}

/// Name → (content, owner), stored without the name (it is the key).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Entry {
    content: String,
    owner: String,
}

const NAMES: Map<Entry> = Map::new("names");

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    bytes
        .iter()
        .flat_map(|b| [DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 15)]])
        .map(char::from)
        .collect()
}

fn check_name(name: &str) -> Result<(), &'static str> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.');
    ok.then_some(())
        .ok_or("a name is 1 to 64 of a-z, 0-9, '-' and '.'")
}

/// 64 hex characters, lowercased.
fn check_hex(s: &str, what: &'static str) -> Result<String, &'static str> {
    (s.len() == 64 && s.bytes().all(|c| c.is_ascii_hexdigit()))
        .then(|| s.to_ascii_lowercase())
        .ok_or(what)
}

/// The record of a name the caller owns.
fn owned(api: &dyn Api, name: &str) -> Result<Entry, &'static str> {
    let e = NAMES.load(api, name).ok_or("no such name")?;
    if e.owner != hex(&api.ctx().caller) {
        return Err("only the name's owner may change it");
    }
    Ok(e)
}

fn record(name: String, e: Entry) -> Answer {
    Answer::Record(Record {
        name,
        content: e.content,
        owner: e.owner,
    })
}

/// Nothing to set up.
#[zhtp_sdk::contract(instantiate)]
pub fn instantiate(_api: &mut dyn Api, _msg: Init) -> Result<Answer, &'static str> {
    Ok(Answer::Records(Vec::new()))
}

/// Registers, updates, transfers or releases a name.
#[zhtp_sdk::contract(execute)]
pub fn execute(api: &mut dyn Api, msg: Exec) -> Result<Answer, &'static str> {
    match msg {
        Exec::Register { name, content } => {
            check_name(&name)?;
            let content = check_hex(&content, "a content hash is 64 hex characters")?;
            if NAMES.load(api, &name).is_some() {
                return Err("that name is taken");
            }
            let e = Entry {
                content,
                owner: hex(&api.ctx().caller),
            };
            NAMES.save(api, &name, &e);
            Ok(record(name, e))
        }
        Exec::Update { name, content } => {
            let mut e = owned(api, &name)?;
            e.content = check_hex(&content, "a content hash is 64 hex characters")?;
            NAMES.save(api, &name, &e);
            Ok(record(name, e))
        }
        Exec::Transfer { name, to } => {
            let mut e = owned(api, &name)?;
            e.owner = check_hex(&to, "a new owner is a 64-hex Ed25519 key")?;
            NAMES.save(api, &name, &e);
            Ok(record(name, e))
        }
        Exec::Release { name } => {
            owned(api, &name)?;
            NAMES.remove(api, &name);
            Ok(Answer::Released(name))
        }
    }
}

/// Resolves a name, or lists names.
#[zhtp_sdk::contract(query)]
pub fn query(api: &mut dyn Api, msg: Query) -> Result<Answer, &'static str> {
    match msg {
        Query::Resolve { name } => {
            let e = NAMES.load(api, &name).ok_or("no such name")?;
            Ok(record(name, e))
        }
        Query::List { start, limit } => {
            let limit = (limit as usize).min(MAX_LIST);
            let records = NAMES
                .range(api, &start, limit)
                .into_iter()
                .map(|(name, e)| Record {
                    name,
                    content: e.content,
                    owner: e.owner,
                })
                .collect();
            Ok(Answer::Records(records))
        }
    }
}
