use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use zhtp_types::StorageTier;

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
    /// dir: put, get, ls, search, info, quote, plugin list/install/rollback, repair, status.
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
    /// A 6-node devnet doing real work: store 32 MiB, kill 2 nodes, get it back, repair,
    /// swap a pricing plugin live. What `make demo` runs.
    Demo,
    /// Run a repair round on the node now (needs --node).
    Repair,
    /// Give back the disk space of pack files that are mostly dead bytes (left by failed or
    /// interrupted puts, repaired and deleted shards). Works on the local data dir; a running
    /// node does this itself when it starts.
    Compact {
        /// Compact a pack when its live shards fill at most this fraction of it (0 to 1).
        #[arg(long, default_value_t = zhtp_store::COMPACT_MAX_LIVE, value_name = "FRACTION")]
        max_live: f64,
    },
    /// Measure this machine: pipeline throughput against memcpy and BLAKE3 in the same run.
    Bench {
        /// What to measure: `pipeline` (one node, into RocksDB) or `devnet` (get from a
        /// 6-node loopback network).
        #[arg(default_value = "pipeline")]
        what: String,
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

/// Content on this node.
#[derive(Debug, Subcommand)]
pub enum FilesCommand {
    /// Store a file: compressed, encrypted, erasure-coded; prints its content hash.
    Put(PutArgs),
    /// Write a stored content to a file, verified byte for byte against its hash.
    Get {
        /// Content hash (64 hex characters), as printed by `put`.
        hash: String,
        /// Where to write it (`-` for standard output). Written to a temporary file first and
        /// renamed into place only when complete and verified.
        #[arg(short, long)]
        output: PathBuf,
        /// The content key (hex, printed by `put --json`), needed to read encrypted content
        /// through a node other than the one it was stored through.
        #[arg(long)]
        key: Option<String>,
    },
    /// List stored contents, newest first.
    Ls {
        /// Only contents with this tag.
        #[arg(long)]
        tag: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Find contents whose name, tags or description contain TEXT (case-insensitive).
    Search {
        /// What to look for.
        text: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a content's manifest.
    Info {
        /// Content hash.
        hash: String,
        /// Print JSON (the whole manifest, shard hashes included).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct PutArgs {
    /// The file to store (`-` for standard input).
    pub file: PathBuf,
    /// Storage tier; chooses the erasure code (hot/warm 4+2, cold 8+4, archive 16+8).
    #[arg(long, value_enum, default_value = "warm")]
    pub tier: TierArg,
    /// Encryption: none or standard (ChaCha20-Poly1305, random key kept by this node).
    /// high and quantum are not yet supported.
    #[arg(long, default_value = "standard")]
    pub encryption: String,
    /// Erasure code k+m instead of the tier's (k + m ≤ 255), e.g. 16+8.
    #[arg(long)]
    pub code: Option<String>,
    /// Name (default: the file name).
    #[arg(long)]
    pub name: Option<String>,
    /// A tag; repeat for more.
    #[arg(long)]
    pub tag: Vec<String>,
    /// Free-text description, searchable.
    #[arg(long)]
    pub description: Option<String>,
    /// MIME type (default: guessed from the extension).
    #[arg(long)]
    pub mime: Option<String>,
    /// Print JSON (field `content_hash`, hex).
    #[arg(long)]
    pub json: bool,
}

/// Storage tier on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum TierArg {
    Hot,
    Warm,
    Cold,
    Archive,
}

impl From<TierArg> for StorageTier {
    fn from(t: TierArg) -> Self {
        match t {
            TierArg::Hot => StorageTier::Hot,
            TierArg::Warm => StorageTier::Warm,
            TierArg::Cold => StorageTier::Cold,
            TierArg::Archive => StorageTier::Archive,
        }
    }
}

/// Placement urgency on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum UrgencyArg {
    Low,
    Normal,
    High,
}

#[derive(Debug, Args)]
pub struct QuoteArgs {
    /// How much to store: bytes (1048576) or with a unit (1GB = 10^9 B, 500MiB = 500·2^20 B).
    #[arg(long, value_parser = parse_size)]
    pub size: u64,
    /// For how many days.
    #[arg(long)]
    pub days: u32,
    /// Storage tier.
    #[arg(long, value_enum, default_value = "warm")]
    pub tier: TierArg,
    /// Ask for SLA quality guarantees (adds the quality premium).
    #[arg(long)]
    pub quality: bool,
    /// Redundancy in full-copy equivalents (1 to 12; 3 is the neutral reference).
    #[arg(long, default_value_t = 3)]
    pub replication: u8,
    /// How soon the content must be placed.
    #[arg(long, value_enum, default_value = "normal")]
    pub urgency: UrgencyArg,
    /// Network utilisation in percent (0 to 100; 50 is a neutral market).
    #[arg(long, default_value_t = 50.0)]
    pub utilization: f64,
    /// Print one JSON object with integer µZHTP amounts.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// List the installed plugins (current and previous of each kind).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Install a plugin: validated, compiled and self-checked before it replaces the current one.
    Install {
        /// Plugin kind (only `pricing` today).
        kind: String,
        /// The plugin's .wasm file.
        file: PathBuf,
    },
    /// Make the previous plugin of a kind current again.
    Rollback {
        /// Plugin kind (only `pricing` today).
        kind: String,
    },
    /// Write one of the plugins built into this binary to a file (a starting point, or to
    /// install it again by hand).
    Export {
        /// Built-in plugin name (see `zhtp plugin list`); e.g. pricing-surge.
        name: String,
        /// Where to write the .wasm.
        #[arg(short, long)]
        output: PathBuf,
    },
}

fn parse_size(s: &str) -> Result<u64, String> {
    zhtp_types::parse_size(s).map_err(|e| e.to_string())
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
        Command::Node(NodeCommand::Run(args)) => crate::node::run(&dir, args),
        Command::Node(NodeCommand::Status) => {
            println!("{:#}", need_node(node, "node status")?.get_json("/status")?);
            Ok(())
        }
        Command::Devnet { nodes, base_dir } => crate::node::devnet(nodes, base_dir),
        Command::Demo => crate::node::demo(),
        Command::Repair => {
            println!(
                "{}",
                need_node(node, "repair")?.post_json("/repair", &serde_json::json!({}))?
            );
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
            let r: Result<()> = match what.as_str() {
                "pipeline" => zhtp::bench::pipeline(mib.max(1), &tmp).map_err(Into::into),
                "devnet" => zhtp::bench::devnet(mib.max(1), 6, &tmp).map_err(Into::into),
                other => Err(anyhow::anyhow!(
                    "unknown benchmark `{other}` (known: pipeline, devnet)"
                )),
            };
            let _ = std::fs::remove_dir_all(&tmp);
            r
        }
    }
}
