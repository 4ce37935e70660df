use core::fmt;

/// Why a size string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseSizeError {
    /// Empty input.
    Empty,
    /// No number at the start.
    NoNumber,
    /// The unit is not one of B, KB, MB, GB, TB, PB, KiB, MiB, GiB, TiB, PiB.
    Unit,
    /// The value does not fit in 64 bits.
    Overflow,
}

impl fmt::Display for ParseSizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Empty => "empty size",
            Self::NoNumber => "a size starts with a number, e.g. 1GB, 500MiB or 1048576",
            Self::Unit => "unknown unit (use B, KB, MB, GB, TB, PB, KiB, MiB, GiB, TiB or PiB)",
            Self::Overflow => "size does not fit in 64 bits",
        })
    }
}

impl core::error::Error for ParseSizeError {}

/// Parses a byte count: plain bytes (`1048576`) or a number with a decimal (`1GB` = 10^9) or
/// binary (`500MiB` = 500·2^20) unit. A fraction is allowed with a unit (`1.5GB`).
pub fn parse_size(s: &str) -> Result<u64, ParseSizeError> {
    let s = s.trim();
    if s.is_empty() {
        return Err(ParseSizeError::Empty);
    }
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let unit = unit.trim();
    let mult: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "m" | "mb" => 1_000_000,
        "g" | "gb" => 1_000_000_000,
        "t" | "tb" => 1_000_000_000_000,
        "p" | "pb" => 1_000_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        "pib" => 1 << 50,
        _ => return Err(ParseSizeError::Unit),
    };
    let num: alloc::string::String = num.chars().filter(|&c| c != '_').collect();
    let (int, frac) = match num.split_once('.') {
        Some((i, f)) => (i, f),
        None => (num.as_str(), ""),
    };
    if int.is_empty() && frac.is_empty() {
        return Err(ParseSizeError::NoNumber);
    }
    let int: u128 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| ParseSizeError::Overflow)?
    };
    let mut total = int
        .checked_mul(mult as u128)
        .ok_or(ParseSizeError::Overflow)?;
    if !frac.is_empty() {
        if frac.len() > 18 || frac.contains('.') {
            return Err(ParseSizeError::NoNumber);
        }
        let f: u128 = frac.parse().map_err(|_| ParseSizeError::NoNumber)?;
        total += f * mult as u128 / 10u128.pow(frac.len() as u32);
    }
    u64::try_from(total).map_err(|_| ParseSizeError::Overflow)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_size("1048576"), Ok(1_048_576));
        assert_eq!(parse_size("1GB"), Ok(1_000_000_000));
        assert_eq!(parse_size("1gb"), Ok(1_000_000_000));
        assert_eq!(parse_size("500MiB"), Ok(500 << 20));
        assert_eq!(parse_size("1.5 GB"), Ok(1_500_000_000));
        assert_eq!(parse_size("10_000B"), Ok(10_000));
    }

    #[test]
    fn errors() {
        assert_eq!(parse_size(""), Err(ParseSizeError::Empty));
        assert_eq!(parse_size("GB"), Err(ParseSizeError::NoNumber));
        assert_eq!(parse_size("5 furlongs"), Err(ParseSizeError::Unit));
        assert_eq!(parse_size("99999999999PB"), Err(ParseSizeError::Overflow));
    }
}
