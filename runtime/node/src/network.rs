//! A node on the network: content spread over many nodes, found through the DHT, repaired
//! when nodes disappear.
//!
//! **Put** encodes segment by segment (the same pipeline as [`crate::local`]) and sends each
//! shard of a segment to a *different* node among the live nodes closest (XOR) to the shard's
//! hash; a node that refuses or fails is replaced by the next closest. The manifest is kept
//! locally (with the content key) and published as a signed DHT record. Every node that takes
//! a shard announces itself as a provider of the content.
//!
//! **Get** finds the manifest (local, else the DHT record, verified), asks the content's
//! providers for their inventories, and fetches k shards per segment in parallel — data shards
//! first, holders ordered by measured round-trip, a request that fails or is slow replaced by
//! another shard — verifies each against its hash and decodes. Several segments are in flight;
//! memory stays bounded by that window.
//!
//! **Repair** runs on every node over the contents it holds shards of: it lists the live
//! holders of each segment (an inventory request is the liveness check; one random shard per
//! holder is fetched and verified), and when a segment has fewer than k + margin shards the
//! segment's *leader* — the live holder closest to the segment's key, so exactly one node acts
//! when views agree — rebuilds the missing shards from k others (Reed-Solomon only: storage
//! nodes never see keys or plaintext) and places them on nodes that hold nothing of that
//! segment. Rounds are serialised per node and capped in shards per round.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use libp2p::kad::KBucketKey;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use zhtp_content::Manifest;
use zhtp_dht::protocol::MAX_SHARD;
use zhtp_dht::{Dht, Held, Keypair, PeerId};
use zhtp_store::{Cf, Store};
use zhtp_types::Hash;

use crate::local::{self, HELD, LocalNode};

mod admission;
mod audits;
mod contracts;
mod gc;
mod market;
mod migration;
mod placement;
mod proving;
mod repair;
mod replicated;
mod retrieval;
mod serve;
mod tiers;

pub use admission::{Admission, AdmitError, Quota, Refusal, Ticket};
pub use audits::{AuditConfig, AuditReport, SettleReport, Standing};
pub use contracts::{Payment, ed25519_of};
pub use gc::{GcReport, RemoveReport};
pub use market::{MarketConfig, MarketView};
pub use migration::{Migrated, Reads, ReviewReport};
pub use proving::{CIRCUIT, Lapse, PROOF_DEADLINE};
pub use replicated::{Agreed, CODE_KEY, ContractRound, MAX_SKEW, Misstep, Reply, SmartError};
pub use tiers::{Churn, Placement};

/// How long a manifest record lives in the DHT before it must be published again.
pub const MANIFEST_TTL: Duration = Duration::from_secs(365 * 24 * 3600);
const MANIFEST_KEY: &[u8] = b"zhtp/m/";
/// Segments fetched or placed concurrently by one get or put.
const WINDOW: usize = 4;

/// Errors of network content operations.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// Local store or pipeline.
    #[error(transparent)]
    Local(local::Error),
    /// The network.
    #[error(transparent)]
    Net(#[from] zhtp_dht::Error),
    /// The pipeline.
    #[error(transparent)]
    Content(#[from] zhtp_content::Error),
    /// The store.
    #[error(transparent)]
    Store(#[from] zhtp_store::Error),
    /// No manifest for this hash here or in the DHT.
    #[error("content {0} not found (no manifest here or in the DHT)")]
    NotFound(Hash),
    /// Encrypted and no key given or held.
    #[error(
        "content {0} is encrypted and no node keeps its key: read it as one of its readers (--identity NAME)"
    )]
    NoKey(Hash),
    /// Too few shards of a segment could be fetched.
    #[error("segment {segment}: only {have} of the {need} shards needed could be fetched")]
    Unavailable {
        /// Segment.
        segment: u32,
        /// Good shards found.
        have: usize,
        /// k.
        need: usize,
    },
    /// A shard could not be placed anywhere.
    #[error("segment {segment} shard {index}: no node accepted it ({reason})")]
    Placement {
        /// Segment.
        segment: u32,
        /// Shard.
        index: usize,
        /// Last failure.
        reason: String,
    },
    /// Reading the input.
    #[error("reading the input: {0}")]
    Input(std::io::Error),
    /// Bad request.
    #[error("{0}")]
    Invalid(String),
    /// A shard was not admitted.
    #[error(transparent)]
    Admission(#[from] AdmitError),
    /// A paid put that cannot be paid: no funds, a bad mandate, a provider declining.
    #[error("{0}")]
    Payment(String),
    /// Providers would not take a paid put's contract (declined, unreachable).
    #[error("{0}")]
    Declined(String),
    /// A smart contract through the network.
    #[error(transparent)]
    Smart(#[from] SmartError),
    /// A worker task panicked or was cancelled.
    #[error("internal: {0}")]
    Task(String),
}

/// The shared pipeline's and the local node's errors: a content error (a shard or hash check
/// failed), a store error and a missing key are one variant each whichever path they came
/// through, so callers (and the API's status codes) match one variant for each.
impl From<local::Error> for Error {
    fn from(e: local::Error) -> Self {
        match e {
            local::Error::Content(c) => Self::Content(c),
            local::Error::Store(s) => Self::Store(s),
            local::Error::NoKey(h) => Self::NoKey(h),
            other => Self::Local(other),
        }
    }
}

/// A `spawn_blocking` whose panic becomes an [`Error::Task`].
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Task(e.to_string()))
}

