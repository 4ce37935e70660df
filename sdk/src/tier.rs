//! Messages of tier plugins, and the durability model to choose codes with.
//!
//! A tier plugin places content: which tier and erasure code a new content gets, and whether
//! stored content should migrate. [`durability`] is the same model the host uses to state a
//! content's durability (`zhtp info`), so a plugin that aims at "9 nines" and the host that
//! reports it agree.

pub use zhtp_abi::durability;
pub use zhtp_abi::tier::*;
