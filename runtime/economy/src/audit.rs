//! Audits of storage providers: a challenge names a fresh nonce and random byte ranges of one
//! shard, and the holder answers with a BLAKE3 digest over the nonce and those bytes
//! ([`digest`]). The client's node cannot recompute the digest later (it does not keep the
//! shards), so it prepares the challenges while it still has every shard, at put time, keeps
//! them secret with their expected digests ([`Prepared`]), and writes their commitment (a
//! hash over all of them, [`commitment`]) into the contract's terms: it cannot later claim
//! other answers, and a holder learns a challenge only when it is asked. Each is used once.
//!
//! Outcomes are judged by the auditor ([`Outcome`]); what they cost is the contract's
//! penalty table, and what they do to a node's standing is [`crate::reputation`].

use serde::{Deserialize, Serialize};
use zhtp_types::Hash;

use crate::contract::Violation;

/// Ranges per challenge.
pub const RANGES: usize = 4;
/// Bytes per range (less for a shorter shard).
pub const RANGE_LEN: u32 = 1024;
/// Most ranges a holder reads for one challenge.
pub const MAX_RANGES: usize = 16;
/// Most bytes of one range.
pub const MAX_RANGE_LEN: u32 = 64 << 10;

/// What an auditor asks about one shard.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    /// Fresh per challenge: an answer cannot be kept and replayed.
    pub nonce: [u8; 16],
    /// `(offset, length)` byte ranges of the shard.
    pub ranges: Vec<(u32, u32)>,
}

/// A challenge the client's node keeps with its expected answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prepared {
    /// Segment of the shard.
    pub segment: u32,
    /// Index of the shard in its segment.
    pub index: u16,
    /// The challenge.
    pub challenge: Challenge,
    /// The digest an honest holder answers.
    pub expect: [u8; 32],
}

/// Why a challenge cannot be answered as asked.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("audit challenge: {0}")]
pub struct BadChallenge(pub String);

/// The answer to `challenge` over `shard`: BLAKE3 (keyed for audits) of the nonce, then each
/// range's offset and length (u32 little-endian) and bytes. Refuses more than
/// [`MAX_RANGES`] ranges, a range longer than [`MAX_RANGE_LEN`] or one outside the shard.
pub fn digest(challenge: &Challenge, shard: &[u8]) -> Result<[u8; 32], BadChallenge> {
    check(challenge, shard.len() as u64)?;
    let parts: Vec<&[u8]> = challenge
        .ranges
        .iter()
        .map(|&(o, l)| &shard[o as usize..o as usize + l as usize])
        .collect();
    Ok(digest_parts(challenge, &parts))
}

/// Checks `challenge` against a shard of `len` bytes: 1 to [`MAX_RANGES`] ranges, each 1 to
/// [`MAX_RANGE_LEN`] bytes, inside the shard. What a holder checks before reading anything.
pub fn check(challenge: &Challenge, len: u64) -> Result<(), BadChallenge> {
    if challenge.ranges.is_empty() || challenge.ranges.len() > MAX_RANGES {
        return Err(BadChallenge(format!(
            "{} ranges (1 to {MAX_RANGES})",
            challenge.ranges.len()
        )));
    }
    for &(offset, l) in &challenge.ranges {
        if l == 0 || l > MAX_RANGE_LEN || u64::from(offset) + u64::from(l) > len {
            return Err(BadChallenge(format!(
                "range {offset}+{l} of a {len}-byte shard"
            )));
        }
    }
    Ok(())
}

/// [`digest`] from the bytes of each range of a [`check`]ed challenge, read by the caller
/// (a holder reads only those, not the whole shard).
pub fn digest_parts(challenge: &Challenge, parts: &[impl AsRef<[u8]>]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key("zhtp audit digest v1");
    h.update(&challenge.nonce);
    for (&(offset, len), bytes) in challenge.ranges.iter().zip(parts) {
        h.update(&offset.to_le_bytes());
        h.update(&len.to_le_bytes());
        h.update(bytes.as_ref());
    }
    *h.finalize().as_bytes()
}

/// `n` challenges of `shard` (segment `segment`, index `index`), drawn from `seed` (secret,
/// random per content: the nonces and ranges are unpredictable to a holder), with their
/// answers.
pub fn prepare(segment: u32, index: u16, shard: &[u8], n: usize, seed: &[u8; 32]) -> Vec<Prepared> {
    let mut xof = blake3::Hasher::new_keyed(seed);
    xof.update(&segment.to_le_bytes());
    xof.update(&index.to_le_bytes());
    let mut stream = xof.finalize_xof();
    let len = u32::try_from(shard.len()).unwrap_or(u32::MAX).max(1);
    let range = RANGE_LEN.min(len);
    (0..n)
        .map(|_| {
            let mut nonce = [0u8; 16];
            stream.fill(&mut nonce);
            let ranges = (0..RANGES)
                .map(|_| {
                    let mut b = [0u8; 8];
                    stream.fill(&mut b);
                    // Uniform enough: the bias of a 64-bit modulo is below 2^-32.
                    let offset = (u64::from_le_bytes(b) % u64::from(len - range + 1)) as u32;
                    (offset, range)
                })
                .collect();
            let challenge = Challenge { nonce, ranges };
            let expect = digest(&challenge, shard).expect("ranges inside the shard");
            Prepared {
                segment,
                index,
                challenge,
                expect,
            }
        })
        .collect()
}

