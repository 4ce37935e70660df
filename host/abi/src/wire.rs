//! The v1 wire format, written out (SPEC.md section 7): the bytes are postcard 1.x's, but read
//! strictly and without serde.
//!
//! Why not postcard itself: postcard accepts overlong varints and ignores trailing bytes, which
//! the spec refuses in a plugin's output, and its serde path was most of the cost of a quote on
//! both sides of the call (a `Vec` visitor, an allocation per message, a second encode to check
//! exactness). These readers and writers are a few lines per message, produce exactly postcard's
//! bytes (tests compare the two on random values) and run the same code in the host and in a
//! guest built with the SDK.

use core::fmt;

/// A message with a fixed v1 encoding.
pub trait Message: Sized {
    /// Longest encoding of any value: a buffer this long always suffices for [`Self::encode`].
    const MAX_LEN: usize;

    /// Writes the shortest encoding into `out` (at least [`Self::MAX_LEN`] bytes) and returns
    /// its length; `None`, with nothing promised about `out`, for a value the message's rules
    /// forbid (a quote with more than 16 adjustments), which no decoder would accept, or when
    /// `out` is shorter than [`Self::MAX_LEN`].
    fn encode(&self, out: &mut [u8]) -> Option<usize>;

    /// Reads exactly one message occupying all of `bytes`, in its shortest encoding.
    fn decode(bytes: &[u8]) -> Result<Self, DecodeError>;
}

/// Why bytes are not a message. The first three are malformed input (SPEC.md R-out-decode);
/// the others are well-formed but break a rule of the message or of exact encoding.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The bytes end inside a field.
    Truncated,
    /// A varint longer than its type allows, or a value too large for its type, at this
    /// offset (R-enc-varint-max).
    BadVarint {
        /// Offset of the varint's first byte.
        at: usize,
    },
    /// A bool that is neither `00` nor `01` (R-enc-bool), or an enum index outside its variant
    /// table (R-enc-enum), at this offset.
    BadValue {
        /// Offset of the byte.
        at: usize,
        /// What the field is.
        field: &'static str,
    },
    /// A list longer than the message allows (R-out-adjustments-max, R-qout-max).
    TooMany {
        /// What the list holds (`adjustments`, `violations`).
        what: &'static str,
        /// The count the message declared.
        count: u64,
        /// The most allowed.
        max: usize,
    },
    /// A varint longer than the shortest encoding of its value (R-enc-varint-canonical).
    NotShortest {
        /// Offset of the varint's first byte.
        at: usize,
    },
    /// Bytes after the end of the message (R-enc-trailing).
    Trailing {
        /// How many.
        extra: usize,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated => f.write_str("the bytes end inside a field"),
            Self::BadVarint { at } => {
                write!(
                    f,
                    "varint at byte {at} is too long or too large for its type"
                )
            }
            Self::BadValue { at, field } => write!(f, "invalid {field} at byte {at}"),
            Self::TooMany { what, count, max } => write!(f, "{count} {what}; at most {max}"),
            Self::NotShortest { at } => write!(
                f,
                "not in the shortest encoding: the varint at byte {at} is overlong"
            ),
            Self::Trailing { extra } => write!(f, "{extra} bytes after the end of the message"),
        }
    }
}

impl core::error::Error for DecodeError {}

impl DecodeError {
    /// Whether the bytes do not even parse as the message (as opposed to parsing but breaking
    /// a rule of exact encoding or of the message).
    pub fn is_malformed(&self) -> bool {
        matches!(
            self,
            Self::Truncated | Self::BadVarint { .. } | Self::BadValue { .. }
        )
    }
}

