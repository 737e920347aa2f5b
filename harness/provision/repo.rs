//! A student's repository as it comes: a Vagrantfile (read by `vagrantfile_read`), the
//! playbooks and static inventories where such repositories keep them, and an optional
//! `provision.toml` saying what cannot be found (`playbooks = [...]` in order, `box`,
//! `inventory`). From them: the lab's topology (the submission's names and addresses, roles
//! from the names), the box, and the provisioning actions in Vagrant's order, each decision
//! written out so that it is printed before anything runs.

use super::vagrantfile_read::{self, Machine, Provisioner, VagrantSpec};
use crate::model::naming::role_from_name;
use crate::model::topology::{Host, Role, Topology};
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// What `provision.toml` may say beside a Vagrantfile.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hints {
    #[serde(default)]
    pub description: String,
    /// Playbooks to run after Vagrant's provisioners, in this order (relative to the repo).
    pub playbooks: Option<Vec<String>>,
    /// Their static inventory (relative to the repo).
    pub inventory: Option<String>,
    /// The pglab box, when the Vagrantfile's box maps to none or to the wrong one.
    #[serde(rename = "box")]
    pub box_name: Option<String>,
    #[serde(default)]
    pub commands: BTreeMap<String, String>,
}

/// Where a playbook's inventory comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Inventory {
    /// Vagrant's generated one: every machine by name, plus `ansible.groups`.
    Vagrant {
        groups: BTreeMap<String, serde_json::Value>,
    },
    /// The student's INI file (relative to the repo): groups and names kept.
    Static(PathBuf),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Playbook {
        /// Relative to the repo.
        playbook: PathBuf,
        limit: Option<String>,
        inventory: Inventory,
        extra_vars: serde_json::Value,
        /// Where it was found, for messages ("Vagrantfile:31", "README.md").
        origin: String,
    },
    Shell {
        machine: String,
        /// A script file relative to the repo, or inline text.
        path: Option<PathBuf>,
        inline: Option<String>,
        args: Vec<String>,
        origin: String,
    },
}

/// The box decision: the Vagrantfile's box and pglab's equivalent.
#[derive(Debug, Clone, PartialEq)]
pub enum BoxChoice {
    Mapped {
        from: String,
        to: String,
    },
    /// A Red Hat family box: nothing equivalent on the nspawn backend.
    NoEquivalent {
        from: String,
    },
}

#[derive(Debug, Clone)]
pub struct RepoPlan {
    pub dir: PathBuf,
    pub vagrant: VagrantSpec,
    pub topology: Topology,
    /// Machines whose roles their names do not say: provisional until provisioning shows
    /// what runs where (`run::discover::roles`).
    pub guessed: Vec<String>,
    pub box_choice: BoxChoice,
    pub actions: Vec<Action>,
    pub hints_commands: BTreeMap<String, String>,
    pub description: String,
}

/// pglab's box for a Vagrant box of the homework's surveyed repositories.
pub fn map_box(vagrant_box: &str) -> Option<BoxChoice> {
    let b = vagrant_box.to_ascii_lowercase();
    let to = match b.as_str() {
        "ubuntu/jammy64" | "generic/ubuntu2204" | "bento/ubuntu-22.04" => "pg14-barman2",
        "debian/bullseye64" | "generic/debian11" | "bento/debian-11" => "bullseye",
        "debian/bookworm64" | "generic/debian12" | "bento/debian-12" | "debian/12" => "bookworm",
        "debian/trixie64" | "generic/debian13" => "trixie",
        _ => {
            let red_hat = [
                "centos", "rocky", "alma", "rhel", "fedora", "oracle", "redhat",
            ];
            if red_hat.iter().any(|r| b.contains(r)) {
                return Some(BoxChoice::NoEquivalent {
                    from: vagrant_box.into(),
                });
            }
            return None;
        }
    };
    Some(BoxChoice::Mapped {
        from: vagrant_box.into(),
        to: to.into(),
    })
}

