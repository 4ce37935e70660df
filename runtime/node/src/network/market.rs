//! The market on the DHT ([`zhtp_economy::market`]): every economy round a node publishes its
//! ad (capacity, use, price factor) under `ad/<key>` and its audits' view of others under
//! `rep/<key>`, each signed inside the payload by the node it speaks for (so nobody can file a
//! record under another node's key). A paying put's node fetches the ads and reports of its
//! candidate providers (cached a minute) and, for each shard, picks among the few nodes closest
//! to its hash the cheapest with room, weighed by reputation; the ads' total use is the
//! network utilisation that goes into the pricing plugin's request.
//!
//! Reputation: this node's own audits decide first; of a node it never audited, the standing
//! gossiped by at least two other auditors ([`zhtp_economy::market::gossiped`]); a node's
//! word about itself never counts.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use zhtp_dht::PeerId;
use zhtp_economy::market::{Ad, NEUTRAL_PRICE_BP, Report, gossiped};
use zhtp_economy::reputation::Band;

use super::{Error, Node, blocking, ed25519_of};

/// Record key prefix of an ad: `ad/<Ed25519 key>`.
pub(crate) const AD_KEY: &[u8] = b"ad/";
/// Record key prefix of a reputation report: `rep/<Ed25519 key>`.
pub(crate) const REPORT_KEY: &[u8] = b"rep/";
/// How long a published market record lives (it is republished every economy round).
const RECORD_TTL: Duration = Duration::from_secs(3 * 3600);
/// How long one fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(2);
/// Nodes closest to a shard's hash among which a paying put chooses by price and reputation.
pub const CHOICE: usize = 3;

/// What this node advertises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MarketConfig {
    /// Bytes offered for shards; `None`: what the data dir's disk has free, plus what is held.
    pub capacity: Option<u64>,
    /// Price factor, bp of the gateway's price.
    pub price_bp: u32,
    /// How long others' fetched records (or their absence) are used before they are fetched
    /// again.
    pub refresh: Duration,
}

impl Default for MarketConfig {
    fn default() -> Self {
        Self {
            capacity: None,
            price_bp: NEUTRAL_PRICE_BP,
            refresh: Duration::from_secs(60),
        }
    }
}

/// Fetched market records and this node's settings.
#[derive(Default)]
pub(super) struct MarketState {
    config: MarketConfig,
    ads: HashMap<[u8; 32], (Instant, Option<Ad>)>,
    reports: HashMap<[u8; 32], (Instant, Option<Report>)>,
}

/// The market records of some nodes.
#[derive(Clone, Debug, Default)]
pub struct MarketView {
    /// Ads by node key.
    pub ads: HashMap<[u8; 32], Ad>,
    /// Reports of the nodes that published one.
    pub reports: Vec<Report>,
}

/// Checks a market record's payload against its key; `None` for keys of other kinds.
pub(crate) fn validate(key: &[u8], payload: &[u8]) -> Option<Result<(), String>> {
    let named = |k: &[u8]| -> Result<[u8; 32], String> {
        k.try_into()
            .map_err(|_| "a market record key names no Ed25519 key".to_owned())
    };
    if let Some(k) = key.strip_prefix(AD_KEY) {
        return Some(
            named(k).and_then(|k| Ad::open(payload, &k).map(|_| ()).map_err(|e| e.to_string())),
        );
    }
    let k = key.strip_prefix(REPORT_KEY)?;
    Some(named(k).and_then(|k| {
        Report::open(payload, &k)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }))
}

fn ad_key(node: &[u8; 32]) -> Vec<u8> {
    [AD_KEY, node].concat()
}

fn report_key(node: &[u8; 32]) -> Vec<u8> {
    [REPORT_KEY, node].concat()
}

/// Bytes free on the disk holding `dir`.
fn disk_free(dir: &std::path::Path) -> Option<u64> {
    let s = rustix::fs::statvfs(dir).ok()?;
    Some(s.f_bavail.saturating_mul(s.f_frsize))
}

impl Node {
    fn market_state(&self) -> std::sync::MutexGuard<'_, MarketState> {
        self.inner
            .market
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Advertises `config` from the next [`Self::publish_market`] on.
    pub fn set_market(&self, config: MarketConfig) {
        self.market_state().config = config;
    }

