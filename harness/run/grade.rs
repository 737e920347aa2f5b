//! `pglab grade`: a cohort of submissions, each in its own lab, `jobs` labs at once, the
//! same scenarios for all. A slot takes the next submission as soon as its lab is done (a
//! submission that fails early frees it at once); one stuck past its deadline gets a verdict
//! and its lab is removed. Submissions whose content did not change since the last grading
//! in the same `--out` keep their row.

use super::one::{run, RunOptions, RunReport};
use super::shard;
use crate::backend::boxes::DEFAULT_BOX;
use crate::provision::submission::is_submission;
use crate::provision::Submission;
use crate::report::cohort::{self, Row, PROVISIONED};
use crate::report::rubric::Rubric;
use crate::sys::progress::{self, RunStage, Stages};
use anyhow::{bail, Context, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct GradeOptions {
    /// Submissions, or folders of them.
    pub dirs: Vec<PathBuf>,
    /// Everything of a run but the submission (`scenarios`: the same for all).
    pub base: RunOptions,
    pub jobs: usize,
    pub out: PathBuf,
    /// Grade every submission, changed or not.
    pub all: bool,
    /// A submission still running after this gets a verdict and its lab is removed.
    pub deadline: Duration,
    /// The rubric's file (None: the homework's default, `rubric.toml`).
    pub rubric: Option<PathBuf>,
    /// Grade only this part of the cohort (`--shard K/N`); `shard.json` then says so.
    pub shard: Option<shard::Shard>,
    /// How parts are made: by the name's hash (None), or balanced by the times of an earlier
    /// grading's `cohort.json` (`--shard-by time=FILE`).
    pub shard_by: Option<PathBuf>,
    /// The regrade cache, read only (`--previous DIR`: the last merged grades); None: `out`.
    pub previous: Option<PathBuf>,
    /// The students (`--roster`): the LMS files and who is missing are written with the cohort.
    pub roster: Option<PathBuf>,
    /// The assignment's name in the LMS files.
    pub assignment: String,
    /// `--due` (Unix seconds): a git repository is graded at its last commit before it.
    pub due: Option<i64>,
    /// The course's template (`--base DIR`): what submissions share with it does not make
    /// them alike.
    pub copies_base: Option<PathBuf>,
}

impl GradeOptions {
    /// A grading of `dirs` with `base`'s run options into `out`: one lab at a time, every
    /// submission graded, the default deadline of 20 minutes, nothing else asked.
    pub fn new(dirs: Vec<PathBuf>, base: RunOptions, out: PathBuf) -> GradeOptions {
        GradeOptions {
            dirs,
            base,
            jobs: 1,
            out,
            all: true,
            deadline: Duration::from_secs(1200),
            rubric: None,
            shard: None,
            shard_by: None,
            previous: None,
            roster: None,
            assignment: String::new(),
            due: None,
            copies_base: None,
        }
    }
}

/// A submission of the cohort: its name in the table (its folder's), where it is, and its
/// content hash (None: it cannot be read; its row says why).
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    /// The folder handed in: what the teacher reads in the reports.
    pub dir: PathBuf,
    /// What is graded: the door's copy of `dir` (`snapshot`), or `dir` itself when there is
    /// none (`find_submissions` alone; pglab's own fixtures building on its examples).
    pub src: PathBuf,
    pub hash: Result<String, String>,
    /// The git commit the repository is at ("" when it is none).
    pub commit: String,
    /// With `--due`: the commit's date and how many commits came later.
    pub commit_date: String,
    pub later: usize,
}

/// Why a folder is not a submission pglab can read, and what would make it one: its row's
/// verdict (the rest of the cohort is graded anyway).
fn unreadable_why(dir: &Path) -> String {
    let playbooks = crate::provision::repo::find_playbooks(dir);
    if !playbooks.is_empty() {
        let groups = crate::provision::repo::play_hosts(dir, &playbooks);
        return format!(
            "{} has playbooks ({}) but no inventory and no Vagrantfile: their plays expect hosts in {}; pglab builds the lab from an inventory (ansible.cfg's inventory, or `ansible-playbook -i FILE` in the README) or a Vagrantfile",
            crate::sys::paths::shown(dir),
            playbooks.join(", "),
            if groups.is_empty() { "no named group".to_string() } else { groups.join(", ") }
        );
    }
    format!(
        "{} has neither a provision.toml nor a Vagrantfile (nor vagrantfile), nor playbooks with an inventory (ansible.cfg's inventory, or `ansible-playbook -i` in the README): pglab reads a repository through its Vagrantfile or its inventory, or a provision.toml naming its steps or playbook (see README, \"Grading a repository as it comes\")",
        crate::sys::paths::shown(dir)
    )
}

/// A folder of submissions rather than one: a subfolder is a submission, or it holds only
/// folders (every student's repository unreadable is still a cohort of rows).
fn is_cohort_folder(d: &Path) -> bool {
    let entries: Vec<_> = std::fs::read_dir(d)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    let is_dir = |e: &std::fs::DirEntry| e.file_type().is_ok_and(|t| t.is_dir());
    entries
        .iter()
        .any(|e| is_dir(e) && is_submission(&e.path()))
        || (entries.iter().any(is_dir) && entries.iter().all(is_dir))
}

/// The cohort: each DIR is a submission or a folder whose subfolders are; names are folder
/// names, made unique with `-2`, `-3`. Every folder gets a row: one pglab cannot read gets
/// its verdict (`Entry::hash` is the reason), and the others are graded anyway. Each is
/// read where it is; `grade` reads each through the door instead (`find_submissions_into`).
pub fn find_submissions(dirs: &[PathBuf]) -> Result<Vec<Entry>> {
    find_submissions_into(dirs, None)
}

/// `find_submissions`, with each submission copied once, at discovery, into `snapshots`
/// (`snapshot`) when given.
pub fn find_submissions_into(dirs: &[PathBuf], snapshots: Option<&Path>) -> Result<Vec<Entry>> {
    let mut found = Vec::new();
    for d in dirs {
        if !d.is_dir() {
            bail!("{} is not a folder", d.display());
        }
        if is_submission(d) || !is_cohort_folder(d) {
            found.push(d.clone());
            continue;
        }
        let mut subs: Vec<PathBuf> = std::fs::read_dir(d)
            .with_context(|| format!("cannot read {}", d.display()))?
            .flatten()
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.path())
            .collect();
        subs.sort();
        found.extend(subs);
    }
    let mut names = BTreeSet::new();
    Ok(found
        .into_iter()
        .map(|dir| {
            let base = dir
                .canonicalize()
                .unwrap_or(dir.clone())
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_else(|| "submission".into());
            let name = (1..)
                .map(|i| {
                    if i == 1 {
                        base.clone()
                    } else {
                        format!("{base}-{i}")
                    }
                })
                .find(|n| names.insert(n.clone()))
                .expect("a free name");
            // The commit first: what is copied next is at that commit or later.
            let commit = crate::sys::gitref::head_commit(&dir);
            let (src, hash) = match snapshots {
                _ if !is_submission(&dir) => (dir.clone(), Err(unreadable_why(&dir))),
                Some(snaps) => snapshot(&dir, &snaps.join(&name)),
                None => (dir.clone(), hash_of(&dir)),
            };
            Entry {
                name,
                dir,
                src,
                hash,
                commit,
                commit_date: String::new(),
                later: 0,
            }
        })
        .collect())
}

