//! `zhtp node run`, `zhtp devnet` and `zhtp demo`.

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use zhtp::api::{ApiState, router};
use zhtp::network::{GcReport, Node, RemoveReport, RepairConfig, RepairReport};
use zhtp::wire::{HolderMap, Installed, NodeStatus, PutReply, PutRequest, Ready};
use zhtp_dht::Multiaddr;
use zhtp_host::abi::pricing::{QuoteRequest, Urgency};
use zhtp_types::StorageTier;

use crate::client::Client;
use crate::plugins;
use crate::quote::human_bytes;

/// Options of `zhtp node run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Address to listen on for peers; repeat for more. Default: QUIC and TCP on all
    /// interfaces, ephemeral ports (`/ip4/0.0.0.0/udp/0/quic-v1`, `/ip4/0.0.0.0/tcp/0`).
    #[arg(long, value_name = "MULTIADDR")]
    pub listen: Vec<Multiaddr>,
    /// A peer to join through, e.g. `/ip4/10.0.0.5/udp/4001/quic-v1/p2p/12D3Koo...`; repeat.
    #[arg(long, value_name = "MULTIADDR")]
    pub bootstrap: Vec<Multiaddr>,
    /// Where the admin API listens (what `--node` points at). Port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub api: SocketAddr,
    /// Seconds between maintenance rounds: repair, then garbage collection (0: only on
    /// request, `POST /repair` and `POST /gc`).
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    pub repair_interval: u64,
    /// Seconds a held shard may go unreferenced by any published manifest before garbage
    /// collection deletes it. Must be longer than any put takes (a put places its shards
    /// before it publishes the manifest).
    #[arg(long, default_value_t = 3600, value_name = "SECONDS")]
    pub gc_grace: u64,
    /// Seconds between pack compactions of the running node (0: only when it starts).
    #[arg(long, default_value_t = 3600, value_name = "SECONDS")]
    pub compact_interval: u64,
    /// Seconds between audit rounds of the storage contracts whose escrow this node holds,
    /// each followed by the repair of what banned providers held and the settlement of the
    /// periods that ended (0: never; `POST /audit` and `/settle` still run them).
    #[arg(long, default_value_t = 600, value_name = "SECONDS")]
    pub audit_interval: u64,
    /// Commit to every shard of this node's paid puts (a Poseidon Merkle tree, about 0.25 s
    /// per MiB of shard on two cores) and audit them by asking holders for Groth16 proofs of
    /// storage instead of BLAKE3 digests (README "Storage proofs"). The keys are made by the
    /// devnet setup into `DIR/keys` on first use, checked against the pinned hash.
    #[arg(long)]
    pub proof_audits: bool,
    /// This node's ledger is a devnet's: at its first start the faucet gets the whole supply
    /// (1,000,000,000 ZHTP) and `zhtp account fund` pays from it. A node started once without
    /// it never mints: it refuses to start with it later.
    #[arg(long)]
    pub devnet: bool,
    /// A quality plugin (.wasm) to judge each provider's settled periods instead of the
    /// built-in `quality-sla`: validated and self-checked at start (host/SPEC.md section
    /// 12; try it first with `zhtp plugin check --kind quality FILE`).
    #[arg(long, value_name = "FILE")]
    pub quality_plugin: Option<PathBuf>,
    /// A tier plugin (.wasm) to choose the tier and erasure code of puts that name no code,
    /// instead of the built-in `tier-policy`: validated and self-checked at start
    /// (host/SPEC.md section 13; try it first with `zhtp plugin check --kind tier FILE`).
    #[arg(long, value_name = "FILE")]
    pub tier_plugin: Option<PathBuf>,
    /// Bytes this node offers for shards, advertised in its market record (units accepted:
    /// `500GiB`). Default: what the data dir's disk has free, plus what it holds.
    #[arg(long, value_name = "SIZE", value_parser = crate::quote::parse_size)]
    pub capacity: Option<u64>,
    /// This node's price factor in its market record, % of the network's standard price,
    /// 50 to 200 (paying puts prefer cheaper nodes of a reputation band among those closest
    /// to a shard).
    #[arg(long, default_value_t = 100, value_name = "PERCENT",
          value_parser = clap::value_parser!(u32).range(50..=200))]
    pub price_percent: u32,
}

/// The supply of a devnet's ledger, all in its faucet at genesis: 10^9 ZHTP.
pub const DEVNET_SUPPLY: u64 = 1_000_000_000 * zhtp_types::MICRO_PER_TOKEN;

/// One audit round, the repair of what it banned, and the settlement of ended periods.
async fn economy_round(n: &Node) {
    // Who is here: the churn the tier plugin and the durability figures are fed with.
    if let Err(e) = n.observe_peers().await {
        tracing::warn!("peers not observed: {e}");
    }
    // The market first: what this node offers and what its audits found, for other nodes.
    if let Err(e) = n.publish_market().await {
        tracing::warn!("market records not published: {e}");
    }
    let now = zhtp_dht::record::unix_now();
    match n.audit_round(now).await {
        Ok(r) if r.audits > 0 => tracing::info!(?r, "audit round"),
        Ok(_) => {}
        Err(e) => tracing::warn!("audit round failed: {e}"),
    }
    match n.repair_banned().await {
        Ok(0) => {}
        Ok(rebuilt) => tracing::info!(rebuilt, "shards of banned providers rebuilt elsewhere"),
        Err(e) => tracing::warn!("repair of banned providers' shards failed: {e}"),
    }
    match n.settle(now).await {
        Ok(r) if r.periods > 0 => tracing::info!(?r, "storage contracts settled"),
        Ok(_) => {}
        Err(e) => tracing::warn!("settlement failed: {e}"),
    }
}

