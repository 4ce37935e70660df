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
use std::time::{Duration, Instant};

use futures::stream::{FuturesOrdered, FuturesUnordered};
use futures::{Stream, StreamExt as _};
use libp2p::kad::KBucketKey;
use serde::Serialize;
use thiserror::Error;
use tokio::io::AsyncReadExt as _;
use tokio::sync::mpsc;
use zhtp_content::{
    ContentKey, Decoder, EncodedSegment, Encoder, EncryptionLevel, Manifest, Params, SegmentInfo,
    erasure_code,
};
use zhtp_dht::protocol::MAX_SHARD;
use zhtp_dht::{Dht, Held, Inbound, Keypair, PeerId, Request, Response};
use zhtp_store::{Cf, Store};
use zhtp_types::Hash;

use crate::local::{self, LocalNode, PutOptions};

mod admission;

pub use admission::{Admission, AdmitError, Quota, Refusal, Ticket};

/// How long a manifest record lives in the DHT before it must be published again.
pub const MANIFEST_TTL: Duration = Duration::from_secs(365 * 24 * 3600);
const MANIFEST_KEY: &[u8] = b"zhtp/m/";
const HELD: &[u8] = b"held/";
/// Segments fetched or placed concurrently by one get or put.
const WINDOW: usize = 4;
/// How long a reader waits for more inventories once it knows holders for k shards of every
/// segment.
const HOLDERS_GRACE: Duration = Duration::from_millis(200);
/// A shard that has not arrived after this long is also requested from elsewhere, and its
/// holder is ranked last until it answers fast again.
const HEDGE: Duration = Duration::from_millis(1500);
/// Most peers whose fetch latency is remembered.
const MAX_LATENCIES: usize = 4096;

/// Errors of network content operations.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// Local store or pipeline.
    #[error(transparent)]
    Local(#[from] local::Error),
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
    #[error("content {0} is encrypted: give its key (printed by put) with --key")]
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
    /// A worker task panicked or was cancelled.
    #[error("internal: {0}")]
    Task(String),
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
}

impl Default for RepairConfig {
    fn default() -> Self {
        Self {
            margin: None,
            max_shards_per_round: 256,
            check_timeout: Duration::from_secs(3),
        }
    }
}

/// What a repair round found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
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
}

