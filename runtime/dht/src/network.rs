//! The swarm and its event loop, driven by a cloneable [`Dht`] handle.
//!
//! Actor style: one task owns the `Swarm`; the handle sends it commands over a bounded channel
//! and awaits the answer on a oneshot. Inbound shard requests go to the application on a
//! bounded channel as [`Inbound`] values; when the application falls behind, requests are
//! refused with `busy` at once instead of queueing without bound.

use std::collections::{HashMap, HashSet};
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use libp2p::core::transport::MemoryTransport;
use libp2p::core::{Transport as _, upgrade::Version};
use libp2p::identity::Keypair;
use libp2p::kad::{self, QueryId, Record, RecordKey};
use libp2p::multiaddr::Protocol;
use libp2p::request_response::InboundRequestId;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::NetworkBehaviour;
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, Swarm, connection_limits, identify,
    memory_connection_limits, noise, ping, tcp, yamux,
};
use thiserror::Error;
use tokio::sync::{mpsc, oneshot, watch};
use zhtp_store::Store;

use crate::gate::Gate;
use crate::persist::PersistentStore;
use crate::protocol::{self, Codec, Request, Response};
use crate::record::{self, Opened, RecordError, Validator};

mod commands;
mod event_loop;
mod events;
mod serving;

use event_loop::EventLoop;
use serving::Serving;

/// Kademlia's protocol name for zhtp networks (a different name keeps zhtp nodes out of other
/// libp2p DHTs and theirs out of ours).
pub const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/zhtp/kad/1");

/// Errors of network operations.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// Building the transport or listening failed.
    #[error("network setup: {0}")]
    Setup(String),
    /// The peer is known to be down (disconnected recently, or a dial failed).
    #[error("peer {0} is unreachable")]
    Unreachable(PeerId),
    /// A request failed.
    #[error("request to {peer} failed: {reason}")]
    Request {
        /// The peer.
        peer: PeerId,
        /// Why.
        reason: String,
    },
    /// No valid record under the key.
    #[error("no record found")]
    NotFound,
    /// A record was refused.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// A DHT query failed.
    #[error("DHT query failed: {0}")]
    Query(String),
    /// The network task has stopped.
    #[error("the network task has stopped")]
    Closed,
    /// The record store failed.
    #[error(transparent)]
    Store(#[from] zhtp_store::Error),
}

