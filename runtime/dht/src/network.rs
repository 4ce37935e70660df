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
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport, ResponseChannel};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, StreamProtocol, Swarm, identify, noise, ping, tcp, yamux};
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
            max_streams: 64,
            inbound_queue: 256,
            down_for: Duration::from_secs(10),
            quic_idle: Duration::from_secs(3),
            ping_interval: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(300),
            validator: None,
        }
    }
}

#[derive(NetworkBehaviour)]
struct Behaviour {
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
    id: u64,
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
        id: u64,
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

/// The handle to a running node's network.
#[derive(Clone, Debug)]
pub struct Dht {
    peer_id: PeerId,
    keypair: Keypair,
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
        Behaviour {
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
            next_id: 0,
            responders: HashMap::new(),
            requests: HashMap::new(),
            get_records: HashMap::new(),
            put_records: HashMap::new(),
            providers: HashMap::new(),
            closest: HashMap::new(),
            rtt: HashMap::new(),
            refused_records: 0,
            inbound_failures: 0,
            refused_messages,
        };
        tokio::spawn(event_loop.run(cmd_rx));
        let dht = Self {
            peer_id,
            keypair,
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

    /// Sends a shard-protocol request.
    pub async fn request(&self, peer: PeerId, request: Request) -> Result<Response, Error> {
        self.ask(|reply| Command::Request {
            peer,
            request,
            reply,
        })
        .await?
    }

    /// Signs `payload` and publishes it under `key` (stored here and at the closest peers).
    pub async fn publish(&self, key: &[u8], payload: Vec<u8>, ttl: Duration) -> Result<(), Error> {
        let record = record::seal(&self.keypair, key, payload, ttl)?;
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
    next_id: u64,
    responders: HashMap<u64, ResponseChannel<Response>>,
    requests: HashMap<OutboundRequestId, oneshot::Sender<Result<Response, Error>>>,
    get_records: HashMap<QueryId, oneshot::Sender<Result<Opened, Error>>>,
    put_records: HashMap<QueryId, oneshot::Sender<Result<(), Error>>>,
    providers: HashMap<QueryId, (HashSet<PeerId>, Reply<HashSet<PeerId>>)>,
    closest: HashMap<QueryId, Reply<(Vec<PeerId>, u32)>>,
    rtt: HashMap<PeerId, Duration>,
    refused_records: u64,
    inbound_failures: u64,
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
            Command::Respond { id, response } => {
                if let Some(ch) = self.responders.remove(&id) {
                    // Fails only if the requester gave up (timeout, closed connection).
                    let _ = self.swarm.behaviour_mut().shard.send_response(ch, response);
                }
            }
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
            SwarmEvent::ConnectionEstablished { .. }
            | SwarmEvent::ConnectionClosed {
                num_established: 0, ..
            } => {
                // The swarm's own view, already updated when it reports the event.
                self.conn_tx
                    .send_replace(self.swarm.connected_peers().count());
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
                message:
                    Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                let id = self.next_id;
                self.next_id += 1;
                let inbound = Inbound {
                    peer,
                    request,
                    reply: Responder {
                        id,
                        cmd: self.cmd_tx.clone(),
                        done: false,
                    },
                };
                self.responders.insert(id, channel);
                if let Err(e) = self.inbound.try_send(inbound) {
                    // The application is saturated (or gone): refuse now, do not queue.
                    let mut refused = match e {
                        mpsc::error::TrySendError::Full(i)
                        | mpsc::error::TrySendError::Closed(i) => i,
                    };
                    refused.reply.done = true;
                    if let Some(ch) = self.responders.remove(&id) {
                        let _ = self
                            .swarm
                            .behaviour_mut()
                            .shard
                            .send_response(ch, Response::Refused("busy".into()));
                    }
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
            Event::InboundFailure { peer, error, .. } => {
                self.inbound_failures += 1;
                tracing::debug!("inbound shard request from {peer} failed: {error}");
            }
            Event::ResponseSent { .. } => {}
        }
    }

    fn on_kad(&mut self, ev: kad::Event) {
        match ev {
            kad::Event::InboundRequest { request } => match request {
                kad::InboundRequest::PutRecord {
                    source,
                    record: Some(record),
                    ..
                } => match record::open(&record, self.cfg.validator.as_ref()) {
                    Ok(_) => {
                        use kad::store::RecordStore as _;
                        if let Err(e) = self.kad().store_mut().put(record) {
                            tracing::warn!("cannot keep a record from {source}: {e}");
                        }
                    }
                    Err(e) => {
                        self.refused_records += 1;
                        tracing::warn!("refused a record from {source}: {e}");
                    }
                },
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
