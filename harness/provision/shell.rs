//! Running a submission's shell steps: each after the step before it or after the steps it
//! names in `after` (steps whose waits are over run at the same time), on the hosts whose
//! roles it names, with the lab's environment.

use super::submission::{waits, ProvisionReport, ProvisionStep, Submission};
use crate::backend::shell_quote;
use crate::lab::Lab;
use crate::model::topology::{Role, Topology};
use crate::report::runlog::RunLog;
use crate::sys::exec::{failure, scaled};
use crate::sys::fanout::fan_out;
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

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

/// Steps to run as one group (`provision`, `resume`) and what follows a failure.
pub(super) struct Steps<'a> {
    pub steps: &'a [ProvisionStep],
    pub group: &'a str,
    pub after_failure: super::submission::AfterFailure,
}

pub(super) fn run_steps(
    lab: &Lab,
    sub: &Submission,
    group: &Steps,
    log: &RunLog,
    started: Instant,
) -> Result<ProvisionReport> {
    let t0 = Instant::now();
    let (steps, after_failure) = (group.steps, group.after_failure);
    let group = group.group;
    let waits = waits(steps, &sub.dir.join("provision.toml"))?;
    let mut graph = StepGraph::new(waits, after_failure);
    let mut first_error: Option<anyhow::Error> = None;
    std::thread::scope(|s| -> Result<()> {
        let (tx, rx) = std::sync::mpsc::channel();
        let mut running = 0;
        loop {
            for i in graph.ready() {
                let job = StepJob::new(lab, sub, &steps[i], graph.start(i), group, started)?;
                running += 1;
                let tx = tx.clone();
                let token = crate::sys::cancel::current();
                s.spawn(move || {
                    let out = crate::sys::cancel::with(token, || job.run(lab));
                    let _ = tx.send((i, out));
                });
            }
            if running == 0 {
                break;
            }
            let (i, outputs) = rx.recv().context("a provisioning thread panicked")?;
            running -= 1;
            match finish_step(sub, &steps[i], i, group, log, outputs) {
                Ok((export, changes)) => graph.finish(i, export, changes),
                Err(e) => {
                    graph.fail(i);
                    first_error.get_or_insert(e);
                }
            }
        }
        Ok(())
    })?;
    if let Some(e) = first_error {
        // A step that failed on a server (systemd says only "Job for postgresql@15-main
        // failed"): the servers' own words, PostgreSQL's log, go with it.
        let words = log.redact(&super::server_words::at_failure(lab, &format!("{e:#}")));
        return Err(anyhow::anyhow!("{e:#}{words}"));
    }
    if !graph.all_finished() {
        bail!("interrupted");
    }
    Ok(ProvisionReport {
        changes: graph.changes.into_iter().flatten().collect(),
        duration: t0.elapsed(),
    })
}

/// The steps as a graph of waits: which may start, and what each sees. A step sees exactly
/// its ancestors' exports, whatever order concurrent steps finish in.
struct StepGraph {
    waits: Vec<Vec<usize>>,
    after_failure: super::submission::AfterFailure,
    failed: Vec<bool>,
    /// What each step exported, together with what the steps it waits for saw.
    exports: Vec<BTreeMap<String, String>>,
    changes: Vec<Vec<String>>,
    done: Vec<bool>,
    started: Vec<bool>,
}

impl StepGraph {
    fn new(waits: Vec<Vec<usize>>, after_failure: super::submission::AfterFailure) -> StepGraph {
        let n = waits.len();
        StepGraph {
            waits,
            after_failure,
            failed: vec![false; n],
            exports: vec![BTreeMap::new(); n],
            changes: vec![Vec::new(); n],
            done: vec![false; n],
            started: vec![false; n],
        }
    }

