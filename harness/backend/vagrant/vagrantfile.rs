//! Renders the lab's Vagrantfile from `Vagrantfile.tera` (tera 1.x): the three hosts, their
//! private-network addresses, box, resources, and a provider block for VirtualBox and for
//! libvirt. Every value goes through the `ruby` filter, which makes it a Ruby string literal;
//! nothing is pasted raw.

use crate::model::topology::Topology;
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::collections::HashMap;
use std::net::Ipv4Addr;

/// The template is data at the top level of the project, beside `boxes/` and `scenarios/`:
/// a course maintainer edits it without reading Rust.
const TEMPLATE: &str = include_str!("../../../Vagrantfile.tera");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Virtualbox,
    Libvirt,
}

#[derive(Debug, Clone, Serialize)]
pub struct VagrantOptions {
    pub provider: Provider,
    pub box_name: String,
    pub box_version: Option<String>,
    pub memory_mb: u32,
    pub cpus: u32,
    pub boot_timeout_secs: u32,
    /// libvirt domain type: "kvm", or "qemu" (software emulation) where /dev/kvm is unusable.
    pub libvirt_driver: String,
    /// Direct kernel boot for libvirt boxes built by pglab: (kernel, initrd, command line).
    pub kernel: Option<(String, String, String)>,
    /// Where each VM's serial console is written (libvirt).
    pub console_dir: std::path::PathBuf,
}

impl VagrantOptions {
    /// The course's box for VirtualBox (`ubuntu/jammy64` exists for VirtualBox only); a
    /// locally built box for libvirt.
    pub fn for_provider(provider: Provider) -> VagrantOptions {
        match provider {
            Provider::Virtualbox => VagrantOptions {
                provider,
                box_name: "ubuntu/jammy64".into(),
                box_version: Some("20240301.0.0".into()),
                memory_mb: 1024,
                cpus: 1,
                boot_timeout_secs: 600,
                libvirt_driver: "kvm".into(),
                kernel: None,
                console_dir: "/var/log/pglab".into(),
            },
            Provider::Libvirt => VagrantOptions {
                provider,
                box_name: "pglab/bookworm".into(),
                box_version: None,
                memory_mb: 1024,
                cpus: 1,
                boot_timeout_secs: 900,
                libvirt_driver: "qemu".into(),
                kernel: None,
                console_dir: "/var/log/pglab".into(),
            },
        }
    }
}

