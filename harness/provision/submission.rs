//! A submission: its shell steps (`provision.toml` + scripts) or its playbook, each step on
//! the hosts whose roles it names and after the steps it waits for. The reference solution
//! is `examples/reference`.
//!
//! A submission may name a `base` submission: scripts it does not have are taken from
//! there (broken fixtures are the reference with one file changed).

use super::repo::RepoPlan;
use crate::model::topology::Role;
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    /// For the reader of provision.toml; pglab does not show it.
    #[serde(default)]
    #[allow(dead_code)]
    description: String,
    /// Another submission to take missing files (and, without steps, the steps) from.
    base: Option<PathBuf>,
    #[serde(default)]
    step: Vec<ProvisionStep>,
    /// Steps run after the lab's hosts were restarted from a saved state (`run --isolate`):
    /// what must be started again that nothing starts at boot.
    #[serde(default)]
    resume: Vec<ProvisionStep>,
    /// Commands the scenarios take from the submission (`{{homework_NAME}}`), e.g. `recover`.
    #[serde(default)]
    commands: BTreeMap<String, String>,
    /// An Ansible playbook provisions the lab instead of shell steps.
    playbook: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvisionStep {
    pub name: String,
    pub on: Vec<Role>,
    pub script: String,
    /// The step's last line of stdout becomes this environment variable for the steps that
    /// come after it (those that wait for it, directly or through others).
    pub export: Option<String>,
    /// Names of earlier steps this one waits for. Without it, a step waits for the step
    /// before it; with it, it may run alongside steps it does not wait for.
    pub after: Option<Vec<String>>,
}

/// For each step, the indices of the steps it waits for (all earlier, so never a cycle).
pub(super) fn waits(steps: &[ProvisionStep], file: &Path) -> Result<Vec<Vec<usize>>> {
    let mut out = Vec::with_capacity(steps.len());
    for (i, step) in steps.iter().enumerate() {
        if steps[..i].iter().any(|s| s.name == step.name) {
            bail!(
                "{}: two steps are named {:?} (`after` needs names to be unique)",
                file.display(),
                step.name
            );
        }
        let w = match &step.after {
            None => (i > 0).then(|| i - 1).into_iter().collect(),
            Some(names) => names
                .iter()
                .map(|n| {
                    steps[..i].iter().position(|s| &s.name == n).with_context(|| {
                        format!(
                            "{}: step {:?} waits for {n:?}, which is not an earlier step (earlier: {})",
                            file.display(),
                            step.name,
                            steps[..i].iter().map(|s| format!("{:?}", s.name)).collect::<Vec<_>>().join(", ")
                        )
                    })
                })
                .collect::<Result<Vec<_>>>()?,
        };
        out.push(w);
    }
    Ok(out)
}

/// A loaded submission: its steps and where each file is found.
#[derive(Debug)]
pub struct Submission {
    pub dir: PathBuf,
    pub steps: Vec<ProvisionStep>,
    pub resume: Vec<ProvisionStep>,
    /// From `[commands]`, the submission's own first, then its base's.
    pub commands: BTreeMap<String, String>,
    /// The submission's playbook (relative to `dir`): Ansible instead of `steps`.
    pub playbook: Option<String>,
    /// A repository as it comes (a Vagrantfile): what pglab read from it and decided.
    pub repo: Option<RepoPlan>,
    search: Vec<PathBuf>,
}

pub fn reference_dir() -> PathBuf {
    crate::sys::paths::repo_root().join("examples/reference")
}

/// The largest text file of a submission pglab reads (a provision.toml, a script).
pub const TEXT_MAX: u64 = 1 << 20;

/// Whether `p` (canonical) lies in one of pglab's own folders named `under`.
fn in_pglab(p: &Path, under: &[&str]) -> bool {
    let pglab = crate::sys::paths::repo_root();
    let pglab = pglab.canonicalize().unwrap_or(pglab);
    under.iter().any(|u| p.starts_with(pglab.join(u)))
}

/// Where a `base` may lead: inside the submission itself; and for pglab's own fixtures (in
/// its `examples/`, `tests/fixtures/`, or built under `target/`) to its examples and
/// fixtures (the reference). A graded submission's `base = "../classmate"` would grade a
/// classmate's work as its own, `base = "../../examples/reference"` the reference's: refused,
/// also for students' folders kept inside pglab's checkout (`submissions/`, as the CI
/// workflow clones them).
fn base_of(dir: &Path, cur: &Path, base: &Path) -> Result<PathBuf> {
    let target = cur.join(base);
    let c = target
        .canonicalize()
        .with_context(|| format!("{}: base {base:?} does not exist", cur.display()))?;
    let own = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let fixture = in_pglab(&own, &["examples", "tests/fixtures", "target"]);
    if c.starts_with(&own) || (fixture && in_pglab(&c, &["examples", "tests/fixtures"])) {
        return Ok(target);
    }
    bail!(
        "{}: base {base:?} leads to {}, outside the submission: a submission builds on nothing outside itself (pglab's own fixtures may build on its examples)",
        cur.display(),
        c.display()
    )
}

