//! `zhtp put | get | rm | ls | search | info`: on the local data directory, or through a
//! running node with `--node`.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use zhtp::api::PutRequest;
use zhtp::keystore::Keystore;
use zhtp::local::{LocalNode, PutOptions, write_atomically};
use zhtp::readers;
use zhtp::wire::{Listed, ManifestInfo, PutReply};
use zhtp_content::{CodeParams, EncryptionLevel, Metadata};
use zhtp_identity::Identity;
use zhtp_store::Config;
use zhtp_types::{Hash, MicroZhtp};

use crate::args::{self, Tier};
use crate::client::Client;
use crate::quote::human_bytes;

/// Content on this node.
#[derive(Debug, Subcommand)]
pub enum FilesCommand {
    /// Store a file: compressed, encrypted, erasure-coded; prints its content hash.
    Put(PutArgs),
    /// Write a stored content to a file, verified byte for byte against its hash.
    Get {
        /// Content hash (64 hex characters), as printed by `put`.
        #[arg(value_parser = args::content_hash)]
        hash: Hash,
        /// Where to write it (`-` for standard output). Written to a temporary file first and
        /// renamed into place only when complete and verified.
        #[arg(short, long)]
        output: PathBuf,
        /// Encrypted content is read as one of its readers, an identity of this keystore:
        /// the content key is unwrapped from the manifest (asks for the passphrase; see `zhtp
        /// identity`). Works through any node. Default: the keystore's only identity.
        #[arg(long, env = "ZHTP_IDENTITY", value_name = "NAME")]
        identity: Option<String>,
        #[command(flatten)]
        passphrase: crate::identity::PassphraseFile,
    },
    /// Remove a content put through this node.
    ///
    /// Deletes its manifest, key and the shards nothing else uses. Through --node, also
    /// withdraws its manifest record from the network (a signed tombstone): the nodes holding
    /// its shards delete them after their grace period (`node run --gc-grace`).
    Rm {
        /// Content hash.
        #[arg(value_parser = args::content_hash)]
        hash: Hash,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// The owner, for an owned content (every encrypted one) through a node: the node
        /// takes its removal only signed by the owner (asks for the passphrase). Default: the
        /// keystore's only identity.
        #[arg(long, env = "ZHTP_IDENTITY", value_name = "NAME")]
        identity: Option<String>,
        #[command(flatten)]
        passphrase: crate::identity::PassphraseFile,
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
        #[arg(value_parser = args::content_hash)]
        hash: Hash,
        /// Print JSON (the whole manifest, shard hashes included).
        #[arg(long)]
        json: bool,
        /// Show the owner's private metadata too, read as this identity (a reader of the
        /// content; asks for its passphrase).
        #[arg(long, env = "ZHTP_IDENTITY", value_name = "NAME")]
        identity: Option<String>,
        #[command(flatten)]
        passphrase: crate::identity::PassphraseFile,
    },
}

/// `zhtp put`.
#[derive(Debug, Args)]
pub struct PutArgs {
    /// The file to store (`-` for standard input).
    pub file: PathBuf,
    /// Storage tier; chooses the erasure code (hot/warm 4+2, cold 8+4, archive 16+8).
    #[arg(long, value_enum, default_value_t = Tier::Warm)]
    pub tier: Tier,
    /// Encryption. Every level but none wraps the content key for its owner (--identity) in
    /// the manifest, and no node keeps it: only the owner and those it grants can read.
    #[arg(long, value_enum, default_value_t = Encryption::Standard)]
    pub encryption: Encryption,
    /// The owner of encrypted content: an identity of this data dir's keystore (`zhtp
    /// identity new`); default: the keystore's only identity. The content key is wrapped for
    /// it, so it reads the content through any node. A local put needs only its public keys; a
    /// put through a node is signed by it (asks for its passphrase).
    #[arg(long, env = "ZHTP_IDENTITY", value_name = "NAME")]
    pub identity: Option<String>,
    /// With --identity through a node (--node), the put is signed by the identity: its
    /// passphrase comes from FILE's first line, else $ZHTP_PASSPHRASE, else a prompt.
    #[command(flatten)]
    pub passphrase: crate::identity::PassphraseFile,
    /// Erasure code k+m instead of the tier's (k + m ≤ 255), e.g. 16+8.
    #[arg(long, value_name = "K+M")]
    pub code: Option<CodeParams>,
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
    /// Through a node that charges (a devnet's): days to store, the storage contract's term
    /// (settled once a day). The identity (--identity) pays from its account on that node.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=36_500))]
    pub days: u32,
    /// Through a node that charges: the most to pay for the term, in ZHTP (1.5) or µZHTP
    /// (1500000u); default: the node's quote for this put.
    #[arg(long, value_name = "AMOUNT", value_parser = zhtp::accounts::parse_amount)]
    pub max_price: Option<MicroZhtp>,
    /// Through a node that charges: have it commit to every shard (about 0.25 s per MiB of
    /// shard) and audit them by Groth16 proofs of storage instead of BLAKE3 digests.
    #[arg(long)]
    pub proof_audits: bool,
    /// Print JSON (field `content_hash`, hex).
    #[arg(long)]
    pub json: bool,
}

