//! Paid storage: the storage contract of a put, made before any shard goes out, and the
//! provider's side of it.
//!
//! The node a client puts through (its *gateway*) holds the client's account in its ledger.
//! A paid put encodes the content once to learn its shards, plans which node holds each
//! (the same rule as a free put: distinct nodes closest to each shard's hash), writes the
//! terms (the price quoted by the gateway's pricing plugin, the client's signed mandate),
//! checks the client can pay, asks every provider to sign (`Offer`), locks the price in
//! escrow, and only then encodes again and sends each shard to its planned holder. A node
//! that charges admits a shard from a peer only when a storage contract it keeps names that
//! shard at that position and its term has not ended.
//!
//! What a provider cannot check: the escrow is in the gateway's ledger, not its own, so it
//! trusts the gateway that offers a contract to pay it (each node's ledger is its own; there
//! is no shared ledger yet). What it does check: the contract and every signature on it, the
//! client's mandate (signed by the client's key, within budget, not expired) and the term.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use zhtp_content::{EncodedSegment, Encoder};
use zhtp_dht::{PeerId, Request, Response};
use zhtp_economy::audit::{self, Prepared};
use zhtp_economy::contract::{Event, Mandate, Penalties, Placement, Sla, StorageContract, Terms};
use zhtp_economy::{Account, tokens};
use zhtp_types::{Hash, MicroZhtp};

use super::audits::economy;
use super::{Error, Node, blocking, by_distance};

/// Seconds a mandate's start may lie ahead of a provider's clock.
const CLOCK_SKEW: u64 = 300;

/// What a client pays a put with: its mandate and signature, and the price the gateway's
/// pricing plugin asks.
#[derive(Clone, Debug)]
pub struct Payment {
    /// What the client signed.
    pub mandate: Mandate,
    /// Its Ed25519 signature over [`Mandate::signing_message`].
    pub signature: Vec<u8>,
    /// The price for the whole term, µZHTP.
    pub price: MicroZhtp,
    /// The network fee, part of the price: paid into the incentive pool, not to providers.
    pub fee: MicroZhtp,
    /// BLAKE3 of the pricing plugin that quoted it.
    pub plugin: Hash,
    /// Commit to the shards and audit them by proofs (also when this node's
    /// [`super::AuditConfig::proofs`] says so).
    pub proofs: bool,
}

/// Which node holds each shard: `(segment, index)` → node.
pub(super) type Plan = HashMap<(u32, u16), PeerId>;

/// The Ed25519 key of a peer id, when it has one (every zhtp node's has).
pub fn ed25519_of(peer: &PeerId) -> Option<[u8; 32]> {
    let mh: &libp2p::multihash::Multihash<64> = peer.as_ref();
    if mh.code() != 0 {
        return None; // hashed, not an inlined key
    }
    let key = libp2p::identity::PublicKey::try_decode_protobuf(mh.digest()).ok()?;
    Some(key.try_into_ed25519().ok()?.to_bytes())
}

/// The first pass of a paid put: the shard hashes of each segment, the audit challenges of
/// each shard and, when asked, their proof commitments (made now, while the shards are at
/// hand).
pub(super) struct Planner {
    pub(super) seed: [u8; 32],
    /// Challenges per shard.
    pub(super) challenges: usize,
    /// Whether to commit to each shard for proof audits.
    pub(super) proofs: bool,
}

/// What the planner makes of one segment: its shard hashes, their challenges, their
/// commitments (empty when not asked for).
pub(super) type Planned = (
    Vec<Hash>,
    Vec<Prepared>,
    Vec<Option<zhtp_proofs::Commitment>>,
);

/// Sets the proof commitment of each placement from `commitments` (per segment, per index).
pub(super) fn set_commitments(
    shards: &mut [Placement],
    commitments: &[Vec<Option<zhtp_proofs::Commitment>>],
) {
    for p in shards {
        p.proof = commitments
            .get(p.segment as usize)
            .and_then(|c| c.get(usize::from(p.index)))
            .copied()
            .flatten();
    }
}

impl crate::pipeline::Sink for Planner {
    type Placed = Planned;
    type Error = Error;

