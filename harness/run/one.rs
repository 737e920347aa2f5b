//! One lab end to end: box, up, provision, scenarios, down (`run`), and what it needs
//! (`prepare`, `RunOptions`, `spread`); re-exported by `run`.

use super::discover;
use crate::lab::{Lab, UpOptions};
use crate::model::phase::Phase;
use crate::model::topology::{Role, Topology};
use crate::provision::{provision_with, resume, AfterFailure, Submission};
use crate::report::runlog::RunLog;
use crate::report::summary::SKIPPED_BY_NEED;
use crate::scenario::runner::{Runner, Status, StepOutcome};
use crate::scenario::spec::{self, Scenario, PROVISIONED};
use crate::sys::progress::RunStage;
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
    pub backend: crate::backend::Kind,
    /// Grading: after a failure (provisioning or a scenario) the later scenarios still run,
    /// so a broken standby does not hide a working backup; the default stops at the first.
    pub keep_going: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            box_name: crate::backend::boxes::DEFAULT_BOX.into(),
            topology: Topology::default_lab(),
            scenarios: vec![],
            homework: None,
            destroy: Destroy::Always,
            isolate: false,
            backend: crate::backend::Kind::Nspawn,
            keep_going: false,
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

/// One lab, end to end: up, provision, the planned scenarios (stopping at the first that
/// fails; the rest are reported skipped), down (or kept), and the report.
/// A failure of pglab itself (its box, its lab, its scenario engine), not a verdict on the
/// submission: `grade` marks such rows and never keeps them at a regrade. Everything a run
/// returns after the submission was validated (`prepare`) carries it.
#[derive(Debug)]
pub struct PglabFailure;

impl std::fmt::Display for PglabFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("pglab could not grade this submission (its own failure, not the submission's)")
    }
}

fn own(e: anyhow::Error) -> anyhow::Error {
    e.context(PglabFailure)
}

#[cfg(test)]
mod own_failure_tests {
    /// pglab's failure is found under any context added later; a submission's is not one.
    #[test]
    fn pglab_failures_are_told_from_the_submissions() {
        let e =
            super::own(anyhow::anyhow!("box bookworm: mmdebstrap failed")).context("grading alice");
        assert!(super::is_own_failure(&e));
        assert!(format!("{e:#}").contains("its own failure, not the submission's"));
        let theirs = anyhow::anyhow!("provision.toml: step \"x\" waits for \"y\"");
        assert!(!super::is_own_failure(&theirs));
    }
}

/// Whether `e` is pglab's own failure (see `PglabFailure`).
pub fn is_own_failure(e: &anyhow::Error) -> bool {
    e.downcast_ref::<PglabFailure>().is_some()
}

pub fn run(opts: &RunOptions) -> Result<RunReport> {
    let started = Instant::now();
    let mut prepared = prepare(opts)?;
    say_plan(started, &prepared);
    let mut phases = Vec::new();
    let mut lab = up(opts, &mut phases)?;
    let log = RunLog::create(
        &format!("{}-{}", chrono_like_stamp(), lab.id()),
        &lab.secrets,
    )?;
    // From here the run's progress lines are also kept with its logs (`progress.log`).
    let _progress_log =
        crate::sys::progress::subscribe(log.progress_reporter(&crate::sys::progress::label()));
    crate::sys::progress::say(started, "run", &format!("logs in {}", log.dir.display()));
    let t = Instant::now();
    crate::sys::progress::stage(RunStage::Provision);
    let after_failure = if opts.keep_going {
        AfterFailure::RunEverything
    } else {
        AfterFailure::SkipDependents
    };
    let provisioned = provision_with(&lab, &prepared.submission, &log, started, after_failure);
    phases.push((Phase::Provision, t.elapsed().as_secs_f64()));
    // A run asked to stop during provisioning goes no further: its lab is removed on the way out.
    crate::sys::cancel::check()?;
    if let Some(again) = settle_roles(opts, &prepared, &mut lab, started) {
        prepared = again;
    }
    let (ok, changes, mut checks) = match provisioned {
        Ok(r) => match programs_changed(&lab, &log, t) {
            None => (true, r.changes, Vec::new()),
            Some(o) => (false, r.changes, vec![o]),
        },
        Err(e) => (
            false,
            vec![],
            vec![provision_failed(&e, &prepared, &log, t)],
        ),
    };
    let ctx = (opts, &prepared, &lab, &log, started);
    let ok = scenarios_after_provisioning(ctx, ok, &mut phases, &mut checks).map_err(own)? && ok;
    let ok = still_believed(&lab, &log, started, &mut checks) && ok;
    let lab_id = lab.id().to_string();
    let kept = finish(opts, lab, ok, &mut phases).map_err(own)?;
    phases.push((Phase::Total, started.elapsed().as_secs_f64()));
    let report = RunReport {
        lab: lab_id,
        box_name: opts.box_name.clone(),
        passed: ok,
        phases,
        checks,
        provision_changes: changes,
        log_dir: log.dir.clone(),
        kept,
    };
    log.write("report.json", &serde_json::to_string_pretty(&report)?);
    Ok(report)
}

