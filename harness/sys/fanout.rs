//! The ways to do things side by side: `fan_out`, a scoped thread per item, joined in the
//! items' order; and `pool`, the one lab pool, `jobs` at a time (`run --jobs`, `grade`,
//! `bench parallel`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Runs `f` on every item at once and returns the results in the items' order; a thread
/// that panicked gives an error naming `what` instead of taking this thread down.
pub fn fan_out<T: Sync, R: Send>(
    items: &[T],
    what: &str,
    f: impl Fn(&T) -> anyhow::Result<R> + Sync,
) -> Vec<anyhow::Result<R>> {
    let f = &f;
    // The run's cancel token goes with its work into every thread.
    let token = super::cancel::current();
    std::thread::scope(|s| {
        let handles: Vec<_> = items
            .iter()
            .map(|i| {
                let token = token.clone();
                s.spawn(move || super::cancel::with(token, || f(i)))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("{what}'s thread panicked")))
            })
            .collect()
    })
}

/// The one lab pool: `jobs` workers, each taking the next item as soon as it is free (a slow
/// item holds only its own slot, never a batch), while `watch` runs on the calling thread
/// (progress lines, deadlines: it returns once it sees every item done). Results come back
/// in the items' order; an item whose work panicked gives an error naming `what`, and the
/// other items go on.
pub fn pool<T: Sync, R: Send>(
    items: &[T],
    jobs: usize,
    what: &str,
    work: impl Fn(&T) -> anyhow::Result<R> + Sync,
    watch: impl FnOnce(),
) -> Vec<anyhow::Result<R>> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<anyhow::Result<R>>>> =
        Mutex::new(items.iter().map(|_| None).collect());
    let token = super::cancel::current();
    let worker = || {
        while let Some(i) = Some(next.fetch_add(1, Ordering::SeqCst)).filter(|i| *i < items.len()) {
            let one = || super::cancel::with(token.clone(), || work(&items[i]));
            let r =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(one)).unwrap_or_else(|p| {
                    Err(anyhow::anyhow!(
                        "{what}'s thread panicked: {}",
                        panic_message(p.as_ref())
                    ))
                });
            results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(r);
        }
    };
    std::thread::scope(|s| {
        for _ in 0..jobs.clamp(1, items.len().max(1)) {
            s.spawn(worker);
        }
        watch();
    });
    results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .map(|r| r.expect("every item was taken"))
        .collect()
}

/// The text a panic was raised with (`panic!("...")`), or nothing.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each result as its value or its error's text.
    fn shown<T: std::fmt::Display>(r: &[anyhow::Result<T>]) -> Vec<String> {
        r.iter()
            .map(|x| match x {
                Ok(v) => v.to_string(),
                Err(e) => e.to_string(),
            })
            .collect()
    }

    #[test]
    fn results_come_back_in_order_and_a_panic_is_an_error() {
        let r = fan_out(&[1, 2, 0, 3], "a number", |n| {
            if *n == 0 {
                panic!("zero");
            }
            Ok(n * 10)
        });
        let shown = shown(&r);
        assert_eq!(shown, ["10", "20", "a number's thread panicked", "30"]);
    }

    /// Two slots: the first item does not end until the three short ones after it have
    /// ended, which only a slot that takes the next item as soon as it is free can do (in
    /// batches of two, the second batch would wait for the first item: it gives up after
    /// 10 s and says so). At most two run at a time; results in the items' order, a panic
    /// an error.
    #[test]
    fn a_free_slot_takes_the_next_item_at_once() {
        use std::time::{Duration, Instant};
        let running = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        let short_done = AtomicUsize::new(0);
        let r = pool(
            &["long", "short", "short", "short", "panics"],
            2,
            "an item",
            |item| {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                let _end = Ended(&running);
                match *item {
                    "long" => {
                        let until = Instant::now() + Duration::from_secs(10);
                        while short_done.load(Ordering::SeqCst) < 3 {
                            anyhow::ensure!(Instant::now() < until, "waited for the short ones");
                            std::thread::sleep(Duration::from_millis(5));
                        }
                    }
                    "short" => {
                        short_done.fetch_add(1, Ordering::SeqCst);
                    }
                    _ => panic!("zero"),
                }
                Ok(*item)
            },
            || {},
        );
        assert_eq!(most.load(Ordering::SeqCst), 2);
        let shown = shown(&r);
        assert_eq!(
            shown,
            [
                "long",
                "short",
                "short",
                "short",
                "an item's thread panicked: zero"
            ]
        );
    }

    /// Counts a worker out when its item ends, however it ends.
    struct Ended<'a>(&'a AtomicUsize);

    impl Drop for Ended<'_> {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }
}
