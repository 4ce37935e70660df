//! Retrieval: manifests from the DHT, holders from providers' inventories, k verified
//! shards per segment fetched with hedging, segments decoded in order and checked by the
//! shared pipeline's read side ([`crate::pipeline::read`]), lost shards placed again.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use futures::stream::FuturesUnordered;
use futures::{Stream, StreamExt as _};
use zhtp_content::{ContentKey, Decoder, EncryptionLevel, Manifest, SegmentInfo};
use zhtp_dht::{PeerId, Request, Response};
use zhtp_store::Cf;
use zhtp_types::Hash;

use crate::pipeline::{Fetched, Source};

use super::{
    Error, Holders, Node, WINDOW, blocking, check_network_manifest, manifest_key, remember_manifest,
};

/// How long a reader waits for more inventories once it knows holders for k shards of every
/// segment.
const HOLDERS_GRACE: Duration = Duration::from_millis(200);
/// A shard that has not arrived after this long is also requested from elsewhere, and its
/// holder is ranked last until it answers fast again.
const HEDGE: Duration = Duration::from_millis(1500);
/// Most peers whose fetch latency is remembered.
const MAX_LATENCIES: usize = 4096;

/// What one get places again at most (read repair); repair rounds do the rest.
const MAX_READ_REPAIRS: usize = 16;

/// A shard rebuilt by a get: segment, shard hash, position, bytes.
type Rebuilt = (u32, Hash, usize, Vec<u8>);

/// How a fetch of one shard ended.
enum Fetch {
    Got(Vec<u8>),
    /// Every holder asked answered that it does not have it, or sent wrong bytes.
    Lost,
    /// No answer that says anything about the shard (timeouts, busy, errors).
    Unavailable,
}

/// A network get's source: each segment's shards fetched from their holders with hedging
/// ([`Node::gather`]), from the pipeline's worker threads. A shard every holder said it lost
/// is rebuilt by the decoder; it is kept here and placed again only once the whole content
/// has matched its address ([`FromNetwork::place_rebuilt`]), so a forged manifest never gets
/// honest readers to spread its shards, and delivery never waits for a placement.
struct FromNetwork {
    node: Node,
    runtime: tokio::runtime::Handle,
    content: Hash,
    holders: Holders,
    /// Closed when the reader drops the stream: a fetch in flight is abandoned.
    reader: tokio::sync::mpsc::Sender<Result<Vec<u8>, Error>>,
    rebuilt: std::sync::Mutex<Vec<Rebuilt>>,
}

impl Source for FromNetwork {
    type Error = Error;

    fn fetch(&self, index: u32, info: &SegmentInfo, k: usize) -> Result<Fetched, Error> {
        // A worker thread of the pipeline, not a runtime thread: blocking on the fetch is what
        // bounds how many segments are in flight.
        self.runtime.block_on(async {
            tokio::select! {
                r = self.node.gather(info, index, k, &self.holders) => r,
                _ = self.reader.closed() => Err(Error::Task("the reader went away".into())),
            }
        })
    }

    fn write_back(
        &self,
        index: u32,
        info: &SegmentInfo,
        rebuilt: Vec<(usize, Vec<u8>)>,
    ) -> Result<usize, Error> {
        let mut kept = self.rebuilt.lock().unwrap_or_else(|e| e.into_inner());
        let room = MAX_READ_REPAIRS.saturating_sub(kept.len());
        let n = rebuilt.len().min(room);
        for (j, bytes) in rebuilt.into_iter().take(n) {
            kept.push((index, info.shards[j], j, bytes));
        }
        Ok(n)
    }
}

impl FromNetwork {
    /// Read repair, after the content verified: the rebuilt shards go to the closest live
    /// nodes that hold nothing of their segment yet, in the background. Best effort: repair
    /// rounds try again.
    fn place_rebuilt(self) {
        let rebuilt = self.rebuilt.into_inner().unwrap_or_else(|e| e.into_inner());
        if rebuilt.is_empty() {
            return;
        }
        let (node, content, holders) = (self.node, self.content, self.holders);
        self.runtime.spawn(async move {
            let peers = match node.live_peers().await {
                Ok(p) => p,
                Err(e) => return tracing::warn!(%content, "read repair skipped: {e}"),
            };
            let mut by_segment: HashMap<u32, Vec<(usize, Hash, Vec<u8>)>> = HashMap::new();
            for (segment, hash, j, bytes) in rebuilt {
                by_segment.entry(segment).or_default().push((j, hash, bytes));
            }
            for (segment, shards) in by_segment {
                let avoid: HashSet<PeerId> = holders
                    .iter()
                    .filter(|((s, _), _)| *s == segment)
                    .flat_map(|(_, hs)| hs.iter().copied())
                    .collect();
                match node.place_rebuilt(content, segment, shards, &peers, &avoid).await {
                    Ok(placed) => tracing::info!(%content, segment, placed = placed.len(), "read repair: rebuilt shards placed again"),
                    Err(e) => tracing::warn!(%content, segment, "read repair failed: {e}"),
                }
            }
        });
    }
}

