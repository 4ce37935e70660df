//! Smart contracts through the DHT: code as signed records, each instance kept by the
//! [`REPLICAS`] live nodes closest to its address, every call run on all of them and accepted
//! when a majority agree on (answer, state version, state root, gas).
//!
//! **Code.** `deploy` validates the wasm, keeps it, and publishes it as the record
//! `zhtp/c/` + BLAKE3(wasm): every node checks the payload hashes to its key before storing or
//! serving it, so whoever publishes, the code under a hash is that code. A replica missing a
//! code fetches it from there and validates it before running it.
//!
//! **Calls.** The node a user talks to coordinates (it keeps nothing itself unless it is a
//! replica). The caller a contract sees is that node's Ed25519 key, taken from the
//! authenticated connection, never from the message. An execute first asks every replica its
//! state version and root, and names the version most of them are at (`at`). It goes to the
//! *primary*, the replica closest to the address, and only there. The coordinator signs the
//! call (address, version, caller, time, gas, message hash); the primary applies one call per
//! version (compare-and-swap) and signs it too. The other replicas apply a call only with the
//! caller's signature and that of the replica *they* see as primary, and only at the version it
//! names. So while the replicas see the same primary, of two concurrent executes made against
//! the same version only one is applied anywhere (the other comes back stale and is retried
//! against the next version), a peer sending calls to replicas directly gets them refused, and
//! a lying primary cannot make up a call or its caller. Each replica keeps the last call it
//! committed: when a coordinator stops between the primary and the others, the next one
//! forwards the primary's to the replicas one version behind (a new primary signs its
//! predecessor's call again). A majority is [`MAJORITY`] of [`REPLICAS`], whatever number of
//! replicas a node sees.
//!
//! Nodes whose views of the closest live nodes differ (a partial partition) can each see a
//! different primary; calls acknowledged on both sides are then not all kept when the views
//! heal: the replicas take the state a majority holds. An agreed primary (a lease or ballot
//! signed by a majority) would close this; it is not built.
//!
//! **Divergence.** Answers that differ from the majority's are reported with the result, never
//! hidden, and the replicas that gave them are told to check themselves. A replica checking
//! itself asks the replicas *it* sees for their versions and roots (a coordinator's word is
//! never enough). When a majority agree on a later version than its own, or on another state at
//! its own version, it replays the primary's last signed call (one version behind) or pulls the
//! state page by page from one of them, and installs it only if it hashes to the agreed root and
//! its own instance has not moved meanwhile. It never goes back to an earlier version. With no
//! majority at all (a primary that left reached only some replicas), it steps one version
//! forward with the last call of a replica one ahead, signed by its caller and a primary. The same
//! check runs for every kept instance in each repair round, which also brings the state onto a
//! node that became a replica (one left, or a closer one joined).

use std::collections::HashSet;
use std::sync::PoisonError;

use futures::future::join_all;
use serde::{Deserialize, Serialize};
use zhtp_dht::{PeerId, REPLICAS, Request, Response};
use zhtp_host::ContractError;
use zhtp_types::Hash;

use super::{Error, MANIFEST_TTL, Node, blocking, by_distance, ed25519_of};
use crate::smart::{self, Instance, Pair};

/// Record key prefix of contract code.
pub const CODE_KEY: &[u8] = b"zhtp/c/";
/// How far the time a call names may be from the clock of the replica that accepts it (the
/// primary for an execute), in seconds. The others run the call with the time it accepted, so
/// they agree.
pub const MAX_SKEW: u64 = 300;
/// State bytes per page when a replica catches up.
const PAGE_BYTES: usize = 256 << 10;
/// Largest state a replica pulls when it catches up (it holds it in memory to check its root
/// before it writes anything).
pub const MAX_STATE: usize = 64 << 20;
/// Times an execute is made again after another one took the version it was made against, or
/// after its primary caught up.
const STALE_RETRIES: usize = 8;
/// What a pulled pair costs beyond its bytes (two vectors), counted against [`MAX_STATE`].
const PAIR_OVERHEAD: usize = 64;
/// Checks waiting on a node: a peer asking for more gets them ignored.
const MAX_CHECKS: usize = 64;
/// Contract requests from peers answered at once (each may run a call of up to the ABI's gas
/// limit).
const PEER_RUNS: usize = 4;

/// A check to make, and who waits for its outcome (`true`: caught up), if anyone.
type CheckJob = (Hash, Option<tokio::sync::oneshot::Sender<bool>>);

/// The checks replicas were told to make, run one at a time by [`checker`].
pub(super) struct Checks {
    pending: std::sync::Mutex<HashSet<Hash>>,
    queue: tokio::sync::mpsc::Sender<CheckJob>,
    /// Held by a running catch-up.
    running: tokio::sync::Mutex<()>,
    /// Contract requests from peers being answered.
    peer_runs: tokio::sync::Semaphore,
}

impl Checks {
    /// The queue, and what [`checker`] takes from it.
    pub(super) fn new() -> (Self, tokio::sync::mpsc::Receiver<CheckJob>) {
        let (queue, rx) = tokio::sync::mpsc::channel(MAX_CHECKS);
        let pending = std::sync::Mutex::default();
        let running = tokio::sync::Mutex::new(());
        (
            Self {
                pending,
                queue,
                running,
                peer_runs: tokio::sync::Semaphore::new(PEER_RUNS),
            },
            rx,
        )
    }
}

/// Runs the checks replicas were told to make, until the node is dropped. A task of its own:
/// a check asks replicas, which may answer with a check.
pub(super) async fn checker(
    node: std::sync::Weak<super::Inner>,
    mut queue: tokio::sync::mpsc::Receiver<CheckJob>,
) {
    while let Some((address, waiting)) = queue.recv().await {
        let Some(inner) = node.upgrade() else { break };
        let node = Node { inner };
        // Taken off before the check: one asked for while it runs is made again after it.
        node.inner
            .checks
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&address);
        let caught_up = node.catch_up(address).await.unwrap_or_else(|e| {
            tracing::warn!(%address, "contract check failed: {e}");
            false
        });
        if let Some(w) = waiting {
            let _ = w.send(caught_up);
        }
    }
}

