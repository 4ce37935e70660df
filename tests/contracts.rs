//! The contracts of `contracts/`, each run twice with the same calls: natively with the SDK's
//! `Mock`, and built for wasm32 in the host's deterministic engine over a real state map. Both
//! must answer alike and leave the same state (so the same state root).

use std::collections::BTreeMap;
use std::sync::Arc;

use counter::{Count, Exec, Init, Query};
use zhtp_host::abi::contract::DEFAULT_GAS_LIMIT;
use zhtp_host::{Call, Code, ContractError, Contracts, Entry, StateHash};
use zhtp_sdk::contract::{Kind, Mock};

const OWNER: [u8; 32] = [1; 32];
const OTHER: [u8; 32] = [2; 32];
const ADDRESS: [u8; 32] = [9; 32];

/// The wasm side: a loaded contract, its committed state and sequence.
struct Wasm {
    code: Code,
    state: BTreeMap<Vec<u8>, Vec<u8>>,
    sequence: u64,
}

impl Wasm {
    fn new(wasm: &[u8]) -> Self {
        let host = Contracts::new().unwrap();
        Self {
            code: host.load(wasm).unwrap(),
            state: BTreeMap::new(),
            sequence: 0,
        }
    }

    /// One call as a node runs it: commits the writes of a successful instantiate or execute.
    fn call(&mut self, entry: Entry, caller: [u8; 32], msg: &str) -> Result<String, ContractError> {
        let o = self.code.run(
            Call {
                entry,
                msg: msg.as_bytes().to_vec(),
                caller,
                address: ADDRESS,
                sequence: self.sequence,
                time: 1_700_000_000,
                funds: 0,
                balance: 0,
                gas_limit: DEFAULT_GAS_LIMIT,
            },
            Arc::new(self.state.clone()),
        );
        let out = o.result?;
        for w in &o.writes {
            match &w.after {
                Some(v) => self.state.insert(w.key.clone(), v.clone()),
                None => self.state.remove(&w.key),
            };
        }
        if entry == Entry::Execute {
            self.sequence += 1;
        }
        Ok(String::from_utf8(out).unwrap())
    }
}

fn root(state: &BTreeMap<Vec<u8>, Vec<u8>>) -> [u8; 32] {
    let mut h = StateHash::default();
    for (k, v) in state {
        h.insert(k, v);
    }
    h.root()
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap()
}

#[test]
fn the_counter_answers_alike_natively_and_in_wasm() {
    let mut mock = Mock::new(ADDRESS, OWNER);
    let mut wasm = Wasm::new(zhtp_artifacts::COUNTER);
    assert!(
        wasm.code.info().name.starts_with("counter@"),
        "{}",
        wasm.code.info().name
    );

    let init = Init { start: 5 };
    let native = mock.call(Kind::Instantiate, counter::instantiate, init.clone());
    assert_eq!(native, Ok(Count { count: 5 }));
    assert_eq!(
        wasm.call(Entry::Instantiate, OWNER, &json(&init)),
        Ok(json(&Count { count: 5 }))
    );

    // Anyone raises it; only the owner resets it, and a refused reset changes nothing.
    let steps = [
        (OTHER, Exec::Increment { by: 2 }, Ok(7)),
        (
            OTHER,
            Exec::Reset {},
            Err("only the owner resets the count"),
        ),
        (
            OWNER,
            Exec::Increment { by: u64::MAX },
            Err("the count would overflow"),
        ),
        (OWNER, Exec::Reset {}, Ok(0)),
        (OTHER, Exec::Increment { by: 3 }, Ok(3)),
    ];
    for (who, msg, want) in steps {
        mock.ctx.caller = who;
        let native = mock.call(Kind::Execute, counter::execute, msg.clone());
        let in_wasm = wasm.call(Entry::Execute, who, &json(&msg));
        match want {
            Ok(n) => {
                assert_eq!(native, Ok(Count { count: n }), "{msg:?}");
                assert_eq!(in_wasm, Ok(json(&Count { count: n })), "{msg:?}");
            }
            Err(why) => {
                assert_eq!(native, Err(why.to_owned()), "{msg:?}");
                assert_eq!(
                    in_wasm,
                    Err(ContractError::Refused(why.to_owned())),
                    "{msg:?}"
                );
            }
        }
        assert_eq!(mock.state, wasm.state, "after {msg:?}");
    }
    assert_eq!(root(&mock.state), root(&wasm.state));
    assert_eq!(
        mock.ctx.sequence, 3,
        "refused executes do not move the sequence"
    );

    let q = Query::Count {};
    assert_eq!(
        mock.call(Kind::Query, counter::query, q.clone()),
        Ok(Count { count: 3 })
    );
    assert_eq!(
        wasm.call(Entry::Query, OTHER, &json(&q)),
        Ok(json(&Count { count: 3 }))
    );
    // A message that is not JSON of the contract's type is refused with serde's reason.
    match wasm.call(Entry::Execute, OWNER, r#"{"decrement":{}}"#) {
        Err(ContractError::Refused(why)) => assert!(why.starts_with("malformed message"), "{why}"),
        other => panic!("{other:?}"),
    }
}

