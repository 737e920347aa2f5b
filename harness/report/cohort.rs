//! The cohort report of `pglab grade`: one row per submission, one column per check group
//! (`provisioned`, then each scenario), each cell passed / failed / skipped, and the first
//! failure's `why` in plain words; written as Markdown (teacher), CSV (gradebook) and JUnit
//! (one testsuite per submission). `cohort.json` keeps the rows and the content hash each was
//! graded at, so that grading again keeps what did not change.

use super::copies::Alike;
use super::junit::{esc, testcase};
use super::outcome::{RunReport, Status, StepOutcome};
use crate::sys::safe_text::{csv_cell, markdown_cell};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The first column: provisioning, before any scenario.
pub use crate::model::phase::PROVISIONED;

/// One check group of one submission.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    pub group: String,
    pub status: Status,
    /// For a failed cell: what went wrong, in words a student understands; for a skipped
    /// one: why it did not run.
    pub why: String,
}

/// One submission's grade.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    pub name: String,
    /// `Submission::content_hash` when it was graded ("" when it could not be read).
    pub hash: String,
    pub cells: Vec<Cell>,
    /// The lab it ran in, its total seconds and phases (not in Markdown/CSV: they change).
    pub lab: String,
    pub seconds: f64,
    pub phases: Vec<(String, f64)>,
    /// Points under the cohort's rubric (`report::rubric`), set when the cohort is written.
    #[serde(default)]
    pub score: f64,
    #[serde(default)]
    pub max_score: f64,
    /// pglab failed on this submission (not a verdict on its work): never kept at a regrade.
    #[serde(default)]
    pub grader_failed: bool,
    /// Who graded it (`run::shard::grader_identity`: pglab's version, scenarios, boxes): a
    /// row graded by another grader is graded again.
    #[serde(default)]
    pub grader: String,
    /// When it was graded (RFC 3339, UTC).
    #[serde(default)]
    pub graded_at: String,
    /// The repository's commit it was graded at ("" when the submission is no git repository).
    #[serde(default)]
    pub commit: String,
    /// With `--due`: the graded commit's date, and how many commits came after the due time.
    #[serde(default)]
    pub commit_date: String,
    #[serde(default)]
    pub later_commits: usize,
}

impl Row {
    /// The row of a run: `groups` in order; steps of a group decide its cell.
    pub fn from_report(name: &str, hash: &str, groups: &[String], r: &RunReport) -> Row {
        let cells = groups
            .iter()
            .map(|g| {
                let steps: Vec<&StepOutcome> =
                    r.checks.iter().filter(|c| group_of(c) == g).collect();
                cell(g, &steps)
            })
            .collect();
        Row {
            lab: r.lab.clone(),
            seconds: r.phases.last().map(|p| p.1).unwrap_or(0.0),
            phases: r
                .phases
                .iter()
                .map(|(p, t)| (p.to_string(), *t))
                .chain([(
                    WAITS.to_string(),
                    r.checks.iter().map(|c| c.waited_secs).sum(),
                )])
                .collect(),
            ..Row::with_cells(name, hash, cells)
        }
    }

    /// A submission that got no run at all (unreadable, or stuck past its deadline): the
    /// first group failed with `why`, the others skipped.
    pub fn verdict(name: &str, hash: &str, groups: &[String], failed: &str, why: &str) -> Row {
        let cells = groups
            .iter()
            .map(|g| {
                if g == failed {
                    Cell {
                        group: g.clone(),
                        status: Status::Failed,
                        why: why.into(),
                    }
                } else {
                    Cell {
                        group: g.clone(),
                        status: Status::Skipped,
                        why: format!("not run: {failed} failed"),
                    }
                }
            })
            .collect();
        Row::with_cells(name, hash, cells)
    }

    /// A row of the groups provisioned, replicate, backup with these statuses; a cell that did
    /// not pass says `why` (for tests).
    #[cfg(test)]
    pub(crate) fn of_statuses(name: &str, statuses: &[Status], why: &str) -> Row {
        let groups = ["provisioned", "replicate", "backup"];
        let cells = statuses
            .iter()
            .zip(groups)
            .map(|(s, g)| Cell {
                group: g.into(),
                status: *s,
                why: if *s == Status::Passed { "" } else { why }.into(),
            })
            .collect();
        Row::with_cells(name, "h", cells)
    }

    /// `group: why` of the first failed cell.
    pub fn first_failure(&self) -> Option<String> {
        self.cells
            .iter()
            .find(|c| c.status == Status::Failed)
            .map(|c| format!("{}: {}", c.group, c.why))
    }

    pub fn passed(&self) -> bool {
        self.cells.iter().all(|c| c.status == Status::Passed)
    }

