//! Scenarios: specs (data) and the runner that executes them against a lab through the
//! `Backend` boundary.

pub mod hosts;
pub mod normalize;
pub mod runner;
pub mod snapshot;
pub mod spec;
pub mod sql;
