//! Reading a student's Vagrantfile as it is: a real Ruby runs it against a stub of
//! `Vagrant.configure` (`vagrantfile_stub.rb`) that records machines, boxes, private-network
//! addresses and provisioners and prints them as JSON. What the stub cannot evaluate is
//! refused with the Vagrantfile's line and what it met.

use crate::sys::exec::{failure, run_with, Setup};
use crate::sys::tree::{copy_tree, CopyRules};
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

const STUB: &str = include_str!("vagrantfile_stub.rb");

/// The names Vagrant looks a Vagrantfile up by, in its order (`Vagrant::Environment`'s
/// `vagrantfile_name`: `Vagrantfile`, then `vagrantfile`); students' repositories use both.
pub const NAMES: [&str; 2] = ["Vagrantfile", "vagrantfile"];

/// The Vagrantfile in `dir`, under either of Vagrant's names.
pub fn find(dir: &Path) -> Option<PathBuf> {
    NAMES
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.symlink_metadata().is_ok())
}

/// One `vm.provision` call, in the order Vagrant runs them.
#[derive(Debug, Clone, PartialEq)]
pub enum Provisioner {
    /// `ansible` (run from the host) or `ansible_local` (run inside the machine): pglab runs
    /// both from its own side, the same way.
    Ansible {
        playbook: String,
        /// `ansible.limit`; Vagrant's default is the machine the provisioner belongs to.
        limit: Option<String>,
        inventory_path: Option<String>,
        /// `ansible.groups`: group → host patterns, `group:vars` → key = value.
        groups: BTreeMap<String, serde_json::Value>,
        extra_vars: serde_json::Value,
        line: usize,
    },
    Shell {
        path: Option<String>,
        inline: Option<String>,
        args: Vec<String>,
        line: usize,
    },
    /// `file`, `docker`, ...: named in the decisions, not run.
    Other { kind: String, line: usize },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Machine {
    pub name: String,
    pub line: usize,
    pub box_name: Option<String>,
    pub hostname: Option<String>,
    /// Private-network addresses, in the order they are declared.
    pub addresses: Vec<Ipv4Addr>,
    /// The global provisioners first, then the machine's own (Vagrant's order).
    pub provisioners: Vec<Provisioner>,
}

/// What a Vagrantfile configures.
#[derive(Debug, Clone, PartialEq)]
pub struct VagrantSpec {
    pub file: PathBuf,
    pub machines: Vec<Machine>,
}

#[derive(Deserialize)]
struct RawOut {
    error: Option<String>,
    line: Option<usize>,
    global: Option<RawVm>,
    #[serde(default)]
    machines: Vec<RawMachine>,
}

#[derive(Deserialize)]
struct RawVm {
    #[serde(rename = "box")]
    box_name: Option<String>,
    #[serde(default)]
    networks: Vec<RawNet>,
    #[serde(default)]
    provisioners: Vec<RawProv>,
}

#[derive(Deserialize)]
struct RawMachine {
    name: String,
    line: Option<usize>,
    #[serde(rename = "box")]
    box_name: Option<String>,
    hostname: Option<String>,
    #[serde(default)]
    networks: Vec<RawNet>,
    #[serde(default)]
    provisioners: Vec<RawProv>,
}

#[derive(Deserialize)]
struct RawNet {
    kind: String,
    ip: Option<String>,
    line: Option<usize>,
}

#[derive(Deserialize)]
struct RawProv {
    kind: String,
    line: Option<usize>,
    settings: serde_json::Map<String, serde_json::Value>,
}

/// The Ruby that runs the stub: Vagrant's own where it ships one, else the system's
/// (installed by pglab's installer when missing, with bubblewrap for the sandbox).
fn ruby() -> Result<PathBuf> {
    crate::sys::doctor::ensure_repository_reader()?;
    for p in ["/opt/vagrant/embedded/bin/ruby", "/usr/bin/ruby"] {
        if Path::new(p).exists() {
            return Ok(p.into());
        }
    }
    which::which("ruby").context("no Ruby to read the Vagrantfile with (package ruby)")
}

/// What the reader's copy of a repository takes: a Vagrantfile reads a few small files
/// beside it (a hosts.yml, a settings file), never more; symlinks are left out.
const COPY: CopyRules = CopyRules {
    file_max: 1 << 20,
    total_max: 32 << 20,
    inner_symlinks: false,
};

/// The command that runs the stub on the copy: bubblewrap with every namespace of its own
/// (no network, no view of other processes), only /usr read-only, the copy read-only at
/// /submission, an empty /tmp, no environment and no capabilities, killed with pglab; run as
/// `nobody` when pglab is root, so even an escape from the namespaces is unprivileged.
/// Measured here: 10 reads of the expect-prompt fixture took 0.55 s in the sandbox against
/// 0.50 s for plain `ruby vagrantfile_stub.rb` (`time` over a shell loop): ~5 ms a read.
pub(crate) const AS_NOBODY: &str =
    "setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all --";
pub(crate) const BWRAP: &str = "bwrap --unshare-all --die-with-parent --new-session --clearenv \
    --cap-drop ALL --ro-bind /usr /usr --symlink usr/lib /lib --symlink usr/lib64 /lib64 \
    --symlink usr/bin /bin --proc /proc --dev /dev --tmpfs /tmp --setenv PATH /usr/bin:/bin \
    --setenv LANG C.UTF-8 --setenv HOME /tmp";

fn sandboxed(ruby: &Path, stub: &Path, copy: &Path, name: &str) -> Vec<String> {
    let words = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
    let mut argv = Vec::new();
    if crate::sys::doctor::is_root() {
        argv.extend(words(AS_NOBODY));
    }
    argv.extend(words(BWRAP));
    if Path::new("/opt/vagrant/embedded").exists() {
        argv.extend(words(
            "--ro-bind /opt/vagrant/embedded /opt/vagrant/embedded",
        ));
    }
    let s = |p: &Path| p.to_string_lossy().into_owned();
    argv.extend([
        "--ro-bind".into(),
        s(stub),
        "/pglab/vagrantfile_stub.rb".into(),
    ]);
    argv.extend(["--ro-bind".into(), s(copy), "/submission".into()]);
    argv.extend(["--chdir".into(), "/submission".into(), s(ruby)]);
    argv.extend([
        "/pglab/vagrantfile_stub.rb".into(),
        format!("/submission/{name}"),
    ]);
    argv
}

/// What was read, by the Vagrantfile's path and the digest of the repository's copy: a
/// repository is read once per pglab process however often it is loaded (its hash, its
/// plan, its roles), and read again only when its content changed.
static READ: std::sync::Mutex<BTreeMap<(PathBuf, String), VagrantSpec>> =
    std::sync::Mutex::new(BTreeMap::new());
/// How many times Ruby ran, per Vagrantfile (for tests).
static RUNS: std::sync::Mutex<BTreeMap<PathBuf, usize>> = std::sync::Mutex::new(BTreeMap::new());

/// How many times the reader ran Ruby on `file` in this process.
pub fn runs_of(file: &Path) -> usize {
    let file = file.canonicalize().unwrap_or_else(|_| file.to_path_buf());
    let runs = RUNS.lock().unwrap_or_else(|e| e.into_inner());
    runs.get(&file).copied().unwrap_or(0)
}

/// Runs `file` through the stub and reads what it configured. The Vagrantfile is a student's
/// Ruby: it runs in a sandbox that sees nothing of this machine (see `sandboxed`).
pub fn read(file: &Path) -> Result<VagrantSpec> {
    if file.symlink_metadata().is_ok_and(|m| !m.is_file()) {
        bail!(
            "{}: not a regular file (a symlink or a device); pglab reads a Vagrantfile that is a file of the repository",
            file.display()
        );
    }
    let file = file
        .canonicalize()
        .with_context(|| format!("cannot read {}", file.display()))?;
    let ruby = ruby()?;
    let work = tempfile::tempdir()?;
    let stub = work.path().join("vagrantfile_stub.rb");
    std::fs::write(&stub, STUB)?;
    let copy = work.path().join("submission");
    std::fs::create_dir(&copy)?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o755))?;
        std::fs::set_permissions(&stub, std::fs::Permissions::from_mode(0o644))?;
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755))?;
    }
    let dir = file.parent().context("a Vagrantfile has a folder")?;
    copy_tree(dir, &copy, &COPY)?;
    let key = (file.clone(), crate::sys::tree::digest(&copy)?);
    if let Some(spec) = READ.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Ok(spec.clone());
    }
    *RUNS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(file.clone())
        .or_default() += 1;
    let name = file
        .file_name()
        .context("a Vagrantfile has a name")?
        .to_string_lossy()
        .into_owned();
    let argv = sandboxed(&ruby, &stub, &copy, &name);
    let shown = format!("ruby vagrantfile_stub.rb {}", file.display());
    let setup = Setup {
        own_group: true,
        ..Default::default()
    };
    let out = run_with(&argv, None, Duration::from_secs(20), &setup)?;
    let raw: RawOut = serde_json::from_str(&out.stdout).map_err(|e| {
        failure(
            &format!("reading the Vagrantfile gave no result ({e})"),
            &file.display().to_string(),
            &shown,
            &out.combined(),
            "run `vagrant validate` on it; pglab reads Vagrantfiles of version 2",
        )
    })?;
    let spec = parse_raw(raw, &file)?;
    READ.lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, spec.clone());
    Ok(spec)
}

