//! `zhtp quote`: price storage with the current pricing plugin, here or on a running node.

use std::path::Path;

use anyhow::{Result, bail};
use clap::{Args, ValueEnum};
use zhtp::wire::Priced;
use zhtp_host::abi::pricing::{QuoteRequest, Urgency};
use zhtp_types::MICRO_PER_TOKEN;

use crate::args::Tier;
use crate::plugins;

/// `zhtp quote`.
#[derive(Debug, Args)]
pub struct QuoteArgs {
    /// How much to store: bytes (1048576) or with a unit (1GB = 10^9 B, 500MiB = 500·2^20 B).
    #[arg(long, value_parser = parse_size)]
    pub size: u64,
    /// For how many days.
    #[arg(long)]
    pub days: u32,
    /// Storage tier.
    #[arg(long, value_enum, default_value_t = Tier::Warm)]
    pub tier: Tier,
    /// Ask for SLA quality guarantees (adds the quality premium).
    #[arg(long)]
    pub quality: bool,
    /// Redundancy in full-copy equivalents (1 to 12; 3 is the neutral reference).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=12))]
    pub replication: u8,
    /// How soon the content must be placed.
    #[arg(long, value_enum, default_value_t = UrgencyArg::Normal)]
    pub urgency: UrgencyArg,
    /// Network utilisation in percent (0 to 100; 50 is a neutral market).
    #[arg(long, default_value_t = 50.0)]
    pub utilization: f64,
    /// Print one JSON object with integer µZHTP amounts.
    #[arg(long)]
    pub json: bool,
}

/// Placement urgency on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum UrgencyArg {
    /// Placement may wait for cheap capacity.
    Low,
    /// The default.
    Normal,
    /// Placement now, at a premium.
    High,
}

impl From<UrgencyArg> for Urgency {
    fn from(u: UrgencyArg) -> Self {
        match u {
            UrgencyArg::Low => Urgency::Low,
            UrgencyArg::Normal => Urgency::Normal,
            UrgencyArg::High => Urgency::High,
        }
    }
}

pub fn parse_size(s: &str) -> Result<u64, String> {
    zhtp_types::parse_size(s).map_err(|e| e.to_string())
}

pub fn run(dir: &Path, remote: Option<&str>, args: QuoteArgs) -> Result<()> {
    if !(0.0..=100.0).contains(&args.utilization) {
        bail!("--utilization must be between 0 and 100 (percent)");
    }
    let req = QuoteRequest {
        size_bytes: args.size,
        duration_days: args.days,
        tier: args.tier.into(),
        quality: args.quality,
        replication: args.replication,
        urgency: args.urgency.into(),
        utilization_bp: (args.utilization * 100.0).round() as u16,
    };
    let out: Priced = match remote {
        Some(url) => crate::client::Client::new(url)?.post("/quote", &req)?,
        None => Priced::from(&plugins::open_registry(dir)?.quote(&req)?),
    };
    if args.json {
        println!("{}", serde_json::to_string(&out)?);
        return Ok(());
    }
    println!(
        "Quote for {} B ({}) for {} day(s), {} tier{}",
        req.size_bytes,
        human_bytes(req.size_bytes),
        req.duration_days,
        req.tier,
        if req.quality {
            ", with quality guarantees"
        } else {
            ""
        }
    );
    let rows = [
        ("base", out.base),
        ("quality premium", out.quality_premium),
        ("network fee", out.network_fee),
        ("escrow fee", out.escrow_fee),
        ("total", out.total),
    ];
    for (name, v) in rows {
        println!("  {name:<18} {:>20} ZHTP", tokens(v));
    }
    println!(
        "  {:<18} {:>20} ZHTP (paid to providers from the incentive pool)",
        "max bonus",
        tokens(out.max_bonus)
    );
    let adj: Vec<String> = out
        .adjustments
        .iter()
        .map(|a| {
            format!(
                "{} ×{}.{:04}",
                a.name,
                a.factor_bp / 10_000,
                a.factor_bp % 10_000
            )
        })
        .collect();
    if !adj.is_empty() {
        println!("  adjustments: {}", adj.join(", "));
    }
    println!(
        "  priced by {} (blake3 {})",
        out.plugin,
        out.plugin_hash.fmt_short()
    );
    Ok(())
}

/// µZHTP as a decimal token amount, exactly (no floats).
pub fn tokens(micro: u64) -> String {
    format!("{}.{:06}", micro / MICRO_PER_TOKEN, micro % MICRO_PER_TOKEN)
}

/// A byte count for people, e.g. `1.00 GB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i < UNITS.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.2} {}", UNITS[i])
    }
}
