//! Storage contracts (always called so, to keep them apart from WebAssembly smart contracts):
//! the terms a client and its providers sign, and the states a contract moves through.
//!
//! ```text
//! Quoted ──sign (client and every provider)──▶ Signed ──escrow locked──▶ Active
//! Active ──period passed──▶ Active            (monitoring: one settlement per period)
//! Active ──violation──▶ Violation ──penalty──▶ Penalized ──resolved──▶ Resolved
//! Resolved ──period passed──▶ Active           (monitoring goes on)
//! Active | Resolved ──term ended──▶ Completed ──escrow settled──▶ Settled
//! ```
//!
//! Nothing else moves a contract: any other pair of state and event is refused, naming both
//! ([`Error::Transition`]). A contract's id is BLAKE3 of its encoded terms, and each provider
//! signs that id with Ed25519, so changing any term after signing voids their signatures; the
//! client signs its [`Mandate`] (content, budget, term), which the terms must stay within.
//! Pure: no I/O; the node keeps contracts and moves the money (the escrow of [`crate::ledger`]).

use serde::{Deserialize, Serialize};
use thiserror::Error;
use zhtp_types::{Hash, MicroZhtp};

/// Basis points: 10,000 = 100%.
pub const BP: u32 = 10_000;

/// Largest network fee a contract may take for the incentive pool, bp of its price (the
/// client signs a budget, not the split: this bounds what a gateway may divert from the
/// providers and from the client's refunds).
pub const MAX_FEE_BP: u32 = 1_000;

/// Most shards one contract covers (a 1 TiB content at 4 MiB segments, 4+2).
pub const MAX_SHARDS: usize = 1_600_000;

/// Most distinct providers one contract names (each signs it).
pub const MAX_PROVIDERS: usize = 1_024;

/// What a provider signs: this, then the contract's id. The prefix keeps a contract signature
/// from meaning anything in another protocol, and the reverse.
pub const SIGNING_CONTEXT: &[u8] = b"zhtp/storage-contract/v1\0";

/// What a client signs: this, then its encoded [`Mandate`].
pub const MANDATE_CONTEXT: &[u8] = b"zhtp/storage-mandate/v1\0";

/// The client's side of a contract, signed before the contract exists: "store this content
/// for this long, for at most this much". The client signs it when it asks for the put (it
/// cannot sign the contract's id: which nodes hold which shards is only known once the node
/// placing the content has encoded it and the providers have agreed). A contract is bound to
/// its mandate ([`Terms::check`]): same client, content and term, a price within the budget,
/// made before the mandate expired. The node that escrows the price uses a mandate once
/// ([`crate::Ledger::lock_escrow`] records it), so a mandate pays for one contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mandate {
    /// The content to store.
    pub content: Hash,
    /// Who pays (its Ed25519 key).
    pub client: [u8; 32],
    /// The most the client pays for the whole term, µZHTP.
    pub max_price: MicroZhtp,
    /// Settlement periods in the term.
    pub periods: u32,
    /// Seconds per period.
    pub period_secs: u64,
    /// Unix seconds after which no contract may start under it.
    pub expires: u64,
    /// Random: two mandates with equal terms are still two.
    pub nonce: [u8; 16],
}

impl Mandate {
    /// What the client signs: [`MANDATE_CONTEXT`], then the encoded mandate.
    pub fn signing_message(&self) -> Vec<u8> {
        let bytes = postcard::to_allocvec(self).expect("mandate encodes");
        [MANDATE_CONTEXT, &bytes].concat()
    }

    /// Its id: BLAKE3 of the signing message (what the ledger records as used).
    pub fn id(&self) -> Hash {
        Hash(*blake3::hash(&self.signing_message()).as_bytes())
    }
}

/// The service a contract promises; the seed's quality targets by default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sla {
    /// Share of audits a holder must answer, in basis points (95%).
    pub uptime_bp: u32,
    /// Slowest acceptable retrieval of a shard, in milliseconds (5 s).
    pub latency_ms: u32,
    /// Share of audited bytes that must be intact, in basis points (99%).
    pub integrity_bp: u32,
    /// Share of the promised bandwidth a holder must deliver, in basis points (80%).
    pub bandwidth_bp: u32,
}

impl Default for Sla {
    fn default() -> Self {
        Self {
            uptime_bp: 9_500,
            latency_ms: 5_000,
            integrity_bp: 9_900,
            bandwidth_bp: 8_000,
        }
    }
}

