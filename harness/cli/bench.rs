use crate::run::bench::What;
use crate::sys::doctor;
use anyhow::Result;
use clap::Args;

#[derive(Args)]
pub struct BenchArgs {
    #[arg(value_enum, default_value = "run")]
    what: What,
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Labs at once, for `parallel`.
    #[arg(long, default_value_t = 3)]
    labs: usize,
    /// Labs at once, for `cohort` (default: 1, then 2).
    #[arg(long)]
    jobs: Option<usize>,
    #[arg(long = "box", default_value = crate::backend::boxes::DEFAULT_BOX)]
    box_name: String,
}

/// `pglab bench`: min / median / max of each phase over several runs.
pub fn bench(a: BenchArgs) -> Result<i32> {
    doctor::require_root("run benchmarks")?;
    print!(
        "{}",
        crate::run::bench::bench(a.what, a.runs, &a.box_name, a.labs, a.jobs)?
    );
    Ok(0)
}
