//! Provisioning: a submission's shell steps (`provision.toml` + scripts), run on the hosts
//! whose roles they name, each after the step before it or after the steps it names in
//! `after` (steps whose waits are over run at the same time). The reference solution is
//! `examples/reference`.
//!
//! A submission may name a `base` submission: scripts it does not have are taken from
//! there (broken fixtures are the reference with one file changed).

use crate::backend::shell_quote;
use crate::exec::{failure, scaled};
use crate::lab::Lab;
use crate::runlog::RunLog;
use crate::topology::{Role, Topology};
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    #[serde(default)]
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
fn waits(steps: &[ProvisionStep], file: &Path) -> Result<Vec<Vec<usize>>> {
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
    pub description: String,
    pub steps: Vec<ProvisionStep>,
    pub resume: Vec<ProvisionStep>,
    /// From `[commands]`, the submission's own first, then its base's.
    pub commands: BTreeMap<String, String>,
    /// The submission's playbook (relative to `dir`): Ansible instead of `steps`.
    pub playbook: Option<String>,
    search: Vec<PathBuf>,
}

pub fn reference_dir() -> PathBuf {
    crate::paths::repo_root().join("examples/reference")
}

impl Submission {
    pub fn load(dir: &Path) -> Result<Submission> {
        let mut search = Vec::new();
        let mut steps = None;
        let mut resume = Vec::new();
        let mut description = String::new();
        let mut commands = BTreeMap::new();
        let mut playbook = None;
        let mut cur = dir.to_path_buf();
        for _ in 0..8 {
            let file = cur.join("provision.toml");
            let text = std::fs::read_to_string(&file).with_context(|| {
                format!(
                    "{} is not a submission: cannot read {}",
                    cur.display(),
                    file.display()
                )
            })?;
            let m: Manifest = toml::from_str(&text)
                .with_context(|| format!("{} is not valid", file.display()))?;
            search.push(cur.clone());
            if description.is_empty() {
                description = m.description.clone();
            }
            if cur == dir {
                playbook = m.playbook.clone();
            }
            if steps.is_none() && !m.step.is_empty() && playbook.is_none() {
                steps = Some(m.step);
            }
            if resume.is_empty() {
                resume = m.resume;
            }
            for (k, v) in m.commands {
                commands.entry(k).or_insert(v);
            }
            match m.base {
                Some(b) => cur = cur.join(b),
                None => break,
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
            description,
            steps,
            resume,
            commands,
            playbook,
            search,
        };
        if let Some(p) = &sub.playbook {
            if !dir.join(p).exists() {
                bail!("submission {}: playbook {p} not found", dir.display());
            }
        }
        for s in sub.steps.iter().chain(&sub.resume) {
            sub.find(&s.script)?;
        }
        let manifest = dir.join("provision.toml");
        waits(&sub.steps, &manifest)?;
        waits(&sub.resume, &manifest)?;
        Ok(sub)
    }

    fn find(&self, file: &str) -> Result<PathBuf> {
        self.search
            .iter()
            .map(|d| d.join(file))
            .find(|p| p.exists())
            .with_context(|| format!("submission {}: script {file} not found", self.dir.display()))
    }

    fn read(&self, file: &str) -> Result<String> {
        let p = self.find(file)?;
        std::fs::read_to_string(&p).with_context(|| format!("cannot read {}", p.display()))
    }

    fn lib(&self) -> String {
        self.find("lib.sh")
            .ok()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default()
    }
}

/// The environment every step sees: who is who in the lab, and the lab's secrets.
pub fn lab_env(topo: &Topology, host: &str) -> Vec<(String, String)> {
    let mut env = vec![("PGLAB_HOST".to_string(), host.to_string())];
    if let Some(h) = topo.host(host) {
        env.push(("PGLAB_ADDR".into(), h.address.to_string()));
    }
    for (role, key) in [
        (Role::Primary, "PRIMARY"),
        (Role::Standby, "STANDBY"),
        (Role::Backup, "BACKUP"),
    ] {
        let h = topo.with_role(role);
        env.push((format!("PGLAB_{key}"), h.name.clone()));
        env.push((format!("PGLAB_{key}_ADDR"), h.address.to_string()));
    }
    let hosts: Vec<String> = topo
        .hosts
        .iter()
        .map(|h| format!("{}={}", h.name, h.address))
        .collect();
    env.push(("PGLAB_HOSTS".into(), hosts.join(" ")));
    env.push(("PGLAB_SUBNET".into(), topo.subnet.clone()));
    env
}

/// `export K='v'` lines; the script travels on stdin, so values never reach a command line.
pub fn env_prelude(env: &[(String, String)]) -> String {
    env.iter()
        .map(|(k, v)| format!("export {k}={}\n", shell_quote(v)))
        .collect()
}

/// What a provisioning run did.
#[derive(Debug, Default)]
pub struct ProvisionReport {
    /// `PGLAB_CHANGED` lines per step and host.
    pub changes: Vec<String>,
    pub duration: Duration,
}

pub fn provision(
    lab: &Lab,
    sub: &Submission,
    log: &RunLog,
    started: Instant,
) -> Result<ProvisionReport> {
    match crate::ansible::playbook_of(sub) {
        Some(playbook) => crate::ansible::provision(lab, sub, &playbook, log, started),
        None => run_steps(lab, sub, &sub.steps, "provision", log, started),
    }
}

/// Runs the submission's `resume` steps (after hosts were restarted from a saved state).
pub fn resume(
    lab: &Lab,
    sub: &Submission,
    log: &RunLog,
    started: Instant,
) -> Result<ProvisionReport> {
    run_steps(lab, sub, &sub.resume, "resume", log, started)
}

fn run_steps(
    lab: &Lab,
    sub: &Submission,
    steps: &[ProvisionStep],
    group: &str,
    log: &RunLog,
    started: Instant,
) -> Result<ProvisionReport> {
    let t0 = Instant::now();
    let waits = waits(steps, &sub.dir.join("provision.toml"))?;
    // What each step exported, together with what the steps it waits for saw: a step sees
    // exactly its ancestors' exports, whatever order concurrent steps finish in.
    let mut exports: Vec<BTreeMap<String, String>> = vec![BTreeMap::new(); steps.len()];
    let mut changes: Vec<Vec<String>> = vec![Vec::new(); steps.len()];
    let mut done = vec![false; steps.len()];
    let mut started_steps = vec![false; steps.len()];
    let mut first_error: Option<anyhow::Error> = None;
    std::thread::scope(|s| -> Result<()> {
        let (tx, rx) = std::sync::mpsc::channel();
        let mut running = 0;
        loop {
            let stopping = first_error.is_some() || crate::cleanup::aborting();
            for i in 0..steps.len() {
                if stopping || started_steps[i] || !waits[i].iter().all(|&w| done[w]) {
                    continue;
                }
                let mut seen = BTreeMap::new();
                for &w in &waits[i] {
                    seen.extend(exports[w].clone());
                }
                let job = StepJob::new(lab, sub, &steps[i], seen.clone(), group, started)?;
                exports[i] = seen;
                started_steps[i] = true;
                running += 1;
                let tx = tx.clone();
                s.spawn(move || {
                    let _ = tx.send((i, job.run(lab)));
                });
            }
            if running == 0 {
                break;
            }
            let (i, outputs) = rx.recv().context("a provisioning thread panicked")?;
            running -= 1;
            match finish_step(sub, &steps[i], i, group, log, outputs) {
                Ok((own_export, step_changes)) => {
                    exports[i].extend(own_export);
                    changes[i] = step_changes;
                    done[i] = true;
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        Ok(())
    })?;
    if let Some(e) = first_error {
        return Err(e);
    }
    if done.iter().any(|d| !d) {
        bail!("interrupted");
    }
    Ok(ProvisionReport {
        changes: changes.into_iter().flatten().collect(),
        duration: t0.elapsed(),
    })
}

/// One step ready to run: its hosts and the script each of them gets.
struct StepJob {
    scripts: Vec<(String, String)>,
}

impl StepJob {
    fn new(
        lab: &Lab,
        sub: &Submission,
        step: &ProvisionStep,
        exports: BTreeMap<String, String>,
        group: &str,
        started: Instant,
    ) -> Result<StepJob> {
        let body = sub.read(&step.script)?;
        let lib = sub.lib();
        let topo = lab.topology();
        let hosts = step_hosts(topo, step);
        crate::progress::say(
            started,
            group,
            &format!("{} [{}] on {}", step.name, step.script, hosts.join(", ")),
        );
        let scripts = hosts
            .into_iter()
            .map(|host| {
                let mut env = lab_env(topo, &host);
                env.extend(lab.secrets.env());
                env.extend(exports.clone());
                let script = format!(
                    "set -euo pipefail\n{}{lib}\n# --- {} ---\n{body}",
                    env_prelude(&env),
                    step.script
                );
                (host, script)
            })
            .collect();
        Ok(StepJob { scripts })
    }

    /// Runs the step on all its hosts at once (they are different machines); results come
    /// back in the topology's order, so logs and exports do not depend on timing.
    fn run(&self, lab: &Lab) -> Vec<(String, Result<crate::exec::CmdOutput>)> {
        std::thread::scope(|s| {
            let handles: Vec<_> = self
                .scripts
                .iter()
                .map(|(host, script)| {
                    let out = s.spawn(move || {
                        lab.exec(host, "root", script, scaled(Duration::from_secs(600)))
                    });
                    (host.clone(), out)
                })
                .collect();
            handles
                .into_iter()
                .map(|(host, h)| {
                    let out = h
                        .join()
                        .unwrap_or_else(|_| bail!("a provisioning thread panicked"));
                    (host, out)
                })
                .collect()
        })
    }
}

fn step_hosts(topo: &Topology, step: &ProvisionStep) -> Vec<String> {
    topo.hosts
        .iter()
        .filter(|h| h.roles.iter().any(|r| step.on.contains(r)))
        .map(|h| h.name.clone())
        .collect()
}

/// Logs a finished step's outputs per host; returns its export and the changes it reported,
/// or the failure of its first failed host.
fn finish_step(
    sub: &Submission,
    step: &ProvisionStep,
    index: usize,
    group: &str,
    log: &RunLog,
    outputs: Vec<(String, Result<crate::exec::CmdOutput>)>,
) -> Result<(BTreeMap<String, String>, Vec<String>)> {
    let mut export = BTreeMap::new();
    let mut changes = Vec::new();
    for (host, out) in outputs {
        let host = host.as_str();
        let out = out?;
        let shown = format!(
            "bash < {} (as root, with lib.sh and the lab's environment; stdin /dev/null inside)",
            step.script
        );
        let path = log.step(group, index + 1, &step.name, host, &shown, &out);
        if !out.ok() {
            return Err(failure(
                &format!("provisioning step {:?} ({}) failed with exit code {}", step.name, step.script, out.code),
                &format!("host {host}, submission {}, log {}", sub.dir.display(), path.display()),
                &shown,
                &log.redact(&out.combined()),
                &log.redact(&crate::script::password_hint(&out.combined()).unwrap_or_else(|| "read the step's log; fix the script and run again (`pglab up` keeps a lab to try it by hand)".into())),
            ));
        }
        for l in out
            .stdout
            .lines()
            .chain(out.stderr.lines())
            .filter(|l| l.starts_with("PGLAB_CHANGED"))
        {
            changes.push(format!(
                "{} on {host}: {}",
                step.script,
                log.redact(l.trim_start_matches("PGLAB_CHANGED").trim())
            ));
        }
        if let Some(var) = &step.export {
            let value = out
                .stdout
                .lines()
                .rfind(|l| !l.starts_with("PGLAB_CHANGED") && !l.trim().is_empty())
                .unwrap_or("");
            export.insert(var.clone(), value.trim().to_string());
        }
    }
    Ok((export, changes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_submission_loads() {
        let s = Submission::load(&reference_dir()).unwrap();
        assert!(s.steps.len() >= 8);
        assert!(s.lib().contains("PG_MAJOR"));
    }

    #[test]
    fn base_supplies_missing_files() {
        let dir = tempfile::tempdir().unwrap();
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

    #[test]
    fn env_names_every_role_and_quotes_values() {
        let t = Topology::default_lab();
        let env = lab_env(&t, "node2");
        let get = |k: &str| env.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str());
        assert_eq!(get("PGLAB_ADDR"), Some("192.168.56.12"));
        assert_eq!(get("PGLAB_BACKUP"), Some("barman"));
        assert_eq!(
            env_prelude(&[("A".into(), "it's".into())]),
            "export A='it'\\''s'\n"
        );
    }
}
