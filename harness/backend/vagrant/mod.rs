//! The Vagrant backend: one Vagrantfile per lab, rendered from `Vagrantfile.tera` into the
//! lab's directory, driven with the `vagrant` CLI. The lifecycle, as in Test Kitchen:
//! create = `vagrant up --no-provision`, converge = pglab's provisioner over ssh,
//! verify = the scenarios, destroy = `vagrant destroy -f` (also on failure, panic, Ctrl-C and
//! by `pglab gc`, which falls back to `virsh` when Vagrant's own state is gone).
//!
//! Commands run on hosts through `vagrant ssh-config` + plain `ssh -T` (no TTY, no CRLF,
//! stdout and stderr apart) with one multiplexed connection per host: under software
//! emulation an ssh handshake costs ~2 s, a multiplexed command ~0.1 s.

pub mod controller_net;
pub mod libvirt;
pub mod libvirt_box;
pub mod vagrantfile;

use super::api::{Backend, HostState};
use crate::backend::vagrant::vagrantfile::Provider;
use crate::model::topology::Topology;
use crate::sys::exec::{failure, run, run_with, scaled, CmdOutput, Setup};
use crate::sys::{mounts, procfs};
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub struct Vagrant {
    id: String,
    dir: PathBuf,
    topo: Topology,
    provider: Provider,
    /// The box's name for Vagrant, and (libvirt boxes built by pglab) its directory with the
    /// kernel and initrd for direct kernel boot.
    box_name: String,
    box_dir: Option<PathBuf>,
}

/// Time limits per stage, before PGLAB_TIMEOUT_FACTOR. Measured here under emulation:
/// up of three VMs 237-253 s, destroy 10-11 s, halt of three 96 s.
const UP_TIMEOUT: Duration = Duration::from_secs(900);
const HALT_TIMEOUT: Duration = Duration::from_secs(300);
const DESTROY_TIMEOUT: Duration = Duration::from_secs(180);
const QUICK_TIMEOUT: Duration = Duration::from_secs(120);

impl Vagrant {
    pub fn new(
        id: &str,
        dir: &Path,
        topo: &Topology,
        provider: Provider,
        box_name: &str,
        box_dir: Option<&Path>,
    ) -> Vagrant {
        Vagrant {
            id: id.into(),
            dir: dir.into(),
            topo: topo.clone(),
            provider,
            box_name: box_name.into(),
            box_dir: box_dir.map(Path::to_path_buf),
        }
    }

    fn vdir(&self) -> PathBuf {
        self.dir.join("vagrant")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("logs").join("vagrant.log")
    }

    fn domain(&self, host: &str) -> String {
        crate::model::names::host_name(&self.id, host)
    }

    fn place(&self, host: &str) -> String {
        format!(
            "host {host} of lab {} (vagrant {}), log {}",
            self.id,
            provider_name(self.provider),
            self.log_path().display()
        )
    }

    fn check_host(&self, host: &str) -> Result<()> {
        self.topo.require_host(&self.id, host).map(|_| ())
    }

    fn setup(&self) -> Setup {
        let mut setup = vagrant_setup(&self.vdir());
        setup.env.push((
            "VAGRANT_DEFAULT_PROVIDER".into(),
            provider_name(self.provider).into(),
        ));
        setup
    }

