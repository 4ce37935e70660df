//! `zhtp put | get | ls | search | info` on the local data directory.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use zhtp::local::{LocalNode, PutOptions, Summary, write_atomically};
use zhtp_content::{CodeKind, CodeParams, EncryptionLevel, Manifest, Metadata};
use zhtp_store::Config;
use zhtp_types::{Hash, StorageTier};

use crate::cli::{FilesCommand, PutArgs};
use crate::quote::human_bytes;

fn open(dir: &Path) -> Result<LocalNode> {
    LocalNode::open(dir, Config::default())
        .with_context(|| format!("cannot open the node's store in {}", dir.display()))
}

/// A progress bar on stderr when it is a terminal and the work is large enough to watch.
fn progress(total: Option<u64>) -> Option<ProgressBar> {
    let total = total?;
    if !std::io::stderr().is_terminal() || total < (64 << 20) {
        return None;
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    Some(bar)
}

fn parse_hash(s: &str) -> Result<Hash> {
    Hash::from_hex(s).map_err(|e| anyhow::anyhow!("`{s}` is not a content hash: {e}"))
}

fn parse_code(s: &str) -> Result<CodeParams> {
    let (k, m) = s
        .split_once('+')
        .context("--code is k+m, e.g. 4+2 or 16+8")?;
    let (k, m): (u8, u8) = (k.trim().parse()?, m.trim().parse()?);
    Ok(CodeParams::new(CodeKind::ReedSolomonSimd, k, m)?)
}

fn guess_mime(path: &Path) -> Option<String> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    let mime = match ext.as_str() {
        "txt" | "md" => "text/plain",
        "html" | "htm" => "text/html",
        "json" => "application/json",
        "pdf" => "application/pdf",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "mp4" => "video/mp4",
        "zip" => "application/zip",
        "tar" => "application/x-tar",
        "gz" => "application/gzip",
        "wasm" => "application/wasm",
        _ => "application/octet-stream",
    };
    Some(mime.to_owned())
}

