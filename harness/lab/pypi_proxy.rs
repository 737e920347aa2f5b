//! The lab's PyPI: proxpi (a caching PyPI mirror, from PyPI, pinned) run by pglab for an nspawn
//! lab while a submission provisions, so that a playbook's `pip: name=pexpect` works as on the
//! course's machines. Like the apt proxy it is reachable on the lab bridge's gateway address
//! only, inside the lab's own network namespace: connections accepted there are relayed to a
//! proxpi server on this machine's loopback, run as `nobody`, whose cache (`<cache>/pypi`,
//! at most 2 GiB) is kept between labs. Each host's pip is pointed at it (`/etc/pip.conf`).

use super::lifecycle::Lab;
use anyhow::{bail, Context, Result};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// devpi's customary port, which students' pip configurations sometimes name.
pub const PORT: u16 = 3141;
/// The mirror and the WSGI server that runs it (proxpi's own instructions use gunicorn).
pub const PACKAGES: [&str; 2] = ["proxpi==1.3.1", "gunicorn==27.0.1"];
/// Connections relayed at once; more wait in the listener's backlog.
const MAX_CONNECTIONS: usize = 64;

/// A running proxy: dropping it stops the relay and the server.
pub struct PypiProxy {
    stop: Arc<AtomicBool>,
    server: std::process::Child,
    key: String,
    pub url: String,
}

impl Drop for PypiProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        crate::sys::procfs::kill_group(self.server.id());
        let _ = self.server.wait();
        crate::sys::cleanup::disown(&self.key);
    }
}

/// The proxy for `lab` with every host's pip pointed at it, where the backend has a network
/// namespace for it (`Backend::proxy_netns`), None elsewhere.
pub fn start_for(lab: &Lab) -> Result<Option<PypiProxy>> {
    let Some(netns) = lab.backend().proxy_netns() else {
        return Ok(None);
    };
    let proxy = start(&netns, lab.topology().gateway)?;
    point_hosts(lab, &proxy)?;
    Ok(Some(proxy))
}

/// A free port on this machine's loopback for the server.
fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// proxpi under gunicorn as nobody, on loopback, in a process group of its own.
fn server(port: u16) -> Result<std::process::Child> {
    use std::os::unix::process::CommandExt;
    let venv = crate::sys::venv::ensure("proxpi-1.3.1", &PACKAGES)?;
    let cache = crate::sys::paths::cache_root().join("pypi");
    std::fs::create_dir_all(&cache)?;
    crate::sys::tree::chown_tree(&cache, crate::sys::tree::NOBODY)?;
    let child = std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--",
        ])
        .arg(venv.join("bin/gunicorn"))
        .args([
            "--bind",
            &format!("127.0.0.1:{port}"),
            "--workers",
            "1",
            "--threads",
            "8",
        ])
        .args(["--timeout", "600", "proxpi.server:app"])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", &cache)
        .env("PROXPI_CACHE_DIR", &cache)
        .env("PROXPI_CACHE_SIZE", (2u64 << 30).to_string())
        // Always serve from the cache: a redirect to PyPI would send the host where it
        // has no route (proxpi redirects when a download takes longer than this).
        .env("PROXPI_DOWNLOAD_TIMEOUT", "600")
        .env("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .context("cannot start proxpi (gunicorn)")?;
    Ok(child)
}

/// Waits until the server answers on `port` (it imports Flask and proxpi first).
fn wait_ready(port: u16, server: &mut std::process::Child) -> Result<()> {
    let deadline = Instant::now() + crate::sys::exec::scaled(Duration::from_secs(60));
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        if let Some(status) = server.try_wait()? {
            bail!("proxpi ended before it listened on 127.0.0.1:{port} ({status})");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("proxpi did not listen on 127.0.0.1:{port} within 60 s")
}

/// Starts the server and the relay from `gateway:PORT` in the lab's namespace `netns`.
pub fn start(netns: &str, gateway: Ipv4Addr) -> Result<PypiProxy> {
    let port = free_port()?;
    let mut child = server(port)?;
    let pgid = child.id();
    let key = format!("pypi-proxy-{netns}");
    crate::sys::cleanup::own(key.clone(), move || crate::sys::procfs::kill_group(pgid));
    let stop = Arc::new(AtomicBool::new(false));
    let started = wait_ready(port, &mut child).and_then(|_| relay(netns, gateway, port, &stop));
    let proxy = PypiProxy {
        stop,
        server: child,
        key,
        url: format!("http://{gateway}:{PORT}"),
    };
    started.map(|_| proxy)
}

/// Accepts in the lab's namespace (a socket stays in the namespace it was made in), and
/// relays each connection from this namespace to the server.
fn relay(netns: &str, gateway: Ipv4Addr, port: u16, stop: &Arc<AtomicBool>) -> Result<()> {
    let rx = super::listen::accept_in(netns, SocketAddr::from((gateway, PORT)), stop)?;
    let live = Arc::new(AtomicUsize::new(0));
    std::thread::spawn(move || {
        for s in rx {
            while live.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
                std::thread::sleep(Duration::from_millis(20));
            }
            let Ok(up) = TcpStream::connect(("127.0.0.1", port)) else {
                continue;
            };
            live.fetch_add(1, Ordering::SeqCst);
            let live = live.clone();
            std::thread::spawn(move || {
                pipe(s, up);
                live.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    Ok(())
}

/// Copies both ways until either side closes.
fn pipe(down: TcpStream, up: TcpStream) {
    let (Ok(mut d2), Ok(mut u2)) = (down.try_clone(), up.try_clone()) else {
        return;
    };
    let (mut down, mut up) = (down, up);
    let t = std::thread::spawn(move || {
        let _ = std::io::copy(&mut d2, &mut u2);
        let _ = u2.shutdown(std::net::Shutdown::Write);
    });
    let _ = std::io::copy(&mut up, &mut down);
    let _ = down.shutdown(std::net::Shutdown::Write);
    let _ = t.join();
}

/// Points every host's pip at the proxy. `break-system-packages`: the boxes are Debian 12 and
/// later (PEP 668, pip refuses system-wide installs), the course's jammy64 is not, and
/// students' playbooks install with pip as on jammy.
pub fn point_hosts(lab: &Lab, proxy: &PypiProxy) -> Result<()> {
    let host = proxy
        .url
        .trim_start_matches("http://")
        .split(':')
        .next()
        .unwrap_or("");
    let conf = format!(
        "[global]\nindex-url = {}/index/\ntrusted-host = {host}\nbreak-system-packages = true\n",
        proxy.url
    );
    for h in &lab.topology().hosts {
        lab.backend()
            .copy_in(&h.name, conf.as_bytes(), "/etc/pip.conf", "root", "644")
            .with_context(|| format!("pointing pip at {} on {}", proxy.url, h.name))?;
    }
    Ok(())
}
