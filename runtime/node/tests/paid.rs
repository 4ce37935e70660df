//! Paid storage on real nodes (libp2p on 127.0.0.1, RocksDB in temp dirs): a put on a network
//! that charges makes a storage contract every provider signs and escrows its price before a
//! shard goes out; without funds it stores nothing; a charging node refuses shards no contract
//! pays for, and checks every contract offered to it.

use support::{connected, data, key, network, opts, owner, store_request, until};
use zhtp::network::{Error, Node, Payment, ed25519_of};
use zhtp_content::EncryptionLevel;
use zhtp_dht::{Request, Response};
use zhtp_economy::contract::{Mandate, Penalties, Placement, Sla, State, StorageContract, Terms};
use zhtp_economy::{Account, Genesis};
use zhtp_identity::Identity;
use zhtp_types::Hash;

#[path = "support/net.rs"]
mod support;

const SUPPLY: u64 = 1_000_000_000;
const PRICE: u64 = 5_000_000;

fn now() -> u64 {
    zhtp_dht::record::unix_now()
}

/// `n` nodes that charge; the first is the client's node, with a devnet ledger that funds
/// `funds` µZHTP to [`owner`].
async fn charging(tmp: &tempfile::TempDir, n: usize, funds: u64) -> Vec<Node> {
    let (nodes, _) = network(tmp, n).await;
    for node in &nodes {
        node.charge(true);
    }
    let ledger = nodes[0].local().ledger();
    ledger.genesis(Genesis::Devnet { supply: SUPPLY }).unwrap();
    if funds > 0 {
        ledger.fund([1; 32], Account::Key(client()), funds).unwrap();
    }
    nodes
}

fn client() -> [u8; 32] {
    owner().public().signing
}

fn mandate(content: Hash, by: &Identity) -> Mandate {
    Mandate {
        content,
        client: by.public().signing,
        max_price: PRICE,
        periods: 3,
        period_secs: 86_400,
        expires: now() + 600,
        nonce: [5; 16],
    }
}

fn payment(content: Hash) -> Payment {
    let m = mandate(content, owner());
    Payment {
        mandate: m,
        signature: owner().sign(&m.signing_message()).to_vec(),
        price: PRICE,
        fee: 0,
        plugin: Hash([3; 32]),
        proofs: false,
    }
}

/// Writes `bytes` to a file in `tmp`: its path, hash and size.
fn input(tmp: &tempfile::TempDir, bytes: &[u8]) -> (std::path::PathBuf, (Hash, u64)) {
    let path = tmp
        .path()
        .join(format!("in-{}", blake3::hash(bytes).to_hex()));
    std::fs::write(&path, bytes).unwrap();
    (
        path,
        (Hash(*blake3::hash(bytes).as_bytes()), bytes.len() as u64),
    )
}

