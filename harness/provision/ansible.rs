//! The Ansible provisioner: a submission with `playbook = "playbook.yml"` is applied with
//! ansible-playbook, installed by pglab from PyPI into a private virtual environment (pinned),
//! against an inventory of the lab's hosts. As Molecule does, the playbook runs twice: the
//! second run must change nothing.

pub use super::ansible_tool::{
    ansible_env, ensure_installed, list_inventory, venv_dir, ANSIBLE_CORE,
};
use super::controller::Controller;
use crate::lab::Lab;
use crate::provision::submission::{ProvisionReport, Submission};
use crate::report::runlog::RunLog;
use crate::sys::exec::{failure, run_with, scaled, CmdOutput, Setup};
use anyhow::Result;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The inventory: one group per role, `pglab_addr` per host, how ssh reaches each (from
/// the controller's sandbox).
fn inventory(lab: &Lab, ctl: &Controller) -> Result<String> {
    let topo = lab.topology();
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut lines = vec!["[all]".to_string()];
    for h in &topo.hosts {
        let t = ctl.target(lab, &h.name)?;
        let mut line = format!(
            "{} ansible_host={} ansible_user={} pglab_addr={} ansible_python_interpreter=/usr/bin/python3",
            h.name, t.address, t.user, h.address
        );
        if let Some(k) = &t.key {
            line.push_str(&format!(" ansible_ssh_private_key_file={}", k.display()));
        }
        if !t.ssh_args.is_empty() {
            line.push_str(&format!(
                " ansible_ssh_common_args='{}'",
                t.ssh_args.join(" ")
            ));
        }
        if t.become_root {
            line.push_str(" ansible_become=true");
        }
        lines.push(line);
        for r in &h.roles {
            groups
                .entry(format!("{r:?}").to_lowercase())
                .or_default()
                .push(h.name.clone());
        }
    }
    for (g, hosts) in groups {
        lines.push(format!("\n[{g}]"));
        lines.extend(hosts);
    }
    Ok(lines.join("\n") + "\n")
}

/// One ansible-playbook run, read from its default output.
#[derive(Debug, Default)]
pub struct PlaybookRun {
    /// "task name on host" for every `changed:` line.
    pub changed: Vec<String>,
    /// (task, host, message) for every `fatal:` line.
    pub failed: Vec<(String, String, String)>,
    /// host → that host's lines, under their task headers.
    pub per_host: BTreeMap<String, String>,
    /// Every play, by name, in order.
    pub plays: Vec<String>,
    /// Plays Ansible skipped: "skipping: no hosts matched".
    pub unmatched: Vec<String>,
}

pub fn parse_output(text: &str) -> PlaybookRun {
    let mut r = PlaybookRun::default();
    let mut task = String::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("PLAY [") {
            let play = rest.rsplit_once(']').map_or(rest, |(p, _)| p).to_string();
            r.plays.push(play);
            continue;
        }
        if line.trim() == "skipping: no hosts matched" {
            if let Some(p) = r.plays.last() {
                r.unmatched.push(p.clone());
            }
            continue;
        }
        if let Some(rest) = line
            .strip_prefix("TASK [")
            .or_else(|| line.strip_prefix("RUNNING HANDLER ["))
        {
            task = rest.split(']').next().unwrap_or(rest).to_string();
            continue;
        }
        let host = line
            .find(": [")
            .and_then(|i| line[i + 3..].split(']').next())
            .map(|h| h.split(" -> ").next().unwrap_or(h).to_string());
        let Some(host) = host else { continue };
        let entry = r.per_host.entry(host.clone()).or_default();
        entry.push_str(&format!("TASK [{task}]\n{line}\n"));
        if line.starts_with("changed: [") {
            r.changed.push(format!("{task} on {host}"));
        } else if line.starts_with("fatal: [") {
            r.failed.push((task.clone(), host, line.to_string()));
        }
    }
    r
}

/// Runs the submission's playbook twice: to provision, then to prove it idempotent (the
/// second run must change nothing).
pub fn provision(
    lab: &Lab,
    sub: &Submission,
    playbook: &Path,
    log: &RunLog,
    started: Instant,
) -> Result<ProvisionReport> {
    let t0 = Instant::now();
    let ctl = Controller::new(lab, &sub.dir, &[venv_dir()?])?;
    let run = Playbook::prepare(lab, sub, playbook, &ctl)?;
    let mut report = ProvisionReport::default();
    for (pass, what) in [(1, "provision"), (2, "idempotence")] {
        crate::sys::progress::say(
            started,
            "provision",
            &format!(
                "ansible-playbook {} (run {pass}: {what})",
                playbook.display()
            ),
        );
        let (parsed, path) = run.once(pass, what, log)?;
        if pass == 1 {
            report.changes = parsed.changed;
        } else if !parsed.changed.is_empty() {
            return Err(failure(
                "the playbook is not idempotent: its second run changed something",
                &format!("submission {}, log {}", sub.dir.display(), path.display()),
                &run.shown,
                &parsed.changed.join("\n"),
                "a task that reports `changed` every time needs `creates:`, `changed_when:` or a module that compares before it writes",
            ));
        }
    }
    report.duration = t0.elapsed();
    Ok(report)
}

