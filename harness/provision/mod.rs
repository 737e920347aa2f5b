//! Provisioning: a submission's shell steps or its Ansible playbook, run on the lab.

pub mod ansible;
pub mod repo;
pub mod repo_inventory;
pub mod repo_run;
pub mod server_words;
pub mod shell;
pub mod submission;
pub mod vagrantfile_read;

pub use shell::{env_prelude, lab_env};
pub use submission::{reference_dir, ProvisionReport, ProvisionStep, Submission};

use crate::lab::Lab;
use crate::report::runlog::RunLog;
use anyhow::Result;
use std::time::Instant;

pub fn provision(
    lab: &Lab,
    sub: &Submission,
    log: &RunLog,
    started: Instant,
) -> Result<ProvisionReport> {
    if let Some(plan) = &sub.repo {
        return repo_run::provision(lab, plan, log, started);
    }
    match ansible::playbook_of(sub) {
        Some(playbook) => ansible::provision(lab, sub, &playbook, log, started),
        None => shell::run_steps(lab, sub, &sub.steps, "provision", log, started),
    }
}

/// Runs the submission's `resume` steps (after hosts were restarted from a saved state).
pub fn resume(
    lab: &Lab,
    sub: &Submission,
    log: &RunLog,
    started: Instant,
) -> Result<ProvisionReport> {
    shell::run_steps(lab, sub, &sub.resume, "resume", log, started)
}
