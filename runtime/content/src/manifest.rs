//! The manifest: everything needed to find, verify and decode a content, postcard-encoded and
//! versioned. It never holds the content key in the clear: only a commitment to it and, from
//! version 2, the key wrapped for each of its readers (opaque here; `zhtp-identity` makes and
//! opens them). Version 1 manifests (no readers) are still read.

use serde::{Deserialize, Serialize};
use zhtp_types::{Hash, StorageTier};

use chacha20poly1305::XChaCha20Poly1305;
use chacha20poly1305::aead::{AeadInOut, KeyInit};

use crate::crypto::{ContentKey, EncryptionLevel};
use crate::erasure::CodeParams;
use crate::error::Error;

/// Decrypts the private metadata of content `content` ([`Manifest::seal_metadata`]); its
/// creation time is the public one's.
pub fn open_private(content: &Hash, private: &[u8], key: &ContentKey) -> Result<Metadata, Error> {
    let bad = || Error::Manifest("the private metadata does not decrypt with this key".into());
    if private.len() < 24 + 16 {
        return Err(bad());
    }
    let (nonce, rest) = private.split_at(24);
    let (body, tag) = rest.split_at(rest.len() - 16);
    let mut body = body.to_vec();
    metadata_cipher(key)
        .decrypt_inout_detached(
            &<[u8; 24]>::try_from(nonce).expect("24 bytes").into(),
            content.as_bytes(),
            body.as_mut_slice().into(),
            &<[u8; 16]>::try_from(tag).expect("16 bytes").into(),
        )
        .map_err(|_| bad())?;
    postcard::from_bytes(&body).map_err(|_| bad())
}

fn metadata_cipher(key: &ContentKey) -> XChaCha20Poly1305 {
    let k = blake3::derive_key("zhtp private metadata v1", &key.0);
    XChaCha20Poly1305::new(&k.into())
}

/// Current manifest format version: 2 added the readers, the private metadata and the signed
/// access list to [`EncryptionHeader`]. A manifest without them is still written as version 1.
pub const MANIFEST_VERSION: u16 = 2;
/// Most readers a content's key is wrapped for.
pub const MAX_READERS: usize = 256;
/// Longest wrapped key accepted (the longest scheme's is 1,201 bytes).
pub const MAX_WRAPPED_LEN: usize = 2048;
/// Largest manifest accepted by [`Manifest::decode`]: 16 MiB (a 1 TiB file at 4 MiB segments
/// and 4+2 is ~50 MiB of hashes, so that needs larger segments; a cap is what matters here).
pub const MAX_MANIFEST_LEN: usize = 16 << 20;
/// Largest total size of the metadata strings.
pub const MAX_METADATA_LEN: usize = 64 << 10;
/// Largest encrypted metadata: the strings, their framing (up to 2 bytes of length per tag,
/// and there cannot be more tags than bytes), nonce and tag.
pub const MAX_PRIVATE_LEN: usize = 3 * MAX_METADATA_LEN + 64;

/// Describes a stored content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Format version ([`MANIFEST_VERSION`]).
    pub version: u16,
    /// BLAKE3 of the plaintext: the content's address.
    pub content_hash: Hash,
    /// Plaintext size in bytes.
    pub size: u64,
    /// Storage tier.
    pub tier: StorageTier,
    /// Erasure code of every segment.
    pub code: CodeParams,
    /// Plaintext bytes per segment (the last may be shorter).
    pub segment_size: u32,
    /// How segments are encrypted.
    pub encryption: EncryptionHeader,
    /// One entry per segment, in order.
    pub segments: Vec<SegmentInfo>,
    /// Name, MIME type, tags, description, creation time.
    pub metadata: Metadata,
}