    /// Steps not started whose waits are all done. After a failure the steps that do not
    /// wait for the failed one (directly or through others) still run: a broken standby does
    /// not hide a working barman. Steps that wait for it never become ready, since it is
    /// never `done` — unless everything runs (`AfterFailure::RunEverything`), when a failed
    /// step counts as finished. Nothing starts once pglab is stopping, or once the run is
    /// asked to stop (`cancel`).
    fn ready(&self) -> Vec<usize> {
        if crate::sys::cleanup::aborting() || crate::sys::cancel::stopped().is_some() {
            return Vec::new();
        }
        let everything = self.after_failure == super::submission::AfterFailure::RunEverything;
        let finished = |w: usize| self.done[w] || (everything && self.failed[w]);
        (0..self.waits.len())
            .filter(|&i| !self.started[i] && self.waits[i].iter().all(|&w| finished(w)))
            .collect()
    }

    fn fail(&mut self, i: usize) {
        self.failed[i] = true;
    }

    /// Marks step `i` started; returns what it sees (its ancestors' exports).
    fn start(&mut self, i: usize) -> BTreeMap<String, String> {
        let mut seen = BTreeMap::new();
        for &w in &self.waits[i] {
            seen.extend(self.exports[w].clone());
        }
        self.exports[i] = seen.clone();
        self.started[i] = true;
        seen
    }

    fn finish(&mut self, i: usize, export: BTreeMap<String, String>, changes: Vec<String>) {
        self.exports[i].extend(export);
        self.changes[i] = changes;
        self.done[i] = true;
    }

    /// Every step ran to its end, passed or failed (not stopped by an interrupt).
    fn all_finished(&self) -> bool {
        (0..self.done.len()).all(|i| self.done[i] || self.failed[i])
    }
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
        crate::sys::progress::say(
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
    fn run(&self, lab: &Lab) -> Vec<(String, Result<crate::sys::exec::CmdOutput>)> {
        let outs = fan_out(&self.scripts, "a provisioning step", |(host, script)| {
            lab.exec(host, "root", script, scaled(Duration::from_secs(600)))
        });
        self.scripts
            .iter()
            .map(|(host, _)| host.clone())
            .zip(outs)
            .collect()
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
    outputs: Vec<(String, Result<crate::sys::exec::CmdOutput>)>,
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
                &log.redact(&crate::backend::script::password_hint(&out.combined()).unwrap_or_else(|| "read the step's log; fix the script and run again (`pglab up` keeps a lab to try it by hand)".into())),
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
    use crate::model::topology::Topology;

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

    /// 0 → 1 → 3, 0 → 2: a step sees its ancestors' exports, not a sibling's; a failed step's
    /// descendants never become ready while the others still run.
    #[test]
    fn a_step_sees_its_ancestors_and_a_failure_blocks_only_its_descendants() {
        let export = |k: &str| BTreeMap::from([(k.to_string(), "1".to_string())]);
        let mut g = StepGraph::new(
            vec![vec![], vec![0], vec![0], vec![1]],
            super::super::submission::AfterFailure::SkipDependents,
        );
        assert_eq!(g.ready(), [0]);
        assert!(g.start(0).is_empty());
        assert!(g.ready().is_empty(), "0 runs");
        g.finish(0, export("A"), vec!["a".into()]);
        assert_eq!(g.ready(), [1, 2]);
        assert_eq!(g.start(1).keys().collect::<Vec<_>>(), ["A"]);
        assert_eq!(g.start(2).keys().collect::<Vec<_>>(), ["A"]);
        g.finish(2, export("C"), vec![]);
        assert!(g.ready().is_empty(), "3 waits for 1, which failed or runs");
        g.finish(1, export("B"), vec![]);
        assert_eq!(g.start(3).keys().collect::<Vec<_>>(), ["A", "B"]);
        assert!(!g.all_finished());
        g.finish(3, BTreeMap::new(), vec!["d".into()]);
        assert!(g.all_finished());
        assert_eq!(g.changes.concat(), ["a", "d"]);
    }

    /// 0 → 1: with everything running, a failed step's dependents still start.
    #[test]
    fn running_everything_starts_the_dependents_of_a_failed_step() {
        use super::super::submission::AfterFailure::*;
        for (after, ready) in [(SkipDependents, vec![]), (RunEverything, vec![1])] {
            let mut g = StepGraph::new(vec![vec![], vec![0]], after);
            g.start(0);
            g.fail(0);
            assert_eq!(g.ready(), ready, "{after:?}");
            assert!(!g.all_finished());
        }
    }
}