fn hash_of(dir: &Path) -> Result<String, String> {
    Submission::load(dir)
        .and_then(|s| s.content_hash())
        .map_err(|e| format!("{e:#}"))
}

/// The submission door: `dir` copied once, at discovery, into `into`, a folder of this
/// grading that no sandbox and no lab writes (each takes its own copy of it); from then on
/// its repository, plan and content hash are read from `into`, never from `dir` again.
/// Returns what is graded and its hash. Only when the copy left something out (a symlink
/// leading outside, a device, an oversized file) or cannot be read is `dir` read too: the
/// door then refuses what the submission names with its reason ("scripts/x.sh is a symlink
/// to /etc/...") said of the folder handed in; what nothing names stays left out; pglab's
/// own fixtures whose `base` is pglab's examples are graded where they are.
fn snapshot(dir: &Path, into: &Path) -> (PathBuf, Result<String, String>) {
    let copied = std::fs::create_dir(into)
        .map_err(anyhow::Error::from)
        .and_then(|_| crate::sys::tree::copy_tree(dir, into, &crate::sys::tree::REPOSITORY));
    if copied.as_ref().is_ok_and(Vec::is_empty) {
        if let Ok(hash) = hash_of(into) {
            return (into.to_path_buf(), Ok(hash));
        }
    }
    match (Submission::load(dir), copied) {
        (Ok(s), _) if s.reads_outside() => (dir.to_path_buf(), hash_of(dir)),
        (Ok(_), Ok(_)) => (into.to_path_buf(), hash_of(into)),
        (Ok(_), Err(e)) => (dir.to_path_buf(), Err(format!("{e:#}"))),
        (Err(e), _) => (dir.to_path_buf(), Err(format!("{e:#}"))),
    }
}

/// A text about the graded copy (`Entry::src`) as the teacher reads it: naming the folder
/// handed in.
fn as_handed_in(text: &str, e: &Entry) -> String {
    handed_in(text, &e.src, &e.dir)
}

/// `text` with the path `src` written as `dir` (as `paths::shown` shows it), where it is a
/// whole path: followed by `/` or by nothing a name goes on with (`alice` is not
/// `alice-2`).
fn handed_in(text: &str, src: &Path, dir: &Path) -> String {
    if src == dir {
        return text.to_string();
    }
    let (from, to) = (src.display().to_string(), crate::sys::paths::shown(dir));
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(&from) {
        let after = &rest[at + from.len()..];
        let whole = !after
            .chars()
            .next()
            .is_some_and(|c| c.is_alphanumeric() || "-_.".contains(c));
        out.push_str(&rest[..at]);
        out.push_str(if whole { &to } else { &from });
        rest = after;
    }
    out.push_str(rest);
    out
}

/// What a grading produced: the table's columns, their descriptions, every row (regraded or
/// kept), and the runs of those regraded.
pub struct Graded {
    pub groups: Vec<String>,
    pub legend: Vec<(String, String)>,
    pub rows: Vec<Row>,
    pub reports: Vec<(String, Option<RunReport>)>,
    /// Names regraded now, and the wall time it took.
    pub regraded: Vec<String>,
    pub wall: Duration,
    /// Groups of submissions whose files are (nearly) the same.
    pub alike: Vec<crate::report::copies::Alike>,
    /// How long finding the submissions took: each copied through the door and read.
    pub discovery: Duration,
    /// Each graded copy and the folder handed in (`Entry::src`, `Entry::dir`), for the
    /// texts of the runs (summaries, JUnit) to name the latter.
    pub handed_in: Vec<(PathBuf, PathBuf)>,
}

impl Graded {
    /// `text` naming the folders handed in instead of their graded copies.
    fn as_handed_in(&self, text: String) -> String {
        self.handed_in
            .iter()
            .fold(text, |t, (src, dir)| handed_in(&t, src, dir))
    }
}

impl Graded {
    /// `cohort.md`: the table, the legend, what the cohort got wrong, submissions alike.
    pub fn markdown(&self) -> String {
        cohort::markdown(&self.groups, &self.rows, &self.legend)
            + &cohort::alike_markdown(&self.alike)
    }
}

/// The check groups: provisioning, then the scenarios in the order they run.
/// Each check group with its description, for the legend.
pub type Legend = Vec<(String, String)>;

fn groups(base: &RunOptions) -> Result<(Vec<String>, Legend)> {
    let prepared = super::one::prepare(base)?;
    let mut groups = vec![PROVISIONED.to_string()];
    let mut legend = vec![(
        PROVISIONED.to_string(),
        "the submission's provisioning ran without an error".to_string(),
    )];
    for sc in &prepared.planned {
        groups.push(sc.name.clone());
        legend.push((sc.name.clone(), sc.description.clone()));
    }
    Ok((groups, legend))
}

/// Grades the cohort and writes its report under `opts.out`. Interrupted (SIGINT, SIGTERM),
/// it still writes what it has: the submissions graded so far, and the others marked as
/// pglab's own failure, which the next grading (`--previous` that part) grades again.
pub fn grade(opts: &GradeOptions) -> Result<Graded> {
    let rubric = match &opts.rubric {
        Some(f) => Rubric::load(f)?,
        None => Rubric::default_for_homework()?,
    };
    // The door's copies live as long as this grading.
    let (snaps, mut entries, discovery) = through_the_door(&opts.dirs)?;
    let roster: Vec<String> = entries.iter().map(|e| e.name.clone()).collect();
    let part = (opts.shard)
        .map(|s| shard::Part::new(s, &roster, opts.shard_by.as_ref()))
        .transpose()?;
    // The snapshots at the due time live as long as this grading.
    let snapshots = opts.due.map(|due| at_due(&mut entries, due)).transpose()?;
    let alike = alike_in(&entries, opts);
    if let Some(p) = &part {
        entries.retain(|e| p.holds(&e.name));
    }
    let (groups, legend) = groups(&opts.base)?;
    let previous = opts.previous.as_deref().unwrap_or(&opts.out);
    let before: BTreeMap<String, Row> = cohort::load_rows(previous)
        .into_iter()
        .map(|r| (r.name.clone(), r))
        .collect();
    let grader = shard::grader_identity();
    let todo: Vec<Entry> = entries
        .iter()
        .filter(|e| opts.all || !unchanged(e, before.get(&e.name), &groups, &grader))
        .cloned()
        .collect();
    let info = part.map(|p| p.info(roster, &groups, &legend));
    let cohort = Cohort {
        entries,
        todo: todo.iter().map(|e| e.name.clone()).collect(),
        before,
        groups,
        legend,
        rubric,
        grader,
        deadline: opts.deadline,
        out: opts.out.clone(),
        previous: previous.to_path_buf(),
        info,
        alike,
        written: Mutex::new(false),
    };
    let results: Results = Arc::new(Mutex::new(Vec::new()));
    let c = Arc::new(cohort);
    let key = written_if_interrupted(&c, &results);
    let t = Instant::now();
    run_pool(&todo, opts, &results);
    let graded = c.finish(&results, t.elapsed());
    crate::sys::cleanup::disown(&key);
    drop((snapshots, snaps));
    let mut graded = graded?;
    graded.discovery = discovery;
    if let Some(r) = &opts.roster {
        write_gradebook(&graded.rows, r, &opts.assignment, &opts.out)?;
    }
    Ok(graded)
}

