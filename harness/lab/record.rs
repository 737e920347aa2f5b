//! A lab's record on disk (`<state>/labs/<id>/lab.json`): enough to find and remove the lab
//! from another process, and which backend made it.

use crate::backend::Kind;
use crate::model::topology::Topology;
use crate::sys::{paths, procfs};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// What is written to `lab.json`: enough to find and remove the lab from another process.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabRecord {
    pub id: String,
    /// Written as `nspawn`, `vagrant-libvirt` or `vagrant-virtualbox`.
    pub backend: Kind,
    pub box_name: String,
    pub box_root: PathBuf,
    pub topology: Topology,
    /// The pglab process that created the lab; when it is gone and the lab is not kept,
    /// the lab is stale.
    pub owner_pid: u32,
    pub owner_start: u64,
    pub kept: bool,
    pub created_unix: u64,
    /// The box's name for the backend, when it has its own (a Vagrant lab's box name).
    /// Written as `vagrant_box` by earlier versions.
    #[serde(default, alias = "vagrant_box")]
    pub backend_box: Option<String>,
}

impl LabRecord {
    /// A new lab's record, owned by this process.
    pub(super) fn new(
        opts: &UpOptions,
        box_root: PathBuf,
        backend_box: Option<String>,
    ) -> LabRecord {
        LabRecord {
            id: new_id(),
            backend: opts.backend,
            backend_box,
            box_name: opts.box_name.clone(),
            box_root,
            topology: opts.topology.clone(),
            owner_pid: std::process::id(),
            owner_start: procfs::pid_start_time(std::process::id()).unwrap_or(0),
            kept: false,
            created_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        }
    }
}

fn new_id() -> String {
    use rand::Rng;
    format!("{:06x}", rand::thread_rng().gen_range(0..0x100_0000u32))
}

pub fn read_record(id: &str) -> Result<LabRecord> {
    let p = paths::labs_dir().join(id).join("lab.json");
    let text = std::fs::read_to_string(&p)
        .with_context(|| format!("no lab {id} ({} not readable)", p.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not a lab record", p.display()))
}

/// Every lab with a record on this machine.
pub fn list() -> Result<Vec<LabRecord>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(paths::labs_dir())
        .into_iter()
        .flatten()
        .flatten()
    {
        if let Ok(r) = read_record(&e.file_name().to_string_lossy()) {
            out.push(r);
        }
    }
    out.sort_by_key(|r| r.created_unix);
    Ok(out)
}

/// What a new lab is made of.
pub struct UpOptions {
    pub box_name: String,
    pub topology: Topology,
    pub backend: Kind,
}

impl Default for UpOptions {
    fn default() -> Self {
        UpOptions {
            box_name: crate::backend::boxes::DEFAULT_BOX.into(),
            topology: Topology::default_lab(),
            backend: Kind::Nspawn,
        }
    }
}
