//! The nspawn backend: each host is a systemd-nspawn container booted with systemd, on an
//! overlay over the shared read-only box, in its own network namespace.
//!
//! Network: one namespace per lab (`pglab-<id>`) holds the bridge `br0` with the gateway
//! address; each host has a namespace `pglab-<id>-<host>` with `host0`, a veth whose peer
//! `v-<host>` sits on that bridge. Nothing is created in the machine's own network
//! namespace, so labs with identical addresses never collide.
//!
//! Every resource carries the lab id: namespaces by name, mounts and files by path under
//! the lab directory, processes by the machine name `pglab-<id>-<host>` on their command line.

mod integrity;
mod pgsock;
mod sandbox;

use super::api::{Backend, HostState};
use crate::model::topology::Topology;
use crate::sys::exec::{failure, must, quiet, run, scaled, CmdOutput};
use crate::sys::fanout::fan_out;
use crate::sys::{cleanup, mounts, procfs};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub struct Nspawn {
    id: String,
    dir: PathBuf,
    box_root: PathBuf,
    topo: Topology,
}

const NETWORK_HINT: &str = "run `pglab doctor`; stale labs are removed by `pglab gc`";

pub fn lab_netns(id: &str) -> String {
    crate::model::names::lab_tag(id)
}

pub fn host_netns(id: &str, host: &str) -> String {
    crate::model::names::host_name(id, host)
}

fn machine_name(id: &str, host: &str) -> String {
    crate::model::names::host_name(id, host)
}

