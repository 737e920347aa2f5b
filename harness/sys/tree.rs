//! Copies of a submission's tree for a sandbox to use: regular files and folders only (no
//! `.git`, no devices or fifos), symlinks only where they stay inside the tree (recreated as
//! they are, so they resolve inside the copy), a size limit per file and in all, and the
//! copy handed to the sandbox's unprivileged user. Nothing outside the tree is ever read.

use anyhow::{Context, Result};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

/// The user sandboxes run as (`nobody`): no file of this machine belongs to it.
pub const NOBODY: u32 = 65534;

pub struct CopyRules {
    /// Files larger than this are left out.
    pub file_max: u64,
    /// Bytes the whole copy may take; files beyond it are left out.
    pub total_max: u64,
    /// Recreate symlinks whose target stays inside the tree (else every symlink is left out).
    pub inner_symlinks: bool,
}

/// Whether the symlink at `rel` (relative to the tree's root) pointing to `target` resolves
/// inside the tree, judged lexically (the copy holds no other link it could pass through).
fn stays_inside(rel: &Path, target: &Path) -> bool {
    if target.is_absolute() {
        return false;
    }
    let mut depth: i64 = rel.components().count() as i64 - 1;
    for c in target.components() {
        match c {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            _ => {}
        }
        if depth < 0 {
            return false;
        }
    }
    true
}

/// Copies `from` into the existing folder `to` under `rules`; returns what was left out.
pub fn copy_tree(from: &Path, to: &Path, rules: &CopyRules) -> Result<Vec<PathBuf>> {
    let mut left_out = Vec::new();
    let mut budget = rules.total_max;
    let mut todo = vec![PathBuf::new()];
    while let Some(rel) = todo.pop() {
        let dir = from.join(&rel);
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))?
        {
            let entry = entry?;
            let rel = rel.join(entry.file_name());
            let (src, dst) = (entry.path(), to.join(&rel));
            let kind = entry.file_type()?;
            if kind.is_dir() && entry.file_name() != ".git" {
                std::fs::create_dir(&dst)?;
                std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o755))?;
                todo.push(rel);
            } else if kind.is_file() {
                let len = entry.metadata()?.len();
                if len > rules.file_max || len > budget {
                    left_out.push(rel);
                    continue;
                }
                budget -= len;
                std::fs::copy(&src, &dst)?;
                let exec = entry.metadata()?.permissions().mode() & 0o111 != 0;
                let mode = if exec { 0o755 } else { 0o644 };
                std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(mode))?;
            } else if kind.is_symlink() && rules.inner_symlinks {
                let target = std::fs::read_link(&src)?;
                if stays_inside(&rel, &target) {
                    std::os::unix::fs::symlink(&target, &dst)?;
                } else {
                    left_out.push(rel);
                }
            } else if entry.file_name() != ".git" {
                left_out.push(rel);
            }
        }
    }
    Ok(left_out)
}

/// Hands `dir` and everything under it to `uid` (symlinks themselves, not their targets).
pub fn chown_tree(dir: &Path, uid: u32) -> Result<()> {
    std::os::unix::fs::lchown(dir, Some(uid), Some(uid))
        .with_context(|| format!("cannot hand {} to uid {uid}", dir.display()))?;
    if dir.symlink_metadata()?.is_dir() {
        for e in std::fs::read_dir(dir)? {
            chown_tree(&e?.path(), uid)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_that_leave_the_tree_are_left_out() {
        assert!(stays_inside(Path::new("roles/x"), Path::new("../files/y")));
        assert!(stays_inside(Path::new("a"), Path::new("b/c")));
        assert!(!stays_inside(Path::new("a"), Path::new("../b")));
        assert!(!stays_inside(
            Path::new("roles/x"),
            Path::new("../../etc/passwd")
        ));
        assert!(!stays_inside(Path::new("a"), Path::new("/etc/machine-id")));
        let from = tempfile::tempdir().unwrap();
        let to = tempfile::tempdir().unwrap();
        std::fs::create_dir(from.path().join("roles")).unwrap();
        std::fs::write(from.path().join("roles/main.yml"), "x").unwrap();
        std::os::unix::fs::symlink("roles/main.yml", from.path().join("inner")).unwrap();
        std::os::unix::fs::symlink("/etc/machine-id", from.path().join("outer")).unwrap();
        std::fs::create_dir(from.path().join(".git")).unwrap();
        let rules = CopyRules {
            file_max: 10,
            total_max: 100,
            inner_symlinks: true,
        };
        let left = copy_tree(from.path(), to.path(), &rules).unwrap();
        assert_eq!(left, [PathBuf::from("outer")]);
        assert_eq!(
            std::fs::read_to_string(to.path().join("inner")).unwrap(),
            "x"
        );
        assert!(!to.path().join(".git").exists());
    }
}