/// The harness keeps the host's rule: a call that writes, pays and then fails leaves nothing,
/// and a query may not write.
#[test]
fn the_mock_discards_a_failed_calls_writes_and_transfers() {
    use zhtp_sdk::contract::{Api, Item};
    const SEEN: Item<u64> = Item::new("seen");
    fn write_pay_then_fail(api: &mut dyn Api, fail: bool) -> Result<u64, &'static str> {
        SEEN.save(api, &1);
        api.transfer(&[4; 32], 10).map_err(|_| "no funds")?;
        if fail {
            Err("changed my mind")
        } else {
            Ok(api.balance())
        }
    }
    let mut mock = Mock::new(ADDRESS, OWNER);
    mock.balance = 25;
    assert_eq!(
        mock.call(Kind::Execute, write_pay_then_fail, true),
        Err("changed my mind".to_owned())
    );
    assert!(mock.state.is_empty() && mock.paid.is_empty());
    assert_eq!((mock.balance, mock.ctx.sequence), (25, 0));
    assert_eq!(mock.call(Kind::Execute, write_pay_then_fail, false), Ok(15));
    assert_eq!(mock.paid, [([4; 32], 10)]);
    assert_eq!((mock.balance, mock.ctx.sequence), (15, 1));
    assert_eq!(
        mock.state.get(b"seen".as_slice()),
        Some(&b"1".to_vec()),
        "JSON"
    );
    // A query that writes is refused as the host refuses it.
    let query = std::panic::catch_unwind(move || {
        let mut m = mock;
        m.call(Kind::Query, write_pay_then_fail, false)
    });
    assert!(query.is_err());
}

