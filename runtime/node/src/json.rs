//! The JSON shapes shared by `--json` output and the admin API, so a client prints the same
//! thing whether it read the local data dir or asked a running node.

use serde_json::{Value, json};
use zhtp_content::Manifest;
use zhtp_host::{Plugin, PricedQuote};

use crate::local::Summary;

/// One line of `ls` / `search`.
pub fn summary(s: &Summary) -> Value {
    json!({
        "content_hash": s.content_hash.to_hex(),
        "size": s.size,
        "stored": s.stored,
        "tier": s.tier.as_str(),
        "encryption": s.encryption.as_str(),
        "name": s.metadata.name,
        "mime": s.metadata.mime,
        "tags": s.metadata.tags,
        "description": s.metadata.description,
        "created": s.metadata.created,
    })
}

/// A whole manifest (`info --json`).
pub fn manifest(m: &Manifest) -> Value {
    let code = m.code.kind().map(|k| k.name()).unwrap_or("unknown");
    json!({
        "version": m.version,
        "content_hash": m.content_hash.to_hex(),
        "size": m.size,
        "stored": m.stored_bytes(),
        "tier": m.tier.as_str(),
        "code": {"kind": code, "data": m.code.data, "parity": m.code.parity},
        "segment_size": m.segment_size,
        "encryption": m.encryption.level.as_str(),
        "key_check": m.encryption.key_check.map(|h| h.to_hex()),
        "segments": m.segments.iter().map(|s| json!({
            "plain_len": s.plain_len, "compressed": s.compressed, "stored_len": s.stored_len,
            "shard_len": s.shard_len, "shards": s.shards.iter().map(|h| h.to_hex()).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "metadata": {"name": m.metadata.name, "mime": m.metadata.mime, "tags": m.metadata.tags,
                     "description": m.metadata.description, "created": m.metadata.created},
    })
}

/// A priced quote, amounts in integer µZHTP.
pub fn quote(priced: &PricedQuote) -> Value {
    let q = &priced.quote;
    json!({
        "base": q.base,
        "quality_premium": q.quality_premium,
        "network_fee": q.network_fee,
        "escrow_fee": q.escrow_fee,
        "max_bonus": q.max_bonus,
        "total": q.total,
        "plugin": priced.plugin,
        "plugin_hash": priced.plugin_hash.to_hex(),
        "adjustments": q.adjustments.iter().map(|a| json!({"name": a.factor.name(), "factor_bp": a.factor_bp})).collect::<Vec<_>>(),
    })
}

/// An installed plugin in a registry slot (`current` or `previous`).
pub fn plugin(slot: &str, p: &Plugin) -> Value {
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
