//! Runs scenario steps on a lab, through the `Backend` boundary only. Waits poll every
//! 100 ms up to a deadline and say what they waited for and the last value seen.

use super::normalize::normalize;
use super::spec::{Action, Check, Scenario, Step, StepKind};
use crate::lab::Lab;
use crate::report::runlog::RunLog;
use crate::sys::exec::{failure, scaled, tail, CmdOutput};
use anyhow::{anyhow, bail, Result};
use regex::Regex;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

pub use crate::report::outcome::{Status, StepOutcome};

/// A step that did not run (yet): `message` says why.
pub fn skipped(sc: &Scenario, st: &Step, message: &str) -> StepOutcome {
    StepOutcome {
        scenario: sc.name.clone(),
        step: st.name.clone(),
        host: st.host.clone(),
        location: sc.at(st.line),
        status: Status::Skipped,
        duration_secs: 0.0,
        waited_secs: 0.0,
        message: message.into(),
    }
}

/// What a step runs: as which user, the script (with the prelude), and how it is shown in
/// logs and verdicts (without the prelude).
struct StepCommand {
    user: String,
    script: String,
    shown: String,
}

impl StepCommand {
    fn new(user: &str, script: String, shown: String) -> StepCommand {
        StepCommand {
            user: user.to_string(),
            script,
            shown,
        }
    }
}

pub struct Runner<'a> {
    lab: &'a Lab,
    log: &'a RunLog,
    started: Instant,
    /// Values saved by steps (`save = "name"`), used as `{{name}}`; kept with the lab.
    pub vars: BTreeMap<String, String>,
    prelude: String,
    /// Seconds the last step spent polling for its check (see `StepOutcome::waited_secs`).
    waited: std::cell::Cell<f64>,
    /// Connections kept for SQL checks (`super::sql`).
    sql: super::sql::Kept,
}

fn var_re() -> &'static Regex {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| Regex::new(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}").expect("valid"))
}

/// Replaces `{{name}}` with saved values; an unknown name is an error. A submission's
/// command (`{{homework_recover}}`) may itself name values: those are filled in too.
pub fn substitute(text: &str, vars: &BTreeMap<String, String>) -> Result<String> {
    let once = substitute_once(text, vars)?;
    if once != text && var_re().is_match(&once) && text.contains("{{homework_") {
        return substitute_once(&once, vars);
    }
    Ok(once)
}

