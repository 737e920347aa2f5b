//! The Vagrant backend: rendered Vagrantfiles validated by Vagrant, and a real lab on
//! Vagrant + libvirt.

use super::common;
use super::verbs::*;
use pglab::run::{run, Destroy, RunOptions};
use std::path::Path;
use std::process::Command;

#[test]
#[ignore = "needs Debian's vagrant package"]
fn vagrant_validates_the_rendered_vagrantfiles() {
    use pglab::backend::vagrant::vagrantfile::{render, Provider, VagrantOptions};
    // vagrant comes from pglab's own installer, as for the Vagrant lab (a fresh machine has none).
    if let Err(e) = pglab::sys::doctor::ensure_vagrant_libvirt() {
        panic!("this test needs vagrant: {e:#}");
    }
    let topo = pglab::model::topology::Topology::default_lab();
    for provider in [Provider::Virtualbox, Provider::Libvirt] {
        let dir = tempfile::tempdir().unwrap();
        let text = render(&topo, "valid0", &VagrantOptions::for_provider(provider)).unwrap();
        std::fs::write(dir.path().join("Vagrantfile"), &text).unwrap();
        let out = Command::new("vagrant")
            .args(["validate", "--ignore-provider"])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{provider:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // The same check fails on a Vagrantfile with an unknown core setting.
        std::fs::write(
            dir.path().join("Vagrantfile"),
            text.replace("config.vm.boot_timeout", "config.vm.boot_timeoutt"),
        )
        .unwrap();
        let out = Command::new("vagrant")
            .args(["validate", "--ignore-provider"])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(!out.status.success(), "vagrant validate accepted a typo");
    }
}

/// Three real VMs under Vagrant + libvirt (QEMU software emulation here: ~3.5 min to boot,
/// ~3.5 min to provision). Provisioning, a snapshot of the provisioned lab restored, and
/// `replicate`, with the same steps and scenario files as on nspawn; the full scenario set
/// on Vagrant is tests/lab_vagrant_full.rs.
#[test]
#[ignore = "needs root, vagrant, vagrant-libvirt, libvirt and qemu"]
fn vagrant_libvirt_lab_provisions_and_replicates() {
    let _g = serial();
    // --isolate: the provisioned state is saved (`vagrant snapshot save`); `access` then
    // starts from it again (`vagrant snapshot restore`, clocks synced, resume steps).
    let opts = RunOptions {
        scenarios: vec!["replicate".into(), "access".into()],
        backend: pglab::backend::Kind::Vagrant(
            pglab::backend::vagrant::vagrantfile::Provider::Libvirt,
        ),
        isolate: true,
        destroy: Destroy::Never,
        ..Default::default()
    };
    let report = run(&opts).unwrap();
    let _down = DownOnDrop(report.lab.clone());
    common::assert_all_passed(&report);
    assert!(
        report.checks.iter().any(|c| c.scenario == "replicate")
            && report.checks.iter().any(|c| c.scenario == "access"),
        "replicate or access did not run: {:#?}",
        report.checks
    );
    let phases: Vec<String> = report.phases.iter().map(|(p, _)| p.to_string()).collect();
    assert!(
        phases.iter().any(|p| p == "save provisioned")
            && phases.iter().any(|p| p == "restore provisioned"),
        "no snapshot save/restore in {phases:?}"
    );
    // Issue 17 over ssh on real VMs, on this lab while it is up: a command that reads stdin
    // gets end-of-file, the script runs to its end, a password prompt fails at once.
    let lab = pglab::lab::Lab::attach(Some(&report.lab)).unwrap();
    super::stdin::stdin_readers_get_eof_and_the_script_runs_to_its_end(&lab);
    super::stdin::a_password_prompt_fails_at_once_and_says_why(&lab);
    // Issue 24 on Vagrant: the Ansible controller reaches the VMs and nothing of this machine.
    super::hostile::a_vagrant_controller_reaches_its_vms_and_nothing_else(&lab);
    drop(lab);
    // The VMs are still up: make the lab look like one whose pglab was killed (owner gone,
    // not kept); `gc` must find it and remove the VMs, their disks and networks.
    let dead = Command::new("true").spawn().unwrap();
    let dead_pid = dead.id();
    let _ = dead.wait_with_output();
    let record = pglab::sys::paths::labs_dir()
        .join(&report.lab)
        .join("lab.json");
    let mut rec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&record).unwrap()).unwrap();
    rec["kept"] = false.into();
    rec["owner_pid"] = dead_pid.into();
    std::fs::write(&record, rec.to_string()).unwrap();
    assert!(
        !pglab::backend::vagrant::libvirt::domains_matching(&format!("pglab-{}-", report.lab))
            .is_empty()
    );
    let removed = pglab::lab::gc(false).unwrap();
    assert!(
        removed.iter().any(|(id, _)| id == &report.lab),
        "{removed:?}"
    );
    assert_nothing_left(&report.lab);
    // pglab started libvirtd for the lab: it stopped it again, with its networks.
    assert!(!Path::new("/run/pglab/libvirt").exists());
    let links = Command::new("ip").args(["-br", "link"]).output().unwrap();
    let links = String::from_utf8_lossy(&links.stdout);
    assert!(!links.contains("virbr"), "{links}");
}
