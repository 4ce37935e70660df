//! The zhtp network layer on rust-libp2p.
//!
//! - Kademlia (k = 20, XOR metric) for routing, peer discovery, provider records and signed
//!   records ([`record`]), its store persistent on RocksDB ([`persist`]);
//! - identify, and ping (round-trip times, used to prefer fast holders);
//! - QUIC over UDP, and TCP with Noise + Yamux as the fallback;
//! - `/zhtp/shard/1` ([`protocol`]): store, fetch and list shards, every message size-limited.
//!
//! [`Dht`] is the cloneable handle; one task owns the swarm. What to store where, retrieval and
//! repair are the node's business (`zhtp::network`), not this crate's.

pub mod gate;
pub mod network;
pub mod persist;
pub mod protocol;
pub mod record;

pub use libp2p::identity::Keypair;
pub use libp2p::{Multiaddr, PeerId};
pub use network::{Config, Dht, Error, Inbound, REPLICAS, Responder, Status};
pub use protocol::{Held, Request, Response};
