//! Market records: what providers advertise ([`Ad`]) and what auditors report of others
//! ([`Report`]), each signed by the node it speaks for, inside its payload, so that a record
//! filed under a node's key can only ever come from that node (a DHT record's own signature
//! says who published it, not whom it is about: anyone could publish first under another
//! node's key).
//!
//! Trust: an ad is a node's claim about itself — capacity, use and price — and is used only
//! where a lie costs little: a node claiming to be full gets no shards; one claiming to be cheap
//! is preferred only among nodes of its reputation band, and only within a narrow price range.
//! Reputation is never taken from a node about itself: a report names other nodes only, and
//! [`gossiped`] combines the reports of auditors the caller trusts, and can only lower a node's
//! standing, never raise it.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::reputation;

/// Signing context of an ad.
pub const AD_CONTEXT: &[u8] = b"zhtp/market-ad/v1\0";
/// Signing context of a reputation report.
pub const REPORT_CONTEXT: &[u8] = b"zhtp/reputation-report/v1\0";
/// Most nodes one report speaks of (a report stays a small DHT record: ~50 bytes a view).
pub const MAX_VIEWS: usize = 512;
/// The neutral price factor: 10,000 bp = the gateway's price unchanged.
pub const NEUTRAL_PRICE_BP: u32 = 10_000;
/// Lowest price factor an ad may state (×0.5): a claim of cheapness buys little.
pub const MIN_PRICE_BP: u32 = 5_000;
/// Highest price factor an ad may state (×2).
pub const MAX_PRICE_BP: u32 = 20_000;
/// Oldest a market record may be, seconds: it is republished every few hours, so an older one
/// is a replay.
pub const MAX_AGE: u64 = 4 * 3600;

/// Whether a record made at `issued` is current at `now` (at most [`MAX_AGE`] old, at most ten
/// minutes ahead of this clock).
pub fn fresh(issued: u64, now: u64) -> bool {
    issued <= now.saturating_add(600) && now.saturating_sub(issued) <= MAX_AGE
}
/// Fewest independent reports that make a gossiped standing.
pub const MIN_REPORTERS: usize = 2;

/// Why a market record was refused.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// Not a signed record of this kind.
    #[error("not a signed market record: {0}")]
    Malformed(String),
    /// Signed by another key than the node it is filed under, or not at all.
    #[error("the record is not signed by the node it speaks for")]
    BadSignature,
    /// A field out of its range.
    #[error("market record: {0}")]
    Invalid(&'static str),
}

/// What a provider advertises about itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ad {
    /// The provider's Ed25519 key.
    pub node: [u8; 32],
    /// Bytes it offers for shards.
    pub capacity: u64,
    /// Bytes of shards it holds now.
    pub used: u64,
    /// Its price factor, bp of the gateway's price (10,000 = unchanged): what it would charge
    /// relative to the network's standard.
    pub price_bp: u32,
    /// When it was made, Unix seconds.
    pub issued: u64,
}

impl Ad {
    /// Bytes still free.
    pub fn free(&self) -> u64 {
        self.capacity.saturating_sub(self.used)
    }

    fn check(&self) -> Result<(), Error> {
        if self.used > self.capacity {
            return Err(Error::Invalid("more used than the capacity"));
        }
        if !(MIN_PRICE_BP..=MAX_PRICE_BP).contains(&self.price_bp) {
            return Err(Error::Invalid("a price factor outside 5,000..=20,000 bp"));
        }
        Ok(())
    }
}

/// What an auditor's audits made of other nodes: points per node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// The auditor's Ed25519 key.
    pub auditor: [u8; 32],
    /// When it was made, Unix seconds.
    pub issued: u64,
    /// `(node, points)`, each node once, never the auditor itself.
    pub views: Vec<([u8; 32], i64)>,
}

impl Report {
    fn check(&self) -> Result<(), Error> {
        if self.views.len() > MAX_VIEWS {
            return Err(Error::Invalid("a report of more than 512 nodes"));
        }
        let mut seen = std::collections::HashSet::with_capacity(self.views.len());
        for (node, points) in &self.views {
            if *node == self.auditor {
                return Err(Error::Invalid("a report about its own auditor"));
            }
            if !seen.insert(*node) {
                return Err(Error::Invalid("a node reported twice"));
            }
            if *points > reputation::CEILING || *points < -reputation::FLOOR {
                return Err(Error::Invalid("points beyond ±10,000"));
            }
        }
        Ok(())
    }
}

