//! pglab: a test harness for PostgreSQL replication and backup labs.
//! See ARCHITECTURE.md for the map of the code.

pub mod ansible;
pub mod apt_sources;
pub mod backend;
pub mod bench;
pub mod boxes;
pub mod cleanup;
pub mod doctor;
pub mod exec;
pub mod junit;
pub mod lab;
pub mod libvirt;
pub mod libvirt_box;
pub mod paths;
pub mod progress;
pub mod provision;
pub mod run;
pub mod runlog;
pub mod scenario;
pub mod secrets;
pub mod topology;
pub mod vagrantfile;
