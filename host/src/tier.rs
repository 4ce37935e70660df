use serde::Serialize;
use zhtp_abi::tier::{Choice, Facts};
use zhtp_types::StorageTier;

use crate::error::{CallError, LoadError};
use crate::plugin::Plugin;

/// A tier plugin: typed calls over [`Plugin`].
#[derive(Clone, Debug)]
pub struct TierPlugin {
    plugin: Plugin,
}

impl TierPlugin {
    /// Wraps a plugin loaded as [`Kind::Tier`](crate::Kind::Tier).
    pub fn new(plugin: Plugin) -> Self {
        Self { plugin }
    }

    /// The untyped plugin.
    pub fn plugin(&self) -> &Plugin {
        &self.plugin
    }

    /// Where a content belongs. The request must satisfy SPEC.md R-treq-ranges (the host
    /// refuses it itself otherwise, without calling the guest); the output must pass section
    /// 13.4 for this request.
    pub fn choose(&self, facts: &Facts) -> Result<Choice, CallError> {
        self.plugin
            .call_message(facts, facts.check_ranges(), |out| decode_choice(out, facts))
    }

    /// Runs the install self-check (SPEC.md section 13.7) up to its first failure.
    pub fn self_check(&self) -> Result<(), LoadError> {
        match self.samples().find_map(|c| c.failure()) {
            Some(why) => Err(LoadError::SelfCheck(why)),
            None => Ok(()),
        }
    }

    /// Runs every request of the self-check and reports each answer and what it breaks.
    pub fn self_check_report(&self) -> TierCheck {
        TierCheck {
            calls: self.samples().collect(),
        }
    }

    fn samples(&self) -> impl Iterator<Item = TierSample> + '_ {
        samples().into_iter().map(|(name, request)| {
            let answer = self.choose(&request);
            TierSample {
                name,
                problem: answer.as_ref().err().map(ToString::to_string),
                choice: answer.ok(),
                request,
            }
        })
    }
}

/// The self-check's requests, in order (SPEC.md R-tcheck-requests): 40 nodes living 90 days
/// on average, one-hour repair, unless a sample says otherwise.
fn samples() -> [(&'static str, Facts); 5] {
    const DAY: u64 = 86_400;
    let put = |size, tier| Facts::put(size, tier, 40, 90 * DAY, 3_600);
    [
        ("small-warm-put", put(10_000, StorageTier::Warm)),
        ("large-archive-put", put(1 << 30, StorageTier::Archive)),
        (
            "three-node-put",
            Facts {
                nodes: 3,
                ..put(3 << 20, StorageTier::Hot)
            },
        ),
        (
            "idle-review",
            Facts {
                data: 8,
                parity: 4,
                age_secs: 200 * DAY,
                idle_secs: 200 * DAY,
                ..put(64 << 20, StorageTier::Warm)
            },
        ),
        (
            "busy-review",
            Facts {
                data: 4,
                parity: 2,
                age_secs: DAY,
                reads_30d: 1_000,
                idle_secs: 60,
                ..put(1 << 20, StorageTier::Hot)
            },
        ),
    ]
}

/// One request of a tier plugin's self-check and what the plugin answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TierSample {
    /// `small-warm-put`, `large-archive-put`, `three-node-put`, `idle-review` or
    /// `busy-review`.
    pub name: &'static str,
    /// What was asked.
    pub request: Facts,
    /// The valid choice, if the plugin gave one.
    pub choice: Option<Choice>,
    /// The rule this answer breaks, if any.
    pub problem: Option<String>,
}

impl TierSample {
    /// `"<name>: <problem>"` if this answer breaks a rule.
    pub fn failure(&self) -> Option<String> {
        Some(format!("{}: {}", self.name, self.problem.as_ref()?))
    }
}

/// Every answer of a tier plugin's self-check, in the order asked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TierCheck {
    /// The five requests.
    pub calls: Vec<TierSample>,
}

impl TierCheck {
    /// Whether the plugin passed.
    pub fn passed(&self) -> bool {
        self.calls.iter().all(|c| c.problem.is_none())
    }
}

/// A tier plugin's output as a [`Choice`], checked against SPEC.md section 13.4 in its order:
/// it decodes exactly, then its code is valid and fits the nodes known.
fn decode_choice(out: &[u8], facts: &Facts) -> Result<Choice, CallError> {
    let c: Choice = crate::plugin::decode_output(out, "a Choice")?;
    c.check(facts).map_err(|e| CallError::BadOutput(e.into()))?;
    Ok(c)
}
