//! Progress on the terminal: spinners for long work (hidden when stderr is not a terminal).

use super::safe_text::terminal;
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
    // A message may quote a submission's output or name: shown, never interpreted.
    eprintln!(
        "{}[{:>6.1}s] {phase}: {}",
        terminal(&prefix),
        started.elapsed().as_secs_f64(),
        terminal(msg)
    );
}

/// Where each labelled thread stands (`provision`, `recover`...), since when, and its lab, for
/// a caller that reports many runs at once (`pglab grade`).
#[derive(Debug, Clone)]
pub struct Stage {
    pub stage: String,
    pub since: std::time::Instant,
    /// When the thread was `track`ed: its run's start.
    pub started: std::time::Instant,
    pub lab: Option<String>,
    /// The run's cancel token (`track` makes it): its overseer stops it through this.
    pub cancel: super::cancel::Token,
}

static STAGES: std::sync::Mutex<std::collections::BTreeMap<String, Stage>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

thread_local! {
    static LABEL: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// Names this thread for `stage` and `stages` (and prefixes its lines, as `set_label`);
/// returns the cancel token of its run, for the thread to run under (`cancel::with`).
pub fn track(label: &str) -> super::cancel::Token {
    set_label(label);
    LABEL.with(|l| *l.borrow_mut() = label.to_string());
    let now = std::time::Instant::now();
    let cancel = super::cancel::Token::default();
    with_stages(|s| {
        s.insert(
            label.to_string(),
            Stage {
                stage: "start".into(),
                since: now,
                started: now,
                lab: None,
                cancel: cancel.clone(),
            },
        )
    });
    cancel
}

fn with_stages<R>(f: impl FnOnce(&mut std::collections::BTreeMap<String, Stage>) -> R) -> R {
    f(&mut STAGES.lock().unwrap_or_else(|e| e.into_inner()))
}

/// This thread (when `track`ed) enters `name`.
pub fn stage(name: &str) {
    let label = LABEL.with(|l| l.borrow().clone());
    if label.is_empty() {
        return;
    }
    with_stages(|s| {
        if let Some(st) = s.get_mut(&label) {
            st.stage = name.to_string();
            st.since = std::time::Instant::now();
        }
    });
}

/// This thread (when `track`ed) works on lab `id`.
pub fn stage_lab(id: &str) {
    let label = LABEL.with(|l| l.borrow().clone());
    with_stages(|s| {
        if let Some(st) = s.get_mut(&label) {
            st.lab = Some(id.to_string());
        }
    });
}

/// Every tracked thread's stage, by label.
pub fn stages() -> std::collections::BTreeMap<String, Stage> {
    with_stages(|s| s.clone())
}

/// Forgets `label` (its run ended).
pub fn untrack(label: &str) {
    with_stages(|s| s.remove(label));
}