    /// What this node advertises now.
    pub async fn own_ad(&self) -> Result<Ad, Error> {
        let node = self.clone();
        let config = self.market_state().config;
        let (_, used) = blocking(move || node.held_totals()).await??;
        let capacity = match config.capacity {
            Some(c) => c,
            None => used.saturating_add(disk_free(&self.inner.data_dir).unwrap_or(0)),
        };
        Ok(Ad {
            node: self.provider_key(),
            capacity,
            used: used.min(capacity),
            price_bp: config.price_bp,
            issued: zhtp_dht::record::unix_now(),
        })
    }

    /// Publishes this node's ad and its report of the nodes its audits judged.
    pub async fn publish_market(&self) -> Result<(), Error> {
        let me = self.provider_key();
        let sign = |m: &[u8]| self.inner.dht.keypair().sign(m).unwrap_or_default();
        let ad = self.own_ad().await?;
        self.inner
            .dht
            .publish(&ad_key(&me), ad.seal(sign), RECORD_TTL)
            .await?;
        let node = self.clone();
        let mut views: Vec<([u8; 32], i64)> = blocking(move || {
            node.inner
                .book
                .reputations()
                .map_err(super::audits::economy)
        })
        .await??
        .into_iter()
        .filter(|(k, _)| *k != me)
        .collect();
        // The nodes furthest from the start first: what others most need to hear.
        views.sort_by_key(|(_, p)| std::cmp::Reverse((p - zhtp_economy::reputation::START).abs()));
        views.truncate(zhtp_economy::market::MAX_VIEWS);
        if views.is_empty() {
            return Ok(());
        }
        let report = Report {
            auditor: me,
            issued: zhtp_dht::record::unix_now(),
            views,
        };
        self.inner
            .dht
            .publish(&report_key(&me), report.seal(sign), RECORD_TTL)
            .await?;
        Ok(())
    }

    /// The ads and reports of `peers`: fetched from the DHT in parallel (each within a time
    /// bound) unless fetched in the last minute.
    pub async fn market_view(&self, peers: &[PeerId]) -> MarketView {
        let me = self.peer_id();
        let keys: Vec<[u8; 32]> = peers
            .iter()
            .filter(|p| **p != me)
            .filter_map(ed25519_of)
            .collect();
        let now = Instant::now();
        let (stale_ads, stale_reports): (Vec<[u8; 32]>, Vec<[u8; 32]>) = {
            let s = self.market_state();
            let fresh = s.config.refresh;
            let stale = |at: Option<&Instant>| at.is_none_or(|t| now.duration_since(*t) >= fresh);
            (
                keys.iter()
                    .filter(|k| stale(s.ads.get(*k).map(|(t, _)| t)))
                    .copied()
                    .collect(),
                keys.iter()
                    .filter(|k| stale(s.reports.get(*k).map(|(t, _)| t)))
                    .copied()
                    .collect(),
            )
        };
        let dht = &self.inner.dht;
        let fetch = |key: Vec<u8>| async move {
            match tokio::time::timeout(FETCH_TIMEOUT, dht.get_record(&key)).await {
                Ok(Ok(o)) => Some(o.payload),
                _ => None,
            }
        };
        let mut ads: FuturesUnordered<_> = stale_ads
            .iter()
            .map(|k| async move { (*k, fetch(ad_key(k)).await) })
            .collect();
        let mut fetched_ads = Vec::new();
        while let Some((k, payload)) = ads.next().await {
            // Records are validated where they are stored; opened again here all the same.
            fetched_ads.push((k, payload.and_then(|p| Ad::open(&p, &k).ok())));
        }
        let mut reports: FuturesUnordered<_> = stale_reports
            .iter()
            .map(|k| async move { (*k, fetch(report_key(k)).await) })
            .collect();
        let mut fetched_reports = Vec::new();
        while let Some((k, payload)) = reports.next().await {
            fetched_reports.push((k, payload.and_then(|p| Report::open(&p, &k).ok())));
        }
        let mut s = self.market_state();
        for (k, ad) in fetched_ads {
            s.ads.insert(k, (now, ad));
        }
        for (k, r) in fetched_reports {
            s.reports.insert(k, (now, r));
        }
        MarketView {
            ads: keys
                .iter()
                .filter_map(|k| s.ads.get(k).and_then(|(_, a)| *a).map(|a| (*k, a)))
                .collect(),
            reports: s.reports.values().filter_map(|(_, r)| r.clone()).collect(),
        }
    }

