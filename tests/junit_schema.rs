//! The JUnit file validates against Apache Ant's JUnit XML schema (Windy Road's JUnit.xsd,
//! Apache License 2.0). The schema is not kept in this repository: it is taken from the npm
//! package `junit-xml` 1.2.0, whose test suite carries it, through npm (a package registry),
//! and checked with xmllint (libxml2-utils). Both tools come from pglab's own installer
//! (`doctor::ensure_test_tools`): installed when missing, or the test fails with the command.

use pglab::run::RunReport;
use pglab::scenario::runner::{Status, StepOutcome};
use std::path::{Path, PathBuf};
use std::process::Command;

const PACKAGE: &str = "junit-xml@1.2.0";

fn ant_junit_xsd() -> PathBuf {
    // The tests run in parallel threads: one of them fetches the schema, the others wait.
    static ONCE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _once = ONCE.lock().unwrap_or_else(|e| e.into_inner());
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("junit-schema");
    let xsd = dir.join("ant-junit.xsd");
    if xsd.exists() {
        return xsd;
    }
    std::fs::create_dir_all(&dir).unwrap();
    tools_or_the_command();
    let out = Command::new("npm")
        .args(["pack", PACKAGE, "--silent"])
        .current_dir(&dir)
        .output()
        .expect("npm is needed to fetch the JUnit schema (apt-get install npm)");
    assert!(
        out.status.success(),
        "npm pack {PACKAGE}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tgz = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let st = Command::new("tar")
        .args(["-xzf", &tgz, "package/src/index.test.ts"])
        .current_dir(&dir)
        .status()
        .unwrap();
    assert!(st.success());
    let ts = std::fs::read_to_string(dir.join("package/src/index.test.ts")).unwrap();
    let start = ts
        .find("const antJunitSchema = '")
        .expect("schema in the package")
        + 24;
    let end = start + ts[start..].find("';\n").unwrap();
    let schema = ts[start..end].replace("\\'", "'");
    assert!(schema.contains("<xs:element name=\"testsuites\">"));
    std::fs::write(&xsd, schema).unwrap();
    xsd
}

/// The tools this test needs, from pglab's own installer; if it cannot get them, the test
/// fails here with the exact command to run.
fn tools_or_the_command() {
    if let Err(e) = pglab::sys::doctor::ensure_test_tools() {
        panic!("this test needs tools that are missing: {e:#}");
    }
}

fn outcome(scenario: &str, step: &str, status: Status, message: &str) -> StepOutcome {
    StepOutcome {
        scenario: scenario.into(),
        step: step.into(),
        host: "node2".into(),
        location: format!("scenarios/{scenario}.toml:7"),
        status,
        duration_secs: 1.5,
        waited_secs: 0.0,
        message: message.into(),
    }
}

fn validate(xml: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("junit.xml");
    std::fs::write(&file, xml).unwrap();
    tools_or_the_command();
    let out = Command::new("xmllint")
        .args(["--noout", "--schema"])
        .arg(ant_junit_xsd())
        .arg(&file)
        .output()
        .expect("xmllint is needed (apt-get install libxml2-utils)");
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn junit_report_validates_against_the_ant_junit_schema() {
    let report = |box_name: &str, passed: bool| RunReport {
        lab: "abc123".into(),
        box_name: box_name.into(),
        passed,
        phases: vec![("up".into(), 3.0)],
        checks: vec![
            outcome("replicate", "otus is on node2", Status::Passed, ""),
            outcome(
                "replicate",
                "node2 streams through slot <node2> & \"more\"",
                if passed {
                    Status::Passed
                } else {
                    Status::Failed
                },
                "step failed\n  command: psql\n  output: \u{1b}[31mERROR\u{1b}[0m",
            ),
            outcome(
                "backup",
                "backup is DONE",
                Status::Skipped,
                "an earlier step failed",
            ),
        ],
        provision_changes: vec![],
        log_dir: "/var/lib/pglab/runs/x".into(),
        kept: false,
    };
    let xml = pglab::report::junit::render(&[report("bookworm", false), report("trixie", true)]);
    validate(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
}

#[test]
fn the_schema_check_can_fail() {
    // A testcase without its required `time` is refused: the check above means something.
    let xml = pglab::report::junit::render(&[]).replace(
        "</testsuites>",
        "<testsuite name=\"x\"><testcase name=\"y\" classname=\"z\"/></testsuite></testsuites>",
    );
    assert!(validate(&xml).is_err());
}

#[test]
fn the_cohort_junit_validates_too() {
    use pglab::report::cohort::{junit, Row};
    let groups: Vec<String> = vec!["provisioned".into(), "replicate".into()];
    let report = RunReport {
        lab: "abc123".into(),
        box_name: "bookworm".into(),
        passed: false,
        phases: vec![],
        checks: vec![
            outcome("replicate", "otus is on node2", Status::Passed, ""),
            outcome(
                "replicate",
                "slot <node2>",
                Status::Failed,
                "no slot & \"x\"",
            ),
        ],
        provision_changes: vec![],
        log_dir: "/var/lib/pglab/runs/x".into(),
        kept: false,
    };
    let alice = Row::from_report("alice", "h1", &groups, &report);
    let bob = Row::verdict("bob", "h2", &groups, "provisioned", "cannot be read");
    let xml = junit(
        &[alice, bob],
        &[("alice".into(), Some(report)), ("bob".into(), None)],
    );
    assert_eq!(xml.matches("<testsuite ").count(), 2, "{xml}");
    validate(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
}
