//! Reports of a run: outcomes, the summary table, JUnit, and the per-run logs.

pub mod junit;
pub mod outcome;
pub mod runlog;
pub mod summary;
