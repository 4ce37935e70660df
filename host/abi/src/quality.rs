//! Messages of the quality plugin kind (entry export [`v1::QUALITY_ENTRY`](crate::v1::QUALITY_ENTRY)).
//!
//! Once per settled period and provider of a storage contract, the host sends what its audits of
//! that provider measured ([`Measurements`]) with the contract's SLA targets, and the plugin
//! judges it: a score, the violations it finds and a bonus for exceptional service
//! ([`Assessment`]). What a violation *costs* is not the plugin's to say: the rates are clauses
//! of the signed contract, and the host charges the rate of the worst class listed.

use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::pricing::BP_ONE;
use crate::wire::{DecodeError, Message, Reader, Writer};

/// A class of violation (SPEC.md R-qmsg-tables). Indices are frozen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Class {
    /// Shards lost or altered: audits answered with a wrong digest, or "not held".
    DataLoss,
    /// Audits not answered.
    Unavailability,
    /// Audits answered correctly but after the audit deadline.
    SlowResponse,
    /// Service below the SLA otherwise (retrieval slower than promised).
    Degradation,
    /// The contract broken outright.
    Breach,
}

impl Class {
    /// Every class, in the order of their v1 wire indices.
    pub const ALL: [Class; 5] = [
        Class::DataLoss,
        Class::Unavailability,
        Class::SlowResponse,
        Class::Degradation,
        Class::Breach,
    ];

    fn index(self) -> u8 {
        match self {
            Class::DataLoss => 0,
            Class::Unavailability => 1,
            Class::SlowResponse => 2,
            Class::Degradation => 3,
            Class::Breach => 4,
        }
    }
}

/// What the host asks a quality plugin to judge: one provider's audits in one period of one
/// storage contract, and the contract's SLA targets. Sent as the call's input.
///
/// The host guarantees `passed + slow + lost + unanswered = audits` (SPEC.md R-qreq-ranges).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Measurements {
    /// The period judged, from 0.
    pub period: u32,
    /// What the provider earns this period before any penalty, µZHTP.
    pub payment: u64,
    /// Audits asked this period.
    pub audits: u32,
    /// Answered with the right digest before the deadline.
    pub passed: u32,
    /// Answered with the right digest after the deadline.
    pub slow: u32,
    /// Answered with a wrong digest, or with "I do not hold it".
    pub lost: u32,
    /// Not answered at all.
    pub unanswered: u32,
    /// Mean answer time of the passed audits, ms (0 when none passed).
    pub latency_avg_ms: u32,
    /// Slowest answer time of the passed audits, ms (0 when none passed).
    pub latency_max_ms: u32,
    /// The audit deadline: a right answer later than this is `slow`, ms.
    pub deadline_ms: u32,
    /// SLA: share of audits the provider must answer, bp.
    pub uptime_bp: u16,
    /// SLA: slowest acceptable retrieval, ms.
    pub latency_ms: u32,
    /// SLA: share of audited data that must be intact, bp.
    pub integrity_bp: u16,
    /// SLA: share of the promised bandwidth, bp (not measured by v1 hosts; informational).
    pub bandwidth_bp: u16,
}

impl Measurements {
    /// Checks what the host guarantees about every request it sends (SPEC.md R-qreq-ranges):
    /// the four counts add up to `audits` and the SLA shares are at most 100%. The host
    /// refuses any other request itself, without calling the plugin.
    pub fn check_ranges(&self) -> Result<(), &'static str> {
        let sum = u64::from(self.passed)
            + u64::from(self.slow)
            + u64::from(self.lost)
            + u64::from(self.unanswered);
        if sum != u64::from(self.audits) {
            return Err("passed + slow + lost + unanswered must equal audits");
        }
        let bp = BP_ONE as u16;
        if self.uptime_bp > bp || self.integrity_bp > bp || self.bandwidth_bp > bp {
            return Err("SLA shares must be at most 10,000 bp (100%)");
        }
        Ok(())
    }
}

/// A quality plugin's judgement of one provider's period. Returned as the call's output.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assessment {
    /// How good the service was, 0..=10,000 bp.
    pub score_bp: u16,
    /// The bonus earned for exceptional service, as a share of `payment`, 0..=1,500 bp; paid
    /// from the incentive pool, and only when no violation is listed.
    pub bonus_bp: u16,
    /// The violations found, at most [`Assessment::MAX_VIOLATIONS`]; the host charges the
    /// contract's rate of the most severe one.
    pub violations: Vec<Class>,
}

impl Assessment {
    /// Most violations an assessment may list (SPEC.md R-qout-max).
    pub const MAX_VIOLATIONS: usize = 5;
    /// Largest score: 100%.
    pub const MAX_SCORE_BP: u16 = BP_ONE as u16;
    /// Largest bonus: 15% of the period's payment (the seed's bonus cap).
    pub const MAX_BONUS_BP: u16 = 1_500;

