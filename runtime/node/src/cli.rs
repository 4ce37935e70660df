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
    /// Measure this machine: pipeline throughput against memcpy and BLAKE3 in the same run.
    Bench {
        /// What to measure (only `pipeline` today).
        #[arg(default_value = "pipeline")]
        what: String,
        /// MiB of data to push through.
        #[arg(long, default_value_t = 256)]
        mib: usize,
    },
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

pub fn run(cli: Cli) -> Result<()> {
    let dir = data_dir(cli.data_dir)?;
    match cli.command {
        Command::Quote(args) => quote::run(&dir, args),
        Command::Plugin(cmd) => plugins::run(&dir, cmd),
        Command::Files(cmd) => files::run(&dir, cmd),
        Command::Bench { what, mib } => {
            if what != "pipeline" {
                anyhow::bail!("unknown benchmark `{what}` (known: pipeline)");
            }
            // Temporary stores go under the data dir, on the disk the node really uses.
            let tmp = dir.join("bench-tmp");
            std::fs::create_dir_all(&tmp)?;
            let r = zhtp::bench::pipeline(mib.max(1), &tmp);
            let _ = std::fs::remove_dir_all(&tmp);
            Ok(r?)
        }
    }
}
