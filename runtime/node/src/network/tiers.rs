//! Where content goes: the tier plugin's choice of tier and erasure code, and the churn the
//! durability model is fed with.
//!
//! The node asks its tier plugin (`--tier-plugin FILE`, or the built-in `tier-policy`) for the
//! tier and code of every put that does not name a code, with what it observes of the
//! network: the storage nodes it is connected to, the mean node lifetime and the mean time a
//! lost shard takes to come back. When the plugin fails, the built-in table
//! ([`PutOptions::code_for`]) decides and the node says so.
//!
//! What is observed and what is assumed: repair time is this node's repair interval (how long
//! a loss can go unseen) plus the mean duration of its repair rounds that rebuilt shards
//! ([`Churn::repairs_observed`] of them); a node that repairs only on request assumes one day.
//! Node lifetime is estimated from the peers this node has seen ([`Node::observe_peers`], each
//! maintenance and economy round): first and last sighting of each, a peer unseen for a day
//! counting as gone. The estimate is the exponential lifetime's maximum-likelihood one with
//! right-censoring (every peer's time seen, gone or not, over the departures), with ten
//! pseudo-departures after 90 days each as the prior, so that a few sightings move it slowly
//! ([`lifetime_estimate`]). A peer seen for less than a day before it went is not counted: a
//! connection that came and went says little about storage nodes, and a swarm of short-lived
//! identities would otherwise talk the estimate down.
//!
//! What this does not see: a live peer this node has not been connected to for a day (idle
//! connections close after minutes; audits and gets keep the useful ones open) counts as
//! gone, and so does every peer after this node itself was down for a day. Both err towards
//! shorter lives: wider codes, a cost rather than a loss, which the prior and the migration
//! budget ([`super::migration`]) bound.

use std::sync::OnceLock;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use zhtp_content::CodeParams;
use zhtp_host::abi::durability::{DEFAULT_LIFETIME_SECS, YEAR_SECS, loss_probability};
use zhtp_host::abi::tier::Facts;
use zhtp_host::{Kind, Plugin, TierPlugin};
use zhtp_store::Cf;
use zhtp_types::StorageTier;

use super::{Error, Node, blocking};
use crate::local::PutOptions;

/// Repair time assumed by a node that repairs only on request (`--repair-interval 0`).
const ON_REQUEST_REPAIR_SECS: u64 = 86_400;
/// Index key prefix of a peer's first and last sighting.
const SEEN: &[u8] = b"seen/";
/// A peer unseen this long is gone.
pub const GONE_AFTER_SECS: u64 = 86_400;
/// A peer that went after being seen for less than this is not counted: a day.
pub const MIN_LIFE_SECS: u64 = 86_400;
/// Weight of the 90-day prior, in pseudo-departures.
const PRIOR_DEPARTURES: u128 = 10;
/// Most peers whose sightings are kept (the longest unseen are forgotten first).
const MAX_SIGHTED: usize = 4_096;

/// The mean node lifetime the `sightings` (first, last seen, unix seconds) give at `now`, and
/// the departures counted (see the module docs).
pub fn lifetime_estimate(sightings: impl IntoIterator<Item = (u64, u64)>, now: u64) -> (u64, u64) {
    let (mut exposure, mut departures) = (
        PRIOR_DEPARTURES * u128::from(DEFAULT_LIFETIME_SECS),
        PRIOR_DEPARTURES,
    );
    let mut counted = 0;
    for (first, last) in sightings {
        let life = u128::from(last.saturating_sub(first));
        let gone = now.saturating_sub(last) >= GONE_AFTER_SECS;
        if gone && life < u128::from(MIN_LIFE_SECS) {
            continue;
        }
        exposure += life;
        if gone {
            departures += 1;
            counted += 1;
        }
    }
    let mean = u64::try_from(exposure / departures)
        .unwrap_or(u64::MAX)
        .max(1);
    (mean, counted)
}

fn seen_key(peer: &zhtp_dht::PeerId) -> Vec<u8> {
    [SEEN, &peer.to_bytes()[..]].concat()
}

/// The churn the durability model is fed with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Churn {
    /// Mean node lifetime, seconds (estimated from sightings: see the module docs).
    pub lifetime_secs: u64,
    /// Mean time until a lost shard is rebuilt, seconds.
    pub repair_secs: u64,
    /// Repair rounds that rebuilt shards, whose duration is part of `repair_secs`.
    pub repairs_observed: u64,
    /// Peers seen to go, whose lives are part of `lifetime_secs` (0: the 90-day prior alone).
    #[serde(default)]
    pub departures_observed: u64,
}

impl Churn {
    /// Modeled probability that a segment coded `code` is lost within a year.
    pub fn loss_per_year(&self, code: CodeParams) -> f64 {
        loss_probability(
            code.data,
            code.parity,
            self.lifetime_secs,
            self.repair_secs,
            YEAR_SECS,
        )
    }
}

