//! How a script reaches bash on a host, for every backend: the script travels on stdin (so
//! nothing in it, secrets included, is ever on a command line), but bash reads it from
//! another file descriptor and the commands inside get /dev/null as their stdin.
//!
//! Why: with `bash -s < script`, a command in the script that reads stdin (a password prompt
//! without a terminal, `cat`, `read`, `ssh` without `-n`, an apt question) read the rest of
//! the script as its input; bash then met the end of its input and exited with the status of
//! the last command it ran. Measured at commit 4e7167d: `echo before; cat > /tmp/x; echo
//! after; false` as a provisioning step was logged `exit: 0` with only "before" run.

use crate::sys::exec::CmdOutput;
use anyhow::Result;
use std::time::Duration;

/// The remote side's fixed command line (no data in it). `<(exec cat)` copies the script
/// from stdin into a pipe on fd 3 before stdin becomes /dev/null; bash then runs the script
/// from /dev/fd/3 (it moves a script file to fd 255, close-on-exec, so commands never see
/// it). The copy through `cat` is needed because stdin may be a socket, and opening
/// /dev/fd/N of a socket fails: measured, `bash /dev/fd/3` on a socketpair gave
/// "/dev/fd/3: No such device or address" (exit 126), through `cat` it ran.
pub const LAUNCHER: &str = "exec 3< <(exec cat) </dev/null; exec /bin/bash /dev/fd/3";

/// PATH of pglab's checks: the system's programs, never /usr/local, whatever a profile says.
pub const CHECK_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// [`LAUNCHER`] for a check: the fixed PATH first, and no file bash would read at start.
pub fn check_launcher() -> String {
    format!("export PATH={CHECK_PATH}; unset BASH_ENV ENV; {LAUNCHER}")
}

/// The remote command that runs [`LAUNCHER`] over ssh (the Vagrant backend) in a login
/// environment of `user`, through sudo from the ssh user.
pub fn over_ssh(user: &str) -> String {
    format!(
        "sudo -n -H -u {} -- /bin/bash -lc 'cd \"$HOME\" 2>/dev/null; {LAUNCHER}'",
        crate::backend::api::shell_quote(user)
    )
}

/// Printed on stderr by the line pglab appends after the script: bash reached the end.
/// pglab removes it from the output again.
pub const END_MARKER: &str = "PGLAB-SCRIPT-REACHED-ITS-END";

/// What travels on stdin: the script, with fd 3 closed on its first line (so children do not
/// inherit it; same line, so bash's line numbers stay the script's), and a last line that
/// prints the end marker and keeps the script's exit status.
pub fn payload(script: &str) -> String {
    format!(
        "exec 3<&-; {script}\n{{ pglab_status=$?; printf '%s\\n' {END_MARKER} >&2; exit \"$pglab_status\"; }}\n"
    )
}

/// Runs `argv` (which must end in a shell running [`LAUNCHER`]) with `script` on its stdin.
/// The end marker is taken out of stderr; when it is missing, stderr gets a line saying that
/// bash stopped before the script's end, with the exit status.
pub fn run(argv: &[String], script: &str, timeout: Duration) -> Result<CmdOutput> {
    run_with(argv, script, timeout, &crate::sys::exec::Setup::default())
}

/// [`run`], with how the command starts (a backend's way into its host).
pub fn run_with(
    argv: &[String],
    script: &str,
    timeout: Duration,
    setup: &crate::sys::exec::Setup,
) -> Result<CmdOutput> {
    let payload = payload(script);
    let mut out = crate::sys::exec::run_with(argv, Some(payload.as_bytes()), timeout, setup)?;
    note_end(&mut out);
    Ok(out)
}

