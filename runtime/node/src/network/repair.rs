//! Repair: every held content checked against its holders, degraded segments rebuilt by
//! their leader, neediest first.

use std::collections::{HashMap, HashSet};

use zhtp_content::{Manifest, SegmentInfo, erasure_code};
use zhtp_dht::{PeerId, Request, Response};
use zhtp_types::Hash;

use super::{Error, Holders, Node, RepairReport, by_distance, segment_key};

impl Node {
    /// One repair round over every content held here (see the module docs).
    pub async fn repair(&self) -> Result<RepairReport, Error> {
        let _one_at_a_time = self.inner.repair_lock.lock().await;
        let started = std::time::Instant::now();
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
        if report.rebuilt > 0 {
            // How long a loss takes to heal once seen: the model's repair time.
            self.record_repair(started.elapsed());
        }
        // A failing contract check must not lose the shard repair's report.
        match self.contract_round().await {
            Ok(r) => report.contracts = r,
            Err(e) => tracing::warn!("contract round failed: {e}"),
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
        let mut slots = self.gather(info, segment, k, holders).await?.slots;
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
        self.place_rebuilt(*content, segment, shards, &peers, &avoid)
            .await
    }
}

impl Node {
    /// Repairs one content from this node, whether or not it holds shards of it, counting
    /// holders its audits banned as gone: every segment short of its full code gets its missing
    /// shards rebuilt and placed elsewhere. What the client's node runs for the contents its
    /// clients pay for; returns the shards rebuilt.
    pub(super) async fn repair_content(&self, content: &Hash) -> Result<usize, Error> {
        let _one_at_a_time = self.inner.repair_lock.lock().await;
        let manifest = self.manifest(content).await?;
        let (mut holders, _) = self.holders(content).await?;
        self.spot_check(&manifest, &mut holders).await;
        for hs in holders.values_mut() {
            hs.retain(|p| !self.banned(p));
        }
        let (k, n) = (manifest.code.data as usize, manifest.code.total());
        let mut rebuilt = 0;
        for (s, info) in manifest.segments.iter().enumerate() {
            let s = s as u32;
            let present: Vec<usize> = (0..n)
                .filter(|j| holders.get(&(s, *j as u16)).is_some_and(|h| !h.is_empty()))
                .collect();
            if present.len() >= n || present.len() < k {
                continue;
            }
            let seg_holders: Vec<PeerId> = present
                .iter()
                .flat_map(|j| holders[&(s, *j as u16)].iter().copied())
                .collect::<HashSet<_>>()
                .into_iter()
                .collect();
            match self
                .rebuild(content, &manifest, info, s, &holders, &seg_holders)
                .await
            {
                Ok(placed) => rebuilt += placed.len(),
                Err(e) => tracing::warn!(%content, segment = s, "repair failed: {e}"),
            }
        }
        Ok(rebuilt)
    }
}
