//! Lab tests: real systemd-nspawn hosts, real PostgreSQL, real barman. They need root and
//! are ignored by default: `cargo test --test lab -- --ignored`. They run one at a time.

mod common;

use pglab::lab::leftovers;
use pglab::lab::{Lab, UpOptions};
use pglab::run::{run, Destroy, RunOptions};
use pglab::scenario::runner::Status;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

static ONE_LAB_AT_A_TIME: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_LAB_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

fn sh(lab: &Lab, host: &str, script: &str) -> pglab::sys::exec::CmdOutput {
    lab.exec(host, "root", script, Duration::from_secs(60))
        .unwrap()
}

/// Removes a kept lab when the test ends, also when it fails: a kept lab is never stale, so
/// `pglab gc` would not remove it.
struct DownOnDrop(String);

impl Drop for DownOnDrop {
    fn drop(&mut self) {
        if let Err(e) = pglab::lab::destroy(&self.0) {
            eprintln!("removing lab {}: {e:#}", self.0);
        }
    }
}

/// Neither of the lab's passwords appears in any of `files`.
fn assert_no_secrets(lab: &Lab, files: &[PathBuf]) {
    for f in files {
        let text = String::from_utf8_lossy(&std::fs::read(f).unwrap()).to_string();
        for secret in lab.secrets.values() {
            assert!(
                !text.contains(&secret),
                "a password appears in {}",
                f.display()
            );
        }
    }
}

fn down_and_check(lab: Lab) {
    let id = lab.id().to_string();
    lab.down().unwrap();
    assert_nothing_left(&id);
}

fn assert_nothing_left(id: &str) {
    let left = leftovers(id);
    assert!(left.is_empty(), "lab {id} left behind: {left:#?}");
}

/// The hosts' writable layers are on tmpfs by default and on disk with
/// `PGLAB_LAB_STORAGE=disk`; PostgreSQL writes there either way and nothing is left.
#[test]
#[ignore = "needs root and systemd-nspawn"]
fn lab_storage_is_tmpfs_by_default_or_disk_when_asked() {
    let _g = serial();
    for (storage, fstype) in [("", "tmpfs"), ("disk", "")] {
        std::env::set_var("PGLAB_LAB_STORAGE", storage);
        let lab = Lab::up(UpOptions::default());
        std::env::remove_var("PGLAB_LAB_STORAGE");
        let lab = lab.unwrap();
        let dir = pglab::sys::paths::labs_dir().join(lab.id());
        let hosts_fs = Command::new("findmnt")
            .args(["-n", "-o", "FSTYPE", "--mountpoint"])
            .arg(dir.join("hosts"))
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&hosts_fs.stdout).trim(),
            fstype,
            "PGLAB_LAB_STORAGE={storage:?}"
        );
        let o = sh(&lab, "node1", "psql_ok() { runuser -u postgres -- psql -Atc \"$1\"; }; psql_ok 'CREATE DATABASE s' && psql_ok \"SELECT count(*) FROM pg_database WHERE datname = 's'\"");
        assert_eq!(o.stdout.lines().last(), Some("1"), "{}", o.combined());
        down_and_check(lab);
    }
    std::env::set_var("PGLAB_LAB_STORAGE", "floppy");
    let e = Lab::up(UpOptions::default()).err();
    std::env::remove_var("PGLAB_LAB_STORAGE");
    let e = format!("{:#}", e.expect("a bad PGLAB_LAB_STORAGE is refused"));
    assert!(e.contains("PGLAB_LAB_STORAGE=\"floppy\""), "{e}");
}