/// How a node joins the network.
#[derive(Clone)]
#[non_exhaustive]
pub struct Config {
    /// Addresses to listen on (`/ip4/127.0.0.1/udp/0/quic-v1`, `/ip4/0.0.0.0/tcp/4001`, or
    /// `/memory/N` with [`Config::memory_transport`]).
    pub listen: Vec<Multiaddr>,
    /// Peers to join through; `/p2p/<peer id>` at the end lets Kademlia use them at once.
    pub bootstrap: Vec<Multiaddr>,
    /// In-process memory transport instead of QUIC + TCP (tests and simulations).
    pub memory_transport: bool,
    /// Time limit of one shard request, transfer included.
    pub request_timeout: Duration,
    /// Largest shard-protocol message, in bytes.
    pub max_message: usize,
    /// Concurrent inbound + outbound shard streams per connection.
    pub max_streams: usize,
    /// Inbound requests waiting for the application before new ones are refused as busy.
    pub inbound_queue: usize,
    /// How long a disconnected peer is treated as down without dialling it again; doubled
    /// (up to [`crate::gate::MAX_DOWN`]) each time a new dial fails, so a dead peer costs one
    /// slow dial per period instead of one per query.
    pub down_for: Duration,
    /// How long an idle QUIC connection lives without hearing from the peer (how fast a
    /// killed peer is noticed on QUIC; TCP notices at once).
    pub quic_idle: Duration,
    /// How often every connection is pinged (round-trip times rank holders for fetches).
    pub ping_interval: Duration,
    /// How long a connection without traffic stays open.
    pub idle_timeout: Duration,
    /// Checks record payloads (after the signature).
    pub validator: Option<Validator>,
    /// Established connections, all peers together.
    pub max_connections: u32,
    /// Established connections to one peer.
    pub max_connections_per_peer: u32,
    /// Connections being set up, each way.
    pub max_pending_connections: u32,
    /// No new connection is accepted while the process uses more than this fraction of the
    /// machine's memory.
    pub max_memory_fraction: f64,
    /// Shard requests of one peer being served at once (answers not yet fully sent included);
    /// more are refused as busy. With [`Config::max_response_bytes`], what bounds the memory a
    /// peer that never reads its answers can pin. A node sends no more than half this many
    /// requests at once to one peer: the other half is slack for requests the sender has given
    /// up on (a timeout, a hedge) that the receiver still counts until their answer is sent.
    pub max_inbound_per_peer: usize,
    /// Bytes of shard requests being served (a store's shard) and of answers handed to the
    /// network but not yet sent, all peers together (one peer: an eighth of it); a request or
    /// an answer that would go over is replaced by a busy refusal.
    pub max_response_bytes: usize,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("bootstrap", &self.bootstrap)
            .field("memory_transport", &self.memory_transport)
            .field("max_message", &self.max_message)
            .finish_non_exhaustive()
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: vec![
                "/ip4/0.0.0.0/udp/0/quic-v1".parse().expect("valid"),
                "/ip4/0.0.0.0/tcp/0".parse().expect("valid"),
            ],
            bootstrap: Vec::new(),
            memory_transport: false,
            request_timeout: Duration::from_secs(30),
            max_message: protocol::MAX_MESSAGE,
            max_streams: 32,
            inbound_queue: 256,
            down_for: Duration::from_secs(10),
            quic_idle: Duration::from_secs(3),
            ping_interval: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(300),
            validator: None,
            max_connections: 512,
            max_connections_per_peer: 4,
            max_pending_connections: 64,
            max_memory_fraction: 0.9,
            max_inbound_per_peer: 16,
            max_response_bytes: 64 << 20,
        }
    }
}

// The limiters come first: the swarm asks behaviours in field order whether to accept a
// connection, and one denied late would leave state set up by the earlier ones.
#[derive(NetworkBehaviour)]
struct Behaviour {
    limits: connection_limits::Behaviour,
    memory: memory_connection_limits::Behaviour,
    gate: Gate,
    kad: kad::Behaviour<PersistentStore>,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    shard: request_response::Behaviour<Codec>,
}

/// A snapshot of the node's view of the network.
#[derive(Clone, Debug)]
pub struct Status {
    /// This node.
    pub peer_id: PeerId,
    /// Where it listens.
    pub listen: Vec<Multiaddr>,
    /// Peers with an open connection.
    pub connected: Vec<PeerId>,
    /// Peers in the Kademlia routing table.
    pub routing_table: usize,
    /// Records in the local store.
    pub records: usize,
    /// Last ping round-trip per peer.
    pub rtt: HashMap<PeerId, Duration>,
    /// Records refused (bad signature, oversize, expired, wrong payload) since start.
    pub refused_records: u64,
    /// Inbound shard requests refused or failed (oversize, undecodable, timeout) since start.
    pub inbound_failures: u64,
    /// Inbound shard requests being served now (answers not yet fully sent included).
    pub serving: usize,
    /// Bytes of answers handed to the network and not yet sent.
    pub serving_bytes: usize,
    /// Inbound shard requests refused as busy since start.
    pub busy: u64,
    /// Connections established since start (a test that must see the *same* connection
    /// survive checks that this did not move).
    pub established: u64,
}

/// An inbound shard request for the application.
#[derive(Debug)]
pub struct Inbound {
    /// Who asks.
    pub peer: PeerId,
    /// What.
    pub request: Request,
    /// Where the answer goes.
    pub reply: Responder,
}

/// Sends the answer to one [`Inbound`] request. Dropping it unanswered refuses the request.
#[derive(Debug)]
pub struct Responder {
    id: InboundRequestId,
    cmd: mpsc::Sender<Command>,
    done: bool,
}

