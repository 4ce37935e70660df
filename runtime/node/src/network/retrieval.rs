//! Retrieval: manifests from the DHT, holders from providers' inventories, k verified
//! shards per segment fetched with hedging, segments decoded in order and checked by the
//! shared pipeline's read side ([`crate::pipeline::read`]), lost shards placed again.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicBool;
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

/// A network get's source: each segment's shards fetched from their holders with hedging
/// ([`Node::gather`]), from the pipeline's worker threads; a shard every holder failed to give
/// is rebuilt and placed again, like repair would.
struct FromNetwork {
    node: Node,
    runtime: tokio::runtime::Handle,
    content: Hash,
    holders: Holders,
}

impl Source for FromNetwork {
    type Error = Error;

    fn fetch(&self, index: u32, info: &SegmentInfo, k: usize) -> Result<Fetched, Error> {
        // A worker thread of the pipeline, not a runtime thread: blocking on the fetch is what
        // bounds how many segments are in flight.
        self.runtime
            .block_on(self.node.gather(info, index, k, &self.holders))
    }

    /// Read repair: the rebuilt shards go to the closest live nodes that hold nothing of this
    /// segment yet. Best effort: the get has its bytes, and repair rounds try again.
    fn write_back(
        &self,
        index: u32,
        info: &SegmentInfo,
        rebuilt: Vec<(usize, Vec<u8>)>,
    ) -> Result<usize, Error> {
        let avoid: HashSet<PeerId> = (0..info.shards.len())
            .filter_map(|j| self.holders.get(&(index, j as u16)))
            .flatten()
            .copied()
            .collect();
        let shards = rebuilt
            .into_iter()
            .map(|(j, bytes)| (j, info.shards[j], bytes))
            .collect();
        let placed = self.runtime.block_on(async {
            let peers = self.node.live_peers().await?;
            self.node
                .place(self.content, index, shards, &peers, &avoid)
                .await
        });
        match placed {
            Ok(placed) => {
                tracing::info!(content = %self.content, segment = index, placed = placed.len(), "rebuilt shards placed again");
                Ok(placed.len())
            }
            Err(e) => {
                tracing::warn!(content = %self.content, segment = index, "rebuilt shards not placed: {e}");
                Ok(0)
            }
        }
    }
}

impl Node {
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
    /// slow or fails, the next one is requested too. A shard is lost when every holder asked
    /// for it failed to give it.
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
                    Some((j, Some(bytes))) => { slots[j] = Some(bytes); good += 1; }
                    Some((j, None)) => {
                        lost[j] = true;
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
        let key = self.known_key(&manifest, key)?;
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
        let source = FromNetwork {
            node: self.clone(),
            runtime: tokio::runtime::Handle::current(),
            content: *hash,
            holders,
        };
        // The shared pipeline's read side on a thread of its own (its workers block on
        // fetches that need the runtime), a window of segments in flight; the segments come
        // out through a channel of one. Dropping the stream closes the channel: the next send
        // fails and the pipeline stops.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, Error>>(1);
        let (expected, store, encoded) = (*hash, self.inner.store.clone(), manifest.encode());
        std::thread::Builder::new()
            .name("zhtp-get".into())
            .spawn(move || {
                let mut send = |plain: Vec<u8>| {
                    tx.blocking_send(Ok(plain))
                        .map_err(|_| Error::Task("the reader went away".into()))
                };
                let r = crate::pipeline::read(
                    &expected,
                    &decoder,
                    WINDOW,
                    &source,
                    &mut send,
                    &|_| {},
                    &AtomicBool::new(false),
                );
                match r {
                    // Verified: worth keeping (the stream ends only after this).
                    Ok(_) => source
                        .runtime
                        .block_on(remember_manifest(store, expected, encoded)),
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
