//! The `Backend` trait and what its implementations share (host states, ssh targets, the
//! link-cut rules, quoting): re-exported by `backend`.

use crate::sys::exec::CmdOutput;
use anyhow::Result;
use std::time::Duration;

/// What a host is doing right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HostState {
    Running,
    Stopped,
    Missing,
}

/// How a program on this machine reaches a host by ssh (Ansible's inventory).
#[derive(Debug, Clone)]
pub struct SshTarget {
    /// What ssh connects to: an address, or a name in `ssh_args`' config file.
    pub address: String,
    pub user: String,
    /// The user is not root: tasks need `become`.
    pub become_root: bool,
    pub key: Option<std::path::PathBuf>,
    pub ssh_args: Vec<String>,
}

pub trait Backend: Send + Sync {
    /// "nspawn" or "vagrant".
    fn kind(&self) -> &'static str;

    /// Creates and boots every host; returns when each host's init has finished booting.
    fn up(&mut self) -> Result<()>;

    /// Runs `script` with bash as `user` on `host`. The script travels on stdin, so nothing
    /// in it (secrets included) appears on any command line; `crate::backend::script` runs it so that
    /// the commands inside get /dev/null as stdin. A non-zero exit is not an Err.
    fn exec(&self, host: &str, user: &str, script: &str, timeout: Duration) -> Result<CmdOutput>;

    /// Runs one of pglab's own checks like [`Backend::exec`], but so that the submission's
    /// setup of the host cannot answer for the programs: no login profile (a `psql`
    /// function in /etc/profile.d), a fixed PATH without /usr/local ([`crate::backend::script::CHECK_PATH`]).
    fn check(&self, host: &str, user: &str, script: &str, timeout: Duration) -> Result<CmdOutput> {
        self.exec(host, user, script, timeout)
    }

    /// A Unix socket connected to `host`'s PostgreSQL (its default socket) as the host's
    /// user `user`, for SQL checks that run no program of the host. None when the backend
    /// cannot make one (checks then run `psql` on the host); an Err of [`NotTheServer`] when
    /// what listens there is not the box's PostgreSQL.
    fn pg_socket(
        &self,
        _host: &str,
        _user: &str,
    ) -> Result<Option<std::os::unix::net::UnixStream>> {
        Ok(None)
    }

    /// Programs and files the checks rely on that the submission changed on `host` (read from
    /// this machine's side, not through the host's programs): "/usr/bin/psql is not the
    /// box's". Empty when none, or when the backend cannot see them.
    fn changed_programs(&self, _host: &str) -> Vec<String> {
        Vec::new()
    }

    /// Stops a host cleanly (its disk is kept) / starts it again and waits for its boot.
    fn stop_host(&self, host: &str) -> Result<()>;
    fn start_host(&self, host: &str) -> Result<()>;

    /// Cuts / heals the network link between two hosts (both directions).
    fn cut_link(&self, a: &str, b: &str) -> Result<()>;
    fn heal_link(&self, a: &str, b: &str) -> Result<()>;

    fn host_state(&self, host: &str) -> HostState;

    /// One line telling a human how to get a shell on `host`.
    fn how_to_enter(&self, host: &str) -> String;

    /// The limits `host` hit since it started, each said for a verdict ("ran out of memory
    /// (limit 2 GiB) ..."); empty when none, or when the backend sets none.
    fn limits_hit(&self, _host: &str) -> Vec<String> {
        Vec::new()
    }

    /// Removes every resource of the lab. Idempotent; works after a crash.
    fn down(&mut self) -> Result<()>;

    /// Saves the disks of all hosts under `name` (hosts are stopped cleanly for it and
    /// started again), so that `restore` can bring the lab back to this point.
    fn save(&self, name: &str) -> Result<()>;

    /// Brings every host back to what `save(name)` kept, booted.
    fn restore(&self, name: &str) -> Result<()>;

    /// A TCP connection from the machine running pglab (the lab's gateway address) to
    /// `addr` on the lab's network: what a client outside the lab's hosts would open.
    fn connect_tcp(
        &self,
        addr: std::net::SocketAddr,
        timeout: Duration,
    ) -> Result<std::net::TcpStream>;

