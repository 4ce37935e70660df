//! Content on one node: the pipeline of `zhtp-content` over the store of `zhtp-store`.
//!
//! Put runs the shared pipeline ([`crate::pipeline`]): the calling thread reads and hashes (the
//! content address is BLAKE3 of the plaintext), worker threads compress, encrypt, erasure-code,
//! hash and write shards to the store's pack files (this module's sink). The commit makes the packs durable and then writes
//! one synced batch with every shard's index entry, the manifest and the index entries (no
//! content key: the manifest carries it wrapped for its readers), so a content becomes visible atomically and only once all of its shards are
//! durable. A crash before that leaves only unreferenced pack bytes, never a half-stored
//! content.
//!
//! Get runs the same pipeline's read side ([`crate::pipeline::read`]) over this node's store:
//! worker threads decode segments and the calling thread writes them in order, hashing as it
//! goes; a segment with missing or corrupt shards is rebuilt from any k good ones and the
//! rebuilt shards are written back. The whole content is checked against its address before
//! get reports success.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use zhtp_content::{
    CodeKind, CodeParams, ContentKey, DEFAULT_SEGMENT_SIZE, Decoder, EncodedSegment, Encoder,
    EncryptionLevel, Manifest, Metadata, Params, SegmentInfo,
};
use zhtp_store::{Cf, Config, Store, WrittenShard};

use crate::pipeline::Fetched;
use zhtp_types::{Hash, StorageTier};

/// Errors of local content operations.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] zhtp_store::Error),
    /// The pipeline failed.
    #[error(transparent)]
    Content(#[from] zhtp_content::Error),
    /// Reading the input or writing the output failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// No content with this hash on this node.
    #[error("no content {0} on this node")]
    NotFound(Hash),
    /// The content is encrypted, and no key was given: no node keeps one.
    #[error(
        "content {0} is encrypted and only its readers hold its key: read it as one (--identity NAME)"
    )]
    NoKey(Hash),
    /// Every level above `none` wraps the key for its owner, and no owner was given.
    #[error(
        "encryption {0} wraps the content key for its owner, and no node keeps it: give an identity (--identity NAME; `zhtp identity new NAME` makes one), or --encryption none for public content"
    )]
    NeedsReader(EncryptionLevel),
    /// The content has an owner, and this put is not for it.
    #[error("content {content} is owned by identity {owner}: only a put for its owner replaces it")]
    Owned {
        /// The content.
        content: Hash,
        /// Its owner's id.
        owner: String,
    },
    /// Wrapping the key for the readers failed.
    #[error(transparent)]
    Readers(#[from] crate::readers::Error),
    /// The manifest changed (an access update, a re-put, a removal) while a migration of the
    /// content was under way: the migration is dropped, the change stands.
    #[error("content {0} changed during its migration; the migration was dropped")]
    Changed(Hash),
}

/// What a put asks for.
#[derive(Clone, Debug)]
pub struct PutOptions {
    /// Storage tier.
    pub tier: StorageTier,
    /// Encryption level.
    pub encryption: EncryptionLevel,
    /// Erasure code (by default from the tier policy, [`PutOptions::code_for`]).
    pub code: CodeParams,
    /// Plaintext bytes per segment.
    pub segment_size: u32,
    /// Name, MIME type, tags, description (the creation time is set by put).
    pub metadata: Metadata,
    /// Identities the content key is wrapped for in the manifest, the owner first. Every
    /// level above `none` needs one: no node keeps a content key.
    pub readers: Vec<zhtp_identity::PublicKeys>,
}

impl PutOptions {
    /// The tier policy's erasure code: wider codes for colder tiers.
    pub fn code_for(tier: StorageTier) -> CodeParams {
        let (k, m) = match tier {
            StorageTier::Hot | StorageTier::Warm => (4, 2),
            StorageTier::Cold => (8, 4),
            StorageTier::Archive => (16, 8),
        };
        CodeParams {
            code: CodeKind::ReedSolomonSimd.id(),
            data: k,
            parity: m,
        }
    }

