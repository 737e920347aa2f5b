//! A homework given as a repository (a Vagrantfile, or an inventory of the student's own VMs): the lab takes its topology and box
//! unless the command line names them.

use crate::model::topology::Topology;
use crate::provision::inventory_repo;
use crate::provision::repo::RepoPlan;
use anyhow::Result;
use std::path::Path;

/// What pglab reads from `dir` when it is a repository (has a Vagrantfile).
pub fn repo_plan(dir: Option<&Path>) -> Result<Option<RepoPlan>> {
    match dir.filter(|d| inventory_repo::is_repository(d)) {
        Some(d) => Ok(Some(inventory_repo::load_any(d)?)),
        None => Ok(None),
    }
}

/// The topology and pglab box a repository asks for; None when `dir` is no repository.
/// A box with no equivalent here (Red Hat family) is an error that names the way to run it.
pub fn repo_lab(dir: Option<&Path>) -> Result<Option<(Topology, String)>> {
    repo_plan(dir)?
        .map(|p| Ok((p.topology.clone(), p.pglab_box()?)))
        .transpose()
}
