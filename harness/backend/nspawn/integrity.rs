//! Whether a host still has the box's programs where pglab's checks use them. Read from this
//! machine's side of the host's overlay: what the submission wrote is in the upper layer,
//! what the box had is in the lower one, and no program of the host takes part in the
//! reading (a replaced `cmp` or `sha256sum` could not lie about it).
//!
//! A check runs `psql`, `barman`, `pg_controldata`, bash, runuser (and what they load):
//! a submission that replaced one of them could answer every check's expected value (they
//! are public, in `scenarios/` and `snapshots/`). New files are not counted (packages the
//! homework installs), a program the submission removed only makes its check fail.

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

/// Folders (relative to the root) whose programs and libraries the checks run.
const WATCHED: [&str; 9] = [
    "usr/bin",
    "usr/sbin",
    "usr/lib/postgresql",
    "usr/lib/python3/dist-packages/barman",
    "usr/share/postgresql-common",
    "usr/lib/x86_64-linux-gnu",
    "usr/lib64",
    "etc/pam.d",
    "etc/security",
];

/// Top-level links of a merged-/usr root (`bin -> usr/bin`): replacing one moves every
/// program the checks use.
const LINKS: [&str; 5] = ["bin", "sbin", "lib", "lib64", "usr"];

/// At most this many entries of the upper layer are looked at (a submission's node_modules
/// must not make this slow); past it the rest is said to be unread.
const MAX_ENTRIES: usize = 200_000;

/// What the submission changed of the programs the checks use, one line each.
pub fn changed(upper: &Path, lower: &Path) -> Vec<String> {
    let mut found = Vec::new();
    if is_written(&upper.join("etc/ld.so.preload")) {
        found.push(
            "/etc/ld.so.preload was written: every program, the checks' included, would load what it names".to_string(),
        );
    }
    for top in LINKS {
        let (u, l) = (upper.join(top), lower.join(top));
        if let (Ok(um), Ok(lm)) = (u.symlink_metadata(), l.symlink_metadata()) {
            if lm.file_type().is_symlink()
                && std::fs::read_link(&u).ok() != std::fs::read_link(&l).ok()
                && !um.file_type().is_char_device()
            {
                found.push(format!(
                    "/{top} is not the box's link to {}",
                    std::fs::read_link(&l).unwrap_or_default().display()
                ));
            }
        }
    }
    let mut seen = 0usize;
    for dir in WATCHED {
        // Read from this machine, a link among the folder's parents would lead here.
        if let Some(link) = linked_parent(upper, dir) {
            found.push(format!("/{link} is not the box's folder (a link)"));
            continue;
        }
        walk(upper, lower, Path::new(dir), &mut seen, &mut found);
    }
    found.extend(shadows(upper, lower));
    if seen >= MAX_ENTRIES {
        found.push(format!(
            "more than {MAX_ENTRIES} files were written under the system's program folders; the rest were not compared"
        ));
    }
    found
}

/// Where a mount inside the host would put other programs or files under the checks'
/// feet without writing the overlay's upper layer (root in the host may mount in its own
/// mount namespace): the system's folders, PostgreSQL's socket folder.
const NO_MOUNTS_UNDER: [&str; 9] = [
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib64",
    "/etc",
    "/run/postgresql",
    "/var/run/postgresql",
    "/var/lib/postgresql",
];

/// Mounts of the host's init's mount namespace (its /proc/PID/mountinfo) over those folders.
pub fn mounts_over(mountinfo: &str) -> Vec<String> {
    let mut found = Vec::new();
    for line in mountinfo.lines() {
        let Some(point) = line.split(' ').nth(4) else {
            continue;
        };
        let point = point.replace("\\040", " ");
        let covered = NO_MOUNTS_UNDER
            .iter()
            .any(|d| point == *d || point.starts_with(&format!("{d}/")));
        if covered {
            found.push(format!(
                "a file system is mounted over {point} (mounted there, programs and files are not the box's)"
            ));
        }
    }
    found.sort();
    found.dedup();
    found
}

/// The first of `dir`'s folders (from the root) that the upper layer holds as something
/// other than a folder.
fn linked_parent(upper: &Path, dir: &str) -> Option<String> {
    let mut at = std::path::PathBuf::new();
    for part in dir.split('/') {
        at.push(part);
        match upper.join(&at).symlink_metadata() {
            Ok(m) if !(m.is_dir() || m.file_type().is_char_device() && m.rdev() == 0) => {
                return Some(at.display().to_string());
            }
            _ => {}
        }
    }
    None
}

/// Folders of a check's PATH, in its order (`backend::script::CHECK_PATH`, merged /usr).
const PATH_DIRS: [&str; 2] = ["usr/sbin", "usr/bin"];