    /// A row with these cells and nothing else (no lab, no time, no score yet).
    pub(crate) fn with_cells(name: &str, hash: &str, cells: Vec<Cell>) -> Row {
        Row {
            name: name.into(),
            hash: hash.into(),
            cells,
            lab: String::new(),
            seconds: 0.0,
            phases: vec![],
            score: 0.0,
            max_score: 0.0,
            grader_failed: false,
            grader: String::new(),
            graded_at: String::new(),
            commit: String::new(),
            commit_date: String::new(),
            later_commits: 0,
        }
    }
}

fn group_of(c: &StepOutcome) -> &str {
    if c.scenario == "provision" {
        PROVISIONED
    } else {
        &c.scenario
    }
}

/// A group's cell from its steps: failed when one failed (its why), passed when all passed
/// (provisioning that passed leaves no step: passed), skipped otherwise.
fn cell(group: &str, steps: &[&StepOutcome]) -> Cell {
    let (status, why) = if let Some(f) = steps.iter().find(|c| c.status == Status::Failed) {
        (Status::Failed, plain_why(&f.message))
    } else if steps.iter().all(|c| c.status == Status::Passed)
        && (!steps.is_empty() || group == PROVISIONED)
    {
        (Status::Passed, String::new())
    } else {
        let why = steps
            .iter()
            .find(|c| c.status == Status::Skipped)
            .map(|c| c.message.clone())
            .unwrap_or_else(|| "not run".into());
        (Status::Skipped, why)
    };
    Cell {
        group: group.into(),
        status,
        why,
    }
}

/// Hints that say where to look rather than what is wrong: not a student's `why`.
/// The phase of a row that holds its steps' polling waits (part of the scenarios' time).
pub const WAITS: &str = "waits";

const GENERIC_HINTS: &[&str] = &["read the step's log", "read the log"];

/// What went wrong in words a student understands, from a failure paragraph
/// (`sys::exec::failure`): the step's own `why` when the spec gives one; otherwise the
/// failure's first line without where it happened (paths, logs), and the output line that
/// names the error. Timestamps and process ids are removed: the same mistake reads the same.
pub fn plain_why(message: &str) -> String {
    let hint = message
        .split("\n  try: ")
        .nth(1)
        .map(|h| h.lines().next().unwrap_or_default().trim().to_string())
        .filter(|h| !h.is_empty() && !GENERIC_HINTS.iter().any(|g| h.starts_with(g)));
    if let Some(h) = hint {
        return h;
    }
    let first = message.lines().next().unwrap_or_default();
    let host = regex::Regex::new(r"\(.*\bhost ([\w.-]+)")
        .expect("valid regex")
        .captures(first)
        .map(|c| c[1].to_string());
    let what = match first.rfind(" (") {
        Some(i) if first.ends_with(')') => &first[..i],
        _ => first,
    };
    let what = regex::Regex::new(r" \([\w./-]+\.sh\)")
        .expect("valid regex")
        .replace(what, "");
    let mut out = what.to_string();
    if let Some(h) = &host {
        out.push_str(&format!(" on {h}"));
    }
    if let Some(line) = error_line(message, host.as_deref()) {
        out.push_str(": ");
        out.push_str(&line);
    }
    out
}

