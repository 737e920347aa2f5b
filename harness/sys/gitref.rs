//! The commit a submission's git repository is at, read from its `.git` files without
//! running git: a student's `.git/config` can name programs git would run (`core.fsmonitor`,
//! `core.pager`), so nothing of it is executed. Every file goes through the submission door
//! (`tree::read_inside`: no symlink out, no device, nothing oversized).

use super::tree::read_inside;
use std::path::Path;

/// The largest `.git` file read here: HEAD and a ref are one line, packed-refs a line per ref.
const MAX_REFS: u64 = 4 << 20;

/// The commit `HEAD` names in `dir/.git`, or "" when `dir` is no git repository pglab can read
/// this way (no `.git` folder, a `.git` file of a worktree or submodule, a ref it cannot find).
pub fn head_commit(dir: &Path) -> String {
    let git = dir.join(".git");
    if !git.symlink_metadata().is_ok_and(|m| m.is_dir()) {
        return String::new();
    }
    let read = |rel: &str| read_inside(&git, Path::new(rel), MAX_REFS).ok();
    let Some(head) = read("HEAD") else {
        return String::new();
    };
    let head = head.trim();
    let commit = match head.strip_prefix("ref:") {
        None => Some(head.to_string()),
        Some(r) => {
            let r = r.trim();
            read(r)
                .map(|t| t.trim().to_string())
                .or_else(|| packed(&read("packed-refs")?, r))
        }
    };
    commit.filter(|c| is_object_id(c)).unwrap_or_default()
}

/// The commit of `name` in a packed-refs file (`<id> <ref>` lines; `^` lines peel tags).
fn packed(text: &str, name: &str) -> Option<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with('^'))
        .find_map(|l| {
            let (id, r) = l.split_once(' ')?;
            (r.trim() == name).then(|| id.to_string())
        })
}

/// SHA-1 (40) or SHA-256 (64) hex.
fn is_object_id(s: &str) -> bool {
    matches!(s.len(), 40 | 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_commit_comes_from_head_a_ref_or_packed_refs_and_never_through_a_link() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(head_commit(d.path()), "", "no .git");
        let git = d.path().join(".git");
        std::fs::create_dir_all(git.join("refs/heads")).unwrap();
        let id = "0123456789abcdef0123456789abcdef01234567";
        std::fs::write(git.join("HEAD"), "ref: refs/heads/main\n").unwrap();
        std::fs::write(
            git.join("packed-refs"),
            format!("# pack-refs with: peeled\n{id} refs/heads/main\n^{id}\n"),
        )
        .unwrap();
        assert_eq!(head_commit(d.path()), id, "packed");
        let loose = "fedcba9876543210fedcba9876543210fedcba98";
        std::fs::write(git.join("refs/heads/main"), format!("{loose}\n")).unwrap();
        assert_eq!(head_commit(d.path()), loose, "a loose ref wins");
        std::fs::write(git.join("HEAD"), format!("{id}\n")).unwrap();
        assert_eq!(head_commit(d.path()), id, "detached");
        // A ref that is a link out of the repository is not followed, nor a HEAD that names
        // a file outside.
        std::fs::write(git.join("HEAD"), "ref: refs/heads/evil\n").unwrap();
        std::os::unix::fs::symlink("/etc/hostname", git.join("refs/heads/evil")).unwrap();
        assert_eq!(head_commit(d.path()), "");
        std::fs::write(git.join("HEAD"), "ref: ../../../etc/hostname\n").unwrap();
        assert_eq!(head_commit(d.path()), "");
        std::fs::write(git.join("HEAD"), "not a commit\n").unwrap();
        assert_eq!(head_commit(d.path()), "");
    }
}
