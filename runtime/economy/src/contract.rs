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
//! ([`Error::Transition`]). A contract's id is BLAKE3 of its encoded terms, and each party
//! signs that id with Ed25519, so changing any term after signing voids every signature.
//! Pure: no I/O; the node keeps contracts and moves the money (the escrow of [`crate::ledger`]).

use serde::{Deserialize, Serialize};
use thiserror::Error;
use zhtp_types::{Hash, MicroZhtp};

/// Basis points: 10,000 = 100%.
pub const BP: u32 = 10_000;

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
        let mut out: Vec<[u8; 32]> = Vec::new();
        for p in &self.shards {
            if !out.contains(&p.holder) {
                out.push(p.holder);
            }
        }
        out
    }

    /// What period `n` (from 0) pays: the price split evenly, the remainder in the last period.
    pub fn period_payment(&self, n: u32) -> MicroZhtp {
        let periods = u64::from(self.periods.max(1));
        let each = self.price / periods;
        if u64::from(n) + 1 == periods {
            self.price - each * (periods - 1)
        } else {
            each
        }
    }

    /// What violation `v` in period `n` costs: its rate of that period's payment, rounded down.
    pub fn penalty(&self, n: u32, v: Violation) -> MicroZhtp {
        let rate = u128::from(self.penalties.rate(v).min(BP));
        (u128::from(self.period_payment(n)) * rate / u128::from(BP)) as MicroZhtp
    }

    /// Checks what makes terms unusable: no shards, no periods, a zero price, rates above 100%,
    /// the client as its own provider.
    pub fn check(&self) -> Result<(), Error> {
        let bad = |why: &str| Err(Error::Terms(why.to_owned()));
        if self.shards.is_empty() {
            return bad("no shards");
        }
        if self.periods == 0 || self.period_secs == 0 {
            return bad("no settlement period");
        }
        if self.price == 0 {
            return bad("a price of zero");
        }
        let p = self.penalties;
        let rates = [
            p.data_loss_bp,
            p.unavailability_bp,
            p.slow_response_bp,
            p.degradation_bp,
            p.breach_bp,
        ];
        if rates.iter().any(|&r| r > BP) || self.sla.uptime_bp > BP || self.sla.integrity_bp > BP {
            return bad("a rate above 100%");
        }
        if self.providers().contains(&self.client) {
            return bad("the client holds its own shards");
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
#[derive(Debug, Error, PartialEq, Eq)]
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
    /// A signature that is not the named party's over this contract's id.
    #[error("the signature of {} does not verify over this storage contract", hex(.0))]
    BadSignature([u8; 32]),
    /// A signer that is neither the client nor a provider.
    #[error("{} is not a party to this storage contract", hex(.0))]
    NotAParty([u8; 32]),
    /// Terms that cannot be a contract.
    #[error("storage contract terms: {0}")]
    Terms(String),
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A storage contract: terms, the parties' signatures, its state and the periods settled.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageContract {
    /// What was agreed.
    pub terms: Terms,
    /// `(party, Ed25519 signature over the id)`, each party once.
    pub signatures: Vec<([u8; 32], Vec<u8>)>,
    /// Where it stands.
    pub state: State,
    /// Periods settled so far.
    pub periods_settled: u32,
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

    /// Its id.
    pub fn id(&self) -> Hash {
        self.terms.id()
    }

    /// The parties who must sign: the client, then each provider.
    pub fn parties(&self) -> Vec<[u8; 32]> {
        let mut out = vec![self.terms.client];
        out.extend(self.terms.providers());
        out
    }

    /// Adds `party`'s signature `sig` (checked); once every party has signed, the contract is
    /// [`State::Signed`]. A party signing again replaces nothing.
    pub fn sign(&mut self, party: [u8; 32], sig: &[u8]) -> Result<State, Error> {
        if self.state != State::Quoted {
            return Err(Error::Transition {
                state: self.state,
                event: Event::Sign,
            });
        }
        if !self.parties().contains(&party) {
            return Err(Error::NotAParty(party));
        }
        zhtp_identity::verify(&party, self.id().as_bytes(), sig)
            .map_err(|_| Error::BadSignature(party))?;
        if !self.signatures.iter().any(|(p, _)| *p == party) {
            self.signatures.push((party, sig.to_vec()));
        }
        if self
            .parties()
            .iter()
            .all(|p| self.signatures.iter().any(|(s, _)| s == p))
        {
            self.state = State::Signed;
        }
        Ok(self.state)
    }

    /// Checks every signature again (a contract read from disk or the network).
    pub fn verify(&self) -> Result<(), Error> {
        self.terms.check()?;
        let id = self.id();
        for (party, sig) in &self.signatures {
            if !self.parties().contains(party) {
                return Err(Error::NotAParty(*party));
            }
            zhtp_identity::verify(party, id.as_bytes(), sig)
                .map_err(|_| Error::BadSignature(*party))?;
        }
        let all = self
            .parties()
            .iter()
            .all(|p| self.signatures.iter().any(|(s, _)| s == p));
        if self.state != State::Quoted && !all {
            return Err(Error::Terms(format!(
                "{:?} without every party's signature",
                self.state
            )));
        }
        Ok(())
    }

    /// Moves the contract by `event` (signing goes through [`Self::sign`]).
    pub fn apply(&mut self, event: Event) -> Result<State, Error> {
        let refused = Error::Transition {
            state: self.state,
            event,
        };
        if event == Event::Sign {
            return Err(refused);
        }
        let to = next(self.state, event).ok_or(refused)?;
        if event == Event::PeriodPassed {
            if self.periods_settled >= self.terms.periods {
                return Err(Error::Transition {
                    state: self.state,
                    event,
                });
            }
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
                })
                .collect(),
            price: 1_000_003,
            plugin: Hash([2; 32]),
            start: 1_700_000_000,
            periods: 4,
            period_secs: 86_400,
            sla: Sla::default(),
            penalties: Penalties::default(),
        }
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
    fn periods_and_penalties_are_integer_shares_that_add_up() {
        let t = terms([9; 32], &[[3; 32], [4; 32], [3; 32]]);
        assert_eq!(t.providers(), [[3; 32], [4; 32]]);
        let paid: u64 = (0..4).map(|n| t.period_payment(n)).sum();
        assert_eq!(paid, t.price, "the remainder goes to the last period");
        assert_eq!(t.period_payment(0), 250_000);
        assert_eq!(t.period_payment(3), 250_003);
        assert_eq!(t.penalty(0, Violation::DataLoss), 125_000);
        assert_eq!(t.penalty(0, Violation::Unavailability), 25_000);
        assert_eq!(t.penalty(0, Violation::SlowResponse), 12_500);
        assert_eq!(t.penalty(0, Violation::Degradation), 50_000);
        assert_eq!(t.penalty(3, Violation::Breach), 250_003);
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
        let mut bad = t.clone();
        bad.penalties.breach_bp = BP + 1;
        assert!(matches!(bad.check(), Err(Error::Terms(_))));
        let mut own = t.clone();
        own.client = [3; 32];
        assert!(matches!(own.check(), Err(Error::Terms(_))));
    }
}
