use crate::backend::vagrant::vagrantfile::{render, Provider, VagrantOptions};
use crate::model::topology::Topology;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct VagrantfileArgs {
    #[arg(long, value_enum, default_value = "virtualbox")]
    provider: Provider,
    #[arg(long)]
    topology: Option<PathBuf>,
    /// Write it here instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// `pglab vagrantfile`: the Vagrantfile a Vagrant lab would use.
pub fn vagrantfile(a: VagrantfileArgs) -> Result<i32> {
    let topology = Topology::load_or_default(a.topology.as_deref())?;
    let opts = VagrantOptions::for_provider(a.provider);
    let text = render(&topology, "manual", &opts)?;
    match a.out {
        Some(p) => std::fs::write(&p, text)?,
        None => print!("{text}"),
    }
    Ok(0)
}
