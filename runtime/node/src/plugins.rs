//! `zhtp plugin list | install | rollback | export`.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use clap::{Subcommand, ValueEnum};
use zhtp::wire::{Installed, PluginRow};
use zhtp_host::{Host, Limits, Registry};

/// `zhtp plugin ...`
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
        /// Plugin kind.
        #[arg(value_enum)]
        kind: PluginKind,
        /// The plugin's .wasm file.
        file: PathBuf,
    },
    /// Make the previous plugin of a kind current again.
    Rollback {
        /// Plugin kind.
        #[arg(value_enum)]
        kind: PluginKind,
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

/// Plugin kinds a node loads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PluginKind {
    /// Prices storage (`zhtp quote`, contracts).
    Pricing,
}

impl PluginKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Pricing => "pricing",
        }
    }
}

/// The pricing plugin a fresh node starts with.
pub const DEFAULT_PRICING: &str = "pricing-standard";

/// Opens the plugin registry of the data directory, with the embedded default plugin.
pub fn open_registry(dir: &Path) -> Result<Registry> {
    let host = Host::with_cache_dir(Limits::default(), Some(dir.join("cache")))
        .context("could not start the wasm host")?;
    let builtin = zhtp_artifacts::get(DEFAULT_PRICING).context("default plugin not embedded")?;
    Registry::open(host, Some(dir.join("plugins")), builtin)
        .with_context(|| format!("could not open the plugins in {}", dir.display()))
}

pub fn run(dir: &Path, remote: Option<&str>, cmd: PluginCommand) -> Result<()> {
    let client = remote.map(crate::client::Client::new).transpose()?;
    match cmd {
        PluginCommand::List { json } => {
            let rows: Vec<PluginRow> = match &client {
                Some(c) => c.get("/plugins")?,
                None => zhtp::api::plugin_rows(&open_registry(dir)?),
            };
            if json {
                println!("{}", serde_json::to_string(&rows)?);
            } else {
                println!(
                    "{:<8} {:<9} {:<28} {:<12} {:>4} {:>8}",
                    "KIND", "SLOT", "NAME", "HASH", "ABI", "BYTES"
                );
                for r in &rows {
                    println!(
                        "{:<8} {:<9} {:<28} {:<12} {:>4} {:>8}",
                        r.kind,
                        r.slot,
                        r.name,
                        r.hash.fmt_short(),
                        format!("v{}", r.abi_version),
                        r.size
                    );
                }
                let builtins: Vec<&str> = zhtp_artifacts::ALL.iter().map(|(n, _)| *n).collect();
                println!(
                    "\nbuilt in (zhtp plugin export NAME -o FILE): {}",
                    builtins.join(", ")
                );
            }
        }
        PluginCommand::Install { kind, file } => {
            let kind = kind.as_str();
            let wasm =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let done: Installed = match &client {
                Some(c) => c
                    .post_bytes(&format!("/plugins/{kind}"), &wasm)
                    .with_context(|| format!("{} was not installed", file.display()))?,
                None => {
                    let info = open_registry(dir)?
                        .install(&wasm)
                        .with_context(|| format!("{} was not installed", file.display()))?;
                    Installed {
                        name: info.name,
                        hash: info.hash,
                    }
                }
            };
            println!(
                "installed {} as the {kind} plugin (blake3 {})",
                done.name, done.hash
            );
        }
        PluginCommand::Rollback { kind } => {
            let kind = kind.as_str();
            let done: Installed = match &client {
                Some(c) => c.post(&format!("/plugins/{kind}/rollback"), &())?,
                None => {
                    let info = open_registry(dir)?.rollback()?;
                    Installed {
                        name: info.name,
                        hash: info.hash,
                    }
                }
            };
            println!(
                "rolled back: {} is the {kind} plugin again (blake3 {})",
                done.name, done.hash
            );
        }
        PluginCommand::Export { name, output } => {
            let Some(wasm) = zhtp_artifacts::get(&name) else {
                let names: Vec<&str> = zhtp_artifacts::ALL.iter().map(|(n, _)| *n).collect();
                bail!(
                    "no built-in plugin `{name}` (built in: {})",
                    names.join(", ")
                );
            };
            std::fs::write(&output, wasm)
                .with_context(|| format!("cannot write {}", output.display()))?;
            println!(
                "wrote {name} ({} bytes) to {}",
                wasm.len(),
                output.display()
            );
        }
    }
    Ok(())
}
