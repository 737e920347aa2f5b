//! Broken submissions (tests/fixtures) fail the one check that names their mistake.

use super::verbs::*;
use pglab::run::{run, RunOptions};
use pglab::scenario::runner::Status;
use std::path::{Path, PathBuf};

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Runs `replicate` on a broken submission; returns the report and its failed checks.
fn run_broken(
    name: &str,
) -> (
    pglab::run::RunReport,
    Vec<pglab::scenario::runner::StepOutcome>,
) {
    run_broken_with(name, "replicate")
}

/// Runs `scenario` (and what leads to it) on a broken submission.
pub fn run_broken_with(
    name: &str,
    scenario: &str,
) -> (
    pglab::run::RunReport,
    Vec<pglab::scenario::runner::StepOutcome>,
) {
    let opts = RunOptions {
        homework: Some(fixture(name)),
        scenarios: vec![scenario.into()],
        ..Default::default()
    };
    let report = run(&opts).unwrap();
    assert!(!report.passed, "a broken submission passed");
    let failed = report
        .checks
        .iter()
        .filter(|c| c.status == Status::Failed)
        .cloned()
        .collect();
    (report, failed)
}

#[test]
#[ignore = "needs root and systemd-nspawn"]
fn a_standby_without_its_slot_fails_the_slot_check_only() {
    let _g = serial();
    let (report, failed) = run_broken("no-slot");
    assert_eq!(failed.len(), 1, "{failed:#?}");
    assert_eq!(
        failed[0].step,
        "node2 streams from node1 through slot node2"
    );
    let m = &failed[0].message;
    assert!(
        m.contains("pg_basebackup -R -C -S node2") && m.contains("scenarios/replicate.toml:"),
        "{m}"
    );
    // node2 streams, without a slot: that does not change by waiting, so the check says so at
    // once instead of waiting out its 30 s.
    assert!(
        m.contains("stopped waiting after")
            && m.contains("the output shows \"streams without a slot\""),
        "{m}"
    );
    assert_nothing_left(&report.lab);
}

#[test]
#[ignore = "needs root and systemd-nspawn"]
fn a_wrong_pgpass_password_fails_the_clone_step() {
    let _g = serial();
    let (report, failed) = run_broken("wrong-pgpass");
    assert_eq!(failed.len(), 1, "{failed:#?}");
    let m = &failed[0].message;
    assert!(
        m.contains("\"standby cloned through its own slot\"") && m.contains("host node2"),
        "{m}"
    );
    assert!(
        m.contains("password authentication failed for user \"replicator\""),
        "{m}"
    );
    assert_nothing_left(&report.lab);
}

/// The one failed check of a broken submission: its step (name or start of it), and that its
/// message holds `needles`.
pub fn fails_only(failed: &[pglab::scenario::runner::StepOutcome], step: &str, needles: &[&str]) {
    assert_eq!(failed.len(), 1, "{failed:#?}");
    assert!(failed[0].step.starts_with(step), "{failed:#?}");
    for n in needles {
        assert!(
            failed[0].message.contains(n),
            "{n:?} not in: {}",
            failed[0].message
        );
    }
}

#[test]
#[ignore = "needs root and systemd-nspawn"]
fn a_red_hat_path_prefix_fails_the_path_prefix_check_only() {
    let _g = serial();
    let (report, failed) = run_broken_with("wrong-path-prefix", "backup");
    fails_only(
        &failed,
        "barman's path_prefix holds PostgreSQL",
        &[
            "/usr/pgsql-14/bin",
            "/usr/lib/postgresql/<major>/bin",
            "scenarios/backup.toml:",
        ],
    );
    assert_nothing_left(&report.lab);
}

#[test]
#[ignore = "needs root and systemd-nspawn"]
fn no_pg_hba_line_for_barman_fails_the_barman_step() {
    let _g = serial();
    let (report, failed) = run_broken("no-barman-hba");
    fails_only(
        &failed,
        "provisioning",
        &[
            "\"barman streaming backups configured and checked\"",
            "host barman",
            "no pg_hba.conf entry",
            "user \"barman\"",
        ],
    );
    assert_nothing_left(&report.lab);
}

#[test]
#[ignore = "needs root and systemd-nspawn"]
fn a_replicator_without_password_fails_the_clone_step() {
    let _g = serial();
    let (report, failed) = run_broken("replicator-without-password");
    fails_only(
        &failed,
        "provisioning",
        &[
            "\"standby cloned through its own slot\"",
            "host node2",
            "password authentication failed for user \"replicator\"",
        ],
    );
    assert_nothing_left(&report.lab);
}

#[test]
#[ignore = "needs root and systemd-nspawn"]
fn recovery_without_a_target_fails_the_restore_point_check() {
    let _g = serial();
    let (report, failed) = run_broken_with("recovery-without-target", "recover");
    fails_only(
        &failed,
        "recovery stopped at the restore point",
        &["without a recovery target", "scenarios/recover.toml:"],
    );
    assert_nothing_left(&report.lab);
}
