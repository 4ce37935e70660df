//! The transfer pipeline both paths share, local and network.
//!
//! Put ([`run`]): the input read a segment at a time and hashed in the same pass (the content
//! address is BLAKE3 of the plaintext), worker threads that encode each segment (compress,
//! encrypt, erasure-code, hash shards) and hand its shards to a [`Sink`], and one
//! cancellation: the first failure stops the reading and the workers, every result is
//! drained, and the sink gives back what it had placed.
//!
//! Get ([`read`]): worker threads take each segment's shards from a [`Source`], decode it
//! (rebuilding missing or corrupt shards from any k good ones) and give the rebuilt shards
//! back to the source to write back; the calling thread hands the segments on in order,
//! hashing them, and holds the last one back until the whole content matches its address.
//!
//! A local put's sink and get's source are this node's pack files ([`crate::local`]); the
//! network's place shards on the nodes closest to their hashes and fetch them from their
//! holders ([`crate::network`]). Memory is bounded by the workers: each holds one segment,
//! and at most as many more wait for them.

use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Mutex};

use zhtp_content::{Decoder, EncodedSegment, Encoder, SegmentInfo};
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

/// Where a get takes each segment's shards from.
pub trait Source: Sync {
    /// The source's error; pipeline errors (decoding, the content hash) convert into it.
    type Error: From<local::Error> + Send;

    /// At least `k` shards of segment `index`, each already checked against its hash in
    /// `info` (fewer is an error of the source's own).
    fn fetch(&self, index: u32, info: &SegmentInfo, k: usize) -> Result<Fetched, Self::Error>;

    /// Shards of segment `index` that [`Source::fetch`] reported lost, rebuilt and checked
    /// against their hashes: `(position, bytes)`. Returns how many were written back.
    fn write_back(
        &self,
        index: u32,
        info: &SegmentInfo,
        rebuilt: Vec<(usize, Vec<u8>)>,
    ) -> Result<usize, Self::Error>;
}

