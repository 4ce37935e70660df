use std::path::Path;

use anyhow::{Context as _, Result, bail};
use serde_json::json;
use zhtp_host::{Host, Kind, Limits, Plugin, Registry};

use crate::cli::PluginCommand;

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

fn check_kind(kind: &str) -> Result<Kind> {
    Kind::parse(kind).with_context(|| format!("unknown plugin kind `{kind}` (known: pricing)"))
}

fn describe(slot: &str, p: &Plugin) -> serde_json::Value {
    let i = p.info();
    json!({
        "kind": p.kind().as_str(),
        "slot": slot,
        "name": i.name,
        "hash": i.hash.to_hex(),
        "abi_version": i.abi_version,
        "size": i.size,
    })
}

pub fn run(dir: &Path, cmd: PluginCommand) -> Result<()> {
    match cmd {
        PluginCommand::List { json } => {
            let registry = open_registry(dir)?;
            let slot = registry.slot();
            let mut rows = vec![describe("current", slot.current.plugin())];
            if let Some(p) = &slot.previous {
                rows.push(describe("previous", p.plugin()));
            }
            if json {
                println!("{}", serde_json::Value::Array(rows));
            } else {
                println!(
                    "{:<8} {:<9} {:<28} {:<12} {:>4} {:>8}",
                    "KIND", "SLOT", "NAME", "HASH", "ABI", "BYTES"
                );
                for r in &rows {
                    println!(
                        "{:<8} {:<9} {:<28} {:<12} {:>4} {:>8}",
                        r["kind"].as_str().unwrap_or(""),
                        r["slot"].as_str().unwrap_or(""),
                        r["name"].as_str().unwrap_or(""),
                        &r["hash"].as_str().unwrap_or("")[..10],
                        format!("v{}", r["abi_version"]),
                        r["size"]
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
            check_kind(&kind)?;
            let wasm =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let registry = open_registry(dir)?;
            let info = registry
                .install(&wasm)
                .with_context(|| format!("{} was not installed", file.display()))?;
            println!(
                "installed {} as the {kind} plugin (blake3 {})",
                info.name, info.hash
            );
        }
        PluginCommand::Rollback { kind } => {
            check_kind(&kind)?;
            let registry = open_registry(dir)?;
            let info = registry.rollback()?;
            println!(
                "rolled back: {} is the {kind} plugin again (blake3 {})",
                info.name, info.hash
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