/// A playbook to run once, from `dir`, against `inventory`, with `extra` arguments, stopped
/// after `deadline` (students' repositories: `provision::repo_run`), in `controller`'s
/// sandbox (`dir` and `playbook` are paths of the repository on this machine; `inventory`
/// and `extra` already name what is inside the sandbox).
pub struct Play<'a> {
    pub controller: &'a Controller,
    /// The inventory's file name in the controller: `inventory.ini` or `inventory.yml`.
    pub inventory_file: &'static str,
    pub dir: &'a Path,
    pub playbook: &'a Path,
    pub inventory: String,
    pub extra: Vec<String>,
    pub deadline: Duration,
}

/// Runs `play` once (as `vagrant up` runs a provisioner); its changes are reported.
pub fn run_playbook(
    lab: &Lab,
    play: &Play,
    log: &RunLog,
    started: Instant,
) -> Result<ProvisionReport> {
    let t0 = Instant::now();
    let run = Playbook::new(lab, play)?;
    crate::sys::progress::say(
        started,
        "provision",
        &format!(
            "ansible-playbook {} {}",
            play.extra.join(" "),
            play.playbook.display()
        ),
    );
    // A repository may run several playbooks: each keeps its own log.
    let stem = play
        .playbook
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (parsed, _) = run.once(1, &format!("provision-{stem}"), log)?;
    Ok(ProvisionReport {
        changes: parsed.changed,
        duration: t0.elapsed(),
    })
}

/// `ansible-playbook` ready to run in the lab's network: inventory, secrets as extra vars
/// (a 0600 file, never a command line), environment.
struct Playbook {
    argv: Vec<String>,
    setup: Setup,
    /// The command as logs and errors show it.
    shown: String,
    submission: PathBuf,
    deadline: Duration,
    /// Run with `--limit`: plays for other hosts are skipped by design.
    limited: bool,
}

impl Playbook {
    fn prepare(lab: &Lab, sub: &Submission, playbook: &Path, ctl: &Controller) -> Result<Playbook> {
        Playbook::new(
            lab,
            &Play {
                controller: ctl,
                inventory_file: "inventory.ini",
                dir: &sub.dir,
                playbook,
                inventory: inventory(lab, ctl)?,
                extra: Vec::new(),
                deadline: Duration::from_secs(1800),
            },
        )
    }

    fn new(lab: &Lab, play: &Play) -> Result<Playbook> {
        let playbook = play.playbook;
        let ansible_playbook = ensure_installed()?;
        let ctl = play.controller;
        let inventory = ctl.put(play.inventory_file, play.inventory.as_bytes(), 0o600)?;
        let vars = ctl.put("secrets.yml", secret_vars(lab)?.as_bytes(), 0o600)?;
        let mut program = vec![
            ansible_playbook.to_string_lossy().to_string(),
            "-i".into(),
            inventory.to_string_lossy().into(),
            "-e".into(),
            format!("@{}", vars.display()),
        ];
        program.extend(play.extra.iter().cloned());
        program.push(ctl.inside(playbook).to_string_lossy().into());
        let argv = ctl.command(&program, &ctl.inside(play.dir), &ansible_env());
        Ok(Playbook {
            argv,
            setup: Setup {
                own_group: true,
                ..Default::default()
            },
            shown: format!(
                "ansible-playbook -i {} -e @secrets.yml {}{}",
                play.inventory_file,
                play.extra
                    .iter()
                    .map(|e| format!("{e} "))
                    .collect::<String>(),
                playbook.display()
            ),
            submission: play.dir.to_path_buf(),
            deadline: play.deadline,
            limited: play.extra.iter().any(|e| e.starts_with("--limit")),
        })
    }

    /// One run of the playbook, logged as a whole and per host; a failed task or exit code
    /// is an error naming the host, the log and the line.
    fn once(&self, pass: usize, what: &str, log: &RunLog) -> Result<(PlaybookRun, PathBuf)> {
        let out = run_with(&self.argv, None, scaled(self.deadline), &self.setup)?;
        let parsed = parse_output(&out.stdout);
        let step = format!("ansible-{what}");
        let path = log.step("provision", pass, &step, "all", &self.shown, &out);
        for (host, text) in &parsed.per_host {
            let per_host = CmdOutput {
                stdout: text.clone(),
                ..out.clone()
            };
            log.step("provision", pass, &step, host, &self.shown, &per_host);
        }
        let sub = self.submission.display();
        if let Some((task, host, line)) = parsed.failed.first() {
            return Err(failure(
                &format!("Ansible task {task:?} failed (playbook run {pass})"),
                &format!("host {host}, submission {sub}, log {}", path.display()),
                &self.shown,
                &log.redact(line),
                "read the log; fix the playbook and run again",
            ));
        }
        if !out.ok() {
            return Err(failure(
                &format!(
                    "ansible-playbook failed with exit code {} (run {pass})",
                    out.code
                ),
                &format!("submission {sub}, log {}", path.display()),
                &self.shown,
                &log.redact(&out.combined()),
                "read the log; unreachable hosts mean ssh into the lab failed",
            ));
        }
        if let Some(why) = ran_on_nothing(&parsed, &out.stderr, self.limited) {
            return Err(failure(
                &format!("the playbook ran on no host: {why} (run {pass})"),
                &format!("submission {sub}, log {}", path.display()),
                &self.shown,
                &host_pattern_warnings(&out.stderr),
                "a play's `hosts:` names groups or hosts of the inventory; `ansible-inventory --graph` shows them",
            ));
        }
        Ok((parsed, path))
    }
}