#[test]
#[ignore = "needs root and systemd-nspawn"]
fn three_hosts_come_up_see_each_other_and_leave_nothing() {
    let _g = serial();
    let lab = Lab::up(UpOptions::default()).unwrap();
    let id = lab.id().to_string();
    let topo = lab.topology().clone();
    for h in &topo.hosts {
        assert_eq!(sh(&lab, &h.name, "hostname").stdout.trim(), h.name);
        let pg = sh(
            &lab,
            &h.name,
            "systemctl is-active postgresql@$(ls /usr/lib/postgresql | sort -n | tail -1)-main",
        );
        assert_eq!(pg.stdout.trim(), "active", "PostgreSQL on {}", h.name);
        for other in topo.hosts.iter().filter(|o| o.name != h.name) {
            let o = sh(
                &lab,
                &h.name,
                &format!("timeout 5 bash -c 'echo > /dev/tcp/{}/22'", other.address),
            );
            assert!(
                o.ok(),
                "{} cannot reach {} ({}) on port 22: {}",
                h.name,
                other.name,
                other.address,
                o.combined()
            );
        }
    }
    // node2 reaches node1's PostgreSQL once it listens on its address.
    sh(&lab, "node1", "echo \"listen_addresses = '*'\" > /etc/postgresql/$(ls /usr/lib/postgresql | sort -n | tail -1)/main/conf.d/listen.conf && systemctl restart postgresql");
    let o = sh(&lab, "node2", "for i in $(seq 50); do timeout 2 bash -c 'echo > /dev/tcp/192.168.56.11/5432' && exit 0; sleep 0.1; done; exit 1");
    assert!(o.ok(), "node2 cannot reach node1:5432: {}", o.combined());
    // Users run as themselves, stdout/stderr/exit code kept apart.
    let o = lab
        .exec(
            "node1",
            "postgres",
            "id -un; echo oops >&2; exit 7",
            Duration::from_secs(10),
        )
        .unwrap();
    assert_eq!(
        (o.stdout.as_str(), o.stderr.as_str(), o.code),
        ("postgres\n", "oops\n", 7)
    );
    // Files in and out.
    lab.backend()
        .copy_in("barman", b"hello\n", "/tmp/x", "barman", "600")
        .unwrap();
    assert_eq!(
        lab.backend().copy_out("barman", "/tmp/x").unwrap(),
        "hello\n"
    );
    assert_eq!(
        sh(&lab, "barman", "stat -c '%U %a' /tmp/x").stdout.trim(),
        "barman 600"
    );
    // A host stops and starts again with its disk.
    lab.backend().stop_host("node2").unwrap();
    assert_eq!(
        lab.backend().host_state("node2"),
        pglab::backend::HostState::Stopped
    );
    lab.backend().start_host("node2").unwrap();
    assert_eq!(sh(&lab, "node2", "hostname").stdout.trim(), "node2");
    // A cut link drops traffic both ways between two hosts only.
    lab.backend().cut_link("node1", "node2").unwrap();
    assert!(!sh(
        &lab,
        "node2",
        "timeout 2 bash -c 'echo > /dev/tcp/192.168.56.11/22'"
    )
    .ok());
    assert!(sh(
        &lab,
        "barman",
        "timeout 2 bash -c 'echo > /dev/tcp/192.168.56.11/22'"
    )
    .ok());
    lab.backend().heal_link("node1", "node2").unwrap();
    assert!(sh(
        &lab,
        "node2",
        "timeout 2 bash -c 'echo > /dev/tcp/192.168.56.11/22'"
    )
    .ok());
    lab.down().unwrap();
    assert_nothing_left(&id);
}

fn pglab_bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pglab"))
}

/// Newest lab directory created after `since`.
fn new_lab_id(before: &[String]) -> Option<String> {
    pglab::lab::list()
        .ok()?
        .into_iter()
        .map(|r| r.id)
        .find(|id| !before.contains(id))
}

fn lab_ids() -> Vec<String> {
    pglab::lab::list()
        .unwrap_or_default()
        .into_iter()
        .map(|r| r.id)
        .collect()
}

