//! Proving and verifying keys: the deterministic devnet setup, the key file, proving and
//! verifying.
//!
//! A key file is `ZHTPG16` 0x01, the circuit id (u32 little-endian), the proving key in
//! arkworks' uncompressed encoding (it contains the verifying key), and BLAKE3 of everything
//! before it. Loading checks the checksum, then decodes without the curve checks (they cost
//! seconds for a large key, and the checksum already says the bytes are the ones written),
//! then compares the verifying key's hash with the pinned one: a key that is not the pinned one
//! never verifies or proves anything here.

use std::io::Write;
use std::path::{Path, PathBuf};

use ark_bn254::{Bn254, Fr};
use ark_groth16::{Groth16, PreparedVerifyingKey, ProvingKey};
use ark_serialize::{CanonicalDeserialize, CanonicalSerialize};
use ark_snark::SNARK;
use rand_chacha::rand_core::SeedableRng;

use crate::circuit::{AuditCircuit, Opening};
use crate::tree::{Tree, block_fields, climb};
use crate::{CircuitId, Error, PROOF_LEN, Proof, Shape, Statement};

const MAGIC: &[u8; 8] = b"ZHTPG16\x01";

/// The verifying-key hashes of the devnet setup, per shape: what [`Keys::load_or_setup`]
/// checks when no other pin is configured. A new arkworks that changed the setup's output
/// would change them, and fail loudly here rather than split the devnet.
pub fn devnet_pin(shape: Shape) -> Option<[u8; 32]> {
    let hex = match (shape.depth, shape.samples) {
        (8, 10) => "45fe9e16f34fe01420400e364b42765e935337beb694556ae2a928ddb927bcf8",
        _ => return None,
    };
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex, &mut out).ok()?;
    Some(out)
}

/// The keys of one circuit.
pub struct Keys {
    shape: Shape,
    pk: ProvingKey<Bn254>,
    pvk: PreparedVerifyingKey<Bn254>,
    vk_hash: [u8; 32],
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("circuit", &self.shape.id().to_string())
            .field("vk_hash", &hex::encode(self.vk_hash))
            .finish_non_exhaustive()
    }
}

/// BLAKE3 of the verifying key, uncompressed: both coordinates of every point, so a key file
/// decoded without curve checks that passes the pin holds exactly the pinned points (a
/// compressed encoding keeps only x and a sign, which a tampered y would not change).
fn vk_hash(pk: &ProvingKey<Bn254>) -> [u8; 32] {
    let mut bytes = Vec::new();
    pk.vk
        .serialize_uncompressed(&mut bytes)
        .expect("serializing to memory");
    *blake3::hash(&bytes).as_bytes()
}

impl Keys {
    fn from_pk(shape: Shape, pk: ProvingKey<Bn254>) -> Self {
        let pvk = ark_groth16::prepare_verifying_key(&pk.vk);
        let vk_hash = vk_hash(&pk);
        Self {
            shape,
            pk,
            pvk,
            vk_hash,
        }
    }

    /// The devnet setup of `shape`: Groth16's trapdoor drawn from ChaCha20 seeded with
    /// BLAKE3 `derive_key("zhtp groth16 devnet setup v1", circuit id as u32 LE)`. Anyone can
    /// recompute the trapdoor, so anyone can forge proofs under these keys: devnet only.
    pub fn setup(shape: Shape) -> Result<Self, Error> {
        let seed = blake3::derive_key("zhtp groth16 devnet setup v1", &shape.id().0.to_le_bytes());
        let mut rng = rand_chacha::ChaCha20Rng::from_seed(seed);
        let (pk, _) =
            Groth16::<Bn254>::circuit_specific_setup(AuditCircuit::blank(shape), &mut rng)
                .map_err(|e| Error::Synthesis(e.to_string()))?;
        Ok(Self::from_pk(shape, pk))
    }

    /// The circuit.
    pub fn shape(&self) -> Shape {
        self.shape
    }

