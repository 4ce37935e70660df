use std::path::Path;

use anyhow::{Result, bail};
use zhtp_host::abi::pricing::{QuoteRequest, Urgency};
use zhtp_types::{MICRO_PER_TOKEN, StorageTier};

use crate::cli::{QuoteArgs, UrgencyArg};
use crate::plugins;

pub fn run(dir: &Path, remote: Option<&str>, args: QuoteArgs) -> Result<()> {
    if !(0.0..=100.0).contains(&args.utilization) {
        bail!("--utilization must be between 0 and 100 (percent)");
    }
    let req = QuoteRequest {
        size_bytes: args.size,
        duration_days: args.days,
        tier: StorageTier::from(args.tier),
        quality: args.quality,
        replication: args.replication,
        urgency: match args.urgency {
            UrgencyArg::Low => Urgency::Low,
            UrgencyArg::Normal => Urgency::Normal,
            UrgencyArg::High => Urgency::High,
        },
        utilization_bp: (args.utilization * 100.0).round() as u16,
    };
    let out = match remote {
        Some(url) => {
            crate::client::Client::new(url)?.post_json("/quote", &serde_json::to_value(&req)?)?
        }
        None => zhtp::json::quote(&plugins::open_registry(dir)?.quote(&req)?),
    };
    if args.json {
        println!("{out}");
        return Ok(());
    }
    let amount = |k: &str| out[k].as_u64().unwrap_or(0);
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
        ("base", amount("base")),
        ("quality premium", amount("quality_premium")),
        ("network fee", amount("network_fee")),
        ("escrow fee", amount("escrow_fee")),
        ("total", amount("total")),
    ];
    for (name, v) in rows {
        println!("  {name:<18} {:>20} ZHTP", tokens(v));
    }
    println!(
        "  {:<18} {:>20} ZHTP (paid to providers from the incentive pool)",
        "max bonus",
        tokens(amount("max_bonus"))
    );
    let adj: Vec<String> = out["adjustments"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            let bp = a["factor_bp"].as_u64().unwrap_or(0);
            format!(
                "{} ×{}.{:04}",
                a["name"].as_str().unwrap_or("?"),
                bp / 10_000,
                bp % 10_000
            )
        })
        .collect();
    if !adj.is_empty() {
        println!("  adjustments: {}", adj.join(", "));
    }
    println!(
        "  priced by {} (blake3 {})",
        out["plugin"].as_str().unwrap_or("?"),
        out["plugin_hash"]
            .as_str()
            .and_then(|h| h.get(..10))
            .unwrap_or("?")
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