fn parse_raw(raw: RawOut, file: &Path) -> Result<VagrantSpec> {
    if let Some(e) = raw.error {
        let at = raw.line.map(|l| format!(":{l}")).unwrap_or_default();
        bail!(
            "{}{at}: pglab cannot read this Vagrantfile: {e}\n  try: a provision.toml beside it can say what pglab needs (see README, \"Grading a repository as it comes\")",
            file.display()
        );
    }
    let global = raw.global.context("the stub printed no global settings")?;
    let global_provs = global
        .provisioners
        .iter()
        .map(|p| provisioner(p, file))
        .collect::<Result<Vec<_>>>()?;
    let mut machines = Vec::new();
    for m in raw.machines {
        let mut provisioners = global_provs.clone();
        for p in &m.provisioners {
            provisioners.push(provisioner(p, file)?);
        }
        let nets = global.networks.iter().chain(&m.networks);
        machines.push(Machine {
            addresses: addresses(nets, file, &m.name)?,
            name: m.name,
            line: m.line.unwrap_or(0),
            box_name: m.box_name.or_else(|| global.box_name.clone()),
            hostname: m.hostname,
            provisioners,
        });
    }
    if machines.is_empty() {
        bail!(
            "{}: defines no machine (`config.vm.define`); pglab needs the primary, the standby and the barman host",
            file.display()
        );
    }
    Ok(VagrantSpec {
        file: file.into(),
        machines,
    })
}

