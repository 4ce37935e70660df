use core::fmt;
use core::str::FromStr;

use serde::{Deserialize, Serialize};

/// Storage class of a piece of content: how fast it must be served and how it is priced and coded.
///
/// Spelled `hot`, `warm`, `cold`, `archive` everywhere people see it: command line, `Display`,
/// JSON (which also reads the capitalised names of earlier versions). Postcard encodes the
/// variant's index, so these names are not part of the ABI.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageTier {
    /// Frequently accessed, high-speed storage.
    #[serde(alias = "Hot")]
    Hot,
    /// Occasionally accessed, balanced performance. The pricing reference tier.
    #[serde(alias = "Warm")]
    Warm,
    /// Rarely accessed, cost-optimised.
    #[serde(alias = "Cold")]
    Cold,
    /// Long-term storage, lowest cost, widest erasure code.
    #[serde(alias = "Archive")]
    Archive,
}

impl StorageTier {
    /// All tiers, hottest first.
    pub const ALL: [StorageTier; 4] = [Self::Hot, Self::Warm, Self::Cold, Self::Archive];

    /// Lower-case name as used on the command line.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Hot => "hot",
            Self::Warm => "warm",
            Self::Cold => "cold",
            Self::Archive => "archive",
        }
    }
}

impl fmt::Display for StorageTier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The string is not one of hot, warm, cold, archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseTierError;

impl fmt::Display for ParseTierError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unknown storage tier (expected hot, warm, cold or archive)")
    }
}

impl core::error::Error for ParseTierError {}

impl FromStr for StorageTier {
    type Err = ParseTierError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s))
            .ok_or(ParseTierError)
    }
}
