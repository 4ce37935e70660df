//! Garbage collection: a held shard that no published manifest references is deleted after a
//! grace period, and a content is removed on its publisher's request.
//!
//! A held position (content, segment, index → shard hash) is *referenced* when the manifest in
//! force for its content names that shard at that place. The manifest in force is this node's
//! own when it put the content, else the DHT record. No record, a tombstone (an empty record:
//! the publisher removed the content), or a manifest naming another shard there (a re-put with
//! a new key, or a peer that stored junk under a real content's label) leaves the position
//! unreferenced. The first round that finds a position unreferenced notes the time
//! (`orphan/<position>` in the index), a round that finds it referenced again forgets it, and a
//! round at least [`RepairConfig::orphan_grace`] after that first sighting (the same round
//! when the grace is zero) that still finds it unreferenced deletes it: the held entry, the
//! storing peer's owner entry (its quota comes back) and the shard itself unless something
//! else here uses it. Pack compaction gives the disk space back. A round on a node with no
//! peers, and a lookup that fails for another reason than "no record" (a timeout), decide
//! nothing.
//!
//! Known limit: whoever first publishes a record under a content's key owns it (records are
//! keyed by content, not by publisher), so a peer that squats a key before the real publisher
//! can also make holders collect that content's shards. Keying records by publisher closes
//! both; it is the next step for records.
//!
//! [`RepairConfig::orphan_grace`]: super::RepairConfig::orphan_grace

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use zhtp_content::Manifest;
use zhtp_store::Cf;
use zhtp_types::Hash;

use super::{Error, Node, blocking, held_key, manifest_key};
use crate::local::Removed;

const ORPHAN: &[u8] = b"orphan/";

/// What a garbage-collection round found and did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcReport {
    /// Contents this node holds shards of.
    pub contents: usize,
    /// Contents whose manifest in force could not be learnt this round (left alone).
    pub undecided: usize,
    /// Held positions found unreferenced (in their grace period or released).
    pub unreferenced: usize,
    /// Positions released this round.
    pub released: usize,
    /// Shards deleted (no longer used by anything here).
    pub shards_deleted: usize,
    /// Their bytes.
    pub bytes_deleted: u64,
}

/// What removing a content through this node did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoveReport {
    /// Shards deleted here.
    pub shards_deleted: usize,
    /// Their bytes.
    pub bytes_deleted: u64,
    /// Whether the tombstone reached another node (holders then release their shards after
    /// their grace period; if not, Kademlia republishes it later).
    pub withdrawn: bool,
}

/// The manifest in force for a content, as far as this node can tell.
enum Reference {
    Manifest(Box<Manifest>),
    Gone,
    Unknown,
}

/// The mark of a held position (its index key) first found unreferenced.
fn orphan_key(position: &[u8]) -> Vec<u8> {
    [ORPHAN, position].concat()
}

impl Node {
    async fn reference(&self, content: &Hash) -> Result<Reference, Error> {
        let (node, c) = (self.clone(), *content);
        let own = blocking(move || -> Result<Option<Manifest>, Error> {
            let local = &node.inner.local;
            Ok(if local.is_own(&c)? {
                local.manifest(&c)?
            } else {
                None
            })
        });
        if let Some(m) = own.await?? {
            return Ok(Reference::Manifest(Box::new(m)));
        }
        Ok(
            match self.inner.dht.get_record(&manifest_key(content)).await {
                // The record passed `validate_record`: a tombstone or a consistent manifest.
                Ok(rec) if rec.payload.is_empty() => Reference::Gone,
                Ok(rec) => match Manifest::decode(&rec.payload) {
                    Ok(m) => Reference::Manifest(Box::new(m)),
                    Err(_) => Reference::Gone,
                },
                Err(zhtp_dht::Error::NotFound) => Reference::Gone,
                Err(e) => {
                    tracing::debug!(%content, "manifest lookup failed, nothing collected: {e}");
                    Reference::Unknown
                }
            },
        )
    }

    /// One garbage-collection round over every content held here (see the module docs).
    pub async fn collect(&self) -> Result<GcReport, Error> {
        // Not at the same time as a repair round, which may be placing shards of a segment.
        let _one_at_a_time = self.inner.repair_lock.lock().await;
        let mut report = GcReport::default();
        let node = self.clone();
        let contents = blocking(move || node.held_contents()).await??;
        report.contents = contents.len();
        if self.inner.dht.status().await?.connected.is_empty() {
            // Alone, every lookup ends in "no record": that proves nothing.
            report.undecided = contents.len();
            return Ok(report);
        }
        let grace = self.inner.repair.orphan_grace.as_secs();
        let mut due: HashSet<Vec<u8>> = HashSet::new();
        for content in contents {
            let reference = match self.reference(&content).await? {
                Reference::Unknown => {
                    report.undecided += 1;
                    continue;
                }
                r => r,
            };
            let node = self.clone();
            let (unreferenced, ready) =
                blocking(move || node.mark(&content, &reference, grace)).await??;
            report.unreferenced += unreferenced;
            due.extend(ready);
        }
        if !due.is_empty() {
            report.released = due.len();
            let node = self.clone();
            let removed = blocking(move || node.release(due)).await??;
            report.shards_deleted = removed.shards;
            report.bytes_deleted = removed.bytes;
            tracing::info!(?report, "unreferenced shards released");
        }
        Ok(report)
    }