    /// Why the assessment breaks SPEC.md R-qout-score / R-qout-bonus / R-qout-bonus-clean, if
    /// it does. The host refuses such an output.
    pub fn check(&self) -> Result<(), &'static str> {
        if self.score_bp > Self::MAX_SCORE_BP {
            return Err("score_bp above 10,000");
        }
        if self.bonus_bp > Self::MAX_BONUS_BP {
            return Err("bonus_bp above 1,500 (15%)");
        }
        if self.bonus_bp > 0 && !self.violations.is_empty() {
            return Err("a bonus together with violations");
        }
        Ok(())
    }
}

impl Message for Measurements {
    /// Ten u32 varints (5 bytes each), one u64 (10), three u16 (3).
    const MAX_LEN: usize = 10 * 5 + 10 + 3 * 3;

    fn encode(&self, out: &mut [u8]) -> Option<usize> {
        let mut w = Writer::new(out, Self::MAX_LEN)?;
        w.varint(u64::from(self.period));
        w.varint(self.payment);
        for v in [
            self.audits,
            self.passed,
            self.slow,
            self.lost,
            self.unanswered,
            self.latency_avg_ms,
            self.latency_max_ms,
            self.deadline_ms,
        ] {
            w.varint(u64::from(v));
        }
        w.varint(u64::from(self.uptime_bp));
        w.varint(u64::from(self.latency_ms));
        w.varint(u64::from(self.integrity_bp));
        w.varint(u64::from(self.bandwidth_bp));
        Some(w.len)
    }

    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let m = Self {
            period: r.u32()?,
            payment: r.u64()?,
            audits: r.u32()?,
            passed: r.u32()?,
            slow: r.u32()?,
            lost: r.u32()?,
            unanswered: r.u32()?,
            latency_avg_ms: r.u32()?,
            latency_max_ms: r.u32()?,
            deadline_ms: r.u32()?,
            uptime_bp: r.u16()?,
            latency_ms: r.u32()?,
            integrity_bp: r.u16()?,
            bandwidth_bp: r.u16()?,
        };
        r.finish()?;
        Ok(m)
    }
}

impl Message for Assessment {
    /// Two u16 varints, a 1-byte count and five 1-byte classes.
    const MAX_LEN: usize = 2 * 3 + 1 + Self::MAX_VIOLATIONS;

    fn encode(&self, out: &mut [u8]) -> Option<usize> {
        if self.violations.len() > Self::MAX_VIOLATIONS {
            return None;
        }
        let mut w = Writer::new(out, Self::MAX_LEN)?;
        w.varint(u64::from(self.score_bp));
        w.varint(u64::from(self.bonus_bp));
        w.varint(self.violations.len() as u64);
        for v in &self.violations {
            w.byte(v.index());
        }
        Some(w.len)
    }

