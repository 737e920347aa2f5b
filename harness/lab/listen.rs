//! The one way a proxy for a lab listens: on an address of the lab's network namespace only
//! (the gateway of its bridge), so that nothing outside the lab reaches it. The socket is made
//! by a thread inside the namespace (a socket stays in the namespace it was made in); the
//! connections it accepts are handed over a channel to the caller, which serves them from
//! this machine's own namespace.

use anyhow::{bail, Context, Result};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

/// Accepted connections that may wait to be served.
pub const QUEUED: usize = 64;

/// Listens on `addr` inside `/run/netns/<netns>` until `stop`; returns the accepted
/// connections (blocking streams) once the socket is bound, or why it could not be.
pub fn accept_in(
    netns: &str,
    addr: SocketAddr,
    stop: &Arc<AtomicBool>,
) -> Result<mpsc::Receiver<TcpStream>> {
    // Bounded: past QUEUED connections waiting to be served, this thread stops accepting and
    // the kernel's listen queue holds the rest (a lab's hosts cannot make pglab hold an
    // open socket per connection they open).
    let (tx, rx) = mpsc::sync_channel::<TcpStream>(QUEUED);
    let (ready_tx, ready_rx) = mpsc::channel::<Result<()>>();
    let ns = format!("/run/netns/{netns}");
    let stop = stop.clone();
    std::thread::spawn(move || {
        let listener = (|| -> Result<TcpListener> {
            let f = std::fs::File::open(&ns).with_context(|| format!("cannot open {ns}"))?;
            nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET)
                .with_context(|| format!("cannot enter {ns}"))?;
            let l = TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr}"))?;
            l.set_nonblocking(true)?;
            Ok(l)
        })();
        let listener = match listener {
            Ok(l) => {
                let _ = ready_tx.send(Ok(()));
                l
            }
            Err(e) => {
                let _ = ready_tx.send(Err(e));
                return;
            }
        };
        while !stop.load(Ordering::SeqCst) {
            match listener.accept() {
                Ok((s, _)) => {
                    let _ = s.set_nonblocking(false);
                    if tx.send(s).is_err() {
                        return;
                    }
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    });
    match ready_rx.recv() {
        Ok(r) => r.map(|_| rx),
        Err(_) => bail!("the listening thread for {addr} ended"),
    }
}
