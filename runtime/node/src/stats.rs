//! `zhtp stats` (`GET /stats`): the seed's UnifiedStorageStats — the node's DHT, economic and
//! storage figures in one answer.
//!
//! Everything but the DHT part is read from the data dir (the ledger, the contract book, the
//! shard index), so `zhtp stats` without `--node` answers for a stopped node too, with `dht`
//! absent. The economic part recounts the ledger and scans the contract book: it costs a pass
//! over both (milliseconds for thousands of contracts), and is not meant to be polled often.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use zhtp_economy::audit::Outcome;
use zhtp_economy::reputation::{Band, Bands};
use zhtp_economy::{Account, Book, Ledger};
use zhtp_store::Cf;

use crate::local::{HELD, LocalNode, SUMMARY_PREFIX};

/// Most contracts one `stats` call reads.
pub const MAX_CONTRACTS: usize = 100_000;

/// All of a node's figures.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// The peer-to-peer side; absent when the node is not running (`zhtp stats` on a data dir).
    pub dht: Option<DhtStats>,
    /// The ledger and the storage contracts.
    pub economy: EconomicStats,
    /// What the node stores.
    pub storage: StorageStats,
}

/// Network health.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DhtStats {
    /// This node's peer id.
    pub peer_id: String,
    /// Peers connected now.
    pub peers: usize,
    /// Peers in the routing table.
    pub routing_table: usize,
    /// DHT records held.
    pub records: usize,
    /// Records refused since start (bad signature, not the owner, stale).
    pub refused_records: u64,
    /// Inbound shard requests that failed since start.
    pub inbound_failures: u64,
    /// Requests refused as busy since start.
    pub busy: u64,
}

/// Money and contracts, in this node's view (its own ledger).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EconomicStats {
    /// The ledger has a devnet faucet.
    pub devnet: bool,
    /// The fixed supply, µZHTP (0 before genesis).
    pub supply: u64,
    /// Accounts that ever moved.
    pub accounts: usize,
    /// Transfers written.
    pub transfers: u64,
    /// What the treasury holds, µZHTP.
    pub treasury: u64,
    /// What the incentive pool holds for bonuses, µZHTP.
    pub incentive_pool: u64,
    /// What open escrows still hold, µZHTP.
    pub escrowed: u64,
    /// Escrows not yet settled.
    pub open_escrows: usize,
    /// Escrows settled.
    pub settled_escrows: usize,
    /// Storage contracts kept here, by state (`active`, `settled`, …).
    pub contracts: BTreeMap<String, usize>,
    /// Audits this node ran: passed.
    pub audits_passed: usize,
    /// Audits this node ran, failed, by violation (`data-loss`, `unavailability`, …).
    pub audits_failed: BTreeMap<String, usize>,
    /// Mean answer time of the passed audits, ms.
    pub audit_latency_avg_ms: u64,
    /// Providers this node has judged, by band.
    pub reputation: BTreeMap<String, usize>,
}

/// What the node stores.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageStats {
    /// Contents put through this node (listed by `zhtp ls`).
    pub local_contents: usize,
    /// Shards held for the network.
    pub shards: u64,
    /// Their bytes.
    pub shard_bytes: u64,
    /// Contents those shards belong to.
    pub held_contents: usize,
}

/// A serde enum's JSON name (`data-loss`), for map keys.
fn name<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        other => format!("{other:?}"),
    }
}

/// The economic figures from `ledger` and `book`, judging bands by `bands`.
pub fn economy(
    ledger: &Ledger,
    book: &Book,
    bands: &Bands,
) -> Result<EconomicStats, zhtp_economy::Error> {
    let audit = ledger.audit()?;
    let mut out = EconomicStats {
        devnet: ledger.is_devnet()?,
        supply: audit.supply,
        accounts: audit.accounts,
        transfers: audit.transfers,
        treasury: ledger.balance(&Account::Treasury)?,
        incentive_pool: ledger.balance(&Account::Incentives)?,
        open_escrows: audit.escrows.0 - audit.escrows.1,
        settled_escrows: audit.escrows.1,
        ..EconomicStats::default()
    };
    for id in ledger.open_escrows()? {
        if let Some(e) = ledger.escrow(&id)? {
            out.escrowed += e.remaining().unwrap_or(0);
        }
    }
    let (mut latency_sum, mut passed) = (0u64, 0u64);
    for c in book.list(MAX_CONTRACTS)? {
        *out.contracts.entry(name(&c.state())).or_default() += 1;
        for (_, _, outcome) in book.audits(&c.id(), None)? {
            match outcome {
                Outcome::Passed { latency_ms } => {
                    passed += 1;
                    latency_sum += u64::from(latency_ms);
                }
                Outcome::Failed(v) => *out.audits_failed.entry(name(&v)).or_default() += 1,
            }
        }
    }
    out.audits_passed = passed as usize;
    out.audit_latency_avg_ms = latency_sum.checked_div(passed).unwrap_or(0);
    for (_, points) in book.reputations()? {
        let band: Band = bands.band(points);
        *out.reputation.entry(name(&band)).or_default() += 1;
    }
    Ok(out)
}

/// The storage figures of `local`'s store.
pub fn storage(local: &LocalNode) -> Result<StorageStats, zhtp_store::Error> {
    let store = local.store();
    let mut out = StorageStats {
        local_contents: store.scan(Cf::Index, SUMMARY_PREFIX)?.count(),
        ..StorageStats::default()
    };
    let mut last: Option<Vec<u8>> = None;
    for item in store.scan(Cf::Index, HELD)? {
        let (k, v) = item?;
        out.shards += 1;
        if let Some(len) = v.get(32..36) {
            out.shard_bytes += u64::from(u32::from_le_bytes(len.try_into().expect("4 bytes")));
        }
        // Keys are `held/<content><segment><index>`: contents come in order.
        let content = k.get(HELD.len()..HELD.len() + 32).map(<[u8]>::to_vec);
        if content.is_some() && content != last {
            out.held_contents += 1;
            last = content;
        }
    }
    Ok(out)
}

/// All figures of a running node.
pub async fn of_node(node: &crate::network::Node) -> Result<Stats, crate::network::Error> {
    use crate::network::Error;
    let s = node.dht().status().await?;
    let dht = DhtStats {
        peer_id: s.peer_id.to_string(),
        peers: s.connected.len(),
        routing_table: s.routing_table,
        records: s.records,
        refused_records: s.refused_records,
        inbound_failures: s.inbound_failures,
        busy: s.busy,
    };
    let n = node.clone();
    // Scans of the ledger and the index: off the async workers.
    let (economy, storage) = tokio::task::spawn_blocking(move || {
        let e = economy(n.local().ledger(), n.contracts(), &n.audit_config().bands)
            .map_err(|e| Error::Task(format!("ledger: {e}")))?;
        let s = storage(n.local()).map_err(|e| Error::Task(format!("store: {e}")))?;
        Ok::<_, Error>((e, s))
    })
    .await
    .map_err(|e| Error::Task(e.to_string()))??;
    Ok(Stats {
        dht: Some(dht),
        economy,
        storage,
    })
}
