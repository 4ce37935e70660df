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
//! any of them fails the tag like a wrong passphrase does. The parameters are checked before
//! any work ([`KdfParams::check`]): nothing is sealed, or accepted, below
//! [`KdfParams::FLOOR`], and a hostile file cannot ask for more than [`KdfParams::CEILING`] nor
//! more than four times the default's work (memory × passes). Argon2's working memory is wiped
//! after use, as are the key and every copy of the secrets this crate makes.

use argon2::{Algorithm, Argon2, Block, Params, Version};
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

    /// The most accepted for each field: 1 GiB, 16 passes, 4 lanes (lanes run one after another
    /// here, so more would only cost time). Memory × passes is bounded too:
    /// [`Self::MAX_WORK`].
    pub const CEILING: Self = Self {
        memory_kib: 1024 * 1024,
        passes: 16,
        lanes: 4,
    };

    /// Most KiB × passes accepted: four times [`Self::DEFAULT`]'s, so that no file, whatever
    /// its header, takes more than about four default opens.
    pub const MAX_WORK: u64 = 4 * 64 * 1024 * 3;

    /// Refuses parameters below [`Self::FLOOR`] or above [`Self::CEILING`] (each field on its
    /// own), or above [`Self::MAX_WORK`].
    pub fn check(self) -> Result<Self, Error> {
        let (lo, hi) = (Self::FLOOR, Self::CEILING);
        if self.memory_kib < lo.memory_kib || self.passes < lo.passes || self.lanes < lo.lanes {
            return Err(Error::WeakParams {
                found: self,
                floor: lo,
            });
        }
        let work = u64::from(self.memory_kib) * u64::from(self.passes);
        if self.memory_kib > hi.memory_kib
            || self.passes > hi.passes
            || self.lanes > hi.lanes
            || work > Self::MAX_WORK
        {
            return Err(Error::ExcessiveParams {
                found: self,
                ceiling: hi,
            });
        }
        Ok(self)
    }

    /// The cipher keyed by Argon2id of `passphrase` and `salt` under these parameters.
    fn cipher(self, passphrase: &[u8], salt: &[u8]) -> Result<XChaCha20Poly1305, Error> {
        let params = Params::new(self.memory_kib, self.passes, self.lanes, Some(32))?;
        // Argon2 frees its own working memory without wiping it, and the last block of each
        // lane is enough to recompute the key: give it memory that is wiped.
        let mut memory = Zeroizing::new(vec![Block::default(); params.block_count()]);
        let mut key = Zeroizing::new([0u8; 32]);
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params).hash_password_into_with_memory(
            passphrase,
            salt,
            key.as_mut_slice(),
            memory.as_mut_slice(),
        )?;
        Ok(XChaCha20Poly1305::new(<&Key>::from(&*key)))
    }
}

/// Seals `identity` under `passphrase` with `params` (at least [`KdfParams::FLOOR`]), with a
/// fresh random salt and nonce.
pub fn seal(identity: &Identity, passphrase: &[u8], params: KdfParams) -> Result<Vec<u8>, Error> {
    let mut salt = [0u8; SALT_LEN];
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut salt)?;
    getrandom::fill(&mut nonce)?;
    seal_with(identity, passphrase, params, &salt, &nonce)
}

/// [`seal`] with a given salt and nonce (the tests pin a whole file with it).
fn seal_with(
    identity: &Identity,
    passphrase: &[u8],
    params: KdfParams,
    salt: &[u8; SALT_LEN],
    nonce: &[u8; NONCE_LEN],
) -> Result<Vec<u8>, Error> {
    let params = params.check()?;
    let mut out = Vec::with_capacity(SEALED_LEN);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    for v in [params.memory_kib, params.passes, params.lanes] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(salt);
    out.extend_from_slice(nonce);
    let mut body = identity.secrets();
    let tag = params
        .cipher(passphrase, salt)?
        .encrypt_inout_detached(&XNonce::from(*nonce), &out, body.as_mut_slice().into())
        .expect("96 bytes are far below XChaCha20-Poly1305's limit");
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
    let cipher = params.cipher(passphrase, salt)?;
    let mut secrets = Zeroizing::new([0u8; 3 * SECRET_LEN]);
    secrets.copy_from_slice(body);
    cipher
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
        assert_ne!(again[20..36], bytes[20..36], "a fresh salt");
        assert_ne!(again[36..60], bytes[36..60], "a fresh nonce");
        assert_ne!(again[60..], bytes[60..]);
        assert_eq!((HEADER_LEN, SEALED_LEN), (60, 172));
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

    /// A whole version-1 file, pinned: secrets 0x01.., 0x21.., 0x41.. (each 32 counting bytes),
    /// passphrase "zhtp", the floor's parameters, salt 16 × 0xaa, nonce 24 × 0xbb. A change to
    /// the layout, the KDF or the cipher breaks every keystore there is.
    #[test]
    fn a_sealed_file_is_pinned() {
        let secrets: [u8; 96] = core::array::from_fn(|i| i as u8 + 1);
        let id = Identity::from_secrets(&secrets);
        let bytes = seal_with(&id, b"zhtp", P, &[0xaa; 16], &[0xbb; 24]).unwrap();
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, GOLDEN);
        assert_eq!(*unseal(&bytes, b"zhtp").unwrap().secrets(), secrets);
    }

    /// Produced by this code when it was written (not an independent known answer: the
    /// cipher and the KDF have their own in their crates); it pins the composition.
    const GOLDEN: &str = concat!(
        "5a4854504b455901004c00000200000001000000",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
        "4b61a2b8f82d78499afaff9cb851816d3414f67e105c81a48a93887f22902a76",
        "074722b6184b2fe088995e9711b2595eb5768068d934fd3c7d65b5ed8d0d6adf",
        "958554e6e372bf453a03fa5ac394ca0e100508b239cb55594c3fc433d84824e8",
        "6089889ce6c30ea2695bb818b953f713",
    );

    /// Each field under the ceiling is not enough: memory × passes has a budget too.
    #[test]
    fn a_hostile_header_cannot_ask_for_much_work() {
        let (_, bytes) = sealed();
        let mut heavy = bytes.clone();
        heavy[8..12].copy_from_slice(&(512u32 * 1024).to_le_bytes());
        heavy[12..16].copy_from_slice(&4u32.to_le_bytes());
        assert!(matches!(
            unseal(&heavy, b"correct horse"),
            Err(Error::ExcessiveParams { .. })
        ));
        let mut lanes = bytes.clone();
        lanes[16..20].copy_from_slice(&5u32.to_le_bytes());
        assert!(matches!(
            unseal(&lanes, b"correct horse"),
            Err(Error::ExcessiveParams { .. })
        ));
        assert!(KdfParams::DEFAULT.check().is_ok());
        let most = KdfParams {
            memory_kib: 256 * 1024,
            passes: 3,
            lanes: 4,
        };
        assert_eq!(
            most.check().unwrap(),
            most,
            "exactly the budget is accepted"
        );
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
