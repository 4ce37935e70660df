//! The commitment to a shard: a 4-ary Poseidon Merkle tree over its blocks.
//!
//! A shard is cut into blocks of [`BLOCK`] bytes (the last one padded with zeros). A block is
//! four chunks of 31 bytes, each read as a little-endian integer (below 2²⁴⁸, so always a field
//! element), and its leaf is `Poseidon(Leaf; chunks)`. A node is `Poseidon(Node; children)`.
//! The tree has a fixed height (the circuit's depth): positions past the last block hold the
//! empty leaf (zero) and the empty subtrees above it, so a short shard's root is that of the
//! same tree as a long one's. A commitment is the root with the number of blocks: challenges
//! draw only among real blocks.

use ark_bn254::Fr;
use ark_ff::{AdditiveGroup, BigInteger, PrimeField};
use serde::{Deserialize, Serialize};

use crate::poseidon::{RATE, Tag, hash};
use crate::{Error, Shape};

/// Bytes of one field element of a block.
pub const CHUNK: usize = 31;
/// Bytes of a block: one permutation's worth of chunks.
pub const BLOCK: usize = CHUNK * RATE;

/// What a storage contract records of a shard: enough to check a proof without the shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Commitment {
    /// The tree's root, a BN254 scalar in its canonical 32-byte little-endian form.
    pub root: [u8; 32],
    /// Blocks of the shard (at least 1; at most 4^depth).
    pub blocks: u32,
    /// The tree's height: that of the circuit that proves against it.
    pub depth: u8,
}

impl Commitment {
    /// The root as a field element; `Err` if the bytes are not a canonical scalar.
    pub fn root_field(&self) -> Result<Fr, Error> {
        field_of(&self.root).ok_or_else(|| Error::Invalid("root is not a canonical scalar".into()))
    }

    /// Checks that this commitment fits `shape`: same depth, 1 to 4^depth blocks, a
    /// canonical root.
    pub fn check(&self, shape: Shape) -> Result<(), Error> {
        if self.depth != shape.depth {
            return Err(Error::Invalid(format!(
                "a depth-{} commitment for a depth-{} circuit",
                self.depth, shape.depth
            )));
        }
        if self.blocks == 0 || u64::from(self.blocks) > shape.max_blocks() {
            return Err(Error::Invalid(format!(
                "{} blocks (1 to {})",
                self.blocks,
                shape.max_blocks()
            )));
        }
        self.root_field().map(|_| ())
    }
}

/// A canonical 32-byte little-endian scalar, or `None` (arkworks refuses a value ≥ the
/// modulus).
pub(crate) fn field_of(bytes: &[u8; 32]) -> Option<Fr> {
    use ark_serialize::CanonicalDeserialize;
    Fr::deserialize_compressed(&bytes[..]).ok()
}

/// The canonical 32 bytes of a scalar.
pub(crate) fn bytes_of(f: &Fr) -> [u8; 32] {
    f.into_bigint()
        .to_bytes_le()
        .try_into()
        .expect("BN254 scalars are 32 bytes")
}

/// Little-endian bytes (at most 31) as a field element.
pub(crate) fn chunk_field(bytes: &[u8]) -> Fr {
    debug_assert!(bytes.len() <= CHUNK);
    Fr::from_le_bytes_mod_order(bytes)
}

/// Block `i` of `shard` as field elements (zero past the end).
pub fn block_fields(shard: &[u8], i: usize) -> [Fr; RATE] {
    let start = (i * BLOCK).min(shard.len());
    let block = &shard[start..shard.len().min(start + BLOCK)];
    let mut out = [Fr::ZERO; RATE];
    for (o, c) in out.iter_mut().zip(block.chunks(CHUNK)) {
        *o = chunk_field(c);
    }
    out
}

/// Blocks of a shard of `len` bytes (an empty shard is one zero block).
pub fn blocks_of(len: usize) -> u64 {
    (len as u64).div_ceil(BLOCK as u64).max(1)
}

/// The leaf of block `i` of `shard`.
pub fn leaf(shard: &[u8], i: usize) -> Fr {
    hash(Tag::Leaf, block_fields(shard, i))
}

/// The hash of an empty subtree of each height `0..=depth` (height 0: the empty leaf).
pub(crate) fn empty(depth: u8) -> Vec<Fr> {
    let mut out = vec![Fr::ZERO];
    for h in 0..depth as usize {
        let e = out[h];
        out.push(hash(Tag::Node, [e; RATE]));
    }
    out
}

/// A shard's whole tree: what a holder keeps (or rebuilds) to prove. Level 0 is the leaves of
/// the real blocks; every level stops at its last non-empty node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tree {
    depth: u8,
    levels: Vec<Vec<Fr>>,
    empty: Vec<Fr>,
}

