//! The shard protocol between two real swarms on 127.0.0.1: an oversize message is refused
//! without killing the connection, and the same connection then serves normal requests.

use std::time::Duration;

use zhtp_dht::protocol::MAX_MESSAGE;
use zhtp_dht::{Config, Dht, Keypair, Request, Response};
use zhtp_types::Hash;

async fn node(listen: &str, max_message: usize, bootstrap: Vec<zhtp_dht::Multiaddr>) -> Dht {
    let mut cfg = Config::default();
    cfg.listen = vec![listen.parse().unwrap()];
    cfg.bootstrap = bootstrap;
    cfg.max_message = max_message;
    cfg.request_timeout = Duration::from_secs(20);
    let (dht, mut inbound) = Dht::spawn(Keypair::generate_ed25519(), cfg, None)
        .await
        .unwrap();
    // A tiny application: it holds nothing and stores nothing.
    tokio::spawn(async move {
        while let Some(i) = inbound.recv().await {
            let r = match i.request {
                Request::Store { .. } => Response::Stored,
                _ => Response::NotFound,
            };
            i.reply.send(r).await;
        }
    });
    dht
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_shard_is_refused_and_the_connection_keeps_serving_quic() {
    oversize("/ip4/127.0.0.1/udp/0/quic-v1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_shard_is_refused_and_the_connection_keeps_serving_tcp() {
    oversize("/ip4/127.0.0.1/tcp/0").await;
}

async fn oversize(listen: &str) {
    let small = node(listen, MAX_MESSAGE, vec![]).await;
    let boot = small.dialable(1).await.unwrap().remove(0);
    // The sender allows itself more than the receiver does.
    let big = node(listen, 4 * MAX_MESSAGE, vec![boot]).await;
    big.wait_connected(1).await.unwrap();
    // Both sides count the connection before the counts are taken: the dialed side may report
    // it a moment after the dialer (counted late, it looked like a second connection).
    small.wait_connected(1).await.unwrap();

    let data = vec![7u8; MAX_MESSAGE + 1];
    let store = Request::Store {
        content: Hash([1; 32]),
        segment: 0,
        index: 0,
        hash: Hash(*blake3::hash(&data).as_bytes()),
        data,
    };
    let opened = (
        small.status().await.unwrap().established,
        big.status().await.unwrap().established,
    );
    let err = big.request(small.peer_id(), store).await.unwrap_err();
    println!("oversize store: {err}");

    // Same peers, same connection: a normal request still works.
    let ok = big
        .request(
            small.peer_id(),
            Request::Fetch {
                hash: Hash([2; 32]),
            },
        )
        .await
        .unwrap();
    assert_eq!(ok, Response::NotFound);
    let small_data = vec![1u8; 1000];
    let ok = big
        .request(
            small.peer_id(),
            Request::Store {
                content: Hash([1; 32]),
                segment: 0,
                index: 1,
                hash: Hash(*blake3::hash(&small_data).as_bytes()),
                data: small_data,
            },
        )
        .await
        .unwrap();
    assert_eq!(ok, Response::Stored);
    let s = small.status().await.unwrap();
    assert_eq!(
        s.inbound_failures, 1,
        "the oversize stream was not counted once as refused"
    );
    assert!(s.connected.contains(&big.peer_id()));
    // No connection was opened since: the one that carried the oversize stream carried the
    // requests after it.
    assert_eq!(
        (s.established, big.status().await.unwrap().established),
        opened,
        "the connection did not survive"
    );
}
