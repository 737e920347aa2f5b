//! `run --box A,B --jobs N`: which labs a run needs (one per box; with more jobs than boxes
//! each box's scenarios spread over several labs) and running them `jobs` at a time.

use super::one::{RunOptions, RunReport};
use anyhow::Result;

/// A lab to run: its label in progress lines (`bookworm`, `bookworm#2`) and its options.
pub type WorkItem = (String, RunOptions);

/// One lab per box; with more jobs than boxes, each box's scenarios are spread over several
/// labs. `base` holds everything but the box.
pub fn work_items(base: &RunOptions, boxes: &[String], jobs: usize) -> Result<Vec<WorkItem>> {
    let jobs = jobs.max(1);
    let parts = (jobs / boxes.len().max(1)).max(1);
    let opts_for = |box_name: &str| RunOptions {
        box_name: box_name.to_string(),
        ..base.clone()
    };
    let mut items: Vec<WorkItem> = Vec::new();
    for b in boxes {
        let groups = if parts > 1 {
            super::one::spread(&opts_for(b), parts)?
        } else {
            vec![base.scenarios.clone()]
        };
        let n = groups.len();
        for (i, g) in groups.into_iter().enumerate() {
            let label = if n > 1 {
                format!("{b}#{}", i + 1)
            } else {
                b.clone()
            };
            items.push((
                label,
                RunOptions {
                    scenarios: g,
                    ..opts_for(b)
                },
            ));
        }
    }
    Ok(items)
}

/// Runs the labs in the lab pool, `jobs` at a time (a free slot takes the next lab at once);
/// `done` sees each report as its lab ends, one at a time (a summary is printed whole, while
/// the other labs go on). The reports come back in the items' order. A lab that could not
/// run at all ends the whole run with its error: no lab starts after it.
pub fn run_all(
    items: &[WorkItem],
    jobs: usize,
    done: impl Fn(&RunReport) + Sync,
) -> Result<Vec<RunReport>> {
    run_with(items, jobs, done, super::one::run)
}

/// `run_all` with the run of one lab given (a fake one in unit tests).
fn run_with(
    items: &[WorkItem],
    jobs: usize,
    done: impl Fn(&RunReport) + Sync,
    one: impl Fn(&RunOptions) -> Result<RunReport> + Sync,
) -> Result<Vec<RunReport>> {
    let failed = std::sync::atomic::AtomicBool::new(false);
    let one_at_a_time = std::sync::Mutex::new(());
    let results = crate::sys::fanout::pool(
        items,
        jobs,
        "a lab",
        |(label, opts)| {
            // Not started: another lab of this run could not run.
            if failed.load(std::sync::atomic::Ordering::SeqCst) {
                return Ok(None);
            }
            if jobs > 1 && items.len() > 1 {
                crate::sys::progress::set_label(label);
            }
            let r = one(opts);
            match &r {
                Ok(report) => {
                    let _turn = one_at_a_time.lock().unwrap_or_else(|e| e.into_inner());
                    done(report);
                }
                Err(_) => failed.store(true, std::sync::atomic::Ordering::SeqCst),
            }
            r.map(Some)
        },
        || {},
    );
    let mut reports = Vec::new();
    for r in results {
        if let Some(report) = r? {
            reports.push(report);
        }
    }
    Ok(reports)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::time::Duration;

    /// A lab's summary comes when that lab ends, not when the slowest has: the quick lab's
    /// report is seen while the slow one still runs; the reports keep the items' order.
    #[test]
    fn each_labs_report_is_seen_as_it_ends() {
        let item = |label: &str| {
            let opts = RunOptions {
                box_name: label.into(),
                ..Default::default()
            };
            (label.to_string(), opts)
        };
        let items = vec![item("slow"), item("quick")];
        let seen = Mutex::new(Vec::new());
        let slow_running = std::sync::atomic::AtomicBool::new(false);
        let one = |o: &RunOptions| -> Result<RunReport> {
            if o.box_name == "slow" {
                slow_running.store(true, std::sync::atomic::Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(1500));
                slow_running.store(false, std::sync::atomic::Ordering::SeqCst);
            } else {
                // The slow lab has started.
                std::thread::sleep(Duration::from_millis(200));
            }
            Ok(RunReport {
                lab: String::new(),
                box_name: o.box_name.clone(),
                passed: true,
                phases: vec![],
                checks: vec![],
                provision_changes: vec![],
                log_dir: Default::default(),
                kept: false,
            })
        };
        let done = |r: &RunReport| {
            let slow = slow_running.load(std::sync::atomic::Ordering::SeqCst);
            seen.lock().unwrap().push((r.box_name.clone(), slow));
        };
        let reports = run_with(&items, 2, done, one).unwrap();
        let order: Vec<&str> = reports.iter().map(|r| r.box_name.as_str()).collect();
        assert_eq!(order, ["slow", "quick"]);
        let seen = seen.into_inner().unwrap();
        assert_eq!(
            seen,
            [("quick".to_string(), true), ("slow".to_string(), false)]
        );
    }
}
