//! The market on the DHT ([`zhtp_economy::market`]): every economy round a node publishes its
//! ad (capacity, use, price factor) under `ad/<key>` and its audits' view of others under
//! `rep/<key>`. Each record must be signed inside by the node its key names *and* published by
//! that node (a payload alone could be replayed in anyone's envelope to squat the key), and
//! must be recent. A paying put's node fetches the ads and reports of its candidate providers
//! (cached `refresh`) and, for each shard, picks among the few nodes closest to its hash the
//! best band, then the cheapest, with room; the median of the ads' use is the network
//! utilisation that goes into the pricing plugin's request.
//!
//! Reputation: this node's own audits decide first; of a node it never audited, what at least
//! two auditors it trusts (nodes its own audits found Normal or better) report, and only ever
//! downwards ([`zhtp_economy::market::gossiped`]); a node's word about itself never counts.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use zhtp_dht::PeerId;
use zhtp_economy::market::{Ad, NEUTRAL_PRICE_BP, Report, fresh, gossiped};
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

/// Fetched market records, what they add up to, and this node's settings.
#[derive(Default)]
pub(super) struct MarketState {
    config: MarketConfig,
    ads: HashMap<[u8; 32], (Instant, Option<Ad>)>,
    reports: HashMap<[u8; 32], (Instant, Option<Report>)>,
    /// Gossiped points of the nodes the trusted reports name.
    gossip: HashMap<[u8; 32], i64>,
    /// Median use of the nodes of the last view, bp.
    utilization: Option<u16>,
}

/// The market records of some nodes.
#[derive(Clone, Debug, Default)]
pub struct MarketView {
    /// Ads by node key.
    pub ads: HashMap<[u8; 32], Ad>,
    /// Reports of the nodes that published one.
    pub reports: Vec<Report>,
}

