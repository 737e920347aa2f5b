//! Ending a lab: its hosts killed or powered off, and every resource of a lab removed by
//! discovery (by its id), which needs no in-memory state; and what a lab leaves behind.

use super::layout::Nspawn;
use super::sandbox;
use super::storage::IN_MEMORY;
use crate::backend::api::Backend;
use crate::model::topology::Topology;
use crate::sys::exec::{quiet, scaled};
use crate::sys::fanout::fan_out;
use crate::sys::{mounts, procfs};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

impl Nspawn {
    /// Kills every host's container at once and waits until they are gone.
    pub(super) fn kill_all(&self) -> Result<()> {
        self.kill_hosts(&self.topo.names())
    }

    /// Kills these hosts' containers at once (their state is being thrown away) and waits
    /// until they are gone.
    pub(super) fn kill_hosts(&self, hosts: &[&str]) -> Result<()> {
        let pids: Vec<u32> = hosts.iter().filter_map(|h| self.nspawn_pid(h)).collect();
        for pid in &pids {
            procfs::kill_tree(*pid);
        }
        let deadline = Instant::now() + scaled(Duration::from_secs(30));
        while pids.iter().any(|p| procfs::pid_alive(*p)) {
            if Instant::now() > deadline {
                bail!("lab {}: killed hosts did not go away", self.id);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Powers every host off cleanly, in parallel, and waits for all.
    pub(super) fn stop_all(&self) -> Result<()> {
        fan_out(&self.topo.hosts, "stopping a host", |h| {
            self.stop_host(&h.name)
        })
        .into_iter()
        .collect::<Result<Vec<()>>>()?;
        Ok(())
    }
}

/// Removes every resource of lab `id`, discovered by name: it needs no in-memory state, so
/// it serves `down`, signal handlers, panics and `pglab gc` alike. Idempotent.
pub fn teardown(id: &str, dir: &Path, hosts: &[&str]) -> Result<()> {
    // 1. Kill the hosts, all at once: everything in them is thrown away with the lab
    //    directory, so a clean poweroff (about 1 s) would buy nothing.
    let lab = Nspawn {
        id: id.into(),
        dir: dir.into(),
        box_root: PathBuf::new(),
        topo: Topology::default_lab(),
    };
    // Step 2 takes care of anything that survived.
    let _ = lab.kill_hosts(hosts);
    // 2. Anything still carrying the lab id on its command line (including strays).
    for pid in procfs::pids_matching(&crate::model::names::host_prefix(id)) {
        procfs::kill_tree(pid);
    }
    // 3. Mounts under the lab directory, then cgroups and namespaces, then the files.
    mounts::unmount_under(dir)?;
    for h in sandbox::all_hierarchies() {
        for e in std::fs::read_dir(&h).into_iter().flatten().flatten() {
            if e.file_name()
                .to_string_lossy()
                .starts_with(&crate::model::names::host_prefix(id))
            {
                remove_cgroup(&e.path());
            }
        }
    }
    for ns in procfs::netns_matching(&crate::model::names::lab_tag(id)) {
        quiet(&["ip", "netns", "del", &ns]);
    }
    mounts::remove_dir_all_in_parallel(dir, &IN_MEMORY)
        .with_context(|| format!("cannot remove lab directory {}", dir.display()))?;
    Ok(())
}

/// Removes a cgroup and its children (deepest first; they are empty once the host is down).
fn remove_cgroup(dir: &Path) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            remove_cgroup(&e.path());
        }
    }
    for _ in 0..50 {
        if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What an nspawn lab `id` leaves on the machine when it is not torn down: network
/// namespaces, links, mounts and cgroups carrying its id.
pub fn leftovers(id: &str) -> Vec<String> {
    let tag = crate::model::names::lab_tag(id);
    let mut found = Vec::new();
    for ns in procfs::netns_matching(&tag) {
        found.push(format!("network namespace {ns}"));
    }
    for l in procfs::links_matching(id) {
        found.push(format!("network link {l}"));
    }
    for m in procfs::mount_points_where(|line| line.contains(id)) {
        found.push(format!("mount {m}"));
    }
    for h in sandbox::all_hierarchies() {
        for e in std::fs::read_dir(&h).into_iter().flatten().flatten() {
            if e.file_name().to_string_lossy().starts_with(&tag) {
                found.push(format!("cgroup {}", e.path().display()));
            }
        }
    }
    found
}
