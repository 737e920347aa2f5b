//! An nspawn lab as the backend sees it: its id, its directory (one folder per host: the
//! overlay's layers, the root it mounts, the nspawn pid file and console log), the box it
//! runs and its topology. The other parts (`network`, `storage`, `launch`, `teardown`) add
//! their verbs to it.

use crate::model::topology::Topology;
use anyhow::Result;
use std::path::{Path, PathBuf};

pub struct Nspawn {
    pub(super) id: String,
    pub(super) dir: PathBuf,
    pub(super) box_root: PathBuf,
    pub(super) topo: Topology,
}

impl Nspawn {
    pub fn new(id: &str, dir: &Path, box_root: &Path, topo: &Topology) -> Nspawn {
        Nspawn {
            id: id.into(),
            dir: dir.into(),
            box_root: box_root.into(),
            topo: topo.clone(),
        }
    }

    pub(super) fn host_dir(&self, host: &str) -> PathBuf {
        self.dir.join("hosts").join(host)
    }

    pub(super) fn root(&self, host: &str) -> PathBuf {
        self.host_dir(host).join("root")
    }

    pub(super) fn place(&self, host: &str) -> String {
        format!("lab {}, host {host}", self.id)
    }

    pub(super) fn check_host(&self, host: &str) -> Result<()> {
        self.topo.require_host(&self.id, host).map(|_| ())
    }
}
