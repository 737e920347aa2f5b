//! Reports of a run: outcomes, the summary table, JUnit, JSON, and the per-run logs.

pub mod cohort;
pub mod copies;
pub mod gradebook;
pub mod html;
pub mod json;
pub mod junit;
pub mod outcome;
pub mod rubric;
pub mod runlog;
pub mod summary;
