//! Lab tests: real systemd-nspawn hosts, real PostgreSQL, real barman. They need root and
//! are ignored by default: `cargo test --test lab -- --ignored`. They run one at a time.
//! Split by concern; `verbs` holds what they share.

mod cohort;
#[path = "../common/mod.rs"]
mod common;
mod fixtures;
mod hostile;
mod lifecycle;
mod pg14;
mod platform;
mod scenarios;
mod signals;
mod stdin;
mod vagrant;
mod verbs;

mod students;