impl Responder {
    /// Answers the request.
    pub async fn send(mut self, response: Response) {
        self.done = true;
        let _ = self
            .cmd
            .send(Command::Respond {
                id: self.id,
                response,
            })
            .await;
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.cmd.try_send(Command::Respond {
                id: self.id,
                response: Response::Refused("not answered".into()),
            });
        }
    }
}

enum Command {
    Request {
        peer: PeerId,
        request: Request,
        reply: oneshot::Sender<Result<Response, Error>>,
    },
    Respond {
        id: InboundRequestId,
        response: Response,
    },
    PutRecord {
        record: Record,
        raw: bool,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    GetRecord {
        key: RecordKey,
        reply: oneshot::Sender<Result<Opened, Error>>,
    },
    LocalRecord {
        key: RecordKey,
        reply: oneshot::Sender<Option<Record>>,
    },
    Provide {
        key: RecordKey,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    Providers {
        key: RecordKey,
        reply: oneshot::Sender<Result<HashSet<PeerId>, Error>>,
    },
    Closest {
        key: Vec<u8>,
        reply: oneshot::Sender<Result<(Vec<PeerId>, u32), Error>>,
    },
    RoutingTable {
        reply: oneshot::Sender<Vec<PeerId>>,
    },
    Status {
        reply: oneshot::Sender<Status>,
    },
    Dial {
        addr: Multiaddr,
    },
    Bootstrap {
        reply: oneshot::Sender<Result<(), Error>>,
    },
    /// The grace period of a provider lookup that has found providers is over.
    ProvidersDue {
        id: QueryId,
    },
    /// The grace period of a record lookup that has found a record is over.
    RecordDue {
        id: QueryId,
    },
    Shutdown {
        done: oneshot::Sender<()>,
    },
}

/// How many requests this node has in flight to each peer: at most half of
/// [`Config::max_inbound_per_peer`], what a peer serves of one other at a time.
#[derive(Debug)]
struct Slots {
    per_peer: usize,
    peers: std::sync::Mutex<HashMap<PeerId, Arc<tokio::sync::Semaphore>>>,
}

impl Slots {
    async fn acquire(&self, peer: PeerId) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let sem = {
            let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
            if peers.len() >= 1024 {
                // Forget peers with nothing in flight: the map must not grow with every peer
                // ever asked.
                peers.retain(|_, s| Arc::strong_count(s) > 1);
            }
            peers
                .entry(peer)
                .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(self.per_peer)))
                .clone()
        };
        sem.acquire_owned().await.ok()
    }
}

/// Peers that must acknowledge a record [`Dht::publish`] stores before it returns (fewer when
/// fewer are connected): with this node, four copies, which outlive any three failures.
pub const REPLICAS: usize = 3;

/// Retries of a request refused as busy, and the first wait (doubled each time).
const BUSY_RETRIES: u32 = 4;
const BUSY_WAIT: Duration = Duration::from_millis(25);

/// The handle to a running node's network.
#[derive(Clone, Debug)]
pub struct Dht {
    peer_id: PeerId,
    keypair: Keypair,
    slots: Arc<Slots>,
    cmd: mpsc::Sender<Command>,
    listening: watch::Receiver<Vec<Multiaddr>>,
    connected: watch::Receiver<usize>,
    /// The event loop's sender, held weakly so that the loop's end closes the channel.
    changes: std::sync::Weak<watch::Sender<u64>>,
}

fn without_p2p(addr: &Multiaddr) -> (Multiaddr, Option<PeerId>) {
    let mut a = addr.clone();
    match a.pop() {
        Some(Protocol::P2p(p)) => (a, Some(p)),
        Some(other) => {
            a.push(other);
            (a, None)
        }
        None => (a, None),
    }
}

