//! A repository without a Vagrantfile: the student ran `ansible-playbook` by hand against VMs
//! of their own, described by an inventory (`ansible.cfg`'s `inventory`, or the README's
//! `-i`). The lab's topology comes from that inventory as Ansible reads it (in a controller
//! before any lab: no network, as nobody): host names, `ansible_host` addresses, roles from
//! the names or else from the groups; the box from the PostgreSQL the playbooks install (the
//! homework's jammy when they name none); the playbooks from the README, in its order.

use super::ansible_tool::{list_inventory, venv_dir};
use super::controller::Controller;
use super::repo::{self, BoxChoice, Hints, RepoPlan};
use super::vagrantfile_read::{self, Machine, VagrantSpec};
use crate::model::naming::role_from_name;
use crate::model::topology::Role;
use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;

/// A repository pglab reads as it comes: one with a Vagrantfile, or an inventory-only one.
pub fn is_repository(dir: &Path) -> bool {
    vagrantfile_read::find(dir).is_some() || inventory_of(dir).is_some()
}

/// Loads a repository as it comes, whichever kind it is.
pub fn load_any(dir: &Path) -> Result<RepoPlan> {
    if vagrantfile_read::find(dir).is_some() {
        return repo::load(dir);
    }
    load(dir)
}

/// The inventory an inventory-only repository names (relative), when `dir` is one: no
/// Vagrantfile, no provision.toml, a playbook, and `ansible.cfg`'s `inventory` or the
/// README's `ansible-playbook -i` naming a file of the repository.
pub fn inventory_of(dir: &Path) -> Option<String> {
    if vagrantfile_read::find(dir).is_some() || dir.join("provision.toml").exists() {
        return None;
    }
    let (playbooks, from_readme) = repo::readme_playbooks(dir);
    if playbooks.is_empty() && repo::find_playbooks(dir).is_empty() {
        return None;
    }
    let cfg = crate::sys::tree::read_inside(dir, Path::new("ansible.cfg"), 1 << 20).ok();
    let from_cfg = cfg.as_deref().and_then(cfg_inventory);
    from_cfg
        .or(from_readme)
        .filter(|i| crate::sys::tree::within(dir, Path::new(i)).is_ok_and(|p| p.is_file()))
}

/// `inventory = FILE` of an ansible.cfg's `[defaults]`.
fn cfg_inventory(text: &str) -> Option<String> {
    let mut section = "";
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line;
        } else if section == "[defaults]" {
            if let Some((k, v)) = line.split_once('=') {
                if matches!(k.trim(), "inventory" | "hostfile") {
                    return v
                        .split([',', ';', '#'])
                        .next()
                        .map(|v| v.trim().to_string());
                }
            }
        }
    }
    None
}

/// Reads an inventory-only repository.
pub fn load(dir: &Path) -> Result<RepoPlan> {
    let inv = inventory_of(dir).with_context(|| {
        format!(
            "{}: no Vagrantfile, and no inventory named by ansible.cfg or the README",
            dir.display()
        )
    })?;
    let dir_c = dir
        .canonicalize()
        .with_context(|| format!("cannot read {}", dir.display()))?;
    let work = tempfile::tempdir()?;
    let ctl = Controller::offline(work.path(), &dir_c, &[venv_dir()?])?;
    let listed = list_inventory(&ctl, &dir_c, &dir_c.join(&inv))?;
    let file = dir.join(&inv);
    let (machines, group_roles) = machines_of(&listed, &file, &box_of(dir, &listed))?;
    let vagrant = VagrantSpec { file, machines };
    let topology = repo::topology_with(&vagrant, &group_roles)?;
    let hints = Hints {
        inventory: Some(inv.clone()),
        ..Default::default()
    };
    let actions = repo::manual_playbooks(dir, &hints, &[])?;
    if actions.is_empty() {
        bail!(
            "{}: the inventory {inv} is there, but no playbook to run with it",
            dir.display()
        );
    }
    let guessed = vagrant
        .machines
        .iter()
        .filter(|m| role_from_name(&m.name).is_none() && !group_roles.contains_key(&m.name))
        .map(|m| m.name.clone())
        .collect();
    let from = vagrant.machines[0].box_name.clone().unwrap_or_default();
    let box_choice = repo::map_box(&from).unwrap_or(BoxChoice::Mapped {
        from: from.clone(),
        to: "pg14-barman2".into(),
    });
    Ok(RepoPlan {
        dir: dir.into(),
        vagrant,
        topology,
        guessed,
        box_choice,
        actions,
        hints_commands: BTreeMap::new(),
        description: format!("inventory-only repository ({inv}; no Vagrantfile)"),
    })
}

