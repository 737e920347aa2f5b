use crate::backend::shell_quote;
use crate::lab::Lab;
use anyhow::Result;
use clap::Args;
use std::time::Duration;

#[derive(Args)]
pub struct ExecArgs {
    #[arg(long)]
    lab: Option<String>,
    /// User to run as on the host.
    #[arg(long, short, default_value = "root")]
    user: String,
    host: String,
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

/// `pglab exec HOST -- CMD`: the command's output and exit code.
pub fn exec(a: ExecArgs) -> Result<i32> {
    let lab = Lab::attach(a.lab.as_deref())?;
    let script = a
        .command
        .iter()
        .map(|arg| shell_quote(arg))
        .collect::<Vec<_>>()
        .join(" ");
    let out = lab.exec(&a.host, &a.user, &script, Duration::from_secs(3600))?;
    print!("{}", out.stdout);
    eprint!("{}", out.stderr);
    Ok(out.code)
}
