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

/// The wasm side: a loaded contract, its committed state, sequence, balance and payments.
struct Wasm {
    code: Code,
    state: BTreeMap<Vec<u8>, Vec<u8>>,
    sequence: u64,
    balance: u64,
    paid: Vec<([u8; 32], u64)>,
}

impl Wasm {
    fn new(wasm: &[u8]) -> Self {
        let host = Contracts::new().unwrap();
        Self {
            code: host.load(wasm).unwrap(),
            state: BTreeMap::new(),
            sequence: 0,
            balance: 0,
            paid: Vec::new(),
        }
    }

    fn call(&mut self, entry: Entry, caller: [u8; 32], msg: &str) -> Result<String, ContractError> {
        self.call_with(entry, caller, msg, 0)
    }

    /// One call as a node runs it, with `funds`: commits the writes, funds and transfers of a
    /// successful instantiate or execute.
    fn call_with(
        &mut self,
        entry: Entry,
        caller: [u8; 32],
        msg: &str,
        funds: u64,
    ) -> Result<String, ContractError> {
        let o = self.code.run(
            Call {
                entry,
                msg: msg.as_bytes().to_vec(),
                caller,
                address: ADDRESS,
                sequence: self.sequence,
                time: 1_700_000_000,
                funds,
                balance: self.balance,
                gas_limit: DEFAULT_GAS_LIMIT,
            },
            Arc::new(self.state.clone()),
        );
        let out = o.result?;
        if entry != Entry::Query {
            let out: u64 = o.transfers.iter().map(|(_, a)| a).sum();
            self.balance = self.balance + funds - out;
            self.paid.extend(o.transfers.iter().copied());
        }
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

/// The storage-escrow contract: the client's deposit pays the provider per audited period, a
/// penalty goes back to the client, only the auditor's signature settles a period, each period
/// once; the same natively and in wasm, and not a µZHTP made or lost.
#[test]
fn the_storage_escrow_pays_per_audited_period_alike_natively_and_in_wasm() {
    use ed25519_dalek::Signer as _;
    use storage_escrow::{Exec, Init, Query, Status};
    let auditor = ed25519_dalek::SigningKey::from_bytes(&[0x42; 32]);
    let forger = ed25519_dalek::SigningKey::from_bytes(&[0x43; 32]);
    let (client, provider) = ([1u8; 32], [2u8; 32]);
    let crypto = zhtp_sdk::contract::MockCrypto {
        blake3: |d| *blake3::hash(d).as_bytes(),
        ed25519_verify: |k, m, s| {
            let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(k) else {
                return false;
            };
            key.verify_strict(m, &ed25519_dalek::Signature::from_bytes(s))
                .is_ok()
        },
    };
    let mut mock = Mock::new(ADDRESS, client);
    mock.crypto = Some(crypto);
    let mut wasm = Wasm::new(zhtp_artifacts::STORAGE_ESCROW);
    // The verdict as the auditor signs it (the digest of storage_escrow::verdict_digest).
    let verdict = |by: &ed25519_dalek::SigningKey, period: u32, passed: bool, bp: u32| {
        let mut m = b"zhtp storage-escrow v1".to_vec();
        m.extend_from_slice(&ADDRESS);
        m.extend_from_slice(&period.to_le_bytes());
        m.push(u8::from(passed));
        m.extend_from_slice(&bp.to_le_bytes());
        let sig = by.sign(blake3::hash(&m).as_bytes());
        Exec::Settle {
            period,
            passed,
            penalty_bp: bp,
            signature: hex::encode(sig.to_bytes()),
        }
    };
    let init = Init {
        client: hex::encode(client),
        provider: hex::encode(provider),
        auditor: hex::encode(auditor.verifying_key().to_bytes()),
        periods: 3,
        per_period: 1_000,
    };
    // Short of the price: refused, nothing kept (the funds stay with the client).
    mock.ctx.funds = 2_999;
    let short = mock.call(Kind::Instantiate, storage_escrow::instantiate, init.clone());
    assert!(short.is_err());
    assert_eq!(
        wasm.call_with(Entry::Instantiate, client, &json(&init), 2_999),
        Err(ContractError::Refused(short.unwrap_err()))
    );
    assert_eq!((mock.balance, wasm.balance), (0, 0));
    mock.ctx.funds = 3_000;
    let opened = mock.call(Kind::Instantiate, storage_escrow::instantiate, init.clone());
    assert_eq!(
        wasm.call_with(Entry::Instantiate, client, &json(&init), 3_000),
        Ok(json(opened.as_ref().unwrap()))
    );
    assert_eq!((mock.balance, wasm.balance), (3_000, 3_000));

    let mut step = |msg: Exec, who: [u8; 32]| {
        mock.ctx.caller = who;
        let native = mock.call(Kind::Execute, storage_escrow::execute, msg.clone());
        let in_wasm = wasm.call(Entry::Execute, who, &json(&msg));
        match &native {
            Ok(s) => assert_eq!(in_wasm, Ok(json(s)), "{msg:?}"),
            Err(why) => assert_eq!(in_wasm, Err(ContractError::Refused(why.clone())), "{msg:?}"),
        }
        assert_eq!(
            (&mock.state, &mock.paid),
            (&wasm.state, &wasm.paid),
            "{msg:?}"
        );
        native
    };
    // Period 0 passed: the provider is paid in full; anyone may submit the verdict.
    let s: Status = step(verdict(&auditor, 0, true, 0), provider).unwrap();
    assert_eq!((s.settled, s.paid, s.balance), (1, 1_000, 2_000));
    // Again: refused. A verdict signed by another key (valid, wrong signer): refused. A
    // verdict for another period than signed: refused.
    assert!(step(verdict(&auditor, 0, true, 0), provider).is_err());
    assert!(step(verdict(&forger, 1, true, 0), provider).is_err());
    let Exec::Settle { signature, .. } = verdict(&auditor, 2, true, 0) else {
        unreachable!()
    };
    let replayed = Exec::Settle {
        period: 1,
        passed: true,
        penalty_bp: 0,
        signature,
    };
    assert!(step(replayed, provider).is_err());
    // Period 1 failed, 50% penalty: half to the provider, half back to the client.
    let s = step(verdict(&auditor, 1, false, 5_000), client).unwrap();
    assert_eq!((s.paid, s.refunded, s.balance), (1_500, 500, 1_000));
    // Closing before the last period: refused; after it, by the client only.
    assert!(step(Exec::Close {}, client).is_err());
    step(verdict(&auditor, 2, true, 0), provider).unwrap();
    assert!(step(Exec::Close {}, provider).is_err());
    let s = step(Exec::Close {}, client).unwrap();
    assert!(s.closed);
    assert_eq!(s.balance, 0);
    // Every µZHTP of the deposit went to the provider or back to the client.
    let to = |who: [u8; 32]| -> u64 {
        wasm.paid
            .iter()
            .filter(|(k, _)| *k == who)
            .map(|(_, a)| a)
            .sum()
    };
    assert_eq!((to(provider), to(client)), (2_500, 500));
    assert_eq!(wasm.balance, 0);
    let q = Query::Status {};
    assert_eq!(wasm.call(Entry::Query, client, &json(&q)), Ok(json(&s)));
    assert_eq!(root(&mock.state), root(&wasm.state));
}
