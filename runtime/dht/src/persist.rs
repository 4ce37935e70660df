//! Kademlia's record store, persistent on RocksDB.
//!
//! libp2p's `MemoryStore` answers the queries (it is fast and already does the bookkeeping of
//! provider lists); every change it keeps is written through to the `records` column family, and
//! [`PersistentStore::open`] loads what is there, so a restarted node still holds and serves the
//! records and provider entries it had. Expiry instants are kept as Unix seconds on disk.
//!
//! The writes go to a thread of their own, which commits what has queued up as one batch: a
//! synced RocksDB write takes milliseconds, and the swarm task that calls the store must not wait
//! for it (a flood of provider announcements would stall every connection). Dropping the store
//! waits for the writes queued so far.

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
            (s > now).then(|| Instant::now().checked_add(Duration::from_secs(s - now)))
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
    writer: Option<Writer>,
}

/// A change to the `records` column family: a value to put, or `None` to delete.
type Change = (Vec<u8>, Option<Vec<u8>>);

/// The thread that commits changes in batches.
struct Writer {
    tx: Option<std::sync::mpsc::Sender<Change>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Most changes committed in one batch.
const MAX_BATCH: usize = 4096;

impl Writer {
    fn spawn(db: Arc<Store>) -> std::io::Result<Self> {
        let (tx, rx) = std::sync::mpsc::channel::<Change>();
        let thread = std::thread::Builder::new()
            .name("zhtp-dht-persist".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut changes = vec![first];
                    changes.extend(rx.try_iter().take(MAX_BATCH - 1));
                    let mut b = db.batch();
                    let r = changes
                        .iter()
                        .try_for_each(|(k, v)| match v {
                            Some(v) => db.put(&mut b, Cf::Records, k, v),
                            None => db.delete(&mut b, Cf::Records, k),
                        })
                        .and_then(|()| db.write(b));
                    if let Err(e) = r {
                        // The memory copy still serves; the entries are lost only if we also
                        // restart.
                        tracing::error!("could not persist {} DHT record(s): {e}", changes.len());
                    }
                }
            })?;
        Ok(Self {
            tx: Some(tx),
            thread: Some(thread),
        })
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the channel ends the thread once it has written what is queued; waiting for
        // it means the database is free (and complete) when the store is gone.
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl std::fmt::Debug for PersistentStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PersistentStore")
            .field("persistent", &self.writer.is_some())
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
                // Kademlia serves what the store holds without asking us: what no longer opens
                // (an older envelope format, an expired signature) is dropped here.
                if crate::record::open(&r, None).is_err() {
                    stale.push(k);
                    continue;
                }
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
        let writer = match db {
            Some(db) => Some(
                Writer::spawn(db)
                    .map_err(|e| zhtp_store::Error::Io("the DHT record writer thread".into(), e))?,
            ),
            None => None,
        };
        Ok(Self { mem, writer })
    }

    fn persist(&self, key: Vec<u8>, value: Option<Vec<u8>>) {
        if let Some(tx) = self.writer.as_ref().and_then(|w| w.tx.as_ref())
            && tx.send((key, value)).is_err()
        {
            tracing::error!("the DHT record writer has stopped; a record was not persisted");
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
        let (k, provider) = (record.key.clone(), record.provider);
        self.mem.add_provider(record)?;
        // The memory store silently ignores a new provider once the key's list is full;
        // persist only what it kept, or a flood of announcements fills the disk.
        if self
            .mem
            .providers(&k)
            .iter()
            .any(|p| p.provider == provider)
        {
            self.persist(key, postcard::to_allocvec(&stored).ok());
        }
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
        let kp = libp2p::identity::Keypair::generate_ed25519();
        let local = PeerId::random();
        let other = PeerId::random();
        let key = RecordKey::new(&b"zhtp/m/1");
        let ttl = Duration::from_secs(3600);
        let sealed = |k: &[u8], v: &[u8]| crate::record::seal(&kp, k, v.to_vec(), 1, ttl).unwrap();
        let kept = sealed(key.as_ref(), b"v");
        {
            let db = Arc::new(Store::open(dir.path(), Default::default()).unwrap());
            let mut s = PersistentStore::open(local, Some(db)).unwrap();
            s.put(kept.clone()).unwrap();
            s.put(sealed(b"gone", b"x")).unwrap();
            s.remove(&RecordKey::new(&b"gone"));
            // Unsigned (or of an older envelope format): kept in memory, dropped at the reopen.
            let mut unsigned = Record::new(RecordKey::new(&b"unsigned"), b"u".to_vec());
            unsigned.expires = Some(Instant::now() + ttl);
            s.put(unsigned).unwrap();
            s.add_provider(ProviderRecord::new(key.clone(), other, vec![]))
                .unwrap();
        }
        let db = Arc::new(Store::open(dir.path(), Default::default()).unwrap());
        let s = PersistentStore::open(local, Some(db)).unwrap();
        assert_eq!(s.get(&key).unwrap().value, kept.value);
        assert!(s.get(&RecordKey::new(&b"gone")).is_none());
        assert!(s.get(&RecordKey::new(&b"unsigned")).is_none());
        assert_eq!(s.providers(&key)[0].provider, other);
    }

    #[test]
    fn a_provider_the_memory_store_drops_is_not_persisted() {
        let dir = tempfile::tempdir().unwrap();
        let local = PeerId::random();
        let key = RecordKey::new(&b"popular");
        let db = Arc::new(Store::open(dir.path(), Default::default()).unwrap());
        {
            let mut s = PersistentStore::open(local, Some(db.clone())).unwrap();
            // Twice as many providers as a key keeps: the memory store keeps the k closest.
            for _ in 0..2 * libp2p::kad::K_VALUE.get() {
                s.add_provider(ProviderRecord::new(key.clone(), PeerId::random(), vec![]))
                    .unwrap();
            }
        }
        let on_disk = db.scan(Cf::Records, PROVIDER).unwrap().count();
        assert_eq!(on_disk, libp2p::kad::K_VALUE.get());
    }
}
