//! When a submission's provisioning fails, the servers' own words at that moment: what
//! PostgreSQL logged (a client's "failed" says less than the server's FATAL line: why an
//! authentication failed, which address it could not bind) and, for a step that was stopped
//! because it never finished, what each PostgreSQL was doing (`pg_stat_activity` wait events).

use crate::lab::Lab;
use std::time::Duration;

const LOG_TAIL: &str = r#"for f in /var/log/postgresql/postgresql-*-main.log; do
  [ -f "$f" ] && tail -n 40 "$f" | grep -E 'FATAL|PANIC|ERROR|DETAIL|HINT|could not|invalid value|unrecognized configuration|syntax error' | tail -n 6
done 2>/dev/null || true"#;

const ACTIVITY: &str = r#"runuser -u postgres -- psql -XAtq -F ' | ' -c "SELECT coalesce(usename, backend_type), coalesce(client_addr::text, 'local'), state, coalesce(wait_event_type || ':' || wait_event, 'running'), left(regexp_replace(query, '\s+', ' ', 'g'), 80) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND state IS NOT NULL AND state <> 'idle'" 2>/dev/null || true"#;

/// The oldest commit waiting for a synchronous standby (`seconds | query | synchronous
/// standbys connected | synchronous_standby_names`), if any.
const SYNC_WAIT: &str = r#"runuser -u postgres -- psql -XAtq -F ' | ' -c "SELECT extract(epoch FROM now() - a.query_start)::int, left(regexp_replace(a.query, '\s+', ' ', 'g'), 80), (SELECT count(*) FROM pg_stat_replication WHERE sync_state IN ('sync', 'quorum')), current_setting('synchronous_standby_names') FROM pg_stat_activity a WHERE a.wait_event = 'SyncRep' ORDER BY a.query_start LIMIT 1" 2>/dev/null || true"#;

/// The oldest statement waiting for a lock that a session idle in its transaction holds
/// (`seconds waiting | seconds idle | the waiting query | the idle session's last query`), if
/// any. `|` in the queries is written `/`, so the fields stay apart.
const LOCK_WAIT: &str = r#"runuser -u postgres -- psql -XAtq -F ' | ' -c "SELECT extract(epoch FROM now() - w.query_start)::int, extract(epoch FROM now() - b.state_change)::int, left(replace(regexp_replace(w.query, '\s+', ' ', 'g'), '|', '/'), 80), left(replace(regexp_replace(b.query, '\s+', ' ', 'g'), '|', '/'), 80) FROM pg_stat_activity w JOIN pg_stat_activity b ON b.pid = ANY (pg_blocking_pids(w.pid)) WHERE w.wait_event_type = 'Lock' AND b.state IN ('idle in transaction', 'idle in transaction (aborted)') ORDER BY w.query_start, b.state_change LIMIT 1" 2>/dev/null || true"#;

/// Why a lab is stuck, when one of its servers waits on something that cannot arrive, for at
/// least `after`:
/// - a commit waiting for a synchronous standby while none is connected
///   (`synchronous_standby_names` names a standby that does not exist yet: the commit never
///   returns, and neither does the step that made it);
/// - a statement waiting for a lock held by a session idle in its transaction (a psql left
///   open in the background after `BEGIN`: nothing will end that transaction).
pub fn stuck(lab: &Lab, after: Duration) -> Option<String> {
    for h in &lab.topology().hosts {
        let ask = |sql: &str| {
            let t = Duration::from_secs(10);
            let o = lab.backend().check(&h.name, "root", sql, t).ok()?;
            Some(o.stdout.trim().to_string())
        };
        if let Some(why) = ask(SYNC_WAIT).and_then(|o| sync_wait(&h.name, &o, after)) {
            return Some(why);
        }
        if let Some(why) = ask(LOCK_WAIT).and_then(|o| lock_wait(&h.name, &o, after)) {
            return Some(why);
        }
    }
    None
}

/// `SYNC_WAIT`'s answer on `host`, as a reason, when the commit has waited `after` with no
/// synchronous standby connected.
fn sync_wait(host: &str, answer: &str, after: Duration) -> Option<String> {
    let f: Vec<&str> = answer.splitn(4, " | ").collect();
    let [secs, query, synced, names] = f[..] else {
        return None;
    };
    let (Ok(secs), Ok(0)) = (secs.parse::<u64>(), synced.parse::<u64>()) else {
        return None;
    };
    (secs >= after.as_secs()).then(|| format!(
        "on {host} a commit has waited {secs} s for a synchronous standby (synchronous_standby_names = '{names}') and none is connected, so it never finishes: {query}"
    ))
}