/// Encryption parameters of a content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptionHeader {
    /// The level.
    pub level: EncryptionLevel,
    /// Commitment to the content key (`None` at level `None`).
    pub key_check: Option<Hash>,
    /// The content key wrapped for each reader, the owner first (empty when the key is kept
    /// by the storing node instead). Opaque bytes here; `zhtp-identity`'s `wrap` module defines
    /// them.
    pub readers: Vec<Vec<u8>>,
    /// The owner's metadata (name, MIME type, tags, description), encrypted under the
    /// content key ([`Manifest::seal_metadata`]); empty when the metadata is public.
    pub private: Vec<u8>,
    /// Version of the access list (the readers): 0 as put, one more at each grant or revoke.
    pub access_version: u64,
    /// The owner's (the first reader's) Ed25519 signature of the access list, or empty. The
    /// node checks it (`zhtp::readers`): any manifest with more than one reader, or a version
    /// above 0, must carry it.
    pub owner_sig: Vec<u8>,
}

/// One segment: how its stored bytes were made and the hash of each shard.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentInfo {
    /// Plaintext length of the segment.
    pub plain_len: u32,
    /// Whether LZ4 made it smaller (and so was kept).
    pub compressed: bool,
    /// Length after compression and encryption (tag included), before padding.
    pub stored_len: u32,
    /// Length of each shard.
    pub shard_len: u32,
    /// BLAKE3 of each of the k + m shards, data shards first.
    pub shards: Vec<Hash>,
}

/// What a person knows the content by.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// File name.
    pub name: Option<String>,
    /// MIME type.
    pub mime: Option<String>,
    /// Tags for `zhtp ls --tag` and search.
    pub tags: Vec<String>,
    /// Free text.
    pub description: Option<String>,
    /// Unix seconds when stored.
    pub created: u64,
}

impl Metadata {
    /// Total length of the strings.
    pub fn text_len(&self) -> usize {
        self.name.as_ref().map_or(0, String::len)
            + self.mime.as_ref().map_or(0, String::len)
            + self.description.as_ref().map_or(0, String::len)
            + self.tags.iter().map(String::len).sum::<usize>()
    }
}

impl Manifest {
    /// postcard bytes.
    pub fn encode(&self) -> Vec<u8> {
        let e = &self.encryption;
        // Encoding into a Vec cannot fail for these types.
        if e.readers.is_empty()
            && e.private.is_empty()
            && e.access_version == 0
            && e.owner_sig.is_empty()
        {
            // Nothing version 2 added: written as version 1, which nodes of before read too.
            return postcard::to_allocvec(&v1::Manifest::from_current(self)).unwrap_or_default();
        }
        let mut m = std::borrow::Cow::Borrowed(self);
        if m.version != MANIFEST_VERSION {
            m.to_mut().version = MANIFEST_VERSION;
        }
        postcard::to_allocvec(&*m).unwrap_or_default()
    }

