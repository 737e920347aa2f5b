//! Scenario specs: TOML files in `scenarios/`, each a list of named steps. Everything that
//! can be wrong with a spec is found here, before anything runs, with file and line.

use crate::model::topology::Topology;
use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// The state every lab is in right after provisioning.
pub use crate::model::phase::PROVISIONED;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    description: String,
    requires: String,
    provides: Option<String>,
    /// The oldest PostgreSQL major (`{{major}}`) the scenario can work on.
    min_major: Option<Spanned<u32>>,
    /// The oldest barman (`{{barman}}`, major.minor) the scenario can work on.
    min_barman: Option<Spanned<String>>,
    /// Why it cannot work on older versions: printed when the scenario is skipped.
    needs_why: Option<Spanned<String>>,
    #[serde(default)]
    step: Vec<Spanned<RawStep>>,
}

/// Versions a scenario needs; on a box with older ones it is skipped, with `why`, never
/// silently.
#[derive(Debug, Clone, PartialEq)]
pub struct Needs {
    pub min_major: Option<u32>,
    pub min_barman: Option<(u32, u32)>,
    pub why: String,
}

/// `"2.12"` → (2, 12).
pub fn major_minor(v: &str) -> Option<(u32, u32)> {
    let (a, b) = v.trim().split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

impl Needs {
    /// Why the lab's versions (`major`, `barman` in `vars`) fall short; None when they do
    /// not, or when a version is not known (the scenario then runs and says for itself).
    pub fn unmet(&self, vars: &std::collections::BTreeMap<String, String>) -> Option<String> {
        let major = vars.get("major").and_then(|m| m.trim().parse::<u32>().ok());
        let barman = vars.get("barman").and_then(|b| major_minor(b));
        let mut short = Vec::new();
        if let (Some(min), Some(have)) = (self.min_major, major) {
            if have < min {
                short.push(format!("PostgreSQL {min} or later (this box has {have})"));
            }
        }
        if let (Some((a, b)), Some((x, y))) = (self.min_barman, barman) {
            if (x, y) < (a, b) {
                short.push(format!("barman {a}.{b} or later (this box has {x}.{y})"));
            }
        }
        (!short.is_empty()).then(|| format!("needs {}: {}", short.join(" and "), self.why))
    }
}

/// A text, or a list of them (`gives_up_on = "paused"` or `["a", "b"]`).
#[derive(Debug, Deserialize, Clone)]
#[serde(untagged)]
enum OneOrMore {
    One(String),
    More(Vec<String>),
}

impl OneOrMore {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMore::One(s) => vec![s],
            OneOrMore::More(v) => v,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    name: String,
    host: Spanned<String>,
    // The step kind: exactly one of these.
    sql: Option<String>,
    psql: Option<String>,
    shell: Option<String>,
    barman: Option<String>,
    action: Option<String>,
    connect: Option<String>,
    // Options of the kinds.
    db: Option<String>,
    user: Option<String>,
    peer: Option<Spanned<String>>,
    // Checks.
    expect: Option<String>,
    contains: Option<String>,
    not_contains: Option<String>,
    fails_with: Option<String>,
    exit: Option<i32>,
    // Waiting, saving, snapshots, explanations.
    wait: Option<Spanned<String>>,
    gives_up_on: Option<OneOrMore>,
    gives_up_after: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
    save: Option<String>,
    snapshot: Option<Spanned<String>>,
    why: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    StopHost,
    StartHost,
    CutLink(String),
    HealLink(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum StepKind {
    /// SQL through psql as postgres, unaligned, tuples only (values, for checks).
    Sql {
        db: String,
        sql: String,
    },
    /// psql input (meta-commands like `\l`), aligned as a human reads it (for snapshots).
    Psql {
        db: String,
        input: String,
    },
    Shell {
        user: String,
        script: String,
    },
    /// `barman ARGS` as the barman user.
    Barman {
        args: String,
    },
    Action(Action),
    /// A client connection from pglab's side of the lab (the gateway address) to `host`,
    /// with tokio-postgres: `connect` holds the user and database (`user=x dbname=y`).
    Connect {
        conninfo: String,
    },
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Check {
    /// stdout, trimmed, equals this.
    pub expect: Option<String>,
    pub contains: Option<String>,
    pub not_contains: Option<String>,
    /// The command must fail and its output contain this.
    pub fails_with: Option<String>,
    pub exit: Option<i32>,
}

#[derive(Debug, Clone)]
pub struct Step {
    pub name: String,
    pub line: usize,
    pub host: String,
    pub kind: StepKind,
    pub check: Check,
    /// While waiting: output containing one of these is a state that cannot change any more
    /// (recovery paused at its target): the step fails at once instead of waiting out its
    /// `wait`.
    pub gives_up_on: Vec<String>,
    /// How long a `gives_up_on` state must last before the wait ends (0: at first sight);
    /// for states that a restart passes through (a server starting after a restore).
    pub gives_up_after: Duration,
    /// Retry until the check holds, for at most this long (scaled by PGLAB_TIMEOUT_FACTOR).
    pub wait: Option<Duration>,
    /// Deadline of one attempt.
    pub timeout: Duration,
    pub save: Option<String>,
    pub snapshot: Option<String>,
    /// What the failure means, in words a student understands.
    pub why: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub file: PathBuf,
    pub description: String,
    pub requires: String,
    pub provides: String,
    pub needs: Option<Needs>,
    pub steps: Vec<Step>,
}

impl Scenario {
    /// `scenarios/replicate.toml:12`
    pub fn at(&self, line: usize) -> String {
        format!("{}:{line}", self.file.display())
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

fn duration(s: &Spanned<String>, text: &str, file: &Path, what: &str) -> Result<Duration> {
    humantime::parse_duration(s.get_ref().trim()).map_err(|e| {
        anyhow!(
            "{}:{}: {what} = {:?} is not a duration ({e}); write it like \"30s\" or \"2m\"",
            file.display(),
            line_of(text, s.span().start),
            s.get_ref()
        )
    })
}

/// A scenario file → a validated `Scenario`; every error names the file and line.
pub fn parse(text: &str, file: &Path, topo: &Topology) -> Result<Scenario> {
    let name = file
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    let raw: RawScenario = toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|s| format!(":{}", line_of(text, s.start)))
            .unwrap_or_default();
        anyhow!("{}{line}: {}", file.display(), e.message())
    })?;
    if raw.step.is_empty() {
        bail!(
            "{}: no [[step]]: a scenario needs at least one step",
            file.display()
        );
    }
    let mut steps = Vec::new();
    let mut snapshots = std::collections::HashSet::new();
    for (i, spanned) in raw.step.iter().enumerate() {
        let src = Source {
            text,
            file,
            index: i,
            name: &spanned.get_ref().name,
        };
        steps.push(parse_step(&src, spanned, topo, &mut snapshots)?);
    }
    let provides = raw.provides.clone().unwrap_or_else(|| raw.requires.clone());
    let needs = needs(&raw, text, file, provides != raw.requires)?;
    Ok(Scenario {
        name,
        file: file.into(),
        description: raw.description,
        requires: raw.requires,
        provides,
        needs,
        steps,
    })
}

/// Where a step is written, for its errors.
struct Source<'a> {
    text: &'a str,
    file: &'a Path,
    index: usize,
    name: &'a str,
}

impl Source<'_> {
    /// `file:line: step N "name"`.
    fn at(&self, line: usize) -> String {
        format!(
            "{}:{line}: step {} {:?}",
            self.file.display(),
            self.index + 1,
            self.name
        )
    }

    fn line<T>(&self, s: &Spanned<T>) -> usize {
        line_of(self.text, s.span().start)
    }
}

/// One `[[step]]`: its host, its one kind, its checks, wait, timeout, save and snapshot.
fn parse_step(
    src: &Source,
    spanned: &Spanned<RawStep>,
    topo: &Topology,
    snapshots: &mut std::collections::HashSet<String>,
) -> Result<Step> {
    let line = src.line(spanned);
    let r = spanned.get_ref();
    let host = super::hosts::resolve(topo, r.host.get_ref());
    if topo.host(&host).is_none() {
        bail!(
            "{}: unknown host {host:?}; the lab's hosts are {}",
            src.at(src.line(&r.host)),
            topo.names().join(", ")
        );
    }
    let kind = step_kind(src, line, r, topo, &host)?;
    kind_options_fit(src.at(line), r, &kind)?;
    let check = check_of(r);
    let wait = wait_of(src, line, r, &check)?;
    let timeout = r
        .timeout
        .as_ref()
        .map(|t| duration(t, src.text, src.file, "timeout"))
        .transpose()?
        .unwrap_or(Duration::from_secs(300));
    names_are_valid(src, line, r, snapshots)?;
    Ok(Step {
        name: r.name.clone(),
        line,
        host,
        kind,
        check,
        gives_up_on: r
            .gives_up_on
            .clone()
            .map(OneOrMore::into_vec)
            .unwrap_or_default(),
        gives_up_after: r
            .gives_up_after
            .as_ref()
            .map(|w| duration(w, src.text, src.file, "gives_up_after"))
            .transpose()?
            .unwrap_or_default(),
        wait,
        timeout,
        save: r.save.clone(),
        snapshot: r.snapshot.as_ref().map(|s| s.get_ref().clone()),
        why: r.why.clone(),
    })
}

/// The step's checks; `fails_with` and `exit = 0` cannot both hold.
fn check_of(r: &RawStep) -> Check {
    Check {
        expect: r.expect.clone(),
        contains: r.contains.clone(),
        not_contains: r.not_contains.clone(),
        fails_with: r.fails_with.clone(),
        exit: r.exit,
    }
}

/// The step's `wait`: it needs something to wait for, and `gives_up_on` needs a wait.
fn wait_of(src: &Source, line: usize, r: &RawStep, check: &Check) -> Result<Option<Duration>> {
    if check.fails_with.is_some() && check.exit == Some(0) {
        bail!(
            "{}: `fails_with` and `exit = 0` contradict each other",
            src.at(line)
        );
    }
    let wait = r
        .wait
        .as_ref()
        .map(|w| duration(w, src.text, src.file, "wait"))
        .transpose()?;
    if r.gives_up_after.is_some() && r.gives_up_on.is_none() {
        bail!(
            "{}: `gives_up_after` says how long a `gives_up_on` state must last: it needs `gives_up_on`",
            src.at(line)
        );
    }
    if r.gives_up_on.is_some() && wait.is_none() {
        bail!(
            "{}: `gives_up_on` ends a wait early: it needs `wait`",
            src.at(line)
        );
    }
    if wait.is_some() && check == &Check::default() {
        bail!("{}: `wait` needs something to wait for: add expect, contains, not_contains, fails_with or exit", src.at(line));
    }
    Ok(wait)
}

/// Exactly one of sql, psql, shell, barman, action, connect, with its options.
fn step_kind(
    src: &Source,
    line: usize,
    r: &RawStep,
    topo: &Topology,
    host: &str,
) -> Result<StepKind> {
    let kinds: Vec<&str> = [
        ("sql", r.sql.is_some()),
        ("psql", r.psql.is_some()),
        ("shell", r.shell.is_some()),
        ("barman", r.barman.is_some()),
        ("action", r.action.is_some()),
        ("connect", r.connect.is_some()),
    ]
    .iter()
    .filter(|(_, set)| *set)
    .map(|(k, _)| *k)
    .collect();
    if kinds.len() != 1 {
        bail!(
            "{}: a step has exactly one kind (sql, psql, shell, barman, action or connect); found {}",
            src.at(line),
            if kinds.is_empty() {
                "none".to_string()
            } else {
                kinds.join(" and ")
            }
        );
    }
    let db = r.db.clone().unwrap_or_else(|| "postgres".into());
    Ok(if let Some(sql) = &r.sql {
        StepKind::Sql {
            db,
            sql: sql.clone(),
        }
    } else if let Some(input) = &r.psql {
        StepKind::Psql {
            db,
            input: input.clone(),
        }
    } else if let Some(script) = &r.shell {
        StepKind::Shell {
            user: r.user.clone().unwrap_or_else(|| "root".into()),
            script: script.clone(),
        }
    } else if let Some(args) = &r.barman {
        StepKind::Barman { args: args.clone() }
    } else if let Some(conninfo) = &r.connect {
        StepKind::Connect {
            conninfo: conninfo.clone(),
        }
    } else {
        StepKind::Action(action(src, line, r, topo, host)?)
    })
}

/// `action = "..."`: stop-host, start-host, or cut-link / heal-link with another host.
fn action(src: &Source, line: usize, r: &RawStep, topo: &Topology, host: &str) -> Result<Action> {
    let action = r.action.as_deref().unwrap_or_default();
    let peer = || -> Result<String> {
        let p = r.peer.as_ref().ok_or_else(|| {
            anyhow!(
                "{}: action {action:?} needs `peer = \"HOST\"`",
                src.at(line)
            )
        })?;
        let name = super::hosts::resolve(topo, p.get_ref());
        if topo.host(&name).is_none() || name == host {
            bail!(
                "{}: peer {:?} must be another host of the lab ({})",
                src.at(src.line(p)),
                p.get_ref(),
                topo.names().join(", ")
            );
        }
        Ok(name)
    };
    Ok(match action {
        "stop-host" => Action::StopHost,
        "start-host" => Action::StartHost,
        "cut-link" => Action::CutLink(peer()?),
        "heal-link" => Action::HealLink(peer()?),
        other => bail!(
            "{}: unknown action {other:?}; known: stop-host, start-host, cut-link, heal-link",
            src.at(line)
        ),
    })
}

/// `peer` and `user` belong to the kinds that use them.
fn kind_options_fit(at: String, r: &RawStep, kind: &StepKind) -> Result<()> {
    if r.peer.is_some()
        && !matches!(
            kind,
            StepKind::Action(Action::CutLink(_) | Action::HealLink(_))
        )
    {
        bail!("{at}: `peer` is only for the cut-link and heal-link actions");
    }
    if r.user.is_some() && !matches!(kind, StepKind::Shell { .. }) {
        bail!(
            "{at}: `user` is only for shell steps (sql and psql run as postgres, barman as barman)"
        );
    }
    Ok(())
}

/// Snapshot names (unique in the scenario) and saved variable names use safe characters.
fn names_are_valid(
    src: &Source,
    line: usize,
    r: &RawStep,
    snapshots: &mut std::collections::HashSet<String>,
) -> Result<()> {
    if let Some(s) = &r.snapshot {
        let n = s.get_ref();
        let ok = !n.is_empty()
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.{}".contains(c));
        if !ok {
            bail!(
                "{}: snapshot name {n:?}: use letters, digits, '-', '_' (and {{{{major}}}})",
                src.at(src.line(s))
            );
        }
        if !snapshots.insert(n.clone()) {
            bail!(
                "{}: snapshot name {n:?} is used twice in this scenario",
                src.at(src.line(s))
            );
        }
    }
    if let Some(v) = &r.save {
        if v.is_empty() || !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            bail!(
                "{}: save = {v:?}: a variable name is letters, digits and '_'",
                src.at(line)
            );
        }
    }
    Ok(())
}

