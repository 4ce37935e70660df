//! Serving peers: shard requests answered under a bounded number of permits, and what
//! a `Store` must pass before its bytes are kept.

use std::sync::Arc;

use tokio::sync::mpsc;
use zhtp_dht::protocol::MAX_SHARD;
use zhtp_dht::{Inbound, PeerId, Request, Response};
use zhtp_store::Cf;
use zhtp_types::Hash;

use super::{Error, Inner, Node, blocking, held_key};

/// Shard requests answered at once. A request waits for a permit before it is taken from the
/// network's inbound queue, so when every permit is busy the queue fills and the network task
/// refuses further requests as busy at once, instead of this node spawning without bound.
const SERVE_CONCURRENCY: usize = 32;

/// How a node refusing a shard because another one holds its place says so (a re-put of the
/// content with a new key, before collection): the placer then tries other nodes for this
/// shard and still offers this node the others.
pub(super) const OTHER_SHARD: &str = "holds another shard at that place";

pub(super) async fn serve(node: std::sync::Weak<Inner>, mut inbound: mpsc::Receiver<Inbound>) {
    let permits = Arc::new(tokio::sync::Semaphore::new(SERVE_CONCURRENCY));
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let Some(req) = inbound.recv().await else {
            break;
        };
        let Some(inner) = node.upgrade() else { break };
        let node = Node { inner };
        tokio::spawn(async move {
            let _permit = permit;
            let Inbound {
                peer,
                request,
                reply,
            } = req;
            let response = node.answer(peer, request).await;
            match &response {
                // Expected during a re-put with a new key, until collection: not a warning.
                Response::Refused(why) if why.contains(OTHER_SHARD) => {
                    tracing::debug!(%peer, "refused a shard request: {why}");
                }
                Response::Refused(why) => tracing::warn!(%peer, "refused a shard request: {why}"),
                _ => {}
            }
            reply.send(response).await;
        });
    }
}

impl Node {
    async fn answer(&self, peer: PeerId, request: Request) -> Response {
        match request {
            Request::Store {
                content,
                segment,
                index,
                hash,
                data,
            } => {
                if data.len() > MAX_SHARD {
                    return Response::Refused(format!(
                        "shard of {} bytes is too large",
                        data.len()
                    ));
                }
                if Hash(*blake3::hash(&data).as_bytes()) != hash {
                    return Response::Refused("shard does not match its hash".into());
                }
                match self
                    .keep(Some(peer), content, segment, index, hash, data)
                    .await
                {
                    Ok(()) => Response::Stored,
                    Err(e) => Response::Refused(e.to_string()),
                }
            }
            Request::Fetch { hash } => {
                let store = self.inner.store.clone();
                match tokio::task::spawn_blocking(move || store.shard(&hash)).await {
                    Ok(Ok(Some(bytes))) => Response::Shard(bytes),
                    Ok(Ok(None)) => Response::NotFound,
                    Ok(Err(zhtp_store::Error::Corrupt(h))) => {
                        tracing::warn!(shard = %h, "corrupt shard on disk; not served");
                        Response::NotFound
                    }
                    Ok(Err(e)) => Response::Refused(e.to_string()),
                    Err(e) => Response::Refused(e.to_string()),
                }
            }
            Request::Audit {
                content,
                segment,
                index,
                nonce,
                ranges,
            } => {
                let node = self.clone();
                let challenge = zhtp_economy::audit::Challenge { nonce, ranges };
                match blocking(move || node.answer_audit(content, segment, index, &challenge)).await
                {
                    Ok(Ok(d)) => Response::Audited(d),
                    Ok(Err(e)) | Err(e) => Response::Refused(e.to_string()),
                }
            }
            Request::Offer { contract } => {
                let node = self.clone();
                match blocking(move || node.accept_offer(&contract)).await {
                    Ok(Ok(sig)) => Response::Signed(sig),
                    Ok(Err(e)) | Err(e) => Response::Refused(e.to_string()),
                }
            }
            Request::Contract(bytes) => self.serve_contract(peer, &bytes).await,
            Request::Prove {
                content,
                segment,
                index,
                circuit,
                root,
                blocks,
                nonce,
            } => {
                let commitment = zhtp_proofs::Commitment {
                    root,
                    blocks,
                    depth: super::CIRCUIT.depth,
                };
                self.answer_prove(content, segment, index, circuit, commitment, nonce, peer)
                    .await
            }
            Request::Inventory { content } => {
                let node = self.clone();
                match blocking(move || node.inventory(&content)).await {
                    Ok(Ok(v)) => Response::Inventory(v),
                    Ok(Err(e)) | Err(e) => Response::Refused(e.to_string()),
                }
            }
        }
    }

    /// Stores a shard offered by `from` (`None`: this node) durably with its index entry, if
    /// the admission lets it in, then announces the content. A shard already held is not
    /// written again.
    pub(super) async fn keep(
        &self,
        from: Option<PeerId>,
        content: Hash,
        segment: u32,
        index: u16,
        hash: Hash,
        data: Vec<u8>,
    ) -> Result<(), Error> {
        let node = self.clone();
        blocking(move || -> Result<(), Error> {
            let (store, admission) = (&node.inner.store, &node.inner.admission);
            let _positions = node
                .inner
                .positions
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let position = held_key(&content, segment, index);
            // A position already recorded: another shard may not take the place of the one
            // there (it would drop out of the inventory); the same shard again is a no-op,
            // unless its bytes are gone here (a lost pack, a deleted entry): then this stores
            // them again. The position was admitted and counted when it was first stored.
            // Only an index lookup: a peer repeating a store must not make this node read
            // shards (damaged bytes are found, and rebuilt, when they are read).
            if let Some(v) = store.get(Cf::Index, &position)? {
                if v.get(..32) != Some(hash.as_bytes()) {
                    return Err(Error::Invalid(format!(
                        "segment {segment} shard {index} of {content}: this node {OTHER_SHARD}"
                    )));
                }
                if !store.contains(Cf::Shards, hash.as_bytes())? {
                    tracing::warn!(%content, segment, index, "a shard held here was lost; stored again");
                    let mut b = store.batch();
                    store.put_shard(&mut b, &hash, &data)?;
                    store.write(b)?;
                    node.inner.dht.changed();
                }
                return Ok(());
            }
            if from.is_some() && node.charges() && !node.covered(&content, segment, index, &hash)? {
                return Err(Error::Invalid(format!(
                    "no storage contract kept here pays for shard {index} of segment {segment} \
                     of {content}: this node stores paid shards only"
                )));
            }
            if from.is_some() && node.charges() {
                node.check_commitments(&content, segment, index, &hash, &data)?;
            }
            let ticket = admission.admit(from, &position, &hash, data.len() as u64)?;
            let mut b = store.batch();
            if ticket.write_bytes() {
                store.put_shard(&mut b, &hash, &data)?;
            }
            ticket.record(&mut b)?;
            let mut v = hash.as_bytes().to_vec();
            v.extend_from_slice(&(data.len() as u32).to_le_bytes());
            store.put(&mut b, Cf::Index, &position, &v)?;
            store.write(b)?;
            ticket.written();
            node.inner.dht.changed();
            Ok(())
        })
        .await??;
        self.announce(content);
        Ok(())
    }
}