/// Who pays a put through a node, and for what term.
#[derive(Clone, Copy)]
pub(crate) struct Pay<'a> {
    /// The paying identity: signs the payment's mandate.
    pub payer: &'a Identity,
    /// Days stored.
    pub days: u32,
    /// The most it pays; `None`: the node's quote.
    pub max_price: Option<MicroZhtp>,
    /// Audited by proofs of storage.
    pub proofs: bool,
}

/// Encryption levels of a put.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Encryption {
    /// Stored as is (after compression): anyone holding the shards can read it.
    None,
    /// ChaCha20-Poly1305 with a random per-content key.
    Standard,
    /// XChaCha20-Poly1305; the key wrapped for the owner with X25519.
    High,
    /// XChaCha20-Poly1305; the key wrapped for the owner with X-Wing (ML-KEM-768 + X25519),
    /// so that breaking either alone reveals nothing.
    Quantum,
}

impl From<Encryption> for EncryptionLevel {
    fn from(e: Encryption) -> Self {
        match e {
            Encryption::None => EncryptionLevel::None,
            Encryption::Standard => EncryptionLevel::Standard,
            Encryption::High => EncryptionLevel::High,
            Encryption::Quantum => EncryptionLevel::QuantumResistant,
        }
    }
}

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
    let mut opts = PutOptions::new(args.tier.into());
    opts.encryption = args.encryption.into();
    if let Some(code) = args.code {
        opts.code = code;
    }
    if args.file != Path::new("-") {
        // Before any passphrase is asked for: a mistyped path should not cost one.
        std::fs::File::open(&args.file)
            .with_context(|| format!("cannot read {}", args.file.display()))?;
    }
    let mut owner = None;
    let mut payer = None;
    let owner_name = match opts.encryption {
        EncryptionLevel::None => None,
        level => Some(crate::identity::choose(
            dir,
            args.identity.clone(),
            &format!(
                "encryption {level} wraps the content key for its owner (or use --encryption none for public content)"
            ),
        )?),
    };
    if let Some(name) = &owner_name {
        let (_, keys) = Keystore::new(dir).public_record(name)?;
        opts.readers = vec![keys];
        if remote.is_some() {
            // Through a node the put must be signed by the owner: its secret key is needed.
            owner = Some(crate::identity::open(dir, name, &args.passphrase)?);
        }
    } else if let Some(name) = &args.identity {
        let charges = match remote {
            Some(url) => {
                Client::new(url)?
                    .get::<zhtp::wire::NodeStatus>("/status")?
                    .charges
            }
            None => false,
        };
        if charges {
            // Public content through a node that charges: the identity owns nothing but pays.
            owner = None;
            payer = Some(crate::identity::open(dir, name, &args.passphrase)?);
        } else {
            // Also from $ZHTP_IDENTITY, which should not stop public puts: a warning.
            eprintln!(
                "content put with --encryption none is public and has no owner ({name} is not)"
            );
        }
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
    let stored = match remote {
        Some(url) => put_remote(
            &Client::new(url)?,
            {
                if from_stdin {
                    bail!("put through --node takes a file, not standard input");
                }
                std::fs::File::open(&args.file)
                    .with_context(|| format!("cannot read {}", args.file.display()))?
            },
            args.code.map(|_| opts.code),
            opts,
            owner.as_ref(),
            owner.as_ref().or(payer.as_ref()).map(|payer| Pay {
                payer,
                days: args.days,
                max_price: args.max_price,
                proofs: args.proof_audits,
            }),
        )?,
        None => put_local(dir, &args.file, opts)?,
    };
    if args.json {
        println!("{}", serde_json::to_string(&stored)?);
        return Ok(());
    }
    println!("{}", stored.content_hash);
    if let Some(name) = &owner_name {
        eprintln!(
            "content key wrapped for identity {name}; no node keeps it (read it with get --identity {name})"
        );
    }
    eprintln!(
        "stored {} in {} segment(s) as {} of {} shards ({}, {} encryption){} in {:.2} s",
        human_bytes(stored.size),
        stored.segments,
        human_bytes(stored.stored),
        stored.code,
        stored.tier,
        stored.encryption,
        if remote.is_some() {
            " on the network"
        } else {
            ""
        },
        stored.seconds
    );
    Ok(())
}

