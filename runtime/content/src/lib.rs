//! The zhtp content pipeline, one segment at a time. Pure: no I/O, no threads.
//!
//! Put: the caller cuts the content into segments (default 4 MiB) and hands each to
//! [`Encoder::encode_segment`]: LZ4 compression (kept only when smaller) → encryption (per-content
//! random key, per-segment nonce, segment index authenticated) → Reed-Solomon k+m → BLAKE3 of
//! every shard. The [`Manifest`] collects the segments' [`SegmentInfo`] and the content's BLAKE3.
//!
//! Get: [`Decoder::decode_segment`] takes whatever shards of a segment the caller found, checks
//! each against its hash, rebuilds missing or corrupt ones from any k good shards, and returns
//! the plaintext of the segment plus the shards it repaired. It never returns a wrong byte: with
//! fewer than k good shards it fails and names the segment.
//!
//! Goals: bounded memory (a segment at a time), end-to-end verification, speed close to the
//! primitives. Non-goals here: storage, networking, key distribution (later: per-recipient key
//! wrapping for the `High` and `QuantumResistant` levels).
//!
//! The seed lists "Encryption → Compression"; we compress first, since ciphertext does not
//! compress.

mod crypto;
mod erasure;
mod error;
mod manifest;
mod segment;

pub use crypto::{ContentKey, EncryptionLevel};
pub use erasure::{CodeKind, CodeParams, ErasureCode, erasure_code};
pub use error::Error;
pub use manifest::{
    EncryptionHeader, MAX_MANIFEST_LEN, Manifest, Metadata, SegmentInfo, open_private,
};
pub use segment::{Decoded, Decoder, EncodedSegment, Encoder, Params, recode};

/// Default segment size: 4 MiB.
pub const DEFAULT_SEGMENT_SIZE: u32 = 4 << 20;
/// Largest segment size accepted (bounds memory per segment on both ends).
pub const MAX_SEGMENT_SIZE: u32 = 64 << 20;
