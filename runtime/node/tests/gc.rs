//! Garbage collection on real nodes (libp2p on 127.0.0.1, RocksDB in temp dirs): removed
//! content, junk stored by a peer, re-puts with a new key, and compaction of a running node's
//! own packs.

use std::time::Duration;

use support::{data, network_with, put, store_request, until};
use zhtp::local::{LocalNode, PutOptions};
use zhtp::network::{Node, Quota, RepairConfig};
use zhtp_content::EncryptionLevel;
use zhtp_dht::Response;
use zhtp_store::Cf;
use zhtp_types::{Hash, StorageTier};

#[path = "support/net.rs"]
mod support;

fn grace(secs: u64) -> RepairConfig {
    RepairConfig {
        orphan_grace: Duration::from_secs(secs),
        ..RepairConfig::default()
    }
}

/// Waits until every node holds a record under `content`'s manifest key with this payload: a
/// publish returns at quorum one, the other nodes get theirs a moment later.
async fn everyone_holds(nodes: &[Node], content: &Hash, payload: &[u8]) {
    let key = [b"zhtp/m/".as_slice(), content.as_bytes()].concat();
    for n in nodes {
        until("the record to reach every node", [n], || async {
            let held = n.dht().local_record(&key).await.unwrap();
            held.is_some_and(|r| {
                zhtp_dht::record::open(&r, None).is_ok_and(|o| o.payload == payload)
            })
        })
        .await;
    }
}

