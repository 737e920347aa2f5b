//! The Ansible controller's sandbox. A student's playbook runs code on the controller too:
//! `delegate_to: localhost`, `local_action`, `connection: local`, lookups (`pipe`, `file`,
//! `env`), templates, and plugins from the repository or its `ansible.cfg`. So the controller
//! is a throwaway sandbox, as AWX runs playbooks in bubblewrap:
//! - a copy of the repository (`/pglab/submission`, writable: playbooks `fetch` into it),
//!   the lab's ssh key and what pglab writes for the run (inventory, extra vars), all owned
//!   by `nobody` and nothing else of this machine but `/usr` and the pinned Ansible, read-only;
//! - `nobody` with no capabilities, its own user, pid, ipc and uts namespaces, an empty /tmp,
//!   no inherited environment; killed with pglab;
//! - the network of the lab only (`Backend::in_lab_network`). nspawn: the lab's network
//!   namespace, which reaches its hosts and pglab's proxies on the lab bridge. Vagrant with
//!   libvirt: a namespace of its own on the management bridge that reaches the VMs only
//!   (`backend::vagrant::controller_net`). VirtualBox forwards its VMs' ssh to this
//!   machine's loopback, so there the controller shares this machine's network: see README.
//!
//! What the controller prints is the student's word: it explains a failure, the scenario
//! checks decide. Results are written by pglab, outside the sandbox.

use crate::backend::SshTarget;
use crate::lab::Lab;
use crate::sys::tree::{chown_tree, copy_tree, NOBODY, REPOSITORY};
use anyhow::{Context, Result};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Where the controller's folder is inside the sandbox.
pub const ROOT: &str = "/pglab";

const BWRAP: &str = "bwrap --unshare-user --unshare-pid --unshare-ipc --unshare-uts \
    --unshare-cgroup-try --die-with-parent --new-session --clearenv --cap-drop ALL \
    --ro-bind /usr /usr --symlink usr/lib /lib --symlink usr/lib64 /lib64 --symlink usr/bin /bin \
    --symlink usr/sbin /sbin --proc /proc --dev /dev --tmpfs /tmp";
const AS_NOBODY: &str = "setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all --";

/// One lab's controller: its folder on this machine and what is bound into the sandbox.
pub struct Controller {
    /// `<lab>/controller` on this machine, seen as `/pglab` inside.
    host_root: PathBuf,
    /// The repository the copy was made of (canonical).
    repo: PathBuf,
    /// The prefix that puts a program in the lab's network.
    network: Vec<String>,
    /// Read-only binds (this machine's path, seen at the same path): the pinned Ansible.
    tools: Vec<PathBuf>,
    /// `<lab>/controller-etc`: the sandbox's passwd and group, which only pglab writes.
    etc: PathBuf,
}

/// The lab's key in the controller's folder.
const KEY: &str = "id_ed25519";

impl Controller {
    /// A fresh controller for `repo` in `lab`: the repository copied, the lab's key handed in.
    pub fn new(lab: &Lab, repo: &Path, tools: &[PathBuf]) -> Result<Controller> {
        let ctl = Controller::in_dir(&lab.dir, lab.backend().in_lab_network(), repo, tools)?;
        let key = lab_key(&lab.dir)?;
        ctl.import(&key, KEY)?;
        ctl.put(
            &format!("{KEY}.pub"),
            &std::fs::read(key.with_extension("pub"))?,
            0o644,
        )?;
        Ok(ctl)
    }

    /// A controller before any lab (to read a repository's inventory): in `dir`, with a
    /// network namespace of its own and nothing in it, and no key.
    pub fn offline(dir: &Path, repo: &Path, tools: &[PathBuf]) -> Result<Controller> {
        let network = ["unshare", "--net", "--"].map(String::from).to_vec();
        Controller::in_dir(dir, network, repo, tools)
    }

    fn in_dir(
        dir: &Path,
        network: Vec<String>,
        repo: &Path,
        tools: &[PathBuf],
    ) -> Result<Controller> {
        let repo = repo
            .canonicalize()
            .with_context(|| format!("cannot read {}", repo.display()))?;
        let host_root = dir.join("controller");
        // The sandbox's /etc/passwd and /etc/group: outside the folder the sandbox writes,
        // so that no playbook can turn them into symlinks for the next sandbox to bind.
        let etc = dir.join("controller-etc");
        for d in [&host_root, &etc] {
            if d.exists() {
                crate::sys::mounts::remove_tree(d)?;
            }
        }
        for d in ["submission", "home", "tmp"] {
            std::fs::create_dir_all(host_root.join(d))?;
        }
        std::fs::create_dir_all(&etc)?;
        copy_tree(&repo, &host_root.join("submission"), &REPOSITORY)?;
        let passwd = format!("ansible:x:{NOBODY}:{NOBODY}:controller:{ROOT}/home:/bin/sh\n");
        std::fs::write(etc.join("passwd"), passwd)?;
        std::fs::write(etc.join("group"), format!("ansible:x:{NOBODY}:\n"))?;
        chown_tree(&host_root, NOBODY)?;
        std::fs::set_permissions(&host_root, std::fs::Permissions::from_mode(0o700))?;
        Ok(Controller {
            host_root,
            etc,
            repo,
            network,
            tools: tools.to_vec(),
        })
    }

    /// The repository the controller holds a copy of.
    pub fn repository(&self) -> &Path {
        &self.repo
    }

