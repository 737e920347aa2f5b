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
    install_missing(&needs(), install, &[])
}

/// The Vagrant + libvirt backend's packages, installed without their recommends (which pull
/// a kernel and a desktop's worth of packages) when missing.
pub fn ensure_vagrant_libvirt() -> Result<()> {
    install_missing(&vagrant_needs(), true, &["--no-install-recommends"])
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
    install_missing(&apt_proxy_needs(), true, &["--no-install-recommends"])
}

fn install_missing(needs: &[Need], install: bool, apt_flags: &[&str]) -> Result<()> {
    let missing: Vec<&'static str> = needs
        .iter()
        .filter(|n| !n.present)
        .filter_map(|n| n.package)
        .collect();
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
    let cmd = ["apt-get install -y"]
        .iter()
        .chain(apt_flags)
        .chain(&missing)
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    if !(install && apt_based() && is_root()) {
        bail!(
            "missing on this machine:\n{}install them with:\n  {cmd}",
            report(needs)
        );
    }
    eprintln!("pglab: installing what is missing: {cmd}");
    let status = std::process::Command::new("apt-get")
        .args(["install", "-y", "-q"])
        .args(apt_flags)
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()?;
    if !status.success() {
        bail!("`{cmd}` failed; run `apt-get update` and try again");
    }
    Ok(())
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
        let e = super::install_missing(&needs, false, &["--no-install-recommends"])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("apt-get install -y --no-install-recommends pkg-a"),
            "{e}"
        );
        let e = super::install_missing(&needs, false, &[])
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