/// What a violation costs, as a share (basis points) of the period's payment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Penalties {
    /// Shards lost (50%).
    pub data_loss_bp: u32,
    /// Audits unanswered (10%).
    pub unavailability_bp: u32,
    /// Answers slower than the SLA (5%).
    pub slow_response_bp: u32,
    /// Quality below the SLA otherwise (20%).
    pub degradation_bp: u32,
    /// The contract broken outright (100%).
    pub breach_bp: u32,
}

impl Default for Penalties {
    fn default() -> Self {
        Self {
            data_loss_bp: 5_000,
            unavailability_bp: 1_000,
            slow_response_bp: 500,
            degradation_bp: 2_000,
            breach_bp: BP,
        }
    }
}

/// A class of violation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Violation {
    /// A holder lost shards it was paid to keep.
    DataLoss,
    /// A holder did not answer.
    Unavailability,
    /// A holder answered too slowly.
    SlowResponse,
    /// Quality below the terms otherwise.
    Degradation,
    /// The contract broken outright.
    Breach,
}

impl Penalties {
    /// The share of a period's payment `v` costs, in basis points.
    pub fn rate(&self, v: Violation) -> u32 {
        match v {
            Violation::DataLoss => self.data_loss_bp,
            Violation::Unavailability => self.unavailability_bp,
            Violation::SlowResponse => self.slow_response_bp,
            Violation::Degradation => self.degradation_bp,
            Violation::Breach => self.breach_bp,
        }
    }
}

/// One shard the contract pays for, and who holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    /// Segment of the content.
    pub segment: u32,
    /// Index of the shard in its segment.
    pub index: u16,
    /// BLAKE3 of the shard.
    pub shard: Hash,
    /// The provider holding it (its Ed25519 key).
    pub holder: [u8; 32],
    /// The shard's Poseidon commitment, when the client's node made one at put time: its
    /// audits then ask the holder for a Groth16 proof ([`zhtp_proofs`]) instead of a digest.
    pub proof: Option<zhtp_proofs::Commitment>,
}

/// What the client and the providers agree on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Terms {
    /// The content stored.
    pub content: Hash,
    /// Who pays (its Ed25519 key).
    pub client: [u8; 32],
    /// Every shard paid for and its holder.
    pub shards: Vec<Placement>,
    /// The price for the whole term, µZHTP (from the pricing plugin's quote).
    pub price: MicroZhtp,
    /// The network fee, part of `price`: paid into the incentive pool when the escrow is
    /// locked (it pays providers' bonuses), not to the providers.
    pub fee: MicroZhtp,
    /// BLAKE3 of the pricing plugin that made the quote.
    pub plugin: Hash,
    /// Start, Unix seconds.
    pub start: u64,
    /// Settlement periods in the term.
    pub periods: u32,
    /// Seconds per period.
    pub period_secs: u64,
    /// The service promised.
    pub sla: Sla,
    /// What violations cost.
    pub penalties: Penalties,
    /// What the client signed.
    pub mandate: Mandate,
    /// The commitment to the audit challenges the client's node prepared and keeps
    /// ([`crate::audit::commitment`]).
    pub audits: Hash,
}

impl Terms {
    /// The contract's id: BLAKE3 of the encoded terms (what every party signs).
    pub fn id(&self) -> Hash {
        let bytes = postcard::to_allocvec(self).expect("terms encode");
        Hash(
            *blake3::Hasher::new_derive_key("zhtp storage contract v1")
                .update(&bytes)
                .finalize()
                .as_bytes(),
        )
    }

    /// The providers, each once, in the order they first hold a shard.
    pub fn providers(&self) -> Vec<[u8; 32]> {
        let mut seen = std::collections::HashSet::new();
        self.shards
            .iter()
            .filter(|p| seen.insert(p.holder))
            .map(|p| p.holder)
            .collect()
    }

    /// The bytes each provider signs: [`SIGNING_CONTEXT`], then the id.
    pub fn signing_message(&self) -> Vec<u8> {
        [SIGNING_CONTEXT, self.id().as_bytes()].concat()
    }

    /// What the providers share over the term: the price less the network fee.
    pub fn payable(&self) -> MicroZhtp {
        self.price.saturating_sub(self.fee)
    }

