//! The storage contracts a node keeps: the ones it made as the client's node (with the escrow
//! in its [`crate::Ledger`]) and the ones it signed as a provider. Kept in the ledger's column
//! family, next to the money they move.
//!
//! `c/<id>` holds a contract; `p/<content><segment><index><id>` → the shard's hash and the
//! end of the term (u64 little-endian) marks a position contract `id` pays for (whoever holds it: a node taking a repaired shard is not the
//! holder the contract first named), which is what admission asks: "does a contract kept here
//! name this shard, at this position?"
//!
//! The client's node also keeps, per contract, the audit challenges it prepared
//! (`q/<id><segment><index><n>`, each taken once) and what its audits found
//! (`o/<id><period><provider><n>`; a proof audit's details under the same key with `v/`),
//! and per node the reputation points its audits gave
//! (`n/<key>`).

use std::sync::{Arc, Mutex, PoisonError};

use zhtp_store::{Cf, Store};
use zhtp_types::Hash;

use crate::Error;
use crate::audit::{Outcome, Prepared, ProofAudit};
use crate::contract::StorageContract;
use crate::reputation;

fn contract_key(id: &Hash) -> Vec<u8> {
    [b"c/".as_slice(), id.as_bytes()].concat()
}

fn position_prefix(content: &Hash, segment: u32, index: u16) -> Vec<u8> {
    [
        b"p/".as_slice(),
        content.as_bytes(),
        &segment.to_be_bytes(),
        &index.to_be_bytes(),
    ]
    .concat()
}

fn challenge_prefix(id: &Hash, segment: u32, index: u16) -> Vec<u8> {
    [
        b"q/".as_slice(),
        id.as_bytes(),
        &segment.to_be_bytes(),
        &index.to_be_bytes(),
    ]
    .concat()
}

fn outcome_prefix(id: &Hash, period: Option<u32>) -> Vec<u8> {
    let mut k = [b"o/".as_slice(), id.as_bytes()].concat();
    if let Some(p) = period {
        k.extend_from_slice(&p.to_be_bytes());
    }
    k
}

fn held_key(old: &Hash) -> Vec<u8> {
    [b"w/".as_slice(), old.as_bytes()].concat()
}

/// A succession waiting to be handed on ([`Book::hold_succession`]).
#[derive(serde::Serialize, serde::Deserialize)]
struct Held {
    /// The successor, encoded.
    contract: Vec<u8>,
    prepared: Vec<Prepared>,
}

fn points_key(node: &[u8; 32]) -> Vec<u8> {
    [b"n/".as_slice(), node].concat()
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Corrupt(format!("{what}: {e}"))
}

/// One audit as recorded: the period, the provider, how it went.
pub type Audited = (u32, [u8; 32], Outcome);

/// The storage contracts of one node.
#[derive(Debug)]
pub struct Book {
    store: Arc<Store>,
    /// One writer of appended entries and points at a time.
    write: Mutex<()>,
}