/// The output line that names the cause, without its timestamp and process id: the limits a
/// host hit (all of them), else the servers'
/// own words first (the last `FATAL:`, `ERROR:` or `PANIC:` of PostgreSQL, barman or libpq,
/// then the last `WARNING:`, e.g. barman's "No archiver enabled"), else the last line that
/// says an error in any words; PostgreSQL's `DETAIL:` and `HINT:` lines that follow it are
/// kept with it ("password authentication failed" says nothing without its DETAIL).
fn error_line(message: &str, host: Option<&str>) -> Option<String> {
    // A configuration error names the cause; the FATAL after it only says the file has errors.
    let config = regex::Regex::new(
        r"invalid value for parameter|unrecognized configuration parameter|syntax error in file",
    )
    .expect("valid regex");
    let tagged = regex::Regex::new(r"\b(FATAL|ERROR|PANIC):").expect("valid regex");
    let warning = regex::Regex::new(r"\bWARNING:").expect("valid regex");
    let errors = regex::Regex::new(r"(?i)\b(fatal|error|failed|denied|refused|not found)\b")
        .expect("valid regex");
    let noise = regex::Regex::new(
        r"\d{4}-\d\d-\d\d[ T][\d:.,]+( ?[A-Z]{2,4}| ?[+-]\d\d(:?\d\d)?)?|\[\d+\]|\b[0-9A-F]{24}\b",
    )
    .expect("valid regex");
    // Another host's server log is not this failure's cause.
    let other_host = |l: &str| {
        l.split_once(": PostgreSQL's log: ")
            .is_some_and(|(h, _)| Some(h) != host)
    };
    let all: Vec<&str> = message
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("| "))
        .collect();
    let lines: Vec<&str> = all.iter().copied().filter(|l| !other_host(l)).collect();
    // A host that hit its limits (memory, processes) explains whatever failed after.
    let limits: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| {
            l.contains(": ran out of memory (limit ") || l.contains(": reached its limit of ")
        })
        .collect();
    if !limits.is_empty() {
        return Some(limits.join("; "));
    }
    let i = [&config, &tagged, &warning, &errors]
        .iter()
        .find_map(|re| lines.iter().rposition(|l| re.is_match(l)))?;
    let clean = |l: &str| {
        let l = l.split_once(": PostgreSQL's log: ").map_or(l, |(_, l)| l);
        let l = noise.replace_all(l, "");
        l.split_whitespace().collect::<Vec<_>>().join(" ")
    };
    let mut out = clean(
        lines[i]
            .split_once(": PostgreSQL's log: ")
            .map_or(lines[i], |(_, l)| l),
    );
    if let Some(cause) = warned_before(&lines, i, &warning, &tagged) {
        out = format!("{} {}", clean(cause), out);
    }
    Some(with_details(out, &lines[i + 1..], &all, &clean))
}

/// The line that names the cause, with PostgreSQL's `DETAIL:` and `HINT:` lines that follow
/// it; without any, those the refusing server logged (`server_said`).
fn with_details(
    mut out: String,
    after: &[&str],
    all: &[&str],
    clean: &dyn Fn(&str) -> String,
) -> String {
    let before = out.len();
    for l in after.iter().take(4) {
        if l.contains("DETAIL:") || l.contains("HINT:") {
            out.push(' ');
            out.push_str(&clean(l));
        }
    }
    if out.len() == before {
        if let Some((host, said)) = server_said(all, &out) {
            out.push_str(&format!(" ({host}: {})", clean(&said)));
        }
    }
    out
}

/// A client's `FATAL:` says only what the server refused; the server that refused it says why
/// in its log, in the DETAIL and HINT after the same FATAL: (host, those lines). A DETAIL that
/// only names the pg_hba.conf line that matched is not a cause.
fn server_said(all: &[&str], client: &str) -> Option<(String, String)> {
    let (_, refused) = client.split_once("FATAL:")?;
    let refused = refused.trim();
    let j = all.iter().position(|l| {
        l.contains(": PostgreSQL's log: ") && l.contains("FATAL:") && l.ends_with(refused)
    })?;
    let host = all[j].split_once(": PostgreSQL's log: ")?.0;
    let said: Vec<&str> = all[j + 1..]
        .iter()
        .take(2)
        .filter(|l| l.starts_with(&format!("{host}: PostgreSQL's log: ")))
        .filter(|l| l.contains("DETAIL:") || l.contains("HINT:"))
        .filter(|l| !l.contains("DETAIL:  Connection matched"))
        .filter_map(|l| {
            l.find("DETAIL:")
                .or_else(|| l.find("HINT:"))
                .map(|k| &l[k..])
        })
        .collect();
    (!said.is_empty()).then(|| (format!("{host}'s log"), said.join(" ")))
}

/// The warning just before warning line `i`, when there is one: a warning right after
/// another is often its consequence (barman 3: "No archiver enabled for server 'node1' ...",
/// then "Forcing 'archiver = on'"), and the cause goes first.
fn warned_before<'a>(
    lines: &[&'a str],
    i: usize,
    warning: &regex::Regex,
    tagged: &regex::Regex,
) -> Option<&'a str> {
    let before = lines[..i].last().copied()?;
    (warning.is_match(lines[i])
        && warning.is_match(before)
        && !tagged.is_match(before)
        && before != lines[i])
        .then_some(before)
}

fn word(s: Status) -> &'static str {
    match s {
        Status::Passed => "passed",
        Status::Failed => "FAILED",
        Status::Skipped => "skipped",
    }
}