/// The scenarios, when provisioning passed or the run keeps going (`keep_going`); a lab
/// whose facts cannot even be read gets every step skipped with the reason.
fn scenarios_after_provisioning(
    (opts, prepared, lab, log, started): (&RunOptions, &Prepared, &Lab, &RunLog, Instant),
    provisioned: bool,
    phases: &mut Vec<(Phase, f64)>,
    checks: &mut Vec<StepOutcome>,
) -> Result<bool> {
    if !provisioned && !opts.keep_going {
        return Ok(false);
    }
    let mut scenarios = match ScenarioRun::start(opts, prepared, lab, log, started) {
        Ok(s) => s,
        Err(e) if !provisioned => {
            let why =
                format!("skipped: the lab cannot be checked after provisioning failed: {e:#}");
            for sc in &prepared.planned {
                checks.extend(
                    sc.steps
                        .iter()
                        .map(|st| crate::scenario::runner::skipped(sc, st, &log.redact(&why))),
                );
            }
            return Ok(false);
        }
        Err(e) => return Err(e),
    };
    scenarios.ok = provisioned;
    let ok = scenarios.all()?;
    phases.append(&mut scenarios.phases);
    checks.append(&mut scenarios.checks);
    Ok(ok)
}

/// A repository whose machine names say no role ran with provisional roles: after
/// provisioning the roles are what runs where, and the scenarios are planned again for them.
/// Returns the new plan when a role changed. Best effort: a probe that fails leaves the
/// provisional roles (and the verdict to the provisioning's own outcome).
fn settle_roles(
    opts: &RunOptions,
    prepared: &Prepared,
    lab: &mut Lab,
    started: Instant,
) -> Option<Prepared> {
    found_roles(opts, prepared, lab, started).unwrap_or_else(|e| {
        crate::sys::progress::say(
            started,
            "homework",
            &format!(
                "roles after provisioning could not be found ({e:#}); the provisional roles stay"
            ),
        );
        None
    })
}

fn found_roles(
    opts: &RunOptions,
    prepared: &Prepared,
    lab: &mut Lab,
    started: Instant,
) -> Result<Option<Prepared>> {
    let Some(plan) = prepared
        .submission
        .repo
        .as_ref()
        .filter(|p| !p.guessed.is_empty())
    else {
        return Ok(None);
    };
    let say = |what: &str| crate::sys::progress::say(started, "homework", what);
    let Some(found) = discover::roles(lab)? else {
        say("roles after provisioning: not one primary, one standby and one barman server running; the provisional roles stay");
        return Ok(None);
    };
    let shown: Vec<String> = found
        .iter()
        .map(|(h, r)| format!("{h} {r:?}").to_lowercase())
        .collect();
    if found
        .iter()
        .all(|(h, r)| lab.topology().host(h).is_some_and(|x| x.roles == [*r]))
    {
        say(&format!(
            "roles after provisioning as provisional: {}",
            shown.join(", ")
        ));
        return Ok(None);
    }
    say(&format!(
        "roles after provisioning (what runs where; {} were provisional): {}",
        plan.guessed.join(", "),
        shown.join(", ")
    ));
    lab.assign_roles(&found)?;
    prepare(&RunOptions {
        topology: lab.topology().clone(),
        ..opts.clone()
    })
    .map(Some)
}