/// Removes the end marker from `out.stderr`, or says that bash did not get there.
pub fn note_end(out: &mut CmdOutput) {
    let line = format!("{END_MARKER}\n");
    if let Some(at) = out.stderr.rfind(&line) {
        out.stderr.replace_range(at..at + line.len(), "");
        return;
    }
    if !out.stderr.is_empty() && !out.stderr.ends_with('\n') {
        out.stderr.push('\n');
    }
    out.stderr.push_str(&format!(
        "pglab: bash stopped before the end of the script, with exit status {} (an `exit`, a failing command under `set -e`, or bash was killed)\n",
        out.code
    ));
}

/// What to try when a command in `output` wanted a password and had no terminal to ask on
/// (libpq reads a password from /dev/tty, else from stdin, which is /dev/null in a step):
/// which program asked and the likely causes. None when nothing in the output says so.
pub fn password_hint(output: &str) -> Option<String> {
    let line = output
        .lines()
        .find(|l| l.contains("fe_sendauth: no password supplied"))?;
    let program = line
        .split(':')
        .next()
        .map(str::trim)
        .filter(|p| !p.is_empty() && !p.contains(' '))
        .unwrap_or("a PostgreSQL client");
    let ignored = output
        .lines()
        .find(|l| l.contains("WARNING: password file") && l.contains("access"));
    let cause = match ignored {
        Some(w) => format!(
            "libpq ignored the password file because of its mode ({}): `chmod 0600` it, owned by the user that runs {program}",
            w.trim()
        ),
        None => format!(
            "no password file gave it one: the user that runs {program} needs ~/.pgpass (mode 0600, owned by that user) with a line host:port:database:user:password matching this connection (for replication connections the database field is `replication`), or PGPASSFILE must name such a file"
        ),
    };
    Some(format!(
        "{program} wanted a password and there is no terminal in a step (stdin is empty, so it got none): {cause}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bash(script: &str) -> CmdOutput {
        let argv = vec!["bash".into(), "-c".into(), LAUNCHER.into()];
        run(&argv, script, Duration::from_secs(10)).unwrap()
    }

    #[test]
    fn a_command_reading_stdin_gets_eof_and_the_script_goes_on() {
        let o = bash("echo before\ncat\nread x || echo read-eof\necho after\nfalse\n");
        assert_eq!(
            (o.code, o.stdout.as_str()),
            (1, "before\nread-eof\nafter\n")
        );
        assert_eq!(o.stderr, "", "the end marker is removed");
    }

    #[test]
    fn fd_3_is_not_inherited_and_line_numbers_are_the_scripts() {
        let o = bash(
            "echo $LINENO\nsh -c 'ls /proc/$$/fd/3 /proc/$$/fd/255 2>/dev/null || echo closed'\n",
        );
        assert_eq!(o.stdout, "1\nclosed\n", "{o:?}");
    }

    #[test]
    fn an_early_exit_is_noted_with_its_status() {
        let o = bash("set -e\necho one\nfalse\necho two\n");
        assert_eq!(o.code, 1);
        assert!(
            o.stderr
                .contains("stopped before the end of the script, with exit status 1"),
            "{o:?}"
        );
        let o = bash("echo a\nexit 0\n");
        assert!(o.stderr.contains("exit status 0"), "{o:?}");
    }

    #[test]
    fn the_exit_status_is_the_last_commands() {
        assert_eq!(bash("(exit 7)").code, 7);
        assert_eq!(bash("true").code, 0);
    }

    #[test]
    fn password_hint_names_the_program_and_the_cause() {
        let out = "pg_basebackup: error: connection to server at \"192.168.56.11\", port 5432 failed: fe_sendauth: no password supplied\n";
        let h = password_hint(out).unwrap();
        assert!(h.starts_with("pg_basebackup wanted a password"), "{h}");
        assert!(h.contains("~/.pgpass (mode 0600"), "{h}");
        let out = format!("WARNING: password file \"/root/.pgpass\" has group or world access; permissions should be u=rw (0600) or less\n{out}");
        let h = password_hint(&out).unwrap();
        assert!(
            h.contains("ignored the password file") && h.contains("/root/.pgpass"),
            "{h}"
        );
        assert_eq!(password_hint("ERROR: relation x does not exist"), None);
    }
}
