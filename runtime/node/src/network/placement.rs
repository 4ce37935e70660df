//! Placement: a put through the shared pipeline ([`crate::pipeline`]) whose sink sends each
//! shard of a segment to a different node closest to its hash; the manifest is published when
//! every segment is placed.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use zhtp_content::{EncodedSegment, SegmentInfo};
use zhtp_dht::protocol::MAX_SHARD;
use zhtp_dht::{PeerId, Request, Response};
use zhtp_types::Hash;

use zhtp_content::Encoder;
use zhtp_economy::contract::StorageContract;

use super::admission::IN_FLIGHT;
use super::contracts::{Payment, Plan};
use super::{Error, Node, Stored, WINDOW, blocking, by_distance, manifest_key};
use crate::local::PutOptions;
use crate::pipeline::{Encoded, Sink};

/// Sets its flag when dropped: the put it belongs to was abandoned.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// A network put's sink: each segment's shards placed on distinct nodes closest to their
/// hashes ([`Node::place`]), from the pipeline's worker threads.
struct ToNetwork {
    node: Node,
    runtime: tokio::runtime::Handle,
    content: Hash,
    peers: Vec<PeerId>,
    /// A paid put's holders: each shard goes to its planned node, which signed for it, and
    /// nowhere else.
    plan: Option<Plan>,
}

/// A paid put's escrow, given back to the client unless the put succeeded (also when the put
/// is dropped half way: a client that went away).
struct Unwind {
    node: Node,
    contract: Option<StorageContract>,
}

impl Drop for Unwind {
    fn drop(&mut self) {
        if let Some(c) = self.contract.take() {
            let node = self.node.clone();
            tokio::spawn(async move { node.unwind(&c).await });
        }
    }
}

impl crate::pipeline::Sink for ToNetwork {
    /// The node holding each shard.
    type Placed = Vec<PeerId>;
    type Error = Error;

    fn store(&self, index: u32, seg: &EncodedSegment) -> Result<Vec<PeerId>, Error> {
        if let Some(plan) = &self.plan {
            return self
                .runtime
                .block_on(self.node.send_planned(self.content, index, seg, plan));
        }
        let shards = seg
            .shards()
            .enumerate()
            .map(|(j, (h, b))| (j, h, b.to_vec()))
            .collect();
        // A worker thread of the pipeline, not a runtime thread: blocking on the placement
        // is what bounds how many segments are in flight.
        let placed = self.runtime.block_on(self.node.place(
            self.content,
            index,
            shards,
            &self.peers,
            &HashSet::new(),
            None,
        ))?;
        let mut holders = vec![self.node.peer_id(); placed.len()];
        for (j, p) in placed {
            holders[j] = p;
        }
        Ok(holders)
    }

    /// Shards already placed stay where they are: no manifest is published for them, so their
    /// holders collect them after their grace period.
    fn abort(&self, _placed: Vec<Vec<PeerId>>) {}
}

/// Runs the shared pipeline over the file at `path` into `sink` on a thread of its own (not the
/// blocking pool: its workers wait for placements whose local stores need that pool), a window
/// of segments at a time; the same pass hashes what it reads. Dropping this future (a client
/// that went away) cancels it.
pub(super) async fn run_pipeline<S>(
    path: &Path,
    encoder: Arc<Encoder>,
    segment_size: usize,
    sink: S,
) -> Result<Encoded<S::Placed>, Error>
where
    S: Sink<Error = Error> + Send + 'static,
    S::Placed: Send + 'static,
{
    let p = path.to_owned();
    let cancel = Arc::new(AtomicBool::new(false));
    let _cancel_on_drop = CancelOnDrop(cancel.clone());
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("zhtp-put".into())
        .spawn(move || {
            let r = std::fs::File::open(&p)
                .map_err(Error::Input)
                .and_then(|mut f| {
                    crate::pipeline::run(
                        &mut f,
                        &encoder,
                        segment_size,
                        WINDOW,
                        &sink,
                        &|_| {},
                        &cancel,
                    )
                });
            let _ = tx.send(r);
        })
        .map_err(|e| Error::Task(e.to_string()))?;
    rx.await
        .map_err(|_| Error::Task("the put's thread stopped".into()))?
}