/// Checks a market record against its key and publisher: the node the key names signed the
/// payload, published the record, and made it recently. `None` for keys of other kinds.
pub(crate) fn validate(
    key: &[u8],
    payload: &[u8],
    publisher: &PeerId,
) -> Option<Result<(), String>> {
    let (k, is_ad) = match (key.strip_prefix(AD_KEY), key.strip_prefix(REPORT_KEY)) {
        (Some(k), _) => (k, true),
        (None, Some(k)) => (k, false),
        (None, None) => return None,
    };
    let check = || -> Result<(), String> {
        let k: [u8; 32] = k
            .try_into()
            .map_err(|_| "a market record key names no Ed25519 key".to_owned())?;
        if ed25519_of(publisher) != Some(k) {
            return Err("a market record published by another node than it speaks for".into());
        }
        let issued = if is_ad {
            Ad::open(payload, &k).map_err(|e| e.to_string())?.issued
        } else {
            Report::open(payload, &k).map_err(|e| e.to_string())?.issued
        };
        if !fresh(issued, zhtp_dht::record::unix_now()) {
            return Err("a market record too old (or from the future)".into());
        }
        Ok(())
    };
    Some(check())
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
    /// bound) unless fetched within `refresh`. Also works out, for later calls, the gossiped
    /// standings and the network utilisation (the median use of these nodes' ads: one ad moves
    /// it by one rank at most).
    pub async fn market_view(&self, peers: &[PeerId]) -> MarketView {
        let me = self.peer_id();
        let keys: Vec<[u8; 32]> = peers
            .iter()
            .filter(|p| **p != me)
            .filter_map(ed25519_of)
            .collect();
        let now = Instant::now();
        let stale: Vec<[u8; 32]> = {
            let s = self.market_state();
            let refresh = s.config.refresh;
            let old = |at: Option<Instant>| at.is_none_or(|t| now.duration_since(t) >= refresh);
            keys.iter()
                .filter(|k| {
                    old(s.ads.get(*k).map(|(t, _)| *t)) || old(s.reports.get(*k).map(|(t, _)| *t))
                })
                .copied()
                .collect()
        };
        let dht = &self.inner.dht;
        let fetch = |key: Vec<u8>| async move {
            match tokio::time::timeout(FETCH_TIMEOUT, dht.get_record(&key)).await {
                Ok(Ok(o)) => Some(o.payload),
                _ => None,
            }
        };
        // Both records of every stale node at once: one time bound for the lot.
        let mut asks: FuturesUnordered<_> = stale
            .iter()
            .map(|k| async move {
                let (ad, report) = futures::join!(fetch(ad_key(k)), fetch(report_key(k)));
                (*k, ad, report)
            })
            .collect();
        let unix = zhtp_dht::record::unix_now();
        let mut fetched = Vec::with_capacity(stale.len());
        while let Some((k, ad, report)) = asks.next().await {
            // Validated where they are stored; opened again here, and held to their age.
            let ad = ad
                .and_then(|p| Ad::open(&p, &k).ok())
                .filter(|a| fresh(a.issued, unix));
            let report = report
                .and_then(|p| Report::open(&p, &k).ok())
                .filter(|r| fresh(r.issued, unix));
            fetched.push((k, ad, report));
        }
        drop(asks);
        // Whom this node trusts to report: those its own audits found Normal or better.
        let bands = self.audit_config().bands;
        let book = &self.inner.book;
        let trusted = |k: &[u8; 32]| {
            book.recorded_points(k)
                .ok()
                .flatten()
                .is_some_and(|p| matches!(bands.band(p), Band::Normal | Band::High))
        };
        let mut s = self.market_state();
        for (k, ad, report) in fetched {
            s.ads.insert(k, (now, ad));
            s.reports.insert(k, (now, report));
        }
        // Forget what is older than any record could live: nodes long gone stop counting.
        s.ads
            .retain(|_, (t, _)| now.duration_since(*t) < RECORD_TTL);
        s.reports
            .retain(|_, (t, _)| now.duration_since(*t) < RECORD_TTL);
        let reports: Vec<Report> = s.reports.values().filter_map(|(_, r)| r.clone()).collect();
        let mut named: Vec<[u8; 32]> = reports
            .iter()
            .flat_map(|r| r.views.iter().map(|(n, _)| *n))
            .collect();
        named.sort_unstable();
        named.dedup();
        s.gossip = named
            .into_iter()
            .filter_map(|n| Some((n, gossiped(&n, &reports, trusted)?)))
            .collect();
        let ads: HashMap<[u8; 32], Ad> = keys
            .iter()
            .filter_map(|k| s.ads.get(k).and_then(|(_, a)| *a).map(|a| (*k, a)))
            .collect();
        let mut uses: Vec<u16> = ads
            .values()
            .filter(|a| a.capacity > 0)
            .map(|a| (u128::from(a.used) * 10_000 / u128::from(a.capacity)).min(10_000) as u16)
            .collect();
        uses.sort_unstable();
        s.utilization = uses.get(uses.len() / 2).copied();
        MarketView { ads, reports }
    }

    /// The network's storage utilisation, bp (0..=10,000): the median use of the providers
    /// whose ads the last view held; neutral (5,000) before any.
    pub fn utilization_bp(&self) -> u16 {
        self.market_state()
            .utilization
            .unwrap_or(zhtp_host::abi::pricing::QuoteRequest::NEUTRAL_UTILIZATION_BP)
    }

    /// `node`'s points: this node's own audits when it ran any, else what auditors it trusts
    /// report (only ever lower than the start; the node's own word never), else the start.
    pub fn points_of(&self, node: &[u8; 32]) -> Result<i64, Error> {
        if let Some(p) = self
            .inner
            .book
            .recorded_points(node)
            .map_err(super::audits::economy)?
        {
            return Ok(p);
        }
        Ok(self
            .market_state()
            .gossip
            .get(node)
            .copied()
            .unwrap_or(zhtp_economy::reputation::START))
    }

    /// Among `candidates` (closest first), the node a paying put gives a shard of `bytes`, when
    /// `assigned` bytes are already promised to nodes by this put: of the [`CHOICE`] closest,
    /// the best band, then the cheapest by its ad, with room for the shard (a node without an
    /// ad is priced neutral and assumed to have room), the closest among equals; past those,
    /// the closest that qualifies; `None` if none does (all banned or full).
    pub(super) fn choose(
        &self,
        candidates: &[PeerId],
        bytes: u64,
        view: &MarketView,
        assigned: &HashMap<PeerId, u64>,
    ) -> Option<PeerId> {
        let bands = self.audit_config().bands;
        let rank = |p: &PeerId| -> Option<(u8, u32)> {
            let key = ed25519_of(p)?;
            let ad = view.ads.get(&key);
            let promised = assigned.get(p).copied().unwrap_or(0);
            if ad.is_some_and(|a| a.free() < promised.saturating_add(bytes)) {
                return None;
            }
            let band = match bands.band(self.points_of(&key).ok()?) {
                Band::High => 0,
                Band::Normal => 1,
                Band::Low => 2,
                Band::Banned => return None,
            };
            Some((band, ad.map_or(NEUTRAL_PRICE_BP, |a| a.price_bp)))
        };
        let closest = &candidates[..candidates.len().min(CHOICE)];
        closest
            .iter()
            .filter_map(|p| Some((rank(p)?, *p)))
            .min_by_key(|(r, _)| *r)
            .map(|(_, p)| p)
            .or_else(|| candidates.iter().find(|p| rank(p).is_some()).copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zhtp_identity::Identity;

    fn peer(i: &Identity) -> PeerId {
        let pk = libp2p::identity::ed25519::PublicKey::try_from_bytes(&i.public().signing).unwrap();
        PeerId::from_public_key(&pk.into())
    }

    #[test]
    fn market_records_validate_only_from_the_node_they_speak_for_and_only_recent() {
        let (a, b) = (Identity::generate().unwrap(), Identity::generate().unwrap());
        let (ka, kb) = (a.public().signing, b.public().signing);
        let (pa, pb) = (peer(&a), peer(&b));
        let ad = Ad {
            node: ka,
            capacity: 10,
            used: 1,
            price_bp: NEUTRAL_PRICE_BP,
            issued: zhtp_dht::record::unix_now(),
        };
        let good = ad.seal(|m| a.sign(m).to_vec());
        assert_eq!(validate(&ad_key(&ka), &good, &pa), Some(Ok(())));
        // A's own ad, replayed by B in B's envelope to squat A's key: refused.
        assert!(matches!(validate(&ad_key(&ka), &good, &pb), Some(Err(_))));
        // B's valid signature over an ad about A, filed under A: refused.
        let forged = ad.seal(|m| b.sign(m).to_vec());
        assert!(matches!(validate(&ad_key(&ka), &forged, &pa), Some(Err(_))));
        // A's own ad filed under B's key: refused.
        assert!(matches!(validate(&ad_key(&kb), &good, &pb), Some(Err(_))));
        assert!(matches!(validate(b"ad/short", &good, &pa), Some(Err(_))));
        // An old ad of A's, published by A itself: a replay, refused.
        let old = Ad { issued: 1, ..ad }.seal(|m| a.sign(m).to_vec());
        assert!(matches!(validate(&ad_key(&ka), &old, &pa), Some(Err(_))));
        let report = Report {
            auditor: kb,
            issued: zhtp_dht::record::unix_now(),
            views: vec![(ka, -600)],
        };
        let sealed = report.seal(|m| b.sign(m).to_vec());
        assert_eq!(validate(&report_key(&kb), &sealed, &pb), Some(Ok(())));
        assert!(matches!(
            validate(&report_key(&ka), &sealed, &pa),
            Some(Err(_))
        ));
        assert!(matches!(
            validate(&report_key(&kb), &sealed, &pa),
            Some(Err(_))
        ));
        // Other kinds are not the market's to judge.
        assert_eq!(validate(b"manifest/x", b"", &pa), None);
    }
}
