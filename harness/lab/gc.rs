//! `pglab gc`: stale labs (owner gone, not kept) and resources whose lab has no record left.
//! A lab whose record exists but cannot be read is left alone, and said so.

use super::destroy::destroy;
use super::record::{list, LabRecord};
use crate::backend::boxes;
use crate::model::names;
use crate::sys::{paths, procfs};
use anyhow::Result;
use std::time::Duration;

pub(super) fn is_stale(r: &LabRecord) -> bool {
    let owner_alive = procfs::pid_alive(r.owner_pid)
        && procfs::pid_start_time(r.owner_pid) == Some(r.owner_start);
    !r.kept && !owner_alive
}

/// Finds and removes stale labs (owner gone, not kept; with `all`, every lab), and
/// resources whose lab has no record left. Returns what was removed and why.
pub fn gc(all: bool) -> Result<Vec<(String, String)>> {
    let mut removed = Vec::new();
    let mut known = std::collections::HashSet::new();
    for r in list()? {
        known.insert(r.id.clone());
        if all || is_stale(&r) {
            destroy(&r.id)?;
            removed.push((
                r.id.clone(),
                if all {
                    "--all".into()
                } else {
                    format!("its pglab process {} is gone", r.owner_pid)
                },
            ));
        }
    }
    // Orphans: directories without a record, namespaces and processes without a directory.
    // A record that cannot be read is not an orphan's: that lab is left alone, and said so.
    let (mut orphan_ids, unreadable) = orphan_dirs(&paths::labs_dir(), &known);
    for (id, why) in unreadable {
        eprintln!(
            "pglab: lab {id}: {why}; not removing it: look at {}; if the lab is stale, remove its lab.json and run `pglab gc` again",
            paths::labs_dir().join(&id).display()
        );
    }
    for name in crate::backend::kind::resources_named() {
        if let Some(id) = names::lab_id_of(&name) {
            if !known.contains(id) && !paths::labs_dir().join(id).exists() {
                orphan_ids.insert(id.to_string());
            }
        }
    }
    for id in orphan_ids {
        destroy(&id)?;
        removed.push((id, "no lab record".into()));
    }
    let kinds: Vec<crate::backend::Kind> = list()?.iter().map(|r| r.backend).collect();
    crate::backend::kind::after_gc(&kinds)?;
    for p in boxes::remove_stale_builds() {
        removed.push((p.display().to_string(), "half-built box".into()));
    }
    Ok(removed)
}

/// Lab directories under `labs` that have no record (and are not being created): their ids.
/// Directories whose record exists but cannot be read come back apart, with the reason.
fn orphan_dirs(
    labs: &std::path::Path,
    known: &std::collections::HashSet<String>,
) -> (std::collections::BTreeSet<String>, Vec<(String, String)>) {
    let mut orphans = std::collections::BTreeSet::new();
    let mut unreadable = Vec::new();
    for e in std::fs::read_dir(labs).into_iter().flatten().flatten() {
        let id = e.file_name().to_string_lossy().to_string();
        if known.contains(&id) {
            continue;
        }
        let record = e.path().join("lab.json");
        if record.exists() {
            let why = match std::fs::read_to_string(&record) {
                Ok(text) => match serde_json::from_str::<LabRecord>(&text) {
                    Ok(_) => "its record appeared while gc looked".to_string(),
                    Err(err) => format!("{} is not a lab record ({err})", record.display()),
                },
                Err(err) => format!("cannot read {} ({err})", record.display()),
            };
            unreadable.push((id, why));
        } else if !is_being_created(&e.path()) {
            orphans.insert(id);
        }
    }
    (orphans, unreadable)
}

/// A lab directory younger than a few seconds without lab.json may be one being created now.
fn is_being_created(dir: &std::path::Path) -> bool {
    std::fs::metadata(dir)
        .and_then(|m| m.modified())
        .map(|t| t.elapsed().unwrap_or_default() < Duration::from_secs(10))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gc_leaves_a_lab_whose_record_it_cannot_read() {
        let labs = tempfile::tempdir().unwrap();
        let damaged = labs.path().join("aaaaaa");
        std::fs::create_dir_all(&damaged).unwrap();
        std::fs::write(damaged.join("lab.json"), "{\"id\": \"aaa").unwrap();
        let no_record = labs.path().join("bbbbbb");
        std::fs::create_dir_all(&no_record).unwrap();
        // Older than a lab being created: a directory without a record is an orphan.
        let old = nix::sys::time::TimeVal::new(1_000_000_000, 0);
        nix::sys::stat::utimes(&no_record, &old, &old).unwrap();
        let known = std::collections::HashSet::from(["cccccc".to_string()]);
        std::fs::create_dir_all(labs.path().join("cccccc")).unwrap();
        let (orphans, unreadable) = orphan_dirs(labs.path(), &known);
        assert_eq!(orphans.into_iter().collect::<Vec<_>>(), ["bbbbbb"]);
        assert_eq!(unreadable.len(), 1, "{unreadable:?}");
        assert_eq!(unreadable[0].0, "aaaaaa");
        assert!(
            unreadable[0].1.contains("is not a lab record"),
            "{unreadable:?}"
        );
    }
}