fn addresses<'a>(
    nets: impl Iterator<Item = &'a RawNet>,
    file: &Path,
    machine: &str,
) -> Result<Vec<Ipv4Addr>> {
    let mut out = Vec::new();
    for n in nets.filter(|n| n.kind == "private_network") {
        let at = format!("{}:{}", file.display(), n.line.unwrap_or(0));
        match &n.ip {
            Some(ip) => out.push(ip.parse().with_context(|| {
                format!("{at}: machine {machine}: private network address {ip:?} is not an IPv4 address")
            })?),
            None => bail!(
                "{at}: machine {machine}: a private network without `ip:` (DHCP); pglab needs fixed addresses"
            ),
        }
    }
    Ok(out)
}

fn text(s: &serde_json::Map<String, serde_json::Value>, key: &str) -> Option<String> {
    match s.get(key)? {
        serde_json::Value::String(v) => Some(v.clone()),
        serde_json::Value::Null => None,
        other => Some(other.to_string()),
    }
}

fn provisioner(p: &RawProv, file: &Path) -> Result<Provisioner> {
    let line = p.line.unwrap_or(0);
    let s = &p.settings;
    Ok(match p.kind.as_str() {
        "ansible" | "ansible_local" => Provisioner::Ansible {
            playbook: text(s, "playbook").with_context(|| {
                format!(
                    "{}:{line}: an {} provisioner without `playbook`",
                    file.display(),
                    p.kind
                )
            })?,
            limit: text(s, "limit"),
            inventory_path: text(s, "inventory_path"),
            groups: match s.get("groups") {
                Some(serde_json::Value::Object(g)) => {
                    g.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
                }
                _ => BTreeMap::new(),
            },
            extra_vars: s.get("extra_vars").cloned().unwrap_or_default(),
            line,
        },
        "shell" => Provisioner::Shell {
            path: text(s, "path"),
            inline: text(s, "inline"),
            args: match s.get("args") {
                Some(serde_json::Value::Array(a)) => a
                    .iter()
                    .map(|v| v.as_str().map(String::from).unwrap_or(v.to_string()))
                    .collect(),
                Some(serde_json::Value::String(a)) => {
                    a.split_whitespace().map(String::from).collect()
                }
                _ => Vec::new(),
            },
            line,
        },
        other => Provisioner::Other {
            kind: other.to_string(),
            line,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_text(text: &str) -> Result<VagrantSpec> {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("Vagrantfile");
        std::fs::write(&f, text).unwrap();
        read(&f)
    }

    #[test]
    fn three_machines_with_a_loop_and_an_ansible_provisioner_on_the_last() {
        let spec = read_text(
            r#"
NODES = { "node1" => "192.168.57.11", "node2" => "192.168.57.12", "barman" => "192.168.57.13" }
Vagrant.configure("2") do |config|
  config.vm.box = "ubuntu/jammy64"
  config.vm.provider "virtualbox" do |vb|
    vb.memory = 2048
    vb.customize ["modifyvm", :id, "--natdnshostresolver1", "on"]
  end
  NODES.each_with_index do |(name, ip), i|
    config.vm.define name do |node|
      node.vm.hostname = name
      node.vm.network "private_network", ip: ip
      node.vm.network "forwarded_port", guest: 5432, host: 5432 + i
      if name == "barman"
        node.vm.provision "ansible" do |ansible|
          ansible.playbook = "ansible/provision.yml"
          ansible.limit = "all"
          ansible.groups = { "db" => ["node1", "node2"], "db:vars" => { "pg_version" => 14 } }
          ansible.extra_vars = { "replicator_password" => "secret" }
        end
      end
    end
  end
end
"#,
        )
        .unwrap();
        let names: Vec<_> = spec.machines.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["node1", "node2", "barman"]);
        assert_eq!(
            spec.machines[1].addresses,
            [Ipv4Addr::new(192, 168, 57, 12)]
        );
        assert_eq!(spec.machines[0].box_name.as_deref(), Some("ubuntu/jammy64"));
        assert!(spec.machines[0].provisioners.is_empty());
        let Provisioner::Ansible {
            playbook,
            limit,
            groups,
            extra_vars,
            line,
            ..
        } = &spec.machines[2].provisioners[0]
        else {
            panic!("{:?}", spec.machines[2].provisioners)
        };
        assert_eq!(playbook, "ansible/provision.yml");
        assert_eq!(limit.as_deref(), Some("all"));
        assert_eq!(groups["db"], serde_json::json!(["node1", "node2"]));
        assert_eq!(extra_vars["replicator_password"], "secret");
        assert_eq!(*line, 15);
    }

    #[test]
    fn shell_provisioners_global_first_then_the_machines_own() {
        let spec = read_text(
            r#"
Vagrant.configure("2") do |config|
  config.vm.box = "debian/bookworm64"
  config.vm.provision "shell", inline: "apt-get update"
  config.vm.define "master" do |m|
    m.vm.box = "debian/bullseye64"
    m.vm.network :private_network, ip: "10.0.5.10"
    m.vm.provision :shell, path: "scripts/master.sh", args: ["14", "x"]
  end
  config.vm.define "slave" do |s|
    s.vm.network "private_network", ip: "10.0.5.11"
    s.vm.provision "shell" do |sh|
      sh.inline = <<-SHELL
        echo standby
      SHELL
    end
  end
end
"#,
        )
        .unwrap();
        let m = &spec.machines[0];
        assert_eq!(m.box_name.as_deref(), Some("debian/bullseye64"));
        assert_eq!(
            spec.machines[1].box_name.as_deref(),
            Some("debian/bookworm64")
        );
        assert_eq!(m.provisioners.len(), 2);
        assert!(
            matches!(&m.provisioners[0], Provisioner::Shell { inline: Some(i), .. } if i == "apt-get update")
        );
        assert!(
            matches!(&m.provisioners[1], Provisioner::Shell { path: Some(p), args, .. } if p == "scripts/master.sh" && args == &["14", "x"])
        );
        assert!(
            matches!(&spec.machines[1].provisioners[1], Provisioner::Shell { inline: Some(i), .. } if i.trim() == "echo standby")
        );
    }

    #[test]
    fn what_the_stub_cannot_evaluate_is_refused_with_file_and_line() {
        let e = read_text(
            "Vagrant.configure(\"2\") do |c|\n  c.vm.define \"a\" do |a|\n    a.vm.cloud_init :user_data, content_type: \"text/cloud-config\"\n  end\nend\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains(
                "Vagrantfile:3: pglab cannot read this Vagrantfile: cannot evaluate vm.cloud_init"
            ),
            "{e}"
        );
        let e = read_text("Vagrant.configure(\"2\") do |c|\n  c.vm.define \"a\" do |a|\n")
            .unwrap_err()
            .to_string();
        // Ruby names the line where the input ended.
        assert!(
            e.contains("Vagrantfile:2: pglab cannot read") && e.contains("SyntaxError"),
            "{e}"
        );
        let e = read_text("Vagrant.configure(\"2\") do |c|\n  c.vm.box = File.read('nope')\nend\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("Vagrantfile:2") && e.contains("No such file"),
            "{e}"
        );
    }

    #[test]
    fn dhcp_networks_and_machineless_files_are_refused() {
        let e = read_text(
            "Vagrant.configure(\"2\") do |c|\n  c.vm.define \"a\" do |a|\n    a.vm.network \"private_network\", type: \"dhcp\"\n  end\nend\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("Vagrantfile:3: machine a: a private network without `ip:`"),
            "{e}"
        );
        let e = read_text("Vagrant.configure(\"2\") do |c|\n  c.vm.box = \"x\"\nend\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("defines no machine"), "{e}");
    }
}

#[cfg(test)]
mod hostile {
    use std::path::Path;

    const MARKER: &str = "/tmp/pglab-hostile-vagrantfile-marker";

    /// A Vagrantfile that writes markers (directly, through a shell, through /proc/1/root and
    /// from a child left running), reads a host file and the environment: none of it may reach
    /// this machine, and the machines are still read.
    #[test]
    fn a_vagrantfile_acts_on_nothing_of_the_machine_that_reads_it() {
        let suffixes = ["-file", "-system", "-proc1", "-late"];
        for s in suffixes {
            let _ = std::fs::remove_file(format!("{MARKER}{s}"));
        }
        let file = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/hostile/vagrantfile-escape/Vagrantfile");
        let spec = super::read(&file).expect("the hostile Vagrantfile is still read");
        let names: Vec<_> = spec.machines.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["node1", "node2", "barman"]);
        let shown = spec.machines[0].hostname.clone().unwrap_or_default();
        let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
        assert!(
            shown.starts_with("h-unread-env-none-uid-"),
            "the Vagrantfile saw this machine's hostname {:?} or environment: {shown}",
            host.trim()
        );
        assert!(!shown.ends_with("-uid-0"), "ran as root: {shown}");
        // The child it left would write its marker after 1 s: the sandbox ends with the read.
        std::thread::sleep(std::time::Duration::from_secs(2));
        for s in suffixes {
            let m = format!("{MARKER}{s}");
            assert!(!Path::new(&m).exists(), "{m} was written on this machine");
        }
    }
}
