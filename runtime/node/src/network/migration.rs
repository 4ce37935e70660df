//! Migrations: content put through this node moved to the tier and code its tier plugin
//! chooses at a review, in the background.
//!
//! A review asks the tier plugin about every content put through this node, with its age, the
//! reads this node served in the last 30 days and how long it has been idle ([`Reads`], kept
//! per content in the index). When the answer differs from the stored tier and code, the node
//! re-codes the content: each segment's stored bytes are rebuilt from k shards and split again
//! under the new code ([`zhtp_content::recode`]: no key is needed, the bytes stay encrypted),
//! the new shards are placed like a put's, and the manifest is committed and published in
//! place of the old one under the same content address. The old shards are then unreferenced
//! and their holders collect them after their grace period, as after a re-put.
//!
//! Paid content moves with its storage contract. The client's mandate bought a term of
//! storage for a price; which code and which holders is the placing node's choice (the client
//! never signed it), so the node may re-code within the same mandate: a *successor* contract,
//! identical but for its shards, their holders and its audit commitment, is signed by the
//! client's mandate signature and by every new holder before any shard goes out (a node that
//! charges admits a shard only under a contract naming it); once the new manifest is
//! published, the successor takes over the old contract's settled periods and, in one ledger
//! batch, what is left of its escrow ([`zhtp_economy::Ledger::move_escrow`]). The client pays
//! nothing more and gets nothing back; no period is paid twice; every period that ended before
//! the hand-on is settled first, to the old holders, and the one in progress is the new
//! holders'; the old holders collect their shards as unreferenced. The successor is held in the
//! book until it is handed on, so a node stopped in between hands it on at its next review. A
//! contract with less than
//! a period to go is not handed on, and content this node has no running contract for is not
//! moved on a network that charges (nobody would pay its new holders): both are deferred.
//!
//! Bounded: at most [`MOVES_PER_REVIEW`] migrations are tried per review, and a content whose
//! migration was tried (done or failed) is not tried again for [`RETRY_SECS`]: a plugin
//! changing its mind, or churn estimates that swing, cannot keep the network re-coding. A
//! migration is dropped, its new shards left to be collected, when the manifest changed
//! meanwhile, when it took longer than half this node's orphan grace (holders may already be
//! collecting its first shards), or when the network refuses the new manifest (the old one is
//! put back).

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use zhtp_content::{CodeParams, EncodedSegment, Manifest, SegmentInfo};
use zhtp_dht::protocol::MAX_SHARD;
use zhtp_economy::audit::{self, Prepared};
use zhtp_economy::contract::{State, StorageContract, Terms};
use zhtp_host::abi::tier::{Choice, Facts};
use zhtp_store::Cf;
use zhtp_types::{Hash, StorageTier};

use super::audits::economy;
use super::contracts::{MAX_CHALLENGES_PER_SHARD, Plan, Planner};
use super::{Error, Node, blocking};

/// Index key prefix of a content's [`Reads`].
const READS: &[u8] = b"reads/";
/// Index key prefix of the time a content's migration was last tried.
const TRIED: &[u8] = b"moved/";
/// Most migrations tried per review.
pub const MOVES_PER_REVIEW: usize = 4;
/// A content whose migration was tried is not tried again for this long: a day.
pub const RETRY_SECS: u64 = 86_400;
/// Days of reads remembered.
const DAYS: usize = 30;
const DAY_SECS: u64 = 86_400;

/// Reads of a content this node served: one counter per day of the last [`DAYS`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reads {
    /// Unix seconds of the last read.
    pub last: u64,
    /// Reads per day, indexed by day number modulo [`DAYS`]; only days after
    /// `last / DAY_SECS - DAYS` count.
    days: Vec<u32>,
}

impl Reads {
    /// One more read at `now`.
    fn add(&mut self, now: u64) {
        self.age_to(now);
        self.days.resize(DAYS, 0);
        let i = (now / DAY_SECS) as usize % DAYS;
        self.days[i] = self.days[i].saturating_add(1);
        // A clock stepping back does not move the last read back (the ring is aged by it).
        self.last = self.last.max(now);
    }

    /// Clears the counters of the days between the last read and `now`: they had none.
    fn age_to(&mut self, now: u64) {
        let (from, to) = (self.last / DAY_SECS, now / DAY_SECS);
        if to <= from {
            return;
        }
        for d in (from + 1..=to).take(DAYS) {
            if let Some(c) = self.days.get_mut(d as usize % DAYS) {
                *c = 0;
            }
        }
    }

