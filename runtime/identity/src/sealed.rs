//! An identity sealed under a passphrase: the bytes of one keystore file.
//!
//! Layout, version 1 (172 bytes; integers little-endian):
//!
//! | offset | bytes | field |
//! |---:|---:|---|
//! | 0 | 7 | magic `ZHTPKEY` |
//! | 7 | 1 | version, `01` |
//! | 8 | 4 | Argon2id memory, KiB |
//! | 12 | 4 | Argon2id passes |
//! | 16 | 4 | Argon2id lanes |
//! | 20 | 16 | salt (random per seal) |
//! | 36 | 24 | XChaCha20-Poly1305 nonce (random per seal) |
//! | 60 | 96 | ciphertext of the Ed25519 seed, the X25519 secret and the X-Wing seed |
//! | 156 | 16 | Poly1305 tag |
//!
//! The key is Argon2id (version 0x13) of the passphrase and the salt, 32 bytes, under the
//! header's parameters; the first 60 bytes (the header) are the associated data, so changing
//! any of them fails the tag like a wrong passphrase does. The parameters are checked against
//! [`KdfParams::FLOOR`] and [`KdfParams::CEILING`] before any work: a file whose header was
//! edited to weaker parameters is refused, never opened (a weaker key would make a stolen file
//! cheaper to attack), and a hostile file cannot ask for minutes of work or gigabytes of memory.

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{Key, Tag, XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use crate::{Error, Identity, SECRET_LEN};

const MAGIC: &[u8; 7] = b"ZHTPKEY";
const VERSION: u8 = 1;
const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
/// Bytes before the ciphertext: magic, version, parameters, salt, nonce.
pub const HEADER_LEN: usize = 8 + 12 + SALT_LEN + NONCE_LEN;
/// Bytes of a version-1 sealed identity.
pub const SEALED_LEN: usize = HEADER_LEN + 3 * SECRET_LEN + TAG_LEN;

/// Argon2id cost parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory, in KiB.
    pub memory_kib: u32,
    /// Passes over the memory.
    pub passes: u32,
    /// Lanes (parallelism).
    pub lanes: u32,
}

impl std::fmt::Display for KdfParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "(memory {} KiB, {} passes, {} lanes)",
            self.memory_kib, self.passes, self.lanes
        )
    }
}

impl KdfParams {
    /// What new files use: 64 MiB, 3 passes, 1 lane (about a quarter to half a second on the
    /// development machine; RFC 9106's second recommended option is 64 MiB and 3 passes).
    pub const DEFAULT: Self = Self {
        memory_kib: 64 * 1024,
        passes: 3,
        lanes: 1,
    };

    /// The least accepted, for sealing and for opening: OWASP's minimum for Argon2id
    /// (19 MiB, 2 passes, 1 lane).
    pub const FLOOR: Self = Self {
        memory_kib: 19 * 1024,
        passes: 2,
        lanes: 1,
    };

    /// The most accepted when opening: 1 GiB, 16 passes, 8 lanes.
    pub const CEILING: Self = Self {
        memory_kib: 1024 * 1024,
        passes: 16,
        lanes: 8,
    };

    /// Refuses parameters outside [`Self::FLOOR`] and [`Self::CEILING`], each field on its own.
    pub fn check(self) -> Result<Self, Error> {
        let (lo, hi) = (Self::FLOOR, Self::CEILING);
        if self.memory_kib < lo.memory_kib || self.passes < lo.passes || self.lanes < lo.lanes {
            return Err(Error::WeakParams {
                found: self,
                floor: lo,
            });
        }
        if self.memory_kib > hi.memory_kib || self.passes > hi.passes || self.lanes > hi.lanes {
            return Err(Error::ExcessiveParams {
                found: self,
                ceiling: hi,
            });
        }
        Ok(self)
    }

    fn key(self, passphrase: &[u8], salt: &[u8]) -> Result<Zeroizing<[u8; 32]>, Error> {
        let params = Params::new(self.memory_kib, self.passes, self.lanes, Some(32))
            .map_err(|e| Error::Kdf(e.to_string()))?;
        let mut key = Zeroizing::new([0u8; 32]);
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_into(passphrase, salt, key.as_mut_slice())
            .map_err(|e| Error::Kdf(e.to_string()))?;
        Ok(key)
    }
}

