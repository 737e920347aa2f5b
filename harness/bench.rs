//! `pglab bench`: whole phases timed over several runs, printed as min / median / max.
//! Figures are printed, never asserted (a loaded machine must not fail a test).

use crate::lab::{Lab, UpOptions};
use crate::run::{run, Destroy, RunOptions};
use anyhow::{bail, Result};
use std::collections::BTreeMap;
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum What {
    /// A cold box build (into a temporary cache).
    Box,
    /// Warm `up` and `down` of the three hosts (box cached).
    Up,
    /// Warm full `pglab run`: up, provision, every scenario, down; per phase.
    Run,
    /// One lab running `replicate backup` against `--labs N` labs doing it at once.
    Parallel,
}

/// Samples per phase, in the order phases were first seen.
#[derive(Default)]
pub struct Samples {
    order: Vec<String>,
    values: BTreeMap<String, Vec<f64>>,
}

impl Samples {
    pub fn add(&mut self, phase: &str, secs: f64) {
        if !self.values.contains_key(phase) {
            self.order.push(phase.to_string());
        }
        self.values.entry(phase.to_string()).or_default().push(secs);
    }

    pub fn table(&self) -> String {
        let mut s = format!(
            "{:<28} {:>8} {:>8} {:>8} {:>5}\n",
            "phase", "min", "median", "max", "runs"
        );
        for p in &self.order {
            let mut v = self.values[p].clone();
            v.sort_by(|a, b| a.total_cmp(b));
            let median = if v.len() % 2 == 1 {
                v[v.len() / 2]
            } else {
                (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
            };
            s.push_str(&format!(
                "{p:<28} {:>7.1}s {:>7.1}s {:>7.1}s {:>5}\n",
                v[0],
                median,
                v[v.len() - 1],
                v.len()
            ));
        }
        s
    }
}

fn short_run(box_name: &str) -> Result<f64> {
    let t = Instant::now();
    let opts = RunOptions {
        box_name: box_name.into(),
        scenarios: vec!["replicate".into(), "backup".into()],
        ..Default::default()
    };
    let report = run(&opts)?;
    if !report.passed {
        bail!("a run failed; logs in {}", report.log_dir.display());
    }
    Ok(t.elapsed().as_secs_f64())
}

pub fn bench(what: What, runs: usize, box_name: &str, labs: usize) -> Result<String> {
    if runs == 0 {
        bail!("--runs must be at least 1");
    }
    let mut samples = Samples::default();
    match what {
        What::Box => {
            let tmp = tempfile::Builder::new()
                .prefix("pglab-bench-cache-")
                .tempdir_in("/var/tmp")?;
            for i in 0..runs {
                std::env::set_var("PGLAB_CACHE_DIR", tmp.path().join(i.to_string()));
                let spec = crate::boxes::BoxSpec::load(box_name)?;
                let t = Instant::now();
                spec.build()?;
                samples.add(
                    &format!("box build ({box_name}, cold)"),
                    t.elapsed().as_secs_f64(),
                );
                crate::cleanup::remove_tree(&spec.dir())?;
            }
        }
        What::Up => {
            crate::boxes::BoxSpec::load(box_name)?.ensure()?;
            for _ in 0..runs {
                let t = Instant::now();
                let lab = Lab::up(UpOptions {
                    box_name: box_name.into(),
                    ..Default::default()
                })?;
                samples.add("up (3 hosts booted)", t.elapsed().as_secs_f64());
                let t = Instant::now();
                lab.down()?;
                samples.add("down", t.elapsed().as_secs_f64());
            }
        }
        What::Parallel => {
            crate::boxes::BoxSpec::load(box_name)?.ensure()?;
            for _ in 0..runs {
                samples.add("1 lab", short_run(box_name)?);
                let t = Instant::now();
                std::thread::scope(|s| {
                    let handles: Vec<_> = (0..labs)
                        .map(|i| {
                            s.spawn(move || {
                                crate::progress::set_label(&format!("lab {}", i + 1));
                                short_run(box_name)
                            })
                        })
                        .collect();
                    handles.into_iter().try_for_each(|h| {
                        h.join()
                            .unwrap_or_else(|_| bail!("a lab's thread panicked"))
                            .map(|_| ())
                    })
                })?;
                samples.add(&format!("{labs} labs at once"), t.elapsed().as_secs_f64());
            }
            let median = |p: &str| {
                let mut v = samples.values[p].clone();
                v.sort_by(|a, b| a.total_cmp(b));
                v[v.len() / 2]
            };
            let ratio = median(&format!("{labs} labs at once")) / median("1 lab");
            return Ok(format!(
                "pglab bench parallel ({runs} runs, box {box_name}, replicate + backup)\n{}{labs} labs at once take {ratio:.2}x the time of one\n",
                samples.table()
            ));
        }
        What::Run => {
            crate::boxes::BoxSpec::load(box_name)?.ensure()?;
            // Every run is counted, failed or not: this is also the reliability measure.
            let mut failed = Vec::new();
            for i in 0..runs {
                let report = run(&RunOptions {
                    box_name: box_name.into(),
                    destroy: Destroy::Always,
                    ..Default::default()
                })?;
                eprintln!(
                    "pglab bench: run {} of {runs}: {}",
                    i + 1,
                    if report.passed { "passed" } else { "FAILED" }
                );
                if !report.passed {
                    failed.push(report.log_dir.display().to_string());
                    continue;
                }
                for (phase, secs) in &report.phases {
                    samples.add(phase, *secs);
                }
            }
            let mut s = format!(
                "pglab bench run ({runs} runs, box {box_name})\n{}",
                samples.table()
            );
            s.push_str(&format!("runs passed: {} of {runs}\n", runs - failed.len()));
            for f in &failed {
                s.push_str(&format!("failed run, logs in {f}\n"));
            }
            return Ok(s);
        }
    }
    Ok(format!(
        "pglab bench {what:?} ({runs} runs, box {box_name})\n{}",
        samples.table()
    )
    .to_lowercase())
}

#[cfg(test)]
mod tests {
    #[test]
    fn table_has_min_median_max() {
        let mut s = super::Samples::default();
        for v in [3.0, 1.0, 2.0] {
            s.add("up", v);
        }
        s.add("down", 0.5);
        let t = s.table();
        assert!(
            t.contains("up                               1.0s     2.0s     3.0s     3"),
            "{t}"
        );
        assert!(t.find("up").unwrap() < t.find("down").unwrap());
    }
}