/// The cohort found, each submission copied once (`find_submissions_into`), and how long it
/// took; the copies' folder lives as long as what is returned.
fn through_the_door(dirs: &[PathBuf]) -> Result<(Copies, Vec<Entry>, Duration)> {
    let snaps = snapshots_dir()?;
    let found = Instant::now();
    let entries = find_submissions_into(dirs, Some(snaps.path()))?;
    Ok((snaps, entries, found.elapsed()))
}

/// Submissions alike, over the whole roster (every part of a split computes the same), from
/// what each holds outside the course's template.
fn alike_in(entries: &[Entry], opts: &GradeOptions) -> Vec<crate::report::copies::Alike> {
    use crate::report::copies::{alike, Prints};
    let base = opts
        .copies_base
        .as_deref()
        .map(Prints::base)
        .unwrap_or_default();
    let subs: Vec<(String, Prints)> = entries
        .iter()
        .filter(|e| e.hash.is_ok())
        .map(|e| (e.name.clone(), Prints::of(&e.src, &base)))
        .collect();
    alike(&subs)
}

fn snapshots_key(snapshots: &Path) -> String {
    format!("submission copies {}", snapshots.display())
}

/// A folder of this grading for copies of the submissions (`<state>/copies/PID-...`, on
/// disk; only root lists it, and each sandbox takes its own copy of a copy), removed when dropped,
/// on SIGINT/SIGTERM, and by the next grading when its process was killed.
struct Copies(tempfile::TempDir);

impl Copies {
    fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for Copies {
    fn drop(&mut self) {
        crate::sys::cleanup::disown(&snapshots_key(self.0.path()));
    }
}

fn snapshots_dir() -> Result<Copies> {
    use std::os::unix::fs::PermissionsExt;
    let root = crate::sys::paths::state_root().join("copies");
    std::fs::create_dir_all(&root).with_context(|| format!("cannot create {}", root.display()))?;
    // No one else lists the copies; nobody (the `--due` reader's sandbox) passes through.
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o711))?;
    remove_stale_copies(&root);
    let snaps = tempfile::Builder::new()
        .prefix(&format!("{}-", std::process::id()))
        .tempdir_in(&root)?;
    std::fs::set_permissions(snaps.path(), std::fs::Permissions::from_mode(0o711))?;
    let path = snaps.path().to_path_buf();
    crate::sys::cleanup::own(snapshots_key(&path), move || {
        let _ = crate::sys::mounts::remove_tree(&path);
    });
    Ok(Copies(snaps))
}

/// Copies left by a grading that was killed (`PID-...` whose process is gone).
fn remove_stale_copies(root: &Path) {
    for e in std::fs::read_dir(root).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let pid = name.split('-').next().and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|p| !Path::new(&format!("/proc/{p}")).exists()) {
            let _ = crate::sys::mounts::remove_tree(&e.path());
        }
    }
}

/// `--due`: each git repository taken out at its last commit before `due` into a snapshot
/// (the student's folder untouched), which is then what is graded; one without a commit
/// before then gets that verdict. A folder without `.git` is graded as it is.
fn at_due(entries: &mut [Entry], due: i64) -> Result<Copies> {
    let snaps = snapshots_dir()?;
    let when = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + Duration::from_secs(due.max(0) as u64),
    );
    for e in entries.iter_mut().filter(|e| e.hash.is_ok()) {
        if !e.dir.join(".git").is_dir() {
            eprintln!(
                "{}: no git repository: graded as it is, without --due",
                e.name
            );
            continue;
        }
        let into = snaps.path().join(&e.name);
        std::fs::create_dir(&into)?;
        match crate::provision::due::checkout_at(&e.dir, due, &into) {
            Ok(Ok(at)) => {
                e.hash = hash_of(&into);
                e.src = into;
                (e.commit, e.commit_date, e.later) = (at.commit, at.date, at.later);
            }
            Ok(Err(first)) => {
                let first = if first.is_empty() {
                    "none".into()
                } else {
                    first
                };
                e.hash = Err(format!("no commit before the due time {when} (its first commit: {first}): nothing to grade"));
            }
            Err(err) => e.hash = Err(format!("{err:#}")),
        }
    }
    Ok(snaps)
}

/// On SIGINT/SIGTERM (after the labs are removed), the rows graded so far are written and
/// the others marked as pglab's failure; the key to disown once the grading wrote itself.
fn written_if_interrupted(c: &Arc<Cohort>, results: &Results) -> String {
    let key = format!("grading into {}", c.out.display());
    let (c, r) = (c.clone(), results.clone());
    crate::sys::cleanup::own(key.clone(), move || {
        let written = c.written.lock().unwrap_or_else(|e| e.into_inner());
        if *written {
            return;
        }
        let done = std::mem::take(&mut *r.lock().unwrap_or_else(|e| e.into_inner()));
        match c.write(done, Duration::ZERO) {
            Ok(_) => eprintln!(
                "pglab: wrote what was graded into {}; the rest is marked as pglab's failure",
                c.out.display()
            ),
            Err(e) => eprintln!("pglab: writing {}: {e:#}", c.out.display()),
        }
    });
    key
}

/// Everything a grading writes besides its runs' outcomes (also from the signal handler).
struct Cohort {
    entries: Vec<Entry>,
    /// Names to grade now (the others keep their row from `previous`).
    todo: Vec<String>,
    before: BTreeMap<String, Row>,
    groups: Vec<String>,
    legend: Legend,
    rubric: Rubric,
    grader: String,
    deadline: Duration,
    out: PathBuf,
    previous: PathBuf,
    info: Option<shard::PartInfo>,
    alike: Vec<crate::report::copies::Alike>,
    /// Set once the grading wrote itself: held while it writes, so that an interrupt then
    /// waits for that write and does not write over it.
    written: Mutex<bool>,
}

type Results = Arc<Mutex<Vec<(String, Outcome)>>>;

impl Cohort {
    /// The grading's own write, with everything graded; an interrupt that comes meanwhile
    /// waits for it, then writes nothing over it.
    fn finish(&self, results: &Results, wall: Duration) -> Result<Graded> {
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        let done = std::mem::take(&mut *results.lock().expect("lock"));
        let graded = self.write(done, wall);
        *written = true;
        graded
    }

