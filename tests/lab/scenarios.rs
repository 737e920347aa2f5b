//! The homework's scenarios on the reference submissions (shell and Ansible), isolated
//! scenarios, provisioning again.

use super::common;
use super::verbs::*;
use pglab::lab::Lab;
use pglab::run::{run, Destroy, RunOptions};
use pglab::scenario::runner::Status;
use std::path::Path;
use std::time::Instant;

#[test]
#[ignore = "needs root and systemd-nspawn"]
fn homework_scenarios_pass_without_leaking_secrets() {
    let _g = serial();
    let report = run(&RunOptions {
        destroy: Destroy::Never,
        ..Default::default()
    })
    .unwrap();
    let _down = DownOnDrop(report.lab.clone());
    let lab = Lab::attach(Some(&report.lab)).unwrap();
    common::assert_all_passed(&report);
    for name in [
        "access",
        "replicate",
        "network-cut",
        "primary-restart",
        "slot-retention",
        "standby-restart",
        "backup",
        "recover-guard",
        "drop",
        "recover",
        "pitr-unreachable",
    ] {
        assert!(
            report.checks.iter().any(|c| c.scenario == name),
            "scenario {name} did not run"
        );
    }
    // The lab's passwords appear in no log, report or snapshot.
    let mut files = files_under(&report.log_dir);
    files.extend(files_under(&pglab::scenario::snapshot::snapshots_dir()));
    assert!(
        files.len() > 20,
        "expected many logs, found {}",
        files.len()
    );
    assert_no_secrets(&lab, &files);
    down_and_check(lab);
}

/// The reference playbook: provisioned by Ansible (twice: the second run changes nothing,
/// or provisioning fails), then every scenario passes, and no password reaches a log.
#[test]
#[ignore = "needs root, systemd-nspawn and PyPI (ansible-core)"]
fn ansible_reference_is_idempotent_and_passes_every_scenario() {
    let _g = serial();
    let report = run(&RunOptions {
        homework: Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/reference-ansible")),
        destroy: Destroy::Never,
        ..Default::default()
    })
    .unwrap();
    let _down = DownOnDrop(report.lab.clone());
    let lab = Lab::attach(Some(&report.lab)).unwrap();
    common::assert_all_passed(&report);
    let scenarios = common::scenarios_run(&report);
    assert!(scenarios.len() >= 11, "{scenarios:?}");
    // The first run changed things (a fresh lab), the second nothing (else provisioning fails).
    assert!(
        report
            .provision_changes
            .iter()
            .any(|c| c.contains("Clone node2")),
        "{:#?}",
        report.provision_changes
    );
    let logs = files_under(&report.log_dir.join("provision"));
    assert!(
        logs.iter()
            .any(|p| p.to_string_lossy().contains("ansible-idempotence.node2")),
        "{logs:#?}"
    );
    assert_no_secrets(&lab, &files_under(&report.log_dir));
    assert_no_secrets(
        &lab,
        &files_under(&lab.dir.join("ansible"))
            .into_iter()
            .filter(|p| !p.ends_with("secrets.yml"))
            .collect::<Vec<_>>(),
    );
    down_and_check(lab);
}

#[test]
#[ignore = "needs root and systemd-nspawn"]
fn provisioning_again_after_the_recovery_changes_nothing() {
    let _g = serial();
    // `recover` leaves the homework's end state (new timeline, node2 re-cloned, barman reset).
    let opts = RunOptions {
        scenarios: vec!["recover".into()],
        destroy: Destroy::Never,
        ..Default::default()
    };
    let report = run(&opts).unwrap();
    let _down = DownOnDrop(report.lab.clone());
    assert!(
        report.passed,
        "{:#?}",
        report
            .checks
            .iter()
            .filter(|c| c.status != Status::Passed)
            .collect::<Vec<_>>()
    );
    let lab = Lab::attach(Some(&report.lab)).unwrap();
    let sub = pglab::provision::Submission::load(&pglab::provision::reference_dir()).unwrap();
    let log = pglab::report::runlog::RunLog::create(&format!("again-{}", lab.id()), &lab.secrets)
        .unwrap();
    let again = pglab::provision::provision(&lab, &sub, &log, Instant::now()).unwrap();
    assert!(
        again.changes.is_empty(),
        "second provisioning changed: {:#?}",
        again.changes
    );
    assert_no_secrets(&lab, &files_under(&log.dir));
    down_and_check(lab);
}

#[test]
#[ignore = "needs root and systemd-nspawn"]
fn isolated_scenarios_start_from_restored_states() {
    let _g = serial();
    // standby-restart twice: the second time from the saved "replicated" state, after drop
    // has left the lab without otus.
    let scenarios = ["standby-restart", "drop", "standby-restart"]
        .map(String::from)
        .to_vec();
    let report = run(&RunOptions {
        scenarios,
        isolate: true,
        ..Default::default()
    })
    .unwrap();
    common::assert_all_passed(&report);
    let phases: Vec<String> = report.phases.iter().map(|(p, _)| p.to_string()).collect();
    assert!(
        phases.iter().any(|p| p == "restore replicated"),
        "no restore in {phases:?}"
    );
    let runs = report
        .checks
        .iter()
        .filter(|c| c.scenario == "standby-restart" && c.step == "node2 catches up with every row")
        .count();
    assert_eq!(runs, 2);
    assert_nothing_left(&report.lab);
}
