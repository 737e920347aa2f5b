//! `pglab run`: box, up, provision, scenarios, down, with progress, a summary and a report.

pub mod bench;
pub mod discover;
pub mod homework;
pub mod schedule;

use crate::lab::{Lab, LabState, UpOptions};
use crate::model::topology::{Role, Topology};
use crate::provision::{provision, resume, Submission};
use crate::report::runlog::RunLog;
use crate::scenario::runner::{Runner, Status, StepOutcome};
use crate::scenario::spec::{self, Scenario, PROVISIONED};
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

#[derive(Clone)]
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

pub use crate::report::outcome::RunReport;

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
    crate::sys::progress::say(
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
    if let Some(plan) = &sub.repo {
        for d in plan.decisions() {
            crate::sys::progress::say(started, "homework", &d);
        }
    }
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
    crate::sys::progress::say(started, "run", &format!("logs in {}", log.dir.display()));
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
        state.vars.extend(discover::names(&lab)?);
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
                        crate::sys::progress::say(
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
                        crate::scenario::runner::skipped(
                            sc,
                            st,
                            "skipped: an earlier scenario failed",
                        )
                    }));
                    continue;
                }
                crate::sys::progress::say(
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