/// Repair settings.
#[derive(Clone, Copy, Debug)]
pub struct RepairConfig {
    /// Repair a segment when fewer than k + `margin` of its shards are live. `None`: m (repair
    /// as soon as any shard is missing).
    pub margin: Option<usize>,
    /// Most shards rebuilt per round (rate limit).
    pub max_shards_per_round: usize,
    /// Time limit of one holder check (inventory or shard fetch).
    pub check_timeout: Duration,
    /// How long a held shard may go unreferenced by any published manifest (no record, a
    /// removed one, or one naming another shard at its place) before [`Node::collect`] deletes
    /// it. Longer than any put takes: a put places shards before it publishes the manifest.
    pub orphan_grace: Duration,
    /// How often repair rounds run (`None`: only on request). How long a lost shard can go
    /// unnoticed: part of the repair time the durability model is fed with.
    pub interval: Option<Duration>,
}

impl Default for RepairConfig {
    fn default() -> Self {
        Self {
            margin: None,
            max_shards_per_round: 256,
            check_timeout: Duration::from_secs(3),
            orphan_grace: Duration::from_secs(3600),
            interval: None,
        }
    }
}

/// What a repair round found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairReport {
    /// Contents this node holds shards of.
    pub contents: usize,
    /// Segments checked.
    pub segments: usize,
    /// Segments with fewer live shards than k + margin.
    pub degraded: usize,
    /// Shards rebuilt and placed by this node.
    pub rebuilt: usize,
    /// Degraded segments left to their leader (another node).
    pub deferred: usize,
    /// Segments with fewer than k live shards: lost.
    pub unrecoverable: usize,
    /// Holders that did not answer or failed the random shard check.
    pub failed_holders: usize,
    /// The smart-contract instances kept here, checked against their other replicas.
    #[serde(default)]
    pub contracts: ContractRound,
}

/// What a put did.
#[derive(Clone, Debug)]
pub struct Stored {
    /// The manifest.
    pub manifest: Manifest,
    /// Which node got each shard, per segment.
    pub placement: Vec<Vec<PeerId>>,
    /// Whether the manifest record reached at least one other node.
    pub published: bool,
}

/// Which nodes hold which shards of a content: `(segment, index) → holders`.
pub type Holders = HashMap<(u32, u16), Vec<PeerId>>;

struct Inner {
    local: LocalNode,
    store: Arc<Store>,
    admission: Arc<Admission>,
    dht: Dht,
    providing: Mutex<HashSet<Hash>>,
    repair_lock: tokio::sync::Mutex<()>,
    /// One tier review at a time.
    review_lock: tokio::sync::Mutex<()>,
    /// Held from a local change of one of this node's manifests to its publication (an
    /// access update, a removal, a migration), so that the record published is the manifest
    /// kept: a migration cannot publish over a grant made meanwhile.
    manifest_lock: tokio::sync::Mutex<()>,
    repair: RepairConfig,
    /// Read by every write of a held position, written by garbage collection: a shard being
    /// released can not meanwhile gain a position that counts on its bytes.
    positions: std::sync::RwLock<()>,
    /// Measured latency of shard fetches per peer (exponentially smoothed), to prefer fast
    /// holders.
    latency: Mutex<HashMap<PeerId, Duration>>,
    /// The storage contracts kept here.
    book: zhtp_economy::Book,
    /// Whether shards from peers need a storage contract, and puts a payment.
    charges: std::sync::atomic::AtomicBool,
    /// How audits are judged.
    audit: std::sync::RwLock<AuditConfig>,
    /// The quality plugin judging settled periods; `None`: the built-in `quality-sla`.
    quality: std::sync::RwLock<Option<zhtp_host::QualityPlugin>>,
    /// What this node advertises, and others' market records fetched.
    market: std::sync::Mutex<market::MarketState>,
    /// The tier plugin placing new content; `None`: the built-in `tier-policy`.
    tier: std::sync::RwLock<Option<zhtp_host::TierPlugin>>,
    /// Repair rounds that rebuilt shards: part of the observed repair time.
    repair_times: Mutex<tiers::RepairTimes>,
    /// The mean node lifetime estimated from sightings (0: none yet) and departures counted.
    lifetime: Mutex<(u64, u64)>,
    /// The data dir (its disk's free space is the default capacity advertised).
    data_dir: std::path::PathBuf,
    /// The smart contracts this node keeps as a replica.
    smart: crate::smart::SmartContracts,
    /// Proof requests admitted ([`proving::MAX_PROVING`]).
    proving: Arc<tokio::sync::Semaphore>,
    /// Held while proving: one proof at a time.
    prover: tokio::sync::Mutex<()>,
    /// Peers with a proof request in flight (one each).
    proving_peers: Mutex<HashSet<PeerId>>,
    /// How this node answers proof audits (tests only).
    lapse: Mutex<proving::Lapse>,
    /// Contract instances to check against their other replicas.
    checks: replicated::Checks,
}

