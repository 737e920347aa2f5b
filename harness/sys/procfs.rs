//! What the kernel says about processes, mounts and network links (/proc, /run/netns,
//! /sys/class/net), read in one place; and ending processes found there.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// The fields of `/proc/PID/stat` that pglab reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Stat {
    /// One letter: R, S, D, Z, ...
    pub state: char,
    /// Clock ticks since boot, to tell a live owner from a reused pid.
    pub start_time: u64,
}

/// Parses `/proc/PID/stat`; the command name in parentheses may itself hold spaces and ')'.
pub fn stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = text.rsplit_once(')')?.1.trim_start();
    let state = rest.chars().next()?;
    let start_time = rest.split_whitespace().nth(19)?.parse().ok()?;
    Some(Stat { state, start_time })
}

/// The process exists and is not a zombie.
pub fn pid_alive(pid: u32) -> bool {
    stat(pid).is_some_and(|s| s.state != 'Z')
}

/// Start time of a process (clock ticks since boot), to tell a live owner from a reused pid.
pub fn pid_start_time(pid: u32) -> Option<u64> {
    stat(pid).map(|s| s.start_time)
}

/// The command line of a process, arguments joined by spaces.
pub fn cmdline(pid: u32) -> Option<String> {
    let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(String::from_utf8_lossy(&cmd).replace('\0', " "))
}

/// Processes whose command line contains `needle` (never this process).
pub fn pids_matching(needle: &str) -> Vec<u32> {
    let me = std::process::id();
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == me {
            continue;
        }
        if let Some(cmd) = cmdline(pid) {
            if cmd.contains(needle) && pid_alive(pid) {
                out.push(pid);
            }
        }
    }
    out
}

/// The children of every thread of a process.
pub fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Ok(c) = std::fs::read_to_string(t.path().join("children")) {
                out.extend(c.split_whitespace().filter_map(|x| x.parse::<u32>().ok()));
            }
        }
    }
    out
}

/// SIGKILLs a process and all its descendants (children first found, then killed top-down).
pub fn kill_tree(pid: u32) {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let mut all = vec![pid];
    let mut i = 0;
    while i < all.len() {
        let kids = children(all[i]);
        all.extend(kids);
        i += 1;
    }
    for p in &all {
        let _ = kill(Pid::from_raw(*p as i32), Signal::SIGKILL);
    }
    for _ in 0..100 {
        if !all.iter().any(|p| pid_alive(*p)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Registers a process this process started, to be killed (with its children) if this
/// process is interrupted.
pub fn own_process(pid: u32) {
    super::cleanup::own(format!("process {pid}"), move || kill_tree(pid));
}

pub fn disown_process(pid: u32) {
    super::cleanup::disown(&format!("process {pid}"));
}

/// Registers a process group (see `exec::Setup::own_group`), ended if this process is
/// interrupted.
pub fn own_group(pgid: u32) {
    super::cleanup::own(format!("process group {pgid}"), move || kill_group(pgid));
}

pub fn disown_group(pgid: u32) {
    super::cleanup::disown(&format!("process group {pgid}"));
}

/// Ends a process group: SIGTERM (Vagrant cleans up its own helpers on it), then SIGKILL
/// to whatever is left after a grace period.
pub fn kill_group(pgid: u32) {
    use nix::sys::signal::{killpg, Signal};
    use nix::unistd::Pid;
    let g = Pid::from_raw(pgid as i32);
    if killpg(g, Signal::SIGTERM).is_err() {
        return;
    }
    for _ in 0..100 {
        if killpg(g, None).is_err() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = killpg(g, Signal::SIGKILL);
}

/// Mount points (field 5 of /proc/self/mountinfo, unescaped) of the mounts whose whole line
/// satisfies `keep` (the line also names the source and options such as an overlay's dirs).
pub fn mount_points_where(keep: impl Fn(&str) -> bool) -> Vec<String> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines()
        .filter(|l| keep(l))
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mount_path)
        .collect()
}

/// Mount points at or under `dir`, deepest first (from /proc/self/mountinfo).
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let prefix = dir.to_string_lossy().trim_end_matches('/').to_string();
    let mut out: Vec<PathBuf> = mount_points_where(|_| true)
        .into_iter()
        .filter(|m| m == &prefix || m.starts_with(&format!("{prefix}/")))
        .map(PathBuf::from)
        .collect();
    out.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    out.dedup();
    out
}

fn unescape_mount_path(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

pub fn is_mountpoint(p: &Path) -> bool {
    mounts_under(p).iter().any(|m| m == p)
}

/// Named network namespaces (`ip netns`) whose name starts with `prefix`.
pub fn netns_matching(prefix: &str) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir("/run/netns")
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default();
    out.retain(|n| n == prefix || n.starts_with(&format!("{prefix}-")));
    out.sort();
    out
}

/// Network links in the machine's own namespace whose name contains `needle`.
pub fn links_matching(needle: &str) -> Vec<String> {
    std::fs::read_dir("/sys/class/net")
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .filter(|n| n.contains(needle))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_has_a_start_time() {
        assert!(pid_alive(std::process::id()));
        assert!(pid_start_time(std::process::id()).is_some());
        assert!(!pid_alive(u32::MAX - 1));
    }

    #[test]
    fn kill_tree_kills_children() {
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 30 & sleep 30; wait"])
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let pid = child.id();
        let kids = children(pid);
        assert!(!kids.is_empty());
        kill_tree(pid);
        let _ = child.wait();
        for k in kids {
            assert!(!pid_alive(k), "child {k} survived");
        }
    }

    #[test]
    fn pids_matching_finds_by_command_line() {
        let marker = format!("pglab-unit-{}", std::process::id());
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 30", &marker])
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(pids_matching(&marker), vec![child.id()]);
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(pids_matching(&marker).is_empty());
    }
}
