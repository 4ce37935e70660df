//! The command line: global options and the commands, each defined with the module that runs
//! it.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand, ValueEnum};
use zhtp::network::{GcReport, RepairReport};
use zhtp::wire::NodeStatus;

use crate::files::FilesCommand;
use crate::identity::IdentityCommand;
use crate::plugins::PluginCommand;
use crate::quote::QuoteArgs;
use crate::{files, plugins, quote};

/// zhtp: encrypted, erasure-coded storage on a peer-to-peer network, priced by swappable
/// WebAssembly plugins.
#[derive(Debug, Parser)]
#[command(name = "zhtp", version, about, long_about = None)]
pub struct Cli {
    /// Where the node keeps its plugins, caches and data. Default: $ZHTP_DATA_DIR, else ~/.zhtp.
    #[arg(long, global = true, value_name = "DIR", env = "ZHTP_DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// Talk to a running node's API (e.g. http://127.0.0.1:8080) instead of opening the data
    /// dir: put, get, rm, ls, search, info, quote, plugin list/install/rollback, repair, gc,
    /// node status, stats.
    #[arg(long, global = true, value_name = "URL", env = "ZHTP_NODE")]
    pub node: Option<String>,

    /// The node's API token for --node. Default: $ZHTP_TOKEN, else the file api-token in the
    /// data dir when --node is the API of the node running on that data dir. Prefer
    /// ZHTP_TOKEN: other users of the machine can read a command line.
    #[arg(
        long,
        global = true,
        value_name = "TOKEN",
        env = "ZHTP_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Price storing some bytes with the installed pricing plugin.
    Quote(QuoteArgs),
    /// Inspect, install and roll back plugins.
    #[command(subcommand)]
    Plugin(PluginCommand),
    #[command(flatten)]
    Files(FilesCommand),
    /// Create, list, show, export and import identities, and change their passphrases.
    ///
    /// An identity is an Ed25519 signing key, an X25519 key and an X-Wing (ML-KEM-768 +
    /// X25519) key, kept in the data dir's keystore sealed under a passphrase (Argon2id, then
    /// XChaCha20-Poly1305). Its id is its Ed25519 public key in hex.
    #[command(subcommand)]
    Identity(IdentityCommand),
    /// Accounts of the ledger: new, show, fund (a devnet's faucet). Also through --node.
    #[command(subcommand)]
    Account(crate::account::AccountCommand),
    /// Storage contracts kept by the node: those of puts through it (the escrow is in its
    /// ledger) and those it signed as a provider. Also through --node.
    #[command(subcommand)]
    StorageContract(crate::storage_contract::StorageContractCommand),
    /// Smart contracts: `new` scaffolds a contract crate to build with cargo; `check` validates
    /// one and dry-runs its instantiate; `deploy`, `instantiate`, `execute` and `query` go
    /// through a node (--node) to the contract's replicas.
    #[command(subcommand)]
    Contract(crate::contract::ContractCommand),
    /// Let another identity read a content you own: its key is wrapped for the grantee in a
    /// new version of the access list, signed by you.
    Grant(crate::access::GrantArgs),
    /// Take a reader's access away: a new access list without it, signed by you; by default
    /// the content is also encrypted again under a fresh key (--lazy only drops the wrap).
    Revoke(crate::access::RevokeArgs),
    /// The node's figures: DHT (peers, records), economy (supply, pools, escrows, contracts
    /// by state, audits, reputation bands) and storage (contents, shards, bytes). Through
    /// --node for a running node; without it, from the data dir of a stopped one (no DHT part).
    Stats {
        /// Print JSON (`dht`, `economy`, `storage`).
        #[arg(long)]
        json: bool,
    },
    /// Run a node, or ask a running one for its status.
    #[command(subcommand)]
    Node(NodeCommand),
    /// Start N nodes on 127.0.0.1 (separate data dirs) and print their API addresses.
    Devnet {
        /// How many nodes.
        #[arg(long, default_value_t = 6)]
        nodes: usize,
        /// Parent of the nodes' data dirs (kept); default a temporary dir, removed at exit.
        #[arg(long)]
        base_dir: Option<PathBuf>,
    },
    /// A 6-node devnet doing real work (what `make demo` runs).
    ///
    /// Stores 32 MiB, kills 2 nodes, gets it back, repairs, swaps a pricing plugin live, then
    /// removes the file and collects its shards on every live node.
    Demo,
    /// Run a repair round on the node now (needs --node).
    Repair,
    /// Run a garbage-collection round on the node now (needs --node).
    ///
    /// Held shards that no published manifest has referenced for the grace period are
    /// deleted, and the peers that stored them get that quota back.
    Gc,
    /// Run a tier review on the node now (needs --node; also part of each maintenance round).
    ///
    /// The tier plugin judges every content put through the node (age, reads, idleness, the
    /// network's churn); content it places elsewhere is re-coded into the new tier and code
    /// under the same address. Paid content moves with its storage contract (a successor the
    /// new holders sign takes over its escrow); a node that charges defers content no running
    /// contract of its own pays for.
    Review,
    /// Give back the disk space of pack files that are mostly dead bytes.
    ///
    /// Dead bytes are left by failed or interrupted puts and by removed, repaired and collected
    /// shards. Works on the local data dir; a running node does this itself at start and every
    /// `--compact-interval`.
    Compact {
        /// Compact a pack when its live shards fill at most this fraction of it (0 to 1).
        #[arg(long, default_value_t = zhtp_store::COMPACT_MAX_LIVE, value_name = "FRACTION")]
        max_live: f64,
    },
    /// Measure this machine: pipeline throughput against memcpy and BLAKE3 in the same run.
    Bench {
        /// What to measure.
        #[arg(value_enum, default_value_t = Bench::Pipeline)]
        what: Bench,
        /// MiB of data to push through.
        #[arg(long, default_value_t = 256)]
        mib: usize,
    },
}