/// Most nines a figure states: beyond it the model's float underflows (and JSON has no
/// infinity: serde_json would write `null`, which a client cannot read as a number).
pub const MAX_NINES: f64 = 99.0;

/// `p` as nines, at most [`MAX_NINES`].
pub fn nines(p: f64) -> f64 {
    if p > 0.0 {
        (-p.log10()).min(MAX_NINES)
    } else {
        MAX_NINES
    }
}

/// Durations of repair rounds that rebuilt something.
#[derive(Debug, Default)]
pub(super) struct RepairTimes {
    rounds: u64,
    busy: Duration,
}

/// A tier and code chosen for new content.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Placement {
    /// The tier.
    pub tier: StorageTier,
    /// k.
    pub data: u8,
    /// m.
    pub parity: u8,
    /// Modeled nines per segment per year under `churn`, at most [`MAX_NINES`].
    pub nines: f64,
    /// The churn it was chosen under.
    pub churn: Churn,
    /// Storage nodes known when it was chosen (this one included).
    pub nodes: u32,
    /// Who chose: the plugin's `name@version`, or why the built-in table did.
    pub chosen_by: String,
}

impl Placement {
    /// The erasure code.
    pub fn code(&self) -> CodeParams {
        CodeParams {
            data: self.data,
            parity: self.parity,
            ..PutOptions::code_for(self.tier)
        }
    }
}

/// A plugin built into the binary (`plugins/`), loaded once per process into a host of its
/// own; `None`, logged, if even that fails.
pub(super) fn builtin(
    cell: &'static OnceLock<Option<Plugin>>,
    kind: Kind,
    wasm: &'static [u8],
) -> Option<Plugin> {
    cell.get_or_init(|| {
        match zhtp_host::Host::new(zhtp_host::Limits::default()).and_then(|h| h.load(kind, wasm)) {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::error!("the built-in {} plugin does not load: {e}", kind.as_str());
                None
            }
        }
    })
    .clone()
}

impl Node {
    /// The tier plugin that places new content (`None` only if even the built-in one cannot
    /// load).
    pub fn tier_plugin(&self) -> Option<TierPlugin> {
        static BUILTIN: OnceLock<Option<Plugin>> = OnceLock::new();
        let set = self
            .inner
            .tier
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        set.or_else(|| {
            builtin(&BUILTIN, Kind::Tier, zhtp_artifacts::TIER_POLICY).map(TierPlugin::new)
        })
    }

    /// Places new content with `plugin` from now on (loaded as `Kind::Tier`).
    pub fn set_tier(&self, plugin: TierPlugin) {
        *self
            .inner
            .tier
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(plugin);
    }

    /// The churn this node observes (see the module docs for what is assumed).
    pub fn churn(&self) -> Churn {
        let times = self
            .inner
            .repair_times
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let rounds = times.rounds;
        let repair_secs = match self.inner.repair.interval {
            Some(every) => {
                let mean = if rounds == 0 {
                    Duration::ZERO
                } else {
                    times.busy / u32::try_from(rounds).unwrap_or(u32::MAX)
                };
                every.saturating_add(mean).as_secs().max(1)
            }
            None => ON_REQUEST_REPAIR_SECS,
        };
        let (lifetime, departures) = *self
            .inner
            .lifetime
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Churn {
            lifetime_secs: if lifetime == 0 {
                DEFAULT_LIFETIME_SECS
            } else {
                lifetime
            },
            repair_secs,
            repairs_observed: rounds,
            departures_observed: departures,
        }
    }

    /// Records the peers connected now (first and last sighting of each, in the index) and
    /// estimates the mean node lifetime again from every sighting kept.
    pub async fn observe_peers(&self) -> Result<(), Error> {
        let connected = self.inner.dht.status().await?.connected;
        let node = self.clone();
        blocking(move || -> Result<(), Error> {
            // Held throughout: the economy and maintenance rounds both observe, and each
            // rewrites the table from what it read.
            let mut estimate = node
                .inner
                .lifetime
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let store = &node.inner.store;
            let now = zhtp_dht::record::unix_now();
            let mut b = store.batch();
            let mut sightings: Vec<(Vec<u8>, u64, u64)> = Vec::new();
            for item in store.scan(Cf::Index, SEEN)? {
                let (k, v) = item?;
                if let Ok((first, last)) = postcard::from_bytes::<(u64, u64)>(&v) {
                    sightings.push((k.to_vec(), first, last));
                }
            }
            for peer in &connected {
                let key = seen_key(peer);
                let first = sightings
                    .iter()
                    .find(|(k, ..)| *k == key)
                    .map_or(now, |(_, f, _)| *f);
                sightings.retain(|(k, ..)| *k != key);
                sightings.push((key, first, now));
            }
            // Bounded: the peers unseen longest are forgotten first.
            sightings.sort_by_key(|(_, _, last)| std::cmp::Reverse(*last));
            for (k, ..) in sightings.iter().skip(MAX_SIGHTED) {
                store.delete(&mut b, Cf::Index, k)?;
            }
            sightings.truncate(MAX_SIGHTED);
            // Only the peers seen now changed (the others' entries stand as written).
            for (k, first, last) in sightings.iter().filter(|(_, _, last)| *last == now) {
                let v = postcard::to_allocvec(&(*first, *last))
                    .map_err(|e| Error::Task(e.to_string()))?;
                store.put(&mut b, Cf::Index, k, &v)?;
            }
            store.write(b)?;
            *estimate = lifetime_estimate(sightings.iter().map(|(_, f, l)| (*f, *l)), now);
            Ok(())
        })
        .await?
    }