/// The scenarios in their order, and what pglab decided about a repository.
fn say_plan(started: Instant, prepared: &Prepared) {
    say_scenarios(started, &prepared.planned);
    if let Some(plan) = &prepared.submission.repo {
        for d in plan.decisions() {
            crate::sys::progress::say(started, "homework", &d);
        }
    }
}

fn say_scenarios(started: Instant, planned: &[Scenario]) {
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
}

/// The lab, up (timed as its phase).
fn up(opts: &RunOptions, phases: &mut Vec<(Phase, f64)>) -> Result<Lab> {
    let t = Instant::now();
    crate::sys::progress::stage(RunStage::Up);
    let lab = Lab::up(UpOptions {
        box_name: opts.box_name.clone(),
        topology: opts.topology.clone(),
        backend: opts.backend,
    })
    .map_err(own)?;
    crate::sys::progress::stage_lab(lab.id());
    phases.push((Phase::Up, t.elapsed().as_secs_f64()));
    Ok(lab)
}

/// The submission's own steps between scenarios (resume, after_recover) could change the
/// checks' programs too: what the checks said is believed only if they are still the box's.
/// When they are not (now, or already after provisioning), no scenario step keeps a pass:
/// each becomes "not believed" (a cohort's points never count what such a lab answered).
fn still_believed(
    lab: &Lab,
    log: &RunLog,
    started: Instant,
    checks: &mut Vec<StepOutcome>,
) -> bool {
    let earlier = checks.iter().any(|c| c.step == PROGRAMS_CHECK);
    if !earlier {
        match programs_changed(lab, log, started) {
            Some(o) => checks.push(o),
            None => return true,
        }
    }
    for c in checks.iter_mut() {
        if c.scenario != "provision" && c.status == Status::Passed {
            c.status = Status::Skipped;
            c.message = format!("not believed: the submission changed programs that pglab's checks use (see \"{PROGRAMS_CHECK}\")");
        }
    }
    false
}

/// The name of the failed check that says the programs changed.
const PROGRAMS_CHECK: &str = "the checks' programs are the box's";

/// A failed check when the submission changed programs the checks use on any host
/// (`Backend::changed_programs`): such a lab's answers are not believed.
fn programs_changed(lab: &Lab, log: &RunLog, t: Instant) -> Option<StepOutcome> {
    let mut lines = Vec::new();
    for h in &lab.topology().hosts {
        for c in lab.backend().changed_programs(&h.name) {
            lines.push(format!("  {}: {c}", h.name));
        }
    }
    if lines.is_empty() {
        return None;
    }
    let msg = log.redact(&format!(
        "the submission changed programs or files that pglab's checks use, so no check on this lab is believed:\n{}\n  try: install PostgreSQL and barman with the distribution's packages and leave their programs as they are",
        lines.join("\n")
    ));
    eprintln!("{msg}");
    Some(StepOutcome {
        scenario: "provision".into(),
        step: PROGRAMS_CHECK.into(),
        host: "".into(),
        location: String::new(),
        status: Status::Failed,
        duration_secs: t.elapsed().as_secs_f64(),
        waited_secs: 0.0,
        message: msg,
    })
}

/// Provisioning failed: one failed check that says why, with the secrets redacted.
fn provision_failed(
    e: &anyhow::Error,
    prepared: &Prepared,
    log: &RunLog,
    t: Instant,
) -> StepOutcome {
    let msg = log.redact(&format!("{e:#}"));
    eprintln!("{msg}");
    StepOutcome {
        scenario: "provision".into(),
        step: "provisioning".into(),
        host: "".into(),
        location: prepared
            .submission
            .dir
            .join("provision.toml")
            .display()
            .to_string(),
        status: Status::Failed,
        duration_secs: t.elapsed().as_secs_f64(),
        waited_secs: 0.0,
        message: msg,
    }
}