/// A Ruby double-quoted string literal for any text: `\`, `"` and `#` (interpolation) are
/// escaped, control characters written as escapes.
pub fn ruby_literal(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '#' => out.push_str("\\#"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn ruby_filter(value: &tera::Value, _: &HashMap<String, tera::Value>) -> tera::Result<tera::Value> {
    let text = match value {
        tera::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    Ok(tera::Value::String(ruby_literal(&text)))
}

/// VirtualBox (6.1.28 and later) allows host-only addresses in 192.168.56.0/21 only, unless
/// `/etc/vbox/networks.conf` says otherwise: catch that before Vagrant does, with the fix.
pub fn check_topology(topo: &Topology, provider: Provider) -> Result<()> {
    if provider != Provider::Virtualbox {
        return Ok(());
    }
    let base = u32::from(Ipv4Addr::new(192, 168, 56, 0));
    for h in &topo.hosts {
        if u32::from(h.address) & 0xFFFF_F800 != base {
            bail!(
                "host {} has address {}, outside VirtualBox's host-only range 192.168.56.0/21. \
                 VirtualBox refuses it unless /etc/vbox/networks.conf allows it, e.g. a line \
                 `* {}/24` (and `* 192.168.56.0/21` to keep the default); or use addresses in \
                 192.168.56.0/21 in the topology",
                h.name,
                h.address,
                h.address
            );
        }
    }
    Ok(())
}

#[derive(Serialize)]
struct HostCtx {
    name: String,
    address: String,
    vm_name: String,
    console_log: String,
}

pub fn render(topo: &Topology, lab_id: &str, opts: &VagrantOptions) -> Result<String> {
    check_topology(topo, opts.provider)?;
    let mut tera = tera::Tera::default();
    tera.add_raw_template("Vagrantfile", TEMPLATE)
        .context("Vagrantfile.tera does not parse")?;
    tera.register_filter("ruby", ruby_filter);
    let mut ctx = tera::Context::new();
    ctx.insert("lab_id", lab_id);
    ctx.insert("provider", &opts.provider);
    let hosts: Vec<HostCtx> = topo
        .hosts
        .iter()
        .map(|h| HostCtx {
            name: h.name.clone(),
            address: h.address.to_string(),
            vm_name: crate::model::names::host_name(lab_id, &h.name),
            console_log: opts
                .console_dir
                .join(format!("{}.console.log", h.name))
                .to_string_lossy()
                .into(),
        })
        .collect();
    ctx.insert("hosts", &hosts);
    ctx.insert("vm_prefix", &crate::model::names::host_prefix(lab_id));
    ctx.insert("box", &opts.box_name);
    ctx.insert("box_version", &opts.box_version);
    ctx.insert("memory_mb", &opts.memory_mb);
    ctx.insert("cpus", &opts.cpus);
    ctx.insert("boot_timeout_secs", &opts.boot_timeout_secs);
    ctx.insert("libvirt_driver", &opts.libvirt_driver);
    match &opts.kernel {
        Some((k, i, c)) => {
            ctx.insert("kernel", k);
            ctx.insert("initrd", i);
            ctx.insert("cmd_line", c);
        }
        None => ctx.insert("kernel", &false),
    }
    tera.render("Vagrantfile", &ctx)
        .context("rendering Vagrantfile.tera failed")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(name: &str, value: &str) {
        let mut settings = insta::Settings::clone_current();
        settings.set_snapshot_path("../../../snapshots");
        settings.set_prepend_module_to_snapshot(false);
        settings.bind(|| insta::assert_snapshot!(name, value));
    }

    #[test]
    fn ruby_literals_are_quoted_and_escaped() {
        assert_eq!(ruby_literal("node1"), "\"node1\"");
        assert_eq!(
            ruby_literal("a\"b\\c#{`rm -rf /`}\n"),
            "\"a\\\"b\\\\c\\#{`rm -rf /`}\\n\""
        );
    }

    #[test]
    fn virtualbox_vagrantfile() {
        let t = Topology::default_lab();
        let v = render(
            &t,
            "test00",
            &VagrantOptions::for_provider(Provider::Virtualbox),
        )
        .unwrap();
        snapshot("vagrantfile-virtualbox", &v);
    }

    #[test]
    fn libvirt_vagrantfile_with_direct_kernel_boot() {
        let t = Topology::default_lab();
        let mut o = VagrantOptions::for_provider(Provider::Libvirt);
        o.kernel = Some((
            "/var/lib/pglab/vmlinuz".into(),
            "/var/lib/pglab/initrd.img".into(),
            "root=/dev/vda rw console=ttyS0 net.ifnames=0".into(),
        ));
        let v = render(&t, "test00", &o).unwrap();
        snapshot("vagrantfile-libvirt", &v);
    }

    #[test]
    fn values_cannot_inject_ruby() {
        let t = Topology::default_lab();
        let mut o = VagrantOptions::for_provider(Provider::Libvirt);
        o.box_name = "x\" ; system(\"id\") ; \"".into();
        let v = render(&t, "test00", &o).unwrap();
        assert!(
            v.contains("node.vm.box = \"x\\\" ; system(\\\"id\\\") ; \\\"\""),
            "{v}"
        );
    }

    #[test]
    fn virtualbox_rejects_addresses_outside_its_host_only_range() {
        let text = crate::model::topology::DEFAULT_TOPOLOGY.replace("192.168.56.", "10.20.30.");
        let t = Topology::parse(&text, "t").unwrap();
        let e = render(&t, "x", &VagrantOptions::for_provider(Provider::Virtualbox))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("outside VirtualBox's host-only range 192.168.56.0/21")
                && e.contains("/etc/vbox/networks.conf"),
            "{e}"
        );
        assert!(render(&t, "x", &VagrantOptions::for_provider(Provider::Libvirt)).is_ok());
    }
}
