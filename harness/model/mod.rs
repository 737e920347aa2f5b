//! The lab as data: topology, secrets, the names of its resources, the phases of a run.

pub mod names;
pub mod naming;
pub mod phase;
pub mod secrets;
pub mod topology;