/// `dir`'s provision.toml and those of its `base` chain (at most 8), nearest first.
fn manifests(dir: &Path) -> Result<Vec<(PathBuf, Manifest)>> {
    let mut chain = Vec::new();
    let mut cur = dir.to_path_buf();
    for _ in 0..8 {
        let file = cur.join("provision.toml");
        let text = crate::sys::tree::read_inside(&cur, Path::new("provision.toml"), TEXT_MAX)
            .with_context(|| format!("{} is not a submission", cur.display()))?;
        let m: Manifest =
            toml::from_str(&text).with_context(|| format!("{} is not valid", file.display()))?;
        let next = match &m.base {
            Some(b) => Some(base_of(dir, &cur, b)?),
            None => None,
        };
        chain.push((cur, m));
        match next {
            Some(b) => cur = b,
            None => break,
        }
    }
    Ok(chain)
}

/// Whether `dir` holds a submission in a form pglab reads: a `provision.toml`, or a
/// repository as students hand it in (a `Vagrantfile`). `pglab grade` asks this to tell a
/// submission from a folder of them; `Submission::load` reads both.
pub fn is_submission(dir: &Path) -> bool {
    dir.join("provision.toml").is_file() || super::inventory_repo::is_repository(dir)
}

/// Files a submission's content is made of: every file under `dir`, relative, sorted;
/// version-control and Vagrant state are not content.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            let name = e.file_name();
            if matches!(name.to_str(), Some(".git" | ".vagrant")) {
                continue;
            }
            match e.file_type() {
                Ok(t) if t.is_dir() => todo.push(p),
                // Symlinks count by where they point (never followed: one leading outside
                // would bring a host file into the hash).
                Ok(t) if t.is_file() || t.is_symlink() => out.push(p),
                _ => {}
            }
        }
    }
    out.sort();
    out
}

impl Submission {
    /// A hash of everything the submission is made of: its files and those of its `base`
    /// chain (a fixture changes when the reference it builds on does), names and contents.
    pub fn content_hash(&self) -> Result<String> {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for dir in &self.search {
            for f in files_under(dir) {
                let rel = f.strip_prefix(dir).unwrap_or(&f);
                h.update(rel.to_string_lossy().as_bytes());
                h.update([0]);
                let bytes = match std::fs::read_link(&f) {
                    Ok(target) => format!("symlink -> {}", target.display()).into_bytes(),
                    Err(_) => {
                        std::fs::read(&f).with_context(|| format!("cannot read {}", f.display()))?
                    }
                };
                h.update((bytes.len() as u64).to_le_bytes());
                h.update(&bytes);
            }
            h.update([1]);
        }
        Ok(hex::encode(h.finalize()))
    }

    /// Whether a folder it is read from lies outside its own: a `base` into pglab's examples,
    /// which only pglab's own fixtures may have.
    pub fn reads_outside(&self) -> bool {
        let canon = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
        let own = canon(&self.dir);
        self.search.iter().any(|d| !canon(d).starts_with(&own))
    }

    /// Loads the submission in `dir` with what its `base` chain supplies, and checks that
    /// every script exists and every step's waits make sense.
    pub fn load(dir: &Path) -> Result<Submission> {
        if super::inventory_repo::is_repository(dir) {
            return Submission::from_repo(super::inventory_repo::load_any(dir)?);
        }
        let chain = manifests(dir)?;
        // The playbook is the submission's own; steps, resume steps and commands may come
        // from its bases (the first that has them).
        let playbook = chain[0].1.playbook.clone();
        let mut steps = None;
        let mut resume = Vec::new();
        let mut commands = BTreeMap::new();
        for (_, m) in chain.iter() {
            if steps.is_none() && !m.step.is_empty() && playbook.is_none() {
                steps = Some(m.step.clone());
            }
            if resume.is_empty() {
                resume = m.resume.clone();
            }
            for (k, v) in &m.commands {
                commands.entry(k.clone()).or_insert(v.clone());
            }
        }
        let steps = match (&playbook, steps) {
            (Some(_), _) => Vec::new(),
            (None, Some(s)) => s,
            (None, None) => bail!(
                "{}: provision.toml has neither [[step]]s nor a playbook",
                dir.display()
            ),
        };
        let sub = Submission {
            dir: dir.into(),
            steps,
            resume,
            commands,
            playbook,
            repo: None,
            search: chain.into_iter().map(|(d, _)| d).collect(),
        };
        sub.check()?;
        Ok(sub)
    }

