//! The lab as data: topology and secrets.

pub mod secrets;
pub mod topology;
