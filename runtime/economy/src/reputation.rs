//! Reputation: what a node has seen of another's audits, in points. Every node starts at
//! [`START`]; each audit moves its points by the table ([`Table`]), and the points fall in a
//! band ([`Band`]) by configurable thresholds ([`Bands`]). A banned node gets no new shards,
//! its shards are repaired elsewhere, and its pending rewards are forfeited to the client.
//!
//! Points are an observer's: a node keeps what *its* audits found (in its [`crate::Book`]),
//! never what a node claims about itself.

use serde::{Deserialize, Serialize};

use crate::audit::Outcome;
use crate::contract::Violation;

/// Where every node starts.
pub const START: i64 = 1_000;
/// Points never leave `[-FLOOR, CEILING]`, so a long record neither buries a node for ever
/// nor makes it untouchable.
pub const CEILING: i64 = 10_000;
/// See [`CEILING`].
pub const FLOOR: i64 = 10_000;

/// Points per audit outcome: good audits +100 to +500 by how fast the answer came, failures
/// −100 to −500 by severity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Table {
    /// A passed audit.
    pub passed: i64,
    /// A passed audit answered within a tenth of the SLA's retrieval time.
    pub passed_fast: i64,
    /// An answer after the deadline.
    pub slow_response: i64,
    /// No answer.
    pub unavailability: i64,
    /// Quality below the terms otherwise.
    pub degradation: i64,
    /// A wrong digest or a shard not held.
    pub data_loss: i64,
    /// The contract broken outright.
    pub breach: i64,
}

impl Default for Table {
    fn default() -> Self {
        Self {
            passed: 100,
            passed_fast: 200,
            slow_response: -100,
            unavailability: -200,
            degradation: -300,
            data_loss: -500,
            breach: -500,
        }
    }
}

impl Table {
    /// The points `outcome` earns; `sla_ms` is the contract's retrieval time.
    pub fn points(&self, outcome: Outcome, sla_ms: u32) -> i64 {
        match outcome {
            Outcome::Passed { latency_ms } if latency_ms <= sla_ms / 10 => self.passed_fast,
            Outcome::Passed { .. } => self.passed,
            Outcome::Failed(v) => match v {
                Violation::SlowResponse => self.slow_response,
                Violation::Unavailability => self.unavailability,
                Violation::Degradation => self.degradation,
                Violation::DataLoss => self.data_loss,
                Violation::Breach => self.breach,
            },
        }
    }
}

/// A node's standing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Band {
    /// At or below the ban threshold: no new shards, its shards repaired elsewhere, its
    /// pending rewards forfeited.
    Banned,
    /// Below normal: still used, last.
    Low,
    /// Where nodes start.
    Normal,
    /// A long good record.
    High,
}

/// The thresholds between bands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bands {
    /// From this many points up: high.
    pub high: i64,
    /// Below this: low.
    pub normal: i64,
    /// At or below this: banned.
    pub banned: i64,
}

impl Default for Bands {
    /// High from 2,000; normal from 500; banned at 0 or below (two lost shards from the start).
    fn default() -> Self {
        Self {
            high: 2_000,
            normal: 500,
            banned: 0,
        }
    }
}

impl Bands {
    /// The band of `points`.
    pub fn band(&self, points: i64) -> Band {
        if points <= self.banned {
            Band::Banned
        } else if points < self.normal {
            Band::Low
        } else if points < self.high {
            Band::Normal
        } else {
            Band::High
        }
    }
}

/// `points` moved by `delta`, within the bounds.
pub fn moved(points: i64, delta: i64) -> i64 {
    points.saturating_add(delta).clamp(-FLOOR, CEILING)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_and_the_bands() {
        let t = Table::default();
        let b = Bands::default();
        assert_eq!(b.band(START), Band::Normal);
        let lost = Outcome::Failed(Violation::DataLoss);
        let once = moved(START, t.points(lost, 5_000));
        assert_eq!((once, b.band(once)), (500, Band::Normal));
        let twice = moved(once, t.points(lost, 5_000));
        assert_eq!((twice, b.band(twice)), (0, Band::Banned));
        assert_eq!(b.band(499), Band::Low);
        assert_eq!(b.band(2_000), Band::High);
        assert_eq!(t.points(Outcome::Passed { latency_ms: 500 }, 5_000), 200);
        assert_eq!(t.points(Outcome::Passed { latency_ms: 501 }, 5_000), 100);
        assert_eq!(
            t.points(Outcome::Failed(Violation::Unavailability), 5_000),
            -200
        );
        assert_eq!(moved(CEILING, 500), CEILING);
        assert_eq!(moved(-FLOOR, -500), -FLOOR);
    }
}
