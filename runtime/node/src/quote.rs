use std::path::Path;

use anyhow::{Result, bail};
use serde_json::json;
use zhtp_host::abi::pricing::{QuoteRequest, Urgency};
use zhtp_types::{MICRO_PER_TOKEN, StorageTier};

use crate::cli::{QuoteArgs, UrgencyArg};
use crate::plugins;

pub fn run(dir: &Path, args: QuoteArgs) -> Result<()> {
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
    let registry = plugins::open_registry(dir)?;
    let priced = registry.quote(&req)?;
    let q = &priced.quote;
    if args.json {
        let out = json!({
            "base": q.base,
            "quality_premium": q.quality_premium,
            "network_fee": q.network_fee,
            "escrow_fee": q.escrow_fee,
            "max_bonus": q.max_bonus,
            "total": q.total,
            "plugin": priced.plugin,
            "plugin_hash": priced.plugin_hash.to_hex(),
            "adjustments": q.adjustments.iter().map(|a| json!({"name": a.factor.name(), "factor_bp": a.factor_bp})).collect::<Vec<_>>(),
        });
        println!("{out}");
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
        ("base", q.base),
        ("quality premium", q.quality_premium),
        ("network fee", q.network_fee),
        ("escrow fee", q.escrow_fee),
        ("total", q.total),
    ];
    for (name, v) in rows {
        println!("  {name:<18} {:>20} ZHTP", tokens(v));
    }
    println!(
        "  {:<18} {:>20} ZHTP (paid to providers from the incentive pool)",
        "max bonus",
        tokens(q.max_bonus)
    );
    let adj: Vec<String> = q
        .adjustments
        .iter()
        .map(|a| {
            format!(
                "{} ×{}.{:04}",
                a.factor.name(),
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
        priced.plugin,
        priced.plugin_hash.fmt_short()
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