    /// Decodes and validates a manifest from untrusted bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() > MAX_MANIFEST_LEN {
            return Err(Error::Manifest(format!(
                "{} bytes, larger than the {MAX_MANIFEST_LEN}-byte limit",
                bytes.len()
            )));
        }
        // The version comes first; refuse a future format before trying to parse it as ours.
        let (version, _) =
            postcard::take_from_bytes::<u16>(bytes).map_err(|e| Error::Manifest(e.to_string()))?;
        let bad = |e: postcard::Error| Error::Manifest(e.to_string());
        let m = match version {
            1 => postcard::from_bytes::<v1::Manifest>(bytes)
                .map_err(bad)?
                .into(),
            MANIFEST_VERSION => postcard::from_bytes::<Manifest>(bytes).map_err(bad)?,
            _ => {
                return Err(Error::Manifest(format!(
                    "format version {version}; this version reads 1 and {MANIFEST_VERSION}"
                )));
            }
        };
        m.validate()?;
        Ok(m)
    }

    /// Structural checks: the code is implemented, segment sizes add up, shard counts match.
    pub fn validate(&self) -> Result<(), Error> {
        self.code.validate()?;
        self.code.kind()?;
        if self.segment_size == 0 || self.segment_size > crate::MAX_SEGMENT_SIZE {
            return Err(Error::Manifest(format!(
                "segment size {}",
                self.segment_size
            )));
        }
        if self.metadata.text_len() > MAX_METADATA_LEN {
            return Err(Error::Manifest("metadata too large".into()));
        }
        let readers = &self.encryption.readers;
        if self.encryption.level == EncryptionLevel::None && !readers.is_empty() {
            return Err(Error::Manifest(
                "wrapped keys for a content that is not encrypted".into(),
            ));
        }
        let private = &self.encryption.private;
        if self.encryption.level == EncryptionLevel::None && !private.is_empty() {
            return Err(Error::Manifest(
                "private metadata of a content that is not encrypted".into(),
            ));
        }
        if private.len() > MAX_PRIVATE_LEN {
            return Err(Error::Manifest(format!(
                "private metadata of {} bytes (at most {MAX_PRIVATE_LEN})",
                private.len()
            )));
        }
        if !matches!(self.encryption.owner_sig.len(), 0 | 64) {
            return Err(Error::Manifest(
                "an owner signature that is not 64 bytes".into(),
            ));
        }
        if readers.len() > MAX_READERS || readers.iter().any(|r| r.len() > MAX_WRAPPED_LEN) {
            return Err(Error::Manifest(format!(
                "more than {MAX_READERS} readers, or a wrapped key over {MAX_WRAPPED_LEN} bytes"
            )));
        }
        // Every number a reader allocates from is pinned down by the others, as the encoder
        // derives them: a forged manifest cannot make a reader reserve more than a segment.
        let overhead = match self.encryption.level {
            EncryptionLevel::None => 0,
            _ => crate::crypto::TAG_LEN as u64,
        };
        let k = self.code.data as usize;
        let mut total = 0u64;
        for (i, s) in self.segments.iter().enumerate() {
            let last = i + 1 == self.segments.len();
            let (plain, stored) = (s.plain_len as u64, s.stored_len as u64);
            let why = if s.shards.len() != self.code.total() {
                Some(format!(
                    "{} shard hashes for a {}+{} code",
                    s.shards.len(),
                    self.code.data,
                    self.code.parity
                ))
            } else if s.plain_len == 0 || s.plain_len > self.segment_size {
                Some(format!(
                    "{plain} plaintext bytes in segments of {}",
                    self.segment_size
                ))
            } else if !last && s.plain_len != self.segment_size {
                Some(format!("{plain} plaintext bytes but it is not the last"))
            } else if !s.compressed && stored != plain + overhead
                || s.compressed && (stored >= plain + overhead || stored < overhead)
            {
                Some(format!(
                    "{stored} bytes stored for {plain} plaintext bytes ({})",
                    if s.compressed {
                        "compressed"
                    } else {
                        "not compressed"
                    }
                ))
            } else if s.shard_len as usize != crate::segment::shard_len(s.stored_len as usize, k) {
                Some(format!(
                    "shards of {} bytes for {stored} stored bytes over k = {k}",
                    s.shard_len
                ))
            } else {
                None
            };
            if let Some(why) = why {
                return Err(Error::Manifest(format!(
                    "segment {i} is inconsistent: {why}"
                )));
            }
            total += plain;
        }
        if total != self.size {
            return Err(Error::Manifest(format!(
                "segments hold {total} bytes, manifest says {}",
                self.size
            )));
        }
        Ok(())
    }

    /// Encrypts the metadata's strings under `key` into [`EncryptionHeader::private`] and
    /// leaves only the creation time public. XChaCha20-Poly1305 under a key derived from the
    /// content key (BLAKE3 `derive_key`, context `zhtp private metadata v1`), a random nonce
    /// stored first, the content's address as associated data.
    pub fn seal_metadata(&mut self, key: &ContentKey) -> Result<(), Error> {
        let mut nonce = [0u8; 24];
        getrandom::fill(&mut nonce).map_err(|e| Error::Params(format!("no OS randomness: {e}")))?;
        // The creation time stays public (listing and age); the rest goes.
        let created = self.metadata.created;
        let mut private = std::mem::take(&mut self.metadata);
        private.created = 0;
        self.metadata.created = created;
        let mut body = postcard::to_allocvec(&private).map_err(|e| Error::Params(e.to_string()))?;
        let tag = metadata_cipher(key)
            .encrypt_inout_detached(
                &nonce.into(),
                self.content_hash.as_bytes(),
                body.as_mut_slice().into(),
            )
            .map_err(|_| Error::Params("metadata too large to encrypt".into()))?;
        self.encryption.private = [nonce.as_slice(), &body, tag.as_slice()].concat();
        Ok(())
    }

    /// The owner's metadata: decrypted from [`EncryptionHeader::private`] with `key` when
    /// there is some, else the public one.
    pub fn open_metadata(&self, key: &ContentKey) -> Result<Metadata, Error> {
        if self.encryption.private.is_empty() {
            return Ok(self.metadata.clone());
        }
        let mut m = open_private(&self.content_hash, &self.encryption.private, key)?;
        m.created = self.metadata.created;
        Ok(m)
    }

    /// Bytes stored for this content across all shards.
    pub fn stored_bytes(&self) -> u64 {
        self.segments
            .iter()
            .map(|s| s.shard_len as u64 * s.shards.len() as u64)
            .sum()
    }
}

