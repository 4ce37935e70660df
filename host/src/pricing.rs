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
        req.check_ranges()
            .map_err(|e| CallError::InvalidRequest(e.into()))?;
        // A QuoteRequest is at most 22 bytes of postcard: encode on the stack.
        let mut buf = [0u8; 64];
        let input = postcard::to_slice(req, &mut buf)
            .map_err(|e| CallError::InvalidRequest(format!("cannot encode: {e}")))?;
        self.plugin.call_with(input, decode_quote)
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

/// A pricing plugin's output as a [`Quote`], checked against SPEC.md section 8.4 in its order:
/// it decodes, lists at most [`Quote::MAX_ADJUSTMENTS`] adjustments, is exactly the shortest
/// encoding of what it decodes to (no trailing bytes, no overlong varint), and its total is the
/// sum of its parts.
pub(crate) fn decode_quote(out: &[u8]) -> Result<Quote, CallError> {
    let bad = CallError::BadOutput;
    let (quote, rest) =
        postcard::take_from_bytes::<Quote>(out).map_err(|e| bad(format!("not a Quote: {e}")))?;
    if quote.adjustments.len() > Quote::MAX_ADJUSTMENTS {
        return Err(bad(format!(
            "{} adjustments; at most {}",
            quote.adjustments.len(),
            Quote::MAX_ADJUSTMENTS
        )));
    }
    if !rest.is_empty() {
        return Err(bad(format!(
            "{} bytes after the end of the Quote",
            rest.len()
        )));
    }
    // Decoding consumed every byte; the shortest encoding of the same value is exactly as long
    // only if no varint was overlong.
    let mut buf = [0u8; Quote::MAX_ENCODED_LEN];
    let canonical =
        postcard::to_slice(&quote, &mut buf).map_err(|e| bad(format!("cannot re-encode: {e}")))?;
    if canonical.len() != out.len() {
        return Err(bad(format!(
            "not in the shortest encoding: {} bytes where {} suffice (an overlong varint)",
            out.len(),
            canonical.len()
        )));
    }
    if !quote.is_consistent() {
        return Err(bad(format!(
            "total {} is not base + quality_premium + network_fee + escrow_fee",
            quote.total
        )));
    }
    Ok(quote)
}
