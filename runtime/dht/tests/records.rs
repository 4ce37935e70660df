//! Record lookups on real swarms (libp2p's memory transport): a lookup answers with the newest
//! version of a record it finds, not with a stale copy it happens to hold itself.

use std::time::Duration;

use zhtp_dht::record::{self, Opened};
use zhtp_dht::{Config, Dht, Keypair, Multiaddr};

async fn start(bootstrap: Vec<Multiaddr>) -> Dht {
    let mut cfg = Config::default();
    cfg.memory_transport = true;
    cfg.listen = vec!["/memory/0".parse().unwrap()];
    cfg.bootstrap = bootstrap;
    let (dht, mut inbound) = Dht::spawn(Keypair::generate_ed25519(), cfg, None)
        .await
        .unwrap();
    tokio::spawn(async move { while inbound.recv().await.is_some() {} });
    dht
}

/// The version of the record under `key` that `node` holds itself, once it holds `seq`:
/// looked at again each time the node reports a change, for at most 30 s.
async fn holds(node: &Dht, key: &[u8], seq: u64) -> Opened {
    // Subscribed before the first look: a record stored in between is not missed.
    let mut changes = node.changes();
    let wait = async {
        loop {
            if let Some(r) = node.local_record(key).await.unwrap()
                && let Ok(o) = record::open(&r, None)
                && o.seq == seq
            {
                return o;
            }
            changes.changed().await.expect("the node stopped");
        }
    };
    tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .unwrap_or_else(|_| panic!("the record (seq {seq}) never arrived"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lookup_prefers_the_newest_version_over_its_own_stale_copy() {
    let a = start(vec![]).await;
    let boot = a.listening(1).await.unwrap();
    let b = start(boot.clone()).await;
    let c = start(boot).await;
    for n in [&a, &b, &c] {
        let _ = n.bootstrap().await;
    }
    for n in [&a, &b, &c] {
        tokio::time::timeout(Duration::from_secs(30), n.wait_connected(2))
            .await
            .expect("the three nodes never all met")
            .unwrap();
    }
    let publisher = Keypair::generate_ed25519();
    let key = b"zhtp/test/record".to_vec();
    let ttl = Duration::from_secs(3600);
    // Version 1 reaches a and c (sent by b, which does not keep what it sends raw).
    let v1 = record::seal(&publisher, &key, b"version 1".to_vec(), 1, ttl).unwrap();
    b.put_raw_record(v1).await.unwrap();
    holds(&a, &key, 1).await;
    holds(&c, &key, 1).await;
    // Version 2 reaches b and c (sent by a): a keeps its stale copy.
    let v2 = record::seal(&publisher, &key, b"version 2".to_vec(), 2, ttl).unwrap();
    a.put_raw_record(v2).await.unwrap();
    holds(&b, &key, 2).await;
    holds(&c, &key, 2).await;
    assert_eq!(holds(&a, &key, 1).await.payload, b"version 1");

    // a's lookup sees its own copy first, and the newer one from its peers.
    let got = a.get_record(&key).await.unwrap();
    assert_eq!((got.seq, got.payload.as_slice()), (2, &b"version 2"[..]));
}

/// A waiter on `changes` learns that the node stopped instead of waiting for ever, though it
/// still holds a handle (`Dht` keeps the event loop's sender only weakly).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_close_when_the_node_stops() {
    let a = start(vec![]).await;
    let mut changes = a.changes();
    a.shutdown().await;
    let closed = tokio::time::timeout(Duration::from_secs(30), changes.changed())
        .await
        .expect("the waiter was told within 30 s");
    assert!(closed.is_err(), "changes closed with the node");
    assert!(a.changes().changed().await.is_err(), "and stay closed");
    a.changed(); // a tick after the end is a no-op, not a panic
}
