//! The Ansible controller's network on a libvirt lab. Vagrant's ssh reaches the VMs on the
//! management network (libvirt's `pglab-mgmt` bridge), and this machine holds the gateway
//! address there. The controller (`provision::controller`) gets a network namespace of its
//! own, `pglab-<id>-controller`, joined to that bridge by a veth pair, with an address no VM
//! holds and no route beyond the bridge; its output filter lets through only the VMs'
//! addresses, so this machine's own address there, its broadcast and IPv6 (link-local
//! addresses of this machine would answer) are dropped. A playbook's `delegate_to: localhost`
//! then reaches the lab's VMs and nothing of this machine, as on nspawn. The sandbox runs as
//! `nobody` without capabilities: it can change neither the routes nor the filter.
//!
//! Vagrant labs run one at a time, so the management network holds one lab's VMs only.

use super::libvirt::virsh;
use crate::model::names::{controller_link, controller_netns};
use crate::sys::exec::must;
use anyhow::{bail, Context, Result};
use std::net::Ipv4Addr;

/// libvirt's management network of every Vagrant lab (`Vagrantfile.tera`).
const MGMT: &str = "pglab-mgmt";
const HINT: &str = "run `pglab doctor`; stale labs are removed by `pglab gc`";

/// The management network as libvirt defined it: its bridge, this machine's address on it
/// and the prefix length.
#[derive(Debug, PartialEq)]
struct Mgmt {
    bridge: String,
    gateway: Ipv4Addr,
    prefix: u8,
}

/// The elements `<tag ...>` of `xml`, each as its text up to `>`.
fn elements<'a>(xml: &'a str, tag: &str) -> Vec<&'a str> {
    let open = format!("<{tag} ");
    xml.match_indices(&open)
        .filter_map(|(at, _)| xml[at..].find('>').map(|end| &xml[at..at + end]))
        .collect()
}

/// The value of attribute `name` in an element's text, in single or double quotes.
fn attr(el: &str, name: &str) -> Option<String> {
    let at = el.find(&format!(" {name}="))? + name.len() + 2;
    let quote = el[at..].chars().next()?;
    let rest = &el[at + 1..];
    Some(rest[..rest.find(quote)?].to_string())
}

/// Reads `virsh net-dumpxml`: `<bridge name='virbr1' .../>` and the IPv4
/// `<ip address='192.168.121.1' netmask='255.255.255.0'>` (or `prefix='24'`); a prefix
/// that leaves no room for a controller (over 30) is none.
fn parse_mgmt(xml: &str) -> Option<Mgmt> {
    let (gateway, ip) = elements(xml, "ip")
        .into_iter()
        .find_map(|el| Some((attr(el, "address")?.parse::<Ipv4Addr>().ok()?, el)))?;
    let prefix = match attr(ip, "prefix") {
        Some(p) => p.parse().ok()?,
        None => u32::from(attr(ip, "netmask")?.parse::<Ipv4Addr>().ok()?).count_ones() as u8,
    };
    let bridge = attr(elements(xml, "bridge").first()?, "name")?;
    (8..=30).contains(&prefix).then_some(Mgmt {
        bridge,
        gateway,
        prefix,
    })
}

/// The IPv4 addresses libvirt's DHCP leased (`virsh net-dhcp-leases`): the VMs'.
fn parse_leases(text: &str) -> Vec<Ipv4Addr> {
    text.split_whitespace()
        .filter_map(|w| w.split('/').next()?.parse().ok())
        .collect()
}

impl Mgmt {
    fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.gateway) & self.mask())
    }

    fn mask(&self) -> u32 {
        u32::MAX
            .checked_shl(32 - u32::from(self.prefix))
            .unwrap_or(0)
    }

    fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.gateway) | !self.mask())
    }

    /// The highest address of the network that is neither this machine's, the broadcast,
    /// nor leased to a VM (libvirt's dnsmasq also pings an address before it leases it).
    fn free_address(&self, leased: &[Ipv4Addr]) -> Option<Ipv4Addr> {
        let (net, bcast) = (u32::from(self.network()), u32::from(self.broadcast()));
        (net + 1..bcast)
            .rev()
            .map(Ipv4Addr::from)
            .find(|a| *a != self.gateway && !leased.contains(a))
    }

    /// The controller's output filter: the VMs of the management network only (not this
    /// machine's address, the network's or the broadcast), and echo replies to this
    /// machine, so that dnsmasq's ping before a lease sees the controller's address taken.
    fn filter(&self) -> String {
        format!(
            "table inet pglab {{\n  chain output {{\n    type filter hook output priority 0; policy drop;\n    oifname \"lo\" accept\n    ip daddr {net}/{prefix} ip daddr != {{ {net}, {gw}, {bcast} }} accept\n    ip daddr {gw} icmp type echo-reply accept\n  }}\n}}\n",
            net = self.network(),
            prefix = self.prefix,
            gw = self.gateway,
            bcast = self.broadcast(),
        )
    }
}

