//! The lab's package source: Debian's `approx` (a caching proxy for Debian archives), run by
//! pglab for an nspawn lab. It listens on the lab bridge's gateway address inside the lab's
//! own network namespace, so only the lab's hosts reach it, and nothing else leaves the lab.
//! Each connection is accepted there and served by an `approx` process started in pglab's
//! own namespace (approx is an inetd service: the connection is its stdin and stdout), which
//! fetches from the machine's Debian source. Its cache (`<cache>/apt`) is kept between labs,
//! so a second lab installs from it.

use super::lifecycle::Lab;
use anyhow::{bail, Context, Result};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// approx's customary port.
pub const PORT: u16 = 9999;

/// approx runs as inetd runs it: as user approx, logging to /dev/log. This machine has no
/// syslog (approx then exits 1 before reading a byte: measured), so each approx gets a
/// private mount namespace whose /dev holds the usual devices and, as /dev/log, a socket
/// pglab reads into `<cache>/apt/approx.log`.
const WRAP: &str = r#"#!/bin/sh
# $1 = syslog socket, $2 = approx, $3 = configuration (run under unshare --mount)
set -e
d=$(mktemp -d /tmp/pglab-dev.XXXXXX)
mount --rbind /dev "$d"
mount -t tmpfs -o mode=755 tmpfs /dev
for n in null zero random urandom; do touch /dev/$n; mount --bind "$d/$n" /dev/$n; done
touch /dev/log
mount --bind "$1" /dev/log
umount -l "$d"
rmdir "$d"
exec setpriv --reuid=approx --regid=approx --init-groups "$2" -c "$3"
"#;

/// A running proxy; dropping it stops accepting (the approx processes of open
/// connections end with their connection).
pub struct AptProxy {
    stop: Arc<AtomicBool>,
    pub url: String,
    log_sock: PathBuf,
}

impl Drop for AptProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Here, not only in the log thread: the process may end before that thread wakes.
        let _ = std::fs::remove_file(&self.log_sock);
        prune(
            &crate::sys::paths::cache_root().join("apt/cache"),
            max_cache(),
        );
    }
}

fn approx_bin() -> Result<PathBuf> {
    for p in ["/usr/sbin/approx", "/usr/bin/approx"] {
        if std::path::Path::new(p).exists() {
            return Ok(p.into());
        }
    }
    which::which("approx").context(
        "approx is not installed: `pglab doctor --install` installs it (Debian package approx)",
    )
}

/// approx's configuration: the cache under pglab's cache root, the machine's Debian mirror.
fn config() -> Result<PathBuf> {
    let dir = crate::sys::paths::cache_root().join("apt");
    let cache = dir.join("cache");
    std::fs::create_dir_all(&cache)?;
    // approx drops to its own user and keeps its files as that user.
    let _ = crate::sys::exec::run(
        &[
            "chown".into(),
            "-R".into(),
            "approx:approx".into(),
            cache.display().to_string(),
        ],
        None,
        Duration::from_secs(120),
    );
    let mirror = host_mirror();
    let wrap = dir.join("approx-wrap.sh");
    std::fs::write(&wrap, WRAP)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrap, std::fs::Permissions::from_mode(0o755))?;
    let conf = dir.join("approx.conf");
    std::fs::write(
        &conf,
        format!(
            "$cache {}\n$offline true\ndebian {mirror}\nsecurity {}\n",
            cache.display(),
            mirror.replace("/debian", "/debian-security")
        ),
    )?;
    Ok(conf)
}

/// The Debian mirror this machine's apt uses (deb.debian.org when none is found).
pub fn host_mirror() -> String {
    let mut text = std::fs::read_to_string("/etc/apt/sources.list").unwrap_or_default();
    if let Ok(entries) = std::fs::read_dir("/etc/apt/sources.list.d") {
        for e in entries.flatten() {
            text.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
        }
    }
    mirror_in(&text).unwrap_or_else(|| "http://deb.debian.org/debian".into())
}

fn mirror_in(text: &str) -> Option<String> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(|l| l.split_whitespace())
        .find(|w| w.starts_with("http") && w.trim_end_matches('/').ends_with("/debian"))
        .map(|w| w.trim_end_matches('/').to_string())
}

