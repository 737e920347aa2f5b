//! Provisioning a lab with a student's repository: its actions in Vagrant's order (each
//! machine's provisioners, then the playbooks run by hand), playbooks with the submission's
//! inventory and pglab's connection settings, shell provisioners as root on their machine.

use super::ansible::{list_inventory, run_playbook, venv_dir, Play};
use super::controller::Controller;
use super::repo::{Action, Inventory, RepoPlan};
use super::repo_inventory::{self, Connections};
use super::submission::ProvisionReport;
use crate::lab::Lab;
use crate::report::runlog::RunLog;
use crate::sys::exec::{failure, scaled};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A shell provisioner that has not finished after this long is stopped: Vagrant would wait
/// for ever, a grader must not.
const SHELL_DEADLINE: Duration = Duration::from_secs(300);
/// The same for a whole playbook run (a homework playbook takes about a minute here).
const PLAYBOOK_DEADLINE: Duration = Duration::from_secs(240);

pub fn provision(
    lab: &Lab,
    plan: &RepoPlan,
    log: &RunLog,
    started: Instant,
    after_failure: super::submission::AfterFailure,
) -> Result<ProvisionReport> {
    let t0 = Instant::now();
    // The hosts' apt reaches Debian, and their pip PyPI, through pglab's caching proxies
    // while the submission provisions (`apt: update_cache: true`, packages the box lacks,
    // `pip: name=pexpect`). Without them the submission still runs: what it installs must
    // then be in the box.
    let _apt = proxy(started, "apt", crate::lab::apt_proxy::start_for(lab), |p| {
        format!("apt through {}/debian (approx, cached)", p.url)
    });
    let _pypi = proxy(
        started,
        "PyPI",
        crate::lab::pypi_proxy::start_for(lab),
        |p| format!("pip through {}/index/ (proxpi, cached)", p.url),
    );
    let mut report = ProvisionReport::default();
    // The controller (a sandbox with a copy of the repository) and how it reaches the
    // hosts, made when the first playbook needs them.
    let mut ctl: Option<(Controller, Connections)> = None;
    let mut first_error = None;
    for (i, action) in plan.actions.iter().enumerate() {
        let ran = match action {
            Action::Playbook { .. } => {
                if ctl.is_none() {
                    let c = Controller::new(lab, &plan.dir, &[venv_dir()?])?;
                    let conn = connections(lab, &c)?;
                    ctl = Some((c, conn));
                }
                let (c, conn) = ctl.as_ref().expect("set");
                playbook(lab, plan, action, c, conn, log, started)
                    .map(|r| report.changes.extend(r.changes))
            }
            Action::Shell { .. } => shell(lab, plan, i, action, log, started),
        };
        // Vagrant stops at a failed provisioner; grading runs the next ones too (a backup
        // playbook after a broken replication one), and the first failure is the verdict.
        if let Err(e) = ran {
            if after_failure == super::submission::AfterFailure::SkipDependents {
                return Err(e);
            }
            first_error.get_or_insert(e);
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    report.duration = t0.elapsed();
    Ok(report)
}

/// A proxy started for the lab's hosts: said when it runs, its failure said but not fatal.
fn proxy<P>(
    started: Instant,
    name: &str,
    r: Result<Option<P>>,
    how: impl Fn(&P) -> String,
) -> Option<P> {
    let said = match &r {
        Ok(Some(p)) => how(p),
        Ok(None) => return None,
        Err(e) => format!("no {name} proxy: {e:#}"),
    };
    crate::sys::progress::say(started, "provision", &said);
    r.ok().flatten()
}

/// pglab's connection settings for every host of the lab, as the controller reaches them.
fn connections(lab: &Lab, ctl: &Controller) -> Result<Connections> {
    let mut out = Connections::new();
    for h in &lab.topology().hosts {
        let t = ctl.target(lab, &h.name)?;
        let mut v = format!(
            "ansible_host={} ansible_port=22 ansible_user={} ansible_python_interpreter=/usr/bin/python3",
            t.address, t.user
        );
        if let Some(k) = &t.key {
            v.push_str(&format!(" ansible_ssh_private_key_file={}", k.display()));
        }
        if !t.ssh_args.is_empty() {
            v.push_str(&format!(
                " ansible_ssh_common_args='{}'",
                t.ssh_args.join(" ")
            ));
        }
        if t.become_root {
            v.push_str(" ansible_become=true");
        }
        out.insert(h.name.clone(), v);
    }
    Ok(out)
}

/// Where ansible-playbook runs: the playbook's folder when it holds an `ansible.cfg`
/// (`cd ansible && ansible-playbook ...`), else the repository (Vagrant's way).
fn workdir(dir: &Path, playbook: &Path) -> PathBuf {
    let pb_dir = dir.join(playbook.parent().unwrap_or(Path::new("")));
    if pb_dir.join("ansible.cfg").exists() {
        pb_dir
    } else {
        dir.to_path_buf()
    }
}

fn playbook(
    lab: &Lab,
    plan: &RepoPlan,
    action: &Action,
    ctl: &Controller,
    conn: &Connections,
    log: &RunLog,
    started: Instant,
) -> Result<ProvisionReport> {
    let Action::Playbook {
        playbook,
        limit,
        inventory,
        extra_vars,
        ..
    } = action
    else {
        unreachable!("called for playbooks")
    };
    let dir = plan.dir.canonicalize().unwrap_or_else(|_| plan.dir.clone());
    let wd = workdir(&dir, playbook);
    let (inventory_file, inventory) = inventory_for(plan, inventory, ctl, conn, &dir, &wd)?;
    let mut extra = Vec::new();
    if let Some(l) = limit {
        extra.push(format!("--limit={l}"));
    }
    if !extra_vars.is_null() {
        let json = serde_json::to_string(extra_vars)?;
        let f = ctl.put("extra_vars.json", json.as_bytes(), 0o600)?;
        extra.push(format!("--extra-vars=@{}", f.display()));
    }
    let pb = dir.join(playbook);
    let play = Play {
        controller: ctl,
        inventory_file,
        dir: &wd,
        playbook: &pb,
        inventory,
        extra,
        deadline: PLAYBOOK_DEADLINE,
    };
    run_playbook(lab, &play, log, started).map_err(|e| {
        let msg = log.redact(&format!("{e:#}"));
        let stuck = match super::server_words::last_task(&msg) {
            Some(t) if super::server_words::stopped_at_deadline(&msg) => format!(
                "playbook {} stopped after {}: task {t:?} never finished\n",
                playbook.display(),
                humantime::format_duration(scaled(PLAYBOOK_DEADLINE))
            ),
            _ => String::new(),
        };
        let words = log.redact(&super::server_words::at_failure(lab, &msg));
        anyhow::anyhow!("{stuck}{msg}{words}")
    })
}

/// The inventory a playbook runs against, and its file name in the controller: Vagrant's
/// generated one, or the student's as Ansible reads it (from `wd`, its `ansible.cfg` applies).
fn inventory_for(
    plan: &RepoPlan,
    inventory: &Inventory,
    ctl: &Controller,
    conn: &Connections,
    dir: &Path,
    wd: &Path,
) -> Result<(&'static str, String)> {
    Ok(match inventory {
        Inventory::Vagrant { groups } => {
            ("inventory.ini", repo_inventory::vagrant(plan, conn, groups))
        }
        Inventory::Static(p) => {
            let listed = list_inventory(ctl, wd, &dir.join(p))?;
            (
                "inventory.yml",
                repo_inventory::from_listed(p, &listed, plan, conn)?,
            )
        }
    })
}

fn shell(
    lab: &Lab,
    plan: &RepoPlan,
    index: usize,
    action: &Action,
    log: &RunLog,
    started: Instant,
) -> Result<()> {
    let Action::Shell {
        machine,
        path,
        inline,
        args,
        origin,
    } = action
    else {
        unreachable!("called for shell provisioners")
    };
    let (what, script) = shell_script(plan, path.as_deref(), inline.as_deref(), args, origin)?;
    crate::sys::progress::say(
        started,
        "provision",
        &format!("shell {what} on {machine} ({origin})"),
    );
    let out = lab
        .exec(machine, "root", &script, scaled(SHELL_DEADLINE))
        .map_err(|e| {
            let msg = format!("shell provisioner {what} ({origin}) on {machine}: {e:#}");
            let words = super::server_words::at_failure(lab, &msg);
            anyhow::anyhow!("{}{}", log.redact(&msg), log.redact(&words))
        })?;
    let shown = format!("shell provisioner {what} ({origin}) as root");
    let logged = log.step(
        "provision",
        index + 1,
        &format!("shell {what}"),
        machine,
        &shown,
        &out,
    );
    if !out.ok() {
        let words = log.redact(&super::server_words::at_failure(lab, ""));
        let e = failure(
            &format!(
                "shell provisioner {what} ({origin}) failed with exit code {}",
                out.code
            ),
            &format!(
                "host {machine}, submission {}, log {}",
                plan.dir.display(),
                logged.display()
            ),
            &shown,
            &log.redact(&out.combined()),
            "read the log; the same script fails under `vagrant up` too",
        );
        return Err(anyhow::anyhow!("{e}{words}"));
    }
    Ok(())
}

/// What a shell provisioner runs (its file or inline text, `args` as `$1`...) and how it is
/// named. Vagrant uploads the script and runs it as root; here it travels on stdin.
fn shell_script(
    plan: &RepoPlan,
    path: Option<&Path>,
    inline: Option<&str>,
    args: &[String],
    origin: &str,
) -> Result<(String, String)> {
    let (what, body) = match (path, inline) {
        (Some(p), _) => (
            p.display().to_string(),
            crate::sys::tree::read_inside(&plan.dir, p, 1 << 20)
                .with_context(|| format!("cannot read {} (named in {origin})", p.display()))?,
        ),
        (None, Some(i)) => ("inline".to_string(), i.to_string()),
        (None, None) => ("empty".to_string(), String::new()),
    };
    let set_args = if args.is_empty() {
        String::new()
    } else {
        format!(
            "set -- {}\n",
            args.iter()
                .map(|a| crate::backend::shell_quote(a))
                .collect::<Vec<_>>()
                .join(" ")
        )
    };
    Ok((what, format!("{set_args}{body}")))
}