/// Makes lab `id`'s controller namespace on the management network (its VMs are up).
pub fn create(id: &str, place: &str) -> Result<()> {
    let xml = virsh(&["net-dumpxml", MGMT])?;
    let Some(mgmt) = parse_mgmt(&xml.stdout).filter(|_| xml.ok()) else {
        bail!(
            "cannot read libvirt's network {MGMT} for the controller of {place}: {}",
            xml.combined().trim()
        );
    };
    let leases = virsh(&["net-dhcp-leases", MGMT])?;
    if !leases.ok() {
        bail!(
            "cannot read the leases of libvirt's network {MGMT} for the controller of {place}: {}",
            leases.combined().trim()
        );
    }
    let addr = mgmt
        .free_address(&parse_leases(&leases.stdout))
        .with_context(|| format!("no free address on {MGMT} for the controller of {place}"))?;
    let (ns, link) = (controller_netns(id), controller_link(id));
    must(&["ip", "netns", "add", &ns], place, HINT)?;
    must(&["ip", "-n", &ns, "link", "set", "lo", "up"], place, HINT)?;
    let peer = [
        "ip", "link", "add", &link, "type", "veth", "peer", "name", "eth0", "netns", &ns,
    ];
    must(&peer, place, HINT)?;
    let on_bridge = ["ip", "link", "set", &link, "master", &mgmt.bridge, "up"];
    must(&on_bridge, place, HINT)?;
    let cidr = format!("{addr}/{}", mgmt.prefix);
    must(
        &["ip", "-n", &ns, "addr", "add", &cidr, "dev", "eth0"],
        place,
        HINT,
    )?;
    must(&["ip", "-n", &ns, "link", "set", "eth0", "up"], place, HINT)?;
    let out = crate::sys::exec::nft_in(&ns, &mgmt.filter())?;
    if !out.ok() {
        bail!(
            "the controller's filter of {place} was refused by nft: {}",
            out.combined().trim()
        );
    }
    Ok(())
}

/// The prefix that runs a program in lab `id`'s controller namespace.
pub fn enter(id: &str) -> Vec<String> {
    ["ip", "netns", "exec", &controller_netns(id)]
        .map(String::from)
        .to_vec()
}

/// Removes lab `id`'s controller namespace (its veth pair goes with it). Idempotent.
pub fn remove(id: &str) {
    let ns = controller_netns(id);
    if std::path::Path::new("/run/netns").join(&ns).exists() {
        let _ = crate::sys::exec::run(
            &["ip".into(), "netns".into(), "del".into(), ns],
            None,
            std::time::Duration::from_secs(30),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const XML: &str = "<network connections='3'>\n  <name>pglab-mgmt</name>\n  <forward mode='nat'/>\n  <bridge name='virbr1' stp='on' delay='0'/>\n  <ip address='192.168.121.1' netmask='255.255.255.0'>\n    <dhcp>\n      <range start='192.168.121.1' end='192.168.121.254'/>\n    </dhcp>\n  </ip>\n</network>\n";

    const LEASES: &str = " Expiry Time           MAC address         Protocol   IP address           Hostname   Client ID or DUID\n-----------------------------------------------------------------------------------------------------------\n 2026-12-08 02:01:02   52:54:00:aa:bb:01   ipv4       192.168.121.254/24   node1      01:52:54:00:aa:bb:01\n 2026-12-08 02:01:03   52:54:00:aa:bb:02   ipv4       192.168.121.17/24    node2      01:52:54:00:aa:bb:02\n";

    #[test]
    fn the_controller_takes_an_address_no_vm_holds_and_reaches_only_the_vms() {
        let m = parse_mgmt(XML).unwrap();
        assert_eq!(
            m,
            Mgmt {
                bridge: "virbr1".into(),
                gateway: "192.168.121.1".parse().unwrap(),
                prefix: 24
            }
        );
        let leased = parse_leases(LEASES);
        assert_eq!(leased.len(), 2);
        assert_eq!(
            m.free_address(&leased),
            Some("192.168.121.253".parse().unwrap())
        );
        let f = m.filter();
        assert!(f.contains("policy drop;"), "{f}");
        assert!(
            f.contains(
                "ip daddr 192.168.121.0/24 ip daddr != { 192.168.121.0, 192.168.121.1, 192.168.121.255 } accept"
            ),
            "{f}"
        );
        assert!(
            f.contains("ip daddr 192.168.121.1 icmp type echo-reply accept"),
            "{f}"
        );
        let p = parse_mgmt(&XML.replace("netmask='255.255.255.0'", "prefix='16'")).unwrap();
        assert_eq!(
            (p.prefix, p.broadcast().to_string().as_str()),
            (16, "192.168.255.255")
        );
        assert_eq!(parse_mgmt("<network/>"), None);
        let wide = XML.replace("netmask='255.255.255.0'", "prefix='33'");
        assert_eq!(parse_mgmt(&wide), None, "a prefix over 30 is refused");
        // An IPv6 <ip> first: the IPv4 one is the management network's.
        let v6 = XML.replace(
            "<ip address='192.168.121.1'",
            "<ip family='ipv6' address='fd00::1' prefix='64'/>\n  <ip address='192.168.121.1'",
        );
        assert_eq!(parse_mgmt(&v6), Some(m));
    }
}
