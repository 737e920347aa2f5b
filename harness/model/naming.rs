//! Roles from the names students give their machines: `node1`/`master`/`leader`/`primary` is
//! the primary, `node2`/`slave`/`replica`/`standby` the standby, `barman`/`backup` the
//! backup server (the forms surveyed in the homework's public repositories).

use super::topology::Role;

const PRIMARY: &[&str] = &["node1", "master", "leader", "primary", "pg1", "db1"];
const STANDBY: &[&str] = &["node2", "slave", "replica", "standby", "pg2", "db2"];
const BACKUP: &[&str] = &["barman", "backup", "node3", "bkp"];

/// The role a machine's name says, if it says one. A name may carry a prefix or suffix
/// separated by `-`, `_` or `.` (`pg-master`, `barman_srv`).
pub fn role_from_name(name: &str) -> Option<Role> {
    let lower = name.to_ascii_lowercase();
    let tokens: Vec<&str> = lower.split(['-', '_', '.']).collect();
    for (role, words) in [
        (Role::Primary, PRIMARY),
        (Role::Standby, STANDBY),
        (Role::Backup, BACKUP),
    ] {
        if tokens.iter().any(|t| words.contains(t)) {
            return Some(role);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_surveyed_names() {
        for (n, r) in [
            ("node1", Role::Primary),
            ("master", Role::Primary),
            ("Leader", Role::Primary),
            ("pg-primary", Role::Primary),
            ("node2", Role::Standby),
            ("slave", Role::Standby),
            ("replica", Role::Standby),
            ("standby_1", Role::Standby),
            ("barman", Role::Backup),
            ("backup", Role::Backup),
        ] {
            assert_eq!(role_from_name(n), Some(r), "{n}");
        }
        assert_eq!(role_from_name("web"), None);
        assert_eq!(role_from_name("node10"), None);
    }
}