    /// Runs `vagrant ARGS --machine-readable` in its own process group with a deadline; its
    /// output goes to the lab's vagrant.log in readable form. An error names the stage,
    /// the log, Vagrant's error class and a hint for it.
    fn vagrant(&self, stage: &str, args: &[&str], timeout: Duration) -> Result<CmdOutput> {
        let mut argv: Vec<String> = vec!["vagrant".into()];
        argv.extend(args.iter().map(|s| s.to_string()));
        argv.push("--machine-readable".into());
        let bar = crate::sys::progress::spinner(&format!("lab {}: vagrant {stage}", self.id));
        let result = run_with(&argv, None, scaled(timeout), &self.setup());
        bar.finish_and_clear();
        let readable = |o: &CmdOutput| {
            let mut s = humanize(&o.stdout);
            s.push_str(&o.stderr);
            s
        };
        let mut log = format!("\n== vagrant {} ({stage})\n", args.join(" "));
        match &result {
            Ok(o) => log.push_str(&readable(o)),
            Err(e) => log.push_str(&format!("{e:#}\n")),
        }
        append(&self.log_path(), &log);
        let out = result.map_err(|e| {
            anyhow::anyhow!(
                "vagrant {stage} of lab {} did not finish (log {}): {e:#}",
                self.id,
                self.log_path().display()
            )
        })?;
        if !out.ok() {
            let (class, message) = error_exit(&out.stdout).unwrap_or_default();
            return Err(failure(
                &format!(
                    "vagrant {stage} failed{}",
                    if class.is_empty() {
                        String::new()
                    } else {
                        format!(": {class}")
                    }
                ),
                &format!("lab {}, log {}", self.id, self.log_path().display()),
                &argv.join(" "),
                &if message.is_empty() {
                    readable(&out)
                } else {
                    message
                },
                &hint_for(&class),
            ));
        }
        Ok(out)
    }

    fn ssh_config(&self) -> PathBuf {
        self.vdir().join("ssh_config")
    }

    fn control_path(&self) -> String {
        // Named with the lab's tag so that teardown and the leftover check find the master.
        self.vdir()
            .join(format!(
                "{}.sock",
                crate::model::names::host_name(&self.id, "%h")
            ))
            .to_string_lossy()
            .into()
    }

    /// Writes `vagrant ssh-config` for every host (addresses may change across reboots).
    fn refresh_ssh_config(&self) -> Result<()> {
        let argv: Vec<String> = vec!["vagrant".into(), "ssh-config".into()];
        let out = run_with(&argv, None, scaled(QUICK_TIMEOUT), &self.setup())?;
        if !out.ok() {
            return Err(failure(
                "vagrant ssh-config failed",
                &format!("lab {}", self.id),
                "vagrant ssh-config",
                &out.combined(),
                "are the VMs running? `pglab status`",
            ));
        }
        std::fs::write(self.ssh_config(), &out.stdout)?;
        Ok(())
    }

