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

fn cancelled() -> local::Error {
    local::Error::Io {
        what: "storing".into(),
        source: std::io::Error::new(std::io::ErrorKind::Interrupted, "cancelled"),
    }
}

/// Reads `input` to its end through `workers` encoding threads into `sink`. `progress` gets
/// the bytes encoded and stored so far. Setting `cancel` stops the reading and the workers
/// (the segments being stored finish). On failure or cancellation the sink's [`Sink::abort`]
/// has been called with everything it placed, and the first error is returned.
pub fn run<S: Sink>(
    input: &mut dyn Read,
    encoder: &Encoder,
    segment_size: usize,
    workers: usize,
    sink: &S,
    progress: &(dyn Fn(u64) + Sync),
    cancel: &AtomicBool,
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
                    if failed.load(Ordering::Relaxed) || cancel.load(Ordering::Relaxed) {
                        break; // another worker failed, or the caller gave up: stop storing
                    }
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
            if cancel.load(Ordering::Relaxed) {
                break Err(cancelled());
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
                // Every worker stopped: on an error (in res_rx) or on a cancel.
                break if cancel.load(Ordering::Relaxed) {
                    Err(cancelled())
                } else {
                    Ok(())
                };
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
        // Workers that saw the cancel stopped without a word: never report what they left
        // unstored as a whole content.
        if failure.is_none() && cancel.load(Ordering::Relaxed) {
            failure = Some(cancelled().into());
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use zhtp_content::{EncryptionLevel, Params};
    use zhtp_types::StorageTier;

    use super::*;

    /// Counts what it is asked to store; fails from segment `fail_at` on.
    struct Counting {
        stored: AtomicUsize,
        fail_at: u32,
        aborted: Mutex<Option<usize>>,
        cancel_after: Option<(usize, Arc<AtomicBool>)>,
    }

    impl Sink for Counting {
        type Placed = u32;
        type Error = local::Error;
        fn store(&self, index: u32, _: &EncodedSegment) -> Result<u32, local::Error> {
            if index >= self.fail_at {
                return Err(local::Error::NotFound(Hash([0; 32])));
            }
            let n = self.stored.fetch_add(1, Ordering::SeqCst) + 1;
            if let Some((after, cancel)) = &self.cancel_after
                && n >= *after
            {
                cancel.store(true, Ordering::SeqCst);
            }
            Ok(index)
        }
        fn abort(&self, placed: Vec<u32>) {
            *self.aborted.lock().unwrap() = Some(placed.len());
        }
    }

    fn encoder() -> Encoder {
        let params = Params {
            tier: StorageTier::Hot,
            encryption: EncryptionLevel::None,
            code: crate::local::PutOptions::code_for(StorageTier::Hot),
            segment_size: 64 << 10,
        };
        Encoder::new(params, None).unwrap()
    }

    fn sink(fail_at: u32, cancel_after: Option<(usize, Arc<AtomicBool>)>) -> Counting {
        Counting {
            stored: AtomicUsize::new(0),
            fail_at,
            aborted: Mutex::new(None),
            cancel_after,
        }
    }

    #[test]
    fn the_hash_is_of_every_byte_read_and_segments_come_back_in_order() {
        let input: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7) as u8).collect();
        let s = sink(u32::MAX, None);
        let out = run(
            &mut &input[..],
            &encoder(),
            64 << 10,
            3,
            &s,
            &|_| {},
            &AtomicBool::new(false),
        )
        .unwrap();
        assert_eq!(out.content_hash, Hash(*blake3::hash(&input).as_bytes()));
        assert_eq!(out.size, input.len() as u64);
        let order: Vec<u32> = out.segments.iter().map(|(_, p)| *p).collect();
        assert_eq!(order, (0..16).collect::<Vec<_>>());
        assert_eq!(*s.aborted.lock().unwrap(), None);
    }

    #[test]
    fn a_failing_sink_ends_the_run_with_its_error_and_gets_back_what_it_placed() {
        let input = vec![1u8; 1 << 20];
        let s = sink(5, None);
        let err = run(
            &mut &input[..],
            &encoder(),
            64 << 10,
            2,
            &s,
            &|_| {},
            &AtomicBool::new(false),
        )
        .unwrap_err();
        assert!(matches!(err, local::Error::NotFound(_)), "{err:?}");
        // Everything stored before the failure was handed back, nothing more.
        let stored = s.stored.load(Ordering::SeqCst);
        assert_eq!(*s.aborted.lock().unwrap(), Some(stored));
        assert!(stored < 16, "{stored} segments stored after the failure");
    }

    #[test]
    fn cancelling_stops_the_run_with_an_interrupted_error() {
        let input = vec![2u8; 4 << 20]; // 64 segments
        let cancel = Arc::new(AtomicBool::new(false));
        let s = sink(u32::MAX, Some((3, cancel.clone())));
        let err = run(
            &mut &input[..],
            &encoder(),
            64 << 10,
            2,
            &s,
            &|_| {},
            &cancel,
        )
        .unwrap_err();
        assert!(
            matches!(&err, local::Error::Io { source, .. }
                if source.kind() == std::io::ErrorKind::Interrupted),
            "{err:?}"
        );
        let stored = s.stored.load(Ordering::SeqCst);
        // At most the segments already taken by the workers when the flag went up.
        assert!(
            stored < 10,
            "{stored} of 64 segments stored after the cancel"
        );
        assert_eq!(*s.aborted.lock().unwrap(), Some(stored));
    }
}