    /// The rows (graded now, kept, or interrupted before their outcome), written to `out`.
    fn write(&self, done: Vec<(String, Outcome)>, wall: Duration) -> Result<Graded> {
        let mut results: BTreeMap<String, Outcome> = done.into_iter().collect();
        let mut reports = Vec::new();
        let mut rows = Vec::new();
        let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
        for e in &self.entries {
            let mut row = match results.remove(&e.name) {
                Some(outcome) => {
                    let (row, report) = row_of(e, outcome, &self.groups, self.deadline);
                    reports.push((e.name.clone(), report));
                    row
                }
                None if self.todo.contains(&e.name) => interrupted(e, &self.groups),
                None => {
                    rows.push(self.before[&e.name].clone());
                    continue;
                }
            };
            row.grader = self.grader.clone();
            row.graded_at = now.clone();
            row.commit = e.commit.clone();
            row.commit_date = e.commit_date.clone();
            row.later_commits = e.later;
            rows.push(row);
        }
        self.rubric.apply(&mut rows);
        let graded = Graded {
            groups: self.groups.clone(),
            legend: self.legend.clone(),
            rows,
            reports,
            regraded: self.todo.clone(),
            wall,
            alike: self.alike.clone(),
            discovery: Duration::ZERO,
            handed_in: (self.entries.iter())
                .map(|e| (e.src.clone(), e.dir.clone()))
                .collect(),
        };
        write(&self.out, &graded)?;
        self.copy_kept(&graded)?;
        if let Some(info) = &self.info {
            shard::write_info(&self.out, info)?;
        }
        Ok(graded)
    }

    /// A kept row's folder (report card, logs) comes along from `--previous`.
    fn copy_kept(&self, g: &Graded) -> Result<()> {
        if self.previous == self.out {
            return Ok(());
        }
        for r in g.rows.iter().filter(|r| !g.regraded.contains(&r.name)) {
            let from = self.previous.join(&r.name);
            if from.is_dir() && !from.is_symlink() {
                copy_dir(&from, &self.out.join(&r.name))?;
            }
        }
        Ok(())
    }
}

/// The row of a submission pglab was stopped before it finished: pglab's failure, not the
/// student's, so the next grading grades it again.
fn interrupted(e: &Entry, groups: &[String]) -> Row {
    let why = "pglab was interrupted (SIGINT or SIGTERM) before this submission was graded: no verdict; the next grading grades it";
    let mut row = Row::verdict(
        &e.name,
        e.hash.as_deref().unwrap_or(""),
        groups,
        PROVISIONED,
        why,
    );
    row.grader_failed = true;
    row
}

/// `pglab grade merge PART... --out DIR`: the cohort of the parts, written as one grading
/// writes it, with each submission's folder copied from its part.
pub fn merge(parts: &[PathBuf], out: &Path) -> Result<Graded> {
    let mut read = Vec::new();
    for p in parts {
        read.push((p.clone(), shard::read_info(p)?, cohort::load_rows(p)));
    }
    let rows = shard::check_parts(&read)?;
    let (_, info, _) = &read[0];
    // JUnit of a merged cohort has one testcase per group of each row (its verdict); each
    // part's own junit.xml and report.json keep the steps.
    let reports = rows.iter().map(|r| (r.name.clone(), None)).collect();
    let graded = Graded {
        groups: info.groups.clone(),
        legend: info.legend.clone(),
        rows,
        reports,
        regraded: Vec::new(),
        wall: std::time::Duration::ZERO,
        alike: cohort::load_alike(&parts[0]),
        discovery: Duration::ZERO,
        handed_in: Vec::new(),
    };
    write(out, &graded)?;
    for (dir, _, rows) in &read {
        for r in rows {
            let from = dir.join(&r.name);
            if from.is_dir() {
                copy_dir(&from, &out.join(&r.name))?;
            }
        }
    }
    Ok(graded)
}

/// Kept from the last grading: same content, same check groups, the same grader, and a
/// verdict on the student's work (pglab's own failures are graded again).
fn unchanged(e: &Entry, before: Option<&Row>, groups: &[String], grader: &str) -> bool {
    let Some(row) = before else { return false };
    if row.grader_failed || row.grader != grader {
        return false;
    }
    let same_groups = row.cells.iter().map(|c| &c.group).eq(groups.iter());
    matches!(&e.hash, Ok(h) if *h == row.hash) && same_groups
}

/// How one submission's grading ended.
pub enum Outcome {
    Ran(RunReport),
    /// The run could not complete (an error outside the checks).
    Error(String),
    /// pglab itself failed (its box, its lab, a bug): no verdict on the submission.
    PglabFailed(String),
    /// Past the deadline, in this stage; its lab was removed.
    TimedOut(PastDeadline),
}

fn row_of(
    e: &Entry,
    outcome: Outcome,
    groups: &[String],
    deadline: Duration,
) -> (Row, Option<RunReport>) {
    let (mut row, report) = row_of_copy(e, outcome, groups, deadline);
    for c in &mut row.cells {
        c.why = as_handed_in(&c.why, e);
    }
    (row, report)
}

fn row_of_copy(
    e: &Entry,
    outcome: Outcome,
    groups: &[String],
    deadline: Duration,
) -> (Row, Option<RunReport>) {
    let hash = e.hash.clone().unwrap_or_default();
    match (outcome, &e.hash) {
        (_, Err(why)) => (
            Row::verdict(
                &e.name,
                "",
                groups,
                PROVISIONED,
                &format!("the submission cannot be read: {why}"),
            ),
            None,
        ),
        (Outcome::Ran(r), _) => (Row::from_report(&e.name, &hash, groups, &r), Some(r)),
        (Outcome::Error(why), _) => (
            Row::verdict(&e.name, &hash, groups, PROVISIONED, &why),
            None,
        ),
        (Outcome::PglabFailed(why), _) => {
            let mut row = Row::verdict(&e.name, &hash, groups, PROVISIONED, &why);
            row.grader_failed = true;
            (row, None)
        }
        (Outcome::TimedOut(p), _) => {
            let why = match &p.stuck {
                Some(stuck) => format!(
                    "stuck in {} after {} s: {stuck}; the lab was removed{}",
                    p.stage,
                    p.after.as_secs(),
                    p.servers
                ),
                None => format!(
                    "still running after the deadline of {} s (in {}): the lab was removed{}",
                    deadline.as_secs(),
                    p.stage,
                    p.servers
                ),
            };
            let failed = if groups.contains(&p.stage) {
                p.stage.as_str()
            } else {
                PROVISIONED
            };
            let mut row = Row::verdict(&e.name, &hash, groups, failed, &why);
            row.seconds = p.after.as_secs_f64();
            (row, None)
        }
    }
}

/// The submissions, `jobs` at a time: each slot takes the next as soon as it is free. This
/// thread prints progress and removes the lab of a submission past its deadline.
fn run_pool(todo: &[Entry], opts: &GradeOptions, results: &Results) {
    let timed_out: Mutex<BTreeMap<String, PastDeadline>> = Mutex::new(BTreeMap::new());
    // Where each running submission stands, from its run's events.
    let stages = Arc::new(Stages::default());
    let _following = progress::subscribe(stages.clone());
    crate::sys::fanout::pool(
        todo,
        opts.jobs,
        "a submission",
        |e| {
            grade_one(e, opts, results, &timed_out, &stages);
            Ok(())
        },
        || watch(todo.len(), opts.deadline, results, &timed_out, &stages),
    );
}

