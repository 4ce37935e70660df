//! The seed's quality targets as a zhtp quality plugin: judges one provider's audited period
//! of a storage contract against the contract's SLA. See README.md for the rules; `tests/quality_sla.rs` runs
//! every case natively and through wasm.
#![no_std]

extern crate alloc;
use alloc::vec::Vec;

use zhtp_sdk::quality::{Assessment, Class, Measurements, share_bp};

/// Bonus for a period whose every audit passed with a mean answer within a tenth of the
/// deadline: 15% of the period's payment.
pub const TOP_BONUS_BP: u16 = 1_500;
/// Bonus for a mean answer within a quarter of the deadline: 7.5%.
pub const GOOD_BONUS_BP: u16 = 750;

/// Judges a period.
#[zhtp_sdk::plugin(quality)]
pub fn assess(m: Measurements) -> Result<Assessment, &'static str> {
    let mut violations = Vec::new();
    // Integrity: audits answered with the shard's digest (in time or late) of all asked.
    if share_bp(m.audits.saturating_sub(m.lost), m.audits) < m.integrity_bp {
        violations.push(Class::DataLoss);
    }
    // Uptime: audits answered at all (a wrong answer is still an answer).
    if share_bp(m.audits.saturating_sub(m.unanswered), m.audits) < m.uptime_bp {
        violations.push(Class::Unavailability);
    }
    // A right answer after the deadline is what a holder fetching the shard from elsewhere
    // looks like: never excused by a share.
    if m.slow > 0 {
        violations.push(Class::SlowResponse);
    }
    if m.latency_max_ms > m.latency_ms {
        violations.push(Class::Degradation);
    }
    let bonus_bp = if violations.is_empty() && m.audits > 0 && m.passed == m.audits {
        let deadline = u64::from(m.deadline_ms);
        let mean = u64::from(m.latency_avg_ms);
        if mean * 10 <= deadline {
            TOP_BONUS_BP
        } else if mean * 4 <= deadline {
            GOOD_BONUS_BP
        } else {
            0
        }
    } else {
        0
    };
    Ok(Assessment {
        score_bp: share_bp(m.passed, m.audits),
        bonus_bp,
        violations,
    })
}