    /// Reads in the last [`DAYS`] days as of `now`.
    pub fn last_30_days(&self, now: u64) -> u32 {
        let mut aged = self.clone();
        aged.age_to(now);
        aged.days.iter().fold(0u32, |a, c| a.saturating_add(*c))
    }
}

fn reads_key(content: &Hash) -> Vec<u8> {
    [READS, content.as_bytes()].concat()
}

/// What a review did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewReport {
    /// Contents put through this node, asked about.
    pub reviewed: usize,
    /// Moved: content, the tier and code before, and after.
    pub migrated: Vec<Migrated>,
    /// Moves the plugin proposed that nothing here pays for: a storage contract with less
    /// than a period left, or content without one on a network that charges (module docs).
    pub deferred: usize,
    /// Moves that failed (logged; the content stays as it was).
    pub failed: usize,
    /// Why each failed move failed: `content: reason`.
    #[serde(default)]
    pub errors: Vec<String>,
    /// Storage contracts handed on late: their content was moved by an earlier migration that
    /// stopped before its contract followed.
    #[serde(default)]
    pub resumed: usize,
    /// Contents the tier plugin could not judge (it failed; the content stays).
    pub unjudged: usize,
    /// Moves left for a later review: tried within the last day, or past this review's
    /// budget of moves.
    #[serde(default)]
    pub later: usize,
}

/// One content moved by a review.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Migrated {
    /// The content.
    #[serde(with = "crate::wire::hex")]
    pub content: Hash,
    /// Tier before.
    pub from_tier: StorageTier,
    /// Code before, `k+m`.
    pub from_code: String,
    /// Tier after.
    pub to_tier: StorageTier,
    /// Code after, `k+m`.
    pub to_code: String,
}

impl Node {
    /// Counts a read of `content` when it was put through this node (what reviews judge
    /// idleness by). A failure to count is logged, never a failed get.
    pub(super) fn record_read(&self, content: &Hash) {
        let store = &self.inner.store;
        let counted = (|| -> Result<(), Error> {
            if !self.inner.local.is_own(content)? {
                return Ok(());
            }
            let key = reads_key(content);
            let mut reads: Reads = store
                .get(Cf::Index, &key)?
                .and_then(|b| postcard::from_bytes(&b).ok())
                .unwrap_or_default();
            reads.add(zhtp_dht::record::unix_now());
            let bytes = postcard::to_allocvec(&reads).map_err(|e| Error::Task(e.to_string()))?;
            let mut b = store.batch();
            store.put(&mut b, Cf::Index, &key, &bytes)?;
            store.write(b)?;
            Ok(())
        })();
        if let Err(e) = counted {
            tracing::debug!(%content, "read not counted: {e}");
        }
    }

    /// The reads of `content` counted here.
    pub fn reads(&self, content: &Hash) -> Result<Reads, Error> {
        Ok(self
            .inner
            .store
            .get(Cf::Index, &reads_key(content))?
            .and_then(|b| postcard::from_bytes(&b).ok())
            .unwrap_or_default())
    }