fn balance(node: &Node) -> u64 {
    node.local()
        .ledger()
        .balance(&Account::Key(client()))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paid_put_is_signed_by_every_provider_and_escrowed() {
    let tmp = tempfile::tempdir().unwrap();
    let nodes = charging(&tmp, 4, 12_000_000).await;
    let bytes = data(2_500_000, 7);
    let (path, hashed) = input(&tmp, &bytes);
    // Kept for the replay below: the mandate's expiry is read from the clock when it is made.
    let pay = payment(hashed.0);
    let (stored, c) = nodes[0]
        .put_paid(&path, hashed, opts(EncryptionLevel::Standard), pay.clone())
        .await
        .unwrap();

    // Active: every party signed (the client its mandate), the price is in escrow.
    assert_eq!(c.state(), State::Active);
    assert_eq!(c.signatures().len(), c.parties().len());
    c.verify().unwrap();
    let ledger = nodes[0].local().ledger();
    assert_eq!(balance(&nodes[0]), 12_000_000 - PRICE);
    let escrow = ledger.escrow(&c.id().0).unwrap().unwrap();
    assert_eq!((escrow.funded, escrow.released), (PRICE, 0));
    assert_eq!(ledger.audit().unwrap().supply, SUPPLY, "nothing minted");

    // The contract names every shard where it went, and each holder kept a copy it signed.
    let t = c.terms();
    assert_eq!(t.content, hashed.0);
    assert_eq!(t.shards.len(), stored.manifest.segments.len() * 6);
    for p in &t.shards {
        let peer = stored.placement[p.segment as usize][p.index as usize];
        assert_eq!(Some(p.holder), ed25519_of(&peer));
        assert_eq!(
            p.shard,
            stored.manifest.segments[p.segment as usize].shards[p.index as usize]
        );
    }
    for node in &nodes[1..] {
        let me = node.provider_key();
        if !t.providers().contains(&me) {
            continue;
        }
        let kept = node.contracts().get(&c.id()).unwrap().expect("a copy");
        assert!(kept.signatures().iter().any(|(p, _)| *p == me));
    }
    let mine = nodes[0].contracts().get(&c.id()).unwrap().unwrap();
    assert_eq!(mine.state(), State::Active);

    // And the content reads back through another node.
    let back = nodes[3].get_bytes(&hashed.0, key(&stored)).await.unwrap();
    assert!(back == bytes);

    // The same mandate again pays for nothing more, and is refused before any provider is
    // asked.
    let err = nodes[0]
        .put_paid(&path, hashed, opts(EncryptionLevel::Standard), pay)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("already paid for storage contract {}", c.id())),
        "{err}"
    );
    assert_eq!(balance(&nodes[0]), 12_000_000 - PRICE);
    for node in &nodes[1..] {
        assert!(node.contracts().list(10).unwrap().len() <= 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_funds_a_put_stores_nothing_and_says_why() {
    let tmp = tempfile::tempdir().unwrap();
    let nodes = charging(&tmp, 3, PRICE - 1).await;
    let bytes = data(600_000, 9);
    let (path, hashed) = input(&tmp, &bytes);
    let err = nodes[0]
        .put_paid(
            &path,
            hashed,
            opts(EncryptionLevel::Standard),
            payment(hashed.0),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Payment(_)), "{err:?}");
    let line = err.to_string();
    assert!(
        line.contains("has 4.999999 ZHTP") && line.contains("costs 5 ZHTP"),
        "{line}"
    );
    assert!(!line.contains('\n'), "one line: {line}");
    for node in &nodes {
        assert_eq!(node.held_totals().unwrap(), (0, 0), "nothing stored");
        assert!(node.contracts().list(10).unwrap().is_empty());
    }
    assert_eq!(balance(&nodes[0]), PRICE - 1);

    // A mandate whose signature is another key's (valid, of the wrong key) pays nothing.
    nodes[0]
        .local()
        .ledger()
        .fund([2; 32], Account::Key(client()), PRICE)
        .unwrap();
    let mut forged = payment(hashed.0);
    forged.signature = Identity::generate()
        .unwrap()
        .sign(&forged.mandate.signing_message())
        .to_vec();
    let err = nodes[0]
        .put_paid(&path, hashed, opts(EncryptionLevel::Standard), forged)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("does not verify"), "{err}");
    // Nor does one for other content, or a price above its budget.
    let mut other = payment(Hash([4; 32]));
    let err = nodes[0]
        .put_paid(
            &path,
            hashed,
            opts(EncryptionLevel::Standard),
            other.clone(),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("the payment's mandate is for content"),
        "{err}"
    );
    other = payment(hashed.0);
    other.price = PRICE + 1;
    let err = nodes[0]
        .put_paid(&path, hashed, opts(EncryptionLevel::Standard), other)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("above the payment's budget"),
        "{err}"
    );
    for node in &nodes {
        assert_eq!(node.held_totals().unwrap(), (0, 0), "nothing stored");
    }
    assert_eq!(balance(&nodes[0]), 2 * PRICE - 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_charging_node_takes_only_shards_a_contract_pays_for() {
    let tmp = tempfile::tempdir().unwrap();
    let nodes = charging(&tmp, 2, 0).await;
    let (victim, peer) = (&nodes[0], &nodes[1]);
    let content = Hash([6; 32]);
    let refused = |r: Response| match r {
        Response::Refused(why) => why,
        other => panic!("stored without a contract: {other:?}"),
    };
    let why = refused(
        peer.dht()
            .request(victim.peer_id(), store_request(content, 0, 1))
            .await
            .unwrap(),
    );
    assert!(why.contains("stores paid shards only"), "{why}");
    assert_eq!(victim.held_totals().unwrap(), (0, 0));

    // A contract naming the shard (signed by its client) lets it in, at that position only.
    let Request::Store { hash, data, .. } = store_request(content, 0, 1) else {
        unreachable!()
    };
    let client = Identity::generate().unwrap();
    let c = offered(&client, content, hash, victim.provider_key(), now());
    match peer
        .dht()
        .request(victim.peer_id(), Request::Offer { contract: c })
        .await
        .unwrap()
    {
        Response::Signed(sig) => {
            assert_eq!(sig.len(), 64);
        }
        other => panic!("offer not signed: {other:?}"),
    }
    let moved = Request::Store {
        content,
        segment: 1,
        index: 0,
        hash,
        data: data.clone(),
    };
    let why = refused(peer.dht().request(victim.peer_id(), moved).await.unwrap());
    assert!(why.contains("stores paid shards only"), "{why}");
    let r = peer
        .dht()
        .request(victim.peer_id(), store_request(content, 0, 1))
        .await
        .unwrap();
    assert_eq!(r, Response::Stored);
    assert_eq!(victim.held_totals().unwrap(), (1, 100_000));
}

/// A client that writes a wrong commitment for an honest holder's shard would make its every
/// proof fail (and keep half of what it owes): the holder refuses an offer whose commitment
/// does not fit its circuit, and a shard whose bytes do not give the root a contract names for
/// it. With the right root the shard is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_refuses_a_shard_its_contract_commits_to_another_root() {
    let tmp = tempfile::tempdir().unwrap();
    let nodes = charging(&tmp, 2, 0).await;
    let (holder, peer) = (&nodes[0], &nodes[1]);
    let client = Identity::generate().unwrap();
    let depth = zhtp::network::CIRCUIT.depth;
    let ask = |r: Request| async { peer.dht().request(holder.peer_id(), r).await.unwrap() };
    let stored = |content: Hash| {
        let Request::Store { hash, data, .. } = store_request(content, 0, 1) else {
            unreachable!()
        };
        (hash, data)
    };
    // The holder's answer to an offer of `content`'s shard committed to `proof`.
    let offer = |content: Hash, hash: Hash, proof: zhtp_proofs::Commitment| {
        let contract = offered_with(
            &client,
            content,
            hash,
            holder.provider_key(),
            now(),
            Some(proof),
        );
        ask(Request::Offer { contract })
    };

    // A commitment for another circuit (depth 3): refused with the offer.
    let content = Hash([11; 32]);
    let (hash, data) = stored(content);
    let right = zhtp_proofs::Tree::build(&data, depth).unwrap().commitment();
    let other_depth = zhtp_proofs::Commitment { depth: 3, ..right };
    match offer(content, hash, other_depth).await {
        Response::Refused(why) => assert!(why.contains("depth-3 commitment"), "{why}"),
        other => panic!("{other:?}"),
    }

    // A wrong root: the offer is signed (the holder cannot tell before it has the bytes),
    // the shard is not stored.
    let mut wrong = right;
    wrong.root = zhtp_proofs::Tree::build(b"other bytes", depth)
        .unwrap()
        .commitment()
        .root;
    assert!(matches!(
        offer(content, hash, wrong).await,
        Response::Signed(_)
    ));
    match ask(store_request(content, 0, 1)).await {
        Response::Refused(why) => assert!(why.contains("but its bytes give"), "{why}"),
        other => panic!("stored under a wrong commitment: {other:?}"),
    }
    assert_eq!(holder.held_totals().unwrap(), (0, 0));

    // The right root, for another content: stored.
    let content = Hash([12; 32]);
    let (hash, data) = stored(content);
    let right = zhtp_proofs::Tree::build(&data, depth).unwrap().commitment();
    assert!(matches!(
        offer(content, hash, right).await,
        Response::Signed(_)
    ));
    assert_eq!(ask(store_request(content, 0, 1)).await, Response::Stored);
    assert_eq!(holder.held_totals().unwrap(), (1, data.len() as u64));
}

/// A one-shard contract of `content` for `holder`, signed by `client`'s mandate, starting at
/// `start`: encoded, as an offer carries it.
fn offered(client: &Identity, content: Hash, shard: Hash, holder: [u8; 32], start: u64) -> Vec<u8> {
    offered_with(client, content, shard, holder, start, None)
}