fn summary_json(s: &Summary) -> serde_json::Value {
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

fn put(dir: &Path, args: PutArgs) -> Result<()> {
    let tier = StorageTier::from(args.tier);
    let encryption = EncryptionLevel::parse(&args.encryption).with_context(|| {
        format!(
            "unknown encryption level `{}` (none, standard, high, quantum)",
            args.encryption
        )
    })?;
    let mut opts = PutOptions::new(tier);
    opts.encryption = encryption;
    if let Some(code) = &args.code {
        opts.code = parse_code(code)?;
    }
    let from_stdin = args.file == Path::new("-");
    opts.metadata = Metadata {
        name: args.name.or_else(|| {
            (!from_stdin)
                .then(|| {
                    args.file
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                })
                .flatten()
        }),
        mime: args.mime.or_else(|| guess_mime(&args.file)),
        tags: args.tag,
        description: args.description,
        created: 0,
    };
    let node = open(dir)?;
    let (manifest, elapsed) = if from_stdin {
        let t = std::time::Instant::now();
        let m = node.put(&mut std::io::stdin().lock(), opts, &|_| {})?;
        (m, t.elapsed())
    } else {
        let mut file = std::fs::File::open(&args.file)
            .with_context(|| format!("cannot read {}", args.file.display()))?;
        let len = file.metadata().ok().map(|m| m.len());
        let bar = progress(len);
        let t = std::time::Instant::now();
        let m = node.put(&mut file, opts, &|done| {
            if let Some(b) = &bar {
                b.set_position(done);
            }
        })?;
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        (m, t.elapsed())
    };
    if args.json {
        println!(
            "{}",
            json!({
                "content_hash": manifest.content_hash.to_hex(),
                "size": manifest.size,
                "stored": manifest.stored_bytes(),
                "segments": manifest.segments.len(),
                "tier": manifest.tier.as_str(),
                "encryption": manifest.encryption.level.as_str(),
                "code": format!("{}+{}", manifest.code.data, manifest.code.parity),
                "seconds": elapsed.as_secs_f64(),
            })
        );
    } else {
        println!("{}", manifest.content_hash);
        eprintln!(
            "stored {} in {} segment(s) as {} of {}+{} shards ({}, {} encryption) in {:.2} s",
            human_bytes(manifest.size),
            manifest.segments.len(),
            human_bytes(manifest.stored_bytes()),
            manifest.code.data,
            manifest.code.parity,
            manifest.tier,
            manifest.encryption.level.as_str(),
            elapsed.as_secs_f64()
        );
    }
    Ok(())
}

fn get(dir: &Path, hash: &str, output: &PathBuf) -> Result<()> {
    let hash = parse_hash(hash)?;
    let node = open(dir)?;
    let manifest = node
        .manifest(&hash)?
        .with_context(|| format!("no content {hash} on this node"))?;
    let bar = progress(Some(manifest.size));
    let on_progress = |done: u64| {
        if let Some(b) = &bar {
            b.set_position(done);
        }
    };
    let report = if output == Path::new("-") {
        let mut out = std::io::stdout().lock();
        node.get(&hash, &mut out, &on_progress)?
    } else {
        write_atomically(output, |w| node.get(&hash, w, &on_progress))?
    };
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if report.repaired > 0 {
        eprintln!(
            "repaired {} missing or corrupt shard(s) while reading",
            report.repaired
        );
    }
    Ok(())
}

fn print_list(items: &[Summary], json: bool) {
    if json {
        println!(
            "{}",
            serde_json::Value::Array(items.iter().map(summary_json).collect())
        );
        return;
    }
    if items.is_empty() {
        eprintln!("nothing stored yet");
        return;
    }
    println!(
        "{:<12} {:>10} {:<8} {:<9} {:<24} TAGS",
        "HASH", "SIZE", "TIER", "ENCRYPT", "NAME"
    );
    for s in items {
        println!(
            "{:<12} {:>10} {:<8} {:<9} {:<24} {}",
            s.content_hash.fmt_short(),
            human_bytes(s.size),
            s.tier.as_str(),
            s.encryption.as_str(),
            s.metadata.name.as_deref().unwrap_or("-"),
            s.metadata.tags.join(",")
        );
    }
}

fn info(dir: &Path, hash: &str, json: bool) -> Result<()> {
    let hash = parse_hash(hash)?;
    let node = open(dir)?;
    let m: Manifest = node
        .manifest(&hash)?
        .with_context(|| format!("no content {hash} on this node"))?;
    let code = m.code.kind().map(|k| k.name()).unwrap_or("unknown");
    if json {
        println!(
            "{}",
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
        );
        return Ok(());
    }
    println!("content   {}", m.content_hash);
    println!("name      {}", m.metadata.name.as_deref().unwrap_or("-"));
    println!("mime      {}", m.metadata.mime.as_deref().unwrap_or("-"));
    println!("tags      {}", m.metadata.tags.join(", "));
    println!(
        "about     {}",
        m.metadata.description.as_deref().unwrap_or("-")
    );
    println!("size      {} ({} B)", human_bytes(m.size), m.size);
    println!("stored    {} across shards", human_bytes(m.stored_bytes()));
    println!("tier      {}", m.tier);
    println!(
        "code      {code} {}+{}, {} segment(s) of up to {}",
        m.code.data,
        m.code.parity,
        m.segments.len(),
        human_bytes(m.segment_size as u64)
    );
    println!("encrypted {}", m.encryption.level.as_str());
    let compressed = m.segments.iter().filter(|s| s.compressed).count();
    println!(
        "lz4       {compressed} of {} segment(s) compressed",
        m.segments.len()
    );
    Ok(())
}

pub fn run(dir: &Path, cmd: FilesCommand) -> Result<()> {
    match cmd {
        FilesCommand::Put(args) => put(dir, args),
        FilesCommand::Get { hash, output } => get(dir, &hash, &output),
        FilesCommand::Ls { tag, json } => {
            let node = open(dir)?;
            print_list(&node.list(tag.as_deref())?, json);
            Ok(())
        }
        FilesCommand::Search { text, json } => {
            if text.trim().is_empty() {
                bail!("search needs some text");
            }
            let node = open(dir)?;
            print_list(&node.search(&text)?, json);
            Ok(())
        }
        FilesCommand::Info { hash, json } => info(dir, &hash, json),
    }
}
