//! `zhtp storage-contract list | show ID`: the storage contracts a node keeps — those made by
//! puts through it (with their escrows, in its ledger) and those it signed as a provider.

use std::path::Path;

use anyhow::{Result, bail};
use clap::Subcommand;
use zhtp::wire::ContractInfo;
use zhtp_economy::tokens;
use zhtp_types::Hash;

use crate::client::Client;

/// Most contracts `list` shows.
const LIMIT: usize = 1_000;

/// `zhtp storage-contract ...`
#[derive(Debug, Subcommand)]
pub enum StorageContractCommand {
    /// The storage contracts kept here: id, state, price, shards, providers.
    List {
        /// Print JSON (a list).
        #[arg(long)]
        json: bool,
    },
    /// One storage contract: its terms, signatures, periods, escrow and audits.
    Show {
        /// The contract's id (64 hex characters).
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run an audit round now on the node (--node): every provider of every running contract
    /// whose escrow it holds answers a challenge; the shards of providers it bans are rebuilt
    /// elsewhere. The node also does this every --audit-interval.
    Audit,
    /// Settle every period that ended, on the node (--node): providers paid from escrow, less
    /// penalties; ended contracts closed.
    Settle,
    /// The reputation the node's audits gave providers: points and band.
    Reputation,
}

pub fn run(dir: &Path, remote: Option<&str>, cmd: StorageContractCommand) -> Result<()> {
    let node = |what: &str| match remote {
        Some(url) => Client::new(url),
        None => bail!("storage-contract {what} runs on a node: give --node URL (or $ZHTP_NODE)"),
    };
    match cmd {
        StorageContractCommand::Audit => {
            let r: zhtp::network::AuditReport = node("audit")?.post("/audit", &())?;
            println!("{}", serde_json::to_string(&r)?);
            Ok(())
        }
        StorageContractCommand::Settle => {
            let r: zhtp::network::SettleReport = node("settle")?.post("/settle", &())?;
            println!("{}", serde_json::to_string(&r)?);
            Ok(())
        }
        StorageContractCommand::Reputation => {
            let list: Vec<zhtp::network::Standing> = node("reputation")?.get("/reputation")?;
            if list.is_empty() {
                eprintln!("no audits run from this node yet: every node stands at 1000 points");
            }
            for s in list {
                println!("{}  {:>6}  {:?}", s.node, s.points, s.band);
            }
            Ok(())
        }
        StorageContractCommand::List { json } => {
            let list: Vec<ContractInfo> = match remote {
                Some(url) => Client::new(url)?.get("/storage-contracts")?,
                None => {
                    let local = crate::files::open(dir)?;
                    let book = zhtp_economy::Book::open(local.shared_store());
                    zhtp::accounts::contracts(&book, local.ledger(), LIMIT)?
                }
            };
            if json {
                println!("{}", serde_json::to_string(&list)?);
                return Ok(());
            }
            if list.is_empty() {
                eprintln!("no storage contracts kept here");
            }
            for c in &list {
                println!(
                    "{}  {:<9}  {:>16}  {} shards on {} providers, {} of {} periods settled",
                    c.id,
                    format!("{:?}", c.state).to_lowercase(),
                    tokens(c.price),
                    c.shards,
                    c.providers.len(),
                    c.periods_settled,
                    c.periods
                );
            }
            Ok(())
        }
        StorageContractCommand::Show { id, json } => {
            let Ok(hash) = Hash::from_hex(id.trim()) else {
                bail!("{id:?} is not a storage contract id (64 hex characters)");
            };
            let c: ContractInfo = match remote {
                Some(url) => Client::new(url)?.get(&format!("/storage-contracts/{hash}"))?,
                None => {
                    let local = crate::files::open(dir)?;
                    let book = zhtp_economy::Book::open(local.shared_store());
                    match zhtp::accounts::contract(&book, local.ledger(), &hash)? {
                        Some(c) => c,
                        None => bail!(
                            "{}",
                            zhtp::accounts::not_kept(
                                local.ledger(),
                                &hash,
                                &format!("in {}", dir.display())
                            )
                        ),
                    }
                }
            };
            if json {
                println!("{}", serde_json::to_string(&c)?);
                return Ok(());
            }
            println!("storage contract {}", c.id);
            println!("state       {:?}", c.state);
            println!("content     {}", c.content);
            println!("client      {}", c.client);
            println!(
                "price       {}, of which {} network fee to the incentive pool (pricing plugin {})",
                tokens(c.price),
                tokens(c.fee),
                c.plugin
            );
            println!(
                "term        {} periods of {} s from {} (Unix); {} settled",
                c.periods, c.period_secs, c.start, c.periods_settled
            );
            println!(
                "signatures  {} of {} parties",
                c.signatures.0, c.signatures.1
            );
            println!(
                "shards      {} ({} committed for proof audits)",
                c.shards, c.committed
            );
            for (p, n) in &c.providers {
                println!("  provider  {p}  {n} shards");
            }
            for (period, p, o) in &c.audits {
                println!(
                    "  audit     period {period}  {}  {o:?}",
                    p.get(..16).unwrap_or(p)
                );
            }
            for (period, p, d) in &c.proof_audits {
                println!(
                    "  proof     period {period}  {}  shard {}/{}  circuit {}  {}  answer {} ms, verify {} µs{}",
                    p.get(..16).unwrap_or(p),
                    d.segment,
                    d.index,
                    zhtp_proofs::CircuitId(d.circuit),
                    match d.outcome.violation() {
                        None => "passed".to_string(),
                        Some(v) => format!("failed: {v:?}"),
                    },
                    d.answer_ms,
                    d.verify_us,
                    d.problem
                        .as_deref()
                        .map(|w| format!(" ({w})"))
                        .unwrap_or_default()
                );
            }
            match &c.escrow {
                Some(e) => println!(
                    "escrow      {} funded, {} released (providers and the network fee), {} refunded{}",
                    tokens(e.funded),
                    tokens(e.released),
                    tokens(e.refunded),
                    if e.settled { ", settled" } else { "" }
                ),
                None => println!("escrow      held by the client's node, not this one"),
            }
            Ok(())
        }
    }
}