/// New files that would be run instead of the box's: a program new in one PATH folder whose
/// name the box has in another, and a PostgreSQL major the box does not have (the checks'
/// prelude takes the highest one).
pub fn shadows(upper: &Path, lower: &Path) -> Vec<String> {
    let mut found = Vec::new();
    // Folders reached through a link are named by `changed` and never read here.
    for dir in PATH_DIRS
        .into_iter()
        .filter(|d| linked_parent(upper, d).is_none())
    {
        for e in std::fs::read_dir(upper.join(dir))
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = e.file_name();
            if lower.join(dir).join(&name).symlink_metadata().is_ok() || !is_written(&e.path()) {
                continue;
            }
            for other in PATH_DIRS.iter().filter(|o| **o != dir) {
                if lower.join(other).join(&name).symlink_metadata().is_ok() {
                    found.push(format!(
                        "/{dir}/{} is new and comes before or after the box's /{other}/{} in PATH",
                        name.to_string_lossy(),
                        name.to_string_lossy()
                    ));
                }
            }
        }
    }
    let pg = Path::new("usr/lib/postgresql");
    if linked_parent(upper, "usr/lib/postgresql").is_some() {
        return found;
    }
    for e in std::fs::read_dir(upper.join(pg))
        .into_iter()
        .flatten()
        .flatten()
    {
        let new = lower
            .join(pg)
            .join(e.file_name())
            .symlink_metadata()
            .is_err();
        if new && is_written(&e.path()) {
            found.push(format!(
                "/usr/lib/postgresql/{} is a PostgreSQL major the box does not have",
                e.file_name().to_string_lossy()
            ));
        }
    }
    found
}

fn is_written(p: &Path) -> bool {
    p.symlink_metadata()
        .map(|m| !(m.file_type().is_char_device() && m.rdev() == 0))
        .unwrap_or(false)
}

fn walk(upper: &Path, lower: &Path, rel: &Path, seen: &mut usize, found: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(upper.join(rel)) else {
        return;
    };
    for e in entries.flatten() {
        *seen += 1;
        if *seen >= MAX_ENTRIES {
            return;
        }
        let rel = rel.join(e.file_name());
        let Ok(um) = e.path().symlink_metadata() else {
            continue;
        };
        let Ok(lm) = lower.join(&rel).symlink_metadata() else {
            // New: a package the homework installs, or nothing the checks run.
            if um.is_dir() {
                walk(upper, lower, &rel, seen, found);
            }
            continue;
        };
        let (ut, lt) = (um.file_type(), lm.file_type());
        let differs = if ut.is_dir() {
            walk(upper, lower, &rel, seen, found);
            !lt.is_dir()
        } else if ut.is_char_device() && um.rdev() == 0 {
            false // removed: its check fails by itself
        } else if ut.is_symlink() {
            std::fs::read_link(e.path()).ok() != std::fs::read_link(lower.join(&rel)).ok()
        } else if ut.is_file() && lt.is_file() {
            um.len() != lm.len() || !same_bytes(&e.path(), &lower.join(&rel))
        } else {
            true
        };
        if differs {
            found.push(format!("/{} is not the box's", rel.display()));
        }
    }
}

/// Whether two regular files hold the same bytes (neither is followed if it is a link).
fn same_bytes(a: &Path, b: &Path) -> bool {
    let open = |p: &Path| {
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(p)
    };
    let (Ok(fa), Ok(fb)) = (open(a), open(b)) else {
        return false;
    };
    same_content(fa, fb)
}

/// The program process `pid` runs (its /proc/PID/exe, the file itself wherever it was
/// reached from) is one of the box's PostgreSQL servers: its path, or why not.
pub fn runs_box_postgres(pid: u32, box_root: &Path) -> Result<String, String> {
    let exe = std::path::PathBuf::from(format!("/proc/{pid}/exe"));
    let shown = std::fs::read_link(&exe)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "a program pglab cannot see".into());
    let majors = std::fs::read_dir(box_root.join("usr/lib/postgresql"))
        .into_iter()
        .flatten()
        .flatten();
    for m in majors {
        let server = m.path().join("bin/postgres");
        let (Ok(a), Ok(b)) = (std::fs::File::open(&exe), std::fs::File::open(&server)) else {
            continue;
        };
        let same_len = a.metadata().map(|x| x.len()).ok() == b.metadata().map(|x| x.len()).ok();
        if same_len && same_content(a, b) {
            return Ok(shown);
        }
    }
    Err(shown)
}

fn same_content(mut fa: std::fs::File, mut fb: std::fs::File) -> bool {
    let (mut ba, mut bb) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
    loop {
        let (Ok(na), Ok(nb)) = (read_full(&mut fa, &mut ba), read_full(&mut fb, &mut bb)) else {
            return false;
        };
        if na != nb || ba[..na] != bb[..nb] {
            return false;
        }
        if na == 0 {
            return true;
        }
    }
}

