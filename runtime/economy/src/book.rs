//! The storage contracts a node keeps: the ones it made as the client's node (with the escrow
//! in its [`crate::Ledger`]) and the ones it signed as a provider. Kept in the ledger's column
//! family, next to the money they move.
//!
//! `c/<id>` holds a contract; `p/<content><segment><index><id>` → the shard's hash marks a
//! position contract `id` pays for (whoever holds it: a node taking a repaired shard is not the
//! holder the contract first named), which is what admission asks: "does a contract kept here
//! name this shard, at this position?"
//!
//! The client's node also keeps, per contract, the audit challenges it prepared
//! (`q/<id><segment><index><n>`, each taken once) and what its audits found
//! (`o/<id><period><provider><n>`), and per node the reputation points its audits gave
//! (`n/<key>`).

use std::sync::{Arc, Mutex, PoisonError};

use zhtp_store::{Cf, Store};
use zhtp_types::Hash;

use crate::Error;
use crate::audit::{Outcome, Prepared};
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

    /// [`Self::keep`], with the audit challenges the client's node prepared for it, in one
    /// batch.
    pub fn keep_with_challenges(
        &self,
        c: &StorageContract,
        prepared: &[Prepared],
    ) -> Result<(), Error> {
        let id = c.id();
        let mut batch = self.store.batch();
        let mut n = std::collections::HashMap::<(u32, u16), u16>::new();
        for p in prepared {
            let i = n.entry((p.segment, p.index)).or_default();
            let mut k = challenge_prefix(&id, p.segment, p.index);
            k.extend_from_slice(&i.to_be_bytes());
            *i += 1;
            let v = postcard::to_allocvec(p).expect("challenges encode");
            self.store.put(&mut batch, Cf::Ledger, &k, &v)?;
        }
        self.keep_in(batch, c)
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
        let _w = self.lock();
        let mut prefix = outcome_prefix(id, Some(period));
        prefix.extend_from_slice(provider);
        let n = self.store.scan(Cf::Ledger, &prefix)?.count() as u32;
        prefix.extend_from_slice(&n.to_be_bytes());
        let mut batch = self.store.batch();
        let v = postcard::to_allocvec(&outcome).expect("outcomes encode");
        self.store.put(&mut batch, Cf::Ledger, &prefix, &v)?;
        self.store.write(batch)?;
        Ok(())
    }

    /// The audits recorded under contract `id`: of one period, or (`None`) all, in order.
    pub fn audits(&self, id: &Hash, period: Option<u32>) -> Result<Vec<Audited>, Error> {
        let prefix = outcome_prefix(id, period);
        let base = outcome_prefix(id, None).len();
        let mut out = Vec::new();
        for item in self.store.scan(Cf::Ledger, &prefix)? {
            let (k, v) = item?;
            let rest = &k[base..];
            let (Some(p), Some(who)) = (rest.get(..4), rest.get(4..36)) else {
                return Err(corrupt("an audit record", "short key"));
            };
            let period = u32::from_be_bytes(p.try_into().expect("4 bytes"));
            let outcome = postcard::from_bytes(&v).map_err(|e| corrupt("an audit record", e))?;
            out.push((period, who.try_into().expect("32 bytes"), outcome));
        }
        Ok(out)
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
        self.keep_in(self.store.batch(), c)
    }

    fn keep_in(&self, mut batch: zhtp_store::Batch, c: &StorageContract) -> Result<(), Error> {
        let id = c.id();
        let bytes = postcard::to_allocvec(c).expect("contracts encode");
        self.store
            .put(&mut batch, Cf::Ledger, &contract_key(&id), &bytes)?;
        for p in &c.terms().shards {
            let mut k = position_prefix(&c.terms().content, p.segment, p.index);
            k.extend_from_slice(id.as_bytes());
            self.store
                .put(&mut batch, Cf::Ledger, &k, p.shard.as_bytes())?;
        }
        self.store.write(batch)?;
        Ok(())
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
            if v.as_ref() != shard.as_bytes() {
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
