//! Inventories for a student's playbooks: the submission's groups and host names kept, each
//! host's connection settings replaced by pglab's (so `hostvars[h]['ansible_host']` is the
//! lab address, and no `.vagrant/machines/.../private_key` path is needed).

use super::repo::RepoPlan;
use super::vagrantfile_read::Machine;
use anyhow::{bail, Result};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;

/// Connection variables pglab sets per host; the student's own are dropped.
const CONNECTION: &[&str] = &[
    "ansible_host",
    "ansible_ssh_host",
    "ansible_port",
    "ansible_ssh_port",
    "ansible_user",
    "ansible_ssh_user",
    "ansible_ssh_private_key_file",
    "ansible_private_key_file",
    "ansible_ssh_common_args",
    "ansible_ssh_extra_args",
    "ansible_connection",
    "ansible_password",
    "ansible_ssh_pass",
    "ansible_become",
    "ansible_python_interpreter",
];

/// How pglab reaches each host: machine name → `key=value ...`.
pub type Connections = BTreeMap<String, String>;

/// Vagrant's generated inventory: every machine by name, then `ansible.groups`.
pub fn vagrant(
    plan: &RepoPlan,
    conn: &Connections,
    groups: &BTreeMap<String, serde_json::Value>,
) -> String {
    let mut out = String::new();
    for m in plan.machines() {
        out.push_str(&format!("{} {}\n", m.name, conn[&m.name]));
    }
    for (group, v) in groups {
        out.push_str(&format!("\n[{group}]\n"));
        match v {
            serde_json::Value::Array(items) => {
                for i in items {
                    out.push_str(
                        i.as_str()
                            .map(String::from)
                            .unwrap_or(i.to_string())
                            .as_str(),
                    );
                    out.push('\n');
                }
            }
            serde_json::Value::Object(vars) => {
                for (k, val) in vars {
                    let val = val.as_str().map(String::from).unwrap_or(val.to_string());
                    out.push_str(&format!("{k}={val}\n"));
                }
            }
            serde_json::Value::String(s) => out.push_str(&format!("{s}\n")),
            other => out.push_str(&format!("{other}\n")),
        }
    }
    out
}

/// The listed groups with their hosts, children and vars (connection vars left out), as a
/// YAML inventory's `children` of `all`.
fn group_tree(groups: &Map<String, Value>) -> Map<String, Value> {
    let set = |list: Vec<&str>| -> Value {
        Value::Object(
            list.into_iter()
                .map(|n| (n.to_string(), json!({})))
                .collect(),
        )
    };
    groups
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "_meta" | "all" | "ungrouped"))
        .map(|(name, g)| {
            let group = json!({
                "hosts": set(names(g, "hosts")),
                "children": set(names(g, "children")),
                "vars": without_connection(g.get("vars")),
            });
            (name.clone(), group)
        })
        .collect()
}

/// `key=value key='a b'` (pglab's own connection settings) as pairs.
fn pairs(conn: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = conn.trim();
    while let Some(eq) = rest.find('=') {
        let key = rest[..eq].trim().to_string();
        let after = &rest[eq + 1..];
        let (value, next) = match after.strip_prefix('\'') {
            Some(q) => {
                let end = q.find('\'').unwrap_or(q.len());
                (q[..end].to_string(), q.get(end + 1..).unwrap_or(""))
            }
            None => {
                let end = after.find(' ').unwrap_or(after.len());
                (after[..end].to_string(), &after[end..])
            }
        };
        out.push((key, value));
        rest = next.trim_start();
    }
    out
}