    fn store(&self, index: u32, seg: &EncodedSegment) -> Result<Self::Placed, Error> {
        let mut prepared = Vec::new();
        let hashes = seg
            .shards()
            .enumerate()
            .map(|(j, (h, bytes))| {
                prepared.extend(audit::prepare(
                    index,
                    j as u16,
                    bytes,
                    self.challenges,
                    &self.seed,
                ));
                h
            })
            .collect();
        let commitments = if self.proofs {
            super::proving::commit(&seg.shards().map(|(_, b)| b).collect::<Vec<_>>())
        } else {
            Vec::new()
        };
        Ok((hashes, prepared, commitments))
    }

    fn abort(&self, _placed: Vec<Self::Placed>) {}
}

fn now() -> u64 {
    zhtp_dht::record::unix_now()
}

/// The end of `c`'s term, Unix seconds.
pub(super) fn end_of(c: &StorageContract) -> u64 {
    let t = c.terms();
    t.start
        .saturating_add(u64::from(t.periods).saturating_mul(t.period_secs))
}

/// Most audit challenges prepared per shard: one per period (a provider is audited once a
/// period), up to this. A term with more periods than a provider's shards times this runs
/// out of challenges; proof audits (`zhtp put --proof-audits`) have no such bound.
pub const MAX_CHALLENGES_PER_SHARD: u32 = 32;