/// Why a contract operation through the network failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SmartError {
    /// The code is not a valid contract, or the message is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// No node has this code.
    #[error("no contract code {0}: deploy it first (zhtp contract deploy FILE.wasm)")]
    NoCode(Hash),
    /// No replica has an instance at this address.
    #[error("no contract at {0}")]
    NoInstance(Hash),
    /// An instance exists at this address already.
    #[error("a contract exists at {0} already")]
    Exists(Hash),
    /// Other executes kept taking the version this one was made against, or the primary did
    /// not catch up.
    #[error(
        "contract {0} is busy: in {STALE_RETRIES} tries, other executes came first or its primary was catching up; try again"
    )]
    Contended(Hash),
    /// The primary did not apply the call (unreachable, refused, or answered something else).
    #[error("contract {address}: its primary {primary} did not apply the call ({answer})")]
    Primary {
        /// The contract.
        address: Hash,
        /// The primary (a peer id).
        primary: String,
        /// What it answered.
        answer: String,
    },
    /// The replicas do not agree, or too few answered.
    #[error("contract {address}: no majority of the {replicas} replicas agree ({answers})")]
    NoMajority {
        /// The contract.
        address: Hash,
        /// Replicas asked.
        replicas: usize,
        /// What each answered.
        answers: String,
    },
}

/// What a node asks a replica (the payload of [`Request::Contract`]).
#[derive(Clone, Debug, Serialize, Deserialize)]
enum Ask {
    /// Create an instance of `code` at the address it gets with the asking node as creator.
    Instantiate {
        code: Hash,
        #[serde(with = "serde_bytes")]
        msg: Vec<u8>,
        time: u64,
        gas: u64,
    },
    /// Run an execute, only at state version `at`, as the primary: sign it and keep it. The
    /// call carries its caller's signature (`primary` and `signature` unset).
    Execute { call: Signed },
    /// Run a query.
    Query {
        address: Hash,
        #[serde(with = "serde_bytes")]
        msg: Vec<u8>,
        time: u64,
        gas: u64,
    },
    /// Your instance at `address`, if any.
    Status { address: Hash },
    /// The state at `address` after key `after`, one page.
    Page {
        address: Hash,
        after: Option<Vec<u8>>,
    },
    /// Your answer differed from the majority's: check yourself against the other replicas.
    Check { address: Hash },
    /// Check yourself against the other replicas now, and answer when done.
    CatchUp { address: Hash },
    /// Apply this execute, which the primary applied and signed.
    Apply { call: Signed },
    /// The last execute you applied and kept (as the primary signed it).
    Last { address: Hash },
}

/// An execute as the primary applied it, signed by the primary: what the other replicas apply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Signed {
    address: Hash,
    at: u64,
    #[serde(with = "serde_bytes")]
    msg: Vec<u8>,
    caller: [u8; 32],
    time: u64,
    gas: u64,
    /// The caller's signature: a primary cannot make up a call, nor its caller.
    #[serde(with = "serde_bytes")]
    by_caller: Vec<u8>,
    /// The primary's Ed25519 key.
    primary: [u8; 32],
    #[serde(with = "serde_bytes")]
    signature: Vec<u8>,
}

/// What a caller signs over its execute, and a primary over what it applied.
const CALLER: &[u8] = b"zhtp contract call v1 caller\0";
const PRIMARY: &[u8] = b"zhtp contract call v1 primary\0";

impl Signed {
    fn signed_bytes(&self, role: &[u8]) -> Vec<u8> {
        let mut b = role.to_vec();
        b.extend_from_slice(self.address.as_bytes());
        b.extend_from_slice(&self.at.to_le_bytes());
        b.extend_from_slice(&self.caller);
        b.extend_from_slice(&self.time.to_le_bytes());
        b.extend_from_slice(&self.gas.to_le_bytes());
        b.extend_from_slice(blake3::hash(&self.msg).as_bytes());
        b
    }

    /// Whether its caller and `primary` signed it.
    fn verify(&self) -> bool {
        let by = |key: &[u8; 32], role, sig: &[u8]| {
            libp2p::identity::ed25519::PublicKey::try_from_bytes(key)
                .is_ok_and(|k| k.verify(&self.signed_bytes(role), sig))
        };
        by(&self.caller, CALLER, &self.by_caller) && by(&self.primary, PRIMARY, &self.signature)
    }

    /// Runs it on the contracts kept here at its version, keeping it as the last call.
    fn apply(&self, s: &smart::SmartContracts) -> Result<smart::Committed, smart::Error> {
        let note = postcard::to_allocvec(self).expect("a call encodes");
        s.execute_noted(
            &self.address,
            self.caller,
            &self.msg,
            (self.time, self.gas),
            Some(self.at),
            Some(&note),
        )
    }

    /// The call `caller` (this node) makes at version `at`, signed by it.
    fn by(node: &Node, address: Hash, (at, msg, time, gas): (u64, Vec<u8>, u64, u64)) -> Self {
        let key = ed25519_of(&node.peer_id()).expect("nodes have Ed25519 identities");
        let mut call = Self {
            address,
            at,
            msg,
            caller: key,
            time,
            gas,
            by_caller: Vec::new(),
            primary: key,
            signature: Vec::new(),
        };
        call.by_caller = node.sign(&call.signed_bytes(CALLER));
        call
    }
}

/// A replica's answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum Answer {
    Called(Reply),
    Status(Option<Instance>),
    Page {
        instance: Instance,
        pairs: Vec<Pair>,
        more: bool,
    },
    Checking,
    /// A [`Ask::CatchUp`] ended: `true` when it brought the replica to the majority's state.
    CaughtUp(bool),
    /// The primary applied the execute: its reply, and the call signed.
    Applied {
        reply: Reply,
        call: Signed,
    },
    Last(Option<Signed>),
    Refused(Refusal),
}