/// A node on the network. Cheap to clone.
#[derive(Clone)]
pub struct Node {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("peer_id", &self.inner.dht.peer_id())
            .finish_non_exhaustive()
    }
}

/// The node's identity key in its data dir, created on first start.
pub fn identity(data_dir: &Path) -> std::io::Result<Keypair> {
    let path = data_dir.join("identity.key");
    match std::fs::read(&path) {
        Ok(bytes) => Keypair::from_protobuf_encoding(&bytes).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: not a node key: {e}", path.display()),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let kp = Keypair::generate_ed25519();
            let bytes = kp
                .to_protobuf_encoding()
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            crate::private::write_file(&path, &bytes)?;
            Ok(kp)
        }
        Err(e) => Err(e),
    }
}

fn manifest_key(h: &Hash) -> Vec<u8> {
    [MANIFEST_KEY, h.as_bytes()].concat()
}

fn held_prefix(content: &Hash) -> Vec<u8> {
    [HELD, content.as_bytes()].concat()
}

fn held_key(content: &Hash, segment: u32, index: u16) -> Vec<u8> {
    let mut k = held_prefix(content);
    k.extend_from_slice(&segment.to_be_bytes());
    k.extend_from_slice(&index.to_be_bytes());
    k
}

/// Checks a record's payload for its key: a market record signed by the node it is filed
/// under, a contract's code filed under its hash, or a manifest of the content it is filed
/// under.
pub fn validate_record(key: &[u8], payload: &[u8], publisher: &PeerId) -> Result<(), String> {
    if let Some(checked) = market::validate(key, payload, publisher) {
        return checked;
    }
    if let Some(checked) = replicated::validate(key, payload) {
        return checked;
    }
    let Some(hash) = key
        .strip_prefix(MANIFEST_KEY)
        .and_then(|h| <[u8; 32]>::try_from(h).ok())
        .map(Hash)
    else {
        return Err("unknown record kind".into());
    };
    if payload.is_empty() {
        return Ok(()); // a tombstone: the publisher removed the content
    }
    let m = Manifest::decode(payload).map_err(|e| e.to_string())?;
    check_network_manifest(&m, &hash)
}

/// What a manifest from the network must be beyond [`Manifest::decode`]'s own consistency
/// checks: filed under its content, with shards that fit in one shard-protocol message.
fn check_network_manifest(m: &Manifest, hash: &Hash) -> Result<(), String> {
    if m.content_hash != *hash {
        return Err(format!(
            "manifest of {} filed under another key",
            m.content_hash
        ));
    }
    // A reader rebuilding a segment fills every missing slot, parity included: a code of a
    // few data and many parity shards would make it allocate far more than the segment. Our
    // codes store at most three times the data (1+2); more is refused from the network.
    if u16::from(m.code.parity) > 2 * u16::from(m.code.data) {
        return Err(format!(
            "a {}+{} code stores more than three times its data",
            m.code.data, m.code.parity
        ));
    }
    if let Some(s) = m.segments.iter().find(|s| s.shard_len as usize > MAX_SHARD) {
        return Err(format!(
            "shards of {} bytes, larger than the network carries ({MAX_SHARD})",
            s.shard_len
        ));
    }
    crate::readers::check(m).map_err(|e| e.to_string())?;
    Ok(())
}