/// Keeps the lab (saying how to enter it) when `--destroy` asks for it, otherwise takes it
/// down (timed); returns whether it was kept.
fn finish(
    opts: &RunOptions,
    mut lab: Lab,
    ok: bool,
    phases: &mut Vec<(Phase, f64)>,
) -> Result<bool> {
    let keep = match opts.destroy {
        Destroy::Always => false,
        Destroy::Passing => !ok,
        Destroy::Never => true,
    };
    if keep {
        lab.keep()?;
        eprintln!("{}", lab.how_to_enter());
    } else {
        let t = Instant::now();
        crate::sys::progress::stage(RunStage::Down);
        lab.down()?;
        phases.push((Phase::Down, t.elapsed().as_secs_f64()));
    }
    Ok(keep)
}

/// Where a lab stands between scenarios.
#[derive(Debug, Clone, Default)]
struct LabState {
    /// None until provisioned; then the `provides` of the last scenario that passed.
    state: Option<String>,
    /// Values saved by steps, for later steps and scenarios.
    vars: BTreeMap<String, String>,
}

/// The scenarios of one run on a provisioned lab, with the states saved on the way
/// (`--isolate`) and what each phase took.
struct ScenarioRun<'a> {
    opts: &'a RunOptions,
    prepared: &'a Prepared,
    lab: &'a Lab,
    log: &'a RunLog,
    started: Instant,
    runner: Runner<'a>,
    state: LabState,
    saved: BTreeMap<String, LabState>,
    phases: Vec<(Phase, f64)>,
    checks: Vec<StepOutcome>,
    ok: bool,
    /// Why the primary's PostgreSQL does not answer, once a probe after a failure found it
    /// so: nothing later can pass, and nothing later waits for it.
    silent: Option<String>,
}

