//! Real libp2p swarms on 127.0.0.1 (QUIC + TCP), real RocksDB stores: content spread over
//! nodes, retrieved with nodes down, repaired, and a node restarted from its data dir.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use tempfile::TempDir;
use zhtp::local::PutOptions;
use zhtp::network::{Node, RepairConfig};
use zhtp_content::EncryptionLevel;
use zhtp_dht::{Config, Multiaddr};
use zhtp_types::{Hash, StorageTier};

fn config(bootstrap: Vec<Multiaddr>) -> Config {
    let mut cfg = Config::default();
    cfg.listen = vec![
        "/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap(),
        "/ip4/127.0.0.1/tcp/0".parse().unwrap(),
    ];
    cfg.bootstrap = bootstrap;
    cfg
}

async fn start(dir: &Path, bootstrap: Vec<Multiaddr>) -> Node {
    Node::start(dir, config(bootstrap), RepairConfig::default())
        .await
        .unwrap()
}

/// Waits until `node` has `n` peers; fails the test (instead of hanging it) after 60 s.
async fn connected(node: &Node, n: usize) {
    tokio::time::timeout(Duration::from_secs(60), node.dht().wait_connected(n))
        .await
        .unwrap_or_else(|_| panic!("{} never reached {n} peers", node.peer_id()))
        .unwrap();
}

/// `n` nodes, all bootstrapped from the first, each connected to every other.
async fn network(tmp: &TempDir, n: usize) -> (Vec<Node>, Vec<Multiaddr>) {
    let first = start(&tmp.path().join("node-0"), vec![]).await;
    let boot = first.dht().dialable(2).await.unwrap();
    let mut nodes = vec![first];
    for i in 1..n {
        nodes.push(start(&tmp.path().join(format!("node-{i}")), boot.clone()).await);
    }
    for node in &nodes {
        // Kademlia's bootstrap connects each node to the others.
        let _ = node.dht().bootstrap().await;
    }
    for node in &nodes {
        connected(node, n - 1).await;
    }
    (nodes, boot)
}

fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if (i >> 16) % 2 == 0 {
                b'a' + (i % 7) as u8
            } else {
                x as u8
            }
        })
        .collect()
}

fn opts(encryption: EncryptionLevel) -> PutOptions {
    let mut o = PutOptions::new(StorageTier::Hot); // 4+2
    o.encryption = encryption;
    o.segment_size = 1 << 20;
    o
}

async fn put(
    node: &Node,
    dir: &TempDir,
    bytes: &[u8],
    enc: EncryptionLevel,
) -> zhtp::network::Stored {
    let path = dir
        .path()
        .join(format!("input-{}", blake3::hash(bytes).to_hex()));
    std::fs::write(&path, bytes).unwrap();
    node.put_file(&path, opts(enc)).await.unwrap()
}

