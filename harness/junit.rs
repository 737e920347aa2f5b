//! JUnit XML, the report format GitLab, GitHub and Jenkins render: one testsuite per scenario
//! (and box), one testcase per step; failures carry pglab's message.

use crate::run::RunReport;
use crate::scenario::runner::Status;

fn esc(s: &str) -> String {
    s.chars()
        .filter(|c| matches!(c, '\t' | '\n' | '\r') || !c.is_control())
        .collect::<String>()
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

pub fn render(reports: &[RunReport]) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let all = reports.iter().flat_map(|r| &r.checks);
    let (tests, failures) = all.fold((0, 0), |(t, f), c| {
        (t + 1, f + usize::from(c.status == Status::Failed))
    });
    out.push_str(&format!(
        "<testsuites name=\"pglab\" tests=\"{tests}\" failures=\"{failures}\">\n"
    ));
    for r in reports {
        let mut names: Vec<&str> = Vec::new();
        for c in &r.checks {
            if !names.contains(&c.scenario.as_str()) {
                names.push(&c.scenario);
            }
        }
        for name in names {
            let cs: Vec<_> = r.checks.iter().filter(|c| c.scenario == name).collect();
            let failed = cs.iter().filter(|c| c.status == Status::Failed).count();
            let skipped = cs.iter().filter(|c| c.status == Status::Skipped).count();
            let time: f64 = cs.iter().map(|c| c.duration_secs).sum();
            out.push_str(&format!(
                "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failed}\" errors=\"0\" skipped=\"{skipped}\" time=\"{time:.3}\">\n",
                esc(&format!("{}.{name}", r.box_name)),
                cs.len()
            ));
            for c in cs {
                out.push_str(&format!(
                    "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\" file=\"{}\"",
                    esc(&format!("{}.{}", r.box_name, c.scenario)),
                    esc(&format!("{} (on {})", c.step, c.host)),
                    c.duration_secs,
                    esc(&c.location)
                ));
                match c.status {
                    Status::Passed => out.push_str("/>\n"),
                    Status::Skipped => out.push_str(&format!(
                        ">\n      <skipped message=\"{}\"/>\n    </testcase>\n",
                        esc(&c.message)
                    )),
                    Status::Failed => {
                        let first = c.message.lines().next().unwrap_or_default();
                        out.push_str(&format!(
                            ">\n      <failure message=\"{}\" type=\"{}\">{}</failure>\n    </testcase>\n",
                            esc(first),
                            esc(&c.scenario),
                            esc(&c.message)
                        ));
                    }
                }
            }
            out.push_str("  </testsuite>\n");
        }
    }
    out.push_str("</testsuites>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::runner::StepOutcome;

    fn outcome(step: &str, status: Status, message: &str) -> StepOutcome {
        StepOutcome {
            scenario: "replicate".into(),
            step: step.into(),
            host: "node1".into(),
            location: "scenarios/replicate.toml:5".into(),
            status,
            duration_secs: 0.25,
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
            xml.contains("<testsuites name=\"pglab\" tests=\"3\" failures=\"1\">"),
            "{xml}"
        );
        assert!(xml.contains("<testsuite name=\"bookworm.replicate\" tests=\"3\" failures=\"1\" errors=\"0\" skipped=\"1\""), "{xml}");
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
        let out = crate::exec::run(
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