type Shared<T> = Mutex<T>;

/// One submission in a slot of the pool: its outcome added to `results`.
fn grade_one(
    e: &Entry,
    opts: &GradeOptions,
    results: &Shared<Vec<(String, Outcome)>>,
    timed_out: &Shared<BTreeMap<String, PastDeadline>>,
    stages: &Stages,
) {
    // Told to stop: no new lab (the rest are written as interrupted).
    if crate::sys::cleanup::aborting() {
        return;
    }
    let outcome = if e.hash.is_err() {
        Outcome::Error(String::new())
    } else {
        progress::set_label(&e.name);
        let token = crate::sys::cancel::Token::default();
        stages.track(&e.name, token.clone());
        // A panic in one submission's run is its verdict, not the end of the grading
        // (the watcher waits for every submission's result). The run stops when the watcher
        // cancels its token (its deadline, found stuck).
        let o = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            crate::sys::cancel::with(Some(token), || {
                options_for(&e.src, &opts.base).and_then(|o| run(&o))
            })
        }))
        .unwrap_or_else(|p| {
            let what = crate::sys::fanout::panic_message(p.as_ref());
            Err(
                anyhow::anyhow!("pglab failed on this submission (a bug): {what}")
                    .context(super::one::PglabFailure),
            )
        });
        stages.untrack(&e.name);
        match (o, timed_out.lock().expect("lock").get(&e.name)) {
            // Its lab went down because pglab was told to stop: no verdict on the work.
            _ if crate::sys::cleanup::aborting() => Outcome::PglabFailed(
                "pglab was interrupted while this submission ran: no verdict".into(),
            ),
            (_, Some(past)) => Outcome::TimedOut(past.clone()),
            (Ok(r), None) => Outcome::Ran(r),
            (Err(err), None) if super::one::is_own_failure(&err) => {
                Outcome::PglabFailed(cohort::plain_why(&format!("{err:#}")))
            }
            (Err(err), None) => Outcome::Error(cohort::plain_why(&format!("{err:#}"))),
        }
    };
    results
        .lock()
        .expect("lock")
        .push((e.name.clone(), outcome));
}

/// One submission's run: a repository (a Vagrantfile) brings its own topology and box, unless
/// the grader named a box; a box with no equivalent here (Red Hat family) is its verdict.
fn options_for(dir: &Path, base: &RunOptions) -> Result<RunOptions> {
    let mut o = RunOptions {
        homework: Some(dir.to_path_buf()),
        keep_going: true,
        ..base.clone()
    };
    if let Some(plan) = super::homework::repo_plan(Some(dir))? {
        o.topology = plan.topology.clone();
        if o.box_name.is_empty() {
            o.box_name = plan.pglab_box()?;
        }
    }
    if o.box_name.is_empty() {
        o.box_name = DEFAULT_BOX.into();
    }
    Ok(o)
}

/// A submission stopped at its deadline, or earlier because it was found stuck: the stage it
/// was in, what its servers were doing, why it could not go on, and when.
#[derive(Debug, Clone)]
pub struct PastDeadline {
    pub stage: String,
    pub servers: String,
    /// Found stuck (`server_words::stuck`): what waits for what that cannot come.
    pub stuck: Option<String>,
    /// Since the submission started.
    pub after: Duration,
}

/// What the servers of a lab past its deadline were doing (PostgreSQL's log, `pg_stat_activity`
/// wait events: a commit waiting for a synchronous standby says `IPC:SyncRep`), as one line
/// for the row: `; the servers at that moment: node1: ...`. Empty when they said nothing.
fn servers_at_deadline(lab_id: &str) -> String {
    let Ok(lab) = crate::lab::Lab::attach(Some(lab_id)) else {
        return String::new();
    };
    let words = crate::provision::server_words::servers_now(&lab, true);
    let lines: Vec<&str> = words
        .lines()
        .map(|l| l.trim().trim_start_matches("| "))
        .filter(|l| !l.is_empty() && !l.starts_with("the servers at that moment"))
        .collect();
    if lines.is_empty() {
        return String::new();
    }
    format!("; the servers at that moment: {}", lines.join("; "))
}