/// Reads `dir` as a Vagrant repository (it has a `Vagrantfile`).
pub fn load(dir: &Path) -> Result<RepoPlan> {
    let hints = read_hints(dir)?;
    let file = vagrantfile_read::find(dir)
        .with_context(|| format!("{}: no Vagrantfile (nor vagrantfile)", dir.display()))?;
    let vagrant = vagrantfile_read::read(&file)?;
    let topology = topology(&vagrant)?;
    let box_choice = choose_box(&vagrant, &hints)?;
    let mut actions = vagrant_actions(dir, &vagrant)?;
    actions.extend(manual_playbooks(dir, &hints, &actions)?);
    if actions.is_empty() {
        bail!(
            "{}: the Vagrantfile has no ansible or shell provisioner, and no playbook was found (looked in ansible/, provisioning/, playbooks/ and the top folder, and for ansible-playbook commands in README)\n  try: name them in provision.toml: playbooks = [\"ansible/replication.yml\", \"ansible/backup.yml\"]",
            dir.display()
        );
    }
    for a in &actions {
        check_files(dir, a)?;
    }
    let guessed = vagrant
        .machines
        .iter()
        .filter(|m| role_from_name(&m.name).is_none())
        .map(|m| m.name.clone())
        .collect();
    Ok(RepoPlan {
        dir: dir.into(),
        vagrant,
        topology,
        guessed,
        box_choice,
        actions,
        hints_commands: hints.commands,
        description: hints.description,
    })
}

fn read_hints(dir: &Path) -> Result<Hints> {
    let f = dir.join("provision.toml");
    if f.symlink_metadata().is_err() {
        return Ok(Hints::default());
    }
    let text = crate::sys::tree::read_inside(dir, Path::new("provision.toml"), 1 << 20)?;
    toml::from_str(&text).with_context(|| {
        format!(
            "{}: beside a Vagrantfile it may hold only description, playbooks, inventory, box, [commands]",
            f.display()
        )
    })
}

/// The lab's topology: the machines' names and first private addresses, roles from names.
/// Machines whose names say no role take the roles left, in definition order: provisional
/// (`RepoPlan::guessed`), found after provisioning from what runs where.
pub fn topology(v: &VagrantSpec) -> Result<Topology> {
    topology_with(v, &BTreeMap::new())
}

/// The same, with roles known for some names from elsewhere (an inventory's groups).
pub fn topology_with(v: &VagrantSpec, known: &BTreeMap<String, Role>) -> Result<Topology> {
    let mut hosts = Vec::new();
    for m in &v.machines {
        let at = format!("{}:{}", v.file.display(), m.line);
        let address = *m.addresses.first().with_context(|| {
            format!("{at}: machine {} has no private_network address; pglab puts each host at its own address", m.name)
        })?;
        hosts.push(Host {
            name: m.name.clone(),
            address,
            roles: role_from_name(&m.name)
                .or_else(|| known.get(&m.name).copied())
                .into_iter()
                .collect(),
        });
    }
    let taken: Vec<Role> = hosts.iter().flat_map(|h| h.roles.clone()).collect();
    let mut left = [Role::Primary, Role::Standby, Role::Backup]
        .into_iter()
        .filter(|r| !taken.contains(r));
    for h in hosts.iter_mut().filter(|h| h.roles.is_empty()) {
        let role = left.next().with_context(|| {
            format!(
                "{}: machine {:?}: its name says no role and no role is left (node1/master/leader/primary, node2/slave/replica/standby, barman/backup)",
                v.file.display(),
                h.name
            )
        })?;
        h.roles.push(role);
    }
    let addrs: Vec<u32> = hosts.iter().map(|h| u32::from(h.address)).collect();
    let common = addrs
        .iter()
        .map(|a| (a ^ addrs[0]).leading_zeros())
        .min()
        .unwrap_or(32);
    let prefix = common.min(24);
    if prefix < 8 {
        bail!(
            "{}: the machines' private addresses are in different networks ({}); pglab puts them on one lab bridge",
            v.file.display(),
            hosts.iter().map(|h| h.address.to_string()).collect::<Vec<_>>().join(", ")
        );
    }
    let net = addrs[0] & (u32::MAX << (32 - prefix));
    // The gateway (pglab's side of the lab bridge) takes the first free address.
    let gateway = (1..254)
        .map(|i| Ipv4Addr::from(net + i))
        .find(|g| !hosts.iter().any(|h| h.address == *g))
        .expect("a /24 has a free address");
    let topo = Topology {
        subnet: format!("{}/{prefix}", Ipv4Addr::from(net)),
        gateway,
        hosts,
    };
    topo.validate()
        .with_context(|| format!("{}: the machines do not make a lab", v.file.display()))?;
    Ok(topo)
}

