/// An amount of money in µZHTP. All money in zhtp is integer: no floats touch it.
pub type MicroZhtp = u64;

/// 1 ZHTP token = 1,000,000 µZHTP.
pub const MICRO_PER_TOKEN: MicroZhtp = 1_000_000;