/// Version 1: the same, without readers.
mod v1 {
    use serde::Deserialize;
    use zhtp_types::{Hash, StorageTier};

    use crate::crypto::EncryptionLevel;
    use crate::erasure::CodeParams;
    use crate::manifest::{Metadata, SegmentInfo};

    #[derive(Deserialize, serde::Serialize)]
    pub(super) struct Manifest {
        version: u16,
        content_hash: Hash,
        size: u64,
        tier: StorageTier,
        code: CodeParams,
        segment_size: u32,
        encryption: EncryptionHeader,
        segments: Vec<SegmentInfo>,
        metadata: Metadata,
    }

    #[derive(Deserialize, serde::Serialize)]
    struct EncryptionHeader {
        level: EncryptionLevel,
        key_check: Option<Hash>,
    }

    impl Manifest {
        /// `m` as version 1 wrote it (what version 2 added is dropped).
        pub(super) fn from_current(m: &super::Manifest) -> Self {
            Self {
                version: 1,
                content_hash: m.content_hash,
                size: m.size,
                tier: m.tier,
                code: m.code,
                segment_size: m.segment_size,
                encryption: EncryptionHeader {
                    level: m.encryption.level,
                    key_check: m.encryption.key_check,
                },
                segments: m.segments.clone(),
                metadata: m.metadata.clone(),
            }
        }
    }