fn choose_box(v: &VagrantSpec, hints: &Hints) -> Result<BoxChoice> {
    let boxes: Vec<&str> = v
        .machines
        .iter()
        .filter_map(|m| m.box_name.as_deref())
        .collect();
    let from = boxes.first().copied().unwrap_or("(none)");
    if let Some(to) = &hints.box_name {
        return Ok(BoxChoice::Mapped {
            from: from.into(),
            to: to.clone(),
        });
    }
    if boxes.iter().any(|b| *b != from) {
        bail!(
            "{}: the machines use different boxes ({}); pglab runs one box per lab\n  try: box = \"bookworm\" in provision.toml",
            v.file.display(),
            boxes.join(", ")
        );
    }
    map_box(from).with_context(|| {
        format!(
            "{}: box {from:?} has no pglab equivalent (known: ubuntu/jammy64 → pg14-barman2, debian/bullseye64 → bullseye, debian/bookworm64 → bookworm)\n  try: box = \"bookworm\" in provision.toml",
            v.file.display()
        )
    })
}

/// Vagrant's provisioners, machine by machine in definition order.
fn vagrant_actions(dir: &Path, v: &VagrantSpec) -> Result<Vec<Action>> {
    let file = v.file.file_name().unwrap_or_default().to_string_lossy();
    let mut out = Vec::new();
    for m in &v.machines {
        for p in &m.provisioners {
            out.push(match p {
                Provisioner::Ansible {
                    playbook,
                    limit,
                    inventory_path,
                    groups,
                    extra_vars,
                    line,
                } => Action::Playbook {
                    playbook: playbook.into(),
                    // Vagrant limits a machine's ansible provisioner to that machine.
                    limit: Some(limit.clone().unwrap_or_else(|| m.name.clone())),
                    inventory: match inventory_path {
                        Some(p) => Inventory::Static(p.into()),
                        None => Inventory::Vagrant {
                            groups: groups.clone(),
                        },
                    },
                    extra_vars: extra_vars.clone(),
                    origin: format!("{file}:{line}"),
                },
                Provisioner::Shell {
                    path,
                    inline,
                    args,
                    line,
                } => Action::Shell {
                    machine: m.name.clone(),
                    path: path.as_ref().map(PathBuf::from),
                    inline: inline.clone(),
                    args: args.clone(),
                    origin: format!("{file}:{line}"),
                },
                Provisioner::Other { kind, line } => bail!(
                    "{}:{line}: machine {}: a {kind:?} provisioner; pglab runs ansible, ansible_local and shell provisioners",
                    dir.join(&*file).display(),
                    m.name
                ),
            });
        }
    }
    Ok(out)
}

