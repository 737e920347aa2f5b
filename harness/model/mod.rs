//! The lab as data: topology and secrets.

pub mod naming;
pub mod secrets;
pub mod topology;