/// The counter as built when the contract profile was published (`tests/fixtures/
/// counter-v1.wasm`, committed): every later build must keep loading it and answering alike.
/// A change to the profile that breaks it is a new ABI version.
#[test]
fn the_v1_counter_fixture_keeps_loading_and_answering() {
    let mut wasm = Wasm::new(include_bytes!("fixtures/counter-v1.wasm"));
    assert_eq!(wasm.code.info().name, "counter@0.1.0");
    assert_eq!(
        wasm.call(Entry::Instantiate, OWNER, r#"{"start":40}"#),
        Ok(r#"{"count":40}"#.to_owned())
    );
    assert_eq!(
        wasm.call(Entry::Execute, OTHER, r#"{"increment":{"by":2}}"#),
        Ok(r#"{"count":42}"#.to_owned())
    );
    assert_eq!(
        wasm.call(Entry::Query, OTHER, r#"{"count":{}}"#),
        Ok(r#"{"count":42}"#.to_owned())
    );
    assert_eq!(
        wasm.call(Entry::Instantiate, OWNER, r#"{"start":1}"#),
        Err(ContractError::Refused(
            "this counter was instantiated already".to_owned()
        ))
    );
}

#[test]
fn the_registry_answers_alike_natively_and_in_wasm() {
    use registry::{Answer, Exec, Init, Query, Record};
    let mut mock = Mock::new(ADDRESS, OWNER);
    let mut wasm = Wasm::new(zhtp_artifacts::REGISTRY);
    let both = |mock: &mut Mock, wasm: &mut Wasm, who: [u8; 32], msg: Exec| {
        mock.ctx.caller = who;
        let native = mock.call(Kind::Execute, registry::execute, msg.clone());
        let in_wasm = wasm.call(Entry::Execute, who, &json(&msg));
        match &native {
            Ok(a) => assert_eq!(in_wasm, Ok(json(a)), "{msg:?}"),
            Err(why) => assert_eq!(in_wasm, Err(ContractError::Refused(why.clone())), "{msg:?}"),
        }
        assert_eq!(mock.state, wasm.state, "after {msg:?}");
        native
    };
    mock.call(Kind::Instantiate, registry::instantiate, Init {})
        .unwrap();
    wasm.call(Entry::Instantiate, OWNER, "{}").unwrap();
    let (h1, h2) = ("ab".repeat(32), "CD".repeat(32));
    let owner_hex = hex::encode(OWNER);
    let other_hex = hex::encode(OTHER);
    let reg = |name: &str, content: &str| Exec::Register {
        name: name.into(),
        content: content.into(),
    };
    assert_eq!(
        both(&mut mock, &mut wasm, OWNER, reg("docs", &h1)),
        Ok(Answer::Record(Record {
            name: "docs".into(),
            content: h1.clone(),
            owner: owner_hex.clone()
        }))
    );
    for (who, msg, why) in [
        (OTHER, reg("docs", &h2), "that name is taken"),
        (
            OTHER,
            reg("Bad Name", &h2),
            "a name is 1 to 64 of a-z, 0-9, '-' and '.'",
        ),
        (OTHER, reg("x", "12"), "a content hash is 64 hex characters"),
        (
            OTHER,
            Exec::Update {
                name: "docs".into(),
                content: h2.clone(),
            },
            "only the name's owner may change it",
        ),
        (
            OWNER,
            Exec::Release {
                name: "nothing".into(),
            },
            "no such name",
        ),
    ] {
        assert_eq!(both(&mut mock, &mut wasm, who, msg), Err(why.into()));
    }
    // The owner points it elsewhere (upper-case hex is stored lower-case), then gives it away;
    // the new owner may release it, the old one may no longer touch it.
    let updated = both(
        &mut mock,
        &mut wasm,
        OWNER,
        Exec::Update {
            name: "docs".into(),
            content: h2.clone(),
        },
    );
    assert!(matches!(updated, Ok(Answer::Record(r)) if r.content == "cd".repeat(32)));
    both(
        &mut mock,
        &mut wasm,
        OWNER,
        Exec::Transfer {
            name: "docs".into(),
            to: other_hex.clone(),
        },
    )
    .unwrap();
    both(&mut mock, &mut wasm, OTHER, reg("api", &h1)).unwrap();
    both(&mut mock, &mut wasm, OTHER, reg("blog", &h1)).unwrap();
    assert!(
        both(
            &mut mock,
            &mut wasm,
            OWNER,
            Exec::Release {
                name: "docs".into()
            }
        )
        .is_err()
    );
    // Listed in name order, from a start, bounded.
    let list = Query::List {
        start: "b".into(),
        limit: 10,
    };
    let native = mock
        .call(Kind::Query, registry::query, list.clone())
        .unwrap();
    let Answer::Records(records) = &native else {
        panic!("{native:?}")
    };
    let names: Vec<_> = records.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["blog", "docs"]);
    assert_eq!(
        wasm.call(Entry::Query, OWNER, &json(&list)),
        Ok(json(&native))
    );
    both(
        &mut mock,
        &mut wasm,
        OTHER,
        Exec::Release {
            name: "docs".into(),
        },
    )
    .unwrap();
    let resolve = Query::Resolve {
        name: "docs".into(),
    };
    assert_eq!(
        wasm.call(Entry::Query, OWNER, &json(&resolve)),
        Err(ContractError::Refused("no such name".into()))
    );
    assert_eq!(root(&mock.state), root(&wasm.state));
}
