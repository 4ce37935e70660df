//! Messages of the tier plugin kind (entry export [`v1::TIER_ENTRY`](crate::v1::TIER_ENTRY)).
//!
//! The host asks a tier plugin where a content belongs: at a put (which erasure code for new
//! content of this size and requested class) and at reviews of content put through it (whether
//! to migrate it, from its access statistics). Both questions are the same
//! message, [`Facts`]; the answer is a [`Choice`]. The plugin also sees the network's observed
//! churn, so it can choose a code that keeps a durability target ([`crate::durability`]).

use serde::{Deserialize, Serialize};
use zhtp_types::StorageTier;

use crate::pricing::tier_index;
use crate::wire::{DecodeError, Message, Reader, Writer};

/// What the host knows about a content and the network. Sent as the call's input.
///
/// At a put, `data`, `parity`, `age_secs`, `reads_30d` and `idle_secs` are 0 and `tier` is the
/// tier the client asked for. At a review, they describe the content as it is stored. The
/// host guarantees the ranges of [`Facts::check_ranges`] (SPEC.md R-treq-ranges).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Facts {
    /// Plaintext size, bytes.
    pub size: u64,
    /// The requested tier at a put; the content's tier at a review.
    pub tier: StorageTier,
    /// Data shards per segment of the stored content (0 at a put).
    pub data: u8,
    /// Parity shards per segment of the stored content (0 at a put).
    pub parity: u8,
    /// Seconds since the content was put (0 at a put).
    pub age_secs: u64,
    /// Reads of the content this node served in the last 30 days.
    pub reads_30d: u32,
    /// Seconds since the last read, or since the put if never read (0 at a put).
    pub idle_secs: u64,
    /// Storage nodes this node knows, itself included: the most distinct holders a segment's
    /// shards can have.
    pub nodes: u32,
    /// Observed mean lifetime of a node in the network, seconds.
    pub lifetime_secs: u64,
    /// Observed mean time to repair a lost shard, seconds.
    pub repair_secs: u64,
}

impl Facts {
    /// The facts of a put of `size` bytes asked for in `tier`, on a network of `nodes` nodes
    /// living `lifetime_secs` on average and repaired in `repair_secs`: nothing stored yet.
    pub fn put(
        size: u64,
        tier: StorageTier,
        nodes: u32,
        lifetime_secs: u64,
        repair_secs: u64,
    ) -> Self {
        Self {
            size,
            tier,
            data: 0,
            parity: 0,
            age_secs: 0,
            reads_30d: 0,
            idle_secs: 0,
            nodes,
            lifetime_secs,
            repair_secs,
        }
    }

    /// Whether these facts describe a put (no code yet) rather than a review.
    pub fn is_put(&self) -> bool {
        self.data == 0
    }

    /// Checks what the host guarantees about every request it sends (SPEC.md R-treq-ranges):
    /// a put has no code, age or idleness; a review has a valid code (k ≥ 1, m ≥ 1) and is
    /// idle at most as long as it is old; at least one node; lifetime and repair time ≥ 1 s.
    pub fn check_ranges(&self) -> Result<(), &'static str> {
        if self.is_put() {
            if self.parity != 0 || self.age_secs != 0 || self.idle_secs != 0 || self.reads_30d != 0
            {
                return Err("a put (data = 0) has parity, age, reads and idleness 0");
            }
        } else if self.parity == 0 || u16::from(self.data) + u16::from(self.parity) > 255 {
            return Err("a review's code must have parity >= 1 and data + parity <= 255");
        } else if self.idle_secs > self.age_secs {
            return Err("idle_secs must be at most age_secs");
        }
        if self.nodes == 0 {
            return Err("nodes must be at least 1");
        }
        if self.lifetime_secs == 0 || self.repair_secs == 0 {
            return Err("lifetime_secs and repair_secs must be at least 1");
        }
        Ok(())
    }
}

/// A tier plugin's answer: the tier and erasure code the content should have. At a review,
/// the same tier and code as now means "stay". Returned as the call's output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Choice {
    /// The tier.
    pub tier: StorageTier,
    /// Data shards per segment, k.
    pub data: u8,
    /// Parity shards per segment, m.
    pub parity: u8,
}

impl Choice {
    /// Most shards per segment a choice may ask for (SPEC.md R-tout-code): each shard is
    /// placed, audited and repaired on its own, so wider codes cost more than they save.
    pub const MAX_SHARDS: u16 = 64;