#[derive(Serialize, Deserialize)]
struct Signed {
    body: Vec<u8>,
    signature: Vec<u8>,
}

fn sign(context: &[u8], body: Vec<u8>, sign: impl FnOnce(&[u8]) -> Vec<u8>) -> Vec<u8> {
    let signature = sign(&[context, &body].concat());
    postcard::to_allocvec(&Signed { body, signature }).expect("a signed record encodes")
}

/// The body of a signed record, if `signer` signed it under `context`.
fn open_owned<T: serde::de::DeserializeOwned>(
    context: &[u8],
    bytes: &[u8],
    signer: &[u8; 32],
) -> Result<T, Error> {
    let s: Signed = postcard::from_bytes(bytes).map_err(|e| Error::Malformed(e.to_string()))?;
    zhtp_identity::verify(signer, &[context, &s.body].concat(), &s.signature)
        .map_err(|_| Error::BadSignature)?;
    postcard::from_bytes(&s.body).map_err(|e| Error::Malformed(e.to_string()))
}

impl Ad {
    /// The signed payload of this ad; `sign` signs with the node's Ed25519 key.
    pub fn seal(&self, sign_with: impl FnOnce(&[u8]) -> Vec<u8>) -> Vec<u8> {
        sign(
            AD_CONTEXT,
            postcard::to_allocvec(self).expect("an ad encodes"),
            sign_with,
        )
    }

    /// The ad in `bytes`, if `node` signed it, it is about `node` and its fields are sound.
    pub fn open(bytes: &[u8], node: &[u8; 32]) -> Result<Ad, Error> {
        let ad: Ad = open_owned(AD_CONTEXT, bytes, node)?;
        if ad.node != *node {
            return Err(Error::BadSignature);
        }
        ad.check()?;
        Ok(ad)
    }
}

impl Report {
    /// The signed payload of this report; `sign` signs with the auditor's Ed25519 key.
    pub fn seal(&self, sign_with: impl FnOnce(&[u8]) -> Vec<u8>) -> Vec<u8> {
        sign(
            REPORT_CONTEXT,
            postcard::to_allocvec(self).expect("a report encodes"),
            sign_with,
        )
    }

    /// The report in `bytes`, if `auditor` signed it, it is `auditor`'s, and it is sound (no
    /// view of the auditor itself, each node once, points within range).
    pub fn open(bytes: &[u8], auditor: &[u8; 32]) -> Result<Report, Error> {
        let r: Report = open_owned(REPORT_CONTEXT, bytes, auditor)?;
        if r.auditor != *auditor {
            return Err(Error::BadSignature);
        }
        r.check()?;
        Ok(r)
    }
}

/// A node's standing gossiped by others: the upper median of the points that the auditors
/// `trusted` accepts (at least [`MIN_REPORTERS`] of them, never the node itself) report for
/// it, and never above [`reputation::START`]: gossip can lower a node's standing, not raise it.
/// `None` with fewer reports.
///
/// What it resists: identities are free, so only auditors the caller has judged itself should
/// be trusted. Then a node is lowered only when at least half of those reporting on it say so
/// (the upper median of two is the better of the two), and no report can lift a node this
/// caller has no view of above the start.
pub fn gossiped(
    node: &[u8; 32],
    reports: &[Report],
    trusted: impl Fn(&[u8; 32]) -> bool,
) -> Option<i64> {
    let mut points: Vec<i64> = reports
        .iter()
        .filter(|r| r.auditor != *node && trusted(&r.auditor))
        .filter_map(|r| r.views.iter().find(|(n, _)| n == node).map(|(_, p)| *p))
        .collect();
    if points.len() < MIN_REPORTERS {
        return None;
    }
    points.sort_unstable();
    Some(points[points.len() / 2].min(reputation::START))
}

#[cfg(test)]
mod tests {
    use super::*;
    use zhtp_identity::Identity;

    fn id() -> Identity {
        Identity::generate().unwrap()
    }