    /// Notes which positions of `content` `reference` leaves unreferenced, forgets the marks of
    /// those it references again, and returns how many are unreferenced and those whose grace
    /// period is over. Blocking.
    fn mark(
        &self,
        content: &Hash,
        reference: &Reference,
        grace: u64,
    ) -> Result<(usize, Vec<Vec<u8>>), Error> {
        let store = &self.inner.store;
        let now = zhtp_dht::record::unix_now();
        let mut b = store.batch();
        let (mut unreferenced, mut due) = (0, Vec::new());
        for h in self.inventory(content)? {
            let position = held_key(content, h.segment, h.index);
            let mark = orphan_key(&position);
            let since = store
                .get(Cf::Index, &mark)?
                .and_then(|v| Some(u64::from_le_bytes(v.get(..8)?.try_into().ok()?)));
            let referenced = match reference {
                Reference::Manifest(m) => {
                    m.segments
                        .get(h.segment as usize)
                        .and_then(|s| s.shards.get(h.index as usize))
                        == Some(&h.hash)
                }
                _ => false,
            };
            if referenced {
                if since.is_some() {
                    store.delete(&mut b, Cf::Index, &mark)?;
                }
                continue;
            }
            unreferenced += 1;
            if now.saturating_sub(since.unwrap_or(now)) >= grace {
                due.push(position);
            } else if since.is_none() {
                store.put(&mut b, Cf::Index, &mark, &now.to_le_bytes())?;
            }
        }
        if matches!(reference, Reference::Gone) && !self.inner.local.is_own(content)? {
            // A manifest cached by an earlier get of a removed content: not trusted any more.
            store.delete(&mut b, Cf::Manifests, content.as_bytes())?;
        }
        store.write(b)?;
        Ok((unreferenced, due))
    }

    /// Deletes the held `positions` (index keys), their owners' entries, and the shards that
    /// nothing else here uses, in one batch; then gives the owners their quota back. Blocking.
    fn release(&self, positions: HashSet<Vec<u8>>) -> Result<Removed, Error> {
        let _positions = self
            .inner
            .positions
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let store = &self.inner.store;
        let owners = self.inner.admission.owners(&positions)?;
        let in_use = self.inner.local.shards_in_use(None, &positions)?;
        let mut b = store.batch();
        let mut removed = Removed::default();
        let mut gone = HashSet::new();
        for p in &positions {
            store.delete(&mut b, Cf::Index, &orphan_key(p))?;
            let Some(v) = store.get(Cf::Index, p)? else {
                continue;
            };
            store.delete(&mut b, Cf::Index, p)?;
            let (Some(h), Some(len)) = (
                v.get(..32).and_then(|h| <[u8; 32]>::try_from(h).ok()),
                v.get(32..36).and_then(|l| <[u8; 4]>::try_from(l).ok()),
            ) else {
                continue;
            };
            let h = Hash(h);
            if !in_use.contains(&h) && gone.insert(h) {
                store.delete(&mut b, Cf::Shards, h.as_bytes())?;
                removed.shards += 1;
                removed.bytes += u64::from(u32::from_le_bytes(len));
            }
        }
        for o in &owners {
            store.delete(&mut b, Cf::Index, &o.key)?;
        }
        store.write(b)?;
        self.inner.admission.released(&owners);
        Ok(removed)
    }

    /// Takes `new` as the next version of the access list of a content put through this node
    /// ([`crate::readers::apply`]), and publishes it in place of the manifest record. Returns
    /// whether the record reached another node (it is republished with the others if not).
    pub async fn update_access(&self, new: Manifest) -> Result<bool, Error> {
        let _publishing = self.inner.manifest_lock.lock().await;
        let (node, m) = (self.clone(), new.clone());
        let old = blocking(move || node.inner.local.update_access(&m)).await??;
        let hash = new.content_hash;
        match self
            .publish_manifest(&hash, new.encode(), "access update")
            .await
        {
            Ok(published) => Ok(published),
            Err(e) => {
                // Refused for good: the old version stays, so the owner can try again.
                let node = self.clone();
                blocking(move || node.inner.local.restore_access(&old, &new)).await??;
                Err(Error::Invalid(format!(
                    "the manifest record of {hash} cannot be replaced from here: {e}"
                )))
            }
        }
    }

    /// Removes content `hash` that was put through this node: publishes a tombstone in place
    /// of its manifest record (so holders release its shards after their grace period), then
    /// deletes the local manifest, key and listing and the shards held here.
    /// [`Error::NotFound`] when it was not put through this node.
    pub async fn remove(&self, hash: &Hash) -> Result<RemoveReport, Error> {
        let _publishing = self.inner.manifest_lock.lock().await;
        let (node, h) = (self.clone(), *hash);
        if !blocking(move || node.inner.local.is_own(&h)).await?? {
            return Err(Error::NotFound(*hash));
        }
        // The tombstone first: once it is out, nobody trusts the old manifest, whatever
        // happens here next.
        let withdrawn = self
            .publish_manifest(hash, Vec::new(), "tombstone")
            .await
            .map_err(|e| {
                Error::Invalid(format!(
                    "the manifest record of {hash} cannot be replaced from here: {e}"
                ))
            })?;
        let node = self.clone();
        let h = *hash;
        let (a, b) = blocking(move || -> Result<(Removed, Removed), Error> {
            let own = {
                // The shards it deletes must not meanwhile gain a held position.
                let _positions = node
                    .inner
                    .positions
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                node.inner.local.remove(&h)?
            };
            node.forget_reviews(&h)?;
            let positions: HashSet<Vec<u8>> = node
                .inventory(&h)?
                .into_iter()
                .map(|p| held_key(&h, p.segment, p.index))
                .collect();
            let held = node.release(positions)?;
            Ok((own, held))
        })
        .await??;
        Ok(RemoveReport {
            shards_deleted: a.shards + b.shards,
            bytes_deleted: a.bytes + b.bytes,
            withdrawn,
        })
    }
}
