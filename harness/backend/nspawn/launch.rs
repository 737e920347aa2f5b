//! Starting a host and entering it: systemd-nspawn in the host's network namespace and a user
//! namespace of the lab's, the wait for its boot, and the one way into a running host.

use super::layout::Nspawn;
use super::network::host_netns;
use super::sandbox;
use crate::sys::exec::{failure, scaled, CmdOutput};
use crate::sys::{cleanup, procfs};
use anyhow::{bail, Context, Result};
use std::time::{Duration, Instant};

pub(super) fn machine_name(id: &str, host: &str) -> String {
    crate::model::names::host_name(id, host)
}

/// `nsenter` into every namespace of the container whose init is `init`, its user and
/// cgroup namespaces included (root there is the lab's unprivileged id here), then `cmd`.
pub(super) fn nsenter(init: u32, cmd: &[&str]) -> Vec<String> {
    let pid = init.to_string();
    let mut argv: Vec<String> = [
        "nsenter", "-t", &pid, "-U", "-m", "-u", "-i", "-n", "-p", "-C", "--",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    argv.extend(cmd.iter().map(|s| s.to_string()));
    argv
}

/// nspawn's options for a host whose root is uid `base` here: "untrusted code must always
/// be run in a user namespace" (systemd-nspawn(1)). The box's files are already shifted by
/// the view, so nspawn must not chown anything.
fn user_namespace(base: u32) -> [String; 2] {
    [
        format!("--private-users={base}:{}", crate::sys::idmap::RANGE),
        "--private-users-ownership=off".into(),
    ]
}

/// The command line that runs `cmd` in the host whose init is `init`: its namespaces, then
/// its init's bounding set.
fn entered(init: u32, cmd: &[&str]) -> Result<Vec<String>> {
    let mut inner = sandbox::bounding_argv(init)?;
    inner.extend(cmd.iter().map(|s| s.to_string()));
    let inner: Vec<&str> = inner.iter().map(String::as_str).collect();
    Ok(nsenter(init, &inner))
}

impl Nspawn {
    /// The nspawn process of `host`, if it runs.
    pub(super) fn nspawn_pid(&self, host: &str) -> Option<u32> {
        let pid: u32 = std::fs::read_to_string(self.host_dir(host).join("nspawn.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let mine = procfs::cmdline(pid)?.contains(&machine_name(&self.id, host));
        (mine && procfs::pid_alive(pid)).then_some(pid)
    }

    /// PID 1 of the container (the child of the nspawn process).
    pub(super) fn init_pid(&self, host: &str) -> Option<u32> {
        let pid = self.nspawn_pid(host)?;
        procfs::children(pid).into_iter().next()
    }

    /// Mounts and launches every host, then waits for all of them (they boot in parallel).
    pub(super) fn boot_all(&self) -> Result<()> {
        for h in &self.topo.hosts {
            self.mount_root(&h.name)?;
            self.launch(&h.name)?;
        }
        for h in &self.topo.hosts {
            self.wait_booted(&h.name)?;
        }
        Ok(())
    }

    pub(super) fn launch(&self, host: &str) -> Result<()> {
        if self.nspawn_pid(host).is_some() {
            return Ok(());
        }
        let hd = self.host_dir(host);
        let console = std::fs::File::create(hd.join("console.log"))?;
        // Each container gets its own cgroup in the name=systemd (and unified) hierarchies:
        // with --keep-unit they would otherwise share pglab's cgroup, and their systemds
        // would create and remove each other's units' cgroups (seen: status=219/CGROUP).
        // In the memory and pids hierarchies the same cgroup carries the host's limits.
        let cgroup = machine_name(&self.id, host);
        let mut enter = String::new();
        for dir in sandbox::launch_cgroups(&cgroup)? {
            enter.push_str(&format!("echo $$ > {}/cgroup.procs && ", dir.display()));
        }
        sandbox::set_limits(&cgroup, sandbox::limits()?)?;
        let base = sandbox::uid_base(&self.id);
        let mut cmd = std::process::Command::new("sh");
        cmd.arg("-c")
            // nspawn starts in the host's network namespace and the container shares it: with
            // a user namespace, `--network-namespace-path` fails ("Failed to join network
            // namespace: Operation not permitted", systemd 252: the child joins it after it
            // entered its new user namespace, which has no rights over pglab's).
            .arg(format!(
                "{enter}exec nsenter --net=/run/netns/{} systemd-nspawn \"$@\"",
                host_netns(&self.id, host)
            ))
            .arg("sh")
            .arg("-D")
            .arg(self.root(host))
            .args([
                "--boot",
                "--register=no",
                "--keep-unit",
                "--console=read-only",
                "-M",
            ])
            .arg(machine_name(&self.id, host))
            .arg(format!("--hostname={host}"))
            .args(user_namespace(base))
            .stdin(std::process::Stdio::null())
            .stdout(console.try_clone()?)
            .stderr(console);
        // Own session: a Ctrl-C on pglab's terminal must not kill the containers before
        // pglab's cleanup powers them off in order.
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
        let _g = cleanup::creating()?;
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start systemd-nspawn for {}", self.place(host)))?;
        std::fs::write(hd.join("nspawn.pid"), child.id().to_string())?;
        // Reap it when it exits so that its /proc entry goes away.
        std::thread::spawn(move || {
            let _ = child.wait();
        });
        Ok(())
    }

    /// Polls until systemd inside `host` reports the boot finished (running or degraded).
    pub(super) fn wait_booted(&self, host: &str) -> Result<()> {
        let deadline = Instant::now() + scaled(Duration::from_secs(90));
        let mut last = String::from("(no container init yet)");
        loop {
            // A run asked to stop waits no more (its commands are refused: this would poll on).
            crate::sys::cancel::check()?;
            // By pid, not by command line: the latter is briefly unreadable while `sh` execs nspawn.
            let launched: Option<u32> =
                std::fs::read_to_string(self.host_dir(host).join("nspawn.pid"))
                    .ok()
                    .and_then(|p| p.trim().parse().ok());
            if launched.is_some_and(|p| !procfs::pid_alive(p)) {
                let console = std::fs::read_to_string(self.host_dir(host).join("console.log"))
                    .unwrap_or_default();
                return Err(failure(
                    "systemd-nspawn exited while the host was booting",
                    &self.place(host),
                    "systemd-nspawn -D ROOT --boot ...",
                    &console,
                    &format!("read {}", self.host_dir(host).join("console.log").display()),
                ));
            }
            if let Some(pid) = self.init_pid(host) {
                let is_running = ["systemctl", "is-system-running"];
                let said = self.run_in(host, pid, &is_running, Duration::from_secs(10));
                if let Ok(o) = said {
                    last = o.stdout.trim().to_string();
                    if last == "running" || last == "degraded" {
                        return Ok(());
                    }
                }
            }
            if Instant::now() > deadline {
                let console = std::fs::read_to_string(self.host_dir(host).join("console.log"))
                    .unwrap_or_default();
                return Err(failure(
                    &format!("host did not finish booting (waited for `systemctl is-system-running` to say running or degraded; last: {last})"),
                    &self.place(host),
                    "systemctl is-system-running",
                    &console,
                    "raise PGLAB_TIMEOUT_FACTOR on a slow machine; the console log is in the lab directory",
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs `cmd` in `host` (whose init is `init`), entered the one way
    /// ([`sandbox::entry`]): its namespaces, cgroups and bounding set, a clean environment.
    pub(super) fn run_in(
        &self,
        host: &str,
        init: u32,
        cmd: &[&str],
        timeout: Duration,
    ) -> Result<CmdOutput> {
        let setup = sandbox::entry(&machine_name(&self.id, host))?;
        crate::sys::exec::run_with(&entered(init, cmd)?, None, timeout, &setup)
    }

    /// Runs `cmd` (which ends in a shell running the launcher) in `host`, entered the one way.
    pub(super) fn enter(
        &self,
        host: &str,
        cmd: &[&str],
        script: &str,
        timeout: Duration,
    ) -> Result<CmdOutput> {
        self.check_host(host)?;
        let Some(pid) = self.init_pid(host) else {
            bail!("host {host} of lab {} is not running (start it with the scenario's start step or `pglab up`)", self.id);
        };
        let setup = sandbox::entry(&machine_name(&self.id, host))?;
        crate::backend::script::run_with(&entered(pid, cmd)?, script, timeout, &setup)
    }
}
