//! The libvirt daemons the Vagrant libvirt provider talks to. Where no init system runs them
//! (this machine, containers, many CI runners) pglab starts `virtlogd` and `libvirtd` itself,
//! and stops them again, with what they leave behind, once no pglab VM is left.
//! Measured on Debian 12 (libvirt 9.0): stopping libvirtd leaves empty `LIBVIRT_*` iptables chains and
//! `ip_forward = 1`; both are put back here.

use crate::sys::exec::{failure, run, CmdOutput};
use anyhow::Result;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub const URI: &str = "qemu:///system";
/// Names of the libvirt networks pglab's Vagrantfile asks for (see Vagrantfile.tera).
pub const NETWORKS: &[&str] = &["pglab-mgmt", "pglab-lab"];

fn state_dir() -> PathBuf {
    PathBuf::from("/run/pglab/libvirt")
}

pub fn virsh(args: &[&str]) -> Result<CmdOutput> {
    let mut argv = vec!["virsh".to_string(), "-c".into(), URI.into()];
    argv.extend(args.iter().map(|s| s.to_string()));
    run(&argv, None, Duration::from_secs(60))
}

fn answers() -> bool {
    virsh(&["version"]).map(|o| o.ok()).unwrap_or(false)
}

/// Makes sure libvirtd answers on qemu:///system, starting the daemons if nothing runs them.
pub fn ensure_daemons() -> Result<()> {
    if answers() {
        return Ok(());
    }
    let dir = state_dir();
    std::fs::create_dir_all(&dir)?;
    let forward = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap_or_default();
    if !dir.join("ip_forward").exists() {
        std::fs::write(dir.join("ip_forward"), forward.trim())?;
    }
    for daemon in ["virtlogd", "libvirtd"] {
        let pidfile = dir.join(format!("{daemon}.pid"));
        let argv = vec![
            daemon.to_string(),
            "-d".into(),
            "-p".into(),
            pidfile.to_string_lossy().into(),
        ];
        let out = run(&argv, None, Duration::from_secs(30))?;
        if !out.ok() {
            return Err(failure(
                &format!("cannot start {daemon}"),
                "this machine",
                &argv.join(" "),
                &out.combined(),
                "install libvirt-daemon-system and qemu-system-x86 (`pglab doctor --install`)",
            ));
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while !answers() {
        if Instant::now() > deadline {
            let out = virsh(&["version"])?;
            return Err(failure(
                "libvirtd was started but does not answer",
                "this machine",
                &format!("virsh -c {URI} version"),
                &out.combined(),
                "look at /var/log/libvirt/ and try `libvirtd` in the foreground",
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

/// Domains (VMs) whose name starts with `prefix`, running or not. Never starts libvirtd.
pub fn domains_matching(prefix: &str) -> Vec<String> {
    if !answers() {
        return Vec::new();
    }
    virsh(&["list", "--all", "--name"])
        .map(|o| {
            o.stdout
                .lines()
                .map(str::trim)
                .filter(|n| n.starts_with(prefix))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Forcibly removes a domain and its disks (what `vagrant destroy` does, for when Vagrant's
/// own state is gone).
pub fn remove_domain(name: &str) {
    let _ = virsh(&["destroy", name]);
    let _ = virsh(&[
        "undefine",
        name,
        "--remove-all-storage",
        "--snapshots-metadata",
        "--nvram",
    ]);
    let _ = virsh(&["undefine", name, "--remove-all-storage"]);
}

/// When pglab started the daemons, no pglab VM is left and no Vagrant runs: removes pglab's networks, stops
/// the daemons and puts back the firewall and `ip_forward` as they were.
pub fn stop_daemons_if_idle() -> Result<()> {
    let dir = state_dir();
    // Another lab's `vagrant up` may be about to define its domains: not idle.
    if !dir.join("libvirtd.pid").exists()
        || !domains_matching(crate::model::names::PREFIX).is_empty()
        || !crate::sys::procfs::pids_matching("bin/vagrant ").is_empty()
    {
        return Ok(());
    }
    for net in NETWORKS {
        let _ = virsh(&["net-destroy", net]);
        let _ = virsh(&["net-undefine", net]);
    }
    for daemon in ["libvirtd", "virtlogd"] {
        let pidfile = dir.join(format!("{daemon}.pid"));
        if let Some(pid) = std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
            let deadline = Instant::now() + Duration::from_secs(20);
            while crate::sys::procfs::pid_alive(pid as u32) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            crate::sys::procfs::kill_tree(pid as u32);
        }
        let _ = std::fs::remove_file(&pidfile);
    }
    remove_firewall_chains();
    if let Ok(v) = std::fs::read_to_string(dir.join("ip_forward")) {
        let _ = std::fs::write("/proc/sys/net/ipv4/ip_forward", v.trim());
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// libvirt's `LIBVIRT_*` chains and the jumps to them, in every table.
fn remove_firewall_chains() {
    for table in ["filter", "nat", "mangle"] {
        let Ok(out) = run(
            &["iptables".into(), "-t".into(), table.into(), "-S".into()],
            None,
            Duration::from_secs(10),
        ) else {
            continue;
        };
        for rule in out
            .stdout
            .lines()
            .filter(|l| l.starts_with("-A ") && l.contains("LIBVIRT_"))
        {
            let mut argv = vec![
                "iptables".to_string(),
                "-t".into(),
                table.into(),
                "-D".into(),
            ];
            argv.extend(rule[3..].split_whitespace().map(str::to_string));
            let _ = run(&argv, None, Duration::from_secs(10));
        }
        for chain in out
            .stdout
            .lines()
            .filter_map(|l| l.strip_prefix("-N "))
            .filter(|c| c.starts_with("LIBVIRT_"))
        {
            for op in ["-F", "-X"] {
                let _ = run(
                    &[
                        "iptables".into(),
                        "-t".into(),
                        table.into(),
                        op.into(),
                        chain.into(),
                    ],
                    None,
                    Duration::from_secs(10),
                );
            }
        }
    }
}
