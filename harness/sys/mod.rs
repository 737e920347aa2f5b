//! System primitives: processes, paths, progress, cleanup, host prerequisites.

pub mod cleanup;
pub mod doctor;
pub mod exec;
pub mod paths;
pub mod progress;