    /// The encoder these options ask for, and the fresh random content key it encrypts with
    /// (`None` at encryption level none). Both puts, local and network, start here.
    pub fn encoder(&self) -> Result<(Encoder, Option<ContentKey>), Error> {
        let level = self.encryption;
        if level != EncryptionLevel::None && self.readers.is_empty() {
            return Err(Error::NeedsReader(level));
        }
        if level == EncryptionLevel::None && !self.readers.is_empty() {
            return Err(Error::Content(zhtp_content::Error::Params(
                "content that is not encrypted has no key to wrap for an identity".into(),
            )));
        }
        let key = match self.encryption {
            EncryptionLevel::None => None,
            _ => Some(ContentKey::random()?),
        };
        let params = Params {
            tier: self.tier,
            encryption: self.encryption,
            code: self.code,
            segment_size: self.segment_size,
        };
        Ok((Encoder::new(params, key.as_ref())?, key))
    }

    /// Wraps `key` for the readers into `manifest` and encrypts its metadata under it; the key
    /// itself goes nowhere else. Both puts end here.
    pub fn seal(&self, manifest: &mut Manifest, key: Option<ContentKey>) -> Result<(), Error> {
        let Some(k) = key else {
            return Ok(());
        };
        if self.readers.is_empty() {
            return Err(Error::NeedsReader(self.encryption));
        }
        manifest.encryption.readers =
            crate::readers::wrap(self.encryption, &k, &manifest.content_hash, &self.readers)?;
        manifest.seal_metadata(&k)?;
        Ok(())
    }

    /// Defaults for a tier: its code, `standard` encryption, 4 MiB segments.
    pub fn new(tier: StorageTier) -> Self {
        Self {
            tier,
            encryption: EncryptionLevel::Standard,
            code: Self::code_for(tier),
            segment_size: DEFAULT_SEGMENT_SIZE,
            metadata: Metadata::default(),
            readers: Vec::new(),
        }
    }
}

/// The index entry of a content: what `ls` and `search` show without reading manifests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Content address.
    pub content_hash: Hash,
    /// Plaintext size.
    pub size: u64,
    /// Bytes stored across all shards.
    pub stored: u64,
    /// Tier.
    pub tier: StorageTier,
    /// Encryption level.
    pub encryption: EncryptionLevel,
    /// Name, tags, description, MIME type, creation time.
    pub metadata: Metadata,
}

impl Summary {
    fn of(m: &Manifest) -> Self {
        Self {
            content_hash: m.content_hash,
            size: m.size,
            stored: m.stored_bytes(),
            tier: m.tier,
            encryption: m.encryption.level,
            metadata: m.metadata.clone(),
        }
    }
}

/// What a get did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GetReport {
    /// Bytes delivered.
    pub bytes: u64,
    /// Shards that were missing or corrupt, rebuilt and written back.
    pub repaired: usize,
}

pub(crate) const SUMMARY_PREFIX: &[u8] = b"meta/";
const TAG_PREFIX: &str = "tag/";
/// Index entries of shards this node holds for the network: `held/<content><segment><index>`
/// → shard hash, length (see [`crate::network`]).
pub(crate) const HELD: &[u8] = b"held/";

/// What removing a content gave back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removed {
    /// Shards deleted (no other content or held position uses them).
    pub shards: usize,
    /// Their bytes (given back on disk when their packs are compacted).
    pub bytes: u64,
}

/// The local put's sink: shards written to this node's pack files, indexed at the commit.
struct ToStore<'a>(&'a Store);

impl crate::pipeline::Sink for ToStore<'_> {
    type Placed = Vec<WrittenShard>;
    type Error = Error;

    /// Writes the segment's shards' bytes (not yet indexed or durable).
    fn store(&self, _index: u32, seg: &EncodedSegment) -> Result<Vec<WrittenShard>, Error> {
        let mut shards = Vec::with_capacity(seg.info.shards.len());
        for (hash, bytes) in seg.shards() {
            match self.0.write_shard(&hash, bytes) {
                Ok(s) => shards.push(s),
                Err(e) => {
                    self.0.discard_shards(&shards);
                    return Err(e.into());
                }
            }
        }
        Ok(shards)
    }

    /// Nothing refers to these bytes: their space comes back now (a full disk is the usual
    /// reason to be here).
    fn abort(&self, placed: Vec<Vec<WrittenShard>>) {
        self.0.discard_shards(&placed.concat());
    }
}