/// Why a replica did not run a call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Refusal {
    /// It is at another state version.
    Stale {
        /// The version named.
        at: u64,
        /// The replica's version.
        now: u64,
    },
    /// It has no instance there.
    NoInstance,
    /// It has one there already.
    Exists,
    /// It could not find the code.
    NoCode,
    /// It is not one of the address's replicas as it sees the network.
    NotReplica,
    /// It is not the address's primary as it sees the network.
    NotPrimary,
    /// The call applied is not signed by the primary it sees.
    NotSigned,
    /// Anything else, in words.
    Other(String),
}

/// One replica's answer to a call: what callers compare.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// The contract's answer, or why the call failed (and wrote nothing).
    pub result: Result<Vec<u8>, ContractError>,
    /// The state version after the call.
    pub sequence: u64,
    /// The state root after the call.
    pub root: [u8; 32],
    /// Gas used.
    pub gas_used: u64,
}

impl From<smart::Committed> for Reply {
    fn from(c: smart::Committed) -> Self {
        Self {
            result: c.result,
            sequence: c.sequence,
            root: c.root,
            gas_used: c.gas_used,
        }
    }
}

/// What [`Node::contract_misstep`] sends.
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub enum Misstep {
    /// The execute to the primary, and nothing to the others.
    OnlyPrimary,
    /// The execute straight to this replica.
    Execute(PeerId),
    /// The execute to this replica as if applied by a primary, signed by the sender.
    SelfSigned(PeerId),
    /// The execute to this replica, signed by the sender as primary, naming another caller
    /// (who did not sign it).
    ForgedCaller(PeerId),
    /// The primary's last call (as `Last` gives it) to this replica only.
    LastTo(PeerId),
}

/// A call the replicas agreed on.
#[derive(Clone, Debug)]
pub struct Agreed {
    /// The contract's address.
    pub address: Hash,
    /// The answer a majority gave.
    pub reply: Reply,
    /// The replicas asked, closest to the address first.
    pub replicas: Vec<PeerId>,
    /// How many gave the majority's answer.
    pub agreeing: usize,
    /// Every replica that answered otherwise (or not at all), and what it answered. They are
    /// told to check themselves against the others.
    pub mismatches: Vec<(PeerId, String)>,
}

/// What a round over the kept instances did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContractRound {
    /// Instances kept here.
    pub instances: usize,
    /// Instances this node replaced with the state the other replicas agree on.
    pub caught_up: usize,
    /// Replicas told to check themselves (behind, diverged, or new and empty).
    pub told: usize,
}

fn code_key(h: &Hash) -> Vec<u8> {
    [CODE_KEY, h.as_bytes()].concat()
}

/// Checks a code record: its payload hashes to its key. `None`: not a code record.
pub(super) fn validate(key: &[u8], payload: &[u8]) -> Option<Result<(), String>> {
    let h = key.strip_prefix(CODE_KEY)?;
    Some(if h != blake3::hash(payload).as_bytes() {
        Err("contract code filed under another hash".into())
    } else if payload.len() > zhtp_host::abi::contract::MAX_CODE {
        Err("contract code larger than the host's limit".into())
    } else {
        Ok(())
    })
}

/// How a refusal reads.
fn describe(a: &Result<Answer, String>) -> String {
    match a {
        Ok(Answer::Called(r)) => format!(
            "{} at version {} root {} gas {}",
            match &r.result {
                Ok(out) => format!("ok ({} bytes)", out.len()),
                Err(e) => format!("failed ({e})"),
            },
            r.sequence,
            &hex::encode(r.root)[..16],
            r.gas_used
        ),
        Ok(Answer::Applied { reply, .. }) => describe(&Ok(Answer::Called(reply.clone()))),
        Ok(Answer::Refused(r)) => format!("refused: {r:?}"),
        Ok(_) => "an answer of another kind".into(),
        Err(e) => format!("no answer: {e}"),
    }
}

/// Work on the contracts kept here, run off the async workers.
type Job = Box<dyn FnOnce(&smart::SmartContracts) -> Result<Answer, smart::Error> + Send>;

fn refusal(e: smart::Error) -> Refusal {
    match e {
        smart::Error::Stale { at, now } => Refusal::Stale { at, now },
        smart::Error::NoInstance(_) => Refusal::NoInstance,
        smart::Error::Exists(_) => Refusal::Exists,
        smart::Error::NoCode(_) => Refusal::NoCode,
        other => Refusal::Other(other.to_string()),
    }
}

/// An instance's code, creator, state version and root: what replicas that agree share.
type Version = (Hash, [u8; 32], u64, [u8; 32]);

/// How many replicas make a majority: of [`REPLICAS`], whatever number a node sees. A node
/// cut off from the others (seeing itself alone) is no majority.
const MAJORITY: usize = REPLICAS / 2 + 1;

/// The [`Version`] a majority ([`MAJORITY`]) of `statuses` share, and who.
fn majority_status(statuses: &[(PeerId, Instance)]) -> Option<(Version, Vec<PeerId>)> {
    let mut groups: Vec<(Version, Vec<PeerId>)> = Vec::new();
    for (p, i) in statuses {
        let Ok(root) = i.root() else { continue };
        let k = (i.code, i.creator, i.sequence, root);
        match groups.iter_mut().find(|g| g.0 == k) {
            Some(g) => g.1.push(*p),
            None => groups.push((k, vec![*p])),
        }
    }
    groups.into_iter().find(|g| g.1.len() >= MAJORITY)
}

