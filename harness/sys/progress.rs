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
    static LABEL: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// This thread's run's label (`set_label`), empty when one run is alone.
pub fn label() -> String {
    LABEL.with(|l| l.borrow().clone())
}

/// Labels this thread's run: its events carry the label (its lines start `[label] `).
pub fn set_label(label: &str) {
    LABEL.with(|l| *l.borrow_mut() = label.to_string());
}

/// Where a run is: what `Event::Entered` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunStage {
    /// Before its lab (reading the submission, building a box).
    Start,
    Up,
    Provision,
    /// A scenario, by name.
    Scenario(String),
    Down,
}

impl std::fmt::Display for RunStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RunStage::Start => "start",
            RunStage::Up => "up",
            RunStage::Provision => "provision",
            RunStage::Scenario(name) => name,
            RunStage::Down => "down",
        })
    }
}

/// What a run tells its reporters as it goes, in the order it happens.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A line of progress, `elapsed` since the run started: `[  12.3s] phase: message`.
    Said {
        elapsed: std::time::Duration,
        phase: String,
        msg: String,
    },
    /// The run enters a stage.
    Entered(RunStage),
    /// The run works on this lab.
    Lab(String),
}

/// Takes a run's events: the terminal printer (always), and whoever subscribed (the grade's
/// stage tracker, which its progress line and deadline watcher read). `label` is the run's
/// (`set_label`: a submission's name, a box), empty when one run is alone.
pub trait Reporter: Send + Sync {
    fn event(&self, label: &str, event: &Event);
}

/// Prints `Said` events on stderr, one `eprintln!` per line (lines of labs running at once
/// never mix), prefixed with the run's label.
struct Terminal;

impl Reporter for Terminal {
    fn event(&self, label: &str, event: &Event) {
        if let Event::Said {
            elapsed,
            phase,
            msg,
        } = event
        {
            let prefix = if label.is_empty() {
                String::new()
            } else {
                format!("[{label}] ")
            };
            // A message may quote a submission's output or name: shown, never interpreted.
            eprintln!(
                "{}[{:>6.1}s] {phase}: {}",
                terminal(&prefix),
                elapsed.as_secs_f64(),
                terminal(msg)
            );
        }
    }
}

type Subscribers = Vec<(u64, std::sync::Arc<dyn Reporter>)>;

static SUBSCRIBERS: std::sync::Mutex<Subscribers> = std::sync::Mutex::new(Vec::new());
static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Events go to `r` until the returned value is dropped.
pub fn subscribe(r: std::sync::Arc<dyn Reporter>) -> Subscription {
    let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    subscribers().push((id, r));
    Subscription(id)
}

/// A reporter's subscription (`subscribe`); dropping it unsubscribes.
pub struct Subscription(u64);

impl Drop for Subscription {
    fn drop(&mut self) {
        subscribers().retain(|(id, _)| *id != self.0);
    }
}

fn subscribers() -> std::sync::MutexGuard<'static, Subscribers> {
    SUBSCRIBERS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Sends `event`, labelled with this thread's run, to the terminal and every subscriber.
pub fn emit(event: Event) {
    let label = LABEL.with(|l| l.borrow().clone());
    Terminal.event(&label, &event);
    let subs: Vec<std::sync::Arc<dyn Reporter>> =
        subscribers().iter().map(|(_, r)| r.clone()).collect();
    for r in subs {
        r.event(&label, &event);
    }
}

/// A line of progress that is also readable in a CI log: `[  12.3s] phase: message`.
pub fn say(started: std::time::Instant, phase: &str, msg: &str) {
    emit(Event::Said {
        elapsed: started.elapsed(),
        phase: phase.into(),
        msg: msg.into(),
    });
}

/// This thread's run enters `stage`.
pub fn stage(stage: RunStage) {
    emit(Event::Entered(stage));
}

/// This thread's run works on lab `id`.
pub fn stage_lab(id: &str) {
    emit(Event::Lab(id.into()));
}

/// Where a tracked run stands, since when, and its lab: what its events said.
#[derive(Debug, Clone)]
pub struct Stage {
    pub stage: RunStage,
    pub since: std::time::Instant,
    /// When it was tracked: its run's start.
    pub started: std::time::Instant,
    pub lab: Option<String>,
    /// The run's cancel token: its overseer stops it through this.
    pub cancel: super::cancel::Token,
}

/// A reporter that keeps where each tracked run stands, for a caller that oversees many runs
/// at once (`pglab grade`: its progress line and its deadline watcher).
#[derive(Default)]
pub struct Stages(std::sync::Mutex<std::collections::BTreeMap<String, Stage>>);

impl Stages {
    fn map(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<String, Stage>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts following the run labelled `label` (its thread's `set_label`), stopped through
    /// `cancel`.
    pub fn track(&self, label: &str, cancel: super::cancel::Token) {
        let now = std::time::Instant::now();
        self.map().insert(
            label.to_string(),
            Stage {
                stage: RunStage::Start,
                since: now,
                started: now,
                lab: None,
                cancel,
            },
        );
    }

    /// Forgets `label` (its run ended).
    pub fn untrack(&self, label: &str) {
        self.map().remove(label);
    }

    /// Every tracked run's stage, by label.
    pub fn now(&self) -> std::collections::BTreeMap<String, Stage> {
        self.map().clone()
    }
}

impl Reporter for Stages {
    fn event(&self, label: &str, event: &Event) {
        let mut map = self.map();
        let Some(st) = map.get_mut(label) else {
            return;
        };
        match event {
            Event::Entered(stage) => {
                st.stage = stage.clone();
                st.since = std::time::Instant::now();
            }
            Event::Lab(id) => st.lab = Some(id.clone()),
            Event::Said { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run's events reach a subscriber with the run's label, and a tracker follows them; a
    /// dropped subscription hears nothing more.
    #[test]
    fn a_runs_events_reach_its_reporters() {
        #[derive(Default)]
        struct Heard(std::sync::Mutex<Vec<(String, Event)>>);
        impl Reporter for Heard {
            fn event(&self, label: &str, event: &Event) {
                self.0.lock().unwrap().push((label.into(), event.clone()));
            }
        }
        let heard = std::sync::Arc::new(Heard::default());
        let stages = std::sync::Arc::new(Stages::default());
        let sub = subscribe(heard.clone());
        let _tracking = subscribe(stages.clone());
        std::thread::spawn({
            let stages = stages.clone();
            move || {
                set_label("alice-events-test");
                stages.track("alice-events-test", Default::default());
                stage_lab("abc123");
                stage(RunStage::Scenario("replicate".into()));
            }
        })
        .join()
        .unwrap();
        drop(sub);
        stage(RunStage::Down);
        let mine: Vec<Event> = heard
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|(l, _)| l == "alice-events-test")
            .map(|(_, e)| e.clone())
            .collect();
        assert_eq!(
            mine,
            [
                Event::Lab("abc123".into()),
                Event::Entered(RunStage::Scenario("replicate".into()))
            ]
        );
        let now = stages.now();
        let st = &now["alice-events-test"];
        assert_eq!(st.stage.to_string(), "replicate");
        assert_eq!(st.lab.as_deref(), Some("abc123"));
    }
}
