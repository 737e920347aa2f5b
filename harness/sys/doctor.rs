//! Host prerequisites: what pglab needs on the machine, whether it is there, and installing
//! what is missing with apt on Debian/Ubuntu as root.

use anyhow::{bail, Result};

pub struct Need {
    pub what: &'static str,
    /// The Debian/Ubuntu package that provides it (None: not installable by apt).
    pub package: Option<&'static str>,
    pub present: bool,
}

fn has(bin: &str) -> bool {
    which::which(bin).is_ok()
}

fn overlayfs() -> bool {
    let fs = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    fs.contains("overlay") || crate::sys::exec::quiet(&["modprobe", "overlay"])
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

pub fn needs() -> Vec<Need> {
    vec![
        Need {
            what: "root (user id 0)",
            package: None,
            present: is_root(),
        },
        Need {
            what: "systemd-nspawn",
            package: Some("systemd-container"),
            present: has("systemd-nspawn"),
        },
        Need {
            what: "mmdebstrap",
            package: Some("mmdebstrap"),
            present: has("mmdebstrap"),
        },
        Need {
            what: "ip (iproute2)",
            package: Some("iproute2"),
            present: has("ip"),
        },
        Need {
            what: "nsenter (util-linux)",
            package: Some("util-linux"),
            present: has("nsenter"),
        },
        Need {
            what: "nft (nftables, for link cuts)",
            package: Some("nftables"),
            present: has("nft"),
        },
        Need {
            what: "overlayfs in the kernel",
            package: None,
            present: overlayfs(),
        },
    ]
}

/// What the Vagrant backend with libvirt needs besides (PGLAB_BACKEND=vagrant).
pub fn vagrant_needs() -> Vec<Need> {
    let tool = |what, package, bin| Need {
        what,
        package: Some(package),
        present: has(bin),
    };
    vec![
        tool("vagrant", "vagrant", "vagrant"),
        Need {
            what: "vagrant-libvirt plugin",
            package: Some("vagrant-libvirt"),
            present: std::path::Path::new("/usr/share/rubygems-integration/all/gems")
                .read_dir()
                .map(|d| {
                    d.flatten().any(|e| {
                        e.file_name()
                            .to_string_lossy()
                            .starts_with("vagrant-libvirt")
                    })
                })
                .unwrap_or(false),
        },
        tool("libvirtd", "libvirt-daemon-system", "libvirtd"),
        tool(
            "qemu-system-x86_64",
            "qemu-system-x86",
            "qemu-system-x86_64",
        ),
        tool("qemu-img", "qemu-utils", "qemu-img"),
        tool("dnsmasq (libvirt's networks)", "dnsmasq-base", "dnsmasq"),
    ]
}

pub fn report(needs: &[Need]) -> String {
    let mut s = String::new();
    for n in needs {
        let pkg = n
            .package
            .map(|p| format!(" (package {p})"))
            .unwrap_or_default();
        s.push_str(&format!(
            "  [{}] {}{}\n",
            if n.present { "ok" } else { "MISSING" },
            n.what,
            pkg
        ));
    }
    s
}

fn apt_based() -> bool {
    has("apt-get") && std::path::Path::new("/etc/debian_version").exists()
}

/// Installs what is missing (Debian/Ubuntu as root), or fails with the exact command to run.
pub fn ensure(install: bool) -> Result<()> {
    install_missing_for("the nspawn lab", &needs(), install, &[])
}

/// The Vagrant + libvirt backend's packages, installed without their recommends (which pull
/// a kernel and a desktop's worth of packages) when missing.
pub fn ensure_vagrant_libvirt() -> Result<()> {
    install_missing_for(
        "the Vagrant + libvirt backend",
        &vagrant_needs(),
        true,
        &["--no-install-recommends"],
    )
}

/// The lab's apt caching proxy (Debian's approx), for submissions that install packages.
pub fn apt_proxy_needs() -> Vec<Need> {
    vec![Need {
        what: "approx (the labs' apt caching proxy)",
        package: Some("approx"),
        present: std::path::Path::new("/usr/sbin/approx").exists() || has("approx"),
    }]
}

/// Installs approx when missing (without recommends).
pub fn ensure_apt_proxy() -> Result<()> {
    install_missing_for(
        "the labs' apt proxy",
        &apt_proxy_needs(),
        true,
        &["--no-install-recommends"],
    )
}

fn install_missing_for(
    purpose: &str,
    needs: &[Need],
    install: bool,
    apt_flags: &[&str],
) -> Result<()> {
    let mut missing: Vec<&'static str> = needs
        .iter()
        .filter(|n| !n.present)
        .filter_map(|n| n.package)
        .collect();
    missing.dedup();
    if let Some(n) = needs.iter().find(|n| !n.present && n.package.is_none()) {
        bail!(
            "pglab needs {}, which is missing:\n{}",
            n.what,
            report(needs)
        );
    }
    if missing.is_empty() {
        return Ok(());
    }
    let no_recommends = apt_flags.contains(&"--no-install-recommends");
    let cmd = crate::sys::apt::Plan::new(&missing, no_recommends).command();
    if !(install && apt_based() && is_root()) {
        bail!(
            "missing on this machine (for {purpose}):\n{}install them with:\n  {cmd}",
            report(needs)
        );
    }
    crate::sys::apt::install(purpose, &missing, no_recommends)
}

/// What reading a student's repository needs: a Ruby to run the Vagrantfile against pglab's
/// stub, and bubblewrap to run it where it sees nothing of this machine (an unprivileged uid,
/// no capabilities, no network, only /usr and the repository's copy, read-only).
pub fn repository_needs() -> Vec<Need> {
    vec![
        Need {
            what: "ruby (reads a student's Vagrantfile)",
            package: Some("ruby"),
            present: ["/usr/bin/ruby", "/opt/vagrant/embedded/bin/ruby"]
                .iter()
                .any(|p| std::path::Path::new(p).exists()),
        },
        Need {
            what: "bwrap (the Vagrantfile reader's sandbox)",
            package: Some("bubblewrap"),
            present: has("bwrap"),
        },
        Need {
            what: "setpriv (util-linux: the reader runs as nobody)",
            package: Some("util-linux"),
            present: has("setpriv"),
        },
    ]
}

/// Installs Ruby and bubblewrap when missing (without recommends), or fails with the command.
pub fn ensure_repository_reader() -> Result<()> {
    install_missing_for(
        "reading students' repositories",
        &repository_needs(),
        true,
        &["--no-install-recommends"],
    )
}

/// What the test suites need beyond the lab itself: xmllint and npm (the JUnit schema check),
/// python3 with venv (check-jsonschema and ansible-core come from PyPI).
pub fn test_needs() -> Vec<Need> {
    vec![
        Need {
            what: "xmllint (JUnit schema check)",
            package: Some("libxml2-utils"),
            present: has("xmllint"),
        },
        Need {
            // A vendor's nodejs (NodeSource) carries its own npm, and Debian's npm conflicts
            // with it: only a machine without any npm gets Debian's.
            what: "npm (fetches the JUnit schema's package)",
            package: Some("npm"),
            present: has("npm"),
        },
        python_venv(),
    ]
}

fn python_venv() -> Need {
    Need {
        what: "python3 with venv and ensurepip (PyPI tools in a venv)",
        package: Some("python3-venv"),
        // The system's python3: the venvs pglab makes run in sandboxes that see /usr only.
        present: crate::sys::exec::quiet(&["/usr/bin/python3", "-c", "import venv, ensurepip"]),
    }
}

/// python3's venv, for the tools pglab takes from PyPI (ansible-core).
pub fn ensure_python_venv() -> Result<()> {
    install_missing_for("tools from PyPI", &[python_venv()], true, &[])
}

/// Installs what the test suites need (as root on Debian/Ubuntu), or fails with the exact
/// command. Tests call this first, so `cargo test` on a fresh machine gets its own tools.
pub fn ensure_test_tools() -> Result<()> {
    install_missing_for(
        "pglab's tests",
        &test_needs(),
        true,
        &["--no-install-recommends"],
    )
}

/// Installs the headless browser the page test renders `cohort.html` with (Debian's
/// chromium and a font), like `ensure_test_tools`; only that lab test needs it.
pub fn ensure_browser() -> Result<()> {
    let needs = [
        Need {
            what: "chromium (renders cohort.html headless in the lab test)",
            package: Some("chromium"),
            present: has("chromium"),
        },
        Need {
            what: "a font for chromium's screenshot",
            package: Some("fonts-dejavu-core"),
            present: std::path::Path::new("/usr/share/fonts/truetype/dejavu").is_dir(),
        },
    ];
    install_missing_for(
        "pglab's page test",
        &needs,
        true,
        &["--no-install-recommends"],
    )
}

pub fn require_root(action: &str) -> Result<()> {
    if !is_root() {
        bail!("pglab must run as root to {action} (it mounts overlays, creates network namespaces and containers); run it with sudo");
    }
    ensure(true)
}

#[cfg(test)]
mod tests {
    #[test]
    fn missing_tools_get_the_exact_apt_command() {
        let needs = [super::Need {
            what: "x",
            package: Some("pkg-a"),
            present: false,
        }];
        let e = super::install_missing_for("x", &needs, false, &["--no-install-recommends"])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("apt-get install -y --no-install-recommends pkg-a"),
            "{e}"
        );
        let e = super::install_missing_for("x", &needs, false, &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("apt-get install -y pkg-a"), "{e}");
    }

    #[test]
    fn report_lists_every_need() {
        let needs = super::needs();
        let r = super::report(&needs);
        assert_eq!(r.lines().count(), needs.len());
        assert!(r.contains("systemd-nspawn (package systemd-container)"));
    }
}
