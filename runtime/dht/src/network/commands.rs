//! The event loop's side of each [`super::Command`] a [`super::Dht`] handle sends.

use std::collections::HashSet;

use libp2p::{PeerId, kad};

use super::event_loop::EventLoop;
use super::{Command, Error, REPLICAS, Status, without_p2p};

impl EventLoop {
    pub(super) fn on_command(&mut self, cmd: Command) {
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
                // Acknowledged by up to REPLICAS peers before the put counts as done: with
                // `Quorum::One` the query ended at the first answer, so a record could live on
                // one peer besides this node, and two nodes down could take it with them.
                let peers = self.swarm.connected_peers().count();
                let quorum = std::num::NonZeroUsize::new(peers.clamp(1, REPLICAS))
                    .map_or(kad::Quorum::One, kad::Quorum::N);
                match self.kad().put_record(record, quorum) {
                    Ok(id) => {
                        self.changed();
                        self.put_records.insert(id, reply);
                    }
                    Err(e) => {
                        let _ = reply.send(Err(Error::Query(e.to_string())));
                    }
                }
            }
            Command::GetRecord { key, reply } => {
                let id = self.kad().get_record(key);
                self.get_records.insert(id, (None, reply));
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
            Command::RecordDue { id } => self.finish_record(id, Error::NotFound),
            Command::Shutdown { .. } => {}
        }
    }
}
