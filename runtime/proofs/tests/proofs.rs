//! Storage proofs end to end: honest proofs verify; every way of lying named in issue 16 is
//! refused, each with the error that says why; keys are saved, loaded, pinned; decoding
//! survives arbitrary bytes.

use std::sync::OnceLock;

use proptest::prelude::*;
use zhtp_proofs::{BLOCK, Commitment, Error, Keys, PROOF_LEN, Proof, Shape, Statement, Tree};

/// A small circuit (shards up to 64 blocks, 4 samples): its setup takes a fraction of a
/// second, so most tests use it; one test runs the devnet circuit.
const SMALL: Shape = Shape {
    depth: 3,
    samples: 4,
};

fn small_keys() -> &'static Keys {
    static K: OnceLock<Keys> = OnceLock::new();
    K.get_or_init(|| Keys::setup(SMALL).unwrap())
}

fn shard(len: usize, salt: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1] ^ salt)
        .collect()
}

const HOLDER: [u8; 32] = [7; 32];
const OTHER: [u8; 32] = [8; 32];

fn statement(c: Commitment, nonce: u8, holder: [u8; 32]) -> Statement {
    Statement {
        commitment: c,
        nonce: [nonce; 16],
        holder,
    }
}

#[test]
fn an_honest_holder_proves_and_every_changed_input_is_rejected() {
    let keys = small_keys();
    let data = shard(BLOCK * 50 + 17, 0);
    let tree = Tree::build(&data, SMALL.depth).unwrap();
    let c = tree.commitment();
    assert_eq!(c.blocks, 51);
    let st = statement(c, 1, HOLDER);
    let proof = keys.prove(&st, &data, &tree).unwrap();
    assert_eq!(proof.bytes.len(), PROOF_LEN);
    assert_eq!(proof.circuit, SMALL.id());
    keys.verify(&st, &proof).unwrap();

    // Another nonce: an old proof replayed for a new audit.
    let replay = statement(c, 2, HOLDER);
    assert!(matches!(keys.verify(&replay, &proof), Err(Error::Rejected)));
    // Another holder's identity: a proof lent to a node that does not hold the shard.
    let lent = statement(c, 1, OTHER);
    assert!(matches!(keys.verify(&lent, &proof), Err(Error::Rejected)));
    // Another root: a proof of other data.
    let other = Tree::build(&shard(BLOCK * 50 + 17, 1), SMALL.depth)
        .unwrap()
        .commitment();
    assert!(matches!(
        keys.verify(&statement(other, 1, HOLDER), &proof),
        Err(Error::Rejected)
    ));
    // Another block count under the same root.
    let mut fewer = c;
    fewer.blocks = 50;
    assert!(matches!(
        keys.verify(&statement(fewer, 1, HOLDER), &proof),
        Err(Error::Rejected)
    ));
    // A proof named for another circuit.
    let mut renamed = proof.clone();
    renamed.circuit = Shape::DEVNET.id();
    assert!(matches!(
        keys.verify(&st, &renamed),
        Err(Error::WrongCircuit { .. })
    ));
    // A commitment that does not fit the circuit.
    let mut huge = c;
    huge.blocks = 65;
    assert!(matches!(
        keys.verify(&statement(huge, 1, HOLDER), &proof),
        Err(Error::Invalid(_))
    ));
    // And the same statement still verifies: nothing above was a fluke of the keys.
    keys.verify(&st, &proof).unwrap();
}

#[test]
fn tampered_proofs_never_verify() {
    let keys = small_keys();
    let data = shard(BLOCK * 9, 3);
    let tree = Tree::build(&data, SMALL.depth).unwrap();
    let st = statement(tree.commitment(), 5, HOLDER);
    let proof = keys.prove(&st, &data, &tree).unwrap();
    for i in 0..PROOF_LEN {
        for bit in [0u8, 3, 7] {
            let mut t = proof.clone();
            t.bytes[i] ^= 1 << bit;
            match keys.verify(&st, &t) {
                Err(Error::Rejected | Error::Invalid(_)) => {}
                other => panic!("byte {i} bit {bit}: {other:?}"),
            }
        }
    }
    let mut short = proof.clone();
    short.bytes.pop();
    assert!(matches!(keys.verify(&st, &short), Err(Error::Invalid(_))));
    // Proofs are randomized: a second proof of the same statement differs and verifies.
    let again = keys.prove(&st, &data, &tree).unwrap();
    assert_ne!(again.bytes, proof.bytes);
    keys.verify(&st, &again).unwrap();
}

