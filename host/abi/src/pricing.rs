//! Messages of the pricing plugin kind (entry export [`v1::PRICING_ENTRY`](crate::v1::PRICING_ENTRY)).

use alloc::vec::Vec;

use serde::{Deserialize, Serialize};
use zhtp_types::{MicroZhtp, StorageTier};

use crate::wire::{DecodeError, Message, Reader, Writer};

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

impl Urgency {
    /// Every urgency, in the order of their v1 wire indices.
    pub const ALL: [Urgency; 3] = [Urgency::Low, Urgency::Normal, Urgency::High];
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

// The v1 encodings (SPEC.md sections 7 and 8), field by field in declaration order: the same
// bytes as postcard's, read strictly (see `crate::wire`).

pub(crate) fn tier_index(t: StorageTier) -> u8 {
    match t {
        StorageTier::Hot => 0,
        StorageTier::Warm => 1,
        StorageTier::Cold => 2,
        StorageTier::Archive => 3,
    }
}

/// A factor's variant index (SPEC.md section 8.3).
#[inline]
fn factor_index(f: Factor) -> u8 {
    match f {
        Factor::Tier => 0,
        Factor::Replication => 1,
        Factor::Urgency => 2,
        Factor::Utilization => 3,
        Factor::Surge => 4,
        Factor::Custom(_) => 5,
    }
}

fn urgency_index(u: Urgency) -> u8 {
    match u {
        Urgency::Low => 0,
        Urgency::Normal => 1,
        Urgency::High => 2,
    }
}

impl Message for QuoteRequest {
    /// u64 (10) + u32 (5) + tier (1) + bool (1) + u8 (1) + urgency (1) + u16 (3).
    const MAX_LEN: usize = 22;

    // Inlined into the host's call path, which encodes every request into a stack buffer:
    // a quote took 209 ns without, 200 ns with (two binaries alternated, `quote_loop`).
    #[inline]
    fn encode(&self, out: &mut [u8]) -> Option<usize> {
        let mut w = Writer::new(out, Self::MAX_LEN)?;
        w.varint(self.size_bytes);
        w.varint(u64::from(self.duration_days));
        w.byte(tier_index(self.tier));
        w.byte(u8::from(self.quality));
        w.byte(self.replication);
        w.byte(urgency_index(self.urgency));
        w.varint(u64::from(self.utilization_bp));
        Some(w.len)
    }

    // Inlined so that the guest's dispatch keeps the request in registers: moved out of a
    // `Result` in memory, its fields were stored narrow and reloaded wide, and the load waited
    // for the stores (a third of the SDK's entry function in a profile).
    #[inline]
    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let req = Self {
            size_bytes: r.u64()?,
            duration_days: r.u32()?,
            tier: StorageTier::ALL[r.index(4, "storage tier")? as usize],
            quality: r.bool()?,
            replication: r.byte()?,
            urgency: Urgency::ALL[r.index(3, "urgency")? as usize],
            utilization_bp: r.u16()?,
        };
        r.finish()?;
        Ok(req)
    }
}

impl Message for Quote {
    /// Six 10-byte varints, a 1-byte count and 16 × (index + 3-byte code + 5-byte factor).
    const MAX_LEN: usize = 6 * 10 + 1 + 16 * 9;

    fn encode(&self, out: &mut [u8]) -> Option<usize> {
        if self.adjustments.len() > Self::MAX_ADJUSTMENTS {
            return None;
        }
        let mut w = Writer::new(out, Self::MAX_LEN)?;
        for v in [
            self.base,
            self.quality_premium,
            self.network_fee,
            self.escrow_fee,
            self.max_bonus,
            self.total,
        ] {
            w.varint(v);
        }
        w.varint(self.adjustments.len() as u64);
        for a in &self.adjustments {
            // The index as a value, not a `match` that writes: it compiles to a load of the
            // enum's tag, where a writing `match` became an indirect jump per adjustment (a
            // quarter of the guest's encoder in a profile, benches/README.md, third pass).
            w.byte(factor_index(a.factor));
            if let Factor::Custom(code) = a.factor {
                w.varint(u64::from(code));
            }
            w.varint(u64::from(a.factor_bp));
        }
        Some(w.len)
    }

