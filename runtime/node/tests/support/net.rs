//! Shared by the network tests: real nodes (libp2p on 127.0.0.1, RocksDB in temp dirs).
#![allow(dead_code)] // each test file uses its own part

use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use tempfile::TempDir;
use zhtp::local::PutOptions;
use zhtp::network::{Node, RepairConfig};
use zhtp_content::{ContentKey, EncryptionLevel};
use zhtp_dht::{Config, Multiaddr};
use zhtp_identity::Identity;
use zhtp_types::StorageTier;

pub fn config(bootstrap: Vec<Multiaddr>) -> Config {
    let mut cfg = Config::default();
    cfg.listen = vec![
        "/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap(),
        "/ip4/127.0.0.1/tcp/0".parse().unwrap(),
    ];
    cfg.bootstrap = bootstrap;
    cfg
}

pub async fn start(dir: &Path, bootstrap: Vec<Multiaddr>) -> Node {
    start_with(dir, bootstrap, RepairConfig::default()).await
}

pub async fn start_with(dir: &Path, bootstrap: Vec<Multiaddr>, repair: RepairConfig) -> Node {
    Node::start(dir, config(bootstrap), repair).await.unwrap()
}

/// Waits until `node` has `n` peers; fails the test (instead of hanging it) after 60 s.
pub async fn connected(node: &Node, n: usize) {
    tokio::time::timeout(Duration::from_secs(60), node.dht().wait_connected(n))
        .await
        .unwrap_or_else(|_| panic!("{} never reached {n} peers", node.peer_id()))
        .unwrap();
}

/// `n` nodes, all bootstrapped from the first, each connected to every other.
pub async fn network(tmp: &TempDir, n: usize) -> (Vec<Node>, Vec<Multiaddr>) {
    network_with(tmp, n, RepairConfig::default()).await
}

/// [`network`] with these repair settings on every node.
pub async fn network_with(
    tmp: &TempDir,
    n: usize,
    repair: RepairConfig,
) -> (Vec<Node>, Vec<Multiaddr>) {
    let first = start_with(&tmp.path().join("node-0"), vec![], repair).await;
    let boot = first.dht().dialable(2).await.unwrap();
    let mut nodes = vec![first];
    for i in 1..n {
        let dir = tmp.path().join(format!("node-{i}"));
        nodes.push(start_with(&dir, boot.clone(), repair).await);
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

pub fn data(len: usize, seed: u64) -> Vec<u8> {
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

/// The owner of every encrypted content these tests put (no node keeps a content key).
pub fn owner() -> &'static Identity {
    static OWNER: OnceLock<Identity> = OnceLock::new();
    OWNER.get_or_init(|| Identity::generate().unwrap())
}

/// The content key of what `stored` put, as [`owner`] unwraps it (`None` when not encrypted).
pub fn key(stored: &zhtp::network::Stored) -> Option<ContentKey> {
    match stored.manifest.encryption.level {
        EncryptionLevel::None => None,
        _ => Some(zhtp::readers::unwrap(&stored.manifest, owner()).unwrap()),
    }
}

pub fn opts(encryption: EncryptionLevel) -> PutOptions {
    let mut o = PutOptions::new(StorageTier::Hot); // 4+2
    o.encryption = encryption;
    o.segment_size = 1 << 20;
    if encryption != EncryptionLevel::None {
        o.readers = vec![owner().public()];
    }
    o
}

pub async fn put(
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

/// Waits (at most 30 s) until `f` holds, reading it again each time one of `nodes` reports a
/// change ([`Node::changes`]: a shard stored, a record stored or refused, a connection opened
/// or closed); fails the test otherwise.
pub async fn until<'a, F, Fut>(what: &str, nodes: impl IntoIterator<Item = &'a Node>, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    // Subscribed before the first look: a change between the look and the wait is not missed.
    let mut changes: Vec<_> = nodes.into_iter().map(Node::changes).collect();
    let wait = async {
        while !f().await {
            let any =
                futures::future::select_all(changes.iter_mut().map(|c| Box::pin(c.changed())));
            if any.await.0.is_err() {
                panic!("a node stopped while waiting for {what}");
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

/// A store of 100 kB made from `seed` (odd seeds give distinct bytes) at `segment` of `content`.
pub fn store_request(content: zhtp_types::Hash, segment: u32, seed: u64) -> zhtp_dht::Request {
    let data = data(100_000, seed);
    zhtp_dht::Request::Store {
        content,
        segment,
        index: 0,
        hash: zhtp_types::Hash(*blake3::hash(&data).as_bytes()),
        data,
    }
}

/// A tier plugin answering every call with `choice`: tier, k and m, one byte each as WAT string
/// escapes (SPEC.md 13.3), e.g. `"\\03\\03\\03"` for archive at 3+3.
pub fn tier_answering(choice: &str) -> zhtp_host::TierPlugin {
    let host = zhtp_host::Host::new(zhtp_host::Limits::default()).unwrap();
    let wat = format!(
        r#"(module
        (import "zhtp:env/v1" "output_set" (func $out (param i32 i32) (result i32)))
        (memory (export "memory") 1)
        (data (i32.const 0) "{choice}")
        (func (export "zhtp_abi_v1"))
        (func (export "tier_choose") (result i32)
            (drop (call $out (i32.const 0) (i32.const 3))) (i32.const 0)))"#
    );
    let plugin = host
        .load(zhtp_host::Kind::Tier, &wat::parse_str(&wat).unwrap())
        .unwrap();
    zhtp_host::TierPlugin::new(plugin)
}