fn build_swarm(
    keypair: Keypair,
    cfg: &Config,
    store: PersistentStore,
    codec: Codec,
) -> Result<Swarm<Behaviour>, Error> {
    let setup = |e: &dyn std::fmt::Display| Error::Setup(e.to_string());
    let make = |key: &Keypair| -> Behaviour {
        let peer = key.public().to_peer_id();
        let mut kc = kad::Config::new(KAD_PROTOCOL);
        kc.set_record_filtering(kad::StoreInserts::FilterBoth);
        kc.set_max_packet_size(record::MAX_VALUE + (64 << 10));
        kc.set_query_timeout(Duration::from_secs(20));
        kc.set_replication_factor(NonZeroUsize::new(20).expect("k = 20"));
        let mut kad = kad::Behaviour::with_config(peer, store, kc);
        // Every zhtp node stores and serves: no waiting for a confirmed external address.
        kad.set_mode(Some(kad::Mode::Server));
        let n = |v: u32| Some(v);
        Behaviour {
            limits: connection_limits::Behaviour::new(
                connection_limits::ConnectionLimits::default()
                    .with_max_established(n(cfg.max_connections))
                    .with_max_established_per_peer(n(cfg.max_connections_per_peer))
                    .with_max_pending_incoming(n(cfg.max_pending_connections))
                    .with_max_pending_outgoing(n(cfg.max_pending_connections)),
            ),
            memory: memory_connection_limits::Behaviour::with_max_percentage(
                cfg.max_memory_fraction,
            ),
            gate: Gate::new(cfg.down_for),
            kad,
            identify: identify::Behaviour::new(identify::Config::new(
                "/zhtp/id/1".into(),
                key.public(),
            )),
            ping: ping::Behaviour::new(ping::Config::new().with_interval(cfg.ping_interval)),
            shard: request_response::Behaviour::with_codec(
                codec.clone(),
                [(protocol::PROTOCOL, ProtocolSupport::Full)],
                request_response::Config::default()
                    .with_request_timeout(cfg.request_timeout)
                    .with_max_concurrent_streams(cfg.max_streams),
            ),
        }
    };
    let idle_timeout = cfg.idle_timeout;
    let idle = move |c: libp2p::swarm::Config| c.with_idle_connection_timeout(idle_timeout);
    let builder = libp2p::SwarmBuilder::with_existing_identity(keypair).with_tokio();
    let swarm = if cfg.memory_transport {
        builder
            .with_other_transport(|k| {
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(
                    MemoryTransport::default()
                        .upgrade(Version::V1)
                        .authenticate(noise::Config::new(k)?)
                        .multiplex(yamux::Config::default()),
                )
            })
            .map_err(|e| setup(&e))?
            .with_behaviour(make)
            .map_err(|e| setup(&e))?
            .with_swarm_config(idle)
            .build()
    } else {
        let quic_idle = cfg.quic_idle;
        builder
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )
            .map_err(|e| setup(&e))?
            .with_quic_config(move |mut c| {
                c.max_idle_timeout = quic_idle.as_millis() as u32;
                c.keep_alive_interval = quic_idle / 4;
                c
            })
            .with_behaviour(make)
            .map_err(|e| setup(&e))?
            .with_swarm_config(idle)
            .build()
    };
    Ok(swarm)
}

