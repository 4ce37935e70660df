//! Storage admission: the one check every shard from the network passes before a byte of it is
//! written.
//!
//! Today the rule is a quota per peer, in bytes and in shards. What counts is the shard
//! *positions* (content, segment, index) a peer had this node keep: each is recorded as an
//! owner entry (`owner/<peer>/<position>` → length and hash) in the same RocksDB batch as the
//! shard's index entry, and a peer's usage is the sum of its owner entries, added up when the
//! node starts. There is no counter to read, change and write back, so concurrent stores and
//! crashes can neither lose nor double count usage. Writes in flight are reserved in memory,
//! so two concurrent stores of one peer cannot both squeeze under the limit.
//!
//! Bytes already held (the same shard for another position or peer) are not appended again,
//! but the position still counts against the peer's quota: every index entry and every
//! content this node announces is paid for by someone. The economy replaces the quota with
//! "an active, paid storage contract names this shard" behind the same [`Admission::admit`].

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use thiserror::Error;
use zhtp_dht::PeerId;
use zhtp_store::{Batch, Cf, Store};
use zhtp_types::Hash;

const OWNER: &[u8] = b"owner/";

/// How a refusal of a shard whose bytes another request is writing reads: the sender places
/// that shard elsewhere and still counts on the node for others.
pub(crate) const IN_FLIGHT: &str = "is being written by another request";

/// How much one peer may store on this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    /// Bytes of shards.
    pub bytes: u64,
    /// Number of shards.
    pub shards: u64,
}

impl Default for Quota {
    /// 4 GiB in at most 16,384 shards per peer.
    fn default() -> Self {
        Self {
            bytes: 4 << 30,
            shards: 16 << 10,
        }
    }
}

/// Why a shard was not admitted.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The peer's quota would be exceeded.
    #[error(
        "quota exceeded: this peer stores {used_bytes} B in {used_shards} shards here, \
         the limit is {} B in {} shards",
        quota.bytes,
        quota.shards
    )]
    Quota {
        /// Bytes held and reserved for the peer.
        used_bytes: u64,
        /// Shards held and reserved for the peer.
        used_shards: u64,
        /// Its quota.
        quota: Quota,
    },
    /// Another store of the same shard is being written right now.
    #[error("shard {0} {IN_FLIGHT}; try again")]
    InFlight(Hash),
}

/// Why [`Admission::admit`] said no.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum AdmitError {
    /// The rule refuses the shard.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The store could not be asked.
    #[error(transparent)]
    Store(#[from] zhtp_store::Error),
}

/// What a peer uses: committed (on disk) and reserved (writes in flight).
#[derive(Clone, Copy, Debug, Default)]
struct Usage {
    bytes: u64,
    shards: u64,
}

#[derive(Debug, Default)]
struct State {
    usage: HashMap<PeerId, Usage>,
    /// Shards whose bytes are being written.
    writing: HashSet<Hash>,
}

/// The admission check of one node.
#[derive(Debug)]
pub struct Admission {
    store: Arc<Store>,
    quota: Quota,
    state: Mutex<State>,
}

/// A shard admitted for one position: write its bytes if [`Ticket::write_bytes`], call
/// [`Ticket::record`] in the batch that indexes it, and [`Ticket::written`] once that batch is
/// on disk. Dropped before, it releases what it reserved.
#[derive(Debug)]
pub struct Ticket {
    admission: Arc<Admission>,
    /// The owner entry to record (`None` for this node's own shards).
    owner: Option<(PeerId, Vec<u8>)>,
    hash: Hash,
    len: u64,
    write_bytes: bool,
    done: bool,
}

/// `owner/<len><peer><position>`: the peer's id is length-prefixed so a prefix scan per peer is
/// exact.
fn owner_key(peer: &PeerId, position: &[u8]) -> Vec<u8> {
    let p = peer.to_bytes();
    let mut k = Vec::with_capacity(OWNER.len() + 1 + p.len() + position.len());
    k.extend_from_slice(OWNER);
    k.push(p.len() as u8);
    k.extend_from_slice(&p);
    k.extend_from_slice(position);
    k
}

fn owner_of(key: &[u8]) -> Option<PeerId> {
    owner_and_position(key).map(|(p, _)| p)
}

/// The peer and the position of an owner entry's key.
fn owner_and_position(key: &[u8]) -> Option<(PeerId, &[u8])> {
    let rest = key.strip_prefix(OWNER)?;
    let (&n, rest) = rest.split_first()?;
    let peer = PeerId::from_bytes(rest.get(..n as usize)?).ok()?;
    Some((peer, &rest[n as usize..]))
}

/// An owner entry found by [`Admission::owners`]: its key, peer and shard length.
#[derive(Debug)]
pub(crate) struct Owner {
    pub(crate) key: Vec<u8>,
    pub(crate) peer: PeerId,
    pub(crate) len: u64,
}

impl Admission {
    /// The admission of the node whose store is `store`, adding up the usage recorded so far.
    pub fn open(store: Arc<Store>, quota: Quota) -> Result<Self, zhtp_store::Error> {
        let mut usage: HashMap<PeerId, Usage> = HashMap::new();
        for item in store.scan(Cf::Index, OWNER)? {
            let (k, v) = item?;
            let (Some(peer), Some(len)) = (owner_of(&k), v.get(..4)) else {
                continue;
            };
            let u = usage.entry(peer).or_default();
            u.bytes += u32::from_le_bytes(len.try_into().expect("4 bytes")) as u64;
            u.shards += 1;
        }
        Ok(Self {
            store,
            quota,
            state: Mutex::new(State {
                usage,
                writing: HashSet::new(),
            }),
        })
    }

    /// The quota in force.
    pub fn quota(&self) -> Quota {
        self.quota
    }

