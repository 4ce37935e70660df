//! Reed-Solomon erasure coding behind one small trait, with two implementations.
//!
//! The two codes give different parity for the same data (Vandermonde over GF(2^8) vs Leopard
//! FFT over GF(2^16)), so the manifest records which one wrote the shards and a reader refuses a
//! code it does not implement instead of misdecoding.
//!
//! Default: `reed-solomon-simd` — it dispatches to SIMD at run time, so one binary is fast on
//! every x86_64 and aarch64 machine, and it encodes 4+2 at ~10 GB/s here. `reed-solomon-erasure`
//! is built without its `simd-accel` feature: that feature compiles C with `-march=haswell`, and
//! the resulting binary dies with SIGILL on a CPU without AVX2; its pure-Rust path is 3-6x
//! slower but portable, and it reconstructs 4+2 faster than reed-solomon-simd (see
//! benches/README.md for the side-by-side figures).

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// Which code produced a content's shards.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CodeKind {
    /// `reed-solomon-erasure` (GF(2^8), Vandermonde). Manifest code 0.
    ReedSolomonErasure,
    /// `reed-solomon-simd` (GF(2^16), Leopard FFT). Manifest code 1.
    ReedSolomonSimd,
}

impl CodeKind {
    /// The number written in manifests.
    pub const fn id(self) -> u8 {
        match self {
            Self::ReedSolomonErasure => 0,
            Self::ReedSolomonSimd => 1,
        }
    }

    /// Reads a manifest code number.
    pub fn from_id(id: u8) -> Result<Self, Error> {
        match id {
            0 => Ok(Self::ReedSolomonErasure),
            1 => Ok(Self::ReedSolomonSimd),
            other => Err(Error::UnsupportedCode(other)),
        }
    }

    /// Name for people.
    pub const fn name(self) -> &'static str {
        match self {
            Self::ReedSolomonErasure => "reed-solomon-erasure",
            Self::ReedSolomonSimd => "reed-solomon-simd",
        }
    }
}

/// An erasure code configuration as recorded in a manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CodeParams {
    /// Manifest code number (see [`CodeKind::id`]).
    pub code: u8,
    /// Data shards per segment (k).
    pub data: u8,
    /// Parity shards per segment (m).
    pub parity: u8,
}

impl CodeParams {
    /// `k + m` with the default code.
    pub fn new(kind: CodeKind, data: u8, parity: u8) -> Result<Self, Error> {
        let p = Self {
            code: kind.id(),
            data,
            parity,
        };
        p.validate()?;
        Ok(p)
    }

    /// The code kind, or an error for a code this version does not implement.
    pub fn kind(&self) -> Result<CodeKind, Error> {
        CodeKind::from_id(self.code)
    }

    /// Total shards per segment.
    pub fn total(&self) -> usize {
        self.data as usize + self.parity as usize
    }

    /// k ≥ 1, m ≥ 1, k + m ≤ 255.
    pub fn validate(&self) -> Result<(), Error> {
        if self.data == 0 || self.parity == 0 || self.total() > 255 {
            return Err(Error::Params(format!(
                "erasure code {}+{}: need k ≥ 1, m ≥ 1 and k + m ≤ 255",
                self.data, self.parity
            )));
        }
        Ok(())
    }
}

/// `k+m` (e.g. `16+8`) with the default code, as on the command line.
impl std::str::FromStr for CodeParams {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            Error::Params(format!(
                "`{s}` is not an erasure code k+m, e.g. 4+2 or 16+8"
            ))
        };
        let (k, m) = s.split_once('+').ok_or_else(bad)?;
        let k: u8 = k.trim().parse().map_err(|_| bad())?;
        let m: u8 = m.trim().parse().map_err(|_| bad())?;
        Self::new(CodeKind::ReedSolomonSimd, k, m)
    }
}

impl std::fmt::Display for CodeParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}+{}", self.data, self.parity)
    }
}

/// A Reed-Solomon code. Shards of one segment all have the same length, a multiple of 64.
pub trait ErasureCode: Send + Sync {
    /// Which code this is.
    fn kind(&self) -> CodeKind;
    /// Computes the m parity shards of `data` (k equal-length shards).
    fn encode(&self, data: &[&[u8]]) -> Result<Vec<Vec<u8>>, Error>;
    /// Fills every `None` among the k + m slots from at least k present ones.
    fn reconstruct(&self, shards: &mut [Option<Vec<u8>>]) -> Result<(), Error>;
}

/// The implementation of `params`.
pub fn erasure_code(params: CodeParams) -> Result<Box<dyn ErasureCode>, Error> {
    params.validate()?;
    let (k, m) = (params.data as usize, params.parity as usize);
    Ok(match params.kind()? {
        CodeKind::ReedSolomonErasure => {
            Box::new(Rse(reed_solomon_erasure::galois_8::ReedSolomon::new(k, m)
                .map_err(|e| Error::Erasure(format!("{e:?}")))?))
        }
        CodeKind::ReedSolomonSimd => Box::new(Rss { k, m }),
    })
}

struct Rse(reed_solomon_erasure::galois_8::ReedSolomon);

impl ErasureCode for Rse {
    fn kind(&self) -> CodeKind {
        CodeKind::ReedSolomonErasure
    }

