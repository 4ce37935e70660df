//! Fuzzing every decoder that takes bytes from outside: shard-protocol frames, record
//! envelopes, manifests, the plugin validator and the admin API's request bodies.
//!
//! Each target starts from a committed seed corpus (`tests/fuzz/<target>.hex`, one input per
//! line, real encodings of every message kind) and feeds the decoder mutations of the seeds
//! (bit flips, byte overwrites, truncations, insertions, splices) and plain random bytes. A
//! decoder must return, never panic, and what it accepts must round-trip through its encoder.
//! `make test` runs a bounded number of cases per target (`ZHTP_FUZZ_CASES`, default 20,000:
//! about a second for all five here); `make fuzz` runs 2,000,000. `ZHTP_FUZZ_BLESS=1` rewrites the corpus from
//! the encoders (after a format change).

use std::path::PathBuf;

use proptest::prelude::*;

fn cases() -> u32 {
    std::env::var("ZHTP_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

fn corpus_path(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(format!("{target}.hex"))
}

/// The seeds of `target`; with `ZHTP_FUZZ_BLESS` set, first rewritten from `make`.
fn corpus(target: &str, make: impl FnOnce() -> Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let path = corpus_path(target);
    if std::env::var_os("ZHTP_FUZZ_BLESS").is_some() {
        let text: String = make().iter().map(|s| hex::encode(s) + "\n").collect();
        std::fs::write(&path, text).unwrap();
    }
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (ZHTP_FUZZ_BLESS=1 writes it)", path.display()));
    let seeds: Vec<Vec<u8>> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| hex::decode(l.trim()).unwrap())
        .collect();
    assert!(!seeds.is_empty(), "{} has no seeds", path.display());
    seeds
}

/// One edit of an input.
#[derive(Clone, Debug)]
enum Edit {
    Flip(usize, u8),
    Set(usize, u8),
    Truncate(usize),
    Insert(usize, Vec<u8>),
    Splice(usize, usize),
}

fn apply(mut b: Vec<u8>, edits: &[Edit], other: &[u8]) -> Vec<u8> {
    for e in edits {
        let n = b.len().max(1);
        match e {
            Edit::Flip(i, bit) => {
                if let Some(x) = b.get_mut(i % n) {
                    *x ^= 1 << (bit % 8);
                }
            }
            Edit::Set(i, v) => {
                if let Some(x) = b.get_mut(i % n) {
                    *x = *v;
                }
            }
            Edit::Truncate(i) => b.truncate(i % n),
            Edit::Insert(i, bytes) => {
                let at = i % (b.len() + 1);
                b.splice(at..at, bytes.iter().copied());
            }
            Edit::Splice(i, j) => {
                // The tail of another seed from some point: mixes two messages' structure.
                let at = i % (b.len() + 1);
                b.truncate(at);
                b.extend_from_slice(&other[j % (other.len() + 1)..]);
            }
        }
    }
    b
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Flip(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, v)| Edit::Set(i, v)),
        any::<usize>().prop_map(Edit::Truncate),
        (
            any::<usize>(),
            proptest::collection::vec(any::<u8>(), 1..16)
        )
            .prop_map(|(i, b)| Edit::Insert(i, b)),
        (any::<usize>(), any::<usize>()).prop_map(|(i, j)| Edit::Splice(i, j)),
    ]
}