/// [`offered`], the shard committed to `proof`.
fn offered_with(
    client: &Identity,
    content: Hash,
    shard: Hash,
    holder: [u8; 32],
    start: u64,
    proof: Option<zhtp_proofs::Commitment>,
) -> Vec<u8> {
    let mut m = mandate(content, client);
    m.expires = start + 600;
    let terms = Terms {
        content,
        client: m.client,
        shards: vec![Placement {
            segment: 0,
            index: 0,
            shard,
            holder,
            proof,
        }],
        price: PRICE,
        fee: 0,
        plugin: Hash([3; 32]),
        start,
        periods: m.periods,
        period_secs: m.period_secs,
        sla: Sla::default(),
        penalties: Penalties::default(),
        mandate: m,
        audits: Hash([0; 32]),
    };
    let mut c = StorageContract::new(terms).unwrap();
    c.sign(m.client, &client.sign(&m.signing_message()))
        .unwrap();
    postcard::to_allocvec(&c).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offers_are_checked_before_a_provider_signs() {
    let tmp = tempfile::tempdir().unwrap();
    let nodes = charging(&tmp, 2, 0).await;
    let (provider, peer) = (&nodes[0], &nodes[1]);
    connected(peer, 1).await;
    let me = provider.provider_key();
    let client = Identity::generate().unwrap();
    let ask = |contract: Vec<u8>| async {
        peer.dht()
            .request(provider.peer_id(), Request::Offer { contract })
            .await
            .unwrap()
    };
    let refusal = |r: Response| match r {
        Response::Refused(why) => why,
        other => panic!("accepted: {other:?}"),
    };

    // Garbage.
    let why = refusal(ask(vec![1, 2, 3]).await);
    assert!(why.contains("not a valid storage contract"), "{why}");
    // No client signature: terms anyone could write.
    let m = mandate(Hash([1; 32]), &client);
    let unsigned = StorageContract::new(Terms {
        content: m.content,
        client: m.client,
        shards: vec![Placement {
            segment: 0,
            index: 0,
            shard: Hash([2; 32]),
            holder: me,
            proof: None,
        }],
        price: PRICE,
        fee: 0,
        plugin: Hash([3; 32]),
        start: now(),
        periods: m.periods,
        period_secs: m.period_secs,
        sla: Sla::default(),
        penalties: Penalties::default(),
        mandate: m,
        audits: Hash([0; 32]),
    })
    .unwrap();
    let why = refusal(ask(postcard::to_allocvec(&unsigned).unwrap()).await);
    assert!(why.contains("no mandate signed by its client"), "{why}");
    // The client's mandate signed by another key: a valid signature, of the wrong key.
    let mut forged = unsigned.clone();
    let mallory = Identity::generate().unwrap();
    let sig = mallory.sign(&forged.message_for(&m.client));
    assert!(forged.sign(m.client, &sig).is_err());
    let mut bytes = postcard::to_allocvec(&unsigned).unwrap();
    // Spliced in by hand, as a peer would: one entry (client key, 64-byte signature).
    let n = bytes.len();
    let tail = bytes.split_off(n - 3); // signatures (empty), state, periods settled
    assert_eq!(tail, [0, 0, 0]);
    bytes.push(1);
    bytes.extend_from_slice(&m.client);
    bytes.push(64);
    bytes.extend_from_slice(&sig);
    bytes.extend_from_slice(&[0, 0]); // still quoted, no period settled
    let why = refusal(ask(bytes).await);
    assert!(why.contains("does not verify"), "{why}");
    // A term that is over, and one that has not begun.
    let old = offered(
        &client,
        Hash([1; 32]),
        Hash([2; 32]),
        me,
        now() - 4 * 86_400,
    );
    let why = refusal(ask(old).await);
    assert!(why.contains("term is over"), "{why}");
    let future = offered(&client, Hash([1; 32]), Hash([2; 32]), me, now() + 3_600);
    let why = refusal(ask(future).await);
    assert!(why.contains("starts in the future"), "{why}");
    // Offered in the last half day of a three-day term: too late to sign for the first time.
    let stale = offered(
        &client,
        Hash([1; 32]),
        Hash([2; 32]),
        me,
        now() - 5 * 43_200,
    );
    let why = refusal(ask(stale).await);
    assert!(why.contains("offered too late"), "{why}");
    assert!(provider.contracts().list(10).unwrap().is_empty());
    // A successor keeps its predecessor's start: begun a day ago, two days to go, it is signed.
    let successor = offered(&client, Hash([1; 32]), Hash([4; 32]), me, now() - 86_400);
    assert!(matches!(ask(successor).await, Response::Signed(s) if !s.is_empty()));
    assert_eq!(provider.contracts().list(10).unwrap().len(), 1);

    // A good offer is signed with the provider's node key; one naming others only is kept
    // unsigned (for repaired shards).
    let good = offered(&client, Hash([1; 32]), Hash([2; 32]), me, now());
    let Response::Signed(sig) = ask(good.clone()).await else {
        panic!("a good offer was refused")
    };
    let c: StorageContract = postcard::from_bytes(&good).unwrap();
    zhtp_identity::verify(&me, &c.terms().signing_message(), &sig).unwrap();
    let others = offered(&client, Hash([1; 32]), Hash([5; 32]), [9; 32], now());
    assert_eq!(ask(others).await, Response::Signed(Vec::new()));
    assert_eq!(provider.contracts().list(10).unwrap().len(), 3);
}

/// A mandate and payment of [`owner`] for `content` at `price` (of which `fee` is the network
/// fee), for `periods` of `secs`.
fn payment_for(content: Hash, price: u64, fee: u64, periods: u32, secs: u64) -> Payment {
    let mut m = mandate(content, owner());
    (m.max_price, m.periods, m.period_secs) = (price, periods, secs);
    Payment {
        mandate: m,
        signature: owner().sign(&m.signing_message()).to_vec(),
        price,
        fee,
        plugin: Hash([3; 32]),
        proofs: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_dropping_its_shards_is_penalized_banned_and_replaced_and_the_ledger_adds_up() {
    let tmp = tempfile::tempdir().unwrap();
    let funds = 100_000_000;
    let nodes = charging(&tmp, 5, funds).await;
    let gateway = &nodes[0];
    let bytes = data(3_000_000, 11);
    let (path, hashed) = input(&tmp, &bytes);
    let (price, fee, periods, secs) = (4_000_000, 200_000, 4, 100);
    // A deadline no honest answer on a loaded machine misses: the bonus tier an answer earns
    // (quality-sla: a mean within a tenth of the deadline) is then known.
    gateway.set_audit_config(zhtp::network::AuditConfig {
        deadline: std::time::Duration::from_secs(5),
        ..Default::default()
    });
    let (stored, c) = gateway
        .put_paid(
            &path,
            hashed,
            opts(EncryptionLevel::Standard),
            payment_for(hashed.0, price, fee, periods, secs),
        )
        .await
        .unwrap();
    let (t, id) = (c.terms().clone(), c.id());
    let ledger = gateway.local().ledger();
    // The whole price is in escrow; the network fee waits there for the first period (a put
    // failing before then gets it back with the rest).
    assert_eq!(ledger.balance(&Account::Incentives).unwrap(), 0);
    assert_eq!(ledger.escrow(&id.0).unwrap().unwrap().funded, price);
    // The dropper: a provider other than the client's node. It deletes the bytes of every
    // shard it holds and says nothing (its index still lists them).
    let dropper = nodes[1..]
        .iter()
        .find(|n| t.providers().contains(&n.provider_key()))
        .expect("a provider besides the client's node");
    let x = dropper.provider_key();
    let dropped: Vec<_> = t.shards.iter().filter(|p| p.holder == x).collect();
    let store = dropper.local().store();
    let mut batch = store.batch();
    for p in &dropped {
        store
            .delete(&mut batch, zhtp_store::Cf::Shards, p.shard.as_bytes())
            .unwrap();
    }
    store.write(batch).unwrap();

    // Period 0: every provider is audited once; the dropper fails, the others pass.
    let r = gateway.audit_round(t.start + 10).await.unwrap();
    assert_eq!(r.audits, t.providers().len());
    assert_eq!(r.passed, t.providers().len() - 1);
    assert_eq!(
        r.failed,
        [(
            hex::encode(x),
            id,
            zhtp_economy::contract::Violation::DataLoss
        )]
    );
    assert!(r.banned.is_empty(), "one loss costs 500 of 1000 points");
    // Period 0 is settled: the dropper gets half its share (data loss: 50%), the client the
    // other half back.
    let s = gateway.settle(t.start + secs).await.unwrap();
    assert_eq!(s.periods, 1);
    let penalty0 = t.penalty(0, &x, zhtp_economy::contract::Violation::DataLoss);
    assert_eq!(penalty0, t.holder_payment(0, &x) / 2);
    assert_eq!(s.refunded, penalty0);
    let paid = |k: &[u8; 32]| ledger.balance(&Account::Key(*k)).unwrap();
    assert_eq!(paid(&x), t.holder_payment(0, &x) - penalty0);
    // The network fee reached the pool with period 0, and the honest earned the top bonus
    // from it (every audit passed, fast): 15% of their share. Not the dropper, and not the
    // client's node (it audits itself, at no cost).
    let earners: Vec<[u8; 32]> = t
        .providers()
        .into_iter()
        .filter(|p| *p != x && *p != gateway.provider_key())
        .collect();
    let top = |n: u32| -> u64 {
        earners
            .iter()
            .map(|p| t.holder_payment(n, p) * 15 / 100)
            .sum()
    };
    assert!(top(0) > 0 && top(0) <= fee);
    assert_eq!(s.bonuses, top(0));
    assert_eq!(ledger.period_receipt(&id.0, 0).unwrap().unwrap().fee, fee);
    assert_eq!(ledger.balance(&Account::Incentives).unwrap(), fee - top(0));
    for p in &earners {
        assert_eq!(paid(p), t.holder_payment(0, p) * 115 / 100);
    }
    let me = gateway.provider_key();
    if t.providers().contains(&me) {
        assert_eq!(
            paid(&me),
            t.holder_payment(0, &me),
            "no bonus for auditing itself"
        );
    }

    // Period 1: a second loss bans it.
    let r = gateway.audit_round(t.start + secs + 10).await.unwrap();
    assert_eq!(r.banned, [hex::encode(x)]);
    assert_eq!(
        gateway.standing(&x).unwrap().band,
        zhtp_economy::reputation::Band::Banned
    );
    // Its shards are rebuilt on other nodes, which take them under the contract.
    let rebuilt = gateway.repair_banned().await.unwrap();
    assert_eq!(rebuilt, dropped.len());
    let (holders, _) = gateway.holders(&hashed.0).await.unwrap();
    for p in &dropped {
        let live: Vec<_> = holders[&(p.segment, p.index)]
            .iter()
            .filter(|h| **h != dropper.peer_id())
            .collect();
        assert!(
            !live.is_empty(),
            "shard {}/{} not replaced",
            p.segment,
            p.index
        );
    }
    // With the dropper gone, the content still reads.
    dropper.shutdown().await;
    let back = nodes[4]
        .get_bytes(&hashed.0, support::key(&stored))
        .await
        .unwrap();
    assert!(back == bytes);
    // No new shards for a banned node: another paid put names it nowhere.
    let (path2, hashed2) = input(&tmp, &data(500_000, 13));
    // (A term far longer than the first's: it is not settled below.)
    let mut pay2 = payment_for(hashed2.0, 1_000_000, 0, 1, 1_000 * secs);
    pay2.mandate.nonce = [6; 16];
    pay2.signature = owner().sign(&pay2.mandate.signing_message()).to_vec();
    let (_, c2) = gateway
        .put_paid(&path2, hashed2, opts(EncryptionLevel::Standard), pay2)
        .await
        .unwrap();
    assert!(!c2.terms().providers().contains(&x));

    // The rest of the term: the honest are paid in full, the banned one's pending rewards
    // are forfeited to the client, and the contract ends settled.
    let s = gateway
        .settle(t.start + u64::from(periods) * secs)
        .await
        .unwrap();
    assert_eq!((s.periods, s.completed), (3, 1));
    // Period 1's bonuses as far as the pool holds; periods 2 and 3 were not audited and earn
    // none.
    let total = (top(0) + top(1)).min(fee);
    assert_eq!(s.bonuses, total - top(0));
    assert_eq!(ledger.balance(&Account::Incentives).unwrap(), fee - total);
    let mut bonuses = 0;
    for p in t.providers().iter().filter(|p| **p != x) {
        let due: u64 = (0..periods).map(|n| t.holder_payment(n, p)).sum();
        assert!(paid(p) >= due, "an honest provider is paid every period");
        bonuses += paid(p) - due;
    }
    assert_eq!(bonuses, total, "the pool paid the honest, and only them");
    let receipts: u64 = (0..periods)
        .map(|n| ledger.period_receipt(&id.0, n).unwrap().unwrap().bonuses)
        .sum();
    assert_eq!(receipts, total);
    assert_eq!(paid(&x), t.holder_payment(0, &x) - penalty0, "nothing more");
    let released: u64 = t.providers().iter().map(paid).sum::<u64>() - total;
    let c_now = gateway.contracts().get(&id).unwrap().unwrap();
    assert_eq!(c_now.state(), State::Settled);
    let escrow = ledger.escrow(&id.0).unwrap().unwrap();
    assert!(escrow.settled);
    assert_eq!(
        escrow.released,
        released + fee,
        "to providers, and the fee to the pool"
    );
    assert_eq!(escrow.released + escrow.refunded, price);
    // The client paid exactly what the honest work earned and the network fee (plus the second
    // put's escrow).
    assert_eq!(
        ledger.balance(&Account::Key(client())).unwrap(),
        funds - released - fee - 1_000_000
    );
    // And the ledger's total never moved.
    let audit = ledger.audit().unwrap();
    assert_eq!(audit.supply, SUPPLY);
}

/// A provider that keeps nothing: it signs every offer, says "stored" and drops the bytes, and
/// answers an audit by rebuilding its shard from k shards it fetches from the other holders
/// (named in the contract it signed), a correct answer made without a copy of its own.
async fn proxy(tmp: &tempfile::TempDir, bootstrap: Vec<zhtp_dht::Multiaddr>) -> zhtp_dht::Dht {
    let kp = zhtp_dht::Keypair::generate_ed25519();
    let me = ed25519_of(&kp.public().to_peer_id()).unwrap();
    let db =
        zhtp_store::Store::open(tmp.path().join("proxy"), zhtp_store::Config::default()).unwrap();
    let (dht, mut inbound) =
        zhtp_dht::Dht::spawn(kp.clone(), support::config(bootstrap), Some(db.into()))
            .await
            .unwrap();
    let contracts = std::sync::Arc::new(std::sync::Mutex::new(Vec::<StorageContract>::new()));
    let d = dht.clone();
    tokio::spawn(async move {
        while let Some(req) = inbound.recv().await {
            let (d, kp, contracts) = (d.clone(), kp.clone(), contracts.clone());
            tokio::spawn(async move {
                let zhtp_dht::Inbound { request, reply, .. } = req;
                let answer = match request {
                    Request::Offer { contract } => {
                        let c = StorageContract::decode(&contract).unwrap();
                        let sig = kp.sign(&c.message_for(&me)).unwrap();
                        contracts.lock().unwrap().push(c);
                        Response::Signed(sig)
                    }
                    Request::Store { .. } => Response::Stored,
                    Request::Audit {
                        segment,
                        index,
                        nonce,
                        ranges,
                        ..
                    } => {
                        let c = contracts.lock().unwrap()[0].clone();
                        let shard = rebuild(&d, &c, segment, index).await;
                        let challenge = zhtp_economy::audit::Challenge { nonce, ranges };
                        Response::Audited(zhtp_economy::audit::digest(&challenge, &shard).unwrap())
                    }
                    _ => Response::NotFound,
                };
                reply.send(answer).await;
            });
        }
    });
    dht
}

/// Shard `index` of `segment` under `c`, rebuilt from 4 others fetched from their holders.
async fn rebuild(dht: &zhtp_dht::Dht, c: &StorageContract, segment: u32, index: u16) -> Vec<u8> {
    let code = zhtp::local::PutOptions::new(zhtp_types::StorageTier::Hot).code;
    let n = code.total();
    let mut slots: Vec<Option<Vec<u8>>> = vec![None; n];
    let mut got = 0;
    for p in c.terms().shards.iter().filter(|p| p.segment == segment) {
        if p.index == index || got == code.data as usize {
            continue;
        }
        let pk = libp2p::identity::ed25519::PublicKey::try_from_bytes(&p.holder).unwrap();
        let peer = zhtp_dht::PeerId::from_public_key(&pk.into());
        if let Ok(Response::Shard(b)) = dht.request(peer, Request::Fetch { hash: p.shard }).await {
            slots[p.index as usize] = Some(b);
            got += 1;
        }
    }
    zhtp_content::erasure_code(code)
        .unwrap()
        .reconstruct(&mut slots)
        .unwrap();
    slots[index as usize].take().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_answering_audits_from_other_holders_copies_is_caught() {
    let tmp = tempfile::tempdir().unwrap();
    let (nodes, boot) = network(&tmp, 4).await;
    let cheat = proxy(&tmp, boot).await;
    for n in &nodes {
        n.charge(true);
        let _ = n.dht().bootstrap().await;
        connected(n, 4).await;
    }
    let gateway = &nodes[0];
    let ledger = gateway.local().ledger();
    ledger.genesis(Genesis::Devnet { supply: SUPPLY }).unwrap();
    ledger
        .fund([1; 32], Account::Key(client()), 10 * PRICE)
        .unwrap();
    // One 24 MiB segment: 6 MiB shards, so rebuilding one takes 24 MiB over the network, where
    // an honest answer reads 4 KiB of a local copy.
    let bytes = data(24 << 20, 17);
    let (path, hashed) = input(&tmp, &bytes);
    let mut o = opts(EncryptionLevel::None);
    o.segment_size = 24 << 20;
    let (_, c) = gateway
        .put_paid(&path, hashed, o, payment(hashed.0))
        .await
        .unwrap();
    let x = ed25519_of(&cheat.peer_id()).unwrap();
    assert!(
        c.terms().providers().contains(&x),
        "the proxy signed for shards"
    );
    gateway.set_audit_config(zhtp::network::AuditConfig {
        deadline: std::time::Duration::from_millis(40),
        ..Default::default()
    });
    let r = gateway.audit_round(c.terms().start + 1).await.unwrap();
    // Its answer is right (it rebuilt the shard), and too late: caught.
    let caught: Vec<_> = r
        .failed
        .iter()
        .filter(|(p, ..)| *p == hex::encode(x))
        .collect();
    assert_eq!(
        caught,
        [&(
            hex::encode(x),
            c.id(),
            zhtp_economy::contract::Violation::SlowResponse
        )]
    );
    let audits = gateway.contracts().audits(&c.id(), Some(0)).unwrap();
    assert!(audits.iter().any(|(_, p, o)| *p == x
        && *o
            == zhtp_economy::audit::Outcome::Failed(
                zhtp_economy::contract::Violation::SlowResponse
            )));
    cheat.shutdown().await;
}

/// A provider that signs offers (or, with `decline`, refuses them) and then refuses every
/// shard: a node that fails between agreeing and storing.
async fn fickle(
    tmp: &tempfile::TempDir,
    bootstrap: Vec<zhtp_dht::Multiaddr>,
    decline: bool,
) -> zhtp_dht::Dht {
    let kp = zhtp_dht::Keypair::generate_ed25519();
    let me = ed25519_of(&kp.public().to_peer_id()).unwrap();
    let dir = tmp.path().join(format!("fickle-{decline}"));
    let db = zhtp_store::Store::open(dir, zhtp_store::Config::default()).unwrap();
    let (dht, mut inbound) =
        zhtp_dht::Dht::spawn(kp.clone(), support::config(bootstrap), Some(db.into()))
            .await
            .unwrap();
    tokio::spawn(async move {
        while let Some(req) = inbound.recv().await {
            let zhtp_dht::Inbound { request, reply, .. } = req;
            let answer = match request {
                Request::Offer { .. } if decline => Response::Refused("not today".into()),
                Request::Offer { contract } => {
                    let c = StorageContract::decode(&contract).unwrap();
                    Response::Signed(kp.sign(&c.message_for(&me)).unwrap())
                }
                _ => Response::Refused("disk full".into()),
            };
            reply.send(answer).await;
        }
    });
    dht
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_failing_after_its_escrow_gives_the_money_back_and_a_declined_one_takes_none() {
    let tmp = tempfile::tempdir().unwrap();
    let (nodes, boot) = network(&tmp, 2).await;
    let gateway = &nodes[0];
    let ledger = gateway.local().ledger();
    ledger.genesis(Genesis::Devnet { supply: SUPPLY }).unwrap();
    ledger
        .fund([1; 32], Account::Key(client()), 10 * PRICE)
        .unwrap();
    for n in &nodes {
        n.charge(true);
    }
    let bytes = data(1_000_000, 19);
    let (path, hashed) = input(&tmp, &bytes);

    // A provider that declines: no escrow, nothing kept, the node named.
    let no = fickle(&tmp, boot.clone(), true).await;
    connected(gateway, 2).await;
    let err = gateway
        .put_paid(
            &path,
            hashed,
            opts(EncryptionLevel::Standard),
            payment(hashed.0),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Declined(_)), "{err:?}");
    assert!(err.to_string().contains(&no.peer_id().to_string()), "{err}");
    assert!(err.to_string().contains("not today"), "{err}");
    assert_eq!(balance(gateway), 10 * PRICE);
    assert!(ledger.open_escrows().unwrap().is_empty());
    no.shutdown().await;
    until("the decliner to be gone", [gateway], || async {
        gateway.dht().status().await.unwrap().connected.len() == 1
    })
    .await;

    // A provider that signs, then refuses its shards: the escrow was locked, and goes back,
    // network fee included (it waits in escrow for the first period).
    let flaky = fickle(&tmp, boot, false).await;
    connected(gateway, 2).await;
    let mut pay = payment(hashed.0);
    pay.fee = PRICE / 20;
    pay.mandate.nonce = [8; 16];
    pay.signature = owner().sign(&pay.mandate.signing_message()).to_vec();
    let err = gateway
        .put_paid(&path, hashed, opts(EncryptionLevel::Standard), pay)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("disk full"), "{err}");
    let flaky_key = ed25519_of(&flaky.peer_id()).unwrap();
    // Refunded before the put returned, and the contract forgotten.
    assert!(ledger.open_escrows().unwrap().is_empty());
    assert!(gateway.contracts().list(10).unwrap().is_empty());
    assert_eq!(balance(gateway), 10 * PRICE, "every µZHTP back");
    assert_eq!(ledger.balance(&Account::Incentives).unwrap(), 0);
    assert_eq!(ledger.balance(&Account::Key(flaky_key)).unwrap(), 0);
    assert_eq!(ledger.audit().unwrap().escrows.1, 1, "one escrow, settled");
}

/// A quality guest answering every period with `assessment` (its encoded bytes), or trapping.
fn quality_guest(assessment: Option<&[u8]>) -> zhtp_host::QualityPlugin {
    let body = match assessment {
        Some(bytes) => format!(
            "(drop (call $output_set (i32.const 0) (i32.const {}))) (i32.const 0)",
            bytes.len()
        ),
        None => "unreachable".into(),
    };
    let data: String = assessment
        .unwrap_or_default()
        .iter()
        .map(|b| format!("\\{b:02x}"))
        .collect();
    let wasm = wat::parse_str(format!(
        r#"(module
  (import "zhtp:env/v1" "output_set" (func $output_set (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "{data}")
  (func (export "zhtp_abi_v1"))
  (func (export "quality_assess") (result i32) {body}))"#
    ))
    .unwrap();
    let host = zhtp_host::Host::new(zhtp_host::Limits::default()).unwrap();
    zhtp_host::QualityPlugin::new(host.load(zhtp_host::Kind::Quality, &wasm).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quality_plugin_judges_each_period_and_a_broken_one_never_stops_settlement() {
    let tmp = tempfile::tempdir().unwrap();
    let nodes = charging(&tmp, 4, 12_000_000).await;
    let (path, hashed) = input(&tmp, &data(600_000, 17));
    let (periods, secs) = (2, 100);
    let (_, c) = nodes[0]
        .put_paid(
            &path,
            hashed,
            opts(EncryptionLevel::Standard),
            payment_for(hashed.0, PRICE, 0, periods, secs),
        )
        .await
        .unwrap();
    let (t, id) = (c.terms().clone(), c.id());
    let r = nodes[0].audit_round(t.start + 1).await.unwrap();
    assert_eq!(
        r.passed,
        t.providers().len(),
        "every provider holds its shards"
    );

    // An operator's plugin that calls every period a slow response and a breach (score 0, no
    // bonus, [SlowResponse, Breach]): the most severe, the contract's breach rate of 100%,
    // goes back to the client, though every audit passed.
    nodes[0].set_quality(quality_guest(Some(&[0x00, 0x00, 0x02, 0x02, 0x04])));
    let s = nodes[0].settle(t.start + secs).await.unwrap();
    assert_eq!((s.periods, s.released, s.unjudged), (1, 0, 0));
    let shares = |n: u32| -> u64 { t.providers().iter().map(|p| t.holder_payment(n, p)).sum() };
    assert_eq!(s.refunded, shares(0));
    assert_eq!(
        nodes[0].contracts().get(&id).unwrap().unwrap().state(),
        State::Active,
        "violation, penalty and resolution were passed through"
    );

    // A plugin that traps: the built-in rule judges. In period 1 a provider lost its shards:
    // it is penalized for data loss (50%), the others are paid in full, and the report says
    // the plugin did not judge.
    let dropper = nodes[1..]
        .iter()
        .find(|n| t.providers().contains(&n.provider_key()))
        .expect("a provider besides the client's node");
    let y = dropper.provider_key();
    let store = dropper.local().store();
    let mut batch = store.batch();
    for p in t.shards.iter().filter(|p| p.holder == y) {
        store
            .delete(&mut batch, zhtp_store::Cf::Shards, p.shard.as_bytes())
            .unwrap();
    }
    store.write(batch).unwrap();
    let r = nodes[0].audit_round(t.start + secs + 1).await.unwrap();
    assert_eq!(r.failed.len(), 1);
    nodes[0].set_quality(quality_guest(None));
    let s = nodes[0].settle(t.start + 2 * secs).await.unwrap();
    assert_eq!((s.periods, s.completed), (1, 1));
    assert_eq!(s.unjudged, t.providers().len());
    let loss = t.penalty(1, &y, zhtp_economy::contract::Violation::DataLoss);
    assert!(loss > 0);
    assert_eq!((s.released, s.bonuses), (shares(1) - loss, 0));
    // Each period was paid once, in one receipt, and a second settle moves nothing.
    let ledger = nodes[0].local().ledger();
    assert_eq!(
        ledger.period_receipt(&id.0, 0).unwrap().unwrap().refunded,
        shares(0)
    );
    let again = nodes[0].settle(t.start + 10 * secs).await.unwrap();
    assert_eq!((again.periods, again.released, again.refunded), (0, 0, 0));
    assert_eq!(ledger.audit().unwrap().supply, SUPPLY);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paying_puts_choose_providers_by_their_ads_and_by_reputation_gossiped_by_others() {
    use zhtp::network::MarketConfig;
    let tmp = tempfile::tempdir().unwrap();
    let nodes = charging(&tmp, 7, 100_000_000).await;
    let peers: Vec<_> = nodes.iter().map(|n| n.peer_id()).collect();
    let live = MarketConfig {
        capacity: Some(1 << 30),
        refresh: std::time::Duration::ZERO,
        ..Default::default()
    };
    for n in &nodes {
        n.set_market(live);
    }
    // Node 1 is full (1 KiB free: no shard fits), node 2 asks twice the standard price.
    nodes[1].set_market(MarketConfig {
        capacity: Some(1024),
        ..live
    });
    nodes[2].set_market(MarketConfig {
        price_bp: 20_000,
        ..live
    });
    for n in &nodes {
        n.publish_market().await.unwrap();
    }
    let gateway = &nodes[0];
    assert_eq!(
        gateway.utilization_bp(),
        5_000,
        "neutral before any ad is known"
    );
    let view = gateway.market_view(&peers).await;
    assert_eq!(view.ads.len(), 6, "every other node's ad");
    assert_eq!(view.ads[&nodes[1].provider_key()].capacity, 1024);
    assert_eq!(view.ads[&nodes[2].provider_key()].price_bp, 20_000);
    // Nothing held yet: the network is empty.
    assert_eq!(gateway.utilization_bp(), 0);

    // A 2+1 put: each shard goes, among its three closest fresh nodes, to the cheapest with
    // room; with five neutral nodes there is always one among the three.
    let mut o = opts(EncryptionLevel::Standard);
    o.code.data = 2;
    o.code.parity = 1;
    let (path, hashed) = input(&tmp, &data(3_000_000, 21));
    let (stored, _) = gateway
        .put_paid(&path, hashed, o, payment(hashed.0))
        .await
        .unwrap();
    let placed: Vec<_> = stored.placement.iter().flatten().collect();
    assert_eq!(placed.len(), 9);
    assert!(!placed.contains(&&peers[1]), "the full node got a shard");
    assert!(!placed.contains(&&peers[2]), "the dear node got a shard");
    // The holders' next ads show what they hold: the measured utilisation is above zero.
    for n in &nodes {
        n.publish_market().await.unwrap();
    }
    // A fetch may time out on a loaded machine (the cached, empty ad then stands): a few
    // rounds, each a real fetch of every ad.
    for _ in 0..10 {
        gateway.market_view(&peers).await;
        if gateway.utilization_bp() > 0 {
            break;
        }
    }
    assert!(gateway.utilization_bp() > 0);

    // Gossip: nodes 3 and 4 audited node 6 into the ban band; node 5 never audited it. Node 5
    // counts only reports of auditors its own audits judged (node 3 so far): one report is
    // not enough, an untrusted one does not count, two trusted ones are.
    let x = nodes[6].provider_key();
    let (k3, k4) = (nodes[3].provider_key(), nodes[4].provider_key());
    nodes[5].contracts().adjust(&k3, 0).unwrap();
    nodes[3].contracts().adjust(&x, -1_600).unwrap();
    nodes[3].publish_market().await.unwrap();
    nodes[4].contracts().adjust(&x, -1_600).unwrap();
    nodes[4].publish_market().await.unwrap();
    nodes[5].market_view(&peers).await;
    assert_eq!(
        nodes[5].points_of(&x).unwrap(),
        1_000,
        "one trusted auditor (and one untrusted) decide nothing"
    );
    nodes[5].contracts().adjust(&k4, 0).unwrap();
    // Node 6 cannot speak for itself: its report leaves itself out.
    nodes[6].contracts().adjust(&x, 5_000).unwrap();
    nodes[6].publish_market().await.unwrap();
    nodes[5].market_view(&peers).await;
    assert_eq!(nodes[5].points_of(&x).unwrap(), -600);
    // (The client pays through node 5: its account is on node 5's ledger.)
    let ledger5 = nodes[5].local().ledger();
    ledger5.genesis(Genesis::Devnet { supply: SUPPLY }).unwrap();
    ledger5
        .fund([1; 32], Account::Key(client()), PRICE)
        .unwrap();
    let (path, hashed) = input(&tmp, &data(2_000_000, 23));
    let mut pay = payment(hashed.0);
    pay.mandate.nonce = [8; 16];
    pay.signature = owner().sign(&pay.mandate.signing_message()).to_vec();
    let (stored, c) = nodes[5]
        .put_paid(&path, hashed, opts(EncryptionLevel::Standard), pay)
        .await
        .unwrap();
    assert!(!stored.placement.iter().flatten().any(|p| *p == peers[6]));
    assert!(!c.terms().providers().contains(&x));
    // Node 5's own audits, once it runs any, decide over the gossip.
    nodes[5].contracts().adjust(&x, 0).unwrap();
    assert_eq!(nodes[5].points_of(&x).unwrap(), 1_000);
}

/// A review moves paid content too: the tier plugin's new code goes out under a successor
/// storage contract the new holders signed before taking a shard; the successor takes over
/// the settled periods and what is left in escrow; no period is paid twice, the client pays
/// nothing more, and the ledger adds up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_review_moves_paid_content_with_its_storage_contract() {
    let tmp = tempfile::tempdir().unwrap();
    let funds = 100_000_000;
    let nodes = charging(&tmp, 6, funds).await;
    let gateway = &nodes[0];
    let bytes = data(3_000_000, 13);
    let (path, hashed) = input(&tmp, &bytes);
    let (price, fee, periods, secs) = (4_000_000, 200_000, 4, 3_600);
    let (stored, c) = gateway
        .put_paid(
            &path,
            hashed,
            opts(EncryptionLevel::Standard),
            payment_for(hashed.0, price, fee, periods, secs),
        )
        .await
        .unwrap();
    let (t, old_id) = (c.terms().clone(), c.id());
    let ledger = gateway.local().ledger();
    // Period 0 is settled under the first contract: its holders are paid for it.
    gateway.audit_round(t.start + 10).await.unwrap();
    let s = gateway.settle(t.start + secs + 1).await.unwrap();
    assert_eq!((s.periods, s.failed), (1, 0), "{s:?}");
    let left = ledger
        .escrow(&old_id.0)
        .unwrap()
        .unwrap()
        .remaining()
        .unwrap();
    assert!(left > 0 && left < price);
    let client_before = balance(gateway);

    // Everything belongs in archive at 3+3, says the tier plugin.
    gateway.set_tier(support::tier_answering("\\03\\03\\03"));
    let r = gateway.review().await.unwrap();
    assert_eq!(
        (r.reviewed, r.deferred, r.failed, r.migrated.len()),
        (1, 0, 0, 1),
        "{r:?}"
    );
    let m = gateway.local().manifest(&hashed.0).unwrap().unwrap();
    assert_eq!((m.code.data, m.code.parity), (3, 3));

    // The successor: same terms and mandate, the new shards, every new holder's signature,
    // period 0 already settled.
    let next = ledger
        .successor(&old_id.0)
        .unwrap()
        .expect("the contract was handed on");
    let new = gateway.contracts().get(&Hash(next)).unwrap().expect("kept");
    new.verify().unwrap();
    assert_eq!(new.state(), State::Active);
    assert_eq!(new.periods_settled(), 1, "period 0 is not paid again");
    let nt = new.terms();
    assert_eq!(
        (nt.mandate, nt.price, nt.fee, nt.start, nt.periods),
        (t.mandate, t.price, t.fee, t.start, t.periods)
    );
    assert_eq!(nt.shards.len(), m.segments.len() * 6);
    for p in &nt.shards {
        assert_eq!(
            p.shard,
            m.segments[p.segment as usize].shards[p.index as usize]
        );
    }
    assert_eq!(new.signatures().len(), new.parties().len());
    for node in &nodes[1..] {
        if nt.providers().contains(&node.provider_key()) {
            assert!(
                node.contracts().get(&new.id()).unwrap().is_some(),
                "each new holder kept the successor it signed, which admitted its shards"
            );
        }
    }
    // The old contract is gone here; its escrow is settled with nothing left, and what was
    // left is the successor's. Nothing came back to the client, nothing more was taken.
    assert!(gateway.contracts().get(&old_id).unwrap().is_none());
    let old = ledger.escrow(&old_id.0).unwrap().unwrap();
    assert!(old.settled);
    assert_eq!(ledger.balance(&Account::Escrow(old_id.0)).unwrap(), 0);
    assert_eq!(ledger.escrow(&next).unwrap().unwrap().funded, left);
    assert_eq!(balance(gateway), client_before);
    assert_eq!(ledger.mandate_used(&t.mandate.id().0).unwrap(), Some(next));
    let why = zhtp::accounts::not_kept(ledger, &old_id, "here");
    assert!(why.contains(&hex::encode(next)), "{why}");
    // Nothing is left waiting to be handed on; a held succession whose contract is gone is
    // dropped by the next review, not handed on.
    assert!(gateway.contracts().held_successions().unwrap().is_empty());
    gateway
        .contracts()
        .hold_succession(&Hash([7; 32]), &new, &[])
        .unwrap();
    let r = gateway.review().await.unwrap();
    assert_eq!(r.resumed, 0, "{r:?}");
    assert!(gateway.contracts().held_successions().unwrap().is_empty());

    // Period 1 is the successor's: its holders are audited and paid from its escrow.
    let r = gateway.audit_round(t.start + secs + 10).await.unwrap();
    assert_eq!(r.audits, nt.providers().len(), "{r:?}");
    let s = gateway.settle(t.start + 2 * secs + 1).await.unwrap();
    assert_eq!((s.periods, s.failed), (1, 0), "{s:?}");
    assert!(ledger.period_receipt(&next, 0).unwrap().is_none());
    assert!(ledger.period_receipt(&next, 1).unwrap().is_some());
    assert!(
        ledger.period_receipt(&old_id.0, 1).unwrap().is_none(),
        "the old contract pays nothing after it was handed on"
    );
    assert_eq!(
        gateway
            .contracts()
            .get(&new.id())
            .unwrap()
            .unwrap()
            .periods_settled(),
        2
    );
    // The content reads back through another node, and not a µZHTP was made or lost.
    let back = nodes[4].get_bytes(&hashed.0, key(&stored)).await.unwrap();
    assert!(back == bytes);
    assert_eq!(ledger.audit().unwrap().supply, SUPPLY);
}

/// Proof audits (issue 16) on five real nodes: a put whose client node commits to every shard
/// records the commitments in the contract; every provider answers its audit with a Groth16
/// proof that verifies, except one that kept its shards' trees but lost the second half of
/// their bytes and proves from what it has. Its proof fails, which is data loss, whenever a
/// sampled block is in the lost half (all but 2⁻¹⁰ of the time); the test works out from the
/// audit's nonce which case it is, and checks that one. `storage-contract show`'s data lists
/// each proof audit with its times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_that_lost_half_a_shard_fails_its_proof_audit() {
    let tmp = tempfile::tempdir().unwrap();
    let nodes = charging(&tmp, 5, 100_000_000).await;
    let gateway = &nodes[0];
    // This put asks for proof audits (`zhtp put --proof-audits`); the node does not for all.
    assert!(!gateway.audit_config().proofs);
    let bytes = data(600_000, 21);
    let (path, hashed) = input(&tmp, &bytes);
    let (_, c) = gateway
        .put_paid(
            &path,
            hashed,
            opts(EncryptionLevel::Standard),
            Payment {
                proofs: true,
                ..payment_for(hashed.0, 4_000_000, 0, 2, 100)
            },
        )
        .await
        .unwrap();
    let (t, id) = (c.terms().clone(), c.id());
    // Every shard's placement carries its commitment, for the devnet circuit.
    assert!(!t.shards.is_empty());
    for p in &t.shards {
        let commitment = p.proof.expect("committed at put time");
        assert_eq!(commitment.depth, zhtp::network::CIRCUIT.depth);
        assert!(commitment.blocks > 0);
    }
    let loser = nodes[1..]
        .iter()
        .find(|n| t.providers().contains(&n.provider_key()))
        .expect("a provider besides the client's node");
    loser.set_lapse(zhtp::network::Lapse::LostHalf);
    let x = loser.provider_key();

    let r = gateway.audit_round(t.start + 10).await.unwrap();
    assert_eq!(r.audits, t.providers().len());
    assert_eq!(
        r.proofs.len(),
        t.providers().len(),
        "every audit was a proof audit"
    );
    assert_eq!(r.proofs.iter().filter(|p| p.2).count(), r.passed);
    let info = zhtp::accounts::contract(gateway.contracts(), gateway.local().ledger(), &id)
        .unwrap()
        .unwrap();
    assert_eq!(info.committed, t.shards.len());
    assert_eq!(info.proof_audits.len(), t.providers().len());
    let mut loser_failed = false;
    for (period, who, d) in &info.proof_audits {
        assert_eq!(*period, 0);
        assert!(
            d.verify_us > 0 && d.answer_ms > 0,
            "every proof was checked: {d:?}"
        );
        if *who != hex::encode(x) {
            assert!(d.outcome.violation().is_none(), "{d:?}");
            assert!(d.problem.is_none());
            continue;
        }
        // Which blocks the audit sampled, and whether one is in the half the loser zeroed.
        let p = t
            .shards
            .iter()
            .find(|p| (p.segment, p.index, p.holder) == (d.segment, d.index, x))
            .unwrap();
        let len = loser
            .local()
            .store()
            .shard(&p.shard)
            .unwrap()
            .unwrap()
            .len() as u64;
        let samples = zhtp_proofs::Statement {
            commitment: p.proof.unwrap(),
            nonce: d.nonce,
            holder: x,
        }
        .samples(zhtp::network::CIRCUIT.samples)
        .unwrap();
        let block = zhtp_proofs::BLOCK as u64;
        loser_failed = samples.iter().any(|i| (i + 1) * block > len / 2);
        if loser_failed {
            assert_eq!(
                d.outcome,
                zhtp_economy::audit::Outcome::Failed(zhtp_economy::contract::Violation::DataLoss)
            );
            assert_eq!(d.problem.as_deref(), Some("the proof does not verify"));
        } else {
            assert!(d.outcome.violation().is_none(), "{samples:?}: {d:?}");
        }
    }
    let lost = zhtp_economy::contract::Violation::DataLoss;
    if loser_failed {
        assert_eq!(r.passed, t.providers().len() - 1);
        assert_eq!(r.failed, [(hex::encode(x), id, lost)]);
        // Its audits are its reputation: the loss cost it points.
        assert!(gateway.standing(&x).unwrap().points < 1_000);
    } else {
        assert_eq!(r.passed, t.providers().len());
    }
}