    /// Like [`Quote`](crate::pricing::Quote)'s: the whole output is read first, so violations
    /// come out in SPEC.md section 12.4's order (malformed, too many, not exact); extra classes
    /// past the limit are read, never allocated.
    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let (score_bp, bonus_bp) = (r.u16()?, r.u16()?);
        let count = r.u64()?;
        let mut violations = Vec::with_capacity(count.min(Self::MAX_VIOLATIONS as u64) as usize);
        for i in 0..count {
            let class = Class::ALL[r.index(5, "violation class")? as usize];
            if i < Self::MAX_VIOLATIONS as u64 {
                violations.push(class);
            }
        }
        if count > Self::MAX_VIOLATIONS as u64 {
            return Err(DecodeError::TooMany {
                what: "violations",
                count,
                max: Self::MAX_VIOLATIONS,
            });
        }
        r.finish()?;
        Ok(Self {
            score_bp,
            bonus_bp,
            violations,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The request of SPEC.md R-qmsg-golden-request.
    fn golden() -> Measurements {
        Measurements {
            period: 2,
            payment: 1_000_000,
            audits: 4,
            passed: 3,
            slow: 0,
            lost: 1,
            unanswered: 0,
            latency_avg_ms: 7,
            latency_max_ms: 12,
            deadline_ms: 500,
            uptime_bp: 9_500,
            latency_ms: 5_000,
            integrity_bp: 9_900,
            bandwidth_bp: 8_000,
        }
    }

    #[test]
    fn golden_bytes_are_postcards_and_frozen() {
        let m = golden();
        let mut buf = [0u8; Measurements::MAX_LEN];
        let n = m.encode(&mut buf).unwrap();
        assert_eq!(
            &buf[..n],
            [
                0x02, 0xc0, 0x84, 0x3d, 0x04, 0x03, 0x00, 0x01, 0x00, 0x07, 0x0c, 0xf4, 0x03, 0x9c,
                0x4a, 0x88, 0x27, 0xac, 0x4d, 0xc0, 0x3e
            ]
        );
        assert_eq!(postcard::to_allocvec(&m).unwrap(), &buf[..n]);
        assert_eq!(Measurements::decode(&buf[..n]).unwrap(), m);

        let a = Assessment {
            score_bp: 7_500,
            bonus_bp: 0,
            violations: alloc::vec![Class::DataLoss],
        };
        let mut out = [0u8; Assessment::MAX_LEN];
        let n = a.encode(&mut out).unwrap();
        assert_eq!(&out[..n], [0xcc, 0x3a, 0x00, 0x01, 0x00]);
        assert_eq!(postcard::to_allocvec(&a).unwrap(), &out[..n]);
        assert_eq!(Assessment::decode(&out[..n]).unwrap(), a);
    }

    #[test]
    fn outputs_are_read_strictly_and_in_order() {
        // Six violations, each a valid class: too many.
        assert_eq!(
            Assessment::decode(&[0, 0, 6, 0, 0, 0, 0, 0, 0]),
            Err(DecodeError::TooMany {
                what: "violations",
                count: 6,
                max: 5
            })
        );
        assert_eq!(
            Assessment::decode(&[0, 0, 1, 5]),
            Err(DecodeError::BadValue {
                at: 3,
                field: "violation class"
            })
        );
        assert_eq!(
            Assessment::decode(&[0x80, 0x00, 0, 0]),
            Err(DecodeError::NotShortest { at: 0 })
        );
        assert_eq!(
            Assessment::decode(&[0, 0, 0, 0]),
            Err(DecodeError::Trailing { extra: 1 })
        );
        assert_eq!(Assessment::decode(&[0, 0]), Err(DecodeError::Truncated));
    }

    /// Every value encodes within `MAX_LEN`, as postcard's bytes, and reads back.
    #[test]
    fn every_request_fits_max_len_and_is_postcards() {
        let mut next = crate::extremes();
        for _ in 0..2_000 {
            let mut u32s = [0u32; 10];
            for v in &mut u32s {
                *v = next() as u32;
            }
            let m = Measurements {
                period: u32s[0],
                payment: next(),
                audits: u32s[1],
                passed: u32s[2],
                slow: u32s[3],
                lost: u32s[4],
                unanswered: u32s[5],
                latency_avg_ms: u32s[6],
                latency_max_ms: u32s[7],
                deadline_ms: u32s[8],
                uptime_bp: next() as u16,
                latency_ms: u32s[9],
                integrity_bp: next() as u16,
                bandwidth_bp: next() as u16,
            };
            let mut buf = [0u8; Measurements::MAX_LEN];
            let n = m.encode(&mut buf).unwrap();
            assert_eq!(&buf[..n], postcard::to_allocvec(&m).unwrap());
            assert_eq!(Measurements::decode(&buf[..n]).unwrap(), m);
        }
        let all_max = Measurements {
            period: u32::MAX,
            payment: u64::MAX,
            audits: u32::MAX,
            passed: u32::MAX,
            slow: u32::MAX,
            lost: u32::MAX,
            unanswered: u32::MAX,
            latency_avg_ms: u32::MAX,
            latency_max_ms: u32::MAX,
            deadline_ms: u32::MAX,
            uptime_bp: u16::MAX,
            latency_ms: u32::MAX,
            integrity_bp: u16::MAX,
            bandwidth_bp: u16::MAX,
        };
        let mut buf = [0u8; Measurements::MAX_LEN];
        assert_eq!(all_max.encode(&mut buf), Some(Measurements::MAX_LEN));
        let longest = Assessment {
            score_bp: u16::MAX,
            bonus_bp: u16::MAX,
            violations: alloc::vec![Class::Breach; Assessment::MAX_VIOLATIONS],
        };
        let mut out = [0u8; Assessment::MAX_LEN];
        assert_eq!(longest.encode(&mut out), Some(Assessment::MAX_LEN));
    }

    #[test]
    fn check_refuses_what_the_spec_refuses() {
        let ok = Assessment {
            score_bp: 10_000,
            bonus_bp: 1_500,
            violations: alloc::vec![],
        };
        assert_eq!(ok.check(), Ok(()));
        let bad = |f: fn(&mut Assessment)| {
            let mut a = ok.clone();
            f(&mut a);
            a.check().unwrap_err()
        };
        assert!(bad(|a| a.score_bp = 10_001).contains("score"));
        assert!(bad(|a| a.bonus_bp = 1_501).contains("1,500"));
        assert!(bad(|a| a.violations.push(Class::SlowResponse)).contains("bonus"));
    }

    #[test]
    fn requests_out_of_range_are_named() {
        assert_eq!(golden().check_ranges(), Ok(()));
        let mut m = golden();
        m.lost = 2;
        assert!(m.check_ranges().unwrap_err().contains("audits"));
        let mut m = golden();
        m.uptime_bp = 10_001;
        assert!(m.check_ranges().unwrap_err().contains("10,000"));
    }
}
