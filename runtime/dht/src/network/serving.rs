//! What inbound requests being answered hold: counts and response bytes per peer and in
//! total, so a reader that never reads its replies pins a bounded amount.

use std::collections::HashMap;

use libp2p::PeerId;
use libp2p::request_response::{InboundRequestId, ResponseChannel};
use libp2p::swarm::ConnectionId;

use crate::protocol::Response;

/// Inbound requests from their arrival until their answer is fully sent (or fails): what a
/// peer is being served, counted per peer and in bytes.
#[derive(Default)]
pub(super) struct Serving {
    pub(super) requests: HashMap<InboundRequestId, Served>,
    /// Requests and bytes per peer.
    pub(super) per_peer: HashMap<PeerId, (usize, usize)>,
    /// Bytes of requests being served and of answers handed to libp2p and not yet sent.
    pub(super) bytes: usize,
    /// Refusals as busy since start.
    pub(super) busy: u64,
}

pub(super) struct Served {
    pub(super) peer: PeerId,
    pub(super) connection: ConnectionId,
    /// Until the application answers.
    pub(super) channel: Option<ResponseChannel<Response>>,
    /// Bytes held for it: the request's shard until it is answered, then the answer's.
    pub(super) bytes: usize,
}

/// The share of [`Config::max_response_bytes`] one peer may hold: a few slow readers must not
/// take all of it.
pub(super) const PEER_SHARE: usize = 8;

impl Serving {
    pub(super) fn of_peer(&self, peer: &PeerId) -> usize {
        self.per_peer.get(peer).map_or(0, |p| p.0)
    }

    pub(super) fn bytes_of_peer(&self, peer: &PeerId) -> usize {
        self.per_peer.get(peer).map_or(0, |p| p.1)
    }

    pub(super) fn start(
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
    pub(super) fn hold(&mut self, id: InboundRequestId, bytes: usize) {
        let Some(r) = self.requests.get_mut(&id) else {
            return;
        };
        if let Some(p) = self.per_peer.get_mut(&r.peer) {
            p.1 = p.1 - r.bytes + bytes;
        }
        self.bytes = self.bytes - r.bytes + bytes;
        r.bytes = bytes;
    }

    pub(super) fn end(&mut self, id: InboundRequestId) {
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

    pub(super) fn connection_closed(&mut self, connection: ConnectionId) {
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
