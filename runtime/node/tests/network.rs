//! Real libp2p swarms on 127.0.0.1 (QUIC + TCP), real RocksDB stores: content spread over
//! nodes, retrieved with nodes down, repaired, and a node restarted from its data dir.

use std::collections::HashSet;

use support::{connected, data, network, put, start};
use zhtp::network::Node;
use zhtp_content::EncryptionLevel;
use zhtp_types::{Hash, StorageTier};

#[path = "support/net.rs"]
mod support;

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
            match reader.get_bytes(&hash, support::key(&stored)).await {
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
    let key = support::key(&stored);
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

/// The network put runs the same pipeline as the local one, with the same cancellation: when
/// no node takes any shard (here a lone node whose pack directory became a file), the put ends
/// with a placement error naming the failure and publishes nothing; it never hangs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_put_whose_every_placement_fails_ends_with_the_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("lone");
    let node = support::start(&dir, vec![]).await;
    let packs = dir.join("store").join("packs");
    std::fs::remove_dir_all(&packs).unwrap();
    std::fs::write(&packs, b"not a directory").unwrap();
    let input = tmp.path().join("input");
    std::fs::write(&input, support::data(16 << 20, 41)).unwrap();
    let put = node.put_file(&input, support::opts(EncryptionLevel::Standard));
    let err = tokio::time::timeout(std::time::Duration::from_secs(120), put)
        .await
        .expect("the put hung with every placement failing")
        .unwrap_err();
    assert!(
        matches!(&err, zhtp::network::Error::Placement { reason, .. }
            if reason.contains("Not a directory")),
        "{err}"
    );
    assert!(node.local().list(None).unwrap().is_empty());
}

/// A network get goes through the same read pipeline as a local one and, like it, writes back
/// what it had to rebuild: a data shard its holder says it lost is rebuilt from parity during
/// the get and, once the content verified, placed on a live node again (the node that lost it
/// may take it back: it still lists the position, and a store of the same shard heals the lost
/// bytes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_get_places_a_lost_shard_again() {
    use zhtp_store::Cf;
    let tmp = tempfile::tempdir().unwrap();
    let (nodes, _) = network(&tmp, 4).await;
    let bytes = data(600_000, 3);
    let stored = put(&nodes[0], &tmp, &bytes, EncryptionLevel::Standard).await;
    let hash = stored.manifest.content_hash;
    assert_eq!(stored.manifest.segments.len(), 1);
    let lost = stored.manifest.segments[0].shards[0];
    let holding = |nodes: &[Node]| {
        nodes
            .iter()
            .filter(|n| {
                n.local()
                    .store()
                    .contains(Cf::Shards, lost.as_bytes())
                    .unwrap()
            })
            .map(|n| n.peer_id())
            .collect::<Vec<_>>()
    };
    // Its only holder loses data shard 0 (it still lists it in its inventory, and still runs:
    // its answer to a fetch is "not here").
    let holder = stored.placement[0][0];
    assert_eq!(holding(&nodes), vec![holder]);
    let h = nodes.iter().find(|n| n.peer_id() == holder).unwrap();
    let mut b = h.local().store().batch();
    h.local()
        .store()
        .delete(&mut b, Cf::Shards, lost.as_bytes())
        .unwrap();
    h.local().store().write(b).unwrap();
    assert!(holding(&nodes).is_empty());

    let reader = nodes.iter().find(|n| n.peer_id() != holder).unwrap();
    assert_eq!(
        reader
            .get_bytes(&hash, support::key(&stored))
            .await
            .unwrap(),
        bytes
    );
    // Placed in the background once the content verified.
    support::until("the rebuilt shard to be placed again", &nodes, || {
        let n = holding(&nodes).len();
        async move { n == 1 }
    })
    .await;
}

/// A put that names no code is placed by the tier plugin with what the node sees: three nodes
/// known, so no code wider than three shards. A plugin that fails is passed over for the
/// built-in table, and the placement says so (SPEC R-tuse-fallback).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tier_plugin_places_puts_and_a_failing_one_is_passed_over() {
    let tmp = tempfile::tempdir().unwrap();
    let (nodes, _) = network(&tmp, 3).await;
    let p = nodes[0].placement(3 << 20, StorageTier::Warm).await;
    assert!(p.chosen_by.starts_with("tier-policy@"), "{p:?}");
    assert_eq!((p.nodes, p.tier), (3, StorageTier::Warm));
    assert!(u32::from(p.data) + u32::from(p.parity) <= 3, "{p:?}");
    // Repairs only on request here: a day assumed.
    assert_eq!(p.churn.repair_secs, 86_400);
    let wat = r#"(module (memory (export "memory") 1) (func (export "zhtp_abi_v1"))
        (func (export "tier_choose") (result i32) unreachable))"#;
    let host = zhtp_host::Host::new(zhtp_host::Limits::default()).unwrap();
    let trap = host
        .load(zhtp_host::Kind::Tier, &wat::parse_str(wat).unwrap())
        .unwrap();
    nodes[0].set_tier(zhtp_host::TierPlugin::new(trap));
    let p = nodes[0].placement(3 << 20, StorageTier::Warm).await;
    assert!(
        p.chosen_by
            .starts_with("built-in table (the tier plugin failed"),
        "{p:?}"
    );
    assert_eq!((p.tier, p.data, p.parity), (StorageTier::Warm, 4, 2));
}