pub(crate) fn put_local(dir: &Path, file: &Path, opts: PutOptions) -> Result<PutReply> {
    let node = open(dir)?;
    let t = std::time::Instant::now();
    let manifest = if file == Path::new("-") {
        node.put(&mut std::io::stdin().lock(), opts, &|_| {})?
    } else {
        let mut f =
            std::fs::File::open(file).with_context(|| format!("cannot read {}", file.display()))?;
        let bar = progress(f.metadata().ok().map(|m| m.len()));
        let m = node.put(&mut f, opts, &|done| {
            if let Some(b) = &bar {
                b.set_position(done);
            }
        })?;
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        m
    };
    Ok(PutReply::of(&manifest, t.elapsed().as_secs_f64()))
}

/// BLAKE3 of what is left of `file`, which is then back where it was.
fn hash_file(file: &mut std::fs::File) -> Result<Hash> {
    use std::io::Seek as _;
    let start = file.stream_position()?;
    let mut h = blake3::Hasher::new();
    h.update_reader(&mut *file)?;
    file.seek(std::io::SeekFrom::Start(start))?;
    Ok(Hash(*h.finalize().as_bytes()))
}

/// The `zhtp-signed` header of the request `method` `path` to the node of `client`, by `who`
/// (none without an identity).
pub(crate) fn signed_header(
    client: &Client,
    who: Option<&Identity>,
    (method, path): (&str, &str),
    bound: &[u8],
) -> Result<Vec<(&'static str, String)>> {
    let to = zhtp::api::signed::Target {
        method,
        node: client.authority(),
        path,
    };
    Ok(match who {
        Some(id) => vec![(
            zhtp::api::signed::HEADER,
            zhtp::api::signed::sign(id, to, bound).map_err(anyhow::Error::msg)?,
        )],
        None => Vec::new(),
    })
}