    /// Why the choice breaks SPEC.md R-tout-code / R-tout-fit / R-tout-tier for `facts`, if it
    /// does. The host refuses such an output.
    pub fn check(&self, facts: &Facts) -> Result<(), &'static str> {
        if self.data == 0 || self.parity == 0 {
            return Err("data and parity must each be at least 1");
        }
        let shards = u16::from(self.data) + u16::from(self.parity);
        if shards > Self::MAX_SHARDS {
            return Err("data + parity above 64");
        }
        // Nodes refuse manifests that store more than three times their data (a reader
        // rebuilding a segment allocates every slot): such a choice could never be published.
        if u16::from(self.parity) > 2 * u16::from(self.data) {
            return Err("parity above twice data (more than 3x the content stored)");
        }
        // A review's "stay" keeps the stored code even where the network has shrunk below it.
        let stays = !facts.is_put() && (self.data, self.parity) == (facts.data, facts.parity);
        if u32::from(shards) > facts.nodes.max(2) && !stays {
            return Err("data + parity above the nodes known (at least 2 allowed)");
        }
        // The client asked for (and signed a price for) a class: a put keeps it.
        if facts.is_put() && self.tier != facts.tier {
            return Err("at a put, the tier is the one the client asked for");
        }
        Ok(())
    }
}

impl Message for Facts {
    /// Four u64 varints (10 bytes each), a tier (1), two u8 (1 each), two u32 varints (5
    /// each), one u64 varint (10).
    const MAX_LEN: usize = 4 * 10 + 1 + 2 + 2 * 5 + 10;

    fn encode(&self, out: &mut [u8]) -> Option<usize> {
        let mut w = Writer::new(out, Self::MAX_LEN)?;
        w.varint(self.size);
        w.byte(tier_index(self.tier));
        w.byte(self.data);
        w.byte(self.parity);
        w.varint(self.age_secs);
        w.varint(u64::from(self.reads_30d));
        w.varint(self.idle_secs);
        w.varint(u64::from(self.nodes));
        w.varint(self.lifetime_secs);
        w.varint(self.repair_secs);
        Some(w.len)
    }

    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let f = Self {
            size: r.u64()?,
            tier: StorageTier::ALL[r.index(4, "storage tier")? as usize],
            data: r.byte()?,
            parity: r.byte()?,
            age_secs: r.u64()?,
            reads_30d: r.u32()?,
            idle_secs: r.u64()?,
            nodes: r.u32()?,
            lifetime_secs: r.u64()?,
            repair_secs: r.u64()?,
        };
        r.finish()?;
        Ok(f)
    }
}

impl Message for Choice {
    /// A tier (1) and two u8.
    const MAX_LEN: usize = 3;

    fn encode(&self, out: &mut [u8]) -> Option<usize> {
        let mut w = Writer::new(out, Self::MAX_LEN)?;
        w.byte(tier_index(self.tier));
        w.byte(self.data);
        w.byte(self.parity);
        Some(w.len)
    }

    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let c = Self {
            tier: StorageTier::ALL[r.index(4, "storage tier")? as usize],
            data: r.byte()?,
            parity: r.byte()?,
        };
        r.finish()?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The request of SPEC.md R-tmsg-golden-request: a review of a 3 MiB warm content.
    pub(crate) fn golden() -> Facts {
        Facts {
            size: 3 << 20,
            tier: StorageTier::Warm,
            data: 8,
            parity: 4,
            age_secs: 2_592_000,
            reads_30d: 0,
            idle_secs: 2_592_000,
            nodes: 40,
            lifetime_secs: 7_776_000,
            repair_secs: 3_600,
        }
    }

    #[test]
    fn golden_bytes_are_postcards_and_frozen() {
        let f = golden();
        let mut buf = [0u8; Facts::MAX_LEN];
        let n = f.encode(&mut buf).unwrap();
        let bytes = postcard::to_allocvec(&f).unwrap();
        assert_eq!(&buf[..n], bytes.as_slice());
        assert_eq!(
            &buf[..n],
            [
                0x80, 0x80, 0xc0, 0x01, 0x01, 0x08, 0x04, 0x80, 0x9a, 0x9e, 0x01, 0x00, 0x80, 0x9a,
                0x9e, 0x01, 0x28, 0x80, 0xce, 0xda, 0x03, 0x90, 0x1c
            ]
        );
        assert_eq!(Facts::decode(&buf[..n]).unwrap(), f);

        let c = Choice {
            tier: StorageTier::Cold,
            data: 12,
            parity: 6,
        };
        let mut out = [0u8; Choice::MAX_LEN];
        let n = c.encode(&mut out).unwrap();
        assert_eq!(&out[..n], [0x02, 0x0c, 0x06]);
        assert_eq!(postcard::to_allocvec(&c).unwrap(), &out[..n]);
        assert_eq!(Choice::decode(&out[..n]).unwrap(), c);
    }