/// A node's local content.
#[derive(Debug)]
pub struct LocalNode {
    store: Arc<Store>,
    ledger: zhtp_economy::Ledger,
    workers: usize,
    /// Held while an access update reads the manifest and writes its next version, so two
    /// updates cannot both build on the same version.
    access: std::sync::Mutex<()>,
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

impl LocalNode {
    /// Opens the node's store under `data_dir/store`.
    pub fn open(data_dir: &Path, config: Config) -> Result<Self, Error> {
        let store = Arc::new(Store::open(data_dir.join("store"), config)?);
        // Two per core: a worker waits for the disk (direct writes, reads) about as long as it
        // computes, so twice the cores keeps them busy.
        let workers = std::thread::available_parallelism().map_or(4, |n| 2 * n.get().clamp(1, 8));
        Ok(Self {
            ledger: zhtp_economy::Ledger::open(store.clone()),
            store,
            workers,
            access: std::sync::Mutex::new(()),
        })
    }

    /// The store (for tests that damage shards on purpose).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The ledger, in the same store.
    pub fn ledger(&self) -> &zhtp_economy::Ledger {
        &self.ledger
    }

    /// The store, shared (the network node's record store and shard server use it too).
    pub fn shared_store(&self) -> Arc<Store> {
        self.store.clone()
    }