/// Playbooks run by hand (README, `provision.toml`), after Vagrant's provisioners.
pub(super) fn manual_playbooks(
    dir: &Path,
    hints: &Hints,
    vagrant: &[Action],
) -> Result<Vec<Action>> {
    let (playbooks, origin, readme_inv) = match &hints.playbooks {
        Some(p) => (p.clone(), "provision.toml".to_string(), None),
        None => {
            if vagrant.iter().any(|a| matches!(a, Action::Playbook { .. })) {
                return Ok(Vec::new());
            }
            let (from_readme, inv) = readme_playbooks(dir);
            if !from_readme.is_empty() {
                (from_readme, "README".to_string(), inv)
            } else {
                let found = find_playbooks(dir);
                if found.len() > 1 {
                    bail!(
                        "{}: several playbooks ({}) and nothing says their order (no ansible-playbook commands in README)\n  try: provision.toml: playbooks = [{}]",
                        dir.display(),
                        found.join(", "),
                        found.iter().map(|f| format!("{f:?}")).collect::<Vec<_>>().join(", ")
                    );
                }
                (found, "found".to_string(), None)
            }
        }
    };
    if playbooks.is_empty() {
        return Ok(Vec::new());
    }
    let inventory = match hints.inventory.clone().or(readme_inv) {
        Some(i) => Inventory::Static(i.into()),
        None => match find_inventory(dir, Path::new(&playbooks[0])) {
            Some(i) => Inventory::Static(i),
            None => Inventory::Vagrant {
                groups: BTreeMap::new(),
            },
        },
    };
    Ok(playbooks
        .into_iter()
        .map(|p| Action::Playbook {
            playbook: p.into(),
            limit: None,
            inventory: inventory.clone(),
            extra_vars: serde_json::Value::Null,
            origin: origin.clone(),
        })
        .collect())
}

/// `ansible-playbook [-i INV] PLAYBOOK.yml` commands in README*, in order (with `cd DIR &&`).
pub fn readme_playbooks(dir: &Path) -> (Vec<String>, Option<String>) {
    let re = regex::Regex::new(
        r"(?:cd\s+(\S+)\s*&&\s*)?ansible-playbook\s+((?:-{1,2}\S+(?:\s+[^-\s]\S*)?\s+)*)(\S+\.ya?ml)",
    )
    .expect("valid");
    let inv_re = regex::Regex::new(r"(?:-i|--inventory)[ =](\S+)").expect("valid");
    let mut playbooks = Vec::new();
    let mut inventory = None;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return (playbooks, None);
    };
    let mut readmes: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().to_lowercase().starts_with("readme"))
        })
        .collect();
    readmes.sort();
    for r in readmes {
        // Through the door: a README that is a link out, a device or huge is not read.
        let name = r.file_name().map(PathBuf::from).unwrap_or_default();
        let text = crate::sys::tree::read_inside(dir, &name, 1 << 20).unwrap_or_default();
        for c in re.captures_iter(&text) {
            let base = c
                .get(1)
                .map(|m| PathBuf::from(m.as_str()))
                .unwrap_or_default();
            let pb = base.join(&c[3]).to_string_lossy().to_string();
            if let Some(i) = inv_re.captures(&c[2]) {
                inventory.get_or_insert(base.join(&i[1]).to_string_lossy().to_string());
            }
            if dir.join(&pb).exists() && !playbooks.contains(&pb) {
                playbooks.push(pb);
            }
        }
    }
    (playbooks, inventory)
}

/// Playbooks (YAML lists of plays with `hosts:`) where such repositories keep them.
pub fn find_playbooks(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for sub in [
        "",
        "ansible",
        "provisioning",
        "playbooks",
        "ansible/playbooks",
    ] {
        let Ok(entries) = std::fs::read_dir(dir.join(sub)) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        files.sort();
        for f in files {
            let is_yaml = f.extension().is_some_and(|e| e == "yml" || e == "yaml");
            if !is_yaml {
                continue;
            }
            // Through the door: a playbook that is a link out, a FIFO or /dev/zero is not read.
            let rel = Path::new(sub).join(f.file_name().expect("a file"));
            let text = crate::sys::tree::read_inside(dir, &rel, 1 << 20).unwrap_or_default();
            let play = text
                .lines()
                .any(|l| l.trim_start_matches(['-', ' ']).starts_with("hosts:"));
            if is_yaml && play {
                out.push(
                    Path::new(sub)
                        .join(f.file_name().expect("a file"))
                        .to_string_lossy()
                        .to_string(),
                );
            }
        }
    }
    out
}