async fn shutdown_signal() {
    let term = async {
        #[cfg(unix)]
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
            return;
        }
        std::future::pending::<()>().await;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term => {},
    }
}

/// Runs a node until SIGINT or SIGTERM. Prints one JSON line on stdout when ready: peer id,
/// API URL, listen addresses (with `/p2p/<id>`, usable as `--bootstrap`).
pub fn run(dir: &Path, args: RunArgs) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    zhtp::private::create_dir(dir)
        .with_context(|| format!("cannot create the data dir {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        // A data dir made by an older zhtp (or by hand) keeps its mode: say so, do not chmod a
        // directory the operator chose.
        let mode = std::fs::metadata(dir)?.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(
                "data dir {} is open to other users (mode {:o}): they may read the node key \
                 and the API token; `chmod 700 {}`",
                dir.display(),
                mode & 0o777,
                dir.display()
            );
        }
    }
    let token = zhtp::api::auth::ensure_token(dir)
        .with_context(|| format!("cannot make the API token in {}", dir.display()))?;
    rt.block_on(async {
        let mut cfg = zhtp_dht::Config::default();
        if !args.listen.is_empty() {
            cfg.listen = args.listen.clone();
        }
        cfg.bootstrap = args.bootstrap.clone();
        let listeners = cfg.listen.len();
        let repair = RepairConfig {
            orphan_grace: Duration::from_secs(args.gc_grace),
            interval: (args.repair_interval > 0).then(|| Duration::from_secs(args.repair_interval)),
            ..RepairConfig::default()
        };
        // Plugins first: a node whose plugins do not load does not join the network.
        let registry = Arc::new(plugins::open_registry(dir)?);
        let quality = match &args.quality_plugin {
            Some(file) => Some(plugins::load_quality(registry.host(), file)?),
            None => None,
        };
        let tier = match &args.tier_plugin {
            Some(file) => Some(plugins::load_tier(registry.host(), file)?),
            None => None,
        };
        let node = Node::start(dir, cfg, repair)
            .await
            .with_context(|| format!("cannot start a node on {}", dir.display()))?;
        if let Some(quality) = quality {
            tracing::info!(plugin = %quality.plugin().info().name, "quality plugin");
            node.set_quality(quality);
        }
        if let Some(tier) = tier {
            tracing::info!(plugin = %tier.plugin().info().name, "tier plugin");
            node.set_tier(tier);
        }
        if args.proof_audits {
            tracing::warn!(
                "proof audits use the devnet's Groth16 keys, whose setup seed is public: anyone \
                 can forge proofs under them (README \"Storage proofs\")"
            );
            node.set_audit_config(zhtp::network::AuditConfig {
                proofs: true,
                ..node.audit_config()
            });
        }
        node.set_market(zhtp::network::MarketConfig {
            capacity: args.capacity,
            price_bp: args.price_percent * 100,
            ..Default::default()
        });
        let ledger = node.local().ledger();
        if args.devnet {
            let supply = ledger.genesis(zhtp_economy::Genesis::Devnet {
                supply: DEVNET_SUPPLY,
            })?;
            tracing::info!("devnet ledger: {} in all", zhtp_economy::tokens(supply));
            // A devnet's storage is paid for: puts need a funded identity, shards a contract.
            node.charge(true);
        } else if ledger.is_devnet()? {
            // A faucet stays: a devnet's data dir runs as one, said out loud.
            anyhow::bail!(
                "this data dir's ledger is a devnet's (it has a faucet): start it with --devnet"
            );
        } else {
            // Started once without --devnet: a network's ledger, which never gets a faucet.
            ledger.seal_network()?;
        }
        let listener = tokio::net::TcpListener::bind(args.api)
            .await
            .with_context(|| format!("cannot listen for the API on {}", args.api))?;
        let api = listener.local_addr()?;
        zhtp::api::auth::write_url(dir, &format!("http://{api}"))
            .with_context(|| format!("cannot note the API's URL in {}", dir.display()))?;
        let addrs = node.dht().dialable(listeners).await?;
        let me = node.peer_id();
        let ready = Ready {
            peer_id: me.to_string(),
            api: format!("http://{api}"),
            token_file: dir.join(zhtp::api::auth::TOKEN_FILE),
            listen: addrs.iter().map(|a| a.to_string()).collect(),
        };
        println!("{}", serde_json::to_string(&ready)?);
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
        tracing::info!("node {me} ready; API on http://{api}");
        // Dead bytes in packs (failed puts, removed, repaired and collected shards): given back
        // in the background while the node serves, at start and then every compact interval.
        // Packs this process wrote are sealed first, so they are compacted too.
        let n = node.clone();
        let compact_every = Duration::from_secs(args.compact_interval);
        tokio::spawn(async move {
            loop {
                let m = n.clone();
                let r = tokio::task::spawn_blocking(move || {
                    let store = m.local().store();
                    store.seal_packs(zhtp_store::SEAL_MIN);
                    store.compact_packs(zhtp_store::COMPACT_MAX_LIVE)
                })
                .await;
                match r {
                    Ok(Ok(r)) if r.packs_removed > 0 => tracing::info!(?r, "packs compacted"),
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::warn!("pack compaction failed: {e}"),
                    Err(e) => tracing::warn!("pack compaction stopped: {e}"),
                }
                if compact_every.is_zero() {
                    break;
                }
                tokio::time::sleep(compact_every).await;
            }
        });
        if args.audit_interval > 0 {
            let n = node.clone();
            let every = Duration::from_secs(args.audit_interval);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                loop {
                    tick.tick().await;
                    economy_round(&n).await;
                }
            });
        }
        if args.repair_interval > 0 {
            let n = node.clone();
            let every = Duration::from_secs(args.repair_interval);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    match n.repair().await {
                        Ok(r) if r.degraded > 0 => tracing::info!(?r, "repair round"),
                        Ok(_) => {}
                        Err(e) => tracing::warn!("repair round failed: {e}"),
                    }
                    match n.collect().await {
                        Ok(r) if r.released > 0 => tracing::info!(?r, "garbage collected"),
                        Ok(_) => {}
                        Err(e) => tracing::warn!("garbage collection failed: {e}"),
                    }
                    // Tiers: the tier plugin's review of what was put through this node, under
                    // the churn seen now.
                    if let Err(e) = n.observe_peers().await {
                        tracing::warn!("peers not observed: {e}");
                    }
                    match n.review().await {
                        Ok(r) if !r.migrated.is_empty() || r.failed > 0 => {
                            tracing::info!(?r, "tier review")
                        }
                        Ok(_) => {}
                        Err(e) => tracing::warn!("tier review failed: {e}"),
                    }
                }
            });
        }
        let state = ApiState {
            node: node.clone(),
            registry,
            spool: dir.join("spool"),
            replay: Default::default(),
        };
        let guard = zhtp::api::auth::Guard::new(&token, api);
        axum::serve(listener, router(state, guard))
            .with_graceful_shutdown(shutdown_signal())
            .await?;
        eprintln!("shutting down");
        node.shutdown().await;
        Ok(())
    })
}

