//! Zero-knowledge storage proofs: a holder proves, with a 128-byte Groth16 proof over BN254,
//! that it still keeps the blocks an audit samples from a shard it is paid to keep, without
//! sending them.
//!
//! - At put time the client's node commits to each shard: a 4-ary Poseidon Merkle tree over
//!   its 124-byte blocks ([`Tree`], [`Commitment`]), recorded in the storage contract.
//! - An audit names a fresh nonce. The statement ([`Statement`]) is the commitment, the nonce
//!   and the holder's key; the circuit derives the sampled blocks from it, so the holder
//!   cannot choose them, and a proof answers that one audit of that one holder.
//! - The holder proves ([`Keys::prove`]): for every sample, it knows the block's contents
//!   (a preimage of the leaf) and the path from that leaf to the committed root.
//! - Anyone with the verifying key checks it ([`Keys::verify`]) in about a millisecond.
//!
//! The keys come from a deterministic setup ([`Keys::setup`]) whose seed is public: fine for a
//! devnet, worthless against a prover who reads this file (it can forge). Production needs a
//! multi-party ceremony; every proof names its circuit ([`CircuitId`]), so keys are replaced
//! by a new circuit id, never under an old one. See README "Storage proofs".

mod circuit;
mod keys;
pub mod poseidon;
mod tree;

use serde::{Deserialize, Serialize};

pub use circuit::{PER_WORD, Statement, holder_field};
pub use keys::{Keys, devnet_pin};
pub use tree::{BLOCK, CHUNK, Commitment, Tree, blocks_of};

/// The circuit's version: the layout of the statement, the sampling and the hashes. A change
/// to any of them is a new version, with new keys.
pub const CIRCUIT_VERSION: u8 = 1;

/// Bytes of a proof: A and C compressed in G1 (32 each), B in G2 (64).
pub const PROOF_LEN: usize = 128;

/// The size of a circuit: the tree's height and the samples per proof.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Shape {
    /// Height of the 4-ary tree: shards of up to 4^depth blocks.
    pub depth: u8,
    /// Blocks sampled per proof.
    pub samples: u8,
}

impl Shape {
    /// The devnet's circuit: shards up to 65,536 blocks (7.75 MiB; the default 4+2 code writes
    /// 1 MiB shards), 10 samples (a holder missing half a shard passes with probability
    /// 2⁻¹⁰).
    pub const DEVNET: Shape = Shape {
        depth: 8,
        samples: 10,
    };
    /// Deepest tree: 4^12 blocks of 124 bytes is 1.9 GiB.
    pub const MAX_DEPTH: u8 = 12;
    /// Most samples.
    pub const MAX_SAMPLES: u8 = 64;

    /// A shape, checked: depth 1 to [`Self::MAX_DEPTH`], samples 1 to [`Self::MAX_SAMPLES`].
    pub fn new(depth: u8, samples: u8) -> Result<Self, Error> {
        if !(1..=Self::MAX_DEPTH).contains(&depth) || !(1..=Self::MAX_SAMPLES).contains(&samples) {
            return Err(Error::Invalid(format!(
                "depth {depth} (1 to {}), samples {samples} (1 to {})",
                Self::MAX_DEPTH,
                Self::MAX_SAMPLES
            )));
        }
        Ok(Self { depth, samples })
    }

    /// This shape's circuit id.
    pub fn id(self) -> CircuitId {
        CircuitId(
            u32::from(CIRCUIT_VERSION) << 16 | u32::from(self.depth) << 8 | u32::from(self.samples),
        )
    }

    /// Blocks of the largest shard.
    pub fn max_blocks(self) -> u64 {
        4u64.pow(u32::from(self.depth))
    }

    /// Bytes of the largest shard.
    pub fn max_shard(self) -> u64 {
        self.max_blocks() * BLOCK as u64
    }
}

/// Names a circuit in every proof: version (bits 16–23), depth (8–15), samples (0–7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CircuitId(pub u32);

impl CircuitId {
    /// The shape, if this is a version this build proves and a valid shape.
    pub fn shape(self) -> Result<Shape, Error> {
        if self.0 >> 16 != u32::from(CIRCUIT_VERSION) {
            return Err(Error::Invalid(format!("unknown circuit {self}")));
        }
        Shape::new((self.0 >> 8) as u8, self.0 as u8)
    }
}

impl std::fmt::Display for CircuitId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "v{}-d{}-s{}",
            self.0 >> 16,
            (self.0 >> 8) as u8,
            self.0 as u8
        )
    }
}

/// A proof, with the circuit it is for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proof {
    /// The circuit (and so the keys) it verifies under.
    pub circuit: CircuitId,
    /// [`PROOF_LEN`] bytes: the Groth16 proof, compressed.
    #[serde(with = "serde_bytes")]
    pub bytes: Vec<u8>,
}

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Malformed input: a commitment, a shape or a proof's bytes.
    #[error("invalid: {0}")]
    Invalid(String),
    /// A shard too large for the circuit.
    #[error("a {bytes}-byte shard is larger than the circuit's {max} bytes")]
    TooLarge {
        /// Its size.
        bytes: u64,
        /// The largest the circuit takes.
        max: u64,
    },
    /// The holder's shard or tree does not lead to the committed root at a sampled block.
    #[error("block {block} does not match the commitment")]
    Mismatch {
        /// The sampled block.
        block: u64,
    },
    /// A proof for another circuit.
    #[error("a proof for circuit {found}, checked with the keys of {expected}")]
    WrongCircuit {
        /// The keys' circuit.
        expected: CircuitId,
        /// The proof's.
        found: CircuitId,
    },
    /// The proof does not verify: wrong statement, tampered, or made without the blocks.
    #[error("the proof does not verify")]
    Rejected,
    /// Keys whose verifying key is not the pinned one.
    #[error("verifying key {found} is not the pinned {expected}")]
    KeyMismatch {
        /// The pinned hash, hex.
        expected: String,
        /// The loaded key's, hex.
        found: String,
    },
    /// A key file that is not one (bad magic, checksum or encoding).
    #[error("key file {path}: {why}")]
    KeyFile {
        /// Where.
        path: String,
        /// What.
        why: String,
    },
    /// The proving system failed.
    #[error("proving: {0}")]
    Synthesis(String),
    /// Reading or writing keys.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn circuit_ids_round_trip_and_refuse_unknown_versions() {
        let id = Shape::DEVNET.id();
        assert_eq!(id.to_string(), "v1-d8-s10");
        assert_eq!(id.shape().unwrap(), Shape::DEVNET);
        assert!(matches!(
            CircuitId(2 << 16 | 8 << 8 | 10).shape(),
            Err(Error::Invalid(_))
        ));
        assert!(matches!(
            CircuitId(1 << 16 | 13 << 8 | 10).shape(),
            Err(Error::Invalid(_))
        ));
        assert!(matches!(
            CircuitId(1 << 16 | 8 << 8).shape(),
            Err(Error::Invalid(_))
        ));
        assert_eq!(Shape::DEVNET.max_shard(), 65_536 * 124);
    }
}
