use std::path::Path;

use anyhow::{Context as _, Result, bail};
use zhtp_host::{Host, Kind, Limits, Registry};

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

pub fn run(dir: &Path, remote: Option<&str>, cmd: PluginCommand) -> Result<()> {
    let client = remote.map(crate::client::Client::new).transpose()?;
    match cmd {
        PluginCommand::List { json } => {
            let rows: Vec<serde_json::Value> = match &client {
                Some(c) => c
                    .get_json("/plugins")?
                    .as_array()
                    .cloned()
                    .unwrap_or_default(),
                None => {
                    let registry = open_registry(dir)?;
                    let slot = registry.slot();
                    let mut rows = vec![zhtp::json::plugin("current", slot.current.plugin())];
                    if let Some(p) = &slot.previous {
                        rows.push(zhtp::json::plugin("previous", p.plugin()));
                    }
                    rows
                }
            };
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
            let (name, hash) = match &client {
                Some(c) => {
                    let r = c
                        .post_bytes(&format!("/plugins/{kind}"), &wasm)
                        .with_context(|| format!("{} was not installed", file.display()))?;
                    (
                        r["name"].as_str().unwrap_or("?").to_owned(),
                        r["hash"].as_str().unwrap_or("?").to_owned(),
                    )
                }
                None => {
                    let info = open_registry(dir)?
                        .install(&wasm)
                        .with_context(|| format!("{} was not installed", file.display()))?;
                    (info.name, info.hash.to_hex())
                }
            };
            println!("installed {name} as the {kind} plugin (blake3 {hash})");
        }
        PluginCommand::Rollback { kind } => {
            check_kind(&kind)?;
            let (name, hash) = match &client {
                Some(c) => {
                    let r =
                        c.post_json(&format!("/plugins/{kind}/rollback"), &serde_json::json!({}))?;
                    (
                        r["name"].as_str().unwrap_or("?").to_owned(),
                        r["hash"].as_str().unwrap_or("?").to_owned(),
                    )
                }
                None => {
                    let info = open_registry(dir)?.rollback()?;
                    (info.name, info.hash.to_hex())
                }
            };
            println!("rolled back: {name} is the {kind} plugin again (blake3 {hash})");
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
