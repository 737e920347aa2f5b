//! Helpers shared by the lab test targets.

use pglab::run::RunReport;
use pglab::scenario::runner::Status;
use std::collections::BTreeSet;

/// Every check of the run passed (a failed one is printed whole: step, host, message).
pub fn assert_all_passed(report: &RunReport) {
    let failed: Vec<_> = report
        .checks
        .iter()
        .filter(|c| c.status != Status::Passed)
        .collect();
    assert!(
        report.passed && failed.is_empty(),
        "lab {}: {failed:#?}",
        report.lab
    );
}

/// The scenarios that ran.
pub fn scenarios_run(report: &RunReport) -> BTreeSet<&str> {
    report.checks.iter().map(|c| c.scenario.as_str()).collect()
}
