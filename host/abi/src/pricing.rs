//! Messages of the pricing plugin kind (entry export [`v1::PRICING_ENTRY`](crate::v1::PRICING_ENTRY)).

use alloc::vec::Vec;

use serde::{Deserialize, Serialize};
use zhtp_types::{MicroZhtp, StorageTier};

/// Basis points: 10,000 bp = 100% = a factor of 1.0.
pub const BP_ONE: u32 = 10_000;

/// How soon the content must be placed. Moves the base price.
///
/// JSON spells it `low`, `normal`, `high` (and reads the capitalised names of earlier
/// versions); postcard encodes the variant's index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Urgency {
    /// Placement may wait for cheap capacity.
    #[serde(alias = "Low")]
    Low,
    /// The default.
    #[serde(alias = "Normal")]
    Normal,
    /// Placement now, at a premium.
    #[serde(alias = "High")]
    High,
}

/// What the host asks a pricing plugin to price. Sent postcard-encoded as the call's input.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuoteRequest {
    /// Bytes to store (before erasure coding).
    pub size_bytes: u64,
    /// How long to store them.
    pub duration_days: u32,
    /// Storage class.
    pub tier: StorageTier,
    /// Whether SLA quality guarantees are requested (adds the quality premium).
    pub quality: bool,
    /// Redundancy asked for, in full-copy equivalents (the tier's erasure code is ~1.5).
    /// 3 is the neutral reference.
    pub replication: u8,
    /// How soon.
    pub urgency: Urgency,
    /// Network storage utilisation in basis points (0..=10,000); 5,000 is a neutral market.
    pub utilization_bp: u16,
}

impl QuoteRequest {
    /// Neutral replication factor.
    pub const NEUTRAL_REPLICATION: u8 = 3;
    /// Neutral market utilisation.
    pub const NEUTRAL_UTILIZATION_BP: u16 = 5_000;

    /// Most utilisation there is: 100%.
    pub const MAX_UTILIZATION_BP: u16 = 10_000;

    /// What the host guarantees a plugin about every request it sends (SPEC.md R-req-ranges):
    /// at least one byte, one day and one copy, and a utilisation of at most 100%. The host
    /// refuses any other request itself, without calling the plugin.
    pub fn check_ranges(&self) -> Result<(), &'static str> {
        if self.size_bytes == 0 {
            return Err("size must be at least 1 byte");
        }
        if self.duration_days == 0 {
            return Err("duration must be at least 1 day");
        }
        if self.replication == 0 {
            return Err("replication must be at least 1");
        }
        if self.utilization_bp > Self::MAX_UTILIZATION_BP {
            return Err("utilization must be at most 10,000 bp (100%)");
        }
        Ok(())
    }

    /// A request in a neutral market: replication 3, normal urgency, 50% utilisation.
    pub fn new(size_bytes: u64, duration_days: u32, tier: StorageTier, quality: bool) -> Self {
        Self {
            size_bytes,
            duration_days,
            tier,
            quality,
            replication: Self::NEUTRAL_REPLICATION,
            urgency: Urgency::Normal,
            utilization_bp: Self::NEUTRAL_UTILIZATION_BP,
        }
    }
}

/// What moved the price. A closed set in ABI v1: a fixed code costs nothing to encode or decode,
/// where a string would cost an allocation on both sides of every call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Factor {
    /// The storage tier.
    Tier,
    /// The replication factor.
    Replication,
    /// The placement urgency.
    Urgency,
    /// Network utilisation (market supply and demand).
    Utilization,
    /// A surge multiplier.
    Surge,
    /// A plugin-specific factor, numbered by the plugin (documented in its README).
    Custom(u16),
}

impl Factor {
    /// Lower-case name for display and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Factor::Tier => "tier",
            Factor::Replication => "replication",
            Factor::Urgency => "urgency",
            Factor::Utilization => "utilization",
            Factor::Surge => "surge",
            Factor::Custom(_) => "custom",
        }
    }
}

/// One multiplicative adjustment of the base price, shown in the quote's breakdown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Adjustment {
    /// What moved the price.
    pub factor: Factor,
    /// The factor applied, in basis points (10,000 = unchanged).
    pub factor_bp: u32,
}

