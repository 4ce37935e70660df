//! 100 in-process nodes on libp2p's memory transport: how many hops a Kademlia lookup takes,
//! and how often it finds the true closest node.
//!
//! Two measurements over the same network. (1) Real `get_closest_peers` queries from random
//! nodes for random keys: success = the true closest node (known, since the test sees every
//! id) is in the answer; libp2p reports the number of requests sent. (2) Hops, which libp2p
//! does not report: the same iterative lookup (α = 3, k = 20) replayed over the routing tables
//! the nodes actually built, one hop per round of α parallel requests, until the true closest
//! node is in the shortlist.

use std::collections::{HashMap, HashSet};

use libp2p::kad::KBucketKey;
use zhtp_dht::{Config, Dht, Keypair, Multiaddr, PeerId};

const N: usize = 100;
const ALPHA: usize = 3;
const K: usize = 20;

async fn start(bootstrap: Vec<Multiaddr>) -> Dht {
    let mut cfg = Config::default();
    cfg.memory_transport = true;
    cfg.listen = vec!["/memory/0".parse().unwrap()];
    cfg.bootstrap = bootstrap;
    // Lookups dial most of the network; keep 10 000 idle connections from being pinged.
    cfg.ping_interval = std::time::Duration::from_secs(60);
    let (dht, mut inbound) = Dht::spawn(Keypair::generate_ed25519(), cfg, None)
        .await
        .unwrap();
    // No shard traffic in this test; drain anyway.
    tokio::spawn(async move { while inbound.recv().await.is_some() {} });
    dht
}

fn closest(peers: &[PeerId], target: &KBucketKey<Vec<u8>>, n: usize) -> Vec<PeerId> {
    let mut v: Vec<_> = peers
        .iter()
        .map(|p| (KBucketKey::from(*p).distance(target), *p))
        .collect();
    v.sort();
    v.into_iter().take(n).map(|(_, p)| p).collect()
}

/// Rounds of α parallel FIND_NODE requests until `goal` is in the shortlist.
fn hops(
    tables: &HashMap<PeerId, Vec<PeerId>>,
    start: PeerId,
    target: &KBucketKey<Vec<u8>>,
    goal: PeerId,
) -> Option<usize> {
    let mut shortlist = closest(&tables[&start], target, K);
    if shortlist.contains(&goal) {
        return Some(0);
    }
    let mut queried: HashSet<PeerId> = HashSet::from([start]);
    for round in 1..=20 {
        let ask: Vec<PeerId> = shortlist
            .iter()
            .filter(|p| !queried.contains(p))
            .take(ALPHA)
            .copied()
            .collect();
        if ask.is_empty() {
            return None;
        }
        let mut seen: Vec<PeerId> = shortlist.clone();
        for p in ask {
            queried.insert(p);
            seen.extend(closest(&tables[&p], target, K));
            seen.push(p);
        }
        seen.sort();
        seen.dedup();
        shortlist = closest(&seen, target, K);
        if shortlist.contains(&goal) {
            return Some(round);
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_in_a_100_node_network_take_about_log_n_hops() {
    let t0 = std::time::Instant::now();
    let first = start(vec![]).await;
    let boot = first.dialable(1).await.unwrap().remove(0);
    let mut nodes = vec![first];
    // The network grows one node at a time, each joining with a Kademlia bootstrap (a lookup of
    // its own id, then one per bucket) through node 0, as nodes join a real network.
    for _ in 1..N {
        let node = start(vec![boot.clone()]).await;
        node.wait_connected(1).await.unwrap();
        // A refresh step that times out is not this test's concern; the lookups below are.
        let _ = node.bootstrap().await;
        nodes.push(node);
    }
    let joined = t0.elapsed();
    let ids: Vec<PeerId> = nodes.iter().map(|n| n.peer_id()).collect();
    let mut tables = HashMap::new();
    for n in &nodes {
        tables.insert(n.peer_id(), n.routing_table().await.unwrap());
    }
    let mean_table = tables.values().map(Vec::len).sum::<usize>() as f64 / N as f64;

    let lookups = N;
    let (mut found, mut requests) = (0, 0u32);
    let mut hop_counts = Vec::new();
    for i in 0..lookups {
        let key = blake3::hash(format!("key {i}").as_bytes())
            .as_bytes()
            .to_vec();
        let target = KBucketKey::new(key.clone());
        let goal = closest(&ids, &target, 1)[0];
        let from = &nodes[(i * 37 + 11) % N];
        let (answer, sent) = from.closest_peers(key).await.unwrap();
        requests += sent;
        if answer.contains(&goal) || from.peer_id() == goal {
            found += 1;
        }
        if let Some(h) = hops(&tables, from.peer_id(), &target, goal) {
            hop_counts.push(h);
        }
    }
    let mean_hops = hop_counts.iter().sum::<usize>() as f64 / hop_counts.len().max(1) as f64;
    let max_hops = hop_counts.iter().copied().max().unwrap_or(0);
    println!(
        "{N} nodes, {lookups} lookups: success {found}/{lookups} ({:.0}%), hops mean {mean_hops:.2} max {max_hops} \
         (log2 N = {:.2}), {:.1} requests per lookup, routing table {mean_table:.1} peers on average; joining took {joined:.1?}",
        100.0 * found as f64 / lookups as f64,
        (N as f64).log2(),
        requests as f64 / lookups as f64,
    );
    // Kademlia's promise: the closest node is found, in O(log N) rounds.
    assert!(
        found * 100 >= lookups * 95,
        "only {found} of {lookups} lookups found the closest node"
    );
    assert_eq!(
        hop_counts.len(),
        lookups,
        "some replayed lookups never reached the closest node"
    );
    assert!(
        (max_hops as f64) <= (N as f64).log2().ceil(),
        "a lookup took {max_hops} hops in a {N}-node network"
    );
    for n in &nodes {
        n.shutdown().await;
    }
}
