//! Audits, settlement and reputation, run by the node that holds a contract's escrow (the
//! client's node): each round challenges every provider of every running contract on one of
//! its shards ([`zhtp_economy::audit`]); each period that ended is settled from escrow by the
//! audits of that period; a provider whose points fall to the ban threshold gets no new
//! shards, its shards are rebuilt elsewhere, and its pending rewards go back to the client.
//!
//! A holder answers a challenge from its own copy ([`Node::answer_audit`]). An answer later
//! than the audit deadline fails as a slow response: that is also what a holder that does not
//! keep the shard and fetches or rebuilds it from others to answer looks like, since that
//! takes whole shards across the network where an honest holder reads a few kilobytes.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use zhtp_dht::{PeerId, Request, Response};
use zhtp_economy::audit::{self, Challenge, Outcome};
use zhtp_economy::contract::{Event, Sla, State, StorageContract, Violation};
use zhtp_economy::reputation::{Band, Bands, Table};
use zhtp_economy::{Account, PeriodPayout, tokens};
use zhtp_host::QualityPlugin;
use zhtp_host::abi::quality::{Class, Measurements};
use zhtp_store::Cf;
use zhtp_types::Hash;

use super::{Error, Node, blocking, held_key};

/// Failures of the quality plugin in one settlement after which it is not asked again that
/// round (each may cost the call limit; the rest is judged by the built-in rule).
const MAX_PLUGIN_FAILURES: usize = 8;

/// One settlement at a time (the background round and `POST /settle` may meet), and none
/// while a migration hands a contract on to its successor.
pub(super) static SETTLING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// How audits are judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuditConfig {
    /// An answer later than this fails as a slow response. Reading a few kilobytes of a held
    /// shard takes milliseconds; fetching or rebuilding a shard from elsewhere takes whole
    /// shards over the network.
    pub deadline: Duration,
    /// How long to wait for any answer before counting the holder unavailable.
    pub patience: Duration,
    /// Whether this node's paid puts commit to every shard (a Poseidon tree, about 0.25 s per
    /// MiB of shard on two cores) so that its audits of them ask for Groth16 proofs.
    pub proofs: bool,
    /// A proof later than this is data loss.
    pub proof_deadline: Duration,
    /// Points per outcome.
    pub table: Table,
    /// Band thresholds.
    pub bands: Bands,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            deadline: Duration::from_millis(500),
            patience: Duration::from_secs(10),
            proofs: false,
            proof_deadline: super::proving::PROOF_DEADLINE,
            table: Table::default(),
            bands: Bands::default(),
        }
    }
}

/// What an audit round did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditReport {
    /// Running contracts whose escrow this node holds.
    pub contracts: usize,
    /// Challenges sent.
    pub audits: usize,
    /// Answered right and in time.
    pub passed: usize,
    /// Failed: provider (hex key), contract, what.
    pub failed: Vec<(String, Hash, Violation)>,
    /// Providers banned by this round (hex keys).
    pub banned: Vec<String>,
    /// Providers with no challenge left to ask.
    pub exhausted: usize,
    /// Audits not counted: most providers were unreachable at once, which says more about
    /// this node's network than about them.
    pub uncounted: usize,
    /// Contracts skipped: their content was removed or replaced by its client (its shards are
    /// gone on purpose), or they could not be read.
    pub skipped: usize,
    /// The proof audits among `audits`: each one's answer time (ms: the holder's proving and
    /// the way there and back), verification time (µs) and whether it passed.
    #[serde(default)]
    pub proofs: Vec<(u32, u32, bool)>,
}

/// What a settlement did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettleReport {
    /// Periods settled.
    pub periods: usize,
    /// Paid to providers, µZHTP.
    pub released: u64,
    /// Back to clients: penalties and forfeited rewards, µZHTP.
    pub refunded: u64,
    /// Bonuses paid to providers from the incentive pool, µZHTP.
    pub bonuses: u64,
    /// Provider-periods the quality plugin did not judge (it failed, or had failed too often
    /// this round): the built-in rule judged them.
    pub unjudged: usize,
    /// Contracts whose term ended and whose escrow is settled.
    pub completed: usize,
    /// Contracts that could not be settled this time (logged; tried again next time).
    pub failed: usize,
    /// What was left in those escrows and went back to their clients, µZHTP.
    pub returned: u64,
}

