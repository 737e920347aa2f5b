//! What the lab tests do again and again: run a shell line or SQL on a host, probe a port,
//! look for leftovers, start pglab and interrupt it.

use pglab::lab::leftovers;
use pglab::lab::Lab;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub static ONE_LAB_AT_A_TIME: Mutex<()> = Mutex::new(());

/// One lab test at a time (two cores), timed: when the test ends, passed or not, its time
/// goes to `lab-test-times.tsv` in the test target's temporary folder, which `.ci/run`
/// prints with the five slowest.
pub struct Serial {
    _one: std::sync::MutexGuard<'static, ()>,
    started: Instant,
}

impl Drop for Serial {
    fn drop(&mut self) {
        use std::io::Write;
        let name = std::thread::current().name().unwrap_or("?").to_string();
        let secs = self.started.elapsed().as_secs_f64();
        let result = if std::thread::panicking() {
            "failed"
        } else {
            "passed"
        };
        eprintln!("lab test {name}: {secs:.1} s, {result}");
        let file = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("lab-test-times.tsv");
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(file)
        {
            let _ = writeln!(f, "{secs:.1}\t{name}\t{result}");
        }
    }
}

pub fn serial() -> Serial {
    let one = ONE_LAB_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    Serial {
        _one: one,
        started: Instant::now(),
    }
}

pub fn sh(lab: &Lab, host: &str, script: &str) -> pglab::sys::exec::CmdOutput {
    lab.exec(host, "root", script, Duration::from_secs(60))
        .unwrap()
}

/// `sql` through psql as postgres on `host` (unaligned, tuples only); the caller checks.
pub fn psql(lab: &Lab, host: &str, sql: &str) -> pglab::sys::exec::CmdOutput {
    sh(
        lab,
        host,
        &format!(
            "runuser -u postgres -- psql -Atc {}",
            pglab::backend::shell_quote(sql)
        ),
    )
}

/// Whether `from` opens a TCP connection to `addr:port` within `secs` seconds.
pub fn can_reach(
    lab: &Lab,
    from: &str,
    addr: &str,
    port: u16,
    secs: u32,
) -> pglab::sys::exec::CmdOutput {
    sh(
        lab,
        from,
        &format!("timeout {secs} bash -c 'echo > /dev/tcp/{addr}/{port}'"),
    )
}

/// Removes a kept lab when the test ends, also when it fails: a kept lab is never stale, so
/// `pglab gc` would not remove it.
pub struct DownOnDrop(pub String);

impl Drop for DownOnDrop {
    fn drop(&mut self) {
        if let Err(e) = pglab::lab::destroy(&self.0) {
            eprintln!("removing lab {}: {e:#}", self.0);
        }
    }
}

/// A whole run that keeps its lab for the test's own checks, all of it passed: the report,
/// the guard that removes the lab when the test ends (also when it fails), the lab itself.
pub fn run_kept(opts: pglab::run::RunOptions) -> (pglab::run::RunReport, DownOnDrop, Lab) {
    let report = pglab::run::run(&pglab::run::RunOptions {
        destroy: pglab::run::Destroy::Never,
        ..opts
    })
    .unwrap();
    let down = DownOnDrop(report.lab.clone());
    let lab = Lab::attach(Some(&report.lab)).unwrap();
    super::common::assert_all_passed(&report);
    (report, down, lab)
}

/// Neither of the lab's passwords appears in any of `files`.
pub fn assert_no_secrets(lab: &Lab, files: &[PathBuf]) {
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

pub fn down_and_check(lab: Lab) {
    let id = lab.id().to_string();
    lab.down().unwrap();
    assert_nothing_left(&id);
}

pub fn assert_nothing_left(id: &str) {
    let left = leftovers(id);
    assert!(left.is_empty(), "lab {id} left behind: {left:#?}");
}

pub fn pglab_bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pglab"))
}

/// Newest lab directory created after `since`.
pub fn new_lab_id(before: &[String]) -> Option<String> {
    pglab::lab::list()
        .ok()?
        .into_iter()
        .map(|r| r.id)
        .find(|id| !before.contains(id))
}

pub fn lab_ids() -> Vec<String> {
    pglab::lab::list()
        .unwrap_or_default()
        .into_iter()
        .map(|r| r.id)
        .collect()
}

/// Runs `cmd`, polls `ready` until it returns a value, sends `signal`; returns that value and
/// the exit code. Fails if the command ends first or nothing is ready within the deadline.
pub fn signal_when<T>(
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
pub fn interrupt(
    args: &[&str],
    ready: impl Fn(&str) -> bool,
    signal: i32,
) -> (String, Option<i32>) {
    let before = lab_ids();
    let mut cmd = pglab_bin();
    cmd.args(args);
    signal_when(cmd, || new_lab_id(&before).filter(|id| ready(id)), signal)
}

pub const SIGINT: i32 = 2;
pub const SIGKILL: i32 = 9;
pub const SIGTERM: i32 = 15;

pub fn lab_dir(id: &str) -> PathBuf {
    pglab::sys::paths::labs_dir().join(id)
}

pub fn booting(id: &str) -> bool {
    lab_dir(id).join("hosts/node1/nspawn.pid").exists()
}

pub fn run_dir_has(id: &str, sub: &str) -> bool {
    let runs = pglab::sys::paths::state_root().join("runs");
    std::fs::read_dir(runs)
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().ends_with(id) && e.path().join(sub).is_dir())
}

pub fn files_under(dir: &Path) -> Vec<PathBuf> {
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

pub fn pglab_output(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
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
