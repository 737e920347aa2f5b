//! The names pglab gives a lab's resources on the machine, in one place. Every one starts
//! with `pglab-<lab id>`: that is how teardown, `pglab gc` and the tests find them without
//! any state (network namespaces, links, machines, cgroups, processes, libvirt domains).

/// What every name of every lab starts with.
pub const PREFIX: &str = "pglab-";

/// The lab id in a resource's name (`pglab-<id>` or `pglab-<id>-<host>`).
pub fn lab_id_of(name: &str) -> Option<&str> {
    let rest = name.strip_prefix(PREFIX)?;
    Some(rest.split('-').next().unwrap_or(rest))
}

/// `pglab-<id>`: the lab's own resources (its network namespace, bridge, processes).
pub fn lab_tag(id: &str) -> String {
    format!("pglab-{id}")
}

/// `pglab-<id>-`: what every per-host name of the lab starts with.
pub fn host_prefix(id: &str) -> String {
    format!("pglab-{id}-")
}

/// `pglab-<id>-<host>`: a host's machine, network namespace, cgroup, VM or domain.
pub fn host_name(id: &str, host: &str) -> String {
    format!("pglab-{id}-{host}")
}

/// `pglab-<id>-controller`: the network namespace of a Vagrant lab's Ansible controller.
pub fn controller_netns(id: &str) -> String {
    format!("pglab-{id}-controller")
}

/// `pglab-<id>-c`: the controller's link on the lab's libvirt bridge, in this machine's own
/// namespace (a link's name has at most 15 characters).
pub fn controller_link(id: &str) -> String {
    format!("pglab-{id}-c")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_starts_with_the_lab_tag() {
        let tag = lab_tag("a1b2c3");
        assert_eq!(tag, "pglab-a1b2c3");
        assert!(host_prefix("a1b2c3").starts_with(&tag));
        assert_eq!(host_name("a1b2c3", "node1"), "pglab-a1b2c3-node1");
        assert!(host_name("a1b2c3", "node1").starts_with(&host_prefix("a1b2c3")));
        assert_eq!(lab_id_of("pglab-a1b2c3-node1"), Some("a1b2c3"));
        assert_eq!(lab_id_of("pglab-a1b2c3"), Some("a1b2c3"));
        assert_eq!(lab_id_of("other-a1b2c3"), None);
        assert_eq!(lab_id_of(&controller_netns("a1b2c3")), Some("a1b2c3"));
        assert!(controller_link("ffffff").len() <= 15);
        assert_eq!(lab_id_of(&controller_link("a1b2c3")), Some("a1b2c3"));
    }
}