    fn ssh_argv(&self, host: &str, remote: &str) -> Vec<String> {
        let cfg = self.ssh_config();
        [
            "ssh",
            "-F",
            &cfg.to_string_lossy(),
            "-T",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=20",
            "-o",
            "ControlMaster=auto",
            "-o",
            "ControlPersist=600",
            "-o",
            &format!("ControlPath={}", self.control_path()),
            "-o",
            "LogLevel=ERROR",
            host,
            remote,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    /// Ends the multiplexed ssh connections (after a reboot or restore they are dead).
    fn close_ssh(&self, host: &str) {
        let mut argv = self.ssh_argv(host, "true");
        argv.insert(1, "-O".into());
        argv.insert(2, "exit".into());
        argv.pop();
        let _ = run(&argv, None, Duration::from_secs(10));
    }

    /// Polls until ssh into `host` works and its systemd finished booting.
    fn wait_ready(&self, host: &str) -> Result<()> {
        let deadline = Instant::now() + scaled(Duration::from_secs(300));
        let mut last;
        loop {
            // A run asked to stop waits no more.
            crate::sys::cancel::check()?;
            match self.exec(
                host,
                "root",
                "systemctl is-system-running --wait || true",
                scaled(Duration::from_secs(120)),
            ) {
                Ok(o) if o.stdout.contains("running") || o.stdout.contains("degraded") => {
                    return Ok(())
                }
                Ok(o) => last = o.combined(),
                Err(e) => last = format!("{e:#}"),
            }
            if Instant::now() > deadline {
                return Err(failure(
                    &format!("{host} did not finish booting"),
                    &self.place(host),
                    "ssh HOST systemctl is-system-running --wait",
                    &last,
                    "look at the VM's console log next to the lab's logs; raise PGLAB_TIMEOUT_FACTOR on a slow machine",
                ));
            }
            std::thread::sleep(Duration::from_secs(2));
        }
    }

    fn render(&self) -> Result<()> {
        let mut opts =
            crate::backend::vagrant::vagrantfile::VagrantOptions::for_provider(self.provider);
        opts.console_dir = self.dir.join("logs");
        if let Some(d) = &self.box_dir {
            opts.box_name = self.box_name.clone();
            opts.box_version = None;
            opts.kernel = Some((
                d.join("vmlinuz").to_string_lossy().into(),
                d.join("initrd.img").to_string_lossy().into(),
                "root=/dev/vda rw console=ttyS0 net.ifnames=0".into(),
            ));
        }
        if self.provider == Provider::Libvirt {
            opts.libvirt_driver = libvirt_driver(self.box_dir.as_deref());
        }
        let text = crate::backend::vagrant::vagrantfile::render(&self.topo, &self.id, &opts)?;
        std::fs::create_dir_all(self.vdir())?;
        std::fs::write(self.vdir().join("Vagrantfile"), text)?;
        Ok(())
    }

    fn states(&self) -> BTreeMap<String, String> {
        let argv: Vec<String> = vec![
            "vagrant".into(),
            "status".into(),
            "--machine-readable".into(),
        ];
        run_with(&argv, None, scaled(QUICK_TIMEOUT), &self.setup())
            .map(|o| parse_states(&o.stdout))
            .unwrap_or_default()
    }

    /// Sets every host's clock to this machine's: a restored snapshot comes back with the
    /// clock of when it was saved (measured: nothing in the guest syncs it).
    fn sync_clocks(&self) -> Result<()> {
        for h in self.topo.names() {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_secs();
            self.exec(
                h,
                "root",
                &format!("date -s @{now} >/dev/null"),
                Duration::from_secs(60),
            )?;
        }
        Ok(())
    }
}

/// How every vagrant command runs: in the lab's Vagrant directory, without update checks or
/// colours, in its own process group.
fn vagrant_setup(vdir: &Path) -> Setup {
    Setup {
        cwd: Some(vdir.to_path_buf()),
        env: vec![
            ("VAGRANT_CHECKPOINT_DISABLE".into(), "1".into()),
            ("VAGRANT_NO_COLOR".into(), "1".into()),
        ],
        own_group: true,
        ..Setup::default()
    }
}

pub fn provider_name(p: Provider) -> &'static str {
    match p {
        Provider::Virtualbox => "virtualbox",
        Provider::Libvirt => "libvirt",
    }
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = f.write_all(text.as_bytes());
    }
}

/// Machine-readable lines (`time,target,type,data...`) as a person would read them.
pub fn humanize(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let f: Vec<&str> = line.splitn(5, ',').collect();
        let msg = match f.as_slice() {
            [_, target, "ui", _level, msg] => format!(
                "{target}{}{}",
                if target.is_empty() { "" } else { ": " },
                unescape(msg)
            ),
            [_, target, kind, rest @ ..] => {
                format!("{target} {kind} {}", unescape(&rest.join(",")))
            }
            _ => line.to_string(),
        };
        out.push_str(msg.trim_end());
        out.push('\n');
    }
    out
}

fn unescape(s: &str) -> String {
    s.replace("%!(VAGRANT_COMMA)", ",")
        .replace("\\n", "\n")
        .replace("\\r", "")
}

/// `state` per target from `vagrant status --machine-readable`.
pub fn parse_states(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.splitn(4, ',').collect();
            match f.as_slice() {
                [_, target, "state", state] if !target.is_empty() => {
                    Some((target.to_string(), state.to_string()))
                }
                _ => None,
            }
        })
        .collect()
}

/// Vagrant's `error-exit` line: (error class, message).
pub fn error_exit(text: &str) -> Option<(String, String)> {
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.splitn(5, ',').collect();
        match f.as_slice() {
            [_, _, "error-exit", class, msg] => Some((class.to_string(), unescape(msg))),
            [_, _, "error-exit", class] => Some((class.to_string(), String::new())),
            _ => None,
        }
    })
}