    /// BLAKE3 of the verifying key (uncompressed): what a configuration pins.
    pub fn vk_hash(&self) -> [u8; 32] {
        self.vk_hash
    }

    /// Where [`Self::load_or_setup`] keeps the keys of `shape` in `dir`.
    pub fn path(dir: &Path, shape: Shape) -> PathBuf {
        dir.join(format!("groth16-{}.keys", shape.id()))
    }

    /// Writes the key file (to a temporary name, synced, then renamed: a crash leaves the old
    /// file or the new one, never half of one).
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        let mut bytes = Vec::with_capacity(self.pk.uncompressed_size() + 44);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&self.shape.id().0.to_le_bytes());
        self.pk
            .serialize_uncompressed(&mut bytes)
            .expect("serializing to memory");
        let sum = blake3::hash(&bytes);
        bytes.extend_from_slice(sum.as_bytes());
        let tmp = path.with_extension("keys.tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }

    /// Reads a key file of `shape`, and refuses it unless its verifying key hashes to `pin`.
    pub fn load(path: &Path, shape: Shape, pin: &[u8; 32]) -> Result<Self, Error> {
        let bad = |why: &str| Error::KeyFile {
            path: path.display().to_string(),
            why: why.to_string(),
        };
        let bytes = std::fs::read(path)?;
        if bytes.len() < MAGIC.len() + 4 + 32 || &bytes[..MAGIC.len()] != MAGIC {
            return Err(bad("not a zhtp Groth16 key file"));
        }
        let (body, sum) = bytes.split_at(bytes.len() - 32);
        if blake3::hash(body).as_bytes() != sum {
            return Err(bad("checksum mismatch: the file is damaged"));
        }
        let id = u32::from_le_bytes(body[8..12].try_into().expect("4 bytes"));
        if id != shape.id().0 {
            return Err(bad(&format!(
                "keys of circuit {}, not {}",
                CircuitId(id),
                shape.id()
            )));
        }
        let pk = ProvingKey::<Bn254>::deserialize_uncompressed_unchecked(&body[12..])
            .map_err(|e| bad(&format!("undecodable: {e}")))?;
        let keys = Self::from_pk(shape, pk);
        if &keys.vk_hash != pin {
            return Err(Error::KeyMismatch {
                expected: hex::encode(pin),
                found: hex::encode(keys.vk_hash),
            });
        }
        Ok(keys)
    }

    /// The keys of `shape` from `dir`, made by the devnet setup and saved there the first
    /// time (and again if the file is damaged). `pin` defaults to [`devnet_pin`]; a shape with
    /// neither is refused (keys nobody pinned would be whatever the file says).
    pub fn load_or_setup(dir: &Path, shape: Shape, pin: Option<[u8; 32]>) -> Result<Self, Error> {
        let pin = pin.or_else(|| devnet_pin(shape)).ok_or_else(|| {
            Error::Invalid(format!(
                "no pinned verifying key for circuit {}",
                shape.id()
            ))
        })?;
        let path = Self::path(dir, shape);
        if path.exists() {
            match Self::load(&path, shape, &pin) {
                // A damaged file is made again: the setup is deterministic, and the pin still
                // decides whether the result is the right key.
                Err(Error::KeyFile { .. }) => {}
                other => return other,
            }
        }
        let keys = Self::setup(shape)?;
        if keys.vk_hash != pin {
            return Err(Error::KeyMismatch {
                expected: hex::encode(pin),
                found: hex::encode(keys.vk_hash),
            });
        }
        std::fs::create_dir_all(dir)?;
        keys.save(&path)?;
        Ok(keys)
    }

    /// The holder's proof for `statement` from its `shard` and the shard's `tree`. Checks
    /// every sampled block against the commitment first ([`Error::Mismatch`]: a proof from a
    /// wrong block would not verify, and costs as much as a good one).
    pub fn prove(&self, statement: &Statement, shard: &[u8], tree: &Tree) -> Result<Proof, Error> {
        let (circuit, samples) = self.circuit(statement, shard, tree)?;
        for (o, i) in circuit.openings.iter().zip(samples) {
            let leaf = crate::poseidon::hash(crate::poseidon::Tag::Leaf, o.chunks);
            if climb(leaf, i, &o.siblings) != circuit.inputs[0] {
                return Err(Error::Mismatch { block: i });
            }
        }
        self.prove_circuit(circuit)
    }

    /// [`Self::prove`] without the check: what a holder that lost blocks could run. Only for
    /// tests that show such a proof does not verify.
    #[doc(hidden)]
    pub fn prove_unchecked(
        &self,
        statement: &Statement,
        shard: &[u8],
        tree: &Tree,
    ) -> Result<Proof, Error> {
        let (circuit, _) = self.circuit(statement, shard, tree)?;
        self.prove_circuit(circuit)
    }

    /// The circuit with the holder's openings, and the blocks they open.
    fn circuit(
        &self,
        statement: &Statement,
        shard: &[u8],
        tree: &Tree,
    ) -> Result<(AuditCircuit, Vec<u64>), Error> {
        statement.commitment.check(self.shape)?;
        if tree.commitment().depth != self.shape.depth {
            return Err(Error::Invalid("the tree is of another depth".into()));
        }
        let samples = statement.samples(self.shape.samples)?;
        let openings = samples
            .iter()
            .map(|&i| Opening {
                chunks: block_fields(shard, i as usize),
                siblings: tree.siblings(i),
            })
            .collect();
        let circuit = AuditCircuit {
            shape: self.shape,
            inputs: statement.inputs()?,
            openings,
        };
        Ok((circuit, samples))
    }

    fn prove_circuit(&self, circuit: AuditCircuit) -> Result<Proof, Error> {
        let mut rng = ark_std::rand::rngs::OsRng;
        let proof = Groth16::<Bn254>::prove(&self.pk, circuit, &mut rng)
            .map_err(|e| Error::Synthesis(e.to_string()))?;
        let mut bytes = Vec::with_capacity(PROOF_LEN);
        proof
            .serialize_compressed(&mut bytes)
            .expect("serializing to memory");
        debug_assert_eq!(bytes.len(), PROOF_LEN);
        Ok(Proof {
            circuit: self.shape.id(),
            bytes,
        })
    }

    /// Checks `proof` against `statement`: `Ok` only if it was made for this circuit, this
    /// commitment, this nonce and this holder by someone who had the sampled blocks.
    pub fn verify(&self, statement: &Statement, proof: &Proof) -> Result<(), Error> {
        if proof.circuit != self.shape.id() {
            return Err(Error::WrongCircuit {
                expected: self.shape.id(),
                found: proof.circuit,
            });
        }
        statement.commitment.check(self.shape)?;
        if proof.bytes.len() != PROOF_LEN {
            return Err(Error::Invalid(format!(
                "a proof of {} bytes (it is {PROOF_LEN})",
                proof.bytes.len()
            )));
        }
        // Checked decoding: points on the curve and in the prime-order subgroups.
        let p = ark_groth16::Proof::<Bn254>::deserialize_compressed(&proof.bytes[..])
            .map_err(|e| Error::Invalid(format!("proof: {e}")))?;
        let seed: Fr = statement.seed()?;
        match Groth16::<Bn254>::verify_with_processed_vk(&self.pvk, &[seed], &p) {
            Ok(true) => Ok(()),
            Ok(false) => Err(Error::Rejected),
            Err(e) => Err(Error::Synthesis(e.to_string())),
        }
    }

    /// Constraints of `shape`'s circuit (synthesized, not proved).
    pub fn constraints(shape: Shape) -> usize {
        use ark_relations::gr1cs::{ConstraintSynthesizer, ConstraintSystem};
        let cs = ConstraintSystem::<Fr>::new_ref();
        AuditCircuit::blank(shape)
            .generate_constraints(cs.clone())
            .expect("the blank circuit synthesizes");
        cs.num_constraints()
    }
}