    /// Records a repair round that rebuilt shards and how long it took.
    pub(super) fn record_repair(&self, took: Duration) {
        let mut times = self
            .inner
            .repair_times
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        times.rounds += 1;
        times.busy += took;
    }

    /// The tier and code for a new content of `size` bytes asked for in `tier`: the tier
    /// plugin's choice under the observed churn, or the built-in table's when it fails.
    pub async fn placement(&self, size: u64, tier: StorageTier) -> Placement {
        let nodes = self.known_nodes().await;
        let churn = self.churn();
        let facts = Facts::put(size, tier, nodes, churn.lifetime_secs, churn.repair_secs);
        let fallback = |why: String| {
            tracing::warn!("the built-in table places the put: {why}");
            (
                tier,
                PutOptions::code_for(tier),
                format!("built-in table ({why})"),
            )
        };
        // Off the async workers: a call runs wasm, and the first use of the built-in plugin
        // compiles it.
        let node = self.clone();
        let chosen = blocking(move || {
            node.tier_plugin()
                .map(|p| (p.plugin().info().name.clone(), p.choose(&facts)))
        })
        .await;
        let (tier, code, chosen_by) = match chosen {
            Ok(Some((name, Ok(c)))) => {
                let code = CodeParams {
                    data: c.data,
                    parity: c.parity,
                    ..PutOptions::code_for(c.tier)
                };
                (c.tier, code, name)
            }
            Ok(Some((_, Err(e)))) => fallback(format!("the tier plugin failed: {e}")),
            Err(e) => fallback(format!("the tier plugin failed: {e}")),
            Ok(None) => fallback("no tier plugin loads".into()),
        };
        Placement {
            tier,
            data: code.data,
            parity: code.parity,
            nines: nines(churn.loss_per_year(code)),
            churn,
            nodes,
            chosen_by,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lifetime_estimate_starts_at_the_prior_and_learns_from_departures() {
        let day = 86_400;
        let now = 1_000 * day;
        // Nothing seen: the prior.
        assert_eq!(lifetime_estimate([], now), (DEFAULT_LIFETIME_SECS, 0));
        // Ten nodes that lived 10 days and went: (10 × 90 + 10 × 10) days over 20 departures.
        let gone = (0..10).map(|i| (i * day, i * day + 10 * day));
        assert_eq!(lifetime_estimate(gone, now), (50 * day, 10));
        // Still there after 300 days: censored, so it raises the estimate without a departure.
        assert_eq!(
            lifetime_estimate([(now - 300 * day, now)], now),
            (120 * day, 0)
        );
        // Identities that came and went within the day are not counted, however many.
        let flashes = (0..1_000).map(|i| (i * 10, i * 10 + 80_000));
        assert_eq!(lifetime_estimate(flashes, now), (DEFAULT_LIFETIME_SECS, 0));
        // Seen an hour ago: not gone yet.
        assert_eq!(
            lifetime_estimate([(now - 20 * day, now - 3_600)], now),
            ((920 * day - 3_600) / 10, 0)
        );
    }

    /// A code so wide and repair so fast that the loss probability underflows to 0: the
    /// figure stays a number JSON can carry.
    #[test]
    fn nines_are_finite_even_where_the_model_underflows() {
        let p = loss_probability(1, 63, DEFAULT_LIFETIME_SECS, 60, YEAR_SECS);
        assert_eq!(
            p, 0.0,
            "the model no longer underflows here: pick a wider case"
        );
        assert_eq!(nines(p), MAX_NINES);
        let json = serde_json::to_string(&nines(p)).unwrap();
        assert_eq!(serde_json::from_str::<f64>(&json).unwrap(), MAX_NINES);
        assert!((nines(1e-9) - 9.0).abs() < 1e-9);
    }
}
