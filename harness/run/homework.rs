//! A homework given as a repository (a Vagrantfile): the lab takes its topology and box
//! unless the command line names them.

use crate::model::topology::Topology;
use crate::provision::repo::{self, RepoPlan};
use crate::provision::vagrantfile_read;
use anyhow::Result;
use std::path::Path;

/// What pglab reads from `dir` when it is a repository (has a Vagrantfile).
pub fn repo_plan(dir: Option<&Path>) -> Result<Option<RepoPlan>> {
    match dir.filter(|d| vagrantfile_read::find(d).is_some()) {
        Some(d) => Ok(Some(repo::load(d)?)),
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