impl<'a> ScenarioRun<'a> {
    /// Reads the facts the specs use from the hosts; with `--isolate`, saves the
    /// provisioned state first.
    fn start(
        opts: &'a RunOptions,
        prepared: &'a Prepared,
        lab: &'a Lab,
        log: &'a RunLog,
        started: Instant,
    ) -> Result<ScenarioRun<'a>> {
        let mut state = LabState {
            state: Some(PROVISIONED.into()),
            ..Default::default()
        };
        state.vars.extend(host_facts(lab)?);
        for (k, v) in &prepared.submission.commands {
            state.vars.insert(format!("homework_{k}"), v.clone());
        }
        let mut run = ScenarioRun {
            opts,
            prepared,
            lab,
            log,
            started,
            runner: Runner::new(lab, log, started, state.vars.clone()),
            state,
            saved: BTreeMap::new(),
            phases: Vec::new(),
            checks: Vec::new(),
            ok: true,
            silent: None,
        };
        if opts.isolate {
            run.save(PROVISIONED)?;
        }
        Ok(run)
    }

    /// One line of scenarios, or (isolated) one line per requested scenario, each from the
    /// state it requires; true when every step passed.
    fn all(&mut self) -> Result<bool> {
        let prepared = self.prepared;
        let lines: Vec<Vec<&Scenario>> = if self.opts.isolate {
            prepared.requested.iter().map(|sc| vec![sc]).collect()
        } else {
            vec![prepared.planned.iter().collect()]
        };
        for line in lines {
            if self.ok && self.opts.isolate {
                self.restore(&line[0].requires)?;
            }
            let current = self.state.state.clone().unwrap_or_default();
            let chain: Vec<&Scenario> = if self.opts.isolate {
                spec::plan(&line, &prepared.all, &current)?
            } else {
                line
            };
            for sc in chain {
                self.scenario(sc)?;
            }
        }
        Ok(self.ok)
    }

    /// Runs one scenario (or reports its steps skipped after a failure); on success the lab
    /// is in the state it provides, saved when isolated and new.
    fn scenario(&mut self, sc: &Scenario) -> Result<()> {
        // A run asked to stop starts no scenario.
        crate::sys::cancel::check()?;
        if !self.ok && !self.opts.keep_going {
            self.checks.extend(sc.steps.iter().map(|st| {
                crate::scenario::runner::skipped(sc, st, "skipped: an earlier scenario failed")
            }));
            return Ok(());
        }
        if self.needs_unmet(sc) || self.cannot_pass(sc) {
            return Ok(());
        }
        crate::sys::progress::say(
            self.started,
            "run",
            &format!("scenario {}: {}", sc.name, sc.description),
        );
        let t = Instant::now();
        crate::sys::progress::stage(RunStage::Scenario(sc.name.clone()));
        // Kept going past a failure, a scenario may run on a lab that never reached the
        // state it requires: what passes there passed, what fails is not the scenario's
        // failure (it may be the earlier one's consequence) and is reported not checked.
        let met = self.state.state.as_deref() == Some(sc.requires.as_str());
        let mut outcomes = self.runner.run(sc);
        self.phase(Phase::Scenario(sc.name.clone()), t);
        let passed = outcomes.iter().all(|o| o.status == Status::Passed);
        if !met {
            not_checked(&sc.requires, &mut outcomes);
        }
        self.ok &= passed;
        self.checks.extend(outcomes);
        if !passed {
            // A failed scenario may leave the lab anywhere (a link still cut, node2 stopped,
            // a slot lost): no later scenario's requirement counts as met, so what fails
            // after it is not blamed on the submission.
            self.state.state = None;
        }
        if passed && met {
            self.state.state = Some(sc.provides.clone());
            self.state.vars = self.runner.vars.clone();
            if self.opts.isolate
                && sc.provides != sc.requires
                && !self.saved.contains_key(&sc.provides)
            {
                self.save(&sc.provides)?;
            }
        }
        Ok(())
    }

    /// A scenario whose declared needs (a PostgreSQL or barman version) this lab does not
    /// meet is skipped, saying why; such a scenario keeps the lab's state.
    fn needs_unmet(&mut self, sc: &Scenario) -> bool {
        let Some(reason) = sc.needs.as_ref().and_then(|n| n.unmet(&self.runner.vars)) else {
            return false;
        };
        crate::sys::progress::say(
            self.started,
            "run",
            &format!("scenario {}: SKIPPED: {reason}", sc.name),
        );
        let msg = format!("{SKIPPED_BY_NEED}{reason}");
        self.checks.extend(
            sc.steps
                .iter()
                .map(|st| crate::scenario::runner::skipped(sc, st, &msg)),
        );
        true
    }

    /// After a failure, a scenario waits only if what it waits on can still come: when the
    /// primary's PostgreSQL does not answer, the first such scenario fails at once naming
    /// that, and its other steps and every later scenario are "not checked" with the cause,
    /// without their waits (a failing submission costs about what a passing one does).
    fn cannot_pass(&mut self, sc: &Scenario) -> bool {
        if self.ok {
            return false;
        }
        let first = self.silent.is_none();
        if first {
            self.silent = primary_silent(self.lab).map(|s| self.log.redact(&s));
        }
        let Some(cause) = self.silent.clone() else {
            return false;
        };
        crate::sys::progress::say(
            self.started,
            "run",
            &format!(
                "scenario {}: not run: {}",
                sc.name,
                cause.lines().next().unwrap_or("")
            ),
        );
        let skipped = format!("not checked: {cause}");
        for (i, st) in sc.steps.iter().enumerate() {
            let mut o = crate::scenario::runner::skipped(sc, st, &skipped);
            if first && i == 0 {
                o.status = Status::Failed;
                o.message = cause.clone();
            }
            self.checks.push(o);
        }
        self.state.state = None;
        true
    }

    /// Saves the lab in state `name` (the hosts are restarted: the submission's resume
    /// steps run after).
    fn save(&mut self, name: &str) -> Result<()> {
        let t = Instant::now();
        self.lab.backend().save(name)?;
        resume(self.lab, &self.prepared.submission, self.log, self.started)?;
        self.saved.insert(name.into(), self.state.clone());
        self.phase(Phase::Save(name.into()), t);
        Ok(())
    }

    /// Restarts the lab from the saved state `wanted`, unless it is in that state already.
    fn restore(&mut self, wanted: &str) -> Result<()> {
        if self.state.state.as_deref() == Some(wanted) {
            return Ok(());
        }
        let Some(st) = self.saved.get(wanted).cloned() else {
            return Ok(());
        };
        let t = Instant::now();
        crate::sys::progress::say(
            self.started,
            "run",
            &format!("restoring the lab to state {wanted:?}"),
        );
        self.lab.backend().restore(wanted)?;
        resume(self.lab, &self.prepared.submission, self.log, self.started)?;
        self.runner.vars = st.vars.clone();
        self.state = st;
        self.phase(Phase::Restore(wanted.to_string()), t);
        Ok(())
    }

    fn phase(&mut self, name: Phase, t: Instant) {
        self.phases.push((name, t.elapsed().as_secs_f64()));
    }
}