/// One node's standing in this node's view (`GET /reputation`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Standing {
    /// Its Ed25519 key, hex.
    pub node: String,
    /// Points.
    pub points: i64,
    /// Band.
    pub band: Band,
}

/// The peer id of an Ed25519 key.
fn peer_of(key: &[u8; 32]) -> Option<PeerId> {
    let pk = libp2p::identity::ed25519::PublicKey::try_from_bytes(key).ok()?;
    Some(PeerId::from_public_key(&pk.into()))
}

fn now() -> u64 {
    zhtp_dht::record::unix_now()
}

/// A ledger or contract-book failure, as a network error.
pub(super) fn economy(e: zhtp_economy::Error) -> Error {
    Error::Task(format!("ledger: {e}"))
}

/// The quality plugin built into the binary (`plugins/quality-sla`).
fn builtin_quality() -> Option<QualityPlugin> {
    static BUILTIN: std::sync::OnceLock<Option<zhtp_host::Plugin>> = std::sync::OnceLock::new();
    super::tiers::builtin(
        &BUILTIN,
        zhtp_host::Kind::Quality,
        zhtp_artifacts::QUALITY_SLA,
    )
    .map(QualityPlugin::new)
}

/// What `outcomes` (one provider's audits in period `n`) measured, with the contract's SLA:
/// the quality plugin's request.
fn measurements(
    n: u32,
    pay: u64,
    outcomes: &[Outcome],
    deadline: Duration,
    sla: &Sla,
) -> Measurements {
    let bp = |v: u32| v.min(10_000) as u16;
    let mut m = Measurements {
        period: n,
        payment: pay,
        deadline_ms: deadline.as_millis().min(u128::from(u32::MAX)) as u32,
        uptime_bp: bp(sla.uptime_bp),
        latency_ms: sla.latency_ms,
        integrity_bp: bp(sla.integrity_bp),
        bandwidth_bp: bp(sla.bandwidth_bp),
        ..Measurements::default()
    };
    let mut total_ms = 0u64;
    // One audit per provider and period is recorded: far below u32::MAX.
    for o in outcomes.iter().take(u32::MAX as usize) {
        m.audits += 1;
        match o {
            Outcome::Passed { latency_ms } => {
                m.passed += 1;
                total_ms += u64::from(*latency_ms);
                m.latency_max_ms = m.latency_max_ms.max(*latency_ms);
            }
            Outcome::Failed(Violation::Unavailability) => m.unanswered += 1,
            Outcome::Failed(Violation::SlowResponse) => m.slow += 1,
            Outcome::Failed(Violation::DataLoss) => m.lost += 1,
            // Audits record no degradation; a breach (no usable key: nothing could be asked)
            // is judged by the host, and counts here as an audit not answered.
            Outcome::Failed(Violation::Degradation | Violation::Breach) => m.unanswered += 1,
        }
    }
    if m.passed > 0 {
        m.latency_avg_ms = (total_ms / u64::from(m.passed)) as u32;
    }
    m
}

/// The contract's class of a quality plugin's violation.
fn violation_of(c: Class) -> Violation {
    match c {
        Class::DataLoss => Violation::DataLoss,
        Class::Unavailability => Violation::Unavailability,
        Class::SlowResponse => Violation::SlowResponse,
        Class::Degradation => Violation::Degradation,
        Class::Breach => Violation::Breach,
    }
}

/// How a provider's period was judged.
struct Judgement {
    /// The most severe violation: what the period's payment is penalized for.
    violation: Option<Violation>,
    /// The bonus earned, bp of the period's payment.
    bonus_bp: u16,
    /// The plugin failed and the built-in rule judged.
    fallback: bool,
}

use super::contracts::end_of;