impl Dht {
    /// Starts the network task. `db` makes the record store persistent. Returns the handle and
    /// the channel of inbound shard requests (the application must drain it).
    pub async fn spawn(
        keypair: Keypair,
        cfg: Config,
        db: Option<Arc<Store>>,
    ) -> Result<(Self, mpsc::Receiver<Inbound>), Error> {
        let peer_id = keypair.public().to_peer_id();
        let store = PersistentStore::open(peer_id, db)?;
        let codec = Codec::new(cfg.max_message);
        let refused_messages = codec.refused.clone();
        let mut swarm = build_swarm(keypair.clone(), &cfg, store, codec)?;
        for addr in &cfg.listen {
            swarm
                .listen_on(addr.clone())
                .map_err(|e| Error::Setup(format!("cannot listen on {addr}: {e}")))?;
        }
        for addr in &cfg.bootstrap {
            let (bare, peer) = without_p2p(addr);
            if let Some(p) = peer {
                swarm.behaviour_mut().kad.add_address(&p, bare);
            }
            if let Err(e) = swarm.dial(addr.clone()) {
                tracing::warn!("cannot dial bootstrap peer {addr}: {e}");
            }
        }
        let per_peer = cfg.max_inbound_per_peer;
        let (cmd_tx, cmd_rx) = mpsc::channel(1024);
        let (in_tx, in_rx) = mpsc::channel(cfg.inbound_queue);
        let (listen_tx, listening) = watch::channel(Vec::new());
        let (conn_tx, connected) = watch::channel(0);
        let changes = Arc::new(watch::Sender::new(0));
        let changes_handle = Arc::downgrade(&changes);
        let event_loop = EventLoop {
            swarm,
            cfg,
            cmd_tx: cmd_tx.clone(),
            inbound: in_tx,
            listen_tx,
            conn_tx,
            changes,
            serving: Serving::default(),
            requests: HashMap::new(),
            get_records: HashMap::new(),
            put_records: HashMap::new(),
            providers: HashMap::new(),
            closest: HashMap::new(),
            rtt: HashMap::new(),
            refused_records: 0,
            inbound_failures: 0,
            established: 0,
            refused_messages,
        };
        tokio::spawn(event_loop.run(cmd_rx));
        let dht = Self {
            peer_id,
            keypair,
            slots: Arc::new(Slots {
                per_peer: (per_peer / 2).max(1),
                peers: std::sync::Mutex::new(HashMap::new()),
            }),
            cmd: cmd_tx,
            listening,
            connected,
            changes: changes_handle,
        };
        Ok((dht, in_rx))
    }

    /// This node's id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// This node's key (it signs records).
    pub fn keypair(&self) -> &Keypair {
        &self.keypair
    }

    async fn ask<T>(&self, f: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, Error> {
        let (tx, rx) = oneshot::channel();
        self.cmd.send(f(tx)).await.map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)
    }

    /// Ticks whenever something a caller may be waiting for changed: a record stored or
    /// refused, a connection opened or closed. Wait on it (and look again) instead of polling.
    /// Once the node has stopped, the receiver is closed (`changed()` fails).
    pub fn changes(&self) -> watch::Receiver<u64> {
        match self.changes.upgrade() {
            Some(tx) => tx.subscribe(),
            None => watch::channel(0).1,
        }
    }