fn no_majority(address: Hash, replicas: usize, statuses: &[(PeerId, Instance)]) -> SmartError {
    SmartError::NoMajority {
        address,
        replicas,
        answers: statuses
            .iter()
            .map(|(p, i)| format!("{p} at version {}", i.sequence))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

impl Node {
    /// The smart contracts kept here.
    pub fn smart(&self) -> &smart::SmartContracts {
        &self.inner.smart
    }

    /// The replicas of `address` as this node sees the network: the [`REPLICAS`] live nodes
    /// closest to it, closest first (this node among them if it is one).
    pub async fn contract_replicas(&self, address: &Hash) -> Result<Vec<PeerId>, Error> {
        let mut peers = self.live_peers().await?;
        peers.sort();
        peers.dedup();
        let mut v = by_distance(&peers, address.as_bytes());
        v.truncate(REPLICAS);
        Ok(v)
    }

    /// Validates `wasm`, keeps it and publishes it as a signed record under its hash: its code
    /// hash. Deploying a code someone deployed already changes nothing.
    pub async fn contract_deploy(&self, wasm: Vec<u8>) -> Result<Hash, Error> {
        let node = self.clone();
        let (h, wasm) = blocking(move || node.inner.smart.deploy(&wasm).map(|h| (h, wasm)))
            .await?
            .map_err(|e| SmartError::Invalid(e.to_string()))?;
        match self
            .inner
            .dht
            .publish(&code_key(&h), wasm, MANIFEST_TTL)
            .await
        {
            // Content-addressed: another publisher's record under this key is the same code.
            Ok(())
            | Err(zhtp_dht::Error::Record(zhtp_dht::record::RecordError::NotOwner { .. })) => {}
            Err(e) => tracing::warn!(code = %h, "contract code not replicated yet: {e}"),
        }
        Ok(h)
    }

    /// Creates an instance of `code` with `msg` on its replicas; this node is its creator.
    pub async fn contract_instantiate(
        &self,
        code: Hash,
        msg: Vec<u8>,
        time: u64,
        gas: u64,
    ) -> Result<Agreed, Error> {
        let me = ed25519_of(&self.peer_id()).expect("nodes have Ed25519 identities");
        let address = smart::SmartContracts::address_of(&code, &me, &msg, time);
        let replicas = self.contract_replicas(&address).await?;
        let ask = Ask::Instantiate {
            code,
            msg,
            time,
            gas,
        };
        let first = self.ask_replica(replicas[0], &ask).await;
        match &first {
            Ok(Answer::Refused(Refusal::NoCode)) => return Err(SmartError::NoCode(code).into()),
            Ok(Answer::Refused(Refusal::Exists)) => return Err(SmartError::Exists(address).into()),
            _ => {}
        }
        let mut answers = vec![(replicas[0], first)];
        answers.extend(self.ask_all(&replicas[1..], &ask).await);
        self.tally(address, &replicas, answers)
    }

    /// Runs an execute on the contract at `address` through its replicas.
    pub async fn contract_execute(
        &self,
        address: Hash,
        msg: Vec<u8>,
        time: u64,
        gas: u64,
    ) -> Result<Agreed, Error> {
        let replicas = self.contract_replicas(&address).await?;
        let primary = replicas[0];
        for _ in 0..STALE_RETRIES {
            let statuses = self.statuses(address, &replicas).await;
            if statuses.is_empty() {
                return Err(SmartError::NoInstance(address).into());
            }
            // Replicas one version behind the primary did not get its last call (its
            // coordinator stopped halfway): they get it first.
            if self.forward_last(address, primary, &statuses).await {
                continue;
            }
            let Some(((_, _, at, _), holders)) = majority_status(&statuses) else {
                // Replicas at different versions (one missed a call before the primary
                // changed): those behind the furthest check themselves, which takes them one
                // version forward with the call the one ahead applied.
                let top = statuses.iter().map(|(_, i)| i.sequence).max().unwrap_or(0);
                let behind: Vec<PeerId> = statuses
                    .iter()
                    .filter(|(_, i)| i.sequence < top)
                    .map(|(p, _)| *p)
                    .collect();
                if !self.caught_up(address, &behind).await {
                    return Err(no_majority(address, replicas.len(), &statuses).into());
                }
                continue;
            };
            if !holders.contains(&primary) {
                // Behind, off, or without the instance: it checks itself against the others
                // (and the statuses are asked again, whatever came of it).
                self.caught_up(address, &[primary]).await;
                continue;
            }
            let ask = Ask::Execute {
                call: Signed::by(self, address, (at, msg.clone(), time, gas)),
            };
            let (reply, call) = match self.ask_replica(primary, &ask).await {
                Ok(Answer::Applied { reply, call }) => (reply, call),
                // Another execute took version `at` first.
                Ok(Answer::Refused(Refusal::Stale { .. })) => continue,
                other => {
                    return Err(SmartError::Primary {
                        address,
                        primary: primary.to_string(),
                        answer: describe(&other),
                    }
                    .into());
                }
            };
            let others: Vec<PeerId> = replicas.iter().copied().filter(|p| *p != primary).collect();
            let mut answers = vec![(primary, Ok(Answer::Called(reply.clone())))];
            answers.extend(self.ask_all(&others, &Ask::Apply { call }).await);
            return match self.tally(address, &replicas, answers) {
                // Another coordinator may have forwarded this call to them first (it saw
                // them one version behind the primary): they answered stale, yet hold the
                // state this call led to. Their versions and roots say so.
                Err(Error::Smart(SmartError::NoMajority { .. })) => {
                    self.confirmed(address, &replicas, primary, reply).await
                }
                other => other,
            };
        }
        Err(SmartError::Contended(address).into())
    }

    /// The primary's `reply`, agreed when a majority of `replicas` now report the version and
    /// root it led to; otherwise the replicas' disagreement.
    async fn confirmed(
        &self,
        address: Hash,
        replicas: &[PeerId],
        primary: PeerId,
        reply: Reply,
    ) -> Result<Agreed, Error> {
        let at = |i: &Instance| i.sequence == reply.sequence && i.root().ok() == Some(reply.root);
        let agreeing = |statuses: &[(PeerId, Instance)]| -> Vec<PeerId> {
            statuses
                .iter()
                .filter(|(_, i)| at(i))
                .map(|(p, _)| *p)
                .collect()
        };
        let mut statuses = self.statuses(address, replicas).await;
        // This call's Applies may also have reached followers before another coordinator's
        // call of the version below it (they refused a version they were not yet at): the
        // primary's last signed call, forwarded now, takes them to this one.
        if agreeing(&statuses).len() < MAJORITY
            && self.forward_last(address, primary, &statuses).await
        {
            statuses = self.statuses(address, replicas).await;
        }
        let agreeing = agreeing(&statuses);
        if agreeing.len() < MAJORITY || !agreeing.contains(&primary) {
            return Err(no_majority(address, replicas.len(), &statuses).into());
        }
        let mismatches: Vec<(PeerId, String)> = replicas
            .iter()
            .filter(|p| !agreeing.contains(p))
            .map(|p| {
                (
                    *p,
                    "not at the version and root the call led to".to_string(),
                )
            })
            .collect();
        Ok(self.agreed(address, reply, replicas, agreeing.len(), mismatches))
    }

    /// A majority's `reply`: the replicas in `mismatches` are told to check themselves.
    fn agreed(
        &self,
        address: Hash,
        reply: Reply,
        replicas: &[PeerId],
        agreeing: usize,
        mismatches: Vec<(PeerId, String)>,
    ) -> Agreed {
        if !mismatches.is_empty() {
            self.tell_to_check(address, mismatches.iter().map(|m| m.0).collect());
        }
        Agreed {
            address,
            reply,
            replicas: replicas.to_vec(),
            agreeing,
            mismatches,
        }
    }

    /// Sends the primary's last signed call to the replicas exactly one version behind it;
    /// `true` when one of them applied it.
    async fn forward_last(
        &self,
        address: Hash,
        primary: PeerId,
        statuses: &[(PeerId, Instance)],
    ) -> bool {
        let Some((_, p)) = statuses.iter().find(|(x, _)| *x == primary) else {
            return false;
        };
        let behind: Vec<PeerId> = statuses
            .iter()
            .filter(|(x, i)| *x != primary && i.code == p.code && i.sequence + 1 == p.sequence)
            .map(|(x, _)| *x)
            .collect();
        if behind.is_empty() {
            return false;
        }
        let Ok(Answer::Last(Some(call))) = self.ask_replica(primary, &Ask::Last { address }).await
        else {
            return false;
        };
        if call.at + 1 != p.sequence {
            return false;
        }
        tracing::info!(%address, at = call.at, "forwarding the primary's last call to replicas behind it");
        self.ask_all(&behind, &Ask::Apply { call })
            .await
            .iter()
            .any(|(_, a)| matches!(a, Ok(Answer::Called(r)) if r.sequence == p.sequence))
    }

    /// What a coordinator stopping halfway, or a misbehaving peer, sends: for tests. Returns
    /// the answer in words.
    #[doc(hidden)]
    pub async fn contract_misstep(
        &self,
        address: Hash,
        (at, msg, time): (u64, Vec<u8>, u64),
        misstep: Misstep,
    ) -> String {
        let gas = zhtp_host::abi::contract::DEFAULT_GAS_LIMIT;
        let execute = Ask::Execute {
            call: Signed::by(self, address, (at, msg.clone(), time, gas)),
        };
        let (peer, ask) = match misstep {
            Misstep::OnlyPrimary => match self.contract_replicas(&address).await {
                Ok(r) => (r[0], execute),
                Err(e) => return e.to_string(),
            },
            Misstep::Execute(peer) => (peer, execute),
            Misstep::SelfSigned(peer) => {
                let mut call = Signed::by(self, address, (at, msg, time, gas));
                call.signature = self.sign(&call.signed_bytes(PRIMARY));
                (peer, Ask::Apply { call })
            }
            Misstep::LastTo(peer) => {
                let primary = match self.contract_replicas(&address).await {
                    Ok(r) => r[0],
                    Err(e) => return e.to_string(),
                };
                match self.ask_replica(primary, &Ask::Last { address }).await {
                    Ok(Answer::Last(Some(call))) => (peer, Ask::Apply { call }),
                    other => return describe(&other),
                }
            }
            Misstep::ForgedCaller(peer) => {
                let mut call = Signed::by(self, address, (at, msg, time, gas));
                call.caller = [7; 32];
                call.signature = self.sign(&call.signed_bytes(PRIMARY));
                (peer, Ask::Apply { call })
            }
        };
        describe(&self.ask_replica(peer, &ask).await)
    }

    /// Runs a query on the contract at `address` on every replica; nothing is written.
    pub async fn contract_query(
        &self,
        address: Hash,
        msg: Vec<u8>,
        time: u64,
        gas: u64,
    ) -> Result<Agreed, Error> {
        let replicas = self.contract_replicas(&address).await?;
        let ask = Ask::Query {
            address,
            msg,
            time,
            gas,
        };
        // An execute landing between the replicas' answers splits them; asking again after it
        // settles them.
        for _ in 0..3 {
            let answers = self.ask_all(&replicas, &ask).await;
            match self.tally(address, &replicas, answers) {
                Err(Error::Smart(SmartError::NoMajority { .. })) | Err(Error::Net(_)) => {}
                other => return other,
            }
        }
        let answers = self.ask_all(&replicas, &ask).await;
        self.tally(address, &replicas, answers)
    }

    /// The instances `replicas` report at `address` (those that answered with one).
    async fn statuses(&self, address: Hash, replicas: &[PeerId]) -> Vec<(PeerId, Instance)> {
        self.ask_all(replicas, &Ask::Status { address })
            .await
            .into_iter()
            .filter_map(|(p, a)| match a {
                Ok(Answer::Status(Some(i))) => Some((p, i)),
                _ => None,
            })
            .collect()
    }

    /// The majority's reply among `answers`, the others reported and told to check themselves.
    fn tally(
        &self,
        address: Hash,
        replicas: &[PeerId],
        answers: Vec<(PeerId, Result<Answer, String>)>,
    ) -> Result<Agreed, Error> {
        let mut groups: Vec<(Reply, Vec<PeerId>)> = Vec::new();
        for (p, a) in &answers {
            if let Ok(Answer::Called(r)) = a {
                match groups.iter_mut().find(|g| g.0 == *r) {
                    Some(g) => g.1.push(*p),
                    None => groups.push((r.clone(), vec![*p])),
                }
            }
        }
        let Some((reply, agreeing)) = groups.into_iter().find(|g| g.1.len() >= MAJORITY) else {
            if answers.iter().all(|(_, a)| {
                matches!(
                    a,
                    Ok(Answer::Refused(Refusal::NoInstance | Refusal::NotReplica))
                )
            }) {
                return Err(SmartError::NoInstance(address).into());
            }
            let answers = answers
                .iter()
                .map(|(p, a)| format!("{p}: {}", describe(a)))
                .collect::<Vec<_>>()
                .join("; ");
            return Err(SmartError::NoMajority {
                address,
                replicas: replicas.len(),
                answers,
            }
            .into());
        };
        let mismatches: Vec<(PeerId, String)> = answers
            .iter()
            .filter(|(p, _)| !agreeing.contains(p))
            .map(|(p, a)| (*p, describe(a)))
            .collect();
        if !mismatches.is_empty() {
            tracing::warn!(%address, "replicas disagree with the majority: {mismatches:?}");
        }
        Ok(self.agreed(address, reply, replicas, agreeing.len(), mismatches))
    }

    /// Has `peers` catch up now; `true` when one of them did.
    async fn caught_up(&self, address: Hash, peers: &[PeerId]) -> bool {
        self.ask_all(peers, &Ask::CatchUp { address })
            .await
            .iter()
            .any(|(_, a)| matches!(a, Ok(Answer::CaughtUp(true))))
    }

    fn tell_to_check(&self, address: Hash, peers: Vec<PeerId>) {
        let node = self.clone();
        tokio::spawn(async move {
            node.ask_all(&peers, &Ask::Check { address }).await;
        });
    }

    async fn ask_all(&self, peers: &[PeerId], ask: &Ask) -> Vec<(PeerId, Result<Answer, String>)> {
        join_all(
            peers
                .iter()
                .map(|p| async move { (*p, self.ask_replica(*p, ask).await) }),
        )
        .await
    }

    /// Asks `peer` (this node answers itself without the network).
    async fn ask_replica(&self, peer: PeerId, ask: &Ask) -> Result<Answer, String> {
        if peer == self.peer_id() {
            return Ok(self.answer_contract(peer, ask.clone()).await);
        }
        let bytes = postcard::to_allocvec(ask).map_err(|e| e.to_string())?;
        match self.inner.dht.request(peer, Request::Contract(bytes)).await {
            Ok(Response::Contract(b)) => postcard::from_bytes(&b).map_err(|e| e.to_string()),
            Ok(Response::Refused(why)) => Err(why),
            Ok(_) => Err("an answer of another kind".into()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Answers a contract request from `peer` (its encoding). At most [`PEER_RUNS`] at once:
    /// beyond, a request is refused as busy at once (its sender tries again shortly), so that
    /// contract work never holds the permits shard requests are served under.
    pub(super) async fn serve_contract(&self, peer: PeerId, bytes: &[u8]) -> Response {
        let Ok(_run) = self.inner.checks.peer_runs.try_acquire() else {
            return Response::Refused(zhtp_dht::protocol::BUSY.into());
        };
        match postcard::from_bytes::<Ask>(bytes) {
            Ok(ask) => match postcard::to_allocvec(&self.answer_contract(peer, ask).await) {
                Ok(b) => Response::Contract(b),
                Err(e) => Response::Refused(e.to_string()),
            },
            Err(e) => Response::Refused(format!("not a contract request: {e}")),
        }
    }

    async fn answer_contract(&self, peer: PeerId, ask: Ask) -> Answer {
        match self.answer_or_refuse(peer, ask).await {
            Ok(a) => a,
            Err(r) => Answer::Refused(r),
        }
    }

    async fn answer_or_refuse(&self, peer: PeerId, ask: Ask) -> Result<Answer, Refusal> {
        let caller = ed25519_of(&peer)
            .ok_or_else(|| Refusal::Other("the asking node has no Ed25519 identity".into()))?;
        let skew = |time: u64| {
            let now = zhtp_dht::record::unix_now();
            if time.abs_diff(now) > MAX_SKEW {
                Err(Refusal::Other(format!(
                    "the call's time {time} is more than {MAX_SKEW} s from this replica's clock ({now})"
                )))
            } else {
                Ok(())
            }
        };
        let run = |f: Job| {
            let node = self.clone();
            async move {
                blocking(move || f(&node.inner.smart))
                    .await
                    .map_err(|e| Refusal::Other(e.to_string()))?
                    .map_err(refusal)
            }
        };
        match ask {
            Ask::Instantiate {
                code,
                msg,
                time,
                gas,
            } => {
                skew(time)?;
                let address = smart::SmartContracts::address_of(&code, &caller, &msg, time);
                if !self
                    .replicas_seen(&address)
                    .await?
                    .contains(&self.peer_id())
                {
                    return Err(Refusal::NotReplica);
                }
                self.fetch_code(code).await?;
                run(Box::new(move |s| {
                    let (_, c) = s.instantiate(&code, caller, &msg, time, gas)?;
                    Ok(Answer::Called(c.into()))
                }))
                .await
            }
            Ask::Execute { mut call } => {
                skew(call.time)?;
                // The caller is who sent it, and signed it.
                let by_caller = libp2p::identity::ed25519::PublicKey::try_from_bytes(&caller)
                    .is_ok_and(|k| k.verify(&call.signed_bytes(CALLER), &call.by_caller));
                if call.caller != caller || !by_caller {
                    return Err(Refusal::NotSigned);
                }
                if self.replicas_seen(&call.address).await?[0] != self.peer_id() {
                    return Err(Refusal::NotPrimary);
                }
                call.primary = ed25519_of(&self.peer_id())
                    .ok_or_else(|| Refusal::Other("this node has no Ed25519 key".into()))?;
                call.signature = self.sign(&call.signed_bytes(PRIMARY));
                run(Box::new(move |s| {
                    let reply = call.apply(s)?.into();
                    Ok(Answer::Applied { reply, call })
                }))
                .await
            }
            Ask::Apply { call } => {
                if !call.verify() {
                    return Err(Refusal::NotSigned);
                }
                let primary = self.replicas_seen(&call.address).await?[0];
                if ed25519_of(&primary) != Some(call.primary) || primary == self.peer_id() {
                    return Err(Refusal::NotSigned);
                }
                run(Box::new(move |s| Ok(Answer::Called(call.apply(s)?.into())))).await
            }
            Ask::Last { address } => {
                let last = run(Box::new(move |s| {
                    Ok(Answer::Last(
                        s.note(&address)?
                            .and_then(|b| postcard::from_bytes::<Signed>(&b).ok()),
                    ))
                }))
                .await?;
                // A call signed by an earlier primary, which this one applied: signed again by
                // this one, so that replicas which see it as primary take it.
                let me = ed25519_of(&self.peer_id());
                match last {
                    Answer::Last(Some(mut call))
                        if Some(call.primary) != me
                            && call.verify()
                            && self.replicas_seen(&address).await?[0] == self.peer_id() =>
                    {
                        call.primary = me.expect("nodes have Ed25519 identities");
                        call.signature = self.sign(&call.signed_bytes(PRIMARY));
                        Ok(Answer::Last(Some(call)))
                    }
                    other => Ok(other),
                }
            }
            Ask::Query {
                address,
                msg,
                time,
                gas,
            } => {
                skew(time)?;
                run(Box::new(move |s| {
                    // The version and root the query read, under the same lock.
                    let (o, inst) = s.query_at(&address, caller, &msg, time, gas)?;
                    Ok(Answer::Called(Reply {
                        result: o.result,
                        sequence: inst.sequence,
                        root: inst.root()?,
                        gas_used: o.gas_used,
                    }))
                }))
                .await
            }
            Ask::Status { address } => {
                run(Box::new(move |s| Ok(Answer::Status(s.instance(&address)?)))).await
            }
            Ask::Page { address, after } => {
                run(Box::new(move |s| {
                    let (instance, pairs, more) = s.page(&address, after.as_deref(), PAGE_BYTES)?;
                    Ok(Answer::Page {
                        instance,
                        pairs,
                        more,
                    })
                }))
                .await
            }
            Ask::Check { address } => {
                let mut pending = self
                    .inner
                    .checks
                    .pending
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                // A check already pending covers this one; beyond the bound, they are dropped
                // (the next repair round checks every instance anyway).
                if pending.len() < MAX_CHECKS
                    && pending.insert(address)
                    && self.inner.checks.queue.try_send((address, None)).is_err()
                {
                    pending.remove(&address);
                }
                Ok(Answer::Checking)
            }
            Ask::CatchUp { address } => {
                // Through the checker, one at a time: a full queue answers at once.
                let (tx, rx) = tokio::sync::oneshot::channel();
                if self
                    .inner
                    .checks
                    .queue
                    .try_send((address, Some(tx)))
                    .is_err()
                {
                    return Ok(Answer::CaughtUp(false));
                }
                Ok(Answer::CaughtUp(rx.await.unwrap_or(false)))
            }
        }
    }

    /// This node's Ed25519 signature over `bytes`.
    fn sign(&self, bytes: &[u8]) -> Vec<u8> {
        self.inner
            .dht
            .keypair()
            .sign(bytes)
            .expect("an Ed25519 key signs anything")
    }

    /// `address`'s replicas as this node sees them, as a refusal's reason when that fails.
    async fn replicas_seen(&self, address: &Hash) -> Result<Vec<PeerId>, Refusal> {
        self.contract_replicas(address)
            .await
            .map_err(|e| Refusal::Other(e.to_string()))
    }

    /// Makes sure the code `h` is kept here: fetched from its record and validated if not.
    async fn fetch_code(&self, h: Hash) -> Result<(), Refusal> {
        let node = self.clone();
        if blocking(move || node.inner.smart.has_code(&h))
            .await
            .map_err(|e| Refusal::Other(e.to_string()))?
            .map_err(refusal)?
        {
            return Ok(());
        }
        let record = self
            .inner
            .dht
            .get_record(&code_key(&h))
            .await
            .map_err(|_| Refusal::NoCode)?;
        let node = self.clone();
        let got = blocking(move || node.inner.smart.deploy(&record.payload))
            .await
            .map_err(|e| Refusal::Other(e.to_string()))?
            .map_err(refusal)?;
        if got != h {
            return Err(Refusal::Other(format!(
                "the record of code {h} holds code {got}"
            )));
        }
        Ok(())
    }

    /// Checks this node's instance at `address` against the other replicas it sees. When a
    /// majority of them agree on a later version than this node's, or on another state at its
    /// version, it brings itself there: by replaying the primary's last signed call when it is
    /// one version behind, else by pulling the state from one of them and installing it if it
    /// hashes to their root and nothing was committed here meanwhile. It never goes back to an
    /// earlier version. `Ok(true)`: brought to the majority's state.
    pub async fn catch_up(&self, address: Hash) -> Result<bool, Error> {
        // One at a time on a node: two would each install over what the other did.
        let _one = self.inner.checks.running.lock().await;
        let replicas = self.contract_replicas(&address).await?;
        let me = self.peer_id();
        if !replicas.contains(&me) {
            return Ok(false);
        }
        let statuses = self.statuses(address, &replicas).await;
        let Some(((code, creator, sequence, root), holders)) = majority_status(&statuses) else {
            return Ok(self.step_forward(address, &statuses).await);
        };
        if holders.contains(&me) {
            return Ok(false);
        }
        let mine = statuses
            .iter()
            .find(|(p, _)| *p == me)
            .map(|(_, i)| i.clone());
        let was = match &mine {
            Some(i) if i.sequence > sequence => return Ok(false), // never back
            Some(i) => Some((
                i.sequence,
                i.root().map_err(|e| Error::Invalid(e.to_string()))?,
            )),
            None => None,
        };
        self.fetch_code(code)
            .await
            .map_err(|r| Error::Invalid(format!("code {code}: {r:?}")))?;
        // Replayed only from a primary that is at the agreed state.
        if let Some((at, _)) = was
            && at + 1 == sequence
            && holders.contains(&replicas[0])
            && self
                .replay_last(address, replicas[0], at, (sequence, root))
                .await
        {
            return Ok(true);
        }
        let mut last = String::new();
        for source in replicas.iter().filter(|p| holders.contains(p)) {
            let pairs = match self
                .pull(*source, address, (code, creator, sequence, root))
                .await
            {
                Ok(pairs) => pairs,
                Err(e) => {
                    last = format!("{source}: {e}");
                    continue;
                }
            };
            let node = self.clone();
            let installed = blocking(move || {
                node.inner
                    .smart
                    .install(&address, (code, creator, sequence), &pairs, root, was)
            })
            .await?;
            match installed {
                Ok(()) => {
                    tracing::info!(%address, sequence, from = %source, "contract state caught up");
                    self.inner.dht.changed();
                    return Ok(true);
                }
                // Something was committed here meanwhile: look again next time.
                Err(smart::Error::Moved) => return Ok(false),
                // A source that agreed on the root but sent another state: try the next.
                Err(e) => last = format!("{source}: {e}"),
            }
        }
        Err(Error::Invalid(format!(
            "contract {address}: no replica gave the agreed state ({last})"
        )))
    }

    /// With no majority: takes this node one version forward with the call a replica one
    /// version ahead applied, if the call carries its caller's and a primary's signatures and
    /// is the one at this node's version, and leads to that replica's root. `true` when it did.
    /// (A primary that left may have reached only some replicas; the new one may be behind.)
    async fn step_forward(&self, address: Hash, statuses: &[(PeerId, Instance)]) -> bool {
        let me = self.peer_id();
        let Some((_, mine)) = statuses.iter().find(|(p, _)| *p == me) else {
            return false;
        };
        for (p, ahead) in statuses {
            if *p == me || ahead.code != mine.code || ahead.sequence != mine.sequence + 1 {
                continue;
            }
            let Ok(Answer::Last(Some(call))) = self.ask_replica(*p, &Ask::Last { address }).await
            else {
                continue;
            };
            if call.address != address || call.at != mine.sequence || !call.verify() {
                continue;
            }
            let node = self.clone();
            let applied = blocking(move || call.apply(&node.inner.smart)).await;
            if let Ok(Ok(c)) = applied
                && (c.sequence, Some(c.root)) == (ahead.sequence, ahead.root().ok())
            {
                tracing::info!(%address, from = %p, "contract stepped forward with a replica's last call");
                self.inner.dht.changed();
                return true;
            }
        }
        false
    }

    /// Applies the last call `primary` signed, if it is the one at version `at`, and checks
    /// that it leads to `agreed`. `true` when it did.
    async fn replay_last(
        &self,
        address: Hash,
        primary: PeerId,
        at: u64,
        agreed: (u64, [u8; 32]),
    ) -> bool {
        if primary == self.peer_id() {
            return false;
        }
        let Ok(Answer::Last(Some(call))) = self.ask_replica(primary, &Ask::Last { address }).await
        else {
            return false;
        };
        if call.address != address || call.at != at {
            return false;
        }
        match self.answer_contract(primary, Ask::Apply { call }).await {
            Answer::Called(r) if (r.sequence, r.root) == agreed => {
                tracing::info!(%address, at, "contract caught up with the primary's last call");
                self.inner.dht.changed();
                true
            }
            _ => false,
        }
    }

    /// The whole state at `address` from `source`, every page from an instance at `version`.
    async fn pull(
        &self,
        source: PeerId,
        address: Hash,
        (code, creator, sequence, root): Version,
    ) -> Result<Vec<Pair>, String> {
        use zhtp_host::abi::contract::{MAX_KEY_LEN, MAX_VALUE_LEN};
        let (mut pairs, mut bytes, mut after) = (Vec::<Pair>::new(), 0usize, None);
        loop {
            let page = self
                .ask_replica(source, &Ask::Page { address, after })
                .await?;
            let Answer::Page {
                instance,
                pairs: got,
                more,
            } = page
            else {
                return Err(describe(&Ok(page)));
            };
            if (instance.code, instance.creator, instance.sequence) != (code, creator, sequence)
                || instance.root().ok() != Some(root)
            {
                return Err(format!("moved on to version {}", instance.sequence));
            }
            for (k, v) in got {
                // Strictly increasing keys: no duplicates, nothing a page sent again.
                if pairs.last().is_some_and(|(last, _)| *last >= k) {
                    return Err("state pages out of order".into());
                }
                // What no contract can write.
                if k.is_empty() || k.len() > MAX_KEY_LEN || v.len() > MAX_VALUE_LEN {
                    return Err("a state entry over the ABI's limits".into());
                }
                bytes += k.len() + v.len() + PAIR_OVERHEAD;
                if bytes > MAX_STATE {
                    return Err(format!("state larger than {MAX_STATE} bytes"));
                }
                pairs.push((k, v));
            }
            if !more {
                return Ok(pairs);
            }
            after = match pairs.last() {
                Some((k, _)) => Some(k.clone()),
                None => return Err("an empty page said more follow".into()),
            };
        }
    }

    /// Checks every instance kept here against its replicas: catches this node up where a
    /// majority agree on a later state, and tells replicas that are behind or missing the
    /// instance (new replicas after churn) to check themselves.
    pub async fn contract_round(&self) -> Result<ContractRound, Error> {
        let node = self.clone();
        let addresses = blocking(move || node.inner.smart.addresses())
            .await?
            .map_err(|e| Error::Invalid(e.to_string()))?;
        let mut round = ContractRound {
            instances: addresses.len(),
            ..ContractRound::default()
        };
        let me = self.peer_id();
        for address in addresses {
            match self.catch_up(address).await {
                Ok(true) => round.caught_up += 1,
                Ok(false) => {}
                Err(e) => tracing::warn!(%address, "contract check failed: {e}"),
            }
            let replicas = self.contract_replicas(&address).await?;
            let statuses = self.statuses(address, &replicas).await;
            let Some(((_, _, sequence, _), holders)) = majority_status(&statuses) else {
                continue;
            };
            // Behind the majority, or without the instance; not those ahead of it (they keep
            // what they have, and forward it when they are the primary).
            let off: Vec<PeerId> = replicas
                .iter()
                .copied()
                .filter(|p| *p != me && !holders.contains(p))
                .filter(|p| {
                    statuses
                        .iter()
                        .find(|(x, _)| x == p)
                        .is_none_or(|(_, i)| i.sequence <= sequence)
                })
                .collect();
            round.told += off.len();
            if !off.is_empty() {
                self.ask_all(&off, &Ask::Check { address }).await;
            }
        }
        Ok(round)
    }
}
