//! A content's readers: its key wrapped for each of them in the manifest
//! ([`zhtp_content::EncryptionHeader::readers`]), so that they read it through any node and no
//! node keeps the key.
//!
//! The scheme follows the level and is never mixed within a content: `standard` and `high`
//! wrap with X25519, `quantum` with X-Wing only (one classical wrap beside quantum ones would
//! make the content only as strong as X25519). Each wrap is bound to the content's address, so
//! it cannot be moved to another manifest.
//!
//! The first reader is the owner. The list of readers is the *access list*: as put it names
//! the owner alone (version 0, unsigned: the putting node could have made no other); every
//! grant or revoke makes a new version signed by the owner ([`statement`] is what is signed),
//! and a manifest with more than one reader or a version above 0 is refused without that
//! signature. A node takes a new version only from the same owner, one version later
//! ([`apply`]), so an old update cannot be replayed.

use zhtp_content::{ContentKey, EncryptionLevel, Manifest};
use zhtp_identity::wrap::{Scheme, Wrapped};
use zhtp_identity::{Identity, PublicKeys};
use zhtp_types::Hash;

/// What can go wrong with readers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The identity is not among the content's readers.
    #[error("identity {id} is not a reader of content {content}")]
    NotAReader {
        /// The identity's id.
        id: String,
        /// The content.
        content: Hash,
    },
    /// Only the owner changes the access list.
    #[error("identity {id} does not own content {content}")]
    NotOwner {
        /// The identity's id.
        id: String,
        /// The content.
        content: Hash,
    },
    /// The wrapped keys of the manifest break the rules.
    #[error("content {content}: {why}")]
    Invalid {
        /// The content.
        content: Hash,
        /// Which rule.
        why: String,
    },
    /// Wrapping or unwrapping failed (an altered wrap is one of these).
    #[error(transparent)]
    Identity(#[from] zhtp_identity::Error),
}

/// The scheme the readers of a content at `level` are wrapped with (`None` at level `none`).
pub fn scheme(level: EncryptionLevel) -> Option<Scheme> {
    match level {
        EncryptionLevel::None => None,
        EncryptionLevel::Standard | EncryptionLevel::High => Some(Scheme::X25519),
        EncryptionLevel::QuantumResistant => Some(Scheme::XWing),
    }
}

/// What a wrap is bound to: the content's address.
fn context(content: &Hash) -> Vec<u8> {
    [b"zhtp/content/v1/".as_slice(), content.as_bytes()].concat()
}

/// `key` wrapped for each of `readers` in the scheme of `level`.
pub fn wrap(
    level: EncryptionLevel,
    key: &ContentKey,
    content: &Hash,
    readers: &[PublicKeys],
) -> Result<Vec<Vec<u8>>, Error> {
    let Some(scheme) = scheme(level) else {
        return Ok(Vec::new());
    };
    let ctx = context(content);
    readers
        .iter()
        .map(|r| {
            Ok(zhtp_identity::wrap::wrap(&key.0, r, scheme, &ctx)?
                .as_bytes()
                .to_vec())
        })
        .collect()
}

/// The wraps of `m`, checked: each is well formed, in the level's scheme, and for a reader
/// named once. Manifests from the network go through this before anything uses them.
pub fn check(m: &Manifest) -> Result<Vec<Wrapped>, Error> {
    let wraps = check_wraps(&m.content_hash, m.encryption.level, &m.encryption.readers)?;
    check_signature(m, &wraps)?;
    Ok(wraps)
}

fn check_wraps(
    content: &Hash,
    level: EncryptionLevel,
    wraps: &[Vec<u8>],
) -> Result<Vec<Wrapped>, Error> {
    let invalid = |why: String| Error::Invalid {
        content: *content,
        why,
    };
    let want = scheme(level);
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(wraps.len());
    for (i, bytes) in wraps.iter().enumerate() {
        let w = Wrapped::decode(bytes).map_err(|e| invalid(format!("reader {i}: {e}")))?;
        if Some(w.scheme()) != want {
            return Err(invalid(format!(
                "reader {i} is wrapped with {:?} at level {}",
                w.scheme(),
                level
            )));
        }
        if !seen.insert(*w.recipient()) {
            return Err(invalid(format!("reader {i} is named twice")));
        }
        out.push(w);
    }
    Ok(out)
}

/// The ids of `m`'s readers, the owner first.
pub fn ids(m: &Manifest) -> Result<Vec<String>, Error> {
    Ok(check(m)?
        .iter()
        .map(|w| hex::encode(w.recipient()))
        .collect())
}

/// The content key of `m`, unwrapped by `me`, and checked against the manifest's commitment.
pub fn unwrap(m: &Manifest, me: &Identity) -> Result<ContentKey, Error> {
    unwrap_parts(
        &m.content_hash,
        m.encryption.level,
        m.encryption.key_check,
        &m.encryption.readers,
        me,
    )
}

