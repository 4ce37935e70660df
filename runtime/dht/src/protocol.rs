//! `/zhtp/shard/1`: store, fetch and list shards (the seed's Store and FindValue).
//!
//! One request and one response per stream, each a big-endian `u32` length and a postcard
//! body. The length is checked against the limit *before* anything is allocated, so a peer
//! announcing a 4 GiB message costs us four bytes, and the failure ends that one stream, not
//! the connection.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use libp2p::StreamProtocol;
use serde::{Deserialize, Serialize};
use zhtp_types::Hash;

/// The protocol name.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/zhtp/shard/1");

/// Largest shard a node accepts: a 4 MiB segment at k = 1 with room for the AEAD tag and
/// Reed-Solomon's padding, and twice that for larger segment sizes.
pub const MAX_SHARD: usize = 8 << 20;

/// Largest encoded message by default: a shard plus its envelope.
pub const MAX_MESSAGE: usize = MAX_SHARD + 1024;

/// The reason of a [`Response::Refused`] that means "try again shortly": the node is serving
/// as much as it will for now (for this peer or for everyone).
pub const BUSY: &str = "busy";

/// What one node asks another.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Keep this shard (segment `segment`, position `index` of content `content`).
    Store {
        /// The content the shard belongs to.
        content: Hash,
        /// Segment number.
        segment: u32,
        /// Shard position in the segment (data shards first, then parity).
        index: u16,
        /// BLAKE3 of `data`; the receiver checks it.
        hash: Hash,
        /// The shard.
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// Send the shard with this hash.
    Fetch {
        /// Shard hash.
        hash: Hash,
    },
    /// Which shards of this content do you hold?
    Inventory {
        /// Content hash.
        content: Hash,
    },
    /// An audit: the BLAKE3 digest (keyed "zhtp audit digest v1") of `nonce`, then each range's
    /// offset and length (u32 little-endian) and bytes, of the shard this node holds at this
    /// position. Answered with [`Response::Audited`].
    Audit {
        /// The content.
        content: Hash,
        /// Segment number.
        segment: u32,
        /// Shard position in the segment.
        index: u16,
        /// Fresh per audit.
        nonce: [u8; 16],
        /// `(offset, length)` byte ranges of the shard (at most 16, each at most 64 KiB).
        ranges: Vec<(u32, u32)>,
    },
    /// Will you hold the shards this storage contract names for you? Answered with your
    /// signature over it ([`Response::Signed`]) or a refusal; a node the contract does not name
    /// keeps it (to take repaired shards under it) and answers with an empty signature. The contract is the postcard
    /// encoding of a `zhtp_economy::contract::StorageContract`, carrying the client's mandate
    /// signature.
    Offer {
        /// The encoded contract.
        #[serde(with = "serde_bytes")]
        contract: Vec<u8>,
    },
    /// A smart-contract message: opaque to this crate, the postcard encoding of the node's own
    /// request type (`zhtp::network::smart`). Answered with [`Response::Contract`] or a
    /// refusal. Appended last, so the variant numbers of the requests above are unchanged.
    Contract(#[serde(with = "serde_bytes")] Vec<u8>),
    /// A proof audit: a Groth16 proof (circuit `circuit`, a `zhtp_proofs::CircuitId`) that this
    /// node keeps the blocks `nonce` samples from the shard at this position, whose Poseidon
    /// commitment is `root` over `blocks` blocks (recorded in the storage contract). Answered
    /// with [`Response::Proved`]. Appended after `Contract`, for the same reason.
    Prove {
        /// The content.
        content: Hash,
        /// Segment number.
        segment: u32,
        /// Shard position in the segment.
        index: u16,
        /// The circuit to prove in.
        circuit: u32,
        /// The commitment's root (a canonical BN254 scalar, little-endian).
        root: [u8; 32],
        /// The commitment's block count.
        blocks: u32,
        /// Fresh per audit.
        nonce: [u8; 16],
    },
}

/// One shard a node holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Held {
    /// Segment number.
    pub segment: u32,
    /// Position in the segment.
    pub index: u16,
    /// Shard hash.
    pub hash: Hash,
}

