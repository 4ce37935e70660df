//! The quality-sla plugin's rules (plugins/quality-sla/README.md), through the wasm host and
//! natively: the two must agree on every judgement. Also the host's side of a quality call:
//! the self-check, and outputs that break SPEC.md section 12.4 refused by name.

use zhtp_host::abi::quality::{Assessment, Class, Measurements};
use zhtp_host::{CallError, Kind, QualityPlugin};
use zhtp_tests::*;

fn plugin() -> QualityPlugin {
    QualityPlugin::new(
        host()
            .load(Kind::Quality, zhtp_artifacts::QUALITY_SLA)
            .expect("quality-sla loads"),
    )
}

fn period(passed: u32, slow: u32, lost: u32, unanswered: u32, mean: u32) -> Measurements {
    Measurements {
        period: 0,
        payment: 1_000_000,
        audits: passed + slow + lost + unanswered,
        passed,
        slow,
        lost,
        unanswered,
        latency_avg_ms: mean,
        latency_max_ms: mean * 2,
        deadline_ms: 500,
        uptime_bp: 9_500,
        latency_ms: 5_000,
        integrity_bp: 9_900,
        bandwidth_bp: 8_000,
    }
}

/// Judges `m` through wasm and natively, asserts they agree and returns the judgement.
fn assess(p: &QualityPlugin, m: Measurements) -> Assessment {
    let wasm = p.assess(&m).expect("wasm assessment");
    assert_eq!(quality_sla::assess(m).expect("native assessment"), wasm);
    wasm
}

#[test]
fn a_clean_fast_period_earns_the_top_bonus_and_a_slower_one_less() {
    let p = plugin();
    let a = assess(&p, period(4, 0, 0, 0, 5));
    assert_eq!(
        (a.score_bp, a.bonus_bp, a.violations.len()),
        (10_000, 1_500, 0)
    );
    assert_eq!(assess(&p, period(4, 0, 0, 0, 100)).bonus_bp, 750);
    assert_eq!(assess(&p, period(4, 0, 0, 0, 200)).bonus_bp, 0);
}

#[test]
fn each_failure_is_its_class_and_earns_no_bonus() {
    let p = plugin();
    let a = assess(&p, period(3, 0, 1, 0, 5));
    assert_eq!(
        (a.violations.as_slice(), a.bonus_bp),
        (&[Class::DataLoss][..], 0)
    );
    assert_eq!(a.score_bp, 7_500);
    assert_eq!(
        assess(&p, period(3, 0, 0, 1, 5)).violations,
        [Class::Unavailability]
    );
    assert_eq!(
        assess(&p, period(3, 1, 0, 0, 5)).violations,
        [Class::SlowResponse]
    );
    assert_eq!(
        assess(&p, period(4, 0, 0, 0, 3_000)).violations,
        [Class::Degradation]
    );
    // A holder that lost everything answers "not held": data loss, and it did answer.
    assert_eq!(
        assess(&p, period(0, 0, 4, 0, 0)).violations,
        [Class::DataLoss]
    );
}

#[test]
fn integrity_and_uptime_are_shares_of_the_sla() {
    let p = plugin();
    // One loss in 200 audits is 99.5% intact: within the SLA's 99%; one miss in 200 is within
    // its 95% uptime; but a bonus needs every audit passed.
    let a = assess(&p, period(198, 0, 1, 1, 5));
    assert_eq!((a.violations.len(), a.bonus_bp), (0, 0));
    // Two misses in 20 is 90% answered: below 95%.
    assert_eq!(
        assess(&p, period(18, 0, 0, 2, 5)).violations,
        [Class::Unavailability]
    );
}

#[test]
fn a_period_without_audits_is_judged_clean_without_a_bonus() {
    let a = assess(&plugin(), period(0, 0, 0, 0, 0));
    assert_eq!((a.score_bp, a.bonus_bp, a.violations.len()), (10_000, 0, 0));
}

#[test]
fn quality_sla_passes_its_self_check_with_every_sample_answered() {
    let report = plugin().self_check_report();
    assert!(report.passed(), "{report:?}");
    let names: Vec<&str> = report.calls.iter().map(|c| c.name).collect();
    assert_eq!(names, ["clean", "lost", "silent", "mixed", "unaudited"]);
    assert!(report.calls.iter().all(|c| c.assessment.is_some()));
}

#[test]
fn the_host_refuses_a_request_that_does_not_add_up_without_calling_the_guest() {
    let mut m = period(4, 0, 0, 0, 5);
    m.audits = 5;
    assert!(matches!(
        plugin().assess(&m),
        Err(CallError::InvalidRequest(why)) if why.contains("audits")
    ));
}
