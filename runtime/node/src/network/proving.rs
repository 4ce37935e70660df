//! Proof audits (`zhtp_proofs`): a shard whose placement carries a Poseidon commitment is
//! audited by asking its holder for a Groth16 proof that it keeps the blocks a fresh nonce
//! samples, bound to its own key, instead of a BLAKE3 digest over prepared ranges. Such audits
//! never run out (no challenge is prepared), and checking one needs only the contract and the
//! public verifying key, not the shard.
//!
//! The holder proves off the serving path: it answers only for a shard a contract it keeps
//! commits to with exactly that root, one request per peer at a time, at most [`MAX_PROVING`]
//! admitted and one proved at a time (a proof uses every core for about a second); more are
//! refused as busy. A missing, invalid or late proof is data loss; no answer at all, or a
//! holder that cannot prove for its own reasons (its keys), is unavailability.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use zhtp_dht::{Request, Response};
use zhtp_economy::audit::{Outcome, ProofAudit};
use zhtp_economy::contract::{StorageContract, Violation};
use zhtp_proofs::{CircuitId, Commitment, Keys, Proof, Shape, Statement, Tree};
use zhtp_types::Hash;

use super::{Error, Node, blocking};

/// Proof requests admitted at once (one proving, the rest waiting); more are refused as busy.
pub(super) const MAX_PROVING: usize = 4;

/// The circuit proof audits use.
pub const CIRCUIT: Shape = Shape::DEVNET;

/// The keys, once per process: loaded from the first node's data dir (`keys/`), or made by the
/// devnet setup and saved there; checked against the pinned verifying key either way.
fn keys(dir: &Path) -> Result<Arc<Keys>, Error> {
    static KEYS: Mutex<Option<Arc<Keys>>> = Mutex::new(None);
    let mut k = KEYS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(k) = &*k {
        return Ok(k.clone());
    }
    let loaded = Arc::new(
        Keys::load_or_setup(&dir.join("keys"), CIRCUIT, None)
            .map_err(|e| Error::Task(format!("proof keys: {e}")))?,
    );
    *k = Some(loaded.clone());
    Ok(loaded)
}

/// Commitments to the shards of one segment, for [`CIRCUIT`] (`None` for a shard too large:
/// it is audited by digests only).
pub(super) fn commit(shards: &[&[u8]]) -> Vec<Option<Commitment>> {
    shards
        .iter()
        .map(|s| match Tree::build(s, CIRCUIT.depth) {
            Ok(t) => Some(t.commitment()),
            Err(e) => {
                tracing::warn!(
                    "a shard is not committed for proof audits (digest audits only): {e}"
                );
                None
            }
        })
        .collect()
}

/// Test hooks: how a holder misbehaves when asked for a proof.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Lapse {
    /// None: it proves from its shard.
    #[default]
    None,
    /// It kept each shard's tree but lost the second half of its bytes (zeros), and proves
    /// anyway from what it has: a proof passes only if no sample falls in that half.
    LostHalf,
}

impl Node {
    /// Refuses an offer whose commitment for one of this node's shards does not fit the
    /// circuit this node proves in: it could never pass an audit under it.
    pub(super) fn check_offered_commitments(&self, c: &StorageContract) -> Result<(), Error> {
        let me = self.provider_key();
        for p in c.terms().shards.iter().filter(|p| p.holder == me) {
            if let Some(commitment) = p.proof {
                commitment.check(CIRCUIT).map_err(|e| {
                    Error::Invalid(format!(
                        "the commitment of shard {} of segment {}: {e}",
                        p.index, p.segment
                    ))
                })?;
            }
        }
        Ok(())
    }

    /// The commitments the contracts kept here name for this node's shard `hash` at this
    /// position. Blocking.
    fn commitments_here(
        &self,
        content: &Hash,
        segment: u32,
        index: u16,
        hash: &Hash,
    ) -> Result<Vec<Commitment>, Error> {
        let me = self.provider_key();
        Ok(self
            .inner
            .book
            .covering(content, segment, index, hash)
            .map_err(super::audits::economy)?
            .iter()
            .flat_map(|c| {
                c.terms()
                    .shards
                    .iter()
                    .filter(|p| (p.segment, p.index, p.holder) == (segment, index, me))
                    .filter_map(|p| p.proof)
                    .collect::<Vec<_>>()
            })
            .collect())
    }