/// The Markdown table; `legend` (group, description) follows it.
pub fn markdown(groups: &[String], rows: &[Row], legend: &[(String, String)]) -> String {
    let mut s = format!(
        "| submission | score | {} | first failure |\n",
        groups.join(" | ")
    );
    s.push_str(&format!("|---|---|{}---|\n", "---|".repeat(groups.len())));
    for r in rows {
        let cells: Vec<&str> = r.cells.iter().map(|c| word(c.status)).collect();
        let first = r.first_failure().unwrap_or_default();
        s.push_str(&format!(
            "| {} | {}/{} | {} | {} |\n",
            markdown_cell(&r.name),
            r.score,
            r.max_score,
            cells.join(" | "),
            markdown_cell(&first)
        ));
    }
    let graded = rows.iter().filter(|r| r.passed()).count();
    s.push_str(&format!(
        "\n{graded} of {} submissions passed every group.\n\n",
        rows.len()
    ));
    for (g, d) in legend {
        s.push_str(&format!("- **{g}**: {d}\n"));
    }
    let wrong = mistakes(rows);
    if !wrong.is_empty() {
        s.push_str(
            "\n## What the cohort got wrong\n\n| mistake | submissions | who |\n|---|---|---|\n",
        );
        for m in &wrong {
            s.push_str(&format!(
                "| {} | {} | {} |\n",
                markdown_cell(&m.mistake),
                m.count,
                markdown_cell(&m.submissions.join(", "))
            ));
        }
    }
    s
}

/// One mistake of a cohort: its words (a row's first failure; timestamps and ids are already
/// gone, so the same mistake reads the same), how many made it, and who.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mistake {
    pub mistake: String,
    pub count: usize,
    pub submissions: Vec<String>,
}

/// The cohort's first failures grouped, most frequent first (then by their words).
pub fn mistakes(rows: &[Row]) -> Vec<Mistake> {
    let mut by: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in rows {
        if let Some(f) = r.first_failure() {
            by.entry(f).or_default().push(r.name.clone());
        }
    }
    let mut out: Vec<Mistake> = by
        .into_iter()
        .map(|(mistake, submissions)| Mistake {
            count: submissions.len(),
            mistake,
            submissions,
        })
        .collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then(a.mistake.cmp(&b.mistake)));
    out
}

/// `cohort.json`: every row (the regrade cache), the mistakes and the submissions alike.
pub fn json(rows: &[Row]) -> Result<String, serde_json::Error> {
    json_with(rows, &[])
}

pub fn json_with(rows: &[Row], alike: &[Alike]) -> Result<String, serde_json::Error> {
    serde_json::to_string_pretty(&serde_json::json!({
        "rows": rows,
        "mistakes": mistakes(rows),
        "alike": alike,
    }))
}

/// The submissions alike of an earlier `cohort.json` (none in an older one).
pub fn load_alike(dir: &Path) -> Vec<Alike> {
    #[derive(Deserialize)]
    struct Saved {
        #[serde(default)]
        alike: Vec<Alike>,
    }
    std::fs::read(dir.join("cohort.json"))
        .ok()
        .and_then(|t| serde_json::from_slice::<Saved>(&t).ok())
        .map(|s| s.alike)
        .unwrap_or_default()
}

/// The Markdown section of submissions alike (empty when there are none).
pub fn alike_markdown(alike: &[Alike]) -> String {
    if alike.is_empty() {
        return String::new();
    }
    let mut s = String::from(
        "\n## Submissions alike\n\n| submissions | alike | files in common |\n|---|---|---|\n",
    );
    for a in alike {
        s.push_str(&format!(
            "| {} | {:.0}% | {} |\n",
            markdown_cell(&a.submissions.join(", ")),
            a.similarity * 100.0,
            markdown_cell(&a.files.join(", "))
        ));
    }
    s
}

/// CSV for a gradebook: the table's columns, plus how many groups passed.
pub fn csv(groups: &[String], rows: &[Row]) -> String {
    let mut s = format!(
        "submission,score,max_score,{},groups_passed,first_failure\n",
        groups.join(",")
    );
    for r in rows {
        let cells: Vec<&str> = r
            .cells
            .iter()
            .map(|c| word(c.status))
            .map(|w| if w == "FAILED" { "failed" } else { w })
            .collect();
        let passed = r
            .cells
            .iter()
            .filter(|c| c.status == Status::Passed)
            .count();
        s.push_str(&format!(
            "{},{},{},{},{passed},{}\n",
            csv_cell(&r.name),
            r.score,
            r.max_score,
            cells.join(","),
            csv_cell(&r.first_failure().unwrap_or_default())
        ));
    }
    s
}

/// JUnit: one testsuite per submission, one testcase per step that ran (a submission with no
/// run has one testcase per group: its verdict).
pub fn junit(rows: &[Row], reports: &[(String, Option<RunReport>)]) -> String {
    let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let stamp = stamp.trim_end_matches('Z');
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n");
    for (id, row) in rows.iter().enumerate() {
        let report = reports
            .iter()
            .find(|(n, _)| n == &row.name)
            .and_then(|(_, r)| r.as_ref());
        out.push_str(&suite(row, report, id, stamp));
    }
    out.push_str("</testsuites>\n");
    out
}