impl Tree {
    /// Builds the tree of `shard` for circuits of height `depth`. Refuses a shard of more
    /// blocks than the tree has leaves. About 1.33 permutations per block, on every core.
    pub fn build(shard: &[u8], depth: u8) -> Result<Self, Error> {
        let blocks = blocks_of(shard.len());
        let max = 4u64.saturating_pow(u32::from(depth));
        if blocks > max {
            return Err(Error::TooLarge {
                bytes: shard.len() as u64,
                max: max * BLOCK as u64,
            });
        }
        // On every core: a commitment hashes the whole shard with Poseidon.
        use rayon::prelude::*;
        let leaves: Vec<Fr> = (0..blocks as usize)
            .into_par_iter()
            .map(|i| leaf(shard, i))
            .collect();
        let empty = empty(depth);
        let mut levels = vec![leaves];
        for h in 0..depth as usize {
            let below = &levels[h];
            let up: Vec<Fr> = below
                .par_chunks(RATE)
                .map(|c| {
                    let mut kids = [empty[h]; RATE];
                    kids[..c.len()].copy_from_slice(c);
                    hash(Tag::Node, kids)
                })
                .collect();
            levels.push(up);
        }
        Ok(Self {
            depth,
            levels,
            empty,
        })
    }

    /// The root.
    pub fn root(&self) -> Fr {
        self.levels[self.depth as usize][0]
    }

    /// The commitment a contract records.
    pub fn commitment(&self) -> Commitment {
        Commitment {
            root: bytes_of(&self.root()),
            blocks: u32::try_from(self.levels[0].len()).expect("at most 4^depth ≤ 2^32 blocks"),
            depth: self.depth,
        }
    }

    /// The siblings of block `index`'s path, from the leaves up: at each level the three other
    /// children of the node, in order.
    pub fn siblings(&self, index: u64) -> Vec<[Fr; 3]> {
        let mut pos = index as usize;
        (0..self.depth as usize)
            .map(|h| {
                let first = pos - pos % RATE;
                let mut out = [Fr::ZERO; 3];
                let mut k = 0;
                for j in first..first + RATE {
                    if j != pos {
                        out[k] = self.levels[h].get(j).copied().unwrap_or(self.empty[h]);
                        k += 1;
                    }
                }
                pos /= RATE;
                out
            })
            .collect()
    }
}

/// The root a leaf at `index` with `siblings` leads to (the check the circuit makes).
pub(crate) fn climb(mut node: Fr, index: u64, siblings: &[[Fr; 3]]) -> Fr {
    let mut pos = index as usize;
    for s in siblings {
        let at = pos % RATE;
        let mut kids = [Fr::ZERO; RATE];
        let mut k = 0;
        for (j, kid) in kids.iter_mut().enumerate() {
            if j == at {
                *kid = node;
            } else {
                *kid = s[k];
                k += 1;
            }
        }
        node = hash(Tag::Node, kids);
        pos /= RATE;
    }
    node
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_lead_to_the_root_and_padding_is_the_empty_tree() {
        let shard: Vec<u8> = (0..BLOCK * 21 + 5).map(|i| (i * 31 % 251) as u8).collect();
        let t = Tree::build(&shard, 3).unwrap();
        let c = t.commitment();
        assert_eq!(c.blocks, 22);
        for i in [0u64, 1, 4, 15, 16, 21] {
            assert_eq!(climb(leaf(&shard, i as usize), i, &t.siblings(i)), t.root());
        }
        // A changed byte changes its block's path to the root.
        let mut other = shard.clone();
        other[BLOCK * 7 + 3] ^= 1;
        assert_ne!(climb(leaf(&other, 7), 7, &t.siblings(7)), t.root());
        assert_ne!(Tree::build(&other, 3).unwrap().root(), t.root());
        // Trailing zeros inside the last block pad it: the block count tells lengths apart
        // only by blocks, and the shard's own hash (in the contract) by bytes.
        let one = Tree::build(&[], 2).unwrap();
        assert_eq!(one.commitment().blocks, 1);
        assert_eq!(one.root(), Tree::build(&[0; BLOCK], 2).unwrap().root());
        assert_ne!(one.root(), empty(2)[2]);
    }

    #[test]
    fn too_many_blocks_are_refused() {
        let shard = vec![1u8; BLOCK * 16 + 1];
        assert!(matches!(
            Tree::build(&shard, 2),
            Err(Error::TooLarge { max, .. }) if max == 16 * BLOCK as u64
        ));
        assert!(Tree::build(&shard[..BLOCK * 16], 2).is_ok());
    }

    #[test]
    fn roots_are_canonical_scalars() {
        let t = Tree::build(b"hello", 1).unwrap();
        let c = t.commitment();
        assert_eq!(c.root_field().unwrap(), t.root());
        let mut bad = c;
        bad.root = [0xff; 32];
        assert!(bad.root_field().is_err());
    }
}