impl Node {
    /// How this node judges audits.
    pub fn audit_config(&self) -> AuditConfig {
        *self
            .inner
            .audit
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The quality plugin that judges settled periods (`None` only if even the built-in one
    /// cannot load).
    pub fn quality(&self) -> Option<QualityPlugin> {
        let set = self
            .inner
            .quality
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        set.or_else(builtin_quality)
    }

    /// Judges settled periods with `plugin` from now on (loaded as `Kind::Quality`).
    pub fn set_quality(&self, plugin: QualityPlugin) {
        *self
            .inner
            .quality
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(plugin);
    }

    /// Judges one provider's period: by the quality plugin, or, when it fails, by the built-in
    /// rule (the worst violation audited, no bonus), so that a broken plugin never stops
    /// settlement.
    fn judge(&self, m: &Measurements, outcomes: &[Outcome], ask: bool) -> Judgement {
        let fallback = || Judgement {
            violation: audit::worst(outcomes),
            bonus_bp: 0,
            fallback: true,
        };
        let Some(plugin) = self.quality().filter(|_| ask) else {
            return fallback();
        };
        match plugin.assess(m) {
            Ok(a) => Judgement {
                violation: a
                    .violations
                    .iter()
                    .map(|c| violation_of(*c))
                    .max_by_key(|v| audit::severity(*v)),
                bonus_bp: a.bonus_bp,
                fallback: false,
            },
            Err(e) => {
                tracing::warn!(
                    plugin = %plugin.plugin().info().name,
                    "quality plugin failed; the period is judged by the built-in rule: {e}"
                );
                fallback()
            }
        }
    }

    /// Judges audits by `config` from now on.
    pub fn set_audit_config(&self, config: AuditConfig) {
        *self
            .inner
            .audit
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = config;
    }

    /// The hash of the shard this node holds at this position, and the error that says it
    /// holds none (for the caller's later lookups). Blocking.
    pub(super) fn held_shard(
        &self,
        content: Hash,
        segment: u32,
        index: u16,
    ) -> Result<(Hash, impl Fn() -> Error + Copy + use<>), Error> {
        let not_held = move || {
            Error::Invalid(format!(
                "this node holds no shard {index} of segment {segment} of {content}"
            ))
        };
        let v = self
            .inner
            .store
            .get(Cf::Index, &held_key(&content, segment, index))?
            .ok_or_else(not_held)?;
        let hash = v
            .get(..32)
            .and_then(|h| <[u8; 32]>::try_from(h).ok())
            .ok_or_else(not_held)?;
        Ok((Hash(hash), not_held))
    }

    /// A holder's answer to an audit of the shard at this position: read from this node's own
    /// copy. Blocking.
    pub(super) fn answer_audit(
        &self,
        content: Hash,
        segment: u32,
        index: u16,
        challenge: &Challenge,
    ) -> Result<[u8; 32], Error> {
        let store = &self.inner.store;
        let (hash, not_held) = self.held_shard(content, segment, index)?;
        // Only the ranges are read: an honest answer costs a few kilobytes of disk, whatever the
        // shard's size, which is what makes the deadline tight.
        let len = store.shard_len(&hash)?.ok_or_else(not_held)?;
        audit::check(challenge, len.into()).map_err(|e| Error::Invalid(e.to_string()))?;
        let parts = store
            .shard_ranges(&hash, &challenge.ranges)?
            .ok_or_else(not_held)?;
        Ok(audit::digest_parts(challenge, &parts))
    }

    /// This node's view of `node`'s standing.
    pub fn standing(&self, node: &[u8; 32]) -> Result<Standing, Error> {
        let points = self.points_of(node)?;
        Ok(Standing {
            node: hex::encode(node),
            points,
            band: self.audit_config().bands.band(points),
        })
    }

    /// Every node this node's audits gave points.
    pub fn standings(&self) -> Result<Vec<Standing>, Error> {
        let bands = self.audit_config().bands;
        Ok(self
            .inner
            .book
            .reputations()
            .map_err(economy)?
            .into_iter()
            .map(|(node, points)| Standing {
                node: hex::encode(node),
                points,
                band: bands.band(points),
            })
            .collect())
    }

    /// Whether this node's audits banned `peer`.
    pub(super) fn banned(&self, peer: &PeerId) -> bool {
        let Some(key) = super::ed25519_of(peer) else {
            return false;
        };
        // Its own audits first, else what other auditors report (SPEC: never its own word).
        self.points_of(&key)
            .is_ok_and(|p| self.audit_config().bands.band(p) == Band::Banned)
    }

    /// The contracts this node holds the escrow of and has not settled (from the ledger's
    /// open escrows: contracts others offered this node do not crowd them out).
    pub(super) fn escrowed(&self) -> Result<Vec<StorageContract>, Error> {
        let mut out = Vec::new();
        for id in self.inner.local.ledger().open_escrows().map_err(economy)? {
            match self.inner.book.get(&Hash(id)) {
                Ok(Some(c)) => out.push(c),
                Ok(None) => {
                    tracing::error!(contract = %Hash(id), "an open escrow without its contract")
                }
                Err(e) => tracing::error!(contract = %Hash(id), "storage contract unreadable: {e}"),
            }
        }
        Ok(out)
    }

    /// The shards of `c` its client still stores: those of the content's current manifest
    /// here (`None`: the content was removed). A shard removed or replaced on purpose (a
    /// removal, a re-put with a new key) is not audited.
    fn still_stored(&self, c: &StorageContract) -> Option<std::collections::HashSet<(u32, u16)>> {
        let m = self.inner.local.manifest(&c.terms().content).ok()??;
        Some(
            c.terms()
                .shards
                .iter()
                .filter(|p| {
                    m.segments
                        .get(p.segment as usize)
                        .and_then(|s| s.shards.get(p.index as usize))
                        == Some(&p.shard)
                })
                .map(|p| (p.segment, p.index))
                .collect(),
        )
    }

    /// One audit round at time `now` (Unix seconds): every provider of every running contract
    /// whose escrow is here is challenged on one of its shards.
    pub async fn audit_round(&self, now: u64) -> Result<AuditReport, Error> {
        let node = self.clone();
        let contracts = blocking(move || node.escrowed()).await??;
        let mut report = AuditReport::default();
        let mut results = Vec::new();
        for c in contracts {
            let t = c.terms();
            if !matches!(c.state(), State::Active | State::Resolved)
                || now < t.start
                || now >= end_of(&c)
            {
                continue;
            }
            let (node, c2) = (self.clone(), c.clone());
            let Some(stored) = blocking(move || node.still_stored(&c2)).await? else {
                report.skipped += 1;
                continue;
            };
            report.contracts += 1;
            let period = ((now - t.start) / t.period_secs) as u32;
            // Once a period per provider: the challenges last the term.
            let (node, id) = (self.clone(), c.id());
            let done: std::collections::HashSet<[u8; 32]> =
                match blocking(move || node.inner.book.audits(&id, Some(period))).await? {
                    Ok(a) => a.into_iter().map(|(_, p, _)| p).collect(),
                    Err(e) => {
                        tracing::error!(contract = %c.id(), "audit records unreadable: {e}");
                        report.skipped += 1;
                        continue;
                    }
                };
            let asks = t
                .providers()
                .into_iter()
                .filter(|p| !done.contains(p))
                .map(|p| {
                    let (c, stored) = (&c, &stored);
                    async move { (p, self.audit_one(c, p, stored).await) }
                });
            for (p, r) in futures::future::join_all(asks).await {
                match r {
                    Ok(Some((o, detail))) => results.push((c.clone(), period, p, o, detail)),
                    Ok(None) => report.exhausted += 1,
                    Err(e) => tracing::warn!(contract = %c.id(), "audit not made: {e}"),
                }
            }
        }
        // Most providers unreachable at once: this node's own network is the likelier culprit.
        let unreachable = results
            .iter()
            .filter(|r| r.3 == Outcome::Failed(Violation::Unavailability))
            .count();
        let outage = results.len() >= 3 && unreachable * 2 > results.len();
        if outage {
            tracing::warn!(
                unreachable,
                of = results.len(),
                "most providers unreachable: unavailability not counted this round"
            );
        }
        let config = self.audit_config();
        for (c, period, p, outcome, detail) in results {
            if outage && outcome == Outcome::Failed(Violation::Unavailability) {
                report.uncounted += 1;
                continue;
            }
            report.audits += 1;
            let (node, id, sla) = (self.clone(), c.id(), c.terms().sla.latency_ms);
            if let Some(d) = &detail {
                report
                    .proofs
                    .push((d.answer_ms, d.verify_us, d.outcome.violation().is_none()));
            }
            let (before, after) = blocking(move || {
                let book = &node.inner.book;
                match &detail {
                    Some(d) => book.record_proof(&id, period, &p, d)?,
                    None => book.record(&id, period, &p, outcome)?,
                }
                let before = book.points(&p)?;
                let after = book.adjust(&p, config.table.points(outcome, sla))?;
                Ok::<_, zhtp_economy::Error>((before, after))
            })
            .await?
            .map_err(economy)?;
            match outcome.violation() {
                None => report.passed += 1,
                Some(v) => report.failed.push((hex::encode(p), c.id(), v)),
            }
            let bands = config.bands;
            if bands.band(after) == Band::Banned && bands.band(before) != Band::Banned {
                tracing::warn!(provider = %hex::encode(p), points = after, "banned by its audits");
                report.banned.push(hex::encode(p));
            }
        }
        Ok(report)
    }

    /// Audits `provider` under `c` on one of its shards: by a proof when the shards it holds
    /// carry commitments, else by a challenge left; `None` when there is none.
    async fn audit_one(
        &self,
        c: &StorageContract,
        provider: [u8; 32],
        stored: &std::collections::HashSet<(u32, u16)>,
    ) -> Result<Option<(Outcome, Option<audit::ProofAudit>)>, Error> {
        let t = c.terms();
        let held: Vec<_> = t
            .shards
            .iter()
            .filter(|s| s.holder == provider && stored.contains(&(s.segment, s.index)))
            .collect();
        let committed: Vec<_> = held
            .iter()
            .filter_map(|s| s.proof.map(|p| ((s.segment, s.index), p)))
            .collect();
        let mut pick = [0u8; 8];
        getrandom::fill(&mut pick).map_err(|e| Error::Task(format!("no randomness: {e}")))?;
        let pick = u64::from_le_bytes(pick);
        // Shards too large for the circuit carry no commitment: when a provider holds some, half
        // of its audits are digest audits, so those are audited too.
        let by_proof = !committed.is_empty() && (committed.len() == held.len() || pick & 1 == 0);
        if by_proof {
            let Some(peer) = peer_of(&provider) else {
                return Ok(Some((Outcome::Failed(Violation::Breach), None)));
            };
            let (at, commitment) = committed[((pick >> 1) % committed.len() as u64) as usize];
            let d = self.proof_audit(c, provider, peer, at, commitment).await?;
            return Ok(Some((d.outcome, Some(d))));
        }
        let mine: Vec<(u32, u16)> = held.iter().map(|s| (s.segment, s.index)).collect();
        let first = ((pick >> 1) % mine.len().max(1) as u64) as usize;
        let (node, id) = (self.clone(), c.id());
        let taken = blocking(move || {
            for i in 0..mine.len() {
                let (s, j) = mine[(first + i) % mine.len()];
                if let Some(p) = node.inner.book.take_challenge(&id, s, j)? {
                    return Ok(Some(p));
                }
            }
            Ok::<_, zhtp_economy::Error>(None)
        })
        .await?
        .map_err(economy)?;
        let Some(prepared) = taken else {
            return Ok(None);
        };
        let Some(peer) = peer_of(&provider) else {
            return Ok(Some((Outcome::Failed(Violation::Breach), None)));
        };
        let (content, segment, index) = (t.content, prepared.segment, prepared.index);
        let started = Instant::now();
        let config = self.audit_config();
        let answer: Result<Response, String> = if peer == self.peer_id() {
            let (node, ch) = (self.clone(), prepared.challenge.clone());
            match blocking(move || node.answer_audit(content, segment, index, &ch)).await? {
                Ok(d) => Ok(Response::Audited(d)),
                Err(e) => Ok(Response::Refused(e.to_string())),
            }
        } else {
            let req = Request::Audit {
                content,
                segment,
                index,
                nonce: prepared.challenge.nonce,
                ranges: prepared.challenge.ranges.clone(),
            };
            match tokio::time::timeout(config.patience, self.inner.dht.request(peer, req)).await {
                Ok(r) => r.map_err(|e| e.to_string()),
                Err(_) => Err("no answer in time".into()),
            }
        };
        let took = started.elapsed();
        let latency_ms = u32::try_from(took.as_millis()).unwrap_or(u32::MAX);
        let outcome = match answer {
            Ok(Response::Audited(d)) if d != prepared.expect => {
                Outcome::Failed(Violation::DataLoss)
            }
            Ok(Response::Audited(_)) if took > config.deadline => {
                Outcome::Failed(Violation::SlowResponse)
            }
            Ok(Response::Audited(_)) => Outcome::Passed { latency_ms },
            // It answered, and not with the shard's digest: it does not have it.
            Ok(Response::Refused(why)) if !why.contains(zhtp_dht::protocol::BUSY) => {
                Outcome::Failed(Violation::DataLoss)
            }
            Ok(_) | Err(_) => Outcome::Failed(Violation::Unavailability),
        };
        Ok(Some((outcome, None)))
    }

    /// Settles every period that ended by `now` (Unix seconds) of the contracts whose escrow
    /// is here: each provider is paid its share of the period, less the penalty of its worst
    /// violation that period; a banned provider's share is forfeited; penalties and forfeits
    /// go back to the client. A contract whose periods are all settled ends: what is left in
    /// its escrow (rounding dust) goes back to the client.
    pub async fn settle(&self, now: u64) -> Result<SettleReport, Error> {
        let node = self.clone();
        blocking(move || node.settle_blocking(now)).await?
    }

    fn settle_blocking(&self, now: u64) -> Result<SettleReport, Error> {
        let _one = SETTLING
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut report = SettleReport::default();
        for c in self.escrowed()? {
            let id = c.id();
            if let Err(e) = self.settle_one(c, now, &mut report) {
                tracing::error!(contract = %id, "not settled: {e}");
                report.failed += 1;
            }
        }
        Ok(report)
    }

    /// Settles the ended periods of `c` (and `c` itself once its term is over).
    pub(super) fn settle_one(
        &self,
        mut c: StorageContract,
        now: u64,
        report: &mut SettleReport,
    ) -> Result<(), Error> {
        let (book, ledger) = (&self.inner.book, self.inner.local.ledger());
        let me = self.provider_key();
        let config = self.audit_config();
        let bands = config.bands;
        {
            let id = c.id();
            if !matches!(c.state(), State::Active | State::Resolved) {
                // Nothing moves for a contract that is not running (a put still placing).
                return Ok(());
            }
            let step = |c: &mut StorageContract, e: Event| {
                c.apply(e).map_err(|e| Error::Task(e.to_string()))
            };
            loop {
                let t = c.terms().clone();
                let n = c.periods_settled();
                if n >= t.periods {
                    break;
                }
                let ended = t
                    .start
                    .saturating_add(u64::from(n + 1).saturating_mul(t.period_secs));
                if ended > now {
                    break;
                }
                let mut outcomes: HashMap<[u8; 32], Vec<Outcome>> = HashMap::new();
                for (_, p, o) in book.audits(&id, Some(n)).map_err(economy)? {
                    outcomes.entry(p).or_default().push(o);
                }
                let mut worst: Option<Violation> = None;
                // Paid already (a crash between the ledger and the book): the contract only
                // catches up, and the plugin is not asked again.
                let replayed = ledger.period_receipt(&id.0, n).map_err(economy)?.is_some();
                let mut payout = PeriodPayout::default();
                for p in t.providers().into_iter().filter(|_| !replayed) {
                    let pay = t.holder_payment(n, &p);
                    let banned = bands.band(book.points(&p).map_err(economy)?) == Band::Banned;
                    let audited = outcomes.get(&p).map_or(&[][..], |o| o.as_slice());
                    let m = measurements(n, pay, audited, config.deadline, &t.sla);
                    // A plugin failing again and again is not asked for the rest of the round.
                    let judged = self.judge(&m, audited, report.unjudged < MAX_PLUGIN_FAILURES);
                    report.unjudged += usize::from(judged.fallback);
                    // A breach (a provider without a usable key) is the host's to judge: the
                    // plugin's request has no field for it.
                    let breach = audited.contains(&Outcome::Failed(Violation::Breach));
                    let violation = if breach {
                        Some(Violation::Breach)
                    } else {
                        judged.violation
                    };
                    if let Some(v) = violation {
                        worst = Some(match worst {
                            Some(w) if audit::severity(w) >= audit::severity(v) => w,
                            _ => v,
                        });
                    }
                    // A banned provider forfeits its share. A bonus is paid only for a period
                    // whose every audit passed (whatever the plugin says of an unaudited one),
                    // and never to this node itself (its own audits cost it nothing to pass).
                    let earned = m.audits > 0 && m.passed == m.audits && p != me;
                    let (penalty, bonus_bp) = match (banned, violation) {
                        (true, _) => (pay, 0),
                        (false, Some(v)) => (t.penalty(n, &p, v), 0),
                        (false, None) => (0, if earned { judged.bonus_bp } else { 0 }),
                    };
                    // Each ≤ the period's payment, itself ≤ the price: no sum overflows.
                    payout.refund += penalty;
                    payout.released.push((Account::Key(p), pay - penalty));
                    // ≤ 15% of the share: the cast cannot truncate.
                    let bonus = u128::from(pay) * u128::from(bonus_bp) / 10_000;
                    payout.bonuses.push((Account::Key(p), bonus as u64));
                }
                // Releases, refunds and bonuses of the period: one atomic batch.
                let paid = ledger.pay_period(id.0, n, &payout).map_err(economy)?;
                if !paid.replayed {
                    report.released += paid.released;
                    report.refunded += paid.refunded;
                    report.bonuses += paid.bonuses;
                }
                if let Some(v) = worst {
                    step(&mut c, Event::ViolationFound(v))?;
                    step(&mut c, Event::PenaltyPaid)?;
                    step(&mut c, Event::Resolved)?;
                }
                step(&mut c, Event::PeriodPassed)?;
                report.periods += 1;
                book.update(&c).map_err(economy)?;
            }
            if c.periods_settled() == c.terms().periods
                && matches!(c.state(), State::Active | State::Resolved)
            {
                step(&mut c, Event::TermEnded)?;
                let back = ledger.settle(id.0).map_err(economy)?;
                step(&mut c, Event::EscrowSettled)?;
                book.update(&c).map_err(economy)?;
                report.completed += 1;
                report.returned += back;
                tracing::info!(contract = %id, "storage contract settled; {} back to its client", tokens(back));
            }
        }
        Ok(())
    }

    /// Rebuilds, elsewhere, the shards that providers banned by this node's audits hold under
    /// the contracts whose escrow is here (the client's node looks after what its client pays
    /// for). The new holders get the contract with the shard.
    pub async fn repair_banned(&self) -> Result<usize, Error> {
        let node = self.clone();
        let contracts = blocking(move || node.escrowed()).await??;
        let mut rebuilt = 0;
        for c in contracts {
            let t = c.terms();
            let banned: Vec<[u8; 32]> = t
                .providers()
                .into_iter()
                .filter(|p| peer_of(p).is_some_and(|peer| self.banned(&peer)))
                .collect();
            if banned.is_empty() || now() >= end_of(&c) {
                continue;
            }
            match self.repair_content(&t.content).await {
                Ok(n) => rebuilt += n,
                Err(e) => {
                    tracing::warn!(content = %t.content, "repair of banned providers' shards failed: {e}")
                }
            }
        }
        Ok(rebuilt)
    }
}
