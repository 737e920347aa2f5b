//! Removing a lab by discovery, whichever backend made it and whether or not its record is
//! still there: `down`, `Drop`, the signal handler and `gc` all end here.

use super::record::read_record;
use crate::backend::Kind;
use crate::sys::paths;
use anyhow::Result;

/// Removes lab `id` (record or not) by discovery.
pub fn destroy(id: &str) -> Result<()> {
    // Never cancelled: whoever removes a lab, its commands must run (`Lab::down`).
    crate::sys::cancel::with(None, || destroy_now(id))
}

fn destroy_now(id: &str) -> Result<()> {
    let dir = paths::labs_dir().join(id);
    let record = read_record(id).ok();
    // The record says which kind; without one (a lab killed while it was being made), the
    // kinds look for what they leave.
    let kind = match &record {
        Some(r) => r.backend,
        None => Kind::discover(id, &dir),
    };
    let hosts: Vec<String> = match &record {
        Some(r) => r.topology.hosts.iter().map(|h| h.name.clone()).collect(),
        None => std::fs::read_dir(dir.join("hosts"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect(),
    };
    let hosts: Vec<&str> = hosts.iter().map(String::as_str).collect();
    kind.teardown(id, &dir, &hosts)
}
