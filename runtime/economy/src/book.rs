//! The storage contracts a node keeps: the ones it made as the client's node (with the escrow
//! in its [`crate::Ledger`]) and the ones it signed as a provider. Kept in the ledger's column
//! family, next to the money they move.
//!
//! `c/<id>` holds a contract; `p/<content><segment><index><id>` → the shard's hash marks a
//! position contract `id` pays for (whoever holds it: a node taking a repaired shard is not the
//! holder the contract first named), which is what admission asks: "does a contract kept here
//! name this shard, at this position?"

use std::sync::Arc;

use zhtp_store::{Cf, Store};
use zhtp_types::Hash;

use crate::Error;
use crate::contract::StorageContract;

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

/// The storage contracts of one node.
#[derive(Debug)]
pub struct Book {
    store: Arc<Store>,
}

impl Book {
    /// The contracts kept in `store`.
    pub fn open(store: Arc<Store>) -> Self {
        Self { store }
    }

    /// Keeps `c` (a newer copy of a contract replaces the older), and marks the positions it
    /// pays for, in one batch.
    pub fn keep(&self, c: &StorageContract) -> Result<(), Error> {
        let id = c.id();
        let mut batch = self.store.batch();
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