/// `min_major`, `min_barman` and `needs_why`, checked: a requirement says why, and only a
/// scenario that keeps the lab's state may be skipped (the ones after it need that state).
fn needs(raw: &RawScenario, text: &str, file: &Path, changes_state: bool) -> Result<Option<Needs>> {
    let at =
        |span: std::ops::Range<usize>| format!("{}:{}", file.display(), line_of(text, span.start));
    let min_barman = match &raw.min_barman {
        Some(v) => Some(major_minor(v.get_ref()).ok_or_else(|| {
            anyhow!(
                "{}: min_barman = {:?} is not a barman version; write it as MAJOR.MINOR, like \"2.15\"",
                at(v.span()),
                v.get_ref()
            )
        })?),
        None => None,
    };
    let first = match (&raw.min_major, &raw.min_barman) {
        (Some(m), _) => m.span(),
        (None, Some(b)) => b.span(),
        (None, None) => {
            if let Some(w) = &raw.needs_why {
                bail!("{}: needs_why without min_major or min_barman: say which versions the scenario needs", at(w.span()));
            }
            return Ok(None);
        }
    };
    let Some(why) = raw
        .needs_why
        .as_ref()
        .map(|w| w.get_ref().trim().to_string())
        .filter(|w| !w.is_empty())
    else {
        bail!("{}: min_major/min_barman needs `needs_why = \"...\"`: what the scenario uses that older versions lack (printed when it is skipped)", at(first));
    };
    if changes_state {
        bail!("{}: a scenario with min_major/min_barman may be skipped, so it must keep the lab's state (`provides` = `requires`): the scenarios after it need that state", at(first));
    }
    Ok(Some(Needs {
        min_major: raw.min_major.as_ref().map(|m| *m.get_ref()),
        min_barman,
        why,
    }))
}