/// The answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// The shard is stored durably.
    Stored,
    /// The shard asked for.
    Shard(#[serde(with = "serde_bytes")] Vec<u8>),
    /// Not here.
    NotFound,
    /// The shards of a content held here.
    Inventory(Vec<Held>),
    /// Refused, with the reason (bad hash, too busy, disk full...).
    Refused(String),
    /// The digest an audit asked for.
    Audited([u8; 32]),
    /// The Ed25519 signature of this node's key over the offered contract (empty: kept, but
    /// this node is not a party).
    Signed(#[serde(with = "serde_bytes")] Vec<u8>),
    /// The answer to a [`Request::Contract`]: the node's own encoding.
    Contract(#[serde(with = "serde_bytes")] Vec<u8>),
    /// The proof a [`Request::Prove`] asked for: 128 bytes, compressed.
    Proved(#[serde(with = "serde_bytes")] Vec<u8>),
}

/// The length-prefixed postcard codec with a size limit.
#[derive(Clone, Debug)]
pub struct Codec {
    /// Largest message read or written, in bytes.
    pub max_message: usize,
    /// Inbound messages refused (oversize, undecodable). libp2p reports a failed request read
    /// only in a debug log, so the codec counts them itself.
    pub refused: Arc<AtomicU64>,
}

impl Codec {
    /// A codec with this limit.
    pub fn new(max_message: usize) -> Self {
        Self {
            max_message,
            refused: Arc::default(),
        }
    }
}

impl Default for Codec {
    fn default() -> Self {
        Self::new(MAX_MESSAGE)
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

async fn read_msg<T, M>(io: &mut T, max: usize) -> io::Result<M>
where
    T: AsyncRead + Unpin + Send,
    M: for<'de> Deserialize<'de>,
{
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(invalid(format!(
            "message of {len} bytes exceeds the limit of {max} bytes"
        )));
    }
    let mut buf = vec![0u8; len];
    io.read_exact(&mut buf).await?;
    postcard::from_bytes(&buf).map_err(|e| invalid(format!("undecodable message: {e}")))
}

async fn write_msg<T, M>(io: &mut T, msg: &M, max: usize) -> io::Result<()>
where
    T: AsyncWrite + Unpin + Send,
    M: Serialize,
{
    let body = postcard::to_allocvec(msg).map_err(|e| invalid(e.to_string()))?;
    if body.len() > max {
        return Err(invalid(format!(
            "message of {} bytes exceeds the limit of {max} bytes",
            body.len()
        )));
    }
    io.write_all(&(body.len() as u32).to_be_bytes()).await?;
    io.write_all(&body).await?;
    io.close().await
}

/// Writes a message whose last field is a byte string, without copying the bytes into an
/// encoded body: `head` is the message encoded with those bytes empty (so it ends in postcard's
/// length 0), and the bytes follow their real length. The result is byte for byte what postcard
/// writes for the whole message (tested), but a peer that does not read its answer pins one
/// copy of a shard in this node, not two.
async fn write_with_bytes<T>(
    io: &mut T,
    mut head: Vec<u8>,
    bytes: &[u8],
    max: usize,
) -> io::Result<()>
where
    T: AsyncWrite + Unpin + Send,
{
    if head.pop() != Some(0) {
        return Err(invalid(
            "the byte string is not the message's last field".into(),
        ));
    }
    let mut len = bytes.len();
    loop {
        // postcard's varint: seven bits a byte, low first, high bit set on all but the last.
        let low = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            head.push(low);
            break;
        }
        head.push(low | 0x80);
    }
    let total = head.len() + bytes.len();
    if total > max {
        return Err(invalid(format!(
            "message of {total} bytes exceeds the limit of {max} bytes"
        )));
    }
    io.write_all(&(total as u32).to_be_bytes()).await?;
    io.write_all(&head).await?;
    io.write_all(bytes).await?;
    io.close().await
}

fn encode<M: Serialize>(m: &M) -> io::Result<Vec<u8>> {
    postcard::to_allocvec(m).map_err(|e| invalid(e.to_string()))
}

impl libp2p::request_response::Codec for Codec {
    type Protocol = StreamProtocol;
    type Request = Request;
    type Response = Response;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Request>
    where
        T: AsyncRead + Unpin + Send,
    {
        let r = read_msg(io, self.max_message).await;
        if let Err(e) = &r
            && e.kind() == io::ErrorKind::InvalidData
        {
            self.refused.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("refused an inbound shard request: {e}");
        }
        r
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Response>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_msg(io, self.max_message).await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        mut req: Request,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        match &mut req {
            Request::Store { data, .. } => {
                let data = std::mem::take(data);
                write_with_bytes(io, encode(&req)?, &data, self.max_message).await
            }
            _ => write_msg(io, &req, self.max_message).await,
        }
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Response,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        match res {
            Response::Shard(bytes) => {
                let head = encode(&Response::Shard(Vec::new()))?;
                write_with_bytes(io, head, &bytes, self.max_message).await
            }
            res => write_msg(io, &res, self.max_message).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::request_response::Codec as _;

    #[test]
    fn a_message_over_the_limit_is_refused_before_allocation() {
        futures::executor::block_on(async {
            // A 4 GiB length prefix and nothing after it.
            let mut bytes: &[u8] = &u32::MAX.to_be_bytes();
            let err = Codec::default()
                .read_request(&PROTOCOL, &mut bytes)
                .await
                .unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData);
            assert!(err.to_string().contains("exceeds the limit"), "{err}");
        });
    }

    #[test]
    fn shard_bytes_encode_as_plain_postcard_vectors_did() {
        // The wire format from before shard bytes were marked as a byte string: a peer on
        // either side reads the other.
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        enum Before {
            Store {
                content: Hash,
                segment: u32,
                index: u16,
                hash: Hash,
                data: Vec<u8>,
            },
        }
        let data: Vec<u8> = (0..300u32).map(|i| (i * 7) as u8).collect();
        let now = Request::Store {
            content: Hash([1; 32]),
            segment: 7,
            index: 3,
            hash: Hash([2; 32]),
            data: data.clone(),
        };
        let before = Before::Store {
            content: Hash([1; 32]),
            segment: 7,
            index: 3,
            hash: Hash([2; 32]),
            data: data.clone(),
        };
        let bytes = postcard::to_allocvec(&now).unwrap();
        assert_eq!(bytes, postcard::to_allocvec(&before).unwrap());
        assert_eq!(postcard::from_bytes::<Request>(&bytes).unwrap(), now);
        let shard = postcard::to_allocvec(&Response::Shard(data.clone())).unwrap();
        assert_eq!(&shard[..3], &[1, 0xac, 0x02]); // variant 1, length 300 as a varint
        assert_eq!(&shard[3..], &data[..]);
    }

    #[test]
    fn shards_written_without_a_copy_are_the_postcard_frames() {
        use futures::executor::block_on;
        use libp2p::request_response::Codec as _;
        let mut c = Codec::default();
        // Lengths around every varint width boundary.
        for len in [0usize, 1, 127, 128, 300, 16_383, 16_384, 1 << 20] {
            let data: Vec<u8> = (0..len).map(|i| (i * 13) as u8).collect();
            let store = Request::Store {
                content: Hash([1; 32]),
                segment: 70_000,
                index: 3,
                hash: Hash([2; 32]),
                data: data.clone(),
            };
            let frame = |body: Vec<u8>| [(body.len() as u32).to_be_bytes().to_vec(), body].concat();
            let mut out = futures::io::Cursor::new(Vec::new());
            block_on(c.write_request(&PROTOCOL, &mut out, store.clone())).unwrap();
            assert_eq!(
                out.into_inner(),
                frame(postcard::to_allocvec(&store).unwrap()),
                "{len}"
            );
            let shard = Response::Shard(data);
            let mut out = futures::io::Cursor::new(Vec::new());
            block_on(c.write_response(&PROTOCOL, &mut out, shard.clone())).unwrap();
            assert_eq!(
                out.into_inner(),
                frame(postcard::to_allocvec(&shard).unwrap()),
                "{len}"
            );
        }
    }

    #[test]
    fn messages_round_trip() {
        futures::executor::block_on(async {
            let req = Request::Store {
                content: Hash([1; 32]),
                segment: 7,
                index: 3,
                hash: Hash([2; 32]),
                data: vec![9; 1000],
            };
            let mut buf = Vec::new();
            Codec::default()
                .write_request(
                    &PROTOCOL,
                    &mut futures::io::Cursor::new(&mut buf),
                    req.clone(),
                )
                .await
                .unwrap();
            let back = Codec::default()
                .read_request(&PROTOCOL, &mut buf.as_slice())
                .await
                .unwrap();
            assert_eq!(back, req);
            let mut small = Codec::new(100);
            let err = small
                .read_request(&PROTOCOL, &mut buf.as_slice())
                .await
                .unwrap_err();
            assert!(err.to_string().contains("exceeds the limit"));
            assert_eq!(small.refused.load(Ordering::Relaxed), 1);
        });
    }
}
