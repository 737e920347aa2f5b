//! What makes an nspawn host a sandbox: a user namespace of its own (root inside is an
//! unprivileged id range here), cgroups with limits, and one way in that carries no more
//! rights than the host's own processes.
//!
//! Measured on this project's machine (Linux 6.18, cgroup v1 controllers with a v2 unified
//! hierarchy): with `--private-users=BASE:65536` over an idmapped view of the box, the host's
//! init runs as uid BASE with nspawn's bounding set (CapBnd 00000000fdecbfff: no
//! CAP_SYS_MODULE, CAP_SYS_RAWIO, ...); a command entered with `nsenter -U` has every
//! capability, but only in that namespace, and this module drops its bounding set to the
//! init's and puts it in the host's cgroups before it starts.

use crate::sys::exec::Setup;
use crate::sys::idmap;
use anyhow::{bail, Result};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// The first id of lab `id`'s range: one range of 65536 ids per lab, chosen by a hash of the
/// lab id among 4096 ranges from 0x10000000 (inside systemd's range for containers,
/// 0x80000 to 0x6FFFFFFF, far from users' ids). Two labs that happen to share a range still
/// share no file, process or network: each host has its own namespaces of every kind.
pub fn uid_base(id: &str) -> u32 {
    let h = Sha256::digest(id.as_bytes());
    let k = u32::from(u16::from_be_bytes([h[0], h[1]])) % 4096;
    0x1000_0000 + k * idmap::RANGE
}

/// Limits of one host, from the environment: `PGLAB_HOST_MEMORY` (bytes, or with a K, M or
/// G suffix; default 2G: a host with PostgreSQL, barman and a few base backups of the lab's
/// small databases peaked at 410 MB of memory including its files on tmpfs, measured with
/// the cgroup's memory.max_usage_in_bytes after `pglab run recover`), `PGLAB_HOST_PIDS`
/// (default 2048; such a host runs about 60 processes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub memory: u64,
    pub pids: u64,
}

pub fn limits() -> Result<Limits> {
    let memory = match std::env::var("PGLAB_HOST_MEMORY") {
        Ok(v) if !v.is_empty() => match crate::sys::size::parse(&v) {
            Some(n) if n >= 256 << 20 => n,
            _ => bail!("PGLAB_HOST_MEMORY={v:?}: give a size of at least 256M, e.g. 2G"),
        },
        _ => 2 << 30,
    };
    let pids = match std::env::var("PGLAB_HOST_PIDS") {
        Ok(v) if !v.is_empty() => match v.parse::<u64>() {
            Ok(n) if n >= 256 => n,
            _ => bail!("PGLAB_HOST_PIDS={v:?}: give a number of at least 256"),
        },
        _ => 2048,
    };
    Ok(Limits { memory, pids })
}

/// Size of each of a lab's tmpfs mounts (`PGLAB_LAB_TMPFS`, default 8G): a cap, not a
/// reservation; a host that fills it gets "No space left on device", not the machine.
pub fn tmpfs_size() -> Result<String> {
    match std::env::var("PGLAB_LAB_TMPFS") {
        Ok(v) if !v.is_empty() => match crate::sys::size::parse(&v) {
            Some(n) if n >= 512 << 20 => Ok(format!("{}k", n >> 10)),
            _ => bail!("PGLAB_LAB_TMPFS={v:?}: give a size of at least 512M, e.g. 8G"),
        },
        _ => Ok("8g".into()),
    }
}

const ROOT: &str = "/sys/fs/cgroup";

/// The hierarchies that track processes (v1 name=systemd and the v2 unified one, or a pure
/// v2 mount): systemd inside a host manages its part of them.
pub fn hierarchies() -> Vec<PathBuf> {
    let base = Path::new(ROOT);
    let mut out: Vec<PathBuf> = ["systemd", "unified"]
        .iter()
        .map(|h| base.join(h))
        .filter(|p| p.join("cgroup.procs").exists())
        .collect();
    if out.is_empty() && base.join("cgroup.controllers").exists() {
        out.push(base.into());
    }
    out
}

/// Controllers mounted as v1 hierarchies of their own (memory, pids), if any.
pub fn v1_controllers() -> Vec<PathBuf> {
    ["memory", "pids"]
        .iter()
        .map(|c| Path::new(ROOT).join(c))
        .filter(|p| p.join("cgroup.procs").exists())
        .collect()
}

/// Every hierarchy in which a host has a cgroup named after its machine.
pub fn all_hierarchies() -> Vec<PathBuf> {
    let mut v = hierarchies();
    v.extend(v1_controllers());
    v
}

/// The cgroups the host's nspawn starts in (its container inherits them).
pub fn launch_cgroups(machine: &str) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for h in all_hierarchies() {
        let dir = h.join(machine);
        std::fs::create_dir_all(&dir)
            .map_err(|e| anyhow::anyhow!("cannot create cgroup {}: {e}", dir.display()))?;
        out.push(dir);
    }
    Ok(out)
}

/// Sets the host's limits on its cgroups (before anything runs in them); where the
/// controllers are missing it says so once and the host runs without them.
pub fn set_limits(machine: &str, l: Limits) -> Result<()> {
    let base = Path::new(ROOT);
    let v1 = v1_controllers();
    let files: Vec<(PathBuf, u64)> = if v1.is_empty() {
        // Pure v2: the controllers must be enabled for the children of the root.
        let _ = std::fs::write(base.join("cgroup.subtree_control"), "+memory +pids");
        vec![
            (base.join(machine).join("memory.max"), l.memory),
            (base.join(machine).join("pids.max"), l.pids),
        ]
    } else {
        vec![
            (
                base.join("memory")
                    .join(machine)
                    .join("memory.limit_in_bytes"),
                l.memory,
            ),
            (base.join("pids").join(machine).join("pids.max"), l.pids),
        ]
    };
    for (f, v) in files {
        // A machine without the controller here (a container without delegation) still runs
        // labs: without that limit, said once.
        if let Err(e) = std::fs::write(&f, v.to_string()) {
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| {
                eprintln!(
                    "pglab: cannot set a lab host's limit {}: {e}; hosts run without it here (the memory and pids cgroup controllers are needed)",
                    f.display()
                )
            });
        }
    }
    Ok(())
}

