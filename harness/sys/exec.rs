//! Running commands on the machine that runs pglab, with deadlines, captured output and
//! errors that say what failed, where, the command, the tail of its output and what to try.

use anyhow::{anyhow, Result};
use std::io::Read;
use std::process::{Command, Stdio};
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
    let mut child = spawn(argv, stdin, setup)?;
    let group = setup.own_group.then(|| child.id());
    // Output is collected as it arrives; a background process started by the command may
    // keep the pipes open after it exits, so readers are not waited for beyond a grace period.
    let out_buf = collect(child.stdout.take().expect("piped stdout"));
    let err_buf = collect(child.stderr.take().expect("piped stderr"));
    let Some(status) = wait_until(&mut child, group, start + timeout)? else {
        let output = format!("{}{}", drain(&out_buf), drain(&err_buf));
        return Err(failure(
            &format!(
                "command did not finish within {}",
                humantime::format_duration(timeout)
            ),
            "this machine",
            &argv.join(" "),
            &output,
            "raise PGLAB_TIMEOUT_FACTOR on a slow machine, or look at the lab's logs",
        ));
    };
    if let Some(pgid) = group {
        crate::sys::procfs::disown_group(pgid);
    }
    wait_for_readers(&[&out_buf, &err_buf], Duration::from_secs(2));
    Ok(CmdOutput {
        code: exit_code(status),
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
    // `2>&1` by the shell: one pipe, lines in the order the command wrote them.
    let mut merged = vec![
        "sh".to_string(),
        "-c".into(),
        "exec \"$@\" 2>&1".into(),
        "sh".into(),
    ];
    merged.extend(argv.iter().cloned());
    let mut child = spawn(&merged, None, setup)?;
    crate::sys::procfs::own_process(child.id());
    let mut all = String::new();
    let stdout = child.stdout.take().expect("piped stdout");
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.unwrap_or_default();
        on_line(&line);
        all.push_str(&line);
        all.push('\n');
    }
    let status = child.wait()?;
    crate::sys::procfs::disown_process(child.id());
    Ok((exit_code(status), all))
}

/// Starts the command (in its own process group when asked) and feeds `stdin` from a thread
/// of its own, so that a command that reads slowly cannot block the caller.
fn spawn(argv: &[String], stdin: Option<&[u8]>, setup: &Setup) -> Result<std::process::Child> {
    let mut child = command(argv, stdin.is_some(), setup).spawn().map_err(|e| {
        failure(
            &format!("cannot start {}: {e}", argv[0]),
            "this machine",
            &argv.join(" "),
            "",
            "run `pglab doctor` to see what is missing",
        )
    })?;
    if setup.own_group {
        crate::sys::procfs::own_group(child.id());
    }
    if let Some(data) = stdin {
        let mut pipe = child.stdin.take().expect("piped stdin");
        let data = data.to_vec();
        std::thread::spawn(move || {
            use std::io::Write;
            let _ = pipe.write_all(&data);
        });
    }
    Ok(child)
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

/// The command with its directory, environment, own process group, and pipes.
fn command(argv: &[String], piped_stdin: bool, setup: &Setup) -> Command {
    let mut cmd = Command::new(&argv[0]);
    if let Some(d) = &setup.cwd {
        cmd.current_dir(d);
    }
    if setup.clear_env {
        cmd.env_clear();
    }
    cmd.envs(setup.env.iter().map(|(k, v)| (k, v)));
    enter_before_exec(&mut cmd, setup);
    if setup.own_group {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    cmd.args(&argv[1..])
        .stdin(if piped_stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Joins `setup.cgroups` in the child, between fork and exec (where only async-signal-safe
/// calls are allowed: the paths are prepared before the fork, and the child only opens and
/// writes).
fn enter_before_exec(cmd: &mut Command, setup: &Setup) {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::process::CommandExt;
    if setup.cgroups.is_empty() {
        return;
    }
    let procs: Vec<std::ffi::CString> = setup
        .cgroups
        .iter()
        .filter_map(|c| std::ffi::CString::new(c.join("cgroup.procs").as_os_str().as_bytes()).ok())
        .collect();
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

/// Waits for the child until `deadline`; past it, ends the child (and its process group)
/// and returns None.
fn wait_until(
    child: &mut std::process::Child,
    group: Option<u32>,
    deadline: Instant,
) -> Result<Option<std::process::ExitStatus>> {
    loop {
        if let Some(st) = child.try_wait()? {
            return Ok(Some(st));
        }
        if Instant::now() > deadline {
            if let Some(pgid) = group {
                crate::sys::procfs::kill_group(pgid);
            }
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
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
        let e = stream(&["/no/such/tool".into()], &Setup::default(), |_| {});
        assert_eq!(e.unwrap().0, 127, "sh says the command is not found");
    }
}
