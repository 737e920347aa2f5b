//! A connection to a host's PostgreSQL made as one of the host's users, for pglab's SQL
//! checks: no program of the host takes part (a replaced `psql` cannot answer), and one
//! connection serves every check of a run instead of a process chain per check (nsenter,
//! runuser, bash, psql: about 40 ms each, measured with `pglab bench floor`).
//!
//! A forked child of pglab enters the host's user and mount namespaces, becomes the user
//! (its uid inside the host, so PostgreSQL's peer authentication sees that user), connects
//! to the server's Unix socket and hands the connected socket to pglab over a socket pair.

use anyhow::{bail, Context, Result};
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

/// Where Debian's PostgreSQL listens (`unix_socket_directories`), port 5432.
pub const SOCKET: &str = "/var/run/postgresql/.s.PGSQL.5432";

/// `user`'s uid and gid, from the box's /etc/passwd (pglab's own copy: the host's file is
/// the submission's, and read from this machine an absolute link in it would resolve here,
/// a FIFO there would block pglab for ever).
fn ids(box_root: &Path, user: &str) -> Result<(u32, u32)> {
    let passwd = crate::sys::tree::read_inside(box_root, Path::new("etc/passwd"), 1 << 20)?;
    for line in passwd.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() >= 4 && f[0] == user {
            return Ok((f[2].parse()?, f[3].parse()?));
        }
    }
    bail!("the box has no user {user:?}")
}

/// A Unix socket connected to the host's PostgreSQL as `user`.
pub fn connect(init: u32, box_root: &Path, user: &str) -> Result<UnixStream> {
    let (uid, gid) = ids(box_root, user)?;
    let userns = std::fs::File::open(format!("/proc/{init}/ns/user"))?;
    let mntns = std::fs::File::open(format!("/proc/{init}/ns/mnt"))?;
    let (ours, theirs) = UnixStream::pair()?;
    let path = CString::new(SOCKET)?;
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (i, b) in path.as_bytes().iter().enumerate() {
        addr.sun_path[i] = *b as libc::c_char;
    }
    // SAFETY: the child calls only async-signal-safe system calls on values prepared
    // before the fork, and leaves with _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        bail!("fork failed: {}", std::io::Error::last_os_error());
    }
    if pid == 0 {
        let code = unsafe {
            child(
                userns.as_raw_fd(),
                mntns.as_raw_fd(),
                uid,
                gid,
                &addr,
                theirs.as_raw_fd(),
            )
        };
        unsafe { libc::_exit(code) };
    }
    drop(theirs);
    let mut status = 0;
    unsafe { libc::waitpid(pid, &mut status, 0) };
    let code = libc::WEXITSTATUS(status);
    if code != 0 {
        let step = [
            "",
            "entering the host",
            "becoming the user",
            "connecting to the socket",
            "handing over the socket",
        ];
        bail!(
            "no connection to PostgreSQL on the host as {user}: {} failed (at {SOCKET})",
            step.get(code as usize).unwrap_or(&"the helper")
        );
    }
    receive(&ours).context("receiving the connection from the helper")
}

/// The child's part; returns its exit code (0, or the number of the step that failed).
unsafe fn child(
    userns: i32,
    mntns: i32,
    uid: u32,
    gid: u32,
    addr: &libc::sockaddr_un,
    to_parent: i32,
) -> i32 {
    if libc::setns(userns, libc::CLONE_NEWUSER) != 0 || libc::setns(mntns, libc::CLONE_NEWNS) != 0 {
        return 1;
    }
    if libc::setgroups(0, std::ptr::null()) != 0 || libc::setgid(gid) != 0 || libc::setuid(uid) != 0
    {
        return 2;
    }
    // Non-blocking: a listener whose queue is full (the submission's, never accepting) gets
    // EAGAIN at once instead of holding pglab.
    let s = libc::socket(
        libc::AF_UNIX,
        libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
        0,
    );
    let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
    if s < 0 || libc::connect(s, (addr as *const libc::sockaddr_un).cast(), len) != 0 {
        return 3;
    }
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut space = [0u8; 64];
    let mut msg: libc::msghdr = std::mem::zeroed();
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = space.as_mut_ptr().cast();
    msg.msg_controllen = libc::CMSG_SPACE(std::mem::size_of::<i32>() as u32) as _;
    let cmsg = libc::CMSG_FIRSTHDR(&msg);
    (*cmsg).cmsg_level = libc::SOL_SOCKET;
    (*cmsg).cmsg_type = libc::SCM_RIGHTS;
    (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<i32>() as u32) as _;
    std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<i32>(), s);
    if libc::sendmsg(to_parent, &msg, 0) != 1 {
        return 4;
    }
    0
}

fn receive(from: &UnixStream) -> Result<UnixStream> {
    let mut byte = [0u8; 1];
    let mut iov = [std::io::IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = nix::sys::socket::recvmsg::<()>(
        from.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        nix::sys::socket::MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    for c in msg.cmsgs()? {
        if let nix::sys::socket::ControlMessageOwned::ScmRights(fds) = c {
            if let Some(fd) = fds.first() {
                // SAFETY: a descriptor the kernel just gave this process.
                let owned = unsafe { OwnedFd::from_raw_fd(*fd) };
                return Ok(UnixStream::from(owned));
            }
        }
    }
    bail!("the helper sent no descriptor")
}