impl Book {
    /// The contracts kept in `store`.
    pub fn open(store: Arc<Store>) -> Self {
        Self {
            store,
            write: Mutex::new(()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.write.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds `c`, its position marks and the audit challenges the client's node prepared for
    /// it to `batch` (the batch that locks its escrow).
    pub fn fill(
        &self,
        batch: &mut zhtp_store::Batch,
        c: &StorageContract,
        prepared: &[Prepared],
    ) -> Result<(), Error> {
        let id = c.id();
        let mut n = std::collections::HashMap::<(u32, u16), u16>::new();
        for p in prepared {
            let i = n.entry((p.segment, p.index)).or_default();
            let mut k = challenge_prefix(&id, p.segment, p.index);
            k.extend_from_slice(&i.to_be_bytes());
            *i += 1;
            let v = postcard::to_allocvec(p).expect("challenges encode");
            self.store.put(batch, Cf::Ledger, &k, &v)?;
        }
        self.fill_contract(batch, c)
    }

    /// Forgets contract `id` (a put that failed before its shards were all placed): the
    /// contract, its position marks and its challenges.
    pub fn forget(&self, c: &StorageContract) -> Result<(), Error> {
        let mut batch = self.store.batch();
        self.forget_in(&mut batch, c)?;
        self.store.write(batch)?;
        Ok(())
    }

    /// Adds to `batch` (the one that moves the escrow) the succession of `old` by `new`: `new`
    /// kept with its challenges ([`Self::fill`]), `old` forgotten ([`Self::forget`]; its
    /// audit records stay, and the ledger records which contract succeeded it), and the
    /// succession no longer held.
    pub fn succeed(
        &self,
        batch: &mut zhtp_store::Batch,
        old: &StorageContract,
        new: &StorageContract,
        prepared: &[Prepared],
    ) -> Result<(), Error> {
        self.store.delete(batch, Cf::Ledger, &held_key(&old.id()))?;
        self.forget_in(batch, old)?;
        self.fill(batch, new, prepared)
    }

    /// Keeps the signed successor of contract `old` and its challenges until it is handed on
    /// ([`Self::succeed`]) or dropped: a node stopped between publishing a migration and
    /// handing its contract on finds it here ([`Self::held_successions`]).
    pub fn hold_succession(
        &self,
        old: &Hash,
        new: &StorageContract,
        prepared: &[Prepared],
    ) -> Result<(), Error> {
        let held = Held {
            contract: postcard::to_allocvec(new).expect("contracts encode"),
            prepared: prepared.to_vec(),
        };
        let mut batch = self.store.batch();
        self.store.put(
            &mut batch,
            Cf::Ledger,
            &held_key(old),
            &postcard::to_allocvec(&held).expect("a held succession encodes"),
        )?;
        self.store.write(batch)?;
        Ok(())
    }

    /// Every held succession: `(old contract id, its successor, the successor's challenges)`.
    pub fn held_successions(&self) -> Result<Vec<(Hash, StorageContract, Vec<Prepared>)>, Error> {
        let mut out = Vec::new();
        for item in self.store.scan(Cf::Ledger, b"w/")? {
            let (k, v) = item?;
            let old = k[2..]
                .try_into()
                .map(Hash)
                .map_err(|_| Error::Corrupt("a held succession's key names no contract".into()))?;
            let held: Held =
                postcard::from_bytes(&v).map_err(|e| corrupt("a held succession", e))?;
            let new = StorageContract::decode(&held.contract)
                .map_err(|e| corrupt("a held successor", e))?;
            out.push((old, new, held.prepared));
        }
        Ok(out)
    }

    /// Drops the held succession of `old` (the migration was undone).
    pub fn drop_succession(&self, old: &Hash) -> Result<(), Error> {
        let mut batch = self.store.batch();
        self.store.delete(&mut batch, Cf::Ledger, &held_key(old))?;
        self.store.write(batch)?;
        Ok(())
    }

    fn forget_in(&self, batch: &mut zhtp_store::Batch, c: &StorageContract) -> Result<(), Error> {
        let id = c.id();
        self.store.delete(batch, Cf::Ledger, &contract_key(&id))?;
        for p in &c.terms().shards {
            let mut k = position_prefix(&c.terms().content, p.segment, p.index);
            k.extend_from_slice(id.as_bytes());
            self.store.delete(batch, Cf::Ledger, &k)?;
        }
        let prefix = [b"q/".as_slice(), id.as_bytes()].concat();
        for item in self.store.scan(Cf::Ledger, &prefix)? {
            let (k, _) = item?;
            self.store.delete(batch, Cf::Ledger, &k)?;
        }
        Ok(())
    }

    /// A prepared challenge of shard `index` of segment `segment` under contract `id`, taken:
    /// it is deleted, so it is asked once.
    pub fn take_challenge(
        &self,
        id: &Hash,
        segment: u32,
        index: u16,
    ) -> Result<Option<Prepared>, Error> {
        let _w = self.lock();
        let prefix = challenge_prefix(id, segment, index);
        let Some(item) = self.store.scan(Cf::Ledger, &prefix)?.next() else {
            return Ok(None);
        };
        let (k, v) = item?;
        let p = postcard::from_bytes(&v).map_err(|e| corrupt("an audit challenge", e))?;
        let mut batch = self.store.batch();
        self.store.delete(&mut batch, Cf::Ledger, &k)?;
        self.store.write(batch)?;
        Ok(Some(p))
    }

    /// Records how an audit of `provider` under contract `id` in `period` went.
    pub fn record(
        &self,
        id: &Hash,
        period: u32,
        provider: &[u8; 32],
        outcome: Outcome,
    ) -> Result<(), Error> {
        self.record_with(id, period, provider, outcome, None)
    }

    /// [`Self::record`] for a proof audit, with its details (in the same batch).
    pub fn record_proof(
        &self,
        id: &Hash,
        period: u32,
        provider: &[u8; 32],
        detail: &ProofAudit,
    ) -> Result<(), Error> {
        self.record_with(id, period, provider, detail.outcome, Some(detail))
    }

    fn record_with(
        &self,
        id: &Hash,
        period: u32,
        provider: &[u8; 32],
        outcome: Outcome,
        detail: Option<&ProofAudit>,
    ) -> Result<(), Error> {
        let _w = self.lock();
        let mut prefix = outcome_prefix(id, Some(period));
        prefix.extend_from_slice(provider);
        let n = self.store.scan(Cf::Ledger, &prefix)?.count() as u32;
        prefix.extend_from_slice(&n.to_be_bytes());
        let mut batch = self.store.batch();
        let v = postcard::to_allocvec(&outcome).expect("outcomes encode");
        self.store.put(&mut batch, Cf::Ledger, &prefix, &v)?;
        if let Some(d) = detail {
            // The same key under "v/" (a, e, f, h, r, s, t and u are the ledger's, in the same
            // column family): the detail of the n-th audit is beside its outcome.
            let mut k = prefix;
            k[0] = b'v';
            let v = postcard::to_allocvec(d).expect("proof audits encode");
            self.store.put(&mut batch, Cf::Ledger, &k, &v)?;
        }
        self.store.write(batch)?;
        Ok(())
    }

    /// The proof audits recorded under contract `id`, in order: period, provider, details.
    pub fn proof_audits(&self, id: &Hash) -> Result<Vec<(u32, [u8; 32], ProofAudit)>, Error> {
        let prefix = [b"v/".as_slice(), id.as_bytes()].concat();
        self.by_period(&prefix, prefix.len(), "a proof audit record")
    }

    /// The audits recorded under contract `id`: of one period, or (`None`) all, in order.
    pub fn audits(&self, id: &Hash, period: Option<u32>) -> Result<Vec<Audited>, Error> {
        let base = outcome_prefix(id, None).len();
        self.by_period(&outcome_prefix(id, period), base, "an audit record")
    }

    /// The records under `prefix` whose keys continue, `base` bytes in, with a period (u32,
    /// big-endian) and a provider (32 bytes), in key order, with their values decoded; `what`
    /// names them in errors. Audit outcomes and proof audits are both kept this way.
    fn by_period<T: serde::de::DeserializeOwned>(
        &self,
        prefix: &[u8],
        base: usize,
        what: &str,
    ) -> Result<Vec<(u32, [u8; 32], T)>, Error> {
        let mut out = Vec::new();
        for item in self.store.scan(Cf::Ledger, prefix)? {
            let (k, v) = item?;
            let rest = &k[base..];
            let (Some(p), Some(who)) = (rest.get(..4), rest.get(4..36)) else {
                return Err(corrupt(what, "short key"));
            };
            let period = u32::from_be_bytes(p.try_into().expect("4 bytes"));
            let value = postcard::from_bytes(&v).map_err(|e| corrupt(what, e))?;
            out.push((period, who.try_into().expect("32 bytes"), value));
        }
        Ok(out)
    }

    /// The reputation points this node's audits gave `node`, if they judged it at all.
    pub fn recorded_points(&self, node: &[u8; 32]) -> Result<Option<i64>, Error> {
        match self.store.get(Cf::Ledger, &points_key(node))? {
            None => Ok(None),
            Some(_) => self.points(node).map(Some),
        }
    }

    /// The reputation points this node's audits gave `node` ([`reputation::START`] if none).
    pub fn points(&self, node: &[u8; 32]) -> Result<i64, Error> {
        Ok(match self.store.get(Cf::Ledger, &points_key(node))? {
            None => reputation::START,
            Some(v) => i64::from_le_bytes(
                v.as_slice()
                    .try_into()
                    .map_err(|_| corrupt("reputation points", "not 8 bytes"))?,
            ),
        })
    }

    /// Moves `node`'s points by `delta` (within the bounds); the new points.
    pub fn adjust(&self, node: &[u8; 32], delta: i64) -> Result<i64, Error> {
        let _w = self.lock();
        let points = reputation::moved(self.points(node)?, delta);
        let mut batch = self.store.batch();
        self.store.put(
            &mut batch,
            Cf::Ledger,
            &points_key(node),
            &points.to_le_bytes(),
        )?;
        self.store.write(batch)?;
        Ok(points)
    }

    /// Every node with points, and its points.
    pub fn reputations(&self) -> Result<Vec<([u8; 32], i64)>, Error> {
        let mut out = Vec::new();
        for item in self.store.scan(Cf::Ledger, b"n/")? {
            let (k, v) = item?;
            let (Ok(node), Ok(p)) = (<[u8; 32]>::try_from(&k[2..]), <[u8; 8]>::try_from(&v[..]))
            else {
                return Err(corrupt("reputation points", "bad entry"));
            };
            out.push((node, i64::from_le_bytes(p)));
        }
        Ok(out)
    }

    /// Keeps `c` (a newer copy of a contract replaces the older), and marks the positions it
    /// pays for, in one batch.
    pub fn keep(&self, c: &StorageContract) -> Result<(), Error> {
        let mut batch = self.store.batch();
        self.fill_contract(&mut batch, c)?;
        self.store.write(batch)?;
        Ok(())
    }

    /// Replaces the kept copy of `c` (its state moved on): the contract only, its positions
    /// stay as they are.
    pub fn update(&self, c: &StorageContract) -> Result<(), Error> {
        let mut batch = self.store.batch();
        let bytes = postcard::to_allocvec(c).expect("contracts encode");
        self.store
            .put(&mut batch, Cf::Ledger, &contract_key(&c.id()), &bytes)?;
        self.store.write(batch)?;
        Ok(())
    }

    fn fill_contract(
        &self,
        batch: &mut zhtp_store::Batch,
        c: &StorageContract,
    ) -> Result<(), Error> {
        let (id, t) = (c.id(), c.terms());
        let bytes = postcard::to_allocvec(c).expect("contracts encode");
        self.store
            .put(batch, Cf::Ledger, &contract_key(&id), &bytes)?;
        // `check` refused terms whose end overflows.
        let end = t
            .start
            .saturating_add(u64::from(t.periods).saturating_mul(t.period_secs));
        for p in &t.shards {
            let mut k = position_prefix(&t.content, p.segment, p.index);
            k.extend_from_slice(id.as_bytes());
            let v = [p.shard.as_bytes().as_slice(), &end.to_le_bytes()].concat();
            self.store.put(batch, Cf::Ledger, &k, &v)?;
        }
        Ok(())
    }

    /// Whether a contract kept here pays for `shard` at this position at time `now` (its term
    /// not over). Reads the position marks only, not the contracts: what every shard stored
    /// on a node that charges asks.
    pub fn covers(
        &self,
        content: &Hash,
        segment: u32,
        index: u16,
        shard: &Hash,
        now: u64,
    ) -> Result<bool, Error> {
        for item in self
            .store
            .scan(Cf::Ledger, &position_prefix(content, segment, index))?
        {
            let (_, v) = item?;
            let end = v
                .get(32..40)
                .map_or(0, |e| u64::from_le_bytes(e.try_into().expect("8 bytes")));
            if v.get(..32) == Some(shard.as_bytes()) && end > now {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The contract `id`, checked ([`StorageContract::verify`] runs as it decodes).
    pub fn get(&self, id: &Hash) -> Result<Option<StorageContract>, Error> {
        self.store
            .get(Cf::Ledger, &contract_key(id))?
            .map(|b| {
                StorageContract::decode(&b)
                    .map_err(|e| Error::Corrupt(format!("storage contract {id}: {e}")))
            })
            .transpose()
    }

    /// Up to `limit` contracts, by id.
    pub fn list(&self, limit: usize) -> Result<Vec<StorageContract>, Error> {
        let mut out = Vec::new();
        for item in self.store.scan(Cf::Ledger, b"c/")?.take(limit) {
            let (k, v) = item?;
            out.push(StorageContract::decode(&v).map_err(|e| {
                Error::Corrupt(format!("storage contract {}: {e}", hex::encode(&k[2..])))
            })?);
        }
        Ok(out)
    }

    /// The contracts under which this node holds shard `shard` at position `index` of
    /// segment `segment` of `content`.
    pub fn covering(
        &self,
        content: &Hash,
        segment: u32,
        index: u16,
        shard: &Hash,
    ) -> Result<Vec<StorageContract>, Error> {
        let prefix = position_prefix(content, segment, index);
        let mut out = Vec::new();
        for item in self.store.scan(Cf::Ledger, &prefix)? {
            let (k, v) = item?;
            if v.get(..32) != Some(shard.as_bytes()) {
                continue;
            }
            let id = <[u8; 32]>::try_from(&k[prefix.len()..])
                .map_err(|_| Error::Corrupt("a held position names no contract".into()))?;
            if let Some(c) = self.get(&Hash(id))? {
                out.push(c);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::prepare;
    use crate::contract::{Mandate, Penalties, Placement, Sla, Terms, Violation};

    fn contract(start: u64) -> StorageContract {
        let client = [9; 32];
        let mandate = Mandate {
            content: Hash([1; 32]),
            client,
            max_price: 100,
            periods: 2,
            period_secs: 10,
            expires: start,
            nonce: [0; 16],
        };
        StorageContract::new(Terms {
            content: Hash([1; 32]),
            client,
            shards: vec![Placement {
                segment: 3,
                index: 1,
                shard: Hash([7; 32]),
                holder: [4; 32],
                proof: None,
            }],
            price: 100,
            fee: 0,
            plugin: Hash([2; 32]),
            start,
            periods: 2,
            period_secs: 10,
            sla: Sla::default(),
            penalties: Penalties::default(),
            mandate,
            audits: Hash([0; 32]),
        })
        .unwrap()
    }

    #[test]
    fn positions_challenges_audits_and_points() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path(), zhtp_store::Config::default()).unwrap());
        let book = Book::open(store.clone());
        let c = contract(1_000);
        let prepared = prepare(3, 1, &[5u8; 4096], 2, &[1; 32]);
        let mut batch = store.batch();
        book.fill(&mut batch, &c, &prepared).unwrap();
        store.write(batch).unwrap();
        assert_eq!(book.get(&c.id()).unwrap(), Some(c.clone()));

        // Covered: that shard, at that position, within the term only.
        let (content, shard) = (Hash([1; 32]), Hash([7; 32]));
        assert!(book.covers(&content, 3, 1, &shard, 1_019).unwrap());
        assert!(
            !book.covers(&content, 3, 1, &shard, 1_020).unwrap(),
            "term over"
        );
        assert!(!book.covers(&content, 3, 1, &Hash([8; 32]), 1_000).unwrap());
        assert!(!book.covers(&content, 3, 2, &shard, 1_000).unwrap());
        assert_eq!(
            book.covering(&content, 3, 1, &shard).unwrap(),
            std::slice::from_ref(&c)
        );

        // Each challenge is taken once, in order.
        assert_eq!(
            book.take_challenge(&c.id(), 3, 1).unwrap(),
            Some(prepared[0].clone())
        );
        assert_eq!(
            book.take_challenge(&c.id(), 3, 1).unwrap(),
            Some(prepared[1].clone())
        );
        assert_eq!(book.take_challenge(&c.id(), 3, 1).unwrap(), None);
        assert_eq!(book.take_challenge(&c.id(), 3, 0).unwrap(), None);

        // Audits are appended per period and provider, and read back in order.
        let lost = Outcome::Failed(Violation::DataLoss);
        let ok = Outcome::Passed { latency_ms: 3 };
        book.record(&c.id(), 0, &[4; 32], ok).unwrap();
        book.record(&c.id(), 0, &[4; 32], lost).unwrap();
        book.record(&c.id(), 1, &[4; 32], ok).unwrap();
        assert_eq!(
            book.audits(&c.id(), Some(0)).unwrap(),
            [(0, [4; 32], ok), (0, [4; 32], lost)]
        );
        assert_eq!(book.audits(&c.id(), None).unwrap().len(), 3);
        // A proof audit is an audit like the others, with its details beside it.
        let detail = crate::audit::ProofAudit {
            segment: 3,
            index: 1,
            circuit: 0x01_08_0a,
            nonce: [5; 16],
            outcome: lost,
            answer_ms: 700,
            verify_us: 0,
            problem: Some("does not verify".into()),
        };
        book.record_proof(&c.id(), 1, &[4; 32], &detail).unwrap();
        assert_eq!(
            book.audits(&c.id(), Some(1)).unwrap(),
            [(1, [4; 32], ok), (1, [4; 32], lost)]
        );
        assert_eq!(book.proof_audits(&c.id()).unwrap(), [(1, [4; 32], detail)]);

        // Points start at 1000 and stay within bounds.
        assert_eq!(book.points(&[4; 32]).unwrap(), reputation::START);
        assert_eq!(book.adjust(&[4; 32], -500).unwrap(), 500);
        assert_eq!(
            book.adjust(&[4; 32], -1_000_000).unwrap(),
            -reputation::FLOOR
        );
        assert_eq!(book.reputations().unwrap(), [([4; 32], -reputation::FLOOR)]);

        // Forgotten: contract, positions and challenges.
        book.forget(&c).unwrap();
        assert_eq!(book.get(&c.id()).unwrap(), None);
        assert!(!book.covers(&content, 3, 1, &shard, 1_000).unwrap());
    }
}