    /// Refuses a shard arriving for a position where a contract kept here commits it, for this
    /// node, to a root its bytes do not have: a client that wrote a wrong root would make every
    /// proof this node makes under that contract fail, and keep half of what it owes. Costs a
    /// tree (about 0.26 s per MiB) only for committed shards. Blocking.
    pub(super) fn check_commitments(
        &self,
        content: &Hash,
        segment: u32,
        index: u16,
        hash: &Hash,
        data: &[u8],
    ) -> Result<(), Error> {
        let named = self.commitments_here(content, segment, index, hash)?;
        if named.is_empty() {
            return Ok(());
        }
        let actual = Tree::build(data, CIRCUIT.depth)
            .map_err(|e| Error::Invalid(format!("a committed shard: {e}")))?
            .commitment();
        if let Some(wrong) = named.iter().find(|c| **c != actual) {
            return Err(Error::Invalid(format!(
                "a storage contract commits shard {index} of segment {segment} of {content} to \
                 root {} over {} blocks, but its bytes give {} over {}: not stored",
                hex::encode(wrong.root),
                wrong.blocks,
                hex::encode(actual.root),
                actual.blocks
            )));
        }
        Ok(())
    }

    /// Makes this node answer proof audits as `lapse` says. Tests only.
    #[doc(hidden)]
    pub fn set_lapse(&self, lapse: Lapse) {
        *self
            .inner
            .lapse
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = lapse;
    }

