//! No leftovers: what this process is building is registered here, and removed on failure,
//! panic (through `Drop` of the lab), SIGINT and SIGTERM. Discovery helpers find a lab's
//! resources by its id, for teardown, `pglab gc` and the tests that prove nothing is left.

use anyhow::{bail, Result};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// What this process owns and must remove when it is interrupted.
#[derive(Debug, Clone, PartialEq)]
enum Owned {
    Lab(String),
    TempDir(PathBuf),
    Process(u32),
    Group(u32),
}

static OWNED: Mutex<Vec<Owned>> = Mutex::new(Vec::new());
/// Held while a resource is being created, so that the signal handler never tears down
/// half of a `mount` or `ip netns add` and then exits while the other half appears.
static CREATING: Mutex<()> = Mutex::new(());
static ABORTING: AtomicBool = AtomicBool::new(false);

fn owned() -> MutexGuard<'static, Vec<Owned>> {
    OWNED.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn own_lab(id: &str) {
    owned().push(Owned::Lab(id.into()));
}
pub fn disown_lab(id: &str) {
    owned().retain(|o| o != &Owned::Lab(id.into()));
}
pub fn own_temp_dir(p: &Path) {
    owned().push(Owned::TempDir(p.into()));
}
pub fn disown_temp_dir(p: &Path) {
    owned().retain(|o| o != &Owned::TempDir(p.into()));
}
pub fn own_process(pid: u32) {
    owned().push(Owned::Process(pid));
}
pub fn disown_process(pid: u32) {
    owned().retain(|o| o != &Owned::Process(pid));
}

pub fn own_group(pgid: u32) {
    owned().push(Owned::Group(pgid));
}
pub fn disown_group(pgid: u32) {
    owned().retain(|o| o != &Owned::Group(pgid));
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

pub fn aborting() -> bool {
    ABORTING.load(Ordering::SeqCst)
}

/// Take this before creating a resource; fails once an interrupt has arrived.
pub fn creating() -> Result<MutexGuard<'static, ()>> {
    let g = CREATING.lock().unwrap_or_else(|e| e.into_inner());
    if aborting() {
        bail!("interrupted: not creating anything more");
    }
    Ok(g)
}

/// On SIGINT/SIGTERM: stop creating, remove everything this process owns, exit 130/143.
pub fn install_signal_handlers() {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) else {
        return;
    };
    std::thread::spawn(move || {
        if let Some(sig) = signals.forever().next() {
            ABORTING.store(true, Ordering::SeqCst);
            let name = if sig == SIGINT { "SIGINT" } else { "SIGTERM" };
            eprintln!("\npglab: {name} received: removing what this run created ...");
            let _hold = CREATING.lock().unwrap_or_else(|e| e.into_inner());
            remove_owned();
            eprintln!("pglab: cleaned up; exiting");
            std::process::exit(128 + sig);
        }
    });
}

/// Removes everything registered as owned (also used at the end of a failed CLI command).
pub fn remove_owned() {
    let items: Vec<Owned> = owned().clone();
    for item in items.iter().rev() {
        match item {
            Owned::Process(pid) => kill_tree(*pid),
            Owned::Group(pgid) => kill_group(*pgid),
            Owned::Lab(id) => {
                if let Err(e) = crate::lab::destroy(id) {
                    eprintln!("pglab: removing lab {id}: {e:#}");
                }
            }
            Owned::TempDir(p) => {
                let _ = remove_tree(p);
            }
        }
    }
    owned().clear();
}

pub fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .map(|(_, r)| r.trim_start().starts_with('Z'))
            .unwrap_or(true),
        Err(_) => false,
    }
}

/// Start time of a process (clock ticks since boot), to tell a live owner from a reused pid.
pub fn pid_start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(19)?.parse().ok()
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
        if let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(needle) && pid_alive(pid) {
                out.push(pid);
            }
        }
    }
    out
}