/// The host patterns the plays of `playbooks` name (`hosts: master, slave` → master, slave),
/// each once, in order.
pub fn play_hosts(dir: &Path, playbooks: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for p in playbooks {
        let text = crate::sys::tree::read_inside(dir, Path::new(p), 1 << 20).unwrap_or_default();
        for l in text.lines() {
            let Some(pat) = l.trim_start_matches(['-', ' ']).strip_prefix("hosts:") else {
                continue;
            };
            for g in pat
                .split([',', ':'])
                .map(|g| g.trim().trim_matches(['"', '\'', '[', ']']))
            {
                if !g.is_empty() && !out.iter().any(|o| o == g) {
                    out.push(g.to_string());
                }
            }
        }
    }
    out
}

/// A static inventory beside the playbook or at the top: `ansible.cfg`'s `inventory`, then
/// the usual names.
pub fn find_inventory(dir: &Path, playbook: &Path) -> Option<PathBuf> {
    let pb_dir = playbook.parent().unwrap_or(Path::new("")).to_path_buf();
    for base in [pb_dir.clone(), PathBuf::new()] {
        let cfg = std::fs::read_to_string(dir.join(&base).join("ansible.cfg")).unwrap_or_default();
        for l in cfg.lines() {
            if let Some((k, v)) = l.split_once('=') {
                if k.trim() == "inventory" && dir.join(&base).join(v.trim()).is_file() {
                    return Some(base.join(v.trim()));
                }
            }
        }
        for name in [
            "inventory/hosts.ini",
            "inventory/hosts",
            "hosts.ini",
            "hosts",
            "inventory.ini",
            "inventory",
        ] {
            if dir.join(&base).join(name).is_file() {
                return Some(base.join(name));
            }
        }
    }
    None
}

fn check_files(dir: &Path, a: &Action) -> Result<()> {
    let (file, origin) = match a {
        Action::Playbook {
            playbook,
            origin,
            inventory,
            ..
        } => {
            if let Inventory::Static(i) = inventory {
                if let Err(why) = crate::sys::tree::within(dir, i) {
                    bail!("{}: inventory {why} (named in {origin})", dir.display());
                }
                if !dir.join(i).is_file() {
                    bail!(
                        "{}: inventory {} (named in {origin}) is not in the repository",
                        dir.display(),
                        i.display()
                    );
                }
            }
            (playbook, origin)
        }
        Action::Shell {
            path: Some(p),
            origin,
            ..
        } => (p, origin),
        Action::Shell { .. } => return Ok(()),
    };
    if let Err(why) = crate::sys::tree::within(dir, file) {
        bail!("{}: {why} (named in {origin})", dir.display());
    }
    if !dir.join(file).is_file() {
        bail!(
            "{}: {} (named in {origin}) is not in the repository",
            dir.display(),
            file.display()
        );
    }
    Ok(())
}

impl RepoPlan {
    /// Where the hosts came from: the Vagrantfile, or the inventory of a repository without.
    fn hosts_from(&self) -> String {
        match self.vagrant.file.file_name() {
            Some(n) if !vagrantfile_read::NAMES.iter().any(|v| n == *v) => {
                format!("the inventory {} (no Vagrantfile)", n.to_string_lossy())
            }
            _ => "the Vagrantfile".into(),
        }
    }