fn substitute_once(text: &str, vars: &BTreeMap<String, String>) -> Result<String> {
    let mut missing = None;
    let out = var_re().replace_all(text, |c: &regex::Captures| match vars.get(&c[1]) {
        Some(v) => v.clone(),
        None => {
            missing = Some(c[1].to_string());
            String::new()
        }
    });
    if let Some(cmd) = missing.as_deref().and_then(|m| m.strip_prefix("homework_")) {
        bail!("{{{{homework_{cmd}}}}} is not known: the submission's provision.toml has no `{cmd}` in [commands] (see examples/reference/provision.toml)");
    }
    if let Some(m) = missing {
        bail!(
            "{{{{{m}}}}} is not known: no earlier step saved it (`save = \"{m}\"`); known: {}",
            vars.keys().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    Ok(out.into_owned())
}

/// Why `out` does not satisfy `check` (None when it does).
pub fn unmet(check: &Check, out: &CmdOutput) -> Option<String> {
    let all = out.combined();
    if let Some(f) = &check.fails_with {
        if out.code == 0 {
            return Some(format!(
                "expected the command to fail with {f:?}, it succeeded"
            ));
        }
        if !all.contains(f.as_str()) {
            return Some(format!("expected the failure to say {f:?}"));
        }
    } else {
        let want = check.exit.unwrap_or(0);
        if out.code != want {
            return Some(format!("exit code {} (expected {want})", out.code));
        }
    }
    if let Some(e) = &check.expect {
        if out.stdout.trim() != e.trim() {
            return Some(format!(
                "output {:?}, expected {:?}",
                tail(out.stdout.trim(), 5),
                e.trim()
            ));
        }
    }
    if let Some(c) = &check.contains {
        if !all.contains(c.as_str()) {
            return Some(format!("output does not contain {c:?}"));
        }
    }
    if let Some(c) = &check.not_contains {
        if all.contains(c.as_str()) {
            return Some(format!("output contains {c:?}, which it must not"));
        }
    }
    None
}

/// What a wait waits for, in words.
fn awaited(check: &Check) -> String {
    let mut parts = Vec::new();
    if let Some(e) = &check.expect {
        parts.push(format!("output = {e:?}"));
    }
    if let Some(c) = &check.contains {
        parts.push(format!("output containing {c:?}"));
    }
    if let Some(c) = &check.not_contains {
        parts.push(format!("output without {c:?}"));
    }
    if let Some(f) = &check.fails_with {
        parts.push(format!("a failure saying {f:?}"));
    } else if let Some(x) = check.exit {
        parts.push(format!("exit code {x}"));
    }
    parts.join(" and ")
}

/// What every scenario script starts with: the lab's environment and scenarios/prelude.sh.
pub fn prelude(lab: &Lab) -> String {
    let mut prelude = crate::provision::env_prelude(&crate::provision::lab_env(lab.topology(), ""));
    prelude.push_str(
        &std::fs::read_to_string(super::spec::scenarios_dir().join("prelude.sh"))
            .unwrap_or_default(),
    );
    prelude
}

impl<'a> Runner<'a> {
    pub fn new(
        lab: &'a Lab,
        log: &'a RunLog,
        started: Instant,
        vars: BTreeMap<String, String>,
    ) -> Runner<'a> {
        Runner {
            lab,
            log,
            started,
            vars,
            prelude: prelude(lab),
            waited: std::cell::Cell::new(0.0),
            sql: super::sql::Kept::default(),
        }
    }

    /// Runs the scenario's steps in order; after a failure the rest are skipped.
    pub fn run(&mut self, sc: &Scenario) -> Vec<StepOutcome> {
        let mut outcomes = Vec::new();
        let mut failed = false;
        for (i, st) in sc.steps.iter().enumerate() {
            let mut o = skipped(sc, st, "skipped: an earlier step failed");
            if failed || crate::sys::cleanup::aborting() {
                outcomes.push(o);
                continue;
            }
            let t = Instant::now();
            let label = format!(
                "{} step {}/{} {:?} on {}",
                sc.name,
                i + 1,
                sc.steps.len(),
                st.name,
                st.host
            );
            let result = self.step(sc, i + 1, st);
            o.duration_secs = t.elapsed().as_secs_f64();
            o.waited_secs = self.waited.take();
            match result {
                Ok(()) => {
                    o.status = Status::Passed;
                    o.message.clear();
                    crate::sys::progress::say(
                        self.started,
                        "run",
                        &format!("{label}: ok ({:.1}s)", o.duration_secs),
                    );
                }
                Err(e) => {
                    failed = true;
                    o.status = Status::Failed;
                    o.message = self.log.redact(&format!("{e:#}"));
                    crate::sys::progress::say(
                        self.started,
                        "run",
                        &format!("{label}: FAILED ({:.1}s)", o.duration_secs),
                    );
                    eprintln!("{}", o.message);
                }
            }
            outcomes.push(o);
        }
        outcomes
    }

    fn script(&self, st: &Step) -> Result<StepCommand> {
        let s = |t: &str| substitute(t, &self.vars);
        Ok(match &st.kind {
            StepKind::Sql { db, sql } => {
                let sql = s(sql)?;
                let script = format!(
                    "{}psql -X -A -t -q -v ON_ERROR_STOP=1 -d {} <<'PGLAB_SQL'\n{sql}\nPGLAB_SQL\n",
                    self.prelude,
                    crate::backend::shell_quote(db)
                );
                StepCommand::new("postgres", script, format!("psql -d {db} -At: {sql}"))
            }
            StepKind::Psql { db, input } => {
                let input = s(input)?;
                let script = format!("{}psql -X -q -P pager=off -v ON_ERROR_STOP=1 -d {} <<'PGLAB_SQL'\n{input}\nPGLAB_SQL\n", self.prelude, crate::backend::shell_quote(db));
                StepCommand::new("postgres", script, format!("psql -d {db}: {input}"))
            }
            StepKind::Shell { user, script } => {
                let body = s(script)?;
                let script = format!("{}set -o pipefail\n{body}\n", self.prelude);
                StepCommand::new(user, script, body)
            }
            StepKind::Barman { args } => {
                let args = s(args)?;
                let script = format!("{}barman {args}\n", self.prelude);
                StepCommand::new("barman", script, format!("barman {args}"))
            }
            StepKind::Connect { conninfo } => {
                let conninfo = s(conninfo)?;
                let shown = format!(
                    "tokio-postgres from the lab's gateway to {}:5432: {conninfo}",
                    st.host
                );
                StepCommand::new("", conninfo, shown)
            }
            StepKind::Action(_) => unreachable!("actions have no script"),
        })
    }

    /// Connects to PostgreSQL on `host` (port 5432) from pglab's side of the lab with
    /// tokio-postgres and runs `SELECT 1`. Exit code 0 and "connected", or 1 and the
    /// server's error: checked like any command's output.
    fn connect(&self, host: &str, conninfo: &str) -> CmdOutput {
        let started = Instant::now();
        let result = (|| -> Result<()> {
            let h = self
                .lab
                .topology()
                .host(host)
                .ok_or_else(|| anyhow!("no host {host}"))?;
            let addr = std::net::SocketAddr::from((h.address, 5432));
            let stream = self
                .lab
                .backend()
                .connect_tcp(addr, Duration::from_secs(5))?;
            stream.set_nonblocking(true)?;
            let config: tokio_postgres::Config = conninfo.parse()?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let stream = tokio::net::TcpStream::from_std(stream)?;
                let (client, connection) = config
                    .connect_raw(stream, tokio_postgres::NoTls)
                    .await
                    .map_err(describe)?;
                let task = tokio::spawn(connection);
                client.simple_query("SELECT 1").await.map_err(describe)?;
                drop(client);
                let _ = task.await;
                Ok(())
            })
        })();
        match result {
            Ok(()) => CmdOutput {
                code: 0,
                stdout: "connected\n".into(),
                duration: started.elapsed(),
                ..Default::default()
            },
            Err(e) => CmdOutput {
                code: 1,
                stderr: format!("{e:#}\n"),
                duration: started.elapsed(),
                ..Default::default()
            },
        }
    }

    fn action(&self, st: &Step, a: &Action) -> Result<()> {
        let b = self.lab.backend();
        match a {
            Action::StopHost => b.stop_host(&st.host),
            Action::StartHost => b.start_host(&st.host),
            Action::CutLink(p) => b.cut_link(&st.host, p),
            Action::HealLink(p) => b.heal_link(&st.host, p),
        }
    }

    /// barman does not check whether PostgreSQL runs at the destination of `recover`
    /// (it would overwrite a live data directory): pglab does, before barman touches anything.
    fn guard_recover(&self, sc: &Scenario, st: &Step, args: &str) -> Result<()> {
        let Some((host, dest)) = recover_destination(args) else {
            return Ok(());
        };
        let topo = self.lab.topology();
        let Some(h) = topo
            .hosts
            .iter()
            .find(|h| h.name == host || h.address.to_string() == host)
        else {
            bail!(
                "{}: step {:?}: barman recover targets {host:?}, which is not a host of this lab",
                sc.at(st.line),
                st.name
            );
        };
        // postmaster.pid in the data directory, or (Debian) a running cluster using it.
        let probe = format!(
            "d={}; pid=$(head -1 \"$d/postmaster.pid\" 2>/dev/null) && kill -0 \"$pid\" 2>/dev/null && exit 0\n\
             for p in $(pgrep -x postgres || pgrep -f 'bin/postgres'); do tr '\\0' ' ' < /proc/$p/cmdline | grep -q -- \"$d\" && exit 0; done\n\
             psql_dir=$(runuser -u postgres -- psql -XAtqc 'SHOW data_directory' 2>/dev/null) && [ \"$psql_dir\" = \"$d\" ] && exit 0\nexit 1",
            crate::backend::shell_quote(&dest)
        );
        let out = self
            .lab
            .backend()
            .check(&h.name, "root", &probe, Duration::from_secs(30))?;
        if out.ok() {
            return Err(failure(
                &format!("step {:?} refused: PostgreSQL is running on {} in {dest}; barman recover would overwrite a live data directory", st.name, h.name),
                &format!("scenario {} at {}, host {}", sc.name, sc.at(st.line), st.host),
                &format!("barman {args}"),
                "",
                &format!("stop PostgreSQL on {} first (systemctl stop postgresql)", h.name),
            ));
        }
        Ok(())
    }

    /// One step: its script on its host until its check is met (or its wait is over),
    /// logged; then what it saves and the snapshot it compares.
    fn step(&mut self, sc: &Scenario, index: usize, st: &Step) -> Result<()> {
        if let StepKind::Action(a) = &st.kind {
            return self.action(st, a).map_err(|e| {
                anyhow!(
                    "{}: step {:?} on {}: {e:#}",
                    sc.at(st.line),
                    st.name,
                    st.host
                )
            });
        }
        if let StepKind::Barman { args } = &st.kind {
            let args = substitute(args, &self.vars)?;
            if let Err(e) = self.guard_recover(sc, st, &args) {
                return self.refused(sc, index, st, &args, e);
            }
        }
        let StepCommand {
            user,
            script,
            shown,
        } = self
            .script(st)
            .map_err(|e| anyhow!("{}: step {:?}: {e:#}", sc.at(st.line), st.name))?;
        let check = self.substituted(&st.check)?;
        let (out, problem) = self.until_met(st, &user, &script, &check)?;
        let log_path = self
            .log
            .step(&sc.name, index, &st.name, &st.host, &shown, &out);
        let place = format!(
            "scenario {} at {}, host {}, log {}",
            sc.name,
            sc.at(st.line),
            st.host,
            log_path.display()
        );
        if let Some(p) = problem {
            let prompted = crate::backend::script::password_hint(&out.combined());
            let hint = match (st.why.clone(), prompted) {
                (Some(why), Some(p)) => format!("{why}; {p}"),
                (why, p) => why.or(p).unwrap_or_else(|| {
                    "read the step's log; `pglab run --keep` leaves the lab up to look around"
                        .into()
                }),
            };
            return Err(failure(
                &format!("step {:?} failed: {p}", st.name),
                &place,
                &self.log.redact(&shown),
                &self.log.redact(&out.combined()),
                &self.log.redact(&hint),
            ));
        }
        self.keep_output(sc, st, &shown, &out, &place)
    }

    /// A `barman recover` that `guard_recover` refused: logged as a failed command; a step
    /// that expects the refusal passes on it.
    fn refused(
        &self,
        sc: &Scenario,
        index: usize,
        st: &Step,
        args: &str,
        e: anyhow::Error,
    ) -> Result<()> {
        let refused = CmdOutput {
            code: 1,
            stderr: format!("{e:#}"),
            ..Default::default()
        };
        self.log.step(
            &sc.name,
            index,
            &st.name,
            &st.host,
            &format!("barman {args}"),
            &refused,
        );
        if self
            .substituted(&st.check)?
            .fails_with
            .as_deref()
            .is_some_and(|f| refused.stderr.contains(f))
        {
            return Ok(());
        }
        Err(e)
    }

    /// The step's check with saved values filled in.
    fn substituted(&self, check: &Check) -> Result<Check> {
        let fill = |text: &Option<String>| -> Result<Option<String>> {
            text.as_deref()
                .map(|e| substitute(e, &self.vars))
                .transpose()
        };
        Ok(Check {
            expect: fill(&check.expect)?,
            contains: fill(&check.contains)?,
            not_contains: fill(&check.not_contains)?,
            fails_with: fill(&check.fails_with)?,
            ..check.clone()
        })
    }

    /// Runs the step's script until `check` is met; with a `wait`, polls (every 20 ms over
    /// a kept connection, else 100 ms) up to its deadline. Returns the last output and, when unmet, what was awaited and seen.
    fn until_met(
        &self,
        st: &Step,
        user: &str,
        script: &str,
        check: &Check,
    ) -> Result<(CmdOutput, Option<String>)> {
        let deadline = st.wait.map(|w| Instant::now() + scaled(w));
        let mut attempts = 0;
        // The first attempt is the step's command; the time after it is waiting.
        let mut first_attempt_done: Option<Instant> = None;
        // Since when the output has shown a `gives_up_on` state without a break.
        let mut hopeless_since: Option<Instant> = None;
        loop {
            // A run asked to stop (its deadline, found stuck) waits no more.
            crate::sys::cancel::check()?;
            attempts += 1;
            let (out, pause) = self.try_once(st, user, script)?;
            let first = *first_attempt_done.get_or_insert_with(Instant::now);
            self.waited.set(first.elapsed().as_secs_f64());
            let problem = unmet(check, &out);
            let said = out.combined();
            let seen = st.gives_up_on.iter().find(|g| said.contains(g.as_str()));
            if seen.is_none() {
                hopeless_since = None;
            }
            let since = *hopeless_since.get_or_insert_with(Instant::now);
            let hopeless = seen.filter(|_| since.elapsed() >= scaled(st.gives_up_after));
            match (problem, deadline) {
                (None, _) => return Ok((out, None)),
                (Some(p), Some(_)) if hopeless.is_some() => {
                    let why = format!(
                        "stopped waiting after {attempts} tries: the output shows {:?}, a state that does not change by waiting; last: {p}",
                        hopeless.map(String::as_str).unwrap_or_default()
                    );
                    return Ok((out, Some(why)));
                }
                (Some(_), Some(d)) if Instant::now() < d => std::thread::sleep(pause),
                (Some(p), Some(_)) => {
                    let waited = humantime::format_duration(scaled(st.wait.unwrap_or_default()));
                    let why = format!(
                        "waited {waited} ({attempts} tries) for {}; last: {p}",
                        awaited(check)
                    );
                    return Ok((out, Some(why)));
                }
                (Some(p), None) => return Ok((out, Some(p))),
            }
        }
    }

    /// One try of a waited step: its output, and how long to pause before the next. A query
    /// over a kept connection costs about a millisecond: it is polled every 20 ms; a check
    /// that starts processes, every 100 ms.
    fn try_once(&self, st: &Step, user: &str, script: &str) -> Result<(CmdOutput, Duration)> {
        let by_process = || {
            self.lab
                .backend()
                .check(&st.host, user, script, scaled(st.timeout))
        };
        Ok(match &st.kind {
            StepKind::Connect { .. } => {
                (self.connect(&st.host, script), Duration::from_millis(100))
            }
            StepKind::Sql { db, sql } => match self.kept_sql(st, db, sql)? {
                Some(out) => (out, Duration::from_millis(20)),
                None => (by_process()?, Duration::from_millis(100)),
            },
            _ => (by_process()?, Duration::from_millis(100)),
        })
    }

    /// A SQL step over a kept connection when it is one statement and the host gives one.
    fn kept_sql(&self, st: &Step, db: &str, sql: &str) -> Result<Option<CmdOutput>> {
        let sql = substitute(sql, &self.vars)?;
        if !super::sql::single_statement(&sql) {
            return Ok(None);
        }
        self.sql
            .query(self.lab, &st.host, db, &sql, scaled(st.timeout))
    }

    /// What a passed step leaves: the value it saves, the snapshot it is compared with.
    fn keep_output(
        &mut self,
        sc: &Scenario,
        st: &Step,
        shown: &str,
        out: &CmdOutput,
        place: &str,
    ) -> Result<()> {
        if let Some(v) = &st.save {
            self.vars.insert(v.clone(), out.stdout.trim().to_string());
        }
        if let Some(name) = &st.snapshot {
            let name = substitute(name, &self.vars)?;
            let value = normalize(&out.stdout, &self.lab.secrets.values());
            super::snapshot::check(
                &name,
                &value,
                &format!("{} — {}: {} on {}", sc.name, st.name, shown, st.host),
            )
            .map_err(|e| anyhow!("step {:?} ({place}): {e:#}", st.name))?;
        }
        Ok(())
    }
}