impl Node {
    /// The manifest of `hash`: this node's own (put through it), else the DHT's (the
    /// publisher's latest: a grant or revoke changes it), else a copy kept here when the DHT
    /// cannot be asked. A manifest from the DHT is checked (signature, internal consistency,
    /// shards the network can carry) but not trusted: it is kept here only once a get has
    /// verified the whole content against it ([`Self::get`]).
    pub async fn manifest(&self, hash: &Hash) -> Result<Manifest, Error> {
        let kept = self.inner.local.manifest(hash)?;
        if let Some(m) = &kept
            && self.inner.local.is_own(hash)?
        {
            return Ok(m.clone());
        }
        let rec = match self.inner.dht.get_record(&manifest_key(hash)).await {
            Ok(r) => r,
            // No record found now (none reached, or not yet republished): the kept copy, verified
            // against the content, is still good. A tombstone is a record: it ends below.
            Err(zhtp_dht::Error::NotFound) => return kept.ok_or(Error::NotFound(*hash)),
            Err(e) => return kept.ok_or_else(|| e.into()),
        };
        if rec.payload.is_empty() {
            return Err(Error::NotFound(*hash)); // removed by its publisher
        }
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
        // No node keeps a content key: a reader unwraps it and hands it over.
        given.map(Some).ok_or(Error::NoKey(m.content_hash))
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

    /// One shard from whichever of `holders` answers first with the right bytes. Without
    /// one, whether the shard is known lost: every holder asked answered (not here, or wrong
    /// bytes); a timeout, a busy refusal or a dead connection says nothing about the shard.
    async fn fetch_shard(&self, hash: Hash, holders: Vec<PeerId>) -> Fetch {
        let me = self.peer_id();
        let mut all_said_lost = true;
        for p in self.rank(&holders) {
            if p == me {
                let store = self.inner.store.clone();
                match tokio::task::spawn_blocking(move || store.shard(&hash)).await {
                    Ok(Ok(Some(b))) => return Fetch::Got(b),
                    Ok(Ok(None) | Err(zhtp_store::Error::Corrupt(_))) => {}
                    _ => all_said_lost = false,
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
                    return Fetch::Got(bytes);
                }
                Ok(Response::Shard(_)) => {
                    tracing::warn!(%p, shard = %hash, "peer sent a wrong shard")
                }
                Ok(Response::NotFound) => {}
                Ok(_) => all_said_lost = false,
                Err(e) => {
                    all_said_lost = false;
                    self.penalise(p, 4 * HEDGE);
                    tracing::debug!(%p, "fetch failed: {e}");
                }
            }
        }
        if all_said_lost && !holders.is_empty() {
            Fetch::Lost
        } else {
            Fetch::Unavailable
        }
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
    /// slow or fails, the next one is requested too. A shard is lost when every holder asked
    /// for it answered that it does not have it (or sent wrong bytes).
    pub(super) async fn gather(
        &self,
        info: &SegmentInfo,
        segment: u32,
        k: usize,
        holders: &Holders,
    ) -> Result<Fetched, Error> {
        let n = info.shards.len();
        let mut slots: Vec<Option<Vec<u8>>> = vec![None; n];
        let mut lost = vec![false; n];
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
                    Some((j, Fetch::Got(bytes))) => { slots[j] = Some(bytes); good += 1; }
                    Some((j, missing)) => {
                        lost[j] = matches!(missing, Fetch::Lost);
                        match order.next() {
                            Some(j) => running.push(launch(j)),
                            None if running.is_empty() => break,
                            None => {}
                        }
                    }
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
        Ok(Fetched { slots, lost })
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
        self.get_from(manifest, key).await
    }

    /// [`Self::get`] of the content `manifest` describes, already looked up (the API checks a
    /// reader's signature against it first: one lookup, and the manifest checked is the one
    /// read).
    pub async fn get_from(
        &self,
        manifest: Manifest,
        key: Option<ContentKey>,
    ) -> Result<
        (
            Manifest,
            impl Stream<Item = Result<Vec<u8>, Error>> + Send + 'static,
        ),
        Error,
    > {
        let hash = &manifest.content_hash;
        let key = self.known_key(&manifest, key)?;
        // Counted for the tier plugin's reviews (off the async workers), before the get starts.
        let (node, h) = (self.clone(), *hash);
        let _ = blocking(move || node.record_read(&h)).await;
        let decoder = Decoder::new(manifest.clone(), key.as_ref())?;
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
        // The shared pipeline's read side on a thread of its own (its workers block on
        // fetches that need the runtime), a window of segments in flight; the segments come
        // out through a channel of one. Dropping the stream closes the channel: the next send
        // fails, fetches in flight are abandoned, and the pipeline stops.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, Error>>(1);
        let source = FromNetwork {
            node: self.clone(),
            runtime: tokio::runtime::Handle::current(),
            content: *hash,
            holders,
            reader: tx.clone(),
            rebuilt: std::sync::Mutex::new(Vec::new()),
        };
        let (expected, store, encoded) = (*hash, self.inner.store.clone(), manifest.encode());
        std::thread::Builder::new()
            .name("zhtp-get".into())
            .spawn(move || {
                let mut send = |plain: Vec<u8>| {
                    tx.blocking_send(Ok(plain))
                        .map_err(|_| Error::Task("the reader went away".into()))
                };
                // A panic (a worker's, or the runtime's at shutdown) must end the stream with
                // an error: a stream that merely stops would read as a complete content.
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    crate::pipeline::read(&expected, &decoder, WINDOW, &source, &mut send, &|_| {})
                }))
                .unwrap_or_else(|_| Err(Error::Task("the get's pipeline panicked".into())));
                match r {
                    Ok(_) => {
                        // Verified: worth keeping (the stream ends only after this).
                        let runtime = source.runtime.clone();
                        let remembered =
                            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                runtime.block_on(remember_manifest(store, expected, encoded))
                            }));
                        if remembered.is_ok() {
                            source.place_rebuilt();
                        }
                    }
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e));
                    }
                }
            })
            .map_err(|e| Error::Task(e.to_string()))?;
        let segments = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
        Ok((manifest, segments))
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
}
