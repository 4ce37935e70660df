//! Smart contracts on one node: code kept by hash, instances with their state in RocksDB
//! (`Cf::Contracts`), and calls committed atomically with the state root they lead to.
//!
//! Keys: `c` + code hash → the wasm; `i` + address → the [`Instance`]; `s` + address + key →
//! a state value. A committed call writes its state changes and the instance's new sequence and
//! accumulator in one batch, so a crash keeps a call whole or not at all. Calls on one address
//! run one at a time; an execute may name the sequence it was made against and is refused at
//! any other (compare-and-swap: what replicas will need to never diverge).
//!
//! Replication through the DHT is `zhtp::network`'s: it runs the same calls on every replica
//! and moves whole states between them ([`SmartContracts::page`], [`SmartContracts::install`]).
//!
//! Not yet: funds (the contract's account in the ledger): a call with funds is refused.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};
use thiserror::Error;
use zhtp_host::{Call, Code, ContractError, Contracts, Entry, Outcome, StateHash};
use zhtp_store::{Cf, Store};
use zhtp_types::Hash;

/// What went wrong.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// The code is not a valid contract.
    #[error("not a valid contract: {0}")]
    Invalid(#[from] zhtp_host::LoadError),
    /// No code with this hash was deployed here.
    #[error("no contract code {0} here: deploy it first")]
    NoCode(Hash),
    /// No instance at this address.
    #[error("no contract at {0}")]
    NoInstance(Hash),
    /// An instance exists at this address already.
    #[error("a contract exists at {0} already")]
    Exists(Hash),
    /// The execute was made against another state version.
    #[error("made against state version {at}, but the contract is at {now}: query it again")]
    Stale {
        /// The version the call named.
        at: u64,
        /// The version now.
        now: u64,
    },
    /// Funds need the contract's account in the ledger, which is not there yet.
    #[error("calls with funds are not supported yet (the contract's ledger account is next)")]
    Funds,
    /// A state from another node does not have the root it was said to have.
    #[error("the state received does not have the agreed root")]
    Mismatch,
    /// The instance changed while a state to replace it was fetched.
    #[error("the instance changed meanwhile")]
    Moved,
    /// The store failed, or holds something it did not write.
    #[error("contract store: {0}")]
    Store(String),
}

impl From<zhtp_store::Error> for Error {
    fn from(e: zhtp_store::Error) -> Self {
        Error::Store(e.to_string())
    }
}

/// A contract instance: its code, who created it, its state version and accumulator.
///
/// From another node it is a claim: [`Instance::root`] refuses a damaged accumulator, and
/// [`SmartContracts::install`] recomputes it from the state itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    /// The code's hash.
    pub code: Hash,
    /// Who instantiated it.
    pub creator: [u8; 32],
    /// The state version: 0 after instantiate, one more per committed execute.
    pub sequence: u64,
    /// The state's accumulator ([`StateHash::to_bytes`]). One byte string, not a sequence of
    /// bytes decoded one by one (the same postcard bytes either way).
    #[serde(with = "serde_bytes")]
    accumulator: Vec<u8>,
}

impl Instance {
    /// The state root.
    ///
    /// # Errors
    /// [`Error::Store`] when the accumulator is not one.
    pub fn root(&self) -> Result<[u8; 32], Error> {
        Ok(self.hash()?.root())
    }

    fn hash(&self) -> Result<StateHash, Error> {
        StateHash::from_bytes(&self.accumulator)
            .ok_or_else(|| Error::Store("an instance's accumulator is damaged".into()))
    }
}

/// A committed call: what the contract answered, the state version and root after it, its gas.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committed {
    /// The contract's answer, or why the call failed (nothing was then written).
    pub result: Result<Vec<u8>, ContractError>,
    /// The state version after the call.
    pub sequence: u64,
    /// The state root after the call.
    pub root: [u8; 32],
    /// Gas used.
    pub gas_used: u64,
}

fn code_key(h: &Hash) -> Vec<u8> {
    [b"c".as_slice(), h.as_bytes()].concat()
}

fn instance_key(a: &Hash) -> Vec<u8> {
    [b"i".as_slice(), a.as_bytes()].concat()
}

fn note_key(a: &Hash) -> Vec<u8> {
    [b"l".as_slice(), a.as_bytes()].concat()
}

fn state_prefix(a: &Hash) -> Vec<u8> {
    [b"s".as_slice(), a.as_bytes()].concat()
}

/// One key and value of a contract's state.
pub type Pair = (Vec<u8>, Vec<u8>);

