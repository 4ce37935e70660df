//! The event loop's handling of swarm events: connections, shard requests, Kademlia.

use libp2p::kad::{self, GetProvidersOk, GetRecordOk, QueryResult};
use libp2p::request_response::{self, InboundRequestId, ResponseChannel};
use libp2p::swarm::SwarmEvent;
use libp2p::{identify, ping};
use tokio::sync::mpsc;

use super::event_loop::{EventLoop, PROVIDERS_GRACE, RECORDS_GRACE};
use super::serving::PEER_SHARE;
use super::{BehaviourEvent, Command, Error, Inbound, Responder};
use crate::protocol::{self, Request, Response};
use crate::record;

impl EventLoop {
    pub(super) fn refuse_busy(&mut self, channel: ResponseChannel<Response>) {
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
    pub(super) fn respond(&mut self, id: InboundRequestId, response: Response) {
        let Some(req) = self.serving.requests.get_mut(&id) else {
            return; // timed out, or its connection closed
        };
        let Some(channel) = req.channel.take() else {
            return;
        };
        let peer = req.peer;
        let len = match &response {
            Response::Shard(b) | Response::Contract(b) => b.len(),
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

    pub(super) fn on_swarm(&mut self, ev: SwarmEvent<BehaviourEvent>) {
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
                self.changed();
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
                    self.changed();
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

    pub(super) fn on_shard(&mut self, ev: request_response::Event<Request, Response>) {
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
                    Request::Store { data, .. } | Request::Contract(data) => data.len(),
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

    pub(super) fn on_kad(&mut self, ev: kad::Event) {
        match ev {
            kad::Event::InboundRequest { request } => match request {
                kad::InboundRequest::PutRecord {
                    source,
                    record: Some(record),
                    ..
                } => {
                    if let Err(e) = self.keep_record(record) {
                        self.refused_record();
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
                    // The first valid record fixes the publisher; for a short while after it,
                    // a higher sequence number of that publisher from another peer wins (a
                    // replica that missed an update must not be the answer). Kademlia returns
                    // the local record first when there is one.
                    let mut done: Option<Error> = step.last.then_some(Error::NotFound);
                    match r {
                        Ok(GetRecordOk::FoundRecord(pr)) => {
                            match record::open(&pr.record, self.cfg.validator.as_ref()) {
                                Ok(o) => {
                                    if let Some((best, _)) = self.get_records.get_mut(&id) {
                                        match best {
                                            None => {
                                                *best = Some(o);
                                                if done.is_none() {
                                                    due_after(
                                                        &self.cmd_tx,
                                                        RECORDS_GRACE,
                                                        Command::RecordDue { id },
                                                    );
                                                }
                                            }
                                            Some(b)
                                                if b.publisher == o.publisher && o.seq > b.seq =>
                                            {
                                                *best = Some(o)
                                            }
                                            Some(_) => {}
                                        }
                                    }
                                }
                                Err(e) => {
                                    self.refused_record();
                                    tracing::warn!("refused a record from {:?}: {e}", pr.peer);
                                }
                            }
                        }
                        Ok(GetRecordOk::FinishedWithNoAdditionalRecord { .. })
                        | Err(kad::GetRecordError::NotFound { .. }) => done = Some(Error::NotFound),
                        Err(e) => done = Some(Error::Query(e.to_string())),
                    }
                    if let Some(none) = done {
                        self.finish_record(id, none);
                    }
                }
                QueryResult::Bootstrap(r) if step.last || r.is_err() => {
                    if let Some(tx) = self.put_records.remove(&id) {
                        let _ = tx.send(r.map(|_| ()).map_err(|e| Error::Query(e.to_string())));
                    }
                }
                QueryResult::PutRecord(r) => {
                    if let Some(tx) = self.put_records.remove(&id) {
                        let r = match r {
                            // Fewer acknowledgements than asked for (a small network, a peer
                            // gone): the record is out, on fewer nodes; republishing spreads it.
                            Err(
                                kad::PutRecordError::QuorumFailed { success, .. }
                                | kad::PutRecordError::Timeout { success, .. },
                            ) if !success.is_empty() => Ok(()),
                            r => r.map(|_| ()).map_err(|e| Error::Query(e.to_string())),
                        };
                        let _ = tx.send(r);
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
                                // Kademlia reports every reply, empty ones too: only the first
                                // providers start the wait, or a peer that answers "none"
                                // first would end the lookup with nothing.
                                if set.is_empty() && !providers.is_empty() {
                                    due_after(
                                        &self.cmd_tx,
                                        PROVIDERS_GRACE,
                                        Command::ProvidersDue { id },
                                    );
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

/// Sends `due` to the event loop after `grace`: how a lookup's grace window ends (a timer, not
/// test synchronisation). Nothing is sent if the loop is gone by then.
fn due_after(cmd: &tokio::sync::mpsc::Sender<Command>, grace: std::time::Duration, due: Command) {
    let cmd = cmd.clone();
    tokio::spawn(async move {
        tokio::time::sleep(grace).await;
        let _ = cmd.send(due).await;
    });
}