    /// Reads the whole output first, so that its violations come out in the order of SPEC.md
    /// section 8.4: malformed (R-out-decode), then more than [`Quote::MAX_ADJUSTMENTS`], then
    /// not exact (R-out-exact). Adjustments past the limit are read but not kept: a hostile
    /// count costs reading the output, never an allocation of its size. The sum (R-out-sum) is
    /// [`Quote::is_consistent`], the caller's.
    // Inlined into the host's call path so the quote is built where it ends, not copied from
    // `Result` to `Result` (benches/README.md, third pass, item 1).
    #[inline]
    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let (base, quality_premium, network_fee) = (r.u64()?, r.u64()?, r.u64()?);
        let (escrow_fee, max_bonus, total) = (r.u64()?, r.u64()?, r.u64()?);
        let count = r.u64()?;
        let mut adjustments = Vec::with_capacity(count.min(Self::MAX_ADJUSTMENTS as u64) as usize);
        for i in 0..count {
            let factor = match r.index(6, "factor")? {
                0 => Factor::Tier,
                1 => Factor::Replication,
                2 => Factor::Urgency,
                3 => Factor::Utilization,
                4 => Factor::Surge,
                _ => Factor::Custom(r.u16()?),
            };
            let factor_bp = r.u32()?;
            if i < Self::MAX_ADJUSTMENTS as u64 {
                adjustments.push(Adjustment { factor, factor_bp });
            }
        }
        if count > Self::MAX_ADJUSTMENTS as u64 {
            return Err(DecodeError::TooMany {
                what: "adjustments",
                count,
                max: Self::MAX_ADJUSTMENTS,
            });
        }
        r.finish()?;
        Ok(Self {
            base,
            quality_premium,
            network_fee,
            escrow_fee,
            max_bonus,
            total,
            adjustments,
        })
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

    mod wire {
        use alloc::vec;
        use alloc::vec::Vec;

        use proptest::prelude::*;

        use super::*;
        use crate::wire::{DecodeError, Message};

        fn tier() -> impl Strategy<Value = StorageTier> {
            prop::sample::select(StorageTier::ALL.to_vec())
        }

        fn request() -> impl Strategy<Value = QuoteRequest> {
            (
                any::<u64>(),
                any::<u32>(),
                tier(),
                any::<bool>(),
                any::<u8>(),
                0..3u8,
                any::<u16>(),
            )
                .prop_map(|(size, days, tier, quality, replication, u, util)| {
                    QuoteRequest {
                        size_bytes: size,
                        duration_days: days,
                        tier,
                        quality,
                        replication,
                        urgency: Urgency::ALL[u as usize],
                        utilization_bp: util,
                    }
                })
        }

        fn factor() -> impl Strategy<Value = Factor> {
            prop_oneof![
                Just(Factor::Tier),
                Just(Factor::Replication),
                Just(Factor::Urgency),
                Just(Factor::Utilization),
                Just(Factor::Surge),
                any::<u16>().prop_map(Factor::Custom),
            ]
        }

        fn quote() -> impl Strategy<Value = Quote> {
            (
                prop::array::uniform6(any::<u64>()),
                prop::collection::vec((factor(), any::<u32>()), 0..=16),
            )
                .prop_map(|(a, adj)| Quote {
                    base: a[0],
                    quality_premium: a[1],
                    network_fee: a[2],
                    escrow_fee: a[3],
                    max_bonus: a[4],
                    total: a[5],
                    adjustments: adj
                        .into_iter()
                        .map(|(factor, factor_bp)| Adjustment { factor, factor_bp })
                        .collect(),
                })
        }

        fn encoded<M: Message>(m: &M) -> Vec<u8> {
            let mut buf = [0u8; 256];
            let n = m.encode(&mut buf).unwrap();
            buf[..n].to_vec()
        }

        proptest! {
            /// The hand-written codec writes postcard's bytes and reads them back.
            #[test]
            fn requests_are_postcard_bytes(req in request()) {
                let bytes = encoded(&req);
                prop_assert_eq!(&bytes, &postcard::to_allocvec(&req).unwrap());
                prop_assert!(bytes.len() <= QuoteRequest::MAX_LEN);
                prop_assert_eq!(QuoteRequest::decode(&bytes).unwrap(), req);
            }

            #[test]
            fn quotes_are_postcard_bytes(q in quote()) {
                let bytes = encoded(&q);
                prop_assert_eq!(&bytes, &postcard::to_allocvec(&q).unwrap());
                prop_assert!(bytes.len() <= Quote::MAX_LEN);
                prop_assert_eq!(Quote::decode(&bytes).unwrap(), q);
            }

            /// Whatever bytes it is given, the strict reader accepts only what postcard reads
            /// to the same value and what re-encodes to the very same bytes.
            #[test]
            fn only_exact_encodings_decode(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
                if let Ok(q) = Quote::decode(&bytes) {
                    prop_assert_eq!(postcard::from_bytes::<Quote>(&bytes).unwrap(), q.clone());
                    prop_assert_eq!(encoded(&q), bytes.clone());
                }
                if let Ok(r) = QuoteRequest::decode(&bytes) {
                    prop_assert_eq!(encoded(&r), bytes);
                }
            }
        }

