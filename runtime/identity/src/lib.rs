//! zhtp identities and the keystore that keeps them.
//!
//! An [`Identity`] is three keys, each from its own 32-byte secret:
//! - an Ed25519 signing key: signs requests, manifests and access lists;
//! - an X25519 key: content keys are wrapped for it at the `high` level;
//! - an X-Wing key (ML-KEM-768 and X25519 combined, draft-connolly-cfrg-xwing-kem-06): content
//!   keys are wrapped for it at the `quantum` level, so that breaking either half alone reveals
//!   nothing.
//!
//! [`public`] is the signed record of an identity's public keys that others can check.
//! [`wrap`] wraps a content key for one identity (X25519 for `high`, X-Wing for `quantum`).
//! [`sealed`] turns an identity into bytes that are safe to keep on disk: its secrets sealed
//! under a passphrase (Argon2id, then XChaCha20-Poly1305 with the header as associated data).
//! The layout and the limits on the key-derivation parameters are documented there. This crate
//! does no I/O: where the sealed bytes live is the node's business.

mod error;
pub mod public;
pub mod sealed;
pub mod wrap;

pub use error::Error;
pub use sealed::{KdfParams, seal, unseal};

use ed25519_dalek::SigningKey;
use x_wing::{Decapsulator as _, KeyExport as _};
use x25519_dalek::StaticSecret;
use zeroize::Zeroizing;

/// Bytes of one secret.
pub const SECRET_LEN: usize = 32;

/// Bytes of the X-Wing public (encapsulation) key.
pub const KEM_PUBLIC_LEN: usize = x_wing::ENCAPSULATION_KEY_SIZE;

/// An identity's private keys. Secrets are wiped from memory when it is dropped.
pub struct Identity {
    signing: SigningKey,
    exchange: StaticSecret,
    kem: x_wing::DecapsulationKey,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secrets: an identity ends up in logs through `{:?}` of what holds it.
        f.debug_struct("Identity")
            .field("id", &self.public().id())
            .finish_non_exhaustive()
    }
}

/// An identity's public keys: what others need to verify its signatures and wrap keys for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKeys {
    /// Ed25519 verifying key.
    pub signing: [u8; 32],
    /// X25519 public key.
    pub exchange: [u8; 32],
    /// X-Wing encapsulation key (ML-KEM-768's 1,184 bytes, then X25519's 32).
    pub kem: Vec<u8>,
}

impl PublicKeys {
    /// The identity's name on the network: its Ed25519 verifying key in hex (64 characters).
    pub fn id(&self) -> String {
        hex(&self.signing)
    }
}

/// Checks an Ed25519 signature by the identity `id` (its verifying key), strictly (no
/// malleable or small-order forms).
pub fn verify(id: &[u8; 32], msg: &[u8], sig: &[u8]) -> Result<(), Error> {
    let vk = ed25519_dalek::VerifyingKey::from_bytes(id).map_err(|_| Error::BadSignature)?;
    let sig = ed25519_dalek::Signature::from_slice(sig).map_err(|_| Error::BadSignature)?;
    vk.verify_strict(msg, &sig).map_err(|_| Error::BadSignature)
}

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Identity {
    /// A new identity from the operating system's random source.
    pub fn generate() -> Result<Self, Error> {
        let mut secrets = Zeroizing::new([0u8; 3 * SECRET_LEN]);
        getrandom::fill(secrets.as_mut_slice())?;
        Ok(Self::from_secrets(&secrets))
    }

    /// The identity whose secrets are, in order, the Ed25519 seed, the X25519 secret and the
    /// X-Wing seed.
    pub(crate) fn from_secrets(secrets: &[u8; 3 * SECRET_LEN]) -> Self {
        // Each part is wiped when dropped; the key types wipe their own copies.
        let part = |i: usize| -> Zeroizing<[u8; SECRET_LEN]> {
            let mut s = Zeroizing::new([0u8; SECRET_LEN]);
            s.copy_from_slice(&secrets[i * SECRET_LEN..(i + 1) * SECRET_LEN]);
            s
        };
        Self {
            signing: SigningKey::from_bytes(&part(0)),
            exchange: StaticSecret::from(*part(1)),
            kem: x_wing::DecapsulationKey::from(*part(2)),
        }
    }

    /// The secrets [`Self::from_secrets`] takes, in its order.
    pub(crate) fn secrets(&self) -> Zeroizing<[u8; 3 * SECRET_LEN]> {
        let mut out = Zeroizing::new([0u8; 3 * SECRET_LEN]);
        out[..SECRET_LEN].copy_from_slice(self.signing.as_bytes());
        out[SECRET_LEN..2 * SECRET_LEN].copy_from_slice(self.exchange.as_bytes());
        out[2 * SECRET_LEN..].copy_from_slice(self.kem.as_bytes());
        out
    }

    /// The public keys.
    pub fn public(&self) -> PublicKeys {
        PublicKeys {
            signing: self.signing.verifying_key().to_bytes(),
            exchange: x25519_dalek::PublicKey::from(&self.exchange).to_bytes(),
            kem: self.kem.encapsulation_key().to_bytes().to_vec(),
        }
    }

    /// An Ed25519 signature of `msg`.
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        use ed25519_dalek::Signer as _;
        self.signing.sign(msg).to_bytes()
    }

    /// The Ed25519 signing key.
    pub fn signing_key(&self) -> &SigningKey {
        &self.signing
    }

    /// The X25519 secret.
    pub fn exchange_secret(&self) -> &StaticSecret {
        &self.exchange
    }

    /// The X-Wing decapsulation key.
    pub fn kem(&self) -> &x_wing::DecapsulationKey {
        &self.kem
    }
}