/// Calls on one address run one at a time: a fixed set of locks, an address taking the one its
/// first byte picks. Bounded whatever number of contracts a replica keeps; two addresses
/// sharing a lock only wait for each other.
const LOCKS: usize = 64;

/// One contract's committed state, read from the store.
struct View {
    store: Arc<Store>,
    prefix: Vec<u8>,
}

impl zhtp_host::contract::State for View {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, String> {
        let k = [self.prefix.as_slice(), key].concat();
        self.store.get(Cf::Contracts, &k).map_err(|e| e.to_string())
    }

    fn next(
        &self,
        from: &[u8],
        end: Option<&[u8]>,
    ) -> Result<Option<zhtp_host::contract::Pair>, String> {
        let start = [self.prefix.as_slice(), from].concat();
        let mut it = self
            .store
            .scan_from(Cf::Contracts, &start, &self.prefix)
            .map_err(|e| e.to_string())?;
        match it.next() {
            None => Ok(None),
            Some(Err(e)) => Err(e.to_string()),
            Some(Ok((k, v))) => {
                let key = k[self.prefix.len()..].to_vec();
                Ok(end
                    .is_none_or(|e| key.as_slice() < e)
                    .then(|| (key, v.into_vec())))
            }
        }
    }
}

/// The smart contracts of one node.
pub struct SmartContracts {
    store: Arc<Store>,
    host: Contracts,
    codes: Mutex<HashMap<Hash, Code>>,
    locks: Vec<Mutex<()>>,
}

impl std::fmt::Debug for SmartContracts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmartContracts").finish_non_exhaustive()
    }
}

impl SmartContracts {
    /// The contracts kept in `store`.
    pub fn open(store: Arc<Store>) -> Result<Self, Error> {
        Ok(Self {
            store,
            host: Contracts::new()?,
            codes: Mutex::new(HashMap::new()),
            locks: (0..LOCKS).map(|_| Mutex::new(())).collect(),
        })
    }

    /// Validates `wasm` and keeps it under its hash, which it returns. Deploying the same code
    /// again changes nothing.
    pub fn deploy(&self, wasm: &[u8]) -> Result<Hash, Error> {
        let code = self.host.load(wasm)?;
        let h = code.hash();
        let mut b = self.store.batch();
        self.store.put(&mut b, Cf::Contracts, &code_key(&h), wasm)?;
        self.store.write(b)?;
        self.codes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(h, code);
        Ok(h)
    }

    fn code(&self, h: &Hash) -> Result<Code, Error> {
        if let Some(c) = self
            .codes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(h)
        {
            return Ok(c.clone());
        }
        let wasm = self
            .store
            .get(Cf::Contracts, &code_key(h))?
            .ok_or(Error::NoCode(*h))?;
        let code = self.host.load(&wasm)?;
        self.codes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(*h, code.clone());
        Ok(code)
    }

    /// The instance at `address`.
    pub fn instance(&self, address: &Hash) -> Result<Option<Instance>, Error> {
        self.store
            .get(Cf::Contracts, &instance_key(address))?
            .map(|b| {
                postcard::from_bytes(&b)
                    .map_err(|e| Error::Store(format!("instance {address}: {e}")))
            })
            .transpose()
    }

    fn lock(&self, address: &Hash) -> MutexGuard<'_, ()> {
        self.locks[usize::from(address.0[0]) % LOCKS]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the code with hash `h` is kept here.
    pub fn has_code(&self, h: &Hash) -> Result<bool, Error> {
        Ok(self
            .codes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(h)
            || self.store.contains(Cf::Contracts, &code_key(h))?)
    }

    /// The addresses of the instances kept here.
    pub fn addresses(&self) -> Result<Vec<Hash>, Error> {
        let mut out = Vec::new();
        for item in self.store.scan(Cf::Contracts, b"i")? {
            let (k, _) = item?;
            if let Ok(a) = <[u8; 32]>::try_from(&k[1..]) {
                out.push(Hash(a));
            }
        }
        Ok(out)
    }

    /// The instance at `address` and the pairs of its state after `after` (from the first
    /// without), up to about `max_bytes` of them, read under the address's lock so that they all
    /// belong to the instance's version; `true` when more follow.
    pub fn page(
        &self,
        address: &Hash,
        after: Option<&[u8]>,
        max_bytes: usize,
    ) -> Result<(Instance, Vec<Pair>, bool), Error> {
        let _one = self.lock(address);
        let inst = self.instance(address)?.ok_or(Error::NoInstance(*address))?;
        let prefix = state_prefix(address);
        // The first key after `after`: `after` with a zero byte appended.
        let start = match after {
            Some(a) => [prefix.as_slice(), a, &[0]].concat(),
            None => prefix.clone(),
        };
        let (mut pairs, mut bytes) = (Vec::new(), 0usize);
        for item in self.store.scan_from(Cf::Contracts, &start, &prefix)? {
            let (k, v) = item?;
            if bytes >= max_bytes {
                return Ok((inst, pairs, true));
            }
            bytes += k.len() - prefix.len() + v.len();
            pairs.push((k[prefix.len()..].to_vec(), v.into_vec()));
        }
        Ok((inst, pairs, false))
    }