/// What a put did.
#[derive(Clone, Debug)]
pub struct Stored {
    /// The manifest.
    pub manifest: Manifest,
    /// The content key (to give to whoever should read it).
    pub key: Option<ContentKey>,
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
    repair: RepairConfig,
    /// Measured latency of shard fetches per peer (exponentially smoothed), to prefer fast
    /// holders.
    latency: Mutex<HashMap<PeerId, Duration>>,
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

/// Shard requests answered at once. A request waits for a permit before it is taken from the
/// network's inbound queue, so when every permit is busy the queue fills and the network task
/// refuses further requests as busy at once, instead of this node spawning without bound.
const SERVE_CONCURRENCY: usize = 32;

async fn serve(node: std::sync::Weak<Inner>, mut inbound: mpsc::Receiver<Inbound>) {
    let permits = Arc::new(tokio::sync::Semaphore::new(SERVE_CONCURRENCY));
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let Some(req) = inbound.recv().await else {
            break;
        };
        let Some(inner) = node.upgrade() else { break };
        let node = Node { inner };
        tokio::spawn(async move {
            let _permit = permit;
            let Inbound {
                peer,
                request,
                reply,
            } = req;
            let response = node.answer(peer, request).await;
            if let Response::Refused(why) = &response {
                tracing::warn!(%peer, "refused a shard request: {why}");
            }
            reply.send(response).await;
        });
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

/// Checks that a manifest record holds a valid manifest of the content it is filed under.
pub fn validate_record(key: &[u8], payload: &[u8]) -> Result<(), String> {
    let Some(hash) = key
        .strip_prefix(MANIFEST_KEY)
        .and_then(|h| <[u8; 32]>::try_from(h).ok())
        .map(Hash)
    else {
        return Err("unknown record kind".into());
    };
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
    Ok(())
}

/// Keeps a manifest from the network once the content it describes was verified against it.
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
        let admission = Arc::new(Admission::open(store.clone(), quota)?);
        net.validator = Some(Arc::new(validate_record));
        let (dht, inbound) = Dht::spawn(keypair, net, Some(store.clone())).await?;
        let node = Self {
            inner: Arc::new(Inner {
                local,
                store,
                admission,
                dht,
                providing: Mutex::new(HashSet::new()),
                repair_lock: tokio::sync::Mutex::new(()),
                repair,
                latency: Mutex::new(HashMap::new()),
            }),
        };
        // Background tasks hold the node weakly: dropping the last `Node` closes the store.
        tokio::spawn(serve(Arc::downgrade(&node.inner), inbound));
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

    async fn answer(&self, peer: PeerId, request: Request) -> Response {
        match request {
            Request::Store {
                content,
                segment,
                index,
                hash,
                data,
            } => {
                if data.len() > MAX_SHARD {
                    return Response::Refused(format!(
                        "shard of {} bytes is too large",
                        data.len()
                    ));
                }
                if Hash(*blake3::hash(&data).as_bytes()) != hash {
                    return Response::Refused("shard does not match its hash".into());
                }
                match self
                    .keep(Some(peer), content, segment, index, hash, data)
                    .await
                {
                    Ok(()) => Response::Stored,
                    Err(e) => Response::Refused(e.to_string()),
                }
            }
            Request::Fetch { hash } => {
                let store = self.inner.store.clone();
                match tokio::task::spawn_blocking(move || store.shard(&hash)).await {
                    Ok(Ok(Some(bytes))) => Response::Shard(bytes),
                    Ok(Ok(None)) => Response::NotFound,
                    Ok(Err(zhtp_store::Error::Corrupt(h))) => {
                        tracing::warn!(shard = %h, "corrupt shard on disk; not served");
                        Response::NotFound
                    }
                    Ok(Err(e)) => Response::Refused(e.to_string()),
                    Err(e) => Response::Refused(e.to_string()),
                }
            }
            Request::Inventory { content } => {
                let node = self.clone();
                match blocking(move || node.inventory(&content)).await {
                    Ok(Ok(v)) => Response::Inventory(v),
                    Ok(Err(e)) | Err(e) => Response::Refused(e.to_string()),
                }
            }
        }
    }

    /// Stores a shard offered by `from` (`None`: this node) durably with its index entry, if
    /// the admission lets it in, then announces the content. A shard already held is not
    /// written again.
    async fn keep(
        &self,
        from: Option<PeerId>,
        content: Hash,
        segment: u32,
        index: u16,
        hash: Hash,
        data: Vec<u8>,
    ) -> Result<(), Error> {
        let (store, admission) = (self.inner.store.clone(), self.inner.admission.clone());
        blocking(move || -> Result<(), Error> {
            let position = held_key(&content, segment, index);
            // A position already recorded: the same shard again is a no-op; another shard may
            // not take the place of the one there (it would drop out of the inventory).
            if let Some(v) = store.get(Cf::Index, &position)? {
                return if v.get(..32) == Some(hash.as_bytes()) {
                    Ok(())
                } else {
                    Err(Error::Invalid(format!(
                        "segment {segment} shard {index} of {content} is another shard here"
                    )))
                };
            }
            let ticket = admission.admit(from, &position, &hash, data.len() as u64)?;
            let mut b = store.batch();
            if ticket.write_bytes() {
                store.put_shard(&mut b, &hash, &data)?;
            }
            ticket.record(&mut b)?;
            let mut v = hash.as_bytes().to_vec();
            v.extend_from_slice(&(data.len() as u32).to_le_bytes());
            store.put(&mut b, Cf::Index, &position, &v)?;
            store.write(b)?;
            ticket.written();
            Ok(())
        })
        .await??;
        self.announce(content);
        Ok(())
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

    async fn live_peers(&self) -> Result<Vec<PeerId>, Error> {
        let mut peers = self.inner.dht.status().await?.connected;
        peers.push(self.peer_id());
        Ok(peers)
    }

    /// Stores one shard on `peer` (this node included).
    async fn send_shard(
        &self,
        peer: PeerId,
        content: Hash,
        segment: u32,
        index: u16,
        hash: Hash,
        data: Vec<u8>,
    ) -> Result<(), String> {
        if peer == self.peer_id() {
            return self
                .keep(None, content, segment, index, hash, data)
                .await
                .map_err(|e| e.to_string());
        }
        let req = Request::Store {
            content,
            segment,
            index,
            hash,
            data,
        };
        match self.inner.dht.request(peer, req).await {
            Ok(Response::Stored) => Ok(()),
            Ok(Response::Refused(why)) => Err(why),
            Ok(other) => Err(format!("unexpected answer {other:?}")),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Places the shards of one segment on distinct nodes, closest to each shard's hash
    /// first; `avoid` are nodes already holding a shard of the segment.
    async fn place(
        &self,
        content: Hash,
        segment: u32,
        shards: Vec<(usize, Hash, Vec<u8>)>,
        peers: &[PeerId],
        avoid: &HashSet<PeerId>,
    ) -> Result<Vec<(usize, PeerId)>, Error> {
        let used = Mutex::new(avoid.clone());
        let down = Mutex::new(HashSet::<PeerId>::new());
        let tasks = shards.into_iter().map(|(index, hash, data)| {
            let (used, down) = (&used, &down);
            async move {
                let ranked = by_distance(peers, hash.as_bytes());
                let mut last = String::from("no live node");
                // First pass: nodes without a shard of this segment; second: any live node
                // (fewer nodes than shards: redundancy then rests on fewer machines).
                for pass in 0..2 {
                    for &p in &ranked {
                        {
                            let mut u = used.lock().unwrap_or_else(|e| e.into_inner());
                            let d = down.lock().unwrap_or_else(|e| e.into_inner());
                            if d.contains(&p) || (pass == 0 && u.contains(&p)) {
                                continue;
                            }
                            u.insert(p);
                        }
                        match self
                            .send_shard(p, content, segment, index as u16, hash, data.clone())
                            .await
                        {
                            Ok(()) => return Ok((index, p)),
                            Err(e) => {
                                tracing::warn!(%p, segment, index, "shard not placed: {e}");
                                down.lock().unwrap_or_else(|e| e.into_inner()).insert(p);
                                last = e;
                            }
                        }
                    }
                }
                Err(Error::Placement {
                    segment,
                    index,
                    reason: last,
                })
            }
        });
        let results: Vec<_> = futures::future::join_all(tasks).await;
        results.into_iter().collect()
    }

    /// Stores the file at `path` on the network. The file is read twice: once to compute the
    /// content address (BLAKE3 of the plaintext, which every shard is filed under), once to
    /// encode and place the segments, a window of them at a time.
    pub async fn put_file(&self, path: &Path, opts: PutOptions) -> Result<Stored, Error> {
        let p = path.to_owned();
        let (content_hash, size) = tokio::task::spawn_blocking(move || -> std::io::Result<_> {
            let mut h = blake3::Hasher::new();
            h.update_reader(std::fs::File::open(&p)?)?;
            let size = std::fs::metadata(&p)?.len();
            Ok((Hash(*h.finalize().as_bytes()), size))
        })
        .await
        .map_err(|e| Error::Task(e.to_string()))?
        .map_err(Error::Input)?;
        let key = match opts.encryption {
            EncryptionLevel::None => None,
            _ => Some(ContentKey::random()?),
        };
        let params = Params {
            tier: opts.tier,
            encryption: opts.encryption,
            code: opts.code,
            segment_size: opts.segment_size,
        };
        if u16::from(opts.code.parity) > 2 * u16::from(opts.code.data) {
            // Other nodes refuse such manifests (see `check_network_manifest`).
            return Err(Error::Invalid(format!(
                "a {}+{} code stores more than three times the data; the network takes m ≤ 2k",
                opts.code.data, opts.code.parity
            )));
        }
        let encoder = Arc::new(Encoder::new(params, key.as_ref())?);
        let max_shard = opts.segment_size as usize / opts.code.data as usize + 4096;
        if max_shard > MAX_SHARD {
            return Err(Error::Invalid(format!(
                "segments of {} B at k = {} make shards over the network limit of {} B",
                opts.segment_size, opts.code.data, MAX_SHARD
            )));
        }
        let peers = self.live_peers().await?;
        let mut file = tokio::fs::File::open(path).await.map_err(Error::Input)?;
        let seg_size = opts.segment_size as usize;
        let mut infos: Vec<SegmentInfo> = Vec::new();
        let mut placement: Vec<Vec<PeerId>> = Vec::new();
        let mut inflight = FuturesOrdered::new();
        let mut index = 0u32;
        let mut read = 0u64;
        // What is encoded is hashed again: an input edited between the two reads (even to the
        // same size) must fail the put, not publish a manifest whose content never verifies.
        let mut second = blake3::Hasher::new();
        let mut ended = false;
        while !ended || !inflight.is_empty() {
            if !ended && inflight.len() < WINDOW {
                let mut buf = vec![0u8; seg_size];
                let mut n = 0;
                while n < seg_size {
                    let k = file.read(&mut buf[n..]).await.map_err(Error::Input)?;
                    if k == 0 {
                        break;
                    }
                    n += k;
                }
                buf.truncate(n);
                read += n as u64;
                second.update(&buf);
                if n < seg_size {
                    ended = true;
                }
                if n > 0 {
                    let (node, encoder, peers) = (self.clone(), encoder.clone(), peers.clone());
                    let i = index;
                    inflight.push_back(async move {
                        let seg: EncodedSegment =
                            tokio::task::spawn_blocking(move || encoder.encode_segment(i, &buf))
                                .await
                                .map_err(|e| Error::Task(e.to_string()))??;
                        let shards = seg
                            .shards()
                            .enumerate()
                            .map(|(j, (h, b))| (j, h, b.to_vec()))
                            .collect();
                        let placed = node
                            .place(content_hash, i, shards, &peers, &HashSet::new())
                            .await?;
                        let mut holders = vec![node.peer_id(); placed.len()];
                        for (j, p) in placed {
                            holders[j] = p;
                        }
                        Ok::<_, Error>((seg.info, holders))
                    });
                    index += 1;
                }
                continue;
            }
            if let Some(r) = inflight.next().await {
                let (info, holders) = r?;
                infos.push(info);
                placement.push(holders);
            }
        }
        if read != size || Hash(*second.finalize().as_bytes()) != content_hash {
            return Err(Error::Invalid(format!(
                "{} changed while being stored ({size} B, then {read} B); nothing was published",
                path.display()
            )));
        }
        let mut metadata = opts.metadata;
        metadata.created = zhtp_dht::record::unix_now();
        let manifest = encoder.manifest(content_hash, size, infos, metadata);
        self.inner
            .local
            .commit(&manifest, key.as_ref(), Vec::new())?;
        let published = match self
            .inner
            .dht
            .publish(
                &manifest_key(&content_hash),
                manifest.encode(),
                MANIFEST_TTL,
            )
            .await
        {
            Ok(()) => true,
            Err(zhtp_dht::Error::Record(e)) => {
                // Refused here (another publisher owns the key): Kademlia will not republish it.
                // Gets through this node work from the local manifest; others see the owner's.
                tracing::warn!(content = %content_hash, "manifest record not published: {e}");
                false
            }
            Err(e) => {
                // Kept locally and republished by Kademlia later; gets through this node work.
                tracing::warn!(content = %content_hash, "manifest record not replicated yet: {e}");
                false
            }
        };
        Ok(Stored {
            manifest,
            key,
            placement,
            published,
        })
    }

    /// The manifest of `hash`: local, else from the DHT. A manifest from the DHT is checked
    /// (signature, internal consistency, shards the network can carry) but not trusted: it is
    /// kept here only once a get has verified the whole content against it ([`Self::get`]).
    pub async fn manifest(&self, hash: &Hash) -> Result<Manifest, Error> {
        if let Some(m) = self.inner.local.manifest(hash)? {
            return Ok(m);
        }
        let rec = match self.inner.dht.get_record(&manifest_key(hash)).await {
            Ok(r) => r,
            Err(zhtp_dht::Error::NotFound) => return Err(Error::NotFound(*hash)),
            Err(e) => return Err(e.into()),
        };
        let m = Manifest::decode(&rec.payload)?;
        check_network_manifest(&m, hash).map_err(Error::Invalid)?;
        Ok(m)
    }

    fn known_key(
        &self,
        m: &Manifest,
        given: Option<ContentKey>,
    ) -> Result<Option<ContentKey>, Error> {
        if m.encryption.level == EncryptionLevel::None {
            return Ok(None);
        }
        if given.is_some() {
            return Ok(given);
        }
        match self.inner.store.get(Cf::Keys, m.content_hash.as_bytes())? {
            Some(bytes) => Ok(Some(ContentKey(
                bytes.try_into().map_err(|_| Error::NoKey(m.content_hash))?,
            ))),
            None => Err(Error::NoKey(m.content_hash)),
        }
    }

    /// Who holds which shard of `content`: this node's inventory and those of the content's
    /// providers that answer within the check timeout; also how many did not answer.
    pub async fn holders(&self, content: &Hash) -> Result<(Holders, usize), Error> {
        self.find_holders(content, None).await
    }

    /// [`Self::holders`], or with `enough = Some((segments, k))` stops as soon as every segment
    /// has holders for k distinct shards (after a short wait for more choice), instead of
    /// waiting for providers that do not answer: a killed peer's connection stays silent until
    /// it times out, and a reader should not wait for that.
    async fn find_holders(
        &self,
        content: &Hash,
        enough: Option<(u32, usize)>,
    ) -> Result<(Holders, usize), Error> {
        self.find_holders_from(content, enough, HashMap::new())
            .await
    }

    /// [`Self::find_holders`] starting from holders already known.
    async fn find_holders_from(
        &self,
        content: &Hash,
        enough: Option<(u32, usize)>,
        mut map: Holders,
    ) -> Result<(Holders, usize), Error> {
        let me = self.peer_id();
        let node = self.clone();
        let c = *content;
        for h in blocking(move || node.inventory(&c)).await?? {
            map.entry((h.segment, h.index)).or_default().push(me);
        }
        let providers = self
            .inner
            .dht
            .providers(content.as_bytes())
            .await
            .unwrap_or_default();
        let timeout = self.inner.repair.check_timeout;
        let mut asks: FuturesUnordered<_> = providers
            .into_iter()
            .filter(|p| *p != me)
            .map(|p| {
                let dht = self.inner.dht.clone();
                let c = *content;
                async move {
                    let r = tokio::time::timeout(
                        timeout,
                        dht.request(p, Request::Inventory { content: c }),
                    )
                    .await;
                    (p, r)
                }
            })
            .collect();
        // One pass over the map per answer (not one per segment: contents have many segments).
        let covered = |map: &Holders| {
            enough.is_some_and(|(segments, k)| {
                let mut shards = vec![0usize; segments as usize];
                for (seg, _) in map.keys() {
                    if let Some(n) = shards.get_mut(*seg as usize) {
                        *n += 1;
                    }
                }
                shards.iter().all(|n| *n >= k)
            })
        };
        let started = Instant::now();
        let mut failed = 0;
        loop {
            let next = if covered(&map) {
                let left = HOLDERS_GRACE.saturating_sub(started.elapsed());
                match tokio::time::timeout(left, asks.next()).await {
                    Ok(n) => n,
                    Err(_) => {
                        failed += asks.len();
                        break;
                    }
                }
            } else {
                asks.next().await
            };
            let Some((p, r)) = next else { break };
            match r {
                Ok(Ok(Response::Inventory(held))) => {
                    for h in held {
                        map.entry((h.segment, h.index)).or_default().push(p);
                    }
                }
                _ => failed += 1,
            }
        }
        Ok((map, failed))
    }

    fn rank(&self, holders: &[PeerId]) -> Vec<PeerId> {
        let me = self.peer_id();
        let lat = self.inner.latency.lock().unwrap_or_else(|e| e.into_inner());
        let mut v = holders.to_vec();
        v.sort_by_key(|p| {
            if *p == me {
                Duration::ZERO
            } else {
                lat.get(p).copied().unwrap_or(Duration::from_millis(50))
            }
        });
        v.dedup();
        v
    }

    /// One shard from whichever of `holders` answers first with the right bytes.
    async fn fetch_shard(&self, hash: Hash, holders: Vec<PeerId>) -> Option<Vec<u8>> {
        let me = self.peer_id();
        for p in self.rank(&holders) {
            if p == me {
                let store = self.inner.store.clone();
                if let Ok(Ok(Some(b))) =
                    tokio::task::spawn_blocking(move || store.shard(&hash)).await
                {
                    return Some(b);
                }
                continue;
            }
            let t = Instant::now();
            let request = self.inner.dht.request(p, Request::Fetch { hash });
            tokio::pin!(request);
            let answer = match tokio::time::timeout(HEDGE, &mut request).await {
                Ok(r) => r,
                Err(_) => {
                    // Probably dead (a killed peer's QUIC connection stays silent until it
                    // times out): rank it last for the other shards of this and later gets.
                    self.penalise(p, 2 * HEDGE);
                    request.await
                }
            };
            match answer {
                Ok(Response::Shard(bytes)) if Hash(*blake3::hash(&bytes).as_bytes()) == hash => {
                    let took = t.elapsed();
                    let mut lat = self.latency();
                    let e = lat.entry(p).or_insert(took);
                    // A penalty is forgotten at the first fast answer; otherwise a moving average.
                    *e = if *e >= HEDGE {
                        took
                    } else {
                        (*e * 3 + took) / 4
                    };
                    return Some(bytes);
                }
                Ok(Response::Shard(_)) => {
                    tracing::warn!(%p, shard = %hash, "peer sent a wrong shard")
                }
                Ok(_) => {}
                Err(e) => {
                    self.penalise(p, 4 * HEDGE);
                    tracing::debug!(%p, "fetch failed: {e}");
                }
            }
        }
        None
    }

    /// The latency table, first trimmed if it has grown past [`MAX_LATENCIES`] peers (peers
    /// come and go; their figures must not pile up for good).
    fn latency(&self) -> std::sync::MutexGuard<'_, HashMap<PeerId, Duration>> {
        let mut lat = self.inner.latency.lock().unwrap_or_else(|e| e.into_inner());
        if lat.len() >= MAX_LATENCIES {
            // Forget the slowest half: those are the peers least likely to be asked again.
            let mut v: Vec<Duration> = lat.values().copied().collect();
            let (_, median, _) = v.select_nth_unstable(MAX_LATENCIES / 2);
            let median = *median;
            lat.retain(|_, d| *d < median);
        }
        lat
    }

    /// Ranks `p` as if its round trip took `at_least`.
    fn penalise(&self, p: PeerId, at_least: Duration) {
        let mut lat = self.latency();
        let e = lat.entry(p).or_insert(at_least);
        *e = (*e).max(at_least);
    }

    /// Whether every holder in `holders` is ranked as slow or failed.
    fn all_suspect(&self, holders: &[PeerId]) -> bool {
        let me = self.peer_id();
        let lat = self.inner.latency.lock().unwrap_or_else(|e| e.into_inner());
        holders
            .iter()
            .all(|p| *p != me && lat.get(p).is_some_and(|l| *l >= HEDGE))
    }

    /// Fetches k verified shards of a segment (data shards first), hedging: when a shard is
    /// slow or fails, the next one is requested too.
    async fn gather(
        &self,
        info: &SegmentInfo,
        segment: u32,
        k: usize,
        holders: &Holders,
    ) -> Result<Vec<Option<Vec<u8>>>, Error> {
        let n = info.shards.len();
        let mut slots: Vec<Option<Vec<u8>>> = vec![None; n];
        // Data shards first (no reconstruction needed), but shards whose holders all look dead
        // last.
        let mut order: Vec<usize> = (0..n)
            .filter(|j| holders.contains_key(&(segment, *j as u16)))
            .collect();
        order.sort_by_key(|j| (self.all_suspect(&holders[&(segment, *j as u16)]), *j));
        let mut order = order.into_iter();
        let mut running = FuturesUnordered::new();
        let launch = |j: usize| {
            let hs = holders
                .get(&(segment, j as u16))
                .cloned()
                .unwrap_or_default();
            let hash = info.shards[j];
            async move { (j, self.fetch_shard(hash, hs).await) }
        };
        for j in order.by_ref().take(k) {
            running.push(launch(j));
        }
        let mut good = 0;
        loop {
            if good >= k {
                break;
            }
            tokio::select! {
                next = running.next() => match next {
                    Some((j, Some(bytes))) => { slots[j] = Some(bytes); good += 1; }
                    Some((_, None)) => match order.next() {
                        Some(j) => running.push(launch(j)),
                        None if running.is_empty() => break,
                        None => {}
                    },
                    None => break,
                },
                _ = tokio::time::sleep(HEDGE), if !running.is_empty() => {
                    // Every request still running is late: back each one up at once (a
                    // segment with two dead holders must not wait two hedge periods).
                    for _ in 0..running.len() {
                        match order.next() {
                            Some(j) => running.push(launch(j)),
                            None => break,
                        }
                    }
                }
            }
        }
        if good < k {
            return Err(Error::Unavailable {
                segment,
                have: good,
                need: k,
            });
        }
        Ok(slots)
    }

    /// Gets content `hash` from the network as a stream of plaintext segments, in order. The
    /// stream ends with an error if anything fails, the content hash check included.
    pub async fn get(
        &self,
        hash: &Hash,
        key: Option<ContentKey>,
    ) -> Result<
        (
            Manifest,
            impl Stream<Item = Result<Vec<u8>, Error>> + Send + 'static,
        ),
        Error,
    > {
        let manifest = self.manifest(hash).await?;
        let key = self.known_key(&manifest, key)?;
        let decoder = Arc::new(Decoder::new(manifest.clone(), key.as_ref())?);
        let k = manifest.code.data as usize;
        let enough = (manifest.segments.len() as u32, k);
        // Shards in this node's own store count, however they got there (a local put writes
        // no network inventory).
        let (store, m) = (self.inner.store.clone(), manifest.clone());
        let me = self.peer_id();
        let here = blocking(move || -> Result<Holders, Error> {
            let mut map = Holders::new();
            for (s, info) in m.segments.iter().enumerate() {
                for (j, h) in info.shards.iter().enumerate() {
                    if store.contains(Cf::Shards, h.as_bytes())? {
                        map.insert((s as u32, j as u16), vec![me]);
                    }
                }
            }
            Ok(map)
        })
        .await??;
        let (holders, _) = self.find_holders_from(hash, Some(enough), here).await?;
        let holders = Arc::new(holders);
        let node = self.clone();
        let segments = manifest.segments.len() as u32;
        let plain = futures::stream::iter(0..segments)
            .map(move |i| {
                let (node, decoder, holders) = (node.clone(), decoder.clone(), holders.clone());
                async move {
                    let info = &decoder.manifest().segments[i as usize];
                    let mut slots = node.gather(info, i, k, &holders).await?;
                    let d = decoder.clone();
                    let decoded =
                        // `fetch_shard` checked every shard against its hash.
                        tokio::task::spawn_blocking(move || d.decode_verified_segment(i, &mut slots))
                            .await
                            .map_err(|e| Error::Task(e.to_string()))??;
                    Ok::<_, Error>(decoded.plain)
                }
            })
            .buffered(WINDOW);
        // The last segment is held back until the whole content hashes right. A reader that
        // stops at the announced length (HTTP with a Content-Length does) then never receives
        // every byte of a content that fails its check: a forged manifest with no encryption
        // cannot pass its bytes off as the content, and a client sees a short, failed body.
        let expected = *hash;
        let (store, encoded) = (self.inner.store.clone(), manifest.encode());
        let checked = futures::stream::unfold(
            Some((Box::pin(plain), blake3::Hasher::new(), None::<Vec<u8>>)),
            move |state| {
                let (store, encoded) = (store.clone(), encoded.clone());
                async move {
                    let (mut s, mut hasher, mut held) = state?;
                    loop {
                        match s.next().await {
                            Some(Ok(bytes)) => {
                                hasher.update(&bytes);
                                // Pass on the segment before this one, hold this one.
                                if let Some(prev) = held.replace(bytes) {
                                    return Some((Ok(prev), Some((s, hasher, held))));
                                }
                            }
                            Some(Err(e)) => return Some((Err(e), None)),
                            None => {
                                let actual = Hash(*hasher.finalize().as_bytes());
                                if actual != expected {
                                    let e = zhtp_content::Error::ContentHash { expected, actual };
                                    return Some((Err(Error::Content(e)), None));
                                }
                                remember_manifest(store, expected, encoded).await;
                                return held.map(|last| (Ok(last), None));
                            }
                        }
                    }
                }
            },
        );
        Ok((manifest, checked))
    }

    /// Gets content `hash` into memory (tests, small contents).
    pub async fn get_bytes(&self, hash: &Hash, key: Option<ContentKey>) -> Result<Vec<u8>, Error> {
        let (m, s) = self.get(hash, key).await?;
        // The size is the manifest's word, not yet verified: grow as bytes arrive beyond 64 MiB.
        let mut out = Vec::with_capacity(m.size.min(64 << 20) as usize);
        let mut s = Box::pin(s);
        while let Some(chunk) = s.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out)
    }

    /// One repair round over every content held here (see the module docs).
    pub async fn repair(&self) -> Result<RepairReport, Error> {
        let _one_at_a_time = self.inner.repair_lock.lock().await;
        let mut report = RepairReport::default();
        let me = self.peer_id();
        // First every held content is checked, then the degraded segments this node leads are
        // rebuilt, neediest first.
        let mut checked: Vec<(Hash, Manifest, Holders)> = Vec::new();
        let mut work: Vec<(usize, usize, u32, Vec<PeerId>)> = Vec::new();
        for content in self.held_contents()? {
            report.contents += 1;
            let manifest = match self.manifest(&content).await {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(%content, "cannot check: no manifest ({e})");
                    continue;
                }
            };
            let (mut holders, failed) = self.holders(&content).await?;
            report.failed_holders += failed;
            report.failed_holders += self.spot_check(&manifest, &mut holders).await;
            let k = manifest.code.data as usize;
            let n = manifest.code.total();
            let margin = self.inner.repair.margin.unwrap_or(n - k);
            let mine: HashSet<u32> = self
                .inventory(&content)?
                .iter()
                .map(|h| h.segment)
                .collect();
            for s in 0..manifest.segments.len() as u32 {
                if !mine.contains(&s) {
                    continue;
                }
                report.segments += 1;
                let present: Vec<usize> = (0..n)
                    .filter(|j| holders.get(&(s, *j as u16)).is_some_and(|h| !h.is_empty()))
                    .collect();
                if present.len() >= (k + margin).min(n) {
                    continue;
                }
                report.degraded += 1;
                if present.len() < k {
                    report.unrecoverable += 1;
                    tracing::error!(%content, segment = s, live = present.len(), k, "segment lost: fewer than k shards remain");
                    continue;
                }
                let seg_holders: Vec<PeerId> = present
                    .iter()
                    .flat_map(|j| holders[&(s, *j as u16)].iter().copied())
                    .collect::<HashSet<_>>()
                    .into_iter()
                    .collect();
                let leader = by_distance(&seg_holders, &segment_key(&content, s))[0];
                if leader != me {
                    report.deferred += 1;
                    continue;
                }
                work.push((present.len() - k, checked.len(), s, seg_holders));
            }
            checked.push((content, manifest, holders));
        }
        // The segments closest to loss first, whatever their contents' hashes: the cap on
        // shards per round must not leave a segment one loss from gone behind healthier ones.
        work.sort_by_key(|w| (w.0, w.1, w.2));
        for (spare, c, s, seg_holders) in work {
            if report.rebuilt >= self.inner.repair.max_shards_per_round {
                report.deferred += 1;
                continue;
            }
            let (content, manifest, holders) = &mut checked[c];
            let info = &manifest.segments[s as usize];
            match self
                .rebuild(content, manifest, info, s, holders, &seg_holders)
                .await
            {
                Ok(placed) => {
                    report.rebuilt += placed.len();
                    for (j, p) in placed {
                        holders.entry((s, j as u16)).or_default().push(p);
                    }
                    tracing::info!(%content, segment = s, spare, "repaired");
                }
                Err(e) => tracing::warn!(%content, segment = s, "repair failed: {e}"),
            }
        }
        Ok(report)
    }

    /// Fetches one random shard from each remote holder and drops holders that fail.
    async fn spot_check(&self, manifest: &Manifest, holders: &mut Holders) -> usize {
        use std::hash::BuildHasher as _;
        let me = self.peer_id();
        let mut by_peer: HashMap<PeerId, Vec<(u32, u16)>> = HashMap::new();
        for (at, hs) in holders.iter() {
            for p in hs {
                if *p != me {
                    by_peer.entry(*p).or_default().push(*at);
                }
            }
        }
        let timeout = self.inner.repair.check_timeout;
        let checks = by_peer.into_iter().map(|(p, ats)| {
            let pick = ats
                [std::collections::hash_map::RandomState::new().hash_one(p) as usize % ats.len()];
            let hash = manifest
                .segments
                .get(pick.0 as usize)
                .and_then(|s| s.shards.get(pick.1 as usize))
                .copied();
            let dht = self.inner.dht.clone();
            async move {
                let Some(hash) = hash else { return (p, false) };
                let ok = matches!(
                    tokio::time::timeout(timeout, dht.request(p, Request::Fetch { hash })).await,
                    Ok(Ok(Response::Shard(b))) if Hash(*blake3::hash(&b).as_bytes()) == hash
                );
                (p, ok)
            }
        });
        let bad: Vec<PeerId> = futures::future::join_all(checks)
            .await
            .into_iter()
            .filter(|(_, ok)| !ok)
            .map(|(p, _)| p)
            .collect();
        for p in &bad {
            tracing::warn!(%p, "holder failed the shard check; its shards count as lost");
            for hs in holders.values_mut() {
                hs.retain(|h| h != p);
            }
        }
        bad.len()
    }

    async fn rebuild(
        &self,
        content: &Hash,
        manifest: &Manifest,
        info: &SegmentInfo,
        segment: u32,
        holders: &Holders,
        seg_holders: &[PeerId],
    ) -> Result<Vec<(usize, PeerId)>, Error> {
        let k = manifest.code.data as usize;
        let mut slots = self.gather(info, segment, k, holders).await?;
        let missing: Vec<usize> = (0..slots.len())
            .filter(|j| {
                holders
                    .get(&(segment, *j as u16))
                    .is_none_or(|h| h.is_empty())
            })
            .collect();
        let code = manifest.code;
        let slots = tokio::task::spawn_blocking(move || -> Result<_, zhtp_content::Error> {
            erasure_code(code)?.reconstruct(&mut slots)?;
            Ok(slots)
        })
        .await
        .map_err(|e| Error::Task(e.to_string()))??;
        let mut shards = Vec::new();
        for j in missing {
            let bytes = slots[j].clone().unwrap_or_default();
            let hash = info.shards[j];
            if Hash(*blake3::hash(&bytes).as_bytes()) != hash {
                return Err(Error::Invalid(format!(
                    "rebuilt shard {j} does not match the manifest"
                )));
            }
            shards.push((j, hash, bytes));
        }
        let peers = self.live_peers().await?;
        let avoid: HashSet<PeerId> = seg_holders.iter().copied().collect();
        self.place(*content, segment, shards, &peers, &avoid).await
    }
}
