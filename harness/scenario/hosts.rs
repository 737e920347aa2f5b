//! Scenarios name the homework's hosts (`node1`, `node2`, `barman`); a submission's lab may
//! call them otherwise (`master`, `slave`, `backup`). A name the lab lacks that is one of
//! the homework's means the host with that role.

use crate::model::topology::{Role, Topology};

/// The lab's host a scenario's host name means.
pub fn resolve(topo: &Topology, name: &str) -> String {
    if topo.host(name).is_some() {
        return name.to_string();
    }
    let role = match name {
        "node1" => Role::Primary,
        "node2" => Role::Standby,
        "barman" => Role::Backup,
        _ => return name.to_string(),
    };
    topo.with_role(role).name.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn homework_names_mean_the_roles_in_a_lab_named_otherwise() {
        let text = crate::model::topology::DEFAULT_TOPOLOGY
            .replace("\"node1\"", "\"master\"")
            .replace("\"node2\"", "\"slave\"");
        let t = Topology::parse(&text, "t").unwrap();
        assert_eq!(resolve(&t, "node1"), "master");
        assert_eq!(resolve(&t, "node2"), "slave");
        assert_eq!(resolve(&t, "barman"), "barman");
        assert_eq!(resolve(&t, "web"), "web");
    }
}