    /// Replaces the state at `address` with `pairs` (sorted, unique keys) as version `sequence`
    /// of an instance of `code` by `creator`, in one batch — if the root of `pairs` is `root`
    /// (else [`Error::Mismatch`]) and the instance here is still `was` (its version and root;
    /// `None`: no instance), else [`Error::Moved`]: a call committed meanwhile is never
    /// overwritten. What a replica that is behind (or was on a branch the others did not take)
    /// does with the state the others agree on.
    pub fn install(
        &self,
        address: &Hash,
        (code, creator, sequence): (Hash, [u8; 32], u64),
        pairs: &[Pair],
        root: [u8; 32],
        was: Option<(u64, [u8; 32])>,
    ) -> Result<(), Error> {
        self.code(&code)?;
        let mut hash = StateHash::default();
        for (k, v) in pairs {
            hash.insert(k, v);
        }
        if hash.root() != root {
            return Err(Error::Mismatch);
        }
        let inst = Instance {
            code,
            creator,
            sequence,
            accumulator: hash.to_bytes(),
        };
        let _one = self.lock(address);
        let now = match self.instance(address)? {
            Some(i) => Some((i.sequence, i.root()?)),
            None => None,
        };
        if now != was {
            return Err(Error::Moved);
        }
        let prefix = state_prefix(address);
        let mut b = self.store.batch();
        // The last call noted here is not the one that led to this state.
        self.store
            .delete(&mut b, Cf::Contracts, &note_key(address))?;
        for item in self.store.scan(Cf::Contracts, &prefix)? {
            let (k, _) = item?;
            self.store.delete(&mut b, Cf::Contracts, &k)?;
        }
        for (k, v) in pairs {
            let key = [prefix.as_slice(), k].concat();
            self.store.put(&mut b, Cf::Contracts, &key, v)?;
        }
        let bytes = postcard::to_allocvec(&inst).expect("an instance encodes");
        self.store
            .put(&mut b, Cf::Contracts, &instance_key(address), &bytes)?;
        self.store.write(b)?;
        Ok(())
    }

    /// The address an instance of `code` by `creator` with `msg` at `time` gets: the same on
    /// every node.
    pub fn address_of(code: &Hash, creator: &[u8; 32], msg: &[u8], time: u64) -> Hash {
        let mut h = blake3::Hasher::new_derive_key("zhtp contract address v1");
        h.update(code.as_bytes());
        h.update(creator);
        h.update(&time.to_le_bytes());
        h.update(blake3::hash(msg).as_bytes());
        Hash(*h.finalize().as_bytes())
    }

    fn call(
        &self,
        code: &Code,
        address: &Hash,
        entry: Entry,
        caller: [u8; 32],
        msg: &[u8],
        (sequence, time, gas): (u64, u64, u64),
    ) -> Outcome {
        let view = View {
            store: self.store.clone(),
            prefix: state_prefix(address),
        };
        code.run(
            Call {
                entry,
                msg: msg.to_vec(),
                caller,
                address: address.0,
                sequence,
                time,
                funds: 0,
                balance: 0,
                gas_limit: gas,
            },
            Arc::new(view),
        )
    }

    /// Commits `o`'s writes and the instance after it (and `note`, when given), in one batch.
    fn commit(
        &self,
        address: &Hash,
        mut inst: Instance,
        o: &Outcome,
        note: Option<&[u8]>,
    ) -> Result<Instance, Error> {
        let mut hash = inst.hash()?;
        o.apply_to(&mut hash);
        inst.accumulator = hash.to_bytes();
        let prefix = state_prefix(address);
        let mut b = self.store.batch();
        for w in &o.writes {
            let k = [prefix.as_slice(), &w.key].concat();
            match &w.after {
                Some(v) => self.store.put(&mut b, Cf::Contracts, &k, v)?,
                None => self.store.delete(&mut b, Cf::Contracts, &k)?,
            }
        }
        let bytes = postcard::to_allocvec(&inst).expect("an instance encodes");
        self.store
            .put(&mut b, Cf::Contracts, &instance_key(address), &bytes)?;
        if let Some(n) = note {
            self.store
                .put(&mut b, Cf::Contracts, &note_key(address), n)?;
        }
        self.store.write(b)?;
        Ok(inst)
    }