impl Node {
    /// Sends each shard of segment `index` to the node `plan` names for it. A node busy writing
    /// the same bytes for another request is asked again shortly; any other refusal fails the
    /// put (another node did not sign for the shard).
    pub(super) async fn send_planned(
        &self,
        content: Hash,
        index: u32,
        seg: &EncodedSegment,
        plan: &Plan,
    ) -> Result<Vec<PeerId>, Error> {
        let sends = seg.shards().enumerate().map(|(j, (hash, bytes))| {
            let peer = plan.get(&(index, j as u16)).copied();
            let data = bytes.to_vec();
            async move {
                let peer = peer.ok_or_else(|| Error::Task(format!("no plan for shard {j}")))?;
                let mut tries = 0;
                loop {
                    match self
                        .send_shard(peer, content, index, j as u16, hash, data.clone(), None)
                        .await
                    {
                        Ok(()) => return Ok(peer),
                        Err((why, _)) if why.contains(IN_FLIGHT) && tries < 100 => {
                            tries += 1;
                            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                        }
                        Err((reason, _)) => {
                            return Err(Error::Placement {
                                segment: index,
                                index: j,
                                reason: format!("{peer}, which signed for it: {reason}"),
                            });
                        }
                    }
                }
            }
        });
        futures::future::join_all(sends).await.into_iter().collect()
    }

    /// Refuses a put of content whose manifest record another node owns: records belong to
    /// their first publisher, so this node's manifest could never be published, and the nodes
    /// holding its shards would collect them as unreferenced.
    async fn check_owner(&self, content: &Hash) -> Result<(), Error> {
        match self.inner.dht.get_record(&manifest_key(content)).await {
            Ok(rec) if rec.publisher != self.peer_id() => Err(Error::Invalid(format!(
                "content {content} is already published by node {}; its manifest record is \
                 that node's (records are keyed by content, not yet by publisher), so this \
                 node cannot publish its own",
                rec.publisher
            ))),
            // Ours, none, or the network cannot say now: go on (publishing checks again).
            _ => Ok(()),
        }
    }

    /// Stores one shard on `peer` (this node included), offering it the storage contract
    /// `offer` first when there is one. An error says why, and whether the peer refused this
    /// shard only (it answered: it may take the segment's other shards) or failed (no answer,
    /// full, or declining the contract: it is not asked again for this segment).
    #[allow(clippy::too_many_arguments)]
    async fn send_shard(
        &self,
        peer: PeerId,
        content: Hash,
        segment: u32,
        index: u16,
        hash: Hash,
        data: Vec<u8>,
        offer: Option<&Arc<Vec<u8>>>,
    ) -> Result<(), (String, bool)> {
        if let Some(contract) = offer
            && peer != self.peer_id()
        {
            let req = Request::Offer {
                contract: contract.to_vec(),
            };
            match self.inner.dht.request(peer, req).await {
                Ok(Response::Signed(_)) => {}
                Ok(Response::Refused(why)) => return Err((why, false)),
                Ok(other) => return Err((format!("unexpected answer {other:?}"), false)),
                Err(e) => return Err((e.to_string(), false)),
            }
        }
        if peer == self.peer_id() {
            return self
                .keep(None, content, segment, index, hash, data)
                .await
                .map_err(|e| {
                    let why = e.to_string();
                    let only_this = matches!(e, Error::Invalid(_)) || why.contains(IN_FLIGHT);
                    (why, only_this)
                });
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
            // Another shard at this place (an earlier put of the content with another key,
            // not yet collected): refused for this shard only.
            // The same bytes being written there by another request (equal shards of other
            // segments or puts): that node is fine, this shard goes elsewhere.
            Ok(Response::Refused(why))
                if why.contains(super::serve::OTHER_SHARD) || why.contains(IN_FLIGHT) =>
            {
                Err((why, true))
            }
            Ok(Response::Refused(why)) => Err((why, false)),
            Ok(other) => Err((format!("unexpected answer {other:?}"), false)),
            Err(e) => Err((e.to_string(), false)),
        }
    }

