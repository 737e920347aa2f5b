//! JUnit XML, the report format GitLab, GitHub and Jenkins render: one testsuite per scenario
//! (and box), one testcase per step; failures carry pglab's message.
//!
//! Written here rather than with nextest's `quick-junit`: its output does not validate against
//! Ant's schema, which tests/junit_schema.rs keeps. Measured with quick-junit 0.5.2, every
//! field set (`set_time`, `set_timestamp`, classnames), through `xmllint --schema`: 10 errors —
//! `testsuites` may carry no `name`/`tests`/`failures`/`errors`/`time`; `disabled` is not
//! allowed on `testsuite`; its `timestamp` has milliseconds and an offset where Ant allows
//! neither; the required `package`, `id` and `hostname` are missing (quick-junit has no way to
//! add them), and so is the required `<properties>`.

use super::outcome::{RunReport, Status, StepOutcome};
use crate::sys::safe_text::xml_text;

/// Text for XML: markup escaped, characters XML 1.0 forbids replaced (see `safe_text`).
pub(super) fn esc(s: &str) -> String {
    xml_text(s)
}

/// The report as Apache Ant's JUnit XML (the schema CI systems follow; validated against it
/// in tests/junit_schema.rs). Ant's format has no "skipped": steps that did not run are not
/// testcases; they are listed in the suite's `<system-out>` and counted in a property.
pub fn render(reports: &[RunReport]) -> String {
    let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let stamp = stamp.trim_end_matches('Z');
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n");
    let mut id = 0;
    for r in reports {
        let mut names: Vec<&str> = Vec::new();
        for c in &r.checks {
            if !names.contains(&c.scenario.as_str()) {
                names.push(&c.scenario);
            }
        }
        for name in names {
            out.push_str(&suite(r, name, id, stamp));
            id += 1;
        }
    }
    out.push_str("</testsuites>\n");
    out
}

/// One scenario of one report: its steps that ran as testcases, the others in system-out.
fn suite(r: &RunReport, name: &str, id: usize, stamp: &str) -> String {
    let cs: Vec<_> = r.checks.iter().filter(|c| c.scenario == name).collect();
    let (ran, not_run): (Vec<&StepOutcome>, Vec<&StepOutcome>) =
        cs.iter().partition(|c| c.status != Status::Skipped);
    let failed = ran.iter().filter(|c| c.status == Status::Failed).count();
    let time: f64 = ran.iter().map(|c| c.duration_secs).sum();
    let mut out = format!(
        "  <testsuite package=\"{}\" id=\"{id}\" name=\"{}\" timestamp=\"{stamp}\" hostname=\"{}\" tests=\"{}\" failures=\"{failed}\" errors=\"0\" time=\"{time:.3}\">\n",
        esc(&r.box_name),
        esc(&format!("{}.{name}", r.box_name)),
        esc(&crate::model::names::lab_tag(&r.lab)),
        ran.len()
    );
    out.push_str(&format!(
        "    <properties>\n      <property name=\"box\" value=\"{}\"/>\n      <property name=\"lab\" value=\"{}\"/>\n      <property name=\"logs\" value=\"{}\"/>\n      <property name=\"not_run\" value=\"{}\"/>\n    </properties>\n",
        esc(&r.box_name),
        esc(&r.lab),
        esc(&r.log_dir.display().to_string()),
        not_run.len()
    ));
    for c in &ran {
        out.push_str(&testcase(&r.box_name, c));
    }
    let not_run_text: String = not_run
        .iter()
        .map(|c| format!("not run: {} (on {}): {}\n", c.step, c.host, c.message))
        .collect();
    out.push_str(&format!(
        "    <system-out>{}</system-out>\n    <system-err></system-err>\n  </testsuite>\n",
        esc(&not_run_text)
    ));
    out
}

/// A step that ran; a failed one carries pglab's message and where the step is written.
pub(super) fn testcase(box_name: &str, c: &StepOutcome) -> String {
    let mut out = format!(
        "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
        esc(&format!("{}.{}", box_name, c.scenario)),
        esc(&format!("{} (on {})", c.step, c.host)),
        c.duration_secs,
    );
    if c.status == Status::Failed {
        let first = c.message.lines().next().unwrap_or_default();
        out.push_str(&format!(
            ">\n      <failure message=\"{}\" type=\"{}\">{}\n  at {}</failure>\n    </testcase>\n",
            esc(first),
            esc(&c.scenario),
            esc(&c.message),
            esc(&c.location)
        ));
    } else {
        out.push_str("/>\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::outcome::StepOutcome;

    fn outcome(step: &str, status: Status, message: &str) -> StepOutcome {
        StepOutcome {
            scenario: "replicate".into(),
            step: step.into(),
            host: "node1".into(),
            location: "scenarios/replicate.toml:5".into(),
            status,
            duration_secs: 0.25,
            waited_secs: 0.0,
            message: message.into(),
        }
    }

    #[test]
    fn renders_suites_cases_failures_and_escapes() {
        let report = RunReport {
            lab: "abc123".into(),
            box_name: "bookworm".into(),
            passed: false,
            phases: vec![],
            checks: vec![
                outcome("ok step", Status::Passed, ""),
                outcome(
                    "bad <step>",
                    Status::Failed,
                    "step failed: \"x\" & y\n  command: z\u{1b}[0m",
                ),
                outcome("later", Status::Skipped, "skipped: an earlier step failed"),
            ],
            provision_changes: vec![],
            log_dir: "/tmp".into(),
            kept: false,
        };
        let xml = render(&[report]);
        assert!(
            xml.contains("<testsuite package=\"bookworm\" id=\"0\" name=\"bookworm.replicate\""),
            "{xml}"
        );
        assert!(
            xml.contains("tests=\"2\" failures=\"1\" errors=\"0\""),
            "{xml}"
        );
        assert!(
            xml.contains("<property name=\"not_run\" value=\"1\"/>"),
            "{xml}"
        );
        assert!(
            xml.contains("<system-out>not run: later (on node1)"),
            "{xml}"
        );
        assert!(
            xml.contains("name=\"bad &lt;step&gt; (on node1)\""),
            "{xml}"
        );
        assert!(
            xml.contains("<failure message=\"step failed: &quot;x&quot; &amp; y\""),
            "{xml}"
        );
        assert!(
            !xml.contains('\u{1b}'),
            "control characters must not reach XML"
        );
        // Well-formed: python's XML parser accepts it.
        let out = crate::sys::exec::run(
            &[
                "python3".into(),
                "-c".into(),
                "import sys, xml.dom.minidom as m; m.parseString(sys.stdin.read())".into(),
            ],
            Some(xml.as_bytes()),
            std::time::Duration::from_secs(20),
        )
        .unwrap();
        assert!(out.ok(), "{}", out.stderr);
    }
}