    #[test]
    fn outputs_are_read_strictly() {
        assert_eq!(
            Choice::decode(&[4, 1, 1]),
            Err(DecodeError::BadValue {
                at: 0,
                field: "storage tier"
            })
        );
        assert_eq!(Choice::decode(&[0, 1]), Err(DecodeError::Truncated));
        assert_eq!(
            Choice::decode(&[0, 1, 1, 0]),
            Err(DecodeError::Trailing { extra: 1 })
        );
        assert_eq!(
            Choice::decode(&[0x80, 0x00, 1, 1]),
            Err(DecodeError::NotShortest { at: 0 })
        );
    }

    /// Every value encodes within `MAX_LEN`, as postcard's bytes, and reads back.
    #[test]
    fn every_request_fits_max_len_and_is_postcards() {
        let mut next = crate::extremes();
        for _ in 0..2_000 {
            let f = Facts {
                size: next(),
                tier: StorageTier::ALL[(next() % 4) as usize],
                data: next() as u8,
                parity: next() as u8,
                age_secs: next(),
                reads_30d: next() as u32,
                idle_secs: next(),
                nodes: next() as u32,
                lifetime_secs: next(),
                repair_secs: next(),
            };
            let mut buf = [0u8; Facts::MAX_LEN];
            let n = f.encode(&mut buf).unwrap();
            assert_eq!(&buf[..n], postcard::to_allocvec(&f).unwrap());
            assert_eq!(Facts::decode(&buf[..n]).unwrap(), f);
        }
        let all_max = Facts {
            size: u64::MAX,
            tier: StorageTier::Archive,
            data: u8::MAX,
            parity: u8::MAX,
            age_secs: u64::MAX,
            reads_30d: u32::MAX,
            idle_secs: u64::MAX,
            nodes: u32::MAX,
            lifetime_secs: u64::MAX,
            repair_secs: u64::MAX,
        };
        let mut buf = [0u8; Facts::MAX_LEN];
        assert_eq!(all_max.encode(&mut buf), Some(Facts::MAX_LEN));
    }

    #[test]
    fn checks_refuse_what_the_spec_refuses() {
        let f = golden();
        assert_eq!(f.check_ranges(), Ok(()));
        let bad = |g: fn(&mut Facts)| {
            let mut f = golden();
            g(&mut f);
            f.check_ranges().unwrap_err()
        };
        assert!(bad(|f| f.data = 0).contains("put"));
        assert!(bad(|f| f.parity = 0).contains("parity"));
        assert!(bad(|f| f.idle_secs = f.age_secs + 1).contains("idle"));
        assert!(bad(|f| f.nodes = 0).contains("nodes"));
        assert!(bad(|f| f.repair_secs = 0).contains("repair"));
        let put = Facts {
            data: 0,
            parity: 0,
            age_secs: 0,
            idle_secs: 0,
            ..golden()
        };
        assert_eq!(put.check_ranges(), Ok(()));

        let ok = Choice {
            tier: StorageTier::Warm,
            data: 8,
            parity: 4,
        };
        assert_eq!(ok.check(&f), Ok(()));
        let heavy = Choice {
            data: 2,
            parity: 5,
            ..ok
        };
        assert!(heavy.check(&f).unwrap_err().contains("twice"));
        let no_parity = Choice { parity: 0, ..ok };
        assert!(no_parity.check(&f).unwrap_err().contains("at least 1"));
        let wide = Choice {
            data: 60,
            parity: 5,
            ..ok
        };
        let many = Facts { nodes: 1_000, ..f };
        assert!(wide.check(&many).unwrap_err().contains("64"));
        let few = Facts { nodes: 6, ..f };
        let wider = Choice { parity: 5, ..ok };
        assert!(wider.check(&few).unwrap_err().contains("nodes"));
        let shrunk = Facts { nodes: 3, ..f };
        assert_eq!(
            ok.check(&shrunk),
            Ok(()),
            "a review may keep its code on fewer nodes"
        );
        let put = Facts {
            data: 0,
            parity: 0,
            age_secs: 0,
            idle_secs: 0,
            ..f
        };
        let hot = Choice {
            tier: StorageTier::Hot,
            ..ok
        };
        assert!(hot.check(&put).unwrap_err().contains("client asked"));
        assert_eq!(hot.check(&f), Ok(()), "a review may move the tier");
        let one = Facts { nodes: 1, ..f };
        let pair = Choice {
            data: 1,
            parity: 1,
            ..ok
        };
        assert_eq!(
            pair.check(&one),
            Ok(()),
            "a one-node network may still ask 1+1"
        );
    }
}
