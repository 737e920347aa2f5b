//! Everything on this machine that still carries a lab's id: each backend finds its own
//! resources; the lab adds its processes and its directory. Used by tests and `pglab gc`.

use crate::sys::{paths, procfs};

/// What is left of lab `id`, one line each ("network namespace ...", "process 123").
pub fn leftovers(id: &str) -> Vec<String> {
    let tag = crate::model::names::lab_tag(id);
    let mut found = crate::backend::kind::leftovers(id);
    for pid in procfs::pids_matching(&tag) {
        found.push(format!("process {pid}"));
    }
    let dir = paths::labs_dir().join(id);
    if dir.exists() {
        found.push(format!("directory {}", dir.display()));
    }
    found
}