    fn ad(node: &Identity) -> Ad {
        Ad {
            node: node.public().signing,
            capacity: 1_000,
            used: 400,
            price_bp: 12_000,
            issued: 7,
        }
    }

    #[test]
    fn an_ad_opens_only_under_the_key_that_signed_it_about_itself() {
        let (a, b) = (id(), id());
        let sealed = ad(&a).seal(|m| a.sign(m).to_vec());
        let ka = a.public().signing;
        assert_eq!(Ad::open(&sealed, &ka).unwrap().free(), 600);
        // Filed under another node's key: refused, whoever signed.
        assert_eq!(
            Ad::open(&sealed, &b.public().signing),
            Err(Error::BadSignature)
        );
        // A valid signature of B over an ad that names A: refused under A and under B.
        let forged = ad(&a).seal(|m| b.sign(m).to_vec());
        assert_eq!(Ad::open(&forged, &ka), Err(Error::BadSignature));
        assert_eq!(
            Ad::open(&forged, &b.public().signing),
            Err(Error::BadSignature)
        );
        let mut full = ad(&a);
        full.used = 1_001;
        let bad = full.seal(|m| a.sign(m).to_vec());
        assert!(matches!(Ad::open(&bad, &ka), Err(Error::Invalid(_))));
        let mut free = ad(&a);
        free.price_bp = MIN_PRICE_BP - 1;
        let bad = free.seal(|m| a.sign(m).to_vec());
        assert!(matches!(Ad::open(&bad, &ka), Err(Error::Invalid(_))));
        assert!(matches!(Ad::open(b"junk", &ka), Err(Error::Malformed(_))));
    }

    #[test]
    fn a_report_never_speaks_of_its_auditor_and_one_liar_decides_nothing() {
        let (a, b, c, x) = (id(), id(), id(), id());
        let kx = x.public().signing;
        let report = |by: &Identity, points: i64| Report {
            auditor: by.public().signing,
            issued: 1,
            views: vec![(kx, points)],
        };
        let sealed = report(&a, -500).seal(|m| a.sign(m).to_vec());
        assert_eq!(
            Report::open(&sealed, &a.public().signing).unwrap().views,
            [(kx, -500)]
        );
        // X praising itself: refused.
        let selfish = Report {
            auditor: kx,
            issued: 1,
            views: vec![(kx, 10_000)],
        }
        .seal(|m| x.sign(m).to_vec());
        assert_eq!(
            Report::open(&selfish, &kx),
            Err(Error::Invalid("a report about its own auditor"))
        );
        let twice = Report {
            views: vec![(kx, 1), (kx, 2)],
            ..report(&a, 0)
        }
        .seal(|m| a.sign(m).to_vec());
        assert!(Report::open(&twice, &a.public().signing).is_err());

        // One auditor alone: no gossiped standing; two: the upper median, never above the
        // start; the node's own view of itself never counts; untrusted auditors do not count.
        let all = |_: &[u8; 32]| true;
        assert_eq!(gossiped(&kx, &[report(&a, -600)], all), None);
        assert_eq!(
            gossiped(&kx, &[report(&a, -600), report(&b, 300)], all),
            Some(300)
        );
        assert_eq!(
            gossiped(&kx, &[report(&a, -600), report(&b, 9_000)], all),
            Some(1_000),
            "gossip never lifts a node above the start"
        );
        assert_eq!(
            gossiped(
                &kx,
                &[report(&a, -600), report(&b, 1_200), report(&c, -400)],
                all
            ),
            Some(-400)
        );
        let own = Report {
            auditor: kx,
            issued: 1,
            views: vec![(kx, 10_000)],
        };
        assert_eq!(gossiped(&kx, &[report(&a, -600), own], all), None);
        let ka = a.public().signing;
        let only_a = |k: &[u8; 32]| *k == ka;
        assert_eq!(
            gossiped(&kx, &[report(&a, -600), report(&b, -600)], only_a),
            None,
            "a Sybil's report does not count"
        );
        assert!(fresh(100, 100 + MAX_AGE) && !fresh(100, 101 + MAX_AGE));
        assert!(fresh(700, 100) && !fresh(701, 100));
    }
}
