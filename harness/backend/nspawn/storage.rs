//! A lab's storage: the hosts' overlays over a read-only, id-shifted view of the box, their
//! writable layers and saved states on tmpfs (or disk), and saved states copied to and fro.

use super::layout::Nspawn;
use super::sandbox;
use crate::sys::exec::must;
use crate::sys::{cleanup, procfs};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

impl Nspawn {
    pub(super) fn saved_dir(&self, name: &str) -> PathBuf {
        self.dir.join("saved").join(name)
    }

    pub(super) fn saved_names(&self) -> Vec<String> {
        std::fs::read_dir(self.dir.join("saved"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect()
    }

    /// Puts the hosts' writable layers and the saved states on tmpfs (unless
    /// `PGLAB_LAB_STORAGE=disk`). On disk, ext4 makes every new file slow once many files
    /// were deleted nearby (its inode allocator skips recently deleted inodes one by one:
    /// `recently_deleted` was 57% of a profile), and a lab deletes and creates data
    /// directories all the time: creating 1000 files took 0.6 s of CPU in a lab's overlay
    /// on disk, 0.05 s on tmpfs. A lab's files are thrown away with it anyway.
    pub(super) fn mount_storage(&self) -> Result<()> {
        if lab_storage()? != Storage::Tmpfs {
            return Ok(());
        }
        for sub in IN_MEMORY {
            let at = self.dir.join(sub);
            std::fs::create_dir_all(&at)?;
            if procfs::is_mountpoint(&at) {
                continue;
            }
            let _g = cleanup::creating()?;
            must(
                &[
                    "mount",
                    "-t",
                    "tmpfs",
                    "-o",
                    &format!("mode=0755,size={}", sandbox::tmpfs_size()?),
                    &crate::model::names::lab_tag(&self.id),
                    &at.to_string_lossy(),
                ],
                &format!("lab {}", self.id),
                "tmpfs must be mountable here; or set PGLAB_LAB_STORAGE=disk",
            )?;
        }
        Ok(())
    }

    /// The box as this lab's hosts see it: a read-only view in which every owner is shifted
    /// into the lab's id range ([`sandbox::uid_base`]), shared by the lab's hosts.
    pub(super) fn box_view(&self) -> Result<PathBuf> {
        let at = self.dir.join("box");
        std::fs::create_dir_all(&at)?;
        if !procfs::is_mountpoint(&at) {
            let _g = cleanup::creating()?;
            crate::sys::idmap::mount_shifted(&self.box_root, &at, sandbox::uid_base(&self.id))
                .with_context(|| {
                    format!("lab {}: the box's view for user-namespaced hosts", self.id)
                })?;
        }
        Ok(at)
    }

    pub(super) fn mount_root(&self, host: &str) -> Result<()> {
        let hd = self.host_dir(host);
        for sub in ["upper", "work", "root"] {
            std::fs::create_dir_all(hd.join(sub))?;
        }
        let root = self.root(host);
        if procfs::is_mountpoint(&root) {
            return Ok(());
        }
        let lower = self.box_view()?;
        // The overlay's root directory is the upper layer's: owned by the host's root.
        let base = sandbox::uid_base(&self.id);
        std::os::unix::fs::lchown(hd.join("upper"), Some(base), Some(base))?;
        let opts = format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.display(),
            hd.join("upper").display(),
            hd.join("work").display()
        );
        let _g = cleanup::creating()?;
        must(
            &[
                "mount",
                "-t",
                "overlay",
                &crate::model::names::lab_tag(&self.id),
                "-o",
                &opts,
                &root.to_string_lossy(),
            ],
            &self.place(host),
            "overlayfs must be available (`modprobe overlay`); see `pglab doctor`",
        )?;
        // The box carries the build machine's hostname: every host gets its own, owned by
        // the host's root (written from here it would be this machine's root's: "nobody").
        // Written from this machine: /etc must be the host's own folder, not a link a
        // submission left (it would resolve here), and the file is made anew, never followed.
        let etc = root.join("etc");
        if !etc.symlink_metadata().map(|m| m.is_dir()).unwrap_or(false) {
            bail!(
                "{}: /etc is not a folder (a link the submission made?); the host cannot start",
                self.place(host)
            );
        }
        let hostname = etc.join("hostname");
        let _ = std::fs::remove_file(&hostname);
        {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&hostname)?;
            f.write_all(format!("{host}\n").as_bytes())?;
        }
        std::os::unix::fs::lchown(&hostname, Some(base), Some(base))?;
        Ok(())
    }
}

/// The lab directory's parts that are tmpfs mounts (`PGLAB_LAB_STORAGE=tmpfs`): the hosts'
/// overlay layers and the saved states. They are also the big parts to remove.
pub(super) const IN_MEMORY: [&str; 2] = ["hosts", "saved"];

#[derive(Debug, PartialEq, Eq)]
pub enum Storage {
    Tmpfs,
    Disk,
}

/// Where a lab's writable layers live: `PGLAB_LAB_STORAGE` = `tmpfs` (default) or `disk`
/// (for machines short of memory: a lab holds a few hundred MB per host).
pub fn lab_storage() -> Result<Storage> {
    match std::env::var("PGLAB_LAB_STORAGE").as_deref() {
        Err(_) | Ok("") | Ok("tmpfs") => Ok(Storage::Tmpfs),
        Ok("disk") => Ok(Storage::Disk),
        Ok(other) => bail!("PGLAB_LAB_STORAGE={other:?}: use `tmpfs` (the default) or `disk`"),
    }
}

/// `cp -a` (reflinks where the file system has them): keeps owners, modes, xattrs and the
/// overlay's whiteout devices.
pub(super) fn copy_tree(from: &Path, to: &Path, place: &str) -> Result<()> {
    must(
        &[
            "cp",
            "-a",
            "--reflink=auto",
            &from.to_string_lossy(),
            &to.to_string_lossy(),
        ],
        place,
        "is there space left in the lab's state directory (PGLAB_STATE_DIR)?",
    )?;
    Ok(())
}
