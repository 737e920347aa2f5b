//! The `Backend` boundary: everything the rest of pglab may ask of a lab. The scenario
//! runner and the provisioner only ever talk to this trait; nspawn and Vagrant live behind it.

mod api;
pub mod boxes;
#[cfg(test)]
pub mod fake;
pub mod kind;
pub mod nspawn;
pub mod script;
pub mod vagrant;

pub use api::*;
pub use kind::Kind;
