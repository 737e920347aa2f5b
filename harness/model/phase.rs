//! The phases of a run that reports time and `pglab bench` compares: shown as `up`,
//! `provision`, `scenario replicate`, `save provisioned`, `restore replicated`, `down`, `total`.

/// The state a lab is in once its provisioning passed: the first scenarios require it,
/// and the cohort's first column is named after it.
pub const PROVISIONED: &str = "provisioned";

use serde::Serialize;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub enum Phase {
    /// Box (when not cached) and bringing the hosts up.
    Up,
    Provision,
    /// One scenario, by name.
    Scenario(String),
    /// Saving the lab in a state (isolated runs).
    Save(String),
    /// Restarting the lab from a saved state (isolated runs).
    Restore(String),
    Down,
    /// The whole run.
    Total,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Phase::Up => f.write_str("up"),
            Phase::Provision => f.write_str("provision"),
            Phase::Scenario(s) => write!(f, "scenario {s}"),
            Phase::Save(s) => write!(f, "save {s}"),
            Phase::Restore(s) => write!(f, "restore {s}"),
            Phase::Down => f.write_str("down"),
            Phase::Total => f.write_str("total"),
        }
    }
}

impl From<Phase> for String {
    fn from(p: Phase) -> String {
        p.to_string()
    }
}

/// The shown name back to a phase (reports read back, tests).
impl From<&str> for Phase {
    fn from(s: &str) -> Phase {
        match s.split_once(' ') {
            Some(("scenario", n)) => Phase::Scenario(n.into()),
            Some(("save", n)) => Phase::Save(n.into()),
            Some(("restore", n)) => Phase::Restore(n.into()),
            _ => match s {
                "up" => Phase::Up,
                "provision" => Phase::Provision,
                "down" => Phase::Down,
                "total" => Phase::Total,
                // Only what Display writes comes back here; anything else reads as a
                // scenario so that nothing is lost.
                other => Phase::Scenario(other.into()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_read_back_as_they_are_shown() {
        for p in [
            Phase::Up,
            Phase::Provision,
            Phase::Scenario("network-cut".into()),
            Phase::Save("provisioned".into()),
            Phase::Restore("replicated".into()),
            Phase::Down,
            Phase::Total,
        ] {
            assert_eq!(Phase::from(p.to_string().as_str()), p);
        }
        assert_eq!(
            serde_json::to_string(&(Phase::Save("x".into()), 1.5)).unwrap(),
            r#"["save x",1.5]"#
        );
    }
}
