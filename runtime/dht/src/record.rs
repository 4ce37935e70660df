//! Signed DHT records.
//!
//! A record's value is an [`Envelope`]: the publisher's public key, a sequence number, an expiry,
//! the payload and an Ed25519 signature over all of it *and the record key*, so a valid value
//! cannot be replayed under another key. Every node checks a record before it stores or serves
//! it: size of key and value, decodable envelope, publisher matching the record's `publisher`
//! field, signature, and expiry. What the payload must be (a manifest for its content hash) is
//! checked by the [`Validator`] the application gives.
//!
//! A record belongs to its publisher: once a node holds a live record under a key, only the same
//! publisher can replace it ([`may_replace`]), and only with a higher sequence number. Another
//! key's validly signed record for the same key is refused (first publisher wins), and so is a
//! replay of an older version.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use libp2p::PeerId;
use libp2p::identity::{Keypair, PublicKey};
use libp2p::kad::{Record, RecordKey};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Longest record key.
pub const MAX_KEY: usize = 64;
/// Largest record value: a manifest of ~15 GiB at 4+2 in 4 MiB segments, or a smart contract's
/// code at the host's 1 MiB limit with room for its envelope (key, signature, times).
pub const MAX_VALUE: usize = (1 << 20) + (4 << 10);
/// Longest a record may live: its signed expiry is at most this far ahead. Beyond it, the
/// expiry is refused rather than trusted (a time of `u64::MAX` seconds cannot even be turned
/// into an `Instant`).
pub const MAX_TTL: Duration = Duration::from_secs(2 * 366 * 24 * 3600);

// v2: the sequence number is signed too. Envelopes of v1 (no sequence number) no longer open, so
// a node drops them when it loads its record store.
const DOMAIN: &[u8] = b"zhtp/record/v2\0";

/// Checks the payload of a signed record for its key and its publisher (e.g. that a manifest
/// record holds a manifest of the content it is filed under, or that a record about a node is
/// published by that node: a payload alone can be replayed in anyone's envelope).
pub type Validator =
    std::sync::Arc<dyn Fn(&[u8], &[u8], &PeerId) -> Result<(), String> + Send + Sync>;

/// Why a record was refused.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecordError {
    /// Key longer than [`MAX_KEY`].
    #[error("record key of {0} bytes exceeds {MAX_KEY}")]
    KeyTooLong(usize),
    /// Value larger than [`MAX_VALUE`].
    #[error("record value of {0} bytes exceeds {MAX_VALUE}")]
    ValueTooLarge(usize),
    /// Not an envelope.
    #[error("record value is not a signed envelope: {0}")]
    Malformed(String),
    /// The signature does not verify.
    #[error("record signature does not verify")]
    BadSignature,
    /// The record's publisher field names someone else than the signer.
    #[error("record publisher {claimed} is not its signer {signer}")]
    WrongPublisher {
        /// Publisher field (boxed: two peer ids would make every `Result` of this crate large).
        claimed: Box<PeerId>,
        /// Signer.
        signer: Box<PeerId>,
    },
    /// Past its expiry.
    #[error("record expired")]
    Expired,
    /// Expires further ahead than [`MAX_TTL`].
    #[error("record expiry is more than {} days ahead", MAX_TTL.as_secs() / 86_400)]
    ExpiryTooFar,
    /// The payload is not what this key must hold.
    #[error("record payload refused: {0}")]
    Payload(String),
    /// A live record of another publisher is held under this key.
    #[error("record key belongs to {owner}, not to {publisher}")]
    NotOwner {
        /// Publisher of the record held.
        owner: Box<PeerId>,
        /// Publisher of the refused one.
        publisher: Box<PeerId>,
    },
    /// Not newer than the record held (same publisher).
    #[error("record sequence {got} does not supersede the held {held}")]
    Stale {
        /// Sequence number held.
        held: u64,
        /// Sequence number offered.
        got: u64,
    },
}

/// The signed value of a record.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Envelope {
    /// The publisher's public key, protobuf-encoded (libp2p's encoding).
    pub publisher: Vec<u8>,
    /// Version of the record under its key, chosen by the publisher; higher replaces lower.
    pub seq: u64,
    /// Expiry, seconds since the Unix epoch.
    pub expires: u64,
    /// What is published.
    pub payload: Vec<u8>,
    /// Signature over domain, key, sequence number, expiry and payload.
    pub signature: Vec<u8>,
}