/// A review moves content where the tier plugin says: re-coded by the node it was put through,
/// without its key (the bytes stay encrypted), published under the same address, readable
/// through any node, and left alone when asked again. A node that charges defers the move (no
/// one pays for the new shards). Reads through the node are counted for the plugin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_review_migrates_content_where_the_tier_plugin_says() {
    let tmp = tempfile::tempdir().unwrap();
    let (nodes, _) = network(&tmp, 6).await;
    let bytes = data(3 << 20, 9);
    let stored = put(&nodes[0], &tmp, &bytes, EncryptionLevel::Standard).await;
    let (hash, key) = (stored.manifest.content_hash, support::key(&stored));
    assert_eq!(nodes[0].reads(&hash).unwrap().last, 0);
    assert_eq!(nodes[0].get_bytes(&hash, key.clone()).await.unwrap(), bytes);
    let reads = nodes[0].reads(&hash).unwrap();
    assert!(
        reads.last > 0,
        "the read through the node it was put through is counted"
    );
    assert_eq!(reads.last_30_days(reads.last), 1);

    // The churn behind the review: five peers just seen, none gone, so the 90-day prior.
    nodes[0].observe_peers().await.unwrap();
    let churn = nodes[0].churn();
    assert_eq!(
        (churn.lifetime_secs, churn.departures_observed),
        (90 * 86_400, 0)
    );

    let answering = support::tier_answering;
    // Everything belongs in archive, 3+3.
    nodes[0].set_tier(answering("\\03\\03\\03"));

    nodes[0].charge(true);
    let r = nodes[0].review().await.unwrap();
    assert_eq!(
        (r.reviewed, r.deferred, r.migrated.len()),
        (1, 1, 0),
        "{r:?}"
    );
    nodes[0].charge(false);

    let r = nodes[0].review().await.unwrap();
    assert_eq!((r.reviewed, r.failed, r.migrated.len()), (1, 0, 1), "{r:?}");
    let moved = &r.migrated[0];
    assert_eq!(
        (moved.from_tier, moved.from_code.as_str()),
        (StorageTier::Hot, "4+2")
    );
    assert_eq!(
        (moved.to_tier, moved.to_code.as_str()),
        (StorageTier::Archive, "3+3")
    );
    // Another node finds the new manifest in the DHT and reads the content through it.
    let m = nodes[4].manifest(&hash).await.unwrap();
    assert_eq!(
        (m.tier, m.code.data, m.code.parity),
        (StorageTier::Archive, 3, 3)
    );
    assert_eq!(
        m.encryption, stored.manifest.encryption,
        "key and readers unchanged"
    );
    assert_eq!(nodes[4].get_bytes(&hash, key).await.unwrap(), bytes);
    // Asked again, the plugin's answer is what is stored: nothing moves.
    let r = nodes[0].review().await.unwrap();
    assert_eq!((r.reviewed, r.migrated.len()), (1, 0), "{r:?}");
    // The plugin changes its mind at once: the content was moved within the day, so the
    // move waits for a later review.
    nodes[0].set_tier(answering("\\02\\02\\02"));
    let r = nodes[0].review().await.unwrap();
    assert_eq!((r.later, r.migrated.len()), (1, 0), "{r:?}");
    // A migration made from a manifest that has changed since (a grant, a re-put; here the one
    // before the move) is dropped: what is stored wins.
    let code =
        zhtp_content::CodeParams::new(zhtp_content::CodeKind::ReedSolomonSimd, 2, 2).unwrap();
    let stale = nodes[0]
        .migrate(&stored.manifest, StorageTier::Cold, code)
        .await;
    assert!(
        matches!(&stale, Err(e) if e.to_string().contains("changed during its migration")),
        "{stale:?}"
    );
    assert_eq!(
        nodes[0].local().manifest(&hash).unwrap().unwrap().tier,
        StorageTier::Archive
    );
}
