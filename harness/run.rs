//! `pglab run`: box, up, provision, scenarios, down, with progress, a summary and a report.

use crate::lab::{Lab, LabState, UpOptions};
use crate::provision::{provision, resume, Submission};
use crate::runlog::RunLog;
use crate::scenario::runner::{Runner, Status, StepOutcome};
use crate::scenario::spec::{self, Scenario, PROVISIONED};
use crate::topology::{Role, Topology};
use anyhow::{bail, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Destroy {
    /// Remove the lab whatever happened.
    Always,
    /// Remove it when everything passed; keep a failed lab for inspection.
    Passing,
    /// Keep it (same as --keep).
    Never,
}

pub struct RunOptions {
    pub box_name: String,
    pub topology: Topology,
    /// Scenario names; empty: all, in the order of their states.
    pub scenarios: Vec<String>,
    /// A submission directory; None: the reference solution.
    pub homework: Option<PathBuf>,
    pub destroy: Destroy,
    /// Each requested scenario starts from a saved copy of the state it requires
    /// (every state is saved once, when first reached) instead of from the state the
    /// previous scenario left.
    pub isolate: bool,
    /// The CLI takes it from PGLAB_BACKEND / PGLAB_PROVIDER; the library's default is nspawn.
    pub backend: crate::lab::BackendChoice,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            box_name: "bookworm".into(),
            topology: Topology::default_lab(),
            scenarios: vec![],
            homework: None,
            destroy: Destroy::Always,
            isolate: false,
            backend: crate::lab::BackendChoice::Nspawn,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct RunReport {
    pub lab: String,
    pub box_name: String,
    pub passed: bool,
    /// (phase, seconds): box+up, provision, each scenario, down.
    pub phases: Vec<(String, f64)>,
    pub checks: Vec<StepOutcome>,
    pub provision_changes: Vec<String>,
    pub log_dir: PathBuf,
    pub kept: bool,
}

/// Loads and checks the scenarios to run, and the submission, before anything starts.
/// What a run will do, checked before any lab exists.
pub struct Prepared {
    pub all: Vec<Scenario>,
    /// The scenarios asked for, in order.
    pub requested: Vec<Scenario>,
    /// `requested` with the scenarios leading to each one's state, run in one line.
    pub planned: Vec<Scenario>,
    pub submission: Submission,
}

/// The requested scenarios (all, by default) split into `parts` groups of neighbours in
/// their default order, for labs running side by side (`run --jobs`). Each lab runs what its
/// group needs first (a group starting at `recover` also runs replicate, backup and drop).
pub fn spread(opts: &RunOptions, parts: usize) -> Result<Vec<Vec<String>>> {
    let names: Vec<String> = prepare(opts)?
        .requested
        .iter()
        .map(|s| s.name.clone())
        .collect();
    let parts = parts.clamp(1, names.len().max(1));
    let size = names.len().div_ceil(parts);
    Ok(names.chunks(size.max(1)).map(|c| c.to_vec()).collect())
}

pub fn prepare(opts: &RunOptions) -> Result<Prepared> {
    let all = spec::load_dir(&spec::scenarios_dir(), &opts.topology)?;
    for name in &opts.scenarios {
        if !all.iter().any(|s| &s.name == name) {
            bail!(
                "no scenario {name:?}; known: {}",
                all.iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    let requested: Vec<&Scenario> = if opts.scenarios.is_empty() {
        spec::default_order(&all)
    } else {
        opts.scenarios
            .iter()
            .map(|n| all.iter().find(|s| &s.name == n).expect("checked"))
            .collect()
    };
    // Isolated, every scenario starts from its own state: each must be reachable alone.
    let planned: Vec<Scenario> = if opts.isolate {
        let mut p = Vec::new();
        for sc in &requested {
            p.extend(spec::plan(&[*sc], &all, PROVISIONED)?.into_iter().cloned());
        }
        p
    } else {
        spec::plan(&requested, &all, PROVISIONED)?
            .into_iter()
            .cloned()
            .collect()
    };
    let requested: Vec<Scenario> = requested.into_iter().cloned().collect();
    let sub = Submission::load(
        &opts
            .homework
            .clone()
            .unwrap_or_else(crate::provision::reference_dir),
    )?;
    Ok(Prepared {
        all,
        requested,
        planned,
        submission: sub,
    })
}

pub fn run(opts: &RunOptions) -> Result<RunReport> {
    let started = Instant::now();
    let prepared = prepare(opts)?;
    let (planned, sub) = (&prepared.planned, &prepared.submission);
    crate::progress::say(
        started,
        "plan",
        &format!(
            "scenarios: {}",
            planned
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(" → ")
        ),
    );
    let mut phases = Vec::new();
    let t = Instant::now();
    let mut lab = Lab::up(UpOptions {
        box_name: opts.box_name.clone(),
        topology: opts.topology.clone(),
        backend: opts.backend,
    })?;
    phases.push(("up".to_string(), t.elapsed().as_secs_f64()));
    let log = RunLog::create(
        &format!("{}-{}", chrono_like_stamp(), lab.id()),
        &lab.secrets,
    )?;
    crate::progress::say(started, "run", &format!("logs in {}", log.dir.display()));
    let mut checks = Vec::new();
    let mut changes = Vec::new();

    let t = Instant::now();
    let provisioned = provision(&lab, sub, &log, started);
    phases.push(("provision".into(), t.elapsed().as_secs_f64()));
    let mut ok = match provisioned {
        Ok(r) => {
            changes = r.changes;
            true
        }
        Err(e) => {
            let msg = log.redact(&format!("{e:#}"));
            eprintln!("{msg}");
            checks.push(StepOutcome {
                scenario: "provision".into(),
                step: "provisioning".into(),
                host: "".into(),
                location: sub.dir.join("provision.toml").display().to_string(),
                status: Status::Failed,
                duration_secs: t.elapsed().as_secs_f64(),
                message: msg,
            });
            false
        }
    };
    if ok {
        let mut state = LabState {
            state: Some(PROVISIONED.into()),
            ..Default::default()
        };
        // Facts found on the hosts, for `{{major}}` and `{{barman}}` in specs. barman's output
        // changed between versions (3.13 shows the backup type): its snapshots carry its version.
        let facts = [
            (
                "major",
                Role::Primary,
                "ls /usr/lib/postgresql | sort -n | tail -1",
            ),
            (
                "barman",
                Role::Backup,
                "barman --version 2>&1 | head -1 | cut -d' ' -f1 | cut -d. -f1,2",
            ),
        ];
        for (var, role, probe) in facts {
            let host = lab.topology().with_role(role).name.clone();
            let out = lab.exec(&host, "root", probe, Duration::from_secs(30))?;
            state.vars.insert(var.into(), out.stdout.trim().to_string());
        }
        for (k, v) in &sub.commands {
            state.vars.insert(format!("homework_{k}"), v.clone());
        }
        let mut runner = Runner::new(&lab, &log, started, state.vars.clone());
        let mut saved: BTreeMap<String, LabState> = BTreeMap::new();
        let mut phase = |name: String, t: Instant| phases.push((name, t.elapsed().as_secs_f64()));
        if opts.isolate {
            let t = Instant::now();
            lab.backend().save(PROVISIONED)?;
            resume(&lab, sub, &log, started)?;
            saved.insert(PROVISIONED.into(), state.clone());
            phase(format!("save {PROVISIONED}"), t);
        }
        // One line of scenarios, or (isolated) one line per requested scenario.
        let lines: Vec<Vec<&Scenario>> = if opts.isolate {
            prepared.requested.iter().map(|sc| vec![sc]).collect()
        } else {
            vec![planned.iter().collect()]
        };
        for line in lines {
            if ok && opts.isolate {
                let wanted = &line[0].requires;
                if state.state.as_ref() != Some(wanted) {
                    if let Some(st) = saved.get(wanted) {
                        let t = Instant::now();
                        crate::progress::say(
                            started,
                            "run",
                            &format!("restoring the lab to state {wanted:?}"),
                        );
                        lab.backend().restore(wanted)?;
                        resume(&lab, sub, &log, started)?;
                        state = st.clone();
                        runner.vars = st.vars.clone();
                        phase(format!("restore {wanted}"), t);
                    }
                }
            }
            let current = state.state.clone().unwrap_or_default();
            let chain: Vec<&Scenario> = if opts.isolate {
                spec::plan(&line, &prepared.all, &current)?
            } else {
                line
            };
            for sc in chain {
                if !ok {
                    checks.extend(sc.steps.iter().map(|st| {
                        StepOutcome::skipped(sc, st, "skipped: an earlier scenario failed")
                    }));
                    continue;
                }
                if let Some(reason) = sc.needs.as_ref().and_then(|n| n.unmet(&runner.vars)) {
                    // Declared in the scenario file; such a scenario keeps the lab's state.
                    crate::progress::say(
                        started,
                        "run",
                        &format!("scenario {}: SKIPPED: {reason}", sc.name),
                    );
                    let msg = format!("{SKIPPED_BY_NEED}{reason}");
                    checks.extend(sc.steps.iter().map(|st| StepOutcome::skipped(sc, st, &msg)));
                    continue;
                }
                crate::progress::say(
                    started,
                    "run",
                    &format!("scenario {}: {}", sc.name, sc.description),
                );
                let t = Instant::now();
                let outcomes = runner.run(sc);
                phase(format!("scenario {}", sc.name), t);
                ok = outcomes.iter().all(|o| o.status == Status::Passed);
                checks.extend(outcomes);
                if ok {
                    state.state = Some(sc.provides.clone());
                    state.vars = runner.vars.clone();
                    lab.save_state(&state)?;
                    if opts.isolate
                        && sc.provides != sc.requires
                        && !saved.contains_key(&sc.provides)
                    {
                        let t = Instant::now();
                        lab.backend().save(&sc.provides)?;
                        resume(&lab, sub, &log, started)?;
                        saved.insert(sc.provides.clone(), state.clone());
                        phase(format!("save {}", sc.provides), t);
                    }
                }
            }
        }
    }

    let keep = match opts.destroy {
        Destroy::Always => false,
        Destroy::Passing => !ok,
        Destroy::Never => true,
    };
    let lab_id = lab.id().to_string();
    if keep {
        lab.keep()?;
        eprintln!("{}", lab.how_to_enter());
    } else {
        let t = Instant::now();
        lab.down()?;
        phases.push(("down".into(), t.elapsed().as_secs_f64()));
    }
    phases.push(("total".into(), started.elapsed().as_secs_f64()));
    let report = RunReport {
        lab: lab_id,
        box_name: opts.box_name.clone(),
        passed: ok,
        phases,
        checks,
        provision_changes: changes,
        log_dir: log.dir.clone(),
        kept: keep,
    };
    log.write("report.json", &serde_json::to_string_pretty(&report)?);
    Ok(report)
}

fn chrono_like_stamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("run-{secs}")
}

/// How the steps of a scenario skipped for its declared versions start their message.
pub const SKIPPED_BY_NEED: &str = "SKIPPED (declared in the scenario file): ";

/// The summary table printed at the end of a run.
pub fn summary(r: &RunReport) -> String {
    let mut s = format!("\nbox {} (lab {})", r.box_name, r.lab);
    s.push_str(&format!(
        "\n{:<22} {:>7} {:>9}  {}\n",
        "scenario", "steps", "time", "result"
    ));
    let mut names: Vec<&str> = Vec::new();
    for c in &r.checks {
        if !names.contains(&c.scenario.as_str()) {
            names.push(&c.scenario);
        }
    }
    for n in names {
        let cs: Vec<&StepOutcome> = r.checks.iter().filter(|c| c.scenario == n).collect();
        let passed = cs.iter().filter(|c| c.status == Status::Passed).count();
        let secs: f64 = cs.iter().map(|c| c.duration_secs).sum();
        let result = if cs.iter().any(|c| c.status == Status::Failed) {
            "FAILED"
        } else if cs.iter().all(|c| c.message.starts_with(SKIPPED_BY_NEED)) {
            "SKIPPED"
        } else if passed == cs.len() {
            "passed"
        } else {
            "skipped"
        };
        s.push_str(&format!(
            "{n:<22} {:>7} {secs:>8.1}s  {result}\n",
            format!("{passed}/{}", cs.len())
        ));
    }
    let phases: Vec<String> = r
        .phases
        .iter()
        .map(|(p, t)| format!("{p} {t:.1}s"))
        .collect();
    s.push_str(&format!("phases: {}\n", phases.join(", ")));
    let mut said = Vec::new();
    for c in r
        .checks
        .iter()
        .filter(|c| c.message.starts_with(SKIPPED_BY_NEED))
    {
        if !said.contains(&c.scenario) {
            said.push(c.scenario.clone());
            let reason = &c.message[SKIPPED_BY_NEED.len()..];
            s.push_str(&format!(
                "\nSKIPPED {} ({}): {reason}\n",
                c.scenario,
                c.location
                    .rsplit_once(':')
                    .map_or(c.location.as_str(), |(f, _)| f)
            ));
        }
    }
    for c in r.checks.iter().filter(|c| c.status == Status::Failed) {
        s.push_str(&format!(
            "\nFAILED {} / {} ({}):\n{}\n",
            c.scenario, c.step, c.location, c.message
        ));
    }
    s.push_str(&format!(
        "\nlogs: {}\n{}\n",
        r.log_dir.display(),
        match (r.passed, said.len()) {
            (false, _) => "FAILED".to_string(),
            (true, 0) => "ALL PASSED".to_string(),
            (true, n) => format!(
                "ALL PASSED ({n} scenario(s) SKIPPED for their declared versions, see above)"
            ),
        }
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scenario_skipped_for_its_versions_is_shown_with_its_reason() {
        let outcome = |scenario: &str, status, message: &str| StepOutcome {
            scenario: scenario.into(),
            step: "s".into(),
            host: "node1".into(),
            location: format!("scenarios/{scenario}.toml:7"),
            status,
            duration_secs: if status == Status::Passed { 0.5 } else { 0.0 },
            message: message.into(),
        };
        let reason = "needs PostgreSQL 14 or later (this box has 13): uses X";
        let r = RunReport {
            lab: "abc123".into(),
            box_name: "bullseye".into(),
            passed: true,
            phases: vec![],
            checks: vec![
                outcome("replicate", Status::Passed, ""),
                outcome(
                    "newer",
                    Status::Skipped,
                    &format!("{SKIPPED_BY_NEED}{reason}"),
                ),
                outcome(
                    "newer",
                    Status::Skipped,
                    &format!("{SKIPPED_BY_NEED}{reason}"),
                ),
            ],
            provision_changes: vec![],
            log_dir: "/tmp/x".into(),
            kept: false,
        };
        let s = summary(&r);
        assert!(
            s.contains("newer                      0/2      0.0s  SKIPPED"),
            "{s}"
        );
        assert!(
            s.contains(&format!("SKIPPED newer (scenarios/newer.toml): {reason}")),
            "{s}"
        );
        assert!(s.contains("ALL PASSED (1 scenario(s) SKIPPED"), "{s}");
    }
}