async fn min_live(node: &Node, hash: &Hash) -> usize {
    let m = node.manifest(hash).await.unwrap();
    let (holders, _) = node.holders(hash).await.unwrap();
    (0..m.segments.len() as u32)
        .map(|s| {
            (0..m.code.total())
                .filter(|j| holders.get(&(s, *j as u16)).is_some_and(|h| !h.is_empty()))
                .count()
        })
        .min()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_six_nodes_any_two_can_be_down() {
    let tmp = tempfile::tempdir().unwrap();
    let (nodes, _) = network(&tmp, 6).await;
    let mut nodes: Vec<Option<Node>> = nodes.into_iter().map(Some).collect();
    let bytes = data(3 << 20, 4);
    let stored = put(
        nodes[0].as_ref().unwrap(),
        &tmp,
        &bytes,
        EncryptionLevel::Standard,
    )
    .await;
    let hash = stored.manifest.content_hash;
    // Every pair of the 6 nodes, for real: stop both, read through another, restart both.
    for a in 0..6 {
        for b in a + 1..6 {
            for i in [a, b] {
                nodes[i].take().unwrap().stop().await;
            }
            let reader = (0..6).find(|i| *i != a && *i != b).unwrap();
            let reader = nodes[reader].as_ref().unwrap();
            match reader.get_bytes(&hash, stored.key.clone()).await {
                Ok(got) => assert!(got == bytes, "nodes {a} and {b} down: wrong bytes"),
                Err(e) => panic!("nodes {a} and {b} down: {e}"),
            }
            let boot = reader.dht().dialable(2).await.unwrap();
            for i in [a, b] {
                nodes[i] = Some(start(&tmp.path().join(format!("node-{i}")), boot.clone()).await);
            }
            for n in nodes.iter().flatten() {
                connected(n, 5).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_survives_nodes_going_down_and_repair_restores_redundancy() {
    let tmp = tempfile::tempdir().unwrap();
    // 8 nodes: after 2 are lost, repair needs nodes that hold nothing of a segment to put the
    // rebuilt shards on, so that 2 *more* can then be lost.
    let (mut nodes, _) = network(&tmp, 8).await;
    let bytes = data(6 << 20, 1);
    let stored = put(&nodes[0], &tmp, &bytes, EncryptionLevel::Standard).await;
    let hash = stored.manifest.content_hash;
    let key = stored.key.clone();
    assert!(
        stored.published,
        "the manifest record reached no other node"
    );
    assert_eq!(stored.manifest.segments.len(), 6);
    // Every segment's 6 shards are on 6 distinct nodes: any 2 nodes down leave >= 4 = k.
    for (s, holders) in stored.placement.iter().enumerate() {
        let distinct: HashSet<_> = holders.iter().collect();
        assert_eq!(distinct.len(), 6, "segment {s} has two shards on one node");
    }

    // Through a node that took part in nothing but storing shards.
    assert_eq!(nodes[7].get_bytes(&hash, key.clone()).await.unwrap(), bytes);
    // Without the key, an encrypted content cannot be read through another node.
    assert!(matches!(
        nodes[7].get_bytes(&hash, None).await,
        Err(zhtp::network::Error::NoKey(_))
    ));

    // Two nodes holding shards go down.
    let holders: HashSet<_> = stored.placement.concat().into_iter().collect();
    let down: Vec<usize> = (1..8)
        .filter(|i| holders.contains(&nodes[*i].peer_id()))
        .take(2)
        .collect();
    assert_eq!(down.len(), 2);
    for i in down.iter().rev() {
        nodes.remove(*i).stop().await;
    }
    let reader = nodes.last().unwrap();
    assert_eq!(reader.get_bytes(&hash, key.clone()).await.unwrap(), bytes);
    assert!(min_live(reader, &hash).await < 6);

    // Repair on every live node: exactly the leaders act, and full redundancy is back.
    let mut rebuilt = 0;
    let mut deferred = 0;
    for n in &nodes {
        let r = n.repair().await.unwrap();
        assert_eq!(r.unrecoverable, 0);
        rebuilt += r.rebuilt;
        deferred += r.deferred;
    }
    assert!(rebuilt > 0, "nothing was rebuilt");
    assert!(deferred > 0, "no node left a segment to its leader");
    assert_eq!(min_live(reader, &hash).await, 6);
    // A second round finds nothing to do: repair is deduplicated, not repeated.
    for n in &nodes {
        assert_eq!(n.repair().await.unwrap().rebuilt, 0);
    }

    // Two more nodes go down (not the reader): still retrievable.
    for i in [2usize, 1] {
        nodes.remove(i).stop().await;
    }
    let reader = nodes.last().unwrap();
    assert_eq!(reader.get_bytes(&hash, key).await.unwrap(), bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_still_serves_its_shards_and_records() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut nodes, boot) = network(&tmp, 3).await;
    let bytes = data(3 << 20, 2);
    let stored = put(&nodes[0], &tmp, &bytes, EncryptionLevel::None).await;
    let hash = stored.manifest.content_hash;
    let record_key = [b"zhtp/m/".as_slice(), hash.as_bytes()].concat();
    // The put returns once one peer has stored the manifest record (quorum one); the other
    // may still be storing it. Restart one that has it.
    let mut with_record = None;
    for (i, node) in nodes.iter().enumerate().skip(1) {
        if node
            .dht()
            .local_record(&record_key)
            .await
            .unwrap()
            .is_some()
        {
            with_record = Some(i);
            break;
        }
    }
    let i = with_record.expect("no peer holds the manifest record the put published");
    let held_before = nodes[i].inventory(&hash).unwrap();
    assert!(!held_before.is_empty());

    let old_id = nodes[i].peer_id();
    nodes.remove(i).stop().await;
    let restarted = start(&tmp.path().join(format!("node-{i}")), boot).await;
    assert_eq!(restarted.peer_id(), old_id, "the node key was not kept");
    connected(&restarted, 1).await;
    // Records come back from its own RocksDB, before it has asked anyone.
    assert!(
        restarted
            .dht()
            .local_record(&record_key)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(restarted.inventory(&hash).unwrap(), held_before);
    // It serves: another node fetches through it, and it gets the content itself.
    assert_eq!(restarted.get_bytes(&hash, None).await.unwrap(), bytes);
    let shard = held_before[0].hash;
    let r = nodes[0]
        .dht()
        .request(old_id, zhtp_dht::Request::Fetch { hash: shard })
        .await
        .unwrap();
    assert!(
        matches!(r, zhtp_dht::Response::Shard(b) if blake3::hash(&b).as_bytes() == shard.as_bytes())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_oversize_records_are_refused() {
    use zhtp_dht::record::{self, Envelope, MAX_VALUE};
    let tmp = tempfile::tempdir().unwrap();
    let (nodes, _) = network(&tmp, 3).await;
    let bytes = data(100_000, 3);
    let real = put(&nodes[0], &tmp, &bytes, EncryptionLevel::None).await;
    let kp = nodes[0].dht().keypair().clone();

    // (1) A real manifest with a forged signature, under a content hash it does not match.
    let fake_hash = Hash([9; 32]);
    let key1 = [b"zhtp/m/".as_slice(), fake_hash.as_bytes()].concat();
    let mut r1 = record::seal(&kp, &key1, real.manifest.encode(), Duration::from_secs(60)).unwrap();
    let mut env: Envelope = postcard::from_bytes(&r1.value).unwrap();
    env.signature[0] ^= 1;
    r1.value = postcard::to_allocvec(&env).unwrap();
    // (2) Correctly signed, but the payload is not a manifest of that content.
    let key2 = [b"zhtp/m/".as_slice(), &[8; 32]].concat();
    let r2 = record::seal(&kp, &key2, real.manifest.encode(), Duration::from_secs(60)).unwrap();
    // (3) Oversize.
    let key3 = [b"zhtp/m/".as_slice(), &[7; 32]].concat();
    let mut r3 = record::seal(&kp, &key3, vec![1], Duration::from_secs(60)).unwrap();
    r3.value = vec![0; MAX_VALUE + 1];

    for r in [r1, r2, r3] {
        // Sent as is to the other nodes (not stored by the sender).
        let _ = nodes[0].dht().put_raw_record(r).await;
    }
    for key in [&key1, &key2, &key3] {
        for n in &nodes[1..] {
            assert!(n.dht().local_record(key).await.unwrap().is_none());
        }
        // And a lookup finds nothing valid anywhere.
        assert!(nodes[2].dht().get_record(key).await.is_err());
    }
    let refused: u64 = {
        let mut t = 0;
        for n in &nodes[1..] {
            t += n.dht().status().await.unwrap().refused_records;
        }
        t
    };
    assert!(refused >= 3, "only {refused} refusals counted");
    // The genuine record is still there and valid everywhere.
    let genuine = [b"zhtp/m/".as_slice(), real.manifest.content_hash.as_bytes()].concat();
    assert!(nodes[2].dht().get_record(&genuine).await.is_ok());
}