    /// Stores everything `input` yields. `progress` is called with the bytes done so far.
    pub fn put(
        &self,
        input: &mut impl Read,
        opts: PutOptions,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<Manifest, Error> {
        let (encoder, key) = opts.encoder()?;
        let encoded = crate::pipeline::run(
            input,
            &encoder,
            opts.segment_size as usize,
            self.workers,
            &ToStore(&self.store),
            progress,
            &std::sync::atomic::AtomicBool::new(false),
        )?;
        let mut infos = Vec::with_capacity(encoded.segments.len());
        let mut written = Vec::new();
        for (info, shards) in encoded.segments {
            infos.push(info);
            written.extend(shards);
        }
        let (content_hash, size) = (encoded.content_hash, encoded.size);
        let mut metadata = opts.metadata.clone();
        metadata.created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut manifest = encoder.manifest(content_hash, size, infos, metadata);
        opts.seal(&mut manifest, key)?;
        self.commit(&manifest, written)?;
        Ok(manifest)
    }

    /// The commit point: one synced batch with the shards' index entries (their pack bytes made
    /// durable first, by [`Store::write`]), the manifest and the index entries.
    pub(crate) fn commit(
        &self,
        manifest: &Manifest,
        shards: Vec<WrittenShard>,
    ) -> Result<(), Error> {
        // One writer of a manifest at a time: an access update must not write back a version
        // that a re-put has just replaced.
        let _one_at_a_time = self
            .access
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.commit_locked(manifest, shards)
    }

    /// Commits `new` (a migration: same content, key and access list, another tier and code)
    /// in place of `old`, only if `old` is still the manifest here: a grant, revoke, re-put or
    /// removal since the migration read it wins, and [`Error::Changed`] says so.
    pub(crate) fn commit_migration(&self, old: &Manifest, new: &Manifest) -> Result<(), Error> {
        let _one_at_a_time = self
            .access
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.manifest(&old.content_hash)?.as_ref() != Some(old)
            || !self.is_own(&old.content_hash)?
        {
            return Err(Error::Changed(old.content_hash));
        }
        self.commit_locked(new, Vec::new())
    }

    fn commit_locked(&self, manifest: &Manifest, shards: Vec<WrittenShard>) -> Result<(), Error> {
        let h = manifest.content_hash;
        self.may_replace(&h, crate::readers::owner(manifest))?;
        let mut b = self.store.batch();
        for shard in shards {
            self.store.index_shard(&mut b, shard)?;
        }
        // A content stored again replaces its earlier entry (and key) as a whole, and the
        // shards of the earlier manifest that nothing else uses go (a new key makes new ones).
        if let Some(old) = self.summary(&h)? {
            for tag in &old.metadata.tags {
                self.store.delete(&mut b, Cf::Index, &tag_key(tag, &h))?;
            }
        }
        if let Some(old) = self.manifest(&h)? {
            let keep: std::collections::HashSet<Hash> = manifest
                .segments
                .iter()
                .flat_map(|s| s.shards.iter().copied())
                .collect();
            self.drop_unused(&mut b, &old, &h, &keep)?;
        }
        self.store
            .put(&mut b, Cf::Manifests, h.as_bytes(), &manifest.encode())?;
        // Data dirs of earlier versions kept content keys here; a re-put drops its old one.
        self.store.delete(&mut b, Cf::Keys, h.as_bytes())?;
        let summary = postcard::to_allocvec(&Summary::of(manifest))
            .map_err(|e| zhtp_store::Error::Db(e.to_string()))?;
        self.store
            .put(&mut b, Cf::Index, &summary_key(&h), &summary)?;
        for tag in &manifest.metadata.tags {
            self.store.put(&mut b, Cf::Index, &tag_key(tag, &h), &[])?;
        }
        self.store.write(b)?;
        Ok(())
    }

    /// Removes content `hash` put through this node: its manifest and index entries, and
    /// its shards that no other content and no held position uses. [`Error::NotFound`] when it
    /// was not put here. The disk space comes back when the packs are compacted.
    ///
    /// Cost: one scan of the manifests and held positions, to know which shards are shared.
    pub fn remove(&self, hash: &Hash) -> Result<Removed, Error> {
        // Under the manifest lock: an access update that passed its checks must not write its
        // manifest back after the removal.
        let _one_at_a_time = self
            .access
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(summary) = self.summary(hash)? else {
            return Err(Error::NotFound(*hash));
        };
        let mut b = self.store.batch();
        let removed = match self.manifest(hash)? {
            Some(m) => self.drop_unused(&mut b, &m, hash, &Default::default())?,
            None => Removed::default(),
        };
        for tag in &summary.metadata.tags {
            self.store.delete(&mut b, Cf::Index, &tag_key(tag, hash))?;
        }
        self.store.delete(&mut b, Cf::Index, &summary_key(hash))?;
        self.store.delete(&mut b, Cf::Manifests, hash.as_bytes())?;
        self.store.delete(&mut b, Cf::Keys, hash.as_bytes())?;
        self.store.write(b)?;
        Ok(removed)
    }

    /// Adds to `b` the deletion of the shards of `m` (the manifest of `content`) that are not
    /// in `keep` and that no other content put here and no held position uses.
    fn drop_unused(
        &self,
        b: &mut zhtp_store::Batch,
        m: &Manifest,
        content: &Hash,
        keep: &std::collections::HashSet<Hash>,
    ) -> Result<Removed, Error> {
        let in_use = self.shards_in_use(Some(content), &Default::default())?;
        let mut out = Removed::default();
        let mut seen = std::collections::HashSet::new();
        for seg in &m.segments {
            for h in &seg.shards {
                if keep.contains(h) || in_use.contains(h) || !seen.insert(*h) {
                    continue;
                }
                if self.store.contains(Cf::Shards, h.as_bytes())? {
                    self.store.delete(b, Cf::Shards, h.as_bytes())?;
                    out.shards += 1;
                    out.bytes += u64::from(seg.shard_len);
                }
            }
        }
        Ok(out)
    }

    /// Every shard some content put through this node (other than `except`) or some held
    /// position (other than those in `released`) uses. Manifests only cached after a network
    /// get own no shards here and do not count.
    pub(crate) fn shards_in_use(
        &self,
        except: Option<&Hash>,
        released: &std::collections::HashSet<Vec<u8>>,
    ) -> Result<std::collections::HashSet<Hash>, Error> {
        let mut out = std::collections::HashSet::new();
        for item in self.store.scan(Cf::Index, SUMMARY_PREFIX)? {
            // The hash from the key, not the value: an entry that does not decode must not
            // make its content's shards look unused.
            let (k, _) = item?;
            let Some(h) = std::str::from_utf8(&k[SUMMARY_PREFIX.len()..])
                .ok()
                .and_then(|hex| Hash::from_hex(hex).ok())
            else {
                continue;
            };
            if Some(&h) == except {
                continue;
            }
            if let Some(m) = self.manifest(&h)? {
                out.extend(m.segments.iter().flat_map(|seg| seg.shards.iter().copied()));
            }
        }
        for item in self.store.scan(Cf::Index, HELD)? {
            let (k, v) = item?;
            if released.contains(&*k) {
                continue;
            }
            if let Some(h) = v.get(..32).and_then(|h| <[u8; 32]>::try_from(h).ok()) {
                out.insert(Hash(h));
            }
        }
        Ok(out)
    }

    /// Whether content `hash` was put through this node (it is listed, and its shards are its
    /// own), not merely read and its manifest cached.
    pub fn is_own(&self, hash: &Hash) -> Result<bool, Error> {
        Ok(self.store.contains(Cf::Index, &summary_key(hash))?)
    }

    /// Takes `new` as the next version of the access list of a content put through this node
    /// ([`crate::readers::apply`] says what is checked), and returns what it replaced.
    pub fn update_access(&self, new: &Manifest) -> Result<Manifest, Error> {
        let h = new.content_hash;
        let _one_at_a_time = self
            .access
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !self.is_own(&h)? {
            return Err(Error::NotFound(h));
        }
        let old = self.manifest(&h)?.ok_or(Error::NotFound(h))?;
        crate::readers::apply(&old, new)?;
        let mut b = self.store.batch();
        self.store
            .put(&mut b, Cf::Manifests, h.as_bytes(), &new.encode())?;
        self.store.write(b)?;
        Ok(old)
    }

    /// Refuses to store content `hash` again for anyone but its owner, when it has one: a
    /// content with an owner is stored again only for it (a re-encrypting revoke), or anyone
    /// with the plaintext could take it over or drop its readers.
    pub fn may_replace(&self, hash: &Hash, owner: Option<[u8; 32]>) -> Result<(), Error> {
        if let Some(old) = self.manifest(hash)?
            && let Some(was) = crate::readers::owner(&old)
            && owner != Some(was)
        {
            return Err(Error::Owned {
                content: *hash,
                owner: hex::encode(was),
            });
        }
        Ok(())
    }

    /// Puts `old` back after an access update whose new version could not be published (so
    /// that the owner's retry is the next version again), unless the manifest changed since.
    pub fn restore_access(&self, old: &Manifest, new: &Manifest) -> Result<(), Error> {
        let h = old.content_hash;
        let _one_at_a_time = self
            .access
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.manifest(&h)?.as_ref() != Some(new) {
            return Ok(());
        }
        let mut b = self.store.batch();
        self.store
            .put(&mut b, Cf::Manifests, h.as_bytes(), &old.encode())?;
        self.store.write(b)?;
        Ok(())
    }

    /// The manifest of `hash`, if stored here.
    pub fn manifest(&self, hash: &Hash) -> Result<Option<Manifest>, Error> {
        match self.store.get(Cf::Manifests, hash.as_bytes())? {
            Some(bytes) => Ok(Some(Manifest::decode(&bytes)?)),
            None => Ok(None),
        }
    }

    fn summary(&self, hash: &Hash) -> Result<Option<Summary>, Error> {
        match self.store.get(Cf::Index, &summary_key(hash))? {
            Some(bytes) => Ok(postcard::from_bytes(&bytes).ok()),
            None => Ok(None),
        }
    }

    /// Every content, or those with `tag`, newest first.
    pub fn list(&self, tag: Option<&str>) -> Result<Vec<Summary>, Error> {
        let mut out = Vec::new();
        match tag {
            Some(tag) => {
                let prefix = format!("{TAG_PREFIX}{tag}\0");
                for item in self.store.scan(Cf::Index, prefix.as_bytes())? {
                    let (k, _) = item?;
                    let hex = std::str::from_utf8(&k[prefix.len()..]).unwrap_or_default();
                    if let Ok(h) = Hash::from_hex(hex)
                        && let Some(s) = self.summary(&h)?
                    {
                        out.push(s);
                    }
                }
            }
            None => {
                for item in self.store.scan(Cf::Index, SUMMARY_PREFIX)? {
                    let (_, v) = item?;
                    if let Ok(s) = postcard::from_bytes::<Summary>(&v) {
                        out.push(s);
                    }
                }
            }
        }
        out.sort_by_key(|s| std::cmp::Reverse(s.metadata.created));
        Ok(out)
    }

    /// Contents whose name, tags or description contain `text` (case-insensitive).
    pub fn search(&self, text: &str) -> Result<Vec<Summary>, Error> {
        let needle = text.to_lowercase();
        let hit = |s: &Option<String>| {
            s.as_ref()
                .is_some_and(|v| v.to_lowercase().contains(&needle))
        };
        Ok(self
            .list(None)?
            .into_iter()
            .filter(|s| {
                hit(&s.metadata.name)
                    || hit(&s.metadata.description)
                    || s.metadata
                        .tags
                        .iter()
                        .any(|t| t.to_lowercase().contains(&needle))
            })
            .collect())
    }

    /// Writes content `hash` to `out`, verified. `progress` gets the bytes written so far.
    pub fn get(
        &self,
        hash: &Hash,
        out: &mut impl Write,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<GetReport, Error> {
        self.get_with_key(hash, None, out, progress)
    }

    /// [`Self::get`] with the content key given: a reader's, unwrapped from the manifest.
    /// Encrypted content needs it.
    pub fn get_with_key(
        &self,
        hash: &Hash,
        given: Option<ContentKey>,
        out: &mut impl Write,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<GetReport, Error> {
        let manifest = self.manifest(hash)?.ok_or(Error::NotFound(*hash))?;
        let key = match manifest.encryption.level {
            EncryptionLevel::None => None,
            _ => Some(given.ok_or(Error::NoKey(*hash))?),
        };
        let decoder = Decoder::new(manifest, key.as_ref())?;
        let mut write = |plain: Vec<u8>| out.write_all(&plain).map_err(io("writing the output"));
        let report = crate::pipeline::read(
            hash,
            &decoder,
            self.workers,
            &FromStore(&self.store),
            &mut write,
            progress,
        )?;
        out.flush().map_err(io("writing the output"))?;
        Ok(report)
    }
}

/// A local get's source: shards from this node's pack files, data shards first and parity only
/// when one of them is missing or corrupt; rebuilt shards written back to the store.
struct FromStore<'a>(&'a Store);

impl crate::pipeline::Source for FromStore<'_> {
    type Error = Error;

    fn fetch(&self, index: u32, info: &SegmentInfo, k: usize) -> Result<Fetched, Error> {
        let shard = |i: usize| -> Result<Option<Vec<u8>>, Error> {
            match self.0.shard(&info.shards[i]) {
                Ok(v) => Ok(v),
                Err(zhtp_store::Error::Corrupt(h)) => {
                    tracing::warn!(shard = %h, segment = index, "corrupt shard; rebuilding it");
                    Ok(None)
                }
                Err(e) => Err(e.into()),
            }
        };
        let n = info.shards.len();
        let mut slots: Vec<Option<Vec<u8>>> = vec![None; n];
        let mut lost = vec![false; n];
        for i in 0..k.min(n) {
            slots[i] = shard(i)?;
            lost[i] = slots[i].is_none();
        }
        if lost.iter().any(|&l| l) {
            for i in k..n {
                slots[i] = shard(i)?;
                lost[i] = slots[i].is_none();
            }
        }
        // `Store::shard` checks every shard against its hash.
        Ok(Fetched { slots, lost })
    }

    fn write_back(
        &self,
        index: u32,
        info: &SegmentInfo,
        rebuilt: Vec<(usize, Vec<u8>)>,
    ) -> Result<usize, Error> {
        let mut batch = self.0.batch();
        for (i, bytes) in &rebuilt {
            self.0.put_shard(&mut batch, &info.shards[*i], bytes)?;
        }
        self.0.write(batch)?;
        tracing::info!(
            segment = index,
            repaired = rebuilt.len(),
            "rebuilt shards written back"
        );
        Ok(rebuilt.len())
    }
}

fn summary_key(h: &Hash) -> Vec<u8> {
    let mut k = SUMMARY_PREFIX.to_vec();
    k.extend_from_slice(h.to_hex().as_bytes());
    k
}

fn tag_key(tag: &str, h: &Hash) -> Vec<u8> {
    format!("{TAG_PREFIX}{tag}\0{h}").into_bytes()
}

/// Writes to `dest` through a temporary file in the same directory, renamed into place only
/// when `f` succeeds: a failed get leaves nothing half-written under `dest`. `size`, when
/// known, is reserved on disk first. `f`'s error type is the caller's, so its error comes back
/// as it is.
pub fn write_atomically<T, E: From<Error>>(
    dest: &Path,
    size: Option<u64>,
    f: impl FnOnce(&mut crate::output::FileOutput) -> Result<T, E>,
) -> Result<T, E> {
    let dir = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp: PathBuf = dir.join(format!(".{name}.zhtp-partial-{}", std::process::id()));
    let result = crate::output::FileOutput::create(&tmp, size)
        .map_err(io(format!("creating {}", tmp.display())))
        .map_err(E::from)
        .and_then(|mut w| {
            let v = f(&mut w)?;
            w.finish().map_err(io("writing the output"))?;
            std::fs::rename(&tmp, dest).map_err(io(format!("renaming into {}", dest.display())))?;
            // The new name must survive a power loss as well as the bytes.
            let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
            Ok(v)
        });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
