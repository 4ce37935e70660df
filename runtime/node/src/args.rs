//! Argument types more than one command takes.

use clap::ValueEnum;
use zhtp_types::{Hash, StorageTier};

/// A content hash argument: 64 hex characters.
pub fn content_hash(s: &str) -> Result<Hash, String> {
    Hash::from_hex(s.trim()).map_err(|e| format!("not a content hash: {e}"))
}

/// A storage tier on the command line: the same names as everywhere else
/// ([`StorageTier::as_str`]), listed by `--help`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Tier {
    /// Frequently read; 4+2.
    Hot,
    /// Occasionally read; 4+2. The pricing reference.
    Warm,
    /// Rarely read; 8+4.
    Cold,
    /// Kept for the long term; 16+8.
    Archive,
}

impl From<Tier> for StorageTier {
    fn from(t: Tier) -> Self {
        match t {
            Tier::Hot => StorageTier::Hot,
            Tier::Warm => StorageTier::Warm,
            Tier::Cold => StorageTier::Cold,
            Tier::Archive => StorageTier::Archive,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tier_names_are_the_tiers_own() {
        for t in Tier::value_variants() {
            let name = t.to_possible_value().unwrap().get_name().to_owned();
            assert_eq!(StorageTier::from(*t).as_str(), name);
        }
    }
}