/// Seals `identity` under `passphrase` with `params` (at least [`KdfParams::FLOOR`]), with a
/// fresh random salt and nonce.
pub fn seal(identity: &Identity, passphrase: &[u8], params: KdfParams) -> Result<Vec<u8>, Error> {
    let params = params.check()?;
    let mut random = [0u8; SALT_LEN + NONCE_LEN];
    getrandom::fill(&mut random).map_err(|e| Error::Random(e.to_string()))?;
    let mut out = Vec::with_capacity(SEALED_LEN);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    for v in [params.memory_kib, params.passes, params.lanes] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&random);
    let (salt, nonce) = random.split_at(SALT_LEN);
    let key = params.key(passphrase, salt)?;
    let mut body = identity.secrets();
    let tag = XChaCha20Poly1305::new(&Key::from(*key))
        .encrypt_inout_detached(
            &XNonce::try_from(nonce).expect("24 bytes"),
            &out,
            body.as_mut_slice().into(),
        )
        .map_err(|_| Error::Kdf("encryption failed".into()))?;
    out.extend_from_slice(body.as_slice());
    out.extend_from_slice(tag.as_slice());
    Ok(out)
}

/// Reads the header of sealed bytes: their key-derivation parameters, checked against the floor
/// and the ceiling. No passphrase needed; what an import checks before accepting a file.
pub fn params(sealed: &[u8]) -> Result<KdfParams, Error> {
    if sealed.len() < 8 || &sealed[..7] != MAGIC {
        return Err(Error::NotAKeystore("no `ZHTPKEY` magic"));
    }
    if sealed[7] != VERSION {
        return Err(Error::UnsupportedVersion(sealed[7]));
    }
    if sealed.len() != SEALED_LEN {
        return Err(Error::NotAKeystore("wrong length for version 1"));
    }
    let word = |at: usize| u32::from_le_bytes(sealed[at..at + 4].try_into().expect("4 bytes"));
    KdfParams {
        memory_kib: word(8),
        passes: word(12),
        lanes: word(16),
    }
    .check()
}

