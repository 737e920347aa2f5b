//! Reports of a run: per-run logs, JUnit.

pub mod junit;
pub mod runlog;
