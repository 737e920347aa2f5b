//! SIGINT, SIGTERM and SIGKILL at the worst moments leave nothing behind.

use super::verbs::*;
use pglab::lab::leftovers;

#[test]
#[ignore = "needs root and systemd-nspawn"]
fn sigint_or_sigterm_mid_up_leaves_nothing() {
    let _g = serial();
    for sig in [SIGINT, SIGTERM] {
        let (id, code) = interrupt(&["up"], booting, sig);
        assert_eq!(code, Some(128 + sig), "exit code after signal {sig}");
        assert_nothing_left(&id);
    }
}

#[test]
#[ignore = "needs root and systemd-nspawn"]
fn sigint_during_provisioning_and_during_a_scenario_leaves_nothing() {
    let _g = serial();
    let (id, code) = interrupt(
        &["run", "replicate"],
        |id| run_dir_has(id, "provision"),
        SIGINT,
    );
    assert_eq!(code, Some(130));
    assert_nothing_left(&id);
    let (id, code) = interrupt(
        &["run", "replicate"],
        |id| run_dir_has(id, "replicate"),
        SIGTERM,
    );
    assert_eq!(code, Some(143));
    assert_nothing_left(&id);
}

#[test]
#[ignore = "needs root and systemd-nspawn"]
fn sigkill_mid_up_then_gc_leaves_nothing() {
    let _g = serial();
    let (id, _) = interrupt(&["up"], booting, SIGKILL);
    assert!(
        !leftovers(&id).is_empty(),
        "SIGKILL cannot clean up: something must be left for gc"
    );
    let out = pglab_bin().arg("gc").output().unwrap();
    assert!(
        out.status.success(),
        "pglab gc: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&id),
        "gc did not report lab {id}"
    );
    assert_nothing_left(&id);
}

#[test]
#[ignore = "needs root and mmdebstrap"]
fn sigint_during_a_box_build_leaves_no_half_built_box() {
    let _g = serial();
    let cache = tempfile::tempdir_in("/var/tmp").unwrap();
    let mut cmd = pglab_bin();
    cmd.args(["box", "build", "bookworm"])
        .env("PGLAB_CACHE_DIR", cache.path());
    let boxes = cache.path().join("boxes");
    // Interrupt once mmdebstrap has mounted its chroot's /proc (the hardest moment to clean).
    let mounted = || {
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        info.contains(&boxes.to_string_lossy().to_string())
            .then_some(())
    };
    let ((), code) = signal_when(cmd, mounted, SIGINT);
    assert_eq!(code, Some(130));
    assert!(
        pglab::sys::procfs::mounts_under(cache.path()).is_empty(),
        "mounts left under {}",
        cache.path().display()
    );
    let left: Vec<_> = std::fs::read_dir(&boxes)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "left in the box cache: {left:?}");
    assert!(
        pglab::sys::procfs::pids_matching(&boxes.to_string_lossy()).is_empty(),
        "mmdebstrap still runs"
    );
}