/// Until every submission is graded: a progress line when something changes (and every
/// 30 s), and the deadline.
fn watch(
    total: usize,
    deadline: Duration,
    results: &Shared<Vec<(String, Outcome)>>,
    timed_out: &Shared<BTreeMap<String, PastDeadline>>,
    stages: &Stages,
) {
    let mut last = (String::new(), Instant::now());
    let mut probes = Probes::default();
    // Runs asked to stop: since when, and whether their lab was removed under them.
    let mut stopping: BTreeMap<String, (Instant, bool)> = BTreeMap::new();
    loop {
        let done = results.lock().expect("lock").len();
        if done >= total {
            break;
        }
        let now = stages.now();
        let line = progress_line(done, total, &now);
        let shape = line.split(':').next().unwrap_or_default().to_string()
            + &now
                .values()
                .map(|s| s.stage.to_string())
                .collect::<String>();
        if shape != last.0 || last.1.elapsed() > Duration::from_secs(30) {
            eprintln!("{line}");
            last = (shape, Instant::now());
        }
        for (name, st) in &now {
            // Only a submission whose lab is up can be stopped (box builds and `up` have
            // their own deadlines); one already going down is left to finish.
            let Some(lab) = st.lab.as_ref().filter(|_| st.stage != RunStage::Down) else {
                continue;
            };
            if timed_out.lock().expect("lock").contains_key(name) {
                force_if_still_running(name, lab, &mut stopping);
                continue;
            }
            let stuck = if st.started.elapsed() > deadline {
                eprintln!(
                    "{name}: past the deadline of {} s in {}: stopping its run",
                    deadline.as_secs(),
                    st.stage
                );
                None
            } else {
                match probes.stuck(name, st, lab) {
                    Some(why) => {
                        eprintln!("{name}: stuck in {}: {why}: stopping its run", st.stage);
                        Some(why)
                    }
                    None => continue,
                }
            };
            stop(name, st, lab, stuck, timed_out);
            stopping.insert(name.clone(), (Instant::now(), false));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A run asked to stop ends by its own path within moments (its command is killed, its waits
/// end, it removes its lab). One that has not ended this long after has its lab removed
/// under it, as the last resort.
const STOP_GRACE: Duration = Duration::from_secs(30);

fn force_if_still_running(name: &str, lab: &str, stopping: &mut BTreeMap<String, (Instant, bool)>) {
    let Some((asked, forced)) = stopping.get_mut(name) else {
        return;
    };
    if *forced || asked.elapsed() < crate::sys::exec::scaled(STOP_GRACE) {
        return;
    }
    *forced = true;
    eprintln!(
        "{name}: its run did not stop within {} s of being asked: removing its lab",
        STOP_GRACE.as_secs()
    );
    if let Err(e) = crate::lab::destroy(lab) {
        eprintln!("{name}: removing lab {lab}: {e:#}");
    }
}

/// Stops a submission: its verdict's reason recorded first (the worker takes that reason),
/// what its servers were doing, then its run asked to stop (its cancel token): the run ends
/// its command and its waits and removes its own lab.
fn stop(
    name: &str,
    st: &progress::Stage,
    lab: &str,
    stuck: Option<String>,
    timed_out: &Shared<BTreeMap<String, PastDeadline>>,
) {
    let reason = stuck
        .clone()
        .unwrap_or_else(|| "past its deadline".to_string());
    timed_out.lock().expect("lock").insert(
        name.to_string(),
        PastDeadline {
            stage: st.stage.to_string(),
            servers: String::new(),
            stuck,
            after: st.started.elapsed(),
        },
    );
    let words = servers_at_deadline(lab);
    if !words.is_empty() {
        if let Some(past) = timed_out.lock().expect("lock").get_mut(name) {
            past.servers = words;
        }
    }
    st.cancel.cancel(&reason);
}

/// A submission waiting this long on something that cannot come is stuck; its lab is asked
/// at most this often.
const STUCK_AFTER: Duration = Duration::from_secs(60);
const PROBE_EVERY: Duration = Duration::from_secs(20);

/// When each running submission's servers were last asked whether it is stuck.
#[derive(Default)]
struct Probes(BTreeMap<String, Instant>);

impl Probes {
    /// Why the submission `name` is stuck, when its servers say so (see `server_words::stuck`).
    fn stuck(&mut self, name: &str, st: &progress::Stage, lab_id: &str) -> Option<String> {
        // Only provisioning: a scenario's own checks have their deadlines, and a session a
        // timed-out check left waiting must not end a lab whose groups already passed.
        if st.stage != RunStage::Provision
            || st.started.elapsed() < STUCK_AFTER
            || self.0.get(name).is_some_and(|t| t.elapsed() < PROBE_EVERY)
        {
            return None;
        }
        self.0.insert(name.to_string(), Instant::now());
        let lab = crate::lab::Lab::attach(Some(lab_id)).ok()?;
        crate::provision::server_words::stuck(&lab, STUCK_AFTER)
    }
}

/// `7/23 graded, 2 running: alice (provision 40 s), bob (recover 3 s)`
pub fn progress_line(
    done: usize,
    total: usize,
    stages: &BTreeMap<String, progress::Stage>,
) -> String {
    let running: Vec<String> = stages
        .iter()
        .map(|(n, s)| format!("{n} ({} {} s)", s.stage, s.since.elapsed().as_secs()))
        .collect();
    format!(
        "{done}/{total} graded, {} running: {}",
        running.len(),
        running.join(", ")
    )
}

/// Markdown, CSV, JUnit, cohort.json, and a folder per regraded submission (its report card,
/// report.json, and its logs).
pub(super) fn write(out: &Path, g: &Graded) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let put = |name: &str, text: String| {
        std::fs::write(out.join(name), text)
            .with_context(|| format!("cannot write {}", out.join(name).display()))
    };
    put("cohort.md", g.markdown())?;
    put("cohort.csv", cohort::csv(&g.groups, &g.rows))?;
    put(
        "cohort.html",
        crate::report::html::cohort_html(&g.groups, &g.legend, &g.rows, &g.alike),
    )?;
    put("cohort.json", cohort::json_with(&g.rows, &g.alike)?)?;
    put(
        "junit.xml",
        g.as_handed_in(cohort::junit(&g.rows, &g.reports)),
    )?;
    for row in g.rows.iter().filter(|r| g.regraded.contains(&r.name)) {
        let dir = out.join(&row.name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("report.md"), cohort::card(row, &g.legend))?;
        if let Some((_, Some(r))) = g.reports.iter().find(|(n, _)| n == &row.name) {
            let json = g.as_handed_in(serde_json::to_string_pretty(r)?);
            std::fs::write(dir.join("report.json"), json)?;
            let summary = g.as_handed_in(crate::report::summary::summary(r));
            std::fs::write(dir.join("summary.txt"), summary)?;
            copy_dir(&r.log_dir, &dir.join("logs"))?;
        }
    }
    Ok(())
}

/// The LMS files of a cohort under `out`, and who is missing on either side (also in
/// `roster.md`).
pub fn write_gradebook(rows: &[Row], roster: &Path, assignment: &str, out: &Path) -> Result<()> {
    use crate::report::gradebook::{canvas_csv, moodle_csv, Roster};
    let roster = Roster::load(roster)?;
    let m = roster.matched(rows);
    let put = |name: &str, text: String| {
        std::fs::write(out.join(name), text)
            .with_context(|| format!("cannot write {}", out.join(name).display()))
    };
    put("cohort-moodle.csv", moodle_csv(&m, assignment))?;
    put("cohort-canvas.csv", canvas_csv(&m, assignment))?;
    let unknown = m.unknown();
    let missing: Vec<String> = m
        .missing
        .iter()
        .map(|s| format!("{} ({})", s.name, s.email))
        .collect();
    let mut md = String::from("# The roster and the submissions\n\n");
    md.push_str(&format!(
        "Submissions no student of the roster owns ({}):\n",
        unknown.len()
    ));
    for u in &unknown {
        md.push_str(&format!("- {}\n", crate::sys::safe_text::markdown_cell(u)));
    }
    md.push_str(&format!(
        "\nStudents without a submission ({}):\n",
        missing.len()
    ));
    for s in &missing {
        md.push_str(&format!("- {}\n", crate::sys::safe_text::markdown_cell(s)));
    }
    put("roster.md", md)?;
    eprintln!(
        "gradebook: cohort-moodle.csv, cohort-canvas.csv; {} submissions without a roster entry, {} students without a submission (roster.md)",
        unknown.len(),
        missing.len()
    );
    Ok(())
}

pub(super) fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()))?;
        } else {
            std::fs::copy(&p, to.join(e.file_name()))
                .with_context(|| format!("cannot copy {}", p.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::cohort::Cell;
    use crate::report::outcome::Status;

    fn repo(p: &str) -> PathBuf {
        crate::sys::paths::repo_root().join(p)
    }

    /// Copies a fixture's regular files (the base of a made-up repository).
    fn copy_tree(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap().flatten() {
            let dst = to.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                copy_tree(&e.path(), &dst);
            } else {
                std::fs::copy(e.path(), dst).unwrap();
            }
        }
    }

    /// A repository is read once however often it is loaded (its content hash, its plan
    /// for the lab, its roles): Ruby runs once per Vagrantfile, again only after a change.
    #[test]
    fn the_vagrantfile_reader_runs_once_per_repository() {
        let cohort = tempfile::tempdir().unwrap();
        let d = cohort.path().join("dana");
        copy_tree(&repo("tests/fixtures/students/vagrant-roles"), &d);
        let vf = d.join("Vagrantfile");
        find_submissions(&[cohort.path().to_path_buf()]).unwrap();
        crate::run::homework::repo_lab(Some(&d)).unwrap();
        Submission::load(&d).unwrap();
        assert_eq!(crate::provision::vagrantfile_read::runs_of(&vf), 1);
        std::fs::write(d.join("README.md"), "changed\n").unwrap();
        Submission::load(&d).unwrap();
        assert_eq!(crate::provision::vagrantfile_read::runs_of(&vf), 2);
    }

    /// Every folder of a cohort gets a row: a lowercase `vagrantfile` (Vagrant's second
    /// name) is read like `Vagrantfile`, and a repository without either (an inventory and
    /// playbooks run by hand) is a row with its verdict, not the end of the grading.
    #[test]
    fn every_folder_of_a_cohort_gets_a_row() {
        let cohort = tempfile::tempdir().unwrap();
        let lower = cohort.path().join("alice");
        copy_tree(&repo("tests/fixtures/students/vagrant-roles"), &lower);
        std::fs::rename(lower.join("Vagrantfile"), lower.join("vagrantfile")).unwrap();
        let bob = cohort.path().join("bob");
        std::fs::create_dir_all(&bob).unwrap();
        std::fs::write(bob.join("README.md"), "I ran psql by hand\n").unwrap();
        copy_tree(
            &repo("tests/fixtures/students/vagrant-roles"),
            &cohort.path().join("carol"),
        );
        let e = find_submissions(&[cohort.path().to_path_buf()]).unwrap();
        let names: Vec<&str> = e.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["alice", "bob", "carol"]);
        assert_eq!(
            e[0].hash,
            e[2].hash.clone().map(|_| e[0].hash.clone().unwrap())
        );
        assert!(e[0].hash.is_ok(), "{:?}", e[0].hash);
        let why = e[1].hash.clone().unwrap_err();
        assert!(
            why.contains("bob has neither a provision.toml nor a Vagrantfile (nor vagrantfile)"),
            "{why}"
        );
        // One playbook handed in alone: its verdict names the groups its plays expect. A
        // playbook that is a link to /dev/zero is not read (the grading would hang).
        let dan = cohort.path().join("dan");
        std::fs::create_dir_all(&dan).unwrap();
        std::fs::write(
            dan.join("site.yml"),
            "- hosts: master\n  tasks: []\n- hosts: slave, backup\n  tasks: []\n",
        )
        .unwrap();
        std::os::unix::fs::symlink("/dev/zero", dan.join("zero.yml")).unwrap();
        let e = find_submissions(&[cohort.path().to_path_buf()]).unwrap();
        let why = e
            .iter()
            .find(|e| e.name == "dan")
            .unwrap()
            .hash
            .clone()
            .unwrap_err();
        assert!(
            why.contains("has playbooks (site.yml) but no inventory and no Vagrantfile: their plays expect hosts in master, slave, backup"),
            "{why}"
        );
    }

    /// Hostile paths in a cohort (each a student's repository plus one change): each gets its
    /// row with the reason, read before any lab and without reading the host file.
    #[test]
    fn paths_that_leave_a_repository_are_refused_with_their_reason() {
        let cohort = tempfile::tempdir().unwrap();
        let base = repo("tests/fixtures/students/shell-provisioners");
        let mk = |name: &str| {
            let d = cohort.path().join(name);
            copy_tree(&base, &d);
            d
        };
        let d = mk("symlinked-script");
        std::fs::remove_file(d.join("scripts/common.sh")).unwrap();
        std::os::unix::fs::symlink("/etc/machine-id", d.join("scripts/common.sh")).unwrap();
        let d = mk("dotdot-path");
        let vf = std::fs::read_to_string(d.join("Vagrantfile")).unwrap();
        let vf = vf.replace("scripts/common.sh", "../../../../../../etc/machine-id");
        std::fs::write(d.join("Vagrantfile"), vf).unwrap();
        let d = mk("endless-toml");
        std::os::unix::fs::symlink("/dev/zero", d.join("provision.toml")).unwrap();
        mk("untouched");
        // Read where they are, and through the door's copies (`grade`): the same reasons,
        // naming the folder handed in.
        let copies = tempfile::tempdir().unwrap();
        for snaps in [None, Some(copies.path())] {
            refused_with_their_reason(cohort.path(), snaps);
        }
    }

    fn refused_with_their_reason(cohort: &Path, snaps: Option<&Path>) {
        let e = find_submissions_into(&[cohort.to_path_buf()], snaps).unwrap();
        let why = |n: &str| {
            e.iter()
                .find(|e| e.name == n)
                .unwrap()
                .hash
                .clone()
                .unwrap_err()
        };
        assert!(
            why("symlinked-script").contains(
                "scripts/common.sh is a symlink to /etc/machine-id, outside the repository"
            ),
            "{}",
            why("symlinked-script")
        );
        assert!(
            why("dotdot-path").contains(
                "../../../../../../etc/machine-id leaves the repository (named in Vagrantfile:4)"
            ),
            "{}",
            why("dotdot-path")
        );
        assert!(
            why("endless-toml")
                .contains("provision.toml is a symlink to /dev/zero, outside the repository"),
            "{}",
            why("endless-toml")
        );
        assert!(e
            .iter()
            .find(|e| e.name == "untouched")
            .unwrap()
            .hash
            .is_ok());
        // A refused folder is said as handed in; a readable one is graded from its copy.
        for e in &e {
            let in_place = e.hash.is_err() || snaps.is_none();
            assert_eq!(e.src == e.dir, in_place, "{}: {}", e.name, e.src.display());
        }
    }

    /// The door: a submission is copied once, at discovery; what is graded (its plan, its
    /// hash) is that copy, whatever happens to the folder afterwards, and a text about the
    /// copy names the folder handed in. pglab's own fixture building on its examples is
    /// read where it is.
    #[test]
    fn a_submission_is_graded_as_it_was_at_discovery() {
        let cohort = tempfile::tempdir().unwrap();
        let d = cohort.path().join("erin");
        copy_tree(&repo("tests/fixtures/students/shell-provisioners"), &d);
        let copies = tempfile::tempdir().unwrap();
        let e = find_submissions_into(&[cohort.path().to_path_buf()], Some(copies.path()))
            .unwrap()
            .remove(0);
        assert!(e.src.starts_with(copies.path()), "{}", e.src.display());
        let at_discovery = e.hash.clone().unwrap();
        // Changed after discovery (a late push, a process of the student's): not graded.
        std::fs::write(d.join("scripts/common.sh"), "echo changed later\n").unwrap();
        std::fs::remove_file(d.join("Vagrantfile")).unwrap();
        assert_eq!(hash_of(&e.src), Ok(at_discovery));
        let plan = crate::run::homework::repo_plan(Some(&e.src))
            .unwrap()
            .unwrap();
        assert_eq!(plan.topology.hosts.len(), 3);
        let said = format!("{}/Vagrantfile:4: no such script", e.src.display());
        assert_eq!(
            as_handed_in(&said, &e),
            format!("{}/Vagrantfile:4: no such script", d.display())
        );
        // Only the whole path: a classmate's copy beside it (erin-2) stays as it is.
        let two = format!("--homework {}; {}-2/x", e.src.display(), e.src.display());
        assert_eq!(
            as_handed_in(&two, &e),
            format!("--homework {}; {}-2/x", d.display(), e.src.display())
        );
        let own = find_submissions_into(&[repo("tests/fixtures/no-slot")], Some(copies.path()))
            .unwrap()
            .remove(0);
        assert!(own.hash.is_ok(), "{:?}", own.hash);
        assert_eq!(own.src, own.dir);
    }

    #[test]
    fn a_folder_of_submissions_and_a_submission_make_one_cohort() {
        let students = tempfile::tempdir().unwrap();
        let built = students.path().join("students");
        crate::run::fixtures::build_all(&crate::run::fixtures::students_dir(), &built).unwrap();
        let e = find_submissions(&[
            built,
            repo("tests/fixtures/no-slot"),
            repo("examples/reference"),
        ])
        .unwrap();
        let names: Vec<&str> = e.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "expect-prompt",
                "inventory-ini-forms",
                "inventory-only",
                "inventory-yaml",
                "jammy-course",
                "listen-addresses-copied",
                "missing-template",
                "no-standby-slot",
                "pip-install",
                "playbook-only",
                "red-hat-box",
                "shell-provisioners",
                "static-inventory",
                "unnamed-roles",
                "vagrant-roles",
                "no-slot",
                "reference"
            ]
        );
        let again = find_submissions(&[repo("examples/reference")]).unwrap();
        assert_eq!(
            again[0].hash,
            e.iter().find(|e| e.name == "reference").unwrap().hash,
            "the hash depends on content only"
        );
        assert_ne!(e[0].hash, e[1].hash);
        let twice = find_submissions(&[repo("examples/reference"), repo("examples/reference")]);
        let twice: Vec<String> = twice.unwrap().into_iter().map(|e| e.name).collect();
        assert_eq!(twice, ["reference", "reference-2"]);
        // A folder that is no submission is a row with its verdict, not the cohort's end.
        let not = find_submissions(&[repo("scenarios")]).unwrap();
        assert_eq!(not.len(), 1);
        let why = not[0].hash.clone().unwrap_err();
        assert!(
            why.contains("has neither a provision.toml nor a Vagrantfile"),
            "{why}"
        );
    }

    #[test]
    fn a_changed_file_or_other_groups_regrade_a_submission() {
        // Inside pglab's tree: a fixture of its own may build on the reference.
        let target = repo("target");
        std::fs::create_dir_all(&target).unwrap();
        let dir = tempfile::tempdir_in(target).unwrap();
        let sub = dir.path().join("alice");
        std::fs::create_dir(&sub).unwrap();
        let reference = repo("examples/reference");
        std::fs::write(
            sub.join("provision.toml"),
            format!("base = {:?}\n", reference.display().to_string()),
        )
        .unwrap();
        let e = find_submissions(&[dir.path().into()]).unwrap().remove(0);
        let groups: Vec<String> = vec![PROVISIONED.into()];
        let cell = Cell {
            group: PROVISIONED.into(),
            status: Status::Passed,
            why: String::new(),
        };
        let row = Row {
            grader: "pglab 1".into(),
            ..Row::with_cells("alice", &e.hash.clone().unwrap(), vec![cell])
        };
        assert!(unchanged(&e, Some(&row), &groups, "pglab 1"));
        // Another grader (pglab's version, scenarios or boxes changed) grades it again.
        assert!(!unchanged(&e, Some(&row), &groups, "pglab 2"));
        // pglab's own failure is never kept: the next grading retries it.
        let failed = Row {
            grader_failed: true,
            ..row.clone()
        };
        assert!(!unchanged(&e, Some(&failed), &groups, "pglab 1"));
        assert!(!unchanged(
            &e,
            Some(&row),
            &["provisioned".into(), "recover".into()],
            "pglab 1"
        ));
        assert!(!unchanged(&e, None, &groups, "pglab 1"));
        std::fs::write(sub.join("10-postgresql.sh"), "echo changed\n").unwrap();
        let changed = find_submissions(&[dir.path().into()]).unwrap().remove(0);
        assert!(!unchanged(&changed, Some(&row), &groups, "pglab 1"));
    }

    #[test]
    fn a_run_past_its_deadline_is_asked_to_stop_and_stops_by_itself() {
        // A run in its scenarios, on a lab that is only a name (nothing to remove), whose
        // waits poll its cancel token as real waits do.
        let stages = Arc::new(Stages::default());
        let _following = progress::subscribe(stages.clone());
        let token = crate::sys::cancel::Token::default();
        stages.track("slow", token.clone());
        let results: Mutex<Vec<(String, Outcome)>> = Mutex::new(vec![]);
        let timed_out: Mutex<BTreeMap<String, PastDeadline>> = Mutex::new(BTreeMap::new());
        let started = Instant::now();
        std::thread::scope(|s| {
            s.spawn(|| {
                progress::set_label("slow");
                progress::emit(progress::Event::Lab("pglab-unit-no-such-lab".into()));
                progress::stage(RunStage::Scenario("replicate".into()));
                while token.reason().is_none() && started.elapsed() < Duration::from_secs(20) {
                    std::thread::sleep(Duration::from_millis(20));
                }
                stages.untrack("slow");
                let past = timed_out.lock().unwrap().get("slow").cloned();
                let outcome = past.map_or(Outcome::Error("not stopped".into()), Outcome::TimedOut);
                results.lock().unwrap().push(("slow".into(), outcome));
            });
            watch(1, Duration::from_millis(300), &results, &timed_out, &stages);
        });
        // Stopped at its deadline (not at the 20 s the run would have waited), by its token,
        // and long before the watcher would remove its lab under it.
        let took = started.elapsed();
        assert!(took < Duration::from_secs(5), "{took:?}");
        assert_eq!(token.reason().as_deref(), Some("past its deadline"));
        let results = results.into_inner().unwrap();
        match &results[0].1 {
            Outcome::TimedOut(p) => {
                assert_eq!(p.stage, "replicate");
                assert!(p.stuck.is_none());
                assert!(p.after >= Duration::from_millis(300), "{:?}", p.after);
            }
            _ => panic!("not stopped at its deadline"),
        }
    }

    #[test]
    fn the_progress_line_names_each_running_submission_and_its_stage() {
        let now = Instant::now();
        let st = |s: RunStage| progress::Stage {
            stage: s,
            since: now,
            started: now,
            lab: None,
            cancel: Default::default(),
        };
        let stages = BTreeMap::from([
            ("alice".into(), st(RunStage::Provision)),
            ("bob".into(), st(RunStage::Scenario("recover".into()))),
        ]);
        assert_eq!(
            progress_line(7, 23, &stages),
            "7/23 graded, 2 running: alice (provision 0 s), bob (recover 0 s)"
        );
    }
}