/// What to try, for the error classes people meet.
pub fn hint_for(class: &str) -> String {
    let short = class.rsplit("::").next().unwrap_or(class);
    match short {
        "ProviderNotUsable" | "VirtualBoxNotDetected" => "this provider cannot run on this machine (VirtualBox is not installed or its kernel module is missing): use PGLAB_PROVIDER=libvirt, or the nspawn backend (the default)".into(),
        "BoxNotFound" | "BoxAddNoMatchingProvider" | "BoxNotFoundWithProvider" => "the box is not installed for this provider: for libvirt run `pglab box build --libvirt NAME`; for VirtualBox `vagrant box add ubuntu/jammy64 --box-version 20240301.0.0`".into(),
        "VMBootTimeout" | "BootTimeout" => "the VM did not boot in time: look at its console log in the lab's logs directory; raise PGLAB_TIMEOUT_FACTOR under software emulation".into(),
        "NetworkAddressInvalid" | "HostOnlyNetworkNotAllowed" | "NetworkCollision" => "VirtualBox allows host-only addresses in 192.168.56.0/21 only unless /etc/vbox/networks.conf says otherwise; another lab or network may also use these addresses".into(),
        "NoLibvirtConnection" | "FogLibvirtConnectionError" | "ConnectionError" => "libvirtd does not answer on qemu:///system: `pglab doctor`, then `virsh -c qemu:///system version`".into(),
        "" => "read the log named above".into(),
        other => format!("Vagrant raised {other}: read the log named above"),
    }
}

/// "kvm" when /dev/kvm really runs a guest, else "qemu" (software emulation). Measured here:
/// /dev/kvm exists but a nested KVM guest never prints, so existence is not enough; the
/// probe boots the box's kernel for a few seconds. PGLAB_LIBVIRT_DRIVER overrides it.
pub fn libvirt_driver(box_dir: Option<&Path>) -> String {
    if let Ok(d) = std::env::var("PGLAB_LIBVIRT_DRIVER") {
        return d;
    }
    let cache = Path::new("/run/pglab/kvm-driver");
    if let Ok(d) = std::fs::read_to_string(cache) {
        return d.trim().to_string();
    }
    let driver = if kvm_runs_a_guest(box_dir) {
        "kvm"
    } else {
        "qemu"
    };
    let _ = std::fs::create_dir_all("/run/pglab");
    let _ = std::fs::write(cache, driver);
    driver.into()
}

