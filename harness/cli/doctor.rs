use crate::lab::old_boxes;
use crate::sys::doctor;
use anyhow::Result;
use clap::Args;

#[derive(Args)]
pub struct DoctorArgs {
    #[arg(long)]
    install: bool,
}

/// `pglab doctor`: what each backend needs and whether it is there.
pub fn doctor(a: DoctorArgs) -> Result<i32> {
    if a.install {
        doctor::ensure(true)?;
    }
    let needs = doctor::needs();
    println!("nspawn backend (the default):");
    print!("{}", doctor::report(&needs));
    println!("grading a repository as it comes (pglab grade, run --homework REPO):");
    print!("{}", doctor::report(&doctor::repository_needs()));
    println!("Vagrant backend with libvirt (PGLAB_BACKEND=vagrant; apt-get install --no-install-recommends PACKAGES):");
    print!("{}", doctor::report(&doctor::vagrant_needs()));
    println!(
        "Vagrant with VirtualBox: VirtualBox and Vagrant from their vendors (your own machine)."
    );
    println!("pglab's tests (cargo test):");
    print!("{}", doctor::report(&doctor::test_needs()));
    let stale = old_boxes::find_stale();
    let bytes: u64 = stale.iter().map(|s| s.bytes).sum();
    println!(
        "old boxes (recipes changed since): {} holding {}{}",
        stale.len(),
        old_boxes::human_bytes(bytes),
        if stale.is_empty() {
            ""
        } else {
            "; `pglab box prune` removes them"
        }
    );
    Ok(if needs.iter().all(|n| n.present) {
        0
    } else {
        1
    })
}