    /// One review of every content put through this node (see the module docs); one at a
    /// time (the maintenance loop and `POST /review` would otherwise move a content twice).
    pub async fn review(&self) -> Result<ReviewReport, Error> {
        let _one_at_a_time = self.inner.review_lock.lock().await;
        let mut report = ReviewReport::default();
        let node = self.clone();
        report.resumed = blocking(move || node.resume_successions()).await??;
        let node = self.clone();
        let own = blocking(move || node.inner.local.list(None)).await??;
        let nodes = self.known_nodes().await;
        let churn = self.churn();
        let now = zhtp_dht::record::unix_now();
        let node = self.clone();
        let (running, other) = blocking(move || -> Result<_, Error> {
            let running: HashMap<Hash, StorageContract> = node
                .escrowed()?
                .into_iter()
                .filter(|c| matches!(c.state(), State::Active | State::Resolved))
                .map(|c| (c.terms().content, c))
                .collect();
            let other: HashSet<Hash> = node
                .contracts()
                .list(usize::MAX)
                .map_err(economy)?
                .into_iter()
                .map(|c| c.terms().content)
                .filter(|h| !running.contains_key(h))
                .collect();
            Ok((running, other))
        })
        .await??;
        let mut tried = 0;
        for summary in own {
            let hash = summary.content_hash;
            let (node, h) = (self.clone(), hash);
            let looked = blocking(move || -> Result<_, Error> {
                Ok((
                    node.inner.local.manifest(&h)?,
                    node.reads(&h)?,
                    node.tried_at(&h)?,
                ))
            })
            .await??;
            let (Some(manifest), reads, last_try) = looked else {
                continue;
            };
            report.reviewed += 1;
            let age = now.saturating_sub(manifest.metadata.created);
            let facts = Facts {
                size: manifest.size,
                tier: manifest.tier,
                data: manifest.code.data,
                parity: manifest.code.parity,
                age_secs: age,
                reads_30d: reads.last_30_days(now),
                idle_secs: now
                    .saturating_sub(reads.last.max(manifest.metadata.created))
                    .min(age),
                nodes,
                lifetime_secs: churn.lifetime_secs,
                repair_secs: churn.repair_secs,
            };
            let node = self.clone();
            let choice = blocking(move || node.tier_plugin().map(|p| p.choose(&facts))).await?;
            let choice = match choice {
                Some(Ok(c)) => c,
                Some(Err(e)) => {
                    tracing::warn!(content = %hash, "the tier plugin cannot judge it: {e}");
                    report.unjudged += 1;
                    continue;
                }
                None => {
                    report.unjudged += 1;
                    continue;
                }
            };
            let stays = Choice {
                tier: manifest.tier,
                data: manifest.code.data,
                parity: manifest.code.parity,
            };
            if choice == stays {
                continue;
            }
            let payable = match running.get(&hash) {
                // Handed on with at least a period to go: a successor needs signatures and
                // shards placed before its term ends.
                Some(c) => now.saturating_add(c.terms().period_secs) < super::contracts::end_of(c),
                None => !self.charges() && !other.contains(&hash),
            };
            if !payable {
                tracing::info!(content = %hash, ?choice, "migration deferred: new shards need a storage contract, and nothing here pays for one");
                report.deferred += 1;
                continue;
            }
            if tried >= MOVES_PER_REVIEW || now.saturating_sub(last_try) < RETRY_SECS {
                report.later += 1;
                continue;
            }
            tried += 1;
            let (node, h) = (self.clone(), hash);
            blocking(move || node.mark_tried(&h, now)).await??;
            let to = CodeParams {
                data: choice.data,
                parity: choice.parity,
                ..manifest.code
            };
            match self.migrate(&manifest, choice.tier, to).await {
                Ok(_) => report.migrated.push(Migrated {
                    content: hash,
                    from_tier: manifest.tier,
                    from_code: format!("{}+{}", manifest.code.data, manifest.code.parity),
                    to_tier: choice.tier,
                    to_code: format!("{}+{}", to.data, to.parity),
                }),
                Err(e) => {
                    tracing::warn!(content = %hash, "migration failed, the content stays as it was: {e}");
                    report.failed += 1;
                    report.errors.push(format!("{hash}: {e}"));
                }
            }
        }
        Ok(report)
    }