    /// What period `n` (from 0) pays: [`Self::payable`] split evenly, the remainder in the
    /// last period; nothing for a period outside the term.
    pub fn period_payment(&self, n: u32) -> MicroZhtp {
        if n >= self.periods {
            return 0;
        }
        let (periods, payable) = (u64::from(self.periods), self.payable());
        let each = payable / periods;
        if n + 1 == self.periods {
            payable - each * (periods - 1)
        } else {
            each
        }
    }

    /// What `holder` earns in period `n`: its share of the period's payment, by the shards it
    /// holds, rounded down (the dust stays in escrow and goes back to the client at
    /// settlement).
    pub fn holder_payment(&self, n: u32, holder: &[u8; 32]) -> MicroZhtp {
        let held = self.shards.iter().filter(|p| p.holder == *holder).count() as u128;
        let all = self.shards.len().max(1) as u128;
        // ≤ the period's payment: the cast cannot truncate.
        (u128::from(self.period_payment(n)) * held / all) as MicroZhtp
    }

    /// What violation `v` by `holder` in period `n` costs it: its rate of what the holder
    /// earns that period, rounded down. Never more than that: the others are paid in full.
    pub fn penalty(&self, n: u32, holder: &[u8; 32], v: Violation) -> MicroZhtp {
        let rate = u128::from(self.penalties.rate(v).min(BP));
        // ≤ the holder's payment: the cast cannot truncate.
        (u128::from(self.holder_payment(n, holder)) * rate / u128::from(BP)) as MicroZhtp
    }

    /// Checks what makes terms unusable: no shards or too many, no periods, a zero price or
    /// latency, a network fee above [`MAX_FEE_BP`] of the price, rates above 100%, the client as its own provider, too many providers.
    pub fn check(&self) -> Result<(), Error> {
        let bad = |why: &str| Err(Error::Terms(why.to_owned()));
        if self.shards.is_empty() {
            return bad("no shards");
        }
        if self.shards.len() > MAX_SHARDS {
            return bad("more shards than one contract covers");
        }
        if self.periods == 0 || self.period_secs == 0 {
            return bad("no settlement period");
        }
        if u64::from(self.periods)
            .checked_mul(self.period_secs)
            .and_then(|t| t.checked_add(self.start))
            .is_none()
        {
            return bad("a term past the end of time");
        }
        let mut positions = std::collections::HashSet::with_capacity(self.shards.len());
        if !self
            .shards
            .iter()
            .all(|p| positions.insert((p.segment, p.index)))
        {
            return bad("a shard position named twice");
        }
        if self.price == 0 {
            return bad("a price of zero");
        }
        if u128::from(self.fee) * u128::from(BP) > u128::from(self.price) * u128::from(MAX_FEE_BP) {
            return bad("a network fee above 10% of the price");
        }
        let p = self.penalties;
        let rates = [
            p.data_loss_bp,
            p.unavailability_bp,
            p.slow_response_bp,
            p.degradation_bp,
            p.breach_bp,
        ];
        let sla = self.sla;
        if rates
            .into_iter()
            .chain([sla.uptime_bp, sla.integrity_bp, sla.bandwidth_bp])
            .any(|r| r > BP)
        {
            return bad("a rate above 100%");
        }
        if sla.latency_ms == 0 {
            return bad("a retrieval time of zero");
        }
        let m = &self.mandate;
        if (m.client, m.content) != (self.client, self.content) {
            return bad("a mandate of another client or content");
        }
        if (m.periods, m.period_secs) != (self.periods, self.period_secs) {
            return bad("a term other than the mandate's");
        }
        if self.price > m.max_price {
            return bad("a price above the mandate's budget");
        }
        if self.start > m.expires {
            return bad("a start after the mandate expired");
        }
        let providers = self.providers();
        if providers.contains(&self.client) {
            return bad("the client holds its own shards");
        }
        if providers.len() > MAX_PROVIDERS {
            return bad("more providers than one contract names");
        }
        Ok(())
    }
}

/// Where a contract stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// Terms proposed, not all signatures yet.
    Quoted,
    /// Signed by the client and every provider.
    Signed,
    /// The price is in escrow; the shards are kept and audited.
    Active,
    /// An audit found a violation.
    Violation,
    /// Its penalty was paid out of escrow.
    Penalized,
    /// The violation was dealt with (shards repaired elsewhere, holder replaced).
    Resolved,
    /// The term ended.
    Completed,
    /// The escrow is settled. Final.
    Settled,
}

