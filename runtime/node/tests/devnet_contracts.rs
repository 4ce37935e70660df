//! Smart contracts through the DHT on a devnet of real nodes: deployed on one node,
//! instantiated from another, executed from a third and queried from a fourth; every call
//! runs on the replicas closest to the contract's address and is accepted by a majority.

#[path = "support/net.rs"]
mod support;

use std::collections::HashSet;

use support::{connected, network, start, until};
use zhtp::network::{Error, Misstep, Node, SmartError, validate_record};
use zhtp_dht::record::unix_now;
use zhtp_host::ContractError;
use zhtp_host::abi::contract::DEFAULT_GAS_LIMIT as GAS;
use zhtp_types::Hash;

fn answer(a: &zhtp::network::Agreed) -> String {
    String::from_utf8(a.reply.result.clone().expect("the call succeeded")).unwrap()
}

/// Every node's (version, root) of the instance at `address`, for those that keep it.
fn kept(nodes: &[&Node], address: &Hash) -> Vec<(zhtp_dht::PeerId, u64, [u8; 32])> {
    nodes
        .iter()
        .filter_map(|n| {
            let i = n.smart().instance(address).unwrap()?;
            Some((n.peer_id(), i.sequence, i.root().unwrap()))
        })
        .collect()
}

/// `node`'s version and root of instance `address`, if it keeps it.
fn state(node: &Node, address: &Hash) -> Option<(u64, [u8; 32])> {
    let i = node.smart().instance(address).unwrap()?;
    Some((i.sequence, i.root().unwrap()))
}

/// `node`'s version of instance `address`, which it keeps.
fn sequence(node: &Node, address: &Hash) -> u64 {
    state(node, address).expect("the instance is kept here").0
}

