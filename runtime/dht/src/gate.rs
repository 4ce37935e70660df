//! Which peers are down, and a behaviour that refuses to dial them.
//!
//! A killed peer's TCP port refuses at once, but its QUIC port stays silent until the handshake
//! times out, and other nodes keep returning it from their routing tables. Without this gate
//! every Kademlia query and shard request that meets the dead peer waits for that timeout.
//! With it, a peer that could not be reached is not dialled again for a while (doubling while
//! it stays unreachable), so each dead peer costs one slow dial per period, not one per query.
//! Inbound connections are always accepted: a restarted peer is back as soon as it connects.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use libp2p::core::Endpoint;
use libp2p::core::transport::PortUse;
use libp2p::swarm::{
    ConnectionClosed, ConnectionDenied, ConnectionId, DialFailure, FromSwarm, NetworkBehaviour,
    THandler, THandlerInEvent, THandlerOutEvent, ToSwarm, dummy,
};
use libp2p::{Multiaddr, PeerId};

/// The longest a peer is treated as down before it is dialled again.
pub const MAX_DOWN: Duration = Duration::from_secs(300);

/// Above this many down peers, each new one prunes the forgotten ones.
const PRUNE_AT: usize = 1024;

/// A peer that could not be reached, and for how long it is not dialled again.
#[derive(Debug)]
struct Down {
    until: Instant,
    period: Duration,
}

impl Down {
    fn active(&self) -> bool {
        Instant::now() < self.until
    }
}

/// Tracks connected and unreachable peers; denies outbound dials to the unreachable ones.
#[derive(Debug)]
pub(crate) struct Gate {
    base: Duration,
    down: HashMap<PeerId, Down>,
    connected: HashSet<PeerId>,
}

impl Gate {
    /// `base`: how long a peer stays down the first time.
    pub(crate) fn new(base: Duration) -> Self {
        Self {
            base,
            down: HashMap::new(),
            connected: HashSet::new(),
        }
    }

    /// Whether `peer` is unreachable (and not connected): requests to it fail at once.
    pub(crate) fn is_down(&self, peer: &PeerId) -> bool {
        !self.connected.contains(peer) && self.down.get(peer).is_some_and(Down::active)
    }

    /// Records that `peer` cannot be reached: for `base` the first time, twice as long as last
    /// time when a dial after the previous period failed too.
    pub(crate) fn mark_down(&mut self, peer: PeerId) {
        if self.connected.contains(&peer) {
            return;
        }
        let base = self.base;
        let now = Instant::now();
        let entry = self.down.entry(peer).or_insert(Down {
            until: now,
            period: Duration::ZERO,
        });
        if !entry.active() {
            entry.period = (entry.period * 2).clamp(base, MAX_DOWN.max(base));
            entry.until = now + entry.period;
        }
        if self.down.len() > PRUNE_AT {
            self.prune(now);
        }
    }

    /// Forgets peers whose down period ended longer ago than it lasted: a flood of made-up
    /// peer ids must not grow the map for good. A forgotten peer starts again at `base`.
    fn prune(&mut self, now: Instant) {
        self.down.retain(|_, d| now < d.until + d.period);
    }
}

impl NetworkBehaviour for Gate {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_outbound_connection(
        &mut self,
        _connection_id: ConnectionId,
        maybe_peer: Option<PeerId>,
        _addresses: &[Multiaddr],
        _effective_role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        match maybe_peer {
            Some(p) if self.is_down(&p) => Err(ConnectionDenied::new(PeerDown(p))),
            _ => Ok(Vec::new()),
        }
    }

    fn handle_established_inbound_connection(
        &mut self,
        _connection_id: ConnectionId,
        _peer: PeerId,
        _local_addr: &Multiaddr,
        _remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _connection_id: ConnectionId,
        _peer: PeerId,
        _addr: &Multiaddr,
        _role_override: Endpoint,
        _port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm<'_>) {
        match event {
            FromSwarm::ConnectionEstablished(e) => {
                self.down.remove(&e.peer_id);
                self.connected.insert(e.peer_id);
            }
            FromSwarm::ConnectionClosed(ConnectionClosed {
                peer_id,
                remaining_established: 0,
                ..
            }) => {
                self.connected.remove(&peer_id);
                self.mark_down(peer_id);
            }
            FromSwarm::DialFailure(DialFailure {
                peer_id: Some(p), ..
            }) => self.mark_down(p),
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _peer: PeerId,
        _connection_id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _cx: &mut Context<'_>) -> Poll<ToSwarm<Infallible, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

/// Why a dial was refused.
#[derive(Debug, thiserror::Error)]
#[error("peer {0} is down; not dialling it again yet")]
struct PeerDown(PeerId);

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> PeerId {
        libp2p::identity::Keypair::generate_ed25519()
            .public()
            .to_peer_id()
    }

    #[test]
    fn down_periods_double_and_are_capped() {
        let mut g = Gate::new(Duration::from_secs(10));
        let p = peer();
        assert!(!g.is_down(&p));
        g.mark_down(p);
        assert!(g.is_down(&p));
        assert_eq!(g.down[&p].period, Duration::from_secs(10));
        // Still down: a second failure does not extend the period.
        g.mark_down(p);
        assert_eq!(g.down[&p].period, Duration::from_secs(10));
        // Expired, and the next dial failed: twice as long, then capped.
        for expect in [20, 40, 80, 160, 300, 300] {
            g.down.get_mut(&p).unwrap().until = Instant::now();
            assert!(!g.is_down(&p));
            g.mark_down(p);
            assert_eq!(g.down[&p].period, Duration::from_secs(expect));
        }
    }

    #[test]
    fn long_forgotten_peers_are_pruned() {
        let mut g = Gate::new(Duration::from_secs(10));
        let old: Vec<PeerId> = (0..PRUNE_AT).map(|_| peer()).collect();
        for p in &old {
            g.mark_down(*p);
            // Its period ended twice its length ago.
            let d = g.down.get_mut(p).unwrap();
            d.until = Instant::now() - 2 * d.period;
        }
        assert_eq!(g.down.len(), PRUNE_AT);
        let fresh = peer();
        g.mark_down(fresh);
        assert_eq!(g.down.len(), 1);
        assert!(g.is_down(&fresh));
    }

    #[test]
    fn a_connected_peer_is_never_down() {
        let mut g = Gate::new(Duration::from_secs(10));
        let p = peer();
        g.mark_down(p);
        g.connected.insert(p);
        assert!(!g.is_down(&p));
        g.mark_down(p);
        g.connected.clear();
        // The old entry is still there until a connection is established (which removes it).
        assert!(g.is_down(&p));
    }
}