        /// The longest quote is exactly `MAX_LEN` bytes: the encoder writes within `MAX_LEN`,
        /// so a `MAX_LEN` that undercounted would panic here.
        #[test]
        fn the_longest_quote_fills_max_len() {
            let longest = Quote {
                base: u64::MAX,
                quality_premium: u64::MAX,
                network_fee: u64::MAX,
                escrow_fee: u64::MAX,
                max_bonus: u64::MAX,
                total: u64::MAX,
                adjustments: vec![
                    Adjustment {
                        factor: Factor::Custom(u16::MAX),
                        factor_bp: u32::MAX
                    };
                    Quote::MAX_ADJUSTMENTS
                ],
            };
            let mut buf = [0u8; Quote::MAX_LEN];
            assert_eq!(longest.encode(&mut buf), Some(Quote::MAX_LEN));
            let req = QuoteRequest {
                size_bytes: u64::MAX,
                duration_days: u32::MAX,
                tier: StorageTier::Archive,
                quality: true,
                replication: u8::MAX,
                urgency: Urgency::High,
                utilization_bp: u16::MAX,
            };
            let mut buf = [0u8; QuoteRequest::MAX_LEN];
            assert_eq!(req.encode(&mut buf), Some(QuoteRequest::MAX_LEN));
        }

        #[test]
        fn each_rule_has_its_error() {
            let golden = [
                0x80, 0x94, 0xeb, 0xdc, 0x03, 0x01, 0x01, 0x01, 0x03, 0x01, 0x88, 0x27,
            ];
            let req = QuoteRequest::decode(&golden).unwrap();
            assert_eq!(
                req,
                QuoteRequest::new(1_000_000_000, 1, StorageTier::Warm, true)
            );
            let mut bad_bool = golden;
            bad_bool[7] = 2;
            assert_eq!(
                QuoteRequest::decode(&bad_bool),
                Err(DecodeError::BadValue {
                    at: 7,
                    field: "bool"
                })
            );
            let mut bad_tier = golden;
            bad_tier[6] = 4;
            assert_eq!(
                QuoteRequest::decode(&bad_tier),
                Err(DecodeError::BadValue {
                    at: 6,
                    field: "storage tier"
                })
            );
            assert_eq!(
                QuoteRequest::decode(&golden[..11]),
                Err(DecodeError::Truncated)
            );
            let mut trailing = golden.to_vec();
            trailing.push(0);
            assert_eq!(
                QuoteRequest::decode(&trailing),
                Err(DecodeError::Trailing { extra: 1 })
            );

            // u16 max is ff ff 03; 04 in the third byte does not fit.
            let util_too_big = [1, 1, 0, 0, 3, 1, 0xff, 0xff, 0x04];
            assert_eq!(
                QuoteRequest::decode(&util_too_big),
                Err(DecodeError::BadVarint { at: 6 })
            );
            let overlong = [0x81, 0x00, 1, 0, 0, 3, 1, 0];
            assert_eq!(
                QuoteRequest::decode(&overlong),
                Err(DecodeError::NotShortest { at: 0 })
            );
            // u64 max: nine ff and 01; 02 as the tenth byte is too large.
            let mut big = [0xffu8; 10].to_vec();
            big[9] = 0x02;
            big.extend_from_slice(&[1, 0, 0, 3, 1, 0]);
            assert_eq!(
                QuoteRequest::decode(&big),
                Err(DecodeError::BadVarint { at: 0 })
            );

            // A quote claiming 17 adjustments is refused whole; with 16 it decodes.
            let mut q = vec![1, 0, 0, 0, 0, 1, 16];
            q.extend([0, 1].repeat(16));
            assert_eq!(Quote::decode(&q).unwrap().adjustments.len(), 16);
            q[6] = 17;
            q.extend([0, 1]);
            assert_eq!(
                Quote::decode(&q),
                Err(DecodeError::TooMany {
                    what: "adjustments",
                    count: 17,
                    max: 16
                })
            );
            // Nor is one written.
            let many = Quote {
                base: 1,
                quality_premium: 0,
                network_fee: 0,
                escrow_fee: 0,
                max_bonus: 0,
                total: 1,
                adjustments: vec![
                    Adjustment {
                        factor: Factor::Tier,
                        factor_bp: 1
                    };
                    17
                ],
            };
            assert_eq!(many.encode(&mut [0u8; 512]), None);
            // A buffer shorter than the longest encoding is refused, even when this value's
            // encoding would fit: the writer works within `MAX_LEN` bytes, never past the end.
            assert_eq!(req.encode(&mut [0u8; QuoteRequest::MAX_LEN - 1]), None);
            assert_eq!(
                req.encode(&mut [0u8; QuoteRequest::MAX_LEN]),
                Some(golden.len())
            );
            // A factor index past Custom (5).
            assert_eq!(
                Quote::decode(&[1, 0, 0, 0, 0, 1, 1, 6, 1]),
                Err(DecodeError::BadValue {
                    at: 7,
                    field: "factor"
                })
            );
        }
    }
}