/// Mutated seeds, and now and then plain random bytes.
fn inputs(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let n = seeds.len();
    prop_oneof![
        9 => (0..n, 0..n, proptest::collection::vec(edit(), 0..6)).prop_map(
            move |(a, b, edits)| apply(seeds[a].clone(), &edits, &seeds[b])
        ),
        1 => proptest::collection::vec(any::<u8>(), 0..512),
    ]
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Runs `check` on `n` inputs made from `seeds`.
fn fuzz(n: u32, seeds: Vec<Vec<u8>>, check: impl Fn(&[u8])) {
    let mut cfg = config();
    cfg.cases = n;
    // `make test` is reproducible (a fixed seed); `make fuzz` explores (a fresh one each run,
    // printed with any failure).
    let mut runner = if std::env::var_os("ZHTP_FUZZ_RANDOM").is_some() {
        proptest::test_runner::TestRunner::new(cfg)
    } else {
        use proptest::test_runner::{RngAlgorithm, TestRng};
        proptest::test_runner::TestRunner::new_with_rng(
            cfg,
            TestRng::deterministic_rng(RngAlgorithm::ChaCha),
        )
    };
    runner
        .run(&inputs(seeds), |input| {
            check(&input);
            Ok(())
        })
        .unwrap();
}

mod shard_frames {
    use futures::executor::block_on;
    use libp2p::request_response::Codec as _;
    use zhtp_dht::protocol::{Codec, Held, PROTOCOL, Request, Response};
    use zhtp_types::Hash;

    fn frame<T: serde::Serialize>(m: &T) -> Vec<u8> {
        let body = postcard::to_allocvec(m).unwrap();
        [(body.len() as u32).to_be_bytes().to_vec(), body].concat()
    }

    fn seeds() -> Vec<Vec<u8>> {
        let h = Hash(*blake3::hash(b"shard").as_bytes());
        vec![
            frame(&Request::Store {
                content: Hash([1; 32]),
                segment: 3,
                index: 5,
                hash: h,
                data: b"shard".to_vec(),
            }),
            frame(&Request::Fetch { hash: h }),
            frame(&Request::Inventory {
                content: Hash([2; 32]),
            }),
            frame(&Response::Stored),
            frame(&Response::Shard(vec![7; 100])),
            frame(&Response::NotFound),
            frame(&Response::Inventory(vec![Held {
                segment: 1,
                index: 2,
                hash: h,
            }])),
            frame(&Response::Refused("busy".into())),
        ]
    }

    #[test]
    fn shard_protocol_frames() {
        let seeds = super::corpus("shard_frames", seeds);
        super::fuzz(super::cases(), seeds, |input| {
            // A small limit, so that length prefixes over it are exercised too.
            let mut c = Codec::new(4096);
            let mut io = futures::io::Cursor::new(input.to_vec());
            if let Ok(req) = block_on(c.read_request(&PROTOCOL, &mut io)) {
                let mut out = futures::io::Cursor::new(Vec::new());
                block_on(c.write_request(&PROTOCOL, &mut out, req.clone())).unwrap();
                let mut back = futures::io::Cursor::new(out.into_inner());
                assert_eq!(block_on(c.read_request(&PROTOCOL, &mut back)).unwrap(), req);
            }
            let mut io = futures::io::Cursor::new(input.to_vec());
            if let Ok(res) = block_on(c.read_response(&PROTOCOL, &mut io)) {
                let mut out = futures::io::Cursor::new(Vec::new());
                block_on(c.write_response(&PROTOCOL, &mut out, res.clone())).unwrap();
                let mut back = futures::io::Cursor::new(out.into_inner());
                assert_eq!(
                    block_on(c.read_response(&PROTOCOL, &mut back)).unwrap(),
                    res
                );
            }
        });
    }
}

mod records {
    use std::time::Duration;

    use libp2p::identity::Keypair;
    use libp2p::kad::{Record, RecordKey};
    use zhtp_dht::record;

    const KEY: &[u8] = b"zhtp/m/fuzz";

    fn seeds() -> Vec<Vec<u8>> {
        // A fixed key, so the corpus does not change when it is rewritten.
        let kp = Keypair::ed25519_from_bytes([7u8; 32]).unwrap();
        let ttl = Duration::from_secs(100 * 365 * 24 * 3600);
        [b"".to_vec(), b"payload".to_vec(), vec![0xaa; 300]]
            .into_iter()
            .enumerate()
            .map(|(i, p)| record::seal(&kp, KEY, p, i as u64, ttl).unwrap().value)
            .collect()
    }

    #[test]
    fn record_envelopes() {
        let seeds = super::corpus("records", seeds);
        let validator: record::Validator = std::sync::Arc::new(|_, p: &[u8], _: &_| {
            zhtp_content::Manifest::decode(p)
                .map(|_| ())
                .map_err(|e| e.to_string())
        });
        super::fuzz(super::cases(), seeds, |input| {
            let r = Record::new(RecordKey::new(&KEY), input.to_vec());
            let _ = record::open(&r, Some(&validator));
            if let Ok(o) = record::open(&r, None) {
                // What opens is what was signed: the same fields come out of a second open.
                let again = record::open(&r, None).unwrap();
                assert_eq!(
                    (o.publisher, o.seq, o.payload),
                    (again.publisher, again.seq, again.payload)
                );
            }
        });
    }
}

mod manifests {
    use zhtp_content::{
        CodeKind, CodeParams, ContentKey, Encoder, EncryptionLevel, Manifest, Params,
    };
    use zhtp_types::{Hash, StorageTier};

    fn manifest(level: EncryptionLevel, len: usize) -> Vec<u8> {
        let params = Params {
            tier: StorageTier::Warm,
            encryption: level,
            code: CodeParams::new(CodeKind::ReedSolomonSimd, 2, 1).unwrap(),
            segment_size: 1024,
        };
        let key = ContentKey([5; 32]);
        let key = (level != EncryptionLevel::None).then_some(&key);
        let enc = Encoder::new(params, key).unwrap();
        let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        let infos = data
            .chunks(1024)
            .enumerate()
            .map(|(i, c)| enc.encode_segment(i as u32, c).unwrap().info)
            .collect();
        let meta = zhtp_content::Metadata {
            name: Some("fuzz.bin".into()),
            tags: vec!["a".into()],
            ..Default::default()
        };
        enc.manifest(
            Hash(*blake3::hash(&data).as_bytes()),
            len as u64,
            infos,
            meta,
        )
        .encode()
    }

    fn seeds() -> Vec<Vec<u8>> {
        vec![
            manifest(EncryptionLevel::None, 0),
            manifest(EncryptionLevel::None, 3000),
            manifest(EncryptionLevel::Standard, 1024),
            manifest(EncryptionLevel::Standard, 2500),
        ]
    }

    #[test]
    fn manifests_and_manifest_records() {
        let seeds = super::corpus("manifests", seeds);
        super::fuzz(super::cases(), seeds, |input| {
            if let Ok(m) = Manifest::decode(input) {
                m.validate().unwrap();
                assert_eq!(Manifest::decode(&m.encode()).unwrap(), m);
                // As a network record under its own key.
                let key = [b"zhtp/m/".as_slice(), m.content_hash.as_bytes()].concat();
                let _ = zhtp::network::validate_record(&key, input, &libp2p::PeerId::random());
            }
        });
    }
}

mod plugins {
    use zhtp_host::{Host, Kind, Limits};

    fn seeds() -> Vec<Vec<u8>> {
        let compat = include_str!("fixtures/compat-v1.wat");
        vec![
            wat::parse_str(compat).unwrap(),
            wat::parse_str(r#"(module (func (export "zhtp_abi_v1")))"#).unwrap(),
            wat::parse_str(
                r#"(module (import "zhtp:env/v1" "input_len" (func (result i32)))
                           (memory (export "memory") 1) (func (export "zhtp_abi_v1")))"#,
            )
            .unwrap(),
        ]
    }

    #[test]
    fn the_plugin_validator() {
        let seeds = super::corpus("plugins", seeds);
        let host = Host::new(Limits::default()).unwrap();
        // Each accepted input is compiled: fewer cases than the pure decoders.
        super::fuzz(super::cases() / 4, seeds, |input| {
            let _ = host.load(Kind::Pricing, input);
        });
    }
}

mod api_bodies {
    use zhtp::api::PutRequest;
    use zhtp_host::abi::pricing::QuoteRequest;
    use zhtp_types::StorageTier;

    fn seeds() -> Vec<Vec<u8>> {
        vec![
            serde_json::to_vec(&QuoteRequest::new(1 << 30, 30, StorageTier::Cold, true)).unwrap(),
            br#"{"tier":"Hot","encryption":"standard","name":"a.bin","tags":["x","y"],"code":{"code":1,"data":4,"parity":2}}"#.to_vec(),
            br#"{}"#.to_vec(),
        ]
    }

    #[test]
    fn admin_api_request_bodies() {
        let seeds = super::corpus("api_bodies", seeds);
        super::fuzz(super::cases(), seeds, |input| {
            if let Ok(q) = serde_json::from_slice::<QuoteRequest>(input) {
                let back = serde_json::to_vec(&q).unwrap();
                assert_eq!(serde_json::from_slice::<QuoteRequest>(&back).unwrap(), q);
            }
            if let Ok(p) = serde_json::from_slice::<PutRequest>(input) {
                let back = serde_json::to_vec(&p).unwrap();
                serde_json::from_slice::<PutRequest>(&back).unwrap();
            }
        });
    }
}
