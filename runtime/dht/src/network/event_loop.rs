//! The task that owns the swarm: commands from the [`super::Dht`] handle in, swarm events
//! handled, answers sent back on oneshots.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use libp2p::kad::{self, QueryId, Record};
use libp2p::request_response::OutboundRequestId;
use libp2p::{Multiaddr, PeerId, Swarm};
use tokio::sync::{mpsc, oneshot, watch};

use super::serving::Serving;
use super::{Behaviour, Command, Config, Error, Inbound};
use crate::persist::PersistentStore;
use crate::protocol::Response;
use crate::record::{self, Opened, RecordError};

/// How long a provider lookup goes on after its first providers were found.
pub(super) const PROVIDERS_GRACE: Duration = Duration::from_millis(250);

/// How long a record lookup goes on after its first record was found, for a newer version of
/// it from another peer.
pub(super) const RECORDS_GRACE: Duration = Duration::from_millis(100);

/// Where the answer to a pending query goes.
pub(super) type Reply<T> = oneshot::Sender<Result<T, Error>>;

pub(super) struct EventLoop {
    pub(super) swarm: Swarm<Behaviour>,
    pub(super) cfg: Config,
    pub(super) cmd_tx: mpsc::Sender<Command>,
    pub(super) inbound: mpsc::Sender<Inbound>,
    pub(super) listen_tx: watch::Sender<Vec<Multiaddr>>,
    pub(super) conn_tx: watch::Sender<usize>,
    /// Ticks when the record store, the refusal count or the connections change.
    /// The only strong reference: when the loop ends, [`crate::Dht::changes`] closes.
    pub(super) changes: Arc<watch::Sender<u64>>,
    pub(super) serving: Serving,
    pub(super) requests: HashMap<OutboundRequestId, oneshot::Sender<Result<Response, Error>>>,
    /// Record lookups: the best record found so far, and where the answer goes.
    pub(super) get_records: HashMap<QueryId, (Option<Opened>, Reply<Opened>)>,
    pub(super) put_records: HashMap<QueryId, oneshot::Sender<Result<(), Error>>>,
    pub(super) providers: HashMap<QueryId, (HashSet<PeerId>, Reply<HashSet<PeerId>>)>,
    pub(super) closest: HashMap<QueryId, Reply<(Vec<PeerId>, u32)>>,
    pub(super) rtt: HashMap<PeerId, Duration>,
    pub(super) refused_records: u64,
    pub(super) inbound_failures: u64,
    pub(super) established: u64,
    pub(super) refused_messages: Arc<std::sync::atomic::AtomicU64>,
}

impl EventLoop {
    pub(super) async fn run(mut self, mut cmds: mpsc::Receiver<Command>) {
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

    /// Tells whoever waits on [`crate::Dht::changes`] that something observable changed.
    pub(super) fn changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A record from the network refused.
    pub(super) fn refused_record(&mut self) {
        self.refused_records += 1;
        self.changed();
    }

    pub(super) fn kad(&mut self) -> &mut kad::Behaviour<PersistentStore> {
        &mut self.swarm.behaviour_mut().kad
    }

    /// Checks `record` (signature, expiry, payload) and that it may replace what is held under
    /// its key: the same publisher with a higher sequence number, or nothing live is held.
    pub(super) fn admit_record(&mut self, record: &Record) -> Result<Opened, RecordError> {
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
    pub(super) fn keep_record(&mut self, mut record: Record) -> Result<(), RecordError> {
        use kad::store::RecordStore as _;
        let opened = self.admit_record(&record)?;
        let signed = record::expiry_instant(opened.expires);
        record.expires = Some(record.expires.map_or(signed, |e| e.min(signed)));
        if let Err(e) = self.kad().store_mut().put(record) {
            tracing::warn!("cannot keep a record: {e}");
        }
        self.changed();
        Ok(())
    }

    /// Answers a record lookup with the best record it found (or `none`, when it found none)
    /// and stops it.
    pub(super) fn finish_record(&mut self, id: QueryId, none: Error) {
        if let Some((best, tx)) = self.get_records.remove(&id) {
            let _ = tx.send(best.ok_or(none));
        }
        if let Some(mut q) = self.kad().query_mut(&id) {
            q.finish();
        }
    }

    /// Answers a provider lookup with what it has found and stops it.
    pub(super) fn finish_providers(&mut self, id: QueryId) {
        if let Some((set, tx)) = self.providers.remove(&id) {
            let _ = tx.send(Ok(set));
        }
        if let Some(mut q) = self.kad().query_mut(&id) {
            q.finish();
        }
    }
}