/// `LOCK_WAIT`'s answer on `host`, as a reason, when the statement has waited `after` and the
/// session holding the lock has been idle in its transaction as long.
fn lock_wait(host: &str, answer: &str, after: Duration) -> Option<String> {
    let f: Vec<&str> = answer.splitn(4, " | ").collect();
    let [waited, idle, query, holder] = f[..] else {
        return None;
    };
    let (Ok(waited), Ok(idle)) = (waited.parse::<u64>(), idle.parse::<u64>()) else {
        return None;
    };
    (waited >= after.as_secs() && idle >= after.as_secs()).then(|| format!(
        "on {host} a statement has waited {waited} s for a lock held by a session idle in its transaction for {idle} s (its last statement: {holder}); nothing ends that transaction, so it never finishes: {query}"
    ))
}

/// Whether a failure paragraph is a command stopped at its deadline (`sys::exec`'s words).
pub fn stopped_at_deadline(message: &str) -> bool {
    message.contains("did not finish within")
}

/// Lines to append to a provisioning failure; empty when the servers said nothing.
pub fn at_failure(lab: &Lab, message: &str) -> String {
    servers_now(lab, stopped_at_deadline(message))
}

/// What the servers say now: PostgreSQL's log and, for something `stuck`, what each
/// PostgreSQL is doing (`pg_stat_activity`). Empty when they said nothing.
pub fn servers_now(lab: &Lab, stuck: bool) -> String {
    let mut out = String::new();
    for h in &lab.topology().hosts {
        for hit in lab.backend().limits_hit(&h.name) {
            out.push_str(&format!("\n    | {}: {hit}", h.name));
        }
        let t = Duration::from_secs(15);
        if let Ok(o) = lab.backend().check(&h.name, "root", LOG_TAIL, t) {
            for l in o.stdout.lines().filter(|l| !l.trim().is_empty()) {
                out.push_str(&format!(
                    "\n    | {}: PostgreSQL's log: {}",
                    h.name,
                    l.trim()
                ));
            }
        }
        if stuck {
            if let Ok(o) = lab.backend().check(&h.name, "root", ACTIVITY, t) {
                for l in o.stdout.lines().filter(|l| !l.trim().is_empty()) {
                    out.push_str(&format!(
                        "\n    | {}: pg_stat_activity: {}",
                        h.name,
                        l.trim()
                    ));
                }
            }
        }
    }
    if out.is_empty() {
        return out;
    }
    format!("\n  the servers at that moment:{out}")
}

/// For a playbook stopped at its deadline: the task it was in (the last header in its output).
pub fn last_task(message: &str) -> Option<String> {
    let i = message.rfind("TASK [")?;
    let rest = &message[i + 6..];
    Some(rest.split(']').next().unwrap_or(rest).to_string())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn a_wait_is_stuck_only_once_it_has_lasted() {
        let minute = Duration::from_secs(60);
        let lock = "75 | 80 | DROP TABLE pglab_probe; | BEGIN; LOCK TABLE pglab_probe IN ACCESS EXCLUSIVE MODE;";
        let why = super::lock_wait("node1", lock, minute).unwrap();
        assert!(why.starts_with("on node1 a statement has waited 75 s for a lock held by a session idle in its transaction for 80 s (its last statement: BEGIN; LOCK TABLE"), "{why}");
        assert!(
            why.ends_with("never finishes: DROP TABLE pglab_probe;"),
            "{why}"
        );
        // A holder idle for less than a minute may still be a step at work.
        assert_eq!(
            super::lock_wait("node1", "75 | 12 | DROP TABLE t | BEGIN", minute),
            None
        );
        assert_eq!(super::lock_wait("node1", "", minute), None);
        let sync = "61 | CREATE ROLE replicator | 0 | *";
        let why = super::sync_wait("node1", sync, minute).unwrap();
        assert!(why.contains("synchronous_standby_names = '*'"), "{why}");
        // A synchronous standby is connected: the commit will return.
        assert_eq!(
            super::sync_wait("node1", "61 | CREATE ROLE r | 1 | *", minute),
            None
        );
        assert_eq!(
            super::sync_wait("node1", "59 | CREATE ROLE r | 0 | *", minute),
            None
        );
    }

    #[test]
    fn the_last_task_header_names_where_a_playbook_hung() {
        let m = "command did not finish within 10m\n    | TASK [a]\n    | ok: [n]\n    | TASK [clone with a password prompt]\n";
        assert_eq!(
            super::last_task(m).as_deref(),
            Some("clone with a password prompt")
        );
    }
}
