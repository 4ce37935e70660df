//! The audit statement and its circuit.
//!
//! The statement is the commitment's root, its block count, the audit's nonce and the holder's
//! identity (all as BN254 scalars); the one public input is their hash, `seed = Poseidon(Seed;
//! root, blocks, nonce, holder)`, which the circuit recomputes from them (one public input
//! instead of four: each costs the verifier a scalar multiplication). From the seed the circuit
//! derives the sampled blocks itself: word `j` is
//! `Poseidon(Sample; seed, j, 0, 0)`, decomposed canonically into bits; each 32-bit slice `r` of
//! its low 224 bits names block `⌊r · blocks / 2³²⌋` (7 samples per word). A holder therefore
//! cannot choose what it opens, and because the nonce and its identity feed the seed, a proof
//! answers one audit of one holder only.
//!
//! For every sample the witness is the block's four chunks and the three siblings of each
//! level; the circuit hashes the chunks to the leaf, climbs to the root along the position
//! bits of the derived index, and requires the public root. Knowing a preimage of the leaf is
//! knowing the block.

use ark_bn254::Fr;
use ark_ff::AdditiveGroup;
use ark_r1cs_std::alloc::AllocVar;
use ark_r1cs_std::boolean::Boolean;
use ark_r1cs_std::convert::ToBitsGadget;
use ark_r1cs_std::eq::EqGadget;
use ark_r1cs_std::fields::FieldVar;
use ark_r1cs_std::fields::fp::FpVar;
use ark_r1cs_std::select::CondSelectGadget;
use ark_relations::gr1cs::{ConstraintSynthesizer, ConstraintSystemRef, SynthesisError};
use serde::{Deserialize, Serialize};

use crate::poseidon::{RATE, Tag, hash, hash_var};
use crate::tree::{Commitment, chunk_field};
use crate::{Error, Shape};

/// Samples drawn from one word of the sample stream.
pub const PER_WORD: usize = 7;
/// Bits of one sample's slice.
const SLICE: usize = 32;

/// What a proof proves: that the holder `holder` keeps the blocks the nonce selects from the
/// shard committed to by `commitment`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    /// The shard's commitment, from the storage contract.
    pub commitment: Commitment,
    /// Fresh per audit, chosen by the auditor.
    pub nonce: [u8; 16],
    /// The holder's Ed25519 public key.
    pub holder: [u8; 32],
}

impl Statement {
    /// The statement as scalars: root, blocks, nonce, holder.
    pub fn inputs(&self) -> Result<[Fr; 4], Error> {
        Ok([
            self.commitment.root_field()?,
            Fr::from(self.commitment.blocks),
            chunk_field(&self.nonce),
            holder_field(&self.holder),
        ])
    }

    /// The proof's one public input: the hash of [`Self::inputs`].
    pub fn seed(&self) -> Result<Fr, Error> {
        Ok(hash(Tag::Seed, self.inputs()?))
    }

    /// The blocks this statement samples (with repetition) in a circuit of `samples` samples.
    pub fn samples(&self, samples: u8) -> Result<Vec<u64>, Error> {
        let seed = self.seed()?;
        let n = u64::from(self.commitment.blocks);
        let mut out = Vec::with_capacity(samples.into());
        for j in 0..usize::from(samples).div_ceil(PER_WORD) {
            let word = hash(Tag::Sample, [seed, Fr::from(j as u64), Fr::ZERO, Fr::ZERO]);
            let bytes = crate::tree::bytes_of(&word);
            for k in 0..PER_WORD {
                if out.len() == usize::from(samples) {
                    break;
                }
                let r = u32::from_le_bytes(bytes[4 * k..4 * k + 4].try_into().expect("4"));
                out.push((u64::from(r) * n) >> SLICE);
            }
        }
        Ok(out)
    }
}

/// The holder's identity as a scalar: 31 bytes of BLAKE3 over its key.
pub fn holder_field(key: &[u8; 32]) -> Fr {
    let h = blake3::derive_key("zhtp proof holder v1", key);
    chunk_field(&h[..31])
}

/// One sampled block: its chunks and its path's siblings.
#[derive(Clone, Debug)]
pub(crate) struct Opening {
    pub chunks: [Fr; RATE],
    pub siblings: Vec<[Fr; 3]>,
}

/// The circuit of one shape, with the statement's inputs and the holder's openings.
#[derive(Clone, Debug)]
pub(crate) struct AuditCircuit {
    pub shape: Shape,
    pub inputs: [Fr; 4],
    pub openings: Vec<Opening>,
}

impl AuditCircuit {
    /// The circuit with zeros everywhere: what the setup synthesizes.
    pub fn blank(shape: Shape) -> Self {
        Self {
            shape,
            inputs: [Fr::ZERO, Fr::from(1u64), Fr::ZERO, Fr::ZERO],
            openings: vec![
                Opening {
                    chunks: [Fr::ZERO; RATE],
                    siblings: vec![[Fr::ZERO; 3]; shape.depth.into()],
                };
                shape.samples.into()
            ],
        }
    }
}