impl Node {
    /// Whether this node charges: admits shards from peers only under storage contracts,
    /// and takes puts only with a payment.
    pub fn charges(&self) -> bool {
        self.inner
            .charges
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Makes this node charge (a devnet node does) or stop charging.
    pub fn charge(&self, on: bool) {
        self.inner
            .charges
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// This node's Ed25519 key: its name as a provider in storage contracts.
    pub fn provider_key(&self) -> [u8; 32] {
        ed25519_of(&self.peer_id()).expect("zhtp node keys are Ed25519")
    }

    /// The storage contracts this node keeps.
    pub fn contracts(&self) -> &zhtp_economy::Book {
        &self.inner.book
    }

    /// A provider's answer to an offered contract: checked, kept (so the shards it names may
    /// be stored here) and signed when it names this node; kept and answered with an empty
    /// signature when it does not (a node taking repaired shards of a contract). Blocking.
    pub(super) fn accept_offer(&self, bytes: &[u8]) -> Result<Vec<u8>, Error> {
        let mut c = StorageContract::decode(bytes)
            .map_err(|e| Error::Invalid(format!("not a valid storage contract: {e}")))?;
        let t = c.terms();
        let client_signed = c.signatures().iter().any(|(p, _)| *p == t.client);
        if !client_signed {
            return Err(Error::Invalid(
                "the storage contract carries no mandate signed by its client".into(),
            ));
        }
        let now = now();
        if t.start > now + CLOCK_SKEW {
            return Err(Error::Invalid(
                "the storage contract starts in the future".into(),
            ));
        }
        let end = end_of(&c);
        if end <= now {
            return Err(Error::Invalid("the storage contract's term is over".into()));
        }
        let me = self.provider_key();
        self.check_offered_commitments(&c)?;
        let sig = if t.providers().contains(&me) {
            // A first signature after the start is normal for a successor (a migration keeps
            // its predecessor's start): signed while a whole period of the term is left, not
            // for the last scraps of a term (a stale offer, or one replayed).
            let first = c.signatures().iter().all(|(p, _)| *p != me);
            if first && t.start + CLOCK_SKEW < now && end.saturating_sub(now) < t.period_secs {
                return Err(Error::Invalid(
                    "the storage contract was offered too late: less than a period of its term \
                     is left"
                        .into(),
                ));
            }
            let sig = self
                .inner
                .dht
                .keypair()
                .sign(&c.message_for(&me))
                .map_err(|e| Error::Invalid(format!("cannot sign: {e}")))?;
            c.sign(me, &sig)
                .map_err(|e| Error::Invalid(e.to_string()))?;
            sig
        } else {
            Vec::new()
        };
        // A copy kept already stays: it may be more complete (the client's node keeps the
        // contract with every signature, active) than the one offered.
        if self.inner.book.get(&c.id()).map_err(economy)?.is_none() {
            self.inner.book.keep(&c).map_err(economy)?;
        }
        Ok(sig)
    }

    /// Places rebuilt shards of one segment (repair, read repair). On a network that charges
    /// a node takes a shard only under a contract that pays for it: the one kept here goes
    /// along with the shards.
    pub(super) async fn place_rebuilt(
        &self,
        content: Hash,
        segment: u32,
        shards: Vec<(usize, Hash, Vec<u8>)>,
        peers: &[PeerId],
        avoid: &HashSet<PeerId>,
    ) -> Result<Vec<(usize, PeerId)>, Error> {
        let offer = match (self.charges(), shards.first()) {
            (true, Some((j, hash, _))) => {
                let (node, h, j) = (self.clone(), *hash, *j as u16);
                blocking(move || node.offer_for(&content, segment, j, &h))
                    .await??
                    .map(Arc::new)
            }
            _ => None,
        };
        self.place(content, segment, shards, peers, avoid, offer)
            .await
    }

    /// The contract to offer a node that is to take a rebuilt `hash` at this position: one
    /// kept here that pays for it, encoded. Blocking.
    fn offer_for(
        &self,
        content: &Hash,
        segment: u32,
        index: u16,
        hash: &Hash,
    ) -> Result<Option<Vec<u8>>, Error> {
        let now = now();
        let found = self
            .inner
            .book
            .covering(content, segment, index, hash)
            .map_err(economy)?;
        Ok(found
            .iter()
            .find(|c| end_of(c) > now)
            .map(|c| postcard::to_allocvec(c).expect("contracts encode")))
    }

    /// Whether a contract this node keeps names `hash` at this position, within its term.
    /// Blocking.
    pub(super) fn covered(
        &self,
        content: &Hash,
        segment: u32,
        index: u16,
        hash: &Hash,
    ) -> Result<bool, Error> {
        self.inner
            .book
            .covers(content, segment, index, hash, now())
            .map_err(economy)
    }

    /// The first half of a paid put: encodes the content to learn its shards, plans their
    /// holders, makes the contract, has every provider sign it and locks the price in escrow.
    /// Nothing is sent before the escrow is locked; a client short of funds is refused before
    /// any provider is asked.
    pub(super) async fn contract_for(
        &self,
        path: &Path,
        encoder: &Arc<Encoder>,
        segment_size: usize,
        content: Hash,
        peers: &[PeerId],
        pay: Payment,
    ) -> Result<(StorageContract, Plan, Vec<Prepared>), Error> {
        let client = pay.mandate.client;
        // The mandate first: nothing is encoded for a payment that cannot be made.
        let start = now();
        let m = pay.mandate;
        if m.content != content {
            return Err(Error::Payment(format!(
                "the payment's mandate is for content {}, not {content}",
                m.content
            )));
        }
        if m.expires < start {
            return Err(Error::Payment(
                "the payment's mandate has expired: sign a new one".into(),
            ));
        }
        if u128::from(pay.fee) * u128::from(zhtp_economy::contract::BP)
            > u128::from(pay.price) * u128::from(zhtp_economy::contract::MAX_FEE_BP)
        {
            return Err(Error::Payment(format!(
                "the pricing plugin's network fee of {} is above 10% of the price of {}",
                tokens(pay.fee),
                tokens(pay.price)
            )));
        }
        if pay.price > m.max_price {
            return Err(Error::Payment(format!(
                "this put costs {}, above the payment's budget of {}",
                tokens(pay.price),
                tokens(m.max_price)
            )));
        }
        zhtp_identity::verify(&client, &m.signing_message(), &pay.signature).map_err(|_| {
            Error::Payment(format!(
                "the payment's mandate signature does not verify as {}'s",
                hex::encode(client)
            ))
        })?;
        let (ledger_balance, used) = {
            let (node, mandate) = (self.clone(), pay.mandate.id().0);
            blocking(move || {
                let ledger = node.inner.local.ledger();
                Ok::<_, zhtp_economy::Error>((
                    ledger.balance(&Account::Key(client))?,
                    ledger.mandate_used(&mandate)?,
                ))
            })
            .await?
            .map_err(economy)?
        };
        if let Some(other) = used {
            return Err(Error::Payment(format!(
                "this payment's mandate already paid for storage contract {}: sign a new one",
                hex::encode(other)
            )));
        }
        if ledger_balance < pay.price {
            return Err(Error::Payment(format!(
                "account {} has {} and this put costs {}: fund it first (zhtp account fund)",
                hex::encode(client),
                tokens(ledger_balance),
                tokens(pay.price)
            )));
        }
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| Error::Task(format!("no randomness: {e}")))?;
        let planner = Planner {
            seed,
            challenges: m.periods.clamp(1, MAX_CHALLENGES_PER_SHARD) as usize,
            proofs: pay.proofs || self.audit_config().proofs,
        };
        let encoded =
            super::placement::run_pipeline(path, encoder.clone(), segment_size, planner).await?;
        if encoded.content_hash != content {
            return Err(Error::Invalid(format!(
                "{} changed while being stored; nothing was stored",
                path.display()
            )));
        }
        let mut prepared = Vec::new();
        let mut hashes = Vec::new();
        let mut commitments = Vec::new();
        for (_, (h, challenges, committed)) in encoded.segments {
            prepared.extend(challenges);
            hashes.push(h);
            commitments.push(committed);
        }
        let shard_bytes = (segment_size / usize::from(encoder.params().code.data).max(1)) as u64;
        let (plan, mut shards, keys) = self
            .plan_holders(&hashes, peers, shard_bytes, &Default::default())
            .await?;
        set_commitments(&mut shards, &commitments);
        let terms = Terms {
            content,
            client,
            shards,
            price: pay.price,
            fee: pay.fee,
            plugin: pay.plugin,
            start,
            periods: m.periods,
            period_secs: m.period_secs,
            sla: Sla::default(),
            penalties: Penalties::default(),
            mandate: m,
            audits: audit::commitment(&prepared),
        };
        let mut c = StorageContract::new(terms).map_err(|e| Error::Payment(e.to_string()))?;
        c.sign(client, &pay.signature)
            .map_err(|e| Error::Payment(format!("the client's mandate: {e}")))?;
        self.collect_signatures(&mut c, &keys).await?;
        // Active once the escrow is locked: the contract and its challenges are kept in the
        // batch that locks it, so a crash keeps both or neither.
        c.apply(Event::EscrowLocked)
            .map_err(|e| Error::Task(e.to_string()))?;
        let (node, id, mandate) = (self.clone(), c.id(), m.id());
        let (price, fee) = (pay.price, pay.fee);
        let (active, challenges) = (c.clone(), prepared.clone());
        blocking(move || {
            let book = &node.inner.book;
            node.inner.local.ledger().lock_escrow_with(
                id.0,
                Account::Key(client),
                price,
                fee,
                mandate.0,
                |b| book.fill(b, &active, &challenges),
            )
        })
        .await?
        .map_err(|e| match e {
            zhtp_economy::Error::InsufficientFunds { .. }
            | zhtp_economy::Error::MandateUsed(..) => Error::Payment(e.to_string()),
            e => economy(e),
        })?;
        Ok((c, plan, prepared))
    }

    /// Plans which node holds each shard of a paid put or migration (`hashes`: each segment's
    /// shard hashes). The market: each shard goes, among the few nodes closest to its hash
    /// that hold no other shard of its segment, to the best reputation band, then the
    /// cheapest, with room. A node in `taken` at a position holds another shard there (a
    /// migration's old shard) and would refuse this one: it is passed over. Returns the
    /// plan, the contract's placements and each planned node's Ed25519 key.
    pub(super) async fn plan_holders(
        &self,
        hashes: &[Vec<Hash>],
        peers: &[PeerId],
        shard_bytes: u64,
        taken: &super::Holders,
    ) -> Result<(Plan, Vec<Placement>, HashMap<PeerId, [u8; 32]>), Error> {
        let mut plan = Plan::new();
        let mut shards = Vec::new();
        let mut keys: HashMap<PeerId, [u8; 32]> = HashMap::new();
        let view = self.market_view(peers).await;
        let mut assigned: HashMap<PeerId, u64> = HashMap::new();
        for (segment, hashes) in hashes.iter().enumerate() {
            let segment = segment as u32;
            let mut used = HashSet::new();
            for (index, hash) in hashes.iter().enumerate() {
                let there = taken.get(&(segment, index as u16));
                let mut ranked = by_distance(peers, hash.as_bytes());
                ranked.retain(|p| there.is_none_or(|t| !t.contains(p)));
                let fresh: Vec<PeerId> = ranked
                    .iter()
                    .filter(|p| !used.contains(*p))
                    .copied()
                    .collect();
                // A node holding another shard of the segment only when no other qualifies.
                let p = self
                    .choose(&fresh, shard_bytes, &view, &assigned)
                    .or_else(|| self.choose(&ranked, shard_bytes, &view, &assigned))
                    .ok_or_else(|| {
                        Error::Declined(format!(
                            "no provider has room for a shard of {shard_bytes} bytes (or every \
                             one is banned)"
                        ))
                    })?;
                *assigned.entry(p).or_default() += shard_bytes;
                used.insert(p);
                let holder = match keys.get(&p) {
                    Some(k) => *k,
                    None => {
                        let k = ed25519_of(&p).ok_or_else(|| {
                            Error::Invalid(format!("node {p} has no Ed25519 key to sign with"))
                        })?;
                        keys.insert(p, k);
                        k
                    }
                };
                plan.insert((segment, index as u16), p);
                shards.push(Placement {
                    segment,
                    index: index as u16,
                    shard: *hash,
                    holder,
                    proof: None,
                });
            }
        }
        Ok((plan, shards, keys))
    }

    /// Has every provider in `keys` sign `c` (this node with its own key, when it holds
    /// shards too). A provider that signs keeps the contract, so it admits the shards `c`
    /// names from then on.
    pub(super) async fn collect_signatures(
        &self,
        c: &mut StorageContract,
        keys: &HashMap<PeerId, [u8; 32]>,
    ) -> Result<(), Error> {
        let bytes = postcard::to_allocvec(&*c).expect("contracts encode");
        let me = self.peer_id();
        let provider_message = c.terms().signing_message();
        let asks = keys.iter().map(|(&p, &k)| {
            let bytes = bytes.clone();
            let provider_message = &provider_message;
            async move {
                if p == me {
                    // Signed here, kept only with the escrow (a put that fails before leaves
                    // nothing behind).
                    let sig = self
                        .inner
                        .dht
                        .keypair()
                        .sign(provider_message)
                        .map_err(|e| Error::Invalid(format!("cannot sign: {e}")))?;
                    return Ok::<_, Error>((k, sig));
                }
                match self
                    .inner
                    .dht
                    .request(p, Request::Offer { contract: bytes })
                    .await
                {
                    Ok(Response::Signed(sig)) if !sig.is_empty() => Ok((k, sig)),
                    Ok(Response::Refused(why)) => Err(Error::Declined(format!(
                        "node {p} declined the storage contract: {why}"
                    ))),
                    Ok(other) => Err(Error::Declined(format!(
                        "node {p} answered the storage contract with {other:?}"
                    ))),
                    Err(e) => Err(Error::Declined(format!(
                        "node {p} did not answer the storage contract: {e}"
                    ))),
                }
            }
        });
        for r in futures::future::join_all(asks).await {
            let (k, sig) = r?;
            c.sign(k, &sig)
                .map_err(|e| Error::Payment(format!("a provider's signature: {e}")))?;
        }
        Ok(())
    }

    /// A paid put failed after its escrow was locked, before its shards were all placed:
    /// everything goes back to the client, and the contract is forgotten here.
    pub(super) async fn unwind(&self, c: &StorageContract) {
        let (node, c2, id) = (self.clone(), c.clone(), c.id());
        let undo = move || {
            let back = node.inner.local.ledger().settle(id.0)?;
            node.inner.book.forget(&c2)?;
            Ok::<_, zhtp_economy::Error>(back)
        };
        match blocking(undo).await {
            Ok(Ok(back)) => tracing::info!(contract = %id, "put failed; {} refunded", tokens(back)),
            Ok(Err(e)) => {
                tracing::error!(contract = %id, "put failed and its escrow did not settle: {e}")
            }
            Err(e) => {
                tracing::error!(contract = %id, "put failed and its escrow did not settle: {e}")
            }
        }
    }
}
