//! Per-run logs: one file per step and host under `<state>/runs/<run-id>/`, named in every
//! failure message. Everything written here goes through the lab's secret redaction.

use crate::model::secrets::Secrets;
use crate::sys::exec::CmdOutput;
use crate::sys::progress::{Event, Reporter};
use anyhow::Result;
use std::path::{Path, PathBuf};

pub struct RunLog {
    pub dir: PathBuf,
    secrets: Secrets,
}

/// `Create Database otus!` → `create-database-otus`
pub fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').chars().take(60).collect()
}

impl RunLog {
    pub fn create(run_id: &str, secrets: &Secrets) -> Result<RunLog> {
        let root = crate::sys::paths::state_root().join("runs");
        prune(&root, 30);
        let dir = root.join(run_id);
        std::fs::create_dir_all(&dir)?;
        Ok(RunLog {
            dir,
            secrets: secrets.clone(),
        })
    }

    /// A run log in `dir` (unit tests).
    #[cfg(test)]
    pub fn at(dir: &std::path::Path, secrets: &Secrets) -> RunLog {
        RunLog {
            dir: dir.to_path_buf(),
            secrets: secrets.clone(),
        }
    }

    pub fn redact(&self, s: &str) -> String {
        self.secrets.redact(s)
    }

    /// Writes the log of one step on one host; returns its path.
    pub fn step(
        &self,
        group: &str,
        index: usize,
        step: &str,
        host: &str,
        command: &str,
        out: &CmdOutput,
    ) -> PathBuf {
        let dir = self.dir.join(slug(group));
        if let Err(e) = std::fs::create_dir_all(&dir) {
            eprintln!("pglab: cannot create the log folder {}: {e}", dir.display());
        }
        let path = dir.join(format!("{index:02}-{}.{host}.log", slug(step)));
        let text = format!(
            "step: {step}\nhost: {host}\nexit: {}\nduration: {:.2}s\n--- command ---\n{}\n--- stdout ---\n{}\n--- stderr ---\n{}\n",
            out.code,
            out.duration.as_secs_f64(),
            command,
            out.stdout,
            out.stderr
        );
        self.put(&path, &text);
        path
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.join(name);
        self.put(&path, text);
        path
    }

    /// Writes `text` redacted; a log that cannot be written is said on stderr (the run goes
    /// on: its verdicts still name the path).
    fn put(&self, path: &Path, text: &str) {
        if let Err(e) = std::fs::write(path, self.redact(text)) {
            eprintln!("pglab: cannot write the log {}: {e}", path.display());
        }
    }
}

impl RunLog {
    /// A reporter of the run labelled `label` (this thread's, `progress::label`) that writes
    /// its progress lines, redacted, to `progress.log` in this run's folder: the same lines
    /// as the terminal, kept with the run's other logs (and a graded submission's folder).
    pub fn progress_reporter(&self, label: &str) -> std::sync::Arc<dyn Reporter> {
        std::sync::Arc::new(ProgressLog {
            label: label.to_string(),
            path: self.dir.join("progress.log"),
            secrets: self.secrets.clone(),
        })
    }
}

struct ProgressLog {
    label: String,
    path: PathBuf,
    secrets: Secrets,
}

impl Reporter for ProgressLog {
    fn event(&self, label: &str, event: &Event) {
        let Event::Said {
            elapsed,
            phase,
            msg,
        } = event
        else {
            return;
        };
        if label != self.label {
            return;
        }
        use std::io::Write;
        let line = format!("[{:>6.1}s] {phase}: {msg}\n", elapsed.as_secs_f64());
        let line = crate::sys::safe_text::terminal(&self.secrets.redact(&line));
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = written {
            eprintln!("pglab: cannot write the log {}: {e}", self.path.display());
        }
    }
}

/// Keeps the newest `keep` run directories.
fn prune(root: &Path, keep: usize) {
    let mut runs: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    runs.sort();
    let n = runs.len();
    for (_, p) in runs.into_iter().take(n.saturating_sub(keep)) {
        let _ = std::fs::remove_dir_all(p);
    }
}

#[cfg(test)]
mod tests {
    /// The run's progress lines, its own and no other run's, go to `progress.log`,
    /// redacted.
    #[test]
    fn a_runs_progress_lines_are_kept_in_its_folder() {
        let d = tempfile::tempdir().unwrap();
        let secrets = crate::model::secrets::Secrets::generate();
        let log = super::RunLog::at(d.path(), &secrets);
        let _sub = crate::sys::progress::subscribe(log.progress_reporter("ann-progress-log"));
        let pw = secrets.replicator_password.clone();
        std::thread::spawn(move || {
            let t = std::time::Instant::now();
            crate::sys::progress::set_label("ann-progress-log");
            crate::sys::progress::say(t, "provision", &format!("password {pw} set"));
            crate::sys::progress::stage(crate::sys::progress::RunStage::Up);
            crate::sys::progress::set_label("bob-progress-log");
            crate::sys::progress::say(t, "provision", "not ann's");
        })
        .join()
        .unwrap();
        let text = std::fs::read_to_string(d.path().join("progress.log")).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(
            text.ends_with("] provision: password [password] set\n"),
            "{text}"
        );
    }

    #[test]
    fn slugs() {
        assert_eq!(super::slug("Create Database otus!"), "create-database-otus");
        assert_eq!(super::slug("  node2: has otus "), "node2-has-otus");
    }
}