fn suite(row: &Row, report: Option<&RunReport>, id: usize, stamp: &str) -> String {
    let cases: Vec<StepOutcome> = match report {
        Some(r) => r.checks.clone(),
        None => row.cells.iter().map(|c| verdict_case(row, c)).collect(),
    };
    let ran: Vec<&StepOutcome> = cases
        .iter()
        .filter(|c| c.status != Status::Skipped)
        .collect();
    let failed = ran.iter().filter(|c| c.status == Status::Failed).count();
    let mut out = format!(
        "  <testsuite package=\"{n}\" id=\"{id}\" name=\"{n}\" timestamp=\"{stamp}\" hostname=\"localhost\" tests=\"{}\" failures=\"{failed}\" errors=\"0\" time=\"{:.3}\">\n    <properties>\n      <property name=\"content_hash\" value=\"{}\"/>\n    </properties>\n",
        ran.len(),
        row.seconds,
        esc(&row.hash),
        n = esc(&row.name),
    );
    for c in &ran {
        out.push_str(&testcase(&row.name, c));
    }
    let not_run: String = cases
        .iter()
        .filter(|c| c.status == Status::Skipped)
        .map(|c| format!("not run: {}.{}: {}\n", c.scenario, c.step, c.message))
        .collect();
    out.push_str(&format!(
        "    <system-out>{}</system-out>\n    <system-err></system-err>\n  </testsuite>\n",
        esc(&not_run)
    ));
    out
}

fn verdict_case(row: &Row, c: &Cell) -> StepOutcome {
    StepOutcome {
        scenario: c.group.clone(),
        step: c.group.clone(),
        host: "lab".into(),
        location: row.name.clone(),
        status: c.status,
        duration_secs: 0.0,
        waited_secs: 0.0,
        message: c.why.clone(),
    }
}

/// The rows of an earlier grading in `dir` (none when there is none or it cannot be read:
/// then everything is graded again).
pub fn load_rows(dir: &Path) -> Vec<Row> {
    std::fs::read(dir.join("cohort.json"))
        .ok()
        .and_then(|t| rows_of_json(&t).ok())
        .unwrap_or_default()
}

/// The rows of a `cohort.json` (this version's, or an older rows-only one).
pub fn rows_of_json(text: &[u8]) -> Result<Vec<Row>, serde_json::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Saved {
        Now { rows: Vec<Row> },
        Before(Vec<Row>),
    }
    serde_json::from_slice(text).map(|s| match s {
        Saved::Now { rows } | Saved::Before(rows) => rows,
    })
}

/// A submission's report card: its cells with their whys, for the student.
pub fn card(row: &Row, legend: &[(String, String)]) -> String {
    let mut s = format!(
        "# {}\n\nScore: {} of {}\n\n| check group | result | why |\n|---|---|---|\n",
        markdown_cell(&row.name),
        row.score,
        row.max_score
    );
    for c in &row.cells {
        let why = if c.status == Status::Passed {
            ""
        } else {
            &c.why
        };
        s.push_str(&format!(
            "| {} | {} | {} |\n",
            c.group,
            word(c.status),
            markdown_cell(why)
        ));
    }
    s.push('\n');
    for (g, d) in legend {
        s.push_str(&format!("- **{g}**: {d}\n"));
    }
    s
}

