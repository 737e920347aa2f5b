//! `pglab bench`: whole phases timed over several runs, printed as min / median / max.
//! Figures are printed, never asserted (a loaded machine must not fail a test).

use super::one::{run, Destroy, RunOptions};
use crate::lab::{Lab, UpOptions};
use crate::model::phase::Phase;
use anyhow::{bail, Result};
use std::collections::BTreeMap;
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum What {
    /// A cold box build (into a temporary cache).
    Box,
    /// Warm `up` and `down` of the three hosts (box cached).
    Up,
    /// Warm full `pglab run`: up, provision, every scenario, down; per phase.
    Run,
    /// One lab running `replicate backup` against `--labs N` labs doing it at once.
    Parallel,
    /// The homework scenarios through pglab against the same PostgreSQL work done directly
    /// (`ci/floor.sh`): the harness's overhead as a ratio.
    Floor,
    /// `run replicate` on nspawn and on Vagrant + libvirt, phase by phase side by side.
    Backends,
    /// Reset to the provisioned state: one save, then `--runs` restores (+ resume steps).
    Reset,
    /// `pglab grade` over the fixture submissions and the reference with `--jobs 1` and
    /// `--jobs 2`: submissions per hour and where the time goes.
    Cohort,
}

/// The floor's phases: (host, user, function in ci/floor.sh).
const FLOOR: &[(&str, &str, &str)] = &[
    ("node1", "root", "floor_fill"),
    ("barman", "barman", "floor_backup"),
    ("node1", "root", "floor_drop"),
    ("barman", "barman", "floor_archive"),
    ("node1", "root", "floor_stop"),
    ("barman", "barman", "floor_recover"),
    ("node1", "root", "floor_start"),
    ("node2", "root", "floor_reclone"),
    ("barman", "barman", "floor_rebackup"),
];

/// The fixed cost of one step of each kind on a provisioned lab's primary, median of 20
/// in milliseconds: entering a host (the process chain and the launcher, running `true`),
/// that plus psql's start and one query, and one query over a kept connection.
fn step_costs(lab: &Lab) -> Result<Vec<(&'static str, f64)>> {
    let t = std::time::Duration::from_secs(30);
    let median_ms = |f: &mut dyn FnMut() -> Result<()>| -> Result<f64> {
        let mut v = Vec::new();
        for _ in 0..20 {
            let s = Instant::now();
            f()?;
            v.push(s.elapsed().as_secs_f64() * 1000.0);
        }
        v.sort_by(|a, b| a.total_cmp(b));
        Ok(v[10])
    };
    let enter = median_ms(&mut || {
        lab.backend()
            .check("node1", "postgres", "true", t)
            .map(|_| ())
    })?;
    let psql = median_ms(&mut || {
        lab.backend()
            .check("node1", "postgres", "psql -XAtqc 'SELECT 1'", t)
            .map(|_| ())
    })?;
    let kept = crate::scenario::sql::Kept::default();
    let query = median_ms(
        &mut || match kept.query(lab, "node1", "postgres", "SELECT 1", t)? {
            Some(_) => Ok(()),
            None => bail!("no kept connection to node1's PostgreSQL"),
        },
    )?;
    Ok(vec![
        ("enter a host and run bash (`true`)", enter),
        ("the same plus psql's start and a query", psql),
        ("a query over a kept connection", query),
    ])
}

/// A lab of `box_name` provisioned with the reference, and its log.
fn provisioned(box_name: &str, what: &str) -> Result<(Lab, crate::report::runlog::RunLog)> {
    let lab = Lab::up(UpOptions {
        box_name: box_name.into(),
        ..Default::default()
    })?;
    let sub = crate::provision::Submission::load(&crate::provision::reference_dir())?;
    let log = crate::report::runlog::RunLog::create(&format!("{what}-{}", lab.id()), &lab.secrets)?;
    crate::provision::provision(&lab, &sub, &log, Instant::now())?;
    Ok((lab, log))
}

