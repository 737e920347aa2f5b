//! Old boxes: a recipe that changes gets a new hash and a new cache entry, and the old one
//! (a few hundred MB, a GB for a libvirt image, plus its `pglab/NAME-HASH` Vagrant box) stays
//! behind. `pglab box prune` removes every cached box whose recipe hash is no longer one of
//! `boxes/*.toml`'s, except those a lab on this machine still uses; `pglab doctor` says how
//! much they hold.

use crate::backend::boxes::list_recipes;
use crate::backend::kind;
use anyhow::Result;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// A cache entry (or Vagrant box) that no current recipe builds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleBox {
    /// `<cache>/boxes/NAME-HASH` or, for a Vagrant box, its name (`pglab/NAME-HASH`).
    pub what: String,
    /// A box a backend keeps outside pglab's cache (`kind::kept_boxes`): its name there.
    pub kept: Option<String>,
    pub path: Option<PathBuf>,
    pub bytes: u64,
}

/// The cache directory names and Vagrant box names today's recipes build.
fn current_names() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for recipe in list_recipes().unwrap_or_default() {
        names.extend(kind::box_names(&recipe));
    }
    names
}

/// Box roots that labs on this machine use (their overlays sit on them).
fn in_use() -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    for lab in super::record::list().unwrap_or_default() {
        // box_root is `<cache>/boxes/NAME-HASH/rootfs`.
        if let Some(dir) = lab.box_root.parent() {
            used.insert(dir_name(dir));
        }
        if let Some(v) = lab.backend_box {
            used.insert(v);
        }
    }
    used
}

fn dir_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Bytes of the files under `p` (symlinks not followed, directories' own blocks not counted).
pub fn size_of(p: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(p) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(p)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| size_of(&e.path()))
        .sum()
}

/// Which of `entries` (cache directory names) are stale: not built by a current recipe, not
/// used by a lab, not a build in progress (`.tmp-*`, which `gc` handles).
pub fn stale_names(
    entries: &[String],
    current: &BTreeSet<String>,
    used: &BTreeSet<String>,
) -> Vec<String> {
    entries
        .iter()
        .filter(|e| !e.starts_with('.'))
        .filter(|e| !current.contains(*e) && !used.contains(*e))
        .cloned()
        .collect()
}

/// Every stale box, with its size.
pub fn find_stale() -> Vec<StaleBox> {
    let current = current_names();
    let used = in_use();
    let parent = crate::sys::paths::cache_root().join("boxes");
    let entries: Vec<String> = std::fs::read_dir(&parent)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| dir_name(&e.path()))
        .collect();
    let mut stale: Vec<StaleBox> = stale_names(&entries, &current, &used)
        .into_iter()
        .map(|n| {
            let path = parent.join(&n);
            StaleBox {
                what: path.display().to_string(),
                kept: None,
                bytes: size_of(&path),
                path: Some(path),
            }
        })
        .collect();
    for name in stale_names(&kind::kept_boxes(), &current, &used) {
        stale.push(StaleBox {
            what: kind::kept_box_label(&name),
            kept: Some(name),
            path: None,
            bytes: 0,
        });
    }
    stale
}

/// Removes the stale boxes; returns what was removed.
pub fn prune() -> Result<Vec<StaleBox>> {
    let stale = find_stale();
    for s in &stale {
        if let Some(p) = &s.path {
            crate::sys::mounts::remove_tree(p)?;
        }
        if let Some(name) = &s.kept {
            kind::remove_kept_box(name)?;
        }
    }
    Ok(stale)
}

/// `1.2 GB`.
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KB", "MB", "GB"];
    let mut v = b as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_entries_of_no_current_recipe_and_no_lab_are_stale() {
        let entries: Vec<String> = [
            "bookworm-aaaaaaaaaaaa",
            "bookworm-bbbbbbbbbbbb",
            "bookworm-libvirt-cccccccccccc",
            "trixie-dddddddddddd",
            ".tmp-bookworm-eeeeeeeeeeee-123",
        ]
        .map(String::from)
        .to_vec();
        let current: BTreeSet<String> = ["bookworm-aaaaaaaaaaaa", "bookworm-libvirt-cccccccccccc"]
            .map(String::from)
            .into();
        let used: BTreeSet<String> = ["trixie-dddddddddddd"].map(String::from).into();
        assert_eq!(
            stale_names(&entries, &current, &used),
            vec!["bookworm-bbbbbbbbbbbb".to_string()]
        );
    }

    #[test]
    fn sizes_are_summed_and_printed_for_people() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("a")).unwrap();
        std::fs::write(dir.path().join("a/f"), vec![0u8; 1500]).unwrap();
        std::fs::write(dir.path().join("g"), vec![0u8; 500]).unwrap();
        assert_eq!(size_of(dir.path()), 2000);
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(1_500_000_000), "1.5 GB");
    }
}