    /// Moves content put through this node to `tier` and `code` (see the module docs), and
    /// returns its new manifest. Nothing changes for readers: the address, the key and the
    /// access list stay.
    pub async fn migrate(
        &self,
        manifest: &Manifest,
        tier: StorageTier,
        code: CodeParams,
    ) -> Result<Manifest, Error> {
        code.validate()?;
        let content = manifest.content_hash;
        // What the network would refuse, refused before anything is placed.
        if u16::from(code.parity) > 2 * u16::from(code.data) {
            return Err(Error::Invalid(format!(
                "a {}+{} code stores more than three times its data",
                code.data, code.parity
            )));
        }
        let widest = manifest
            .segments
            .iter()
            .map(|s| s.stored_len)
            .max()
            .unwrap_or(0);
        let shard = (widest as usize)
            .div_ceil(usize::from(code.data))
            .next_multiple_of(64);
        if shard > MAX_SHARD {
            return Err(Error::Invalid(format!(
                "{}+{} makes shards of {shard} bytes, larger than the network carries ({MAX_SHARD})",
                code.data, code.parity
            )));
        }
        let started = std::time::Instant::now();
        // Not while a repair places shards of the old code.
        let _no_repair = self.inner.repair_lock.lock().await;
        let (mut holders, _) = self.holders(&content).await?;
        // This node's own shards, which it may not announce.
        let me = self.peer_id();
        for h in self.inventory(&content)? {
            let at = holders.entry((h.segment, h.index)).or_default();
            if !at.contains(&me) {
                at.push(me);
            }
        }
        let peers = self.live_peers().await?;
        let node = self.clone();
        let paid = blocking(move || node.running_contract(&content)).await??;
        if paid.is_none() && self.charges() {
            return Err(Error::Payment(format!(
                "no storage contract here pays for {content}: on a network that charges, its new \
                 shards would be refused"
            )));
        }
        let mut segments: Vec<SegmentInfo> = Vec::with_capacity(manifest.segments.len());
        let successor = match paid {
            None => {
                for s in 0..manifest.segments.len() as u32 {
                    let seg = self.recoded(manifest, s, code, &holders).await?;
                    let shards = seg
                        .shards()
                        .enumerate()
                        .map(|(j, (h, b))| (j, h, b.to_vec()))
                        .collect();
                    self.place(content, s, shards, &peers, &HashSet::new(), None)
                        .await?;
                    segments.push(seg.info);
                }
                None
            }
            Some(old) => {
                let (c, prepared, plan, hashes) = self
                    .successor_for(&old, manifest, code, &holders, &peers, shard as u64)
                    .await?;
                // The same shards again (re-coding is deterministic), now to the nodes that
                // signed for them.
                for (s, want) in hashes.iter().enumerate() {
                    let s = s as u32;
                    let seg = self.recoded(manifest, s, code, &holders).await?;
                    if seg.shards().map(|(h, _)| h).ne(want.iter().copied()) {
                        return Err(Error::Invalid(format!(
                            "segment {s} re-coded to other shards the second time; dropped"
                        )));
                    }
                    self.send_planned(content, s, &seg, &plan).await?;
                    segments.push(seg.info);
                }
                Some((old, c, prepared))
            }
        };
        let mut new = manifest.clone();
        (new.tier, new.code, new.segments) = (tier, code, segments);
        new.validate()?;
        if started.elapsed() > self.inner.repair.orphan_grace / 2 {
            return Err(Error::Invalid(format!(
                "the migration of {content} took {:?}, more than half the orphan grace: holders \
                 may be collecting its first shards; dropped",
                started.elapsed()
            )));
        }
        let _publishing = self.inner.manifest_lock.lock().await;
        // Held before the manifest changes: a node stopped after publishing hands the contract
        // on at its next review (`resume_successions`).
        if let Some((old, c, prepared)) = &successor {
            let (node, id, c, p) = (self.clone(), old.id(), c.clone(), prepared.clone());
            blocking(move || node.inner.book.hold_succession(&id, &c, &p))
                .await?
                .map_err(economy)?;
        }
        let undo_hold = |node: Node| {
            let held = successor.as_ref().map(|(old, _, _)| old.id());
            async move {
                if let Some(id) = held {
                    let dropped = blocking(move || node.inner.book.drop_succession(&id)).await;
                    if !matches!(dropped, Ok(Ok(()))) {
                        tracing::error!(contract = %id, "a held succession was not dropped");
                    }
                }
            }
        };
        let (node, old, m) = (self.clone(), manifest.clone(), new.clone());
        let committed = blocking(move || {
            let _positions = node
                .inner
                .positions
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            // Only over the manifest it was made from: an access update or a removal since
            // wins (the new shards are then unreferenced, and collected as such).
            node.inner.local.commit_migration(&old, &m)
        })
        .await?;
        if let Err(e) = committed {
            undo_hold(self.clone()).await;
            return Err(e.into());
        }
        // Not replicated yet: gets through this node use the new manifest already.
        if let Err(e) = self
            .publish_manifest(&content, new.encode(), "migrated manifest")
            .await
        {
            // Refused for good: the old manifest, still the network's, is put back here.
            let (node, old, m) = (self.clone(), manifest.clone(), new.clone());
            blocking(move || node.inner.local.commit_migration(&m, &old)).await??;
            undo_hold(self.clone()).await;
            return Err(Error::Invalid(format!(
                "the network refuses the migrated manifest of {content}: {e}"
            )));
        }
        if let Some((old, c, prepared)) = successor {
            let node = self.clone();
            let moved = blocking(move || node.hand_on(&old.id(), c, &prepared)).await?;
            if let Err(e) = moved {
                // Rare (a disk failing, a term ending meanwhile): said loudly, since the old
                // holders' contract now pays for shards the manifest no longer names.
                tracing::error!(%content, "migrated, but its storage contract stayed: {e}");
                return Err(Error::Payment(format!(
                    "{content} moved to its new shards, but its storage contract could not \
                     follow yet (the next review tries again): {e}"
                )));
            }
        }
        Ok(new)
    }