/// What a host hit of its limits since it started, said for a verdict: "ran out of memory
/// (limit 2 GiB): the kernel killed 3 processes", "reached its limit of 2048 processes".
pub fn limits_hit(machine: &str, l: Limits) -> Vec<String> {
    let base = Path::new(ROOT);
    let count = |file: PathBuf, key: &str| -> u64 {
        std::fs::read_to_string(file)
            .unwrap_or_default()
            .lines()
            .find_map(|line| line.strip_prefix(key)?.trim().parse().ok())
            .unwrap_or(0)
    };
    let (oom, pids) = if v1_controllers().is_empty() {
        (
            count(base.join(machine).join("memory.events"), "oom_kill "),
            count(base.join(machine).join("pids.events"), "max "),
        )
    } else {
        (
            count(
                base.join("memory").join(machine).join("memory.oom_control"),
                "oom_kill ",
            ),
            count(base.join("pids").join(machine).join("pids.events"), "max "),
        )
    };
    let mut said = Vec::new();
    if oom > 0 {
        said.push(format!(
            "ran out of memory (limit {}): the kernel killed {oom} process(es) there",
            crate::sys::size::human(l.memory)
        ));
    }
    if pids > 0 {
        said.push(format!(
            "reached its limit of {} processes ({pids} fork(s) refused)",
            l.pids
        ));
    }
    said
}

/// How a command enters a host: into its exec cgroups (limits count) with an empty
/// environment but PATH. The bounding set is dropped inside ([`bounding_argv`]): entering a
/// user namespace gives a full bounding set again (the kernel's `userns_install`; measured:
/// dropped before `nsenter -U`, a step still showed CapBnd 000001ffffffffff).
pub fn entry(machine: &str) -> Result<Setup> {
    let mut cgroups = Vec::new();
    for h in hierarchies() {
        // A cgroup of pglab's own beside the host's payload: systemd inside manages only
        // the payload's subtree.
        let dir = h.join(machine).join("pglab-exec");
        std::fs::create_dir_all(&dir)?;
        cgroups.push(dir);
    }
    cgroups.extend(v1_controllers().into_iter().map(|c| c.join(machine)));
    Ok(Setup {
        env: vec![("PATH".into(), "/usr/sbin:/usr/bin:/sbin:/bin".into())],
        clear_env: true,
        cgroups,
        ..Setup::default()
    })
}

/// Capability names as setpriv(1) takes them, by number (capabilities(7)).
const CAPS: [&str; 41] = [
    "chown",
    "dac_override",
    "dac_read_search",
    "fowner",
    "fsetid",
    "kill",
    "setgid",
    "setuid",
    "setpcap",
    "linux_immutable",
    "net_bind_service",
    "net_broadcast",
    "net_admin",
    "net_raw",
    "ipc_lock",
    "ipc_owner",
    "sys_module",
    "sys_rawio",
    "sys_chroot",
    "sys_ptrace",
    "sys_pacct",
    "sys_admin",
    "sys_boot",
    "sys_nice",
    "sys_resource",
    "sys_time",
    "sys_tty_config",
    "mknod",
    "lease",
    "audit_write",
    "audit_control",
    "setfcap",
    "mac_override",
    "mac_admin",
    "syslog",
    "wake_alarm",
    "block_suspend",
    "audit_read",
    "perfmon",
    "bpf",
    "checkpoint_restore",
];

/// The host's own setpriv, keeping only the capabilities of the host's init (`CapBnd` of
/// /proc/INIT/status), put in front of a command run inside the host. The program is the
/// box's: a submission that replaced it is caught by the checks' program comparison
/// (`integrity`, /usr/bin), and inside the user namespace a fuller set reaches nothing of
/// this machine anyway.
pub fn bounding_argv(init: u32) -> Result<Vec<String>> {
    let status = std::fs::read_to_string(format!("/proc/{init}/status"))?;
    let Some(mask) = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
    else {
        bail!("cannot read the capability bounding set of process {init}");
    };
    let keep: Vec<String> = CAPS
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, n)| format!("+{n}"))
        .collect();
    Ok(vec![
        "/usr/bin/setpriv".into(),
        "--bounding-set".into(),
        format!("-all,{}", keep.join(",")),
        "--".into(),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bounding_set_is_named_as_setpriv_takes_it() {
        let me = std::process::id();
        let argv = bounding_argv(me).unwrap();
        assert_eq!(argv[0], "/usr/bin/setpriv");
        assert!(argv[2].starts_with("-all,+chown,"), "{}", argv[2]);
        assert_eq!(CAPS[21], "sys_admin");
        assert_eq!(CAPS[40], "checkpoint_restore");
    }

    #[test]
    fn a_lab_gets_one_range_of_its_own_inside_the_container_ids() {
        let a = uid_base("abc123");
        assert_eq!(a, uid_base("abc123"));
        assert_eq!(a % idmap::RANGE, 0);
        assert!((0x1000_0000..0x2000_0000).contains(&a));
        let many: std::collections::BTreeSet<u32> =
            (0..50).map(|i| uid_base(&format!("lab{i}"))).collect();
        assert!(many.len() > 45, "ranges spread: {}", many.len());
    }
}