fn shard_count(local: &LocalNode) -> usize {
    local.store().scan(Cf::Shards, &[]).unwrap().count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_no_manifest_references_is_released_after_the_grace_period_and_real_content_stays() {
    let tmp = tempfile::tempdir().unwrap();
    let victim_dir = tmp.path().join("victim");
    let quota = Quota::default();
    let victim = Node::start_with(&victim_dir, support::config(vec![]), grace(3600), quota)
        .await
        .unwrap();
    let boot = victim.dht().dialable(2).await.unwrap();
    let peer = support::start(&tmp.path().join("peer"), boot.clone()).await;
    support::connected(&peer, 1).await;

    // Real content, put through the peer: its shards land on both nodes, its manifest is
    // published.
    let bytes = data(3 << 20, 7);
    let real = put(&peer, &tmp, &bytes, EncryptionLevel::Standard).await;
    let content = real.manifest.content_hash;
    let real_positions = victim.inventory(&content).unwrap().len();
    assert!(real_positions > 0);
    // Junk: shards under a label nobody published, and one under the real content's label
    // at a place its manifest does not have.
    let to = victim.peer_id();
    for i in 0..4u64 {
        let r = peer
            .dht()
            .request(to, store_request(Hash([9; 32]), i as u32, 101 + 2 * i))
            .await
            .unwrap();
        assert!(matches!(r, Response::Stored), "{r:?}");
    }
    let r = peer
        .dht()
        .request(to, store_request(content, 999, 201))
        .await
        .unwrap();
    assert!(matches!(r, Response::Stored), "{r:?}");
    let me = peer.peer_id();
    let (used_bytes, used_shards) = victim.admission().usage(&me);
    assert_eq!(used_shards, real_positions as u64 + 5);

    // Within the grace period: found, not deleted.
    let r = victim.collect().await.unwrap();
    assert_eq!((r.contents, r.undecided), (2, 0), "{r:?}");
    assert_eq!((r.unreferenced, r.released), (5, 0), "{r:?}");
    assert_eq!(victim.admission().usage(&me), (used_bytes, used_shards));

    // Past it (the node restarted with no grace; the first sighting was noted on disk).
    victim.stop().await;
    let victim = Node::start_with(
        &victim_dir,
        support::config(boot_of(&peer).await),
        grace(0),
        quota,
    )
    .await
    .unwrap();
    support::connected(&victim, 1).await;
    let packs_before = pack_bytes(&victim_dir);
    let r = victim.collect().await.unwrap();
    assert_eq!((r.unreferenced, r.released), (5, 5), "{r:?}");
    assert_eq!(r.shards_deleted, 5, "{r:?}");
    assert_eq!(r.bytes_deleted, 500_000, "{r:?}");
    // The peer's quota is given back exactly.
    assert_eq!(
        victim.admission().usage(&me),
        (used_bytes - 500_000, used_shards - 5)
    );
    assert_eq!(victim.inventory(&Hash([9; 32])).unwrap().len(), 0);
    assert_eq!(victim.inventory(&content).unwrap().len(), real_positions);
    // A second round finds nothing more to do.
    let r = victim.collect().await.unwrap();
    assert_eq!((r.unreferenced, r.released), (0, 0), "{r:?}");
    // The real content is whole, read through the victim.
    let got = victim
        .get_bytes(&content, support::key(&real))
        .await
        .unwrap();
    assert!(got == bytes);

    // The running node gives the junk's disk space back, its own packs included.
    let store = victim.local().store();
    store.seal_packs(0);
    let c = store.compact_packs(1.0).unwrap();
    assert!(c.packs_removed >= 1, "{c:?}");
    assert!(pack_bytes(&victim_dir) < packs_before, "{c:?}");
    let got = victim
        .get_bytes(&content, support::key(&real))
        .await
        .unwrap();
    assert!(got == bytes);
}

async fn boot_of(node: &Node) -> Vec<zhtp_dht::Multiaddr> {
    node.dht().dialable(2).await.unwrap()
}

fn pack_bytes(dir: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::read_dir(dir.join("store").join("packs"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().blocks() * 512)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_content_is_withdrawn_and_every_holder_releases_its_shards() {
    let tmp = tempfile::tempdir().unwrap();
    let (nodes, _) = network_with(&tmp, 3, grace(0)).await;
    let bytes = data(2 << 20, 11);
    let stored = put(&nodes[0], &tmp, &bytes, EncryptionLevel::Standard).await;
    let hash = stored.manifest.content_hash;
    everyone_holds(&nodes, &hash, &stored.manifest.encode()).await;
    // Referenced: even with no grace period, collection leaves it alone.
    for n in &nodes[1..] {
        let r = n.collect().await.unwrap();
        assert_eq!((r.unreferenced, r.released), (0, 0), "{r:?}");
        assert!(!n.inventory(&hash).unwrap().is_empty());
    }

    let r = nodes[0].remove(&hash).await.unwrap();
    assert!(r.withdrawn, "{r:?}");
    everyone_holds(&nodes, &hash, &[]).await;
    assert!(r.shards_deleted > 0, "{r:?}");
    assert_eq!(nodes[0].held_totals().unwrap(), (0, 0));
    assert!(nodes[0].local().list(None).unwrap().is_empty());
    assert!(nodes[0].local().manifest(&hash).unwrap().is_none());
    // Not put here (any more): refused, with which error.
    assert!(matches!(
        nodes[0].remove(&hash).await,
        Err(zhtp::network::Error::NotFound(h)) if h == hash
    ));

    for n in &nodes[1..] {
        let held = n.inventory(&hash).unwrap().len();
        let r = n.collect().await.unwrap();
        assert_eq!((r.unreferenced, r.released), (held, held), "{r:?}");
        assert_eq!(n.held_totals().unwrap(), (0, 0));
        assert_eq!(shard_count(n.local()), 0);
        // The tombstone reads as "not found", not as a manifest.
        assert!(matches!(
            n.get_bytes(&hash, support::key(&stored)).await,
            Err(zhtp::network::Error::NotFound(h)) if h == hash
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reput_with_a_new_key_leaves_no_old_shard_behind_on_any_holder() {
    let tmp = tempfile::tempdir().unwrap();
    let (nodes, _) = network_with(&tmp, 3, grace(0)).await;
    let bytes = data(1 << 20, 13);
    let first = put(&nodes[0], &tmp, &bytes, EncryptionLevel::Standard).await;
    let second = put(&nodes[0], &tmp, &bytes, EncryptionLevel::Standard).await;
    let hash = second.manifest.content_hash;
    assert_eq!(first.manifest.content_hash, hash);
    assert_ne!(first.manifest.segments, second.manifest.segments);
    let total = second.manifest.code.total();
    everyone_holds(&nodes, &hash, &second.manifest.encode()).await;
    for n in &nodes {
        n.collect().await.unwrap();
    }
    // Every holder keeps exactly the new manifest's shards.
    let new: std::collections::HashSet<Hash> =
        second.manifest.segments[0].shards.iter().copied().collect();
    let mut held = 0;
    for n in &nodes {
        for h in n.inventory(&hash).unwrap() {
            assert!(new.contains(&h.hash), "an old shard is still held");
            held += 1;
        }
        assert_eq!(shard_count(n.local()), n.inventory(&hash).unwrap().len());
    }
    assert_eq!(held, total);
    let got = nodes[2]
        .get_bytes(&hash, support::key(&second))
        .await
        .unwrap();
    assert!(got == bytes);
}

#[test]
fn a_local_rm_keeps_shards_another_content_shares_and_a_reput_drops_the_old_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let node = LocalNode::open(tmp.path(), zhtp_store::Config::default()).unwrap();
    let mut opts = PutOptions::new(StorageTier::Hot);
    opts.encryption = EncryptionLevel::None;
    opts.segment_size = 1 << 20;
    // B's first segment is A: unencrypted, the same segment makes the same shards.
    let a = data(1 << 20, 17);
    let mut b = a.clone();
    b.extend(data(300_000, 19));
    let ma = node.put(&mut &a[..], opts.clone(), &|_| {}).unwrap();
    let mb = node.put(&mut &b[..], opts.clone(), &|_| {}).unwrap();
    assert_eq!(ma.segments[0].shards, mb.segments[0].shards);
    assert_eq!(shard_count(&node), 12);

    let r = node.remove(&ma.content_hash).unwrap();
    assert_eq!(r.shards, 0, "A's shards are B's too");
    let mut out = Vec::new();
    node.get(&mb.content_hash, &mut out, &|_| {}).unwrap();
    assert!(out == b);
    assert!(matches!(
        node.remove(&ma.content_hash),
        Err(zhtp::local::Error::NotFound(h)) if h == ma.content_hash
    ));

    // A re-put with a new key makes new shards; the old ones go in the same commit.
    let mut enc = opts.clone();
    enc.encryption = EncryptionLevel::Standard;
    enc.readers = vec![support::owner().public()];
    node.put(&mut &b[..], enc.clone(), &|_| {}).unwrap();
    assert_eq!(shard_count(&node), 12);
    node.put(&mut &b[..], enc, &|_| {}).unwrap();
    assert_eq!(shard_count(&node), 12);

    let r = node.remove(&mb.content_hash).unwrap();
    assert_eq!(r.shards, 12);
    assert_eq!(shard_count(&node), 0);
    assert!(node.list(None).unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reput_is_placed_when_every_node_holds_an_earlier_shard_at_some_place() {
    // Two nodes share the six places of a segment. A node refusing one shard because it still
    // holds the earlier put's shard there must still be offered the others, or the re-put finds
    // no node at all.
    let tmp = tempfile::tempdir().unwrap();
    let (nodes, _) = network_with(&tmp, 2, grace(0)).await;
    // Eight segments: each is a fresh chance for both nodes to refuse one of its shards.
    let bytes = data(8 << 20, 23);
    let first = put(&nodes[0], &tmp, &bytes, EncryptionLevel::Standard).await;
    for n in &nodes {
        assert!(
            !n.inventory(&first.manifest.content_hash)
                .unwrap()
                .is_empty()
        );
    }
    let second = put(&nodes[0], &tmp, &bytes, EncryptionLevel::Standard).await;
    everyone_holds(
        &nodes,
        &second.manifest.content_hash,
        &second.manifest.encode(),
    )
    .await;
    for n in &nodes {
        n.collect().await.unwrap();
    }
    let got = nodes[1]
        .get_bytes(&second.manifest.content_hash, support::key(&second))
        .await
        .unwrap();
    assert!(got == bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_peers_collects_nothing() {
    // Alone, every record lookup ends in "not found": that must not read as "removed".
    let tmp = tempfile::tempdir().unwrap();
    let victim = Node::start_with(
        &tmp.path().join("victim"),
        support::config(vec![]),
        grace(0),
        Quota::default(),
    )
    .await
    .unwrap();
    let boot = victim.dht().dialable(2).await.unwrap();
    let peer = support::start(&tmp.path().join("peer"), boot).await;
    support::connected(&peer, 1).await;
    let label = Hash([5; 32]);
    for i in 0..2u64 {
        let r = peer
            .dht()
            .request(
                victim.peer_id(),
                store_request(label, i as u32, 301 + 2 * i),
            )
            .await
            .unwrap();
        assert!(matches!(r, Response::Stored), "{r:?}");
    }
    peer.stop().await;
    until("the peer to leave", [&victim], || async {
        victim.dht().status().await.unwrap().connected.is_empty()
    })
    .await;
    let r = victim.collect().await.unwrap();
    assert_eq!((r.contents, r.undecided, r.released), (1, 1, 0), "{r:?}");
    assert_eq!(victim.inventory(&label).unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_of_content_another_node_published_is_refused_and_stores_nothing() {
    // Records are keyed by content: the second publisher's manifest could never be published,
    // and the holders would collect its shards. It is told so before anything is placed.
    let tmp = tempfile::tempdir().unwrap();
    let (nodes, _) = network_with(&tmp, 3, grace(0)).await;
    let bytes = data(2 << 20, 29);
    let first = put(&nodes[0], &tmp, &bytes, EncryptionLevel::Standard).await;
    let hash = first.manifest.content_hash;
    everyone_holds(&nodes, &hash, &first.manifest.encode()).await;
    let held = |nodes: &[Node]| -> usize {
        nodes
            .iter()
            .map(|n| n.inventory(&hash).unwrap().len())
            .sum()
    };
    let before = held(&nodes);
    let path = tmp.path().join("same-bytes");
    std::fs::write(&path, &bytes).unwrap();
    let err = nodes[1]
        .put_file(&path, support::opts(EncryptionLevel::Standard))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, zhtp::network::Error::Invalid(m) if m.contains("already published")),
        "{err}"
    );
    assert_eq!(held(&nodes), before);
    assert!(nodes[1].local().list(None).unwrap().is_empty());
    // The first publisher's content is untouched and collection keeps it.
    for n in &nodes {
        let r = n.collect().await.unwrap();
        assert_eq!(r.unreferenced, 0, "{r:?}");
    }
    let got = nodes[2]
        .get_bytes(&hash, support::key(&first))
        .await
        .unwrap();
    assert!(got == bytes);
}
