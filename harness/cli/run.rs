use crate::backend::Kind;
use crate::model::topology::Topology;
use crate::report::{json, junit, summary::labs_table};
use crate::run::{schedule, Destroy, RunOptions};
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct RunArgs {
    /// Scenarios to run (default: all); the ones they depend on run first.
    scenarios: Vec<String>,
    /// Box recipes, comma-separated: one lab and one full run each (a version matrix).
    /// (Default: bookworm, or the box a --homework repository's Vagrantfile maps to.)
    #[arg(long = "box", value_delimiter = ',')]
    boxes: Vec<String>,
    #[arg(long)]
    topology: Option<PathBuf>,
    /// Provision with this submission instead of the reference solution.
    #[arg(long)]
    homework: Option<PathBuf>,
    /// Leave the lab up afterwards (same as --destroy never).
    #[arg(long)]
    keep: bool,
    /// When to remove the lab.
    #[arg(long, value_enum, default_value = "always")]
    destroy: Destroy,
    /// Write the report as JSON (one object per box).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the report as JUnit XML.
    #[arg(long)]
    junit: Option<PathBuf>,
    /// How many labs run at once: the boxes of the matrix, and with more jobs than boxes
    /// each box's scenarios spread over several labs.
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// Start each scenario from a saved copy of the state it requires (states are
    /// saved when first reached) instead of from where the previous one left the lab.
    #[arg(long)]
    isolate: bool,
}

/// `pglab run`: every box's labs, `--jobs` at a time, then the reports.
pub fn run(mut a: RunArgs) -> Result<i32> {
    let repo = crate::run::homework::repo_plan(a.homework.as_deref())?;
    let mut topology = Topology::load_or_default(a.topology.as_deref())?;
    if let Some(plan) = repo {
        if a.topology.is_none() {
            topology = plan.topology.clone();
        }
        // A box named on the command line wins (the Vagrant backend with the student's own).
        if a.boxes.is_empty() {
            a.boxes = vec![plan.pglab_box()?];
        }
    }
    if a.boxes.is_empty() {
        a.boxes = vec![crate::backend::boxes::DEFAULT_BOX.into()];
    }
    let base = RunOptions {
        box_name: String::new(),
        topology,
        scenarios: a.scenarios,
        homework: a.homework,
        destroy: if a.keep { Destroy::Never } else { a.destroy },
        isolate: a.isolate,
        backend: Kind::from_env()?,
        keep_going: false,
    };
    let items = schedule::work_items(&base, &a.boxes, a.jobs)?;
    let reports = schedule::run_all(&items, a.jobs, |r| {
        print!("{}", crate::report::summary::summary(r))
    })?;
    if reports.len() > 1 {
        print!("{}", labs_table(&reports));
    }
    if let Some(p) = a.json {
        std::fs::write(&p, json::render(&reports)?)?;
    }
    if let Some(p) = a.junit {
        std::fs::write(&p, junit::render(&reports))?;
    }
    Ok(if reports.iter().all(|r| r.passed) {
        0
    } else {
        1
    })
}
