//! A run's cancel token: whoever oversees a run (the grade's deadline watcher) asks it to stop,
//! with a reason, instead of destroying its lab under it. The token is the calling thread's
//! (`with`), carried by `fanout` into the threads a run starts; `exec` ends the command that
//! runs when it is cancelled (its process group too) and starts no other, the scenario
//! runner's waits and the run's phases stop at the next poll, and the run then ends by its
//! own path: its lab removed by it, its outcome the overseer's reason.

use std::cell::RefCell;
use std::sync::{Arc, Mutex};

/// Cheap to clone; every clone is the same token.
#[derive(Debug, Clone, Default)]
pub struct Token(Arc<Mutex<Option<String>>>);

impl Token {
    /// Asks every holder to stop; the first reason stays.
    pub fn cancel(&self, reason: &str) {
        let mut r = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if r.is_none() {
            *r = Some(reason.to_string());
        }
    }

    /// Why it was cancelled, once it is.
    pub fn reason(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

thread_local! {
    static CURRENT: RefCell<Option<Token>> = const { RefCell::new(None) };
}

/// Runs `f` with `token` as this thread's token (the one before is put back after).
pub fn with<R>(token: Option<Token>, f: impl FnOnce() -> R) -> R {
    /// Puts the token before back however `f` ends (a panic too).
    struct Restore(Option<Option<Token>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let before = self.0.take().flatten();
            CURRENT.with(|c| *c.borrow_mut() = before);
        }
    }
    let _restore = Restore(Some(CURRENT.with(|c| c.replace(token))));
    f()
}

/// This thread's token, to carry into a thread it starts.
pub fn current() -> Option<Token> {
    CURRENT.with(|c| c.borrow().clone())
}

/// Why this thread's run was asked to stop, if it was.
pub fn stopped() -> Option<String> {
    current().and_then(|t| t.reason())
}

/// An error when this thread's run was asked to stop: `?` it between phases.
pub fn check() -> anyhow::Result<()> {
    match stopped() {
        Some(why) => Err(anyhow::anyhow!("stopped: {why}")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_the_threads_own_and_keeps_its_first_reason() {
        assert!(check().is_ok());
        let t = Token::default();
        with(Some(t.clone()), || {
            assert!(check().is_ok());
            t.cancel("past the deadline of 40 s");
            t.cancel("a later reason");
            assert_eq!(stopped().as_deref(), Some("past the deadline of 40 s"));
            let e = check().unwrap_err().to_string();
            assert_eq!(e, "stopped: past the deadline of 40 s");
            // Another thread does not see it unless it is carried there.
            let other = std::thread::spawn(stopped).join().unwrap();
            assert_eq!(other, None);
            let token = current();
            let carried = std::thread::spawn(move || with(token, stopped))
                .join()
                .unwrap();
            assert_eq!(carried.as_deref(), Some("past the deadline of 40 s"));
        });
        assert!(check().is_ok(), "put back after `with`");
    }
}