/// Opens sealed bytes with `passphrase`.
pub fn unseal(sealed: &[u8], passphrase: &[u8]) -> Result<Identity, Error> {
    let params = params(sealed)?;
    let (header, rest) = sealed.split_at(HEADER_LEN);
    let salt = &header[20..20 + SALT_LEN];
    let nonce = XNonce::try_from(&header[20 + SALT_LEN..]).expect("24 bytes");
    let (body, tag) = rest.split_at(3 * SECRET_LEN);
    let tag = Tag::try_from(tag).expect("16 bytes");
    let key = params.key(passphrase, salt)?;
    let mut secrets = Zeroizing::new([0u8; 3 * SECRET_LEN]);
    secrets.copy_from_slice(body);
    XChaCha20Poly1305::new(&Key::from(*key))
        .decrypt_inout_detached(&nonce, header, secrets.as_mut_slice().into(), &tag)
        .map_err(|_| Error::WrongPassphrase)?;
    Ok(Identity::from_secrets(&secrets))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The floor: the cheapest parameters there are, so the tests stay quick.
    const P: KdfParams = KdfParams::FLOOR;

    fn sealed() -> (Identity, Vec<u8>) {
        let id = Identity::generate().unwrap();
        let bytes = seal(&id, b"correct horse", P).unwrap();
        (id, bytes)
    }

    #[test]
    fn unseals_with_the_passphrase_to_the_same_keys() {
        let (id, bytes) = sealed();
        assert_eq!(bytes.len(), SEALED_LEN);
        let back = unseal(&bytes, b"correct horse").unwrap();
        assert_eq!(back.public(), id.public());
        assert_eq!(*back.secrets(), *id.secrets());
    }

    #[test]
    fn a_wrong_passphrase_is_one_clear_error() {
        let (_, bytes) = sealed();
        assert!(matches!(
            unseal(&bytes, b"correct horse "),
            Err(Error::WrongPassphrase)
        ));
        assert!(matches!(unseal(&bytes, b""), Err(Error::WrongPassphrase)));
    }

    /// No secret, nor any 8 bytes of one, appears in the sealed bytes.
    #[test]
    fn the_sealed_bytes_hold_no_plaintext_secret() {
        let (id, bytes) = sealed();
        for secret in id.secrets().chunks(8) {
            assert!(!bytes.windows(8).any(|w| w == secret));
        }
    }

    #[test]
    fn the_header_is_the_documented_layout() {
        let (_, bytes) = sealed();
        assert_eq!(&bytes[..8], b"ZHTPKEY\x01");
        assert_eq!(&bytes[8..12], &(19u32 * 1024).to_le_bytes());
        assert_eq!(&bytes[12..16], &2u32.to_le_bytes());
        assert_eq!(&bytes[16..20], &1u32.to_le_bytes());
        assert_eq!(params(&bytes).unwrap(), P);
        // Two seals of one identity share nothing but the header's fixed part.
        let id = unseal(&bytes, b"correct horse").unwrap();
        let again = seal(&id, b"correct horse", P).unwrap();
        assert_eq!(again[..20], bytes[..20]);
        assert_ne!(again[20..], bytes[20..]);
    }

    /// An edited header is refused before any key derivation when it weakens the parameters,
    /// and fails the tag (as a wrong passphrase) when it changes anything else.
    #[test]
    fn an_edited_header_is_refused() {
        let (_, bytes) = sealed();
        let mut weak = bytes.clone();
        weak[8..12].copy_from_slice(&(8u32 * 1024).to_le_bytes());
        assert!(matches!(
            unseal(&weak, b"correct horse"),
            Err(Error::WeakParams { found, .. }) if found.memory_kib == 8 * 1024
        ));
        let mut one_pass = bytes.clone();
        one_pass[12..16].copy_from_slice(&1u32.to_le_bytes());
        assert!(matches!(
            unseal(&one_pass, b"correct horse"),
            Err(Error::WeakParams { .. })
        ));
        let mut huge = bytes.clone();
        huge[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            unseal(&huge, b"correct horse"),
            Err(Error::ExcessiveParams { .. })
        ));
        let mut more_passes = bytes.clone();
        more_passes[12..16].copy_from_slice(&3u32.to_le_bytes());
        assert!(matches!(
            unseal(&more_passes, b"correct horse"),
            Err(Error::WrongPassphrase)
        ));
        let mut salt = bytes.clone();
        salt[20] ^= 1;
        assert!(matches!(
            unseal(&salt, b"correct horse"),
            Err(Error::WrongPassphrase)
        ));
        let mut body = bytes.clone();
        body[HEADER_LEN] ^= 1;
        assert!(matches!(
            unseal(&body, b"correct horse"),
            Err(Error::WrongPassphrase)
        ));
    }

    #[test]
    fn not_a_keystore_file() {
        let (_, bytes) = sealed();
        assert!(matches!(
            unseal(b"hello", b"x"),
            Err(Error::NotAKeystore(_))
        ));
        let mut v2 = bytes.clone();
        v2[7] = 2;
        assert!(matches!(
            unseal(&v2, b"x"),
            Err(Error::UnsupportedVersion(2))
        ));
        assert!(matches!(
            unseal(&bytes[..SEALED_LEN - 1], b"x"),
            Err(Error::NotAKeystore(_))
        ));
    }

    #[test]
    fn sealing_refuses_weak_parameters() {
        let id = Identity::generate().unwrap();
        let weak = KdfParams {
            memory_kib: 1024,
            ..P
        };
        assert!(matches!(
            seal(&id, b"x", weak),
            Err(Error::WeakParams { .. })
        ));
    }

    /// The keys are what their secrets say: the Ed25519 key signs, and the X-Wing key opens
    /// what was encapsulated to its public key.
    #[test]
    fn the_keys_work() {
        use ed25519_dalek::{Signer as _, Verifier as _};
        use x_wing::{Decapsulate as _, Encapsulate as _};
        let (id, bytes) = sealed();
        let back = unseal(&bytes, b"correct horse").unwrap();
        let sig = back.signing_key().sign(b"msg");
        let vk = ed25519_dalek::VerifyingKey::from_bytes(&id.public().signing).unwrap();
        assert!(vk.verify(b"msg", &sig).is_ok());
        let ek = x_wing::EncapsulationKey::try_from(id.public().kem.as_slice()).unwrap();
        let (ct, shared) = ek.encapsulate();
        assert_eq!(back.kem().decapsulate(&ct), shared);
    }
}