    /// Where `path` (in the repository on this machine) is inside the sandbox.
    pub fn inside(&self, path: &Path) -> PathBuf {
        let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        let rel = path.strip_prefix(&self.repo).unwrap_or(&path);
        Path::new(ROOT).join("submission").join(rel)
    }

    /// Writes `name` (a plain file name) into the controller's folder, owned by its user,
    /// `mode`; returns its inside path. That folder is the sandbox's to write: whatever a
    /// playbook left under `name` (a symlink to a file of this machine, a folder) is removed,
    /// and the file is made new without following a link, so pglab (root) never writes
    /// through a path a submission laid.
    pub fn put(&self, name: &str, data: &[u8], mode: u32) -> Result<PathBuf> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        anyhow::ensure!(
            !name.contains('/'),
            "controller file {name:?} is not a plain name"
        );
        let file = self.host_root.join(name);
        match file.symlink_metadata() {
            Ok(m) if m.is_dir() => crate::sys::mounts::remove_tree(&file)?,
            Ok(_) => std::fs::remove_file(&file)?,
            Err(_) => {}
        }
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&file)
            .with_context(|| format!("cannot write {}", file.display()))?;
        f.write_all(data)?;
        std::os::unix::fs::fchown(&f, Some(NOBODY), Some(NOBODY))?;
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        Ok(Path::new(ROOT).join(name))
    }

    /// How the controller reaches `host`: the backend's target with its files (the key, an
    /// ssh config and the identities it names) handed into the sandbox.
    pub fn target(&self, lab: &Lab, host: &str) -> Result<SshTarget> {
        let key = lab_key(&lab.dir)?;
        let mut t = lab.backend().ssh_target(host, &key)?;
        if let Some(k) = &t.key {
            t.key = Some(if *k == key {
                Path::new(ROOT).join(KEY)
            } else {
                self.import(k, &format!("{host}.key"))?
            });
        }
        let mut args = Vec::new();
        let mut it = t.ssh_args.iter();
        while let Some(a) = it.next() {
            args.push(a.clone());
            if a == "-F" {
                if let Some(cfg) = it.next() {
                    args.push(self.import_ssh_config(Path::new(cfg))?);
                }
            }
        }
        t.ssh_args = args;
        Ok(t)
    }

    fn import(&self, file: &Path, name: &str) -> Result<PathBuf> {
        let data =
            std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
        self.put(name, &data, 0o600)
    }

    /// An ssh config (Vagrant's) with each `IdentityFile` copied in and renamed.
    fn import_ssh_config(&self, cfg: &Path) -> Result<String> {
        let text = std::fs::read_to_string(cfg)
            .with_context(|| format!("cannot read {}", cfg.display()))?;
        let mut out = String::new();
        for (i, line) in text.lines().enumerate() {
            let t = line.trim_start();
            match t.strip_prefix("IdentityFile ") {
                Some(f) => {
                    let f = f.trim().trim_matches('"');
                    let inside = self.import(Path::new(f), &format!("identity-{i}"))?;
                    out.push_str(&format!("  IdentityFile {}\n", inside.display()));
                }
                None => {
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
        Ok(self
            .put("ssh_config", out.as_bytes(), 0o600)?
            .to_string_lossy()
            .into())
    }

    /// The command line that runs `program` in the sandbox, in `cwd` (an inside path), with
    /// exactly `env` (plus HOME, PATH and a UTF-8 locale, which Ansible needs).
    pub fn command(&self, program: &[String], cwd: &Path, env: &[(String, String)]) -> Vec<String> {
        let words = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
        let s = |p: &Path| p.to_string_lossy().into_owned();
        let mut argv = self.network.clone();
        if crate::sys::doctor::is_root() {
            argv.extend(words(AS_NOBODY));
        }
        argv.extend(words(BWRAP));
        for t in &self.tools {
            argv.extend(["--ro-bind".into(), s(t), s(t)]);
        }
        argv.extend(["--bind".into(), s(&self.host_root), ROOT.into()]);
        for f in ["passwd", "group"] {
            argv.extend([
                "--ro-bind".into(),
                s(&self.etc.join(f)),
                format!("/etc/{f}"),
            ]);
        }
        let base = [
            ("HOME", format!("{ROOT}/home")),
            ("PATH", "/usr/local/bin:/usr/bin:/bin".into()),
            ("LANG", "C.UTF-8".into()),
            ("LC_ALL", "C.UTF-8".into()),
            ("USER", "ansible".into()),
        ];
        for (k, v) in base
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .chain(env.iter().cloned())
        {
            argv.extend(["--setenv".into(), k, v]);
        }
        argv.extend(["--chdir".into(), s(cwd), "--".into()]);
        argv.extend(program.iter().cloned());
        argv
    }
}

/// The lab's own ssh key pair (for backends whose hosts take it, e.g. nspawn's root).
fn lab_key(dir: &Path) -> Result<PathBuf> {
    let key = dir.join("ansible").join("id_ed25519");
    if !key.exists() {
        std::fs::create_dir_all(key.parent().expect("has parent"))?;
        let argv: Vec<String> = [
            "ssh-keygen",
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "pglab",
            "-f",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([key.to_string_lossy().into()])
        .collect();
        let out = crate::sys::exec::run(&argv, None, std::time::Duration::from_secs(30))?;
        if !out.ok() {
            anyhow::bail!("ssh-keygen failed: {}", out.combined());
        }
    }
    Ok(key)
}
