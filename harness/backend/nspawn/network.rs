//! The lab's network: one namespace per lab holding the bridge `br0` at the gateway address,
//! and each host in a namespace of its own joined to the bridge by a veth pair; link cuts are
//! nftables rules in a host's namespace.

use super::layout::Nspawn;
use crate::sys::cleanup;
use crate::sys::exec::{must, CmdOutput};
use anyhow::Result;

const NETWORK_HINT: &str = "run `pglab doctor`; stale labs are removed by `pglab gc`";

pub fn lab_netns(id: &str) -> String {
    crate::model::names::lab_tag(id)
}

pub fn host_netns(id: &str, host: &str) -> String {
    crate::model::names::host_name(id, host)
}

impl Nspawn {
    /// The lab's network: a namespace with a bridge at the gateway address, and each host in
    /// a namespace of its own joined to the bridge by a veth pair.
    pub(super) fn setup_network(&self) -> Result<()> {
        let (_, prefix) = self.topo.network()?;
        let _g = cleanup::creating()?;
        self.create_bridge(prefix)?;
        for h in &self.topo.hosts {
            self.connect_host(&h.name, &format!("{}/{prefix}", h.address))?;
        }
        Ok(())
    }

    /// The lab's namespace with bridge `br0` holding the gateway address.
    pub(super) fn create_bridge(&self, prefix: u8) -> Result<()> {
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
    pub(super) fn connect_host(&self, host: &str, addr: &str) -> Result<()> {
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

    pub(super) fn nft(&self, host: &str, script: &str) -> Result<CmdOutput> {
        crate::sys::exec::nft_in(&host_netns(&self.id, host), script)
    }
}