/// The proxy for `lab` with every host's apt pointed at it, where the backend has a network
/// namespace for it (`Backend::proxy_netns`), None elsewhere.
pub fn start_for(lab: &Lab) -> Result<Option<AptProxy>> {
    let Some(netns) = lab.backend().proxy_netns() else {
        return Ok(None);
    };
    crate::sys::doctor::ensure_apt_proxy()?;
    let proxy = start(&netns, lab.topology().gateway)?;
    point_hosts(lab, &proxy)?;
    Ok(Some(proxy))
}

/// Starts the proxy for an nspawn lab (`netns` holds the bridge with `gateway`).
pub fn start(netns: &str, gateway: Ipv4Addr) -> Result<AptProxy> {
    let approx = approx_bin()?;
    let conf = config()?;
    let stop = Arc::new(AtomicBool::new(false));
    let log_sock = log_sink(netns, stop.clone())?;
    let sock = log_sock.clone();
    let rx = super::listen::accept_in(netns, SocketAddr::from((gateway, PORT)), &stop)?;
    let busy = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    std::thread::spawn(move || {
        for s in rx {
            // A lab's hosts may open connections without end: past the bound they wait in
            // the listen queue until one ends.
            while busy.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
                std::thread::sleep(Duration::from_millis(20));
            }
            serve(&approx, &conf, &sock, s, busy.clone());
        }
    });
    Ok(AptProxy {
        stop,
        url: format!("http://{gateway}:{PORT}"),
        log_sock,
    })
}

/// approx's syslog for this lab: a datagram socket whose messages are appended to
/// `<cache>/apt/approx.log`; removed when the proxy stops.
fn log_sink(netns: &str, stop: Arc<AtomicBool>) -> Result<PathBuf> {
    use std::io::Write;
    use std::os::unix::net::UnixDatagram;
    let dir = crate::sys::paths::cache_root().join("apt");
    let path = dir.join(format!("log-{netns}.sock"));
    let _ = std::fs::remove_file(&path);
    let sock =
        UnixDatagram::bind(&path).with_context(|| format!("cannot bind {}", path.display()))?;
    sock.set_read_timeout(Some(Duration::from_millis(500)))?;
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("approx.log"))?;
    let p = path.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while !stop.load(Ordering::SeqCst) {
            if let Ok(n) = sock.recv(&mut buf) {
                if log.metadata().map(|m| m.len() > MAX_LOG).unwrap_or(false) {
                    let _ = log.set_len(0);
                    let _ = log.write_all(b"[pglab: approx.log started again at 16 MiB]\n");
                }
                let _ = log.write_all(&buf[..n]);
                let _ = log.write_all(b"\n");
            }
        }
        let _ = std::fs::remove_file(&p);
    });
    Ok(path)
}

/// approx processes (one per connection) a lab's proxy runs at once.
pub const MAX_CONNECTIONS: usize = 16;

/// approx.log is started again past this size (a lab's hosts decide how much it logs).
pub const MAX_LOG: u64 = 16 << 20;

/// Past this size (`PGLAB_APT_CACHE`, default 4G) the proxy's cache loses its oldest files
/// when a lab's proxy stops.
fn max_cache() -> u64 {
    std::env::var("PGLAB_APT_CACHE")
        .ok()
        .and_then(|v| crate::sys::size::parse(&v))
        .unwrap_or(4 << 30)
}

/// Removes the oldest files of `dir` until what is left holds at most `max` bytes.
pub fn prune(dir: &std::path::Path, max: u64) {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let Ok(m) = e.path().symlink_metadata() else {
                continue;
            };
            if m.is_dir() {
                stack.push(e.path());
            } else if m.is_file() {
                files.push((m.modified().ok(), m.len(), e.path()));
            }
        }
    }
    let mut total: u64 = files.iter().map(|f| f.1).sum();
    files.sort();
    for (_, len, path) in files {
        if total <= max {
            break;
        }
        if std::fs::remove_file(&path).is_ok() {
            total -= len;
        }
    }
}