/// The four children of a node whose child at position `b0 + 2·b1` is `cur`, the others
/// `s` in order: 10 constraints.
fn children(
    cur: &FpVar<Fr>,
    s: &[FpVar<Fr>; 3],
    b0: &Boolean<Fr>,
    b1: &Boolean<Fr>,
) -> Result<[FpVar<Fr>; RATE], SynthesisError> {
    let at0 = !b0 & !b1;
    let at1 = b0 & !b1;
    let at2 = !b0 & b1;
    let at3 = b0 & b1;
    let c0 = FpVar::conditionally_select(&at0, cur, &s[0])?;
    let c1 =
        FpVar::conditionally_select(&at0, &s[0], &FpVar::conditionally_select(&at1, cur, &s[1])?)?;
    let c2 =
        FpVar::conditionally_select(&at3, &s[2], &FpVar::conditionally_select(&at2, cur, &s[1])?)?;
    let c3 = FpVar::conditionally_select(&at3, cur, &s[2])?;
    Ok([c0, c1, c2, c3])
}

impl ConstraintSynthesizer<Fr> for AuditCircuit {
    fn generate_constraints(self, cs: ConstraintSystemRef<Fr>) -> Result<(), SynthesisError> {
        let depth = usize::from(self.shape.depth);
        let samples = usize::from(self.shape.samples);
        if self.openings.len() != samples || self.openings.iter().any(|o| o.siblings.len() != depth)
        {
            return Err(SynthesisError::Unsatisfiable);
        }
        let public = hash(Tag::Seed, self.inputs);
        let seed = FpVar::new_input(cs.clone(), || Ok(public))?;
        let [root, blocks, nonce, holder] = self
            .inputs
            .map(|v| FpVar::new_witness(cs.clone(), || Ok(v)));
        let (root, blocks, nonce, holder) = (root?, blocks?, nonce?, holder?);
        hash_var(Tag::Seed, [&root, &blocks, &nonce, &holder])?.enforce_equal(&seed)?;

        // The sampled positions, as bits (2 per level, least significant first).
        let zero = FpVar::zero();
        let mut positions: Vec<Vec<Boolean<Fr>>> = Vec::with_capacity(samples);
        for j in 0..samples.div_ceil(PER_WORD) {
            let counter = FpVar::constant(Fr::from(j as u64));
            let word = hash_var(Tag::Sample, [&seed, &counter, &zero, &zero])?;
            let bits = word.to_bits_le()?;
            for k in 0..PER_WORD {
                if positions.len() == samples {
                    break;
                }
                let r = Boolean::le_bits_to_fp(&bits[SLICE * k..SLICE * (k + 1)])?;
                // r · blocks < 2^32 · 4^depth: the product has exactly these bits, and its top
                // 2·depth are ⌊r · blocks / 2^32⌋ < blocks.
                let (bits, _) = (&r * &blocks).to_bits_le_with_top_bits_zero(SLICE + 2 * depth)?;
                positions.push(bits[SLICE..].to_vec());
            }
        }

        for (opening, bits) in self.openings.iter().zip(&positions) {
            let chunks = opening
                .chunks
                .map(|c| FpVar::new_witness(cs.clone(), || Ok(c)));
            let [a, b, c, d] = chunks;
            let (a, b, c, d) = (a?, b?, c?, d?);
            let mut node = hash_var(Tag::Leaf, [&a, &b, &c, &d])?;
            for (level, s) in opening.siblings.iter().enumerate() {
                let [s0, s1, s2] = s.map(|v| FpVar::new_witness(cs.clone(), || Ok(v)));
                let s = [s0?, s1?, s2?];
                let [c0, c1, c2, c3] = children(&node, &s, &bits[2 * level], &bits[2 * level + 1])?;
                node = hash_var(Tag::Node, [&c0, &c1, &c2, &c3])?;
            }
            node.enforce_equal(&root)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::{BLOCK, Tree, block_fields};
    use ark_relations::gr1cs::ConstraintSystem;

    fn satisfied(c: AuditCircuit) -> bool {
        let cs = ConstraintSystem::<Fr>::new_ref();
        c.generate_constraints(cs.clone()).unwrap();
        cs.is_satisfied().unwrap()
    }

    /// The circuit fixes which blocks open: a valid opening (the right chunks, the right path
    /// to the root) of a block the statement did not sample does not satisfy it. At the
    /// boundaries too: one block, and a full tree of 4^depth.
    #[test]
    fn only_the_sampled_blocks_open() {
        let shape = Shape {
            depth: 2,
            samples: 3,
        };
        for blocks in [1usize, 7, 16] {
            let shard: Vec<u8> = (0..blocks * BLOCK).map(|i| (i * 7 + 3) as u8).collect();
            let tree = Tree::build(&shard, shape.depth).unwrap();
            let st = Statement {
                commitment: tree.commitment(),
                nonce: [1; 16],
                holder: [2; 32],
            };
            let samples = st.samples(shape.samples).unwrap();
            let open = |i: u64| Opening {
                chunks: block_fields(&shard, i as usize),
                siblings: tree.siblings(i),
            };
            let honest = AuditCircuit {
                shape,
                inputs: st.inputs().unwrap(),
                openings: samples.iter().map(|&i| open(i)).collect(),
            };
            assert!(satisfied(honest.clone()), "{blocks} blocks");
            if let Some(other) = (0..blocks as u64).find(|i| *i != samples[0]) {
                let mut swapped = honest.clone();
                swapped.openings[0] = open(other);
                assert!(!satisfied(swapped), "{blocks} blocks: opened {other}");
            }
            // The right block with one chunk changed: not a preimage of its leaf.
            let mut changed = honest;
            changed.openings[1].chunks[2] += Fr::from(1u64);
            assert!(!satisfied(changed), "{blocks} blocks");
        }
    }
}