#[cfg(test)]
mod tests {
    /// The clone's client says only "password authentication failed"; the row carries what
    /// node1's PostgreSQL logged after the same FATAL (the real lines of the md5-passwords,
    /// replicator-without-password and wrong-pgpass fixtures' verdicts), so that the three
    /// mistakes read apart.
    #[test]
    fn a_refused_connection_carries_the_servers_detail() {
        let verdict = |detail: &str| {
            format!("provisioning step \"standby cloned through its own slot\" (30-standby.sh) failed with exit code 1 (host node2, submission /s, log /l)\n  command: bash < 30-standby.sh\n  output (last lines):\n    | pg_basebackup: error: connection to server at \"192.168.56.11\", port 5432 failed: FATAL:  password authentication failed for user \"replicator\"\n    | pglab: bash stopped before the end of the script, with exit status 1\n  the servers at that moment:\n    | node1: PostgreSQL's log: 2026-12-07 21:44:09.393 UTC [285] barman@postgres FATAL:  password authentication failed for user \"barman\"\n    | node1: PostgreSQL's log: 2026-12-07 21:44:09.393 UTC [285] barman@postgres DETAIL:  User \"barman\" does not have a valid SCRAM secret.\n    | node1: PostgreSQL's log: 2026-12-07 21:44:09.393 UTC [286] replicator@[unknown] FATAL:  password authentication failed for user \"replicator\"\n    | node1: PostgreSQL's log: 2026-12-07 21:44:09.393 UTC [286] replicator@[unknown] DETAIL:  {detail}")
        };
        let row = plain_why(&verdict(
            "User \"replicator\" does not have a valid SCRAM secret.",
        ));
        assert_eq!(row, "provisioning step \"standby cloned through its own slot\" failed with exit code 1 on node2: pg_basebackup: error: connection to server at \"192.168.56.11\", port 5432 failed: FATAL: password authentication failed for user \"replicator\" (node1's log: DETAIL: User \"replicator\" does not have a valid SCRAM secret.)");
        let row = plain_why(&verdict("User \"replicator\" has no password assigned."));
        assert!(
            row.ends_with("(node1's log: DETAIL: User \"replicator\" has no password assigned.)"),
            "{row}"
        );
        // Which pg_hba.conf line matched is no cause: the row stays the client's words.
        // A DETAIL is the host's text, which the submission controls: a formula, a cell break
        // and an escape sequence reach the reports neutralised.
        let hostile = plain_why(&verdict("=HYPERLINK(\"x\") | <b>\u{1b}[2J"));
        assert!(hostile.contains("DETAIL: =HYPERLINK"), "{hostile}");
        let csv = crate::sys::safe_text::csv_cell(&hostile);
        assert!(csv.starts_with('"') || csv.starts_with('\''), "{csv}");
        let md = crate::sys::safe_text::markdown_cell(&hostile);
        assert!(!md.contains(" | ") && !md.contains("<b>"), "{md}");
        assert!(!crate::sys::safe_text::terminal(&hostile).contains('\u{1b}'));
        let row = plain_why(&verdict("Connection matched pg_hba.conf line 8: \"host replication replicator 192.168.56.12/32 scram-sha-256\""));
        assert!(row.ends_with("for user \"replicator\""), "{row}");
    }

    use super::*;

    #[test]
    fn a_provisioning_failure_reads_as_step_host_and_error() {
        let m = "provisioning step \"standby cloned through its own slot\" (30-standby.sh) failed with exit code 1 (host node2, submission /x/y, log /var/lib/pglab/runs/r/a.log)\n  command: bash\n  output (last lines):\n    | 2026-11-24 19:00:01.123 UTC [4242] LOG:  x\n    | pg_basebackup: error: connection to server at \"192.168.56.11\", port 5432 failed: FATAL:  password authentication failed for user \"replicator\"\n    | done\n  try: read the step's log; fix the script";
        assert_eq!(
            plain_why(m),
            "provisioning step \"standby cloned through its own slot\" failed with exit code 1 on node2: pg_basebackup: error: connection to server at \"192.168.56.11\", port 5432 failed: FATAL: password authentication failed for user \"replicator\""
        );
    }

    /// The servers' own words make the verdict: barman's WARNING when nothing else says
    /// more, PostgreSQL's FATAL with its DETAIL and HINT; a generic hint never hides them.
    #[test]
    fn a_host_that_hit_its_limits_is_the_verdicts_cause() {
        let m = "shell provisioner scripts/leader.sh (Vagrantfile:9) failed with exit code 1 (host leader, log /l)\n  command: bash\n  output (last lines):\n    | bash: line 58: 2222 Killed python3 -c\n  try: read the log; the same script fails under `vagrant up` too\n  the servers at that moment:\n    | leader: ran out of memory (limit 2 GiB): the kernel killed 1 process(es) there\n    | leader: reached its limit of 2048 processes (1 fork(s) refused)";
        assert_eq!(
            plain_why(m),
            "shell provisioner scripts/leader.sh (Vagrantfile:9) failed with exit code 1 on leader: leader: ran out of memory (limit 2 GiB): the kernel killed 1 process(es) there; leader: reached its limit of 2048 processes (1 fork(s) refused)"
        );
    }

