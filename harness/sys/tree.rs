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

/// A student's repository as the grading and the Ansible controller copy it: its roles and
/// files, not build artefacts.
pub const REPOSITORY: CopyRules = CopyRules {
    file_max: 16 << 20,
    total_max: 256 << 20,
    inner_symlinks: true,
};

/// Whether the symlink at `rel` (relative to the tree's root) pointing to `target` resolves
/// inside the tree, judged lexically (the copy holds no other link it could pass through).
fn stays_inside(rel: &Path, target: &Path) -> bool {
    !target.is_absolute() && !climbs_out(rel.components().count() as i64 - 1, target)
}

/// Whether `path`, followed from a folder `depth` levels below a root, climbs above it.
fn climbs_out(mut depth: i64, path: &Path) -> bool {
    for c in path.components() {
        match c {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            _ => {}
        }
        if depth < 0 {
            return true;
        }
    }
    false
}

/// `rel` (a path a submission names) inside `root`, or why not: an absolute path, a path
/// that climbs out with `..`, or one that passes through a symlink leading outside. Judged
/// before anything is read, so that no file of the host comes back quoted in a student's log.
pub fn within(root: &Path, rel: &Path) -> std::result::Result<PathBuf, String> {
    if rel.is_absolute() {
        return Err(format!(
            "{} is an absolute path, outside the repository",
            rel.display()
        ));
    }
    if climbs_out(0, rel) {
        return Err(format!("{} leaves the repository", rel.display()));
    }
    let full = root.join(rel);
    if full.symlink_metadata().is_ok() {
        let root_c = root
            .canonicalize()
            .map_err(|e| format!("{}: {e}", root.display()))?;
        match full.canonicalize() {
            Ok(c) if c.starts_with(&root_c) => {}
            Ok(c) => {
                return Err(format!(
                    "{} is a symlink to {}, outside the repository",
                    rel.display(),
                    c.display()
                ))
            }
            Err(_) => return Err(format!("{} is a symlink that leads nowhere", rel.display())),
        }
    }
    Ok(full)
}

/// The text of a submission's file `rel` in `root` (see `within`), refused when it is not a
/// regular file (a device, a fifo: `/dev/zero` is read for ever) or larger than `max`.
pub fn read_inside(root: &Path, rel: &Path, max: u64) -> Result<String> {
    let path = within(root, rel).map_err(|why| anyhow::anyhow!("{}: {why}", root.display()))?;
    let meta =
        std::fs::metadata(&path).with_context(|| format!("cannot read {}", path.display()))?;
    if !meta.is_file() {
        anyhow::bail!(
            "{}: {} is not a regular file",
            root.display(),
            rel.display()
        );
    }
    if meta.len() > max {
        anyhow::bail!(
            "{}: {} is larger than {} bytes; a submission's text files are smaller",
            root.display(),
            rel.display(),
            max
        );
    }
    std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))
}

/// Copies `from` into the existing folder `to` under `rules`; returns what was left out.
/// A folder or file that turns into a symlink or a fifo while it is copied (the tree's
/// owner racing the copy) is never followed nor waited on: folders are checked again right
/// before they are read, files opened without following a link and without blocking, and
/// at most the size first seen is copied. A link that resolves outside the copy through
/// another link (`up -> .`, `x -> up/../..`) is removed once the copy is made.
pub fn copy_tree(from: &Path, to: &Path, rules: &CopyRules) -> Result<Vec<PathBuf>> {
    let mut left_out = Vec::new();
    let mut links = Vec::new();
    let mut budget = rules.total_max;
    let mut todo = vec![PathBuf::new()];
    while let Some(rel) = todo.pop() {
        let dir = from.join(&rel);
        if !std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir()) {
            left_out.push(rel);
            continue;
        }
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
                match copy_file(&src, &dst, rules.file_max.min(budget))? {
                    Some(len) => budget -= len,
                    None => left_out.push(rel),
                }
            } else if kind.is_symlink() && rules.inner_symlinks {
                let target = std::fs::read_link(&src)?;
                if stays_inside(&rel, &target) {
                    std::os::unix::fs::symlink(&target, &dst)?;
                    links.push(rel);
                } else {
                    left_out.push(rel);
                }
            } else if entry.file_name() != ".git" {
                left_out.push(rel);
            }
        }
    }
    left_out.extend(links_leading_out(to, links)?);
    Ok(left_out)
}

/// Copies the regular file `src` to the new file `dst` when it holds at most `max` bytes;
/// returns its size, or None when it is not a regular file (any more) or is larger.
fn copy_file(src: &Path, dst: &Path, max: u64) -> Result<Option<u64>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let flags = nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK;
    let Ok(file) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(src)
    else {
        return Ok(None);
    };
    let meta = file.metadata()?;
    if !meta.is_file() || meta.len() > max {
        return Ok(None);
    }
    let exec = meta.permissions().mode() & 0o111 != 0;
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(if exec { 0o755 } else { 0o644 })
        .open(dst)
        .with_context(|| format!("cannot write {}", dst.display()))?;
    let n = std::io::copy(&mut file.take(meta.len()), &mut out)?;
    out.set_permissions(std::fs::Permissions::from_mode(if exec {
        0o755
    } else {
        0o644
    }))?;
    Ok(Some(n))
}