/// tokio-postgres says "db error" for what the server said: keep the server's words.
fn describe(e: tokio_postgres::Error) -> anyhow::Error {
    match e.as_db_error() {
        Some(db) => anyhow!("{}: {}", db.severity(), db.message()),
        None => anyhow!("{e}"),
    }
}

/// For `recover ... --remote-ssh-command 'ssh USER@HOST' ... DEST`: (HOST, DEST).
pub fn recover_destination(args: &str) -> Option<(String, String)> {
    if args.split_whitespace().next() != Some("recover") {
        return None;
    }
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| {
        Regex::new(r#"--remote-ssh-command[ =](?:'([^']*)'|"([^"]*)"|(\S+))"#).expect("valid")
    });
    let c = re.captures(args)?;
    let ssh = c.get(1).or(c.get(2)).or(c.get(3))?.as_str();
    let target = ssh.split_whitespace().last()?;
    let host = target.rsplit('@').next()?.to_string();
    let dest = args.split_whitespace().last()?.to_string();
    Some((host, dest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::fake::{said, Fake};

    /// Runs scenario `text` on a lab of the fake backend; returns the outcomes and the
    /// scripts it ran.
    fn run_on_fake(fake: Fake, text: &str) -> (Vec<StepOutcome>, Vec<String>) {
        let d = tempfile::tempdir().unwrap();
        let topo = crate::model::topology::Topology::default_lab();
        let sc = crate::scenario::spec::parse(text, &d.path().join("t.toml"), &topo).unwrap();
        let lab = Lab::fake(Box::new(fake.clone()), d.path());
        let log = RunLog::at(d.path(), &lab.secrets);
        let mut runner = Runner::new(&lab, &log, Instant::now(), BTreeMap::new());
        let outcomes = runner.run(&sc);
        let calls = fake
            .calls
            .lock()
            .unwrap()
            .iter()
            .map(|c| c.2.clone())
            .collect();
        (outcomes, calls)
    }

    const TWO_STEPS: &str = r#"
description = "t"
requires = "provisioned"
provides = "provisioned"

[[step]]
name = "ready"
host = "node1"
shell = "echo probe-ready"
expect = "ready"
wait = "5s"
why = "it never got ready"

[[step]]
name = "after"
host = "node2"
shell = "echo probe-after"
expect = "ok"
"#;

    /// A waited step runs again until its output is what it expects, and says how long it
    /// waited; the next step then runs.
    #[test]
    fn a_wait_polls_until_the_output_is_met() {
        let fake = Fake::default()
            .answer(
                "node1",
                "probe-ready",
                &[said(0, "no"), said(0, "no"), said(0, "ready")],
            )
            .answer("node2", "probe-after", &[said(0, "ok")]);
        let (o, calls) = run_on_fake(fake, TWO_STEPS);
        assert_eq!(o.len(), 2);
        assert!(o.iter().all(|o| o.status == Status::Passed), "{o:#?}");
        assert_eq!(
            calls.iter().filter(|c| c.contains("probe-ready")).count(),
            3
        );
        assert!(o[0].waited_secs >= 0.15, "{}", o[0].waited_secs);
        assert!(calls.iter().all(|c| c.contains("set -o pipefail")));
    }

    /// A step whose output never meets its check fails with its `why` and what was seen;
    /// the steps after it are skipped, not run.
    #[test]
    fn after_a_failed_step_the_rest_are_skipped_and_not_run() {
        let text = TWO_STEPS.replace("wait = \"5s\"\n", "");
        let fake = Fake::default().answer("node1", "probe-ready", &[said(0, "never")]);
        let (o, calls) = run_on_fake(fake, &text);
        assert_eq!(o[0].status, Status::Failed);
        assert!(
            o[0].message.contains("it never got ready"),
            "{}",
            o[0].message
        );
        assert!(o[0].message.contains("never"), "{}", o[0].message);
        assert_eq!(o[1].status, Status::Skipped);
        assert!(o[1].message.contains("an earlier step failed"));
        assert!(!calls.iter().any(|c| c.contains("probe-after")));
    }

    /// An output that shows a state waiting cannot change ends the wait at once.
    #[test]
    fn a_hopeless_state_ends_the_wait_at_once() {
        let text = TWO_STEPS.replace(
            "wait = \"5s\"\n",
            "wait = \"30s\"\ngives_up_on = \"paused\"\n",
        );
        let fake =
            Fake::default().answer("node1", "probe-ready", &[said(0, "paused at the target")]);
        let t = Instant::now();
        let (o, calls) = run_on_fake(fake, &text);
        assert!(t.elapsed() < Duration::from_secs(5));
        assert_eq!(o[0].status, Status::Failed);
        assert!(
            o[0].message.contains("stopped waiting after 1 tries"),
            "{}",
            o[0].message
        );
        assert_eq!(calls.len(), 1);
    }

    /// A state a restart passes through ends the wait only once it has lasted
    /// `gives_up_after`; any of the `gives_up_on` texts counts.
    #[test]
    fn a_hopeless_state_that_must_last_ends_the_wait_once_it_has() {
        let text = TWO_STEPS.replace(
            "wait = \"5s\"\n",
            "wait = \"30s\"\ngives_up_on = [\"paused\", \"socket gone\"]\ngives_up_after = \"1s\"\n",
        );
        let fake = Fake::default().answer("node1", "probe-ready", &[said(2, "socket gone")]);
        let t = Instant::now();
        let (o, calls) = run_on_fake(fake, &text);
        let took = t.elapsed();
        assert!(
            took >= Duration::from_secs(1) && took < Duration::from_secs(5),
            "{took:?}"
        );
        assert_eq!(o[0].status, Status::Failed);
        assert!(
            o[0].message.contains("the output shows \"socket gone\""),
            "{}",
            o[0].message
        );
        assert!(calls.len() > 1, "{calls:?}");
    }

    /// A run asked to stop (the grade's deadline) ends a wait at its next poll, says why, and
    /// runs no step after it: the wait of 30 s for a state that never comes is not waited out.
    #[test]
    fn a_stopped_run_ends_its_wait_and_runs_nothing_after() {
        let text = TWO_STEPS.replace("wait = \"5s\"\n", "wait = \"30s\"\n");
        let fake = Fake::default().answer("node1", "probe-ready", &[said(0, "never")]);
        let token = crate::sys::cancel::Token::default();
        let stopper = {
            let token = token.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(200));
                token.cancel("past its deadline");
            })
        };
        let (o, calls) = crate::sys::cancel::with(Some(token), || run_on_fake(fake, &text));
        stopper.join().unwrap();
        assert_eq!(o[0].status, Status::Failed, "{o:#?}");
        assert!(
            o[0].message.contains("stopped: past its deadline"),
            "{}",
            o[0].message
        );
        assert_ne!(o[1].status, Status::Passed);
        assert!(
            !calls.iter().any(|c| c.contains("probe-after")),
            "{calls:?}"
        );
    }

    #[test]
    fn finds_where_barman_recovers_to() {
        let a = "recover --remote-ssh-command 'ssh postgres@node1' --target-name x node1 latest /var/lib/postgresql/15/main";
        assert_eq!(
            recover_destination(a),
            Some(("node1".into(), "/var/lib/postgresql/15/main".into()))
        );
        let b = "recover --remote-ssh-command=\"ssh -q postgres@192.168.56.11\" node1 latest /d";
        assert_eq!(
            recover_destination(b),
            Some(("192.168.56.11".into(), "/d".into()))
        );
        assert_eq!(recover_destination("backup --wait node1"), None);
        assert_eq!(recover_destination("recover node1 latest /local/dir"), None);
    }

    fn out(code: i32, stdout: &str, stderr: &str) -> CmdOutput {
        CmdOutput {
            code,
            stdout: stdout.into(),
            stderr: stderr.into(),
            duration: Duration::ZERO,
        }
    }

    #[test]
    fn substitution_and_unknown_vars() {
        let vars = BTreeMap::from([("n".to_string(), "42".to_string())]);
        assert_eq!(substitute("a {{n}} b {{ n }}", &vars).unwrap(), "a 42 b 42");
        let e = substitute("{{nope}}", &vars).unwrap_err().to_string();
        assert!(
            e.contains("{{nope}} is not known") && e.contains("known: n"),
            "{e}"
        );
        let e = substitute("{{homework_after_recover}}", &vars)
            .unwrap_err()
            .to_string();
        assert!(e.contains("has no `after_recover` in [commands]"), "{e}");
    }

    #[test]
    fn checks() {
        let c = Check {
            expect: Some("1000".into()),
            ..Default::default()
        };
        assert_eq!(unmet(&c, &out(0, "1000\n", "")), None);
        assert!(unmet(&c, &out(0, "999\n", ""))
            .unwrap()
            .contains("expected \"1000\""));
        assert!(unmet(&c, &out(1, "1000\n", ""))
            .unwrap()
            .contains("exit code 1"));
        let f = Check {
            fails_with: Some("read-only".into()),
            ..Default::default()
        };
        assert_eq!(
            unmet(
                &f,
                &out(
                    3,
                    "",
                    "ERROR: cannot execute INSERT in a read-only transaction"
                )
            ),
            None
        );
        assert!(unmet(&f, &out(0, "", "")).unwrap().contains("it succeeded"));
        let n = Check {
            not_contains: Some("FAILED".into()),
            ..Default::default()
        };
        assert!(unmet(&n, &out(0, "x: FAILED", "")).is_some());
        let x = Check {
            exit: Some(2),
            ..Default::default()
        };
        assert_eq!(unmet(&x, &out(2, "", "")), None);
    }

    #[test]
    fn awaited_says_what() {
        let c = Check {
            expect: Some("t".into()),
            contains: Some("streaming".into()),
            ..Default::default()
        };
        assert_eq!(
            awaited(&c),
            "output = \"t\" and output containing \"streaming\""
        );
    }
}
