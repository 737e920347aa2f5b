//! Inventories for a student's playbooks: the submission's groups and host names kept, each
//! host's connection settings replaced by pglab's (so `hostvars[h]['ansible_host']` is the
//! lab address, and no `.vagrant/machines/.../private_key` path is needed).

use super::repo::RepoPlan;
use super::vagrantfile_read::Machine;
use anyhow::Result;
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

/// The student's INI inventory with each host line's connection settings replaced. A host
/// is matched to a machine by name, by its `ansible_host`, or by being the machine's address.
pub fn rewrite_static(
    file: &Path,
    text: &str,
    plan: &RepoPlan,
    conn: &Connections,
) -> Result<String> {
    let mut out = String::new();
    let mut section = String::new();
    for (n, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.starts_with('[') {
            section = t.trim_matches(['[', ']']).to_string();
            out.push_str(line);
            out.push('\n');
            continue;
        }
        let is_host_line = !t.is_empty()
            && !t.starts_with(['#', ';'])
            && !section.ends_with(":vars")
            && !section.ends_with(":children");
        if !is_host_line {
            out.push_str(line);
            out.push('\n');
            continue;
        }
        let mut words = t.split_whitespace();
        let name = words.next().expect("not empty");
        let vars: Vec<&str> = words.collect();
        let machine = machine_of(name, &vars, plan)
            .map_err(|why| anyhow::anyhow!("{}:{}: {why}", file.display(), n + 1))?;
        let kept: Vec<&str> = vars
            .into_iter()
            .filter(|v| !CONNECTION.iter().any(|c| v.split('=').next() == Some(c)))
            .collect();
        let line = format!("{name} {} {}", conn[&machine.name], kept.join(" "));
        out.push_str(line.trim_end());
        out.push('\n');
    }
    Ok(out)
}

/// The Vagrantfile's machine an inventory host line names: by name, or by its `ansible_host`
/// (or the name itself) being the machine's address.
fn machine_of<'p>(name: &str, vars: &[&str], plan: &'p RepoPlan) -> Result<&'p Machine, String> {
    let addr = vars
        .iter()
        .find_map(|v| {
            v.strip_prefix("ansible_host=")
                .or_else(|| v.strip_prefix("ansible_ssh_host="))
        })
        .unwrap_or(name);
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

    #[test]
    fn static_inventory_keeps_groups_names_and_other_vars() {
        let (_d, plan) = plan();
        let text = "[master]\nmaster ansible_host=192.168.11.10 ansible_user=vagrant ansible_ssh_private_key_file=.vagrant/machines/master/virtualbox/private_key pg_role=primary\n\n[slave]\n192.168.11.11\n\n[backup]\nbarman-srv ansible_host=192.168.11.12 ansible_port=2222\n\n[servers:children]\nmaster\nslave\n\n[all:vars]\nansible_user=vagrant\n";
        let out = rewrite_static(Path::new("hosts"), text, &plan, &conns()).unwrap();
        assert_eq!(
            out,
            "[master]\nmaster ansible_host=192.168.11.10 ansible_user=root pg_role=primary\n\n[slave]\n192.168.11.11 ansible_host=192.168.11.11 ansible_user=root\n\n[backup]\nbarman-srv ansible_host=192.168.11.12 ansible_user=root\n\n[servers:children]\nmaster\nslave\n\n[all:vars]\nansible_user=vagrant\n"
        );
        let e = rewrite_static(
            Path::new("hosts"),
            "[x]\nweb ansible_host=10.9.9.9\n",
            &plan,
            &conns(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("hosts:2: host web (address 10.9.9.9) is none of the Vagrantfile's machines (master, slave, backup)"), "{e}");
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
