//! Progress on the terminal: spinners for long work (hidden when stderr is not a terminal).

use indicatif::{ProgressBar, ProgressStyle};
use std::time::Duration;

pub fn spinner(msg: &str) -> ProgressBar {
    let bar = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        ProgressBar::new_spinner()
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed:>4}] {msg}").expect("valid template"),
    );
    bar.set_message(msg.to_string());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

thread_local! {
    /// Set by each lab's thread when several run at once, so their lines can be told apart.
    static PREFIX: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// Prefixes this thread's progress lines with `[label] `.
pub fn set_label(label: &str) {
    PREFIX.with(|p| *p.borrow_mut() = format!("[{label}] "));
}

/// A line of progress that is also readable in a CI log: `[  12.3s] phase: message`.
/// One `eprintln!` per line: lines of labs running at once never mix.
pub fn say(started: std::time::Instant, phase: &str, msg: &str) {
    let prefix = PREFIX.with(|p| p.borrow().clone());
    eprintln!(
        "{prefix}[{:>6.1}s] {phase}: {msg}",
        started.elapsed().as_secs_f64()
    );
}
