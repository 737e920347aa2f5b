//! Running commands on the machine that runs pglab, with deadlines, captured output and
//! errors that say what failed, where, the command, the tail of its output and what to try.

use anyhow::{anyhow, Result};
use std::io::Read;
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a finished command left behind.
#[derive(Debug, Clone, Default)]
pub struct CmdOutput {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub duration: Duration,
}

impl CmdOutput {
    pub fn ok(&self) -> bool {
        self.code == 0
    }
    /// stdout and stderr, for error messages.
    pub fn combined(&self) -> String {
        let mut s = self.stdout.clone();
        if !self.stderr.is_empty() {
            if !s.is_empty() && !s.ends_with('\n') {
                s.push('\n');
            }
            s.push_str(&self.stderr);
        }
        s
    }
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.trim_end().lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// One clear paragraph: what failed, where, the command, the tail of its output, what to try.
pub fn failure(what: &str, place: &str, command: &str, output: &str, hint: &str) -> anyhow::Error {
    let mut msg = format!("{what} ({place})\n  command: {command}");
    let t = tail(output, 15);
    if !t.trim().is_empty() {
        msg.push_str("\n  output (last lines):");
        for l in t.lines() {
            msg.push_str("\n    | ");
            msg.push_str(l);
        }
    }
    if !hint.is_empty() {
        msg.push_str("\n  try: ");
        msg.push_str(hint);
    }
    anyhow!(msg)
}

/// Runs `argv` to completion with `stdin` fed in, killing it after `timeout`.
/// A non-zero exit is not an error here; failing to start or timing out is.
pub fn run(argv: &[String], stdin: Option<&[u8]>, timeout: Duration) -> Result<CmdOutput> {
    run_with(argv, stdin, timeout, &Setup::default())
}

/// Where and how a command runs, beyond its arguments.
#[derive(Debug, Clone, Default)]
pub struct Setup {
    pub cwd: Option<std::path::PathBuf>,
    pub env: Vec<(String, String)>,
    /// Run in a process group of its own, so that a timeout or pglab's exit can end the
    /// command and everything it started (Vagrant starts ssh, ruby helpers, qemu-img...).
    pub own_group: bool,
    /// Enter these cgroups (their `cgroup.procs` files) before the program starts: a command
    /// run into a lab host counts against that host's limits.
    pub cgroups: Vec<std::path::PathBuf>,
    /// Start from an empty environment (plus `env`), not pglab's.
    pub clear_env: bool,
}

pub fn run_with(
    argv: &[String],
    stdin: Option<&[u8]>,
    timeout: Duration,
    setup: &Setup,
) -> Result<CmdOutput> {
    let start = Instant::now();
    if let Some(why) = super::cancel::stopped() {
        return Err(stopped(argv, &why, ""));
    }
    // Output is collected as it arrives; a background process started by the command may
    // keep the pipes open after it exits, so readers are not waited for beyond a grace period.
    let (out_r, out_w) = os_pipe::pipe()?;
    let (err_r, err_w) = os_pipe::pipe()?;
    let handle = {
        // The expression holds the pipes' write ends: dropped once the command started, so
        // that the readers see end of file when the command (and what it started) is done.
        let e = expression(argv, setup)
            .stdout_file(out_w)
            .stderr_file(err_w);
        start_with_stdin(&e, argv, stdin)?
    };
    let out_buf = collect(out_r);
    let err_buf = collect(err_r);
    let group = setup
        .own_group
        .then(|| handle.pids().first().copied())
        .flatten();
    if let Some(pgid) = group {
        crate::sys::procfs::own_group(pgid);
    }
    let ended = wait_until(&handle, group, start + timeout)?;
    if let Some(pgid) = group {
        crate::sys::procfs::disown_group(pgid);
    }
    let code = match ended {
        Ended::Exited(code) => code,
        Ended::Deadline => {
            let output = format!("{}{}", drain(&out_buf), drain(&err_buf));
            return Err(past_deadline(argv, timeout, &output));
        }
        Ended::Stopped(why) => {
            let output = format!("{}{}", drain(&out_buf), drain(&err_buf));
            return Err(stopped(argv, &why, &output));
        }
    };
    wait_for_readers(&[&out_buf, &err_buf], Duration::from_secs(2));
    Ok(CmdOutput {
        code,
        stdout: drain(&out_buf),
        stderr: drain(&err_buf),
        duration: start.elapsed(),
    })
}

/// Runs `argv` to completion with its stdout and stderr merged, calling `on_line` with each
/// line as it comes (a long build's progress); no deadline (a box build takes minutes, its
/// end is its own). Returns the exit code and the whole output. The command is ended with
/// pglab if pglab is interrupted.
pub fn stream(
    argv: &[String],
    setup: &Setup,
    mut on_line: impl FnMut(&str),
) -> Result<(i32, String)> {
    use std::io::BufRead;
    // One pipe for both, lines in the order the command wrote them.
    let reader = expression(argv, setup)
        .stdin_null()
        .stderr_to_stdout()
        .reader()
        .map_err(|e| cannot_start(argv, &e))?;
    let pid = reader.pids().first().copied();
    if let Some(pid) = pid {
        crate::sys::procfs::own_process(pid);
    }
    let mut all = String::new();
    let mut lines = std::io::BufReader::new(&reader);
    let mut line = Vec::new();
    // Bytes, not text: a line that is not UTF-8 (a tool's Latin-1) is shown lossily, and the
    // lines after it are still read.
    while lines.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
        let text = String::from_utf8_lossy(&line);
        let l = text.trim_end_matches('\n');
        on_line(l);
        all.push_str(l);
        all.push('\n');
        line.clear();
    }
    let code = loop {
        if let Some(out) = reader.try_wait()? {
            break exit_code(out.status);
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    if let Some(pid) = pid {
        crate::sys::procfs::disown_process(pid);
    }
    Ok((code, all))
}

/// Starts the expression with `stdin` fed from a thread of its own, not waited for: a command
/// that reads slowly cannot block the caller, and one that never reads (or a process it left
/// behind holding the pipe) cannot hold the wait.
fn start_with_stdin(
    e: &duct::Expression,
    argv: &[String],
    stdin: Option<&[u8]>,
) -> Result<duct::Handle> {
    let Some(data) = stdin else {
        return e
            .stdin_null()
            .start()
            .map_err(|err| cannot_start(argv, &err));
    };
    let (in_r, mut in_w) = os_pipe::pipe()?;
    let handle = e
        .stdin_file(in_r)
        .start()
        .map_err(|err| cannot_start(argv, &err))?;
    let data = data.to_vec();
    std::thread::spawn(move || {
        use std::io::Write;
        let _ = in_w.write_all(&data);
    });
    Ok(handle)
}

fn cannot_start(argv: &[String], e: &std::io::Error) -> anyhow::Error {
    failure(
        &format!("cannot start {}: {e}", argv[0]),
        "this machine",
        &argv.join(" "),
        "",
        "run `pglab doctor` to see what is missing",
    )
}

/// Until both readers saw end of file, or `grace` passed.
fn wait_for_readers(bufs: &[&Collected], grace: Duration) {
    let until = Instant::now() + grace;
    while !bufs
        .iter()
        .all(|b| b.1.load(std::sync::atomic::Ordering::SeqCst))
        && Instant::now() < until
    {
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The exit code, or 128 + the signal that ended the command (as a shell reports it).
fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// The command as a duct expression: its directory and environment, any exit code accepted
/// (the caller reads it), and, between fork and exec, its own process group and its cgroups.
fn expression(argv: &[String], setup: &Setup) -> duct::Expression {
    let mut e = duct::cmd(&argv[0], &argv[1..]).unchecked();
    if let Some(d) = &setup.cwd {
        e = e.dir(d);
    }
    e = if setup.clear_env {
        e.full_env(setup.env.iter().cloned())
    } else {
        setup.env.iter().fold(e, |e, (k, v)| e.env(k, v))
    };
    let procs = cgroup_procs(setup);
    let own_group = setup.own_group;
    e.before_spawn(move |cmd| {
        use std::os::unix::process::CommandExt;
        if own_group {
            cmd.process_group(0);
        }
        enter_before_exec(cmd, procs.clone());
        Ok(())
    })
}

/// The `cgroup.procs` files of `setup.cgroups`, made before the fork.
fn cgroup_procs(setup: &Setup) -> Vec<std::ffi::CString> {
    use std::os::unix::ffi::OsStrExt;
    setup
        .cgroups
        .iter()
        .filter_map(|c| std::ffi::CString::new(c.join("cgroup.procs").as_os_str().as_bytes()).ok())
        .collect()
}

/// Joins the cgroups whose `cgroup.procs` files are `procs` in the child, between fork and
/// exec (where only async-signal-safe calls are allowed: the paths are prepared before the
/// fork, and the child only opens and writes).
fn enter_before_exec(cmd: &mut Command, procs: Vec<std::ffi::CString>) {
    use std::os::unix::process::CommandExt;
    if procs.is_empty() {
        return;
    }
    // SAFETY: the closure allocates nothing and calls only open, write and close.
    unsafe {
        cmd.pre_exec(move || {
            // "0" writes the calling process itself into the cgroup.
            for p in &procs {
                let fd = libc::open(p.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(fd);
            }
            Ok(())
        });
    }
}

/// How a command ended.
enum Ended {
    Exited(i32),
    /// Its deadline passed.
    Deadline,
    /// Its run was asked to stop (`cancel`), for this reason.
    Stopped(String),
}

/// Waits for the command until `deadline`, or until the run is asked to stop; then ends the
/// command (and its process group).
fn wait_until(handle: &duct::Handle, group: Option<u32>, deadline: Instant) -> Result<Ended> {
    loop {
        if let Some(out) = handle.try_wait()? {
            return Ok(Ended::Exited(exit_code(out.status)));
        }
        let ended = match super::cancel::stopped() {
            Some(why) => Ended::Stopped(why),
            None if Instant::now() > deadline => Ended::Deadline,
            None => {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        // The leader first, reaped (a zombie leader would keep its group alive for the
        // group kill's whole wait), then whatever else is left in its group.
        let _ = handle.kill();
        let _ = handle.wait();
        if let Some(pgid) = group {
            crate::sys::procfs::kill_group(pgid);
        }
        return Ok(ended);
    }
}

/// A command ended at its deadline.
fn past_deadline(argv: &[String], timeout: Duration, output: &str) -> anyhow::Error {
    failure(
        &format!(
            "command did not finish within {}",
            humantime::format_duration(timeout)
        ),
        "this machine",
        &argv.join(" "),
        output,
        "raise PGLAB_TIMEOUT_FACTOR on a slow machine, or look at the lab's logs",
    )
}

/// A command not run, or ended, because its run was asked to stop.
fn stopped(argv: &[String], why: &str, output: &str) -> anyhow::Error {
    failure(
        &format!("stopped: {why}"),
        "this machine",
        &argv.join(" "),
        output,
        "the run was asked to stop; nothing to fix in the command",
    )
}

type Collected = (Arc<Mutex<Vec<u8>>>, Arc<AtomicBool>);

fn collect(mut pipe: impl Read + Send + 'static) -> Collected {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let done = Arc::new(AtomicBool::new(false));
    let (b, d) = (buf.clone(), done.clone());
    std::thread::spawn(move || {
        let mut chunk = [0u8; 8192];
        while let Ok(n) = pipe.read(&mut chunk) {
            if n == 0 {
                break;
            }
            let mut b = b.lock().unwrap_or_else(|e| e.into_inner());
            b.extend_from_slice(&chunk[..n]);
            bound(&mut b);
        }
        d.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    (buf, done)
}

/// Captured output is kept to its first and last [`KEPT_EACH_END`] bytes: a step that
/// prints without end (`yes`, a `cat /dev/zero`) must not fill pglab's memory.
pub const KEPT_EACH_END: usize = 4 << 20;

fn bound(b: &mut Vec<u8>) {
    if b.len() <= 3 * KEPT_EACH_END {
        return;
    }
    let cut = b.len() - KEPT_EACH_END;
    let note = b"\n[pglab: output cut here; only its first and last 4 MiB are kept]\n";
    let head_end = KEPT_EACH_END + note.len();
    if b.get(KEPT_EACH_END..head_end) != Some(&note[..]) {
        b.splice(KEPT_EACH_END..cut, note.iter().copied());
    } else {
        b.drain(head_end..cut);
    }
}

fn drain(c: &Collected) -> String {
    String::from_utf8_lossy(&c.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
}

/// Runs a host command that must succeed (setup plumbing: ip, mount, ...).
pub fn must(argv: &[&str], place: &str, hint: &str) -> Result<CmdOutput> {
    let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
    let out = run(&argv, None, Duration::from_secs(120))?;
    if !out.ok() {
        return Err(failure(
            &format!("{} exited with code {}", argv[0], out.code),
            place,
            &argv.join(" "),
            &out.combined(),
            hint,
        ));
    }
    Ok(out)
}

/// Like `must` but failure is ignored (teardown of things that may already be gone).
pub fn quiet(argv: &[&str]) -> bool {
    let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
    run(&argv, None, Duration::from_secs(60))
        .map(|o| o.ok())
        .unwrap_or(false)
}

/// The global multiplier for every deadline, for slow machines (`PGLAB_TIMEOUT_FACTOR`).
pub fn timeout_factor() -> f64 {
    std::env::var("PGLAB_TIMEOUT_FACTOR")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|f: &f64| *f > 0.0)
        .unwrap_or(1.0)
}

pub fn scaled(d: Duration) -> Duration {
    d.mul_f64(timeout_factor())
}

/// Loads an nftables `script` into the named network namespace `netns` (`ip netns`).
pub fn nft_in(netns: &str, script: &str) -> Result<CmdOutput> {
    let ns = format!("--net=/run/netns/{netns}");
    let argv: Vec<String> = ["nsenter", &ns, "--", "nft", "-f", "-"]
        .map(String::from)
        .to_vec();
    run(&argv, Some(script.as_bytes()), Duration::from_secs(30))
}

#[cfg(test)]
mod tests {
    /// A command that prints without end leaves pglab its first and last 4 MiB, and a note.
    #[test]
    fn endless_output_is_kept_to_its_two_ends() {
        let argv: Vec<String> = [
            "sh",
            "-c",
            "echo first; head -c 30000000 /dev/zero | tr '\\0' x; echo; echo last",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let o = super::run(&argv, None, std::time::Duration::from_secs(60)).unwrap();
        assert!(
            o.stdout.len() < 3 * super::KEPT_EACH_END,
            "{}",
            o.stdout.len()
        );
        assert!(o.stdout.starts_with("first\n") && o.stdout.ends_with("x\nlast\n"));
        assert!(o.stdout.contains("[pglab: output cut here"));
    }

    use super::*;

    fn sh(script: &str) -> Vec<String> {
        vec!["sh".into(), "-c".into(), script.into()]
    }

    #[test]
    fn captures_streams_and_code() {
        let o = run(
            &sh("echo out; echo err >&2; exit 3"),
            None,
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(
            (o.code, o.stdout.as_str(), o.stderr.as_str()),
            (3, "out\n", "err\n")
        );
    }

    #[test]
    fn does_not_hang_on_a_background_child_holding_the_pipe() {
        let t = Instant::now();
        let o = run(
            &sh("echo hi; sleep 20 & exit 0"),
            None,
            Duration::from_secs(30),
        )
        .unwrap();
        assert_eq!(o.stdout, "hi\n");
        assert!(t.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn feeds_stdin() {
        let o = run(&sh("cat"), Some(b"hello"), Duration::from_secs(5)).unwrap();
        assert_eq!(o.stdout, "hello");
    }

    /// In a process group of its own, a command that passes its deadline is ended with all it
    /// started (its background child too), and the environment is only the one given.
    #[test]
    fn a_deadline_ends_the_whole_group_and_the_environment_is_clean() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("bg.pid");
        let setup = Setup {
            own_group: true,
            clear_env: true,
            env: vec![("ONLY".into(), "this".into())],
            cwd: Some(dir.path().into()),
            ..Default::default()
        };
        let script = "sleep 30 & echo $! > bg.pid; env | sort; sleep 30";
        let argv: Vec<String> = ["/bin/sh", "-c", script].map(String::from).to_vec();
        let e = run_with(&argv, None, Duration::from_millis(500), &setup).unwrap_err();
        assert!(format!("{e:#}").contains("ONLY=this"), "{e:#}");
        assert!(!format!("{e:#}").contains("HOME="), "{e:#}");
        let bg: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let alive = std::fs::read_to_string(format!("/proc/{bg}/stat"))
            .map(|s| !s.contains(") Z "))
            .unwrap_or(false);
        assert!(
            !alive,
            "the background child {bg} outlived its group's deadline"
        );
    }

    /// A command whose run is asked to stop is ended with its group (and says why); no other
    /// command starts in that run.
    #[test]
    fn a_stopped_run_ends_its_command_and_starts_no_other() {
        let token = crate::sys::cancel::Token::default();
        let t = token.clone();
        let setup = Setup {
            own_group: true,
            ..Default::default()
        };
        let running = std::thread::spawn(move || {
            crate::sys::cancel::with(Some(t), || {
                let e = run_with(
                    &sh("echo begun; sleep 60"),
                    None,
                    Duration::from_secs(120),
                    &setup,
                )
                .unwrap_err();
                let next = run(&sh("echo nev\"\"er"), None, Duration::from_secs(5)).unwrap_err();
                (format!("{e:#}"), format!("{next:#}"))
            })
        });
        std::thread::sleep(Duration::from_millis(300));
        token.cancel("past the deadline of 40 s");
        let (e, next) = running.join().unwrap();
        assert!(
            e.contains("stopped: past the deadline of 40 s") && e.contains("begun"),
            "{e}"
        );
        assert!(
            next.contains("stopped: past the deadline") && !next.contains("never"),
            "{next}"
        );
    }

    #[test]
    fn times_out_with_a_clear_error() {
        let e = run(
            &sh("echo started; sleep 5"),
            None,
            Duration::from_millis(300),
        )
        .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("did not finish within")
                && msg.contains("sleep 5")
                && msg.contains("started"),
            "{msg}"
        );
    }

    #[test]
    fn failure_is_one_paragraph_with_tail_and_hint() {
        let out: String = (1..=40).map(|i| format!("line {i}\n")).collect();
        let msg = failure("x failed", "host node1", "cmd", &out, "do y").to_string();
        assert!(
            msg.contains("line 40") && !msg.contains("line 20\n") && msg.contains("try: do y"),
            "{msg}"
        );
    }

    #[test]
    fn stream_gives_each_line_in_order_with_stderr_merged_and_the_code() {
        let mut seen = Vec::new();
        let (code, all) = stream(
            &sh("echo one; echo two >&2; echo three; exit 4"),
            &Setup::default(),
            |l| seen.push(l.to_string()),
        )
        .unwrap();
        assert_eq!(seen, ["one", "two", "three"]);
        assert_eq!((code, all.as_str()), (4, "one\ntwo\nthree\n"));
        // A line that is not UTF-8 does not end the reading.
        let (code, all) = stream(
            &sh("printf 'caf\\351\\n'; echo after; exit 3"),
            &Setup::default(),
            |_| {},
        )
        .unwrap();
        assert_eq!((code, all.as_str()), (3, "caf\u{fffd}\nafter\n"));
        // A program that is not there is said as such, with what to try.
        let e = stream(&["/no/such/tool".into()], &Setup::default(), |_| {}).unwrap_err();
        let e = format!("{e:#}");
        assert!(
            e.contains("cannot start /no/such/tool") && e.contains("pglab doctor"),
            "{e}"
        );
    }
}