    /// What `peer` stores here (committed and in flight): bytes, shards.
    pub fn usage(&self, peer: &PeerId) -> (u64, u64) {
        let u = self.lock().usage.get(peer).copied().unwrap_or_default();
        (u.bytes, u.shards)
    }

    /// The owner entries of these positions (one scan of every owner entry). Blocking.
    pub(crate) fn owners(
        &self,
        positions: &HashSet<Vec<u8>>,
    ) -> Result<Vec<Owner>, zhtp_store::Error> {
        let mut out = Vec::new();
        for item in self.store.scan(Cf::Index, OWNER)? {
            let (k, v) = item?;
            if let (Some((peer, position)), Some(len)) = (owner_and_position(&k), v.get(..4))
                && positions.contains(position)
            {
                out.push(Owner {
                    key: k.to_vec(),
                    peer,
                    len: u32::from_le_bytes(len.try_into().expect("4 bytes")).into(),
                });
            }
        }
        Ok(out)
    }

    /// The owner entries in `owners` were deleted (their batch is on disk): their usage is
    /// given back to their peers.
    pub(crate) fn released(&self, owners: &[Owner]) {
        let mut state = self.lock();
        for o in owners {
            if let Some(u) = state.usage.get_mut(&o.peer) {
                u.bytes = u.bytes.saturating_sub(o.len);
                u.shards = u.shards.saturating_sub(1);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Decides on a shard of `len` bytes with hash `hash` that `peer` (`None`: this node itself,
    /// which has no quota) asks this node to keep at `position` (the shard's index key).
    /// Blocking (a RocksDB lookup).
    pub fn admit(
        self: &Arc<Self>,
        peer: Option<PeerId>,
        position: &[u8],
        hash: &Hash,
        len: u64,
    ) -> Result<Ticket, AdmitError> {
        let held = self.store.contains(Cf::Shards, hash.as_bytes())?;
        let mut state = self.lock();
        if !held && !state.writing.insert(*hash) {
            return Err(Refusal::InFlight(*hash).into());
        }
        let mut ticket = Ticket {
            admission: self.clone(),
            owner: None,
            hash: *hash,
            len,
            write_bytes: !held,
            done: false,
        };
        if let Some(p) = peer {
            let u = state.usage.entry(p).or_default();
            if u.bytes.saturating_add(len) > self.quota.bytes || u.shards + 1 > self.quota.shards {
                let refusal = Refusal::Quota {
                    used_bytes: u.bytes,
                    used_shards: u.shards,
                    quota: self.quota,
                };
                drop(state);
                drop(ticket); // releases the `writing` mark
                return Err(refusal.into());
            }
            u.bytes += len;
            u.shards += 1;
            ticket.owner = Some((p, owner_key(&p, position)));
        }
        Ok(ticket)
    }
}

impl Ticket {
    /// Whether the shard's bytes must be written (they are not in the store yet).
    pub fn write_bytes(&self) -> bool {
        self.write_bytes
    }

    /// Adds the peer's owner entry to `batch`, the batch that indexes the shard, so the usage
    /// is on disk exactly when the shard is.
    pub fn record(&self, batch: &mut Batch) -> Result<(), zhtp_store::Error> {
        if let Some((_, key)) = &self.owner {
            let mut v = (self.len as u32).to_le_bytes().to_vec();
            v.extend_from_slice(self.hash.as_bytes());
            self.admission.store.put(batch, Cf::Index, key, &v)?;
        }
        Ok(())
    }

    /// The batch with the shard and its owner entry is written: the reservation stays.
    pub fn written(mut self) {
        self.done = true;
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut state = self.admission.lock();
        if self.write_bytes {
            state.writing.remove(&self.hash);
        }
        if !self.done
            && let Some((p, _)) = &self.owner
            && let Some(u) = state.usage.get_mut(p)
        {
            u.bytes = u.bytes.saturating_sub(self.len);
            u.shards = u.shards.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_is_the_sum_of_owner_entries_and_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path(), Default::default()).unwrap());
        let quota = Quota {
            bytes: 1000,
            shards: 3,
        };
        let a = Arc::new(Admission::open(store.clone(), quota).unwrap());
        let peer = PeerId::random();
        let h = |i: u8| Hash([i; 32]);
        // Two concurrent tickets, written in the opposite order: nothing drifts.
        let t1 = a.admit(Some(peer), b"pos1", &h(1), 100).unwrap();
        let t2 = a.admit(Some(peer), b"pos2", &h(2), 200).unwrap();
        assert_eq!(a.usage(&peer), (300, 2));
        for t in [t2, t1] {
            let mut b = store.batch();
            t.record(&mut b).unwrap();
            store.write(b).unwrap();
            t.written();
        }
        // A ticket dropped unwritten gives its reservation back.
        drop(a.admit(Some(peer), b"pos3", &h(3), 50).unwrap());
        assert_eq!(a.usage(&peer), (300, 2));
        // The same bytes written twice at once: the second waits its turn.
        let first = a.admit(Some(peer), b"pos4", &h(4), 10).unwrap();
        assert!(matches!(
            a.admit(Some(peer), b"pos5", &h(4), 10),
            Err(AdmitError::Refused(Refusal::InFlight(_)))
        ));
        drop(first);
        // Over the shard limit.
        let _third = a.admit(Some(peer), b"pos6", &h(6), 10).unwrap();
        assert!(matches!(
            a.admit(Some(peer), b"pos7", &h(7), 10),
            Err(AdmitError::Refused(Refusal::Quota { used_shards: 3, .. }))
        ));
        drop(a);
        let again = Admission::open(store, quota).unwrap();
        assert_eq!(again.usage(&peer), (300, 2));
    }
}
