use serde::Serialize;
use zhtp_abi::pricing::{Quote, QuoteRequest};
use zhtp_types::{Hash, StorageTier};

use crate::error::{CallError, LoadError};
use crate::plugin::Plugin;

/// A quote together with the plugin that produced it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PricedQuote {
    /// The price.
    pub quote: Quote,
    /// `name@version` of the pricing plugin.
    pub plugin: String,
    /// BLAKE3 of the plugin's wasm.
    pub plugin_hash: Hash,
}

/// A pricing plugin: typed calls over [`Plugin`].
#[derive(Clone, Debug)]
pub struct PricingPlugin {
    plugin: Plugin,
}

impl PricingPlugin {
    /// Wraps a plugin loaded as [`Kind::Pricing`](crate::Kind::Pricing).
    pub fn new(plugin: Plugin) -> Self {
        Self { plugin }
    }

    /// The untyped plugin.
    pub fn plugin(&self) -> &Plugin {
        &self.plugin
    }

    /// Prices `req`. The output must decode as a [`Quote`] and satisfy
    /// `total = base + premium + fees`.
    pub fn quote(&self, req: &QuoteRequest) -> Result<PricedQuote, CallError> {
        let quote = self.quote_only(req)?;
        let info = self.plugin.info();
        Ok(PricedQuote {
            quote,
            plugin: info.name.clone(),
            plugin_hash: info.hash,
        })
    }

    /// Prices `req` without attaching the plugin's identity (the benchmarked hot path).
    pub fn quote_only(&self, req: &QuoteRequest) -> Result<Quote, CallError> {
        // A QuoteRequest is at most ~30 bytes of postcard: encode on the stack.
        let mut buf = [0u8; 64];
        let input = postcard::to_slice(req, &mut buf)
            .map_err(|e| CallError::BadOutput(format!("cannot encode request: {e}")))?;
        self.plugin.call_with(input, |out| {
            let quote: Quote = postcard::from_bytes(out)
                .map_err(|e| CallError::BadOutput(format!("not a Quote: {e}")))?;
            if !quote.is_consistent() {
                return Err(CallError::BadOutput(format!(
                    "total {} is not base + premium + fees",
                    quote.total
                )));
            }
            Ok(quote)
        })
    }

    /// Runs the plugin on sample requests before it may serve: every call must succeed with a
    /// consistent, non-zero quote, and doubling the size must not lower the price.
    pub fn self_check(&self) -> Result<(), LoadError> {
        let fail = |what: String| LoadError::SelfCheck(what);
        for tier in StorageTier::ALL {
            for quality in [false, true] {
                for (size, days) in [(1, 1), (1_000_000_000, 1), (1 << 40, 365)] {
                    let req = QuoteRequest::new(size, days, tier, quality);
                    let one = self
                        .quote_only(&req)
                        .map_err(|e| fail(format!("{size} B, {days} d, {tier}: {e}")))?;
                    if one.total == 0 {
                        return Err(fail(format!("{size} B, {days} d, {tier}: zero price")));
                    }
                    let double = QuoteRequest::new(size * 2, days, tier, quality);
                    let two = self
                        .quote_only(&double)
                        .map_err(|e| fail(format!("{} B, {days} d, {tier}: {e}", size * 2)))?;
                    if two.total < one.total {
                        return Err(fail(format!(
                            "{tier}: doubling {size} B lowered the price from {} to {}",
                            one.total, two.total
                        )));
                    }
                }
            }
        }
        Ok(())
    }
}