pub fn scenarios_dir() -> PathBuf {
    crate::sys::paths::repo_root().join("scenarios")
}

pub fn load_file(file: &Path, topo: &Topology) -> Result<Scenario> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read scenario {}", file.display()))?;
    parse(&text, file, topo)
}

/// Every scenario in `dir`, checked together (snapshot names are unique across all).
pub fn load_dir(dir: &Path, topo: &Topology) -> Result<Vec<Scenario>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read scenarios directory {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    let all: Vec<Scenario> = files
        .iter()
        .map(|f| load_file(f, topo))
        .collect::<Result<_>>()?;
    let mut seen = std::collections::HashMap::new();
    for sc in &all {
        for st in &sc.steps {
            if let Some(n) = &st.snapshot {
                if let Some(prev) = seen.insert(n.clone(), sc.at(st.line)) {
                    bail!(
                        "{}: snapshot name {n:?} is already used at {prev}",
                        sc.at(st.line)
                    );
                }
            }
        }
    }
    Ok(all)
}

/// The scenarios to run, in order, so that each starts in the state it requires: the
/// requested ones, each preceded by the scenarios that lead to its state when needed.
pub fn plan<'a>(
    requested: &[&'a Scenario],
    all: &'a [Scenario],
    start: &str,
) -> Result<Vec<&'a Scenario>> {
    let mut state = start.to_string();
    let mut out: Vec<&Scenario> = Vec::new();
    for sc in requested {
        if sc.requires != state {
            let path = path_between(all, &state, &sc.requires).ok_or_else(|| {
                anyhow!(
                    "{}: scenario {} needs the lab in state {:?}, and no scenario leads there from {:?} (states are set by `requires`/`provides`)",
                    sc.file.display(),
                    sc.name,
                    sc.requires,
                    state
                )
            })?;
            out.extend(path);
        }
        out.push(sc);
        state = sc.provides.clone();
    }
    Ok(out)
}

