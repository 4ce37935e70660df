use serde::Serialize;
use zhtp_abi::quality::{Assessment, Class, Measurements};

use crate::error::{CallError, LoadError};
use crate::plugin::Plugin;

/// A quality plugin: typed calls over [`Plugin`].
#[derive(Clone, Debug)]
pub struct QualityPlugin {
    plugin: Plugin,
}

impl QualityPlugin {
    /// Wraps a plugin loaded as [`Kind::Quality`](crate::Kind::Quality).
    pub fn new(plugin: Plugin) -> Self {
        Self { plugin }
    }

    /// The untyped plugin.
    pub fn plugin(&self) -> &Plugin {
        &self.plugin
    }

    /// Judges one provider's period. The request must satisfy SPEC.md R-qreq-ranges (the host
    /// refuses it itself otherwise, without calling the guest); the output must pass section
    /// 12.4.
    pub fn assess(&self, m: &Measurements) -> Result<Assessment, CallError> {
        self.plugin
            .call_message(m, m.check_ranges(), decode_assessment)
    }

    /// Runs the install self-check (SPEC.md section 12.6) up to its first failure.
    pub fn self_check(&self) -> Result<(), LoadError> {
        match self.samples().find_map(|c| c.failure()) {
            Some(why) => Err(LoadError::SelfCheck(why)),
            None => Ok(()),
        }
    }

    /// Runs every request of the self-check and reports each answer and what it breaks.
    pub fn self_check_report(&self) -> QualityCheck {
        QualityCheck {
            calls: self.samples().collect(),
        }
    }

    fn samples(&self) -> impl Iterator<Item = QualitySample> + '_ {
        SAMPLES.iter().map(|&(name, fill, must_list)| {
            let mut request = sample_base();
            fill(&mut request);
            let answer = self.assess(&request);
            let problem = match (&answer, must_list) {
                (Err(e), _) => Some(e.to_string()),
                (Ok(a), Some(class)) if !a.violations.contains(&class) => Some(format!(
                    "does not list {class:?} (R-qcheck-{})",
                    if class == Class::DataLoss {
                        "loss"
                    } else {
                        "silent"
                    }
                )),
                (Ok(a), None) if name == "clean" && !a.violations.is_empty() => Some(format!(
                    "lists {:?} for a period whose every audit passed fast (R-qcheck-clean)",
                    a.violations
                )),
                _ => None,
            };
            QualitySample {
                name,
                request,
                assessment: answer.ok(),
                problem,
            }
        })
    }
}

/// A sample's name, how it differs from [`sample_base`], and the class it must list.
type Sample = (&'static str, fn(&mut Measurements), Option<Class>);

/// The self-check's requests, in order (SPEC.md R-qcheck-requests).
const SAMPLES: [Sample; 5] = [
    (
        "clean",
        |m| {
            (m.passed, m.latency_avg_ms, m.latency_max_ms) = (4, 5, 9);
        },
        None,
    ),
    ("lost", |m| m.lost = 4, Some(Class::DataLoss)),
    ("silent", |m| m.unanswered = 4, Some(Class::Unavailability)),
    (
        "mixed",
        |m| {
            (m.passed, m.slow, m.lost, m.latency_avg_ms, m.latency_max_ms) = (2, 1, 1, 40, 70);
        },
        None,
    ),
    ("unaudited", |m| m.audits = 0, None),
];

/// Period 0, 1 ZHTP, four audits (none counted yet), a 500 ms deadline, the default SLA.
fn sample_base() -> Measurements {
    Measurements {
        period: 0,
        payment: 1_000_000,
        audits: 4,
        deadline_ms: 500,
        uptime_bp: 9_500,
        latency_ms: 5_000,
        integrity_bp: 9_900,
        bandwidth_bp: 8_000,
        ..Measurements::default()
    }
}

/// One request of a quality plugin's self-check and what the plugin answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct QualitySample {
    /// `clean`, `lost`, `silent`, `mixed` or `unaudited`.
    pub name: &'static str,
    /// What was asked.
    pub request: Measurements,
    /// The valid assessment, if the plugin gave one.
    pub assessment: Option<Assessment>,
    /// The rule this answer breaks, if any.
    pub problem: Option<String>,
}

impl QualitySample {
    /// `"<name> period: <problem>"` if this answer breaks a rule.
    pub fn failure(&self) -> Option<String> {
        Some(format!("{} period: {}", self.name, self.problem.as_ref()?))
    }
}

/// Every answer of a quality plugin's self-check, in the order asked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct QualityCheck {
    /// The five requests.
    pub calls: Vec<QualitySample>,
}

impl QualityCheck {
    /// Whether the plugin passed.
    pub fn passed(&self) -> bool {
        self.calls.iter().all(|c| c.problem.is_none())
    }
}

/// A quality plugin's output as an [`Assessment`], checked against SPEC.md section 12.4 in
/// its order: it decodes, lists at most five violations, is exact, and keeps its ranges.
fn decode_assessment(out: &[u8]) -> Result<Assessment, CallError> {
    let a: Assessment = crate::plugin::decode_output(out, "an Assessment")?;
    a.check().map_err(|e| CallError::BadOutput(e.into()))?;
    Ok(a)
}
