//! Kademlia's record store, persistent on RocksDB.
//!
//! libp2p's `MemoryStore` answers the queries (it is fast and already does the bookkeeping of
//! provider lists); every change is written through to the `records` column family, and
//! [`PersistentStore::open`] loads what is there, so a restarted node still holds and serves the
//! records and provider entries it had. Expiry instants are kept as Unix seconds on disk.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use libp2p::kad::store::{MemoryStore, MemoryStoreConfig, RecordStore, Result};
use libp2p::kad::{ProviderRecord, Record, RecordKey};
use libp2p::{Multiaddr, PeerId};
use serde::{Deserialize, Serialize};
use zhtp_store::{Cf, Store};

use crate::record::{MAX_VALUE, unix_now};

const RECORD: &[u8] = b"r/";
const PROVIDER: &[u8] = b"p/";

#[derive(Serialize, Deserialize)]
struct StoredRecord {
    key: Vec<u8>,
    value: Vec<u8>,
    publisher: Option<Vec<u8>>,
    expires: Option<u64>,
}

#[derive(Serialize, Deserialize)]
struct StoredProvider {
    key: Vec<u8>,
    provider: Vec<u8>,
    expires: Option<u64>,
    addresses: Vec<Vec<u8>>,
}

fn to_unix(at: Option<Instant>) -> Option<u64> {
    at.map(|t| unix_now() + t.saturating_duration_since(Instant::now()).as_secs())
}

/// `None` when already past.
fn from_unix(at: Option<u64>) -> Option<Option<Instant>> {
    match at {
        None => Some(None),
        Some(s) => {
            let now = unix_now();
            (s > now).then(|| Some(Instant::now() + Duration::from_secs(s - now)))
        }
    }
}

fn record_key(key: &RecordKey) -> Vec<u8> {
    [RECORD, key.as_ref()].concat()
}

fn provider_key(key: &RecordKey, p: &PeerId) -> Vec<u8> {
    let k = key.as_ref();
    let mut out = Vec::with_capacity(PROVIDER.len() + 2 + k.len() + 40);
    out.extend_from_slice(PROVIDER);
    out.extend_from_slice(&(k.len() as u16).to_be_bytes());
    out.extend_from_slice(k);
    out.extend_from_slice(&p.to_bytes());
    out
}

/// Memory store + write-through to RocksDB.
pub struct PersistentStore {
    mem: MemoryStore,
    db: Option<Arc<Store>>,
}

impl std::fmt::Debug for PersistentStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PersistentStore")
            .field("persistent", &self.db.is_some())
            .finish()
    }
}

/// How many records and provider entries a node keeps.
pub fn memory_config() -> MemoryStoreConfig {
    MemoryStoreConfig {
        max_records: 64 * 1024,
        max_value_bytes: MAX_VALUE,
        max_providers_per_key: libp2p::kad::K_VALUE.get(),
        max_provided_keys: 1 << 20,
    }
}

impl PersistentStore {
    /// A store for `local`, loading what `db` holds (expired entries are dropped). Without a
    /// database it is memory only (the in-process lookup test runs 100 nodes that way).
    pub fn open(
        local: PeerId,
        db: Option<Arc<Store>>,
    ) -> std::result::Result<Self, zhtp_store::Error> {
        let mut mem = MemoryStore::with_config(local, memory_config());
        if let Some(db) = &db {
            let mut stale = Vec::new();
            for item in db.scan(Cf::Records, RECORD)? {
                let (k, v) = item?;
                let Ok(s) = postcard::from_bytes::<StoredRecord>(&v) else {
                    stale.push(k);
                    continue;
                };
                let Some(expires) = from_unix(s.expires) else {
                    stale.push(k);
                    continue;
                };
                let mut r = Record::new(RecordKey::new(&s.key), s.value);
                r.publisher = s.publisher.and_then(|p| PeerId::from_bytes(&p).ok());
                r.expires = expires;
                let _ = mem.put(r);
            }
            for item in db.scan(Cf::Records, PROVIDER)? {
                let (k, v) = item?;
                let Ok(s) = postcard::from_bytes::<StoredProvider>(&v) else {
                    stale.push(k);
                    continue;
                };
                let (Some(expires), Ok(provider)) =
                    (from_unix(s.expires), PeerId::from_bytes(&s.provider))
                else {
                    stale.push(k);
                    continue;
                };
                let _ = mem.add_provider(ProviderRecord {
                    key: RecordKey::new(&s.key),
                    provider,
                    expires,
                    addresses: s
                        .addresses
                        .into_iter()
                        .filter_map(|a| Multiaddr::try_from(a).ok())
                        .collect(),
                });
            }
            if !stale.is_empty() {
                let mut b = db.batch();
                for k in &stale {
                    db.delete(&mut b, Cf::Records, k)?;
                }
                db.write(b)?;
            }
        }
        Ok(Self { mem, db })
    }