    /// What pglab decided, one line each, printed before it runs.
    pub fn decisions(&self) -> Vec<String> {
        let hosts: Vec<String> = (self.topology.hosts.iter())
            .map(|h| format!("{} {} ({:?})", h.name, h.address, h.roles[0]).to_lowercase())
            .collect();
        let mut out = vec![format!(
            "hosts from {}: {} (subnet {}, pglab's side {})",
            self.hosts_from(),
            hosts.join(", "),
            self.topology.subnet,
            self.topology.gateway
        )];
        if !self.guessed.is_empty() {
            out.push(format!(
                "roles of {} not in their names: provisional (the roles left, in definition order), found after provisioning from what runs where",
                self.guessed.join(", ")
            ));
        }
        out.push(match &self.box_choice {
            BoxChoice::Mapped { from, to } => format!("box {from} → {to}"),
            BoxChoice::NoEquivalent { from } => {
                format!("box {from} → none on nspawn (Red Hat family)")
            }
        });
        for a in &self.actions {
            out.push(match a {
                Action::Playbook {
                    playbook,
                    limit,
                    inventory,
                    origin,
                    ..
                } => format!(
                    "playbook {} on {} ({}), inventory {}",
                    playbook.display(),
                    limit.as_deref().unwrap_or("all"),
                    origin,
                    match inventory {
                        Inventory::Vagrant { .. } => "from the Vagrantfile".to_string(),
                        Inventory::Static(p) => format!(
                            "{} (groups and names kept, pglab's connection settings)",
                            p.display()
                        ),
                    }
                ),
                Action::Shell {
                    machine,
                    path,
                    origin,
                    ..
                } => format!(
                    "shell {} on {machine} ({origin})",
                    path.as_ref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_else(|| "inline".into())
                ),
            });
        }
        out
    }

    /// The pglab box, or the verdict for a box the nspawn backend cannot run.
    pub fn pglab_box(&self) -> Result<String> {
        match &self.box_choice {
            BoxChoice::Mapped { to, .. } => Ok(to.clone()),
            BoxChoice::NoEquivalent { from } => bail!(
                "{}: box {from} is of the Red Hat family, which has no equivalent on pglab's nspawn backend (its boxes are Debian's and PostgreSQL 14 + barman 2)\n  try: box {from} (Red Hat family) runs on the Vagrant backend only, with the submission's own box: PGLAB_BACKEND=vagrant PGLAB_PROVIDER=virtualbox pglab run --homework {} --box {from}",
                crate::sys::paths::shown(&self.vagrant.file),
                crate::sys::paths::shown(&self.dir)
            ),
        }
    }

    /// Machines in order, for the inventory.
    pub fn machines(&self) -> &[Machine] {
        &self.vagrant.machines
    }
}

