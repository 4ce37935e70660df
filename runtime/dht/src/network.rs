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

use futures::StreamExt as _;
use libp2p::core::transport::MemoryTransport;
use libp2p::core::{Transport as _, upgrade::Version};
use libp2p::identity::Keypair;
use libp2p::kad::{self, GetProvidersOk, GetRecordOk, QueryId, QueryResult, Record, RecordKey};
use libp2p::multiaddr::Protocol;
use libp2p::request_response::InboundRequestId;
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport, ResponseChannel};
use libp2p::swarm::ConnectionId;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
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
        let event_loop = EventLoop {
            swarm,
            cfg,
            cmd_tx: cmd_tx.clone(),
            inbound: in_tx,
            listen_tx,
            conn_tx,
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

/// Inbound requests from their arrival until their answer is fully sent (or fails): what a
/// peer is being served, counted per peer and in bytes.
#[derive(Default)]
struct Serving {
    requests: HashMap<InboundRequestId, Served>,
    /// Requests and bytes per peer.
    per_peer: HashMap<PeerId, (usize, usize)>,
    /// Bytes of requests being served and of answers handed to libp2p and not yet sent.
    bytes: usize,
    /// Refusals as busy since start.
    busy: u64,
}

struct Served {
    peer: PeerId,
    connection: ConnectionId,
    /// Until the application answers.
    channel: Option<ResponseChannel<Response>>,
    /// Bytes held for it: the request's shard until it is answered, then the answer's.
    bytes: usize,
}

/// The share of [`Config::max_response_bytes`] one peer may hold: a few slow readers must not
/// take all of it.
const PEER_SHARE: usize = 8;

impl Serving {
    fn of_peer(&self, peer: &PeerId) -> usize {
        self.per_peer.get(peer).map_or(0, |p| p.0)
    }

    fn bytes_of_peer(&self, peer: &PeerId) -> usize {
        self.per_peer.get(peer).map_or(0, |p| p.1)
    }

    fn start(
        &mut self,
        id: InboundRequestId,
        peer: PeerId,
        connection: ConnectionId,
        channel: ResponseChannel<Response>,
        bytes: usize,
    ) {
        let p = self.per_peer.entry(peer).or_default();
        p.0 += 1;
        p.1 += bytes;
        self.bytes += bytes;
        self.requests.insert(
            id,
            Served {
                peer,
                connection,
                channel: Some(channel),
                bytes,
            },
        );
    }

    /// Changes what request `id` holds to `bytes`.
    fn hold(&mut self, id: InboundRequestId, bytes: usize) {
        let Some(r) = self.requests.get_mut(&id) else {
            return;
        };
        if let Some(p) = self.per_peer.get_mut(&r.peer) {
            p.1 = p.1 - r.bytes + bytes;
        }
        self.bytes = self.bytes - r.bytes + bytes;
        r.bytes = bytes;
    }

    fn end(&mut self, id: InboundRequestId) {
        let Some(r) = self.requests.remove(&id) else {
            return;
        };
        self.bytes -= r.bytes;
        if let Some(p) = self.per_peer.get_mut(&r.peer) {
            p.0 -= 1;
            p.1 -= r.bytes;
            if p.0 == 0 {
                self.per_peer.remove(&r.peer);
            }
        }
    }

    fn connection_closed(&mut self, connection: ConnectionId) {
        let gone: Vec<InboundRequestId> = self
            .requests
            .iter()
            .filter(|(_, r)| r.connection == connection)
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            self.end(id);
        }
    }
}

/// How long a provider lookup goes on after its first providers were found.
const PROVIDERS_GRACE: Duration = Duration::from_millis(250);

/// Where the answer to a pending query goes.
type Reply<T> = oneshot::Sender<Result<T, Error>>;