/// What happens to a contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Event {
    /// The last missing signature arrived.
    Sign,
    /// The client's payment is in escrow.
    EscrowLocked,
    /// A period ended and was settled.
    PeriodPassed,
    /// An audit found a violation.
    ViolationFound(Violation),
    /// The violation's penalty was paid.
    PenaltyPaid,
    /// The violation was dealt with.
    Resolved,
    /// The term is over.
    TermEnded,
    /// The escrow was settled.
    EscrowSettled,
}

/// The move `event` makes from `state`, if it is one of the allowed ones.
pub fn next(state: State, event: Event) -> Option<State> {
    use Event as E;
    use State as S;
    Some(match (state, event) {
        (S::Quoted, E::Sign) => S::Signed,
        (S::Signed, E::EscrowLocked) => S::Active,
        (S::Active | S::Resolved, E::PeriodPassed) => S::Active,
        (S::Active, E::ViolationFound(_)) => S::Violation,
        (S::Violation, E::PenaltyPaid) => S::Penalized,
        (S::Penalized, E::Resolved) => S::Resolved,
        (S::Active | S::Resolved, E::TermEnded) => S::Completed,
        (S::Completed, E::EscrowSettled) => S::Settled,
        _ => return None,
    })
}

/// What went wrong.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// An event the contract's state does not allow.
    #[error("a storage contract that is {state:?} cannot take {event:?}")]
    Transition {
        /// Where the contract stands.
        state: State,
        /// What was asked.
        event: Event,
    },
    /// A signature that is not the named party's over what it signs (a provider the
    /// contract's id, the client its mandate).
    #[error("the signature of {} does not verify over this storage contract", hex::encode(.0))]
    BadSignature([u8; 32]),
    /// A signer that is neither the client nor a provider.
    #[error("{} is not a party to this storage contract", hex::encode(.0))]
    NotAParty([u8; 32]),
    /// Terms that cannot be a contract.
    #[error("storage contract terms: {0}")]
    Terms(String),
}

/// A storage contract: terms, the parties' signatures, its state and the periods settled.
/// Its fields change only through [`Self::sign`] and [`Self::apply`], and one decoded from
/// bytes is checked ([`Self::verify`]) before it exists: no state without its signatures.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Unchecked")]
pub struct StorageContract {
    terms: Terms,
    /// `(party, Ed25519 signature over the signing message)`, each party once.
    signatures: Vec<([u8; 32], Vec<u8>)>,
    state: State,
    periods_settled: u32,
}

/// A contract as decoded, before [`StorageContract::verify`].
#[derive(Deserialize)]
struct Unchecked {
    terms: Terms,
    signatures: Vec<([u8; 32], Vec<u8>)>,
    state: State,
    periods_settled: u32,
}

impl TryFrom<Unchecked> for StorageContract {
    type Error = Error;

    fn try_from(u: Unchecked) -> Result<Self, Error> {
        let c = Self {
            terms: u.terms,
            signatures: u.signatures,
            state: u.state,
            periods_settled: u.periods_settled,
        };
        c.verify()?;
        Ok(c)
    }
}

impl StorageContract {
    /// A contract of `terms`, quoted, unsigned.
    pub fn new(terms: Terms) -> Result<Self, Error> {
        terms.check()?;
        Ok(Self {
            terms,
            signatures: Vec::new(),
            state: State::Quoted,
            periods_settled: 0,
        })
    }