    /// Places the shards of one segment on distinct nodes, closest to each shard's hash
    /// first; `avoid` are nodes already holding a shard of the segment.
    pub(super) async fn place(
        &self,
        content: Hash,
        segment: u32,
        shards: Vec<(usize, Hash, Vec<u8>)>,
        peers: &[PeerId],
        avoid: &HashSet<PeerId>,
        offer: Option<Arc<Vec<u8>>>,
    ) -> Result<Vec<(usize, PeerId)>, Error> {
        let used = Mutex::new(avoid.clone());
        let down = Mutex::new(HashSet::<PeerId>::new());
        let place_one = |(index, hash, data): (usize, Hash, Vec<u8>)| {
            let (used, down, offer) = (&used, &down, offer.as_ref());
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
                            .send_shard(
                                p,
                                content,
                                segment,
                                index as u16,
                                hash,
                                data.clone(),
                                offer,
                            )
                            .await
                        {
                            Ok(()) => return Ok((index, p)),
                            Err((e, only_this)) => {
                                if only_this {
                                    tracing::debug!(%p, segment, index, "shard not placed: {e}");
                                } else {
                                    tracing::warn!(%p, segment, index, "shard not placed: {e}");
                                    down.lock().unwrap_or_else(|e| e.into_inner()).insert(p);
                                }
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
        };
        // Shards with equal bytes (the zero padding of a small content) have one hash, and a
        // node takes one write of a hash at a time: the n-th shard of a hash goes in round n.
        let mut rounds: Vec<Vec<(usize, Hash, Vec<u8>)>> = Vec::new();
        let mut seen = std::collections::HashMap::<Hash, usize>::new();
        for shard in shards {
            let n = seen.entry(shard.1).or_default();
            if rounds.len() <= *n {
                rounds.push(Vec::new());
            }
            rounds[*n].push(shard);
            *n += 1;
        }
        let mut placed = Vec::new();
        for round in rounds {
            for r in futures::future::join_all(round.into_iter().map(place_one)).await {
                placed.push(r?);
            }
        }
        Ok(placed)
    }

    /// Stores the file at `path` on the network. The content address (BLAKE3 of the plaintext,
    /// which every shard is filed under) is needed before the first shard goes out, so the
    /// file is read twice: once to hash it, once to encode and place the segments, a window of
    /// them at a time (hashed again, so an edit in between fails the put).
    pub async fn put_file(&self, path: &Path, opts: PutOptions) -> Result<Stored, Error> {
        let p = path.to_owned();
        let hashed = tokio::task::spawn_blocking(move || -> std::io::Result<_> {
            let mut h = blake3::Hasher::new();
            h.update_reader(std::fs::File::open(&p)?)?;
            let size = std::fs::metadata(&p)?.len();
            Ok((Hash(*h.finalize().as_bytes()), size))
        })
        .await
        .map_err(|e| Error::Task(e.to_string()))?
        .map_err(Error::Input)?;
        self.put_hashed(path, hashed, opts).await
    }

    /// [`Self::put_file`] of a file whose content hash and size the caller computed as it
    /// wrote the file (the API hashes an upload while spooling it): read once. The encoding pass
    /// checks them, so a wrong pair fails the put and publishes nothing.
    pub async fn put_hashed(
        &self,
        path: &Path,
        hashed: (Hash, u64),
        opts: PutOptions,
    ) -> Result<Stored, Error> {
        Ok(self.put_with(path, hashed, opts, None).await?.0)
    }

    /// [`Self::put_hashed`] under a storage contract paid by `pay` (see [`super::contracts`]):
    /// the contract is signed by every provider and its price locked in escrow before any shard
    /// is sent. A put that fails after that gives the client its money back.
    pub async fn put_paid(
        &self,
        path: &Path,
        hashed: (Hash, u64),
        opts: PutOptions,
        pay: Payment,
    ) -> Result<(Stored, StorageContract), Error> {
        let (stored, c) = self.put_with(path, hashed, opts, Some(pay)).await?;
        Ok((stored, c.expect("a paid put has a contract")))
    }

    async fn put_with(
        &self,
        path: &Path,
        (content_hash, size): (Hash, u64),
        opts: PutOptions,
        pay: Option<Payment>,
    ) -> Result<(Stored, Option<StorageContract>), Error> {
        if u16::from(opts.code.parity) > 2 * u16::from(opts.code.data) {
            // Other nodes refuse such manifests (see `check_network_manifest`).
            return Err(Error::Invalid(format!(
                "a {}+{} code stores more than three times the data; the network takes m ≤ 2k",
                opts.code.data, opts.code.parity
            )));
        }
        let (encoder, key) = opts.encoder()?;
        let encoder = Arc::new(encoder);
        let max_shard = opts.segment_size as usize / opts.code.data as usize + 4096;
        if max_shard > MAX_SHARD {
            return Err(Error::Invalid(format!(
                "segments of {} B at k = {} make shards over the network limit of {} B",
                opts.segment_size, opts.code.data, MAX_SHARD
            )));
        }
        self.check_owner(&content_hash).await?;
        // Checked again at the commit; here so that nothing is placed for a refused put.
        let owner = opts.readers.first().map(|r| r.signing);
        let node = self.clone();
        blocking(move || node.inner.local.may_replace(&content_hash, owner)).await??;
        let peers = self.live_peers().await?;
        let seg_size = opts.segment_size as usize;
        let mut unwind = Unwind {
            node: self.clone(),
            contract: None,
        };
        let plan = match pay {
            Some(pay) => {
                let (c, plan, _) = self
                    .contract_for(path, &encoder, seg_size, content_hash, &peers, pay)
                    .await?;
                unwind.contract = Some(c);
                Some(plan)
            }
            None => None,
        };
        let sink = ToNetwork {
            node: self.clone(),
            runtime: tokio::runtime::Handle::current(),
            content: content_hash,
            peers,
            plan,
        };
        let encoded = run_pipeline(path, encoder.clone(), seg_size, sink).await;
        // An input edited after it was hashed (even to the same size) fails the put: a
        // manifest whose content never verifies is not published.
        let encoded = match encoded {
            Ok(e) if e.size != size || e.content_hash != content_hash => {
                Err(Error::Invalid(format!(
                    "{} changed while being stored ({size} B, then {} B); nothing was published",
                    path.display(),
                    e.size
                )))
            }
            other => other,
        };
        let encoded = match encoded {
            Ok(e) => e,
            Err(e) => {
                // The client gets its money back before it hears of the failure.
                if let Some(c) = unwind.contract.take() {
                    self.unwind(&c).await;
                }
                return Err(e);
            }
        };
        // Every shard is placed with the node that signed for it: the contract stands, whatever
        // happens to the publication (a client going away now does not get its money back).
        let contract = unwind.contract.take();
        let (infos, placement): (Vec<SegmentInfo>, Vec<Vec<PeerId>>) =
            encoded.segments.into_iter().unzip();
        let mut metadata = opts.metadata.clone();
        metadata.created = zhtp_dht::record::unix_now();
        let mut manifest = encoder.manifest(content_hash, size, infos, metadata);
        opts.seal(&mut manifest, key)?;
        let (node, m) = (self.clone(), manifest.clone());
        blocking(move || {
            // A re-put drops the earlier manifest's shards: none may meanwhile gain a position.
            let _positions = node
                .inner
                .positions
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            node.inner.local.commit(&m, Vec::new())
        })
        .await??;
        // Not replicated yet: kept locally and republished later; gets through this node work.
        let published = match self
            .publish_manifest(&content_hash, manifest.encode(), "manifest record")
            .await
        {
            Ok(published) => published,
            Err(e) => {
                // Another publisher's record got here since `check_owner`: ours would never be
                // published, and holders would collect our shards as unreferenced. Undo.
                let (node, h) = (self.clone(), content_hash);
                let _ = blocking(move || node.inner.local.remove(&h)).await;
                return Err(Error::Invalid(format!(
                    "the manifest record of {content_hash} cannot be published from here ({e}); \
                     nothing was stored"
                )));
            }
        };
        Ok((
            Stored {
                manifest,
                placement,
                published,
            },
            contract,
        ))
    }
}