struct EventLoop {
    swarm: Swarm<Behaviour>,
    cfg: Config,
    cmd_tx: mpsc::Sender<Command>,
    inbound: mpsc::Sender<Inbound>,
    listen_tx: watch::Sender<Vec<Multiaddr>>,
    conn_tx: watch::Sender<usize>,
    serving: Serving,
    requests: HashMap<OutboundRequestId, oneshot::Sender<Result<Response, Error>>>,
    get_records: HashMap<QueryId, oneshot::Sender<Result<Opened, Error>>>,
    put_records: HashMap<QueryId, oneshot::Sender<Result<(), Error>>>,
    providers: HashMap<QueryId, (HashSet<PeerId>, Reply<HashSet<PeerId>>)>,
    closest: HashMap<QueryId, Reply<(Vec<PeerId>, u32)>>,
    rtt: HashMap<PeerId, Duration>,
    refused_records: u64,
    inbound_failures: u64,
    established: u64,
    refused_messages: Arc<std::sync::atomic::AtomicU64>,
}

impl EventLoop {
    async fn run(mut self, mut cmds: mpsc::Receiver<Command>) {
        let done = loop {
            tokio::select! {
                ev = self.swarm.select_next_some() => self.on_swarm(ev),
                cmd = cmds.recv() => match cmd {
                    None => break None,
                    Some(Command::Shutdown { done }) => break Some(done),
                    Some(c) => self.on_command(c),
                },
            }
        };
        // Close connections (so peers learn at once that we are gone, instead of after an idle
        // timeout) and the record store before saying we are done.
        let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        for p in peers {
            let _ = self.swarm.disconnect_peer_id(p);
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while self.swarm.connected_peers().next().is_some() {
                self.swarm.select_next_some().await;
            }
        })
        .await;
        drop(self);
        tracing::debug!("network task stopped");
        if let Some(done) = done {
            let _ = done.send(());
        }
    }

    fn kad(&mut self) -> &mut kad::Behaviour<PersistentStore> {
        &mut self.swarm.behaviour_mut().kad
    }

    /// Checks `record` (signature, expiry, payload) and that it may replace what is held under
    /// its key: the same publisher with a higher sequence number, or nothing live is held.
    fn admit_record(&mut self, record: &Record) -> Result<Opened, RecordError> {
        use kad::store::RecordStore as _;
        let new = record::open(record, self.cfg.validator.as_ref())?;
        if let Some(held) = self.kad().store_mut().get(&record.key)
            // A held record that no longer opens (expired) is replaced by any valid one.
            && let Ok(held) = record::open(&held, None)
        {
            record::may_replace(&held, &new)?;
        }
        Ok(new)
    }

    /// Stores a record from the network when [`Self::admit_record`] allows it, living no longer
    /// than its signed expiry (the sender chooses the time-to-live on the wire).
    fn keep_record(&mut self, mut record: Record) -> Result<(), RecordError> {
        use kad::store::RecordStore as _;
        let opened = self.admit_record(&record)?;
        let signed = record::expiry_instant(opened.expires);
        record.expires = Some(record.expires.map_or(signed, |e| e.min(signed)));
        if let Err(e) = self.kad().store_mut().put(record) {
            tracing::warn!("cannot keep a record: {e}");
        }
        Ok(())
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Request {
                peer,
                request,
                reply,
            } => {
                let down = self.swarm.behaviour().gate.is_down(&peer);
                if peer == *self.swarm.local_peer_id() {
                    let _ = reply.send(Err(Error::Request {
                        peer,
                        reason: "a node does not send requests to itself".into(),
                    }));
                } else if down {
                    let _ = reply.send(Err(Error::Unreachable(peer)));
                } else {
                    let id = self
                        .swarm
                        .behaviour_mut()
                        .shard
                        .send_request(&peer, request);
                    self.requests.insert(id, reply);
                }
            }
            Command::Respond { id, response } => self.respond(id, response),
            Command::PutRecord {
                record,
                raw: true,
                reply,
            } => {
                let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
                let id = self
                    .kad()
                    .put_record_to(record, peers.into_iter(), kad::Quorum::One);
                self.put_records.insert(id, reply);
            }
            Command::PutRecord { record, reply, .. } => {
                // Our own record obeys the same ownership rule as everyone else's.
                if let Err(e) = self.admit_record(&record) {
                    let _ = reply.send(Err(e.into()));
                    return;
                }
                match self.kad().put_record(record, kad::Quorum::One) {
                    Ok(id) => {
                        self.put_records.insert(id, reply);
                    }
                    Err(e) => {
                        let _ = reply.send(Err(Error::Query(e.to_string())));
                    }
                }
            }
            Command::GetRecord { key, reply } => {
                let id = self.kad().get_record(key);
                self.get_records.insert(id, reply);
            }
            Command::LocalRecord { key, reply } => {
                use kad::store::RecordStore as _;
                let r = self.kad().store_mut().get(&key).map(|c| c.into_owned());
                let _ = reply.send(r);
            }
            Command::Provide { key, reply } => match self.kad().start_providing(key) {
                Ok(id) => {
                    self.put_records.insert(id, reply);
                }
                Err(e) => {
                    let _ = reply.send(Err(Error::Query(e.to_string())));
                }
            },
            Command::Providers { key, reply } => {
                let id = self.kad().get_providers(key);
                self.providers.insert(id, (HashSet::new(), reply));
            }
            Command::Closest { key, reply } => {
                let id = self.kad().get_closest_peers(key);
                self.closest.insert(id, reply);
            }
            Command::RoutingTable { reply } => {
                let mut peers = Vec::new();
                for bucket in self.kad().kbuckets() {
                    for e in bucket.iter() {
                        peers.push(*e.node.key.preimage());
                    }
                }
                let _ = reply.send(peers);
            }
            Command::Status { reply } => {
                use kad::store::RecordStore as _;
                let routing_table = self.kad().kbuckets().map(|b| b.num_entries()).sum();
                let records = self.kad().store_mut().records().count();
                let _ = reply.send(Status {
                    peer_id: *self.swarm.local_peer_id(),
                    listen: self.swarm.listeners().cloned().collect(),
                    connected: self.swarm.connected_peers().copied().collect(),
                    routing_table,
                    records,
                    rtt: self.rtt.clone(),
                    refused_records: self.refused_records,
                    inbound_failures: self.inbound_failures
                        + self
                            .refused_messages
                            .load(std::sync::atomic::Ordering::Relaxed),
                    serving: self.serving.requests.len(),
                    serving_bytes: self.serving.bytes,
                    busy: self.serving.busy,
                    established: self.established,
                });
            }
            Command::Dial { addr } => {
                let (bare, peer) = without_p2p(&addr);
                if let Some(p) = peer {
                    self.kad().add_address(&p, bare);
                }
                if let Err(e) = self.swarm.dial(addr.clone()) {
                    tracing::warn!("cannot dial {addr}: {e}");
                }
            }
            Command::Bootstrap { reply } => match self.kad().bootstrap() {
                Ok(id) => {
                    self.put_records.insert(id, reply);
                }
                Err(e) => {
                    let _ = reply.send(Err(Error::Query(e.to_string())));
                }
            },
            Command::ProvidersDue { id } => self.finish_providers(id),
            Command::Shutdown { .. } => {}
        }
    }

    fn refuse_busy(&mut self, channel: ResponseChannel<Response>) {
        self.serving.busy += 1;
        let busy = Response::Refused(protocol::BUSY.into());
        let _ = self
            .swarm
            .behaviour_mut()
            .shard
            .send_response(channel, busy);
    }

    /// Sends the application's answer to an inbound request, unless the bytes of answers not
    /// yet sent would then pass [`Config::max_response_bytes`]: then a busy refusal instead.
    fn respond(&mut self, id: InboundRequestId, response: Response) {
        let Some(req) = self.serving.requests.get_mut(&id) else {
            return; // timed out, or its connection closed
        };
        let Some(channel) = req.channel.take() else {
            return;
        };
        let peer = req.peer;
        let len = match &response {
            Response::Shard(b) => b.len(),
            Response::Inventory(v) => v.len() * std::mem::size_of::<crate::Held>(),
            _ => 0,
        };
        // The request's own bytes (a store's shard) are gone once it is answered.
        self.serving.hold(id, 0);
        let max = self.cfg.max_response_bytes;
        let response = if self.serving.bytes + len > max
            || self.serving.bytes_of_peer(&peer) + len > max / PEER_SHARE
        {
            self.serving.busy += 1;
            Response::Refused(protocol::BUSY.into())
        } else {
            self.serving.hold(id, len);
            response
        };
        if self
            .swarm
            .behaviour_mut()
            .shard
            .send_response(channel, response)
            .is_err()
        {
            // The requester gave up (timeout, closed connection).
            self.serving.end(id);
        }
    }

    /// Answers a provider lookup with what it has found and stops it.
    fn finish_providers(&mut self, id: QueryId) {
        if let Some((set, tx)) = self.providers.remove(&id) {
            let _ = tx.send(Ok(set));
        }
        if let Some(mut q) = self.kad().query_mut(&id) {
            q.finish();
        }
    }

    fn on_swarm(&mut self, ev: SwarmEvent<BehaviourEvent>) {
        match ev {
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!("listening on {address}");
                self.listen_tx.send_modify(|v| v.push(address));
            }
            SwarmEvent::ConnectionEstablished { .. } => {
                self.established += 1;
                // The swarm's own view, already updated when it reports the event.
                self.conn_tx
                    .send_replace(self.swarm.connected_peers().count());
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                num_established,
                ..
            } => {
                // Answers handed to libp2p and still being written are dropped with the
                // connection without any event (unanswered requests get an InboundFailure,
                // which finds nothing left to release).
                self.serving.connection_closed(connection_id);
                if num_established == 0 {
                    self.rtt.remove(&peer_id);
                    self.conn_tx
                        .send_replace(self.swarm.connected_peers().count());
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                for addr in info.listen_addrs {
                    self.kad().add_address(&peer_id, addr);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Ping(ping::Event {
                peer,
                result: Ok(rtt),
                ..
            })) => {
                self.rtt.insert(peer, rtt);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Kad(ev)) => self.on_kad(ev),
            SwarmEvent::Behaviour(BehaviourEvent::Shard(ev)) => self.on_shard(ev),
            _ => {}
        }
    }

    fn on_shard(&mut self, ev: request_response::Event<Request, Response>) {
        use request_response::{Event, Message};
        match ev {
            Event::Message {
                peer,
                connection_id,
                message:
                    Message::Request {
                        request_id,
                        request,
                        channel,
                    },
            } => {
                let size = match &request {
                    Request::Store { data, .. } => data.len(),
                    _ => 0,
                };
                if self.serving.of_peer(&peer) >= self.cfg.max_inbound_per_peer
                    || self.serving.bytes + size > self.cfg.max_response_bytes
                {
                    // This peer already has its share being served (perhaps answers it does not
                    // read), or all peers together have: refuse at once, holding nothing for it.
                    self.refuse_busy(channel);
                    return;
                }
                let inbound = Inbound {
                    peer,
                    request,
                    reply: Responder {
                        id: request_id,
                        cmd: self.cmd_tx.clone(),
                        done: false,
                    },
                };
                if let Err(e) = self.inbound.try_send(inbound) {
                    // The application is saturated (or gone): refuse now, do not queue.
                    let mut refused = match e {
                        mpsc::error::TrySendError::Full(i)
                        | mpsc::error::TrySendError::Closed(i) => i,
                    };
                    refused.reply.done = true;
                    self.refuse_busy(channel);
                } else {
                    self.serving
                        .start(request_id, peer, connection_id, channel, size);
                }
            }
            Event::Message {
                message:
                    Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                if let Some(tx) = self.requests.remove(&request_id) {
                    let _ = tx.send(Ok(response));
                }
            }
            Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                if let Some(tx) = self.requests.remove(&request_id) {
                    let _ = tx.send(Err(Error::Request {
                        peer,
                        reason: error.to_string(),
                    }));
                }
            }
            Event::InboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                self.serving.end(request_id);
                self.inbound_failures += 1;
                tracing::debug!("inbound shard request from {peer} failed: {error}");
            }
            Event::ResponseSent { request_id, .. } => self.serving.end(request_id),
        }
    }

    fn on_kad(&mut self, ev: kad::Event) {
        match ev {
            kad::Event::InboundRequest { request } => match request {
                kad::InboundRequest::PutRecord {
                    source,
                    record: Some(record),
                    ..
                } => {
                    if let Err(e) = self.keep_record(record) {
                        self.refused_records += 1;
                        tracing::warn!("refused a record from {source}: {e}");
                    }
                }
                kad::InboundRequest::AddProvider {
                    record: Some(record),
                } => {
                    use kad::store::RecordStore as _;
                    if let Err(e) = self.kad().store_mut().add_provider(record) {
                        tracing::debug!("provider record not kept: {e}");
                    }
                }
                _ => {}
            },
            kad::Event::OutboundQueryProgressed {
                id,
                result,
                step,
                stats,
            } => match result {
                QueryResult::GetRecord(r) => {
                    let found = match r {
                        Ok(GetRecordOk::FoundRecord(pr)) => {
                            match record::open(&pr.record, self.cfg.validator.as_ref()) {
                                Ok(o) => Some(Ok(o)),
                                Err(e) => {
                                    self.refused_records += 1;
                                    tracing::warn!("refused a record from {:?}: {e}", pr.peer);
                                    None
                                }
                            }
                        }
                        Ok(GetRecordOk::FinishedWithNoAdditionalRecord { .. }) => {
                            Some(Err(Error::NotFound))
                        }
                        Err(kad::GetRecordError::NotFound { .. }) => Some(Err(Error::NotFound)),
                        Err(e) => Some(Err(Error::Query(e.to_string()))),
                    };
                    let found = found.or_else(|| step.last.then_some(Err(Error::NotFound)));
                    if let Some(result) = found {
                        if let Some(tx) = self.get_records.remove(&id) {
                            let _ = tx.send(result);
                        }
                        if let Some(mut q) = self.kad().query_mut(&id) {
                            q.finish();
                        }
                    }
                }
                QueryResult::Bootstrap(r) if step.last || r.is_err() => {
                    if let Some(tx) = self.put_records.remove(&id) {
                        let _ = tx.send(r.map(|_| ()).map_err(|e| Error::Query(e.to_string())));
                    }
                }
                QueryResult::PutRecord(r) => {
                    if let Some(tx) = self.put_records.remove(&id) {
                        let _ = tx.send(r.map(|_| ()).map_err(|e| Error::Query(e.to_string())));
                    }
                }
                QueryResult::StartProviding(r) => {
                    if let Some(tx) = self.put_records.remove(&id) {
                        let _ = tx.send(r.map(|_| ()).map_err(|e| Error::Query(e.to_string())));
                    }
                }
                QueryResult::GetProviders(r) => {
                    let mut done = step.last;
                    if let Some((set, _)) = self.providers.get_mut(&id) {
                        match r {
                            Ok(GetProvidersOk::FoundProviders { providers, .. }) => {
                                // Every node among the closest to the key holds the whole
                                // provider set, so the first answers have it: wait a little
                                // for more, not for the silent peers the query still waits on
                                // (a killed peer's connection lives until it times out).
                                if set.is_empty() {
                                    let cmd = self.cmd_tx.clone();
                                    tokio::spawn(async move {
                                        tokio::time::sleep(PROVIDERS_GRACE).await;
                                        let _ = cmd.send(Command::ProvidersDue { id }).await;
                                    });
                                }
                                set.extend(providers)
                            }
                            Ok(GetProvidersOk::FinishedWithNoAdditionalRecord { .. }) => {
                                done = true
                            }
                            Err(e) => {
                                tracing::debug!("provider lookup ended: {e}");
                                done = true;
                            }
                        }
                    }
                    if done {
                        self.finish_providers(id);
                    }
                }
                QueryResult::GetClosestPeers(r) => {
                    if let Some(tx) = self.closest.remove(&id) {
                        let peers = match r {
                            Ok(ok) => ok.peers,
                            Err(kad::GetClosestPeersError::Timeout { peers, .. }) => peers,
                        };
                        let _ = tx.send(Ok((
                            peers.into_iter().map(|p| p.peer_id).collect(),
                            stats.num_requests(),
                        )));
                    }
                }
                _ => {}
            },
            _ => {}
        }
    }
}