fn kvm_runs_a_guest(box_dir: Option<&Path>) -> bool {
    if std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_err()
    {
        return false;
    }
    let Some(kernel) = box_dir.map(|d| d.join("vmlinuz")).filter(|k| k.exists()) else {
        return false;
    };
    let argv: Vec<String> = [
        "qemu-system-x86_64",
        "-enable-kvm",
        "-m",
        "256",
        "-display",
        "none",
        "-monitor",
        "none",
        "-serial",
        "stdio",
        "-no-reboot",
        "-kernel",
        &kernel.to_string_lossy(),
        "-append",
        "console=ttyS0 panic=-1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // A working KVM prints the kernel banner in well under a second; the probe is cut after 15 s.
    run(&argv, None, Duration::from_secs(15))
        .map(|o| o.stdout.contains("Linux version"))
        .unwrap_or_else(|e| format!("{e:#}").contains("Linux version"))
}

/// Pre-flight: what `vagrant up` needs, checked before anything is created.
pub fn preflight(provider: Provider) -> Result<()> {
    if provider == Provider::Libvirt {
        crate::sys::doctor::ensure_vagrant_libvirt()?;
    }
    let v = run(&["vagrant".into(), "--version".into()], None, Duration::from_secs(60))
        .context("vagrant is not installed: `apt-get install --no-install-recommends vagrant` (Debian/Ubuntu) or see https://developer.hashicorp.com/vagrant/install")?;
    let version = v.stdout.trim().trim_start_matches("Vagrant ").to_string();
    let parts: Vec<u32> = version.split('.').filter_map(|p| p.parse().ok()).collect();
    if parts.as_slice() < [2, 2].as_slice() {
        bail!("vagrant {version} is too old: pglab needs 2.2 or later");
    }
    match provider {
        Provider::Libvirt => {
            let plugins = run(
                &["vagrant".into(), "plugin".into(), "list".into()],
                None,
                Duration::from_secs(120),
            )?;
            if !plugins.stdout.contains("vagrant-libvirt") {
                bail!("the vagrant-libvirt plugin is missing: `apt-get install vagrant-libvirt` (or `vagrant plugin install vagrant-libvirt`)");
            }
            for tool in ["libvirtd", "virtlogd", "virsh", "qemu-system-x86_64"] {
                if which::which(tool).is_err() {
                    bail!("{tool} is missing: `apt-get install --no-install-recommends libvirt-daemon-system qemu-system-x86 dnsmasq-base` (or `pglab doctor --install`)");
                }
            }
            libvirt::ensure_daemons()?;
        }
        Provider::Virtualbox => {
            if which::which("VBoxManage").is_err() {
                bail!("VirtualBox is not installed (VBoxManage not found). Install VirtualBox on your own machine, or use PGLAB_PROVIDER=libvirt, or the nspawn backend (the default)");
            }
        }
    }
    Ok(())
}

impl Backend for Vagrant {
    fn kind(&self) -> &'static str {
        "vagrant"
    }

    fn up(&mut self) -> Result<()> {
        if self.provider == Provider::Libvirt {
            libvirt::ensure_daemons()?;
        }
        self.render()?;
        let provider = provider_name(self.provider);
        self.vagrant(
            "up",
            &["up", "--provider", provider, "--no-provision"],
            UP_TIMEOUT,
        )?;
        self.refresh_ssh_config()?;
        for h in self.topo.names() {
            self.wait_ready(h)?;
        }
        if self.provider == Provider::Libvirt {
            controller_net::create(&self.id, &format!("lab {} (vagrant libvirt)", self.id))?;
        }
        Ok(())
    }

    fn exec(&self, host: &str, user: &str, script: &str, timeout: Duration) -> Result<CmdOutput> {
        self.check_host(host)?;
        // Same as the nspawn backend: a login environment of `user`, the script on stdin,
        // run by crate::backend::script's launcher (commands inside get /dev/null as stdin).
        let argv = self.ssh_argv(host, &crate::backend::script::over_ssh(user));
        let out = crate::backend::script::run(&argv, script, timeout)?;
        if out.code == 255 {
            return Err(failure(
                &format!("ssh into {host} failed"),
                &self.place(host),
                &argv.join(" "),
                &out.combined(),
                "is the VM running? `pglab status`; the ssh settings are in the lab's vagrant/ssh_config",
            ));
        }
        Ok(out)
    }

    fn stop_host(&self, host: &str) -> Result<()> {
        self.check_host(host)?;
        self.close_ssh(host);
        self.vagrant(&format!("halt {host}"), &["halt", host], HALT_TIMEOUT)?;
        Ok(())
    }

    fn start_host(&self, host: &str) -> Result<()> {
        self.check_host(host)?;
        self.vagrant(
            &format!("up {host}"),
            &[
                "up",
                host,
                "--provider",
                provider_name(self.provider),
                "--no-provision",
            ],
            UP_TIMEOUT,
        )?;
        self.refresh_ssh_config()?;
        self.wait_ready(host)
    }

    fn cut_link(&self, a: &str, b: &str) -> Result<()> {
        self.check_host(b)?;
        let addr_b = self.topo.host(b).expect("checked").address;
        // nftables inside the guest; ssh reaches it over the management network, which the
        // cut leaves alone.
        let script = format!(
            "nft -f - <<'EOF'\n{}EOF\n",
            super::api::cut_rules(b, addr_b)
        );
        let out = self.exec(a, "root", &script, Duration::from_secs(60))?;
        super::api::cut_applied(
            &out,
            &self.place(a),
            "in the box (boxes/layers/vagrant-libvirt.toml)",
        )
    }

    fn heal_link(&self, a: &str, b: &str) -> Result<()> {
        self.check_host(b)?;
        let script = format!(
            "nft delete table inet {} 2>/dev/null || true\n",
            super::api::cut_table(b)
        );
        self.exec(a, "root", &script, Duration::from_secs(60))?;
        Ok(())
    }

    fn host_state(&self, host: &str) -> HostState {
        let state = if self.provider == Provider::Libvirt {
            libvirt::virsh(&["domstate", &self.domain(host)])
                .map(|o| {
                    if o.ok() {
                        o.stdout.trim().to_string()
                    } else {
                        "not_created".into()
                    }
                })
                .unwrap_or_default()
        } else {
            self.states().get(host).cloned().unwrap_or_default()
        };
        match state.as_str() {
            "running" => HostState::Running,
            "" | "not_created" | "not created" => HostState::Missing,
            _ => HostState::Stopped,
        }
    }

    fn how_to_enter(&self, host: &str) -> String {
        format!(
            "cd {} && vagrant ssh {host}   (or: ssh -F {} {host})",
            self.vdir().display(),
            self.ssh_config().display()
        )
    }

    fn down(&mut self) -> Result<()> {
        teardown(&self.id, &self.dir)
    }

    /// libvirt: the controller's namespace on the management network (`controller_net`).
    /// VirtualBox reaches its VMs through ports forwarded on this machine's loopback, so
    /// there the controller shares this machine's network (README).
    fn in_lab_network(&self) -> Vec<String> {
        match self.provider {
            Provider::Libvirt => controller_net::enter(&self.id),
            Provider::Virtualbox => Vec::new(),
        }
    }

    fn ssh_target(&self, host: &str, _lab_key: &Path) -> Result<super::api::SshTarget> {
        self.check_host(host)?;
        // Vagrant's own user and key, through the ssh-config Vagrant wrote.
        Ok(super::api::SshTarget {
            address: host.into(),
            user: "vagrant".into(),
            become_root: true,
            key: None,
            ssh_args: vec!["-F".into(), self.ssh_config().to_string_lossy().into()],
        })
    }

    fn save(&self, name: &str) -> Result<()> {
        // Quiesce: a checkpoint and the file systems synced, so the snapshot is clean.
        for h in self.topo.names() {
            self.exec(h, "root", "sync", Duration::from_secs(120))?;
        }
        self.vagrant(
            &format!("snapshot save {name}"),
            &["snapshot", "save", "--force", name],
            HALT_TIMEOUT,
        )?;
        Ok(())
    }

    fn restore(&self, name: &str) -> Result<()> {
        for h in self.topo.names() {
            self.close_ssh(h);
        }
        self.vagrant(
            &format!("snapshot restore {name}"),
            &["snapshot", "restore", "--no-provision", name],
            HALT_TIMEOUT,
        )?;
        self.refresh_ssh_config()?;
        self.sync_clocks()
    }

    fn connect_tcp(
        &self,
        addr: std::net::SocketAddr,
        timeout: Duration,
    ) -> Result<std::net::TcpStream> {
        // The private network is a bridge (libvirt) or host-only adapter (VirtualBox) on this
        // machine, holding the topology's gateway address.
        std::net::TcpStream::connect_timeout(&addr, timeout)
            .with_context(|| format!("cannot connect to {addr} from this machine"))
    }
}