/// `nsenter` into every namespace of the container whose init is `init`, its user and
/// cgroup namespaces included (root there is the lab's unprivileged id here), then `cmd`.
fn nsenter(init: u32, cmd: &[&str]) -> Vec<String> {
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
    pub fn new(id: &str, dir: &Path, box_root: &Path, topo: &Topology) -> Nspawn {
        Nspawn {
            id: id.into(),
            dir: dir.into(),
            box_root: box_root.into(),
            topo: topo.clone(),
        }
    }

    fn host_dir(&self, host: &str) -> PathBuf {
        self.dir.join("hosts").join(host)
    }

    fn root(&self, host: &str) -> PathBuf {
        self.host_dir(host).join("root")
    }

    fn place(&self, host: &str) -> String {
        format!("lab {}, host {host}", self.id)
    }

    fn check_host(&self, host: &str) -> Result<()> {
        self.topo.require_host(&self.id, host).map(|_| ())
    }

    /// The nspawn process of `host`, if it runs.
    fn nspawn_pid(&self, host: &str) -> Option<u32> {
        let pid: u32 = std::fs::read_to_string(self.host_dir(host).join("nspawn.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let mine = procfs::cmdline(pid)?.contains(&machine_name(&self.id, host));
        (mine && procfs::pid_alive(pid)).then_some(pid)
    }

    /// PID 1 of the container (the child of the nspawn process).
    fn init_pid(&self, host: &str) -> Option<u32> {
        let pid = self.nspawn_pid(host)?;
        procfs::children(pid).into_iter().next()
    }

    fn saved_dir(&self, name: &str) -> PathBuf {
        self.dir.join("saved").join(name)
    }

    fn saved_names(&self) -> Vec<String> {
        std::fs::read_dir(self.dir.join("saved"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect()
    }

    /// Mounts and launches every host, then waits for all of them (they boot in parallel).
    fn boot_all(&self) -> Result<()> {
        for h in &self.topo.hosts {
            self.mount_root(&h.name)?;
            self.launch(&h.name)?;
        }
        for h in &self.topo.hosts {
            self.wait_booted(&h.name)?;
        }
        Ok(())
    }

    /// Kills every host's container at once and waits until they are gone.
    fn kill_all(&self) -> Result<()> {
        self.kill_hosts(&self.topo.names())
    }

    /// Kills these hosts' containers at once (their state is being thrown away) and waits
    /// until they are gone.
    fn kill_hosts(&self, hosts: &[&str]) -> Result<()> {
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
    fn stop_all(&self) -> Result<()> {
        fan_out(&self.topo.hosts, "stopping a host", |h| {
            self.stop_host(&h.name)
        })
        .into_iter()
        .collect::<Result<Vec<()>>>()?;
        Ok(())
    }

    /// The lab's network: a namespace with a bridge at the gateway address, and each host in
    /// a namespace of its own joined to the bridge by a veth pair.
    fn setup_network(&self) -> Result<()> {
        let (_, prefix) = self.topo.network()?;
        let _g = cleanup::creating()?;
        self.create_bridge(prefix)?;
        for h in &self.topo.hosts {
            self.connect_host(&h.name, &format!("{}/{prefix}", h.address))?;
        }
        Ok(())
    }

    /// The lab's namespace with bridge `br0` holding the gateway address.
    fn create_bridge(&self, prefix: u8) -> Result<()> {
        let lab_ns = lab_netns(&self.id);
        let place = format!("lab {}", self.id);
        must(&["ip", "netns", "add", &lab_ns], &place, NETWORK_HINT)?;
        must(
            &["ip", "-n", &lab_ns, "link", "set", "lo", "up"],
            &place,
            NETWORK_HINT,
        )?;
        must(
            &["ip", "-n", &lab_ns, "link", "add", "br0", "type", "bridge"],
            &place,
            NETWORK_HINT,
        )?;
        let gw = format!("{}/{prefix}", self.topo.gateway);
        must(
            &["ip", "-n", &lab_ns, "addr", "add", &gw, "dev", "br0"],
            &place,
            NETWORK_HINT,
        )?;
        must(
            &["ip", "-n", &lab_ns, "link", "set", "br0", "up"],
            &place,
            NETWORK_HINT,
        )?;
        Ok(())
    }

    /// `host`'s namespace, its end of a veth pair (`host0`, with `addr`) and the other end
    /// (`v-<host>`) on the bridge.
    fn connect_host(&self, host: &str, addr: &str) -> Result<()> {
        let lab_ns = lab_netns(&self.id);
        let ns = host_netns(&self.id, host);
        let place = self.place(host);
        let peer = format!("v-{host}");
        let hint = NETWORK_HINT;
        must(&["ip", "netns", "add", &ns], &place, hint)?;
        must(&["ip", "-n", &ns, "link", "set", "lo", "up"], &place, hint)?;
        must(
            &[
                "ip", "-n", &lab_ns, "link", "add", &peer, "type", "veth", "peer", "name", "host0",
                "netns", &ns,
            ],
            &place,
            hint,
        )?;
        must(
            &[
                "ip", "-n", &lab_ns, "link", "set", &peer, "master", "br0", "up",
            ],
            &place,
            hint,
        )?;
        must(
            &["ip", "-n", &ns, "addr", "add", addr, "dev", "host0"],
            &place,
            hint,
        )?;
        must(
            &["ip", "-n", &ns, "link", "set", "host0", "up"],
            &place,
            hint,
        )?;
        // The namespace belongs to this machine's root, not to the host's user namespace:
        // its root may not bind ports below 1024 (sshd's 22) nor open ICMP sockets (ping)
        // unless the namespace's own settings allow every user to.
        let netns = format!("--net=/run/netns/{ns}");
        must(
            &[
                "nsenter",
                &netns,
                "sh",
                "-c",
                "echo 0 > /proc/sys/net/ipv4/ip_unprivileged_port_start && echo '0 2147483647' > /proc/sys/net/ipv4/ping_group_range",
            ],
            &place,
            hint,
        )?;
        Ok(())
    }

    /// Puts the hosts' writable layers and the saved states on tmpfs (unless
    /// `PGLAB_LAB_STORAGE=disk`). On disk, ext4 makes every new file slow once many files
    /// were deleted nearby (its inode allocator skips recently deleted inodes one by one:
    /// `recently_deleted` was 57% of a profile), and a lab deletes and creates data
    /// directories all the time: creating 1000 files took 0.6 s of CPU in a lab's overlay
    /// on disk, 0.05 s on tmpfs. A lab's files are thrown away with it anyway.
    fn mount_storage(&self) -> Result<()> {
        if lab_storage()? != Storage::Tmpfs {
            return Ok(());
        }
        for sub in IN_MEMORY {
            let at = self.dir.join(sub);
            std::fs::create_dir_all(&at)?;
            if procfs::is_mountpoint(&at) {
                continue;
            }
            let _g = cleanup::creating()?;
            must(
                &[
                    "mount",
                    "-t",
                    "tmpfs",
                    "-o",
                    &format!("mode=0755,size={}", sandbox::tmpfs_size()?),
                    &crate::model::names::lab_tag(&self.id),
                    &at.to_string_lossy(),
                ],
                &format!("lab {}", self.id),
                "tmpfs must be mountable here; or set PGLAB_LAB_STORAGE=disk",
            )?;
        }
        Ok(())
    }

    /// The box as this lab's hosts see it: a read-only view in which every owner is shifted
    /// into the lab's id range ([`sandbox::uid_base`]), shared by the lab's hosts.
    fn box_view(&self) -> Result<PathBuf> {
        let at = self.dir.join("box");
        std::fs::create_dir_all(&at)?;
        if !procfs::is_mountpoint(&at) {
            let _g = cleanup::creating()?;
            crate::sys::idmap::mount_shifted(&self.box_root, &at, sandbox::uid_base(&self.id))
                .with_context(|| {
                    format!("lab {}: the box's view for user-namespaced hosts", self.id)
                })?;
        }
        Ok(at)
    }

    fn mount_root(&self, host: &str) -> Result<()> {
        let hd = self.host_dir(host);
        for sub in ["upper", "work", "root"] {
            std::fs::create_dir_all(hd.join(sub))?;
        }
        let root = self.root(host);
        if procfs::is_mountpoint(&root) {
            return Ok(());
        }
        let lower = self.box_view()?;
        // The overlay's root directory is the upper layer's: owned by the host's root.
        let base = sandbox::uid_base(&self.id);
        std::os::unix::fs::lchown(hd.join("upper"), Some(base), Some(base))?;
        let opts = format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.display(),
            hd.join("upper").display(),
            hd.join("work").display()
        );
        let _g = cleanup::creating()?;
        must(
            &[
                "mount",
                "-t",
                "overlay",
                &crate::model::names::lab_tag(&self.id),
                "-o",
                &opts,
                &root.to_string_lossy(),
            ],
            &self.place(host),
            "overlayfs must be available (`modprobe overlay`); see `pglab doctor`",
        )?;
        // The box carries the build machine's hostname: every host gets its own, owned by
        // the host's root (written from here it would be this machine's root's: "nobody").
        // Written from this machine: /etc must be the host's own folder, not a link a
        // submission left (it would resolve here), and the file is made anew, never followed.
        let etc = root.join("etc");
        if !etc.symlink_metadata().map(|m| m.is_dir()).unwrap_or(false) {
            bail!(
                "{}: /etc is not a folder (a link the submission made?); the host cannot start",
                self.place(host)
            );
        }
        let hostname = etc.join("hostname");
        let _ = std::fs::remove_file(&hostname);
        {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&hostname)?;
            f.write_all(format!("{host}\n").as_bytes())?;
        }
        std::os::unix::fs::lchown(&hostname, Some(base), Some(base))?;
        Ok(())
    }

    fn launch(&self, host: &str) -> Result<()> {
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
    fn wait_booted(&self, host: &str) -> Result<()> {
        let deadline = Instant::now() + scaled(Duration::from_secs(90));
        let mut last = String::from("(no container init yet)");
        loop {
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

    fn nft(&self, host: &str, script: &str) -> Result<CmdOutput> {
        let ns = format!("--net=/run/netns/{}", host_netns(&self.id, host));
        let argv: Vec<String> = ["nsenter", &ns, "--", "nft", "-f", "-"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        run(&argv, Some(script.as_bytes()), Duration::from_secs(30))
    }
}

impl Nspawn {
    /// Runs `cmd` in `host` (whose init is `init`), entered the one way
    /// ([`sandbox::entry`]): its namespaces, cgroups and bounding set, a clean environment.
    fn run_in(&self, host: &str, init: u32, cmd: &[&str], timeout: Duration) -> Result<CmdOutput> {
        let setup = sandbox::entry(&machine_name(&self.id, host))?;
        crate::sys::exec::run_with(&entered(init, cmd)?, None, timeout, &setup)
    }

    /// Runs `cmd` (which ends in a shell running the launcher) in `host`, entered the one way.
    fn enter(
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

impl Backend for Nspawn {
    fn kind(&self) -> &'static str {
        "nspawn"
    }

    fn up(&mut self) -> Result<()> {
        self.mount_storage()?;
        self.setup_network()?;
        self.boot_all()
    }

    fn save(&self, name: &str) -> Result<()> {
        self.stop_all()?;
        let dir = self.saved_dir(name);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(&dir)?;
        for h in &self.topo.hosts {
            let upper = self.host_dir(&h.name).join("upper");
            copy_tree(&upper, &dir.join(&h.name), &self.place(&h.name))?;
        }
        self.boot_all()
    }

    fn connect_tcp(
        &self,
        addr: std::net::SocketAddr,
        timeout: Duration,
    ) -> Result<std::net::TcpStream> {
        // The lab's network exists only in its namespace: connect from a thread that entered
        // it. A socket stays in the namespace it was created in, whichever thread uses it.
        let ns = format!("/run/netns/{}", lab_netns(&self.id));
        std::thread::spawn(move || -> Result<std::net::TcpStream> {
            let file = std::fs::File::open(&ns).with_context(|| format!("cannot open {ns}"))?;
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                .with_context(|| format!("cannot enter {ns}"))?;
            std::net::TcpStream::connect_timeout(&addr, timeout)
                .with_context(|| format!("cannot connect to {addr} from the lab's gateway"))
        })
        .join()
        .unwrap_or_else(|_| bail!("the connecting thread panicked"))
    }

    fn restore(&self, name: &str) -> Result<()> {
        let dir = self.saved_dir(name);
        if !dir.is_dir() {
            bail!(
                "lab {} has no saved state {name:?} (saved: {})",
                self.id,
                self.saved_names().join(", ")
            );
        }
        // What runs now is thrown away: no clean shutdown needed, the hosts are killed.
        self.kill_all()?;
        fan_out(&self.topo.hosts, "restoring a host", |h| -> Result<()> {
            let saved = dir.join(&h.name);
            let hd = self.host_dir(&h.name);
            mounts::unmount_under(&self.root(&h.name))?;
            for sub in ["upper", "work"] {
                if hd.join(sub).exists() {
                    std::fs::remove_dir_all(hd.join(sub))?;
                }
            }
            copy_tree(&saved, &hd.join("upper"), &self.place(&h.name))
        })
        .into_iter()
        .collect::<Result<Vec<()>>>()?;
        self.boot_all()
    }

    fn exec(&self, host: &str, user: &str, script: &str, timeout: Duration) -> Result<CmdOutput> {
        let launcher = crate::backend::script::LAUNCHER;
        self.enter(
            host,
            &["runuser", "-l", user, "-s", "/bin/bash", "-c", launcher],
            script,
            timeout,
        )
    }

    fn check(&self, host: &str, user: &str, script: &str, timeout: Duration) -> Result<CmdOutput> {
        let launcher = crate::backend::script::check_launcher();
        self.enter(
            host,
            &[
                "runuser",
                "-u",
                user,
                "--",
                "/bin/bash",
                "--noprofile",
                "--norc",
                "-c",
                &launcher,
            ],
            script,
            timeout,
        )
    }

    fn pg_socket(&self, host: &str, user: &str) -> Result<Option<std::os::unix::net::UnixStream>> {
        self.check_host(host)?;
        let Some(pid) = self.init_pid(host) else {
            return Ok(None);
        };
        let sock = pgsock::connect(pid, &self.box_root, user)?;
        // Root in the host could listen at the socket's path with a server of its own that
        // answers every check: the peer must run the box's PostgreSQL.
        let peer = nix::sys::socket::getsockopt(&sock, nix::sys::socket::sockopt::PeerCredentials)?;
        if let Err(runs) = integrity::runs_box_postgres(peer.pid() as u32, &self.box_root) {
            return Err(anyhow::Error::new(super::api::NotTheServer(format!(
                "{host}: what answers at {} is not the box's PostgreSQL server (process {} runs {runs})",
                pgsock::SOCKET,
                peer.pid()
            ))));
        }
        Ok(Some(sock))
    }

    fn changed_programs(&self, host: &str) -> Vec<String> {
        let mut found = integrity::changed(&self.host_dir(host).join("upper"), &self.box_root);
        if let Some(init) = self.init_pid(host) {
            let mountinfo = std::fs::read_to_string(format!("/proc/{init}/mountinfo"));
            found.extend(integrity::mounts_over(&mountinfo.unwrap_or_default()));
        }
        found
    }

    fn stop_host(&self, host: &str) -> Result<()> {
        self.check_host(host)?;
        let Some(nspawn) = self.nspawn_pid(host) else {
            return Ok(());
        };
        if let Some(init) = self.init_pid(host) {
            // It may already be going.
            let poweroff = ["systemctl", "poweroff"];
            let _ = self.run_in(host, init, &poweroff, Duration::from_secs(60));
        }
        let deadline = Instant::now() + scaled(Duration::from_secs(60));
        while self.nspawn_pid(host).is_some() {
            if Instant::now() > deadline {
                procfs::kill_tree(nspawn);
                bail!(
                    "host {host} of lab {} did not power off within its deadline; it was killed",
                    self.id
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    fn start_host(&self, host: &str) -> Result<()> {
        self.check_host(host)?;
        self.mount_root(host)?;
        self.launch(host)?;
        self.wait_booted(host)
    }

    fn cut_link(&self, a: &str, b: &str) -> Result<()> {
        self.check_host(a)?;
        self.check_host(b)?;
        let addr_b = self.topo.host(b).expect("checked").address;
        let script = super::api::cut_rules(b, addr_b);
        let out = self.nft(a, &script)?;
        super::api::cut_applied(&out, &self.place(a), "on this machine (`pglab doctor`)")
    }

    fn heal_link(&self, a: &str, b: &str) -> Result<()> {
        self.check_host(a)?;
        self.check_host(b)?;
        let table = super::api::cut_table(b);
        // A link that is not cut has no table: healing it is not an error.
        self.nft(a, &format!("delete table inet {table}\n"))?;
        Ok(())
    }

    fn host_state(&self, host: &str) -> HostState {
        if self.init_pid(host).is_some() {
            HostState::Running
        } else if self.host_dir(host).exists() {
            HostState::Stopped
        } else {
            HostState::Missing
        }
    }

    fn how_to_enter(&self, host: &str) -> String {
        format!("pglab exec --lab {} {host} -- bash   (or: nsenter -t $(cat /proc/$(cat {})/task/*/children) -a bash)", self.id, self.host_dir(host).join("nspawn.pid").display())
    }

    fn limits_hit(&self, host: &str) -> Vec<String> {
        let limits = sandbox::limits().unwrap_or(sandbox::Limits { memory: 0, pids: 0 });
        sandbox::limits_hit(&machine_name(&self.id, host), limits)
    }

    fn down(&mut self) -> Result<()> {
        teardown(&self.id, &self.dir, &self.topo.names())
    }

    fn ssh_target(&self, host: &str, lab_key: &Path) -> Result<super::api::SshTarget> {
        self.check_host(host)?;
        let pubkey = std::fs::read_to_string(lab_key.with_extension("pub"))?;
        let script = format!(
            "set -e\ninstall -d -m 700 /root/.ssh\ntouch /root/.ssh/authorized_keys\ngrep -qxF {k} /root/.ssh/authorized_keys || echo {k} >> /root/.ssh/authorized_keys\nchmod 600 /root/.ssh/authorized_keys\nsystemctl start ssh\n",
            k = super::api::shell_quote(pubkey.trim())
        );
        let out = self.exec(host, "root", &script, Duration::from_secs(60))?;
        if !out.ok() {
            return Err(failure(
                "authorising the lab's ssh key for root failed",
                &self.place(host),
                "authorized_keys + systemctl start ssh",
                &out.combined(),
                "is openssh-server in the box recipe?",
            ));
        }
        Ok(super::api::SshTarget {
            address: self.topo.host(host).expect("checked").address.to_string(),
            user: "root".into(),
            become_root: false,
            key: Some(lab_key.to_path_buf()),
            // Every lab is new and its hosts get new host keys: nothing to verify against.
            ssh_args: vec![
                "-o".into(),
                "StrictHostKeyChecking=no".into(),
                "-o".into(),
                "UserKnownHostsFile=/dev/null".into(),
            ],
        })
    }

    fn in_lab_network(&self) -> Vec<String> {
        ["ip", "netns", "exec", &lab_netns(&self.id)]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }
}

/// The lab directory's parts that are tmpfs mounts (`PGLAB_LAB_STORAGE=tmpfs`): the hosts'
/// overlay layers and the saved states. They are also the big parts to remove.
const IN_MEMORY: [&str; 2] = ["hosts", "saved"];

#[derive(Debug, PartialEq, Eq)]
pub enum Storage {
    Tmpfs,
    Disk,
}

/// Where a lab's writable layers live: `PGLAB_LAB_STORAGE` = `tmpfs` (default) or `disk`
/// (for machines short of memory: a lab holds a few hundred MB per host).
pub fn lab_storage() -> Result<Storage> {
    match std::env::var("PGLAB_LAB_STORAGE").as_deref() {
        Err(_) | Ok("") | Ok("tmpfs") => Ok(Storage::Tmpfs),
        Ok("disk") => Ok(Storage::Disk),
        Ok(other) => bail!("PGLAB_LAB_STORAGE={other:?}: use `tmpfs` (the default) or `disk`"),
    }
}

/// `cp -a` (reflinks where the file system has them): keeps owners, modes, xattrs and the
/// overlay's whiteout devices.
fn copy_tree(from: &Path, to: &Path, place: &str) -> Result<()> {
    must(
        &[
            "cp",
            "-a",
            "--reflink=auto",
            &from.to_string_lossy(),
            &to.to_string_lossy(),
        ],
        place,
        "is there space left in the lab's state directory (PGLAB_STATE_DIR)?",
    )?;
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn lab(dir: &Path) -> Nspawn {
        Nspawn::new(
            "abc123",
            dir,
            Path::new("/nonexistent"),
            &Topology::default_lab(),
        )
    }

    #[test]
    fn a_host_not_in_the_lab_is_refused_naming_the_lab_and_its_hosts() {
        let d = tempfile::tempdir().unwrap();
        let n = lab(d.path());
        assert!(n.check_host("node2").is_ok());
        let e = format!("{:#}", n.check_host("node9").unwrap_err());
        assert!(
            e.contains("lab abc123 has no host \"node9\"") && e.contains("node1, node2, barman"),
            "{e}"
        );
    }

    /// A pid file is trusted only when its process is this host's nspawn (a pid reused by
    /// another process after a crash must not be killed or entered).
    #[test]
    fn a_pid_file_naming_another_process_means_the_host_is_not_running() {
        let d = tempfile::tempdir().unwrap();
        let n = lab(d.path());
        std::fs::create_dir_all(n.host_dir("node1")).unwrap();
        std::fs::write(
            n.host_dir("node1").join("nspawn.pid"),
            std::process::id().to_string(),
        )
        .unwrap();
        assert_eq!(n.nspawn_pid("node1"), None);
        assert_eq!(n.host_state("node1"), HostState::Stopped);
        assert_eq!(n.host_state("node2"), HostState::Missing);
    }

    #[test]
    fn saved_states_are_the_folders_under_saved() {
        let d = tempfile::tempdir().unwrap();
        let n = lab(d.path());
        assert!(n.saved_names().is_empty());
        std::fs::create_dir_all(n.saved_dir("provisioned")).unwrap();
        assert_eq!(n.saved_names(), ["provisioned"]);
    }

    #[test]
    fn nsenter_enters_every_namespace_of_the_container() {
        assert_eq!(
            nsenter(42, &["systemctl", "poweroff"]).join(" "),
            "nsenter -t 42 -U -m -u -i -n -p -C -- systemctl poweroff"
        );
    }

    #[test]
    fn a_lab_that_never_existed_leaves_nothing() {
        assert!(leftovers("zz9999").is_empty());
    }
}
