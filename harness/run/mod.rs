//! `pglab run`: box, up, provision, scenarios, down, with progress, a summary and a report.

pub mod bench;
pub mod ci;
pub mod discover;
pub mod fixtures;
pub mod grade;
pub mod homework;
mod one;
pub mod schedule;
pub mod shard;

pub use one::*;
