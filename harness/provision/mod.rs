//! Provisioning: a submission's shell steps or its Ansible playbook, run on the lab.

pub mod ansible;
pub mod ansible_tool;
pub mod controller;
pub mod due;
pub mod inventory_repo;
pub mod repo;
pub mod repo_inventory;
pub mod repo_run;
pub mod server_words;
pub mod shell;
pub mod submission;
pub mod vagrantfile_read;

pub use shell::{env_prelude, lab_env};
pub use submission::{reference_dir, AfterFailure, ProvisionReport, ProvisionStep, Submission};

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
    provision_with(lab, sub, log, started, AfterFailure::SkipDependents)
}

pub fn provision_with(
    lab: &Lab,
    sub: &Submission,
    log: &RunLog,
    started: Instant,
    after_failure: AfterFailure,
) -> Result<ProvisionReport> {
    if let Some(plan) = &sub.repo {
        return repo_run::provision(lab, plan, log, started, after_failure);
    }
    match ansible::playbook_of(sub) {
        Some(playbook) => ansible::provision(lab, sub, &playbook, log, started),
        None => {
            let steps = shell::Steps {
                steps: &sub.steps,
                group: "provision",
                after_failure,
            };
            shell::run_steps(lab, sub, &steps, log, started)
        }
    }
}

/// Runs the submission's `resume` steps (after hosts were restarted from a saved state).
pub fn resume(
    lab: &Lab,
    sub: &Submission,
    log: &RunLog,
    started: Instant,
) -> Result<ProvisionReport> {
    let steps = shell::Steps {
        steps: &sub.resume,
        group: "resume",
        after_failure: AfterFailure::SkipDependents,
    };
    shell::run_steps(lab, sub, &steps, log, started)
}
