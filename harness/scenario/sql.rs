//! SQL checks over kept connections: one connection per host (database `postgres`; other
//! databases get a connection per check) for a whole run,
//! made by the backend as the host's `postgres` user without any program of the host
//! (`Backend::pg_socket`). The output is what `psql -X -A -t -q -v ON_ERROR_STOP=1` prints
//! for the same statement (fields joined by `|`, a line per row, NULL as nothing; an error
//! on stderr as `ERROR:  ...`, exit code 3), so specs, snapshots and verdicts are unchanged.
//! Only single statements go this way (psql sends each statement of a script on its own:
//! `ALTER SYSTEM` refuses to run inside the one implicit transaction of a multi-statement
//! query); the rest, and any host where no connection can be made (a non-default socket, a
//! `pg_hba.conf` without peer for postgres), run `psql` on the host as before.

use crate::lab::Lab;
use crate::sys::exec::CmdOutput;
use anyhow::Result;
use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio_postgres::{Client, SimpleQueryMessage};

/// What a connection attempt gave.
enum Connected {
    Client(Client),
    /// None could be made (another socket, no peer authentication): psql is asked instead.
    No,
    /// What listens there is not the box's PostgreSQL: the check fails saying so.
    NotTheServer(String),
}

pub struct Kept {
    rt: Option<tokio::runtime::Runtime>,
    conns: RefCell<HashMap<(String, String), Client>>,
}

impl Default for Kept {
    fn default() -> Self {
        Kept {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok(),
            conns: RefCell::new(HashMap::new()),
        }
    }
}

/// Whether `sql` is one statement (a `;` only at its end, outside quotes and comments).
pub fn single_statement(sql: &str) -> bool {
    let body = sql.trim().trim_end_matches(';').trim_end();
    if body.is_empty() || body.contains('\\') || body.contains('$') {
        return false;
    }
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                for d in chars.by_ref() {
                    if d == c {
                        break;
                    }
                }
            }
            '-' if chars.peek() == Some(&'-') => {
                for d in chars.by_ref() {
                    if d == '\n' {
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => return false,
            ';' => return false,
            _ => {}
        }
    }
    true
}

/// What psql -At prints for these results.
fn rows_text(msgs: &[SimpleQueryMessage]) -> String {
    let mut out = String::new();
    for m in msgs {
        if let SimpleQueryMessage::Row(r) = m {
            let fields: Vec<&str> = (0..r.len()).map(|i| r.get(i).unwrap_or("")).collect();
            out.push_str(&fields.join("|"));
            out.push('\n');
        }
    }
    out
}

/// What psql prints on stderr for a server's error.
fn error_text(e: &tokio_postgres::error::DbError) -> String {
    let mut s = format!("psql:<stdin>:1: {}:  {}\n", e.severity(), e.message());
    if let Some(d) = e.detail() {
        s.push_str(&format!("DETAIL:  {d}\n"));
    }
    if let Some(h) = e.hint() {
        s.push_str(&format!("HINT:  {h}\n"));
    }
    s
}

/// The output of a query as psql would give it; None when the connection failed (not the
/// statement).
fn outcome(
    said: Result<Vec<SimpleQueryMessage>, tokio_postgres::Error>,
    t: Instant,
) -> Option<CmdOutput> {
    let out = |code, stdout, stderr| CmdOutput {
        code,
        stdout,
        stderr,
        duration: t.elapsed(),
    };
    match said {
        Ok(msgs) => Some(out(0, rows_text(&msgs), String::new())),
        Err(e) => e
            .as_db_error()
            .map(|d| out(3, String::new(), error_text(d))),
    }
}

/// A check's output when what answers at the socket is not the box's PostgreSQL.
fn not_the_server(why: &str) -> CmdOutput {
    CmdOutput {
        code: 2,
        stdout: String::new(),
        stderr: format!("pglab: {why}\n"),
        duration: Duration::ZERO,
    }
}

