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
        self.plugin
            .call_message(req, req.check_ranges(), decode_quote)
    }

    /// Runs the install self-check (SPEC.md section 9) up to its first failure, in the order
    /// of [`Self::self_check_report`]: a plugin that fails early costs no more calls.
    pub fn self_check(&self) -> Result<(), LoadError> {
        match self.sample_calls().find_map(|c| c.failure()) {
            Some(why) => Err(LoadError::SelfCheck(why)),
            None => Ok(()),
        }
    }

    /// Runs every request of the install self-check (SPEC.md section 9) and reports each
    /// answer and what, if anything, it breaks. Nothing stops early: an author sees every
    /// failing request at once (`zhtp plugin check`). A plugin that times out on each costs
    /// 48 × the call limit (2.4 s by default).
    pub fn self_check_report(&self) -> SelfCheck {
        SelfCheck {
            calls: self.sample_calls().collect(),
        }
    }

    /// The self-check's 48 requests, asked lazily, each base request followed by the same
    /// with its size doubled.
    fn sample_calls(&self) -> impl Iterator<Item = SampleCall> + '_ {
        StorageTier::ALL.into_iter().flat_map(move |tier| {
            [false, true].into_iter().flat_map(move |quality| {
                [(1, 1), (1_000_000_000, 1), (1 << 40, 365)]
                    .into_iter()
                    .flat_map(move |(size, days)| {
                        self.sample_pair(QuoteRequest::new(size, days, tier, quality))
                    })
            })
        })
    }

    /// `one` and the same request with its size doubled, and what each answer breaks.
    fn sample_pair(&self, one: QuoteRequest) -> [SampleCall; 2] {
        let two = QuoteRequest {
            size_bytes: one.size_bytes * 2,
            ..one.clone()
        };
        let first = self.quote_only(&one);
        let second = self.quote_only(&two);
        let first_problem = match &first {
            Err(e) => Some(e.to_string()),
            Ok(q) if q.total == 0 => Some("zero price (R-check-nonzero)".into()),
            Ok(_) => None,
        };
        let second_problem = match (&first, &second) {
            (_, Err(e)) => Some(e.to_string()),
            (Ok(a), Ok(b)) if b.total < a.total => Some(format!(
                "doubling the size lowered the price from {} to {} (R-check-monotone)",
                a.total, b.total
            )),
            _ => None,
        };
        [
            SampleCall::new(one, first, first_problem),
            SampleCall::new(two, second, second_problem),
        ]
    }
}

/// One request of the install self-check and what the plugin answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SampleCall {
    /// What was asked.
    pub request: QuoteRequest,
    /// The valid quote, if the plugin gave one.
    pub quote: Option<Quote>,
    /// The rule this answer breaks, if any (the call's error, a zero price, a price that fell
    /// when the size doubled).
    pub problem: Option<String>,
}

impl SampleCall {
    fn new(
        request: QuoteRequest,
        answer: Result<Quote, CallError>,
        problem: Option<String>,
    ) -> Self {
        Self {
            request,
            quote: answer.ok(),
            problem,
        }
    }

    /// `"<request>: <problem>"` if this answer breaks a rule.
    pub fn failure(&self) -> Option<String> {
        Some(format!("{}: {}", self.describe(), self.problem.as_ref()?))
    }

    /// `1000000000 B, 1 d, warm` — how errors name the request.
    pub fn describe(&self) -> String {
        let r = &self.request;
        format!(
            "{} B, {} d, {}{}",
            r.size_bytes,
            r.duration_days,
            r.tier,
            if r.quality { ", quality" } else { "" }
        )
    }
}

/// Every answer of the install self-check, in the order asked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SelfCheck {
    /// The 48 requests (each base request followed by the same with its size doubled).
    pub calls: Vec<SampleCall>,
}

impl SelfCheck {
    /// Whether the plugin passed: no call has a problem.
    pub fn passed(&self) -> bool {
        self.calls.iter().all(|c| c.problem.is_none())
    }

    /// The first failure, as `"<request>: <problem>"`.
    pub fn failure(&self) -> Option<String> {
        self.calls.iter().find_map(SampleCall::failure)
    }
}

/// A pricing plugin's output as a [`Quote`], checked against SPEC.md section 8.4 in its order:
/// it decodes, lists at most [`Quote::MAX_ADJUSTMENTS`] adjustments, is exactly the shortest
/// encoding of what it decodes to (no trailing bytes, no overlong varint), and its total is the
/// sum of its parts. Inlined for the reason `decode_output` is.
#[inline]
pub(crate) fn decode_quote(out: &[u8]) -> Result<Quote, CallError> {
    let quote: Quote = crate::plugin::decode_output(out, "a Quote")?;
    if !quote.is_consistent() {
        return Err(CallError::BadOutput(format!(
            "total {} is not base + quality_premium + network_fee + escrow_fee",
            quote.total
        )));
    }
    Ok(quote)
}