/// One node process of a devnet.
pub struct DevNode {
    child: Child,
    pub peer_id: String,
    pub api: String,
    pub listen: Vec<String>,
    pub dir: PathBuf,
}

impl DevNode {
    pub fn client(&self) -> Result<Client> {
        Client::with_token(&self.api, zhtp::api::auth::read_token(&self.dir)?)
    }

    /// SIGKILL: the node gets no chance to say goodbye.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn terminate(&mut self) {
        #[cfg(unix)]
        {
            if let Ok(Some(_)) = self.child.try_wait() {
                return; // Already gone (the demo kills some on purpose).
            }
            // SIGTERM for a graceful stop; the child's own handler closes the store.
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(self.child.id().to_string())
                .stderr(std::process::Stdio::null())
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.kill();
    }
}

/// N node processes on 127.0.0.1; stopped when dropped.
pub struct Devnet {
    pub nodes: Vec<DevNode>,
    base: PathBuf,
    remove: bool,
}

impl Drop for Devnet {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            n.terminate();
        }
        if self.remove {
            let _ = std::fs::remove_dir_all(&self.base);
        }
    }
}

fn spawn_node(dir: &Path, bootstrap: &[String]) -> Result<DevNode> {
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    cmd.arg("--data-dir")
        .arg(dir)
        .args([
            "node",
            "run",
            "--api",
            "127.0.0.1:0",
            "--repair-interval",
            "0",
            // Collection runs only on request here (`POST /gc`), never during a put.
            "--gc-grace",
            "0",
            // Each node's ledger has a faucet: accounts are funded for puts.
            "--devnet",
        ])
        .args([
            "--listen",
            "/ip4/127.0.0.1/udp/0/quic-v1",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
        ]);
    for b in bootstrap {
        cmd.args(["--bootstrap", b]);
    }
    std::fs::create_dir_all(dir)?;
    let log = std::fs::File::create(dir.join("node.log"))?;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .env(
            "ZHTP_LOG",
            std::env::var("ZHTP_LOG").unwrap_or_else(|_| "info".into()),
        )
        .spawn()
        .context("cannot start a node process")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let ready: Ready = match serde_json::from_str(&line) {
        Ok(v) => v,
        Err(_) => {
            let _ = child.kill();
            let log = std::fs::read_to_string(dir.join("node.log")).unwrap_or_default();
            bail!("node in {} did not start:\n{log}", dir.display());
        }
    };
    Ok(DevNode {
        peer_id: ready.peer_id,
        api: ready.api,
        listen: ready.listen,
        child,
        dir: dir.to_owned(),
    })
}

