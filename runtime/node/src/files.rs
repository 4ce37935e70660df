//! `zhtp put | get | ls | search | info` on the local data directory.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use serde_json::json;
use zhtp::api::PutRequest;
use zhtp::local::{LocalNode, PutOptions, write_atomically};
use zhtp_content::{CodeKind, CodeParams, EncryptionLevel, Metadata};
use zhtp_store::Config;
use zhtp_types::{Hash, StorageTier};

use crate::cli::{FilesCommand, PutArgs};
use crate::client::Client;
use crate::quote::human_bytes;

pub(crate) fn open(dir: &Path) -> Result<LocalNode> {
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

fn put(dir: &Path, remote: Option<&str>, args: PutArgs) -> Result<()> {
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
        name: args.name.clone().or_else(|| {
            (!from_stdin)
                .then(|| {
                    args.file
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                })
                .flatten()
        }),
        mime: args.mime.clone().or_else(|| guess_mime(&args.file)),
        tags: args.tag.clone(),
        description: args.description.clone(),
        created: 0,
    };
    if let Some(url) = remote {
        return put_remote(&Client::new(url)?, &args, opts);
    }
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

fn put_remote(client: &Client, args: &PutArgs, opts: PutOptions) -> Result<()> {
    if args.file == Path::new("-") {
        bail!("put through --node takes a file, not standard input");
    }
    let file = std::fs::File::open(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let req = PutRequest {
        tier: Some(opts.tier),
        encryption: Some(opts.encryption.as_str().to_owned()),
        code: args.code.as_ref().map(|_| opts.code),
        name: opts.metadata.name,
        mime: opts.metadata.mime,
        tags: opts.metadata.tags,
        description: opts.metadata.description,
    };
    let header = serde_json::to_string(&req)?;
    let r = client.post_file("/content", Some(("zhtp-put", header)), file)?;
    if args.json {
        println!("{r}");
    } else {
        println!("{}", r["content_hash"].as_str().unwrap_or_default());
        if let Some(k) = r["key"].as_str() {
            eprintln!("content key (needed to get it through another node): {k}");
        }
        eprintln!(
            "stored {} in {} segment(s) as {} on the network in {:.2} s",
            human_bytes(r["size"].as_u64().unwrap_or(0)),
            r["segments"],
            human_bytes(r["stored"].as_u64().unwrap_or(0)),
            r["seconds"].as_f64().unwrap_or(0.0)
        );
    }
    Ok(())
}

fn get_remote(client: &Client, hash: Hash, key: Option<&str>, output: &Path) -> Result<()> {
    let path = format!("/content/{hash}");
    // The key travels in a header: URLs end up in logs.
    let headers = match key {
        Some(k) => vec![(
            zhtp::api::KEY_HEADER,
            parse_hash(k).context("--key")?.to_hex(),
        )],
        None => Vec::new(),
    };
    let fetch = |w: &mut dyn std::io::Write| -> Result<()> {
        // Check the bytes against the address here too: the node is not trusted blindly.
        let mut hashing = HashingWriter {
            inner: w,
            hasher: blake3::Hasher::new(),
        };
        client.download(&path, &headers, &mut hashing)?;
        let actual = Hash(*hashing.hasher.finalize().as_bytes());
        if actual != hash {
            bail!("the node sent content hashing to {actual}, not {hash}");
        }
        Ok(())
    };
    if output == Path::new("-") {
        return fetch(&mut std::io::stdout().lock());
    }
    write_atomically(output, |w| fetch(w))
}

struct HashingWriter<'a> {
    inner: &'a mut dyn std::io::Write,
    hasher: blake3::Hasher,
}

impl std::io::Write for HashingWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn get(
    dir: &Path,
    remote: Option<&str>,
    hash: &str,
    key: Option<&str>,
    output: &PathBuf,
) -> Result<()> {
    let hash = parse_hash(hash)?;
    if let Some(url) = remote {
        return get_remote(&Client::new(url)?, hash, key, output);
    }
    if key.is_some() {
        bail!("--key is for getting through a node (--node); a local get uses the key kept here");
    }
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

fn print_list(items: &[Value], json: bool) {
    if json {
        println!("{}", Value::Array(items.to_vec()));
        return;
    }
    if items.is_empty() {
        eprintln!("nothing was put through this node yet");
        return;
    }
    println!(
        "{:<12} {:>10} {:<8} {:<9} {:<24} TAGS",
        "HASH", "SIZE", "TIER", "ENCRYPT", "NAME"
    );
    for s in items {
        let str_of = |k: &str| s[k].as_str().unwrap_or("-").to_owned();
        let hash = str_of("content_hash");
        let tags: Vec<&str> = s["tags"]
            .as_array()
            .map(|a| a.iter().filter_map(|t| t.as_str()).collect())
            .unwrap_or_default();
        println!(
            "{:<12} {:>10} {:<8} {:<9} {:<24} {}",
            hash.get(..10).unwrap_or(&hash),
            human_bytes(s["size"].as_u64().unwrap_or(0)),
            str_of("tier"),
            str_of("encryption"),
            str_of("name"),
            tags.join(",")
        );
    }
}

fn info(dir: &Path, remote: Option<&str>, hash: &str, json: bool) -> Result<()> {
    let hash = parse_hash(hash)?;
    let m = match remote {
        Some(url) => Client::new(url)?.get_json(&format!("/content/{hash}/manifest"))?,
        None => zhtp::json::manifest(
            &open(dir)?
                .manifest(&hash)?
                .with_context(|| format!("no content {hash} on this node"))?,
        ),
    };
    if json {
        println!("{m}");
        return Ok(());
    }
    let md = &m["metadata"];
    let text = |v: &Value| v.as_str().unwrap_or("-").to_owned();
    let tags: Vec<&str> = md["tags"]
        .as_array()
        .map(|a| a.iter().filter_map(|t| t.as_str()).collect())
        .unwrap_or_default();
    let segments = m["segments"].as_array().map_or(0, |a| a.len());
    let compressed = m["segments"]
        .as_array()
        .map_or(0, |a| a.iter().filter(|s| s["compressed"] == true).count());
    let size = m["size"].as_u64().unwrap_or(0);
    println!("content   {}", text(&m["content_hash"]));
    println!("name      {}", text(&md["name"]));
    println!("mime      {}", text(&md["mime"]));
    println!("tags      {}", tags.join(", "));
    println!("about     {}", text(&md["description"]));
    println!("size      {} ({size} B)", human_bytes(size));
    println!(
        "stored    {} across shards",
        human_bytes(m["stored"].as_u64().unwrap_or(0))
    );
    println!("tier      {}", text(&m["tier"]));
    println!(
        "code      {} {}+{}, {segments} segment(s) of up to {}",
        text(&m["code"]["kind"]),
        m["code"]["data"],
        m["code"]["parity"],
        human_bytes(m["segment_size"].as_u64().unwrap_or(0))
    );
    println!("encrypted {}", text(&m["encryption"]));
    println!("lz4       {compressed} of {segments} segment(s) compressed");
    Ok(())
}

fn list(dir: &Path, remote: Option<&str>, tag: Option<&str>) -> Result<Vec<Value>> {
    match remote {
        Some(url) => {
            let path = match tag {
                Some(t) => format!("/content?tag={}", urlencode(t)),
                None => "/content".into(),
            };
            let v = Client::new(url)?.get_json(&path)?;
            Ok(v.as_array().cloned().unwrap_or_default())
        }
        None => Ok(open(dir)?
            .list(tag)?
            .iter()
            .map(zhtp::json::summary)
            .collect()),
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub fn run(dir: &Path, remote: Option<&str>, cmd: FilesCommand) -> Result<()> {
    match cmd {
        FilesCommand::Put(args) => put(dir, remote, args),
        FilesCommand::Get { hash, output, key } => get(dir, remote, &hash, key.as_deref(), &output),
        FilesCommand::Ls { tag, json } => {
            print_list(&list(dir, remote, tag.as_deref())?, json);
            Ok(())
        }
        FilesCommand::Search { text, json } => {
            if text.trim().is_empty() {
                bail!("search needs some text");
            }
            let items = match remote {
                Some(url) => Client::new(url)?
                    .get_json(&format!("/search?q={}", urlencode(&text)))?
                    .as_array()
                    .cloned()
                    .unwrap_or_default(),
                None => open(dir)?
                    .search(&text)?
                    .iter()
                    .map(zhtp::json::summary)
                    .collect(),
            };
            print_list(&items, json);
            Ok(())
        }
        FilesCommand::Info { hash, json } => info(dir, remote, &hash, json),
    }
}