/// Keeps a manifest from the network once the content it describes was verified against it,
/// when none is kept yet. A kept one is never replaced from here: it may be this node's own
/// (put through it, changed only by its owner), and a get that started before a grant or a
/// revoke ends with the manifest of before. [`Node::manifest`] asks the DHT for the latest of
/// others' contents; the kept copy is its fallback.
async fn remember_manifest(store: Arc<Store>, hash: Hash, encoded: Vec<u8>) {
    let r = tokio::task::spawn_blocking(move || {
        if store.get(Cf::Manifests, hash.as_bytes())?.is_some() {
            return Ok(());
        }
        let mut b = store.batch();
        store.put(&mut b, Cf::Manifests, hash.as_bytes(), &encoded)?;
        store.write(b)
    })
    .await;
    if let Ok(Err(e)) = r {
        tracing::debug!(%hash, "manifest not cached: {e}");
    }
}

fn distance_key(bytes: &[u8]) -> KBucketKey<Vec<u8>> {
    KBucketKey::new(bytes.to_vec())
}

/// `peers` sorted by XOR distance to `target`, closest first.
fn by_distance(peers: &[PeerId], target: &[u8]) -> Vec<PeerId> {
    let t = distance_key(target);
    let mut v: Vec<_> = peers
        .iter()
        .map(|p| (KBucketKey::from(*p).distance(&t), *p))
        .collect();
    v.sort();
    v.into_iter().map(|(_, p)| p).collect()
}

fn segment_key(content: &Hash, segment: u32) -> Vec<u8> {
    let mut k = content.as_bytes().to_vec();
    k.extend_from_slice(&segment.to_be_bytes());
    k
}

impl Node {
    /// Opens the node's store under `data_dir`, starts its network and the task serving shard
    /// requests, and announces the contents it holds.
    pub async fn start(
        data_dir: &Path,
        net: zhtp_dht::Config,
        repair: RepairConfig,
    ) -> Result<Self, Error> {
        Self::start_with(data_dir, net, repair, Quota::default()).await
    }

    /// [`Self::start`] with the quota each peer gets on this node.
    pub async fn start_with(
        data_dir: &Path,
        mut net: zhtp_dht::Config,
        repair: RepairConfig,
        quota: Quota,
    ) -> Result<Self, Error> {
        crate::private::create_dir(data_dir).map_err(|e| Error::Invalid(e.to_string()))?;
        let keypair = identity(data_dir).map_err(|e| Error::Invalid(e.to_string()))?;
        let local = LocalNode::open(data_dir, zhtp_store::Config::default())?;
        let store = local.shared_store();
        let store_for_book = store.clone();
        let admission = Arc::new(Admission::open(store.clone(), quota)?);
        net.validator = Some(Arc::new(validate_record));
        let smart = crate::smart::SmartContracts::open(store.clone())
            .map_err(|e| Error::Invalid(e.to_string()))?;
        let (checks, check_queue) = replicated::Checks::new();
        let (dht, inbound) = Dht::spawn(keypair, net, Some(store.clone())).await?;
        let node = Self {
            inner: Arc::new(Inner {
                local,
                store,
                admission,
                dht,
                providing: Mutex::new(HashSet::new()),
                repair_lock: tokio::sync::Mutex::new(()),
                review_lock: tokio::sync::Mutex::new(()),
                manifest_lock: tokio::sync::Mutex::new(()),
                repair,
                positions: std::sync::RwLock::new(()),
                latency: Mutex::new(HashMap::new()),
                book: zhtp_economy::Book::open(store_for_book),
                charges: std::sync::atomic::AtomicBool::new(false),
                audit: std::sync::RwLock::new(AuditConfig::default()),
                quality: std::sync::RwLock::new(None),
                tier: std::sync::RwLock::new(None),
                repair_times: Mutex::default(),
                lifetime: Mutex::default(),
                market: std::sync::Mutex::new(market::MarketState::default()),
                data_dir: data_dir.to_path_buf(),
                smart,
                checks,
                proving: Arc::new(tokio::sync::Semaphore::new(proving::MAX_PROVING)),
                prover: tokio::sync::Mutex::new(()),
                proving_peers: Mutex::new(HashSet::new()),
                lapse: Mutex::new(proving::Lapse::None),
            }),
        };
        // Background tasks hold the node weakly: dropping the last `Node` closes the store.
        tokio::spawn(serve::serve(Arc::downgrade(&node.inner), inbound));
        tokio::spawn(replicated::checker(
            Arc::downgrade(&node.inner),
            check_queue,
        ));
        // Re-announce what this node holds once it has a peer to announce to.
        let (weak, dht) = (Arc::downgrade(&node.inner), node.inner.dht.clone());
        tokio::spawn(async move {
            if dht.wait_connected(1).await.is_ok()
                && let Some(inner) = weak.upgrade()
            {
                let n = Node { inner };
                for c in n.held_contents().unwrap_or_default() {
                    n.announce(c);
                }
            }
        });
        Ok(node)
    }

