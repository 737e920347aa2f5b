//! What a run produced, as every report shows it: each step's outcome and the run's phases.

use crate::model::phase::Phase;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Passed,
    Failed,
    Skipped,
}

/// One step's result, as reports show it.
#[derive(Debug, Clone, Serialize)]
pub struct StepOutcome {
    pub scenario: String,
    pub step: String,
    pub host: String,
    /// `scenarios/x.toml:12`
    pub location: String,
    pub status: Status,
    pub duration_secs: f64,
    /// Of `duration_secs`, the time spent polling until the step's check was met (or its
    /// `wait` ran out): waiting for a state, not running commands.
    pub waited_secs: f64,
    pub message: String,
}

#[derive(Debug, Serialize)]
pub struct RunReport {
    pub lab: String,
    pub box_name: String,
    pub passed: bool,
    /// (phase, seconds): box+up, provision, each scenario, down.
    pub phases: Vec<(Phase, f64)>,
    pub checks: Vec<StepOutcome>,
    pub provision_changes: Vec<String>,
    pub log_dir: PathBuf,
    pub kept: bool,
}