/// The failed steps of a scenario run on a lab that did not reach `requires`: skipped, with
/// what happened when run anyway.
fn not_checked(requires: &str, outcomes: &mut [StepOutcome]) {
    for o in outcomes.iter_mut().filter(|o| o.status == Status::Failed) {
        o.status = Status::Skipped;
        o.message = format!(
            "not checked: this needs the lab in state {requires:?}, which an earlier failure left unreached (run anyway, it failed: {})",
            o.message.lines().next().unwrap_or_default()
        );
    }
}

/// None when PostgreSQL answers on the primary; else what it says and its log's last lines.
fn primary_silent(lab: &Lab) -> Option<String> {
    let host = lab.topology().with_role(Role::Primary).name.clone();
    let probe = "runuser -u postgres -- psql -XAtqc 'select 1' 2>&1";
    let said = match lab
        .backend()
        .check(&host, "root", probe, Duration::from_secs(15))
    {
        Ok(o) if o.ok() => return None,
        Ok(o) => o
            .stdout
            .lines()
            .last()
            .unwrap_or_default()
            .trim()
            .to_string(),
        Err(e) => format!("{e:#}"),
    };
    Some(format!(
        "PostgreSQL does not answer on {host} (the primary), so no check that needs it can pass: {said}{}",
        crate::provision::server_words::servers_now(lab, false)
    ))
}

/// Facts found on the hosts, for `{{major}}` and `{{barman}}` in specs. barman's output
/// changed between versions (3.13 shows the backup type): its snapshots carry its version.
fn host_facts(lab: &Lab) -> Result<BTreeMap<String, String>> {
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
    let mut vars = BTreeMap::new();
    for (var, role, probe) in facts {
        let host = lab.topology().with_role(role).name.clone();
        let out = lab
            .backend()
            .check(&host, "root", probe, Duration::from_secs(30))?;
        vars.insert(var.into(), out.stdout.trim().to_string());
    }
    vars.extend(discover::names(lab)?);
    Ok(vars)
}

fn chrono_like_stamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("run-{secs}")
}

#[cfg(test)]
mod believed_tests {
    use super::*;

    /// A lab whose checks' programs changed keeps no pass: the failure names the program
    /// on its host, and every scenario step that passed becomes "not believed".
    #[test]
    fn answers_of_a_lab_with_changed_programs_are_not_believed() {
        use crate::backend::fake::Fake;
        let d = tempfile::tempdir().unwrap();
        let fake = Fake::default();
        let lab = Lab::fake(Box::new(fake.clone()), d.path());
        let log = RunLog::at(d.path(), &lab.secrets);
        let passed = |scenario: &str| StepOutcome {
            scenario: scenario.into(),
            step: "s".into(),
            host: "node1".into(),
            location: String::new(),
            status: Status::Passed,
            duration_secs: 0.0,
            waited_secs: 0.0,
            message: String::new(),
        };
        let mut checks = vec![passed("provision"), passed("replicate")];
        assert!(still_believed(&lab, &log, Instant::now(), &mut checks));
        assert_eq!(checks.len(), 2);
        fake.changed
            .lock()
            .unwrap()
            .push("/usr/bin/psql is not the box's".into());
        assert!(!still_believed(&lab, &log, Instant::now(), &mut checks));
        assert_eq!(
            checks[0].status,
            Status::Passed,
            "provisioning is not a check"
        );
        assert_eq!(checks[1].status, Status::Skipped);
        assert!(checks[1].message.starts_with("not believed"));
        assert_eq!(checks[2].status, Status::Failed);
        assert!(checks[2]
            .message
            .contains("node1: /usr/bin/psql is not the box's"));
        // Said once: a second look adds nothing.
        assert!(!still_believed(&lab, &log, Instant::now(), &mut checks));
        assert_eq!(checks.len(), 3);
    }
}
