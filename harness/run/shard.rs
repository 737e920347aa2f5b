//! A cohort split over many machines (GitHub Actions jobs, Kubernetes Indexed Jobs): each
//! grades its part (`pglab grade --shard K/N`), and the parts are merged into one cohort
//! (`pglab grade merge PART... --out DIR`). The roster is computed whole on every machine,
//! then filtered, so every part agrees on names and on who is where; a submission's part is
//! fixed by its name (SHA-256, not Rust's `DefaultHasher`): adding a student moves nobody else.

use crate::report::cohort::Row;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Part `k` (1-based) of `n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub k: usize,
    pub n: usize,
}

impl Shard {
    /// `K/N`, or `auto`: the index a CI engine gives its job (GitLab `CI_NODE_INDEX` /
    /// `CI_NODE_TOTAL`, Buildkite `BUILDKITE_PARALLEL_JOB` / `..._COUNT`, Kubernetes
    /// `JOB_COMPLETION_INDEX` with `PGLAB_SHARD_TOTAL`).
    pub fn parse(s: &str) -> Result<Shard> {
        if s == "auto" {
            return Shard::from_env(&|k| std::env::var(k).ok());
        }
        let (k, n) = s
            .split_once('/')
            .with_context(|| format!("--shard {s:?}: expected K/N (e.g. 2/5) or auto"))?;
        let (k, n): (usize, usize) = (k.trim().parse()?, n.trim().parse()?);
        if n == 0 || k == 0 || k > n {
            bail!("--shard {s}: K must be 1..=N");
        }
        Ok(Shard { k, n })
    }

    fn from_env(var: &dyn Fn(&str) -> Option<String>) -> Result<Shard> {
        let num = |k: &str| var(k).and_then(|v| v.trim().parse::<usize>().ok());
        let found = [
            ("CI_NODE_INDEX", "CI_NODE_TOTAL", 0),
            ("BUILDKITE_PARALLEL_JOB", "BUILDKITE_PARALLEL_JOB_COUNT", 1),
            ("JOB_COMPLETION_INDEX", "PGLAB_SHARD_TOTAL", 1),
        ]
        .iter()
        .find_map(|(i, t, zero_based)| Some((num(i)? + zero_based, num(t)?)));
        match found {
            Some((k, n)) if k >= 1 && k <= n => Ok(Shard { k, n }),
            Some((k, n)) => bail!("--shard auto: index {k} is not within 1..={n}"),
            None => bail!("--shard auto: no CI_NODE_INDEX/CI_NODE_TOTAL, BUILDKITE_PARALLEL_JOB/_COUNT or JOB_COMPLETION_INDEX/PGLAB_SHARD_TOTAL in the environment"),
        }
    }

    /// Whether the submission `name` is in this part.
    pub fn holds(&self, name: &str) -> bool {
        part_of(name, self.n) == self.k
    }
}

/// The part (1-based, of `n`) a submission's name falls in.
pub fn part_of(name: &str, n: usize) -> usize {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(name.as_bytes());
    let x = u64::from_be_bytes(h[..8].try_into().expect("8 bytes"));
    (x % n as u64) as usize + 1
}

/// This machine's part of a cohort: who is in it, by the name's hash or balanced by time.
pub struct Part {
    shard: Shard,
    /// How the parts were made: "name", or "time <digest of the earlier cohort.json>".
    by: String,
    members: BTreeSet<String>,
}

impl Part {
    /// The part `shard` of `roster`; with `times` (an earlier grading's `cohort.json`), the
    /// parts are balanced by each submission's time then.
    pub fn new(shard: Shard, roster: &[String], times: Option<&PathBuf>) -> Result<Part> {
        let (by, assigned) = match times {
            None => (
                "name".to_string(),
                roster
                    .iter()
                    .map(|r| (r.clone(), part_of(r, shard.n)))
                    .collect(),
            ),
            Some(f) => {
                let text = std::fs::read(f)
                    .with_context(|| format!("--shard-by time={}: cannot read", f.display()))?;
                let rows = crate::report::cohort::rows_of_json(&text)
                    .with_context(|| format!("--shard-by time={}: no cohort.json", f.display()))?;
                let secs = rows.iter().map(|r| (r.name.clone(), r.seconds)).collect();
                let digest = hex::encode(&<sha2::Sha256 as sha2::Digest>::digest(&text)[..6]);
                (format!("time {digest}"), by_time(roster, shard.n, &secs))
            }
        };
        let members = assigned
            .into_iter()
            .filter(|(_, k)| *k == shard.k)
            .map(|(n, _)| n)
            .collect();
        Ok(Part { shard, by, members })
    }

    pub fn holds(&self, name: &str) -> bool {
        self.members.contains(name)
    }

    /// What this part says of itself in `shard.json`.
    pub fn info(
        &self,
        roster: Vec<String>,
        groups: &[String],
        legend: &[(String, String)],
    ) -> PartInfo {
        PartInfo {
            shard: self.shard,
            roster,
            groups: groups.to_vec(),
            legend: legend.to_vec(),
            grader: grader_identity(),
            by: self.by.clone(),
            members: self.members.iter().cloned().collect(),
        }
    }
}

/// Parts balanced by time: the longest first, each to the part with the least time so far
/// (ties to the lowest part; a name the earlier grading did not time counts as the mean).
/// Every machine computes the same from the same roster and file.
pub fn by_time(
    roster: &[String],
    n: usize,
    secs: &BTreeMap<String, f64>,
) -> BTreeMap<String, usize> {
    let known: Vec<f64> = roster
        .iter()
        .filter_map(|r| secs.get(r).copied().filter(|s| *s > 0.0))
        .collect();
    let mean = if known.is_empty() {
        1.0
    } else {
        known.iter().sum::<f64>() / known.len() as f64
    };
    let mut order: Vec<(f64, &String)> = roster
        .iter()
        .map(|r| (secs.get(r).copied().filter(|s| *s > 0.0).unwrap_or(mean), r))
        .collect();
    order.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
    let mut load = vec![0.0f64; n];
    let mut out = BTreeMap::new();
    for (t, name) in order {
        let k = (0..n)
            .min_by(|&a, &b| load[a].total_cmp(&load[b]).then(a.cmp(&b)))
            .expect("n >= 1");
        load[k] += t;
        out.insert(name.clone(), k + 1);
    }
    out
}

/// What a part says of itself (`shard.json` beside its cohort files): enough for `merge` to
/// refuse parts that do not belong together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartInfo {
    pub shard: Shard,
    /// Every submission's name in the whole cohort.
    pub roster: Vec<String>,
    pub groups: Vec<String>,
    /// Each check group with its description.
    pub legend: Vec<(String, String)>,
    /// The grader: pglab's version and a digest of the scenarios and box recipes.
    pub grader: String,
    /// How the parts were made ("name", or "time <digest>"); all parts must agree.
    #[serde(default)]
    pub by: String,
    /// The submissions in this part.
    #[serde(default)]
    pub members: Vec<String>,
}

/// pglab's version and a digest of what decides a grade (scenario files, box recipes).
pub fn grader_identity() -> String {
    let root = crate::sys::paths::repo_root();
    let digest = |d: &str| crate::sys::tree::digest(&root.join(d)).unwrap_or_default();
    format!(
        "pglab {} scenarios {} boxes {}",
        env!("CARGO_PKG_VERSION"),
        &digest("scenarios")[..12.min(digest("scenarios").len())],
        &digest("boxes")[..12.min(digest("boxes").len())]
    )
}

pub fn write_info(out: &Path, info: &PartInfo) -> Result<()> {
    std::fs::write(out.join("shard.json"), serde_json::to_string_pretty(info)?)?;
    Ok(())
}

pub fn read_info(part: &Path) -> Result<PartInfo> {
    let f = part.join("shard.json");
    let t = std::fs::read_to_string(&f).with_context(|| {
        format!(
            "{} is no part of a split cohort: no shard.json",
            part.display()
        )
    })?;
    serde_json::from_str(&t).with_context(|| format!("{} cannot be read", f.display()))
}

/// Parts graded with different shard counts, rosters, check groups or graders are refused.
fn same_cohort(parts: &[(PathBuf, PartInfo, Vec<Row>)]) -> Result<()> {
    let (dir0, first, _) = &parts[0];
    for (dir, info, _) in parts {
        let other = if info.shard.n != first.shard.n {
            "a shard count".to_string()
        } else if info.roster != first.roster {
            "a roster".into()
        } else if info.groups != first.groups {
            "check groups".into()
        } else if info.by != first.by {
            format!("a way of splitting ({} against {})", info.by, first.by)
        } else if info.grader != first.grader {
            format!("a grader ({} against {})", info.grader, first.grader)
        } else {
            continue;
        };
        bail!(
            "{} was graded with other {other} than {}: parts of one cohort only",
            dir.display(),
            dir0.display()
        );
    }
    Ok(())
}

/// Checks that `parts` are the N parts of one cohort, each once; their rows in roster order.
pub fn check_parts(parts: &[(PathBuf, PartInfo, Vec<Row>)]) -> Result<Vec<Row>> {
    let Some((_, first, _)) = parts.first() else {
        bail!("no part to merge");
    };
    same_cohort(parts)?;
    let mut seen = BTreeSet::new();
    for (dir, info, _) in parts {
        if !seen.insert(info.shard.k) {
            bail!(
                "shard {}/{} is given twice ({})",
                info.shard.k,
                info.shard.n,
                dir.display()
            );
        }
    }
    let n = first.shard.n;
    if let Some(k) = (1..=n).find(|k| !seen.contains(k)) {
        // Its students: those no part holds (by name's hash, whose parts do not say).
        let held: BTreeSet<&String> = parts.iter().flat_map(|(_, i, _)| &i.members).collect();
        let who: Vec<&str> = first
            .roster
            .iter()
            .filter(|s| {
                if held.is_empty() {
                    part_of(s, n) == k
                } else {
                    !held.contains(s)
                }
            })
            .map(String::as_str)
            .collect();
        bail!(
            "shard {k}/{n} is missing: its submissions are {}",
            who.join(", ")
        );
    }
    let mut rows = Vec::new();
    for name in &first.roster {
        let row = parts
            .iter()
            .flat_map(|(_, _, rows)| rows)
            .find(|r| &r.name == name)
            .with_context(|| format!("no part has a row for {name}"))?;
        rows.push(row.clone());
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_partition_every_roster_and_a_new_name_moves_nobody() {
        for size in [1, 2, 7, 40, 300] {
            let roster: Vec<String> = (0..size).map(|i| format!("student-{i}")).collect();
            for n in 1..=20 {
                for name in &roster {
                    let holders = (1..=n).filter(|&k| Shard { k, n }.holds(name)).count();
                    assert_eq!(holders, 1, "{name} in {holders} of {n} shards");
                }
                let before: Vec<usize> = roster.iter().map(|s| part_of(s, n)).collect();
                let mut more = roster.clone();
                more.push("a-late-student".into());
                let after: Vec<usize> = more.iter().map(|s| part_of(s, n)).collect();
                assert_eq!(&after[..size], &before[..], "adding a name moved others");
            }
        }
    }

    #[test]
    fn shard_arguments_and_the_ci_engines_index() {
        assert_eq!(Shard::parse("2/5").unwrap(), Shard { k: 2, n: 5 });
        assert!(Shard::parse("0/5").is_err() && Shard::parse("6/5").is_err());
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let gl = env(&[("CI_NODE_INDEX", "3"), ("CI_NODE_TOTAL", "4")]);
        assert_eq!(Shard::from_env(&gl).unwrap(), Shard { k: 3, n: 4 });
        let k8s = env(&[("JOB_COMPLETION_INDEX", "0"), ("PGLAB_SHARD_TOTAL", "3")]);
        assert_eq!(Shard::from_env(&k8s).unwrap(), Shard { k: 1, n: 3 });
        assert!(Shard::from_env(&env(&[])).is_err());
    }

    fn part(k: usize, n: usize, roster: &[&str]) -> (PathBuf, PartInfo, Vec<Row>) {
        let roster: Vec<String> = roster.iter().map(|s| s.to_string()).collect();
        let rows = roster
            .iter()
            .filter(|s| part_of(s, n) == k)
            .map(|s| Row::verdict(s, "h", &["provisioned".into()], "provisioned", "x"))
            .collect();
        let info = PartInfo {
            shard: Shard { k, n },
            roster,
            groups: vec!["provisioned".into()],
            legend: vec![],
            grader: "pglab test".into(),
            by: "name".into(),
            members: vec![],
        };
        (PathBuf::from(format!("part-{k}")), info, rows)
    }

    #[test]
    fn parts_merge_in_roster_order_and_a_missing_or_twice_given_part_is_refused() {
        let roster = ["ann", "bob", "cid", "dee", "eve", "fay", "gus"];
        let parts: Vec<_> = (1..=3).map(|k| part(k, 3, &roster)).collect();
        let rows = check_parts(&parts).unwrap();
        let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, roster);
        let e = check_parts(&parts[..2]).unwrap_err().to_string();
        assert!(
            e.starts_with("shard 3/3 is missing: its submissions are "),
            "{e}"
        );
        let twice = [
            parts[0].clone(),
            parts[0].clone(),
            parts[1].clone(),
            parts[2].clone(),
        ];
        let e = check_parts(&twice).unwrap_err().to_string();
        assert!(e.contains("shard 1/3 is given twice"), "{e}");
        let mut other = parts.clone();
        other[1].1.grader = "pglab other".into();
        let e = check_parts(&other).unwrap_err().to_string();
        assert!(e.contains("with other a grader"), "{e}");
    }

    use super::super::grade::{grade, merge, GradeOptions};

    /// A cohort whose submissions get their verdicts without a lab: four Red Hat boxes and a
    /// folder that is no submission (eve).
    fn labless_cohort() -> tempfile::TempDir {
        let root = crate::sys::paths::repo_root();
        let cohort = tempfile::tempdir().unwrap();
        for (i, name) in ["ann", "bob", "cid", "dee", "eve"].iter().enumerate() {
            let to = cohort.path().join(name);
            std::fs::create_dir_all(&to).unwrap();
            if i == 4 {
                // Notes, no playbook, no Vagrantfile: no submission pglab can read.
                std::fs::write(to.join("notes.txt"), "I did it by hand\n").unwrap();
                continue;
            }
            let from = root.join("tests/fixtures/students/red-hat-box");
            let rules = crate::sys::tree::CopyRules {
                file_max: 1 << 20,
                total_max: 1 << 24,
                inner_symlinks: false,
            };
            crate::sys::tree::copy_tree(&from, &to, &rules).unwrap();
        }
        cohort
    }

    fn opts(cohort: &Path, out: &Path, shard: Option<Shard>, by: Option<PathBuf>) -> GradeOptions {
        let base = super::super::RunOptions {
            box_name: String::new(),
            scenarios: vec!["replicate".into()],
            keep_going: true,
            ..Default::default()
        };
        GradeOptions {
            deadline: std::time::Duration::from_secs(60),
            shard,
            shard_by: by,
            ..GradeOptions::new(vec![cohort.to_path_buf()], base, out.to_path_buf())
        }
    }

    /// The labless cohort graded whole and as 3 parts (by name, and balanced by the whole
    /// grading's times): the merged cohort.md and .csv are the single grading's, row for row;
    /// parts split two ways do not merge.
    #[test]
    fn merging_the_parts_equals_grading_the_whole_cohort() {
        let cohort = labless_cohort();
        let whole = tempfile::tempdir().unwrap();
        grade(&opts(cohort.path(), whole.path(), None, None)).unwrap();
        let times = whole.path().join("cohort.json");
        for by in [None, Some(times.clone())] {
            let parts: Vec<tempfile::TempDir> =
                (1..=3).map(|_| tempfile::tempdir().unwrap()).collect();
            for (k, p) in parts.iter().enumerate() {
                let shard = Some(Shard { k: k + 1, n: 3 });
                grade(&opts(cohort.path(), p.path(), shard, by.clone())).unwrap();
            }
            let merged = tempfile::tempdir().unwrap();
            let dirs: Vec<PathBuf> = parts.iter().map(|p| p.path().to_path_buf()).collect();
            merge(&dirs, merged.path()).unwrap();
            for f in ["cohort.md", "cohort.csv"] {
                let a = std::fs::read_to_string(whole.path().join(f)).unwrap();
                let b = std::fs::read_to_string(merged.path().join(f)).unwrap();
                assert_eq!(a, b, "{f} (split by {by:?})");
            }
            assert!(merged.path().join("ann/report.md").is_file());
            let Err(e) = merge(&dirs[..2], tempfile::tempdir().unwrap().path()) else {
                panic!("two parts of three merged");
            };
            assert!(e.to_string().contains("is missing"), "{e}");
        }
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        grade(&opts(
            cohort.path(),
            a.path(),
            Some(Shard { k: 1, n: 2 }),
            None,
        ))
        .unwrap();
        let by_time = Some(times);
        grade(&opts(
            cohort.path(),
            b.path(),
            Some(Shard { k: 2, n: 2 }),
            by_time,
        ))
        .unwrap();
        let dirs = [a.path().to_path_buf(), b.path().to_path_buf()];
        let Err(e) = merge(&dirs, tempfile::tempdir().unwrap().path()) else {
            panic!("parts split by name and by time merged");
        };
        assert!(e.to_string().contains("other a way of splitting"), "{e}");
    }

    /// An empty --out with the last grades as --previous keeps every unchanged row and its
    /// folder; a row of pglab's own failure there is graded again.
    #[test]
    fn previous_grades_are_kept_from_a_read_only_folder_but_not_pglabs_failures() {
        let cohort = labless_cohort();
        let whole = tempfile::tempdir().unwrap();
        grade(&opts(cohort.path(), whole.path(), None, None)).unwrap();
        let fresh = tempfile::tempdir().unwrap();
        let again = GradeOptions {
            all: false,
            previous: Some(whole.path().to_path_buf()),
            ..opts(cohort.path(), fresh.path(), None, None)
        };
        // (eve's folder is no submission pglab can read: its verdict costs nothing, and it
        // is given again.)
        let g = grade(&again).unwrap();
        assert_eq!(g.regraded, ["eve"]);
        assert!(fresh.path().join("bob/report.md").is_file());
        let mut rows = crate::report::cohort::load_rows(whole.path());
        rows[1].grader_failed = true;
        let text = crate::report::cohort::json(&rows).unwrap();
        std::fs::write(whole.path().join("cohort.json"), text).unwrap();
        let g = grade(&again).unwrap();
        assert_eq!(g.regraded, [rows[1].name.as_str(), "eve"]);
    }

    /// Balanced by time: a partition, every part's time within the longest submission's of
    /// every other's, and the same answer on every machine; an untimed name counts as the mean.
    #[test]
    fn parts_by_time_are_balanced_and_agree() {
        for size in [1usize, 5, 40, 300] {
            let roster: Vec<String> = (0..size).map(|i| format!("s{i}")).collect();
            let secs: BTreeMap<String, f64> = roster
                .iter()
                .enumerate()
                .filter(|(i, _)| i % 7 != 3)
                .map(|(i, r)| (r.clone(), 10.0 + (i * 37 % 200) as f64))
                .collect();
            for n in 1..=20 {
                let a = by_time(&roster, n, &secs);
                assert_eq!(a, by_time(&roster, n, &secs));
                assert_eq!(a.len(), size);
                assert!(a.values().all(|k| (1..=n).contains(k)));
                let mean = secs.values().sum::<f64>() / secs.len().max(1) as f64;
                let t = |r: &String| secs.get(r).copied().unwrap_or(mean);
                let mut load = vec![0.0; n];
                for (r, k) in &a {
                    load[k - 1] += t(r);
                }
                let longest = roster.iter().map(t).fold(0.0, f64::max);
                let (lo, hi) = (
                    load.iter().cloned().fold(f64::MAX, f64::min),
                    load.iter().cloned().fold(0.0, f64::max),
                );
                if size >= n {
                    assert!(hi - lo <= longest + 1e-9, "n={n} size={size}: {load:?}");
                }
            }
        }
    }
}