/// [`unwrap`] from the manifest a node showed (`GET /content/{hash}/manifest`) for content
/// `content`. A lying node can only make this fail: the key is checked against the manifest's
/// commitment (and the content, as it arrives, against its address).
pub fn unwrap_info(
    m: &crate::wire::ManifestInfo,
    content: &Hash,
    me: &Identity,
) -> Result<ContentKey, Error> {
    let invalid = |why: String| Error::Invalid {
        content: *content,
        why,
    };
    if m.content_hash != *content {
        return Err(invalid(format!(
            "the node sent the manifest of {}",
            m.content_hash
        )));
    }
    let wraps = m
        .readers
        .iter()
        .map(hex::decode)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| invalid("the node sent a wrapped key that is not hex".into()))?;
    unwrap_parts(content, m.encryption, m.key_check, &wraps, me)
}

fn unwrap_parts(
    content: &Hash,
    level: EncryptionLevel,
    key_check: Option<Hash>,
    wraps: &[Vec<u8>],
    me: &Identity,
) -> Result<ContentKey, Error> {
    let mine = me.public();
    let w = check_wraps(content, level, wraps)?
        .into_iter()
        .find(|w| *w.recipient() == mine.signing)
        .ok_or_else(|| Error::NotAReader {
            id: mine.id(),
            content: *content,
        })?;
    let key = ContentKey(*zhtp_identity::wrap::unwrap(&w, me, &context(content))?);
    if Some(key.check()) != key_check {
        // A wrap that opens but holds another key: made by someone who could write the
        // manifest, not by its owner.
        return Err(Error::Invalid {
            content: *content,
            why: "the wrapped key is not the content's key".into(),
        });
    }
    Ok(key)
}

/// The bytes the owner signs: the access list of `m` and what it is bound to.
///
/// `zhtp/access/v1` and a zero byte, the content's address (32 bytes), the key commitment
/// (32 bytes, zeros when none), the version (u64 little-endian), the number of readers (u16
/// little-endian), each wrapped key as a u16 little-endian length and its bytes, then the
/// private metadata as a u32 little-endian length and its bytes.
pub fn statement(m: &Manifest) -> Vec<u8> {
    let e = &m.encryption;
    let mut out = Vec::with_capacity(
        128 + e.readers.iter().map(|r| 2 + r.len()).sum::<usize>() + e.private.len(),
    );
    out.extend_from_slice(b"zhtp/access/v1\0");
    out.extend_from_slice(m.content_hash.as_bytes());
    out.extend_from_slice(e.key_check.map_or([0; 32], |h| h.0).as_slice());
    out.extend_from_slice(&e.access_version.to_le_bytes());
    // The manifest's own bounds keep these within u16 and u32 (MAX_READERS, MAX_WRAPPED_LEN,
    // MAX_PRIVATE_LEN).
    out.extend_from_slice(&(e.readers.len() as u16).to_le_bytes());
    for r in &e.readers {
        out.extend_from_slice(&(r.len() as u16).to_le_bytes());
        out.extend_from_slice(r);
    }
    out.extend_from_slice(&(e.private.len() as u32).to_le_bytes());
    out.extend_from_slice(&e.private);
    out
}

/// Checks the owner's signature where one is needed (see the module's rules).
fn check_signature(m: &Manifest, wraps: &[Wrapped]) -> Result<(), Error> {
    let e = &m.encryption;
    if wraps.len() <= 1 && e.access_version == 0 && e.owner_sig.is_empty() {
        return Ok(());
    }
    let owner = wraps.first().ok_or_else(|| Error::Invalid {
        content: m.content_hash,
        why: "an access list without an owner".into(),
    })?;
    zhtp_identity::verify(owner.recipient(), &statement(m), &e.owner_sig).map_err(|_| {
        Error::Invalid {
            content: m.content_hash,
            why: "the access list is not signed by its owner".into(),
        }
    })
}

/// The owner of `m`: its first reader's id.
pub fn owner(m: &Manifest) -> Option<[u8; 32]> {
    let first = m.encryption.readers.first()?;
    Wrapped::decode(first).ok().map(|w| *w.recipient())
}

/// A new version of `m`'s access list, signed by `owner`: `edit` changes the readers (the
/// owner stays first).
fn update(
    m: &Manifest,
    owner: &Identity,
    edit: impl FnOnce(&mut Vec<Vec<u8>>) -> Result<(), Error>,
) -> Result<Manifest, Error> {
    let me = owner.public();
    if self::owner(m) != Some(me.signing) {
        return Err(Error::NotOwner {
            id: me.id(),
            content: m.content_hash,
        });
    }
    let mut next = m.clone();
    edit(&mut next.encryption.readers)?;
    next.encryption.access_version = m.encryption.access_version + 1;
    next.encryption.owner_sig = owner.sign(&statement(&next)).to_vec();
    check(&next)?;
    Ok(next)
}