    #[test]
    fn a_verdict_carries_the_line_that_names_the_cause() {
        let barman = "provisioning step \"barman\" (50-barman.sh) failed with exit code 1 (host barman, log /x)\n  command: bash\n  output (last lines):\n    | Server node1:\n    | WARNING: No archiver enabled for server 'node1'. Please turn on 'archiver', 'streaming_archiver' or both\n    | \tPostgreSQL: OK\n  try: read the step's log; fix the script";
        assert!(
            plain_why(barman).ends_with("on barman: WARNING: No archiver enabled for server 'node1'. Please turn on 'archiver', 'streaming_archiver' or both"),
            "{}",
            plain_why(barman)
        );
        // barman 3.4's real pair: the cause, then what barman did about it.
        let pair = barman.replace(
            "or both\n",
            "or both\n    | WARNING: Forcing 'archiver = on'\n",
        );
        let why = plain_why(&pair);
        assert!(
            why.ends_with("on barman: WARNING: No archiver enabled for server 'node1'. Please turn on 'archiver', 'streaming_archiver' or both WARNING: Forcing 'archiver = on'"),
            "{why}"
        );
        let pg = "Ansible task \"Clone\" failed (playbook run 1) (host node2, submission /s, log /l)\n  command: ansible-playbook\n  output (last lines):\n    | 2026-11-24 19:00:01.123 UTC [4242] FATAL:  password authentication failed for user \"replicator\"\n    | 2026-11-24 19:00:01.123 UTC [4242] DETAIL:  User \"replicator\" does not have a valid SCRAM secret.\n    | some line after\n  try: read the log; fix the playbook and run again";
        assert_eq!(
            plain_why(pg),
            "Ansible task \"Clone\" failed (playbook run 1) on node2: FATAL: password authentication failed for user \"replicator\" DETAIL: User \"replicator\" does not have a valid SCRAM secret."
        );
    }

    /// A systemd job failure carries PostgreSQL's log of every host: the failing host's
    /// configuration error is the cause, not the FATAL after it nor another host's line.
    #[test]
    fn a_failed_start_is_named_by_the_configuration_error_of_its_host() {
        let m = "provisioning step \"postgresql settings\" (10-postgresql.sh) failed with exit code 1 (host node1, submission /s, log /l)\n  command: bash\n  output (last lines):\n    | Job for postgresql@15-main.service failed because the service did not take the steps required by its unit configuration.\n  try: read the step's log; fix the script\n  the servers at that moment:\n    | node1: PostgreSQL's log: 2026-12-02 05:55:28.310 UTC [180] LOG:  invalid value for parameter \"wal_level\": \"replcia\"\n    | node1: PostgreSQL's log: 2026-12-02 05:55:28.310 UTC [180] HINT:  Available values: minimal, replica, logical.\n    | node1: PostgreSQL's log: 2026-12-02 05:55:28.317 UTC [180] FATAL:  configuration file \"/etc/postgresql/15/main/conf.d/pglab.conf\" contains errors\n    | node2: PostgreSQL's log: 2026-12-02 05:55:28.312 UTC [139] FATAL:  the other host";
        assert_eq!(
            plain_why(m),
            "provisioning step \"postgresql settings\" failed with exit code 1 on node1: LOG: invalid value for parameter \"wal_level\": \"replcia\" HINT: Available values: minimal, replica, logical."
        );
    }

    #[test]
    fn a_step_with_a_why_reads_as_its_why_and_timestamps_go() {
        let m = "step \"x\" failed: expected t (scenario replicate at scenarios/replicate.toml:6, host node2, log /l)\n  command: c\n  try: clone it with -C -S node2";
        assert_eq!(plain_why(m), "clone it with -C -S node2");
        let m = "step \"x\" failed (scenario r at f:1, host node1, log /l)\n  output (last lines):\n    | 2026-11-24 19:00:01.123 UTC [77] FATAL:  no pg_hba.conf entry";
        assert_eq!(
            plain_why(m),
            "step \"x\" failed on node1: FATAL: no pg_hba.conf entry"
        );
    }

    fn row(name: &str, statuses: &[Status]) -> Row {
        Row {
            lab: "l".into(),
            seconds: 1.0,
            ..Row::of_statuses(name, statuses, "no slot, \"node2\"")
        }
    }

