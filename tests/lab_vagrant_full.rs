//! Every scenario on three real VMs under Vagrant + libvirt. Under QEMU software emulation
//! (this machine) it takes far longer than CI's budget, so it is its own test target:
//! `cargo test --test lab_vagrant_full -- --ignored`. The short Vagrant test (provisioning +
//! replicate) is part of `cargo test --test lab -- --ignored`.

mod common;

use pglab::run::{run, RunOptions};

#[test]
#[ignore = "needs root, vagrant, vagrant-libvirt, libvirt and qemu; long under emulation"]
fn vagrant_libvirt_lab_passes_every_scenario() {
    let report = run(&RunOptions {
        backend: pglab::backend::Kind::Vagrant(
            pglab::backend::vagrant::vagrantfile::Provider::Libvirt,
        ),
        ..Default::default()
    })
    .unwrap();
    common::assert_all_passed(&report);
    let scenarios = common::scenarios_run(&report);
    assert!(scenarios.len() >= 11, "{scenarios:?}");
    let left = pglab::lab::leftovers(&report.lab);
    assert!(left.is_empty(), "{left:#?}");
}
