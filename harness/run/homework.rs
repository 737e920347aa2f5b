//! A homework given as a repository (a Vagrantfile): the lab takes its topology and box
//! unless the command line names them.

use crate::model::topology::Topology;
use crate::provision::repo;
use anyhow::Result;
use std::path::Path;

/// The topology and pglab box a repository asks for; None when `dir` is no repository.
/// A box with no equivalent here (Red Hat family) is an error that names the way to run it.
pub fn repo_lab(dir: Option<&Path>) -> Result<Option<(Topology, String)>> {
    let Some(dir) = dir.filter(|d| d.join("Vagrantfile").exists()) else {
        return Ok(None);
    };
    let plan = repo::load(dir)?;
    Ok(Some((plan.topology.clone(), plan.pglab_box()?)))
}
