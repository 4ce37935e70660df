//! An identity's public keys as bytes others can check: the record a grantee hands to an owner,
//! and the `.pub` file beside each keystore file.
//!
//! Layout, version 1 (1,352 bytes):
//!
//! | offset | bytes | field |
//! |---:|---:|---|
//! | 0 | 7 | magic `ZHTPPUB` |
//! | 7 | 1 | version, `01` |
//! | 8 | 32 | Ed25519 verifying key (the identity's id) |
//! | 40 | 32 | X25519 public key |
//! | 72 | 1,216 | X-Wing encapsulation key (ML-KEM-768's 1,184 bytes, then X25519's 32) |
//! | 1,288 | 64 | Ed25519 signature of bytes 0..1,288 by the key at offset 8 |
//!
//! The signature binds the two encryption keys to the id: whoever knows only an id (64 hex
//! characters) can tell whether a record offering keys for it is genuine, so a lying peer or an
//! edited file cannot slip in keys of its own. The magic keeps the signature from meaning
//! anything else.

use ed25519_dalek::{Signature, Signer as _, VerifyingKey};

use crate::{Error, Identity, KEM_PUBLIC_LEN, PublicKeys};

const MAGIC: &[u8; 7] = b"ZHTPPUB";
const VERSION: u8 = 1;
/// Bytes the signature covers.
const SIGNED_LEN: usize = 8 + 32 + 32 + KEM_PUBLIC_LEN;
/// Bytes of a version-1 public record.
pub const RECORD_LEN: usize = SIGNED_LEN + 64;

impl Identity {
    /// This identity's public keys as a signed record ([`PublicKeys::from_record`] reads it).
    pub fn public_record(&self) -> Vec<u8> {
        let p = self.public();
        let mut out = Vec::with_capacity(RECORD_LEN);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&p.signing);
        out.extend_from_slice(&p.exchange);
        out.extend_from_slice(&p.kem);
        let sig = self.signing.sign(&out);
        out.extend_from_slice(&sig.to_bytes());
        out
    }
}

impl PublicKeys {
    /// Reads a public record: the layout, a valid X-Wing key, and the signature of the id's own
    /// key over the rest.
    pub fn from_record(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() < 8 || &bytes[..7] != MAGIC {
            return Err(Error::BadPublicRecord("no `ZHTPPUB` magic"));
        }
        if bytes[7] != VERSION {
            return Err(Error::BadPublicRecord("a version this build does not read"));
        }
        if bytes.len() != RECORD_LEN {
            return Err(Error::BadPublicRecord("wrong length for version 1"));
        }
        let (body, sig) = bytes.split_at(SIGNED_LEN);
        let signing: [u8; 32] = body[8..40].try_into().expect("32 bytes");
        let vk = VerifyingKey::from_bytes(&signing)
            .map_err(|_| Error::BadPublicRecord("not an Ed25519 key"))?;
        let sig = Signature::from_slice(sig).expect("64 bytes");
        vk.verify_strict(body, &sig)
            .map_err(|_| Error::BadPublicRecord("the signature does not match its id"))?;
        let kem = body[72..].to_vec();
        x_wing::EncapsulationKey::try_from(kem.as_slice())
            .map_err(|_| Error::BadPublicRecord("not an X-Wing key"))?;
        Ok(Self {
            signing,
            exchange: body[40..72].try_into().expect("32 bytes"),
            kem,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_back_to_the_same_keys() {
        let id = Identity::generate().unwrap();
        let rec = id.public_record();
        assert_eq!(rec.len(), RECORD_LEN);
        assert_eq!(RECORD_LEN, 1352);
        assert_eq!(&rec[..8], b"ZHTPPUB\x01");
        assert_eq!(PublicKeys::from_record(&rec).unwrap(), id.public());
    }

    /// Keys swapped in by someone else, even with a valid signature of their own key, are
    /// refused: the record must be signed by the id it names.
    #[test]
    fn swapped_keys_are_refused() {
        let (victim, mallory) = (Identity::generate().unwrap(), Identity::generate().unwrap());
        let mut rec = victim.public_record();
        let theirs = mallory.public_record();
        rec[40..72].copy_from_slice(&theirs[40..72]);
        assert!(matches!(
            PublicKeys::from_record(&rec),
            Err(Error::BadPublicRecord(
                "the signature does not match its id"
            ))
        ));
        // Re-signed by mallory: still names the victim's id, so mallory's signature fails.
        let sig = mallory.signing.sign(&rec[..SIGNED_LEN]).to_bytes();
        rec[SIGNED_LEN..].copy_from_slice(&sig);
        assert!(matches!(
            PublicKeys::from_record(&rec),
            Err(Error::BadPublicRecord(
                "the signature does not match its id"
            ))
        ));
        let mut kem = victim.public_record();
        kem[100] ^= 1;
        assert!(PublicKeys::from_record(&kem).is_err());
        assert!(matches!(
            PublicKeys::from_record(&rec[..RECORD_LEN - 1]),
            Err(Error::BadPublicRecord("wrong length for version 1"))
        ));
        assert!(matches!(
            PublicKeys::from_record(b"ZHTPPUB\x02"),
            Err(Error::BadPublicRecord("a version this build does not read"))
        ));
    }

    /// The layout, pinned from fixed secrets (Ed25519 signatures are deterministic).
    #[test]
    fn a_record_is_pinned() {
        let secrets: [u8; 96] = core::array::from_fn(|i| i as u8 + 1);
        let rec = Identity::from_secrets(&secrets).public_record();
        let hash = blake3::hash(&rec).to_hex().to_string();
        // The Ed25519 public key of the seed 01 02 .. 20, as other implementations derive it.
        assert_eq!(
            hex(&rec[8..40]),
            "79b5562e8fe654f94078b112e8a98ba7901f853ae695bed7e0e3910bad049664"
        );
        assert_eq!(hash, GOLDEN_HASH);
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// BLAKE3 of the whole pinned record (its 1,352 bytes are too long to paste).
    const GOLDEN_HASH: &str = "409e3c55e5ea60ddcc5ac623bfe95ada674f3e5ea85df11720bc31c69190916f";
}