/// The recreated links of a copy that resolve outside it (or nowhere), removed.
fn links_leading_out(to: &Path, links: Vec<PathBuf>) -> Result<Vec<PathBuf>> {
    let root = to.canonicalize()?;
    let mut out = Vec::new();
    for rel in links {
        let link = to.join(&rel);
        if !link.canonicalize().is_ok_and(|t| t.starts_with(&root)) {
            std::fs::remove_file(&link)?;
            out.push(rel);
        }
    }
    Ok(out)
}

/// A digest of a tree's names and contents (symlinks by their target's name), sorted.
pub fn digest(dir: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    let mut files = Vec::new();
    let mut todo = vec![PathBuf::new()];
    while let Some(rel) = todo.pop() {
        for e in std::fs::read_dir(dir.join(&rel))? {
            let e = e?;
            let rel = rel.join(e.file_name());
            if e.file_type()?.is_dir() {
                todo.push(rel.clone());
            }
            files.push(rel);
        }
    }
    files.sort();
    let mut h = Sha256::new();
    for rel in files {
        let p = dir.join(&rel);
        h.update(rel.to_string_lossy().as_bytes());
        h.update([0]);
        let meta = p.symlink_metadata()?;
        if meta.is_symlink() {
            h.update(std::fs::read_link(&p)?.to_string_lossy().as_bytes());
        } else if meta.is_file() {
            h.update(std::fs::read(&p)?);
        }
        h.update([1]);
    }
    Ok(hex::encode(h.finalize()))
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

    /// Paths a hostile submission names: each is refused with the reason, before a read.
    #[test]
    fn paths_that_leave_the_repository_are_refused() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::write(r.join("ok.sh"), "echo ok").unwrap();
        std::os::unix::fs::symlink("/etc/machine-id", r.join("id.sh")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", r.join("provision.toml")).unwrap();
        std::os::unix::fs::symlink("ok.sh", r.join("inner.sh")).unwrap();
        assert!(within(r, Path::new("ok.sh")).is_ok());
        assert!(within(r, Path::new("inner.sh")).is_ok());
        let why = |p: &str| within(r, Path::new(p)).unwrap_err();
        assert_eq!(
            why("/etc/passwd"),
            "/etc/passwd is an absolute path, outside the repository"
        );
        assert_eq!(
            why("a/../../etc/passwd"),
            "a/../../etc/passwd leaves the repository"
        );
        assert!(why("id.sh").contains("id.sh is a symlink to /etc/machine-id, outside"));
        let e = read_inside(r, Path::new("provision.toml"), 1 << 20)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("provision.toml is a symlink to /dev/zero, outside"),
            "{e}"
        );
        assert_eq!(
            read_inside(r, Path::new("inner.sh"), 100).unwrap(),
            "echo ok"
        );
        let e = read_inside(r, Path::new("ok.sh"), 3)
            .unwrap_err()
            .to_string();
        assert!(e.contains("larger than 3 bytes"), "{e}");
    }

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

    /// A link that looks inside by its text but leads out through another link of the tree,
    /// and a fifo where a file was: left out, and nothing waits on the fifo.
    #[test]
    fn links_leading_out_through_links_and_fifos_are_left_out() {
        let from = tempfile::tempdir().unwrap();
        let to = tempfile::tempdir().unwrap();
        let f = from.path();
        std::fs::create_dir(f.join("d")).unwrap();
        std::os::unix::fs::symlink(".", f.join("up")).unwrap();
        let depth = "up/".repeat(12) + &"../".repeat(12) + "etc/machine-id";
        std::os::unix::fs::symlink(&depth, f.join("x")).unwrap();
        assert!(
            stays_inside(Path::new("x"), Path::new(&depth)),
            "it looks inside"
        );
        assert!(f
            .join("x")
            .canonicalize()
            .unwrap()
            .ends_with("etc/machine-id"));
        std::os::unix::fs::symlink("../up", f.join("d/fine")).unwrap();
        nix::unistd::mkfifo(&f.join("pipe"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        let rules = CopyRules {
            file_max: 10,
            total_max: 100,
            inner_symlinks: true,
        };
        let mut left = copy_tree(f, to.path(), &rules).unwrap();
        left.sort();
        assert_eq!(left, [PathBuf::from("pipe"), PathBuf::from("x")]);
        assert!(to.path().join("d/fine").exists());
        assert!(to.path().join("x").symlink_metadata().is_err());
    }
}