    /// Segment `s` of `manifest` rebuilt from its holders and re-coded to `code`.
    async fn recoded(
        &self,
        manifest: &Manifest,
        s: u32,
        code: CodeParams,
        holders: &super::Holders,
    ) -> Result<EncodedSegment, Error> {
        let (info, from) = (manifest.segments[s as usize].clone(), manifest.code);
        let mut slots = self
            .gather(&info, s, from.data as usize, holders)
            .await?
            .slots;
        Ok(blocking(move || zhtp_content::recode(s, &info, from, &mut slots, code)).await??)
    }

    /// The storage contract to succeed `old` once its content is re-coded to `code`: the same
    /// terms on the new shards, planned like a put's, with fresh audit challenges for the
    /// periods left, signed by the client (its mandate is the same) and every new holder.
    /// Returns it with its challenges, the plan and each segment's new shard hashes.
    async fn successor_for(
        &self,
        old: &StorageContract,
        manifest: &Manifest,
        code: CodeParams,
        holders: &super::Holders,
        peers: &[zhtp_dht::PeerId],
        shard_bytes: u64,
    ) -> Result<(StorageContract, Vec<Prepared>, Plan, Vec<Vec<Hash>>), Error> {
        use crate::pipeline::Sink as _;
        let t = old.terms();
        let left = t.periods.saturating_sub(old.periods_settled());
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| Error::Task(format!("no randomness: {e}")))?;
        let planner = Planner {
            seed,
            challenges: left.clamp(1, MAX_CHALLENGES_PER_SHARD) as usize,
            // The successor is audited as its predecessor was.
            proofs: t.shards.iter().any(|p| p.proof.is_some()),
        };
        let (mut hashes, mut prepared, mut commitments) = (Vec::new(), Vec::new(), Vec::new());
        for s in 0..manifest.segments.len() as u32 {
            let seg = self.recoded(manifest, s, code, holders).await?;
            let (h, p, c) = planner.store(s, &seg)?;
            hashes.push(h);
            prepared.extend(p);
            commitments.push(c);
        }
        let (plan, mut shards, keys) = self
            .plan_holders(&hashes, peers, shard_bytes, holders)
            .await?;
        super::contracts::set_commitments(&mut shards, &commitments);
        let terms = Terms {
            shards,
            audits: audit::commitment(&prepared),
            ..t.clone()
        };
        let mut c = StorageContract::new(terms).map_err(|e| Error::Payment(e.to_string()))?;
        let client = old
            .signatures()
            .iter()
            .find(|(k, _)| *k == t.client)
            .ok_or_else(|| Error::Payment("the storage contract has no client signature".into()))?;
        c.sign(client.0, &client.1)
            .map_err(|e| Error::Payment(format!("the client's mandate: {e}")))?;
        self.collect_signatures(&mut c, &keys).await?;
        // Checked now, before any shard goes out (and again when it is handed on).
        c.clone()
            .succeed(old)
            .map_err(|e| Error::Payment(e.to_string()))?;
        Ok((c, prepared, plan, hashes))
    }

    /// The running storage contract whose escrow is here for `content`, if there is one: what
    /// a migration of it hands on. Blocking.
    fn running_contract(&self, content: &Hash) -> Result<Option<StorageContract>, Error> {
        let mut running = self.escrowed()?.into_iter().filter(|c| {
            c.terms().content == *content && matches!(c.state(), State::Active | State::Resolved)
        });
        let first = running.next();
        if running.next().is_some() {
            // Which one pays for the shards is not this node's to guess: not moved.
            return Err(Error::Payment(format!(
                "{content} has several running storage contracts here; it is not moved"
            )));
        }
        Ok(first)
    }

    /// Hands `old` on to `new`, its signed successor: `new` takes `old`'s settled periods (as
    /// they stand now: no settlement runs meanwhile), and `old`'s escrow, `new`'s challenges
    /// and the two contracts change in one batch. Blocking.
    fn hand_on(
        &self,
        old: &Hash,
        mut new: StorageContract,
        prepared: &[Prepared],
    ) -> Result<(), Error> {
        let _no_settlement = super::audits::SETTLING
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let book = &self.inner.book;
        let fresh = |id: &zhtp_types::Hash| {
            book.get(id)
                .map_err(economy)?
                .ok_or_else(|| Error::Payment(format!("storage contract {id} is gone")))
        };
        // Every period that has ended is the old holders' (they held the shards through it):
        // settled first, with the audits made of them; the one in progress is the new
        // holders'. (This also catches up a period paid before a crash kept the book from
        // counting it.)
        let now = zhtp_dht::record::unix_now();
        self.settle_one(fresh(old)?, now, &mut Default::default())?;
        let old = fresh(old)?;
        new.succeed(&old)
            .map_err(|e| Error::Payment(e.to_string()))?;
        let moved = self
            .inner
            .local
            .ledger()
            .move_escrow(old.id().0, new.id().0, old.terms().mandate.id().0, |b| {
                book.succeed(b, &old, &new, prepared)
            })
            .map_err(economy)?;
        tracing::info!(from = %old.id(), to = %new.id(), "storage contract handed on with {} in escrow", zhtp_economy::tokens(moved));
        Ok(())
    }

    /// Hands on the successions a migration published but did not hand on (the node stopped,
    /// or the hand-on failed): each whose successor names the shards of the content's manifest
    /// here is handed on now; one whose content no longer has those shards (the migration was
    /// undone, the content removed) is dropped; one whose contract is gone already is dropped.
    /// Returns how many were handed on. Blocking.
    pub(super) fn resume_successions(&self) -> Result<usize, Error> {
        let book = &self.inner.book;
        let mut handed = 0;
        for (old, new, prepared) in book.held_successions().map_err(economy)? {
            let content = new.terms().content;
            let manifest = self.inner.local.manifest(&content)?;
            let named = manifest.is_some_and(|m| {
                new.terms().shards.iter().all(|p| {
                    m.segments
                        .get(p.segment as usize)
                        .and_then(|s| s.shards.get(p.index as usize))
                        == Some(&p.shard)
                })
            });
            if !named || book.get(&old).map_err(economy)?.is_none() {
                book.drop_succession(&old).map_err(economy)?;
                continue;
            }
            match self.hand_on(&old, new, &prepared) {
                Ok(()) => handed += 1,
                Err(e) => {
                    tracing::error!(contract = %old, "a held succession is still not handed on: {e}")
                }
            }
        }
        Ok(handed)
    }

    /// Drops what reviews kept of `content` (its reads, its last migration): it was removed.
    pub(super) fn forget_reviews(&self, content: &Hash) -> Result<(), Error> {
        let store = &self.inner.store;
        let mut b = store.batch();
        store.delete(&mut b, Cf::Index, &reads_key(content))?;
        store.delete(&mut b, Cf::Index, &[TRIED, content.as_bytes()].concat())?;
        store.write(b)?;
        Ok(())
    }

    fn tried_at(&self, content: &Hash) -> Result<u64, Error> {
        Ok(self
            .inner
            .store
            .get(Cf::Index, &[TRIED, content.as_bytes()].concat())?
            .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
            .map_or(0, u64::from_le_bytes))
    }

    fn mark_tried(&self, content: &Hash, now: u64) -> Result<(), Error> {
        let store = &self.inner.store;
        let mut b = store.batch();
        store.put(
            &mut b,
            Cf::Index,
            &[TRIED, content.as_bytes()].concat(),
            &now.to_le_bytes(),
        )?;
        store.write(b)?;
        Ok(())
    }

    /// Storage nodes this node knows, itself included (banned ones not counted): the most
    /// distinct holders a segment can have.
    pub(super) async fn known_nodes(&self) -> u32 {
        let peers = self.live_peers().await.map_or(1, |p| p.len());
        u32::try_from(peers).unwrap_or(u32::MAX).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_count_the_last_30_days_only() {
        let day = DAY_SECS;
        let mut r = Reads::default();
        r.add(100 * day);
        r.add(100 * day + 5);
        r.add(110 * day);
        assert_eq!(r.last_30_days(110 * day), 3);
        assert_eq!(r.last_30_days(129 * day), 3);
        assert_eq!(r.last_30_days(131 * day), 1, "day 100 is past");
        assert_eq!(r.last_30_days(200 * day), 0);
        r.add(200 * day);
        assert_eq!((r.last_30_days(200 * day), r.last), (1, 200 * day));
    }
}
