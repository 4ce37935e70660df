//! The put pipeline both paths share: the input read a segment at a time and hashed in the
//! same pass (the content address is BLAKE3 of the plaintext), worker threads that encode each
//! segment (compress, encrypt, erasure-code, hash shards) and hand its shards to a [`Sink`],
//! and one cancellation: the first failure stops the reading and the workers, every result is
//! drained, and the sink gives back what it had placed.
//!
//! A local put's sink writes shards to this node's pack files ([`crate::local`]); a network
//! put's sink places them on nodes closest to their hashes ([`crate::network`]). Memory is
//! bounded by the workers: each holds one segment, and at most as many more wait for them.

use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Mutex};

use zhtp_content::{EncodedSegment, Encoder, SegmentInfo};
use zhtp_types::Hash;

use crate::local;

/// Where the shards of each encoded segment go.
pub trait Sink: Sync {
    /// What storing one segment's shards yields, kept until the put commits.
    type Placed: Send;
    /// The sink's error; pipeline errors (reading, encoding) convert into it.
    type Error: From<local::Error> + Send;

    /// Stores the shards of segment `index`. On an error, whatever it stored of this segment
    /// is its own to give back.
    fn store(&self, index: u32, segment: &EncodedSegment) -> Result<Self::Placed, Self::Error>;

    /// The put failed: what `placed` holds will never be committed.
    fn abort(&self, placed: Vec<Self::Placed>);
}

/// What the pipeline produced: the content's address and size, and each segment's manifest
/// entry and placement, in order.
#[derive(Debug)]
pub struct Encoded<P> {
    /// BLAKE3 of every byte read.
    pub content_hash: Hash,
    /// Bytes read.
    pub size: u64,
    /// Per segment, in order.
    pub segments: Vec<(SegmentInfo, P)>,
}

/// Reads `input` to its end through `workers` encoding threads into `sink`. `progress` gets
/// the bytes encoded and stored so far. On failure the sink's [`Sink::abort`] has been called
/// with everything it placed, and the first error is returned.
pub fn run<S: Sink>(
    input: &mut dyn Read,
    encoder: &Encoder,
    segment_size: usize,
    workers: usize,
    sink: &S,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Encoded<S::Placed>, S::Error> {
    let workers = workers.max(1);
    let mut hasher = blake3::Hasher::new();
    let mut size = 0u64;
    let done = AtomicU64::new(0);
    let failed = AtomicBool::new(false);
    let mut placed: Vec<(u32, SegmentInfo, S::Placed)> = Vec::new();
    let mut failure: Option<S::Error> = None;
    std::thread::scope(|s| {
        // Bounded: at most `workers` segments wait while each worker holds one.
        let (tx, rx) = sync_channel::<(u32, Vec<u8>)>(workers);
        let rx = Arc::new(Mutex::new(rx));
        let (res_tx, res_rx) = std::sync::mpsc::channel();
        for _ in 0..workers {
            let (rx, res_tx, done, failed) = (rx.clone(), res_tx.clone(), &done, &failed);
            s.spawn(move || {
                loop {
                    let next = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                    let Ok((index, plain)) = next else { break };
                    let r = encoder
                        .encode_segment(index, &plain)
                        .map_err(|e| S::Error::from(local::Error::from(e)))
                        .and_then(|seg| Ok((seg.info.clone(), sink.store(index, &seg)?)));
                    let stop = r.is_err();
                    let total = done.fetch_add(plain.len() as u64, Ordering::Relaxed);
                    progress(total + plain.len() as u64);
                    let _ = res_tx.send(r.map(|(info, p)| (index, info, p)));
                    if stop {
                        failed.store(true, Ordering::Relaxed);
                        break;
                    }
                }
            });
        }
        drop(res_tx);
        // Only the workers hold the receiver: when every one of them has stopped on an error,
        // a `send` below fails instead of waiting for good on a full channel.
        drop(rx);
        let mut index = 0u32;
        let read: Result<(), local::Error> = loop {
            if failed.load(Ordering::Relaxed) {
                break Ok(()); // a worker failed: its error is in res_rx
            }
            // Read into spare capacity: nothing is zeroed only to be overwritten.
            let mut buf = Vec::with_capacity(segment_size);
            let n = match Read::take(&mut *input, segment_size as u64).read_to_end(&mut buf) {
                Ok(n) => n,
                Err(source) => {
                    break Err(local::Error::Io {
                        what: "reading the input".into(),
                        source,
                    });
                }
            };
            if n == 0 {
                break Ok(());
            }
            hasher.update(&buf);
            size += n as u64;
            if tx.send((index, buf)).is_err() {
                break Ok(()); // every worker stopped: their error is in res_rx
            }
            index += 1;
            if n < segment_size {
                break Ok(());
            }
        };
        drop(tx);
        // Every result is drained, also after a failure, so that the abort below gets all
        // that was placed.
        for r in res_rx {
            match r {
                Ok(p) => placed.push(p),
                Err(e) => failure = failure.take().or(Some(e)),
            }
        }
        if let Err(e) = read {
            failure = failure.take().or(Some(e.into()));
        }
    });
    if let Some(e) = failure {
        sink.abort(placed.into_iter().map(|(_, _, p)| p).collect());
        return Err(e);
    }
    placed.sort_by_key(|(i, _, _)| *i);
    Ok(Encoded {
        content_hash: Hash(*hasher.finalize().as_bytes()),
        size,
        segments: placed.into_iter().map(|(_, info, p)| (info, p)).collect(),
    })
}
