//! The command line: one file per subcommand, each with its arguments and what it does.
//! `main.rs` only parses and dispatches here.

mod bench;
mod boxes;
mod ci;
mod doctor;
mod down;
mod exec;
mod gc;
mod grade;
mod provision;
mod run;
mod status;
mod up;
mod vagrantfile;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// pglab: PostgreSQL replication and backup labs, provisioned and proven.
#[derive(Parser)]
#[command(version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Runs the homework end to end: box, up, provision, scenarios, down.
    Run(run::RunArgs),
    /// Brings a lab up and leaves it running; prints how to get in.
    Up(up::UpArgs),
    /// Runs a command on a host of a lab: `pglab exec node1 -- psql -c 'select 1'`.
    Exec(exec::ExecArgs),
    /// Provisions a lab that is up with a submission (default: the reference solution).
    Provision(provision::ProvisionArgs),
    /// Lists labs and the state of their hosts.
    Status,
    /// Removes a lab (or every lab with --all).
    Down(down::DownArgs),
    /// Finds and removes stale labs left by killed runs (with --all, every lab).
    Gc(gc::GcArgs),
    /// Grades a cohort: each submission in its own lab, --jobs at once, one table.
    Grade(Box<grade::GradeArgs>),
    /// Lists what the host needs and whether it is there; --install installs what is missing.
    Doctor(doctor::DoctorArgs),
    /// Times phases over several runs and prints min / median / max.
    Bench(bench::BenchArgs),
    /// Renders the lab's Vagrantfile from Vagrantfile.tera (what `PGLAB_BACKEND=vagrant` brings up).
    Vagrantfile(vagrantfile::VagrantfileArgs),
    /// Writes the files that grade a cohort on many machines (GitHub Actions, Kubernetes).
    #[command(subcommand)]
    Ci(ci::CiCmd),
    /// Box recipes: build or list.
    #[command(subcommand)]
    Box(boxes::BoxCmd),
}

/// Runs one subcommand; the number is the process's exit code.
pub fn dispatch(cmd: Cmd) -> Result<i32> {
    match cmd {
        Cmd::Run(a) => run::run(a),
        Cmd::Up(a) => up::up(a),
        Cmd::Exec(a) => exec::exec(a),
        Cmd::Provision(a) => provision::provision(a),
        Cmd::Status => status::status(),
        Cmd::Down(a) => down::down(a),
        Cmd::Gc(a) => gc::gc(a),
        Cmd::Grade(a) => grade::grade(*a),
        Cmd::Doctor(a) => doctor::doctor(a),
        Cmd::Bench(a) => bench::bench(a),
        Cmd::Vagrantfile(a) => vagrantfile::vagrantfile(a),
        Cmd::Box(c) => boxes::boxes(c),
        Cmd::Ci(c) => ci::ci(c),
    }
}