/// Runs `cmd`, polls `ready` until it returns a value, sends `signal`; returns that value and
/// the exit code. Fails if the command ends first or nothing is ready within the deadline.
fn signal_when<T>(
    mut cmd: Command,
    ready: impl Fn() -> Option<T>,
    signal: i32,
) -> (T, Option<i32>) {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    let value = loop {
        if let Some(v) = ready() {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "{cmd:?} never reached the point to interrupt"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "{cmd:?} ended before it could be interrupted"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let sig = nix::sys::signal::Signal::try_from(signal).unwrap();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig).unwrap();
    (value, child.wait().unwrap().code())
}

/// Starts `pglab ARGS`, waits until `ready(lab id)` holds for its new lab, sends `signal`;
/// returns the lab id and the exit code.
fn interrupt(args: &[&str], ready: impl Fn(&str) -> bool, signal: i32) -> (String, Option<i32>) {
    let before = lab_ids();
    let mut cmd = pglab_bin();
    cmd.args(args);
    signal_when(cmd, || new_lab_id(&before).filter(|id| ready(id)), signal)
}

const SIGINT: i32 = 2;
const SIGKILL: i32 = 9;
const SIGTERM: i32 = 15;

fn lab_dir(id: &str) -> PathBuf {
    pglab::sys::paths::labs_dir().join(id)
}

fn booting(id: &str) -> bool {
    lab_dir(id).join("hosts/node1/nspawn.pid").exists()
}

fn run_dir_has(id: &str, sub: &str) -> bool {
    let runs = pglab::sys::paths::state_root().join("runs");
    std::fs::read_dir(runs)
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().ends_with(id) && e.path().join(sub).is_dir())
}

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

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            out.extend(files_under(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

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

fn fixture(name: &str) -> PathBuf {
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
fn run_broken_with(
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
fn fails_only(failed: &[pglab::scenario::runner::StepOutcome], step: &str, needles: &[&str]) {
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

fn pglab_output(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = pglab_bin();
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
#[ignore = "needs root"]
fn bad_environment_gets_one_clear_error_and_leaves_nothing() {
    let _g = serial();
    let before = lab_ids();
    // Not root.
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            env!("CARGO_BIN_EXE_pglab"),
            "up",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text.contains("must run as root") && text.contains("sudo"),
        "{text}"
    );
    // A box cache that cannot be created.
    let (code, text) = pglab_output(
        &["box", "build", "trixie"],
        &[("PGLAB_CACHE_DIR", "/proc/pglab-cache")],
    );
    assert_eq!(code, 1);
    assert!(
        text.contains("cannot create the box cache /proc/pglab-cache/boxes")
            && text.contains("PGLAB_CACHE_DIR"),
        "{text}"
    );
    // A missing box recipe.
    let (code, text) = pglab_output(&["run", "--box", "nosuchbox"], &[]);
    assert_eq!(code, 1);
    assert!(
        text.contains("no box recipe \"nosuchbox\"")
            && text.contains("known boxes: bookworm, trixie"),
        "{text}"
    );
    // Missing tools, and no apt to install them: the exact command to run.
    let (code, text) = pglab_output(&["up"], &[("PATH", "/nonexistent")]);
    assert_eq!(code, 1);
    assert!(
        text.contains("[MISSING] systemd-nspawn")
            && text.contains("apt-get install -y systemd-container"),
        "{text}"
    );
    // An unknown scenario is refused before any lab exists.
    let (code, text) = pglab_output(&["run", "nosuchscenario"], &[]);
    assert_eq!(code, 1);
    assert!(
        text.contains("no scenario \"nosuchscenario\"; known:"),
        "{text}"
    );
    assert_eq!(lab_ids(), before, "a lab was created");
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
    let phases: Vec<&str> = report.phases.iter().map(|(p, _)| p.as_str()).collect();
    assert!(
        phases.contains(&"restore replicated"),
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

#[test]
#[ignore = "needs root and systemd-nspawn"]
fn two_labs_at_once_do_not_collide() {
    let _g = serial();
    let reports: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    run(&RunOptions {
                        scenarios: vec!["replicate".into()],
                        ..Default::default()
                    })
                    .unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_ne!(reports[0].lab, reports[1].lab);
    for r in &reports {
        common::assert_all_passed(r);
        assert_nothing_left(&r.lab);
    }
}

#[test]
#[ignore = "needs Debian's vagrant package"]
fn vagrant_validates_the_rendered_vagrantfiles() {
    use pglab::backend::vagrant::vagrantfile::{render, Provider, VagrantOptions};
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
        backend: pglab::lab::BackendChoice::Vagrant(
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
    let phases: Vec<&str> = report.phases.iter().map(|(p, _)| p.as_str()).collect();
    assert!(
        phases.contains(&"save provisioned") && phases.contains(&"restore provisioned"),
        "no snapshot save/restore in {phases:?}"
    );
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

#[path = "lab/students.rs"]
mod students;