    /// The playbook and every script exist; every step waits only for earlier steps.
    fn check(&self) -> Result<()> {
        if let Some(p) = &self.playbook {
            // Through the door: whether a path outside exists is nothing the verdict says.
            match crate::sys::tree::within(&self.dir, Path::new(p)) {
                Err(why) => bail!("submission {}: playbook {why}", self.dir.display()),
                Ok(f) if !f.is_file() => {
                    bail!("submission {}: playbook {p} not found", self.dir.display())
                }
                Ok(_) => {}
            }
        }
        for s in self.steps.iter().chain(&self.resume) {
            self.find(&s.script)?;
        }
        let manifest = self.dir.join("provision.toml");
        waits(&self.steps, &manifest)?;
        waits(&self.resume, &manifest)?;
        Ok(())
    }

    /// A submission read from a repository: the reference's resume steps, and its
    /// `[commands]` where the repository's provision.toml has none (`recover` with the
    /// submission's names, found after provisioning).
    pub(super) fn from_repo(plan: RepoPlan) -> Result<Submission> {
        let reference = Submission::load(&reference_dir())?;
        let mut commands = plan.hints_commands.clone();
        commands.entry("recover".into()).or_insert_with(|| {
            "recover --remote-ssh-command 'ssh postgres@{{primary}}' --target-name pglab_before_drop --target-action promote {{barman_server}} {{backup_id}} /var/lib/postgresql/{{major}}/main".into()
        });
        for (k, v) in reference.commands {
            commands.entry(k).or_insert(v);
        }
        Ok(Submission {
            dir: plan.dir.clone(),
            steps: Vec::new(),
            resume: reference.resume,
            commands,
            playbook: None,
            search: vec![plan.dir.clone()],
            repo: Some(plan),
        })
    }

    /// The folder of the chain that holds `file` (a path that leaves it is refused).
    fn holder(&self, file: &str) -> Result<&Path> {
        for d in &self.search {
            match crate::sys::tree::within(d, Path::new(file)) {
                Ok(p) if p.exists() => return Ok(d),
                Ok(_) => {}
                Err(why) => bail!("submission {}: {why}", self.dir.display()),
            }
        }
        bail!("submission {}: script {file} not found", self.dir.display())
    }

    pub(super) fn find(&self, file: &str) -> Result<PathBuf> {
        Ok(self.holder(file)?.join(file))
    }

    pub(super) fn read(&self, file: &str) -> Result<String> {
        crate::sys::tree::read_inside(self.holder(file)?, Path::new(file), TEXT_MAX)
    }

    pub(super) fn lib(&self) -> String {
        self.find("lib.sh")
            .ok()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default()
    }
}

/// What a provisioning run did.
#[derive(Debug, Default)]
pub struct ProvisionReport {
    /// `PGLAB_CHANGED` lines per step and host.
    pub changes: Vec<String>,
    pub duration: Duration,
}