/// `zhtp node ...`
#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Run a node until SIGINT/SIGTERM: peers over QUIC and TCP, the admin API for --node.
    Run(crate::node::RunArgs),
    /// A running node's status (needs --node).
    Status,
}

/// What `zhtp bench` measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Bench {
    /// One node: put and get through the pipeline into RocksDB, against memcpy and BLAKE3.
    Pipeline,
    /// A get from a 6-node loopback network, against a get from one node.
    Devnet,
    /// Sealing and opening an identity in the keystore (Argon2id), against memcpy.
    Identity,
    /// Smart contracts: warm calls, full cycles with commits, compiling, a registry batch, a
    /// devnet execute; against native code and the CosmWasm anchor.
    Contracts,
}

/// The data directory in force.
pub fn data_dir(flag: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(d) = flag {
        return Ok(d);
    }
    let home = std::env::var_os("HOME").context(
        "no --data-dir given, ZHTP_DATA_DIR unset and HOME unset: cannot pick a data directory",
    )?;
    Ok(PathBuf::from(home).join(".zhtp"))
}

fn need_node(node: Option<&str>, what: &str) -> Result<crate::client::Client> {
    let url =
        node.with_context(|| format!("{what} needs --node URL (a running `zhtp node run`)"))?;
    crate::client::Client::new(url)
}

pub fn run(cli: Cli) -> Result<()> {
    let dir = data_dir(cli.data_dir)?;
    let node = cli.node.as_deref();
    if let Some(url) = node {
        let token = match cli.token {
            Some(t) => Some(t),
            // The data dir's token goes only to the API of the node that runs on that data
            // dir, never to whatever URL --node or ZHTP_NODE names.
            None if zhtp::api::auth::is_own_api(&dir, url) => zhtp::api::auth::read_token(&dir)
                .with_context(|| format!("reading the API token in {}", dir.display()))?,
            None => None,
        };
        crate::client::set_token(token);
    }
    match cli.command {
        Command::Quote(args) => quote::run(&dir, node, args),
        Command::Plugin(cmd) => plugins::run(&dir, node, cmd),
        Command::Files(cmd) => files::run(&dir, node, cmd),
        Command::Identity(cmd) => crate::identity::run(&dir, cmd),
        Command::Account(cmd) => crate::account::run(&dir, node, cmd),
        Command::StorageContract(cmd) => crate::storage_contract::run(&dir, node, cmd),
        Command::Contract(cmd) => crate::contract::run(node, cmd),
        Command::Grant(a) => crate::access::grant(&dir, node, a),
        Command::Revoke(a) => crate::access::revoke(&dir, node, a),
        Command::Node(NodeCommand::Run(args)) => crate::node::run(&dir, args),
        Command::Node(NodeCommand::Status) => {
            let s: NodeStatus = need_node(node, "node status")?.get("/status")?;
            println!("{}", serde_json::to_string_pretty(&s)?);
            Ok(())
        }
        Command::Stats { json } => crate::figures::run(&dir, node, json),
        Command::Devnet { nodes, base_dir } => crate::node::devnet(nodes, base_dir),
        Command::Demo => crate::node::demo(),
        Command::Repair => {
            let r: RepairReport = need_node(node, "repair")?.post("/repair", &())?;
            println!("{}", serde_json::to_string(&r)?);
            Ok(())
        }
        Command::Gc => {
            let r: GcReport = need_node(node, "gc")?.post("/gc", &())?;
            println!("{}", serde_json::to_string(&r)?);
            Ok(())
        }
        Command::Review => {
            let r: zhtp::network::ReviewReport = need_node(node, "review")?.post("/review", &())?;
            println!("{}", serde_json::to_string(&r)?);
            Ok(())
        }
        Command::Compact { max_live } => {
            anyhow::ensure!(
                node.is_none(),
                "compact works on the local data dir (a running node compacts when it starts)"
            );
            anyhow::ensure!(
                (0.0..=1.0).contains(&max_live),
                "--max-live must be between 0 and 1, not {max_live}"
            );
            let r = files::open(&dir)?.store().compact_packs(max_live)?;
            println!(
                "{} pack(s) removed, {} live shard(s) moved ({}), {} of disk given back",
                r.packs_removed,
                r.shards_moved,
                quote::human_bytes(r.bytes_moved),
                quote::human_bytes(r.bytes_reclaimed)
            );
            Ok(())
        }
        Command::Bench { what, mib } => {
            // Temporary stores go under the data dir, on the disk the node really uses.
            let tmp = dir.join("bench-tmp");
            std::fs::create_dir_all(&tmp)?;
            let r: Result<()> = match what {
                Bench::Pipeline => zhtp::bench::pipeline(mib.max(1), &tmp).map_err(Into::into),
                Bench::Devnet => zhtp::bench::devnet(mib.max(1), 6, &tmp).map_err(Into::into),
                Bench::Identity => zhtp::bench::identity().map_err(Into::into),
                Bench::Contracts => zhtp::bench::contracts(&tmp).map_err(Into::into),
            };
            let _ = std::fs::remove_dir_all(&tmp);
            r
        }
    }
}