/// A put through a node of `file`; `code` when not the tier's; `owner` signs the request and
/// the key is wrapped for it; `pay` pays for it, where the node charges (a node that does not
/// ignores the payment).
pub(crate) fn put_remote(
    client: &Client,
    mut file: std::fs::File,
    mut code: Option<CodeParams>,
    mut opts: PutOptions,
    owner: Option<&Identity>,
    pay: Option<Pay<'_>>,
) -> Result<PutReply> {
    // Named when signed or paid for, so that the signature covers the bytes: read once more
    // for it.
    let content_hash = match owner.is_some() || pay.is_some() {
        true => Some(hash_file(&mut file)?),
        false => None,
    };
    let payment = match (pay, content_hash) {
        (Some(p), Some(hash)) => {
            if code.is_none() {
                // The code is part of the price: ask the node which one its tier plugin gives
                // this put, and name it, so the put is the one quoted.
                let size = file.metadata()?.len();
                let placed: zhtp::network::Placement =
                    client.get(&format!("/placement?size={size}&tier={}", opts.tier))?;
                // The node's word, checked: the tier asked for, a code that can be stored.
                if placed.tier != opts.tier {
                    bail!(
                        "the node places this {} put in {}: refused (a put keeps its tier)",
                        opts.tier,
                        placed.tier
                    );
                }
                placed
                    .code()
                    .validate()
                    .context("the node's placement is not a usable code")?;
                opts.code = placed.code();
                code = Some(opts.code);
            }
            let max = match p.max_price {
                Some(m) => m,
                None => {
                    let size = file.metadata()?.len();
                    let mut q = zhtp::wire::put_quote(size, p.days, opts.tier, opts.code);
                    // The node prices a put at the utilisation it measures: ask for it.
                    let status: zhtp::wire::NodeStatus = client.get("/status")?;
                    q.utilization_bp = status.utilization_bp;
                    client.post::<zhtp::wire::Priced>("/quote", &q)?.total
                }
            };
            let period = zhtp::wire::PERIOD_SECS;
            let mut payment = zhtp::wire::PaymentRequest::sign(p.payer, hash, max, p.days, period)
                .map_err(anyhow::Error::msg)?;
            payment.proof_audits = p.proofs;
            Some(payment)
        }
        _ => None,
    };
    let req = PutRequest {
        tier: Some(opts.tier),
        encryption: Some(opts.encryption),
        code,
        name: opts.metadata.name,
        mime: opts.metadata.mime,
        tags: opts.metadata.tags,
        description: opts.metadata.description,
        readers: owner
            .map(|o| ::hex::encode(o.public_record()))
            .into_iter()
            .collect(),
        content_hash,
        payment,
    };
    let options = serde_json::to_string(&req)?;
    // The signature covers the options, readers included: a node cannot reuse it for a put
    // with other options.
    let mut headers = signed_header(client, owner, ("POST", "/content"), options.as_bytes())?;
    headers.push(("zhtp-put", options));
    client.post_file("/content", &headers, file)
}

pub(crate) fn get_remote(
    client: &Client,
    hash: Hash,
    key: Option<Hash>,
    reader: Option<&Identity>,
    output: &Path,
) -> Result<()> {
    if output == Path::new("-") {
        return get_remote_into(client, hash, key, reader, &mut std::io::stdout().lock());
    }
    write_atomically(output, None, |w| {
        get_remote_into(client, hash, key, reader, w)
    })
}