#[test]
fn a_holder_without_the_blocks_cannot_prove() {
    let keys = small_keys();
    let data = shard(BLOCK * 40, 4);
    let tree = Tree::build(&data, SMALL.depth).unwrap();
    let st = statement(tree.commitment(), 9, HOLDER);
    let sampled = st.samples(SMALL.samples).unwrap();
    assert_eq!(sampled.len(), 4);
    assert!(sampled.iter().all(|&i| i < 40));

    // One sampled block changed: the honest prover names it...
    let mut changed = data.clone();
    changed[sampled[2] as usize * BLOCK + 100] ^= 0x40;
    match keys.prove(&st, &changed, &tree) {
        Err(Error::Mismatch { block }) => assert_eq!(block, sampled[2]),
        other => panic!("{other:?}"),
    }
    // ...and a prover that goes on anyway, with the kept tree, makes a proof that fails.
    let forged = keys.prove_unchecked(&st, &changed, &tree).unwrap();
    assert!(matches!(keys.verify(&st, &forged), Err(Error::Rejected)));

    // A holder that kept only the tree (every leaf hash and node) and no data at all.
    let none = vec![0u8; data.len()];
    let forged = keys.prove_unchecked(&st, &none, &tree).unwrap();
    assert!(matches!(keys.verify(&st, &forged), Err(Error::Rejected)));

    // A block nobody samples changed: the proof still verifies (sampling, not a full read:
    // what the number of samples buys is said in README "Storage proofs").
    let unsampled = (0..40u64).find(|i| !sampled.contains(i)).unwrap();
    let mut elsewhere = data.clone();
    elsewhere[unsampled as usize * BLOCK] ^= 1;
    let p = keys.prove(&st, &elsewhere, &tree).unwrap();
    keys.verify(&st, &p).unwrap();
}

#[test]
fn samples_depend_on_nonce_and_holder_and_cover_the_shard() {
    let data = shard(BLOCK * 64, 5);
    let c = Tree::build(&data, SMALL.depth).unwrap().commitment();
    let a = statement(c, 1, HOLDER).samples(32).unwrap();
    assert_ne!(a, statement(c, 2, HOLDER).samples(32).unwrap());
    assert_ne!(a, statement(c, 1, OTHER).samples(32).unwrap());
    let mut seen = std::collections::HashSet::new();
    for n in 0..=255u8 {
        let s = statement(c, n, HOLDER).samples(SMALL.samples).unwrap();
        assert!(s.iter().all(|&i| i < 64));
        seen.extend(s);
    }
    // 1,024 draws from 64 blocks: all of them show up.
    assert_eq!(seen.len(), 64);
}

#[test]
fn keys_are_deterministic_saved_loaded_and_pinned() {
    let keys = small_keys();
    let again = Keys::setup(SMALL).unwrap();
    assert_eq!(again.vk_hash(), keys.vk_hash());
    let other = Keys::setup(Shape {
        depth: 3,
        samples: 5,
    })
    .unwrap();
    assert_ne!(other.vk_hash(), keys.vk_hash());

    let dir = tempfile::tempdir().unwrap();
    let path = Keys::path(dir.path(), SMALL);
    keys.save(&path).unwrap();
    let pin = keys.vk_hash();
    let loaded = Keys::load(&path, SMALL, &pin).unwrap();
    // The loaded keys prove and verify with the original ones.
    let data = shard(BLOCK * 3, 6);
    let tree = Tree::build(&data, SMALL.depth).unwrap();
    let st = statement(tree.commitment(), 3, HOLDER);
    keys.verify(&st, &loaded.prove(&st, &data, &tree).unwrap())
        .unwrap();

    // Another pin: refused, naming both hashes.
    match Keys::load(&path, SMALL, &[1; 32]) {
        Err(Error::KeyMismatch { expected, found }) => {
            assert_eq!(expected, hex::encode([1u8; 32]));
            assert_eq!(found, hex::encode(pin));
        }
        other => panic!("{other:?}"),
    }
    // Another shape's file name: refused before decoding.
    let five = Shape {
        depth: 3,
        samples: 5,
    };
    assert!(matches!(
        Keys::load(&path, five, &pin),
        Err(Error::KeyFile { why, .. }) if why.contains("v1-d3-s4")
    ));
    // One flipped byte anywhere: the checksum says so.
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    assert!(matches!(
        Keys::load(&path, SMALL, &pin),
        Err(Error::KeyFile { why, .. }) if why.contains("checksum")
    ));
    // A shape nobody pinned is not set up silently.
    assert!(matches!(
        Keys::load_or_setup(dir.path(), five, None),
        Err(Error::Invalid(_))
    ));
}