/// The commitment to a set of prepared challenges, written into the contract's terms: BLAKE3
/// over their encodings, in the order given (the client's node keeps them in that order).
pub fn commitment(prepared: &[Prepared]) -> Hash {
    let mut h = blake3::Hasher::new_derive_key("zhtp audit commitment v1");
    for p in prepared {
        h.update(&postcard::to_allocvec(p).expect("challenges encode"));
    }
    Hash(*h.finalize().as_bytes())
}

/// A proof audit as the auditor recorded it, beside its [`Outcome`]: what `zhtp
/// storage-contract show` lists.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofAudit {
    /// Segment of the shard asked about.
    pub segment: u32,
    /// Its index in the segment.
    pub index: u16,
    /// The circuit asked for (`zhtp_proofs::CircuitId`).
    pub circuit: u32,
    /// The audit's nonce.
    pub nonce: [u8; 16],
    /// How it went.
    pub outcome: Outcome,
    /// From the request to the answer (the holder's proving and the way there and back), ms.
    pub answer_ms: u32,
    /// Checking the proof, µs (0 when there was none to check).
    pub verify_us: u32,
    /// What was wrong, if anything: the holder's refusal, "late", "does not verify".
    pub problem: Option<String>,
}

/// How one audit went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The right digest, in time.
    Passed {
        /// How long the answer took.
        latency_ms: u32,
    },
    /// A violation: a wrong digest or none (data loss), no answer (unavailability), an answer
    /// later than the audit's deadline (slow response: also what a holder fetching the shard
    /// from elsewhere to answer looks like).
    Failed(Violation),
}

impl Outcome {
    /// The violation, if it is one.
    pub fn violation(&self) -> Option<Violation> {
        match self {
            Self::Passed { .. } => None,
            Self::Failed(v) => Some(*v),
        }
    }
}

/// The most severe of `outcomes`' violations: what a period's payment is penalized for.
pub fn worst(outcomes: &[Outcome]) -> Option<Violation> {
    outcomes
        .iter()
        .filter_map(Outcome::violation)
        .max_by_key(|v| severity(*v))
}

/// Orders violations: breach, data loss, degradation, unavailability, slow response.
pub fn severity(v: Violation) -> u8 {
    match v {
        Violation::Breach => 4,
        Violation::DataLoss => 3,
        Violation::Degradation => 2,
        Violation::Unavailability => 1,
        Violation::SlowResponse => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_need_the_bytes_and_bad_ranges_are_refused() {
        let shard: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
        let seed = [9u8; 32];
        let ps = prepare(2, 3, &shard, 5, &seed);
        assert_eq!(ps.len(), 5);
        for p in &ps {
            assert_eq!(digest(&p.challenge, &shard).unwrap(), p.expect);
            assert_eq!(p.challenge.ranges.len(), RANGES);
        }
        // Fresh nonces and ranges for every challenge.
        assert_ne!(ps[0].challenge, ps[1].challenge);
        // One byte changed inside a range changes the answer.
        let mut bad = shard.clone();
        let (o, _) = ps[0].challenge.ranges[0];
        bad[o as usize] ^= 1;
        assert_ne!(digest(&ps[0].challenge, &bad).unwrap(), ps[0].expect);
        // Another seed, other challenges.
        assert_ne!(prepare(2, 3, &shard, 1, &[8; 32])[0], ps[0]);
        // Out of the shard, too long, too many or none.
        let c = |ranges: Vec<(u32, u32)>| Challenge {
            nonce: [0; 16],
            ranges,
        };
        assert!(digest(&c(vec![(9_999, 2)]), &shard).is_err());
        assert!(digest(&c(vec![(0, MAX_RANGE_LEN + 1)]), &shard).is_err());
        assert!(digest(&c(vec![(0, 1); MAX_RANGES + 1]), &shard).is_err());
        assert!(digest(&c(vec![]), &shard).is_err());
        assert!(digest(&c(vec![(u32::MAX, 2)]), &shard).is_err());
        // A shard shorter than a range: the whole shard.
        let tiny = prepare(0, 0, b"abc", 1, &seed);
        assert_eq!(tiny[0].challenge.ranges[0], (0, 3));
        // The commitment binds every challenge and its order.
        let mut swapped = ps.clone();
        swapped.swap(0, 1);
        assert_ne!(commitment(&ps), commitment(&swapped));
    }

    #[test]
    fn the_worst_violation_decides() {
        use Violation as V;
        let out = [
            Outcome::Passed { latency_ms: 3 },
            Outcome::Failed(V::SlowResponse),
            Outcome::Failed(V::DataLoss),
            Outcome::Failed(V::Unavailability),
        ];
        assert_eq!(worst(&out), Some(V::DataLoss));
        assert_eq!(worst(&out[..2]), Some(V::SlowResponse));
        assert_eq!(worst(&out[..1]), None);
    }
}