/// Removes a Vagrant lab: `vagrant destroy -f` while Vagrant's state is there, then by
/// discovery whatever is left (libvirt domains named pglab-ID-*, ssh masters), the lab's
/// directory, and the libvirt daemons pglab started once no VM of pglab is left.
pub fn teardown(id: &str, dir: &Path) -> Result<()> {
    let vdir = dir.join("vagrant");
    let tag = crate::model::names::lab_tag(id);
    if vdir.join("Vagrantfile").exists() && vdir.join(".vagrant").exists() {
        let argv: Vec<String> = vec!["vagrant".into(), "destroy".into(), "-f".into()];
        let out = run_with(&argv, None, scaled(DESTROY_TIMEOUT), &vagrant_setup(&vdir));
        let text = match &out {
            Ok(o) => o.combined(),
            Err(e) => format!("{e:#}"),
        };
        append(
            &dir.join("logs").join("vagrant.log"),
            &format!("\n== vagrant destroy -f\n{text}"),
        );
    }
    for d in libvirt::domains_matching(&format!("{tag}-")) {
        libvirt::remove_domain(&d);
    }
    for pid in procfs::pids_matching(&tag) {
        procfs::kill_tree(pid);
    }
    controller_net::remove(id);
    if dir.exists() {
        mounts::remove_tree(dir)?;
    }
    libvirt::stop_daemons_if_idle()?;
    let left = libvirt::domains_matching(&format!("{tag}-"));
    if !left.is_empty() {
        bail!(
            "lab {id}: libvirt domains remain after teardown: {}",
            left.join(", ")
        );
    }
    Ok(())
}

