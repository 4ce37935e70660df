//! Smart contracts on one node's RocksDB: deploy, instantiate, execute (compare-and-swap on the
//! state version), query; failed calls leave nothing; everything survives a reopen, and the
//! kept state root is the one recomputed from the kept state.

use std::sync::Arc;

use zhtp::smart::{Error, SmartContracts};
use zhtp_host::abi::contract::DEFAULT_GAS_LIMIT as GAS;
use zhtp_host::{ContractError, StateHash};
use zhtp_store::{Cf, Config, Store};

const OWNER: [u8; 32] = [1; 32];
const OTHER: [u8; 32] = [2; 32];

fn open(dir: &std::path::Path) -> (Arc<Store>, SmartContracts) {
    let store = Arc::new(Store::open(dir, Config::default()).unwrap());
    (store.clone(), SmartContracts::open(store).unwrap())
}

#[test]
fn a_counter_lives_in_the_store_with_its_root() {
    let dir = tempfile::tempdir().unwrap();
    let (store, sc) = open(dir.path());
    // A pricing plugin is no contract.
    assert!(matches!(
        sc.deploy(zhtp_artifacts::PRICING_STANDARD),
        Err(Error::Invalid(_))
    ));
    let code = sc.deploy(zhtp_artifacts::COUNTER).unwrap();
    assert_eq!(sc.deploy(zhtp_artifacts::COUNTER).unwrap(), code);
    let (addr, made) = sc
        .instantiate(&code, OWNER, br#"{"start":1}"#, 1_700_000_000, GAS)
        .unwrap();
    assert_eq!(made.result, Ok(br#"{"count":1}"#.to_vec()));
    assert_eq!(made.sequence, 0);
    assert!(matches!(
        sc.instantiate(&code, OWNER, br#"{"start":1}"#, 1_700_000_000, GAS),
        Err(Error::Exists(_))
    ));

    let inc = br#"{"increment":{"by":2}}"#;
    let one = sc
        .execute(&addr, OTHER, inc, 1_700_000_001, GAS, 0, Some(0))
        .unwrap();
    assert_eq!(
        (one.result.clone(), one.sequence),
        (Ok(br#"{"count":3}"#.to_vec()), 1)
    );
    // Made against version 0, which has passed: refused, nothing run.
    assert!(matches!(
        sc.execute(&addr, OTHER, inc, 1_700_000_002, GAS, 0, Some(0)),
        Err(Error::Stale { at: 0, now: 1 })
    ));
    // A refused call (only the owner resets) changes neither state, version nor root.
    let refused = sc
        .execute(
            &addr,
            OTHER,
            br#"{"reset":{}}"#,
            1_700_000_002,
            GAS,
            0,
            None,
        )
        .unwrap();
    assert!(matches!(refused.result, Err(ContractError::Refused(_))));
    assert_eq!((refused.sequence, refused.root), (1, one.root));
    assert!(matches!(
        sc.execute(&addr, OTHER, inc, 1, GAS, 5, None),
        Err(Error::Funds)
    ));

    // Reopened: the state, the version and the root are still there, and the root is the one
    // recomputed from the kept state.
    drop(sc);
    drop(store);
    let (store, sc) = open(dir.path());
    let q = sc
        .query(&addr, OTHER, br#"{"count":{}}"#, 1_700_000_003, GAS)
        .unwrap();
    assert_eq!(q.result, Ok(br#"{"count":3}"#.to_vec()));
    let inst = sc.instance(&addr).unwrap().unwrap();
    assert_eq!((inst.code, inst.creator, inst.sequence), (code, OWNER, 1));
    let prefix = [b"s".as_slice(), addr.as_bytes()].concat();
    let mut recomputed = StateHash::default();
    for item in store.scan(Cf::Contracts, &prefix).unwrap() {
        let (k, v) = item.unwrap();
        recomputed.insert(&k[prefix.len()..], &v);
    }
    assert_eq!(inst.root().unwrap(), recomputed.root());
    assert_eq!(inst.root().unwrap(), one.root);
    // The code itself came back from the store (a fresh cache compiles it again).
    let two = sc
        .execute(
            &addr,
            OWNER,
            br#"{"reset":{}}"#,
            1_700_000_004,
            GAS,
            0,
            Some(1),
        )
        .unwrap();
    assert_eq!(
        (two.result, two.sequence),
        (Ok(br#"{"count":0}"#.to_vec()), 2)
    );
}

/// The registry's listing walks the contract's state in RocksDB in key order, from a start,
/// inside the contract's own prefix (another instance's names never show up).
#[test]
fn a_registry_lists_its_names_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, sc) = open(dir.path());
    let code = sc.deploy(zhtp_artifacts::REGISTRY).unwrap();
    let (a, _) = sc.instantiate(&code, OWNER, b"{}", 1, GAS).unwrap();
    let (b, _) = sc.instantiate(&code, OTHER, b"{}", 1, GAS).unwrap();
    assert_ne!(a, b);
    let hash = "ab".repeat(32);
    for (at, name) in [(&a, "docs"), (&a, "api"), (&a, "blog"), (&b, "bz")] {
        let msg = format!(r#"{{"register":{{"name":"{name}","content":"{hash}"}}}}"#);
        let c = sc
            .execute(at, OWNER, msg.as_bytes(), 2, GAS, 0, None)
            .unwrap();
        assert!(c.result.is_ok(), "{:?}", c.result);
    }
    let q = sc
        .query(&a, OWNER, br#"{"list":{"start":"b","limit":10}}"#, 3, GAS)
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&q.result.unwrap()).unwrap();
    let names: Vec<&str> = v["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["blog", "docs"]);
}

/// SPEC.md R-c-net-address: the golden address.
#[test]
fn an_address_is_derived_as_the_spec_says() {
    let a = SmartContracts::address_of(
        &zhtp_types::Hash([0x11; 32]),
        &[0x22; 32],
        b"{}",
        1_700_000_000,
    );
    // The derivation as the spec words it, byte by byte.
    let mut bytes = vec![0x11; 32];
    bytes.extend_from_slice(&[0x22; 32]);
    bytes.extend_from_slice(&1_700_000_000u64.to_le_bytes());
    bytes.extend_from_slice(blake3::hash(b"{}").as_bytes());
    assert_eq!(a.0, blake3::derive_key("zhtp contract address v1", &bytes));
    let spec = include_str!("../../../host/SPEC.md");
    assert!(spec.contains(&a.to_string()), "SPEC.md does not give {a}");
}
