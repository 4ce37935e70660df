//! `zhtp stats [--json]`: the node's DHT, economic and storage figures ([`zhtp::stats`]),
//! from the running node (`--node`), else from the data dir of a stopped one.

use std::path::Path;

use anyhow::Result;

/// `zhtp stats [--json]`: from the running node (`--node`), else from the data dir.
pub fn run(dir: &Path, node: Option<&str>, json: bool) -> Result<()> {
    use zhtp::stats::Stats;
    let s: Stats = match node {
        Some(url) => crate::client::Client::new(url)?.get("/stats")?,
        None => {
            let local = crate::files::open(dir)?;
            let book = zhtp_economy::Book::open(local.shared_store());
            let bands = zhtp::network::AuditConfig::default().bands;
            Stats {
                dht: None,
                economy: zhtp::stats::economy(local.ledger(), &book, &bands)?,
                storage: zhtp::stats::storage(&local)?,
            }
        }
    };
    if json {
        println!("{}", serde_json::to_string(&s)?);
        return Ok(());
    }
    let t = zhtp_economy::tokens;
    let map = |m: &std::collections::BTreeMap<String, usize>| {
        if m.is_empty() {
            return "none".to_owned();
        }
        m.iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match &s.dht {
        Some(d) => println!(
            "dht:      {} peers connected, {} in the routing table, {} records held \
             ({} refused, {} failed requests, {} busy since start); peer id {}",
            d.peers,
            d.routing_table,
            d.records,
            d.refused_records,
            d.inbound_failures,
            d.busy,
            d.peer_id
        ),
        None => {
            println!("dht:      not running (figures from the data dir; --node for a live node)")
        }
    }
    let e = &s.economy;
    println!(
        "economy:  supply {}{}; {} accounts, {} transfers",
        t(e.supply),
        if e.devnet { " (devnet)" } else { "" },
        e.accounts,
        e.transfers
    );
    println!(
        "          incentive pool {}, treasury {}, {} in {} open escrow(s), {} settled",
        t(e.incentive_pool),
        t(e.treasury),
        t(e.escrowed),
        e.open_escrows,
        e.settled_escrows
    );
    println!("          storage contracts: {}", map(&e.contracts));
    println!(
        "          audits run: {} passed (mean {} ms), failed: {}",
        e.audits_passed,
        e.audit_latency_avg_ms,
        map(&e.audits_failed)
    );
    println!("          providers judged: {}", map(&e.reputation));
    let st = &s.storage;
    println!(
        "storage:  {} content(s) put here; {} shard(s), {}, of {} content(s) held for the network",
        st.local_contents,
        st.shards,
        crate::quote::human_bytes(st.shard_bytes),
        st.held_contents
    );
    Ok(())
}