    /// The network's storage utilisation from the ads this node knows, in bp (0..=10,000);
    /// neutral (5,000) when it knows none.
    pub fn utilization_bp(&self) -> u16 {
        let s = self.market_state();
        let (used, capacity) = s
            .ads
            .values()
            .filter_map(|(_, a)| a.as_ref())
            .fold((0u128, 0u128), |(u, c), a| {
                (u + u128::from(a.used), c + u128::from(a.capacity))
            });
        if capacity == 0 {
            return zhtp_host::abi::pricing::QuoteRequest::NEUTRAL_UTILIZATION_BP;
        }
        (used * 10_000 / capacity).min(10_000) as u16
    }

    /// `node`'s points: this node's own audits when it ran any, else what at least two other
    /// auditors report (the node's own word never), else the start.
    pub fn points_of(&self, node: &[u8; 32]) -> Result<i64, Error> {
        if let Some(p) = self
            .inner
            .book
            .recorded_points(node)
            .map_err(super::audits::economy)?
        {
            return Ok(p);
        }
        let s = self.market_state();
        let reports: Vec<Report> = s.reports.values().filter_map(|(_, r)| r.clone()).collect();
        Ok(gossiped(node, &reports).unwrap_or(zhtp_economy::reputation::START))
    }

    /// Among `candidates` (closest first), the node a paying put gives a shard of `bytes`: of
    /// the [`CHOICE`] closest, the cheapest with room by its ad (a node without an ad is priced
    /// neutral and assumed to have room), its price weighed by its band, the closest among
    /// equals; of all of them if none of those qualifies; `None` if none has room.
    pub(super) fn choose(
        &self,
        candidates: &[PeerId],
        bytes: u64,
        view: &MarketView,
    ) -> Option<PeerId> {
        let bands = self.audit_config().bands;
        let cost = |p: &PeerId| -> Option<u64> {
            let key = ed25519_of(p)?;
            let ad = view.ads.get(&key);
            if ad.is_some_and(|a| a.free() < bytes) {
                return None;
            }
            let price = u64::from(ad.map_or(NEUTRAL_PRICE_BP, |a| a.price_bp));
            let weight: u64 = match bands.band(self.points_of(&key).ok()?) {
                Band::High => 9_000,
                Band::Normal => 10_000,
                Band::Low => 12_500,
                Band::Banned => return None,
            };
            Some(price * weight)
        };
        let best = |among: &[PeerId]| {
            among
                .iter()
                .filter_map(|p| Some((cost(p)?, *p)))
                .min_by_key(|(c, _)| *c)
                .map(|(_, p)| p)
        };
        // Further away only when none of the closest qualifies.
        best(&candidates[..candidates.len().min(CHOICE)]).or_else(|| best(candidates))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zhtp_identity::Identity;

    #[test]
    fn market_records_validate_only_under_the_key_that_signed_them() {
        let (a, b) = (Identity::generate().unwrap(), Identity::generate().unwrap());
        let (ka, kb) = (a.public().signing, b.public().signing);
        let ad = Ad {
            node: ka,
            capacity: 10,
            used: 1,
            price_bp: NEUTRAL_PRICE_BP,
            issued: 1,
        };
        let good = ad.seal(|m| a.sign(m).to_vec());
        assert_eq!(validate(&ad_key(&ka), &good), Some(Ok(())));
        // B's valid signature over an ad about A, filed under A: refused.
        let forged = ad.seal(|m| b.sign(m).to_vec());
        assert!(matches!(validate(&ad_key(&ka), &forged), Some(Err(_))));
        // A's own ad filed under B's key: refused.
        assert!(matches!(validate(&ad_key(&kb), &good), Some(Err(_))));
        assert!(matches!(validate(b"ad/short", &good), Some(Err(_))));
        let report = Report {
            auditor: kb,
            issued: 1,
            views: vec![(ka, -600)],
        };
        let sealed = report.seal(|m| b.sign(m).to_vec());
        assert_eq!(validate(&report_key(&kb), &sealed), Some(Ok(())));
        assert!(matches!(validate(&report_key(&ka), &sealed), Some(Err(_))));
        // Other kinds are not the market's to judge.
        assert_eq!(validate(b"manifest/x", b""), None);
    }
}