/// The devnet circuit: its setup yields the pinned key, the key file is written once and
/// loaded after, and a 1 MiB shard (what the default 4+2 code stores per shard) proves.
#[test]
fn the_devnet_circuit_matches_its_pin_and_proves_a_one_mib_shard() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::load_or_setup(dir.path(), Shape::DEVNET, None).unwrap();
    assert_eq!(Some(keys.vk_hash()), zhtp_proofs::devnet_pin(Shape::DEVNET));
    let path = Keys::path(dir.path(), Shape::DEVNET);
    let written = std::fs::metadata(&path).unwrap().modified().unwrap();
    let loaded = Keys::load_or_setup(dir.path(), Shape::DEVNET, None).unwrap();
    assert_eq!(
        std::fs::metadata(&path).unwrap().modified().unwrap(),
        written
    );

    let data = shard(1 << 20, 9);
    let tree = Tree::build(&data, Shape::DEVNET.depth).unwrap();
    let st = statement(tree.commitment(), 4, HOLDER);
    let proof = loaded.prove(&st, &data, &tree).unwrap();
    keys.verify(&st, &proof).unwrap();
    assert!(matches!(
        keys.verify(&statement(tree.commitment(), 4, OTHER), &proof),
        Err(Error::Rejected)
    ));
    // Too large a shard for the circuit is named.
    assert!(matches!(
        Tree::build(&vec![0; Shape::DEVNET.max_shard() as usize + 1], 8),
        Err(Error::TooLarge { .. })
    ));
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Arbitrary proof bytes never verify and never panic.
    #[test]
    fn arbitrary_proofs_are_refused(bytes in proptest::collection::vec(any::<u8>(), 0..160)) {
        let keys = small_keys();
        let data = shard(BLOCK * 2, 7);
        let c = Tree::build(&data, SMALL.depth).unwrap().commitment();
        let proof = Proof { circuit: SMALL.id(), bytes };
        prop_assert!(matches!(
            keys.verify(&statement(c, 1, HOLDER), &proof),
            Err(Error::Rejected | Error::Invalid(_))
        ));
    }

    /// Arbitrary commitments are refused or checked, never a panic.
    #[test]
    fn arbitrary_commitments_are_checked(root in any::<[u8; 32]>(), blocks in any::<u32>(), depth in any::<u8>()) {
        let c = Commitment { root, blocks, depth };
        let ok = c.check(SMALL).is_ok();
        prop_assert_eq!(ok, depth == SMALL.depth && (1..=64).contains(&blocks) && c.root_field().is_ok());
    }

    /// Arbitrary key files (and damaged real ones) are refused with a named error.
    #[test]
    fn arbitrary_key_files_are_refused(bytes in proptest::collection::vec(any::<u8>(), 0..4096), cut in any::<usize>()) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        std::fs::write(&path, &bytes).unwrap();
        let refused = matches!(Keys::load(&path, SMALL, &[0; 32]), Err(Error::KeyFile { .. }));
        prop_assert!(refused);
        // A real file cut short.
        let real = dir.path().join("real");
        small_keys().save(&real).unwrap();
        let all = std::fs::read(&real).unwrap();
        std::fs::write(&real, &all[..cut % all.len()]).unwrap();
        let refused = matches!(
            Keys::load(&real, SMALL, &small_keys().vk_hash()),
            Err(Error::KeyFile { .. })
        );
        prop_assert!(refused);
    }
}
