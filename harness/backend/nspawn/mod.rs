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
mod launch;
mod layout;
mod network;
mod pgsock;
mod sandbox;
mod storage;
mod teardown;

pub use layout::Nspawn;
pub use network::{host_netns, lab_netns};
pub use storage::{lab_storage, Storage};
pub use teardown::{leftovers, teardown};

use super::api::{Backend, HostState};
use crate::sys::exec::{failure, scaled, CmdOutput};
use crate::sys::fanout::fan_out;
use crate::sys::{mounts, procfs};
use anyhow::{bail, Context, Result};
use launch::machine_name;
use std::path::Path;
use std::time::{Duration, Instant};
use storage::copy_tree;

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
            // A run asked to stop waits no more; its teardown kills the host.
            crate::sys::cancel::check()?;
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

    fn proxy_netns(&self) -> Option<String> {
        Some(lab_netns(&self.id))
    }

    fn in_lab_network(&self) -> Vec<String> {
        ["ip", "netns", "exec", &lab_netns(&self.id)]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::topology::Topology;

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
            launch::nsenter(42, &["systemctl", "poweroff"]).join(" "),
            "nsenter -t 42 -U -m -u -i -n -p -C -- systemctl poweroff"
        );
    }

    #[test]
    fn a_lab_that_never_existed_leaves_nothing() {
        assert!(leftovers("zz9999").is_empty());
    }
}