/// The step costs' lines: each cost, times `steps`, as a share of `total` seconds.
fn cost_lines(costs: &[(&'static str, f64)], steps: usize, total: f64) -> String {
    let mut out = format!("fixed cost of one step (median of 20 on node1), x {steps} steps:\n");
    for (what, ms) in costs {
        out.push_str(&format!(
            "  {what:<44} {ms:>6.1} ms = {:.1} s, {:.0}% of {total:.1} s\n",
            ms * steps as f64 / 1000.0,
            ms * steps as f64 / 10.0 / total
        ));
    }
    out
}

/// Seconds of the floor's work on a freshly provisioned lab, and (when asked) the costs
/// of one step of each kind there.
fn floor_once(box_name: &str, costs: &mut Vec<(&'static str, f64)>) -> Result<f64> {
    let (lab, _log) = provisioned(box_name, "floor")?;
    if costs.is_empty() {
        *costs = step_costs(&lab)?;
    }
    let repo = crate::sys::paths::repo_root();
    let mut prelude = crate::scenario::runner::prelude(&lab);
    prelude.push_str(&std::fs::read_to_string(repo.join("ci/floor.sh"))?);
    let t = Instant::now();
    for (host, user, function) in FLOOR {
        let out = lab.exec(
            host,
            user,
            &format!("{prelude}\n{function}\n"),
            std::time::Duration::from_secs(600),
        )?;
        if !out.ok() {
            bail!(
                "floor step {function} on {host} failed: {}",
                crate::sys::exec::tail(&out.combined(), 10)
            );
        }
    }
    let secs = t.elapsed().as_secs_f64();
    lab.down()?;
    Ok(secs)
}

/// Samples per phase, in the order phases were first seen.
#[derive(Default)]
pub struct Samples {
    order: Vec<String>,
    values: BTreeMap<String, Vec<f64>>,
}

impl Samples {
    pub fn add(&mut self, phase: &str, secs: f64) {
        if !self.values.contains_key(phase) {
            self.order.push(phase.to_string());
        }
        self.values.entry(phase.to_string()).or_default().push(secs);
    }

    /// The phases, in the order first seen.
    pub fn names(&self) -> impl Iterator<Item = &String> {
        self.order.iter()
    }

    pub fn median(&self, phase: &str) -> f64 {
        let mut v = self.values.get(phase).cloned().unwrap_or_default();
        if v.is_empty() {
            return f64::NAN;
        }
        v.sort_by(|a, b| a.total_cmp(b));
        if v.len() % 2 == 1 {
            v[v.len() / 2]
        } else {
            (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
        }
    }

    pub fn table(&self) -> String {
        let mut s = format!(
            "{:<28} {:>8} {:>8} {:>8} {:>5}\n",
            "phase", "min", "median", "max", "runs"
        );
        for p in &self.order {
            let mut v = self.values[p].clone();
            v.sort_by(|a, b| a.total_cmp(b));
            let median = self.median(p);
            s.push_str(&format!(
                "{p:<28} {:>7.1}s {:>7.1}s {:>7.1}s {:>5}\n",
                v[0],
                median,
                v[v.len() - 1],
                v.len()
            ));
        }
        s
    }
}

fn short_run(box_name: &str) -> Result<f64> {
    let t = Instant::now();
    let opts = RunOptions {
        box_name: box_name.into(),
        scenarios: vec!["replicate".into(), "backup".into()],
        ..Default::default()
    };
    let report = run(&opts)?;
    if !report.passed {
        bail!("a run failed; logs in {}", report.log_dir.display());
    }
    Ok(t.elapsed().as_secs_f64())
}

pub fn bench(
    what: What,
    runs: usize,
    box_name: &str,
    labs: usize,
    jobs: Option<usize>,
) -> Result<String> {
    if runs == 0 {
        bail!("--runs must be at least 1");
    }
    let mut samples = Samples::default();
    match what {
        What::Box => box_builds(runs, box_name, &mut samples)?,
        What::Up => ups(runs, box_name, &mut samples)?,
        What::Floor => return floor(runs, box_name),
        What::Parallel => return parallel(runs, box_name, labs),
        What::Backends => return backends(runs, box_name),
        What::Reset => reset(runs, box_name, &mut samples)?,
        What::Run => return whole_runs(runs, box_name),
        // Each submission on its own box (a repository's Vagrantfile box, else bookworm).
        What::Cohort => return cohort("", jobs),
    }
    Ok(format!(
        "pglab bench {what:?} ({runs} runs, box {box_name})\n{}",
        samples.table()
    ))
}

/// Cold box builds, each into a cache of its own.
fn box_builds(runs: usize, box_name: &str, samples: &mut Samples) -> Result<()> {
    let tmp = tempfile::Builder::new()
        .prefix("pglab-bench-cache-")
        .tempdir_in("/var/tmp")?;
    for i in 0..runs {
        std::env::set_var("PGLAB_CACHE_DIR", tmp.path().join(i.to_string()));
        let spec = crate::backend::boxes::BoxSpec::load(box_name)?;
        let t = Instant::now();
        spec.build()?;
        samples.add(
            &format!("box build ({box_name}, cold)"),
            t.elapsed().as_secs_f64(),
        );
        crate::sys::mounts::remove_tree(&spec.dir())?;
    }
    Ok(())
}

/// Bringing a lab up and down.
fn ups(runs: usize, box_name: &str, samples: &mut Samples) -> Result<()> {
    crate::backend::boxes::BoxSpec::load(box_name)?.ensure()?;
    for _ in 0..runs {
        let t = Instant::now();
        let lab = Lab::up(UpOptions {
            box_name: box_name.into(),
            ..Default::default()
        })?;
        samples.add("up (3 hosts booted)", t.elapsed().as_secs_f64());
        let t = Instant::now();
        lab.down()?;
        samples.add("down", t.elapsed().as_secs_f64());
    }
    Ok(())
}

/// The four scenarios through pglab against the same work done directly (ci/floor.sh).
fn floor(runs: usize, box_name: &str) -> Result<String> {
    let mut samples = Samples::default();
    crate::backend::boxes::BoxSpec::load(box_name)?.ensure()?;
    let homework: Vec<String> = ["replicate", "backup", "drop", "recover"]
        .map(String::from)
        .to_vec();
    let mut costs = Vec::new();
    let mut steps = 0;
    for _ in 0..runs {
        samples.add(
            "floor: the same work directly",
            floor_once(box_name, &mut costs)?,
        );
        let report = run(&RunOptions {
            box_name: box_name.into(),
            scenarios: homework.clone(),
            ..Default::default()
        })?;
        if !report.passed {
            bail!("a run failed; logs in {}", report.log_dir.display());
        }
        let scenarios: f64 = report
            .phases
            .iter()
            .filter(|(p, _)| matches!(p, Phase::Scenario(_)))
            .map(|(_, s)| s)
            .sum();
        samples.add("pglab: the four scenarios", scenarios);
        steps = report.checks.len();
    }
    let pglab = samples.median("pglab: the four scenarios");
    let ratio = pglab / samples.median("floor: the same work directly");
    Ok(format!(
        "pglab bench floor ({runs} runs, box {box_name}; provisioning excluded from both)\n{}harness overhead: {ratio:.2}x the floor\n{}",
        samples.table(),
        cost_lines(&costs, steps, pglab)
    ))
}

/// One lab against `labs` labs at once.
fn parallel(runs: usize, box_name: &str, labs: usize) -> Result<String> {
    let mut samples = Samples::default();
    crate::backend::boxes::BoxSpec::load(box_name)?.ensure()?;
    for _ in 0..runs {
        samples.add("1 lab", short_run(box_name)?);
        let t = Instant::now();
        let numbers: Vec<usize> = (1..=labs).collect();
        let at_once = |i: &usize| {
            crate::sys::progress::set_label(&format!("lab {i}"));
            short_run(box_name)
        };
        crate::sys::fanout::pool(&numbers, labs, "a lab", at_once, || {})
            .into_iter()
            .collect::<Result<Vec<f64>>>()?;
        samples.add(&format!("{labs} labs at once"), t.elapsed().as_secs_f64());
    }
    let ratio = samples.median(&format!("{labs} labs at once")) / samples.median("1 lab");
    Ok(format!(
        "pglab bench parallel ({runs} runs, box {box_name}, replicate + backup)\n{}{labs} labs at once take {ratio:.2}x the time of one\n",
        samples.table()
    ))
}

/// Whole runs, failed ones counted: this is also the reliability measure.
fn whole_runs(runs: usize, box_name: &str) -> Result<String> {
    let mut samples = Samples::default();
    crate::backend::boxes::BoxSpec::load(box_name)?.ensure()?;
    // Every run is counted, failed or not: this is also the reliability measure.
    let mut failed = Vec::new();
    let mut steps = 0;
    for i in 0..runs {
        let report = run(&RunOptions {
            box_name: box_name.into(),
            destroy: Destroy::Always,
            ..Default::default()
        })?;
        eprintln!(
            "pglab bench: run {} of {runs}: {}",
            i + 1,
            if report.passed { "passed" } else { "FAILED" }
        );
        if !report.passed {
            failed.push(report.log_dir.display().to_string());
            continue;
        }
        for (phase, secs) in &report.phases {
            samples.add(&phase.to_string(), *secs);
        }
        steps = report.checks.len();
    }
    let mut s = format!(
        "pglab bench run ({runs} runs, box {box_name})\n{}",
        samples.table()
    );
    s.push_str(&format!("runs passed: {} of {runs}\n", runs - failed.len()));
    for f in &failed {
        s.push_str(&format!("failed run, logs in {f}\n"));
    }
    let (lab, _log) = provisioned(box_name, "bench-run")?;
    let costs = step_costs(&lab)?;
    lab.down()?;
    let scenarios: f64 = samples
        .names()
        .filter(|p| p.starts_with("scenario "))
        .map(|p| samples.median(p))
        .sum();
    s.push_str(&cost_lines(&costs, steps, scenarios));
    Ok(s)
}

/// A provisioned lab saved once, then restored `runs` times: what `run --isolate` pays per
/// scenario that starts from the provisioned state.
fn reset(runs: usize, box_name: &str, samples: &mut Samples) -> Result<()> {
    use crate::provision::{provision, reference_dir, resume, Submission};
    let lab = Lab::up(UpOptions {
        box_name: box_name.into(),
        ..Default::default()
    })?;
    let sub = Submission::load(&reference_dir())?;
    let log =
        crate::report::runlog::RunLog::create(&format!("bench-reset-{}", lab.id()), &lab.secrets)?;
    provision(&lab, &sub, &log, Instant::now())?;
    let t = Instant::now();
    lab.backend().save("provisioned")?;
    resume(&lab, &sub, &log, Instant::now())?;
    samples.add("save (stop, copy, boot, resume)", t.elapsed().as_secs_f64());
    for _ in 0..runs {
        let t = Instant::now();
        lab.backend().restore("provisioned")?;
        samples.add("restore (hosts booted)", t.elapsed().as_secs_f64());
        let r = Instant::now();
        resume(&lab, &sub, &log, Instant::now())?;
        samples.add("resume steps (barman)", r.elapsed().as_secs_f64());
        samples.add("reset total", t.elapsed().as_secs_f64());
    }
    lab.down()
}

/// The same run (`replicate`, box `box_name`) on each backend; medians side by side.
fn backends(runs: usize, box_name: &str) -> Result<String> {
    use crate::backend::Kind;
    let choices = [
        Kind::Nspawn,
        Kind::Vagrant(crate::backend::vagrant::vagrantfile::Provider::Libvirt),
    ];
    let mut columns = Vec::new();
    for backend in choices {
        let mut samples = Samples::default();
        for i in 0..runs {
            let report = run(&RunOptions {
                box_name: box_name.into(),
                scenarios: vec!["replicate".into()],
                backend,
                ..Default::default()
            })?;
            eprintln!(
                "pglab bench: {} run {} of {runs}: {}",
                backend.record_name(),
                i + 1,
                if report.passed { "passed" } else { "FAILED" }
            );
            if !report.passed {
                bail!("a run failed; logs in {}", report.log_dir.display());
            }
            for (phase, secs) in &report.phases {
                samples.add(&phase.to_string(), *secs);
            }
        }
        columns.push((backend.record_name(), samples));
    }
    let mut out = format!(
        "pglab bench backends ({runs} runs each, box {box_name}, scenario replicate; medians)\n{:<24}",
        "phase"
    );
    for (name, _) in &columns {
        out.push_str(&format!(" {name:>18}"));
    }
    out.push_str("      ratio\n");
    for phase in &columns[0].1.order {
        out.push_str(&format!("{phase:<24}"));
        let mut medians = Vec::new();
        for (_, s) in &columns {
            let m = s.values.get(phase).map(|_| s.median(phase));
            medians.push(m);
            match m {
                Some(m) => out.push_str(&format!(" {:>17.1}s", m)),
                None => out.push_str(&format!(" {:>18}", "-")),
            }
        }
        if let (Some(Some(a)), Some(Some(b))) = (medians.first(), medians.get(1)) {
            if *a > 0.0 {
                out.push_str(&format!(" {:>9.1}x", b / a));
            }
        }
        out.push('\n');
    }
    Ok(out)
}

/// A cohort graded through `recover` (replicate, backup, drop, recover: every check group of
/// the homework): `dirs` relative to the repository, each a submission or a folder of them.
/// An empty `box_name` lets each submission bring its own (a repository's Vagrantfile box).
pub fn cohort_options(
    dirs: &[impl AsRef<std::path::Path>],
    box_name: &str,
    jobs: usize,
    out: &std::path::Path,
) -> super::grade::GradeOptions {
    let repo = crate::sys::paths::repo_root();
    super::grade::GradeOptions {
        jobs,
        ..super::grade::GradeOptions::new(
            dirs.iter().map(|d| repo.join(d)).collect(),
            RunOptions {
                box_name: box_name.into(),
                scenarios: vec!["recover".into()],
                keep_going: true,
                ..Default::default()
            },
            out.into(),
        )
    }
}

/// The fixtures of one mistake each that a cohort grading reaches (the provision.toml ones
/// that end: the two that hang are the stuck detector's).
pub const ONE_MISTAKE: [&str; 11] = [
    "tests/fixtures/no-slot",
    "tests/fixtures/primary-never-starts",
    "tests/fixtures/no-barman-hba",
    "tests/fixtures/recovery-without-target",
    "tests/fixtures/replicator-without-password",
    "tests/fixtures/wrong-pgpass",
    "tests/fixtures/wrong-path-prefix",
    "tests/fixtures/recovery-paused",
    "tests/fixtures/recovery-elsewhere",
    "tests/fixtures/barman-no-archiver",
    "tests/fixtures/md5-passwords",
];

/// The benchmark's cohort: the students' repositories as they come (issue 14's fixtures, each
/// on the box its Vagrantfile names, built whole into `students`), the fixtures of one
/// mistake each, and the reference.
fn bench_cohort(students: &std::path::Path) -> Result<Vec<std::path::PathBuf>> {
    let repo = crate::sys::paths::repo_root();
    super::fixtures::build_all(&super::fixtures::students_dir(), students)?;
    let mut dirs = vec![students.to_path_buf(), repo.join("examples/reference")];
    dirs.extend(ONE_MISTAKE.iter().map(|d| repo.join(d)));
    Ok(dirs)
}

/// `grade` of the fixture cohort with `jobs` labs at once (default 1, then 2): submissions per
/// hour, the labs' time split into lab up/down, provisioning, scenarios, and slots left idle,
/// and what a failing submission costs against a passing one.
fn cohort(box_name: &str, jobs: Option<usize>) -> Result<String> {
    let mut s = String::new();
    for jobs in jobs.map_or(vec![1, 2], |j| vec![j]) {
        let (out, students) = (tempfile::tempdir()?, tempfile::tempdir()?);
        let dirs = bench_cohort(&students.path().join("students"))?;
        // Read in place first, as before the door (a cold read of each folder either way).
        let t = Instant::now();
        let n = super::grade::find_submissions(&dirs)?.len().max(1) as f64;
        let in_place = t.elapsed().as_secs_f64() * 1000.0 / n;
        let g = super::grade::grade(&cohort_options(&dirs, box_name, jobs, out.path()))?;
        s.push_str(&cohort_figures(jobs, &g));
        s.push_str(&failing_vs_passing(&g.rows));
        s.push_str(&door_cost(in_place, &g));
    }
    Ok(s)
}

/// The submission door's cost: the grading's discovery (each submission copied once and
/// read from its copy) against reading the same folders where they are (as before the
/// door), per submission, and as a share of a submission's median time in its lab.
fn door_cost(in_place: f64, g: &super::grade::Graded) -> String {
    let door = g.discovery.as_secs_f64() * 1000.0 / g.rows.len().max(1) as f64;
    let mut secs: Vec<f64> = g
        .rows
        .iter()
        .map(|r| r.seconds)
        .filter(|s| *s > 0.0)
        .collect();
    secs.sort_by(f64::total_cmp);
    let median = secs.get(secs.len() / 2).copied().unwrap_or(0.0);
    let share = (door - in_place).max(0.0) / (median * 1000.0).max(1.0) * 100.0;
    format!(
        "  the door: {door:.0} ms a submission to copy it and read the copy, against {in_place:.0} ms to read it in place; the difference is {share:.2}% of a submission's median {median:.0} s\n"
    )
}

/// The time of a failing submission against a passing one's, over those that ran in a lab
/// (a verdict given without a lab costs nothing): medians and the slowest failing one.
fn failing_vs_passing(rows: &[crate::report::cohort::Row]) -> String {
    let in_lab: Vec<&crate::report::cohort::Row> =
        rows.iter().filter(|r| !r.lab.is_empty()).collect();
    let median = |mut v: Vec<f64>| -> f64 {
        v.sort_by(f64::total_cmp);
        let n = v.len();
        (v[(n - 1) / 2] + v[n / 2]) / 2.0
    };
    let (pass, fail): (Vec<&crate::report::cohort::Row>, Vec<_>) =
        in_lab.into_iter().partition(|r| r.passed());
    if pass.is_empty() || fail.is_empty() {
        return "  failing vs passing: needs both in the cohort\n".into();
    }
    let p = median(pass.iter().map(|r| r.seconds).collect());
    let f = median(fail.iter().map(|r| r.seconds).collect());
    let slowest = fail
        .iter()
        .max_by(|a, b| a.seconds.total_cmp(&b.seconds))
        .expect("not empty");
    format!(
        "  a failing submission: median {f:.0} s over {} = {:.2}x a passing one's median {p:.0} s over {}; the slowest failing: {} {:.0} s = {:.2}x\n",
        fail.len(),
        f / p,
        pass.len(),
        slowest.name,
        slowest.seconds,
        slowest.seconds / p
    )
}

fn cohort_figures(jobs: usize, g: &super::grade::Graded) -> String {
    let wall = g.wall.as_secs_f64();
    let sum = |f: &dyn Fn(&str) -> bool| -> f64 {
        g.rows
            .iter()
            .flat_map(|r| &r.phases)
            .filter(|(p, _)| f(p))
            .map(|(_, t)| t)
            .sum()
    };
    let lab = sum(&|p| p == "up" || p == "down");
    let provision = sum(&|p| p == "provision");
    let scenarios = sum(&|p| p.starts_with("scenario "));
    let waits = sum(&|p| p == crate::report::cohort::WAITS);
    let busy: f64 = g.rows.iter().map(|r| r.seconds).sum();
    let idle = (wall * jobs as f64 - busy).max(0.0);
    let n = g.rows.len();
    format!(
        "--jobs {jobs}: {n} submissions in {wall:.0} s = {:.0} submissions per hour\n  lab time {busy:.0} s: up+down {lab:.0} s, provisioning {provision:.0} s, scenarios {scenarios:.0} s (of which polling waits {waits:.0} s), other {:.0} s; slots idle {idle:.0} s\n",
        n as f64 * 3600.0 / wall,
        (busy - lab - provision - scenarios).max(0.0)
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_failing_submission_is_measured_against_a_passing_one() {
        use crate::report::cohort::Row;
        use crate::report::outcome::Status::{Failed, Passed};
        let row = |name: &str, s: &[crate::report::outcome::Status], secs: f64, lab: &str| Row {
            seconds: secs,
            lab: lab.into(),
            ..Row::of_statuses(name, s, "why")
        };
        let rows = [
            row("reference", &[Passed, Passed], 40.0, "l1"),
            row("no-slot", &[Passed, Failed], 44.0, "l2"),
            row("never-starts", &[Failed, Failed], 70.0, "l3"),
            row("red-hat", &[Failed], 0.0, ""),
        ];
        let s = super::failing_vs_passing(&rows);
        assert_eq!(
            s,
            "  a failing submission: median 57 s over 2 = 1.43x a passing one's median 40 s over 1; the slowest failing: never-starts 70 s = 1.75x\n"
        );
        assert!(super::failing_vs_passing(&rows[1..]).contains("needs both"));
    }

    #[test]
    fn table_has_min_median_max() {
        let mut s = super::Samples::default();
        for v in [3.0, 1.0, 2.0] {
            s.add("up", v);
        }
        s.add("down", 0.5);
        let t = s.table();
        assert!(
            t.contains("up                               1.0s     2.0s     3.0s     3"),
            "{t}"
        );
        assert!(t.find("up").unwrap() < t.find("down").unwrap());
    }
}
