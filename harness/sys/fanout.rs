//! One way to do things side by side: a scoped thread per item, joined in the items' order.

/// Runs `f` on every item at once and returns the results in the items' order; a thread
/// that panicked gives an error naming `what` instead of taking this thread down.
pub fn fan_out<T: Sync, R: Send>(
    items: &[T],
    what: &str,
    f: impl Fn(&T) -> anyhow::Result<R> + Sync,
) -> Vec<anyhow::Result<R>> {
    let f = &f;
    std::thread::scope(|s| {
        let handles: Vec<_> = items.iter().map(|i| s.spawn(move || f(i))).collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("{what}'s thread panicked")))
            })
            .collect()
    })
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

    #[test]
    fn results_come_back_in_order_and_a_panic_is_an_error() {
        let r = fan_out(&[1, 2, 0, 3], "a number", |n| {
            if *n == 0 {
                panic!("zero");
            }
            Ok(n * 10)
        });
        let shown: Vec<String> = r
            .iter()
            .map(|x| match x {
                Ok(v) => v.to_string(),
                Err(e) => e.to_string(),
            })
            .collect();
        assert_eq!(shown, ["10", "20", "a number's thread panicked", "30"]);
    }
}
