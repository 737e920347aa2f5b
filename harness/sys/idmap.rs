//! Idmapped mounts: a view of a directory tree in which every owner is shifted by a base, so
//! that a user-namespaced lab host (whose root is uid `base` on this machine) owns the box's
//! files without a copy or a `chown` of them.
//!
//! Why not `mount -o X-mount.idmap=`: util-linux 2.38 (Debian 12) ignores the option
//! silently (measured: the bind mount came out with uid 0). Why not nspawn's
//! `--private-users-ownership=chown`: it rewrites every file of the 578 MB box, which an
//! overlay copies up whole. Overlayfs takes an idmapped lower layer (Linux 5.19 and later;
//! measured on 6.18: the box's /etc/passwd read as uid 1577058304 through the view, and the
//! host booted and ran PostgreSQL).

use anyhow::{bail, Context, Result};
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;

/// Ids a lab host's user namespace maps: 0..RANGE inside is base..base+RANGE outside.
pub const RANGE: u32 = 65536;

/// `struct mount_attr` of mount_setattr(2).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;

fn cpath(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes()).context("a path with a NUL byte")
}

/// A user namespace whose ids 0..RANGE are `base`..`base+RANGE` here: a child that only
/// unshares and waits, mapped from this side, then its namespace is held open by a file.
fn user_namespace(base: u32) -> Result<OwnedFd> {
    let mut cmd = std::process::Command::new("sleep");
    cmd.arg("60");
    // Runs in the forked child (single-threaded there, as unshare(CLONE_NEWUSER) requires).
    unsafe {
        cmd.pre_exec(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER).map_err(std::io::Error::from)
        });
    }
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .spawn()
        .context("cannot start a process in a new user namespace")?;
    let pid = child.id();
    let held = (|| -> Result<OwnedFd> {
        let map = format!("0 {base} {RANGE}\n");
        for f in ["uid_map", "gid_map"] {
            std::fs::write(format!("/proc/{pid}/{f}"), &map)
                .with_context(|| format!("cannot write /proc/{pid}/{f}"))?;
        }
        let f = std::fs::File::open(format!("/proc/{pid}/ns/user"))?;
        Ok(f.into())
    })();
    let _ = child.kill();
    let _ = child.wait();
    held
}

/// Mounts a read-only view of `src` at `dst` in which an owner `u` reads as `base + u`.
pub fn mount_shifted(src: &Path, dst: &Path, base: u32) -> Result<()> {
    let ns = user_namespace(base)?;
    let (csrc, cdst) = (cpath(src)?, cpath(dst)?);
    let empty = CString::default();
    // SAFETY: plain system calls on valid NUL-terminated strings and a live descriptor.
    unsafe {
        let fd = libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            csrc.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint,
        );
        if fd < 0 {
            bail!(
                "open_tree({}) failed: {}",
                src.display(),
                std::io::Error::last_os_error()
            );
        }
        let tree = OwnedFd::from_raw_fd(fd as i32);
        let attr = MountAttr {
            attr_set: MOUNT_ATTR_IDMAP | MOUNT_ATTR_RDONLY,
            attr_clr: 0,
            propagation: 0,
            userns_fd: ns.as_raw_fd() as u64,
        };
        let r = libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        );
        if r != 0 {
            bail!(
                "an idmapped view of {} is refused: {} (Linux 5.12 or later and a file system that supports idmapped mounts are needed; see `pglab doctor`)",
                src.display(),
                std::io::Error::last_os_error()
            );
        }
        let r = libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_FDCWD,
            cdst.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        );
        if r != 0 {
            bail!(
                "cannot mount the idmapped view of {} at {}: {}",
                src.display(),
                dst.display(),
                std::io::Error::last_os_error()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    /// Needs root (CI and the lab tests run as root); elsewhere it says so and passes.
    #[test]
    fn a_shifted_view_shows_every_owner_moved_by_the_base_and_is_read_only() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let (src, dst) = (d.path().join("src"), d.path().join("dst"));
        std::fs::create_dir_all(&src).unwrap();
        std::fs::create_dir_all(&dst).unwrap();
        std::fs::write(src.join("f"), "x").unwrap();
        std::os::unix::fs::lchown(src.join("f"), Some(70), Some(71)).unwrap();
        let base = 0x1234_0000;
        mount_shifted(&src, &dst, base).unwrap();
        let m = std::fs::metadata(dst.join("f"));
        let w = std::fs::write(dst.join("g"), "y");
        let _ = nix::mount::umount2(&dst, nix::mount::MntFlags::MNT_DETACH);
        let m = m.unwrap();
        assert_eq!((m.uid(), m.gid()), (base + 70, base + 71));
        assert!(w.is_err(), "the view is read-only");
        assert_eq!(std::fs::metadata(src.join("f")).unwrap().uid(), 70);
    }
}