/// One segment's shards as a [`Source`] found them.
#[derive(Debug)]
pub struct Fetched {
    /// By position; `None` where no shard was fetched.
    pub slots: Vec<Option<Vec<u8>>>,
    /// By position: looked for and found missing or corrupt, so to be written back once
    /// rebuilt. A shard never asked for (k good ones came first) is not lost.
    pub lost: Vec<bool>,
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

/// Decodes every segment of `decoder`'s content from `source` on `workers` threads and hands
/// the plaintext to `out` in order, checking it against the content address `hash` on the way.
/// The last segment goes to `out` only once every byte has matched, so a reader that stops
/// at the announced size never gets all of a content that fails its check. `progress` gets
/// the bytes handed on so far. An error from `out` or from a worker stops the workers (their
/// next send finds the channel gone).
pub fn read<S: Source>(
    hash: &Hash,
    decoder: &Decoder,
    workers: usize,
    source: &S,
    out: &mut dyn FnMut(Vec<u8>) -> Result<(), S::Error>,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<local::GetReport, S::Error> {
    let segments = decoder.manifest().segments.len() as u32;
    let k = decoder.manifest().code.data as usize;
    let workers = workers.clamp(1, segments.max(1) as usize);
    let mut hasher = blake3::Hasher::new();
    let mut report = local::GetReport::default();
    let decode = |i: u32| -> Result<(Vec<u8>, usize), S::Error> {
        let info = &decoder.manifest().segments[i as usize];
        let mut fetched = source.fetch(i, info, k)?;
        // `Source::fetch` checked every shard against its hash.
        let decoded = decoder
            .decode_verified_segment(i, &mut fetched.slots)
            .map_err(local::Error::from)?;
        let rebuilt: Vec<_> = decoded
            .repaired
            .into_iter()
            .filter(|(j, _)| fetched.lost.get(*j).copied().unwrap_or(false))
            .collect();
        let repaired = if rebuilt.is_empty() {
            0
        } else {
            source.write_back(i, info, rebuilt)?
        };
        Ok((decoded.plain, repaired))
    };
    std::thread::scope(|s| -> Result<(), S::Error> {
        // Worker w decodes segments w, w + W, ...; this thread takes them in order from the
        // workers' own channels, so each worker is at most one segment ahead. Returning drops
        // the channels: a worker's next send fails and it stops.
        let mut channels = Vec::with_capacity(workers);
        for w in 0..workers {
            let (tx, rx) = sync_channel(1);
            channels.push(rx);
            let decode = &decode;
            s.spawn(move || {
                let mut i = w as u32;
                while i < segments {
                    let r = decode(i);
                    let failed = r.is_err();
                    if tx.send(r).is_err() || failed {
                        break;
                    }
                    i += workers as u32;
                }
            });
        }
        let mut held: Option<Vec<u8>> = None;
        for i in 0..segments {
            let next = channels[i as usize % workers].recv();
            let (plain, repaired) = next.map_err(|_| local::Error::Io {
                what: "decoding".into(),
                source: std::io::Error::other("a decoder thread stopped"),
            })??;
            hasher.update(&plain);
            report.repaired += repaired;
            if let Some(prev) = held.replace(plain) {
                report.bytes += prev.len() as u64;
                out(prev)?;
                progress(report.bytes);
            }
        }
        let actual = Hash(*hasher.finalize().as_bytes());
        if actual != *hash {
            let e = zhtp_content::Error::ContentHash {
                expected: *hash,
                actual,
            };
            return Err(local::Error::from(e).into());
        }
        if let Some(last) = held {
            report.bytes += last.len() as u64;
            out(last)?;
            progress(report.bytes);
        }
        Ok(())
    })?;
    Ok(report)
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

    /// `input` through the pipeline into `sink` in 64 KiB segments, without progress.
    fn put<S: Sink>(
        input: &[u8],
        workers: usize,
        sink: &S,
        cancel: &AtomicBool,
    ) -> Result<Encoded<S::Placed>, S::Error> {
        run(
            &mut &input[..],
            &encoder(),
            64 << 10,
            workers,
            sink,
            &|_| {},
            cancel,
        )
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
        let out = put(&input, 3, &s, &AtomicBool::new(false)).unwrap();
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
        let err = put(&input, 2, &s, &AtomicBool::new(false)).unwrap_err();
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
        let err = put(&input, 2, &s, &cancel).unwrap_err();
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

    /// Keeps shards in memory (a sink) and gives them back (a source), but has lost `lost`;
    /// remembers what was written back.
    #[derive(Default)]
    struct Memory {
        shards: Mutex<std::collections::HashMap<Hash, Vec<u8>>>,
        written_back: Mutex<Vec<(u32, usize, Vec<u8>)>>,
    }

    impl Sink for Memory {
        type Placed = ();
        type Error = local::Error;
        fn store(&self, _: u32, seg: &EncodedSegment) -> Result<(), local::Error> {
            let mut m = self.shards.lock().unwrap();
            for (h, b) in seg.shards() {
                m.insert(h, b.to_vec());
            }
            Ok(())
        }
        fn abort(&self, _: Vec<()>) {}
    }

    impl Source for Memory {
        type Error = local::Error;
        fn fetch(&self, _: u32, info: &SegmentInfo, k: usize) -> Result<Fetched, local::Error> {
            let m = self.shards.lock().unwrap();
            let n = info.shards.len();
            let mut f = Fetched {
                slots: vec![None; n],
                lost: vec![false; n],
            };
            for j in 0..n {
                if f.slots.iter().flatten().count() == k {
                    break;
                }
                f.slots[j] = m.get(&info.shards[j]).cloned();
                f.lost[j] = f.slots[j].is_none();
            }
            Ok(f)
        }
        fn write_back(
            &self,
            index: u32,
            _: &SegmentInfo,
            rebuilt: Vec<(usize, Vec<u8>)>,
        ) -> Result<usize, local::Error> {
            let mut w = self.written_back.lock().unwrap();
            let n = rebuilt.len();
            w.extend(rebuilt.into_iter().map(|(j, b)| (index, j, b)));
            Ok(n)
        }
    }

    /// Puts `input` into a [`Memory`] and returns it with the content's decoder.
    fn stored(input: &[u8]) -> (Memory, Decoder) {
        let mem = Memory::default();
        let out = put(input, 2, &mem, &AtomicBool::new(false)).unwrap();
        let infos = out.segments.into_iter().map(|(i, _)| i).collect();
        // No key: an encoder of the same parameters writes the same manifest.
        let m = encoder().manifest(out.content_hash, out.size, infos, Default::default());
        (mem, Decoder::new(m, None).unwrap())
    }

    fn read_all(mem: &Memory, d: &Decoder) -> (Result<local::GetReport, local::Error>, Vec<u8>) {
        let mut got = Vec::new();
        let r = read(
            &d.manifest().content_hash.clone(),
            d,
            3,
            mem,
            &mut |p| {
                got.extend_from_slice(&p);
                Ok(())
            },
            &|_| {},
        );
        (r, got)
    }

    #[test]
    fn a_read_gives_the_content_back_in_order_and_writes_back_what_it_rebuilt() {
        // No two segments alike (equal segments would share their shards).
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let input: Vec<u8> = (0..700_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let (mem, d) = stored(&input);
        // Data shard 1 of segment 4 is lost.
        let lost = d.manifest().segments[4].shards[1];
        let bytes = mem.shards.lock().unwrap().remove(&lost).unwrap();
        let (r, got) = read_all(&mem, &d);
        let report = r.unwrap();
        assert!(got == input, "wrong bytes back");
        assert_eq!((report.bytes, report.repaired), (input.len() as u64, 1));
        // Exactly the lost shard, rebuilt to its own bytes; no parity that was never asked for.
        assert_eq!(*mem.written_back.lock().unwrap(), vec![(4, 1, bytes)]);
    }

    #[test]
    fn a_content_that_fails_its_hash_never_hands_on_its_last_segment() {
        let input = vec![9u8; 300_000]; // 5 segments of 64 KiB
        let (mem, d) = stored(&input);
        let mut m = d.manifest().clone();
        m.content_hash = Hash([7; 32]);
        let d = Decoder::new(m, None).unwrap();
        let (r, got) = read_all(&mem, &d);
        assert!(
            matches!(
                r,
                Err(local::Error::Content(
                    zhtp_content::Error::ContentHash { .. }
                ))
            ),
            "{r:?}"
        );
        assert_eq!(
            got.len(),
            4 << 16,
            "more than all but the last segment came out"
        );
    }
}
