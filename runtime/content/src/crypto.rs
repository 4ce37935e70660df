//! Segment encryption.
//!
//! `Standard`: ChaCha20-Poly1305 with a random 256-bit key per content. The nonce of segment `i`
//! is `i` (little-endian) padded to 12 bytes: unique per key because every content has its own
//! key. `High` and `Quantum`: XChaCha20-Poly1305 the same way (nonce `i` padded to 24 bytes);
//! what sets them apart is how the key is wrapped for its readers (X25519 or X-Wing,
//! `zhtp-identity`), not the segment cipher. The associated data binds the segment index and whether it was compressed, so segments
//! cannot be reordered, swapped between positions, or have their flags flipped unnoticed; a
//! segment from another content fails authentication under this content's key.

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce, Tag, XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};

use crate::error::Error;

/// Poly1305 tag length.
pub(crate) const TAG_LEN: usize = 16;

/// How content is encrypted.
///
/// Spelled `none`, `standard`, `high`, `quantum` on the command line and in JSON (which also
/// reads the names of earlier versions). Postcard encodes the variant's index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EncryptionLevel {
    /// Stored as is (after compression).
    #[serde(alias = "None")]
    None,
    /// ChaCha20-Poly1305 with a random per-content key.
    #[serde(alias = "Standard")]
    Standard,
    /// XChaCha20-Poly1305; the key is wrapped per reader with X25519.
    #[serde(alias = "High")]
    High,
    /// XChaCha20-Poly1305; the key is wrapped per reader with X-Wing (ML-KEM-768 + X25519).
    #[serde(rename = "quantum", alias = "QuantumResistant")]
    QuantumResistant,
}

impl EncryptionLevel {
    /// Name on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Standard => "standard",
            Self::High => "high",
            Self::QuantumResistant => "quantum",
        }
    }

    /// Every level.
    pub const ALL: [Self; 4] = [
        Self::None,
        Self::Standard,
        Self::High,
        Self::QuantumResistant,
    ];

    /// Parses a command-line name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.as_str() == s)
    }
}

impl std::fmt::Display for EncryptionLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for EncryptionLevel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s).ok_or_else(|| {
            format!("unknown encryption level `{s}` (none, standard, high, quantum)")
        })
    }
}

/// A per-content key. Kept by the node that stored the content, never in the manifest.
#[derive(Clone)]
pub struct ContentKey(pub [u8; 32]);

impl std::fmt::Debug for ContentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ContentKey(<secret>)")
    }
}

impl ContentKey {
    /// A fresh random key from the OS.
    pub fn random() -> Result<Self, Error> {
        let mut k = [0u8; 32];
        getrandom::fill(&mut k).map_err(|e| Error::Params(format!("no OS randomness: {e}")))?;
        Ok(Self(k))
    }

    /// A public commitment to the key, stored in the manifest so a wrong key is reported as
    /// such instead of as corruption. Reveals nothing about the key.
    pub fn check(&self) -> zhtp_types::Hash {
        zhtp_types::Hash(*blake3::keyed_hash(&self.0, b"zhtp content key check v1").as_bytes())
    }
}

fn nonce<const N: usize>(index: u32) -> [u8; N] {
    let mut n = [0u8; N];
    n[..4].copy_from_slice(&index.to_le_bytes());
    n
}

fn aad(index: u32, compressed: bool) -> [u8; 13] {
    let mut a = [0u8; 13];
    a[..8].copy_from_slice(b"zhtp/seg");
    a[8..12].copy_from_slice(&index.to_le_bytes());
    a[12] = compressed as u8;
    a
}

/// The cipher of one content.
pub(crate) enum Cipher {
    /// Level `standard`.
    ChaCha(ChaCha20Poly1305),
    /// Levels `high` and `quantum`.
    XChaCha(XChaCha20Poly1305),
}

impl Cipher {
    /// The cipher of `level` (`None` at level `none`).
    pub(crate) fn new(level: EncryptionLevel, key: &ContentKey) -> Option<Self> {
        let k = Key::from(key.0);
        match level {
            EncryptionLevel::None => None,
            EncryptionLevel::Standard => Some(Self::ChaCha(ChaCha20Poly1305::new(&k))),
            EncryptionLevel::High | EncryptionLevel::QuantumResistant => {
                Some(Self::XChaCha(XChaCha20Poly1305::new(&k)))
            }
        }
    }

    /// Encrypts `buf` in place and appends the tag.
    pub(crate) fn seal(
        &self,
        index: u32,
        compressed: bool,
        buf: &mut Vec<u8>,
    ) -> Result<(), Error> {
        let aad = aad(index, compressed);
        let data = buf.as_mut_slice().into();
        let tag = match self {
            Self::ChaCha(c) => c.encrypt_inout_detached(&Nonce::from(nonce(index)), &aad, data),
            Self::XChaCha(c) => c.encrypt_inout_detached(&XNonce::from(nonce(index)), &aad, data),
        }
        .map_err(|_| Error::Params("segment too large to encrypt".into()))?;
        buf.extend_from_slice(tag.as_slice());
        Ok(())
    }

    /// Checks the tag at the end of `buf` and decrypts in place, removing the tag.
    pub(crate) fn open(
        &self,
        index: u32,
        compressed: bool,
        buf: &mut Vec<u8>,
    ) -> Result<(), Error> {
        if buf.len() < TAG_LEN {
            return Err(Error::Decrypt(index));
        }
        let split = buf.len() - TAG_LEN;
        let tag = Tag::try_from(&buf[split..]).map_err(|_| Error::Decrypt(index))?;
        buf.truncate(split);
        let aad = aad(index, compressed);
        let data = buf.as_mut_slice().into();
        match self {
            Self::ChaCha(c) => {
                c.decrypt_inout_detached(&Nonce::from(nonce(index)), &aad, data, &tag)
            }
            Self::XChaCha(c) => {
                c.decrypt_inout_detached(&XNonce::from(nonce(index)), &aad, data, &tag)
            }
        }
        .map_err(|_| Error::Decrypt(index))
    }
}
