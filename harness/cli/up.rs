use crate::backend::Kind;
use crate::lab::{Lab, UpOptions};
use crate::model::topology::Topology;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct UpArgs {
    /// Box recipe (boxes/NAME.toml).
    #[arg(long = "box", default_value = crate::backend::boxes::DEFAULT_BOX)]
    box_name: String,
    /// Topology file (default: the built-in lab.toml).
    #[arg(long)]
    topology: Option<PathBuf>,
}

/// `pglab up`: a lab that stays up, and how to get in.
pub fn up(a: UpArgs) -> Result<i32> {
    let topology = Topology::load_or_default(a.topology.as_deref())?;
    let mut lab = Lab::up(UpOptions {
        box_name: a.box_name,
        topology,
        backend: Kind::from_env()?,
    })?;
    lab.keep()?;
    println!("{}", lab.how_to_enter());
    Ok(0)
}
