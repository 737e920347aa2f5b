//! pglab: a test harness for PostgreSQL replication and backup labs.
//! See ARCHITECTURE.md for the map of the code.

#![warn(clippy::too_many_lines)]

pub mod backend;
pub mod cli;
pub mod lab;
pub mod model;
pub mod provision;
pub mod report;
pub mod run;
pub mod scenario;
pub mod sys;