    /// The note the last execute committed here with [`Self::execute_noted`] left, if any.
    pub fn note(&self, address: &Hash) -> Result<Option<Vec<u8>>, Error> {
        Ok(self.store.get(Cf::Contracts, &note_key(address))?)
    }

    /// Creates an instance of `code` with `msg`: its address and the committed call (a failed
    /// instantiate creates nothing).
    pub fn instantiate(
        &self,
        code: &Hash,
        creator: [u8; 32],
        msg: &[u8],
        time: u64,
        gas: u64,
    ) -> Result<(Hash, Committed), Error> {
        let c = self.code(code)?;
        let address = Self::address_of(code, &creator, msg, time);
        let _one = self.lock(&address);
        if self.instance(&address)?.is_some() {
            return Err(Error::Exists(address));
        }
        let o = self.call(
            &c,
            &address,
            Entry::Instantiate,
            creator,
            msg,
            (0, time, gas),
        );
        let inst = Instance {
            code: *code,
            creator,
            sequence: 0,
            accumulator: StateHash::default().to_bytes(),
        };
        let root = match &o.result {
            Ok(_) => self.commit(&address, inst, &o, None)?.root()?,
            Err(_) => inst.root()?,
        };
        Ok((
            address,
            Committed {
                result: o.result,
                sequence: 0,
                root,
                gas_used: o.gas_used,
            },
        ))
    }

    /// The instance at `address` and its code.
    fn loaded(&self, address: &Hash) -> Result<(Instance, Code), Error> {
        let inst = self.instance(address)?.ok_or(Error::NoInstance(*address))?;
        let code = self.code(&inst.code)?;
        Ok((inst, code))
    }

    /// Runs an execute on the contract at `address`; with `at`, only if its state version is
    /// still `at`. A successful call is committed with the next version.
    #[allow(clippy::too_many_arguments)]
    pub fn execute(
        &self,
        address: &Hash,
        caller: [u8; 32],
        msg: &[u8],
        time: u64,
        gas: u64,
        funds: u64,
        at: Option<u64>,
    ) -> Result<Committed, Error> {
        if funds > 0 {
            return Err(Error::Funds);
        }
        self.execute_noted(address, caller, msg, (time, gas), at, None)
    }

    /// [`Self::execute`] without funds, keeping `note` (the call as the replicas know it) with
    /// the commit, in the same batch: what [`Self::note`] reads until the next execute.
    pub fn execute_noted(
        &self,
        address: &Hash,
        caller: [u8; 32],
        msg: &[u8],
        (time, gas): (u64, u64),
        at: Option<u64>,
        note: Option<&[u8]>,
    ) -> Result<Committed, Error> {
        let _one = self.lock(address);
        let (inst, c) = self.loaded(address)?;
        if let Some(at) = at
            && at != inst.sequence
        {
            return Err(Error::Stale {
                at,
                now: inst.sequence,
            });
        }
        let o = self.call(
            &c,
            address,
            Entry::Execute,
            caller,
            msg,
            (inst.sequence, time, gas),
        );
        let after = match &o.result {
            Ok(_) => {
                let mut next = inst.clone();
                next.sequence += 1;
                self.commit(address, next, &o, note)?
            }
            Err(_) => inst,
        };
        Ok(Committed {
            result: o.result,
            sequence: after.sequence,
            root: after.root()?,
            gas_used: o.gas_used,
        })
    }

    /// Runs a query on the contract at `address`: its answer and gas; nothing is written. It
    /// waits for a running execute, so it reads one state version, never half of a commit's.
    pub fn query(
        &self,
        address: &Hash,
        caller: [u8; 32],
        msg: &[u8],
        time: u64,
        gas: u64,
    ) -> Result<Outcome, Error> {
        Ok(self.query_at(address, caller, msg, time, gas)?.0)
    }

    /// [`Self::query`], with the instance it read (its version and root).
    pub fn query_at(
        &self,
        address: &Hash,
        caller: [u8; 32],
        msg: &[u8],
        time: u64,
        gas: u64,
    ) -> Result<(Outcome, Instance), Error> {
        let _one = self.lock(address);
        let (inst, c) = self.loaded(address)?;
        let o = self.call(
            &c,
            address,
            Entry::Query,
            caller,
            msg,
            (inst.sequence, time, gas),
        );
        Ok((o, inst))
    }
}