fn signed_bytes(key: &[u8], seq: u64, expires: u64, payload: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(DOMAIN.len() + 2 + key.len() + 16 + payload.len());
    m.extend_from_slice(DOMAIN);
    m.extend_from_slice(&(key.len() as u16).to_be_bytes());
    m.extend_from_slice(key);
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(&expires.to_be_bytes());
    m.extend_from_slice(payload);
    m
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A sequence number that grows with time: milliseconds since the Unix epoch. What
/// [`crate::Dht::publish`] uses, so a publisher's later version supersedes its earlier one
/// without keeping a counter.
pub fn time_seq() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Builds a signed record of `payload` under `key`, version `seq`, valid for `ttl`.
pub fn seal(
    keypair: &Keypair,
    key: &[u8],
    payload: Vec<u8>,
    seq: u64,
    ttl: Duration,
) -> Result<Record, RecordError> {
    if key.len() > MAX_KEY {
        return Err(RecordError::KeyTooLong(key.len()));
    }
    if ttl > MAX_TTL {
        return Err(RecordError::ExpiryTooFar);
    }
    let expires = unix_now() + ttl.as_secs();
    let signature = keypair
        .sign(&signed_bytes(key, seq, expires, &payload))
        .map_err(|e| RecordError::Malformed(e.to_string()))?;
    let env = Envelope {
        publisher: keypair.public().encode_protobuf(),
        seq,
        expires,
        payload,
        signature,
    };
    let value = postcard::to_allocvec(&env).map_err(|e| RecordError::Malformed(e.to_string()))?;
    if value.len() > MAX_VALUE {
        return Err(RecordError::ValueTooLarge(value.len()));
    }
    let mut r = Record::new(RecordKey::new(&key), value);
    r.publisher = Some(keypair.public().to_peer_id());
    r.expires = Some(std::time::Instant::now() + ttl);
    Ok(r)
}

/// A record that passed [`open`].
#[derive(Clone, Debug)]
pub struct Opened {
    /// Who signed it.
    pub publisher: PeerId,
    /// Its version.
    pub seq: u64,
    /// Expiry, seconds since the Unix epoch.
    pub expires: u64,
    /// The payload.
    pub payload: Vec<u8>,
}

/// Checks a record: sizes, envelope, publisher, signature, expiry, then the payload with
/// `validator`.
pub fn open(record: &Record, validator: Option<&Validator>) -> Result<Opened, RecordError> {
    let key = record.key.as_ref();
    if key.len() > MAX_KEY {
        return Err(RecordError::KeyTooLong(key.len()));
    }
    if record.value.len() > MAX_VALUE {
        return Err(RecordError::ValueTooLarge(record.value.len()));
    }
    let env: Envelope =
        postcard::from_bytes(&record.value).map_err(|e| RecordError::Malformed(e.to_string()))?;
    let public = PublicKey::try_decode_protobuf(&env.publisher)
        .map_err(|e| RecordError::Malformed(format!("publisher key: {e}")))?;
    let signer = public.to_peer_id();
    if let Some(claimed) = record.publisher
        && claimed != signer
    {
        return Err(RecordError::WrongPublisher {
            claimed: Box::new(claimed),
            signer: Box::new(signer),
        });
    }
    if !public.verify(
        &signed_bytes(key, env.seq, env.expires, &env.payload),
        &env.signature,
    ) {
        return Err(RecordError::BadSignature);
    }
    let now = unix_now();
    if env.expires <= now {
        return Err(RecordError::Expired);
    }
    if env.expires - now > MAX_TTL.as_secs() {
        return Err(RecordError::ExpiryTooFar);
    }
    if let Some(v) = validator {
        v(key, &env.payload, &signer).map_err(RecordError::Payload)?;
    }
    Ok(Opened {
        publisher: signer,
        seq: env.seq,
        expires: env.expires,
        payload: env.payload,
    })
}

/// Whether `new` may replace `held` under the same key: only the same publisher, and only with
/// a higher sequence number (the same version again, byte for byte, is a harmless refresh).
pub fn may_replace(held: &Opened, new: &Opened) -> Result<(), RecordError> {
    if held.publisher != new.publisher {
        return Err(RecordError::NotOwner {
            owner: Box::new(held.publisher),
            publisher: Box::new(new.publisher),
        });
    }
    let same = new.seq == held.seq && new.payload == held.payload && new.expires == held.expires;
    if new.seq > held.seq || same {
        Ok(())
    } else {
        Err(RecordError::Stale {
            held: held.seq,
            got: new.seq,
        })
    }
}

/// The instant a record's signed expiry falls on: what its `expires` field must not outlive,
/// whatever time-to-live the sender put on the wire.
pub fn expiry_instant(expires: u64) -> std::time::Instant {
    let now = std::time::Instant::now();
    let left = Duration::from_secs(expires.saturating_sub(unix_now())).min(MAX_TTL);
    now.checked_add(left).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed() -> (Keypair, Record) {
        let kp = Keypair::generate_ed25519();
        let r = seal(
            &kp,
            b"zhtp/m/abc",
            b"payload".to_vec(),
            5,
            Duration::from_secs(60),
        )
        .unwrap();
        (kp, r)
    }

    #[test]
    fn a_sealed_record_opens() {
        let (kp, r) = sealed();
        let o = open(&r, None).unwrap();
        assert_eq!(o.publisher, kp.public().to_peer_id());
        assert_eq!(o.payload, b"payload");
    }

    #[test]
    fn tampering_is_detected() {
        let (_, r) = sealed();
        // Same value under another key: the key is signed.
        let mut moved = r.clone();
        moved.key = RecordKey::new(&b"zhtp/m/other");
        assert_eq!(open(&moved, None).unwrap_err(), RecordError::BadSignature);
        // Changed payload.
        let mut env: Envelope = postcard::from_bytes(&r.value).unwrap();
        env.payload = b"forged".to_vec();
        let mut forged = r.clone();
        forged.value = postcard::to_allocvec(&env).unwrap();
        assert_eq!(open(&forged, None).unwrap_err(), RecordError::BadSignature);
        // Claimed by another publisher.
        let mut other = r.clone();
        other.publisher = Some(PeerId::random());
        assert!(matches!(
            open(&other, None),
            Err(RecordError::WrongPublisher { .. })
        ));
        // A higher sequence number is signed too: it cannot be raised by hand.
        let mut env: Envelope = postcard::from_bytes(&r.value).unwrap();
        env.seq += 1;
        let mut bumped = r.clone();
        bumped.value = postcard::to_allocvec(&env).unwrap();
        assert_eq!(open(&bumped, None).unwrap_err(), RecordError::BadSignature);
        // Garbage.
        let mut junk = r.clone();
        junk.value = vec![0xff; 10];
        assert!(matches!(open(&junk, None), Err(RecordError::Malformed(_))));
    }

    #[test]
    fn limits_and_expiry_and_payload_checks() {
        let kp = Keypair::generate_ed25519();
        assert!(matches!(
            seal(&kp, &[0; 65], vec![], 0, Duration::from_secs(1)),
            Err(RecordError::KeyTooLong(65))
        ));
        assert!(matches!(
            seal(&kp, b"k", vec![0; MAX_VALUE], 0, Duration::from_secs(1)),
            Err(RecordError::ValueTooLarge(_))
        ));
        let (_, mut r) = sealed();
        r.value.resize(MAX_VALUE + 1, 0);
        assert!(matches!(open(&r, None), Err(RecordError::ValueTooLarge(_))));
        let expired = seal(&kp, b"k", vec![1], 0, Duration::ZERO).unwrap();
        assert_eq!(open(&expired, None).unwrap_err(), RecordError::Expired);
        // Signed to live "forever": refused, never turned into an instant (that would panic).
        assert_eq!(
            seal(&kp, b"k", vec![1], 0, MAX_TTL + Duration::from_secs(1)).unwrap_err(),
            RecordError::ExpiryTooFar
        );
        let forever = {
            let expires = u64::MAX;
            let signature = kp.sign(&signed_bytes(b"k", 0, expires, &[1])).unwrap();
            let env = Envelope {
                publisher: kp.public().encode_protobuf(),
                seq: 0,
                expires,
                payload: vec![1],
                signature,
            };
            Record::new(RecordKey::new(&b"k"), postcard::to_allocvec(&env).unwrap())
        };
        assert_eq!(open(&forever, None).unwrap_err(), RecordError::ExpiryTooFar);
        let _ = expiry_instant(u64::MAX); // capped, no overflow
        let (_, r) = sealed();
        let v: Validator = std::sync::Arc::new(|_, p, _| {
            if p == b"payload" {
                Err("not a manifest".into())
            } else {
                Ok(())
            }
        });
        assert_eq!(
            open(&r, Some(&v)).unwrap_err(),
            RecordError::Payload("not a manifest".into())
        );
    }

    #[test]
    fn a_record_belongs_to_its_publisher_and_only_moves_forward() {
        let key = b"zhtp/m/owned";
        let ttl = Duration::from_secs(60);
        let (a, b) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
        let opened = |kp: &Keypair, seq: u64, p: &[u8]| {
            open(&seal(kp, key, p.to_vec(), seq, ttl).unwrap(), None).unwrap()
        };
        let held = opened(&a, 10, b"v10");
        // Another key, validly signed, even with a higher sequence number: refused.
        assert!(matches!(
            may_replace(&held, &opened(&b, 11, b"forged")),
            Err(RecordError::NotOwner { owner, publisher })
                if *owner == a.public().to_peer_id() && *publisher == b.public().to_peer_id()
        ));
        // The owner: newer replaces; older or a different payload at the same version does not.
        assert_eq!(may_replace(&held, &opened(&a, 11, b"v11")), Ok(()));
        assert_eq!(
            may_replace(&held, &opened(&a, 9, b"v9")),
            Err(RecordError::Stale { held: 10, got: 9 })
        );
        assert_eq!(
            may_replace(&held, &opened(&a, 10, b"other")),
            Err(RecordError::Stale { held: 10, got: 10 })
        );
        assert_eq!(may_replace(&held, &held.clone()), Ok(()));
    }
}
