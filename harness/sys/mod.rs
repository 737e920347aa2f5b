//! System primitives: processes, paths, progress, cleanup, host prerequisites.

pub mod apt;
pub mod apt_sources;
pub mod cancel;
pub mod cleanup;
pub mod doctor;
pub mod exec;
pub mod fanout;
pub mod gitref;
pub mod idmap;
pub mod mounts;
pub mod paths;
pub mod procfs;
pub mod progress;
pub mod safe_text;
pub mod size;
pub mod tree;
pub mod venv;