    /// Ticks whenever something observable changed: a shard stored here, a record stored or
    /// refused, a connection opened or closed. Wait on it (and look again) instead of polling.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.dht.changes()
    }

    /// The network handle.
    pub fn dht(&self) -> &Dht {
        &self.inner.dht
    }

    /// The local side (index, manifests, keys, plugins' data dir).
    pub fn local(&self) -> &LocalNode {
        &self.inner.local
    }

    /// This node's id.
    pub fn peer_id(&self) -> PeerId {
        self.inner.dht.peer_id()
    }

    /// Stops the network; the store closes when the last clone is dropped.
    pub async fn shutdown(&self) {
        self.inner.dht.shutdown().await;
    }

    fn announce(&self, content: Hash) {
        let fresh = self
            .inner
            .providing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(content);
        if fresh {
            let dht = self.inner.dht.clone();
            tokio::spawn(async move {
                if let Err(e) = dht.provide(content.as_bytes()).await {
                    tracing::debug!(%content, "provider announcement incomplete: {e}");
                }
            });
        }
    }

    /// Stops the network and waits for it; the store closes when the last clone is dropped
    /// (this one is).
    pub async fn stop(self) {
        self.inner.dht.shutdown().await;
    }

    /// What `peer` may store here and has stored (bytes, shards): the admission's view.
    pub fn admission(&self) -> &Admission {
        &self.inner.admission
    }

    /// The shards of `content` held here.
    pub fn inventory(&self, content: &Hash) -> Result<Vec<Held>, Error> {
        let prefix = held_prefix(content);
        let mut out = Vec::new();
        for item in self.inner.store.scan(Cf::Index, &prefix)? {
            let (k, v) = item?;
            let rest = &k[prefix.len()..];
            if rest.len() != 6 || v.len() < 32 {
                continue;
            }
            out.push(Held {
                segment: u32::from_be_bytes(rest[..4].try_into().expect("4 bytes")),
                index: u16::from_be_bytes(rest[4..6].try_into().expect("2 bytes")),
                hash: Hash(v[..32].try_into().expect("32 bytes")),
            });
        }
        Ok(out)
    }

    /// Contents this node holds shards of.
    pub fn held_contents(&self) -> Result<Vec<Hash>, Error> {
        let mut out: Vec<Hash> = Vec::new();
        for item in self.inner.store.scan(Cf::Index, HELD)? {
            let (k, _) = item?;
            if k.len() >= HELD.len() + 32 {
                let h = Hash(k[HELD.len()..HELD.len() + 32].try_into().expect("32 bytes"));
                if out.last() != Some(&h) {
                    out.push(h);
                }
            }
        }
        Ok(out)
    }

    /// Shards held here and their total size.
    pub fn held_totals(&self) -> Result<(u64, u64), Error> {
        let (mut n, mut bytes) = (0u64, 0u64);
        for item in self.inner.store.scan(Cf::Index, HELD)? {
            let (_, v) = item?;
            n += 1;
            if v.len() >= 36 {
                bytes += u32::from_le_bytes(v[32..36].try_into().expect("4 bytes")) as u64;
            }
        }
        Ok((n, bytes))
    }

    /// Publishes `payload` (a manifest, or nothing: a tombstone) as the manifest record of
    /// `content`. `Ok(true)`: it reached another node; `Ok(false)`: not yet (logged as `what`;
    /// it is kept here and republished with the node's records); `Err`: the network refuses it
    /// for good (another publisher owns the key), for the caller to undo its local change.
    async fn publish_manifest(
        &self,
        content: &Hash,
        payload: Vec<u8>,
        what: &str,
    ) -> Result<bool, zhtp_dht::record::RecordError> {
        match self
            .inner
            .dht
            .publish(&manifest_key(content), payload, MANIFEST_TTL)
            .await
        {
            Ok(()) => Ok(true),
            Err(zhtp_dht::Error::Record(e)) => Err(e),
            Err(e) => {
                tracing::warn!(%content, "{what} not replicated yet: {e}");
                Ok(false)
            }
        }
    }

    async fn live_peers(&self) -> Result<Vec<PeerId>, Error> {
        let mut peers = self.inner.dht.status().await?.connected;
        // A node this node's audits banned gets no new shards.
        peers.retain(|p| !self.banned(p));
        peers.push(self.peer_id());
        Ok(peers)
    }
}