/// The counter deployed and instantiated (at 0) through `node`.
async fn counter_through(node: &Node) -> zhtp::network::Agreed {
    let code = node
        .contract_deploy(zhtp_artifacts::COUNTER.to_vec())
        .await
        .unwrap();
    node.contract_instantiate(code, br#"{"start":0}"#.to_vec(), unix_now(), GAS)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contract_deployed_on_one_node_runs_on_its_replicas_from_any_other() {
    let tmp = tempfile::tempdir().unwrap();
    let (nodes, _) = network(&tmp, 6).await;
    let (a, b, c, f) = (&nodes[0], &nodes[1], &nodes[2], &nodes[5]);

    // A pricing plugin is no contract: refused before anything is published.
    assert!(matches!(
        a.contract_deploy(zhtp_artifacts::PRICING_STANDARD.to_vec())
            .await,
        Err(Error::Smart(SmartError::Invalid(_)))
    ));
    let code = a
        .contract_deploy(zhtp_artifacts::COUNTER.to_vec())
        .await
        .unwrap();
    assert_eq!(
        code,
        Hash(*blake3::hash(zhtp_artifacts::COUNTER).as_bytes())
    );

    // Instantiated from C: C is the creator, the replicas fetch the code from its record.
    let t = unix_now();
    let made = c
        .contract_instantiate(code, br#"{"start":1}"#.to_vec(), t, GAS)
        .await
        .unwrap();
    assert_eq!(answer(&made), r#"{"count":1}"#);
    assert_eq!((made.agreeing, made.replicas.len()), (3, 3));
    assert!(made.mismatches.is_empty(), "{:?}", made.mismatches);
    let address = made.address;
    // Exactly the three nodes closest to the address keep it, at version 0.
    let all: Vec<&Node> = nodes.iter().collect();
    let holders: HashSet<_> = kept(&all, &address).iter().map(|k| k.0).collect();
    assert_eq!(holders, made.replicas.iter().copied().collect());
    // The same instantiate again names the same address: refused.
    assert!(matches!(
        c.contract_instantiate(code, br#"{"start":1}"#.to_vec(), t, GAS)
            .await,
        Err(Error::Smart(SmartError::Exists(x))) if x == address
    ));

    // Executed from F, queried from B.
    let inc = br#"{"increment":{"by":2}}"#.to_vec();
    let one = f
        .contract_execute(address, inc.clone(), unix_now(), GAS)
        .await
        .unwrap();
    assert_eq!(answer(&one), r#"{"count":3}"#);
    assert_eq!((one.reply.sequence, one.agreeing), (1, 3));
    let q = b
        .contract_query(address, br#"{"count":{}}"#.to_vec(), unix_now(), GAS)
        .await
        .unwrap();
    assert_eq!(answer(&q), r#"{"count":3}"#);
    assert_eq!((q.reply.sequence, q.reply.root), (1, one.reply.root));

    // Two executes at once from two nodes: both are applied, one after the other, and every
    // replica ends with the same root.
    let by1 = br#"{"increment":{"by":1}}"#.to_vec();
    let (x, y) = tokio::join!(
        nodes[3].contract_execute(address, by1.clone(), unix_now(), GAS),
        nodes[4].contract_execute(address, by1.clone(), unix_now(), GAS),
    );
    let (x, y) = (x.unwrap(), y.unwrap());
    let mut versions = [x.reply.sequence, y.reply.sequence];
    versions.sort();
    assert_eq!(versions, [2, 3]);
    let counts: HashSet<String> = [answer(&x), answer(&y)].into();
    assert_eq!(
        counts,
        [r#"{"count":4}"#, r#"{"count":5}"#]
            .map(String::from)
            .into()
    );
    let states = kept(&all, &address);
    assert_eq!(states.len(), 3);
    assert!(
        states
            .iter()
            .all(|s| (s.1, s.2) == (states[0].1, states[0].2)),
        "replicas diverged: {states:?}"
    );
    assert_eq!(states[0].1, 3);

    // Out of gas: nothing committed anywhere, the version and root stay.
    let starved = f
        .contract_execute(address, inc.clone(), unix_now(), 10_500)
        .await
        .unwrap();
    assert_eq!(
        starved.reply.result,
        Err(ContractError::OutOfGas { limit: 10_500 })
    );
    assert_eq!(starved.agreeing, 3);
    assert_eq!(kept(&all, &address), states);

    // SPEC R-c-net-time: a time more than 300 s from the replicas' clocks is refused by each.
    let e = f
        .contract_execute(address, inc.clone(), unix_now() - 400, GAS)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("more than 300 s from this replica's clock"),
        "{e}"
    );
    assert_eq!(kept(&all, &address), states);

    // What does not exist is named.
    assert!(matches!(
        f.contract_execute(Hash([7; 32]), inc.clone(), unix_now(), GAS)
            .await,
        Err(Error::Smart(SmartError::NoInstance(_)))
    ));
    assert!(matches!(
        c.contract_instantiate(Hash([9; 32]), b"{}".to_vec(), unix_now(), GAS)
            .await,
        Err(Error::Smart(SmartError::NoCode(_)))
    ));
}

#[test]
fn a_code_record_must_hash_to_its_key() {
    let publisher = zhtp_dht::Keypair::generate_ed25519().public().to_peer_id();
    let wasm = zhtp_artifacts::COUNTER;
    let key = [zhtp::network::CODE_KEY, blake3::hash(wasm).as_bytes()].concat();
    assert_eq!(validate_record(&key, wasm, &publisher), Ok(()));
    // Other bytes under the counter's hash: every node refuses to store or serve them.
    let forged = zhtp_artifacts::REGISTRY;
    assert_eq!(
        validate_record(&key, forged, &publisher),
        Err("contract code filed under another hash".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_behind_or_off_the_majority_catches_up() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut nodes, boot) = network(&tmp, 4).await;
    let made = counter_through(&nodes[0]).await;
    let address = made.address;
    // A replica that is neither the primary nor the first node (which coordinates) goes down.
    let down = nodes
        .iter()
        .position(|n| {
            made.replicas[1..].contains(&n.peer_id()) && n.peer_id() != nodes[0].peer_id()
        })
        .unwrap();
    let down_id = nodes[down].peer_id();
    let dir = tmp.path().join(format!("node-{down}"));
    nodes.remove(down).stop().await;
    let coordinator = &nodes[0];
    for n in &nodes {
        connected(n, 2).await;
    }
    // The node that was no replica is one now. A repair round on a remaining replica finds it
    // without the instance and tells it to check: it pulls the state from the two others.
    let holder = nodes
        .iter()
        .find(|n| made.replicas.contains(&n.peer_id()))
        .unwrap();
    let newcomer = nodes
        .iter()
        .find(|n| !made.replicas.contains(&n.peer_id()))
        .unwrap();
    assert!(newcomer.smart().instance(&address).unwrap().is_none());
    let round = holder.repair().await.unwrap().contracts;
    assert_eq!((round.instances, round.told), (1, 1));
    until("the new replica to get the state", [newcomer], || async {
        state(newcomer, &address) == Some((0, made.reply.root))
    })
    .await;
    let inc = br#"{"increment":{"by":1}}"#.to_vec();
    for n in 1..=2u64 {
        let r = coordinator
            .contract_execute(address, inc.clone(), unix_now(), GAS)
            .await
            .unwrap();
        assert_eq!(r.reply.sequence, n);
    }

    // Restarted from its data dir: at version 0 while the others are at 2.
    let back = start(&dir, boot).await;
    let _ = back.dht().bootstrap().await;
    connected(&back, 3).await;
    for n in &nodes {
        connected(n, 3).await;
    }
    assert_eq!(back.peer_id(), down_id);
    assert_eq!(sequence(&back, &address), 0);
    let r = coordinator
        .contract_execute(address, inc.clone(), unix_now(), GAS)
        .await
        .unwrap();
    assert_eq!(answer(&r), r#"{"count":3}"#);
    // The replica behind is reported, not hidden...
    assert!(
        r.mismatches.iter().any(|(p, _)| *p == down_id),
        "{:?}",
        r.mismatches
    );
    // ...and catches up from the others, checked against their root.
    let agreed = (r.reply.sequence, r.reply.root);
    until("the restarted replica to catch up", [&back], || async {
        state(&back, &address) == Some(agreed)
    })
    .await;

    // A replica on a branch the others did not take (a call applied only there: version 4
    // while the others are at 3) keeps it until the others pass version 4 with another call;
    // then it takes the state they agree on. It never goes back to an earlier version.
    back.smart()
        .execute(&address, [5; 32], &inc, unix_now(), GAS, 0, Some(3))
        .unwrap();
    assert!(!back.catch_up(address).await.unwrap());
    assert_eq!(sequence(&back, &address), 4);
    let r = coordinator
        .contract_execute(address, inc.clone(), unix_now(), GAS)
        .await
        .unwrap();
    assert_eq!(
        (answer(&r).as_str(), r.reply.sequence),
        (r#"{"count":4}"#, 4)
    );
    assert!(
        r.mismatches.iter().any(|(p, _)| *p == down_id),
        "{:?}",
        r.mismatches
    );
    let agreed = (r.reply.sequence, r.reply.root);
    until(
        "the replica off the majority to take its state",
        [&back],
        || async { state(&back, &address) == Some(agreed) },
    )
    .await;
    // Now all three answer alike.
    let q = back
        .contract_query(address, br#"{"count":{}}"#.to_vec(), unix_now(), GAS)
        .await
        .unwrap();
    assert_eq!((answer(&q).as_str(), q.agreeing), (r#"{"count":4}"#, 3));
    assert!(q.mismatches.is_empty(), "{:?}", q.mismatches);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_primary_orders_calls_and_a_call_it_applied_alone_is_forwarded() {
    let tmp = tempfile::tempdir().unwrap();
    let (nodes, _) = network(&tmp, 3).await;
    let made = counter_through(&nodes[0]).await;
    let address = made.address;
    let by_id = |id| nodes.iter().find(|n| n.peer_id() == id).unwrap();
    let (primary, follower, other) = (
        by_id(made.replicas[0]),
        made.replicas[1],
        by_id(made.replicas[2]),
    );
    let all: Vec<&Node> = nodes.iter().collect();
    let before = kept(&all, &address);
    let inc = br#"{"increment":{"by":1}}"#.to_vec();
    let call = (0, inc.clone(), unix_now());

    // A peer sending an execute straight to a replica that is not the primary: refused.
    let a = other
        .contract_misstep(address, call.clone(), Misstep::Execute(follower))
        .await;
    assert!(a.contains("NotPrimary"), "{a}");
    // The same as if a primary had applied it, signed by the sender (a replica, not the
    // primary): refused. Two such calls could otherwise split the replicas for good.
    let a = other
        .contract_misstep(address, call.clone(), Misstep::SelfSigned(follower))
        .await;
    assert!(a.contains("NotSigned"), "{a}");
    // The primary itself cannot make up a caller: a call it signs naming a caller who did not
    // sign it is refused.
    let a = primary
        .contract_misstep(address, call.clone(), Misstep::ForgedCaller(follower))
        .await;
    assert!(a.contains("NotSigned"), "{a}");
    assert_eq!(kept(&all, &address), before);

    // A coordinator that stops after the primary applied its call: the primary is one version
    // ahead of the others...
    let a = other
        .contract_misstep(address, call, Misstep::OnlyPrimary)
        .await;
    assert!(a.contains("at version 1"), "{a}");
    assert_eq!(sequence(primary, &address), 1);
    // ...and the next execute first forwards that call to them, then runs at version 1.
    let r = nodes[1]
        .contract_execute(address, inc, unix_now(), GAS)
        .await
        .unwrap();
    assert_eq!(
        (answer(&r).as_str(), r.reply.sequence),
        (r#"{"count":2}"#, 2)
    );
    assert_eq!(r.agreeing, 3);
    assert!(r.mismatches.is_empty(), "{:?}", r.mismatches);
    let states = kept(&all, &address);
    assert!(
        states.iter().all(|s| (s.1, s.2) == (2, r.reply.root)),
        "{states:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_reached_some_replicas_before_its_primary_left_is_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut nodes, _) = network(&tmp, 4).await;
    let made = counter_through(&nodes[0]).await;
    let address = made.address;
    let (a, b, c) = (made.replicas[0], made.replicas[1], made.replicas[2]);
    let outsider = nodes
        .iter()
        .position(|n| !made.replicas.contains(&n.peer_id()))
        .unwrap();
    let inc = br#"{"increment":{"by":1}}"#.to_vec();
    // The primary A applies a call and its coordinator reaches only C before stopping.
    let x = &nodes[outsider];
    let said = x
        .contract_misstep(address, (0, inc.clone(), unix_now()), Misstep::OnlyPrimary)
        .await;
    assert!(said.contains("at version 1"), "{said}");
    let said = x
        .contract_misstep(address, (0, inc.clone(), unix_now()), Misstep::LastTo(c))
        .await;
    assert!(said.contains("at version 1"), "{said}");
    // Then A leaves: B is at version 0, C at 1, the outsider (now a replica) has nothing, and
    // no two agree.
    let gone = nodes.iter().position(|n| n.peer_id() == a).unwrap();
    nodes.remove(gone).stop().await;
    for n in &nodes {
        until("the primary's departure to be seen", [n], || async {
            !n.dht().status().await.unwrap().connected.contains(&a)
        })
        .await;
    }
    let by_id = |id| nodes.iter().find(|n| n.peer_id() == id).unwrap();
    assert_eq!(sequence(by_id(b), &address), 0);
    // The next execute gets B one version forward with C's call (signed by its caller and by A),
    // the new replica the state, and runs at version 1: the call A acknowledged is kept.
    let r = nodes[0]
        .contract_execute(address, inc, unix_now(), GAS)
        .await
        .unwrap();
    assert_eq!(
        (answer(&r).as_str(), r.reply.sequence),
        (r#"{"count":2}"#, 2)
    );
    assert!(r.agreeing >= 2, "{r:?}");
}