    /// How ssh from this machine reaches `host` with administrator rights. `lab_key` is the
    /// lab's own key pair (private key path; `.pub` beside it), which the backend may have to
    /// authorise on the host first.
    fn ssh_target(&self, host: &str, lab_key: &std::path::Path) -> Result<SshTarget>;

    /// A command prefix that runs a program of this machine inside the lab's network.
    fn in_lab_network(&self) -> Vec<String> {
        Vec::new()
    }

    /// The network namespace of this machine that holds the lab's bridge at its gateway
    /// address, where a proxy for the lab's hosts (apt, PyPI) can listen that only they
    /// reach; None when the backend has none (a Vagrant lab's VMs use their own network).
    fn proxy_netns(&self) -> Option<String> {
        None
    }

    /// Copies `data` into `path` on `host`, owned by `owner`, with `mode` (octal string).
    fn copy_in(&self, host: &str, data: &[u8], path: &str, owner: &str, mode: &str) -> Result<()> {
        use std::fmt::Write;
        let mut script = String::new();
        let encoded = base64_encode(data);
        let _ = write!(
            script,
            "set -e\nbase64 -d > {p} <<'PGLAB_EOF'\n{encoded}\nPGLAB_EOF\nchown {owner}: {p}\nchmod {mode} {p}\n",
            p = shell_quote(path)
        );
        let out = self.exec(host, "root", &script, Duration::from_secs(60))?;
        if !out.ok() {
            return Err(crate::sys::exec::failure(
                &format!("copying a file to {path} failed"),
                &format!("host {host}"),
                "base64 -d > PATH",
                &out.combined(),
                "check that the directory exists and the owner is a user on that host",
            ));
        }
        Ok(())
    }

    /// Reads a (text) file from `host`.
    fn copy_out(&self, host: &str, path: &str) -> Result<String> {
        let out = self.exec(
            host,
            "root",
            &format!("cat {}", shell_quote(path)),
            Duration::from_secs(60),
        )?;
        if !out.ok() {
            return Err(crate::sys::exec::failure(
                &format!("reading {path} failed"),
                &format!("host {host}"),
                &format!("cat {path}"),
                &out.combined(),
                "check that the file exists",
            ));
        }
        Ok(out.stdout)
    }
}

/// The nftables table that cuts a host's link to `peer` (one per peer, so heal is a delete).
pub fn cut_table(peer: &str) -> String {
    format!("pglab_cut_{}", peer.replace('-', "_"))
}

/// The outcome of loading `cut_rules` with `nft -f -` on the host at `place`: a failure names
/// the host, nft's output and where nftables comes from (`nft_source`) on this backend.
pub fn cut_applied(out: &CmdOutput, place: &str, nft_source: &str) -> Result<()> {
    if out.ok() {
        return Ok(());
    }
    Err(crate::sys::exec::failure(
        "cutting the link failed",
        place,
        "nft -f -",
        &out.combined(),
        &format!("is nftables installed {nft_source}?"),
    ))
}

/// nftables rules dropping everything to and from `peer_addr`, in both directions.
pub fn cut_rules(peer: &str, peer_addr: std::net::Ipv4Addr) -> String {
    format!(
        "table inet {} {{\n chain input {{ type filter hook input priority -10; ip saddr {peer_addr} drop; }}\n chain output {{ type filter hook output priority -10; ip daddr {peer_addr} drop; }}\n}}\n",
        cut_table(peer)
    )
}

/// Quotes a string for bash, always.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn base64_encode(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_single_quotes() {
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn base64_matches_coreutils() {
        for input in [&b""[..], b"a", b"ab", b"abc", b"hello world\n\x00\xff"] {
            let ours = base64_encode(input);
            let theirs = crate::sys::exec::run(
                &["base64".into(), "-w0".into()],
                Some(input),
                Duration::from_secs(5),
            )
            .unwrap();
            assert_eq!(ours.replace('\n', ""), theirs.stdout, "{input:?}");
        }
    }
}

/// What listens at a host's PostgreSQL socket is not the box's PostgreSQL server: a check
/// that would ask it fails with this, it never falls back to another way of asking.
#[derive(Debug)]
pub struct NotTheServer(pub String);

impl std::fmt::Display for NotTheServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotTheServer {}
