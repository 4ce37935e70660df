//! The state root: a commitment to every key and value of a contract's state, updated in time
//! proportional to a call's writes, not to the state.
//!
//! It is a lattice hash (LtHash, Bellare–Micciancio's additive multiset hash as Facebook's
//! LtHash16 instantiates it): each entry maps to 1,024 16-bit lanes (BLAKE3 in XOF mode over
//! the entry), and the state's accumulator is the lane-wise sum, wrapping, of its entries' ones.
//! Adding an entry adds its lanes, removing subtracts them, so a write costs two 2 KiB hashes
//! whatever the state's size, and a replica that receives a whole state (a new replica
//! catching up) recomputes the same accumulator from the entries alone. The root is the BLAKE3
//! hash of the accumulator. With 16,384 bits of lanes, finding two different states with one
//! accumulator is a hard lattice problem (the parameters of LtHash16).

/// Lanes of the accumulator.
pub const LANES: usize = 1024;

/// A contract state's accumulator. The empty state's is all zeros.
#[derive(Clone, PartialEq, Eq)]
pub struct StateHash(Box<[u16; LANES]>);

impl std::fmt::Debug for StateHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StateHash({})", hex(&self.root()))
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Default for StateHash {
    fn default() -> Self {
        Self(Box::new([0; LANES]))
    }
}

/// The lanes of one entry: BLAKE3 (derived key "zhtp contract state v1") in XOF mode over
/// `u32 LE key length, key, value`, read as little-endian u16s.
fn lanes(key: &[u8], value: &[u8]) -> [u16; LANES] {
    let mut h = blake3::Hasher::new_derive_key("zhtp contract state v1");
    h.update(&(key.len() as u32).to_le_bytes());
    h.update(key);
    h.update(value);
    let mut bytes = [0u8; LANES * 2];
    h.finalize_xof().fill(&mut bytes);
    let mut out = [0u16; LANES];
    for (o, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        *o = u16::from_le_bytes([b[0], b[1]]);
    }
    out
}

impl StateHash {
    /// Adds the entry `key` → `value`.
    pub fn insert(&mut self, key: &[u8], value: &[u8]) {
        for (a, l) in self.0.iter_mut().zip(lanes(key, value)) {
            *a = a.wrapping_add(l);
        }
    }

    /// Removes the entry `key` → `value` (which must be in the state).
    pub fn remove(&mut self, key: &[u8], value: &[u8]) {
        for (a, l) in self.0.iter_mut().zip(lanes(key, value)) {
            *a = a.wrapping_sub(l);
        }
    }

    /// Applies a call's writes: each `(key, before, after)`.
    pub fn apply<'a>(
        &mut self,
        writes: impl IntoIterator<Item = (&'a [u8], Option<&'a [u8]>, Option<&'a [u8]>)>,
    ) {
        for (key, before, after) in writes {
            if let Some(v) = before {
                self.remove(key, v);
            }
            if let Some(v) = after {
                self.insert(key, v);
            }
        }
    }

    /// The 32-byte root: BLAKE3 of the accumulator's 2,048 bytes (lanes little-endian).
    pub fn root(&self) -> [u8; 32] {
        *blake3::hash(&self.to_bytes()).as_bytes()
    }

    /// The accumulator's 2,048 bytes, lanes little-endian (what a node stores).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.iter().flat_map(|l| l.to_le_bytes()).collect()
    }

    /// An accumulator from [`Self::to_bytes`]; `None` unless exactly 2,048 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != LANES * 2 {
            return None;
        }
        let mut out = Self::default();
        for (o, b) in out.0.iter_mut().zip(bytes.chunks_exact(2)) {
            *o = u16::from_le_bytes([b[0], b[1]]);
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_depends_on_the_entries_not_on_the_order_of_writes() {
        let mut a = StateHash::default();
        a.insert(b"k1", b"v1");
        a.insert(b"k2", b"v2");
        let mut b = StateHash::default();
        b.insert(b"k2", b"v2");
        b.insert(b"k0", b"gone");
        b.insert(b"k1", b"v1");
        b.remove(b"k0", b"gone");
        assert_eq!(a, b);
        assert_eq!(a.root(), b.root());
        // Key and value boundaries count: ("k", "1v") is not ("k1", "v").
        let mut c = StateHash::default();
        c.insert(b"k", b"1v1");
        c.insert(b"k2", b"v2");
        assert_ne!(a.root(), c.root());
        // Updating a value moves the root; putting it back restores it.
        let before = a.root();
        a.apply([(&b"k1"[..], Some(&b"v1"[..]), Some(&b"v9"[..]))]);
        assert_ne!(a.root(), before);
        a.apply([(&b"k1"[..], Some(&b"v9"[..]), Some(&b"v1"[..]))]);
        assert_eq!(a.root(), before);
        assert_eq!(StateHash::from_bytes(&a.to_bytes()), Some(a));
        assert_eq!(StateHash::from_bytes(&[0; 7]), None);
    }

    /// Golden: the empty state's root and one entry's, so every implementation agrees.
    #[test]
    fn roots_are_frozen() {
        let empty = StateHash::default();
        assert_eq!(
            hex(&empty.root()),
            hex(blake3::hash(&[0u8; 2048]).as_bytes())
        );
        let mut one = StateHash::default();
        one.insert(b"count", &7u64.to_le_bytes());
        assert_eq!(
            hex(&one.root()),
            "c4654e1ee4bf4e98fad0a33df352c4e0cee9e1bbd28c4e5627f6429a1626469e"
        );
    }
}