/// `m` with `grantee` added to its readers, signed by `owner`.
pub fn grant(m: &Manifest, owner: &Identity, grantee: &PublicKeys) -> Result<Manifest, Error> {
    let key = unwrap(m, owner)?;
    let level = m.encryption.level;
    if check(m)?.iter().any(|w| *w.recipient() == grantee.signing) {
        return Err(Error::Invalid {
            content: m.content_hash,
            why: format!("{} is a reader already", grantee.id()),
        });
    }
    let wrapped = wrap(level, &key, &m.content_hash, std::slice::from_ref(grantee))?;
    update(m, owner, |readers| {
        readers.extend(wrapped);
        Ok(())
    })
}

/// `m` without the reader `id` (its wrap removed; the content key stays the same), signed by
/// `owner`.
pub fn revoke(m: &Manifest, owner: &Identity, id: &[u8; 32]) -> Result<Manifest, Error> {
    let at = check(m)?
        .iter()
        .position(|w| w.recipient() == id)
        .ok_or_else(|| Error::NotAReader {
            id: hex::encode(id),
            content: m.content_hash,
        })?;
    if at == 0 {
        return Err(Error::Invalid {
            content: m.content_hash,
            why: "the owner cannot be revoked".into(),
        });
    }
    update(m, owner, |readers| {
        readers.remove(at);
        Ok(())
    })
}

/// What a node checks before it takes `new` in place of `old`: same content and everything
/// but the access list unchanged, the same owner, exactly the next version, and a valid
/// signature.
pub fn apply(old: &Manifest, new: &Manifest) -> Result<(), Error> {
    let invalid = |why: &str| Error::Invalid {
        content: old.content_hash,
        why: why.into(),
    };
    let mut same = new.clone();
    same.encryption.readers = old.encryption.readers.clone();
    same.encryption.access_version = old.encryption.access_version;
    same.encryption.owner_sig = old.encryption.owner_sig.clone();
    if same != *old {
        return Err(invalid("an access update changes only the readers"));
    }
    if owner(new).is_none() || owner(new) != owner(old) {
        return Err(invalid("an access update keeps the owner"));
    }
    if new.encryption.access_version != old.encryption.access_version + 1 {
        return Err(invalid(&format!(
            "access list version {} after version {} (an old or replayed update)",
            new.encryption.access_version, old.encryption.access_version
        )));
    }
    check(new).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use zhtp_content::{CodeKind, CodeParams, EncryptionHeader, Metadata, SegmentInfo};
    use zhtp_types::StorageTier;

    fn manifest() -> Manifest {
        Manifest {
            version: 2,
            content_hash: Hash([0xc0; 32]),
            size: 10,
            tier: StorageTier::Warm,
            code: CodeParams {
                code: CodeKind::ReedSolomonSimd.id(),
                data: 4,
                parity: 2,
            },
            segment_size: 1 << 20,
            encryption: EncryptionHeader {
                level: EncryptionLevel::High,
                key_check: Some(Hash([0x4c; 32])),
                readers: vec![vec![1; 3], vec![2; 2]],
                private: vec![3; 4],
                access_version: 7,
                owner_sig: vec![9; 64],
            },
            segments: vec![SegmentInfo {
                plain_len: 10,
                compressed: false,
                stored_len: 26,
                shard_len: 7,
                shards: vec![Hash([5; 32]); 6],
            }],
            metadata: Metadata::default(),
        }
    }

    /// The access list's signed bytes, byte for byte as documented on [`statement`]: what a
    /// signer in another language must produce.
    #[test]
    fn the_statement_is_the_documented_layout() {
        let golden = concat!(
            "7a6874702f6163636573732f763100", // "zhtp/access/v1\0"
            "c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0", // address
            "4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c", // key check
            "0700000000000000",               // version 7
            "0200",                           // 2 readers
            "0300010101",                     // 3 bytes
            "02000202",                       // 2 bytes
            "04000000",                       // private metadata: 4 bytes
            "03030303",
        );
        assert_eq!(hex::encode(statement(&manifest())), golden);
        // The signature itself and everything outside the access list are not signed.
        let mut m = manifest();
        m.encryption.owner_sig = vec![8; 64];
        m.metadata.created = 99;
        assert_eq!(hex::encode(statement(&m)), golden);
        m.encryption.key_check = None;
        assert_eq!(
            &hex::encode(statement(&m))[2 * 47..2 * 79],
            "0".repeat(64),
            "no key check: 32 zero bytes"
        );
    }
}
