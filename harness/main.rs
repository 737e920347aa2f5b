//! The `pglab` binary: parses the command line and dispatches to `pglab::cli`; on the way
//! out it removes what a failed command left registered (see `sys::cleanup`).

#![warn(clippy::too_many_lines)]

use clap::Parser;
use pglab::cli::{dispatch, Cli};
use pglab::sys::cleanup;

fn main() {
    cleanup::install_signal_handlers();
    let cli = Cli::parse();
    let result = dispatch(cli.cmd);
    if cleanup::aborting() {
        // A signal arrived: its handler is removing what this run made and will exit with
        // 128+signal; whatever failed here because of it is not the error to report.
        loop {
            std::thread::park();
        }
    }
    let code = match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pglab: error: {e:#}");
            1
        }
    };
    cleanup::remove_owned();
    std::process::exit(code);
}
