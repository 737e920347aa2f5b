//! Per-lab secrets: generated randomly for each lab, stored only in a 0600 file in the
//! lab's state directory and inside the lab, and masked in every log, report and snapshot.

use anyhow::{Context, Result};
use rand::distributions::Alphanumeric;
use rand::Rng;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The passwords a lab needs. `Debug` never shows them.
#[derive(Clone, PartialEq)]
pub struct Secrets {
    pub replicator_password: String,
    pub barman_password: String,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets { <redacted> }")
    }
}

fn random_password() -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(24)
        .map(char::from)
        .collect()
}

impl Secrets {
    pub fn generate() -> Secrets {
        Secrets {
            replicator_password: random_password(),
            barman_password: random_password(),
        }
    }

    /// Environment variables handed to provisioning steps (never on a command line).
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            (
                "PGLAB_REPLICATOR_PASSWORD".into(),
                self.replicator_password.clone(),
            ),
            ("PGLAB_BARMAN_PASSWORD".into(), self.barman_password.clone()),
        ]
    }

    pub fn values(&self) -> Vec<String> {
        vec![
            self.replicator_password.clone(),
            self.barman_password.clone(),
        ]
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("cannot write secrets file {}", path.display()))?;
        for (k, v) in self.env() {
            writeln!(f, "{k}={v}")?;
        }
        Ok(())
    }

    pub fn load(path: &Path) -> Result<Secrets> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read secrets file {}", path.display()))?;
        let get = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
                .map(str::to_string)
                .with_context(|| format!("{} has no {key}", path.display()))
        };
        Ok(Secrets {
            replicator_password: get("PGLAB_REPLICATOR_PASSWORD")?,
            barman_password: get("PGLAB_BARMAN_PASSWORD")?,
        })
    }

    /// Replaces every secret in `text` with `[password]`.
    pub fn redact(&self, text: &str) -> String {
        redact_values(text, &self.values())
    }
}

/// Replaces each of `values` in `text` with `[password]`.
pub fn redact_values(text: &str, values: &[String]) -> String {
    let mut out = text.to_string();
    for v in values.iter().filter(|v| !v.is_empty()) {
        out = out.replace(v.as_str(), "[password]");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_per_lab_and_never_debug_printed() {
        let a = Secrets::generate();
        let b = Secrets::generate();
        assert_ne!(a.replicator_password, b.replicator_password);
        assert_ne!(a.replicator_password, a.barman_password);
        assert_eq!(a.replicator_password.len(), 24);
        let dbg = format!("{a:?}");
        assert!(!dbg.contains(&a.replicator_password) && !dbg.contains(&a.barman_password));
    }

    #[test]
    fn saved_0600_and_loaded_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("secrets.env");
        let s = Secrets::generate();
        s.save(&p).unwrap();
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(Secrets::load(&p).unwrap(), s);
    }

    #[test]
    fn redact_masks_every_secret() {
        let s = Secrets::generate();
        let line = format!("pw={} other={}", s.replicator_password, s.barman_password);
        assert_eq!(s.redact(&line), "pw=[password] other=[password]");
    }
}
