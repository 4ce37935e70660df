//! Encoding and decoding of one segment.

use zhtp_types::{Hash, StorageTier};

use crate::crypto::{Cipher, ContentKey, EncryptionLevel, TAG_LEN};
use crate::erasure::{CodeParams, ErasureCode, erasure_code};
use crate::error::Error;
use crate::manifest::{EncryptionHeader, Manifest, SegmentInfo};

/// Shards are padded to a multiple of this: reed-solomon-simd needs even lengths and is fastest
/// at multiples of 64.
const SHARD_ALIGN: usize = 64;

/// The length of each shard of a segment whose stored bytes are `stored_len` long, split into
/// `k` data shards. A manifest's `shard_len` must be exactly this ([`crate::Manifest::validate`]).
pub(crate) fn shard_len(stored_len: usize, k: usize) -> usize {
    stored_len.div_ceil(k).max(1).next_multiple_of(SHARD_ALIGN)
}

thread_local! {
    /// LZ4's output for the segment being encoded on this thread (as large as the largest
    /// segment's bound, so about one segment per encoding thread).
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Pipeline parameters of a put.
#[derive(Clone, Debug)]
pub struct Params {
    /// Storage tier (recorded in the manifest).
    pub tier: StorageTier,
    /// Encryption level.
    pub encryption: EncryptionLevel,
    /// Erasure code.
    pub code: CodeParams,
    /// Plaintext bytes per segment.
    pub segment_size: u32,
}

impl Params {
    /// Checks sizes and that the encryption level is implemented.
    pub fn validate(&self) -> Result<(), Error> {
        self.code.validate()?;
        self.code.kind()?;
        if self.segment_size < 1024 || self.segment_size > crate::MAX_SEGMENT_SIZE {
            return Err(Error::Params(format!(
                "segment size {} must be between 1 KiB and {} MiB",
                self.segment_size,
                crate::MAX_SEGMENT_SIZE >> 20
            )));
        }
        Ok(())
    }
}

/// One encoded segment: its manifest entry and its k + m shards.
#[derive(Debug)]
pub struct EncodedSegment {
    /// Manifest entry.
    pub info: SegmentInfo,
    /// k data shards, contiguous (`k × shard_len` bytes).
    data: Vec<u8>,
    /// m parity shards.
    parity: Vec<Vec<u8>>,
}

impl EncodedSegment {
    /// Shard `i` (data shards first).
    pub fn shard(&self, i: usize) -> &[u8] {
        let len = self.info.shard_len as usize;
        let k = self.data.len() / len.max(1);
        if i < k {
            &self.data[i * len..(i + 1) * len]
        } else {
            &self.parity[i - k]
        }
    }

    /// `(hash, bytes)` of every shard.
    pub fn shards(&self) -> impl Iterator<Item = (Hash, &[u8])> {
        self.info
            .shards
            .iter()
            .enumerate()
            .map(|(i, h)| (*h, self.shard(i)))
    }
}

/// Encodes the segments of one content.
pub struct Encoder {
    params: Params,
    cipher: Option<Cipher>,
    key_check: Option<Hash>,
    code: Box<dyn ErasureCode>,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

fn hash(bytes: &[u8]) -> Hash {
    // Shards are large: hash them with SIMD-friendly chunking (blake3 is ~4.7 GB/s here).
    Hash(*blake3::hash(bytes).as_bytes())
}

impl Encoder {
    /// An encoder for `params`; `key` is required exactly when the level encrypts.
    pub fn new(params: Params, key: Option<&ContentKey>) -> Result<Self, Error> {
        params.validate()?;
        let cipher = match (params.encryption, key) {
            (EncryptionLevel::None, _) => None,
            (level, Some(k)) => Cipher::new(level, k),
            (_, None) => return Err(Error::Params("this encryption level needs a key".into())),
        };
        let key_check = cipher.as_ref().and(key).map(ContentKey::check);
        let code = erasure_code(params.code)?;
        Ok(Self {
            params,
            cipher,
            key_check,
            code,
        })
    }

    /// The parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Compresses (if that helps), encrypts, erasure-codes and hashes segment `index`.
    pub fn encode_segment(&self, index: u32, plain: &[u8]) -> Result<EncodedSegment, Error> {
        if plain.len() > self.params.segment_size as usize {
            return Err(Error::Params(format!(
                "segment {index} is {} bytes, larger than the segment size",
                plain.len()
            )));
        }
        let k = self.params.code.data as usize;
        // One buffer holds the stored bytes and then the padded data shards. It is filled by
        // copying, not zeroed first (the zeroing was 7% of a put's CPU): LZ4 writes into a
        // scratch buffer that each thread keeps, and what is kept is copied over.
        let mut buf = Vec::with_capacity(plain.len() + TAG_LEN + k * SHARD_ALIGN);
        let compressed = SCRATCH.with_borrow_mut(|scratch| {
            let bound = lz4_flex::block::get_maximum_output_size(plain.len());
            if scratch.len() < bound {
                scratch.resize(bound, 0);
            }
            match lz4_flex::block::compress_into(plain, scratch) {
                Ok(n) if n < plain.len() => {
                    buf.extend_from_slice(&scratch[..n]);
                    true
                }
                _ => false,
            }
        });
        if !compressed {
            buf.extend_from_slice(plain);
        }
        if let Some(c) = &self.cipher {
            c.seal(index, compressed, &mut buf)?;
        }
        coded(buf, k, &*self.code, plain.len() as u32, compressed)
    }

    /// The manifest of a content whose segments were all encoded.
    pub fn manifest(
        &self,
        content_hash: Hash,
        size: u64,
        segments: Vec<SegmentInfo>,
        metadata: crate::Metadata,
    ) -> Manifest {
        Manifest {
            version: crate::manifest::MANIFEST_VERSION,
            content_hash,
            size,
            tier: self.params.tier,
            code: self.params.code,
            segment_size: self.params.segment_size,
            encryption: EncryptionHeader {
                level: self.params.encryption,
                key_check: self.key_check,
                readers: Vec::new(),
                private: Vec::new(),
                access_version: 0,
                owner_sig: Vec::new(),
            },
            segments,
            metadata,
        }
    }
}

/// A segment as stored: `buf` (its stored bytes: compressed and sealed, exactly) split into
/// `k` zero-padded data shards of [`shard_len`], `code`'s parity, and every shard's hash.
fn coded(
    mut buf: Vec<u8>,
    k: usize,
    code: &dyn ErasureCode,
    plain_len: u32,
    compressed: bool,
) -> Result<EncodedSegment, Error> {
    let stored_len = buf.len();
    let shard_len = shard_len(stored_len, k);
    buf.resize(shard_len * k, 0);
    let data: Vec<&[u8]> = buf.chunks_exact(shard_len).collect();
    let parity = code.encode(&data)?;
    let shards = data
        .iter()
        .map(|d| hash(d))
        .chain(parity.iter().map(|p| hash(p)))
        .collect();
    Ok(EncodedSegment {
        info: SegmentInfo {
            plain_len,
            compressed,
            stored_len: stored_len as u32,
            shard_len: shard_len as u32,
            shards,
        },
        data: buf,
        parity,
    })
}

/// Slots rebuilt from the others: `(index, bytes)`.
type Rebuilt = Vec<(usize, Vec<u8>)>;

/// Sets to `None` every shard whose bytes do not hash to `info`'s.
fn drop_mismatched(info: &SegmentInfo, shards: &mut [Option<Vec<u8>>]) {
    for (i, slot) in shards.iter_mut().enumerate() {
        if slot.as_deref().is_some_and(|b| hash(b) != info.shards[i]) {
            *slot = None;
        }
    }
}

/// The stored bytes of segment `index` from shards already checked against `info`, and the
/// slots rebuilt on the way: with a data shard missing, every absent slot (data or parity) is
/// rebuilt from any `k`, checked against its hash and returned, for the caller to write back.
/// Fails, naming the segment, with fewer than `k`.
fn stored_bytes(
    index: u32,
    info: &SegmentInfo,
    code: &dyn ErasureCode,
    k: usize,
    shards: &mut [Option<Vec<u8>>],
) -> Result<(Vec<u8>, Rebuilt), Error> {
    let total = info.shards.len();
    let good = shards.iter().filter(|s| s.is_some()).count();
    if good < k {
        return Err(Error::NotEnoughShards {
            segment: index,
            good,
            total,
            needed: k,
        });
    }
    // Parity is only needed when a data shard is missing.
    let missing: Vec<usize> = (0..total).filter(|&i| shards[i].is_none()).collect();
    let mut repaired = Vec::new();
    if shards[..k].iter().any(Option::is_none) {
        code.reconstruct(shards)?;
        for i in missing {
            let bytes = shards[i].clone().unwrap_or_default();
            // A rebuilt shard must hash right; if not, the survivors were inconsistent.
            if hash(&bytes) != info.shards[i] {
                return Err(Error::Erasure(format!(
                    "segment {index}: shard {i} rebuilt wrong"
                )));
            }
            repaired.push((i, bytes));
        }
    }
    let mut buf = Vec::with_capacity(k * info.shard_len as usize);
    for s in shards.iter().take(k) {
        buf.extend_from_slice(s.as_deref().unwrap_or_default());
    }
    buf.truncate(info.stored_len as usize);
    Ok((buf, repaired))
}

/// Re-codes segment `index` from the erasure code `from` to `to` without its key: the stored
/// bytes (compressed and encrypted as they are) are rebuilt from any k good shards and split
/// again, so a migration between tiers needs no reader. Shards that do not match `info`'s
/// hashes are dropped first; fails, naming the segment, with fewer than k good ones.
pub fn recode(
    index: u32,
    info: &SegmentInfo,
    from: CodeParams,
    shards: &mut [Option<Vec<u8>>],
    to: CodeParams,
) -> Result<EncodedSegment, Error> {
    to.validate()?;
    let total = from.total();
    if shards.len() != total || info.shards.len() != total {
        return Err(Error::Params(format!(
            "segment {index}: {} shards for a {}+{} code",
            shards.len(),
            from.data,
            from.parity
        )));
    }
    drop_mismatched(info, shards);
    let (buf, _) = stored_bytes(
        index,
        info,
        &*erasure_code(from)?,
        from.data as usize,
        shards,
    )?;
    if buf.len() != info.stored_len as usize {
        return Err(Error::Erasure(format!(
            "segment {index}: {} stored bytes, the manifest says {}",
            buf.len(),
            info.stored_len
        )));
    }
    coded(
        buf,
        to.data as usize,
        &*erasure_code(to)?,
        info.plain_len,
        info.compressed,
    )
}

/// A decoded segment.
#[derive(Debug)]
pub struct Decoded {
    /// The segment's plaintext.
    pub plain: Vec<u8>,
    /// Shards rebuilt because a data shard was missing or corrupt: `(index, bytes)` for every
    /// slot that was absent (including parity the caller had not fetched), to write back.
    pub repaired: Vec<(usize, Vec<u8>)>,
}

/// Decodes the segments of one content.
pub struct Decoder {
    manifest: Manifest,
    cipher: Option<Cipher>,
    code: Box<dyn ErasureCode>,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("content", &self.manifest.content_hash)
            .finish_non_exhaustive()
    }
}

impl Decoder {
    /// A decoder for `manifest`; `key` is required when it is encrypted, and must match.
    pub fn new(manifest: Manifest, key: Option<&ContentKey>) -> Result<Self, Error> {
        manifest.validate()?;
        let cipher = match (manifest.encryption.level, key) {
            (EncryptionLevel::None, _) => None,
            (level, Some(k)) => {
                if Some(k.check()) != manifest.encryption.key_check {
                    return Err(Error::WrongKey);
                }
                Cipher::new(level, k)
            }
            (_, None) => return Err(Error::WrongKey),
        };
        let code = erasure_code(manifest.code)?;
        Ok(Self {
            manifest,
            cipher,
            code,
        })
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Whether `bytes` is shard `shard` of segment `index`.
    pub fn check_shard(&self, index: u32, shard: usize, bytes: &[u8]) -> bool {
        self.manifest
            .segments
            .get(index as usize)
            .and_then(|s| s.shards.get(shard))
            .is_some_and(|h| *h == hash(bytes))
    }

    fn segment(&self, index: u32, slots: usize) -> Result<&SegmentInfo, Error> {
        let info = self
            .manifest
            .segments
            .get(index as usize)
            .ok_or_else(|| Error::Params(format!("no segment {index}")))?;
        if slots != info.shards.len() {
            return Err(Error::Params(format!(
                "segment {index}: expected {} shard slots",
                info.shards.len()
            )));
        }
        Ok(info)
    }

    /// Decodes segment `index` from whatever shards are present (`None` = not available).
    /// Verifies every present shard against its hash and drops bad ones (setting them to
    /// `None`); rebuilds from any k good shards. Fails, naming the segment, with fewer.
    pub fn decode_segment(
        &self,
        index: u32,
        shards: &mut [Option<Vec<u8>>],
    ) -> Result<Decoded, Error> {
        drop_mismatched(self.segment(index, shards.len())?, shards);
        self.decode_verified_segment(index, shards)
    }

    /// [`Decoder::decode_segment`] for shards the caller has already checked against this
    /// segment's hashes (a store or a fetch that verifies every shard it returns by the hash
    /// it was asked for): hashing them again was a tenth of a get's CPU. Rebuilt shards are
    /// still checked, and a wrong shard passed in anyway fails the AEAD (`standard`) or the
    /// content hash that every get checks.
    pub fn decode_verified_segment(
        &self,
        index: u32,
        shards: &mut [Option<Vec<u8>>],
    ) -> Result<Decoded, Error> {
        let info = self.segment(index, shards.len())?;
        let k = self.manifest.code.data as usize;
        let (mut buf, repaired) = stored_bytes(index, info, &*self.code, k, shards)?;
        if let Some(c) = &self.cipher {
            c.open(index, info.compressed, &mut buf)?;
        }
        let plain = if info.compressed {
            let mut out = vec![0u8; info.plain_len as usize];
            let n = lz4_flex::block::decompress_into(&buf, &mut out).map_err(|e| {
                Error::Decompress {
                    segment: index,
                    why: e.to_string(),
                }
            })?;
            if n != out.len() {
                return Err(Error::Decompress {
                    segment: index,
                    why: format!("{n} bytes, expected {}", out.len()),
                });
            }
            out
        } else {
            buf
        };
        if plain.len() != info.plain_len as usize {
            return Err(Error::Decompress {
                segment: index,
                why: format!("{} bytes, expected {}", plain.len(), info.plain_len),
            });
        }
        Ok(Decoded { plain, repaired })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::erasure::CodeKind;
    use proptest::prelude::*;

    fn params(level: EncryptionLevel, kind: CodeKind, k: u8, m: u8) -> Params {
        Params {
            tier: StorageTier::Warm,
            encryption: level,
            code: CodeParams::new(kind, k, m).unwrap(),
            segment_size: 64 * 1024,
        }
    }

    /// Encodes `data` segment by segment and returns the manifest plus every segment's shards.
    fn put(
        p: &Params,
        key: Option<&ContentKey>,
        data: &[u8],
    ) -> (Manifest, Vec<Vec<Option<Vec<u8>>>>) {
        let enc = Encoder::new(p.clone(), key).unwrap();
        let mut infos = Vec::new();
        let mut all = Vec::new();
        for (i, chunk) in data.chunks(p.segment_size as usize).enumerate() {
            let seg = enc.encode_segment(i as u32, chunk).unwrap();
            all.push(seg.shards().map(|(_, b)| Some(b.to_vec())).collect());
            infos.push(seg.info);
        }
        let h = Hash(*blake3::hash(data).as_bytes());
        (
            enc.manifest(h, data.len() as u64, infos, Default::default()),
            all,
        )
    }

    fn get(
        m: &Manifest,
        key: Option<&ContentKey>,
        shards: &mut [Vec<Option<Vec<u8>>>],
    ) -> Result<Vec<u8>, Error> {
        let dec = Decoder::new(m.clone(), key)?;
        let mut out = Vec::new();
        for (i, s) in shards.iter_mut().enumerate() {
            out.extend(dec.decode_segment(i as u32, s)?.plain);
        }
        Ok(out)
    }

    /// A content re-coded from 4+2 to 3+3 and to 8+4 (a data shard of each segment lost and a
    /// parity shard lying first) reads back byte for byte with its key, which the re-coding never saw; a shard that
    /// lies about its bytes is dropped, and too few good shards fail by segment.
    #[test]
    fn recode_moves_content_between_codes_without_its_key() {
        let key = ContentKey::random().unwrap();
        let from = params(EncryptionLevel::Standard, CodeKind::ReedSolomonSimd, 4, 2);
        let data = sample(200_000);
        let (m, mut all) = put(&from, Some(&key), &data);
        for to in [(3u8, 3u8), (8, 4)] {
            let to = CodeParams::new(CodeKind::ReedSolomonSimd, to.0, to.1).unwrap();
            let mut recoded = m.clone();
            recoded.code = to;
            recoded.segments.clear();
            let mut shards = Vec::new();
            for (i, (info, seg)) in m.segments.iter().zip(&all).enumerate() {
                let mut slots = seg.clone();
                slots[0] = None;
                slots[5] = Some(vec![7; info.shard_len as usize]); // a lying parity shard
                let r = recode(i as u32, info, m.code, &mut slots, to).unwrap();
                shards.push(r.shards().map(|(_, b)| Some(b.to_vec())).collect());
                recoded.segments.push(r.info);
            }
            recoded.validate().unwrap();
            assert_eq!(get(&recoded, Some(&key), &mut shards).unwrap(), data);
        }
        let mut too_few = all[0].clone();
        (too_few[0], too_few[1], too_few[2]) = (None, None, None);
        let to = CodeParams::new(CodeKind::ReedSolomonSimd, 2, 2).unwrap();
        assert!(matches!(
            recode(0, &m.segments[0], m.code, &mut too_few, to),
            Err(Error::NotEnoughShards {
                segment: 0,
                good: 3,
                needed: 4,
                ..
            })
        ));
        all.clear();
    }

    fn sample(len: usize) -> Vec<u8> {
        // Half compressible text, half pseudo-random bytes.
        let mut x = 0x9e3779b97f4a7c15u64;
        (0..len)
            .map(|i| {
                if (i / 4096) % 2 == 0 {
                    b"zhtp stores things "[i % 19]
                } else {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                }
            })
            .collect()
    }

    #[test]
    fn roundtrip_every_level_and_code() {
        let data = sample(300_000);
        let key = ContentKey::random().unwrap();
        for kind in [CodeKind::ReedSolomonErasure, CodeKind::ReedSolomonSimd] {
            for (level, key) in [
                (EncryptionLevel::None, None),
                (EncryptionLevel::Standard, Some(&key)),
                (EncryptionLevel::High, Some(&key)),
                (EncryptionLevel::QuantumResistant, Some(&key)),
            ] {
                for (k, m) in [(4, 2), (16, 8)] {
                    let (man, mut shards) = put(&params(level, kind, k, m), key, &data);
                    assert_eq!(Manifest::decode(&man.encode()).unwrap(), man);
                    assert_eq!(get(&man, key, &mut shards).unwrap(), data);
                }
            }
        }
    }

    #[test]
    fn lost_and_corrupt_shards_are_rebuilt_and_reported() {
        let data = sample(200_000);
        let key = ContentKey::random().unwrap();
        let p = params(EncryptionLevel::Standard, CodeKind::ReedSolomonSimd, 4, 2);
        let (man, mut shards) = put(&p, Some(&key), &data);
        let original = shards[1].clone();
        shards[1][0] = None; // lost
        if let Some(b) = shards[1][3].as_mut() {
            b[10] ^= 1; // corrupt
        }
        let dec = Decoder::new(man.clone(), Some(&key)).unwrap();
        let d = dec.decode_segment(1, &mut shards[1]).unwrap();
        let fixed: Vec<usize> = d.repaired.iter().map(|(i, _)| *i).collect();
        assert_eq!(fixed, vec![0, 3]);
        for (i, bytes) in d.repaired {
            assert_eq!(Some(bytes), original[i]);
        }
        // One more loss than m: an error naming the segment, never wrong bytes.
        shards[2][0] = None;
        shards[2][1] = None;
        shards[2][2] = None;
        let err = dec.decode_segment(2, &mut shards[2]).unwrap_err();
        assert!(
            matches!(
                err,
                Error::NotEnoughShards {
                    segment: 2,
                    good: 3,
                    needed: 4,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().starts_with("segment 2:"));
    }

    #[test]
    fn segments_cannot_be_reordered_or_decrypted_with_another_key() {
        let data = sample(200_000);
        let key = ContentKey::random().unwrap();
        let p = params(EncryptionLevel::Standard, CodeKind::ReedSolomonSimd, 4, 2);
        let (mut man, mut shards) = put(&p, Some(&key), &data);
        // Swap segments 0 and 1 everywhere (shards and manifest): hashes match, AEAD does not.
        man.segments.swap(0, 1);
        shards.swap(0, 1);
        assert!(matches!(
            get(&man, Some(&key), &mut shards),
            Err(Error::Decrypt(0))
        ));
        let other = ContentKey::random().unwrap();
        assert!(matches!(
            Decoder::new(man, Some(&other)),
            Err(Error::WrongKey)
        ));
    }

    #[test]
    fn a_reader_refuses_an_unknown_code() {
        let data = sample(10_000);
        let (mut man, _) = put(
            &params(EncryptionLevel::None, CodeKind::ReedSolomonSimd, 4, 2),
            None,
            &data,
        );
        man.code.code = 7; // written by a future version with a code we do not implement
        let bytes = man.encode();
        assert!(matches!(
            Manifest::decode(&bytes),
            Err(Error::UnsupportedCode(7))
        ));
        assert!(matches!(
            Decoder::new(man, None),
            Err(Error::UnsupportedCode(7))
        ));
    }

    #[test]
    fn shards_of_one_code_are_never_misdecoded_by_the_other() {
        let data = sample(100_000);
        let (mut man, mut shards) = put(
            &params(EncryptionLevel::None, CodeKind::ReedSolomonErasure, 4, 2),
            None,
            &data,
        );
        // A manifest that lies about the code, with data shards lost: the rebuilt shards fail
        // their hashes, so the decode errors instead of returning wrong bytes.
        man.code.code = CodeKind::ReedSolomonSimd.id();
        shards[0][0] = None;
        assert!(get(&man, None, &mut shards).is_err());
    }

    /// `high` and `quantum` encrypt with XChaCha20-Poly1305, `standard` with ChaCha20-Poly1305:
    /// the same key under a manifest whose level was changed does not decrypt.
    #[test]
    fn the_level_chooses_the_cipher() {
        let data = sample(100_000);
        let key = ContentKey::random().unwrap();
        for (from, to) in [
            (EncryptionLevel::Standard, EncryptionLevel::High),
            (EncryptionLevel::High, EncryptionLevel::Standard),
        ] {
            let (mut man, mut shards) = put(
                &params(from, CodeKind::ReedSolomonSimd, 4, 2),
                Some(&key),
                &data,
            );
            man.encryption.level = to;
            assert!(matches!(
                get(&man, Some(&key), &mut shards),
                Err(Error::Decrypt(0))
            ));
        }
        let (a, _) = put(
            &params(EncryptionLevel::High, CodeKind::ReedSolomonSimd, 4, 2),
            Some(&key),
            &data,
        );
        let (b, _) = put(
            &params(
                EncryptionLevel::QuantumResistant,
                CodeKind::ReedSolomonSimd,
                4,
                2,
            ),
            Some(&key),
            &data,
        );
        assert_eq!(a.segments, b.segments, "one segment cipher for both");
    }

    #[test]
    fn incompressible_data_is_stored_uncompressed() {
        let data: Vec<u8> = sample(8192)[4096..].to_vec(); // the random half
        let (man, _) = put(
            &params(EncryptionLevel::None, CodeKind::ReedSolomonSimd, 4, 2),
            None,
            &data,
        );
        assert!(!man.segments[0].compressed);
        let text = vec![b'a'; 8192];
        let (man, _) = put(
            &params(EncryptionLevel::None, CodeKind::ReedSolomonSimd, 4, 2),
            None,
            &text,
        );
        assert!(man.segments[0].compressed);
        assert!(man.segments[0].stored_len < 200);
    }

    #[test]
    fn a_manifest_whose_numbers_disagree_is_refused_before_anything_is_allocated() {
        let p = params(EncryptionLevel::None, CodeKind::ReedSolomonSimd, 4, 2);
        let (man, _) = put(&p, None, &sample(3 * 65536 + 100));
        man.validate().unwrap();
        let refused = |what: &str, f: &dyn Fn(&mut Manifest)| {
            let mut m = man.clone();
            f(&mut m);
            let e = m.validate().expect_err(what);
            assert!(
                matches!(&e, Error::Manifest(why) if why.contains("inconsistent")),
                "{what}: {e}"
            );
            // The same from bytes, as a reader gets it from the network.
            assert!(Manifest::decode(&m.encode()).is_err(), "{what}");
        };
        // The attack of the hardening issue: k = 254 with 64 MiB shards would make a reader
        // reserve 16 GiB for one segment.
        refused("giant shards", &|m| {
            m.code.data = 254;
            m.code.parity = 1;
            for s in &mut m.segments {
                s.shard_len = 64 << 20;
                s.shards.resize(255, Hash([0; 32]));
            }
        });
        refused("shards longer than the stored bytes", &|m| {
            m.segments[0].shard_len += 64
        });
        refused("more stored than plaintext", &|m| {
            m.segments[0].stored_len = m.segments[0].plain_len + 1
        });
        refused("an empty trailing segment", &|m| {
            let mut s = m.segments[0].clone();
            s.plain_len = 0;
            m.segments.push(s);
        });
        refused("a missing shard hash", &|m| {
            m.segments[1].shards.pop();
        });
    }

    #[test]
    fn garbage_manifests_are_refused() {
        assert!(Manifest::decode(&[]).is_err());
        assert!(Manifest::decode(&[2, 0, 1, 2, 3]).is_err()); // version 2
        assert!(Manifest::decode(&[1, 0xff, 0xff, 0xff]).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn any_content_any_two_losses_roundtrip(len in 0usize..200_000, lost in (0usize..6, 0usize..6), enc in any::<bool>()) {
            let data = sample(len);
            let key = ContentKey::random().unwrap();
            let (level, key) = if enc { (EncryptionLevel::Standard, Some(&key)) } else { (EncryptionLevel::None, None) };
            let (man, mut shards) = put(&params(level, CodeKind::ReedSolomonSimd, 4, 2), key, &data);
            for seg in shards.iter_mut() {
                seg[lost.0] = None;
                seg[lost.1] = None;
            }
            prop_assert_eq!(get(&man, key, &mut shards).unwrap(), data);
        }
    }
}
