use core::fmt;
use core::str::FromStr;

use serde::{Deserialize, Serialize};

/// A BLAKE3-256 digest. The one hash of zhtp: content addresses, shard addresses, node ids.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Hash(pub [u8; 32]);

/// Address of a piece of content (BLAKE3 of its plaintext).
pub type ContentHash = Hash;
/// Identifier of a node.
pub type NodeId = Hash;
/// A key in the DHT key space.
pub type DhtKey = Hash;

impl Hash {
    /// Length of the digest in bytes.
    pub const LEN: usize = 32;

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lower-case hex, 64 characters.
    pub fn to_hex(&self) -> alloc::string::String {
        use core::fmt::Write;
        let mut s = alloc::string::String::with_capacity(64);
        for b in self.0 {
            // Writing into a String cannot fail.
            let _ = write!(s, "{b:02x}");
        }
        s
    }

    /// The first 5 bytes in hex, for logs and tables.
    pub fn fmt_short(&self) -> alloc::string::String {
        let mut s = self.to_hex();
        s.truncate(10);
        s
    }

    /// Parses 64 hex characters.
    pub fn from_hex(s: &str) -> Result<Self, HexError> {
        let bytes = s.as_bytes();
        if bytes.len() != 64 {
            return Err(HexError::Length(bytes.len()));
        }
        let mut out = [0u8; 32];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            let hi = nibble(pair[0]).ok_or(HexError::Char(i * 2))?;
            let lo = nibble(pair[1]).ok_or(HexError::Char(i * 2 + 1))?;
            out[i] = (hi << 4) | lo;
        }
        Ok(Hash(out))
    }
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Why a string is not a hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HexError {
    /// Not 64 characters long.
    Length(usize),
    /// Not a hex digit at this position.
    Char(usize),
}

impl fmt::Display for HexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HexError::Length(n) => write!(f, "a hash is 64 hex characters, got {n}"),
            HexError::Char(i) => write!(f, "not a hex digit at position {i}"),
        }
    }
}

impl core::error::Error for HexError {}

impl FromStr for Hash {
    type Err = HexError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Hash::from_hex(s)
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({self})")
    }
}

impl From<[u8; 32]> for Hash {
    fn from(b: [u8; 32]) -> Self {
        Hash(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_roundtrip() {
        let h = Hash([0xab; 32]);
        let s = h.to_hex();
        assert_eq!(s.len(), 64);
        assert!(s.starts_with("abab"));
        assert_eq!(Hash::from_hex(&s).unwrap(), h);
        assert_eq!(h.fmt_short(), "ababababab");
    }

    #[test]
    fn hex_errors() {
        assert_eq!(Hash::from_hex("ab"), Err(HexError::Length(2)));
        let mut s = "0".repeat(64);
        s.replace_range(5..6, "g");
        assert_eq!(Hash::from_hex(&s), Err(HexError::Char(5)));
    }
}
