use thiserror::Error;

/// Pipeline errors. A decode error never comes with partial output.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// Bad pipeline parameters.
    #[error("invalid parameters: {0}")]
    Params(String),
    /// The manifest names an erasure code this reader does not implement.
    #[error("manifest uses erasure code #{0}, which this version does not implement")]
    UnsupportedCode(u8),
    /// Fewer than k good shards of a segment.
    #[error("segment {segment}: only {good} good shards of {total}, {needed} needed")]
    NotEnoughShards {
        /// Segment index.
        segment: u32,
        /// Good shards found.
        good: usize,
        /// Shards in the segment.
        total: usize,
        /// Shards needed (k).
        needed: usize,
    },
    /// Authenticated decryption failed (wrong key, or tampered/reordered data).
    #[error("segment {0}: decryption failed (wrong key, or data tampered with or reordered)")]
    Decrypt(u32),
    /// The content key does not match the manifest.
    #[error("the content key does not match this content")]
    WrongKey,
    /// Decompression failed.
    #[error("segment {segment}: decompression failed: {why}")]
    Decompress {
        /// Segment index.
        segment: u32,
        /// Why.
        why: String,
    },
    /// The reassembled content does not hash to its address.
    #[error("content hash mismatch: expected {expected}, got {actual}")]
    ContentHash {
        /// From the manifest.
        expected: zhtp_types::Hash,
        /// Computed.
        actual: zhtp_types::Hash,
    },
    /// A manifest could not be decoded.
    #[error("invalid manifest: {0}")]
    Manifest(String),
    /// The erasure coder failed.
    #[error("erasure coding failed: {0}")]
    Erasure(String),
}