fn children(pid: u32) -> Vec<u32> {
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

/// Mount points at or under `dir`, deepest first (from /proc/self/mountinfo).
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let prefix = dir.to_string_lossy().trim_end_matches('/').to_string();
    let mut out: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mount_path)
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

/// Unmounts everything at or under `dir`; lazily when busy.
pub fn unmount_under(dir: &Path) -> Result<()> {
    for _round in 0..5 {
        let mounts = mounts_under(dir);
        if mounts.is_empty() {
            return Ok(());
        }
        for m in mounts {
            let ms = m.to_string_lossy().to_string();
            if !crate::sys::exec::quiet(&["umount", &ms]) {
                crate::sys::exec::quiet(&["umount", "-l", &ms]);
            }
        }
    }
    let left = mounts_under(dir);
    if !left.is_empty() {
        bail!("cannot unmount {:?}; try `umount -l` on them by hand", left);
    }
    Ok(())
}

/// Removes a directory tree after unmounting what is mounted inside it.
pub fn remove_tree(dir: &Path) -> Result<()> {
    unmount_under(dir)?;
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    Ok(())
}

/// Removes `dir` (nothing may be mounted under it), the entries of its subdirectories
/// `parts` at the same time: a lab's directory holds a few hundred MB of PostgreSQL and
/// barman files per host, and removing them one host after the other took 0.6 s.
pub fn remove_dir_all_in_parallel(dir: &Path, parts: &[&str]) -> std::io::Result<()> {
    let entries: Vec<PathBuf> = parts
        .iter()
        .flat_map(|p| {
            std::fs::read_dir(dir.join(p))
                .into_iter()
                .flatten()
                .flatten()
        })
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    std::thread::scope(|s| {
        for e in &entries {
            // A failure shows in the final remove_dir_all, which names the path.
            s.spawn(move || std::fs::remove_dir_all(e));
        }
    });
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    Ok(())
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

/// Everything on this machine that still carries lab `id`: used by tests and `pglab gc`.
pub fn leftovers(id: &str) -> Vec<String> {
    let tag = format!("pglab-{id}");
    let mut found = Vec::new();
    for ns in netns_matching(&tag) {
        found.push(format!("network namespace {ns}"));
    }
    for l in links_matching(id) {
        found.push(format!("network link {l}"));
    }
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for l in mountinfo.lines().filter(|l| l.contains(id)) {
        found.push(format!("mount {}", l.split(' ').nth(4).unwrap_or(l)));
    }
    for pid in pids_matching(&tag) {
        found.push(format!("process {pid}"));
    }
    for h in crate::backend::nspawn::cgroup_hierarchies() {
        for e in std::fs::read_dir(&h).into_iter().flatten().flatten() {
            if e.file_name().to_string_lossy().starts_with(&tag) {
                found.push(format!("cgroup {}", e.path().display()));
            }
        }
    }
    for d in crate::backend::vagrant::libvirt::domains_matching(&tag) {
        found.push(format!("libvirt domain {d}"));
    }
    let dir = crate::sys::paths::labs_dir().join(id);
    if dir.exists() {
        found.push(format!("directory {}", dir.display()));
    }
    found
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
    fn a_directory_removed_in_parallel_is_gone_whole() {
        let t = tempfile::tempdir().unwrap();
        let lab = t.path().join("lab");
        for h in ["node1", "node2"] {
            std::fs::create_dir_all(lab.join("hosts").join(h).join("upper/deep")).unwrap();
            std::fs::write(lab.join("hosts").join(h).join("upper/deep/f"), "x").unwrap();
        }
        std::fs::write(lab.join("lab.json"), "{}").unwrap();
        remove_dir_all_in_parallel(&lab, &["hosts", "saved"]).unwrap();
        assert!(!lab.exists());
        // Already gone: nothing to do, no error.
        remove_dir_all_in_parallel(&lab, &["hosts"]).unwrap();
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

    #[test]
    fn creating_is_refused_once_aborting() {
        // Only checks the unset state: setting ABORTING would poison other tests.
        assert!(!aborting());
        assert!(creating().is_ok());
    }
}