/// Shortest chain of state-changing scenarios from one state to another (breadth first).
fn path_between<'a>(all: &'a [Scenario], from: &str, to: &str) -> Option<Vec<&'a Scenario>> {
    let mut queue = std::collections::VecDeque::from([(from.to_string(), Vec::<&Scenario>::new())]);
    let mut seen = std::collections::HashSet::from([from.to_string()]);
    while let Some((state, path)) = queue.pop_front() {
        if state == to {
            return Some(path);
        }
        for sc in all
            .iter()
            .filter(|s| s.requires == state && s.provides != s.requires)
        {
            if seen.insert(sc.provides.clone()) {
                let mut p = path.clone();
                p.push(sc);
                queue.push_back((sc.provides.clone(), p));
            }
        }
    }
    None
}

/// All scenarios in the order a full run takes: along the chain of states from
/// `provisioned`, scenarios that keep a state right after the one that reached it.
pub fn default_order(all: &[Scenario]) -> Vec<&Scenario> {
    let mut depth = std::collections::HashMap::from([(PROVISIONED.to_string(), 0usize)]);
    for _ in 0..all.len() {
        for sc in all {
            if let Some(d) = depth.get(&sc.requires).copied() {
                if sc.provides != sc.requires {
                    depth.entry(sc.provides.clone()).or_insert(d + 1);
                }
            }
        }
    }
    let mut order: Vec<&Scenario> = all.iter().collect();
    order.sort_by_key(|s| {
        (
            depth.get(&s.requires).copied().unwrap_or(usize::MAX),
            s.provides != s.requires,
            s.name.clone(),
        )
    });
    order
}
