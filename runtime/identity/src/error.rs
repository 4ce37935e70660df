use crate::sealed::KdfParams;

/// What can go wrong with identities and the keystore.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The passphrase does not open the file (or the file was altered: the two cannot be told
    /// apart, by design).
    #[error("wrong passphrase (or the keystore file was altered)")]
    WrongPassphrase,
    /// Not a zhtp keystore file.
    #[error("not a zhtp keystore file ({0})")]
    NotAKeystore(&'static str),
    /// A keystore file of a version this build does not read.
    #[error("keystore file version {0}; this build reads version 1")]
    UnsupportedVersion(u8),
    /// Key-derivation parameters below the floor: nothing is sealed that cheaply, and a file
    /// sealed that cheaply (by another tool, or handed over by someone) is not accepted. (The
    /// parameters are authenticated: editing them in a file only makes it unreadable.)
    #[error("key-derivation parameters {found} are below the floor {floor}")]
    WeakParams {
        /// What the file or caller asked for.
        found: KdfParams,
        /// The least accepted.
        floor: KdfParams,
    },
    /// Key-derivation parameters above the ceiling or its work budget: refused before any work,
    /// so a hostile file cannot make opening it take more than a few times the default's time
    /// and memory.
    #[error(
        "key-derivation parameters {found} are above the ceiling {ceiling} or ask for more than 4 times the default's work"
    )]
    ExcessiveParams {
        /// What the file asked for.
        found: KdfParams,
        /// The most accepted.
        ceiling: KdfParams,
    },
    /// Not a valid public record (see [`crate::public`]).
    #[error("not a valid zhtp public identity: {0}")]
    BadPublicRecord(&'static str),
    /// A wrapped key that is malformed, or cannot be made for that recipient.
    #[error("bad wrapped key: {0}")]
    BadWrap(&'static str),
    /// The wrapped key is for another identity.
    #[error("the key is wrapped for another identity")]
    NotForMe,
    /// The wrapped key does not open with this identity's keys: altered, or not really made
    /// for it.
    #[error("the wrapped key does not open (altered, or not made for this identity)")]
    Unwrap,
    /// A signature that is not the identity's.
    #[error("the signature is not the identity's")]
    BadSignature,
    /// The operating system's random source failed.
    #[error("no randomness: {0}")]
    Random(#[from] getrandom::Error),
    /// Argon2 refused to run.
    #[error("key derivation failed: {0}")]
    Kdf(#[from] argon2::Error),
}