/// Writes content `hash` from the node into `w`, checked against its hash as it arrives (the
/// node is not trusted blindly); `reader` signs the request.
pub(crate) fn get_remote_into(
    client: &Client,
    hash: Hash,
    key: Option<Hash>,
    reader: Option<&Identity>,
    w: &mut dyn std::io::Write,
) -> Result<()> {
    let path = format!("/content/{hash}");
    // The key travels in a header: URLs end up in logs.
    let mut headers = signed_header(client, reader, ("GET", &path), b"")?;
    headers.extend(key.map(|k| (zhtp::api::KEY_HEADER, k.to_hex())));
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
    hash: Hash,
    identity: Option<String>,
    pf: &crate::identity::PassphraseFile,
    output: &Path,
) -> Result<()> {
    let why = format!("content {hash} is encrypted: it is read as one of its readers");
    if let Some(url) = remote {
        let client = Client::new(url)?;
        let m: ManifestInfo = client.get(&format!("/content/{hash}/manifest"))?;
        let (key, me) = match m.encryption {
            EncryptionLevel::None => (None, None),
            _ => {
                let name = crate::identity::choose(dir, identity, &why)?;
                let me = crate::identity::open(dir, &name, pf)?;
                (
                    Some(Hash(readers::unwrap_info(&m, &hash, &me)?.0)),
                    Some(me),
                )
            }
        };
        return get_remote(&client, hash, key, me.as_ref(), output);
    }
    let node = open(dir)?;
    let manifest = node
        .manifest(&hash)?
        .with_context(|| format!("no content {hash} on this node"))?;
    let given = match manifest.encryption.level {
        EncryptionLevel::None => None,
        _ => {
            let name = crate::identity::choose(dir, identity, &why)?;
            Some(readers::unwrap(
                &manifest,
                &crate::identity::open(dir, &name, pf)?,
            )?)
        }
    };
    let bar = progress(Some(manifest.size));
    let on_progress = |done: u64| {
        if let Some(b) = &bar {
            b.set_position(done);
        }
    };
    let report = if output == Path::new("-") {
        let mut out = std::io::stdout().lock();
        node.get_with_key(&hash, given, &mut out, &on_progress)?
    } else {
        write_atomically(output, Some(manifest.size), |w| {
            node.get_with_key(&hash, given.clone(), w, &on_progress)
        })?
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

fn rm(
    dir: &Path,
    remote: Option<&str>,
    hash: Hash,
    json: bool,
    owner: Option<&Identity>,
) -> Result<()> {
    let (shards, bytes, withdrawn) = match remote {
        Some(url) => {
            let path = format!("/content/{hash}");
            let client = Client::new(url)?;
            let headers = signed_header(&client, owner, ("DELETE", &path), b"")?;
            let r: zhtp::network::RemoveReport = client.delete(&path, &headers)?;
            if json {
                println!("{}", serde_json::to_string(&r)?);
                return Ok(());
            }
            (r.shards_deleted, r.bytes_deleted, Some(r.withdrawn))
        }
        None => {
            let r = open(dir)?.remove(&hash).map_err(|e| match e {
                zhtp::local::Error::NotFound(_) => anyhow::anyhow!(
                    "no content {hash} was put through this data dir (content put through a \
                     running node is removed with --node)"
                ),
                e => e.into(),
            })?;
            if json {
                println!("{}", serde_json::to_string(&r)?);
                return Ok(());
            }
            (r.shards, r.bytes, None)
        }
    };
    eprintln!(
        "removed {hash}: {shards} shard(s), {} deleted here{}",
        human_bytes(bytes),
        match withdrawn {
            Some(true) => "; manifest withdrawn from the network",
            Some(false) => "; the withdrawal has not reached another node yet (it is retried)",
            None => "",
        }
    );
    Ok(())
}

fn print_list(items: &[Listed], json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(items)?);
        return Ok(());
    }
    if items.is_empty() {
        eprintln!("nothing was put through this node yet");
        return Ok(());
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
            s.name.as_deref().unwrap_or("-"),
            s.tags.join(",")
        );
    }
    Ok(())
}

fn info(
    dir: &Path,
    remote: Option<&str>,
    hash: Hash,
    json: bool,
    identity: Option<(&str, &crate::identity::PassphraseFile)>,
) -> Result<()> {
    // The churn the durability figure assumes: the node's, through one; else the reference.
    let mut churn = zhtp_economy::durability::Churn::REFERENCE;
    let mut nodes_churn = false;
    let mut m: ManifestInfo = match remote {
        Some(url) => {
            let client = Client::new(url)?;
            // Only for the text, and not worth failing for: the reference stands in.
            let status = match json {
                true => None,
                false => client.get::<zhtp::wire::NodeStatus>("/status").ok(),
            };
            if let Some(c) = status.and_then(|s| s.churn) {
                nodes_churn = true;
                churn = zhtp_economy::durability::Churn {
                    node_lifetime_days: c.lifetime_secs as f64 / 86_400.0,
                    repair_hours: c.repair_secs as f64 / 3_600.0,
                };
            }
            client.get(&format!("/content/{hash}/manifest"))?
        }
        None => ManifestInfo::from(
            &open(dir)?
                .manifest(&hash)?
                .with_context(|| format!("no content {hash} on this node"))?,
        ),
    };
    if let Some((name, pf)) = identity
        && !m.private.is_empty()
    {
        // Not a reader (an identity from $ZHTP_IDENTITY, say): the public manifest still shows.
        match readers::unwrap_info(&m, &hash, &crate::identity::open(dir, name, pf)?) {
            Ok(key) => {
                let private =
                    ::hex::decode(&m.private).context("the node sent metadata that is not hex")?;
                let md = zhtp_content::open_private(&hash, &private, &key)?;
                m.metadata = zhtp::wire::MetadataInfo {
                    name: md.name,
                    mime: md.mime,
                    tags: md.tags,
                    description: md.description,
                    created: m.metadata.created,
                };
            }
            Err(e) => eprintln!("the private name, type, tags and description stay hidden: {e}"),
        }
    } else if !m.private.is_empty() && !json {
        eprintln!("name, type, tags and description are private: add --identity NAME (a reader)");
    }
    if json {
        println!("{}", serde_json::to_string(&m)?);
        return Ok(());
    }
    let md = &m.metadata;
    let text = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let segments = m.segments.len();
    let compressed = m.segments.iter().filter(|s| s.compressed).count();
    println!("content   {}", m.content_hash);
    println!("name      {}", text(&md.name));
    println!("mime      {}", text(&md.mime));
    println!("tags      {}", md.tags.join(", "));
    println!("about     {}", text(&md.description));
    println!("size      {} ({} B)", human_bytes(m.size), m.size);
    println!("stored    {} across shards", human_bytes(m.stored));
    println!("tier      {}", m.tier);
    println!(
        "code      {} {}+{}, {segments} segment(s) of up to {}",
        m.code.kind,
        m.code.data,
        m.code.parity,
        human_bytes(m.segment_size.into())
    );
    println!("encrypted {}", m.encryption);
    for (i, r) in m.readers.iter().enumerate() {
        let id = r.get(..64).unwrap_or(r);
        println!("{}    {id}", if i == 0 { "owner " } else { "reader" });
    }
    println!("lz4       {compressed} of {segments} segment(s) compressed");
    let (k, p) = (u32::from(m.code.data), u32::from(m.code.parity));
    println!(
        "durable   {:.1} nines per segment per year; {} of losing any of its {segments} segment(s) \
         (model: {:.0}-day node lifetimes, {:.2} h repair{})",
        zhtp_economy::durability::nines(k, p, churn),
        percent(zhtp_economy::durability::content_loss_per_year(
            k,
            p,
            segments as u64,
            churn
        )),
        churn.node_lifetime_days,
        churn.repair_hours,
        if nodes_churn {
            ", the node's"
        } else {
            ", the reference; --node shows a node's"
        }
    );
    Ok(())
}

