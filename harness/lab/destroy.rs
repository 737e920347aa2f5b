//! Removing a lab by discovery, whichever backend made it and whether or not its record is
//! still there: `down`, `Drop`, the signal handler and `gc` all end here.

use super::record::read_record;
use crate::backend::vagrant;
use crate::sys::paths;
use anyhow::Result;

/// Removes lab `id` (record or not) by discovery.
pub fn destroy(id: &str) -> Result<()> {
    let dir = paths::labs_dir().join(id);
    // The record says which backend; without one (a lab killed while it was being made),
    // look for what a Vagrant lab leaves: its directory or libvirt domains (asking libvirt
    // costs a quarter of a second, so only then).
    let is_vagrant = match read_record(id) {
        Ok(r) => r.backend.is_vagrant(),
        Err(_) => {
            dir.join("vagrant").exists()
                || !crate::backend::vagrant::libvirt::domains_matching(
                    &crate::model::names::host_prefix(id),
                )
                .is_empty()
        }
    };
    if is_vagrant {
        return vagrant::teardown(id, &dir);
    }
    let hosts: Vec<String> = match read_record(id) {
        Ok(r) => r.topology.hosts.iter().map(|h| h.name.clone()).collect(),
        Err(_) => std::fs::read_dir(dir.join("hosts"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect(),
    };
    let hosts: Vec<&str> = hosts.iter().map(String::as_str).collect();
    crate::backend::nspawn::teardown(id, &dir, &hosts)
}