impl Kept {
    /// Runs `sql` (one statement) in `db` on `host`; None when no kept connection can be
    /// made there (the caller runs psql instead).
    pub fn query(
        &self,
        lab: &Lab,
        host: &str,
        db: &str,
        sql: &str,
        timeout: Duration,
    ) -> Result<Option<CmdOutput>> {
        let Some(rt) = &self.rt else {
            return Ok(None);
        };
        let key = (host.to_string(), db.to_string());
        // A kept connection may have died with its server (a restart, a recovery): one new
        // connection is tried before the check falls back to psql.
        for _ in 0..2 {
            if !self.conns.borrow().contains_key(&key) {
                let client = match self.connect(rt, lab, host, db) {
                    Connected::Client(c) => c,
                    Connected::No => return Ok(None),
                    Connected::NotTheServer(why) => return Ok(Some(not_the_server(&why))),
                };
                self.conns.borrow_mut().insert(key.clone(), client);
            }
            let t = Instant::now();
            let said = {
                let conns = self.conns.borrow();
                let client = conns.get(&key).expect("inserted");
                // The timer is made inside the runtime (a tokio timer needs its context).
                rt.block_on(async { tokio::time::timeout(timeout, client.simple_query(sql)).await })
            };
            // Only connections to `postgres` are kept: an idle session in another database
            // would make the homework's own `DROP DATABASE otus` fail ("is being accessed by
            // other users").
            if db != "postgres" {
                self.conns.borrow_mut().remove(&key);
            }
            let Some(said) = said.ok() else {
                self.conns.borrow_mut().remove(&key);
                return Err(crate::sys::exec::failure(
                    &format!(
                        "command did not finish within {}",
                        humantime::format_duration(timeout)
                    ),
                    &format!("{host}, database {db}"),
                    sql,
                    "",
                    "a statement that waits (a lock, a synchronous standby): see the server's log",
                ));
            };
            match outcome(said, t) {
                Some(out) => return Ok(Some(out)),
                None => {
                    self.conns.borrow_mut().remove(&key);
                }
            }
        }
        Ok(None)
    }

    fn connect(&self, rt: &tokio::runtime::Runtime, lab: &Lab, host: &str, db: &str) -> Connected {
        let std_stream = match lab.backend().pg_socket(host, "postgres") {
            Ok(Some(s)) => s,
            Ok(None) => return Connected::No,
            Err(e) => {
                return match e.downcast_ref::<crate::backend::NotTheServer>() {
                    Some(n) => Connected::NotTheServer(n.0.clone()),
                    None => Connected::No,
                }
            }
        };
        match Self::start(rt, std_stream, db) {
            Some(c) => Connected::Client(c),
            None => Connected::No,
        }
    }

    /// PostgreSQL's startup on a connected socket (peer authentication as `postgres`).
    fn start(
        rt: &tokio::runtime::Runtime,
        std_stream: std::os::unix::net::UnixStream,
        db: &str,
    ) -> Option<Client> {
        std_stream.set_nonblocking(true).ok()?;
        rt.block_on(async {
            let stream = tokio::net::UnixStream::from_std(std_stream).ok()?;
            let mut config = tokio_postgres::Config::new();
            config
                .user("postgres")
                .dbname(db)
                .application_name("pglab")
                .connect_timeout(Duration::from_secs(10));
            let connecting = config.connect_raw(stream, tokio_postgres::NoTls);
            let (client, connection) = tokio::time::timeout(Duration::from_secs(10), connecting)
                .await
                .ok()?
                .ok()?;
            tokio::spawn(connection);
            Some(client)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_statement_is_told_from_a_script() {
        assert!(single_statement("SELECT 1"));
        assert!(single_statement("SELECT 1;\n"));
        assert!(single_statement(
            "SELECT md5(string_agg(id || ',' || payload, ';' ORDER BY id)) FROM t"
        ));
        assert!(single_statement("SELECT 1 -- a; comment\n"));
        assert!(!single_statement("CHECKPOINT; SELECT 1"));
        assert!(!single_statement("\\o /dev/null\nSELECT 1"));
        assert!(!single_statement(
            "ALTER SYSTEM SET a = 1;\nSELECT pg_reload_conf();"
        ));
        assert!(!single_statement("DO $$ BEGIN END $$"));
        assert!(!single_statement(""));
    }
}