    /// A contract from its postcard bytes (from the network or disk), checked
    /// ([`Self::verify`]), saying what is wrong with it (decoding through serde alone would
    /// say only that a check failed).
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let u: Unchecked =
            postcard::from_bytes(bytes).map_err(|e| Error::Terms(format!("undecodable: {e}")))?;
        Self::try_from(u)
    }

    /// Its id.
    pub fn id(&self) -> Hash {
        self.terms.id()
    }

    /// What was agreed.
    pub fn terms(&self) -> &Terms {
        &self.terms
    }

    /// Where it stands.
    pub fn state(&self) -> State {
        self.state
    }

    /// Periods settled so far.
    pub fn periods_settled(&self) -> u32 {
        self.periods_settled
    }

    /// The signatures so far, `(party, signature)`.
    pub fn signatures(&self) -> &[([u8; 32], Vec<u8>)] {
        &self.signatures
    }

    /// The parties who must sign: the client, then each provider.
    pub fn parties(&self) -> Vec<[u8; 32]> {
        let mut out = vec![self.terms.client];
        out.extend(self.terms.providers());
        out
    }

    /// What `party` signs: the client its mandate's [`Mandate::signing_message`], a provider
    /// the contract's [`Terms::signing_message`].
    pub fn message_for(&self, party: &[u8; 32]) -> Vec<u8> {
        if *party == self.terms.client {
            self.terms.mandate.signing_message()
        } else {
            self.terms.signing_message()
        }
    }

    fn all_signed(&self, parties: &[[u8; 32]]) -> bool {
        parties
            .iter()
            .all(|p| self.signatures.iter().any(|(s, _)| s == p))
    }

    /// Adds `party`'s signature `sig` over its [`Self::message_for`] (checked); once every
    /// party has signed, the contract is [`State::Signed`]. A party signing again changes
    /// nothing.
    pub fn sign(&mut self, party: [u8; 32], sig: &[u8]) -> Result<State, Error> {
        if self.state != State::Quoted {
            return Err(Error::Transition {
                state: self.state,
                event: Event::Sign,
            });
        }
        let parties = self.parties();
        if !parties.contains(&party) {
            return Err(Error::NotAParty(party));
        }
        zhtp_identity::verify(&party, &self.message_for(&party), sig)
            .map_err(|_| Error::BadSignature(party))?;
        if !self.signatures.iter().any(|(p, _)| *p == party) {
            self.signatures.push((party, sig.to_vec()));
        }
        if self.all_signed(&parties) {
            self.state = State::Signed;
        }
        Ok(self.state)
    }

    /// Checks a contract read from disk or the network: its terms, every signature (each by
    /// a party, each party once), every party's signature unless it is still quoted, and
    /// periods settled within the term and consistent with the state.
    pub fn verify(&self) -> Result<(), Error> {
        self.terms.check()?;
        let parties = self.parties();
        let mut seen = std::collections::HashSet::new();
        // Each message once: the providers' is a hash of every term, which may be megabytes.
        let (client, providers) = (
            self.terms.mandate.signing_message(),
            self.terms.signing_message(),
        );
        for (party, sig) in &self.signatures {
            if !parties.contains(party) {
                return Err(Error::NotAParty(*party));
            }
            if !seen.insert(*party) {
                return Err(Error::Terms(format!("{} signed twice", hex::encode(party))));
            }
            let message = if *party == self.terms.client {
                &client
            } else {
                &providers
            };
            zhtp_identity::verify(party, message, sig).map_err(|_| Error::BadSignature(*party))?;
        }
        let signed = self.all_signed(&parties);
        if (self.state == State::Quoted) == signed {
            return Err(Error::Terms(format!(
                "{:?} with {} of {} signatures",
                self.state,
                self.signatures.len(),
                parties.len()
            )));
        }
        let before_active = matches!(self.state, State::Quoted | State::Signed);
        if self.periods_settled > self.terms.periods || (before_active && self.periods_settled > 0)
        {
            return Err(Error::Terms(format!(
                "{:?} with {} of {} periods settled",
                self.state, self.periods_settled, self.terms.periods
            )));
        }
        Ok(())
    }

    /// Takes over from `from`, a running contract of the same client, content, mandate, price
    /// and term whose content moved to the shards this one names (a migration to another
    /// code): this contract, signed by every party, becomes active with `from`'s settled
    /// periods, so it pays for the rest of the same term and no period twice. Only the shards,
    /// their holders and the audit commitment may differ. The escrow moves with it
    /// ([`crate::Ledger::move_escrow`]).
    pub fn succeed(&mut self, from: &StorageContract) -> Result<State, Error> {
        let refused = Error::Transition {
            state: self.state,
            event: Event::EscrowLocked,
        };
        if self.state != State::Signed {
            return Err(refused);
        }
        if !matches!(from.state, State::Active | State::Resolved)
            || from.periods_settled >= from.terms.periods
        {
            return Err(Error::Terms(format!(
                "a contract that is {:?} with {} of {} periods settled has nothing to hand on",
                from.state, from.periods_settled, from.terms.periods
            )));
        }
        let (a, b) = (&self.terms, &from.terms);
        let same = |t: &Terms| {
            (
                t.content,
                t.client,
                t.price,
                t.fee,
                t.plugin,
                t.start,
                t.periods,
                t.period_secs,
                t.sla,
                t.penalties,
                t.mandate,
            )
        };
        if same(a) != same(b) {
            return Err(Error::Terms(
                "a successor differs from its predecessor in more than its shards".into(),
            ));
        }
        self.state = State::Active;
        self.periods_settled = from.periods_settled;
        Ok(self.state)
    }

    /// Moves the contract by `event` (signing goes through [`Self::sign`]). Beyond the moves
    /// [`next`] allows: a period passes only within the term, a violation is found only
    /// within it, and the term ends only once every period was settled. When a period is
    /// over is the node's to say (it keeps the clock), not the contract's.
    pub fn apply(&mut self, event: Event) -> Result<State, Error> {
        let refused = Error::Transition {
            state: self.state,
            event,
        };
        if event == Event::Sign {
            return Err(refused);
        }
        let to = next(self.state, event).ok_or(refused.clone())?;
        let within_term = self.periods_settled < self.terms.periods;
        match event {
            Event::PeriodPassed | Event::ViolationFound(_) if !within_term => return Err(refused),
            Event::TermEnded if within_term => return Err(refused),
            _ => {}
        }
        if event == Event::PeriodPassed {
            self.periods_settled += 1;
        }
        self.state = to;
        Ok(to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(client: [u8; 32], holders: &[[u8; 32]]) -> Terms {
        Terms {
            content: Hash([1; 32]),
            client,
            shards: holders
                .iter()
                .enumerate()
                .map(|(i, h)| Placement {
                    segment: 0,
                    index: i as u16,
                    shard: Hash([i as u8 + 10; 32]),
                    holder: *h,
                    proof: None,
                })
                .collect(),
            price: 1_000_003,
            fee: 0,
            plugin: Hash([2; 32]),
            start: 1_700_000_000,
            periods: 4,
            period_secs: 86_400,
            sla: Sla::default(),
            penalties: Penalties::default(),
            mandate: Mandate {
                content: Hash([1; 32]),
                client,
                max_price: 1_000_003,
                periods: 4,
                period_secs: 86_400,
                expires: 1_700_000_000,
                nonce: [0; 16],
            },
            audits: Hash([0; 32]),
        }
    }

    /// Golden bytes: terms are what every party signs and what nodes keep and send; a change
    /// here makes every kept contract unreadable and every signature void (add a version).
    /// Changed once on purpose (2026-12-02, issue 16): placements gained their optional proof
    /// commitment, one byte when absent. No network had kept contracts yet; a devnet data dir
    /// from before that does not read them.
    #[test]
    fn terms_encoding_and_id_are_frozen() {
        let mut t = terms([9; 32], &[[3; 32]]);
        t.fee = 50_000;
        let bytes = postcard::to_allocvec(&t).unwrap();
        assert_eq!(
            blake3::hash(&bytes).to_hex().as_str(),
            "5faa757f1344841879290691af730056b99a1a0a5d949f2e7b2ccab9aa013283"
        );
        assert_eq!(bytes.len(), 321);
        assert_eq!(
            t.id().to_hex(),
            "c988d594fe0ab689254a34ef6210a7100dccee472a5ea10eb8f3a6000d71dc70"
        );
    }

    #[test]
    fn only_the_allowed_moves_exist() {
        use Event as E;
        use State as S;
        let states = [
            S::Quoted,
            S::Signed,
            S::Active,
            S::Violation,
            S::Penalized,
            S::Resolved,
            S::Completed,
            S::Settled,
        ];
        let events = [
            E::Sign,
            E::EscrowLocked,
            E::PeriodPassed,
            E::ViolationFound(Violation::DataLoss),
            E::PenaltyPaid,
            E::Resolved,
            E::TermEnded,
            E::EscrowSettled,
        ];
        let allowed = [
            (S::Quoted, E::Sign, S::Signed),
            (S::Signed, E::EscrowLocked, S::Active),
            (S::Active, E::PeriodPassed, S::Active),
            (S::Resolved, E::PeriodPassed, S::Active),
            (
                S::Active,
                E::ViolationFound(Violation::DataLoss),
                S::Violation,
            ),
            (S::Violation, E::PenaltyPaid, S::Penalized),
            (S::Penalized, E::Resolved, S::Resolved),
            (S::Active, E::TermEnded, S::Completed),
            (S::Resolved, E::TermEnded, S::Completed),
            (S::Completed, E::EscrowSettled, S::Settled),
        ];
        for s in states {
            for e in events {
                let want = allowed
                    .iter()
                    .find(|(from, ev, _)| *from == s && *ev == e)
                    .map(|(_, _, to)| *to);
                assert_eq!(next(s, e), want, "{s:?} + {e:?}");
            }
        }
        // Settled is final.
        assert!(events.iter().all(|e| next(S::Settled, *e).is_none()));
    }

    #[test]
    fn periods_holder_shares_and_penalties_are_integer_and_add_up() {
        let t = terms([9; 32], &[[3; 32], [4; 32], [3; 32]]);
        assert_eq!(t.providers(), [[3; 32], [4; 32]]);
        let paid: u64 = (0..4).map(|n| t.period_payment(n)).sum();
        assert_eq!(paid, t.price, "the remainder goes to the last period");
        assert_eq!(
            (t.period_payment(0), t.period_payment(3)),
            (250_000, 250_003)
        );
        assert_eq!(t.period_payment(4), 0, "no period after the term");
        // [3; 32] holds two of the three shards.
        assert_eq!(t.holder_payment(0, &[3; 32]), 166_666);
        assert_eq!(t.holder_payment(0, &[4; 32]), 83_333);
        assert_eq!(t.holder_payment(0, &[5; 32]), 0);
        let h = [4; 32];
        assert_eq!(t.penalty(0, &h, Violation::DataLoss), 41_666);
        assert_eq!(t.penalty(0, &h, Violation::Unavailability), 8_333);
        assert_eq!(t.penalty(0, &h, Violation::SlowResponse), 4_166);
        assert_eq!(t.penalty(0, &h, Violation::Degradation), 16_666);
        assert_eq!(
            t.penalty(0, &h, Violation::Breach),
            83_333,
            "never above its share"
        );
        assert_eq!(t.penalty(4, &h, Violation::Breach), 0);
        let sla = Sla::default();
        assert_eq!(
            (
                sla.uptime_bp,
                sla.latency_ms,
                sla.integrity_bp,
                sla.bandwidth_bp
            ),
            (9_500, 5_000, 9_900, 8_000)
        );
    }

    #[test]
    fn unusable_terms_are_refused_each_with_its_reason() {
        let t = terms([9; 32], &[[3; 32], [4; 32]]);
        t.check().unwrap();
        type Spoil = fn(&mut Terms);
        let cases: [(&str, Spoil); 18] = [
            ("no shards", |t| t.shards.clear()),
            ("a network fee above 10% of the price", |t| {
                t.fee = t.price / 10 + 1
            }),
            ("no settlement period", |t| t.periods = 0),
            ("no settlement period", |t| t.period_secs = 0),
            ("a price of zero", |t| t.price = 0),
            ("a rate above 100%", |t| t.penalties.breach_bp = BP + 1),
            ("a rate above 100%", |t| t.penalties.data_loss_bp = BP + 1),
            ("a rate above 100%", |t| t.sla.uptime_bp = BP + 1),
            ("a rate above 100%", |t| t.sla.bandwidth_bp = BP + 1),
            ("a retrieval time of zero", |t| t.sla.latency_ms = 0),
            ("a term past the end of time", |t| t.period_secs = u64::MAX),
            ("a shard position named twice", |t| t.shards[1].index = 0),
            ("the client holds its own shards", |t| {
                t.client = [3; 32];
                t.mandate.client = [3; 32];
            }),
            ("a mandate of another client or content", |t| {
                t.mandate.client = [8; 32]
            }),
            ("a mandate of another client or content", |t| {
                t.mandate.content = Hash([8; 32])
            }),
            ("a term other than the mandate's", |t| t.mandate.periods = 5),
            ("a price above the mandate's budget", |t| {
                t.mandate.max_price = t.price - 1
            }),
            ("a start after the mandate expired", |t| t.start += 1),
        ];
        let mut at_cap = t.clone();
        at_cap.fee = at_cap.price / 10;
        at_cap.check().unwrap();
        for (why, spoil) in cases {
            let mut bad = t.clone();
            spoil(&mut bad);
            assert_eq!(bad.check(), Err(Error::Terms(why.into())));
        }
    }
}
