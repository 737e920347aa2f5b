use crate::lab::Lab;
use crate::provision::{reference_dir, Submission};
use crate::report::runlog::RunLog;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct ProvisionArgs {
    #[arg(long)]
    lab: Option<String>,
    /// A submission directory (provision.toml + scripts).
    #[arg(long)]
    homework: Option<PathBuf>,
}

/// `pglab provision`: a submission on a lab that is up.
pub fn provision(a: ProvisionArgs) -> Result<i32> {
    let lab = Lab::attach(a.lab.as_deref())?;
    let sub = Submission::load(&a.homework.unwrap_or_else(reference_dir))?;
    let log = RunLog::create(
        &format!("provision-{}-{}", lab.id(), std::process::id()),
        &lab.secrets,
    )?;
    let report = crate::provision::provision(&lab, &sub, &log, std::time::Instant::now())?;
    println!(
        "provisioned lab {} in {:.1}s ({} changes); logs in {}",
        lab.id(),
        report.duration.as_secs_f64(),
        report.changes.len(),
        log.dir.display()
    );
    for c in report.changes {
        println!("  changed: {c}");
    }
    Ok(0)
}