    /// Ticks [`Self::changes`] for a change the layer above made (a shard stored by the node
    /// that runs this DHT), so that one counter serves both. Nothing once the node stopped.
    pub fn changed(&self) {
        if let Some(tx) = self.changes.upgrade() {
            tx.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// Waits until the node listens on at least `n` addresses, and returns them.
    pub async fn listening(&self, n: usize) -> Result<Vec<Multiaddr>, Error> {
        let mut rx = self.listening.clone();
        let addrs = rx
            .wait_for(|a| a.len() >= n)
            .await
            .map_err(|_| Error::Closed)?;
        Ok(addrs.clone())
    }

    /// [`Self::listening`] with `/p2p/<peer id>` appended: what another node bootstraps from.
    pub async fn dialable(&self, n: usize) -> Result<Vec<Multiaddr>, Error> {
        let me = self.peer_id;
        Ok(self
            .listening(n)
            .await?
            .into_iter()
            .map(|a| a.with(Protocol::P2p(me)))
            .collect())
    }

    /// Waits until at least `n` peers are connected.
    pub async fn wait_connected(&self, n: usize) -> Result<(), Error> {
        let mut rx = self.connected.clone();
        rx.wait_for(|c| *c >= n).await.map_err(|_| Error::Closed)?;
        Ok(())
    }

    /// Sends a shard-protocol request: at most [`Config::max_inbound_per_peer`] at once to one
    /// peer. A fetch or inventory refused as busy is sent again a few times after a short,
    /// growing wait; a store is not (its caller places the shard elsewhere, and retrying would
    /// mean copying the shard for every attempt).
    pub async fn request(&self, peer: PeerId, request: Request) -> Result<Response, Error> {
        let _slot = self.slots.acquire(peer).await;
        if !matches!(request, Request::Store { .. }) {
            let mut wait = BUSY_WAIT;
            for _ in 0..BUSY_RETRIES {
                match self.send(peer, request.clone()).await? {
                    Response::Refused(why) if why == protocol::BUSY => {
                        tokio::time::sleep(wait).await;
                        wait *= 2;
                    }
                    other => return Ok(other),
                }
            }
        }
        self.send(peer, request).await
    }

    async fn send(&self, peer: PeerId, request: Request) -> Result<Response, Error> {
        self.ask(|reply| Command::Request {
            peer,
            request,
            reply,
        })
        .await?
    }

    /// Signs `payload` and publishes it under `key` (stored here and at the closest peers), with
    /// the current time in milliseconds as its sequence number (or one more than this node's
    /// record there, if that is later). Fails with
    /// [`RecordError::NotOwner`] when this node holds another publisher's live record there.
    pub async fn publish(&self, key: &[u8], payload: Vec<u8>, ttl: Duration) -> Result<(), Error> {
        // Later than anything this node published there before, even if the clock stepped back.
        let mut seq = record::time_seq();
        if let Ok(Some(held)) = self.local_record(key).await
            && let Ok(o) = record::open(&held, None)
            && o.publisher == self.peer_id
        {
            seq = seq.max(o.seq.saturating_add(1));
        }
        let record = record::seal(&self.keypair, key, payload, seq, ttl)?;
        self.ask(|reply| Command::PutRecord {
            record,
            raw: false,
            reply,
        })
        .await?
    }

    /// Sends a record as it is — unsigned, forged, oversize — to the connected peers, without
    /// storing it here: for tests that check that other nodes refuse such records.
    /// Applications use [`Dht::publish`].
    #[doc(hidden)]
    pub async fn put_raw_record(&self, record: Record) -> Result<(), Error> {
        self.ask(|reply| Command::PutRecord {
            record,
            raw: true,
            reply,
        })
        .await?
    }

    /// Finds a valid record under `key`: from the local store or the network.
    pub async fn get_record(&self, key: &[u8]) -> Result<Opened, Error> {
        let key = RecordKey::new(&key);
        self.ask(|reply| Command::GetRecord { key, reply }).await?
    }

    /// The record under `key` in this node's own store, if any (not validated again).
    pub async fn local_record(&self, key: &[u8]) -> Result<Option<Record>, Error> {
        let key = RecordKey::new(&key);
        self.ask(|reply| Command::LocalRecord { key, reply }).await
    }

    /// Announces this node as a provider of `key`.
    pub async fn provide(&self, key: &[u8]) -> Result<(), Error> {
        let key = RecordKey::new(&key);
        self.ask(|reply| Command::Provide { key, reply }).await?
    }

    /// The providers of `key` the network knows (this node included when it provides it).
    pub async fn providers(&self, key: &[u8]) -> Result<HashSet<PeerId>, Error> {
        let key = RecordKey::new(&key);
        self.ask(|reply| Command::Providers { key, reply }).await?
    }

    /// The peers closest to `key` by XOR distance (an iterative Kademlia lookup), and how many
    /// requests the lookup sent.
    pub async fn closest_peers(&self, key: Vec<u8>) -> Result<(Vec<PeerId>, u32), Error> {
        self.ask(|reply| Command::Closest { key, reply }).await?
    }

    /// Every peer in the routing table.
    pub async fn routing_table(&self) -> Result<Vec<PeerId>, Error> {
        self.ask(|reply| Command::RoutingTable { reply }).await
    }

    /// A snapshot of the node's view.
    pub async fn status(&self) -> Result<Status, Error> {
        self.ask(|reply| Command::Status { reply }).await
    }

    /// Dials an address.
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), Error> {
        self.cmd
            .send(Command::Dial { addr })
            .await
            .map_err(|_| Error::Closed)
    }

    /// Runs a Kademlia bootstrap (a lookup of our own id and random refreshes) and waits for
    /// it to finish.
    pub async fn bootstrap(&self) -> Result<(), Error> {
        self.ask(|reply| Command::Bootstrap { reply }).await?
    }

    /// Stops the network task and waits until the swarm (connections, record store) is gone.
    pub async fn shutdown(&self) {
        let (done, rx) = oneshot::channel();
        if self.cmd.send(Command::Shutdown { done }).await.is_ok() {
            let _ = rx.await;
        }
    }
}
