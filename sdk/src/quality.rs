//! Messages of quality plugins: one provider's audited period in, a judgement out.
//!
//! A quality plugin decides what counts as a violation and what earns a bonus; the rates a
//! violation costs are clauses of the signed storage contract, charged by the host.

pub use zhtp_abi::quality::*;

/// `part` as a share of `whole` in basis points, rounded down; 10,000 when `whole` is 0
/// (nothing asked, nothing missed).
pub fn share_bp(part: u32, whole: u32) -> u16 {
    if whole == 0 {
        return 10_000;
    }
    (u64::from(part.min(whole)) * 10_000 / u64::from(whole)) as u16
}
