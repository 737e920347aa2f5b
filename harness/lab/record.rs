//! A lab's record on disk (`<state>/labs/<id>/lab.json`): enough to find and remove the lab
//! from another process, and which backend made it.

use crate::backend::vagrant;
use crate::backend::vagrant::vagrantfile::Provider;
use crate::model::topology::Topology;
use crate::sys::{paths, procfs};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// What is written to `lab.json`: enough to find and remove the lab from another process.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabRecord {
    pub id: String,
    /// Written as `nspawn`, `vagrant-libvirt` or `vagrant-virtualbox`.
    pub backend: BackendChoice,
    pub box_name: String,
    pub box_root: PathBuf,
    pub topology: Topology,
    /// The pglab process that created the lab; when it is gone and the lab is not kept,
    /// the lab is stale.
    pub owner_pid: u32,
    pub owner_start: u64,
    pub kept: bool,
    pub created_unix: u64,
    /// Vagrant labs: the box's name for Vagrant.
    #[serde(default)]
    pub vagrant_box: Option<String>,
}

impl LabRecord {
    /// A new lab's record, owned by this process.
    pub(super) fn new(
        opts: &UpOptions,
        box_root: PathBuf,
        vagrant_box: Option<String>,
    ) -> LabRecord {
        LabRecord {
            id: new_id(),
            backend: opts.backend,
            vagrant_box,
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

/// Which backend brings the hosts up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum BackendChoice {
    Nspawn,
    Vagrant(Provider),
}

impl BackendChoice {
    /// PGLAB_BACKEND=nspawn|vagrant (default nspawn) and, for Vagrant,
    /// PGLAB_PROVIDER=libvirt|virtualbox (default libvirt).
    pub fn from_env() -> Result<BackendChoice> {
        let backend = std::env::var("PGLAB_BACKEND").unwrap_or_else(|_| "nspawn".into());
        let provider = std::env::var("PGLAB_PROVIDER").unwrap_or_else(|_| "libvirt".into());
        Ok(match (backend.as_str(), provider.as_str()) {
            ("nspawn", _) => BackendChoice::Nspawn,
            ("vagrant", "libvirt") => BackendChoice::Vagrant(Provider::Libvirt),
            ("vagrant", "virtualbox") => BackendChoice::Vagrant(Provider::Virtualbox),
            ("vagrant", p) => bail!("PGLAB_PROVIDER={p:?}: pglab knows libvirt and virtualbox"),
            (b, _) => bail!("PGLAB_BACKEND={b:?}: pglab knows nspawn and vagrant"),
        })
    }

    pub fn record_name(&self) -> String {
        match self {
            BackendChoice::Nspawn => "nspawn".into(),
            BackendChoice::Vagrant(p) => format!("vagrant-{}", vagrant::provider_name(*p)),
        }
    }

    pub fn is_vagrant(&self) -> bool {
        matches!(self, BackendChoice::Vagrant(_))
    }
}

impl std::fmt::Display for BackendChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.record_name())
    }
}

impl From<BackendChoice> for String {
    fn from(b: BackendChoice) -> String {
        b.record_name()
    }
}

impl TryFrom<String> for BackendChoice {
    type Error = String;
    fn try_from(name: String) -> std::result::Result<Self, String> {
        match name.as_str() {
            "nspawn" => Ok(BackendChoice::Nspawn),
            "vagrant-libvirt" => Ok(BackendChoice::Vagrant(Provider::Libvirt)),
            "vagrant-virtualbox" => Ok(BackendChoice::Vagrant(Provider::Virtualbox)),
            other => Err(format!("backend {other:?}, which this pglab does not know")),
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
    pub backend: BackendChoice,
}

impl Default for UpOptions {
    fn default() -> Self {
        UpOptions {
            box_name: crate::backend::boxes::DEFAULT_BOX.into(),
            topology: Topology::default_lab(),
            backend: BackendChoice::Nspawn,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backend_is_written_in_the_record_as_before() {
        for (b, name) in [
            (BackendChoice::Nspawn, "\"nspawn\""),
            (
                BackendChoice::Vagrant(Provider::Libvirt),
                "\"vagrant-libvirt\"",
            ),
            (
                BackendChoice::Vagrant(Provider::Virtualbox),
                "\"vagrant-virtualbox\"",
            ),
        ] {
            assert_eq!(serde_json::to_string(&b).unwrap(), name);
            assert_eq!(serde_json::from_str::<BackendChoice>(name).unwrap(), b);
        }
        let e = serde_json::from_str::<BackendChoice>("\"docker\"").unwrap_err();
        assert!(
            e.to_string().contains("which this pglab does not know"),
            "{e}"
        );
    }
}