/// A price, all in integer µZHTP. Returned postcard-encoded as the call's output.
///
/// `total = base + quality_premium + network_fee + escrow_fee`. `max_bonus` is not paid by the
/// client: it is the most the providers can earn on top from the incentive pool.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quote {
    /// The base price after every adjustment.
    pub base: MicroZhtp,
    /// Premium for quality guarantees (0 when none were asked).
    pub quality_premium: MicroZhtp,
    /// Protocol maintenance fee.
    pub network_fee: MicroZhtp,
    /// Payment-security fee for the escrow.
    pub escrow_fee: MicroZhtp,
    /// Largest performance bonus providers can earn for this storage.
    pub max_bonus: MicroZhtp,
    /// What the client pays.
    pub total: MicroZhtp,
    /// The adjustments applied to the neutral base, in order.
    pub adjustments: Vec<Adjustment>,
}

impl Quote {
    /// Most adjustments a quote may list (SPEC.md R-out-adjustments-max).
    pub const MAX_ADJUSTMENTS: usize = 16;
    /// Longest encoding of a quote with at most [`Self::MAX_ADJUSTMENTS`] adjustments: six
    /// 10-byte varints, a 1-byte count and 16 × (index + 3-byte code + 5-byte factor).
    pub const MAX_ENCODED_LEN: usize = 6 * 10 + 1 + 16 * 9;

    /// Checks the invariant `total = base + premium + fees` without overflow. The host refuses a
    /// plugin output that breaks it.
    pub fn is_consistent(&self) -> bool {
        self.base
            .checked_add(self.quality_premium)
            .and_then(|s| s.checked_add(self.network_fee))
            .and_then(|s| s.checked_add(self.escrow_fee))
            == Some(self.total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Golden encoding: a change here breaks every deployed plugin.
    #[test]
    fn quote_request_encoding_is_frozen() {
        let req = QuoteRequest::new(1_000_000_000, 1, StorageTier::Warm, true);
        let bytes = postcard::to_allocvec(&req).unwrap();
        assert_eq!(
            bytes,
            [
                0x80, 0x94, 0xeb, 0xdc, 0x03, 0x01, 0x01, 0x01, 0x03, 0x01, 0x88, 0x27
            ]
        );
        assert_eq!(postcard::from_bytes::<QuoteRequest>(&bytes).unwrap(), req);
    }

    /// Golden encoding of a quote with a custom factor (SPEC.md section 8.5, "two more
    /// examples"); the standard plugin's own quote is pinned by `tests/abi_compat.rs`.
    #[test]
    fn quote_encoding_is_frozen() {
        let q = Quote {
            base: 100_000_000,
            quality_premium: 10_000_000,
            network_fee: 5_000_000,
            escrow_fee: 2_000_000,
            max_bonus: 15_000_000,
            total: 117_000_000,
            adjustments: alloc::vec![
                Adjustment {
                    factor: Factor::Tier,
                    factor_bp: 10_000
                },
                Adjustment {
                    factor: Factor::Custom(7),
                    factor_bp: 1
                },
            ],
        };
        let bytes = postcard::to_allocvec(&q).unwrap();
        assert_eq!(
            bytes,
            [
                0x80, 0xc2, 0xd7, 0x2f, 0x80, 0xad, 0xe2, 0x04, 0xc0, 0x96, 0xb1, 0x02, 0x80, 0x89,
                0x7a, 0xc0, 0xc3, 0x93, 0x07, 0xc0, 0x8e, 0xe5, 0x37, 0x02, 0x00, 0x90, 0x4e, 0x05,
                0x07, 0x01
            ]
        );
        assert_eq!(postcard::from_bytes::<Quote>(&bytes).unwrap(), q);
    }

    #[test]
    fn consistency() {
        let mut q = Quote {
            base: 100,
            quality_premium: 10,
            network_fee: 5,
            escrow_fee: 2,
            max_bonus: 15,
            total: 117,
            adjustments: Vec::new(),
        };
        assert!(q.is_consistent());
        q.total = 118;
        assert!(!q.is_consistent());
        q.base = u64::MAX;
        assert!(!q.is_consistent());
    }
}
