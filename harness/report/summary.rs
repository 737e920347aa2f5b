//! The summary table printed at the end of a run.

use super::outcome::{RunReport, Status, StepOutcome};
use crate::sys::safe_text::terminal;

/// How the steps of a scenario skipped for its declared versions start their message.
pub const SKIPPED_BY_NEED: &str = "SKIPPED (declared in the scenario file): ";

/// One line per scenario, in the order they ran: steps passed, time, result.
fn scenario_lines(r: &RunReport) -> String {
    let mut s = String::new();
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
        } else if cs.iter().all(|c| c.message.starts_with(SKIPPED_BY_NEED)) {
            "SKIPPED"
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
    s
}

/// The summary table printed at the end of a run.
pub fn summary(r: &RunReport) -> String {
    let mut s = format!("\nbox {} (lab {})", r.box_name, r.lab);
    s.push_str(&format!(
        "\n{:<22} {:>7} {:>9}  {}\n",
        "scenario", "steps", "time", "result"
    ));
    s.push_str(&scenario_lines(r));
    let phases: Vec<String> = r
        .phases
        .iter()
        .map(|(p, t)| format!("{p} {t:.1}s"))
        .collect();
    s.push_str(&format!("phases: {}\n", phases.join(", ")));
    let skipped = skipped_by_need(r);
    for (scenario, file, reason) in &skipped {
        s.push_str(&format!("\nSKIPPED {scenario} ({file}): {reason}\n"));
    }
    for c in r.checks.iter().filter(|c| c.status == Status::Failed) {
        // The message quotes the hosts' output: shown, never interpreted by a terminal.
        s.push_str(&format!(
            "\nFAILED {} / {} ({}):\n{}\n",
            c.scenario,
            c.step,
            c.location,
            terminal(&c.message)
        ));
    }
    s.push_str(&format!(
        "\nlogs: {}\n{}\n",
        r.log_dir.display(),
        match (r.passed, skipped.len()) {
            (false, _) => "FAILED".to_string(),
            (true, 0) => "ALL PASSED".to_string(),
            (true, n) => format!(
                "ALL PASSED ({n} scenario(s) SKIPPED for their declared versions, see above)"
            ),
        }
    ));
    s
}

/// The scenarios skipped for the versions they declare: (scenario, file, reason), once each.
fn skipped_by_need(r: &RunReport) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = Vec::new();
    for c in &r.checks {
        let Some(reason) = c.message.strip_prefix(SKIPPED_BY_NEED) else {
            continue;
        };
        if out.iter().any(|(sc, _, _)| sc == &c.scenario) {
            continue;
        }
        let file = c
            .location
            .rsplit_once(':')
            .map_or(c.location.as_str(), |(f, _)| f);
        out.push((c.scenario.clone(), file.to_string(), reason.to_string()));
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(scenario: &str, status: Status, message: &str) -> StepOutcome {
        StepOutcome {
            scenario: scenario.into(),
            step: "s".into(),
            host: "node1".into(),
            location: format!("scenarios/{scenario}.toml:7"),
            status,
            duration_secs: if status == Status::Passed { 0.5 } else { 0.0 },
            waited_secs: 0.0,
            message: message.into(),
        }
    }

    #[test]
    fn a_scenario_skipped_for_its_versions_is_shown_with_its_reason() {
        let reason = "needs PostgreSQL 14 or later (this box has 13): uses X";
        let skipped = format!("{SKIPPED_BY_NEED}{reason}");
        let r = RunReport {
            lab: "abc123".into(),
            box_name: "bullseye".into(),
            passed: true,
            phases: vec![],
            checks: vec![
                outcome("replicate", Status::Passed, ""),
                outcome("newer", Status::Skipped, &skipped),
                outcome("newer", Status::Skipped, &skipped),
            ],
            provision_changes: vec![],
            log_dir: "/tmp/x".into(),
            kept: false,
        };
        let s = summary(&r);
        assert!(
            s.contains("newer                      0/2      0.0s  SKIPPED"),
            "{s}"
        );
        assert!(
            s.contains(&format!("SKIPPED newer (scenarios/newer.toml): {reason}")),
            "{s}"
        );
        assert!(s.contains("ALL PASSED (1 scenario(s) SKIPPED"), "{s}");
    }
}