/// What provisioning does once a step (or a repository's provisioner) failed. Either way the
/// first failure is the verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Steps that do not wait for the failed one still run; those that do are not run
    /// (`pglab run`: what follows a failure would fail for its sake).
    SkipDependents,
    /// Everything runs, in order (`pglab grade`: a broken standby must not hide a working
    /// barman, so the row shows everything that works).
    RunEverything,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::topology::Role;

    #[test]
    fn reference_submission_loads() {
        let s = Submission::load(&reference_dir()).unwrap();
        assert!(s.steps.len() >= 8);
        assert!(s.lib().contains("PG_MAJOR"));
    }

    /// A fixture of pglab's own (inside its tree) may build on the reference.
    fn fixture_dir() -> tempfile::TempDir {
        let target = crate::sys::paths::repo_root().join("target");
        std::fs::create_dir_all(&target).unwrap();
        tempfile::tempdir_in(target).unwrap()
    }

    /// A graded submission's `base` that leaves it (a classmate's folder, pglab's reference)
    /// is refused: it would grade someone else's work as its own.
    #[test]
    fn a_base_outside_the_submission_is_refused() {
        let cohort = tempfile::tempdir().unwrap();
        for (name, base) in [
            ("alice", "../bob".to_string()),
            ("carol", reference_dir().display().to_string()),
        ] {
            let d = cohort.path().join(name);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("provision.toml"), format!("base = {base:?}\n")).unwrap();
        }
        std::fs::create_dir_all(cohort.path().join("bob")).unwrap();
        std::fs::write(
            cohort.path().join("bob/provision.toml"),
            "description = 'x'\n",
        )
        .unwrap();
        for name in ["alice", "carol"] {
            let e = Submission::load(&cohort.path().join(name))
                .unwrap_err()
                .to_string();
            assert!(e.contains("outside the submission"), "{name}: {e}");
        }
        let inside = cohort.path().join("bob/own");
        std::fs::create_dir_all(&inside).unwrap();
        std::fs::write(inside.join("provision.toml"), "base = '..'\n").unwrap();
        assert!(
            manifests(&inside).is_err(),
            "a base above the submission leaves it too"
        );
    }

    /// A student's folder inside pglab's checkout (the CI workflow clones them into
    /// `submissions/`) may not build on pglab's reference: it would pass with no work.
    #[test]
    fn a_folder_in_pglabs_checkout_builds_on_nothing_outside_itself() {
        let root = crate::sys::paths::repo_root();
        let cohort = tempfile::Builder::new()
            .prefix(".submissions-")
            .tempdir_in(&root)
            .unwrap();
        let d = cohort.path().join("mallory");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("provision.toml"),
            "base = \"../../examples/reference\"\n",
        )
        .unwrap();
        let e = Submission::load(&d).unwrap_err().to_string();
        assert!(e.contains("outside the submission"), "{e}");
        // pglab's own fixture next to it still builds on the reference.
        assert!(Submission::load(&root.join("tests/fixtures/no-slot")).is_ok());
    }

    /// A symlink counts in the content hash by where it points, never by what it points to.
    #[test]
    fn symlinks_count_by_their_target_name() {
        let hash_with = |target: &str| {
            let d = fixture_dir();
            std::fs::write(
                d.path().join("provision.toml"),
                format!("base = {:?}\n", reference_dir().display().to_string()),
            )
            .unwrap();
            std::os::unix::fs::symlink(target, d.path().join("notes")).unwrap();
            Submission::load(d.path()).unwrap().content_hash().unwrap()
        };
        assert_ne!(hash_with("/dev/zero"), hash_with("/etc/machine-id"));
    }

    #[test]
    fn base_supplies_missing_files() {
        let dir = fixture_dir();
        std::fs::write(
            dir.path().join("provision.toml"),
            format!("base = {:?}\n", reference_dir().display().to_string()),
        )
        .unwrap();
        std::fs::write(dir.path().join("30-standby.sh"), "echo broken\n").unwrap();
        let s = Submission::load(dir.path()).unwrap();
        assert_eq!(s.read("30-standby.sh").unwrap(), "echo broken\n");
        assert!(s.read("10-postgresql.sh").unwrap().contains("wal_level"));
    }

    fn step(name: &str, after: Option<&[&str]>) -> ProvisionStep {
        ProvisionStep {
            name: name.into(),
            on: vec![Role::Primary],
            script: "x.sh".into(),
            export: None,
            after: after.map(|a| a.iter().map(|s| s.to_string()).collect()),
        }
    }

    #[test]
    fn a_step_waits_for_the_one_before_it_or_for_the_ones_it_names() {
        let f = Path::new("provision.toml");
        let steps = [
            step("a", None),
            step("b", None),
            step("c", Some(&["a"])),
            step("d", None),
            step("e", Some(&["b", "d"])),
            step("f", Some(&[])),
        ];
        let w = waits(&steps, f).unwrap();
        assert_eq!(
            w,
            vec![vec![], vec![0], vec![0], vec![2], vec![1, 3], vec![]]
        );
    }

    #[test]
    fn after_must_name_an_earlier_step_and_names_must_be_unique() {
        let f = Path::new("provision.toml");
        let e = waits(&[step("a", Some(&["b"])), step("b", None)], f).unwrap_err();
        assert!(
            e.to_string()
                .contains("waits for \"b\", which is not an earlier step"),
            "{e}"
        );
        let e = waits(&[step("a", None), step("a", None)], f).unwrap_err();
        assert!(e.to_string().contains("two steps are named \"a\""), "{e}");
    }

    #[test]
    fn the_reference_runs_its_ssh_steps_alongside_the_standby() {
        let s = Submission::load(&reference_dir()).unwrap();
        let w = waits(&s.steps, Path::new("provision.toml")).unwrap();
        let idx = |n: &str| s.steps.iter().position(|x| x.name == n).unwrap();
        let ssh = idx("barman ssh key");
        let standby = idx("standby cloned through its own slot");
        // The ssh chain does not reach the standby step through its waits.
        let mut seen = vec![ssh];
        while let Some(i) = seen.pop() {
            assert_ne!(i, standby);
            seen.extend(&w[i]);
        }
    }
}