    fn persist(&self, key: Vec<u8>, value: Option<Vec<u8>>) {
        let Some(db) = &self.db else { return };
        let mut b = db.batch();
        let r = match value {
            Some(v) => db.put(&mut b, Cf::Records, &key, &v),
            None => db.delete(&mut b, Cf::Records, &key),
        }
        .and_then(|()| db.write(b));
        if let Err(e) = r {
            // The memory copy still serves; the entry is lost only if we also restart.
            tracing::error!("could not persist a DHT record: {e}");
        }
    }
}

impl RecordStore for PersistentStore {
    type RecordsIter<'a> = <MemoryStore as RecordStore>::RecordsIter<'a>;
    type ProvidedIter<'a> = <MemoryStore as RecordStore>::ProvidedIter<'a>;

    fn get(&self, k: &RecordKey) -> Option<Cow<'_, Record>> {
        self.mem.get(k)
    }

    fn put(&mut self, r: Record) -> Result<()> {
        let stored = StoredRecord {
            key: r.key.to_vec(),
            value: r.value.clone(),
            publisher: r.publisher.map(|p| p.to_bytes()),
            expires: to_unix(r.expires),
        };
        let key = record_key(&r.key);
        self.mem.put(r)?;
        self.persist(key, postcard::to_allocvec(&stored).ok());
        Ok(())
    }

    fn remove(&mut self, k: &RecordKey) {
        self.mem.remove(k);
        self.persist(record_key(k), None);
    }

    fn records(&self) -> Self::RecordsIter<'_> {
        self.mem.records()
    }

    fn add_provider(&mut self, record: ProviderRecord) -> Result<()> {
        let stored = StoredProvider {
            key: record.key.to_vec(),
            provider: record.provider.to_bytes(),
            expires: to_unix(record.expires),
            addresses: record.addresses.iter().map(|a| a.to_vec()).collect(),
        };
        let key = provider_key(&record.key, &record.provider);
        self.mem.add_provider(record)?;
        self.persist(key, postcard::to_allocvec(&stored).ok());
        Ok(())
    }

    fn providers(&self, key: &RecordKey) -> Vec<ProviderRecord> {
        self.mem.providers(key)
    }

    fn provided(&self) -> Self::ProvidedIter<'_> {
        self.mem.provided()
    }

    fn remove_provider(&mut self, k: &RecordKey, p: &PeerId) {
        self.mem.remove_provider(k, p);
        self.persist(provider_key(k, p), None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_providers_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let local = PeerId::random();
        let other = PeerId::random();
        let key = RecordKey::new(&b"zhtp/m/1");
        {
            let db = Arc::new(Store::open(dir.path(), Default::default()).unwrap());
            let mut s = PersistentStore::open(local, Some(db)).unwrap();
            let mut r = Record::new(key.clone(), b"v".to_vec());
            r.expires = Some(Instant::now() + Duration::from_secs(3600));
            s.put(r).unwrap();
            let mut gone = Record::new(RecordKey::new(&b"gone"), b"x".to_vec());
            gone.expires = Some(Instant::now() + Duration::from_secs(3600));
            s.put(gone).unwrap();
            s.remove(&RecordKey::new(&b"gone"));
            s.add_provider(ProviderRecord::new(key.clone(), other, vec![]))
                .unwrap();
        }
        let db = Arc::new(Store::open(dir.path(), Default::default()).unwrap());
        let s = PersistentStore::open(local, Some(db)).unwrap();
        assert_eq!(s.get(&key).unwrap().value, b"v");
        assert!(s.get(&RecordKey::new(&b"gone")).is_none());
        assert_eq!(s.providers(&key)[0].provider, other);
    }
}