    /// The same first failure in several rows is one mistake with its count and who made it;
    /// cohort.json carries them with the rows, and an older cohort.json (rows only) still
    /// loads as the regrade cache.
    #[test]
    fn mistakes_are_grouped_most_frequent_first() {
        use Status::*;
        let rows = [
            row("alice", &[Passed, Failed, Skipped]),
            row("bob", &[Passed, Passed, Passed]),
            row("carol", &[Passed, Failed, Skipped]),
            row("dan", &[Failed, Skipped, Skipped]),
        ];
        let m = mistakes(&rows);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].count, 2);
        assert_eq!(m[0].submissions, ["alice", "carol"]);
        assert_eq!(m[0].mistake, "replicate: no slot, \"node2\"");
        assert_eq!(m[1].submissions, ["dan"]);
        let md = markdown(
            &["provisioned".into(), "replicate".into(), "backup".into()],
            &rows,
            &[],
        );
        assert!(md.contains("## What the cohort got wrong"), "{md}");
        assert!(
            md.contains("| replicate: no slot, \"node2\" | 2 | alice, carol |"),
            "{md}"
        );
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("cohort.json"), json(&rows).unwrap()).unwrap();
        assert_eq!(load_rows(d.path()).len(), 4);
        std::fs::write(
            d.path().join("cohort.json"),
            serde_json::to_string(&rows).unwrap(),
        )
        .unwrap();
        assert_eq!(load_rows(d.path()).len(), 4);
    }

    #[test]
    fn markdown_and_csv_show_each_cell_and_the_first_failure() {
        use Status::*;
        let groups: Vec<String> = ["provisioned", "replicate", "backup"]
            .map(String::from)
            .into();
        let rows = [
            row("alice", &[Passed, Passed, Passed]),
            row("bob", &[Passed, Failed, Skipped]),
        ];
        let md = markdown(&groups, &rows, &[]);
        assert!(
            md.contains("| alice | 0/0 | passed | passed | passed |  |\n"),
            "{md}"
        );
        assert!(
            md.contains(
                "| bob | 0/0 | passed | FAILED | skipped | replicate: no slot, \"node2\" |"
            ),
            "{md}"
        );
        assert!(md.contains("1 of 2 submissions passed"), "{md}");
        let csv = csv(&groups, &rows);
        assert_eq!(
            csv,
            "submission,score,max_score,provisioned,replicate,backup,groups_passed,first_failure\nalice,0,0,passed,passed,passed,3,\nbob,0,0,passed,failed,skipped,1,\"replicate: no slot, \"\"node2\"\"\"\n"
        );
    }

    /// A hostile submission's name and message: a formula, a cell break, HTML, a bare CR,
    /// characters XML forbids, an escape sequence.
    const HOSTILE: &str = "=HYPERLINK(\"http://x\") | <b>x</b>\r,@y\u{FFFF}\u{1b}[2J";

    /// Splits RFC 4180 CSV into records of fields (quotes, doubled quotes, CR and LF inside).
    fn csv_records(text: &str) -> Vec<Vec<String>> {
        let (mut records, mut fields, mut field) = (vec![], vec![], String::new());
        let (mut quoted, mut chars) = (false, text.chars().peekable());
        while let Some(c) = chars.next() {
            match (quoted, c) {
                (true, '"') if chars.peek() == Some(&'"') => {
                    field.push('"');
                    chars.next();
                }
                (true, '"') => quoted = false,
                (true, c) => field.push(c),
                (false, '"') => quoted = true,
                (false, ',') => fields.push(std::mem::take(&mut field)),
                (false, '\n') => {
                    fields.push(std::mem::take(&mut field));
                    records.push(std::mem::take(&mut fields));
                }
                (false, c) => field.push(c),
            }
        }
        records
    }

    #[test]
    fn hostile_text_stays_text_in_every_cohort_format() {
        use Status::*;
        let groups: Vec<String> = ["provisioned", "replicate", "backup"]
            .map(String::from)
            .into();
        let mut bad = row(HOSTILE, &[Passed, Failed, Skipped]);
        bad.cells[1].why = HOSTILE.into();
        let rows = [row("alice", &[Passed, Passed, Passed]), bad];
        let records = csv_records(&csv(&groups, &rows));
        assert_eq!(records.len(), 3, "{records:?}");
        assert!(records.iter().all(|r| r.len() == 8), "{records:?}");
        for f in records.iter().flatten() {
            assert!(!f.starts_with(['=', '+', '-', '@']), "a formula: {f:?}");
        }
        let md = markdown(&groups, &rows, &[]);
        let table: Vec<&str> = md.lines().take_while(|l| l.starts_with('|')).collect();
        assert_eq!(table.len(), 4, "{md}");
        let bars = |l: &str| l.len() - l.replace('|', "").len() - l.matches("\\|").count();
        assert!(table.iter().all(|l| bars(l) == 7), "{md}");
        assert!(!md.contains(['<', '\r', '\u{1b}']), "{md}");
        let card = card(&rows[1], &[]);
        assert!(!card.contains(['<', '\r', '\u{1b}']), "{card}");
        let xml = junit(&rows, &[]);
        assert!(!xml.contains(['\u{FFFF}', '\u{1b}']), "{xml}");
        let parsed = crate::sys::exec::run(
            &[
                "python3".into(),
                "-c".into(),
                "import sys, xml.dom.minidom as m; m.parseString(sys.stdin.buffer.read())".into(),
            ],
            Some(xml.as_bytes()),
            std::time::Duration::from_secs(20),
        )
        .unwrap();
        assert!(parsed.ok(), "junit.xml does not parse: {}", parsed.stderr);
    }
}