/// The Vagrant box the student's VMs most likely ran, from the PostgreSQL they install: a
/// `postgresql-15` package in a playbook, or an inventory variable such as `pg_version=15`;
/// the homework's `ubuntu/jammy64` (PostgreSQL 14) when nothing names one. (A repository
/// with a `provision.toml` is read as that file says, `box` included.)
fn box_of(dir: &Path, listed: &Value) -> String {
    let mut text = listed.to_string();
    for p in repo::find_playbooks(dir) {
        text.push_str(
            &crate::sys::tree::read_inside(dir, Path::new(&p), 1 << 20).unwrap_or_default(),
        );
    }
    let var =
        regex::Regex::new(r#"(?i)"(?:pg|postgres\w*)_?ver\w*"\s*:\s*"?(\d+)"#).expect("valid");
    let major = regex::Regex::new(r"postgresql-(\d+)\b")
        .expect("valid")
        .captures(&text)
        .or_else(|| var.captures(&text))
        .map(|c| c[1].to_string());
    match major.as_deref() {
        Some("13") => "debian/bullseye64",
        Some("15") => "debian/bookworm64",
        Some("17") => "debian/trixie64",
        _ => "ubuntu/jammy64",
    }
    .into()
}

const MAX_HOSTS: usize = 32;
const MAX_GROUPS: usize = 256;

/// The inventory's host names (with vars, or in a group) and the roles their groups say.
fn names_and_roles(
    listed: &Value,
    groups: &serde_json::Map<String, Value>,
    hostvars: &serde_json::Map<String, Value>,
) -> (Vec<String>, BTreeMap<String, Role>) {
    // (At most one more than the limit of each: enough to refuse what is too large.)
    let members = |g: &Value| -> Vec<String> {
        g["hosts"]
            .as_array()
            .into_iter()
            .flatten()
            .take(MAX_HOSTS + 1)
            .filter_map(Value::as_str)
            .map(String::from)
            .collect()
    };
    let mut names: Vec<String> = hostvars.keys().cloned().collect();
    let mut roles = BTreeMap::new();
    for (gname, g) in groups.iter().filter(|(n, _)| !n.starts_with('_')) {
        let mut hosts = members(g);
        // A group of groups (`:children`) gives its role to its members' hosts.
        for child in g["children"]
            .as_array()
            .into_iter()
            .flatten()
            .take(MAX_GROUPS)
            .filter_map(Value::as_str)
        {
            hosts.extend(members(&listed[child]));
        }
        for h in &hosts {
            if let Some(r) = role_from_name(gname) {
                roles.entry(h.clone()).or_insert(r);
            }
        }
        names.extend(hosts);
    }
    (names, roles)
}

/// Every host of an `ansible-inventory --list` as a machine at its `ansible_host`, and the
/// roles its groups say (for names that say none).
fn machines_of(
    listed: &Value,
    file: &Path,
    box_name: &str,
) -> Result<(Vec<Machine>, BTreeMap<String, Role>)> {
    let empty = serde_json::Map::new();
    let groups = listed.as_object().unwrap_or(&empty);
    let hostvars = listed["_meta"]["hostvars"].as_object().unwrap_or(&empty);
    // The lab has three hosts: an inventory of hundreds (or a plugin's endless JSON) is no
    // homework's, and is refused before any work grows with its size.
    if groups.len() > MAX_GROUPS || hostvars.len() > MAX_HOSTS {
        bail!(
            "{}: {} groups and {} hosts; pglab grades inventories of a few hosts (at most {MAX_HOSTS} hosts, {MAX_GROUPS} groups)",
            file.display(),
            groups.len(),
            hostvars.len()
        );
    }
    let (mut names, roles) = names_and_roles(listed, groups, hostvars);
    names.sort();
    names.dedup();
    if names.len() > MAX_HOSTS {
        bail!(
            "{}: {} hosts; pglab grades inventories of at most {MAX_HOSTS}",
            file.display(),
            names.len()
        );
    }
    let mut machines = Vec::new();
    let mut no_address = Vec::new();
    for n in names {
        let addr = address_of(listed, &n);
        match addr {
            Some(a) => machines.push(Machine {
                name: n,
                line: 0,
                box_name: Some(box_name.into()),
                hostname: None,
                addresses: vec![a],
                provisioners: Vec::new(),
            }),
            None => no_address.push(n),
        }
    }
    if !no_address.is_empty() || machines.is_empty() {
        bail!(
            "{}: pglab puts each host of the inventory at its ansible_host address, and {} no IPv4 ansible_host",
            file.display(),
            if machines.is_empty() { "no host has".to_string() } else { format!("{} has", no_address.join(", ")) }
        );
    }
    Ok((machines, roles))
}

/// A host's `ansible_host`: its own, or its groups' (`--export` moves a variable that every
/// host of a group shares into the group, e.g. `[master]` holding only `master`), nearest
/// group first.
fn address_of(listed: &Value, host: &str) -> Option<Ipv4Addr> {
    let keys = ["ansible_host", "ansible_ssh_host"];
    let from = |vars: &Value| {
        keys.iter()
            .find_map(|k| vars[*k].as_str().map(String::from))
    };
    let groups = listed.as_object()?;
    let holds = |g: &Value, name: &str, key: &str| {
        g[key]
            .as_array()
            .is_some_and(|a| a.iter().any(|h| h == name))
    };
    let mut found = from(&listed["_meta"]["hostvars"][host]);
    // The groups that hold the host, then their parents, level by level.
    let mut level: Vec<&String> = groups
        .keys()
        .filter(|g| holds(&groups[*g], host, "hosts"))
        .collect();
    let mut seen = 0;
    while found.is_none() && !level.is_empty() && seen < 64 {
        found = level.iter().find_map(|g| from(&groups[*g]["vars"]));
        level = groups
            .keys()
            .filter(|p| level.iter().any(|g| holds(&groups[*p], g, "children")))
            .collect();
        seen += 1;
    }
    found.and_then(|a| a.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ansible-inventory -i hosts --list --export` of the inventory-only fixture (INI with
    /// quoted values, `:children`), as Ansible 9.4.0 printed it here.
    const LISTED: &str = r#"{"_meta":{"hostvars":{"barman":{"ansible_host":"192.168.57.13"},"node1":{"ansible_host":"192.168.57.11","ansible_ssh_common_args":"-o StrictHostKeyChecking=no"},"node2":{"ansible_host":"192.168.57.12","ansible_ssh_common_args":"-o StrictHostKeyChecking=no"}}},"all":{"children":["ungrouped","backup","db"]},"backup":{"hosts":["barman"]},"db":{"children":["master","slave"]},"master":{"hosts":["node1"]},"slave":{"hosts":["node2"]}}"#;

    /// The same of static-inventory's `ansible/inventory/hosts.ini` (each group holds one host
    /// of its name): `--export` moved every host's variables into its group.
    const HOISTED: &str = r#"{"_meta":{"hostvars":{}},"all":{"children":["ungrouped","backup","servers"],"vars":{"ansible_user":"vagrant","pg_version":15}},"backup":{"hosts":["backup"],"vars":{"ansible_host":"10.44.0.30","ansible_ssh_private_key_file":"../.vagrant/machines/backup/virtualbox/private_key"}},"master":{"hosts":["master"],"vars":{"ansible_host":"10.44.0.10","ansible_ssh_private_key_file":"../.vagrant/machines/master/virtualbox/private_key"}},"servers":{"children":["master","slave"]},"slave":{"hosts":["slave"],"vars":{"ansible_host":"10.44.0.20","ansible_ssh_private_key_file":"../.vagrant/machines/slave/virtualbox/private_key"}}}"#;

    /// Each machine's name and address, as `machines_of` makes them.
    fn addresses(listed: &Value) -> Vec<(String, Ipv4Addr)> {
        let (m, _) = machines_of(listed, Path::new("hosts"), "ubuntu/jammy64").unwrap();
        m.into_iter().map(|m| (m.name, m.addresses[0])).collect()
    }

    #[test]
    fn addresses_held_by_groups_are_found() {
        let listed: Value = serde_json::from_str(HOISTED).unwrap();
        assert_eq!(
            addresses(&listed),
            [
                ("backup".to_string(), Ipv4Addr::new(10, 44, 0, 30)),
                ("master".to_string(), Ipv4Addr::new(10, 44, 0, 10)),
                ("slave".to_string(), Ipv4Addr::new(10, 44, 0, 20))
            ]
        );
        assert_eq!(
            box_of(Path::new("/nonexistent"), &listed),
            "debian/bookworm64"
        );
    }

    #[test]
    fn the_inventory_gives_the_hosts_their_addresses_and_roles() {
        let listed: Value = serde_json::from_str(LISTED).unwrap();
        let (_, roles) = machines_of(&listed, Path::new("hosts"), "ubuntu/jammy64").unwrap();
        assert_eq!(
            addresses(&listed),
            [
                ("barman".to_string(), Ipv4Addr::new(192, 168, 57, 13)),
                ("node1".to_string(), Ipv4Addr::new(192, 168, 57, 11)),
                ("node2".to_string(), Ipv4Addr::new(192, 168, 57, 12))
            ]
        );
        assert_eq!(roles.get("node1"), Some(&Role::Primary));
        assert_eq!(roles.get("node2"), Some(&Role::Standby));
        // Hosts named alpha/beta take their roles from their groups.
        let renamed = LISTED.replace("node1", "alpha").replace("node2", "beta");
        let listed: Value = serde_json::from_str(&renamed).unwrap();
        let (m, roles) = machines_of(&listed, Path::new("hosts"), "ubuntu/jammy64").unwrap();
        let v = VagrantSpec {
            file: "hosts".into(),
            machines: m,
        };
        let topo = repo::topology_with(&v, &roles).unwrap();
        let alpha = topo.hosts.iter().find(|h| h.name == "alpha").unwrap();
        assert_eq!(alpha.roles, [Role::Primary]);
        let no_addr = LISTED.replace(r#""ansible_host":"192.168.57.13""#, r#""x":1"#);
        let e = machines_of(
            &serde_json::from_str(&no_addr).unwrap(),
            Path::new("hosts"),
            "b",
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("barman has no IPv4 ansible_host"),
            "{e}"
        );
    }

    #[test]
    fn the_box_follows_the_postgresql_the_repository_installs() {
        let d = tempfile::tempdir().unwrap();
        let none = serde_json::json!({});
        assert_eq!(box_of(d.path(), &none), "ubuntu/jammy64");
        let vars = serde_json::json!({"all": {"vars": {"pg_version": "15"}}});
        assert_eq!(box_of(d.path(), &vars), "debian/bookworm64");
        std::fs::write(
            d.path().join("site.yml"),
            "- hosts: all\n  tasks:\n    - apt: name=postgresql-13\n",
        )
        .unwrap();
        assert_eq!(box_of(d.path(), &none), "debian/bullseye64");
    }

    #[test]
    fn the_fixture_is_an_inventory_only_repository() {
        let d = crate::sys::paths::repo_root().join("tests/fixtures/students/inventory-only");
        assert_eq!(inventory_of(&d).as_deref(), Some("hosts"));
        assert!(is_repository(&d));
        assert_eq!(
            cfg_inventory("[defaults]\ninventory = ./inv/hosts.ini # mine\n").as_deref(),
            Some("./inv/hosts.ini")
        );
        let vagrant = crate::sys::paths::repo_root().join("tests/fixtures/students/vagrant-roles");
        assert_eq!(inventory_of(&vagrant), None);
    }
}