    /// The holder's answer to a [`Request::Prove`] from `from`.
    // The request's fields and the asker: a struct would only rename them.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn answer_prove(
        &self,
        content: Hash,
        segment: u32,
        index: u16,
        circuit: u32,
        commitment: Commitment,
        nonce: [u8; 16],
        from: zhtp_dht::PeerId,
    ) -> Response {
        use zhtp_dht::protocol::BUSY;
        let Ok(_admitted) = self.inner.proving.clone().try_acquire_owned() else {
            return Response::Refused(format!("{BUSY}: {MAX_PROVING} proofs already asked for"));
        };
        // One proof in flight per asking peer: a peer cannot take every slot.
        struct InFlight<'a>(
            &'a Mutex<std::collections::HashSet<zhtp_dht::PeerId>>,
            zhtp_dht::PeerId,
        );
        impl Drop for InFlight<'_> {
            fn drop(&mut self) {
                self.0
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .remove(&self.1);
            }
        }
        let peers = &self.inner.proving_peers;
        if !peers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(from)
        {
            return Response::Refused(format!("{BUSY}: a proof for this peer is under way"));
        }
        let _in_flight = InFlight(peers, from);
        if CircuitId(circuit) != CIRCUIT.id() {
            return Response::Refused(format!(
                "this node proves in circuit {}, not {}",
                CIRCUIT.id(),
                CircuitId(circuit)
            ));
        }
        // One proof at a time: it uses every core.
        let _proving = self.inner.prover.lock().await;
        // This node's own failure to prove (its keys, a lost task) is not the shard's: said as
        // busy, it counts as unavailability, not as data loss.
        let keys = match blocking({
            let dir = self.inner.data_dir.clone();
            move || keys(&dir)
        })
        .await
        {
            Ok(Ok(k)) => k,
            Ok(Err(e)) | Err(e) => return Response::Refused(format!("{BUSY}: {e}")),
        };
        let node = self.clone();
        match blocking(move || node.prove_held(&keys, content, segment, index, commitment, nonce))
            .await
        {
            Ok(Ok(p)) => Response::Proved(p.bytes),
            Ok(Err(e)) => Response::Refused(e.to_string()),
            Err(e) => Response::Refused(format!("{BUSY}: {e}")),
        }
    }

    /// Proves that this node keeps the shard at this position. Blocking.
    fn prove_held(
        &self,
        keys: &Keys,
        content: Hash,
        segment: u32,
        index: u16,
        commitment: Commitment,
        nonce: [u8; 16],
    ) -> Result<Proof, Error> {
        let (hash, not_held) = self.held_shard(content, segment, index)?;
        // Only for a commitment a contract this node keeps names for it at this position: a
        // peer asking about made-up roots costs a lookup, not a proof.
        if !self
            .commitments_here(&content, segment, index, &hash)?
            .contains(&commitment)
        {
            return Err(Error::Invalid(format!(
                "no storage contract kept here commits shard {index} of segment {segment} of \
                 {content} to that root"
            )));
        }
        let mut shard = self.inner.store.shard(&hash)?.ok_or_else(not_held)?;
        let lapse = *self
            .inner
            .lapse
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let statement = Statement {
            commitment,
            nonce,
            holder: self.provider_key(),
        };
        let proof = |e: zhtp_proofs::Error| Error::Invalid(format!("proof: {e}"));
        if lapse == Lapse::LostHalf {
            // It kept its tree (every leaf hash and node) but not the second half's bytes.
            let tree = Tree::build(&shard, CIRCUIT.depth).map_err(proof)?;
            let half = shard.len() / 2;
            shard[half..].fill(0);
            return keys
                .prove_unchecked(&statement, &shard, &tree)
                .map_err(proof);
        }
        let tree = Tree::build(&shard, CIRCUIT.depth).map_err(proof)?;
        if tree.commitment() != commitment {
            return Err(Error::Invalid(
                "this node's shard does not match the contract's commitment".into(),
            ));
        }
        keys.prove(&statement, &shard, &tree).map_err(proof)
    }

    /// A proof audit of `provider` on the shard at `(segment, index)` of `c`, committed to by
    /// `commitment`: the outcome and what `storage-contract show` lists.
    pub(super) async fn proof_audit(
        &self,
        c: &StorageContract,
        provider: [u8; 32],
        peer: zhtp_dht::PeerId,
        (segment, index): (u32, u16),
        commitment: Commitment,
    ) -> Result<ProofAudit, Error> {
        let mut nonce = [0u8; 16];
        getrandom::fill(&mut nonce).map_err(|e| Error::Task(format!("no randomness: {e}")))?;
        let content = c.terms().content;
        let config = self.audit_config();
        let circuit = CIRCUIT.id();
        let started = Instant::now();
        let answer: Result<Response, String> = if peer == self.peer_id() {
            Ok(self
                .answer_prove(content, segment, index, circuit.0, commitment, nonce, peer)
                .await)
        } else {
            let req = Request::Prove {
                content,
                segment,
                index,
                circuit: circuit.0,
                root: commitment.root,
                blocks: commitment.blocks,
                nonce,
            };
            // Past the deadline a proof is late (data loss); past patience more, no answer.
            let wait = config.proof_deadline + config.patience;
            match tokio::time::timeout(wait, self.inner.dht.request(peer, req)).await {
                Ok(r) => r.map_err(|e| e.to_string()),
                Err(_) => Err("no answer in time".into()),
            }
        };
        let took = started.elapsed();
        let answer_ms = u32::try_from(took.as_millis()).unwrap_or(u32::MAX);
        let mut detail = ProofAudit {
            segment,
            index,
            circuit: circuit.0,
            nonce,
            outcome: Outcome::Passed {
                latency_ms: answer_ms,
            },
            answer_ms,
            verify_us: 0,
            problem: None,
        };
        let lost = Outcome::Failed(Violation::DataLoss);
        match answer {
            Ok(Response::Proved(bytes)) => {
                let statement = Statement {
                    commitment,
                    nonce,
                    holder: provider,
                };
                let dir = self.inner.data_dir.clone();
                let (verdict, verify) = blocking(move || {
                    let keys = keys(&dir)?;
                    let t = Instant::now();
                    let v = keys.verify(&statement, &Proof { circuit, bytes });
                    Ok::<_, Error>((v, t.elapsed()))
                })
                .await??;
                detail.verify_us = u32::try_from(verify.as_micros()).unwrap_or(u32::MAX);
                if let Err(e) = verdict {
                    detail.outcome = lost;
                    detail.problem = Some(e.to_string());
                } else if took > config.proof_deadline {
                    detail.outcome = lost;
                    detail.problem = Some(format!(
                        "late: {answer_ms} ms, the deadline is {} ms",
                        config.proof_deadline.as_millis()
                    ));
                }
            }
            Ok(Response::Refused(why)) if !why.contains(zhtp_dht::protocol::BUSY) => {
                detail.outcome = lost;
                detail.problem = Some(why);
            }
            Ok(Response::Refused(why)) => {
                detail.outcome = Outcome::Failed(Violation::Unavailability);
                detail.problem = Some(why);
            }
            Ok(_) => {
                detail.outcome = lost;
                detail.problem = Some("answered without a proof".into());
            }
            Err(why) => {
                detail.outcome = Outcome::Failed(Violation::Unavailability);
                detail.problem = Some(why);
            }
        }
        Ok(detail)
    }
}

/// How long a proof may take by default: proving 10 samples takes about a second on two
/// cores in a release build, and a node's first proof loads (or sets up) the keys. So, unlike
/// the digest audit's 500 ms, this deadline does not catch a holder that fetches its shard
/// from others when asked: a proof shows possession when it is made, not all along.
pub const PROOF_DEADLINE: Duration = Duration::from_secs(30);
