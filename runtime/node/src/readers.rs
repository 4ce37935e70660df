//! A content's readers: its key wrapped for each of them in the manifest
//! ([`zhtp_content::EncryptionHeader::readers`]), so that they read it through any node and no
//! node keeps the key.
//!
//! The scheme follows the level and is never mixed within a content: `standard` and `high`
//! wrap with X25519, `quantum` with X-Wing only (one classical wrap beside quantum ones would
//! make the content only as strong as X25519). Each wrap is bound to the content's address, so
//! it cannot be moved to another manifest.

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
    check_wraps(&m.content_hash, m.encryption.level, &m.encryption.readers)
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

/// [`unwrap`] from a manifest's parts (what `GET /content/{hash}/manifest` shows).
pub fn unwrap_parts(
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