/// A probability as a percentage a person reads: `2.7%`, `3.1e-7%`.
fn percent(p: f64) -> String {
    let pct = p * 100.0;
    if pct >= 0.1 {
        format!("{pct:.1}%")
    } else {
        format!("{pct:.1e}%")
    }
}

fn list(dir: &Path, remote: Option<&str>, tag: Option<&str>) -> Result<Vec<Listed>> {
    match remote {
        Some(url) => {
            let path = match tag {
                Some(t) => format!("/content?tag={}", urlencode(t)),
                None => "/content".into(),
            };
            Client::new(url)?.get(&path)
        }
        None => Ok(open(dir)?.list(tag)?.iter().map(Listed::from).collect()),
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
        FilesCommand::Get {
            hash,
            output,
            identity,
            passphrase,
        } => get(dir, remote, hash, identity, &passphrase, &output),
        FilesCommand::Rm {
            hash,
            json,
            identity,
            passphrase,
        } => {
            let owner = match remote {
                Some(url) => {
                    // Owned content (every encrypted one) goes only at its owner's word.
                    let m: ManifestInfo =
                        Client::new(url)?.get(&format!("/content/{hash}/manifest"))?;
                    match (identity, m.readers.is_empty()) {
                        (None, true) => None,
                        (given, _) => {
                            let why = format!("content {hash} is owned: its owner removes it");
                            let name = crate::identity::choose(dir, given, &why)?;
                            Some(crate::identity::open(dir, &name, &passphrase)?)
                        }
                    }
                }
                None => None,
            };
            rm(dir, remote, hash, json, owner.as_ref())
        }
        FilesCommand::Ls { tag, json } => print_list(&list(dir, remote, tag.as_deref())?, json),
        FilesCommand::Search { text, json } => {
            if text.trim().is_empty() {
                bail!("search needs some text");
            }
            let items: Vec<Listed> = match remote {
                Some(url) => Client::new(url)?.get(&format!("/search?q={}", urlencode(&text)))?,
                None => open(dir)?.search(&text)?.iter().map(Listed::from).collect(),
            };
            print_list(&items, json)
        }
        FilesCommand::Info {
            hash,
            json,
            identity,
            passphrase,
        } => {
            let identity = identity.as_deref().map(|n| (n, &passphrase));
            info(dir, remote, hash, json, identity)
        }
    }
}