/// A vars object without the connection variables pglab sets.
fn without_connection(vars: Option<&Value>) -> Map<String, Value> {
    vars.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter(|(k, _)| !CONNECTION.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// Names listed under `key` (`hosts` or `children`) of a group in `ansible-inventory --list`.
fn names<'v>(group: &'v Value, key: &str) -> Vec<&'v str> {
    group[key]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// The student's static inventory as Ansible itself read it (`ansible-inventory --list
/// --export`, in the controller: INI or YAML, quotes, ranges, `:children`, `:vars`,
/// `host_vars/`, `group_vars/`): groups, children and vars kept, each host's connection
/// settings replaced by pglab's; written as a YAML inventory (in JSON, which YAML reads).
pub fn from_listed(
    file: &Path,
    listed: &Value,
    plan: &RepoPlan,
    conn: &Connections,
) -> Result<String> {
    let empty = Map::new();
    let groups = listed.as_object().unwrap_or(&empty);
    let hostvars = listed["_meta"]["hostvars"].as_object().unwrap_or(&empty);
    let mut hosts: Vec<&str> = hostvars.keys().map(String::as_str).collect();
    for g in groups.values() {
        hosts.extend(names(g, "hosts"));
    }
    hosts.sort();
    hosts.dedup();
    if hosts.is_empty() {
        bail!(
            "the inventory {} holds no host as Ansible reads it\n  try: `ansible-inventory -i {} --list` shows what Ansible makes of it",
            file.display(),
            file.display()
        );
    }
    let mut all_hosts = Map::new();
    for h in hosts {
        let theirs = &hostvars.get(h).cloned().unwrap_or_default();
        let addr = ["ansible_host", "ansible_ssh_host"]
            .iter()
            .find_map(|k| theirs[*k].as_str());
        let machine = machine_of(h, addr, plan)
            .map_err(|why| anyhow::anyhow!("{}: {why}", file.display()))?;
        let mut vars = without_connection(Some(theirs));
        for (k, v) in pairs(&conn[&machine.name]) {
            vars.insert(k, Value::String(v));
        }
        all_hosts.insert(h.to_string(), Value::Object(vars));
    }
    let children = group_tree(groups);
    let all = json!({"all": {
        "hosts": all_hosts,
        "vars": without_connection(groups.get("all").and_then(|a| a.get("vars"))),
        "children": children,
    }});
    Ok(serde_json::to_string_pretty(&all)?)
}

/// The Vagrantfile's machine an inventory host line names: by name, or by its `ansible_host`
/// (or the name itself) being the machine's address.
fn machine_of<'p>(
    name: &str,
    addr: Option<&str>,
    plan: &'p RepoPlan,
) -> Result<&'p Machine, String> {
    let addr = addr.unwrap_or(name);
    let by_address = |m: &&Machine| {
        addr.parse::<Ipv4Addr>()
            .is_ok_and(|a| m.addresses.contains(&a))
    };
    let machines = plan.machines();
    machines
        .iter()
        .find(|m| m.name == name)
        .or_else(|| machines.iter().find(by_address))
        .ok_or_else(|| {
            let names: Vec<&str> = machines.iter().map(|m| m.name.as_str()).collect();
            format!(
                "host {name} (address {addr}) is none of the Vagrantfile's machines ({})",
                names.join(", ")
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> (tempfile::TempDir, RepoPlan) {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("Vagrantfile"),
            "Vagrant.configure(\"2\") do |c|\n  c.vm.box = \"debian/bookworm64\"\n  [[\"master\", \"192.168.11.10\"], [\"slave\", \"192.168.11.11\"], [\"backup\", \"192.168.11.12\"]].each do |n, ip|\n    c.vm.define n do |m|\n      m.vm.network \"private_network\", ip: ip\n    end\n  end\nend\n",
        )
        .unwrap();
        std::fs::write(d.path().join("site.yml"), "- hosts: all\n").unwrap();
        let p = super::super::repo::load(d.path()).unwrap();
        (d, p)
    }

    fn conns() -> Connections {
        ["master", "slave", "backup"]
            .iter()
            .enumerate()
            .map(|(i, n)| {
                (
                    n.to_string(),
                    format!("ansible_host=192.168.11.{} ansible_user=root", 10 + i),
                )
            })
            .collect()
    }

    /// What `ansible-inventory --list --export` printed (Ansible 9.4.0) for an INI inventory
    /// with quoted values holding spaces, `:children`, `[all:vars]` and `host_vars/`.
    const LISTED: &str = r#"{"_meta": {"hostvars": {
        "master": {"ansible_host": "192.168.11.10", "ansible_ssh_common_args": "-o StrictHostKeyChecking=no", "pg_role": "primary"},
        "192.168.11.11": {},
        "barman-srv": {"ansible_host": "192.168.11.12", "ansible_port": 2222}}},
      "all": {"children": ["ungrouped", "servers", "backup"], "vars": {"ansible_user": "vagrant", "pg_version": 14}},
      "servers": {"children": ["master", "slave"]},
      "master": {"hosts": ["master"]}, "slave": {"hosts": ["192.168.11.11"]},
      "backup": {"hosts": ["barman-srv"]}}"#;

    #[test]
    fn a_listed_inventory_keeps_groups_names_and_other_vars() {
        let (_d, plan) = plan();
        let listed: Value = serde_json::from_str(LISTED).unwrap();
        let out = from_listed(Path::new("hosts"), &listed, &plan, &conns()).unwrap();
        let inv: Value = serde_json::from_str(&out).unwrap();
        let hosts = &inv["all"]["hosts"];
        assert_eq!(
            hosts["master"],
            json!({"ansible_host": "192.168.11.10", "ansible_user": "root", "pg_role": "primary"})
        );
        assert_eq!(hosts["192.168.11.11"]["ansible_host"], "192.168.11.11");
        assert_eq!(hosts["barman-srv"]["ansible_host"], "192.168.11.12");
        assert!(hosts["barman-srv"].get("ansible_port").is_none(), "{out}");
        assert_eq!(inv["all"]["vars"], json!({"pg_version": 14}));
        let groups = &inv["all"]["children"];
        assert_eq!(
            groups["servers"]["children"],
            json!({"master": {}, "slave": {}})
        );
        assert_eq!(groups["backup"]["hosts"], json!({"barman-srv": {}}));
        let other: Value = serde_json::from_str(
            r#"{"_meta": {"hostvars": {"web": {"ansible_host": "10.9.9.9"}}}}"#,
        )
        .unwrap();
        let e = from_listed(Path::new("hosts"), &other, &plan, &conns())
            .unwrap_err()
            .to_string();
        assert!(e.contains("hosts: host web (address 10.9.9.9) is none of the Vagrantfile's machines (master, slave, backup)"), "{e}");
        let none: Value = serde_json::from_str(
            r#"{"_meta": {"hostvars": {}}, "all": {"children": ["ungrouped"]}}"#,
        )
        .unwrap();
        let e = from_listed(Path::new("hosts"), &none, &plan, &conns())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("the inventory hosts holds no host as Ansible reads it"),
            "{e}"
        );
    }

    #[test]
    fn pglab_connection_settings_split_into_pairs() {
        assert_eq!(
            pairs(
                "ansible_host=10.0.0.1 ansible_ssh_common_args='-o A=b -o C=d' ansible_become=true"
            ),
            [
                ("ansible_host".to_string(), "10.0.0.1".to_string()),
                ("ansible_ssh_common_args".into(), "-o A=b -o C=d".into()),
                ("ansible_become".into(), "true".into())
            ]
        );
    }

    #[test]
    fn vagrant_inventory_has_every_machine_and_the_groups() {
        let (_d, plan) = plan();
        let groups: BTreeMap<String, serde_json::Value> = [
            ("db".to_string(), serde_json::json!(["master", "slave"])),
            ("db:vars".to_string(), serde_json::json!({"pg_version": 14})),
        ]
        .into();
        let out = vagrant(&plan, &conns(), &groups);
        assert!(
            out.starts_with("master ansible_host=192.168.11.10 ansible_user=root\nslave "),
            "{out}"
        );
        assert!(
            out.contains("\n[db]\nmaster\nslave\n\n[db:vars]\npg_version=14\n"),
            "{out}"
        );
    }
}