/// Ansible's warnings about host patterns and inventories (stderr), one per line.
fn host_pattern_warnings(stderr: &str) -> String {
    stderr
        .lines()
        .filter(|l| l.contains("host pattern") || l.contains("inventory"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Why a run that exited 0 did nothing: no inventory, or plays that matched no host (every
/// play when the run is limited to some hosts, as Vagrant limits a machine's provisioner;
/// any play otherwise). None when it ran on something.
fn ran_on_nothing(parsed: &PlaybookRun, stderr: &str, limited: bool) -> Option<String> {
    if stderr.contains("No inventory was parsed") {
        return Some("Ansible parsed no inventory".into());
    }
    let every = !parsed.plays.is_empty() && parsed.unmatched.len() == parsed.plays.len();
    if parsed.unmatched.is_empty() || (limited && !every) {
        return None;
    }
    let named: Vec<String> = parsed
        .unmatched
        .iter()
        .map(|p| format!("play {p:?}"))
        .collect();
    Some(format!("{} matched no host", named.join(", ")))
}

/// The lab's secrets as Ansible extra vars (written 0600 into the controller).
fn secret_vars(lab: &Lab) -> Result<String> {
    let mut out = String::new();
    for (k, v) in lab.secrets.env() {
        out.push_str(&format!(
            "{}: {}\n",
            k.to_lowercase(),
            serde_json::to_string(&v)?
        ));
    }
    Ok(out)
}

/// Where a submission's playbook is, if it has one.
pub fn playbook_of(sub: &Submission) -> Option<PathBuf> {
    let dir = sub.dir.canonicalize().unwrap_or_else(|_| sub.dir.clone());
    sub.playbook.as_ref().map(|p| dir.join(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = "PLAY [x] ***\n\nTASK [Gathering] ***\nok: [node1]\n\nTASK [pg_hba allows only what the homework needs] ***\nchanged: [node1]\nok: [node2]\n\nRUNNING HANDLER [Restart PostgreSQL] ***\nchanged: [node1]\n\nTASK [Clone] ***\nfatal: [node2]: FAILED! => {\"msg\": \"boom\"}\n\nPLAY RECAP ***\nnode1 : ok=3 changed=2\n";

    #[test]
    fn changes_failures_and_per_host_lines() {
        let r = parse_output(OUTPUT);
        assert_eq!(
            r.changed,
            vec![
                "pg_hba allows only what the homework needs on node1",
                "Restart PostgreSQL on node1"
            ]
        );
        assert_eq!(r.failed.len(), 1);
        assert_eq!(r.failed[0].0, "Clone");
        assert_eq!(r.failed[0].1, "node2");
        assert!(r.per_host["node2"].contains("TASK [Clone]\nfatal: [node2]"));
        assert!(!r.per_host["node1"].contains("node2"));
        assert_eq!(r.plays, ["x"]);
        assert!(ran_on_nothing(&r, "", false).is_none());
    }

    /// Measured with ansible 9.4.0: a play whose `hosts:` matches nothing prints this, and
    /// ansible-playbook exits 0.
    const NOTHING: &str = "PLAY [Configure Replication] ***\nskipping: no hosts matched\n\nPLAY [Other] ***\nskipping: no hosts matched\n\nPLAY RECAP ***\n";

    #[test]
    fn a_run_on_no_host_is_named() {
        let r = parse_output(NOTHING);
        assert_eq!(r.unmatched, ["Configure Replication", "Other"]);
        let why = ran_on_nothing(&r, "", true).unwrap();
        assert_eq!(
            why,
            "play \"Configure Replication\", play \"Other\" matched no host"
        );
        let some = parse_output(&format!("{OUTPUT}{NOTHING}"));
        assert!(
            ran_on_nothing(&some, "", true).is_none(),
            "a limited run skips plays by design"
        );
        assert!(ran_on_nothing(&some, "", false).is_some());
        let none = "[WARNING]: No inventory was parsed, only implicit localhost is available";
        assert_eq!(
            ran_on_nothing(&parse_output(OUTPUT), none, true).unwrap(),
            "Ansible parsed no inventory"
        );
    }
}