/// Reads a message front to back. Rules that the spec checks after decoding (exactness) are
/// recorded, not raised, so a caller can report violations in the spec's order. Its methods are
/// `#[inline]`: they run inside every decoder, on the host's call path and in every guest.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// Offset of the first overlong varint met.
    pub(crate) overlong: Option<usize>,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self {
            bytes,
            pos: 0,
            overlong: None,
        }
    }

    #[inline]
    pub(crate) fn byte(&mut self) -> Result<u8, DecodeError> {
        let b = *self.bytes.get(self.pos).ok_or(DecodeError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }

    #[inline]
    pub(crate) fn bool(&mut self) -> Result<bool, DecodeError> {
        let at = self.pos;
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::BadValue { at, field: "bool" }),
        }
    }

    /// An unsigned LEB128 varint of at most `max_len` bytes whose last allowed byte is at most
    /// `last_max` (u16: 3, 0x03; u32: 5, 0x0f; u64: 10, 0x01).
    #[inline]
    fn varint(&mut self, max_len: usize, last_max: u8) -> Result<u64, DecodeError> {
        let at = self.pos;
        // Iterating the rest checks bounds once per varint instead of once per byte.
        let rest = self.bytes.get(at..).unwrap_or_default();
        // (Exact only because every caller allows at least two bytes: a one-byte varint is
        // then never the last allowed byte, whose `last_max` this path does not check.)
        debug_assert!(max_len >= 2);
        // One byte, the common case (indices, counts, small numbers), before the loop, whose
        // set-up cost more than the byte: the floor's 7-byte answer decodes in 5 ns instead of
        // 13 (floor 80 -> 75 ns; the quote, mostly longer varints, unchanged).
        if let Some(&b) = rest.first()
            && b < 0x80
        {
            self.pos = at + 1;
            return Ok(u64::from(b));
        }
        let mut value = 0u64;
        for (i, &b) in rest.iter().take(max_len).enumerate() {
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                if i == max_len - 1 && b > last_max {
                    return Err(DecodeError::BadVarint { at });
                }
                if i > 0 && b == 0 && self.overlong.is_none() {
                    self.overlong = Some(at);
                }
                self.pos = at + i + 1;
                return Ok(value);
            }
        }
        // Every byte read had its continuation bit set: either the bytes ran out first, or
        // the varint is longer than its type allows.
        if rest.len() < max_len {
            Err(DecodeError::Truncated)
        } else {
            Err(DecodeError::BadVarint { at })
        }
    }

    #[inline]
    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        // Three bytes whose last is at most 3 hold at most 16 bits.
        self.varint(3, 0x03).map(|v| v as u16)
    }

    #[inline]
    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        self.varint(5, 0x0f).map(|v| v as u32)
    }

    #[inline]
    pub(crate) fn u64(&mut self) -> Result<u64, DecodeError> {
        self.varint(10, 0x01)
    }

    /// An enum's variant index (R-enc-enum): a u32 varint, within `0..n`.
    #[inline]
    pub(crate) fn index(&mut self, n: u32, field: &'static str) -> Result<u32, DecodeError> {
        let at = self.pos;
        let i = self.u32()?;
        if i < n {
            Ok(i)
        } else {
            Err(DecodeError::BadValue { at, field })
        }
    }

    /// Ends reading: exactness first met wins (an overlong varint, else trailing bytes).
    #[inline]
    pub(crate) fn finish(self) -> Result<(), DecodeError> {
        if let Some(at) = self.overlong {
            return Err(DecodeError::NotShortest { at });
        }
        match self.bytes.len() - self.pos {
            0 => Ok(()),
            extra => Err(DecodeError::Trailing { extra }),
        }
    }
}

/// Writes a message into a buffer known to be long enough ([`Message::MAX_LEN`]).
pub(crate) struct Writer<'a> {
    out: &'a mut [u8],
    pub(crate) len: usize,
}

impl<'a> Writer<'a> {
    /// A writer over the first `max_len` bytes of `out` (the message's `MAX_LEN`), or `None`
    /// if `out` is shorter. `max_len` is a constant at every call: each byte's index is then
    /// checked against it, not against a length the guest's compiled code kept reloading from
    /// its stack (a quote through the guest: 194 -> 177 ns, benches/README.md).
    #[inline]
    pub(crate) fn new(out: &'a mut [u8], max_len: usize) -> Option<Self> {
        Some(Self {
            out: out.get_mut(..max_len)?,
            len: 0,
        })
    }

    #[inline]
    pub(crate) fn byte(&mut self, b: u8) {
        self.out[self.len] = b;
        self.len += 1;
    }

    /// The shortest unsigned LEB128 encoding of `v`. (A variant that computed the length
    /// from the bit width and wrote without a data-dependent exit made the guest's encoder
    /// 25% larger and was not measurably faster.)
    #[inline]
    pub(crate) fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.byte((v as u8) | 0x80);
            v >>= 7;
        }
        self.byte(v as u8);
    }
}