/// What a Vagrant lab `id` leaves on the machine when it is not torn down: libvirt domains.
pub fn leftovers(id: &str) -> Vec<String> {
    libvirt::domains_matching(&crate::model::names::lab_tag(id))
        .into_iter()
        .map(|d| format!("libvirt domain {d}"))
        .collect()
}

/// Vagrant boxes named `pglab/...` on this machine (none when vagrant is not installed).
pub fn pglab_boxes() -> Vec<String> {
    if which::which("vagrant").is_err() {
        return Vec::new();
    }
    let argv: Vec<String> = ["vagrant", "box", "list"].map(String::from).to_vec();
    crate::sys::exec::run(&argv, None, Duration::from_secs(60))
        .map(|o| {
            o.stdout
                .lines()
                .filter_map(|l| l.split_whitespace().next())
                .filter(|n| n.starts_with("pglab/"))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Removes Vagrant box `name` (every version and provider).
pub fn remove_box(name: &str) -> Result<()> {
    let argv: Vec<String> = ["vagrant", "box", "remove", "--force", "--all", name]
        .map(String::from)
        .to_vec();
    let out = crate::sys::exec::run(&argv, None, Duration::from_secs(120))?;
    if !out.ok() {
        return Err(failure(
            "removing an old Vagrant box failed",
            name,
            &argv.join(" "),
            &out.combined(),
            "run the command yourself; a VM that still uses the box must be destroyed first",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "1700000000,node1,metadata,provider,libvirt\n\
1700000000,node1,provider-name,libvirt\n\
1700000000,node1,state,running\n\
1700000000,node1,state-human-short,running\n\
1700000000,node2,state,shutoff\n\
1700000000,barman,state,not_created\n\
1700000000,,ui,info,Current machine states:\\n\\nnode1%!(VAGRANT_COMMA) running\n";

    #[test]
    fn status_lines_give_a_state_per_host() {
        let s = parse_states(STATUS);
        assert_eq!(s.get("node1").map(String::as_str), Some("running"));
        assert_eq!(s.get("node2").map(String::as_str), Some("shutoff"));
        assert_eq!(s.get("barman").map(String::as_str), Some("not_created"));
        assert_eq!(s.len(), 3);
    }

    #[test]
    fn error_exit_gives_class_message_and_hint() {
        let text = "1700000000,,error-exit,Vagrant::Errors::ProviderNotUsable,The provider 'virtualbox' that was requested to back the machine\\n'node1' is reporting that it isn't usable on this system.%!(VAGRANT_COMMA) see\n";
        let (class, msg) = error_exit(text).unwrap();
        assert_eq!(class, "Vagrant::Errors::ProviderNotUsable");
        assert!(
            msg.contains("'node1' is reporting") && msg.contains(", see"),
            "{msg}"
        );
        assert!(hint_for(&class).contains("PGLAB_PROVIDER=libvirt"));
        assert!(hint_for("Vagrant::Errors::BoxNotFound").contains("pglab box build --libvirt"));
        assert!(error_exit(STATUS).is_none());
    }

    #[test]
    fn humanized_ui_lines_read_like_vagrant() {
        let h = humanize(STATUS);
        assert!(
            h.contains("Current machine states:\n\nnode1, running"),
            "{h}"
        );
    }
}