    fn encode(&self, data: &[&[u8]]) -> Result<Vec<Vec<u8>>, Error> {
        let len = data.first().map_or(0, |d| d.len());
        let mut parity = vec![vec![0u8; len]; self.0.parity_shard_count()];
        let mut refs: Vec<&mut [u8]> = parity.iter_mut().map(|p| p.as_mut_slice()).collect();
        self.0
            .encode_sep(data, &mut refs)
            .map_err(|e| Error::Erasure(format!("{e:?}")))?;
        Ok(parity)
    }

    fn reconstruct(&self, shards: &mut [Option<Vec<u8>>]) -> Result<(), Error> {
        self.0
            .reconstruct(shards)
            .map_err(|e| Error::Erasure(format!("{e:?}")))
    }
}

struct Rss {
    k: usize,
    m: usize,
}

impl ErasureCode for Rss {
    fn kind(&self) -> CodeKind {
        CodeKind::ReedSolomonSimd
    }

    fn encode(&self, data: &[&[u8]]) -> Result<Vec<Vec<u8>>, Error> {
        reed_solomon_simd::encode(self.k, self.m, data).map_err(|e| Error::Erasure(e.to_string()))
    }

    fn reconstruct(&self, shards: &mut [Option<Vec<u8>>]) -> Result<(), Error> {
        let (k, m) = (self.k, self.m);
        if shards.len() != k + m {
            return Err(Error::Erasure(format!(
                "expected {} shards, got {}",
                k + m,
                shards.len()
            )));
        }
        let data_missing = shards[..k].iter().any(Option::is_none);
        if data_missing {
            let original = shards[..k]
                .iter()
                .enumerate()
                .filter_map(|(i, s)| s.as_deref().map(|s| (i, s)));
            let recovery = shards[k..]
                .iter()
                .enumerate()
                .filter_map(|(i, s)| s.as_deref().map(|s| (i, s)));
            let restored = reed_solomon_simd::decode(k, m, original, recovery)
                .map_err(|e| Error::Erasure(e.to_string()))?;
            for (i, shard) in restored {
                shards[i] = Some(shard);
            }
        }
        if shards[k..].iter().any(Option::is_none) {
            let data: Vec<&[u8]> = shards[..k]
                .iter()
                .map(|s| s.as_deref().unwrap_or(&[]))
                .collect();
            let parity = self.encode(&data)?;
            for (slot, p) in shards[k..].iter_mut().zip(parity) {
                if slot.is_none() {
                    *slot = Some(p);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_parse_as_k_plus_m() {
        let c: CodeParams = "16+8".parse().unwrap();
        assert_eq!((c.data, c.parity, c.to_string()), (16, 8, "16+8".into()));
        assert_eq!(" 4 + 2 ".trim().parse::<CodeParams>().unwrap().total(), 6);
        for bad in ["16", "16+", "+8", "a+b", "0+2", "4+0", "200+100", "300+1"] {
            assert!(
                matches!(bad.parse::<CodeParams>(), Err(Error::Params(_))),
                "{bad}"
            );
        }
    }

    fn roundtrip(kind: CodeKind, k: u8, m: u8) {
        let code = erasure_code(CodeParams::new(kind, k, m).unwrap()).unwrap();
        let data: Vec<Vec<u8>> = (0..k)
            .map(|i| (0..256u32).map(|j| (j * 7 + i as u32 * 13) as u8).collect())
            .collect();
        let refs: Vec<&[u8]> = data.iter().map(|d| d.as_slice()).collect();
        let parity = code.encode(&refs).unwrap();
        assert_eq!(parity.len(), m as usize);
        let full: Vec<Vec<u8>> = data.iter().cloned().chain(parity).collect();
        // Lose m shards, data first.
        let mut shards: Vec<Option<Vec<u8>>> = full.iter().cloned().map(Some).collect();
        for s in shards.iter_mut().take(m as usize) {
            *s = None;
        }
        code.reconstruct(&mut shards).unwrap();
        let got: Vec<Vec<u8>> = shards.into_iter().map(Option::unwrap).collect();
        assert_eq!(got, full);
    }

    #[test]
    fn both_codes_roundtrip() {
        for kind in [CodeKind::ReedSolomonErasure, CodeKind::ReedSolomonSimd] {
            roundtrip(kind, 4, 2);
            roundtrip(kind, 16, 8);
        }
    }

    #[test]
    fn codes_differ_and_unknown_codes_are_refused() {
        let data = [vec![1u8; 64], vec![2u8; 64]];
        let refs: Vec<&[u8]> = data.iter().map(|d| d.as_slice()).collect();
        let a = erasure_code(CodeParams::new(CodeKind::ReedSolomonErasure, 2, 1).unwrap()).unwrap();
        let b = erasure_code(CodeParams::new(CodeKind::ReedSolomonSimd, 2, 1).unwrap()).unwrap();
        assert_ne!(a.encode(&refs).unwrap(), b.encode(&refs).unwrap());
        let p = CodeParams {
            code: 9,
            data: 4,
            parity: 2,
        };
        assert!(matches!(erasure_code(p), Err(Error::UnsupportedCode(9))));
    }

    #[test]
    fn bad_params_are_refused() {
        assert!(CodeParams::new(CodeKind::ReedSolomonSimd, 0, 2).is_err());
        assert!(CodeParams::new(CodeKind::ReedSolomonSimd, 200, 56).is_err());
        assert!(CodeParams::new(CodeKind::ReedSolomonSimd, 200, 55).is_ok());
    }
}