    impl From<Manifest> for super::Manifest {
        fn from(m: Manifest) -> Self {
            debug_assert_eq!(m.version, 1);
            Self {
                version: super::MANIFEST_VERSION,
                content_hash: m.content_hash,
                size: m.size,
                tier: m.tier,
                code: m.code,
                segment_size: m.segment_size,
                encryption: super::EncryptionHeader {
                    level: m.encryption.level,
                    key_check: m.encryption.key_check,
                    readers: Vec::new(),
                    private: Vec::new(),
                    access_version: 0,
                    owner_sig: Vec::new(),
                },
                segments: m.segments,
                metadata: m.metadata,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(level: EncryptionLevel) -> Manifest {
        Manifest {
            version: MANIFEST_VERSION,
            content_hash: Hash([1; 32]),
            size: 10,
            tier: StorageTier::Warm,
            code: CodeParams {
                code: crate::CodeKind::ReedSolomonSimd.id(),
                data: 4,
                parity: 2,
            },
            segment_size: 1 << 20,
            encryption: EncryptionHeader {
                level,
                key_check: None,
                readers: Vec::new(),
                private: Vec::new(),
                access_version: 0,
                owner_sig: Vec::new(),
            },
            segments: vec![SegmentInfo {
                plain_len: 10,
                compressed: false,
                stored_len: 10
                    + if level == EncryptionLevel::None {
                        0
                    } else {
                        16
                    },
                shard_len: crate::segment::shard_len(
                    10 + if level == EncryptionLevel::None {
                        0
                    } else {
                        16
                    },
                    4,
                ) as u32,
                shards: vec![Hash([2; 32]); 6],
            }],
            metadata: Metadata::default(),
        }
    }

    /// A version-1 manifest (written before readers existed) still reads, with no readers.
    #[test]
    fn version_1_still_reads() {
        let m = manifest(EncryptionLevel::Standard);
        let old = v1::Manifest::from_current(&m);
        let bytes = postcard::to_allocvec(&old).unwrap();
        assert_eq!(bytes[0], 1);
        assert_eq!(Manifest::decode(&bytes).unwrap(), m);
        // Without readers it is still written as version 1, for nodes of before.
        assert_eq!(m.encode(), bytes);
        let mut owned = m.clone();
        owned.encryption.readers = vec![vec![0; 113]];
        assert_eq!(owned.encode()[0], 2);
        assert_eq!(Manifest::decode(&owned.encode()).unwrap(), owned);
        let mut future = owned.encode();
        future[0] = 3;
        assert!(Manifest::decode(&future).is_err());
    }

    #[test]
    fn readers_are_bounded_and_only_for_encrypted_content() {
        let mut m = manifest(EncryptionLevel::High);
        m.encryption.readers = vec![vec![0; 113]; 2];
        assert_eq!(Manifest::decode(&m.encode()).unwrap(), m);
        m.encryption.readers = vec![vec![0; 113]; MAX_READERS + 1];
        assert!(Manifest::decode(&m.encode()).is_err());
        m.encryption.readers = vec![vec![0; MAX_WRAPPED_LEN + 1]];
        assert!(Manifest::decode(&m.encode()).is_err());
        let mut plain = manifest(EncryptionLevel::None);
        assert!(Manifest::decode(&plain.encode()).is_ok());
        plain.encryption.readers = vec![vec![0; 113]];
        assert!(matches!(
            Manifest::decode(&plain.encode()),
            Err(Error::Manifest(e)) if e.contains("not encrypted")
        ));
    }

    /// Sealed metadata leaves only the creation time public, opens with the content key only,
    /// and is bound to the content.
    #[test]
    fn private_metadata() {
        let mut m = manifest(EncryptionLevel::High);
        m.metadata = Metadata {
            name: Some("secret-plans.pdf".into()),
            mime: Some("application/pdf".into()),
            tags: vec!["merger".into()],
            description: Some("do not share".into()),
            created: 1_700_000_000,
        };
        let want = m.metadata.clone();
        let key = ContentKey([3; 32]);
        m.seal_metadata(&key).unwrap();
        assert_eq!(
            m.metadata,
            Metadata {
                created: 1_700_000_000,
                ..Metadata::default()
            }
        );
        let bytes = m.encode();
        for s in ["secret-plans", "application/pdf", "merger", "do not share"] {
            assert!(!bytes.windows(s.len()).any(|w| w == s.as_bytes()), "{s}");
        }
        let back = Manifest::decode(&bytes).unwrap();
        assert_eq!(back.open_metadata(&key).unwrap(), want);
        assert!(back.open_metadata(&ContentKey([4; 32])).is_err());
        let mut moved = back.clone();
        moved.content_hash = Hash([9; 32]);
        assert!(moved.open_metadata(&key).is_err(), "bound to its content");
        let mut plain = manifest(EncryptionLevel::None);
        plain.encryption.private = vec![0; 50];
        assert!(Manifest::decode(&plain.encode()).is_err());
    }
}
