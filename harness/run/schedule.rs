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
/// `done` sees each report, in the items' order, once all ended. A lab that could not run at
/// all ends the whole run with its error: no lab starts after it.
pub fn run_all(
    items: &[WorkItem],
    jobs: usize,
    mut done: impl FnMut(&RunReport),
) -> Result<Vec<RunReport>> {
    let failed = std::sync::atomic::AtomicBool::new(false);
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
            let r = super::one::run(opts);
            if r.is_err() {
                failed.store(true, std::sync::atomic::Ordering::SeqCst);
            }
            r.map(Some)
        },
        || {},
    );
    let mut reports = Vec::new();
    for r in results {
        if let Some(report) = r? {
            done(&report);
            reports.push(report);
        }
    }
    Ok(reports)
}