fn read_full(f: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh host's mounts (measured: what nspawn and systemd mount) are fine; a bind
    /// mount over /usr/bin or PostgreSQL's socket folder is named.
    #[test]
    fn mounts_over_the_system_or_the_socket_are_named() {
        let fresh = "1 2 0:1 / / rw - overlay x rw\n3 1 0:2 / /tmp rw - tmpfs t rw\n4 1 0:3 / /run rw - tmpfs t rw\n5 4 0:4 / /run/host/os-release ro - ext4 /dev/vda ro\n6 1 0:5 / /proc/sys ro - proc proc ro\n7 1 0:6 / /sys/fs/cgroup ro - tmpfs t ro\n";
        assert!(mounts_over(fresh).is_empty());
        let bound = format!("{fresh}8 1 0:7 /fake /usr/bin rw - ext4 /dev/vda rw\n9 4 0:8 / /run/postgresql rw - tmpfs t rw\n");
        assert_eq!(
            mounts_over(&bound),
            [
                "a file system is mounted over /run/postgresql (mounted there, programs and files are not the box's)",
                "a file system is mounted over /usr/bin (mounted there, programs and files are not the box's)"
            ]
        );
    }

    /// A new program that a check's PATH finds before (or instead of) the box's, a new
    /// PostgreSQL major, and a link among a watched folder's parents are all named.
    #[test]
    fn shadows_and_linked_folders_are_named() {
        let d = tempfile::tempdir().unwrap();
        let (lower, upper) = (d.path().join("lower"), d.path().join("upper"));
        for dir in ["usr/bin", "usr/sbin", "usr/lib/postgresql/15/bin"] {
            std::fs::create_dir_all(lower.join(dir)).unwrap();
        }
        std::fs::write(lower.join("usr/bin/psql"), "real").unwrap();
        std::fs::write(lower.join("usr/sbin/runuser"), "real").unwrap();
        std::fs::create_dir_all(upper.join("usr/sbin")).unwrap();
        std::fs::create_dir_all(upper.join("usr/bin")).unwrap();
        std::fs::write(upper.join("usr/bin/barman-wal-archive"), "new, fine").unwrap();
        assert!(changed(&upper, &lower).is_empty());
        std::fs::write(upper.join("usr/sbin/psql"), "fake").unwrap();
        std::fs::write(upper.join("usr/bin/runuser"), "fake").unwrap();
        std::fs::create_dir_all(upper.join("usr/lib/postgresql/99/bin")).unwrap();
        let found = changed(&upper, &lower);
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found.iter().any(|f| f.starts_with("/usr/sbin/psql is new")));
        assert!(found
            .iter()
            .any(|f| f.starts_with("/usr/bin/runuser is new")));
        assert!(found
            .iter()
            .any(|f| f.starts_with("/usr/lib/postgresql/99 is a PostgreSQL major")));
        let linked = d.path().join("linked");
        std::fs::create_dir_all(linked.join("etc")).unwrap();
        std::os::unix::fs::symlink("/", linked.join("usr")).unwrap();
        let found = changed(&linked, &lower);
        assert!(
            found
                .iter()
                .any(|f| f == "/usr is not the box's folder (a link)"),
            "{found:?}"
        );
        assert!(
            !found
                .iter()
                .any(|f| f.contains("/usr/bin/") || f.contains("/usr/sbin/")),
            "{found:?}"
        );
    }

    /// A box and an upper layer as overlayfs leaves them: a program replaced, one copied up
    /// unchanged (a chmod or a reinstall), a new one, a removed one, ld.so.preload.
    #[test]
    fn only_programs_that_differ_from_the_box_are_named() {
        let d = tempfile::tempdir().unwrap();
        let (lower, upper) = (d.path().join("lower"), d.path().join("upper"));
        for root in [&lower, &upper] {
            std::fs::create_dir_all(root.join("usr/bin")).unwrap();
        }
        std::fs::write(lower.join("usr/bin/psql"), "real psql").unwrap();
        std::fs::write(lower.join("usr/bin/barman"), "real barman").unwrap();
        std::fs::write(lower.join("usr/bin/rm"), "rm").unwrap();
        assert!(changed(&upper, &lower).is_empty());
        std::fs::write(upper.join("usr/bin/barman"), "real barman").unwrap();
        std::fs::write(upper.join("usr/bin/barman-wal-archive"), "new").unwrap();
        nix::sys::stat::mknod(
            &upper.join("usr/bin/rm"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::empty(),
            0,
        )
        .unwrap();
        assert!(
            changed(&upper, &lower).is_empty(),
            "{:?}",
            changed(&upper, &lower)
        );
        std::fs::write(upper.join("usr/bin/psql"), "echo t").unwrap();
        std::fs::create_dir_all(upper.join("etc")).unwrap();
        std::fs::write(upper.join("etc/ld.so.preload"), "/x.so").unwrap();
        let found = changed(&upper, &lower);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].starts_with("/etc/ld.so.preload was written"));
        assert_eq!(found[1], "/usr/bin/psql is not the box's");
    }
}
