/// Status codes returned by every host function and by guest entry points. One table for all
/// versions; a code's meaning never changes once published.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum Status {
    /// Success.
    Ok = 0,
    /// Returned by a guest entry point: the request was refused; the output holds a UTF-8 reason.
    GuestError = 1,
    /// A pointer/length pair lies outside the guest's memory.
    OutOfBounds = -1,
    /// A length exceeds the ABI limit for that buffer.
    TooLarge = -2,
    /// Bytes that must be UTF-8 (or another encoding) are not.
    InvalidEncoding = -3,
    /// An argument is out of range (negative length, unknown log level).
    InvalidArgument = -4,
    /// The guest exceeded a per-call quota (e.g. log lines); the operation was dropped.
    QuotaExceeded = -5,
    /// Contracts: no such key (`kv.get`, `kv.next`).
    NotFound = -6,
    /// Contracts: the contract's account holds less than a transfer asks.
    InsufficientFunds = -7,
    /// Contracts: the signature does not verify (`crypto.ed25519_verify`).
    BadSignature = -8,
    /// Contracts: the call may not do this (a write in a query, a transfer of a negative amount).
    Forbidden = -9,
}

impl Status {
    /// The i32 that crosses the boundary.
    pub const fn code(self) -> i32 {
        self as i32
    }

    /// Decodes a code; `None` for codes this ABI does not define.
    pub const fn from_code(code: i32) -> Option<Self> {
        Some(match code {
            0 => Self::Ok,
            1 => Self::GuestError,
            -1 => Self::OutOfBounds,
            -2 => Self::TooLarge,
            -3 => Self::InvalidEncoding,
            -4 => Self::InvalidArgument,
            -5 => Self::QuotaExceeded,
            -6 => Self::NotFound,
            -7 => Self::InsufficientFunds,
            -8 => Self::BadSignature,
            -9 => Self::Forbidden,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_roundtrip_and_are_frozen() {
        let all = [
            (Status::Ok, 0),
            (Status::GuestError, 1),
            (Status::OutOfBounds, -1),
            (Status::TooLarge, -2),
            (Status::InvalidEncoding, -3),
            (Status::InvalidArgument, -4),
            (Status::QuotaExceeded, -5),
            (Status::NotFound, -6),
            (Status::InsufficientFunds, -7),
            (Status::BadSignature, -8),
            (Status::Forbidden, -9),
        ];
        for (s, c) in all {
            assert_eq!(s.code(), c);
            assert_eq!(Status::from_code(c), Some(s));
        }
        assert_eq!(Status::from_code(42), None);
    }
}
