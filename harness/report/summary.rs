//! The summary table printed at the end of a run.

use super::outcome::{RunReport, Status, StepOutcome};

/// The summary table printed at the end of a run.
pub fn summary(r: &RunReport) -> String {
    let mut s = format!("\nbox {} (lab {})", r.box_name, r.lab);
    s.push_str(&format!(
        "\n{:<22} {:>7} {:>9}  {}\n",
        "scenario", "steps", "time", "result"
    ));
    let mut names: Vec<&str> = Vec::new();
    for c in &r.checks {
        if !names.contains(&c.scenario.as_str()) {
            names.push(&c.scenario);
        }
    }
    for n in names {
        let cs: Vec<&StepOutcome> = r.checks.iter().filter(|c| c.scenario == n).collect();
        let passed = cs.iter().filter(|c| c.status == Status::Passed).count();
        let secs: f64 = cs.iter().map(|c| c.duration_secs).sum();
        let result = if cs.iter().any(|c| c.status == Status::Failed) {
            "FAILED"
        } else if passed == cs.len() {
            "passed"
        } else {
            "skipped"
        };
        s.push_str(&format!(
            "{n:<22} {:>7} {secs:>8.1}s  {result}\n",
            format!("{passed}/{}", cs.len())
        ));
    }
    let phases: Vec<String> = r
        .phases
        .iter()
        .map(|(p, t)| format!("{p} {t:.1}s"))
        .collect();
    s.push_str(&format!("phases: {}\n", phases.join(", ")));
    for c in r.checks.iter().filter(|c| c.status == Status::Failed) {
        s.push_str(&format!(
            "\nFAILED {} / {} ({}):\n{}\n",
            c.scenario, c.step, c.location, c.message
        ));
    }
    s.push_str(&format!(
        "\nlogs: {}\n{}\n",
        r.log_dir.display(),
        if r.passed { "ALL PASSED" } else { "FAILED" }
    ));
    s
}

/// With several labs: one line each (box, result, total time, lab id).
pub fn labs_table(reports: &[RunReport]) -> String {
    let mut s = "\nlabs:\n".to_string();
    for r in reports {
        let total = r.phases.last().map(|p| p.1).unwrap_or(0.0);
        s.push_str(&format!(
            "  {:<10} {}  ({total:.0}s, lab {})\n",
            r.box_name,
            if r.passed { "passed" } else { "FAILED" },
            r.lab
        ));
    }
    s
}
