//! Lab tests of the platform matrix beyond the default box: bullseye (PostgreSQL 13,
//! barman 2.12, Debian's own packages), and the recovery settings barman leaves behind.
//! They run one lab at a time like the rest.

use super::common;
use super::fixtures::{fails_only, run_broken_with};
use super::verbs::*;
use pglab::run::RunOptions;

/// The homework's four scenarios (replicate, backup, drop, recover) pass on bullseye with
/// the reference, on the versions the box claims to have.
#[test]
#[ignore = "needs root, systemd-nspawn and mmdebstrap (builds the bullseye box)"]
fn homework_scenarios_pass_on_bullseye_with_postgresql_13_and_barman_2() {
    let _g = serial();
    let (report, _down, lab) = run_kept(RunOptions {
        box_name: "bullseye".into(),
        scenarios: vec!["recover".into()],
        ..Default::default()
    });
    let ran = common::scenarios_run(&report);
    for name in ["replicate", "backup", "drop", "recover"] {
        assert!(ran.contains(name), "scenario {name} did not run: {ran:?}");
    }
    let major = sh(&lab, "node1", "ls /usr/lib/postgresql");
    assert_eq!(major.stdout.trim(), "13", "{major:?}");
    let barman = sh(&lab, "barman", "barman --version 2>&1 | head -1");
    assert!(barman.stdout.starts_with("2.12"), "{barman:?}");
    down_and_check(lab);
}

/// barman recover leaves restore_command and the recovery target in node1's
/// postgresql.auto.conf: a submission that does not remove them fails the recover
/// scenario's check for exactly that, with the reason.
#[test]
#[ignore = "needs root and systemd-nspawn"]
fn recovery_settings_left_on_node1_fail_the_recovery_settings_check() {
    let _g = serial();
    let (report, failed) = run_broken_with("recovery-settings-kept", "recover");
    fails_only(
        &failed,
        "node1 carries no recovery settings once recovery is over",
        &[
            "restore_command = cp barman_wal/%f %p",
            "recovery_target_name = pglab_before_drop",
            "cp: cannot stat",
            "scenarios/recover.toml:",
        ],
    );
    assert_nothing_left(&report.lab);
}
