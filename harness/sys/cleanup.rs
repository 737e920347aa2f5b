//! No leftovers: what this process is building is registered here as a closure that removes
//! it, and removed on failure, panic (through `Drop` of the lab), SIGINT and SIGTERM. This
//! module depends on nothing: the owner says how to undo (the lab registers "destroy me").

use anyhow::{bail, Result};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

type Undo = Box<dyn FnOnce() + Send>;

/// What this process owns and must remove when it is interrupted, by key, oldest first.
static OWNED: Mutex<Vec<(String, Undo)>> = Mutex::new(Vec::new());
/// Held while a resource is being created, so that the signal handler never tears down
/// half of a `mount` or `ip netns add` and then exits while the other half appears.
static CREATING: Mutex<()> = Mutex::new(());
static ABORTING: AtomicBool = AtomicBool::new(false);

fn owned() -> MutexGuard<'static, Vec<(String, Undo)>> {
    OWNED.lock().unwrap_or_else(|e| e.into_inner())
}

/// Registers something this process owns under `key` (e.g. "lab ID"); `undo` removes it.
pub fn own(key: impl Into<String>, undo: impl FnOnce() + Send + 'static) {
    owned().push((key.into(), Box::new(undo)));
}

/// The thing under `key` is finished or handed over: nothing to undo any more.
pub fn disown(key: &str) {
    owned().retain(|(k, _)| k != key);
}

pub fn aborting() -> bool {
    ABORTING.load(Ordering::SeqCst)
}

/// Take this before creating a resource; fails once an interrupt has arrived.
pub fn creating() -> Result<MutexGuard<'static, ()>> {
    let g = CREATING.lock().unwrap_or_else(|e| e.into_inner());
    if aborting() {
        bail!("interrupted: not creating anything more");
    }
    Ok(g)
}

/// On SIGINT/SIGTERM: stop creating, remove everything this process owns, exit 130/143.
pub fn install_signal_handlers() {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) else {
        return;
    };
    std::thread::spawn(move || {
        if let Some(sig) = signals.forever().next() {
            ABORTING.store(true, Ordering::SeqCst);
            let name = if sig == SIGINT { "SIGINT" } else { "SIGTERM" };
            eprintln!("\npglab: {name} received: removing what this run created ...");
            let _hold = CREATING.lock().unwrap_or_else(|e| e.into_inner());
            remove_owned();
            eprintln!("pglab: cleaned up; exiting");
            std::process::exit(128 + sig);
        }
    });
}

/// Removes everything registered as owned, newest first (also used at the end of a failed
/// CLI command). The list is taken out first: an undo may itself call `disown`.
pub fn remove_owned() {
    let items: Vec<(String, Undo)> = std::mem::take(&mut *owned());
    for (_key, undo) in items.into_iter().rev() {
        undo();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creating_is_refused_once_aborting() {
        // Only checks the unset state: setting ABORTING would poison other tests.
        assert!(!aborting());
        assert!(creating().is_ok());
    }

    #[test]
    fn disowned_things_are_not_undone() {
        use std::sync::atomic::AtomicUsize;
        static UNDONE: AtomicUsize = AtomicUsize::new(0);
        own("unit a", || {
            UNDONE.fetch_add(1, Ordering::SeqCst);
        });
        own("unit b", || {
            UNDONE.fetch_add(10, Ordering::SeqCst);
        });
        disown("unit b");
        // Only this test's keys: other tests in this process may own things too.
        let mine: Vec<(String, Undo)> = {
            let mut all = owned();
            let (mine, rest) = std::mem::take(&mut *all)
                .into_iter()
                .partition(|(k, _)| k.starts_with("unit "));
            *all = rest;
            mine
        };
        for (_, undo) in mine {
            undo();
        }
        assert_eq!(UNDONE.load(Ordering::SeqCst), 1);
    }
}
