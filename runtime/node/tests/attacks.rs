//! The attack suite: what a lying, forging or flooding peer can do to real nodes (libp2p on
//! 127.0.0.1, RocksDB in temp dirs), and that each attack is contained. Every refusal is
//! counted exactly, and every forgery is signed validly by a key that is not the owner's.

use std::time::Duration;

use futures::StreamExt as _;
use support::{data, network, put, store_request, until};
use zhtp::network::Node;
use zhtp_content::EncryptionLevel;
use zhtp_dht::record::{self, Envelope, MAX_VALUE, RecordError};
use zhtp_types::Hash;

#[path = "support/net.rs"]
mod support;

const TTL: Duration = Duration::from_secs(3600);

fn manifest_key(h: &Hash) -> Vec<u8> {
    [b"zhtp/m/".as_slice(), h.as_bytes()].concat()
}

async fn refused(node: &Node) -> u64 {
    node.dht().status().await.unwrap().refused_records
}

/// Waits until every node holds the record under `key`, so the test does not race the put's
/// replication (a put returns at quorum one).
async fn everyone_holds(nodes: &[Node], key: &[u8]) {
    for n in nodes {
        until("the record to reach every node", [n], || async {
            n.dht().local_record(key).await.unwrap().is_some()
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_inconsistent_and_oversize_records_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (nodes, _) = network(&tmp, 3).await;
    let bytes = data(100_000, 3);
    let real = put(&nodes[0], &tmp, &bytes, EncryptionLevel::None).await;
    let kp = nodes[0].dht().keypair().clone();
    let seal = |key: &[u8], payload: Vec<u8>| record::seal(&kp, key, payload, 1, TTL).unwrap();

    // (1) A real manifest with a broken signature, under a content hash it does not match.
    let key1 = manifest_key(&Hash([9; 32]));
    let mut r1 = seal(&key1, real.manifest.encode());
    let mut env: Envelope = postcard::from_bytes(&r1.value).unwrap();
    env.signature[0] ^= 1;
    r1.value = postcard::to_allocvec(&env).unwrap();
    // (2) Correctly signed, but the payload is not a manifest of that content.
    let key2 = manifest_key(&Hash([8; 32]));
    let r2 = seal(&key2, real.manifest.encode());
    // (3) Oversize.
    let key3 = manifest_key(&Hash([7; 32]));
    let mut r3 = seal(&key3, vec![1]);
    r3.value = vec![0; MAX_VALUE + 1];
    // (4) Correctly signed under its own content, but its numbers would make a reader reserve
    // 1 GiB for one segment (k = 254, 4 MiB shards: under the network's shard limit, so only
    // the manifest's consistency checks stand in the way).
    let mut giant = real.manifest.clone();
    giant.content_hash = Hash([6; 32]);
    giant.code.data = 254;
    giant.code.parity = 1;
    for s in &mut giant.segments {
        s.shard_len = 4 << 20;
        s.shards.resize(255, Hash([0; 32]));
    }
    let key4 = manifest_key(&giant.content_hash);
    let r4 = seal(&key4, giant.encode());

    for r in [r1, r2, r3, r4] {
        // Sent as is to the other nodes (not stored by the sender).
        let _ = nodes[0].dht().put_raw_record(r).await;
    }
    // Each of the two other nodes refuses each of the four: exactly four each.
    for n in &nodes[1..] {
        until("four refusals", [n], || async { refused(n).await >= 4 }).await;
    }
    for key in [&key1, &key2, &key3, &key4] {
        for n in &nodes[1..] {
            assert!(n.dht().local_record(key).await.unwrap().is_none());
        }
        // And a lookup finds nothing valid anywhere.
        assert!(nodes[2].dht().get_record(key).await.is_err());
    }
    for n in &nodes[1..] {
        assert_eq!(refused(n).await, 4);
    }
    // The genuine record is still there and valid everywhere.
    let genuine = manifest_key(&real.manifest.content_hash);
    assert!(nodes[2].dht().get_record(&genuine).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_signed_by_another_key_never_replaces_the_owners() {
    let tmp = tempfile::tempdir().unwrap();
    let (nodes, _) = network(&tmp, 3).await;
    let bytes = data(3 << 20, 11);
    let real = put(&nodes[0], &tmp, &bytes, EncryptionLevel::None).await;
    let hash = real.manifest.content_hash;
    let key = manifest_key(&hash);
    everyone_holds(&nodes, &key).await;
    let owner = nodes[0].peer_id();

    // Node 1 is the forger: a consistent manifest of the same content, under the right key,
    // validly signed by its own key, with a higher sequence number than the owner's.
    let mut forged = real.manifest.clone();
    forged.metadata.name = Some("forged".into());
    let forger = nodes[1].dht().keypair().clone();
    let r = record::seal(&forger, &key, forged.encode(), u64::MAX, TTL).unwrap();
    let before: Vec<u64> = futures::future::join_all(nodes.iter().map(refused)).await;
    nodes[1].dht().put_raw_record(r).await.ok();
    // Publishing it the ordinary way is refused by the forger's own node too.
    match nodes[1].dht().publish(&key, forged.encode(), TTL).await {
        Err(zhtp_dht::Error::Record(RecordError::NotOwner { owner: o, .. })) => {
            assert_eq!(*o, owner)
        }
        other => panic!("the forger's own node published over the owner: {other:?}"),
    }
    for i in [0, 2] {
        until("the forged record's refusal", [&nodes[i]], || async {
            refused(&nodes[i]).await > before[i]
        })
        .await;
        assert_eq!(refused(&nodes[i]).await, before[i] + 1);
    }
    // Every node still holds the owner's record, and reads the content right.
    for n in &nodes {
        let held = n.dht().local_record(&key).await.unwrap().unwrap();
        assert_eq!(record::open(&held, None).unwrap().publisher, owner);
        let got = n.dht().get_record(&key).await.unwrap();
        assert_eq!(got.publisher, owner);
        assert!(n.get_bytes(&hash, None).await.unwrap() == bytes);
    }
    // The owner itself can still publish a newer version.
    nodes[0]
        .dht()
        .publish(&key, real.manifest.encode(), TTL)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poisoned_manifest_never_yields_the_wrong_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let (nodes, _) = network(&tmp, 3).await;
    // The forger encodes its own bytes X, stores their shards on an honest node filed under
    // the hash of Y (content nobody has stored yet, so the forger is its first publisher), and
    // publishes X's manifest under Y's hash. No encryption, so no key stands between the
    // forged shards and the reader: every shard verifies against the forged manifest.
    let x = data(3 << 20, 21);
    let y = data(3 << 20, 23);
    let target = Hash(*blake3::hash(&y).as_bytes());
    let o = support::opts(EncryptionLevel::None);
    let params = zhtp_content::Params {
        tier: o.tier,
        encryption: o.encryption,
        code: o.code,
        segment_size: o.segment_size,
    };
    let enc = zhtp_content::Encoder::new(params, None).unwrap();
    let mut infos = Vec::new();
    for (i, chunk) in x.chunks(o.segment_size as usize).enumerate() {
        let seg = enc.encode_segment(i as u32, chunk).unwrap();
        for (j, (hash, bytes)) in seg.shards().enumerate() {
            let store = zhtp_dht::Request::Store {
                content: target,
                segment: i as u32,
                index: j as u16,
                hash,
                data: bytes.to_vec(),
            };
            let r = nodes[1].dht().request(nodes[0].peer_id(), store).await;
            assert!(matches!(r, Ok(zhtp_dht::Response::Stored)), "{r:?}");
        }
        infos.push(seg.info);
    }
    let poisoned = enc.manifest(target, x.len() as u64, infos, Default::default());
    nodes[1]
        .dht()
        .publish(&manifest_key(&target), poisoned.encode(), TTL)
        .await
        .unwrap();

    let reader = &nodes[2];
    let (m, stream) = reader.get(&target, None).await.unwrap();
    let mut stream = Box::pin(stream);
    let mut delivered = 0u64;
    let mut failure = None;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(b) => delivered += b.len() as u64,
            Err(e) => failure = Some(e),
        }
    }
    // The stream ends in the content-hash error, before the announced length is reached, so
    // a client that counts bytes (HTTP Content-Length) sees a failed transfer.
    match failure {
        Some(zhtp::network::Error::Content(zhtp_content::Error::ContentHash {
            expected, ..
        })) => assert_eq!(expected, target),
        other => panic!("expected a content hash error, got {other:?}"),
    }
    assert!(
        delivered < m.size,
        "{delivered} of {} bytes delivered",
        m.size
    );
    // Nothing unverified was kept.
    assert!(reader.local().manifest(&target).unwrap().is_none());
}

/// Bytes in the pack files of a node's store.
fn pack_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir.join("store").join("packs"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// A node with `quota` per peer on `dir`, and an attacker node connected to it.
async fn victim_and_attacker(
    tmp: &tempfile::TempDir,
    dir: &std::path::Path,
    quota: zhtp::network::Quota,
) -> (Node, Node) {
    let victim = start_victim(dir, quota).await;
    let boot = victim.dht().dialable(2).await.unwrap();
    let attacker = support::start(&tmp.path().join("attacker"), boot).await;
    support::connected(&attacker, 1).await;
    (victim, attacker)
}

async fn start_victim(dir: &std::path::Path, quota: zhtp::network::Quota) -> Node {
    let repair = zhtp::network::RepairConfig::default();
    Node::start_with(dir, support::config(vec![]), repair, quota)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_cannot_store_past_its_quota_nor_append_a_shard_twice() {
    use zhtp::network::Quota;
    use zhtp_dht::Response;
    let tmp = tempfile::tempdir().unwrap();
    let quota = Quota {
        bytes: 1 << 20,
        shards: 5,
    };
    let victim_dir = tmp.path().join("victim");
    let (victim, attacker) = victim_and_attacker(&tmp, &victim_dir, quota).await;
    let me = attacker.peer_id();
    let store = |req| {
        let (dht, to) = (attacker.dht().clone(), victim.peer_id());
        async move { dht.request(to, req).await.unwrap() }
    };
    let nth = |i: u64| store_request(Hash([0; 32]), i as u32, 1001 + 2 * i);

    // Five shards of 100 kB fit (the shard limit), the sixth does not.
    for i in 0..5 {
        assert!(matches!(store(nth(i)).await, Response::Stored));
    }
    assert_eq!(victim.admission().usage(&me), (500_000, 5));
    match store(nth(5)).await {
        Response::Refused(why) => assert!(why.contains("quota exceeded"), "{why}"),
        other => panic!("the sixth shard was not refused: {other:?}"),
    }
    assert_eq!(victim.admission().usage(&me), (500_000, 5));

    // A shard already held is acknowledged, costs nothing and is not written again.
    let packs = pack_bytes(&victim_dir);
    for _ in 0..3 {
        assert!(matches!(store(nth(0)).await, Response::Stored));
    }
    assert_eq!(pack_bytes(&victim_dir), packs);
    assert_eq!(victim.admission().usage(&me), (500_000, 5));

    // Bytes the node already has, at a new position: no bytes appended, but the position is
    // the peer's to pay for, and the quota is full.
    match store(store_request(Hash([2; 32]), 0, 1001)).await {
        Response::Refused(why) => assert!(why.contains("quota exceeded"), "{why}"),
        other => panic!("a free position was given: {other:?}"),
    }
    assert_eq!(pack_bytes(&victim_dir), packs);

    // The count survives a restart: the quota is not reset by restarting the victim.
    victim.stop().await;
    let victim = start_victim(&victim_dir, quota).await;
    assert_eq!(victim.admission().usage(&me), (500_000, 5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_byte_quota_refuses_the_shard_that_would_cross_it() {
    use zhtp::network::Quota;
    use zhtp_dht::Response;
    let tmp = tempfile::tempdir().unwrap();
    let quota = Quota {
        bytes: 250_000,
        shards: 100,
    };
    let (victim, attacker) = victim_and_attacker(&tmp, &tmp.path().join("v"), quota).await;
    let mut answers = Vec::new();
    for i in 0..3u64 {
        let req = store_request(Hash([1; 32]), i as u32, 2001 + 2 * i);
        answers.push(attacker.dht().request(victim.peer_id(), req).await.unwrap());
    }
    assert!(matches!(answers[0], Response::Stored));
    assert!(matches!(answers[1], Response::Stored));
    assert!(matches!(&answers[2], Response::Refused(w) if w.contains("quota exceeded")));
    assert_eq!(victim.admission().usage(&attacker.peer_id()), (200_000, 2));
}
