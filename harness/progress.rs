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

/// A line of progress that is also readable in a CI log: `[  12.3s] phase: message`.
pub fn say(started: std::time::Instant, phase: &str, msg: &str) {
    eprintln!("[{:>6.1}s] {phase}: {msg}", started.elapsed().as_secs_f64());
}