/// One connection: approx in inetd mode with the connection as its stdin and stdout.
fn serve(
    approx: &PathBuf,
    conf: &PathBuf,
    log_sock: &PathBuf,
    s: TcpStream,
    busy: Arc<std::sync::atomic::AtomicUsize>,
) {
    let out: OwnedFd = match s.try_clone() {
        Ok(c) => c.into(),
        Err(_) => return,
    };
    let inp: OwnedFd = s.into();
    let wrap = conf.with_file_name("approx-wrap.sh");
    let child = Command::new("unshare")
        .args(["--mount", "--propagation", "private"])
        .arg(&wrap)
        .arg(log_sock)
        .arg(approx)
        .arg(conf)
        .stdin(Stdio::from(inp))
        .stdout(Stdio::from(out))
        .stderr(Stdio::null())
        .spawn();
    if let Ok(mut c) = child {
        busy.fetch_add(1, Ordering::SeqCst);
        std::thread::spawn(move || {
            let _ = c.wait();
            busy.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

/// The machine's own apt may accept Release files past their Valid-Until (a snapshot
/// mirror); its hosts then must too, or `apt-get update` through the proxy fails.
fn valid_until() -> String {
    let argv = ["apt-config", "dump", "Acquire::Check-Valid-Until"].map(String::from);
    let conf = crate::sys::exec::run(&argv, None, Duration::from_secs(30))
        .map(|o| o.stdout)
        .unwrap_or_default();
    if conf.contains("\"false\"") {
        "echo 'Acquire::Check-Valid-Until \"false\";' > /etc/apt/apt.conf.d/99pglab-proxy".into()
    } else {
        String::new()
    }
}

/// Points every host's apt at the proxy: one sources file naming the proxy for the host's
/// own suite; the box's other network sources are set aside (nothing else is reachable
/// anyway). A box's local repository (`file:`, pg14-barman2's PostgreSQL 14 and barman 2.19)
/// stays: a playbook's `apt update_cache` must still see its packages.
pub fn point_hosts(lab: &Lab, proxy: &AptProxy) -> Result<()> {
    let script = format!(
        r#"set -e
. /etc/os-release
mkdir -p /etc/apt/pglab-disabled
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*; do
  [ -f "$f" ] || continue
  [ "$f" = /etc/apt/sources.list.d/pglab.sources ] && continue
  grep -Eq '^[^#]*(file:|URIs: *file:)' "$f" && continue
  mv "$f" /etc/apt/pglab-disabled/
done
{valid_until}
cat > /etc/apt/sources.list.d/pglab.sources <<EOF
Types: deb
URIs: {url}/debian
Suites: $VERSION_CODENAME $VERSION_CODENAME-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: {url}/security
Suites: $VERSION_CODENAME-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
"#,
        url = proxy.url,
        valid_until = valid_until()
    );
    for h in &lab.topology().hosts {
        let out = lab.exec(&h.name, "root", &script, Duration::from_secs(30))?;
        if !out.ok() {
            bail!(
                "pointing apt at {} on {} failed: {}",
                proxy.url,
                h.name,
                out.combined()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    /// The cache keeps its newest files within the bound.
    #[test]
    fn a_cache_past_its_bound_loses_its_oldest_files() {
        let d = tempfile::tempdir().unwrap();
        let sub = d.path().join("debian/pool");
        std::fs::create_dir_all(&sub).unwrap();
        for (i, name) in ["old", "mid", "new"].iter().enumerate() {
            let f = sub.join(name);
            std::fs::write(&f, vec![0u8; 1000]).unwrap();
            let t = std::time::SystemTime::UNIX_EPOCH
                + std::time::Duration::from_secs(1000 * (i as u64 + 1));
            std::fs::File::options()
                .write(true)
                .open(&f)
                .unwrap()
                .set_modified(t)
                .unwrap();
        }
        super::prune(d.path(), 2000);
        assert!(!sub.join("old").exists());
        assert!(sub.join("mid").exists() && sub.join("new").exists());
    }

    #[test]
    fn the_mirror_is_read_from_deb822_and_one_line_sources() {
        assert_eq!(
            super::mirror_in("Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm\n")
                .as_deref(),
            Some("http://deb.debian.org/debian")
        );
        assert_eq!(
            super::mirror_in(
                "# deb http://x/debian\ndeb http://mirror.example/debian/ bookworm main\n"
            )
            .as_deref(),
            Some("http://mirror.example/debian")
        );
        assert_eq!(super::mirror_in("deb http://x/ubuntu jammy main\n"), None);
    }
}
