use crate::lab;
use crate::sys::doctor;
use anyhow::Result;
use clap::Args;

#[derive(Args)]
pub struct GcArgs {
    #[arg(long)]
    all: bool,
}

/// `pglab gc`: removes stale labs, saying what and why.
pub fn gc(a: GcArgs) -> Result<i32> {
    doctor::require_root("remove labs")?;
    let removed = lab::gc(a.all)?;
    if removed.is_empty() {
        println!("nothing stale");
    }
    for (what, why) in removed {
        println!("removed {what} ({why})");
    }
    Ok(0)
}