/// Roles by machine name, from the topology.
pub fn role_of(topo: &Topology, name: &str) -> Option<Role> {
    topo.host(name).and_then(|h| h.roles.first().copied())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(files: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let p = d.path().join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        d
    }

    const THREE: &str = r#"
Vagrant.configure("2") do |config|
  config.vm.box = "ubuntu/jammy64"
  { "master" => "10.20.1.5", "slave" => "10.20.1.6", "backup" => "10.20.1.7" }.each do |n, ip|
    config.vm.define n do |m|
      m.vm.network "private_network", ip: ip
    end
  end
end
"#;

    /// Names that say no role take the roles left, in definition order, and are said to be
    /// provisional.
    #[test]
    fn machines_named_otherwise_get_provisional_roles() {
        let vf = THREE
            .replace("\"master\" =>", "\"vault\" =>")
            .replace("\"backup\" =>", "\"pg-a\" =>");
        let d = repo(&[("Vagrantfile", &vf), ("site.yml", "- hosts: all\n")]);
        let plan = load(d.path()).unwrap();
        let roles: Vec<(&str, Role)> = plan
            .topology
            .hosts
            .iter()
            .map(|h| (h.name.as_str(), h.roles[0]))
            .collect();
        assert_eq!(
            roles,
            [
                ("vault", Role::Primary),
                ("slave", Role::Standby),
                ("pg-a", Role::Backup)
            ]
        );
        assert_eq!(plan.guessed, ["vault", "pg-a"]);
        assert!(plan.decisions()[1].starts_with("roles of vault, pg-a not in their names"));
    }

    #[test]
    fn topology_roles_and_box_from_the_vagrantfile() {
        let d = repo(&[
            ("Vagrantfile", THREE),
            ("ansible/replication.yml", "- hosts: master\n  tasks: []\n"),
            ("ansible/backup.yml", "- hosts: backup\n  tasks: []\n"),
            ("ansible/inventory/hosts.ini", "[master]\nmaster ansible_host=10.20.1.5\n"),
            (
                "README.md",
                "Run:\n\n    cd ansible && ansible-playbook -i inventory/hosts.ini replication.yml\n    cd ansible && ansible-playbook -i inventory/hosts.ini backup.yml\n",
            ),
        ]);
        let plan = load(d.path()).unwrap();
        assert_eq!(plan.topology.subnet, "10.20.1.0/24");
        assert_eq!(plan.topology.gateway, Ipv4Addr::new(10, 20, 1, 1));
        assert_eq!(plan.topology.with_role(Role::Standby).name, "slave");
        assert_eq!(plan.pglab_box().unwrap(), "pg14-barman2");
        let d = plan.decisions();
        assert!(d[1] == "box ubuntu/jammy64 → pg14-barman2", "{d:?}");
        assert_eq!(
            d[2],
            "playbook ansible/replication.yml on all (README), inventory ansible/inventory/hosts.ini (groups and names kept, pglab's connection settings)"
        );
        assert!(d[3].starts_with("playbook ansible/backup.yml"), "{d:?}");
    }

    #[test]
    fn several_playbooks_without_an_order_are_refused_and_provision_toml_gives_it() {
        let files = [
            ("Vagrantfile", THREE),
            ("ansible/b.yml", "- hosts: all\n"),
            ("ansible/a.yml", "- hosts: all\n"),
            ("ansible/hosts", "master\n"),
        ];
        let d = repo(&files);
        let e = load(d.path()).unwrap_err().to_string();
        assert!(
            e.contains("several playbooks (ansible/a.yml, ansible/b.yml)"),
            "{e}"
        );
        std::fs::write(
            d.path().join("provision.toml"),
            "playbooks = [\"ansible/b.yml\", \"ansible/a.yml\"]\nbox = \"bookworm\"\n",
        )
        .unwrap();
        let plan = load(d.path()).unwrap();
        assert_eq!(plan.pglab_box().unwrap(), "bookworm");
        assert!(
            matches!(&plan.actions[0], Action::Playbook { playbook, inventory: Inventory::Static(i), .. } if playbook == Path::new("ansible/b.yml") && i == Path::new("ansible/hosts"))
        );
    }

    #[test]
    fn red_hat_boxes_get_a_verdict_naming_the_vagrant_backend() {
        let d = repo(&[
            ("Vagrantfile", &THREE.replace("ubuntu/jammy64", "centos/7")),
            ("site.yml", "- hosts: all\n"),
        ]);
        let e = load(d.path()).unwrap().pglab_box().unwrap_err().to_string();
        assert!(
            e.contains("Red Hat family")
                && e.contains("PGLAB_BACKEND=vagrant PGLAB_PROVIDER=virtualbox")
                && e.contains("--box centos/7"),
            "{e}"
        );
        assert_eq!(
            map_box("debian/bullseye64"),
            Some(BoxChoice::Mapped {
                from: "debian/bullseye64".into(),
                to: "bullseye".into()
            })
        );
        assert_eq!(
            map_box("debian/bookworm64").unwrap(),
            BoxChoice::Mapped {
                from: "debian/bookworm64".into(),
                to: "bookworm".into()
            }
        );
    }

    #[test]
    fn a_missing_playbook_or_a_machine_without_a_role_left_is_named() {
        let vf = THREE
            .replace("\"backup\" =>", "\"web\" =>")
            .replace("\"slave\" =>", "\"leader\" =>");
        let d = repo(&[("Vagrantfile", &vf), ("site.yml", "- hosts: all\n")]);
        let e = load(d.path()).unwrap_err().to_string();
        assert!(e.contains("the machines do not make a lab"), "{e}");
        let vf = THREE.replace(
            "m.vm.network \"private_network\", ip: ip",
            "m.vm.network \"private_network\", ip: ip\n      m.vm.provision \"ansible\" do |a|\n        a.playbook = \"provision.yml\"\n      end",
        );
        let d = repo(&[("Vagrantfile", &vf)]);
        let e = load(d.path()).unwrap_err().to_string();
        assert!(
            e.contains("provision.yml (named in Vagrantfile:7) is not in the repository"),
            "{e}"
        );
    }
}