impl Devnet {
    /// Starts `n` nodes under `base` (node-0, node-1, ...), each bootstrapping from node 0,
    /// and waits until every node sees all the others.
    pub fn start(n: usize, base: &Path, remove: bool) -> Result<Self> {
        if n == 0 {
            bail!("a devnet needs at least one node");
        }
        let mut net = Devnet {
            nodes: Vec::new(),
            base: base.to_owned(),
            remove,
        };
        let first = spawn_node(&base.join("node-0"), &[])?;
        let boot = first.listen.clone();
        net.nodes.push(first);
        for i in 1..n {
            net.nodes
                .push(spawn_node(&base.join(format!("node-{i}")), &boot)?);
        }
        // Every node should reach every other (on loopback this takes well under a second).
        let deadline = Instant::now() + Duration::from_secs(20);
        for node in &net.nodes {
            let c = node.client()?;
            loop {
                let peers = c.get::<NodeStatus>("/status")?.peers;
                if peers >= n - 1 {
                    break;
                }
                if Instant::now() > deadline {
                    bail!("node {} sees only {peers} of {} peers", node.peer_id, n - 1);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(net)
    }
}

/// `zhtp devnet`: start, print, wait for Ctrl-C.
pub fn devnet(n: usize, base: Option<PathBuf>) -> Result<()> {
    let (base, remove) = match base {
        Some(b) => (b, false),
        None => (
            std::env::temp_dir().join(format!("zhtp-devnet-{}", std::process::id())),
            true,
        ),
    };
    let net = Devnet::start(n, &base, remove)?;
    println!("{:<6} {:<28} {:<54} DATA DIR", "NODE", "API", "PEER ID");
    for (i, node) in net.nodes.iter().enumerate() {
        println!(
            "{i:<6} {:<28} {:<54} {}",
            node.api,
            node.peer_id,
            node.dir.display()
        );
    }
    println!("\nbootstrap: {}", net.nodes[0].listen.join(" "));
    println!(
        "try: zhtp --data-dir {} --node {} put FILE    (the data dir holds the API token; \
         Ctrl-C stops the devnet)",
        net.nodes[0].dir.display(),
        net.nodes[0].api
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(shutdown_signal());
    Ok(())
}

fn mixed_data(len: usize, seed: u64) -> Vec<u8> {
    // Half compressible text-like runs, half noise: what real uploads look like to LZ4.
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if (out.len() / (256 << 10)) % 2 == 0 {
            out.extend_from_slice(format!("line {} of the zhtp demo file\n", x % 1000).as_bytes());
        } else {
            out.extend_from_slice(&x.to_le_bytes());
        }
    }
    out.truncate(len);
    out
}

/// An audit round through `c`'s node, printed.
fn audit_step(t0: Instant, c: &Client, what: &str) -> Result<zhtp::network::AuditReport> {
    step(t0, what);
    let t = Instant::now();
    let r: zhtp::network::AuditReport = c.post("/audit", &())?;
    println!(
        "         {} audits in {:.1} ms: {} passed, {} failed{}",
        r.audits,
        t.elapsed().as_secs_f64() * 1e3,
        r.passed,
        r.failed.len(),
        r.failed
            .iter()
            .map(|(p, _, v)| format!(" ({} {v:?})", p.get(..8).unwrap_or(p)))
            .collect::<String>()
    );
    if !r.proofs.is_empty() {
        let passed = r.proofs.iter().filter(|p| p.2).count();
        let answer: Vec<u32> = r.proofs.iter().map(|p| p.0).collect();
        let verify: Vec<u32> = r.proofs.iter().filter(|p| p.1 > 0).map(|p| p.1).collect();
        println!(
            "         {} of them proof audits, {passed} passed: proofs answered in {}-{} ms (proving {} sampled blocks on the holder; a node's first proof also loads its keys), each verified in {}-{} µs; 128 bytes each",
            r.proofs.len(),
            answer.iter().min().unwrap_or(&0),
            answer.iter().max().unwrap_or(&0),
            zhtp::network::CIRCUIT.samples,
            verify.iter().min().unwrap_or(&0),
            verify.iter().max().unwrap_or(&0),
        );
    }
    Ok(r)
}

/// A second, small paid put through node 0, audited by Groth16 proofs of storage.
fn proof_put_step(
    t0: Instant,
    c0: &Client,
    owner: &zhtp_identity::Identity,
    record: &[u8],
    base: &Path,
    node_dirs: &[PathBuf],
) -> Result<zhtp_types::Hash> {
    // The keys once, for every node (each would otherwise run the same setup on first use).
    let t = Instant::now();
    let circuit = zhtp::network::CIRCUIT;
    let keys = zhtp_proofs::Keys::load_or_setup(&base.join("keys"), circuit, None)?;
    let file = zhtp_proofs::Keys::path(&base.join("keys"), circuit);
    for dir in node_dirs {
        std::fs::create_dir_all(dir.join("keys"))?;
        std::fs::copy(&file, zhtp_proofs::Keys::path(&dir.join("keys"), circuit))?;
    }
    step(
        t0,
        &format!(
            "Groth16 keys of circuit {} from the devnet setup in {:.2} s ({}), copied to every node; verifying key {} (pinned)",
            circuit.id(),
            t.elapsed().as_secs_f64(),
            human_bytes(std::fs::metadata(&file)?.len()),
            hex::encode(&keys.vk_hash()[..8])
        ),
    );
    step(
        t0,
        "storing a 2 MiB file through node 0 with proof audits: a Poseidon Merkle commitment to every shard goes into its storage contract",
    );
    let size = 2 << 20;
    let data = mixed_data(size, 0x9700f);
    let file = base.join("proved.bin");
    std::fs::write(&file, &data)?;
    let expected = zhtp_types::Hash(*blake3::hash(&data).as_bytes());
    let code = zhtp::local::PutOptions::new(StorageTier::Hot).code;
    let days = zhtp::wire::term_days(DEMO_PERIODS, DEMO_PERIOD_SECS).expect("a short term");
    let quote: zhtp::wire::Priced = c0.post(
        "/quote",
        &zhtp::wire::put_quote(size as u64, days, StorageTier::Hot, code),
    )?;
    let mut payment = zhtp::wire::PaymentRequest::sign(
        owner,
        expected,
        quote.total,
        DEMO_PERIODS,
        DEMO_PERIOD_SECS,
    )
    .map_err(anyhow::Error::msg)?;
    payment.proof_audits = true;
    let opts = PutRequest {
        tier: Some(StorageTier::Hot),
        name: Some("proved.bin".into()),
        readers: vec![hex::encode(record)],
        content_hash: Some(expected),
        payment: Some(payment),
        ..PutRequest::default()
    };
    let options = serde_json::to_string(&opts)?;
    let mut headers =
        crate::files::signed_header(c0, Some(owner), ("POST", "/content"), options.as_bytes())?;
    headers.push(("zhtp-put", options));
    let put: PutReply = c0.post_file("/content", &headers, std::fs::File::open(&file)?)?;
    let Some(contract) = &put.contract else {
        bail!("node 0 charges, yet the put came back without a storage contract");
    };
    if contract.committed != contract.shards {
        bail!(
            "{} of {} shards committed for proof audits",
            contract.committed,
            contract.shards
        );
    }
    println!(
        "         stored in {:.2} s; storage contract {}: all {} shards committed (4-ary Poseidon tree over 124-byte blocks)",
        put.seconds,
        contract.id.fmt_short(),
        contract.committed
    );
    Ok(expected)
}

fn step(t0: Instant, msg: &str) {
    println!("[{:>5.1} s] {msg}", t0.elapsed().as_secs_f64());
}

/// The last 8 characters of a peer id, for tables.
fn short(p: &str) -> &str {
    p.get(p.len().saturating_sub(8)..).unwrap_or(p)
}

/// The demo owner's passphrase (a demo has no one to ask).
const DEMO_PASSPHRASE: &[u8] = b"zhtp demo passphrase";
/// Settlement periods of the demo's storage contract, and their length: short, so that the demo
/// sees periods end and get settled.
const DEMO_PERIODS: u32 = 20;
const DEMO_PERIOD_SECS: u64 = 3;

/// The demo's smart contract: `counter` deployed through node 3, instantiated from node 4,
/// executed from node 5 and queried from node 0 (nodes 1 and 2 are down by then). Each call
/// runs on the contract's replicas, the live nodes closest to its address.
fn contract_step(t0: Instant, net: &Devnet) -> Result<()> {
    step(
        t0,
        "smart contract `counter`: deployed through node 3, instantiated from node 4, executed from node 5, queried from node 0",
    );
    let wasm = zhtp_artifacts::COUNTER;
    let t = Instant::now();
    let d: zhtp::wire::Deployed = net.nodes[3].client()?.post_bytes("/contracts", wasm)?;
    println!(
        "         code {} ({}) validated and published as a signed DHT record in {:.1} ms",
        &d.code[..16],
        human_bytes(wasm.len() as u64),
        t.elapsed().as_secs_f64() * 1e3
    );
    let call = |node: usize, path: &str, msg: &str| -> Result<(zhtp::wire::CallReply, f64)> {
        let t = Instant::now();
        let r: zhtp::wire::CallReply = net.nodes[node].client()?.post(
            path,
            &zhtp::wire::CallRequest {
                msg: serde_json::from_str(msg)?,
                gas: None,
                funds: 0,
            },
        )?;
        if let Some(e) = &r.error {
            bail!("{path} failed: {e}");
        }
        if r.agreeing * 2 <= r.replicas.len() || !r.mismatches.is_empty() {
            bail!("{path}: the replicas disagree: {:?}", r.mismatches);
        }
        Ok((r, t.elapsed().as_secs_f64() * 1e3))
    };
    let show = |what: &str, (r, ms): &(zhtp::wire::CallReply, f64)| {
        let peers: Vec<&str> = r.replicas.iter().map(|p| short(p)).collect();
        println!(
            "         {what}: {} at version {}, root {}…, {} gas; {} of {} replicas ({}) agree; {ms:.1} ms",
            r.output
                .as_ref()
                .map_or_else(|| "-".into(), |v| v.to_string()),
            r.sequence,
            &r.root[..12],
            r.gas_used,
            r.agreeing,
            r.replicas.len(),
            peers.join(", ")
        );
    };
    let made = call(4, &format!("/contracts/{}", d.code), r#"{"start":40}"#)?;
    println!("         address {}", made.0.address);
    show("instantiate from node 4", &made);
    let address = made.0.address.clone();
    let done = call(
        5,
        &format!("/contracts/{address}/execute"),
        r#"{"increment":{"by":2}}"#,
    )?;
    show("execute from node 5 ", &done);
    let asked = call(0, &format!("/contracts/{address}/query"), r#"{"count":{}}"#)?;
    show("query from node 0   ", &asked);
    if asked.0.output != Some(serde_json::json!({"count": 42})) {
        bail!("the counter reads {:?}, not 42", asked.0.output);
    }
    Ok(())
}

/// `zhtp demo`: what `make demo` shows.
pub fn demo() -> Result<()> {
    let t0 = Instant::now();
    let base = std::env::temp_dir().join(format!("zhtp-demo-{}", std::process::id()));
    std::fs::create_dir_all(&base)?;
    step(t0, "starting a 6-node devnet on 127.0.0.1 (QUIC + TCP)");
    // ZHTP_DEMO_KEEP=1 keeps the nodes' data dirs and logs for a look afterwards.
    let keep = std::env::var_os("ZHTP_DEMO_KEEP").is_some();
    let mut net = Devnet::start(6, &base, !keep)?;
    if keep {
        println!(
            "         data dirs and node.log files are kept in {}",
            base.display()
        );
    }
    for (i, n) in net.nodes.iter().enumerate() {
        println!("         node {i}: {} api {}", short(&n.peer_id), n.api);
    }
    let size = 32 << 20;
    let data = mixed_data(size, 0x5eed);
    let file = base.join("demo.bin");
    std::fs::write(&file, &data)?;
    let expected = zhtp_types::Hash(*blake3::hash(&data).as_bytes());
    // The owner: an identity in a keystore of its own, away from every node's data dir.
    step(
        t0,
        "creating the owner's identity (Ed25519, X25519, X-Wing) in its own keystore",
    );
    let keystore = zhtp::keystore::Keystore::new(&base.join("owner"));
    let owner = zhtp_identity::Identity::generate()?;
    let t = Instant::now();
    keystore.create(
        "owner",
        &owner,
        DEMO_PASSPHRASE,
        zhtp_identity::KdfParams::DEFAULT,
    )?;
    let (record, _) = keystore.public_record("owner")?;
    println!(
        "         id {}, sealed under a passphrase (Argon2id 64 MiB) in {:.2} s",
        short(&owner.public().id()),
        t.elapsed().as_secs_f64()
    );
    // The owner's account on node 0's ledger (a devnet's: it has a faucet), which the put
    // pays from: node 0 holds the escrow of the storage contract.
    step(
        t0,
        "funding the owner's account from node 0's devnet faucet",
    );
    let c = net.nodes[0].client()?;
    let path = format!("/accounts/{}", owner.public().id());
    let t = Instant::now();
    let paid: zhtp::wire::TransferInfo = c.post(
        &format!("{path}/fund"),
        &zhtp::wire::FundRequest {
            amount: 1_000 * zhtp_types::MICRO_PER_TOKEN,
            id: None,
        },
    )?;
    let account: zhtp::wire::AccountInfo = c.get(&path)?;
    println!(
        "         paid {} (transfer #{}, one synced batch, {:.1} ms); balance {} of a supply of {}",
        zhtp_economy::tokens(paid.amount),
        paid.seq,
        t.elapsed().as_secs_f64() * 1e3,
        zhtp_economy::tokens(account.balance),
        zhtp_economy::tokens(account.supply)
    );
    step(
        t0,
        &format!(
            "storing a 32 MiB ({}) file through node 0: hot tier, 4+2, quantum encryption",
            human_bytes(size as u64)
        ),
    );
    let c0 = net.nodes[0].client()?;
    let t = Instant::now();
    let quote: zhtp::wire::Priced = c0.post(
        "/quote",
        &zhtp::wire::put_quote(
            size as u64,
            zhtp::wire::term_days(DEMO_PERIODS, DEMO_PERIOD_SECS).expect("a short term"),
            StorageTier::Hot,
            zhtp::local::PutOptions::new(StorageTier::Hot).code,
        ),
    )?;
    println!(
        "         quote from node 0's pricing plugin {} ({}): {} for {DEMO_PERIODS} periods of {DEMO_PERIOD_SECS} s, priced as a day ({:.1} ms)",
        quote.plugin,
        quote.plugin_hash.fmt_short(),
        zhtp_economy::tokens(quote.total),
        t.elapsed().as_secs_f64() * 1e3
    );
    // What the tier plugin would choose, had the put named no code: on six nodes, and under
    // node 0's churn (its repair interval is the demo's).
    let placed: zhtp::network::Placement = c0.get(&format!("/placement?size={size}&tier=warm"))?;
    let hot = zhtp::local::PutOptions::new(StorageTier::Hot).code;
    println!(
        "         tier plugin {}: a warm put of this size naming no code gets {}+{} on these {} nodes, {:.1} nines per segment per year (the demo's hot 4+2: {:.1}), under {:.0}-day node lives and {:.2} h repair (this devnet repairs on request)",
        placed.chosen_by,
        placed.data,
        placed.parity,
        placed.nodes,
        placed.nines,
        -placed.churn.loss_per_year(hot).log10(),
        placed.churn.lifetime_secs as f64 / 86_400.0,
        placed.churn.repair_secs as f64 / 3_600.0
    );
    let payment = zhtp::wire::PaymentRequest::sign(
        &owner,
        expected,
        quote.total,
        DEMO_PERIODS,
        DEMO_PERIOD_SECS,
    )
    .map_err(anyhow::Error::msg)?;
    let opts = PutRequest {
        tier: Some(StorageTier::Hot),
        encryption: Some(zhtp_content::EncryptionLevel::QuantumResistant),
        name: Some("demo.bin".into()),
        tags: vec!["demo".into()],
        readers: vec![hex::encode(&record)],
        content_hash: Some(expected),
        payment: Some(payment),
        ..PutRequest::default()
    };
    // A put for an owner is signed by it (the node checks, and remembers the nonce).
    let options = serde_json::to_string(&opts)?;
    let mut headers =
        crate::files::signed_header(&c0, Some(&owner), ("POST", "/content"), options.as_bytes())?;
    headers.push(("zhtp-put", options));
    let put: PutReply = c0.post_file("/content", &headers, std::fs::File::open(&file)?)?;
    let hash = put.content_hash;
    if hash != expected {
        bail!("node 0 reports content hash {hash}, expected {expected}");
    }
    println!(
        "         content {hash}\n         {} segments, {} stored, in {:.2} s; manifest published as a signed DHT record: {}",
        put.segments,
        human_bytes(put.stored),
        put.seconds,
        put.published.unwrap_or(false)
    );
    if let Some(seg0) = put.placement.first() {
        let names: Vec<&str> = seg0.iter().map(|p| short(p)).collect();
        println!(
            "         segment 0's 6 shards went to: {}",
            names.join(", ")
        );
    }
    let Some(contract) = &put.contract else {
        bail!("node 0 charges, yet the put came back without a storage contract");
    };
    let escrowed = contract.escrow.as_ref().map_or(0, |e| e.funded);
    println!(
        "         storage contract {} ({:?}): {} shards on {} providers, signed by {} of {} parties; {} in escrow on node 0, {} periods of {DEMO_PERIOD_SECS} s",
        contract.id.fmt_short(),
        contract.state,
        contract.shards,
        contract.providers.len(),
        contract.signatures.0,
        contract.signatures.1,
        zhtp_economy::tokens(escrowed),
        contract.periods
    );
    let account: zhtp::wire::AccountInfo = c0.get(&format!("/accounts/{}", owner.public().id()))?;
    println!(
        "         the owner's balance is now {}",
        zhtp_economy::tokens(account.balance)
    );
    let (contract_id, contract_start) = (contract.id, contract.start);
    let dirs: Vec<PathBuf> = net.nodes.iter().map(|n| n.dir.clone()).collect();
    let proved = proof_put_step(t0, &c0, &owner, &record, &base, &dirs)?;
    audit_step(
        t0,
        &c0,
        "audit round from node 0: each provider answers a fresh challenge (a BLAKE3 digest; for the 2 MiB file a Groth16 proof)",
    )?;
    // Stop two nodes that hold shards, neither the one we put through nor the one we read from.
    step(
        t0,
        "killing nodes 1 and 2 (SIGKILL); both hold shards of every segment",
    );
    net.nodes[1].kill();
    net.nodes[2].kill();
    let c5 = net.nodes[5].client()?;
    step(
        t0,
        "getting the file through node 5, which never saw the upload",
    );
    let t = Instant::now();
    // The owner opens its keystore and unwraps the content key from the manifest node 5
    // fetched from the DHT; node 5 gets the key for this one read and keeps nothing.
    let owner = keystore.open("owner", DEMO_PASSPHRASE)?;
    let m: zhtp::wire::ManifestInfo = c5.get(&format!("/content/{hash}/manifest"))?;
    let key = zhtp::readers::unwrap_info(&m, &hash, &owner)?;
    let key = zhtp_types::Hash(key.0);
    println!(
        "         the owner opened its keystore and unwrapped the key (X-Wing) in {:.2} s; the public manifest names no file: {:?}",
        t.elapsed().as_secs_f64(),
        m.metadata.name
    );
    let t = Instant::now();
    let out = base.join("demo.out");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&out)?);
    let path = format!("/content/{hash}");
    let mut headers = crate::files::signed_header(&c5, Some(&owner), ("GET", &path), b"")?;
    headers.push((zhtp::api::KEY_HEADER, key.to_hex()));
    c5.download(&path, &headers, &mut f)?;
    use std::io::Write as _;
    f.flush()?;
    drop(f);
    let took = t.elapsed();
    let back = std::fs::read(&out)?;
    if back != data {
        bail!("the file came back different ({} bytes)", back.len());
    }
    println!(
        "         byte-identical: {} in {:.2} s ({:.0} MB/s) with 2 of 6 nodes down",
        human_bytes(back.len() as u64),
        took.as_secs_f64(),
        back.len() as f64 / took.as_secs_f64() / 1e6
    );
    let holders = |c: &Client| c.get::<HolderMap>(&format!("/content/{hash}/holders"));
    let h = holders(&c5)?;
    let (min, of) = h.weakest();
    step(
        t0,
        &format!(
            "redundancy now: at least {min} of {of} shards live in each of {} segments",
            h.segments.len()
        ),
    );
    step(
        t0,
        "repair round on the live nodes (each segment's leader rebuilds and re-places)",
    );
    let live = [0, 3, 4, 5];
    let mut rebuilt = 0;
    for i in live {
        let r: RepairReport = net.nodes[i].client()?.post("/repair", &())?;
        rebuilt += r.rebuilt;
        println!("         node {i}: {}", serde_json::to_string(&r)?);
    }
    let (min, of) = holders(&c5)?.weakest();
    println!(
        "         {rebuilt} shards rebuilt; redundancy restored: at least {min} of {of} live in every segment"
    );
    if min < of {
        bail!("repair did not restore full redundancy ({min} of {of})");
    }
    let audited = audit_step(
        t0,
        &c0,
        "audit round from node 0 with nodes 1 and 2 down: they cannot answer",
    )?;
    // Wait for the period of that round to end, then settle what ended.
    let now = zhtp_dht::record::unix_now();
    let period_end = contract_start
        + ((now.saturating_sub(contract_start)) / DEMO_PERIOD_SECS + 1) * DEMO_PERIOD_SECS;
    std::thread::sleep(Duration::from_secs(period_end.saturating_sub(now)));
    step(t0, "settlement on node 0 of the periods that ended");
    let s: zhtp::network::SettleReport = c0.post("/settle", &())?;
    let shown: zhtp::wire::ContractInfo = c0.get(&format!("/storage-contracts/{contract_id}"))?;
    let Some(e) = shown.escrow else {
        bail!("node 0 shows no escrow for its storage contract");
    };
    println!(
        "         {} periods settled, judged by the quality-sla plugin: {} paid to providers, {} bonuses from the incentive pool, {} back to the owner (penalties: {} unavailable audits at 10% of the holder's share)",
        s.periods,
        zhtp_economy::tokens(s.released),
        zhtp_economy::tokens(s.bonuses),
        zhtp_economy::tokens(s.refunded),
        audited.failed.len()
    );
    if s.unjudged > 0 {
        bail!(
            "the quality plugin failed to judge {} provider-periods",
            s.unjudged
        );
    }
    let st: zhtp::stats::Stats = c0.get("/stats")?;
    println!(
        "         zhtp stats on node 0: incentive pool {}, {} in open escrows, audits {} passed / {} failed, providers {:?}",
        zhtp_economy::tokens(st.economy.incentive_pool),
        zhtp_economy::tokens(st.economy.escrowed),
        st.economy.audits_passed,
        st.economy.audits_failed.values().sum::<usize>(),
        st.economy.reputation
    );
    println!(
        "         escrow: {} funded, {} released (to providers, and the network fee to the incentive pool), {} refunded, {} left for {} more periods",
        zhtp_economy::tokens(e.funded),
        zhtp_economy::tokens(e.released),
        zhtp_economy::tokens(e.refunded),
        zhtp_economy::tokens(e.remaining().unwrap_or(0)),
        shown.periods - shown.periods_settled
    );
    step(t0, "swapping the pricing plugin on live node 3");
    let c3 = net.nodes[3].client()?;
    let req = QuoteRequest {
        size_bytes: 1_000_000_000,
        duration_days: 30,
        tier: StorageTier::Warm,
        quality: false,
        replication: 3,
        urgency: Urgency::Normal,
        utilization_bp: 8000,
    };
    let before: zhtp::wire::Priced = c3.post("/quote", &req)?;
    let surge = zhtp_artifacts::get("pricing-surge").context("surge plugin not embedded")?;
    let installed: Installed = c3.post_bytes("/plugins/pricing", surge)?;
    let after: zhtp::wire::Priced = c3.post("/quote", &req)?;
    println!(
        "         1 GB for 30 days at 80% utilisation: {} ZHTP by {} -> {} ZHTP by {}",
        crate::quote::tokens(before.total),
        before.plugin,
        crate::quote::tokens(after.total),
        installed.name,
    );
    contract_step(t0, &net)?;
    step(t0, "per-node summary");
    println!(
        "         {:<5} {:<10} {:>5} {:>7} {:>10}",
        "node", "peer", "peers", "shards", "bytes"
    );
    for (i, n) in net.nodes.iter().enumerate() {
        if !live.contains(&i) {
            println!("         {i:<5} {:<10} (killed)", short(&n.peer_id));
            continue;
        }
        let s: NodeStatus = n.client()?.get("/status")?;
        println!(
            "         {i:<5} {:<10} {:>5} {:>7} {:>10}",
            short(&n.peer_id),
            s.peers,
            s.shards,
            human_bytes(s.shard_bytes)
        );
    }
    step(
        t0,
        "removing both files through node 0: their manifest records become tombstones",
    );
    for content in [hash, proved] {
        let path = format!("/content/{content}");
        let headers = crate::files::signed_header(&c0, Some(&owner), ("DELETE", &path), b"")?;
        let removed: RemoveReport = c0.delete(&path, &headers)?;
        println!(
            "         {}: node 0 deleted {} shard(s) ({}); tombstone replicated: {}",
            content.fmt_short(),
            removed.shards_deleted,
            human_bytes(removed.bytes_deleted),
            removed.withdrawn
        );
    }
    step(
        t0,
        "garbage collection on the other live nodes (grace period 0 on this devnet)",
    );
    let mut left = 0;
    for i in live.into_iter().filter(|i| *i != 0) {
        let c = net.nodes[i].client()?;
        let r: GcReport = c.post("/gc", &())?;
        let s: NodeStatus = c.get("/status")?;
        left += s.shards;
        println!(
            "         node {i}: {} shard(s) released, {} freed; {} left",
            r.released,
            human_bytes(r.bytes_deleted),
            s.shards
        );
    }
    if left > 0 {
        bail!("{left} shard(s) of the removed files are still held");
    }
    drop(net);
    step(t0, "done; devnet stopped and cleaned up");
    Ok(())
}
