//! The lab topology as data: hosts, addresses, roles. Loaded from `lab.toml`.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;
use std::path::Path;

/// The default topology, the homework's three hosts.
pub const DEFAULT_TOPOLOGY: &str = include_str!("../../lab.toml");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The read-write PostgreSQL server (node1).
    Primary,
    /// The hot standby streaming from the primary through its own slot (node2).
    Standby,
    /// The Barman server (barman).
    Backup,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Host {
    pub name: String,
    pub address: Ipv4Addr,
    pub roles: Vec<Role>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    /// `a.b.c.d/prefix`
    pub subnet: String,
    pub gateway: Ipv4Addr,
    #[serde(rename = "host")]
    pub hosts: Vec<Host>,
}

impl Topology {
    pub fn default_lab() -> Topology {
        Topology::parse(DEFAULT_TOPOLOGY, "lab.toml (built in)")
            .expect("built-in lab.toml is valid")
    }

    pub fn load(path: &Path) -> Result<Topology> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read topology file {}", path.display()))?;
        Topology::parse(&text, &path.display().to_string())
    }

    /// `--topology FILE` when given, else the built-in lab.
    pub fn load_or_default(path: Option<&Path>) -> Result<Topology> {
        path.map(Topology::load)
            .unwrap_or_else(|| Ok(Topology::default_lab()))
    }

    pub fn parse(text: &str, origin: &str) -> Result<Topology> {
        let topo: Topology =
            toml::from_str(text).with_context(|| format!("{origin}: not a valid topology"))?;
        topo.validate()
            .with_context(|| format!("{origin}: invalid topology"))?;
        Ok(topo)
    }

    /// Network address and prefix length of `subnet`.
    pub fn network(&self) -> Result<(Ipv4Addr, u8)> {
        let (addr, prefix) = self.subnet.split_once('/').with_context(|| {
            format!("subnet {:?} is not of the form a.b.c.d/prefix", self.subnet)
        })?;
        let addr: Ipv4Addr = addr
            .parse()
            .with_context(|| format!("subnet address {addr:?}"))?;
        let prefix: u8 = prefix
            .parse()
            .with_context(|| format!("subnet prefix {prefix:?}"))?;
        if !(8..=30).contains(&prefix) {
            bail!("subnet prefix /{prefix} must be between /8 and /30");
        }
        Ok((addr, prefix))
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        match self.network() {
            Ok((net, prefix)) => {
                let mask = u32::MAX << (32 - prefix as u32);
                (u32::from(ip) & mask) == (u32::from(net) & mask)
            }
            Err(_) => false,
        }
    }

    pub fn validate(&self) -> Result<()> {
        self.network()?;
        if !self.contains(self.gateway) {
            bail!("gateway {} is outside subnet {}", self.gateway, self.subnet);
        }
        if self.hosts.is_empty() {
            bail!("no [[host]] defined");
        }
        let mut seen_names = std::collections::HashSet::new();
        let mut seen_addrs = std::collections::HashSet::from([self.gateway]);
        for h in &self.hosts {
            // Host names become interface names (`v-<name>`, 15 bytes at most) and hostnames.
            let valid = !h.name.is_empty()
                && h.name.len() <= 12
                && h.name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && h.name.starts_with(|c: char| c.is_ascii_lowercase());
            if !valid {
                bail!(
                    "host name {:?}: use 1-12 characters a-z, 0-9, '-', starting with a letter",
                    h.name
                );
            }
            if !seen_names.insert(h.name.clone()) {
                bail!("host name {:?} is used twice", h.name);
            }
            if !self.contains(h.address) {
                bail!(
                    "host {} address {} is outside subnet {}",
                    h.name,
                    h.address,
                    self.subnet
                );
            }
            if !seen_addrs.insert(h.address) {
                bail!(
                    "host {} address {} is used twice (or is the gateway)",
                    h.name,
                    h.address
                );
            }
        }
        for role in [Role::Primary, Role::Standby, Role::Backup] {
            let n = self
                .hosts
                .iter()
                .filter(|h| h.roles.contains(&role))
                .count();
            if n != 1 {
                bail!("exactly one host must have role {role:?}, found {n}");
            }
        }
        Ok(())
    }

    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.name == name)
    }

    /// The host named `name` of lab `lab`, or an error naming the hosts there are.
    pub fn require_host(&self, lab: &str, name: &str) -> Result<&Host> {
        match self.host(name) {
            Some(h) => Ok(h),
            None => bail!(
                "lab {lab} has no host {name:?}; its hosts are {}",
                self.names().join(", ")
            ),
        }
    }

    pub fn with_role(&self, role: Role) -> &Host {
        self.hosts
            .iter()
            .find(|h| h.roles.contains(&role))
            .expect("validated: one host per role")
    }

    pub fn names(&self) -> Vec<&str> {
        self.hosts.iter().map(|h| h.name.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_topology_is_the_homework() {
        let t = Topology::default_lab();
        assert_eq!(t.names(), ["node1", "node2", "barman"]);
        assert_eq!(
            t.with_role(Role::Primary).address,
            Ipv4Addr::new(192, 168, 56, 11)
        );
        assert_eq!(t.with_role(Role::Standby).name, "node2");
        assert_eq!(t.with_role(Role::Backup).name, "barman");
    }

    #[test]
    fn rejects_address_outside_subnet() {
        let text = DEFAULT_TOPOLOGY.replace("192.168.56.13", "10.0.0.13");
        let err = format!("{:#}", Topology::parse(&text, "t").unwrap_err());
        assert!(
            err.contains("barman address 10.0.0.13 is outside subnet"),
            "{err}"
        );
    }

    #[test]
    fn rejects_duplicate_and_bad_names() {
        let text = DEFAULT_TOPOLOGY.replace("\"node2\"", "\"node1\"");
        assert!(format!("{:#}", Topology::parse(&text, "t").unwrap_err()).contains("used twice"));
        let text = DEFAULT_TOPOLOGY.replace("\"node2\"", "\"Node_2\"");
        assert!(format!("{:#}", Topology::parse(&text, "t").unwrap_err()).contains("host name"));
    }

    #[test]
    fn rejects_missing_role() {
        let text = DEFAULT_TOPOLOGY.replace("[\"backup\"]", "[\"standby\"]");
        let err = format!("{:#}", Topology::parse(&text, "t").unwrap_err());
        assert!(
            err.contains("exactly one host must have role Standby, found 2"),
            "{err}"
        );
    }

    #[test]
    fn subnet_membership() {
        let t = Topology::default_lab();
        assert!(t.contains(Ipv4Addr::new(192, 168, 56, 200)));
        assert!(!t.contains(Ipv4Addr::new(192, 168, 57, 1)));
    }
}
