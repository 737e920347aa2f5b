//! A rubric: points per check group (`rubric.toml` at the top level is the homework's
//! default; `pglab grade --rubric FILE` names another), and the score of a row under it.

use super::cohort::{Cell, Row};
use super::outcome::Status;
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// What a group skipped because an earlier one failed earns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Skipped {
    #[default]
    Zero,
    Half,
    Full,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rubric {
    #[serde(default)]
    pub skipped: Skipped,
    pub points: BTreeMap<String, f64>,
}

impl Rubric {
    /// Reads a rubric; every value is a non-negative number of points.
    pub fn load(file: &Path) -> Result<Rubric> {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read the rubric {}", file.display()))?;
        let r: Rubric =
            toml::from_str(&text).with_context(|| format!("{} is not a rubric", file.display()))?;
        if let Some((g, p)) = r
            .points
            .iter()
            .find(|(_, p)| !(p.is_finite() && **p >= 0.0))
        {
            bail!(
                "{}: group {g} has {p} points; points are 0 or more",
                file.display()
            );
        }
        Ok(r)
    }

    /// The homework's default (`rubric.toml` at pglab's top level).
    pub fn default_for_homework() -> Result<Rubric> {
        Rubric::load(&crate::sys::paths::repo_root().join("rubric.toml"))
    }

    /// (points earned, points possible) of one group's cell: earned when passed (or
    /// skipped, as the policy says).
    pub fn cell_points(&self, c: &Cell) -> (f64, f64) {
        let p = self.points.get(&c.group).copied().unwrap_or(0.0);
        let share = match (c.status, self.skipped) {
            (Status::Passed, _) => 1.0,
            (Status::Skipped, Skipped::Half) => 0.5,
            (Status::Skipped, Skipped::Full) => 1.0,
            _ => 0.0,
        };
        (p * share, p)
    }

    /// (score, maximum) of a row: the sum of its groups' points.
    pub fn score(&self, row: &Row) -> (f64, f64) {
        row.cells
            .iter()
            .map(|c| self.cell_points(c))
            .fold((0.0, 0.0), |(g, m), (a, b)| (g + a, m + b))
    }

    /// Sets every row's score and maximum.
    pub fn apply(&self, rows: &mut [Row]) {
        for r in rows {
            (r.score, r.max_score) = self.score(r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cells: &[(&str, Status)]) -> Row {
        let cells = cells
            .iter()
            .map(|(g, s)| Cell {
                group: g.to_string(),
                status: *s,
                why: String::new(),
            })
            .collect();
        Row::with_cells("a", "", cells)
    }

    #[test]
    fn points_per_group_and_the_skipped_policy() {
        let mut r: Rubric = toml::from_str(
            "[points]\nprovisioned = 10\nreplicate = 30\nbackup = 20\nrecover = 40\n",
        )
        .unwrap();
        use Status::*;
        let row = row(&[
            ("provisioned", Passed),
            ("replicate", Failed),
            ("backup", Passed),
            ("recover", Skipped),
            ("unknown", Passed),
        ]);
        assert_eq!(r.score(&row), (30.0, 100.0));
        r.skipped = super::Skipped::Half;
        assert_eq!(r.score(&row), (50.0, 100.0));
        r.skipped = super::Skipped::Full;
        assert_eq!(r.score(&row), (70.0, 100.0));
    }

    #[test]
    fn the_default_rubric_parses_and_bad_ones_are_refused() {
        let r = Rubric::default_for_homework().unwrap();
        assert_eq!(r.points.values().sum::<f64>(), 100.0);
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("r.toml");
        std::fs::write(&f, "[points]\nreplicate = -3\n").unwrap();
        let e = Rubric::load(&f).unwrap_err().to_string();
        assert!(e.contains("group replicate has -3 points"), "{e}");
        std::fs::write(&f, "skipped = 'maybe'\n[points]\n").unwrap();
        assert!(Rubric::load(&f).is_err());
    }
}
