use crate::lab::{self, Lab};
use crate::sys::doctor;
use anyhow::Result;
use clap::Args;

#[derive(Args)]
pub struct DownArgs {
    #[arg(long)]
    lab: Option<String>,
    #[arg(long)]
    all: bool,
}

/// `pglab down`: removes one lab, or every lab with --all.
pub fn down(a: DownArgs) -> Result<i32> {
    doctor::require_root("remove a lab")?;
    if a.all {
        for r in lab::list()? {
            lab::destroy(&r.id)?;
            println!("removed lab {}", r.id);
        }
    } else {
        let l = Lab::attach(a.lab.as_deref())?;
        let id = l.id().to_string();
        l.down()?;
        println!("removed lab {id}");
    }
    Ok(0)
}
